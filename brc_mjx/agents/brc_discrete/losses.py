"""The discrete BRC critic loss: n-step categorical cross-entropy per action (pure functions).

For a sampled n-step window (replay :class:`~brc_mjx.agents.brc_discrete.replay.NStepBatch`):
``R = sum_{j<n'} gamma^j r_{t+j}`` of raw rewards, divided by the task's reward scale (spec
section 5: the scale is linear, so dividing the sum equals summing divided rewards), and the
bootstrap discount ``d = gamma^{n'}`` (0 when the window ended by termination). Then

1. ``pbar(s', .)`` = mean over the target ensemble of ``softmax(logits)``, ``(actions, atoms)``;
2. ``a* = argmax_a sum_j z_j pbar(s', a)_j`` over the task's own actions (the others masked);
3. ``T_j = clip(R~ + d z_j, v_min, v_max)`` with probabilities ``pbar(s', a*)_j`` projected onto
   the support (:func:`brc_mjx.core.categorical.project`, shared with the continuous learner);
4. ``L = sum_k mean_b [-sum_i y_i log softmax(logits_k(s, a))_i]`` over the ensemble members,
   the mean taken over the batch's valid samples only.

There is no entropy term (epsilon-greedy exploration, as DrQ(epsilon)); ``a*`` is chosen by the
target critics, as in C51. Observations are augmented by DrQ's random shift first.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from brc_mjx.agents.brc_discrete.networks import DiscreteNetworks
from brc_mjx.core import categorical


def random_shift(key: jax.Array, obs: jax.Array, pad: int) -> jax.Array:
    """DrQ's augmentation: pad every frame by ``pad`` pixels (edge replicated) and crop back at a
    random offset, one offset per sample (the same for all frames of its stack).

    Args:
      key: PRNG key.
      obs: ``(batch, stack, H, W)`` frames (any dtype); returned unchanged when ``pad == 0``.
      pad: the largest shift in pixels.
    """
    if pad == 0:
        return obs
    batch, _, height, width = obs.shape
    padded = jnp.pad(obs, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    offsets = jax.random.randint(key, (batch, 2), 0, 2 * pad + 1)  # (batch, [dy, dx])

    def crop(frames, offset):
        return jax.lax.dynamic_slice(frames, (0, offset[0], offset[1]),
                                     (frames.shape[0], height, width))

    return jax.vmap(crop)(padded, offsets)


def mean_probs(nets: DiscreteNetworks, critic_params, obs, task_id) -> jax.Array:
    """Ensemble-mean probabilities ``(batch, actions, atoms)``."""
    logits = nets.critic.apply(critic_params, obs, task_id)  # (ensemble, batch, actions, atoms)
    return jnp.mean(jax.nn.softmax(logits, axis=-1), axis=0)


def q_values(nets: DiscreteNetworks, critic_params, obs, task_id, action_mask) -> jax.Array:
    """Expected values ``(batch, actions)`` of the ensemble-mean distribution; ``-inf`` on the
    actions a task does not have (``action_mask`` ``(batch, actions)``, 1 on real actions)."""
    return masked_q(mean_probs(nets, critic_params, obs, task_id), nets.critic.atoms, action_mask)


def masked_q(probs: jax.Array, atoms: jax.Array, action_mask: jax.Array) -> jax.Array:
    """``(batch, actions)`` expected values of ``probs`` ``(batch, actions, atoms)``, ``-inf``
    where ``action_mask`` is 0."""
    return jnp.where(action_mask > 0, categorical.scalar_q(probs, atoms), -jnp.inf)


def nstep_target(next_probs: jax.Array, reward: jax.Array, discount: jax.Array,
                 atoms: jax.Array) -> jax.Array:
    """Categorical n-step target: ``T_j = clip(R + d z_j)`` carrying ``next_probs`` projected on
    the support (gradient stopped).

    Args:
      next_probs: ``(batch, atoms)`` ensemble-mean target probabilities at ``(s', a*)``.
      reward: ``(batch,)`` normalised n-step reward ``R~``.
      discount: ``(batch,)`` ``gamma^{n'}``, or 0 after a termination.
      atoms: ``(atoms,)`` the support.

    Returns:
      ``(batch, atoms)`` target probabilities.
    """
    shifted = reward[:, None] + discount[:, None] * atoms[None, :]  # (batch, atoms)
    y = categorical.project(shifted, next_probs, atoms.shape[0], atoms[0], atoms[-1])
    return jax.lax.stop_gradient(y)


def critic_loss(
    critic_params,
    target_critic_params,
    batch,
    reward_scale: jax.Array,
    action_mask: jax.Array,
    key: jax.Array,
    *,
    nets: DiscreteNetworks,
    augment_pad: int,
):
    """Cross-entropy of each critic's distribution at the taken action against the n-step target.

    Args:
      critic_params: online critic (differentiated; includes the task-embedding table).
      target_critic_params: held constant.
      batch: an n-step batch (``obs, action, reward, discount, next_obs, task_id, valid``).
      reward_scale: ``(batch,)`` the sample's task reward scale.
      action_mask: ``(batch, actions)`` 1 on the sample's task's actions.
      key: PRNG key of the augmentation.
      nets, augment_pad: static.

    Returns:
      ``(loss, metrics)``.
    """
    atoms = nets.critic.atoms
    obs, next_obs = batch.obs, batch.next_obs
    if augment_pad and obs.ndim == 4:
        key_obs, key_next = jax.random.split(key)
        obs = random_shift(key_obs, obs, augment_pad)
        next_obs = random_shift(key_next, next_obs, augment_pad)
    next_probs = mean_probs(nets, target_critic_params, next_obs, batch.task_id)  # (B, A, N)
    best = jnp.argmax(masked_q(next_probs, atoms, action_mask), axis=-1)  # (B,)
    best_probs = jnp.take_along_axis(next_probs, best[:, None, None], axis=1)[:, 0]  # (B, N)
    reward = batch.reward / reward_scale
    y = nstep_target(best_probs, reward, batch.discount, atoms)  # (B, N)

    logits = nets.critic.apply(critic_params, obs, batch.task_id)  # (E, B, A, N)
    taken = jnp.take_along_axis(logits, batch.action[None, :, None, None], axis=2)[:, :, 0]
    log_probs = jax.nn.log_softmax(taken, axis=-1)  # (E, B, N)
    weight = batch.valid.astype(jnp.float32)  # (B,) invalid samples count for nothing
    per_sample = -jnp.sum(y[None] * log_probs, axis=-1)  # (E, B)
    loss = jnp.sum(per_sample * weight[None]) / jnp.maximum(jnp.sum(weight), 1.0)
    q = categorical.scalar_q(jnp.mean(jnp.exp(log_probs), axis=0), atoms)  # (B,)
    mean_valid = lambda x: jnp.sum(x * weight) / jnp.maximum(jnp.sum(weight), 1.0)
    metrics = {
        "critic_loss": loss,
        "q_mean": mean_valid(q),
        "target_q_mean": mean_valid(categorical.scalar_q(y, atoms)),
        "normalized_reward_mean": mean_valid(reward),
        "valid_fraction": jnp.mean(weight),
    }
    return loss, metrics
