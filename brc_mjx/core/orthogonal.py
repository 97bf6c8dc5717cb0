"""Haar-orthogonal weight init without a QR decomposition.

``nn.initializers.orthogonal`` draws a Gaussian matrix, QR-decomposes it (LAPACK ``geqrf`` then
``orgqr`` on a CPU) and fixes the column signs. For a square Gaussian matrix the Householder
reflectors that ``geqrf`` would find are themselves independent: after the first reflection the
remaining columns are again i.i.d. Gaussian (rotation invariance), so reflector ``j`` is made from
a fresh Gaussian vector of dimension ``m - j`` (Stewart 1980, "The efficient generation of random
orthogonal matrices"). :func:`orthogonal` therefore draws the reflectors directly and only forms
their product, in blocks of :data:`BLOCK` with the compact WY form ``I - V T V^T`` so that the work
is plain matrix products. The result has the same (Haar) distribution as flax's initializer, at
2-3x less time on a CPU for 2048-8192-wide kernels (``tests/test_orthogonal.py`` checks the
distribution against Haar moments and SciPy's sampler).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

BLOCK = 256  # reflectors per compact-WY block


def _reflectors(g: jax.Array):
    """Householder vectors ``V`` (unit lower-trapezoidal), ``tau`` and ``sign(diag R)`` made from
    the lower trapezoid of the Gaussian ``g`` (``m >= k``), column ``j`` from ``g[j:, j]``,
    as LAPACK's ``larfg`` makes them."""
    m, k = g.shape
    rows, cols = jnp.arange(m)[:, None], jnp.arange(k)[None, :]
    low = jnp.where(rows >= cols, g, 0.0)
    alpha = jnp.diagonal(g)
    beta = -jnp.where(alpha >= 0, 1.0, -1.0) * jnp.linalg.norm(low, axis=0)  # R's diagonal
    tau = (beta - alpha) / beta
    v = jnp.where(rows > cols, low / (alpha - beta), 0.0) + jnp.eye(m, k, dtype=g.dtype)
    return v, tau, jnp.sign(beta)


def householder_product(v: jax.Array, tau: jax.Array, block: int = BLOCK) -> jax.Array:
    """The first ``k`` columns of ``H_1 ... H_k``, ``H_j = I - tau_j v_j v_j^T``, accumulated
    backwards in blocks: ``Q <- (I - V_b T_b V_b^T) Q`` with ``T_b^{-1} = striu(V_b^T V_b) +
    diag(1 / tau_b)``. Block ``b`` touches only rows and columns from its first reflector on."""
    m, k = v.shape
    q = jnp.eye(m, k, dtype=v.dtype)
    for start in reversed(range(0, k, block)):
        end = min(start + block, k)
        vb = v[start:, start:end]
        t_inv = jnp.triu(vb.T @ vb, 1) + jnp.diag(1.0 / tau[start:end])
        t = lax.linalg.triangular_solve(t_inv, jnp.eye(end - start, dtype=v.dtype),
                                        left_side=True, lower=False)
        sub = q[start:, start:]
        q = q.at[start:, start:].set(sub - vb @ (t @ (vb.T @ sub)))
    return q


def stiefel(key: jax.Array, m: int, k: int, dtype=jnp.float32) -> jax.Array:
    """An ``(m, k)`` matrix (``m >= k``) with orthonormal columns, uniform (Haar) on the set of
    such matrices: ``Q sign(diag R)`` of the QR of an ``(m, k)`` Gaussian, in distribution."""
    v, tau, sign = _reflectors(jax.random.normal(key, (m, k), dtype))
    return householder_product(v, tau) * sign


def orthogonal(scale: float = 1.0, column_axis: int = -1):
    """A drop-in for ``flax.linen.initializers.orthogonal(scale)``: the kernel, flattened to
    ``(prod(other axes), shape[column_axis])``, has orthonormal columns (or rows, if wider than
    tall) times ``scale``."""

    def init(key, shape, dtype=jnp.float32, out_sharding=None):
        if out_sharding is not None:
            raise NotImplementedError("orthogonal init with out_sharding")
        if len(shape) < 2:
            raise ValueError(f"orthogonal init needs at least 2 axes, got shape {shape}")
        n_cols = shape[column_axis]
        n_rows = math.prod(shape) // n_cols
        q = stiefel(key, max(n_rows, n_cols), min(n_rows, n_cols), dtype)
        if n_rows < n_cols:
            q = q.T
        other = tuple(d for i, d in enumerate(shape) if i != column_axis % len(shape))
        return jnp.array(scale, dtype) * jnp.moveaxis(q.reshape(other + (n_cols,)), -1,
                                                      column_axis)

    return init
