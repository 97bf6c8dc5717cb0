"""The QR-free orthogonal init (brc_mjx.core.orthogonal): exact orthogonality, flax's shape
semantics, and the Haar distribution checked against known moments and SciPy's independent
sampler."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from brc_mjx.core.orthogonal import householder_product, orthogonal, stiefel


def _samples(n: int, count: int, seed: int = 0, k: int | None = None) -> np.ndarray:
    keys = jax.random.split(jax.random.key(seed), count)
    return np.asarray(jax.jit(jax.vmap(lambda key: stiefel(key, n, k or n)))(keys), np.float64)


@pytest.mark.parametrize("shape", [(8, 8), (300, 40), (40, 300), (2, 3, 5, 7), (700, 700)])
def test_orthonormal_columns_or_rows_times_scale(shape):
    w = np.asarray(orthogonal(1.5)(jax.random.key(1), shape), np.float64)
    assert w.shape == shape
    flat = w.reshape(-1, shape[-1])
    gram = flat.T @ flat if flat.shape[0] >= flat.shape[1] else flat @ flat.T
    np.testing.assert_allclose(gram, 2.25 * np.eye(min(flat.shape)), atol=2e-5)


def test_column_axis_like_flax():
    w = np.asarray(orthogonal(1.0, column_axis=0)(jax.random.key(2), (6, 4, 5)), np.float64)
    flat = np.moveaxis(w, 0, -1).reshape(20, 6)  # columns along axis 0
    np.testing.assert_allclose(flat.T @ flat, np.eye(6), atol=1e-5)


def test_blocked_product_equals_reflector_by_reflector():
    """Blocks of 3 over 10 reflectors against H_1 ... H_k multiplied out in NumPy."""
    rng = np.random.default_rng(0)
    m, k = 12, 10
    v = np.tril(rng.normal(size=(m, k)), -1) + np.eye(m, k)
    tau = 2.0 / np.sum(v * v, axis=0)  # makes each H_j a reflection
    q = np.eye(m)
    for j in range(k):
        q = q @ (np.eye(m) - tau[j] * np.outer(v[:, j], v[:, j]))
    got = householder_product(jnp.asarray(v, jnp.float32), jnp.asarray(tau, jnp.float32), block=3)
    np.testing.assert_allclose(np.asarray(got), q[:, :k], atol=1e-5)


def test_haar_moments():
    """For Haar O(n): E tr Q = 0, E (tr Q)^2 = 1, E tr Q^2 = 1 (Diaconis-Shahshahani),
    E Q_ij^2 = 1/n, E Q_11^4 = 3 / (n (n + 2)), and det = +-1 with probability 1/2 each."""
    n, count = 5, 20000
    q = _samples(n, count)
    tr = np.trace(q, axis1=1, axis2=2)
    tr_sq = np.trace(q @ q, axis1=1, axis2=2)

    def close(x, expected, name):
        se = x.std() / np.sqrt(count)
        assert abs(x.mean() - expected) < 5 * se + 1e-9, (name, x.mean(), expected, se)

    close(tr, 0.0, "tr Q")
    close(tr ** 2, 1.0, "(tr Q)^2")
    close(tr_sq, 1.0, "tr Q^2")
    close(q[:, 2, 3] ** 2, 1.0 / n, "Q_23^2")
    close(q[:, 0, 0] ** 4, 3.0 / (n * (n + 2)), "Q_11^4")
    close((np.linalg.det(q) > 0).astype(float), 0.5, "P(det > 0)")


def test_unfixed_signs_are_not_haar():
    """The same test's statistic detects the classic mistake (no sign fix): tr Q is biased."""
    n, count = 5, 20000
    keys = jax.random.split(jax.random.key(0), count)
    q = np.asarray(jax.vmap(lambda key: jnp.linalg.qr(jax.random.normal(key, (n, n)))[0])(keys))
    tr = np.trace(q, axis1=1, axis2=2)
    assert abs(tr.mean()) > 5 * tr.std() / np.sqrt(count)


def test_same_distribution_as_scipy_ortho_group():
    """Two-sample KS tests against scipy.stats.ortho_group (an independent Haar sampler) on the
    trace and on one entry; and Stiefel columns against the first columns of SciPy's matrices."""
    n, count = 6, 4000
    ours = _samples(n, count, seed=3)
    ref = stats.ortho_group.rvs(n, size=count, random_state=np.random.default_rng(4))
    for name, f in (("trace", lambda q: np.trace(q, axis1=1, axis2=2)),
                    ("entry", lambda q: q[:, 1, 4])):
        assert stats.ks_2samp(f(ours), f(ref)).pvalue > 1e-3, name
    tall = _samples(n, count, seed=5, k=2)  # (6, 2) with orthonormal columns
    assert stats.ks_2samp(tall[:, 3, 1], ref[:, 3, 1]).pvalue > 1e-3
    assert stats.ks_2samp(np.einsum("sij,sij->s", tall[:, :2], tall[:, :2]),
                          np.einsum("sij,sij->s", ref[:, :2, :2], ref[:, :2, :2])).pvalue > 1e-3
