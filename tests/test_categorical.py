"""The categorical projection against a plain NumPy loop of the spec's floor/ceil rule."""

import numpy as np
import pytest

from brc_mjx.core import categorical


def project_reference(target_atoms, probs, num_atoms, v_min, v_max):
    """Spec section 4, step 4, one atom at a time."""
    delta = (v_max - v_min) / (num_atoms - 1)
    out = np.zeros((target_atoms.shape[0], num_atoms), np.float64)
    for b in range(target_atoms.shape[0]):
        for j in range(target_atoms.shape[1]):
            t = min(max(float(target_atoms[b, j]), v_min), v_max)
            pos = (t - v_min) / delta
            lower, upper = int(np.floor(pos)), int(np.ceil(pos))
            p = float(probs[b, j])
            if lower == upper:
                out[b, lower] += p
            else:
                out[b, lower] += p * (upper - pos)
                out[b, upper] += p * (pos - lower)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_matches_reference_loop(seed):
    rng = np.random.default_rng(seed)
    n, batch = 101, 16
    z = np.linspace(-10.0, 10.0, n)
    probs = rng.dirichlet(np.ones(n), size=batch).astype(np.float32)
    targets = rng.uniform(-14.0, 14.0, size=(batch, n))  # many clipped at both ends
    targets[0] = z  # every atom exactly on a support point
    targets[1] = np.round(rng.uniform(-10, 10, size=n) / 0.2) * 0.2  # on-grid, shuffled
    targets[2] = 25.0  # all clipped to v_max
    targets[3] = -25.0  # all clipped to v_min
    targets = targets.astype(np.float32)
    got = np.asarray(categorical.project(targets, probs, n, -10.0, 10.0))
    want = project_reference(targets, probs, n, -10.0, 10.0)
    np.testing.assert_allclose(got, want, atol=2e-6)
    np.testing.assert_allclose(got.sum(-1), probs.sum(-1), rtol=1e-5)  # mass is conserved
    assert got[2, -1] == pytest.approx(1.0, abs=1e-6)
    assert got[3, 0] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(got[0], probs[0], atol=1e-6)  # identity when on the grid


def test_projection_hand_worked_three_atoms():
    # Support {-1, 0, 1}; T = [-0.25, 0.25, 0.75] with p' = [0.2, 0.3, 0.5]:
    # -0.25 -> 0.25 to -1, 0.75 to 0; 0.25 -> 0.75 to 0, 0.25 to 1; 0.75 -> 0.25 to 0, 0.75 to 1.
    got = categorical.project(
        np.array([[-0.25, 0.25, 0.75]], np.float32), np.array([[0.2, 0.3, 0.5]], np.float32),
        3, -1.0, 1.0,
    )
    np.testing.assert_allclose(np.asarray(got), [[0.05, 0.5, 0.45]], atol=1e-6)


def test_support_and_scalar_q():
    z = np.asarray(categorical.support(101, -10.0, 10.0))
    assert z.shape == (101,)
    np.testing.assert_allclose(z[:3], [-10.0, -9.8, -9.6], atol=1e-6)
    assert z[50] == pytest.approx(0.0, abs=1e-6) and z[-1] == pytest.approx(10.0)
    q = categorical.scalar_q(np.array([[0.2, 0.3, 0.5]], np.float32), np.array([-1.0, 0.0, 1.0]))
    assert float(q[0]) == pytest.approx(0.3, abs=1e-6)
