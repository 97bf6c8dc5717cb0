"""Per-task reward normalisation from discounted returns-to-go, on device (spec section 5).

For each task ``i`` we keep the running max ``M_i`` and min ``m_i`` of the discounted
returns-to-go ``V_t`` of every finished training episode:

    B = mean(r) / (1 - gamma) if the episode was truncated, else 0
    V_{T-1} = r_{T-1} + gamma B,   V_t = r_t + gamma V_{t+1}

The statistic is exact. Each env keeps the rewards of its current episode in a fixed-shape row of
``max_episode_length`` slots; when any episode ends, one reverse ``lax.scan`` over that window
computes every ``V_t`` of every ending episode (masked by its length) and folds their max/min into
the task's statistics with a segment max/min. With time limits the scan runs once per episode, so
the amortised cost is ``O(num_envs)`` per step, and no host transfer is involved.

At sampling time ``scale_i = (G_i + alpha * H_i / (1 - gamma)) / 10`` with ``G_i = max(M_i, |m_i|)``
and ``H_i = |H_target_i| / 2`` (or the task's empirical policy entropy, as the paper writes it).
A task without a finished episode gets ``fallback_scale`` (default 1: raw rewards), so the scale
is always finite and positive.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class NormalizerState:
    """Per-env episode windows and per-task return statistics."""

    rewards: jax.Array  # (num_envs, max_episode_length) rewards of the current episodes
    length: jax.Array  # (num_envs,) int32 steps taken in the current episode
    return_max: jax.Array  # (num_tasks,) running max of returns-to-go, -inf before any episode
    return_min: jax.Array  # (num_tasks,) running min of returns-to-go, +inf before any episode
    episodes: jax.Array  # (num_tasks,) int32 finished training episodes seen


def init(num_envs: int, num_tasks: int, max_episode_length: int) -> NormalizerState:
    """Empty statistics for ``num_envs`` envs of ``num_tasks`` tasks."""
    if max_episode_length < 1:
        raise ValueError(f"max_episode_length must be >= 1, got {max_episode_length}")
    return NormalizerState(
        rewards=jnp.zeros((num_envs, max_episode_length), jnp.float32),
        length=jnp.zeros((num_envs,), jnp.int32),
        return_max=jnp.full((num_tasks,), -jnp.inf, jnp.float32),
        return_min=jnp.full((num_tasks,), jnp.inf, jnp.float32),
        episodes=jnp.zeros((num_tasks,), jnp.int32),
    )


def _fold_finished(
    state: NormalizerState, done: jax.Array, truncated: jax.Array, task_id: jax.Array, gamma
):
    """Fold the returns-to-go of the episodes flagged ``done`` into the task statistics."""
    num_tasks = state.return_max.shape[0]
    window = state.rewards.shape[1]
    length = state.length  # (num_envs,) includes the final step
    in_episode = jnp.arange(window)[None, :] < length[:, None]  # (num_envs, window)
    mean_reward = jnp.sum(jnp.where(in_episode, state.rewards, 0.0), axis=1) / jnp.maximum(
        length, 1
    )
    bootstrap = jnp.where(truncated, mean_reward / (1.0 - gamma), 0.0)  # (num_envs,)

    def backward(carry, t):
        value, vmax, vmin = carry
        r_t = state.rewards[:, t]
        valid = t < length
        value = jnp.where(valid, r_t + gamma * value, value)
        vmax = jnp.where(valid, jnp.maximum(vmax, value), vmax)
        vmin = jnp.where(valid, jnp.minimum(vmin, value), vmin)
        return (value, vmax, vmin), None

    init_carry = (bootstrap, jnp.full_like(bootstrap, -jnp.inf), jnp.full_like(bootstrap, jnp.inf))
    (_, vmax, vmin), _ = jax.lax.scan(backward, init_carry, jnp.arange(window - 1, -1, -1))
    vmax = jnp.where(done, vmax, -jnp.inf)
    vmin = jnp.where(done, vmin, jnp.inf)
    task_max = jax.ops.segment_max(vmax, task_id, num_segments=num_tasks)
    task_min = jax.ops.segment_min(vmin, task_id, num_segments=num_tasks)
    finished = jax.ops.segment_sum(done.astype(jnp.int32), task_id, num_segments=num_tasks)
    return state.replace(
        return_max=jnp.maximum(state.return_max, task_max),
        return_min=jnp.minimum(state.return_min, task_min),
        episodes=state.episodes + finished,
    )


def update(
    state: NormalizerState,
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    task_id: jax.Array,
    gamma,
) -> NormalizerState:
    """Record one env step of every env; fold episodes that ended at this step.

    Args:
      state: current statistics.
      reward: ``(num_envs,)`` raw reward of this step.
      terminated, truncated: ``(num_envs,)`` bool episode-end flags of this step.
      task_id: ``(num_envs,)`` int32 task of each env.
      gamma: discount.

    Returns:
      The updated state. The window must cover the longest episode (the env's time limit) for
      exact statistics; steps beyond it overwrite the window's last slot.
    """
    window = state.rewards.shape[1]
    env = jnp.arange(reward.shape[0])
    slot = jnp.minimum(state.length, window - 1)
    rewards = state.rewards.at[env, slot].set(reward.astype(jnp.float32))
    length = jnp.minimum(state.length + 1, window)
    state = state.replace(rewards=rewards, length=length)
    done = jnp.logical_or(terminated, truncated)
    state = jax.lax.cond(
        jnp.any(done),
        lambda s: _fold_finished(s, done, truncated, task_id, gamma),
        lambda s: s,
        state,
    )
    return state.replace(length=jnp.where(done, 0, state.length))


def drop_episodes(state: NormalizerState) -> NormalizerState:
    """Forget the episodes in flight (their envs were reset); the task statistics stay."""
    return state.replace(length=jnp.zeros_like(state.length))


def reward_scale(
    state: NormalizerState,
    alpha: jax.Array,
    entropy: jax.Array,
    gamma,
    fallback_scale: float = 1.0,
) -> jax.Array:
    """Per-task reward scale ``(num_tasks,)``: ``(G_i + alpha * entropy_i / (1 - gamma)) / 10``.

    Args:
      state: return statistics.
      alpha: current temperature.
      entropy: ``(num_tasks,)`` entropy magnitude per task: ``|H_target_i| / 2`` by default.
      gamma: discount.
      fallback_scale: scale of a task without a finished episode.
    """
    seen = state.episodes > 0
    g = jnp.maximum(state.return_max, jnp.abs(state.return_min))
    g = jnp.where(seen, g, 0.0)
    scale = (g + alpha * jnp.abs(entropy) / (1.0 - gamma)) / 10.0
    # A seen task whose returns and entropy term are both 0 would divide by 0: keep it finite.
    scale = jnp.where(seen, jnp.maximum(scale, 1e-6), fallback_scale)
    return scale
