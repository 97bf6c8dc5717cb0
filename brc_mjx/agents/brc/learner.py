"""The BRC learner: its state pytree and ``sgd_step`` (updates through ``core.update``).

One gradient step is critic -> Polyak target -> actor (using the new critic) -> temperature
(spec section 4), with AdamW for actor and critic and Adam(b1=0.5) for log alpha (section 7).
Rewards arrive raw and are divided by the per-task scale of :mod:`brc_mjx.core.normalizer` here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax

from brc_mjx.agents.brc import losses
from brc_mjx.agents.brc.networks import Networks, init_params, make_networks
from brc_mjx.config import LearnerConfig, validate
from brc_mjx.core import normalizer
from brc_mjx.core.update import apply_update, leading_mask


@flax.struct.dataclass
class LearnerState:
    """Everything the learner updates: params, optimiser states, target, temperature, stats."""

    actor_params: dict
    critic_params: dict  # includes the task-embedding table
    target_critic_params: dict  # Polyak copy of critic_params (embedding included)
    log_alpha: jax.Array  # () float32
    actor_opt_state: optax.OptState
    critic_opt_state: optax.OptState
    temperature_opt_state: optax.OptState
    normalizer: normalizer.NormalizerState
    policy_entropy: jax.Array  # (num_tasks,) EMA of -log pi per task (empirical entropy mode)
    steps: jax.Array  # () int32 gradient steps taken


@dataclasses.dataclass(frozen=True)
class Learner:
    """Static parts of a learner: config, modules, optimisers and the task action layout.

    Not a pytree: bind it with ``functools.partial`` before ``jax.jit``.
    """

    cfg: LearnerConfig
    nets: Networks
    actor_optimizer: optax.GradientTransformation
    critic_optimizer: optax.GradientTransformation
    temperature_optimizer: optax.GradientTransformation
    action_dims: tuple[int, ...]  # true action dim of each task
    action_dim: int  # padded action dim (the largest)
    obs_dim: int  # padded observation dim

    @property
    def num_tasks(self) -> int:
        return len(self.action_dims)

    def action_mask(self) -> jax.Array:
        """``(num_tasks, action_dim)`` 1 on a task's real action dims, 0 on padding."""
        return leading_mask(self.action_dims, self.action_dim)

    def target_entropy(self) -> jax.Array:
        """``(num_tasks,)`` H_target = -A_i / 2 (-A_max / 2 when padding is not masked)."""
        if self.cfg.mask_padded_actions:
            return -0.5 * jnp.asarray(self.action_dims, jnp.float32)
        return jnp.full((self.num_tasks,), -0.5 * self.action_dim, jnp.float32)


def make_learner(
    cfg: LearnerConfig, obs_dim: int, action_dims: Sequence[int], task_input: bool | None = None,
    action_dim: int | None = None,
) -> Learner:
    """Validate ``cfg`` and build the static learner for the tasks' (padded) sizes.

    ``task_input``: see :func:`brc_mjx.agents.brc.networks.make_networks` (None: with several
    tasks).
    ``action_dim``: the padded action size (None: the largest of ``action_dims``).
    """
    validate(cfg)
    action_dims = tuple(int(a) for a in action_dims)
    if not action_dims or min(action_dims) < 1:
        raise ValueError(f"every task needs an action dim >= 1, got {action_dims}")
    if obs_dim < 1:
        raise ValueError(f"obs_dim must be >= 1, got {obs_dim}")
    if action_dim is None:
        action_dim = max(action_dims)
    elif action_dim < max(action_dims):
        raise ValueError(f"action_dim {action_dim} is smaller than a task's {max(action_dims)}")

    def adamw(lr):
        return optax.adamw(
            lr, b1=cfg.adam_b1, b2=cfg.adam_b2, eps=cfg.adam_eps, weight_decay=cfg.weight_decay
        )

    return Learner(
        cfg=cfg,
        nets=make_networks(cfg.network, action_dim, len(action_dims),
                           scalar_critic=cfg.critic_loss == "mse", task_input=task_input),
        actor_optimizer=adamw(cfg.actor_lr),
        critic_optimizer=adamw(cfg.critic_lr),
        temperature_optimizer=optax.adam(cfg.temperature_lr, b1=cfg.temperature_b1),
        action_dims=action_dims,
        action_dim=action_dim,
        obs_dim=obs_dim,
    )


def init_state(
    learner: Learner, key: jax.Array, num_envs: int, max_episode_length: int
) -> LearnerState:
    """Fresh learner state; the target critic starts identical to the online critic."""
    critic_params, actor_params = init_params(
        learner.nets, key, learner.obs_dim, learner.action_dim
    )
    log_alpha = jnp.asarray(jnp.log(learner.cfg.init_alpha), jnp.float32)
    return LearnerState(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=jax.tree.map(jnp.copy, critic_params),
        log_alpha=log_alpha,
        actor_opt_state=learner.actor_optimizer.init(actor_params),
        critic_opt_state=learner.critic_optimizer.init(critic_params),
        temperature_opt_state=learner.temperature_optimizer.init(log_alpha),
        normalizer=normalizer.init(num_envs, learner.num_tasks, max_episode_length),
        policy_entropy=-learner.target_entropy() / 2.0,
        steps=jnp.zeros((), jnp.int32),
    )


