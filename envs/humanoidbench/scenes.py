"""HumanoidBench's scenes for the H1 tasks, added to the H1 `MjSpec` (static geoms).

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

The scenes of the whole-body tasks (HumanoidBench's `tasks/crawl.xml` and
`locomotion/generated_xml_{poles,hurdles,maze}.xml`, regular grids there written out geom by geom,
here generated from the same numbers); they also touch the H1's body primitives
(`h1.BODY_BIT`, see `h1.build_spec(whole_body=True)`):

- `crawl`: a tunnel from x = 2.2 to 18.2: side walls (inner faces y = +-1.15) 1.55 m high under
  a 0.4 m thick roof whose underside is 1.15 m above the floor.
- `pole`: 41 rows of poles (radius 0.05, 2 m high) at x = 1, 2, ... 41; odd rows at
  y = +-0.75, +-2.25, even rows at y = 0, +-1.5; side barriers (inner faces y = +-3.0, 2 m
  high) from x = -0.75 to 40.75 and a back barrier at x = -0.6. HumanoidBench's poles are
  cylinders; here they are capsules spanning the same 0-2 m (rounded in their last 5 cm at
  each end), because MJX's capsule-cylinder and sphere-cylinder contacts are not CPU
  MuJoCo's (next-state velocities 0.1-0.5 apart after a touch, measured), while its
  capsule-capsule and sphere-capsule contacts are.
- `hurdle`: ten hurdles (0.375 m high, 6 cm deep, 10 m wide) at x = 7, 14, ... 70; side
  barriers (inner faces y = +-4.45) from x = -0.5 to 70.5, a back barrier at x = -0.525.
- `maze`: a 7 x 7 grid of 1.5 m cells with 1.2 m high blocks (`MAZE` below, row 0 at the
  far y), whose corridors turn at HumanoidBench's checkpoints (0, 0), (3, 0), (3, 6), (6, 6).
"""

from __future__ import annotations

import itertools

import mujoco

from envs.humanoidbench.h1 import BODY_BIT, TERRAIN_BIT  # h1.build_spec imports this lazily

TERRAIN_RGBA = (0.72, 0.72, 0.76, 1.0)
WALL_RGBA = (0.5, 0.5, 0.55, 0.25)
OBSTACLE_RGBA = (0.62, 0.55, 0.45, 1.0)
# Scene geoms touch the foot spheres (TERRAIN_BIT) and, in whole-body models, the body's
# capsules and spheres (BODY_BIT); the body geoms do not touch each other.
_SCENE_AFFINITY = TERRAIN_BIT | BODY_BIT


def _geom(parent, kind, rgba, name="", **placement):
    """A static scene geom (``placement``: pos / size / fromto / meshname)."""
    parent.add_geom(name=name, type=kind, contype=TERRAIN_BIT, conaffinity=_SCENE_AFFINITY,
                    density=0.0, rgba=rgba, **placement)


def _box(parent, pos, size, rgba=TERRAIN_RGBA, name=""):
    _geom(parent, mujoco.mjtGeom.mjGEOM_BOX, rgba, name, pos=pos, size=size)


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
        _geom(slides, mujoco.mjtGeom.mjGEOM_MESH, TERRAIN_RGBA, meshname="slide",
              pos=(10.0 * k, 0.0, 0.0))
    _box(spec.worldbody, (48.85, -5.15, 4.0), (53.0, 0.15, 4.0), WALL_RGBA)
    _box(spec.worldbody, (48.85, 5.15, 4.0), (53.0, 0.15, 4.0), WALL_RGBA)
    _box(spec.worldbody, (-4.0, 0.0, 4.0), (0.15, 5.15, 4.0), WALL_RGBA)


def add_tunnel(spec: mujoco.MjSpec) -> None:
    tunnel = spec.worldbody.add_body(name="tunnel", pos=(2.2, 0.0, 0.0))
    _box(tunnel, (8.0, -1.35, 0.775), (8.0, 0.2, 0.775), WALL_RGBA, "left_wall")
    _box(tunnel, (8.0, 1.35, 0.775), (8.0, 0.2, 0.775), WALL_RGBA, "right_wall")
    _box(tunnel, (8.0, 0.0, 1.35), (8.0, 1.15, 0.2), WALL_RGBA, "ceiling")


POLE_ROWS = 41
POLE_RADIUS = 0.05
POLE_Y = ((2.25, 0.75, -0.75, -2.25), (1.5, 0.0, -1.5))  # odd rows, even rows


def pole_positions() -> list[tuple[float, float]]:
    """(x, y) of every pole, row by row (row r at x = r)."""
    return [(float(r), y) for r in range(1, POLE_ROWS + 1) for y in POLE_Y[(r - 1) % 2]]


