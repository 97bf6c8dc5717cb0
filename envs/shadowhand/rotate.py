"""Gymnasium-Robotics' `HandManipulate...RotateZ-v1` on generated objects, as a pure-JAX MJX env.

As in Gymnasium-Robotics (`envs/shadow_dexterous_hand/manipulate.py`, v1 as BRC used it):

- an action in [-1, 1]^20 is an absolute position target per actuator, mapped linearly onto its
  control range (`relative_control=False`) and held for 20 physics steps of 0.002 s (25 Hz);
  100 steps per episode, no termination (a diverged simulation ends the episode: `done`);
- reset: the model's initial state, the object turned about z by U(-pi, pi) and moved by
  N(0, 0.005) m per axis, then 10 steps with the zero action (every joint to the middle of its
  range) to let it settle; the goal is the object's position then and a uniformly random
  z-rotation, U(-pi, pi);
- observation (68) = hand joint positions (24), velocities (24), object velocity (6), object
  pose (7: position, quaternion w-first), goal pose (7);
- reward = success - 1 (sparse), success = rotation error < 0.1 rad, the error being
  2 arccos(clip(w)) of q_object * conj(q_goal) (Gymnasium-Robotics' formula: without |w|); the
  `dense` variant (Gymnasium-Robotics' `...RotateZDense-v1`) rewards minus the error;
- the task's success flag (`eval/<task>/success`) is success at the last step of the episode, as
  Gymnasium-Robotics' `is_success` is read at the end of an episode.

Where Gymnasium-Robotics resets again until the object rests on the palm (its centre above
z = 0.04 m after settling), this env keeps the episode (a fixed-shape reset cannot loop);
`tests/test_shadowhand.py` measures how often an object is off the palm after a reset.

One `RotateZ` holds several objects of one family (`objects.FAMILIES`): their models share one
structure and differ in array values (sizes, masses, inertias, mesh vertices), so `ModelBatch`
keeps the differing arrays stacked per object and each env gathers its object's model
(`variant`) inside the vmapped step: one compiled step for every object of a family.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from envs.shadowhand import hand
from envs.shadowhand.objects import ObjectSpec

N_SUBSTEPS = 20
TIMESTEP = 0.002
EPISODE_LENGTH = 100
SETTLE_STEPS = 10
POSITION_NOISE = 0.005
ROTATION_THRESHOLD = 0.1  # rad
HAND_JOINTS = 24
OBSERVATION_SIZE = 68


def quat_mul(a: jax.Array, b: jax.Array) -> jax.Array:
    """Hamilton product of w-first quaternions (..., 4)."""
    aw, ax, ay, az = jnp.moveaxis(a, -1, 0)
    bw, bx, by, bz = jnp.moveaxis(b, -1, 0)
    return jnp.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def quat_conjugate(q: jax.Array) -> jax.Array:
    return q * jnp.array([1.0, -1.0, -1.0, -1.0], q.dtype)


def z_rotation(angle: jax.Array) -> jax.Array:
    """The w-first quaternion of a rotation by `angle` about z, (..., 4)."""
    half = 0.5 * jnp.asarray(angle)
    zero = jnp.zeros_like(half)
    return jnp.stack([jnp.cos(half), zero, zero, jnp.sin(half)], axis=-1)


def rotation_error(quat: jax.Array, goal_quat: jax.Array) -> jax.Array:
    """Gymnasium-Robotics' rotation distance: 2 arccos(clip(w(q * conj(q_goal)), -1, 1))."""
    w = quat_mul(quat, quat_conjugate(goal_quat))[..., 0]
    return 2.0 * jnp.arccos(jnp.clip(w, -1.0, 1.0))


def initial_pose(key: jax.Array, pose0: jax.Array) -> jax.Array:
    """Gymnasium-Robotics' randomised initial object pose (7,) from the model's `pose0`: turned
    about z by U(-pi, pi) (q0 * q_z), moved by N(0, POSITION_NOISE) per axis, renormalised."""
    key_angle, key_pos = jax.random.split(key)
    angle = jax.random.uniform(key_angle, (), minval=-jnp.pi, maxval=jnp.pi)
    quat = quat_mul(pose0[3:], z_rotation(angle))
    pos = pose0[:3] + POSITION_NOISE * jax.random.normal(key_pos, (3,))
    return jnp.concatenate([pos, quat / jnp.linalg.norm(quat)])


