"""Multi-task batching: T tasks x E envs per task behind one `Env` (BRC spec sec. 6).

Layout is task-major: env i belongs to task i // E. Observations are zero-padded to the largest obs
size; actions come in at the largest action size and each task's envs receive only its first A_i
components (`Env.action_mask` marks them, so the learner can keep padded dims out of log pi and
entropy). Tasks may mix backends (MJX and EnvPool) in one `Env`; all sizes come from
`jax.eval_shape` of the backends' `reset`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from envs.core import BackendStep, Env, EnvState, TaskBackend


def record_episodes(
    state: EnvState,
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    success: jax.Array,
) -> dict[str, jax.Array]:
    """Running and last-finished episode statistics after one step (all (num_envs,)).

    Returns the `episode_*` / `last_episode_*` fields of the next `EnvState`: the running ones
    include this step and restart from 0 / False where the episode ended; the `last_*` ones take the
    finished episode's values there and keep their old values elsewhere.
    """
    ended = terminated | truncated
    ret = state.episode_return + reward
    length = state.episode_length + 1
    succ = state.episode_success | success
    return dict(
        episode_return=jnp.where(ended, 0.0, ret),
        episode_length=jnp.where(ended, 0, length),
        episode_success=jnp.where(ended, False, succ),
        last_episode_return=jnp.where(ended, ret, state.last_episode_return),
        last_episode_length=jnp.where(ended, length, state.last_episode_length),
        last_episode_success=jnp.where(ended, succ, state.last_episode_success),
    )


def make_multitask(
    task_names: Sequence[str],
    backend_names: Sequence[str],
    backends: Sequence[TaskBackend],
    episode_lengths: Sequence[int],
    has_success: Sequence[bool],
) -> Env:
    """Stack backends (each with E envs per task, most with one task) into one task-major `Env`;
    `task_names`, `episode_lengths` and `has_success` have one entry per task."""
    num_tasks = sum(b.num_tasks for b in backends)
    if len(task_names) != num_tasks:
        raise ValueError(f"{len(task_names)} task names for backends of {num_tasks} tasks")
    envs_per_task = backends[0].num_envs // backends[0].num_tasks
    if any(b.num_envs != b.num_tasks * envs_per_task for b in backends):
        raise ValueError("every task needs the same number of envs")
    discrete = backends[0].discrete
    if any(b.discrete != discrete for b in backends):
        raise ValueError("cannot mix discrete-action (Atari) and continuous-action tasks")
    for b in backends:
        if b.renderables and len(b.renderables) != b.num_tasks:
            raise ValueError(f"a backend of {b.num_tasks} tasks has {len(b.renderables)} "
                             "renderables (one per task, or none)")
    num_envs = num_tasks * envs_per_task
    backend_of_task = np.repeat(np.arange(len(backends)), [b.num_tasks for b in backends])
    starts = np.cumsum([0] + [b.num_envs for b in backends])  # first env of each backend

    # A raw uint32 key, like the ones the loop passes: the same input types let MJX's traced
    # reset be reused (mjx_backend.traced_once) instead of traced again for typed keys.
    obs_structs = [jax.eval_shape(b.reset, jax.random.PRNGKey(0))[1] for b in backends]
    obs_shapes = [tuple(obs_structs[b].shape[1:]) for b in backend_of_task]  # per task
    obs_dims = tuple(int(np.prod(s)) for s in obs_shapes)
    if discrete:  # image observations: no padding, so they must agree
        if len(set(obs_shapes)) != 1:
            raise ValueError(f"image observations differ in shape across tasks: {obs_shapes}")
        obs_shape = obs_shapes[0]
    else:
        obs_shape = (max(obs_dims),)
    obs_dim = int(np.prod(obs_shape))
    # padded observations are float32; image observations keep their dtype (uint8 frames)
    obs_dtype = np.dtype(obs_structs[0].dtype) if discrete else np.dtype(np.float32)
    action_dims = tuple(backends[b].action_dim for b in backend_of_task)
    action_dim = max(action_dims)
    task_ids = np.repeat(np.arange(num_tasks, dtype=np.int32), envs_per_task)
    action_mask = (np.arange(action_dim)[None, :] < np.asarray(action_dims)[task_ids, None])
    action_mask = action_mask.astype(np.float32)  # (num_envs, action_dim)

    def pad(obs: jax.Array) -> jax.Array:  # (E, d_i) -> (E, obs_dim)
        if discrete:
            return obs
        return jnp.pad(obs.astype(jnp.float32), ((0, 0), (0, obs_dim - obs.shape[1])))

    def backend_slice(x: jax.Array, b: int) -> jax.Array:
        return x[starts[b] : starts[b + 1]]

    def reset(key: jax.Array) -> EnvState:
        keys = jax.random.split(key, len(backends))
        states, obs = zip(*(b.reset(k) for b, k in zip(backends, keys, strict=True)), strict=True)
        obs = jnp.concatenate([pad(o) for o in obs])  # (num_envs, *obs_shape)
        zeros_f = jnp.zeros((num_envs,), jnp.float32)
        zeros_i = jnp.zeros((num_envs,), jnp.int32)
        zeros_b = jnp.zeros((num_envs,), bool)
        return EnvState(
            obs=obs,
            reward=zeros_f,
            terminated=zeros_b,
            truncated=zeros_b,
            final_obs=obs,
            task_id=jnp.asarray(task_ids),
            episode_return=zeros_f,
            episode_length=zeros_i,
            episode_success=zeros_b,
            last_episode_return=zeros_f,
            last_episode_length=zeros_i,
            last_episode_success=zeros_b,
            backend=tuple(states),
        )

    def step(state: EnvState, action: jax.Array) -> EnvState:
        """One step of every env; `action` is (num_envs, action_dim) float32 in [-1, 1]."""
        outs: list[BackendStep] = []
        for i, b in enumerate(backends):
            a_b = backend_slice(action, i)
            if discrete:
                a_b = jnp.clip(a_b.astype(jnp.int32), 0, b.action_dim - 1)  # (E,)
            else:
                a_b = a_b[:, : b.action_dim].astype(jnp.float32)  # (E, A_b): mask padding
            outs.append(b.step(state.backend[i], a_b))

        def cat(field: str) -> jax.Array:
            return jnp.concatenate([getattr(o, field) for o in outs])

        reward, terminated, truncated, success = (
            cat("reward"), cat("terminated"), cat("truncated"), cat("success")
        )
        return EnvState(
            obs=jnp.concatenate([pad(o.obs) for o in outs]),
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            final_obs=jnp.concatenate([pad(o.final_obs) for o in outs]),
            task_id=state.task_id,
            backend=tuple(o.state for o in outs),
            **record_episodes(state, reward, terminated, truncated, success),
        )

    return Env(
        reset=reset,
        step=step,
        num_envs=num_envs,
        envs_per_task=envs_per_task,
        num_tasks=num_tasks,
        task_names=tuple(task_names),
        backends=tuple(backend_names),
        obs_dim=obs_dim,
        obs_shape=obs_shape,
        obs_dims=obs_dims,
        action_dim=action_dim,
        action_dims=action_dims,
        action_mask=action_mask,
        task_ids=task_ids,
        episode_length=tuple(int(n) for n in episode_lengths),
        has_success=tuple(bool(s) for s in has_success),
        discrete=discrete,
        obs_dtype=obs_dtype,
        renderables=tuple(r for b in backends for r in (b.renderables or (None,) * b.num_tasks)),
        task_backend=tuple(int(b) for b in backend_of_task),
    )


def rewrap(env, **changes) -> Env:
    """An `Env` with the description and functions of `env` (an `Env` or any object with its
    fields), except `changes`: what a wrapper builds around the env it wraps."""
    fields = {f.name: getattr(env, f.name) for f in dataclasses.fields(Env) if hasattr(env, f.name)}
    fields.setdefault("obs_shape", (env.obs_dim,))
    fields.setdefault("obs_dims", (env.obs_dim,) * env.num_tasks)
    fields.update(changes)
    return Env(**fields)


def pad_env(env, obs_dim: int, action_dim: int) -> Env:
    """``env`` seen through larger inputs: observations zero-padded to ``obs_dim``, actions of
    ``action_dim`` whose extra components are dropped (to run a network built for a larger
    padded input, e.g. one transferred from another run). ``env`` is returned unchanged when
    its sizes already match."""
    if obs_dim == env.obs_dim and action_dim == env.action_dim:
        return env
    if env.discrete:
        raise ValueError("discrete-action (image) envs cannot be padded to other sizes")
    if obs_dim < env.obs_dim or action_dim < env.action_dim:
        raise ValueError(f"cannot pad an env of obs {env.obs_dim} / action {env.action_dim} "
                         f"down to obs {obs_dim} / action {action_dim}")
    extra = obs_dim - env.obs_dim
    inner_obs = env.obs_dim

    def widen(state):
        pad = lambda x: jnp.pad(x, ((0, 0), (0, extra)))
        return state.replace(obs=pad(state.obs), final_obs=pad(state.final_obs))

    def reset(key: jax.Array) -> EnvState:
        return widen(env.reset(key))

    def step(state: EnvState, action: jax.Array) -> EnvState:
        inner = state.replace(obs=state.obs[:, :inner_obs],
                              final_obs=state.final_obs[:, :inner_obs])
        return widen(env.step(inner, action[:, : env.action_dim]))

    mask = np.pad(np.asarray(env.action_mask), ((0, 0), (0, action_dim - env.action_dim)))
    return rewrap(env, reset=reset, step=step, obs_dim=obs_dim, obs_shape=(obs_dim,),
                  action_dim=action_dim, action_mask=mask)


def scale_rewards(env, scales) -> Env:
    """``env`` with task ``k``'s rewards (and episode returns) multiplied by ``scales[k]``: tasks
    whose reward scales differ, for the reward-scale experiments of the paper's argument."""
    scales = tuple(float(x) for x in scales)
    if len(scales) != env.num_tasks:
        raise ValueError(f"reward_scales has {len(scales)} values for {env.num_tasks} tasks "
                         f"({', '.join(env.task_names)})")
    if any(not x > 0 for x in scales):
        raise ValueError(f"reward_scales must be > 0, got {scales}")
    per_env = jnp.asarray(np.asarray(scales, np.float32)[np.asarray(env.task_ids)])

    def step(state: EnvState, action: jax.Array) -> EnvState:
        # The inner env accumulates its own (unscaled) returns: hand them back unscaled.
        inner = state.replace(episode_return=state.episode_return / per_env,
                              last_episode_return=state.last_episode_return / per_env)
        out = env.step(inner, action)
        return out.replace(reward=out.reward * per_env,
                           episode_return=out.episode_return * per_env,
                           last_episode_return=out.last_episode_return * per_env)

    return rewrap(env, step=step)
