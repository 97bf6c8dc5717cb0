"""Frame-efficient, device-resident replay with n-step windows for discrete (Atari) tasks.

The discrete BRC learner (Nauman et al., "Bigger, Regularized, Categorical: High-Capacity Value
Functions are Efficient Multi-Task Learners", https://arxiv.org/abs/2505.23150, built on
DrQ(epsilon)) trains on n-step windows of frame-stacked observations inside the one-jit training
loop. Storing every ``(stack, 84, 84)`` observation, twice (obs and next obs), would cost 8x the
memory of its frames, so this buffer stores each frame ONCE and rebuilds the stacks when sampled.
It follows the Flashbax style of :mod:`brc_mjx.replay`: a frozen pytree
(:class:`FrameReplayState`) changed only by pure ``init`` / ``begin`` / ``add`` / ``sample``.

* **One ring per env, time-major.** Leaves are ``(S, N, ...)`` with ``N = num_tasks *
  envs_per_task`` envs in task-major order (env ``i`` belongs to task ``i // envs_per_task``) and
  ``S = capacity_per_task // envs_per_task`` slots per env. Axis 1 is the env axis, so the sharding
  rule that splits replay leaves along axis 1 splits envs across devices, and each env's frames
  stay in time order in its own ring.
* **A slot is one observation.** It holds the observation's newest frame and the metadata of the
  transition that starts there (action, raw reward, ``terminated`` / ``truncated`` kept apart).
  ``first`` marks an episode's first observation; ``acted`` marks the slots where a transition
  starts (not an episode's final observation, nor the newest one, which is not acted on yet).
* **Stacks follow EnvPool.** An episode's first stack repeats its first frame; each step shifts in
  one new frame (newest last). The stack of observation ``k`` is therefore frames ``k-stack+1 ..
  k`` of its episode, earlier indices replaced by the first frame: :func:`stacks` walks back at most
  ``stack - 1`` slots and stops at a ``first`` slot.
* **Episode ends write two slots.** ``add`` writes the true final observation (a time-limit
  truncation bootstraps from it) and, where the episode ended, also the first observation of the
  next one. The second write of envs that did not end goes to the out-of-range slot ``S`` with
  ``mode="drop"``, so no slot is touched that should not be; the storage is never rolled.
* **Flat observations** ``(d,)`` (the toy env) are stored as one frame per slot (stack 1).

``sample`` draws a task uniformly, an env of that task uniformly and a written slot of that env
uniformly, so every task gets an equal expected share of the batch however unevenly the rings have
filled. Windows that are not fully written yet or whose stack reaches into overwritten slots stay
in the batch with ``valid=False`` (the learner weights them 0), which keeps the batch shape static.
Rewards are stored raw; the learner rescales them per task.

Shape legend used in comments: ``S`` = slots per env, ``N`` = num_envs, ``K`` = stack length,
``F`` = frame shape, ``B`` = sample batch size.
"""

from __future__ import annotations

import math
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class FrameReplayState:
    """One ring of single frames per env, time-major.

    Attributes:
        frames: ``(S, N, *F)`` in the obs dtype: the newest frame of the slot's observation.
        action: ``(S, N)`` int32 action taken at the slot's observation.
        reward: ``(S, N)`` float32 raw reward of that transition.
        terminated: ``(S, N)`` bool, that transition ended its episode by termination.
        truncated: ``(S, N)`` bool, that transition ended its episode by a time limit (still
            bootstraps).
        first: ``(S, N)`` bool, the slot's observation is an episode's first.
        acted: ``(S, N)`` bool, a transition starts at the slot (False for an episode's final
            observation and for the newest, not yet acted-on, observation).
        head: ``(N,)`` int32 next slot to write, in ``[0, S)``.
        count: ``(N,)`` int32 slots written so far, capped at ``S``.
        obs_shape: Static ``(K, *F)`` for stacked observations, ``(d,)`` for flat ones.
        num_tasks: Static number of tasks; envs are task-major.
    """

    frames: jax.Array
    action: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    first: jax.Array
    acted: jax.Array
    head: jax.Array
    count: jax.Array
    obs_shape: tuple[int, ...] = flax.struct.field(pytree_node=False)
    num_tasks: int = flax.struct.field(pytree_node=False)

    @property
    def num_envs(self) -> int:
        """Number of env rings ``N`` (static)."""
        return self.action.shape[1]

    @property
    def capacity_per_env(self) -> int:
        """Slots per env ring ``S`` (static)."""
        return self.action.shape[0]

    @property
    def envs_per_task(self) -> int:
        """Envs of each task (static)."""
        return self.num_envs // self.num_tasks

    @property
    def stack(self) -> int:
        """Frames per observation ``K`` (static; 1 for flat observations)."""
        return stack_and_frame(self.obs_shape)[0]