def sample_goal(key: jax.Array, position: jax.Array) -> jax.Array:
    """RotateZ's goal (7,): the object's `position` (not scored) and a rotation by U(-pi, pi)
    about z."""
    angle = jax.random.uniform(key, (), minval=-jnp.pi, maxval=jnp.pi)
    return jnp.concatenate([position, z_rotation(angle)])


def reward(quat: jax.Array, goal_quat: jax.Array,
           dense: bool = False) -> tuple[jax.Array, jax.Array]:
    """(reward, success) for object / goal quaternions (..., 4): the sparse reward success - 1,
    or (`dense`, Gymnasium-Robotics' `...RotateZDense-v1`) minus the rotation error."""
    error = rotation_error(quat, goal_quat)
    success = error < ROTATION_THRESHOLD
    if dense:
        return -error, success
    return success.astype(jnp.float32) - 1.0, success


# Static (NumPy) model fields that may differ between the objects of a family: MJX reads them
# only while building a model (`put_model` turns the mesh into `mesh_convex`, which is batched),
# or for height fields, which these models have none of. Any other static difference is an error.
_BUILD_ONLY_FIELDS = frozenset({
    "mesh_vert", "mesh_normal", "mesh_face", "mesh_graph", "mesh_pos", "mesh_quat",
    "mesh_polynum", "mesh_polyadr", "mesh_polynormal", "mesh_polyvertadr", "mesh_polyvertnum",
    "mesh_polyvert", "mesh_polymapadr", "mesh_polymapnum", "mesh_polymap",
    "nmeshpoly", "nmeshpolyvert", "nmeshpolymap", "geom_rbound_hfield",
})


def _static_like(model: Any, reference: Any, names: Sequence[str], path: str = "model") -> Any:
    """`model` with its static fields in `_BUILD_ONLY_FIELDS` taken from `reference`; raises
    naming the field where another static field differs."""
    changes = {}
    for field in dataclasses.fields(model):
        value, ref = getattr(model, field.name), getattr(reference, field.name)
        if dataclasses.is_dataclass(value):
            new = _static_like(value, ref, names, f"{path}.{field.name}")
            if new is not value:
                changes[field.name] = new
        elif isinstance(value, jax.Array) or isinstance(value, tuple):
            continue  # traced leaves (ConvexMesh tuples too): stacked by ModelBatch if they differ
        elif isinstance(value, np.ndarray) or np.isscalar(value):
            same = (np.shape(value) == np.shape(ref) and np.array_equal(value, ref))
            if not same:
                if field.name not in _BUILD_ONLY_FIELDS:
                    raise ValueError(f"objects {', '.join(names)} differ in the static model "
                                     f"field {path}.{field.name}: they cannot share one model")
                changes[field.name] = ref
    return dataclasses.replace(model, **changes) if changes else model


class ModelBatch:
    """MJX models of one structure, stored once: arrays equal across the models are kept as
    they are, the others stacked per model; `model(i)` is model i (traceable in `i`)."""

    def __init__(self, mjx_models: Sequence[Any], names: Sequence[str]):
        models = [mjx_models[0]] + [_static_like(m, mjx_models[0], names) for m in mjx_models[1:]]
        flat = [jax.tree_util.tree_flatten(m) for m in models]
        self._base, self._treedef = flat[0]
        self.varying: list[int] = []
        table = []
        if any(treedef != self._treedef for _, treedef in flat[1:]):
            raise ValueError(f"objects {', '.join(names)} do not share one model structure")
        for i in range(len(self._base)):
            values = [np.asarray(leaves[i]) for leaves, _ in flat]
            if any(v.shape != values[0].shape for v in values):
                raise ValueError(f"objects {', '.join(names)} differ in the shape of model "
                                 f"array {i} ({sorted({v.shape for v in values})})")
            if not all(np.array_equal(v, values[0]) for v in values[1:]):
                self.varying.append(i)
                table.append(jnp.asarray(np.stack(values)))
        self._table = tuple(table)

    def model(self, index: jax.Array) -> Any:
        leaves = list(self._base)
        for i, stacked in zip(self.varying, self._table, strict=True):
            leaves[i] = stacked[index]
        return jax.tree_util.tree_unflatten(self._treedef, leaves)


@flax.struct.dataclass
class State:
    """One env's state, in the fields `envs.mjx_backend` reads (Playground's State subset)."""

    data: Any  # mjx.Data
    obs: jax.Array  # (68,)
    reward: jax.Array  # ()
    done: jax.Array  # () float32, 1 when the simulation diverged
    success: jax.Array  # () bool, rotation error < 0.1 rad after this step
    goal: jax.Array  # (7,) goal position and w-first quaternion
    variant: jax.Array  # () int32, which object of the family


