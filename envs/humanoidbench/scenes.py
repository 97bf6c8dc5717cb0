"""HumanoidBench's terrain for the H1 climbing tasks, added to the H1 `MjSpec` (static geoms).

Geometry as in HumanoidBench's `assets/tasks/stair.xml` (+ `locomotion/generated_xml_stairs.xml`)
and `assets/tasks/slide.xml`: every collision geom with its size, position and orientation; the
visual copies HumanoidBench keeps beside them are not needed (the collision geoms are drawn).
All of them are welded to the world and are boxes or a convex prism mesh; they collide with the
spheres at the ends of the H1's foot capsules (`h1.FOOT_SPHERES`, contact bit `h1.TERRAIN_BIT`),
as sphere-box / sphere-mesh contacts agree between MJX and CPU MuJoCo.

- `stair`: four identical pyramids of five stacked boxes (0.18 m rise, 0.6 m tread, top 0.90 m)
  under a body at x = 0.2, centred at x = 3.2, 9.2, 15.2, 21.2 (so the first step starts at
  x = 0.5, 0.5 m ahead of the robot), 10 m wide, between two side walls (inner faces y = +-4.95)
  and a back wall (inner face x = -2.0), 4 m high.
- `slide`: nine triangular prisms side by side, each rising from x = 0.3 to a 1.75 m ridge at
  x = 5.3 and falling to x = 10.3 (slope 0.35), repeated every 10 m, 10 m wide, between side walls
  (inner faces y = +-5.0) and a back wall at x = -4, 8 m high.
"""

from __future__ import annotations

import mujoco

from envs.humanoidbench.h1 import TERRAIN_BIT  # h1.build_spec imports this module lazily

TERRAIN_RGBA = (0.72, 0.72, 0.76, 1.0)
WALL_RGBA = (0.5, 0.5, 0.55, 0.25)


def _box(parent, pos, size, rgba=TERRAIN_RGBA):
    parent.add_geom(type=mujoco.mjtGeom.mjGEOM_BOX, pos=pos, size=size,
                    contype=TERRAIN_BIT, conaffinity=TERRAIN_BIT, density=0.0, rgba=rgba)


def add_stairs(spec: mujoco.MjSpec) -> None:
    stairs = spec.worldbody.add_body(name="stairs", pos=(0.2, 0.0, 0.0))
    for k, x in enumerate((3.0, 9.0, 15.0, 21.0)):
        pyramid = stairs.add_body(name=f"stairs_{50 - 10 * k}", pos=(x, 0.0, 0.0))
        for level in range(5):  # half-length 2.7, 2.1, 1.5, 0.9, 0.3 at z 0.09, 0.27, ... 0.81
            _box(pyramid, (0.0, 0.0, 0.09 + 0.18 * level), (2.7 - 0.6 * level, 5.0, 0.09))
    _box(stairs, (13.5, -5.05, 2.0), (15.5, 0.1, 2.0), WALL_RGBA)
    _box(stairs, (13.5, 5.05, 2.0), (15.5, 0.1, 2.0), WALL_RGBA)
    _box(stairs, (-2.1, 0.0, 2.0), (0.1, 7.25, 2.0), WALL_RGBA)


# One slide: up from (0.3, 0) to the ridge (5.3, 1.75), down to (10.3, 0); 10 m wide (y +-5).
SLIDE_VERTICES = (0.3, 5, 0, 0.3, -5, 0, 5.3, 5, 1.75, 5.3, -5, 1.75, 10.3, 5, 0, 10.3, -5, 0)


def add_slide(spec: mujoco.MjSpec) -> None:
    spec.add_mesh(name="slide", uservert=list(SLIDE_VERTICES))
    slides = spec.worldbody.add_body(name="slides")
    for k in range(9):
        slides.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname="slide",
                        pos=(10.0 * k, 0.0, 0.0), contype=TERRAIN_BIT, conaffinity=TERRAIN_BIT,
                        density=0.0, rgba=TERRAIN_RGBA)
    _box(spec.worldbody, (48.85, -5.15, 4.0), (53.0, 0.15, 4.0), WALL_RGBA)
    _box(spec.worldbody, (48.85, 5.15, 4.0), (53.0, 0.15, 4.0), WALL_RGBA)
    _box(spec.worldbody, (-4.0, 0.0, 4.0), (0.15, 5.15, 4.0), WALL_RGBA)


SCENES = {"stair": add_stairs, "slide": add_slide}