@flax.struct.dataclass
class NStepBatch:
    """A batch of n-step windows.

    Attributes:
        obs: ``(B, *obs_shape)`` in the stored dtype (uint8 for Atari; the learner scales it).
        action: ``(B,)`` int32 action at ``obs``.
        reward: ``(B,)`` float32 ``sum_{j < n'} gamma^j r_{k+j}`` of raw rewards.
        discount: ``(B,)`` float32 ``gamma^{n'}``, or 0 when the window ended by termination.
        next_obs: ``(B, *obs_shape)`` the bootstrap observation, ``n'`` steps after ``obs`` (the
            true final observation when the window ended by truncation).
        task_id: ``(B,)`` int32 task index in ``[0, num_tasks)``.
        valid: ``(B,)`` bool, the sample is a real, fully written n-step window.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    next_obs: jax.Array
    task_id: jax.Array
    valid: jax.Array


def stack_and_frame(obs_shape: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
    """``(K, F)``: a flat ``(d,)`` observation is one frame; otherwise the leading axis stacks."""
    if len(obs_shape) == 1:
        return 1, tuple(obs_shape)
    return obs_shape[0], tuple(obs_shape[1:])


def init(
    obs_shape: tuple[int, ...],
    obs_dtype: Any,
    num_tasks: int,
    envs_per_task: int,
    capacity_per_task: int,
) -> FrameReplayState:
    """Allocates an empty buffer.

    Args:
        obs_shape: One env's observation shape, ``(K, *F)`` stacked (EnvPool Atari:
            ``(4, 84, 84)``) or ``(d,)`` flat.
        obs_dtype: Observation dtype, also the storage dtype of the frames.
        num_tasks: Number of tasks.
        envs_per_task: Envs of each task; ``N = num_tasks * envs_per_task``.
        capacity_per_task: Frames kept per task, split evenly over its envs:
            ``S = capacity_per_task // envs_per_task`` slots per env (a remainder is unused).

    Returns:
        An empty ``FrameReplayState`` (zeros, ``head = count = 0``).

    Raises:
        ValueError: On an empty obs shape, sizes below 1, or fewer than 2 slots per env.
    """
    obs_shape = tuple(int(d) for d in obs_shape)
    if not obs_shape or min(obs_shape) < 1:
        raise ValueError(f"discrete replay: obs_shape {obs_shape} must be non-empty and positive")
    if num_tasks < 1:
        raise ValueError(f"discrete replay: num_tasks ({num_tasks}) must be >= 1")
    if envs_per_task < 1:
        raise ValueError(f"discrete replay: envs_per_task ({envs_per_task}) must be >= 1")
    slots = capacity_per_task // envs_per_task
    if slots < 2:
        raise ValueError(
            f"discrete replay: capacity_per_task ({capacity_per_task}) gives {slots} slots per env "
            f"over {envs_per_task} envs per task; need >= 2"
        )
    _, frame_shape = stack_and_frame(obs_shape)
    num_envs = num_tasks * envs_per_task
    flags = jnp.zeros((slots, num_envs), jnp.bool_)  # (S, N)
    return FrameReplayState(
        frames=jnp.zeros((slots, num_envs, *frame_shape), obs_dtype),
        action=jnp.zeros((slots, num_envs), jnp.int32),
        reward=jnp.zeros((slots, num_envs), jnp.float32),
        terminated=flags,
        truncated=flags,
        first=flags,
        acted=flags,
        head=jnp.zeros((num_envs,), jnp.int32),
        count=jnp.zeros((num_envs,), jnp.int32),
        obs_shape=obs_shape,
        num_tasks=num_tasks,
    )


def memory_bytes(
    obs_shape: tuple[int, ...],
    obs_dtype: Any,
    num_tasks: int,
    envs_per_task: int,
    capacity_per_task: int,
) -> int:
    """Bytes the buffer from :func:`init` with these arguments would occupy, without allocating.

    Args:
        obs_shape: As for :func:`init`.
        obs_dtype: As for :func:`init`.
        num_tasks: As for :func:`init`.
        envs_per_task: As for :func:`init`.
        capacity_per_task: As for :func:`init`.

    Returns:
        Total bytes over all leaves (unsharded).
    """
    shapes = jax.eval_shape(
        lambda: init(obs_shape, obs_dtype, num_tasks, envs_per_task, capacity_per_task)
    )
    return sum(
        math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(shapes)
    )


def _newest_frame(state: FrameReplayState, obs: jax.Array, name: str) -> jax.Array:
    """``(N, *F)`` newest frame of each env's observation ``obs`` ``(N, *obs_shape)``."""
    expected = (state.num_envs, *state.obs_shape)
    if tuple(obs.shape) != expected:
        raise ValueError(
            f"discrete replay: {name} has shape {tuple(obs.shape)}, expected {expected}"
        )
    frame = obs if len(state.obs_shape) == 1 else obs[:, -1]
    return frame.astype(state.frames.dtype)


