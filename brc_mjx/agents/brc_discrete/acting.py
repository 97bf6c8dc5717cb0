"""Epsilon-greedy acting of the discrete learner, in training and in evaluation.

Greedy actions maximise the expected value of the ensemble-mean distribution over the task's own
actions. Exploration follows DrQ(epsilon) (Dopamine's linearly decaying epsilon): uniform
random actions during the warm-up, then epsilon decays linearly from ``epsilon_start`` to
``epsilon_end`` over ``epsilon_decay_steps`` transitions per task and stays there; evaluation
uses ``eval_epsilon``. A random action is uniform over the task's actions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from brc_mjx.agents.brc_discrete import losses
from brc_mjx.agents.brc_discrete.learner import DiscreteLearner, DiscreteLearnerState
from brc_mjx.config import DiscreteConfig


def epsilon(cfg: DiscreteConfig, transitions: jax.Array, warmup: int) -> jax.Array:
    """Exploration rate after ``transitions`` per task: 1 during the ``warmup`` transitions, then
    linear from ``epsilon_start`` to ``epsilon_end`` over ``epsilon_decay_steps``, then flat."""
    after = (transitions - warmup).astype(jnp.float32)
    fraction = jnp.clip(after / max(cfg.epsilon_decay_steps, 1), 0.0, 1.0)
    decayed = cfg.epsilon_start + fraction * (cfg.epsilon_end - cfg.epsilon_start)
    if cfg.epsilon_decay_steps == 0:
        decayed = jnp.asarray(cfg.epsilon_end, jnp.float32)
    return jnp.where(after < 0, 1.0, decayed)


def greedy_action(learner: DiscreteLearner, learner_state: DiscreteLearnerState, obs, task_id,
                  action_mask) -> jax.Array:
    """``(num_envs,)`` int32 argmax of the masked expected values of the online critics."""
    q = losses.q_values(learner.nets, learner_state.critic_params, obs, task_id, action_mask)
    return jnp.argmax(q, axis=-1).astype(jnp.int32)


def epsilon_greedy(learner: DiscreteLearner, learner_state: DiscreteLearnerState, obs, task_id,
                   action_mask, eps: jax.Array, key: jax.Array) -> jax.Array:
    """Greedy action, replaced with probability ``eps`` by one uniform over the task's actions.

    ``action_mask`` ``(num_envs, num_actions)``: a task's actions are its first ``sum(mask)``.
    """
    key_explore, key_random = jax.random.split(key)
    num_envs = obs.shape[0]
    num_valid = jnp.sum(action_mask, axis=-1).astype(jnp.int32)  # (num_envs,)
    random = jax.random.randint(key_random, (num_envs,), 0, num_valid)
    explore = jax.random.uniform(key_explore, (num_envs,)) < eps
    # cond, not where: a fully random step (the warm-up) computes no network forward
    greedy = jax.lax.cond(
        jnp.all(explore), lambda: random,
        lambda: greedy_action(learner, learner_state, obs, task_id, action_mask))
    return jnp.where(explore, random, greedy).astype(jnp.int32)


def actor_step(learner: DiscreteLearner, env, learner_state: DiscreteLearnerState, env_state,
               key: jax.Array, transitions: jax.Array, warmup: int):
    """Act epsilon-greedily in every env and step them.

    Args:
      learner, env: static learner and ``envs.Env`` (discrete).
      learner_state: current parameters.
      env_state: ``EnvState`` before the step.
      key: PRNG key.
      transitions: () transitions per task collected so far (the epsilon schedule's clock).
      warmup: warm-up transitions per task (uniform random actions).

    Returns:
      ``(next_env_state, action)``; the transition is ``(env_state.obs, action,
      next.reward, next.final_obs, next.terminated, next.truncated)``.
    """
    eps = epsilon(learner.discrete, transitions, warmup)
    with jax.named_scope("act"):
        action = epsilon_greedy(learner, learner_state, env_state.obs, env_state.task_id,
                                jnp.asarray(env.action_mask), eps, key)
    with jax.named_scope("env_step"):
        next_state = env.step(env_state, action)
    return next_state, action


def eval_step(learner: DiscreteLearner, env, learner_state: DiscreteLearnerState, env_state,
              key: jax.Array):
    """One evaluation step: epsilon-greedy with ``eval_epsilon`` (the agent's ``eval_step``)."""
    eps = jnp.asarray(learner.discrete.eval_epsilon, jnp.float32)
    action = epsilon_greedy(learner, learner_state, env_state.obs, env_state.task_id,
                            jnp.asarray(env.action_mask), eps, key)
    return env.step(env_state, action)
