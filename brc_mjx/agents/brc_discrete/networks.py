"""The discrete-action BRC critic: encoder -> task embedding -> BroNet -> categorical head per
action (the paper's Atari variant of BRC, on DrQ(epsilon); https://arxiv.org/abs/2505.23150).

Image observations ``(stack, H, W)`` uint8 go through the Nature-DQN convolutional encoder
(scaled to [0, 1] on the device); flat observations go straight to the trunk. In multi-task mode
the L2-normalised task embedding is joined *after* the encoder. The head is one Dense layer with
``num_actions * num_atoms`` outputs, read as ``(num_actions, num_atoms)`` logits over the same
fixed support as the continuous critic. Members of the ensemble (encoder included) have
independent weights; one embedding table is shared by them, as in
:mod:`brc_mjx.agents.brc.networks`.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from brc_mjx.config import NetworkConfig
from brc_mjx.core import categorical
from brc_mjx.core.blocks import EMBEDDING_KEY, BroNet, dense, has_task_input, l2_normalize
from brc_mjx.core.orthogonal import orthogonal

#: Nature-DQN encoder (Mnih et al. 2015), as in DrQ(epsilon): (features, kernel, stride).
NATURE_CONVS = ((32, 8, 4), (64, 4, 2), (64, 3, 1))


_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID",
                                        dimension_numbers=_DIMENSIONS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv_matmul_grad(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """A VALID convolution (NHWC input, HWIO kernel) whose kernel gradient is a matmul of image
    patches with the output gradient.

    Why: inside a loop (``lax.scan``: the training epoch), XLA's CPU backend computed the
    kernel gradient of ``conv_general_dilated`` ~25x slower than outside one (170 vs 15 ms per
    update of the Nature encoder at batch 32, jax 0.9.2, 2 cores); as a matmul it takes the same
    time in and out of loops. The forward pass and the input gradient stay convolutions.
    """
    return _conv(x, kernel, stride)


def _conv_fwd(x, kernel, stride):
    return _conv(x, kernel, stride), (x, kernel)


def _conv_bwd(stride, residuals, grad_out):
    x, kernel = residuals
    kh, kw, cin, cout = kernel.shape
    grad_x = jax.vjp(lambda x: _conv(x, kernel, stride), x)[1](grad_out)[0]
    # (batch, H', W', cin * kh * kw), features ordered (cin, kh, kw)
    patches = jax.lax.conv_general_dilated_patches(x, (kh, kw), (stride, stride), "VALID",
                                                   dimension_numbers=_DIMENSIONS)
    grad_kernel = jnp.einsum("bhwk,bhwf->kf", patches, grad_out)  # (cin * kh * kw, cout)
    grad_kernel = grad_kernel.reshape(cin, kh, kw, cout).transpose(1, 2, 0, 3)
    return grad_x, grad_kernel.astype(kernel.dtype)


conv_matmul_grad.defvjp(_conv_fwd, _conv_bwd)


class Conv(nn.Module):
    """VALID convolution + bias with orthogonal (gain sqrt 2) kernel init and zero bias."""

    features: int
    kernel: int
    stride: int
    matmul_grad: bool = False  # kernel gradient as a patches matmul (fast in CPU loops)
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        shape = (self.kernel, self.kernel, x.shape[-1], self.features)
        kernel = self.param("kernel", orthogonal(math.sqrt(2.0)), shape,
                            jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        conv = conv_matmul_grad if self.matmul_grad else _conv
        return conv(x, kernel.astype(self.dtype), self.stride) + bias.astype(self.dtype)


class NatureEncoder(nn.Module):
    """Three ReLU convolutions on a ``(batch, stack, H, W)`` uint8 frame stack, flattened."""

    matmul_grad: bool = False
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        x = obs.astype(self.dtype) / 255.0
        x = jnp.transpose(x, (0, 2, 3, 1))  # (batch, H, W, stack): channels last
        for features, kernel, stride in NATURE_CONVS:
            x = nn.relu(Conv(features, kernel, stride, self.matmul_grad, self.dtype)(x))
        return x.reshape(x.shape[0], -1)  # (batch, 3136) for 84 x 84


def is_image(obs_shape: tuple[int, ...]) -> bool:
    """Whether observations of this shape are frame stacks (go through the encoder)."""
    return len(obs_shape) == 3


class DiscreteCriticMember(nn.Module):
    """One critic: encoder (images), task input, BroNet, ``(actions, atoms)`` logits."""

    width: int
    depth: int
    num_actions: int
    num_atoms: int
    image: bool
    dtype: jnp.dtype = jnp.float32
    matmul_grad: bool = False

    @nn.compact
    def __call__(self, obs: jax.Array, task_input: jax.Array | None) -> jax.Array:
        if self.image:
            h = NatureEncoder(self.matmul_grad, self.dtype)(obs)
        else:
            h = obs.astype(jnp.float32)
        if task_input is not None:
            h = jnp.concatenate([h.astype(jnp.float32), task_input], axis=-1)
        h = BroNet(self.width, self.depth, self.dtype)(h)
        logits = dense(self.num_actions * self.num_atoms, dtype=self.dtype)(h)
        # float32 whatever the compute dtype: softmax and cross-entropy stay exact.
        return logits.reshape(-1, self.num_actions, self.num_atoms).astype(jnp.float32)


class DiscreteCritic(nn.Module):
    """Ensemble of discrete critics; returns logits ``(ensemble, batch, actions, atoms)``."""

    width: int
    depth: int
    num_actions: int
    num_atoms: int
    ensemble_size: int
    num_tasks: int
    embedding_dim: int
    image: bool
    v_min: float = -10.0
    v_max: float = 10.0
    dtype: jnp.dtype = jnp.float32
    task_input: bool | None = None  # None: a task embedding iff num_tasks > 1
    matmul_grad: bool = False  # encoder kernel gradients as matmuls (see conv_matmul_grad)

    @property
    def atoms(self) -> jax.Array:
        """The fixed categorical support ``(num_atoms,)``."""
        return categorical.support(self.num_atoms, self.v_min, self.v_max)

    @nn.compact
    def __call__(self, obs: jax.Array, task_id: jax.Array) -> jax.Array:
        embedding = None
        if has_task_input(self.num_tasks, self.task_input):
            table = self.param(EMBEDDING_KEY, nn.initializers.normal(stddev=1.0),
                               (self.num_tasks, self.embedding_dim))
            embedding = l2_normalize(table[task_id])  # (batch, embedding_dim)
        # Members one after another, not nn.vmap: vmapping convolutions over their parameters
        # turns them into grouped convolutions (a 2-member update at batch 32 on the CPU:
        # 1.8 updates/s vmapped, 2.9 as a loop, before conv_matmul_grad).
        members = [
            DiscreteCriticMember(self.width, self.depth, self.num_actions, self.num_atoms,
                                 self.image, self.dtype, self.matmul_grad,
                                 name=f"member_{k}")(obs, embedding)
            for k in range(self.ensemble_size)
        ]
        return jnp.stack(members)


class DiscreteNetworks(NamedTuple):
    """The static critic module of a discrete learner (never part of the state pytree)."""

    critic: DiscreteCritic
    num_tasks: int


def make_networks(cfg: NetworkConfig, obs_shape: tuple[int, ...], num_actions: int,
                  num_tasks: int, matmul_grad: bool | None = None) -> DiscreteNetworks:
    """The critic ensemble for observations of ``obs_shape`` and ``num_actions`` (padded).

    ``matmul_grad``: compute the encoder's kernel gradients as matmuls (None: on CPU backends,
    where XLA's in-loop convolution kernel gradients are slow; see :func:`conv_matmul_grad`).
    """
    if matmul_grad is None:
        matmul_grad = jax.default_backend() == "cpu"
    critic = DiscreteCritic(
        width=cfg.critic_width,
        depth=cfg.critic_depth,
        num_actions=num_actions,
        num_atoms=cfg.num_atoms,
        ensemble_size=cfg.ensemble_size,
        num_tasks=num_tasks,
        embedding_dim=cfg.embedding_dim,
        image=is_image(obs_shape),
        v_min=cfg.v_min,
        v_max=cfg.v_max,
        dtype=jnp.bfloat16 if cfg.critic_compute_dtype == "bfloat16" else jnp.float32,
        matmul_grad=matmul_grad,
    )
    return DiscreteNetworks(critic=critic, num_tasks=num_tasks)


def init_params(nets: DiscreteNetworks, key: jax.Array, obs_shape: tuple[int, ...], obs_dtype):
    """Initial critic parameters (embedding table included)."""
    obs = jnp.zeros((1, *obs_shape), obs_dtype)
    return nets.critic.init(key, obs, jnp.zeros((1,), jnp.int32))
