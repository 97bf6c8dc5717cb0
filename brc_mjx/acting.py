"""Acting: one vectorized env step under the policy, and the deterministic evaluator.

``actor_step`` is the only place where the policy meets the environment during training;
``evaluate`` is its own jitted function (deterministic ``tanh(mean)`` actions, no replay, no
normaliser updates). Both talk to environments only through the functional ``envs`` API:
``env.reset(key) -> EnvState`` and ``env.step(state, action) -> EnvState``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from brc_mjx import losses, video
from brc_mjx.learner import Learner, LearnerState
from brc_mjx.networks import deterministic_action, sample_policy
from brc_mjx.replay import Transition


def policy_action(
    learner: Learner,
    learner_state: LearnerState,
    obs: jax.Array,
    task_id: jax.Array,
    action_mask: jax.Array,
    key: jax.Array,
) -> jax.Array:
    """Sampled (temperature-1) policy action ``(num_envs, action_dim)``, padded dims zeroed."""
    mean, log_std = losses.policy(
        learner.nets, learner_state.actor_params, learner_state.critic_params, obs, task_id
    )
    action, _ = sample_policy(key, mean, log_std, action_mask, learner.cfg.mask_padded_actions)
    return action * action_mask  # the env receives only each task's first A_i components


def random_action(key: jax.Array, action_mask: jax.Array) -> jax.Array:
    """Uniform action in [-1, 1] on each task's real dims, 0 on padding."""
    return jax.random.uniform(key, action_mask.shape, minval=-1.0, maxval=1.0) * action_mask


def actor_step(
    learner: Learner,
    env,
    learner_state: LearnerState,
    env_state,
    key: jax.Array,
    warmup: jax.Array,
):
    """Act in every env (uniform random while ``warmup``), step them, build the transitions.

    Args:
      learner: static learner.
      env: the static ``envs.Env`` (its ``step`` auto-resets and keeps the true final obs).
      learner_state: current parameters.
      env_state: ``EnvState`` before the step.
      key: PRNG key.
      warmup: scalar bool, True during the uniform-random warm-up.

    Returns:
      ``(next_env_state, transition)``; ``transition.next_obs`` is the true final observation
      when an episode ended at this step.
    """
    key_policy, key_random = jax.random.split(key)
    action_mask = jnp.asarray(env.action_mask)  # (num_envs, action_dim)
    with jax.named_scope("act"):
        # cond, not where: only the action that is used gets computed.
        action = jax.lax.cond(
            warmup,
            lambda: random_action(key_random, action_mask),
            lambda: policy_action(
                learner, learner_state, env_state.obs, env_state.task_id, action_mask, key_policy
            ),
        )
    with jax.named_scope("env_step"):
        next_state = env.step(env_state, action)
    transition = Transition(
        obs=env_state.obs,
        action=action,
        reward=next_state.reward,
        next_obs=next_state.final_obs,
        terminated=next_state.terminated,
        truncated=next_state.truncated,
        task_id=env_state.task_id,
    )
    return next_state, transition


def deterministic_step(learner: Learner, env, learner_state: LearnerState, env_state,
                       key: jax.Array | None = None):
    """Step every env under the deterministic policy ``tanh(mean)`` (evaluation, videos);
    ``key`` is unused (evaluation policies that explore take one)."""
    del key
    mean, _ = losses.policy(
        learner.nets, learner_state.actor_params, learner_state.critic_params,
        env_state.obs, env_state.task_id,
    )
    return env.step(env_state, deterministic_action(mean, jnp.asarray(env.action_mask)))


def evaluate(
    learner, env, learner_state, key: jax.Array, num_steps: int, trace: bool = False,
    policy_step: Callable = deterministic_step,
) -> dict[str, jax.Array]:
    """Run one evaluation episode in every env of ``env`` (an eval batch), ``num_steps`` at most.

    ``policy_step(learner, env, learner_state, env_state, key) -> env_state`` steps the envs
    under the evaluation policy (default: the deterministic ``tanh(mean)``). Each env's first
    finished episode counts; without ``trace`` the loop stops as soon as every env has finished
    one (long, variable-length episodes such as Atari's). Returns per-task arrays
    ``(num_tasks,)``: ``return`` (mean episode return), ``success`` (mean success, where the task
    has one) and ``finished`` (fraction of envs whose episode finished within ``num_steps``).
    With ``trace`` also ``qpos`` and ``ended`` of ``video.physics_trace`` (the first env of
    every drawable task, for videos), over all ``num_steps``.
    """
    task_ids = jnp.asarray(env.task_ids)
    num_tasks = env.num_tasks

    def body(carry, t):
        env_state, done_once, ret, success = carry
        env_state = policy_step(learner, env, learner_state, env_state,
                                jax.random.fold_in(key, t))
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
