"""HumanoidBench's H1 locomotion tasks (walk, stand, run, stair, slide, crawl, pole, hurdle,
maze, reach, sit_simple, sit_hard, balance_simple, balance_hard) as pure-JAX MJX envs.

Sit and balance add free bodies (the chair of sit_hard, the board, balance_hard's sphere) after
the robot in qpos / qvel, and observe them too; their rewards, terminations (balance's also by
contact) and sit_hard's random start are HumanoidBench's (`Sit`, `SitHard`, `BalanceBase`).

Faithful to HumanoidBench (`humanoid_bench/envs/basic_locomotion_envs.py`, `tasks.py`, `env.py`):
an action in [-1, 1]^19 is mapped linearly onto the position actuators' control ranges and held
for 10 physics steps of 0.002 s (50 Hz); the observation is qpos (26) + qvel (25); an episode ends
(terminated) when the pelvis height qpos[2] < 0.2 (walk, stand, run, hurdle, maze), < 0.5
(pole), or the torso's up-axis z component < 0.1 (stair, slide: HumanoidBench's
`ClimbingUpwards`), never for crawl, and is truncated by the backend
at 1000 steps; a reset is the `qpos0` keyframe plus U(-0.01, 0.01) on every qpos entry, zero
velocity. Rewards are read from the state after the step, as HumanoidBench does after
`do_simulation`. Stair and slide add their terrain, crawl / pole / hurdle / maze their obstacles
(`scenes.py`) around the robot. Pole, hurdle and maze discount the reward to a tenth while the
robot touches a pole, a side or back barrier, or a maze block; the maze's stage (checkpoints
passed) is part of the env state.

The known difference from HumanoidBench is contact: HumanoidBench collides every link's mesh.
Here walk / stand / run / stair / slide let only the feet touch (the foot capsules the floor, the
spheres at their ends the terrain), and crawl / pole / hurdle / maze add the Menagerie's body
primitives (`h1.BODY_PRIMITIVES`), which touch the floor and the scene but not each other. See
envs/README.md.
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
_CRAWL_HEIGHT = 0.8  # crawl: head and imu heights within 0.2 of this are best
CRAWL_PELVIS_QUAT = (0.75, 0.0, 0.65, 0.0)  # crawl: the pelvis pitched forward ~82 degrees
COLLISION_DISCOUNT = 0.1  # pole / hurdle / maze: the reward factor while touching a penalty
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
    imu: Any = None  # (3,) site "imu" (torso), world position
    pelvis_quat: Any = None  # (4,) body "pelvis" xquat
    pelvis_xy: Any = None  # (2,) body "pelvis" xpos x, y
    penalised_contact: Any = None  # () bool: the robot touches a penalised geom (PENALISED)
    pelvis_upright: Any = None  # body "pelvis" xmat zz
    left_hand: Any = None  # (3,) site "left_hand"
    robot_qvel: Any = None  # (25,) qvel
    root: Any = None  # (3,) qpos[:3], the pelvis's free-joint position
    chair_xy: Any = None  # (2,) body "chair" xpos x, y (sit; zeros elsewhere)
    forbidden_contact: Any = None  # () bool: balance's ending contacts (`balance_contact`)


def _small_control(readings: Readings) -> jax.Array:
    small_control = tolerance(readings.actuator_force, 0.0, 0.0, margin=10.0,
                              sigmoid="quadratic", value_at_margin=0.0).mean(-1)
    return (4 + small_control) / 5


def _move(velocity: jax.Array, speed: float) -> jax.Array:
    """HumanoidBench's (5 move + 1) / 6 of the forward COM speed against ``speed``."""
    move = tolerance(velocity, speed, jnp.inf, margin=speed, sigmoid="linear",
                     value_at_margin=0.0)
    return (5 * move + 1) / 6


def _stand(readings: Readings, upright_bound: float, height: float = _STAND_HEIGHT) -> jax.Array:
    standing = tolerance(readings.head_height, height, jnp.inf, margin=_STAND_HEIGHT / 4)
    upright = tolerance(readings.torso_upright, upright_bound, jnp.inf, margin=1.9,
                        sigmoid="linear", value_at_margin=0.0)
    return standing * upright


