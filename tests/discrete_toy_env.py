"""A tiny discrete-action chain MDP in JAX behind the ``envs`` API, for the discrete learner.

``chain_env(kinds, envs_per_task)`` stacks one chain task per kind (``envs.make_multitask``).
An agent starts at cell ``start`` of ``length`` cells; action 0 moves left, 1 moves right and,
for kind 1 only, action 2 stays (so kind 0 has 2 actions and kind 1 has 3: a padded, masked
action set). Reaching cell 0 pays ``left_reward`` and terminates; reaching the last cell pays 1
and terminates; every other step pays 0; episodes are truncated after ``time_limit`` steps.
Observations are the one-hot cell (float32). The optimal policy always moves right: return
``gamma^(length - 2 - start)`` discounted, 1 undiscounted; a myopic one takes the nearer,
smaller left reward.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from envs import BackendStep, TaskBackend, make_multitask


def chain_backend(kind: int, envs_per_task: int, length: int = 8, start: int = 2,
                  left_reward: float = 0.2, time_limit: int = 20) -> TaskBackend:
    """One chain task of ``envs_per_task`` envs (kind 0: 2 actions, kind 1: 3 actions)."""
    e = envs_per_task

    def obs_of(cell):
        return jax.nn.one_hot(cell, length, dtype=jnp.float32)  # (E, length)

    def reset(key):
        del key
        cell = jnp.full((e,), start, jnp.int32)
        return (cell, jnp.zeros((e,), jnp.int32)), obs_of(cell)

    def step(state, action):
        cell, t = state
        move = jnp.where(action == 0, -1, jnp.where(action == 1, 1, 0))
        cell = jnp.clip(cell + move, 0, length - 1)
        t = t + 1
        at_left, at_right = cell == 0, cell == length - 1
        reward = jnp.where(at_right, 1.0, jnp.where(at_left, left_reward, 0.0))
        terminated = at_left | at_right
        truncated = (t >= time_limit) & ~terminated
        ended = terminated | truncated
        final_obs = obs_of(cell)
        cell = jnp.where(ended, start, cell)
        t = jnp.where(ended, 0, t)
        return BackendStep(state=(cell, t), obs=obs_of(cell), final_obs=final_obs,
                           reward=reward.astype(jnp.float32), terminated=terminated,
                           truncated=truncated, success=at_right)

    return TaskBackend(reset=reset, step=step, num_envs=e, action_dim=2 + (kind == 1),
                       discrete=True)


def chain_env(kinds=(0,), envs_per_task: int = 4, **kwargs):
    """An ``envs.Env`` of one chain task per kind, ``envs_per_task`` envs each."""
    backends = [chain_backend(k, envs_per_task, **kwargs) for k in kinds]
    time_limit = kwargs.get("time_limit", 20)
    return make_multitask(
        task_names=[f"chain/kind{k}" for k in kinds],
        backend_names=["toy"] * len(kinds),
        backends=backends,
        episode_lengths=[time_limit] * len(kinds),
        has_success=[True] * len(kinds),
    )
