"""HumanoidBench's H1 locomotion tasks (walk, stand, run, stair, slide) as pure-JAX MJX envs.

Faithful to HumanoidBench (`humanoid_bench/envs/basic_locomotion_envs.py`, `tasks.py`, `env.py`):
an action in [-1, 1]^19 is mapped linearly onto the position actuators' control ranges and held
for 10 physics steps of 0.002 s (50 Hz); the observation is qpos (26) + qvel (25); an episode ends
(terminated) when the pelvis height qpos[2] < 0.2 (walk, stand, run) or the torso's up-axis z
component < 0.1 (stair, slide: HumanoidBench's `ClimbingUpwards`) and is truncated by the backend
at 1000 steps; a reset is the `qpos0` keyframe plus U(-0.01, 0.01) on every qpos entry, zero
velocity. Rewards are read from the state after the step, as HumanoidBench does after
`do_simulation`. Stair and slide add their terrain (`scenes.py`) in front of the robot.

The only known difference from HumanoidBench is contact: only the foot capsules touch the floor
and the terrain (HumanoidBench collides every link's mesh). See envs/README.md for its effect.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from envs.humanoidbench import h1

_STAND_HEIGHT = 1.65  # head height above which `standing` is 1
N_SUBSTEPS = 10
RESET_NOISE = 0.01
TERMINATION_HEIGHT = 0.2
CLIMB_TERMINATION_UPRIGHT = 0.1  # stair / slide end when the torso's z-axis z drops below this


def tolerance(x: jax.Array, lower: float, upper: float, margin: float = 0.0,
              sigmoid: str = "gaussian", value_at_margin: float = 0.1) -> jax.Array:
    """dm_control's `rewards.tolerance` in jnp: 1 inside [lower, upper], a sigmoid outside.

    Outside the bounds the value is `sigmoid(d / margin)` with d the distance to the nearest
    bound; the sigmoid equals `value_at_margin` at d = margin. Only the three kinds HumanoidBench's
    H1 locomotion rewards use are implemented.
    """
    in_bounds = (lower <= x) & (x <= upper)
    if margin == 0:
        return jnp.where(in_bounds, 1.0, 0.0)
    d = jnp.where(x < lower, lower - x, x - upper) / margin
    if sigmoid == "gaussian":
        scale = np.sqrt(-2 * np.log(value_at_margin))
        value = jnp.exp(-0.5 * (d * scale) ** 2)
    elif sigmoid == "linear":
        scaled = d * (1 - value_at_margin)
        value = jnp.where(jnp.abs(scaled) < 1, 1 - scaled, 0.0)
    elif sigmoid == "quadratic":
        scaled = d * np.sqrt(1 - value_at_margin)
        value = jnp.where(jnp.abs(scaled) < 1, 1 - scaled**2, 0.0)
    else:
        raise ValueError(f"unknown sigmoid {sigmoid!r}; expected gaussian, linear or quadratic")
    return jnp.where(in_bounds, 1.0, value)


@flax.struct.dataclass
class Readings:
    """What HumanoidBench's H1 locomotion rewards read from the simulator state."""

    head_height: Any  # site "head", z
    torso_upright: Any  # torso_link xmat zz
    com_velocity: Any  # (3,) sensor pelvis_subtreelinvel
    actuator_force: Any  # (19,)
    left_foot_height: Any  # site "left_foot", z
    right_foot_height: Any  # site "right_foot", z


def reward(readings: Readings, task: LocomotionTask) -> jax.Array:
    """HumanoidBench's reward of `task`: walk (1 m/s) / run (5 m/s), stand (move_speed 0), or
    stair / slide (`ClimbingUpwards`: standing measured from each foot, a looser upright)."""
    move_speed = task.move_speed
    small_control = tolerance(readings.actuator_force, 0.0, 0.0, margin=10.0,
                              sigmoid="quadratic", value_at_margin=0.0).mean(-1)
    small_control = (4 + small_control) / 5
    move = tolerance(readings.com_velocity[..., 0], move_speed, jnp.inf, margin=move_speed,
                     sigmoid="linear", value_at_margin=0.0)
    if task.climb:
        # head 1.2 m above each foot (margin 0.45), torso z-axis z >= 0.5 (linear, margin 1.9)
        standing = (tolerance(readings.head_height - readings.left_foot_height, 1.2, jnp.inf,
                              margin=0.45)
                    * tolerance(readings.head_height - readings.right_foot_height, 1.2, jnp.inf,
                                margin=0.45))
        upright = tolerance(readings.torso_upright, 0.5, jnp.inf, margin=1.9, sigmoid="linear",
                            value_at_margin=0.0)
        return standing * upright * small_control * (5 * move + 1) / 6
    standing = tolerance(readings.head_height, _STAND_HEIGHT, jnp.inf, margin=_STAND_HEIGHT / 4)
    upright = tolerance(readings.torso_upright, 0.9, jnp.inf, margin=1.9, sigmoid="linear",
                        value_at_margin=0.0)
    if move_speed == 0:
        dont_move = tolerance(readings.com_velocity[..., :2], 0.0, 0.0, margin=2.0).mean(-1)
        return small_control * standing * upright * dont_move
    return small_control * standing * upright * (5 * move + 1) / 6