def _dont_move(readings: Readings) -> jax.Array:
    return tolerance(readings.com_velocity[..., :2], 0.0, 0.0, margin=2.0).mean(-1)


def _discount(readings: Readings) -> jax.Array:
    return jnp.where(readings.penalised_contact, COLLISION_DISCOUNT, 1.0)


def reward(readings: Readings, task: LocomotionTask) -> jax.Array:
    """HumanoidBench's reward of `task` (all but maze and reach, whose rewards are
    `maze_reward`'s and `reach_reward`'s): walk (1 m/s) / run (5 m/s), stand (move_speed 0),
    stair / slide (`ClimbingUpwards`: standing measured from each foot, a looser upright),
    crawl, pole, hurdle, sit (`Sit`: the pelvis 0.68-0.72 m high over the chair's seat, the
    head 0.35-0.45 m above the imu), balance (`BalanceBase`: standing 0.37 m higher, on the
    board)."""
    small_control = _small_control(readings)
    velocity = readings.com_velocity[..., 0]
    if task.kind == "climb":
        # head 1.2 m above each foot (margin 0.45), torso z-axis z >= 0.5 (linear, margin 1.9)
        standing = (tolerance(readings.head_height - readings.left_foot_height, 1.2, jnp.inf,
                              margin=0.45)
                    * tolerance(readings.head_height - readings.right_foot_height, 1.2, jnp.inf,
                                margin=0.45))
        upright = tolerance(readings.torso_upright, 0.5, jnp.inf, margin=1.9, sigmoid="linear",
                            value_at_margin=0.0)
        return standing * upright * small_control * _move(velocity, task.move_speed)
    if task.kind == "crawl":
        low, high = _CRAWL_HEIGHT - 0.2, _CRAWL_HEIGHT + 0.2
        crawling_head = tolerance(readings.head_height, low, high, margin=1.0)
        crawling = tolerance(readings.imu[..., 2], low, high, margin=1.0)
        quat_error = jnp.linalg.norm(readings.pelvis_quat - jnp.asarray(CRAWL_PELVIS_QUAT), axis=-1)
        pose = tolerance(quat_error, 0.0, 0.0, margin=1.0)
        in_tunnel = tolerance(readings.imu[..., 1], -1.0, 1.0)
        return (0.1 * small_control + 0.25 * jnp.minimum(crawling, crawling_head)
                + 0.4 * _move(velocity, task.move_speed) + 0.25 * pose) * in_tunnel
    if task.kind == "pole":
        return (0.5 * small_control * _stand(readings, 0.9)
                + 0.5 * _move(velocity, task.move_speed)) * _discount(readings)
    if task.kind == "hurdle":
        return (small_control * _stand(readings, 0.8) * _move(velocity, task.move_speed)
                * _discount(readings))
    if task.kind == "sit":
        root, chair = readings.root, readings.chair_xy
        sitting = tolerance(root[..., 2], 0.68, 0.72, margin=0.2)
        on_chair = (tolerance(root[..., 0] - chair[..., 0], -0.19, 0.19, margin=0.2)
                    * tolerance(root[..., 1] - chair[..., 1], 0.0, 0.0, margin=0.1))
        posture = tolerance(readings.head_height - readings.imu[..., 2], 0.35, 0.45, margin=0.3)
        upright = tolerance(readings.torso_upright, 0.95, jnp.inf, margin=0.9, sigmoid="linear",
                            value_at_margin=0.0)
        sit = (0.5 * sitting + 0.5 * on_chair) * upright * posture
        return small_control * sit * _dont_move(readings)
    if task.kind == "balance":
        stand = _stand(readings, 0.9, height=_STAND_HEIGHT + BOARD_HEIGHT)
        return small_control * stand * _dont_move(readings)
    if task.kind in ("maze", "reach"):
        raise ValueError(f"the {task.kind} reward depends on the env state: use {task.kind}_reward")
    stand = _stand(readings, 0.9)
    if task.move_speed == 0:
        return small_control * stand * _dont_move(readings)
    return small_control * stand * _move(velocity, task.move_speed)


