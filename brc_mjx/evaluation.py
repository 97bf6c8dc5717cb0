"""Evaluation episodes, for any agent: one episode in every env of an eval batch, its own jitted
function (no replay, no normaliser updates, no training state touched)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from brc_mjx import video


def evaluate(agent, env, learner_state, key: jax.Array, num_steps: int,
             trace: bool = False) -> dict[str, jax.Array]:
    """:func:`rollout` under ``agent``'s evaluation policy (``Agent.eval_step``)."""
    return rollout(lambda env_state, k: agent.eval_step(env, learner_state, env_state, k), env,
                   key, num_steps, trace)


def rollout(policy_step: Callable, env, key: jax.Array, num_steps: int,
            trace: bool = False) -> dict[str, jax.Array]:
    """Run one episode in every env of ``env`` (an eval batch), ``num_steps`` at most.

    ``policy_step(env_state, key) -> env_state`` steps the envs under the evaluated policy.
    Each env's first finished episode counts; without ``trace`` the loop stops as soon as every
    env has finished one (long, variable-length episodes such as Atari's). Returns per-task
    arrays ``(num_tasks,)``: ``return`` (mean episode return), ``success`` (mean success, where
    the task has one) and ``finished`` (fraction of envs whose episode finished within
    ``num_steps``). With ``trace`` also ``qpos`` and ``ended`` of ``video.physics_trace`` (the
    first env of every drawable task, for videos), over all ``num_steps``.
    """
    task_ids = jnp.asarray(env.task_ids)
    num_tasks = env.num_tasks

    def body(carry, t):
        env_state, done_once, ret, success = carry
        env_state = policy_step(env_state, jax.random.fold_in(key, t))
        ended = jnp.logical_or(env_state.terminated, env_state.truncated)
        first = jnp.logical_and(ended, jnp.logical_not(done_once))
        ret = jnp.where(first, env_state.last_episode_return, ret)
        success = jnp.where(first, env_state.last_episode_success, success)
        out = video.physics_trace(env, env_state) if trace else None
        return (env_state, jnp.logical_or(done_once, ended), ret, success), out

    env_state = env.reset(key)
    n = env_state.obs.shape[0]
    init = (env_state, jnp.zeros(n, bool), jnp.zeros(n, jnp.float32), jnp.zeros(n, bool))
    if trace:
        (_, done_once, ret, success), steps = jax.lax.scan(body, init,
                                                           jnp.arange(1, num_steps + 1))
    else:
        def unfinished(loop):
            t, (_, done_once, _, _) = loop
            return jnp.logical_and(t <= num_steps, jnp.logical_not(jnp.all(done_once)))

        _, (_, done_once, ret, success) = jax.lax.while_loop(
            unfinished, lambda loop: (loop[0] + 1, body(loop[1], loop[0])[0]),
            (jnp.ones((), jnp.int32), init))

    def per_task(x):
        total = jax.ops.segment_sum(x.astype(jnp.float32), task_ids, num_segments=num_tasks)
        count = jax.ops.segment_sum(jnp.ones_like(task_ids, jnp.float32), task_ids, num_tasks)
        return total / jnp.maximum(count, 1.0)

    out = {"return": per_task(ret), "success": per_task(success), "finished": per_task(done_once)}
    if trace:
        start, _ = video.physics_trace(env, env_state)
        out["qpos"] = tuple(jnp.concatenate([s[None], q]) for s, q in zip(start, steps[0],
                                                                            strict=True))
        out["ended"] = steps[1]
    return out
