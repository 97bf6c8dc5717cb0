"""BRC's critic, actor and temperature losses, pure functions (spec section 4).

Each loss is ``(params, ...) -> (loss, metrics)`` and differentiates only its first argument.
``batch`` is any pytree with fields ``obs, action, reward, next_obs, terminated, task_id``
(the replay's ``Transition``); a truncated transition bootstraps like any other non-terminal one,
from its true final observation ``next_obs``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from brc_mjx.agents.brc.networks import Networks, actor_task_input, sample_policy
from brc_mjx.core import categorical


def critic_probs(nets: Networks, critic_params, obs, action, task_id) -> jax.Array:
    """Mean over the ensemble of the critics' softmax probabilities, ``(batch, atoms)``."""
    logits = nets.critic.apply(critic_params, obs, action, task_id)  # (ensemble, batch, atoms)
    return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)


def critic_value(nets: Networks, critic_params, obs, action, task_id) -> jax.Array:
    """Scalar Q ``(batch,)``: ``sum_j z_j pbar_j`` of the ensemble-mean probabilities, or the
    ensemble mean of the scalar heads (MSE ablation)."""
    if nets.scalar:
        q = nets.critic.apply(critic_params, obs, action, task_id)[..., 0]  # (ensemble, batch)
        return jnp.mean(q, axis=0)
    probs = critic_probs(nets, critic_params, obs, action, task_id)  # (batch, atoms)
    return categorical.scalar_q(probs, nets.critic.atoms)


def _bootstrap_inputs(nets: Networks, actor_params, critic_params, batch, reward_scale,
                      action_mask, key, mask_padded: bool):
    """What both critic losses bootstrap from: ``a' ~ pi(.|s', e)`` and its log-probability,
    the normalised reward and the (masked) replay action."""
    mean, log_std = policy(nets, actor_params, critic_params, batch.next_obs, batch.task_id)
    next_action, next_log_prob = sample_policy(key, mean, log_std, action_mask, mask_padded)
    reward = batch.reward / reward_scale
    action = batch.action * action_mask if mask_padded else batch.action
    return next_action, next_log_prob, reward, action


def policy(nets: Networks, actor_params, critic_params, obs, task_id):
    """Actor's ``(mean, log_std)`` given obs and the task (gradient-stopped embedding, one-hot
    vector, or its own heads)."""
    return nets.actor.apply(actor_params, obs, actor_task_input(nets, critic_params, task_id),
                            task_id)


def td_target(
    next_probs: jax.Array,
    next_log_prob: jax.Array,
    reward: jax.Array,
    terminated: jax.Array,
    alpha: jax.Array,
    gamma: float,
    atoms: jax.Array,
) -> jax.Array:
    """Categorical soft TD target ``y`` (spec section 4, steps 3-4).

    ``T_j = clip(r + gamma * (1 - terminated) * (z_j - alpha * log pi(a'|s')), v_min, v_max)``,
    then ``T`` with probabilities ``p'`` is projected onto the support.

    Args:
      next_probs: ``(batch, atoms)`` ensemble-mean target probabilities at ``(s', a')``.
      next_log_prob: ``(batch,)`` log pi(a'|s').
      reward: ``(batch,)`` normalised reward.
      terminated: ``(batch,)`` bool; truncation is *not* termination.
      alpha, gamma: temperature and discount.
      atoms: ``(atoms,)`` the support.

    Returns:
      ``(batch, atoms)`` target probabilities (gradient stopped).
    """
    mask = 1.0 - terminated.astype(jnp.float32)
    shifted = reward[:, None] + gamma * mask[:, None] * (
        atoms[None, :] - alpha * next_log_prob[:, None]
    )  # (batch, atoms)
    num_atoms = atoms.shape[0]
    y = categorical.project(shifted, next_probs, num_atoms, atoms[0], atoms[-1])
    return jax.lax.stop_gradient(y)


def critic_loss(
    critic_params,
    target_critic_params,
    actor_params,
    alpha: jax.Array,
    batch,
    reward_scale: jax.Array,
    action_mask: jax.Array,
    key: jax.Array,
    *,
    nets: Networks,
    gamma: float,
    mask_padded: bool = True,
):
    """Cross-entropy of each critic against the categorical TD target.

    ``L = sum_k mean_b [ -sum_i y_i log softmax(logits_k(s, a, e))_i ]`` where ``a' ~ pi(.|s', e)``
    and ``p'`` is the mean of the target critics' probabilities.

    Args:
      critic_params: online critic (differentiated; includes the task-embedding table).
      target_critic_params, actor_params: held constant.
      alpha: temperature ``exp(log_alpha)``.
      batch: transitions with raw rewards.
      reward_scale: ``(batch,)`` per-sample reward scale of the sample's task.
      action_mask: ``(batch, action_dim)`` per-sample action mask.
      key: PRNG key for ``a'``.
      nets, gamma, mask_padded: static.

    Returns:
      ``(loss, metrics)``.
    """
    atoms = nets.critic.atoms
    next_action, next_log_prob, reward, action = _bootstrap_inputs(
        nets, actor_params, critic_params, batch, reward_scale, action_mask, key, mask_padded)
    next_probs = critic_probs(
        nets, target_critic_params, batch.next_obs, next_action, batch.task_id
    )  # (batch, atoms)
    y = td_target(next_probs, next_log_prob, reward, batch.terminated, alpha, gamma, atoms)
    logits = nets.critic.apply(critic_params, batch.obs, action, batch.task_id)  # (E, B, atoms)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    per_critic = -jnp.mean(jnp.sum(y[None] * log_probs, axis=-1), axis=-1)  # (ensemble,)
    loss = jnp.sum(per_critic)
    q = categorical.scalar_q(jnp.mean(jnp.exp(log_probs), axis=0), atoms)
    metrics = {
        "critic_loss": loss,
        "q_mean": jnp.mean(q),
        "target_q_mean": jnp.mean(categorical.scalar_q(y, atoms)),
        "normalized_reward_mean": jnp.mean(reward),
    }
    return loss, metrics