def _write(column: jax.Array, slot: jax.Array, value: jax.Array) -> jax.Array:
    """Sets ``column[slot[i], i] = value[i]`` for every env ``i``; slot ``S`` writes nothing.

    One scatter whose batching dimension is the env axis 1 (the sharded one) of ``column``
    ``(S, N, ...)``: with the envs split over devices it needs no communication, and unlike
    ``vmap`` over axis 1 it does not transpose (copy) the whole buffer.
    """
    num_envs = column.shape[1]
    value = jnp.broadcast_to(value, (num_envs, *column.shape[2:])).astype(column.dtype)  # (N, ...)
    dims = jax.lax.ScatterDimensionNumbers(
        update_window_dims=tuple(range(1, column.ndim - 1)),
        inserted_window_dims=(0,),
        scatter_dims_to_operand_dims=(0,),
        operand_batching_dims=(1,),
        scatter_indices_batching_dims=(0,),
    )
    return jax.lax.scatter(
        column,
        slot.astype(jnp.int32)[:, None],  # (N, 1)
        value,
        dims,
        unique_indices=True,
        mode=jax.lax.GatherScatterMode.FILL_OR_DROP,
    )


def _write_observation(
    state: FrameReplayState, slot: jax.Array, frame: jax.Array, first: jax.Array | bool
) -> FrameReplayState:
    """Writes a fresh observation (its newest frame, not acted on yet) at ``slot`` ``(N,)``."""
    return state.replace(
        frames=_write(state.frames, slot, frame),
        action=_write(state.action, slot, 0),
        reward=_write(state.reward, slot, 0.0),
        terminated=_write(state.terminated, slot, False),
        truncated=_write(state.truncated, slot, False),
        first=_write(state.first, slot, first),
        acted=_write(state.acted, slot, False),
    )


def begin(state: FrameReplayState, obs: jax.Array) -> FrameReplayState:
    """Writes the first observation of every env's new episode (after a reset of all envs).

    Call it once after the envs are reset, and again whenever the loop resets all of them (for
    instance on resume); the slot that was newest before stays ``acted=False``, so no window
    crosses the cut.

    Args:
        state: The buffer (donate it to the enclosing jit so the writes happen in place).
        obs: ``(N, *obs_shape)`` reset observations.

    Returns:
        The buffer with each env's newest frame at its head (``first=True``) and ``head + 1``.
    """
    frame = _newest_frame(state, obs, "obs")  # (N, *F)
    state = _write_observation(state, state.head, frame, True)
    slots = state.capacity_per_env
    return state.replace(head=(state.head + 1) % slots, count=jnp.minimum(state.count + 1, slots))