BOARD_HEIGHT = 0.37  # balance: the board lifts the robot (and the `standing` bound) by this
# sit_hard: the robot starts at x ~ U(0.2, 0.4), y ~ U(-0.15, 0.15), turned by U(-1.8, 1.8) rad
SIT_HARD_START = ((0.2, 0.4), (-0.15, 0.15), (-1.8, 1.8))


def balance_contact(geom: jax.Array, active: jax.Array, floor: jax.Array, board: jax.Array,
                    pivot: jax.Array) -> jax.Array:
    """HumanoidBench's balance termination by contact: the sphere touches anything but the
    floor or the board, or the floor touches anything but the sphere. ``geom`` (n, 2) are the
    contacts' geom pairs, ``active`` (n,) which are in contact; ``floor`` / ``board`` /
    ``pivot`` (ngeom,) bool masks."""
    def has(mask):
        return mask[geom].any(-1)

    stray_pivot = has(pivot) & ~has(floor) & ~has(board)
    stray_floor = has(floor) & ~has(pivot)
    return (active & (stray_pivot | stray_floor)).any(-1)


# Reach (HumanoidBench's `Reach`): a target for the left hand, drawn at reset and observed.
REACH_LOW, REACH_HIGH = (-2.0, -2.0, 0.2), (2.0, 2.0, 2.0)


def reach_reward(readings: Readings, goal: jax.Array) -> jax.Array:
    """HumanoidBench's reach reward: 5 x the pelvis's z-axis z (healthy), minus 1e-4 x the
    squared joint speeds, +5 with the left hand within 1 m of the goal, +10 within 5 cm."""
    distance = jnp.linalg.norm(readings.left_hand - goal, axis=-1)
    motion = jnp.sum(readings.robot_qvel**2, axis=-1)
    return (5.0 * readings.pelvis_upright - 1e-4 * motion + jnp.where(distance < 1.0, 5.0, 0.0)
            + jnp.where(distance < 0.05, 10.0, 0.0))


# The maze (HumanoidBench's `Maze`): checkpoints to pass in order, and the direction to move in
# at each stage (stage k >= 1: the turn taken at checkpoint k - 1; stage 0 the start's).
MAZE_DIRECTIONS = ((1.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 0.0), (0.0, 1.0))
MAZE_SPEED = 2.0
MAZE_REACHED = 0.4  # the pelvis within this of the stage's checkpoint moves to the next stage


def maze_reward(readings: Readings, stage: jax.Array) -> tuple[jax.Array, jax.Array]:
    """HumanoidBench's maze reward and the next stage, from the stage before the step: the
    stage advances when the pelvis is within 0.4 m (xy) of its checkpoint, paying 100 x the new
    stage once; the move reward follows the new stage's direction at 2 m/s (1 at the last
    stage), the proximity reward the distance of the torso's imu to the new stage's
    checkpoint; a touched block discounts all but the stage bonus."""
    from envs.humanoidbench.scenes import MAZE_CHECKPOINTS

    checkpoints = jnp.asarray(MAZE_CHECKPOINTS, jnp.float32)
    last = len(MAZE_CHECKPOINTS) - 1
    reached = jnp.linalg.norm(readings.pelvis_xy - checkpoints[stage], axis=-1) < MAZE_REACHED
    new_stage = jnp.where(reached, jnp.minimum(stage + 1, last), stage)
    bonus = jnp.where(new_stage > stage, 100.0 * new_stage, 0.0)
    direction = jnp.asarray(MAZE_DIRECTIONS, jnp.float32)[new_stage]
    velocity = readings.com_velocity[..., :2]
    move = (tolerance(velocity[..., 0] - direction[..., 0] * MAZE_SPEED, 0.0, 0.0, margin=1.0,
                      sigmoid="linear", value_at_margin=0.0)
            * tolerance(velocity[..., 1] - direction[..., 1] * MAZE_SPEED, 0.0, 0.0, margin=1.0,
                        sigmoid="linear", value_at_margin=0.0))
    move = (5 * jnp.where(new_stage == last, 1.0, move) + 1) / 6
    proximity = tolerance(jnp.linalg.norm(checkpoints[new_stage] - readings.imu[..., :2], axis=-1),
                          0.0, 0.0, margin=1.0)
    base = (0.2 * _stand(readings, 0.9) * _small_control(readings) + 0.4 * move
            + 0.4 * proximity)
    return base * _discount(readings) + bonus, new_stage