def add_poles(spec: mujoco.MjSpec) -> None:
    _box(spec.worldbody, (20.0, -3.15, 1.0), (20.75, 0.15, 1.0), WALL_RGBA, "left_barrier")
    _box(spec.worldbody, (20.0, 3.15, 1.0), (20.75, 0.15, 1.0), WALL_RGBA, "right_barrier")
    _box(spec.worldbody, (-0.6, 0.0, 1.0), (0.15, 3.0, 1.0), WALL_RGBA, "behind_barrier")
    for k, (x, y) in enumerate(pole_positions()):  # capsules from z = 0 to 2 (see above)
        _geom(spec.worldbody, mujoco.mjtGeom.mjGEOM_CAPSULE, OBSTACLE_RGBA, f"pole_{k}",
              size=(POLE_RADIUS, 0, 0), fromto=(x, y, POLE_RADIUS, x, y, 2.0 - POLE_RADIUS))


HURDLE_X = tuple(7.0 * k for k in range(1, 11))


def add_hurdles(spec: mujoco.MjSpec) -> None:
    _box(spec.worldbody, (35.0, -4.725, 1.0), (35.5, 0.275, 1.0), WALL_RGBA, "left_barrier")
    _box(spec.worldbody, (35.0, 4.725, 1.0), (35.5, 0.275, 1.0), WALL_RGBA, "right_barrier")
    _box(spec.worldbody, (-0.525, 0.0, 1.0), (0.05, 5.0, 1.0), WALL_RGBA, "behind_barrier")
    for k, x in enumerate(HURDLE_X):
        _box(spec.worldbody, (x, 0.0, 0.1875), (0.03, 5.0, 0.1875), OBSTACLE_RGBA, f"hurdle_{k}")


# HumanoidBench's maze: "#" a 1.5 m block 1.2 m high; row 0 is the far row (y = 9.75 - 2.25),
# column 0 the back (x = 0.75 - 2.25), the grid shifted by (-2.25, -2.25).
MAZE = ("#######",
        "#.....#",
        "###.#.#",
        "#.....#",
        "#.#.###",
        "#.....#",
        "#######")
MAZE_CHECKPOINTS = ((0.0, 0.0), (3.0, 0.0), (3.0, 6.0), (6.0, 6.0), (6.0, 6.0))


def maze_blocks() -> list[tuple[float, float]]:
    """(x, y) of the centre of every block."""
    return [(0.75 + 1.5 * j - 2.25, 9.75 - 1.5 * i - 2.25)
            for i, row in enumerate(MAZE) for j, cell in enumerate(row) if cell == "#"]


def add_maze(spec: mujoco.MjSpec) -> None:
    for k, (x, y) in enumerate(maze_blocks()):
        _box(spec.worldbody, (x, y, 0.6), (0.75, 0.75, 0.6), WALL_RGBA, f"block_{k}")
    for k, (x, y) in enumerate(MAZE_CHECKPOINTS[:4]):  # markers, never touched
        spec.worldbody.add_geom(name=f"checkpoint_{k}", type=mujoco.mjtGeom.mjGEOM_SPHERE,
                                pos=(x, y, 1.0), size=(0.05, 0, 0), contype=0, conaffinity=0,
                                rgba=(0.9, 0.2, 0.2, 1.0), group=1)


# Sit (HumanoidBench's `tasks/sit_{simple,hard}.xml`): a chair behind the robot, its seat a
# 0.42 x 0.42 x 0.475 m box and its back a 0.04 x 0.42 x 0.4 m board, in a body at x = -0.25,
# welded to the world in sit_simple and free in sit_hard. HumanoidBench's chair weighs what its
# visual legs, seat and back weigh at density 1000 (its collision class has mass 0): 15.748 kg,
# with this centre of mass and principal inertia (read from HumanoidBench's compiled model).
CHAIR_POS = (-0.25, 0.0, 0.0)
CHAIR_INERTIAL = ((-0.0591211582, 0.0, 0.4796647193), (0.9493954498, 0.0, -0.3140832371, 0.0),
                  15.748, (1.024485313, 0.9252890332, 0.5463975869))
# Balance (HumanoidBench's `tasks/balance_{simple,hard}.xml`): a 0.3 x 1.1 x 0.06 m board, free,
# on a sphere of radius 0.17 resting on the floor, welded in balance_simple and free in
# balance_hard; both weigh what their boxes and spheres weigh at density 1000.
BOARD_POS, BOARD_SIZE = (0.0, 0.0, 0.37), (0.15, 0.55, 0.03)
PIVOT_POS, PIVOT_RADIUS = (0.0, 0.0, 0.17), 0.17
# Scene bodies that move: they touch the floor too (the floor's affinity has BODY_BIT).
_MOVING = dict(contype=BODY_BIT, conaffinity=_SCENE_AFFINITY)