def add(
    state: FrameReplayState,
    action: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    final_obs: jax.Array,
    next_obs: jax.Array,
) -> FrameReplayState:
    """Records one step of every env.

    The transition's metadata goes to the slot of the current observation (``head - 1``, now
    ``acted``), the newest frame of ``final_obs`` to ``head``, and, for envs whose episode ended,
    the newest frame of ``next_obs`` (the next episode's first observation) to ``head + 1`` with
    ``first=True``. ``head`` advances by 1, or by 2 where the episode ended.

    Args:
        state: The buffer (donate it to the enclosing jit so the writes happen in place).
        action: ``(N,)`` int32 actions taken.
        reward: ``(N,)`` float32 raw rewards.
        terminated: ``(N,)`` bool, the episode ended in a terminal state.
        truncated: ``(N,)`` bool, a time limit ended the episode.
        final_obs: ``(N, *obs_shape)`` true next observation (the final one where the episode
            ended).
        next_obs: ``(N, *obs_shape)`` observation after auto-reset; equal to ``final_obs`` where
            the episode did not end.

    Returns:
        The updated buffer.

    Raises:
        ValueError: At trace time, if an observation's shape is not ``(N, *obs_shape)``.
    """
    slots = state.capacity_per_env
    final_frame = _newest_frame(state, final_obs, "final_obs")  # (N, *F)
    reset_frame = _newest_frame(state, next_obs, "next_obs")  # (N, *F)
    ended = jnp.logical_or(terminated, truncated)  # (N,)

    current = (state.head - 1) % slots  # (N,) slot of the observation acted on
    state = state.replace(
        action=_write(state.action, current, action),
        reward=_write(state.reward, current, reward),
        terminated=_write(state.terminated, current, terminated),
        truncated=_write(state.truncated, current, truncated),
        acted=_write(state.acted, current, True),
    )
    state = _write_observation(state, state.head, final_frame, False)
    # Envs whose episode did not end write their reset frame to slot S, which is dropped.
    reset_slot = jnp.where(ended, (state.head + 1) % slots, slots)  # (N,)
    state = _write_observation(state, reset_slot, reset_frame, True)
    written = 1 + ended.astype(jnp.int32)  # (N,)
    return state.replace(
        head=(state.head + written) % slots, count=jnp.minimum(state.count + written, slots)
    )


def _walk_back(state: FrameReplayState, slot: jax.Array, env: jax.Array):
    """Slots of the frames of each ``(slot, env)`` observation's stack, and how far back they go.

    Returns:
        ``(B, K)`` ring slots, oldest frame first, and ``(B,)`` int32 number of slots walked back
        (``<= K - 1``; fewer where a ``first`` slot stopped the walk).
    """
    slots = state.capacity_per_env
    stopped = state.first[slot, env]  # (B,)
    cursor, walked = slot, jnp.zeros_like(slot)
    newest_first = [slot]
    for _ in range(state.stack - 1):
        step = jnp.logical_not(stopped)
        cursor = jnp.where(step, (cursor - 1) % slots, cursor)
        walked = walked + step.astype(walked.dtype)
        stopped = jnp.logical_or(stopped, state.first[cursor, env])
        newest_first.append(cursor)
    return jnp.stack(newest_first[::-1], axis=1), walked


def stacks(state: FrameReplayState, slot: jax.Array, env: jax.Array) -> jax.Array:
    """Rebuilds the observations at ``(slot, env)`` pairs from their frames.

    Walks back at most ``K - 1`` slots of the env's ring, stopping at an episode's first slot
    whose frame then fills the older positions (EnvPool's reset stack). The result is only
    meaningful where the walk stays within written, not yet overwritten slots (see
    :func:`sample`'s ``valid``).

    Args:
        state: The buffer.
        slot: ``(B,)`` int32 ring slots.
        env: ``(B,)`` int32 env indices.

    Returns:
        ``(B, *obs_shape)`` observations in the stored dtype.
    """
    if len(state.obs_shape) == 1:
        return state.frames[slot, env]  # (B, d)
    frame_slots, _ = _walk_back(state, slot, env)  # (B, K)
    return state.frames[frame_slots, env[:, None]]  # (B, K, *F)