@dataclasses.dataclass(frozen=True)
class LocomotionTask:
    """One H1 locomotion task and HumanoidBench's score normalisation."""

    name: str
    move_speed: float
    random_return: float  # HumanoidBench's random-policy return (normalised score 0)
    target_return: float  # its success bar (normalised score 1)
    scene: str = ""  # terrain or obstacles (`scenes.SCENES`), "" the bare floor
    # the reward: basic (walk / stand / run), climb, crawl, pole, hurdle, maze, reach, sit,
    # balance
    kind: str = "basic"
    whole_body: bool = False  # the body's primitives touch the floor and the scene
    # the episode ends when this reading drops below the threshold ("" never)
    end_when: tuple[str, float] = ("pelvis_height", TERMINATION_HEIGHT)
    end_on_contact: bool = False  # also on balance's forbidden contacts (`balance_contact`)
    random_start: bool = False  # sit_hard's reset: the robot placed and turned at random


# Random-policy returns (10 seeds x 10 episodes) as SimbaV2 published them next to
# HumanoidBench's success bars (HumanoidBench's repository lists only the bars); walk / stand /
# run's are HumanoidBench's own.
_CLIMB_END = ("torso_upright", CLIMB_TERMINATION_UPRIGHT)
TASKS = {
    "walk": LocomotionTask("walk", 1.0, 2.377, 700.0),
    "stand": LocomotionTask("stand", 0.0, 10.545, 800.0),
    "run": LocomotionTask("run", 5.0, 2.02, 700.0),
    "stair": LocomotionTask("stair", 1.0, 3.112, 700.0, scene="stair", kind="climb",
                            end_when=_CLIMB_END),
    "slide": LocomotionTask("slide", 1.0, 3.191, 700.0, scene="slide", kind="climb",
                            end_when=_CLIMB_END),
    "crawl": LocomotionTask("crawl", 1.0, 272.658, 700.0, scene="crawl", kind="crawl",
                            whole_body=True, end_when=("", 0.0)),
    "pole": LocomotionTask("pole", 0.5, 20.09, 700.0, scene="pole", kind="pole",
                           whole_body=True, end_when=("pelvis_height", 0.5)),
    "hurdle": LocomotionTask("hurdle", 5.0, 2.214, 700.0, scene="hurdle", kind="hurdle",
                             whole_body=True),
    "maze": LocomotionTask("maze", MAZE_SPEED, 106.441, 1200.0, scene="maze", kind="maze",
                           whole_body=True),
    "reach": LocomotionTask("reach", 0.0, 260.302, 12000.0, kind="reach", whole_body=True,
                            end_when=("", 0.0)),
    "sit_simple": LocomotionTask("sit_simple", 0.0, 9.393, 750.0, scene="sit_simple",
                                 kind="sit", whole_body=True, end_when=("pelvis_height", 0.5)),
    "sit_hard": LocomotionTask("sit_hard", 0.0, 2.448, 750.0, scene="sit_hard", kind="sit",
                               whole_body=True, end_when=("pelvis_height", 0.5),
                               random_start=True),
    "balance_simple": LocomotionTask("balance_simple", 0.0, 9.391, 800.0,
                                     scene="balance_simple", kind="balance", whole_body=True,
                                     end_when=("pelvis_height", 0.8), end_on_contact=True),
    "balance_hard": LocomotionTask("balance_hard", 0.0, 9.044, 800.0, scene="balance_hard",
                                   kind="balance", whole_body=True,
                                   end_when=("pelvis_height", 0.8), end_on_contact=True),
}