class RotateZ:
    """An unbatched RotateZ task over the objects of one family: `reset(key, variant)`,
    `step(state, action)` (the variant stays in the state)."""

    episode_length = EPISODE_LENGTH
    success_at_end = True  # the backend reports `success` at an episode's last step only
    observation_size = OBSERVATION_SIZE
    dt = N_SUBSTEPS * TIMESTEP  # seconds per env step (25 Hz)

    def __init__(self, objects: Sequence[ObjectSpec], impl: str = "jax", dense: bool = False):
        from mujoco import mjx

        if impl != "jax":
            raise ValueError(f"ShadowHand tasks batch their object models per env, which MJX "
                             f"supports with impl='jax' only; got impl={impl!r}")
        families = sorted({o.family for o in objects})
        if len(families) != 1:
            raise ValueError(f"one RotateZ holds objects of one family, got {families}")
        self.objects = tuple(objects)
        self.dense = dense
        self.num_variants = len(self.objects)
        self.mj_models = [hand.hand_model(o) for o in self.objects]
        self.batch = ModelBatch([mjx.put_model(m, impl=impl) for m in self.mj_models],
                                [o.name for o in self.objects])
        m = self.mj_models[0]
        self.action_size = int(m.nu)
        low, high = m.actuator_ctrlrange.T
        self._ctrl_low = jnp.asarray(low, jnp.float32)
        self._ctrl_high = jnp.asarray(high, jnp.float32)
        joint = m.joint("object:joint").id
        self._qadr = int(m.jnt_qposadr[joint])
        self._vadr = int(m.jnt_dofadr[joint])
        if self._qadr != HAND_JOINTS or m.nq != HAND_JOINTS + 7:
            raise ValueError(f"unexpected hand model layout: nq {m.nq}, object at {self._qadr}")

    def physics(self, model: Any, data: Any, action: jax.Array) -> Any:
        """Absolute position targets from `action` in [-1, 1], held for 20 substeps."""
        from mujoco import mjx

        center = (self._ctrl_high + self._ctrl_low) / 2
        half_range = (self._ctrl_high - self._ctrl_low) / 2
        ctrl = jnp.clip(center + action * half_range, self._ctrl_low, self._ctrl_high)
        data = data.replace(ctrl=ctrl)
        return jax.lax.fori_loop(0, N_SUBSTEPS, lambda _, d: mjx.step(model, d), data)

    def object_pose(self, data: Any) -> jax.Array:
        return data.qpos[self._qadr : self._qadr + 7]

    def _obs(self, data: Any, goal: jax.Array) -> jax.Array:
        return jnp.concatenate([
            data.qpos[:HAND_JOINTS], data.qvel[:HAND_JOINTS],
            data.qvel[self._vadr : self._vadr + 6], self.object_pose(data), goal,
        ]).astype(jnp.float32)

    def reset(self, key: jax.Array, variant: jax.Array) -> State:
        from mujoco import mjx

        key_pose, key_goal = jax.random.split(key)
        model = self.batch.model(variant)
        qpos = model.qpos0
        pose = initial_pose(key_pose, qpos[self._qadr : self._qadr + 7])
        qpos = qpos.at[self._qadr : self._qadr + 7].set(pose)
        data = mjx.forward(model, mjx.make_data(model).replace(qpos=qpos))
        zero_action = jnp.zeros((self.action_size,), jnp.float32)
        data = jax.lax.fori_loop(
            0, SETTLE_STEPS, lambda _, d: self.physics(model, d, zero_action), data)
        goal = sample_goal(key_goal, self.object_pose(data)[:3])
        zero = jnp.zeros((), jnp.float32)
        return State(data=data, obs=self._obs(data, goal), reward=zero, done=zero,
                     success=jnp.zeros((), bool), goal=goal,
                     variant=jnp.asarray(variant, jnp.int32))

    def step(self, state: State, action: jax.Array) -> State:
        model = self.batch.model(state.variant)
        data = self.physics(model, state.data, action)
        r, success = reward(self.object_pose(data)[3:], state.goal[3:], self.dense)
        diverged = ~(jnp.isfinite(data.qpos).all() & jnp.isfinite(data.qvel).all())
        return state.replace(
            data=data, obs=self._obs(data, state.goal), reward=r,
            done=diverged.astype(jnp.float32), success=success,
        )
