"""The categorical value support and the TD-target projection (spec section 4).

Support ``z_j = v_min + j * dz`` (default 101 atoms on [-10, 10], dz = 0.2). The projection of
shifted atoms onto the support is written as a "hat" kernel, which is the floor/ceil rule of the
spec in closed form: an atom at fractional position ``b`` gives weight ``max(0, 1 - |b - i|)`` to
support point ``i``, i.e. ``upper - b`` to ``floor(b)``, ``b - lower`` to ``ceil(b)``, and its
whole mass to ``i`` when ``b == i`` exactly. It is one batched contraction, no loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def support(num_atoms: int, v_min: float, v_max: float) -> jax.Array:
    """The atoms ``z_j`` as a float32 vector of length ``num_atoms``."""
    return jnp.linspace(v_min, v_max, num_atoms, dtype=jnp.float32)


def project(
    target_atoms: jax.Array, probs: jax.Array, num_atoms: int, v_min: float, v_max: float
) -> jax.Array:
    """Project a distribution with atoms at ``target_atoms`` onto the fixed support.

    Args:
      target_atoms: ``(batch, atoms)`` positions T_j of the shifted atoms (clipped here to
        [v_min, v_max]).
      probs: ``(batch, atoms)`` probabilities p'_j of those atoms.
      num_atoms, v_min, v_max: the fixed support.

    Returns:
      ``(batch, num_atoms)`` projected probabilities (same total mass as ``probs``).
    """
    delta = (v_max - v_min) / (num_atoms - 1)
    b = (jnp.clip(target_atoms, v_min, v_max) - v_min) / delta  # (batch, atoms) in [0, N-1]
    grid = jnp.arange(num_atoms, dtype=b.dtype)  # (N,)
    weight = jnp.clip(1.0 - jnp.abs(b[..., :, None] - grid), 0.0, 1.0)  # (batch, atoms, N)
    return jnp.einsum("bj,bji->bi", probs, weight)


def scalar_q(probs: jax.Array, atoms: jax.Array) -> jax.Array:
    """Expected value ``sum_j z_j p_j`` over the last axis."""
    return jnp.sum(probs * atoms, axis=-1)
