"""BroNet blocks shared by the agents: the orthogonally initialised dense layer, LayerNorm,
the BroNet trunk and its plain-MLP ablation, and small task-input helpers (paper:
https://arxiv.org/abs/2505.23150)."""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from brc_mjx.core.orthogonal import orthogonal

LAYERNORM_EPS = 1e-6
EMBEDDING_KEY = "task_embedding"  # the task-embedding table's name in a critic's parameters


def dense(features: int, gain: float = math.sqrt(2.0), dtype=jnp.float32) -> nn.Dense:
    """Dense layer with orthogonal kernel init of the given gain and zero bias.

    ``dtype`` is the compute dtype; parameters are always float32.
    """
    return nn.Dense(
        features,
        kernel_init=orthogonal(gain),
        bias_init=nn.initializers.zeros,
        dtype=dtype,
        param_dtype=jnp.float32,
    )


def layer_norm(dtype) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LAYERNORM_EPS, dtype=dtype, param_dtype=jnp.float32)


class BroNet(nn.Module):
    """BroNet trunk: Dense -> LN -> ReLU, then ``depth`` residual blocks.

    Each block computes ``h + LN(Dense(ReLU(LN(Dense(h)))))`` with no activation after the add.
    """

    width: int
    depth: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        layer = lambda: dense(self.width, dtype=self.dtype)
        h = nn.relu(layer_norm(self.dtype)(layer()(x)))
        for _ in range(self.depth):
            u = nn.relu(layer_norm(self.dtype)(layer()(h)))
            u = layer_norm(self.dtype)(layer()(u))
            h = h + u
        return h


class MLP(nn.Module):
    """Plain ablation trunk: ``1 + 2 depth`` Dense -> ReLU layers (BroNet's dense layer count),
    no LayerNorm, no residual connection."""

    width: int
    depth: int
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        h = x
        for _ in range(1 + 2 * self.depth):
            h = nn.relu(dense(self.width, dtype=self.dtype)(h))
        return h


TRUNKS = {"bronet": BroNet, "mlp": MLP}


def l2_normalize(x: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Normalise the last axis of ``x`` to unit L2 norm."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def has_task_input(num_tasks: int, task_input: bool | None) -> bool:
    """Whether the networks are told the task: as asked, else only with several tasks."""
    return num_tasks > 1 if task_input is None else task_input


def one_hot_task(task_id: jax.Array, num_tasks: int) -> jax.Array:
    """``(batch, num_tasks)`` float32 one-hot task vectors."""
    return jax.nn.one_hot(task_id, num_tasks, dtype=jnp.float32)