def reward_scales(learner: Learner, state: LearnerState) -> jax.Array:
    """``(num_tasks,)`` current reward scale of every task (ones without normalisation)."""
    cfg = learner.cfg
    if not cfg.reward_normalization:
        return jnp.ones((learner.num_tasks,), jnp.float32)
    if cfg.entropy_scale_mode == "empirical":
        entropy = state.policy_entropy
    else:
        entropy = jnp.abs(learner.target_entropy()) / 2.0
    return normalizer.reward_scale(
        state.normalizer, jnp.exp(state.log_alpha), entropy, cfg.gamma, cfg.fallback_reward_scale
    )


def _task_mean(values: jax.Array, task_id: jax.Array, num_tasks: int):
    """Per-task mean of ``values`` and whether the task appears in the batch."""
    total = jax.ops.segment_sum(values, task_id, num_segments=num_tasks)
    count = jax.ops.segment_sum(jnp.ones_like(values), task_id, num_segments=num_tasks)
    return total / jnp.maximum(count, 1.0), count > 0


def sgd_step(
    learner: Learner,
    state: LearnerState,
    batch,
    key: jax.Array,
    axis_name: str | None = None,
) -> tuple[LearnerState, dict]:
    """One BRC gradient step: critic -> Polyak target -> actor -> temperature.

    Args:
      learner: static learner (bind with ``functools.partial`` before jit).
      state: learner state.
      batch: replay transitions (raw rewards), each field with a leading batch axis.
      key: PRNG key.
      axis_name: data-parallel axis for gradient averaging inside ``shard_map``.

    Returns:
      ``(state, metrics)`` with scalar metrics namespaced ``train/...``.
    """
    cfg = learner.cfg
    nets = learner.nets
    key_critic, key_actor = jax.random.split(key)
    action_mask = learner.action_mask()[batch.task_id]  # (batch, action_dim)
    target_entropy = learner.target_entropy()[batch.task_id]  # (batch,)
    scales = reward_scales(learner, state)  # (num_tasks,)
    alpha = jnp.exp(state.log_alpha)

    with jax.named_scope("critic_update"):
        critic_params, critic_opt_state, critic_metrics = apply_update(
            losses.CRITIC_LOSSES[cfg.critic_loss],
            state.critic_params,
            state.critic_opt_state,
            learner.critic_optimizer,
            state.target_critic_params,
            state.actor_params,
            alpha,
            batch,
            scales[batch.task_id],
            action_mask,
            key_critic,
            nets=nets,
            gamma=cfg.gamma,
            mask_padded=cfg.mask_padded_actions,
            axis_name=axis_name,
        )
        target_critic_params = optax.incremental_update(
            critic_params, state.target_critic_params, cfg.tau
        )
    with jax.named_scope("actor_update"):
        actor_params, actor_opt_state, actor_metrics = apply_update(
            losses.actor_loss,
            state.actor_params,
            state.actor_opt_state,
            learner.actor_optimizer,
            critic_params,
            alpha,
            batch,
            action_mask,
            key_actor,
            nets=nets,
            mask_padded=cfg.mask_padded_actions,
            axis_name=axis_name,
        )
    log_prob = actor_metrics.pop("log_prob")  # (batch,)
    with jax.named_scope("temperature_update"):
        log_alpha, temperature_opt_state, temperature_metrics = apply_update(
            losses.temperature_loss,
            state.log_alpha,
            state.temperature_opt_state,
            learner.temperature_optimizer,
            log_prob,
            target_entropy,
            axis_name=axis_name,
        )
    task_entropy, present = _task_mean(-log_prob, batch.task_id, learner.num_tasks)
    ema = cfg.empirical_entropy_ema
    policy_entropy = jnp.where(
        present, ema * state.policy_entropy + (1.0 - ema) * task_entropy, state.policy_entropy
    )

    critic_metrics["critic_grad_norm"] = critic_metrics.pop("grad_norm")
    actor_metrics["actor_grad_norm"] = actor_metrics.pop("grad_norm")
    temperature_metrics.pop("grad_norm")
    metrics = {
        f"train/{k}": v
        for k, v in {**critic_metrics, **actor_metrics, **temperature_metrics}.items()
    }
    metrics["train/reward_scale_mean"] = jnp.mean(scales)
    new_state = state.replace(
        actor_params=actor_params,
        critic_params=critic_params,
        target_critic_params=target_critic_params,
        log_alpha=log_alpha,
        actor_opt_state=actor_opt_state,
        critic_opt_state=critic_opt_state,
        temperature_opt_state=temperature_opt_state,
        policy_entropy=policy_entropy,
        steps=state.steps + 1,
    )
    return new_state, metrics
