"""BRC's acting: one vectorized env step under the policy, and the deterministic evaluation step.

``actor_step`` is the only place where the policy meets the environment during training;
``deterministic_step`` is the evaluation policy (``tanh(mean)``) that ``brc_mjx.evaluation``
runs. Both talk to environments only through the functional ``envs`` API:
``env.reset(key) -> EnvState`` and ``env.step(state, action) -> EnvState``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from brc_mjx.agents.brc import losses
from brc_mjx.agents.brc.learner import Learner, LearnerState
from brc_mjx.agents.brc.networks import deterministic_action, sample_policy
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