def mse_critic_loss(
    critic_params,
    target_critic_params,
    actor_params,
    alpha: jax.Array,
    batch,
    reward_scale: jax.Array,
    action_mask: jax.Array,
    key: jax.Array,
    *,
    nets: Networks,
    gamma: float,
    mask_padded: bool = True,
):
    """Ablation: squared TD error of scalar critics against the same soft TD target.

    ``y = r + gamma (1 - terminated) (mean_k Qbar_k(s', a') - alpha log pi(a'|s'))`` with
    ``a' ~ pi(.|s', e)`` and the target critics' ensemble mean (as BRC averages their
    probabilities; no clipping to a support), and ``L = sum_k mean_b (Q_k(s, a) - y)^2``.
    Same arguments and metrics as :func:`critic_loss`.
    """
    next_action, next_log_prob, reward, action = _bootstrap_inputs(
        nets, actor_params, critic_params, batch, reward_scale, action_mask, key, mask_padded)
    next_q = critic_value(nets, target_critic_params, batch.next_obs, next_action, batch.task_id)
    mask = 1.0 - batch.terminated.astype(jnp.float32)
    y = jax.lax.stop_gradient(reward + gamma * mask * (next_q - alpha * next_log_prob))  # (B,)
    q = nets.critic.apply(critic_params, batch.obs, action, batch.task_id)[..., 0]  # (E, B)
    per_critic = jnp.mean(jnp.square(q - y[None]), axis=-1)  # (ensemble,)
    loss = jnp.sum(per_critic)
    metrics = {
        "critic_loss": loss,
        "q_mean": jnp.mean(q),
        "target_q_mean": jnp.mean(y),
        "normalized_reward_mean": jnp.mean(reward),
    }
    return loss, metrics


CRITIC_LOSSES = {"categorical": critic_loss, "mse": mse_critic_loss}


def actor_loss(
    actor_params,
    critic_params,
    alpha: jax.Array,
    batch,
    action_mask: jax.Array,
    key: jax.Array,
    *,
    nets: Networks,
    mask_padded: bool = True,
):
    """SAC actor loss ``mean_b [alpha log pi(a~|s,e) - Q(s, a~, e)]`` with ``a~`` reparameterised.

    ``Q = sum_j z_j pbar_j`` with ``pbar`` the ensemble-mean probabilities of the online critic
    (the ensemble-mean scalar Q with the MSE ablation), whose parameters (and the embedding
    table) are held constant.

    Returns:
      ``(loss, metrics)``; ``metrics["log_prob"]`` is the per-sample ``(batch,)`` log pi used by
      the temperature step.
    """
    critic_params = jax.lax.stop_gradient(critic_params)
    mean, log_std = policy(nets, actor_params, critic_params, batch.obs, batch.task_id)
    action, log_prob = sample_policy(key, mean, log_std, action_mask, mask_padded)
    q = critic_value(nets, critic_params, batch.obs, action, batch.task_id)
    loss = jnp.mean(alpha * log_prob - q)
    metrics = {
        "actor_loss": loss,
        "entropy": -jnp.mean(log_prob),
        "actor_q_mean": jnp.mean(q),
        "log_std_mean": jnp.mean(log_std),
        "log_prob": log_prob,
    }
    return loss, metrics


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: jax.Array):
    """``alpha * mean_b(H_b - H_target_b)`` with ``H_b = -log pi`` from the actor step.

    Args:
      log_alpha: scalar, differentiated.
      log_prob: ``(batch,)`` log pi of the actor step (held constant).
      target_entropy: ``(batch,)`` the sample's task target ``-A_i / 2``.

    Returns:
      ``(loss, metrics)``.
    """
    alpha = jnp.exp(log_alpha)
    gap = jax.lax.stop_gradient(-log_prob - target_entropy)  # (batch,)
    loss = alpha * jnp.mean(gap)
    return loss, {"temperature_loss": loss, "alpha": alpha, "entropy_gap": jnp.mean(gap)}
