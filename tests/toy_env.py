"""A tiny deterministic multi-task env obeying the ``envs`` API, for fast loop tests.

Task kind k (``toy/task{k}``) has action dim ``k + 1`` (padded to the largest); the state drifts
toward the action and the reward is ``1 - |x - target_k|^2`` clipped at 0. Episodes are truncated
at ``episode_length`` and kind 1 also *terminates* when its first coordinate leaves [-2, 2].
``kinds`` picks the tasks (default: kinds 0 .. num_tasks - 1); an env's first observations depend
only on the key, its task's kind and its index within the task, so a task behaves the same
wherever it sits in the task list. ``calls`` counts Python calls of ``step`` (traces, under jit).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np


@flax.struct.dataclass
class ToyState:
    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    task_id: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    episode_success: jax.Array
    last_episode_return: jax.Array
    last_episode_length: jax.Array
    last_episode_success: jax.Array
    backend: Any


@dataclasses.dataclass(eq=False)
class ToyEnv:
    envs_per_task: int = 2
    episode_len: int = 12
    num_tasks: int = 2
    obs_dim: int = 3
    calls: int = 0
    kinds: tuple[int, ...] | None = None
    discrete: bool = False

    def __post_init__(self):
        if self.kinds is None:
            self.kinds = tuple(range(self.num_tasks))
        self.num_tasks = len(self.kinds)
        self.action_dims = tuple(k + 1 for k in self.kinds)
        self.action_dim = max(self.action_dims)
        self.num_envs = self.num_tasks * self.envs_per_task
        self.task_ids = np.repeat(np.arange(self.num_tasks), self.envs_per_task).astype(np.int32)
        self.task_names = tuple(f"toy/task{k}" for k in self.kinds)
        self.obs_dims = (self.obs_dim,) * self.num_tasks
        self.env_kind = np.asarray(self.kinds, np.int32)[self.task_ids]
        self.backends = ("toy",) * self.num_tasks
        self.episode_length = (self.episode_len,) * self.num_tasks
        self.has_success = (True,) * self.num_tasks
        dims = np.asarray(self.action_dims)[self.task_ids]
        self.action_mask = (np.arange(self.action_dim)[None] < dims[:, None]).astype(np.float32)

    def _first_obs(self, key):
        index = self.env_kind * 1000 + np.arange(self.num_envs) % self.envs_per_task
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, jnp.asarray(index))
        return jax.vmap(lambda k: jax.random.uniform(k, (self.obs_dim,), minval=-0.5,
                                                     maxval=0.5))(keys)

    def reset(self, key):
        n = self.num_envs
        key, key_obs = jax.random.split(key)
        zf, zb, zi = jnp.zeros(n, jnp.float32), jnp.zeros(n, bool), jnp.zeros(n, jnp.int32)
        obs = self._first_obs(key_obs)
        return ToyState(obs, zf, zb, zb, obs, jnp.asarray(self.task_ids), zf, zi, zb, zf, zi, zb,
                        {"key": key, "t": zi})

    def step(self, state, action):
        self.calls += 1
        pad = jnp.zeros((self.num_envs, self.obs_dim - self.action_dim))
        drive = jnp.concatenate([action * jnp.asarray(self.action_mask), pad], axis=-1)
        x = 0.8 * state.obs + 0.5 * drive
        kind = jnp.asarray(self.env_kind)
        target = 0.3 * (kind[:, None].astype(jnp.float32) + 1.0)
        reward = jnp.maximum(0.0, 1.0 - jnp.sum(jnp.square(x - target), axis=-1))
        t = state.backend["t"] + 1
        terminated = (kind == 1) & (jnp.abs(x[:, 0]) > 2.0)
        truncated = (t >= self.episode_len) & ~terminated
        done = terminated | truncated
        ep_return = state.episode_return + reward
        success = state.episode_success | (reward > 0.9)
        key, key_obs = jax.random.split(state.backend["key"])
        obs = jnp.where(done[:, None], self._first_obs(key_obs), x)
        return ToyState(
            obs=obs, reward=reward, terminated=terminated, truncated=truncated, final_obs=x,
            task_id=state.task_id,
            episode_return=jnp.where(done, 0.0, ep_return),
            episode_length=jnp.where(done, 0, state.episode_length + 1),
            episode_success=jnp.where(done, False, success),
            last_episode_return=jnp.where(done, ep_return, state.last_episode_return),
            last_episode_length=jnp.where(done, state.episode_length + 1,
                                          state.last_episode_length),
            last_episode_success=jnp.where(done, success, state.last_episode_success),
            backend={"key": key, "t": jnp.where(done, 0, t)},
        )
