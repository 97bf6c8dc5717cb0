"""BroNet critic ensemble, tanh-Gaussian actor and task embedding (spec sections 2-3).

Paper: https://arxiv.org/abs/2505.23150. The critic is a residual, LayerNorm-heavy MLP ("BroNet")
with a categorical head; two members with independent weights are built with ``nn.vmap`` over the
parameters and see the same input. One task-embedding table lives in the critic's parameters (it is
trained only by the critic loss and Polyak-copied into the target); the actor reads it through
:func:`task_embedding`, gradient-stopped.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from brc_mjx.config import NetworkConfig
from brc_mjx.core import categorical
from brc_mjx.core.blocks import (
    EMBEDDING_KEY,
    TRUNKS,
    BroNet,
    dense,
    has_task_input,
    l2_normalize,
    one_hot_task,
)

LOG_STD_MIN = -10.0
LOG_STD_MAX = 2.0


def task_head(features: int, num_heads: int, h: jax.Array, task_id: jax.Array | None, gain: float,
              dtype=jnp.float32) -> jax.Array:
    """A Dense output of ``features``; with ``num_heads > 1`` one head per task, each sample
    reading only its task's head (so other heads get zero gradient from it).

    Returns ``(batch, features)``.
    """
    out = dense(features * num_heads, gain=gain, dtype=dtype)(h)
    if num_heads == 1:
        return out
    out = out.reshape(*out.shape[:-1], num_heads, features)  # (batch, heads, features)
    return jnp.take_along_axis(out, task_id[:, None, None], axis=-2)[..., 0, :]


class CriticMember(nn.Module):
    """One critic: a BroNet (or MLP) trunk and a Dense head of ``num_outputs`` (logits or Q),
    one head per task when ``num_heads > 1``."""

    width: int
    depth: int
    num_outputs: int
    dtype: jnp.dtype = jnp.float32
    arch: str = "bronet"
    num_heads: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, task_id: jax.Array) -> jax.Array:
        h = TRUNKS[self.arch](self.width, self.depth, self.dtype)(x)
        out = task_head(self.num_outputs, self.num_heads, h, task_id, math.sqrt(2.0), self.dtype)
        # float32 whatever the compute dtype: softmax / cross-entropy / squared error stay exact.
        return out.astype(jnp.float32)


class Critic(nn.Module):
    """Ensemble of BroNet critics on concat(obs, action, task input).

    Returns ``(ensemble, batch, num_outputs)``: categorical logits (``num_outputs = num_atoms``)
    or a scalar Q (``num_outputs = 1``, the MSE ablation). The task input is the learned
    embedding (BRC), a one-hot vector, or nothing with one output head per task
    (``conditioning``); with ``num_tasks == 1`` there is none (single-task mode).
    """

    width: int
    depth: int
    num_atoms: int
    ensemble_size: int
    num_tasks: int
    embedding_dim: int
    v_min: float = -10.0
    v_max: float = 10.0
    dtype: jnp.dtype = jnp.float32
    arch: str = "bronet"
    conditioning: str = "embedding"
    num_outputs: int | None = None  # None: num_atoms (categorical)
    task_input: bool | None = None  # None: a task input iff num_tasks > 1

    @property
    def atoms(self) -> jax.Array:
        """The fixed categorical support ``(num_atoms,)``."""
        return categorical.support(self.num_atoms, self.v_min, self.v_max)

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array, task_id: jax.Array) -> jax.Array:
        inputs = [obs, action]
        multi = has_task_input(self.num_tasks, self.task_input)
        if multi and self.conditioning == "embedding":
            table = self.param(
                EMBEDDING_KEY,
                nn.initializers.normal(stddev=1.0),
                (self.num_tasks, self.embedding_dim),
            )
            inputs.append(l2_normalize(table[task_id]))  # (batch, embedding_dim)
        elif multi and self.conditioning == "onehot":
            inputs.append(one_hot_task(task_id, self.num_tasks))  # (batch, num_tasks)
        x = jnp.concatenate(inputs, axis=-1)
        ensemble = nn.vmap(
            CriticMember,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.ensemble_size,
        )
        heads = self.num_tasks if multi and self.conditioning == "heads" else 1
        member = ensemble(self.width, self.depth, self.num_outputs or self.num_atoms, self.dtype,
                          self.arch, heads, name="ensemble")
        return member(x, task_id)


class Actor(nn.Module):
    """Tanh-Gaussian policy head on a BroNet trunk; returns ``(mean, log_std)``.

    ``log_std = -10 + 12 * 0.5 * (1 + tanh(raw))`` keeps it in [-10, 2]. ``task_input`` (the
    task embedding or one-hot vector) is concatenated to the observation; with ``num_heads > 1``
    each task has its own mean and log-std heads instead.
    """

    action_dim: int
    width: int
    depth: int
    num_heads: int = 1

    @nn.compact
    def __call__(self, obs: jax.Array, task_input: jax.Array | None,
                 task_id: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
        x = obs if task_input is None else jnp.concatenate([obs, task_input], axis=-1)
        h = BroNet(self.width, self.depth)(x)
        mean = task_head(self.action_dim, self.num_heads, h, task_id, math.sqrt(2.0))
        raw_log_std = task_head(self.action_dim, self.num_heads, h, task_id, 1.0)
        log_std = LOG_STD_MIN + (LOG_STD_MAX - LOG_STD_MIN) * 0.5 * (1.0 + jnp.tanh(raw_log_std))
        return mean, log_std


class Networks(NamedTuple):
    """The two Flax modules of a BRC learner (static: never part of the state pytree)."""

    critic: Critic
    actor: Actor
    num_tasks: int
    conditioning: str = "embedding"  # embedding | onehot | heads (multi-task only)
    scalar: bool = False  # a scalar critic head (the MSE ablation) instead of categorical logits
    task_input: bool | None = None  # None: a task input iff num_tasks > 1

    @property
    def multi(self) -> bool:
        """Whether critic and actor are told the task (multi-task, or a transferred network)."""
        return has_task_input(self.num_tasks, self.task_input)


def make_networks(cfg: NetworkConfig, action_dim: int, num_tasks: int,
                  scalar_critic: bool = False, task_input: bool | None = None) -> Networks:
    """Build the critic ensemble and actor modules for ``action_dim`` (padded) and ``num_tasks``.

    ``scalar_critic``: a one-output critic head (the MSE ablation) instead of ``num_atoms`` logits.
    ``task_input``: give the networks the task (embedding, one-hot or heads) even with one task
    (a single new task fine-tuned from a multi-task network); None: only with several tasks.
    """
    multi = has_task_input(num_tasks, task_input)
    critic = Critic(
        width=cfg.critic_width,
        depth=cfg.critic_depth,
        num_atoms=cfg.num_atoms,
        ensemble_size=cfg.ensemble_size,
        num_tasks=num_tasks,
        embedding_dim=cfg.embedding_dim,
        v_min=cfg.v_min,
        v_max=cfg.v_max,
        dtype=jnp.bfloat16 if cfg.critic_compute_dtype == "bfloat16" else jnp.float32,
        arch=cfg.critic_arch,
        conditioning=cfg.task_conditioning,
        num_outputs=1 if scalar_critic else None,
        task_input=task_input,
    )
    heads = num_tasks if multi and cfg.task_conditioning == "heads" else 1
    actor = Actor(action_dim=action_dim, width=cfg.actor_width, depth=cfg.actor_depth,
                  num_heads=heads)
    return Networks(critic=critic, actor=actor, num_tasks=num_tasks,
                    conditioning=cfg.task_conditioning, scalar=scalar_critic,
                    task_input=task_input)


def task_embedding(nets: Networks, critic_params, task_id: jax.Array) -> jax.Array | None:
    """Gradient-stopped, L2-normalised task embeddings read from the critic's table.

    Returns ``(batch, embedding_dim)``, or ``None`` in single-task mode or without an embedding.
    """
    if not nets.multi or nets.conditioning != "embedding":
        return None
    table = critic_params["params"][EMBEDDING_KEY]
    return jax.lax.stop_gradient(l2_normalize(table[task_id]))


def actor_task_input(nets: Networks, critic_params, task_id: jax.Array) -> jax.Array | None:
    """What the actor sees of the task next to the observation: the critic's embedding
    (gradient-stopped), a one-hot vector, or nothing (single task, or per-task heads)."""
    if nets.multi and nets.conditioning == "onehot":
        return one_hot_task(task_id, nets.num_tasks)
    return task_embedding(nets, critic_params, task_id)


def init_params(nets: Networks, key: jax.Array, obs_dim: int, action_dim: int):
    """Initialise ``(critic_params, actor_params)`` for the given (padded) sizes."""
    key_critic, key_actor = jax.random.split(key)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    action = jnp.zeros((1, action_dim), jnp.float32)
    task_id = jnp.zeros((1,), jnp.int32)
    critic_params = nets.critic.init(key_critic, obs, action, task_id)
    actor_params = nets.actor.init(key_actor, obs, actor_task_input(nets, critic_params, task_id),
                                   task_id)
    return critic_params, actor_params


_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def sample_policy(
    key: jax.Array,
    mean: jax.Array,
    log_std: jax.Array,
    action_mask: jax.Array,
    mask_padded: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample of the tanh-Gaussian and its log-probability.

    Args:
      key: PRNG key.
      mean, log_std: ``(batch, action_dim)`` Gaussian parameters before the tanh.
      action_mask: ``(batch, action_dim)`` 1 for a task's real action dims, 0 for padding.
      mask_padded: if True, padded dims are zeroed in the action and excluded from log pi;
        if False (reference behaviour) they are sampled and counted like real dims.

    Returns:
      ``action`` ``(batch, action_dim)`` in [-1, 1] and ``log_prob`` ``(batch,)``, including the
      tanh Jacobian ``log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))``.
    """
    eps = jax.random.normal(key, mean.shape, mean.dtype)
    u = mean + jnp.exp(log_std) * eps
    log_normal = -0.5 * jnp.square(eps) - log_std - _HALF_LOG_2PI
    log_jacobian = 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))
    per_dim = log_normal - log_jacobian  # (batch, action_dim)
    action = jnp.tanh(u)
    if mask_padded:
        per_dim = per_dim * action_mask
        action = action * action_mask
    return action, jnp.sum(per_dim, axis=-1)


def deterministic_action(mean: jax.Array, action_mask: jax.Array) -> jax.Array:
    """Evaluation action ``tanh(mean)`` with padded dims zeroed."""
    return jnp.tanh(mean) * action_mask
