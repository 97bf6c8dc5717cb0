"""The one env API every backend is driven through: `EnvState`, `Env` and `TaskBackend`.

A backend (MJX, EnvPool) implements `TaskBackend` for one task and `E` parallel envs, in that task's
own observation / action sizes. `envs.multitask` stacks T of them into one `Env` whose `reset` and
`step` are pure functions over a fixed-shape `EnvState`, usable inside `jax.jit` / `lax.scan`.

Every `step` returns one real transition per env:
(obs_t, action_t, reward, final_obs = obs_{t+1}, terminated, truncated). Auto-reset happens inside
`step`; when an episode ends, `obs` is the first observation of the next episode and `final_obs`
keeps the true last observation, so replay stores `final_obs` as the next observation and
bootstraps from it unless `terminated`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.struct
import jax
import numpy as np


@flax.struct.dataclass
class EnvState:
    """The state of a batch of envs, and the transition that produced it."""

    obs: jax.Array  # (num_envs, obs_dim) float32, zero-padded to the largest obs dim
    reward: jax.Array  # (num_envs,) float32, reward of the step that produced this state
    terminated: jax.Array  # (num_envs,) bool, true termination: do not bootstrap
    truncated: jax.Array  # (num_envs,) bool, time limit: bootstrap from final_obs
    final_obs: jax.Array  # (num_envs, obs_dim) true last obs of this step (== obs unless it ended)
    task_id: jax.Array  # (num_envs,) int32
    episode_return: jax.Array  # (num_envs,) float32, running return, 0 after an episode end
    episode_length: jax.Array  # (num_envs,) int32, steps in the current episode
    episode_success: jax.Array  # (num_envs,) bool, success at any step of the current episode
    last_episode_return: jax.Array  # (num_envs,) float32, of the most recently finished episode
    last_episode_length: jax.Array  # (num_envs,) int32
    last_episode_success: jax.Array  # (num_envs,) bool
    backend: Any  # tuple with one backend state pytree per task


@flax.struct.dataclass
class BackendStep:
    """What a `TaskBackend.step` returns for its E envs, in the task's own sizes."""

    state: Any  # the backend's new state pytree
    obs: jax.Array  # (E, obs_dim_i) float32, first obs of the next episode where it ended
    final_obs: jax.Array  # (E, obs_dim_i) float32, true obs after the action
    reward: jax.Array  # (E,) float32
    terminated: jax.Array  # (E,) bool
    truncated: jax.Array  # (E,) bool
    success: jax.Array  # (E,) bool, the task's success flag at this step (False if none)


class Renderable(NamedTuple):
    """How to draw a task's physics on the host (for evaluation videos): a CPU `MjModel` with the
    task's qpos layout, the frames per second of one env step, and `qpos(backend_state)` ->
    (E, nq) from the backend's state pytree (traceable)."""

    model: Any  # mujoco.MjModel
    fps: float
    qpos: Callable[[Any], jax.Array]


class TaskBackend(NamedTuple):
    """One task with E envs on one backend (or `num_tasks` tasks of the same sizes with E envs
    each, task-major); pure `reset` / `step` in the task's own sizes.

    `reset(key) -> (state, obs)` with obs (E, obs_dim_i); `step(state, action) -> BackendStep` with
    action (E, action_dim_i) float32 in [-1, 1] (or (E,) int32 for discrete tasks).
    """

    reset: Callable[[jax.Array], tuple[Any, jax.Array]]
    step: Callable[[Any, jax.Array], BackendStep]
    num_envs: int  # all its envs: num_tasks * envs per task, task-major
    action_dim: int  # continuous action size, or number of discrete actions
    discrete: bool = False
    # per task served, how to draw it (its qpos reads that task's own E envs); empty where the
    # physics cannot be drawn (EnvPool's stays in the pool)
    renderables: tuple[Renderable | None, ...] = ()
    num_tasks: int = 1  # tasks served by one backend (same sizes; e.g. ShadowHand objects)


@dataclasses.dataclass(frozen=True)
class Env:
    """A batch of `num_envs = num_tasks * envs_per_task` envs, task-major (env i -> task i // E).

    Static description plus the two pure functions; never part of the jitted state.
    """

    reset: Callable[[jax.Array], EnvState]
    step: Callable[[EnvState, jax.Array], EnvState]
    num_envs: int
    envs_per_task: int
    num_tasks: int
    task_names: tuple[str, ...]
    backends: tuple[str, ...]  # backend per task: "mjx" | "envpool"
    obs_dim: int  # padded: the largest flat obs size over tasks
    obs_shape: tuple[int, ...]  # per-env obs shape, (obs_dim,) except for image tasks
    obs_dims: tuple[int, ...]  # true flat obs size per task
    action_dim: int  # padded: the largest action size over tasks
    action_dims: tuple[int, ...]  # true action size per task
    action_mask: np.ndarray  # (num_envs, action_dim) float32, 1 on a task's first A_i dims
    task_ids: np.ndarray  # (num_envs,) int32
    episode_length: tuple[int, ...]  # time limit per task, in env steps
    has_success: tuple[bool, ...]  # whether a task reports a success flag
    discrete: bool = False  # True for discrete-action (Atari) envs: step takes (num_envs,) int32
    obs_dtype: np.dtype = np.dtype(np.float32)  # uint8 for image (Atari) observations
    renderables: tuple[Renderable | None, ...] = ()  # per task, for videos (None: not drawable)
    # per task, the index of its backend in `EnvState.backend` (empty: task t is backend t)
    task_backend: tuple[int, ...] = ()