@dataclasses.dataclass(frozen=True)
class LocomotionTask:
    """One H1 locomotion task and HumanoidBench's score normalisation."""

    name: str  # "walk" | "stand" | "run" | "stair" | "slide"
    move_speed: float
    random_return: float  # HumanoidBench's random-policy return (normalised score 0)
    target_return: float  # its success bar (normalised score 1)
    scene: str = ""  # terrain (`scenes.SCENES`), "" the bare floor
    climb: bool = False  # HumanoidBench's ClimbingUpwards reward and termination


# Random-policy returns: HumanoidBench's for walk / stand / run; for stair and slide the ones
# SimbaV2 published next to HumanoidBench's success bars (10 seeds x 10 episodes), which
# HumanoidBench's repository does not list.
TASKS = {
    "walk": LocomotionTask("walk", 1.0, 2.377, 700.0),
    "stand": LocomotionTask("stand", 0.0, 10.545, 800.0),
    "run": LocomotionTask("run", 5.0, 2.02, 700.0),
    "stair": LocomotionTask("stair", 1.0, 3.112, 700.0, scene="stair", climb=True),
    "slide": LocomotionTask("slide", 1.0, 3.191, 700.0, scene="slide", climb=True),
}


@flax.struct.dataclass
class State:
    """One env's state, in the fields `envs.mjx_backend` reads (Playground's State subset)."""

    data: Any  # mjx.Data
    obs: jax.Array  # (51,)
    reward: jax.Array  # ()
    done: jax.Array  # () float32, 1 when terminated


class H1Locomotion:
    """An unbatched H1 task with Playground's `reset(key)` / `step(state, action)` API."""

    episode_length = 1000
    observation_size = 51
    dt = N_SUBSTEPS * 0.002  # seconds per env step (50 Hz)

    def __init__(self, task: str, impl: str = "jax"):
        from mujoco import mjx

        if task not in TASKS:
            raise ValueError(f"unknown HumanoidBench h1 task {task!r}; expected one of "
                             f"{', '.join(TASKS)}")
        self.task = TASKS[task]
        self.mj_model = h1.h1_model(scene=self.task.scene)
        self.mjx_model = mjx.put_model(self.mj_model, impl=impl)
        self._impl = impl
        m = self.mj_model
        self.action_size = int(m.nu)
        self._ctrl_low = jnp.asarray(m.actuator_ctrlrange[:, 0], jnp.float32)
        self._ctrl_high = jnp.asarray(m.actuator_ctrlrange[:, 1], jnp.float32)
        self._qpos0 = jnp.asarray(m.key_qpos[0], jnp.float32)
        self._head = m.site("head").id
        self._torso = m.body("torso_link").id
        self._feet = (m.site("left_foot").id, m.site("right_foot").id)
        sensor = m.sensor("pelvis_subtreelinvel")
        self._vel = slice(int(m.sensor_adr[sensor.id]), int(m.sensor_adr[sensor.id]) + 3)

    @property
    def render_model(self):
        """The robot with its visual meshes (same qpos layout), for videos."""
        return h1.h1_model(visual=True, scene=self.task.scene)

    def readings(self, data: Any) -> Readings:
        return Readings(
            head_height=data.site_xpos[self._head, 2],
            torso_upright=data.xmat[self._torso, 2, 2],
            com_velocity=data.sensordata[self._vel],
            actuator_force=data.actuator_force,
            left_foot_height=data.site_xpos[self._feet[0], 2],
            right_foot_height=data.site_xpos[self._feet[1], 2],
        )

    def _obs(self, data: Any) -> jax.Array:
        return jnp.concatenate([data.qpos, data.qvel]).astype(jnp.float32)

    def reset(self, key: jax.Array) -> State:
        from mujoco import mjx

        qpos = self._qpos0 + jax.random.uniform(
            key, self._qpos0.shape, minval=-RESET_NOISE, maxval=RESET_NOISE)
        data = mjx.make_data(self.mjx_model, impl=self._impl).replace(qpos=qpos)
        data = mjx.forward(self.mjx_model, data)
        zero = jnp.zeros((), jnp.float32)
        return State(data=data, obs=self._obs(data), reward=zero, done=zero)

    def physics(self, data: Any, action: jax.Array) -> Any:
        """Scale `action` in [-1, 1] onto the control ranges and take the 10 substeps."""
        from mujoco import mjx

        ctrl = self._ctrl_low + (action + 1) / 2 * (self._ctrl_high - self._ctrl_low)
        data = data.replace(ctrl=ctrl)
        return jax.lax.fori_loop(0, N_SUBSTEPS, lambda _, d: mjx.step(self.mjx_model, d), data)

    def step(self, state: State, action: jax.Array) -> State:
        data = self.physics(state.data, action)
        readings = self.readings(data)
        r = reward(readings, self.task)
        if self.task.climb:
            done = readings.torso_upright < CLIMB_TERMINATION_UPRIGHT
        else:
            done = data.qpos[2] < TERMINATION_HEIGHT
        done = done.astype(jnp.float32)
        return State(data=data, obs=self._obs(data), reward=r.astype(jnp.float32), done=done)