def sample(
    state: FrameReplayState,
    key: jax.Array,
    batch_size: int,
    n_step: int,
    gamma: float | jax.Array,
) -> NStepBatch:
    """Samples ``batch_size`` n-step windows, with replacement.

    The task is uniform in ``[0, num_tasks)``, the env uniform among the task's envs and the
    start slot ``k`` uniform among the env's written slots. The window covers the transitions at
    ``k .. k + n' - 1``, where ``n' = n_step`` or fewer: it stops right after the first transition
    that terminated or truncated. A sample is ``valid`` iff every slot of the window is acted on,
    slot ``k + n'`` is written (at least ``n'`` slots were written after ``k``) and the stack of
    ``k`` does not reach back into overwritten slots.

    Args:
        state: The buffer.
        key: PRNG key.
        batch_size: Number of windows ``B`` (static under jit).
        n_step: Longest window ``n`` (static under jit, >= 1).
        gamma: Discount factor (may be traced).

    Returns:
        An ``NStepBatch`` with leaves ``(B, ...)``.

    Raises:
        ValueError: If ``n_step`` is below 1.
    """
    if n_step < 1:
        raise ValueError(f"discrete replay: n_step ({n_step}) must be >= 1")
    slots = state.capacity_per_env
    key_task, key_env, key_slot = jax.random.split(key, 3)
    task = jax.random.randint(key_task, (batch_size,), 0, state.num_tasks)  # (B,)
    env = task * state.envs_per_task + jax.random.randint(
        key_env, (batch_size,), 0, state.envs_per_task
    )  # (B,)
    count = state.count[env]  # (B,)
    start = jax.random.randint(key_slot, (batch_size,), 0, count)  # (B,)

    gamma = jnp.asarray(gamma, jnp.float32)
    alive = jnp.ones((batch_size,), jnp.bool_)  # the window still runs at step j
    all_acted = jnp.ones((batch_size,), jnp.bool_)
    ended_by_termination = jnp.zeros((batch_size,), jnp.bool_)
    length = jnp.zeros((batch_size,), jnp.int32)  # n'
    ret = jnp.zeros((batch_size,), jnp.float32)
    gamma_j = jnp.ones((), jnp.float32)
    for j in range(n_step):
        slot_j = (start + j) % slots
        terminated = state.terminated[slot_j, env]
        truncated = state.truncated[slot_j, env]
        all_acted = all_acted & (~alive | state.acted[slot_j, env])
        ret = ret + jnp.where(alive, gamma_j * state.reward[slot_j, env], 0.0)
        length = length + alive.astype(jnp.int32)
        ended_by_termination = ended_by_termination | (alive & terminated)
        alive = alive & ~(terminated | truncated)
        gamma_j = gamma_j * gamma

    # Position of k in write order: 0 is the oldest slot still held, count - 1 the newest.
    oldest = (state.head[env] - count) % slots  # (B,)
    position = (start - oldest) % slots  # (B,)
    _, walked = _walk_back(state, start, env)  # (B,)
    # The age test is implied by ``all_acted`` as long as the newest slot is never acted on (add
    # and begin keep it so); it is kept so that a window can never wrap past the head.
    valid = all_acted & (count - 1 - position >= length) & (walked <= position)

    discount = jnp.where(ended_by_termination, 0.0, gamma ** length.astype(jnp.float32))
    return NStepBatch(
        obs=stacks(state, start, env),
        action=state.action[start, env],
        reward=ret,
        discount=discount.astype(jnp.float32),
        next_obs=stacks(state, (start + length) % slots, env),
        task_id=task.astype(jnp.int32),
        valid=valid,
    )
