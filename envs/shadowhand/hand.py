"""The ShadowHand of Gymnasium-Robotics' manipulate tasks, built for MJX with one generated object.

The hand is the one BRC trained (Gymnasium-Robotics' `HandManipulate*` envs): its XMLs come
from the PyPI package `gymnasium-robotics` at run time (no download; the package is located, not
imported, so none of its dependencies are needed). `build_spec` loads `manipulate_block.xml`
with `mujoco.MjSpec` and edits it for MJX:

- the block and its target are removed and the generated object (`objects.ObjectSpec`) added
  with a free joint at the block's place (raised by what it is taller than the block);
- geom margins are 0 (MJX has no contact margins); the forearm's convex collision mesh becomes a
  box of its bounding box (MJX's mesh collisions with the object were wrong / slow);
- the visual meshes, textures, touch and joint sensors are dropped (nothing reads them); the
  collision geoms are drawn instead (geom group 0) and a camera `closeup` looks at the object,
  for evaluation videos (neither changes the physics);
- contact bits: the floor touches only the object (the hand never reaches it), as before the
  hand touches the object and, through its 19 explicit pairs, itself;
- MJX's caps on the contact problem: the `MAX_GEOM_PAIRS` nearest pairs per geom-type group and
  the `MAX_CONTACTS` deepest contacts per condim group are solved (an object touches at most a
  handful of the 20 hand geoms at once); Newton's line search is capped at `LS_ITERATIONS`.
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib

import mujoco
import numpy as np

from envs.shadowhand.objects import ObjectSpec

ASSET_PACKAGE = "gymnasium_robotics"
_MANIPULATE_XML = "envs/assets/hand/manipulate_block.xml"
OBJECT_POS = (1.0, 0.87, 0.2)  # where Gymnasium-Robotics puts the block (5 cm cube)
BLOCK_HALF = 0.025
CAMERA_POS = (1.0, 0.55, 0.45)  # `closeup`: in front of the fingers, above the palm
OBJECT_CONDIM = 4  # Gymnasium-Robotics' object geoms: torsional friction
FLOOR_BIT, HAND_BIT = 2, 1  # the hand's geoms have contype 1, conaffinity 0
MAX_GEOM_PAIRS, MAX_CONTACTS = 8, 16
LS_ITERATIONS = 10  # MuJoCo's default is 50; see envs/README.md (same trajectories, 2.4x faster)
_GEOM_TYPES = {
    "box": mujoco.mjtGeom.mjGEOM_BOX,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "mesh": mujoco.mjtGeom.mjGEOM_MESH,
}


class AssetError(RuntimeError):
    """The packaged ShadowHand model is missing; prints as one line."""


def manipulate_xml_path() -> pathlib.Path:
    """Path of Gymnasium-Robotics' `hand/manipulate_block.xml` inside the installed package."""
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            "ShadowHand tasks need the PyPI package gymnasium-robotics (installed with brc-mjx); "
            "it is not installed"
        )
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / _MANIPULATE_XML
    if not path.is_file():
        raise AssetError(f"{path} is missing from {ASSET_PACKAGE}")
    return path


def add_object(spec: mujoco.MjSpec, obj: ObjectSpec) -> None:
    """Add `obj` as the free body `object` (geoms `object_<k>`, site `object:center`)."""
    pos = np.asarray(OBJECT_POS) + (0.0, 0.0, max(0.0, obj.half_height - BLOCK_HALF))
    body = spec.worldbody.add_body(name="object", pos=pos)
    for k, g in enumerate(obj.geoms):
        kwargs = dict(name=f"object_{k}", type=_GEOM_TYPES[g.type], pos=g.pos, quat=g.quat,
                      density=obj.density, condim=OBJECT_CONDIM, contype=HAND_BIT,
                      conaffinity=HAND_BIT | FLOOR_BIT, rgba=(0.85, 0.55, 0.25, 1.0))
        if g.type == "mesh":
            mesh = spec.add_mesh(name=f"object_mesh_{k}", uservert=list(g.vertices))
            kwargs["meshname"] = mesh.name
        else:
            kwargs["size"] = tuple(g.size) + (0.0,) * (3 - len(g.size))
        body.add_geom(**kwargs)
    body.add_site(name="object:center", pos=(0.0, 0.0, 0.0))
    body.add_freejoint(name="object:joint")


def build_spec(obj: ObjectSpec) -> mujoco.MjSpec:
    """The edited `MjSpec` of the hand holding `obj` (see the module docstring)."""
    spec = mujoco.MjSpec.from_file(str(manipulate_xml_path()))
    for name in ("object", "target"):
        spec.delete(spec.body(name))
    forearm = spec.geom("robot0:C_forearm")
    bound = spec.compile()
    gid = bound.geom("robot0:C_forearm").id
    # A box of the mesh's bounding box (in the compiled geom's frame) covers it.
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, bound.geom_quat[gid])
    forearm.type = mujoco.mjtGeom.mjGEOM_BOX
    forearm.meshname = ""
    forearm.size = bound.geom_aabb[gid, 3:]
    forearm.pos = bound.geom_pos[gid] + mat.reshape(3, 3) @ bound.geom_aabb[gid, :3]
    forearm.quat = bound.geom_quat[gid]
    for geom in list(spec.geoms):
        if geom.classname.name == "robot0:D_Vizual":
            spec.delete(geom)
        else:
            geom.margin = 0.0
            geom.group = 0
    for mesh in list(spec.meshes):
        spec.delete(mesh)
    for sensor in list(spec.sensors):
        spec.delete(sensor)
    for texture in list(spec.textures):
        if texture.name.startswith("texture:"):
            spec.delete(texture)
    for material in list(spec.materials):
        if material.name.startswith("material:"):
            spec.delete(material)
    floor = spec.geom("floor0")
    floor.contype, floor.conaffinity = FLOOR_BIT, 0
    add_object(spec, obj)
    spec.worldbody.add_camera(name="closeup", pos=CAMERA_POS, targetbody="object",
                              mode=mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY)
    spec.option.ls_iterations = LS_ITERATIONS
    spec.add_numeric(name="max_contact_points", data=[MAX_CONTACTS])
    spec.add_numeric(name="max_geom_pairs", data=[MAX_GEOM_PAIRS])
    return spec


@functools.lru_cache(maxsize=256)
def hand_model(obj: ObjectSpec) -> mujoco.MjModel:
    """The compiled CPU `MjModel` of the hand with `obj` (cached; treat it as read-only)."""
    return build_spec(obj).compile()