CORNER_RADIUS = 0.002  # the free chair's corner spheres (see `_chair`)


def _chair(spec: mujoco.MjSpec, free: bool) -> None:
    """The chair. Free (sit_hard), it meets the floor through a small sphere in each of its
    boxes' 16 corners instead of the boxes' faces: MJX's box-plane contacts are not CPU
    MuJoCo's (the noisy reset drops the chair by up to 1 cm, and its velocities were 0.1 rad/s
    apart after landing, measured), while sphere-plane contacts agree. Its boxes still meet the
    robot (body primitives, foot spheres)."""
    chair = spec.worldbody.add_body(name="chair", pos=CHAIR_POS)
    if free:
        chair.add_freejoint(name="free_chair")
    chair.ipos, chair.iquat, chair.mass, chair.inertia = CHAIR_INERTIAL
    chair.explicitinertial = True
    bits = dict(contype=TERRAIN_BIT, conaffinity=_SCENE_AFFINITY) if free else _MOVING
    for name, pos, size in (("chair_back", (-0.23, 0.0, 0.65), (0.02, 0.21, 0.2)),
                            ("chair_seat", (0.0, 0.0, 0.2375), (0.21, 0.21, 0.2375))):
        chair.add_geom(name=name, type=mujoco.mjtGeom.mjGEOM_BOX, pos=pos, size=size,
                       density=0.0, rgba=OBSTACLE_RGBA, **bits)
        if free:  # floor contacts only: BODY_BIT against the floor's affinity, affinity 0
            for k, signs in enumerate(itertools.product((-1, 1), repeat=3)):
                corner = [p + sign * (h - CORNER_RADIUS)
                          for p, sign, h in zip(pos, signs, size, strict=True)]
                chair.add_geom(name=f"{name}_corner{k}", type=mujoco.mjtGeom.mjGEOM_SPHERE,
                               size=(CORNER_RADIUS, 0, 0), pos=corner, contype=BODY_BIT,
                               conaffinity=0, density=0.0, group=3)


def _balance(spec: mujoco.MjSpec, free_pivot: bool) -> None:
    board = spec.worldbody.add_body(name="stand_board", pos=BOARD_POS)
    board.add_freejoint(name="free_stand_board")
    board.add_geom(name="stand_board_collision", type=mujoco.mjtGeom.mjGEOM_BOX,
                   size=BOARD_SIZE, density=1000.0, rgba=OBSTACLE_RGBA, **_MOVING)
    pivot = spec.worldbody.add_body(name="rolling_pivot", pos=PIVOT_POS)
    if free_pivot:
        pivot.add_freejoint(name="free_rolling_pivot")
    pivot.add_geom(name="pivot_sphere_collision", type=mujoco.mjtGeom.mjGEOM_SPHERE,
                   size=(PIVOT_RADIUS, 0, 0), density=1000.0, rgba=(0.3, 0.3, 0.3, 1.0),
                   **_MOVING)


SCENES = {"stair": add_stairs, "slide": add_slide, "crawl": add_tunnel, "pole": add_poles,
          "hurdle": add_hurdles, "maze": add_maze,
          "sit_simple": lambda spec: _chair(spec, free=False),
          "sit_hard": lambda spec: _chair(spec, free=True),
          "balance_simple": lambda spec: _balance(spec, free_pivot=False),
          "balance_hard": lambda spec: _balance(spec, free_pivot=True)}
# HumanoidBench's keyframes of these scenes: where the robot's root starts (else the H1's
# standing keyframe, at the origin), and the qpos of the scene's free bodies, after the robot's.
ROOT_START = {"balance_simple": (-0.1, 0.0, 1.38), "balance_hard": (-0.1, 0.0, 1.38)}
_UNIT_QUAT = (1.0, 0.0, 0.0, 0.0)
FREE_QPOS = {"sit_hard": (*CHAIR_POS, *_UNIT_QUAT), "balance_simple": (*BOARD_POS, *_UNIT_QUAT),
             "balance_hard": (*BOARD_POS, *_UNIT_QUAT, *PIVOT_POS, *_UNIT_QUAT)}
# The geoms whose contact with the robot discounts a task's reward (HumanoidBench's rules):
# pole: any pole; hurdle: the three barriers; maze: any block.
PENALISED = {"pole": "pole_", "hurdle": "_barrier", "maze": "block_"}