@flax.struct.dataclass
class State:
    """One env's state, in the fields `envs.mjx_backend` reads (Playground's State subset)."""

    data: Any  # mjx.Data
    obs: jax.Array  # (51,)
    reward: jax.Array  # ()
    done: jax.Array  # () float32, 1 when terminated
    stage: jax.Array  # () int32: the maze's stage (checkpoints passed); 0 in the other tasks
    goal: jax.Array  # (3,) reach's target for the left hand; zeros in the other tasks


class H1Locomotion:
    """An unbatched H1 task with Playground's `reset(key)` / `step(state, action)` API."""

    episode_length = 1000
    dt = N_SUBSTEPS * 0.002  # seconds per env step (50 Hz)

    def __init__(self, task: str, impl: str = "jax", whole_body: bool | None = None):
        """``whole_body``: the model's contact (``h1.build_spec``); None: the task's own."""
        from mujoco import mjx

        if task not in TASKS:
            raise ValueError(f"unknown HumanoidBench h1 task {task!r}; expected one of "
                             f"{', '.join(TASKS)}")
        self.task = TASKS[task]
        self.whole_body = self.task.whole_body if whole_body is None else whole_body
        self.mj_model = h1.h1_model(scene=self.task.scene, whole_body=self.whole_body)
        self.mjx_model = mjx.put_model(self.mj_model, impl=impl)
        self._impl = impl
        m = self.mj_model
        self.action_size = int(m.nu)
        # qpos + qvel (51, and the chair's or the board's and sphere's free joints: 64, 77);
        # reach adds the left hand's position and the goal (57)
        self.observation_size = m.nq + m.nv + (6 if self.task.kind == "reach" else 0)
        self._ctrl_low = jnp.asarray(m.actuator_ctrlrange[:, 0], jnp.float32)
        self._ctrl_high = jnp.asarray(m.actuator_ctrlrange[:, 1], jnp.float32)
        self._qpos0 = jnp.asarray(m.key_qpos[0], jnp.float32)
        self._head = m.site("head").id
        self._torso = m.body("torso_link").id
        self._feet = (m.site("left_foot").id, m.site("right_foot").id)
        self._imu = m.site("imu").id
        self._pelvis = m.body("pelvis").id
        self._left_hand = m.site("left_hand").id
        sensor = m.sensor("pelvis_subtreelinvel")
        self._vel = slice(int(m.sensor_adr[sensor.id]), int(m.sensor_adr[sensor.id]) + 3)
        self._penalised = penalised_geoms(m, self.task.scene)
        names = [m.geom(i).name for i in range(m.ngeom)]
        self._balance_masks = tuple(np.array([n == name for n in names]) for name in (
            "floor", "stand_board_collision", "pivot_sphere_collision"))
        self._chair = m.body("chair").id if self.task.kind == "sit" else None

    @property
    def render_model(self):
        """The robot with its visual meshes (same qpos layout), for videos."""
        return h1.h1_model(visual=True, scene=self.task.scene)

    def readings(self, data: Any) -> Readings:
        if self._penalised.any():  # any active contact (dist < 0) with a penalised geom
            contact = data._impl.contact
            touching = jnp.asarray(self._penalised)[contact.geom].any(-1) & (contact.dist < 0)
            penalised = touching.any()
        else:
            penalised = jnp.zeros((), bool)
        if self.task.end_on_contact:
            contact = data._impl.contact
            forbidden = balance_contact(contact.geom, contact.dist < 0,
                                        *(jnp.asarray(x) for x in self._balance_masks))
        else:
            forbidden = jnp.zeros((), bool)
        return Readings(
            head_height=data.site_xpos[self._head, 2],
            torso_upright=data.xmat[self._torso, 2, 2],
            com_velocity=data.sensordata[self._vel],
            actuator_force=data.actuator_force,
            left_foot_height=data.site_xpos[self._feet[0], 2],
            right_foot_height=data.site_xpos[self._feet[1], 2],
            imu=data.site_xpos[self._imu],
            pelvis_quat=data.xquat[self._pelvis],
            pelvis_xy=data.xpos[self._pelvis, :2],
            penalised_contact=penalised,
            pelvis_upright=data.xmat[self._pelvis, 2, 2],
            left_hand=data.site_xpos[self._left_hand],
            robot_qvel=data.qvel[:25],
            root=data.qpos[:3],
            chair_xy=(data.xpos[self._chair, :2] if self._chair is not None else jnp.zeros(2)),
            forbidden_contact=forbidden,
        )

    def _obs(self, data: Any, goal: jax.Array) -> jax.Array:
        parts = [data.qpos, data.qvel]
        if self.task.kind == "reach":
            parts += [data.site_xpos[self._left_hand], goal]
        return jnp.concatenate(parts).astype(jnp.float32)

    def reset(self, key: jax.Array) -> State:
        from mujoco import mjx

        reach = self.task.kind == "reach"
        # reach and sit_hard split the key for their goal or start; the other tasks draw their
        # noise from `key` itself
        noise_key, goal_key = (jax.random.split(key) if reach or self.task.random_start
                               else (key, key))
        qpos = self._qpos0 + jax.random.uniform(
            noise_key, self._qpos0.shape, minval=-RESET_NOISE, maxval=RESET_NOISE)
        if self.task.random_start:  # HumanoidBench's SitHard.reset_model, after the noise
            low, high = np.array(SIT_HARD_START).T
            x, y, yaw = jax.random.uniform(goal_key, (3,), minval=low, maxval=high)
            qpos = qpos.at[:2].set(jnp.stack([x, y])).at[3:7].set(
                jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)]))
        data = mjx.make_data(self.mjx_model, impl=self._impl).replace(qpos=qpos)
        data = mjx.forward(self.mjx_model, data)
        goal = (jax.random.uniform(goal_key, (3,), minval=jnp.asarray(REACH_LOW),
                                   maxval=jnp.asarray(REACH_HIGH))
                if reach else jnp.zeros(3))
        zero = jnp.zeros((), jnp.float32)
        return State(data=data, obs=self._obs(data, goal), reward=zero, done=zero,
                     stage=jnp.zeros((), jnp.int32), goal=goal)

    def physics(self, data: Any, action: jax.Array) -> Any:
        """Scale `action` in [-1, 1] onto the control ranges and take the 10 substeps."""
        from mujoco import mjx

        ctrl = self._ctrl_low + (action + 1) / 2 * (self._ctrl_high - self._ctrl_low)
        data = data.replace(ctrl=ctrl)
        return jax.lax.fori_loop(0, N_SUBSTEPS, lambda _, d: mjx.step(self.mjx_model, d), data)

    def step(self, state: State, action: jax.Array) -> State:
        data = self.physics(state.data, action)
        readings = self.readings(data)
        if self.task.kind == "maze":
            r, stage = maze_reward(readings, state.stage)
        elif self.task.kind == "reach":
            r, stage = reach_reward(readings, state.goal), state.stage
        else:
            r, stage = reward(readings, self.task), state.stage
        reading, threshold = self.task.end_when
        if reading == "torso_upright":
            done = readings.torso_upright < threshold
        elif reading == "pelvis_height":
            done = data.qpos[2] < threshold
        else:
            done = jnp.zeros((), bool)
        done = done | readings.forbidden_contact
        return State(data=data, obs=self._obs(data, state.goal), reward=r.astype(jnp.float32),
                     done=done.astype(jnp.float32), stage=stage, goal=state.goal)


def penalised_geoms(m, scene: str) -> np.ndarray:
    """(ngeom,) bool: the geoms whose contact discounts the task's reward (`scenes.PENALISED`)."""
    from envs.humanoidbench.scenes import PENALISED

    marker = PENALISED.get(scene)
    return np.array([marker is not None and marker in m.geom(i).name for i in range(m.ngeom)])
