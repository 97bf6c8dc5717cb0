"""The discrete BRC learner: its state pytree and ``sgd_step`` (critic -> Polyak target).

Shared with the continuous learner (:mod:`brc_mjx.agents.brc.learner`): the gradient-update helper
``apply_update``, the AdamW settings, the per-task reward normaliser and the categorical
projection. There is no actor and no temperature: actions are epsilon-greedy in the critics'
expected values (:mod:`brc_mjx.agents.brc_discrete.acting`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from brc_mjx.agents.brc_discrete import losses
from brc_mjx.agents.brc_discrete.networks import DiscreteNetworks, init_params, make_networks
from brc_mjx.config import DiscreteConfig, LearnerConfig, validate, validate_discrete
from brc_mjx.core import normalizer
from brc_mjx.core.update import apply_update, leading_mask


@flax.struct.dataclass
class DiscreteLearnerState:
    """Everything the discrete learner updates."""

    critic_params: dict  # includes the task-embedding table
    target_critic_params: dict  # Polyak copy of critic_params
    critic_opt_state: optax.OptState
    normalizer: normalizer.NormalizerState
    steps: jax.Array  # () int32 gradient steps taken


@dataclasses.dataclass(frozen=True)
class DiscreteLearner:
    """Static parts of a discrete learner (bind with ``functools.partial`` before ``jax.jit``)."""

    cfg: LearnerConfig
    discrete: DiscreteConfig
    nets: DiscreteNetworks
    critic_optimizer: optax.GradientTransformation
    action_dims: tuple[int, ...]  # number of actions of each task
    num_actions: int  # padded: the largest
    obs_shape: tuple[int, ...]
    obs_dtype: np.dtype

    @property
    def num_tasks(self) -> int:
        return len(self.action_dims)

    def action_mask(self) -> jax.Array:
        """``(num_tasks, num_actions)`` 1 on a task's actions, 0 on the ones it lacks."""
        return leading_mask(self.action_dims, self.num_actions)


def make_learner(cfg: LearnerConfig, discrete: DiscreteConfig, obs_shape: Sequence[int],
                 obs_dtype, action_dims: Sequence[int]) -> DiscreteLearner:
    """Validate the configs and build the static learner for the tasks' sizes."""
    validate(cfg)
    validate_discrete(discrete)
    if cfg.critic_loss != "categorical":
        raise ValueError(f"the discrete learner is categorical only; critic_loss is "
                         f"{cfg.critic_loss!r}")
    action_dims = tuple(int(a) for a in action_dims)
    if not action_dims or min(action_dims) < 2:
        raise ValueError(f"every discrete task needs >= 2 actions, got {action_dims}")
    obs_shape = tuple(int(d) for d in obs_shape)
    return DiscreteLearner(
        cfg=cfg,
        discrete=discrete,
        nets=make_networks(cfg.network, obs_shape, max(action_dims), len(action_dims)),
        critic_optimizer=optax.adamw(cfg.critic_lr, b1=cfg.adam_b1, b2=cfg.adam_b2,
                                     eps=cfg.adam_eps, weight_decay=cfg.weight_decay),
        action_dims=action_dims,
        num_actions=max(action_dims),
        obs_shape=obs_shape,
        obs_dtype=np.dtype(obs_dtype),
    )


def init_state(learner: DiscreteLearner, key: jax.Array, num_envs: int,
               max_episode_length: int) -> DiscreteLearnerState:
    """Fresh state; the target critic starts identical to the online critic."""
    critic_params = init_params(learner.nets, key, learner.obs_shape, learner.obs_dtype)
    return DiscreteLearnerState(
        critic_params=critic_params,
        target_critic_params=jax.tree.map(jnp.copy, critic_params),
        critic_opt_state=learner.critic_optimizer.init(critic_params),
        normalizer=normalizer.init(num_envs, learner.num_tasks, max_episode_length),
        steps=jnp.zeros((), jnp.int32),
    )


def reward_scales(learner: DiscreteLearner, state: DiscreteLearnerState) -> jax.Array:
    """``(num_tasks,)`` reward scale ``G_i / 10`` (spec section 5 without the entropy term:
    epsilon-greedy has none), or ones without normalisation."""
    cfg = learner.cfg
    if not cfg.reward_normalization:
        return jnp.ones((learner.num_tasks,), jnp.float32)
    zero = jnp.zeros((learner.num_tasks,), jnp.float32)
    return normalizer.reward_scale(state.normalizer, jnp.zeros(()), zero, cfg.gamma,
                                   cfg.fallback_reward_scale)


def sgd_step(learner: DiscreteLearner, state: DiscreteLearnerState, batch, key: jax.Array,
             axis_name: str | None = None) -> tuple[DiscreteLearnerState, dict]:
    """One gradient step of the critic ensemble (and embedding), then the Polyak target.

    Args:
      learner: static learner.
      state: learner state.
      batch: an n-step batch from :func:`brc_mjx.agents.brc_discrete.replay.sample` (raw rewards).
      key: PRNG key (augmentation).
      axis_name: data-parallel axis for gradient averaging inside ``shard_map``.

    Returns:
      ``(state, metrics)`` with scalar metrics namespaced ``train/...``.
    """
    scales = reward_scales(learner, state)  # (num_tasks,)
    with jax.named_scope("critic_update"):
        critic_params, critic_opt_state, metrics = apply_update(
            losses.critic_loss,
            state.critic_params,
            state.critic_opt_state,
            learner.critic_optimizer,
            state.target_critic_params,
            batch,
            scales[batch.task_id],
            learner.action_mask()[batch.task_id],
            key,
            nets=learner.nets,
            augment_pad=learner.discrete.augment_pad,
            axis_name=axis_name,
        )
        target_critic_params = optax.incremental_update(
            critic_params, state.target_critic_params, learner.cfg.tau)
    metrics["critic_grad_norm"] = metrics.pop("grad_norm")
    metrics = {f"train/{k}": v for k, v in metrics.items()}
    metrics["train/reward_scale_mean"] = jnp.mean(scales)
    return state.replace(
        critic_params=critic_params,
        target_critic_params=target_critic_params,
        critic_opt_state=critic_opt_state,
        steps=state.steps + 1,
    ), metrics
