"""Losses against hand-worked numbers and a NumPy reference, with stand-in networks.

The stand-in critic returns logits stored in its params and the stand-in actor returns a fixed
mean and log-std, so every quantity below can be worked out by hand.
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brc_mjx.agents.brc import losses, networks
from brc_mjx.agents.brc.networks import Networks

ATOMS = np.array([-1.0, 0.0, 1.0], np.float32)


class FakeCritic:
    """Returns ``params['logits']`` (ensemble, batch, atoms) whatever the input."""

    num_atoms = 3
    v_min, v_max = -1.0, 1.0
    atoms = jnp.asarray(ATOMS)

    def apply(self, params, obs, action, task_id):
        return params["logits"]


class FakeActor:
    """Returns ``(params['mean'], params['log_std'])`` whatever the input."""

    def apply(self, params, obs, task_input, task_id=None):
        return params["mean"], params["log_std"]


class Batch(NamedTuple):
    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    task_id: jax.Array


FAKE = Networks(critic=FakeCritic(), actor=FakeActor(), num_tasks=1)


def _batch(reward, terminated):
    n = len(reward)
    return Batch(
        obs=jnp.zeros((n, 2)), action=jnp.zeros((n, 1)), reward=jnp.asarray(reward, jnp.float32),
        next_obs=jnp.zeros((n, 2)), terminated=jnp.asarray(terminated),
        truncated=jnp.zeros((n,), bool), task_id=jnp.zeros((n,), jnp.int32),
    )


def test_td_target_hand_worked():
    probs = jnp.array([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]])
    # Row 0: r=0.25, gamma=0.5, alpha=0 -> T = [-0.25, 0.25, 0.75] -> y = [0.05, 0.5, 0.45].
    # Row 1: terminated -> every atom at r=0.25 -> 0.75 to atom 0, 0.25 to atom 1.
    y = losses.td_target(
        probs, jnp.zeros(2), jnp.array([0.25, 0.25]), jnp.array([False, True]),
        jnp.float32(0.0), 0.5, jnp.asarray(ATOMS),
    )
    np.testing.assert_allclose(np.asarray(y), [[0.05, 0.5, 0.45], [0.0, 0.75, 0.25]], atol=1e-6)
    # Entropy bonus: alpha=0.2, log pi=-1 shifts every atom by +0.2 before discounting:
    # T = 0.25 + 0.5 * ([-1, 0, 1] + 0.2) = [-0.15, 0.35, 0.85]
    # -0.15 -> 0.15 to -1, 0.85 to 0; 0.35 -> 0.65 / 0.35; 0.85 -> 0.15 / 0.85.
    y = losses.td_target(
        probs[:1], jnp.array([-1.0]), jnp.array([0.25]), jnp.array([False]),
        jnp.float32(0.2), 0.5, jnp.asarray(ATOMS),
    )
    want = [0.2 * 0.15, 0.2 * 0.85 + 0.3 * 0.65 + 0.5 * 0.15, 0.3 * 0.35 + 0.5 * 0.85]
    np.testing.assert_allclose(np.asarray(y[0]), want, atol=1e-6)


def _log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_critic_loss_is_summed_cross_entropy():
    # Online logits differ per critic; the target ensemble averages to p' = [0.2, 0.3, 0.5].
    online = np.log(np.array([[[0.1, 0.6, 0.3]], [[0.3, 0.3, 0.4]]], np.float32))  # (2, 1, 3)
    target = np.log(np.array([[[0.1, 0.4, 0.5]], [[0.3, 0.2, 0.5]]], np.float32))
    actor = {"mean": jnp.zeros((1, 1)), "log_std": jnp.full((1, 1), -10.0)}
    batch = _batch([0.5], [False])  # raw reward 0.5, scale 2 -> normalised 0.25
    loss, metrics = losses.critic_loss(
        {"logits": jnp.asarray(online)}, {"logits": jnp.asarray(target)}, actor,
        jnp.float32(0.0), batch, jnp.array([2.0]), jnp.ones((1, 1)), jax.random.key(0),
        nets=FAKE, gamma=0.5,
    )
    y = np.array([0.05, 0.5, 0.45])  # worked out in test_td_target_hand_worked
    want = -(y * np.log([0.1, 0.6, 0.3])).sum() - (y * np.log([0.3, 0.3, 0.4])).sum()
    assert float(loss) == pytest.approx(want, rel=1e-5)
    assert float(metrics["target_q_mean"]) == pytest.approx(-0.05 + 0.45, abs=1e-6)
    assert float(metrics["normalized_reward_mean"]) == pytest.approx(0.25)


def test_sample_policy_log_prob_matches_numpy():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(64, 3)).astype(np.float32)
    log_std = rng.uniform(-2, 0.5, size=(64, 3)).astype(np.float32)
    key = jax.random.key(3)
    action, log_prob = networks.sample_policy(key, jnp.asarray(mean), jnp.asarray(log_std),
                                              jnp.ones((64, 3)))
    eps = np.asarray(jax.random.normal(key, (64, 3)))
    u = mean + np.exp(log_std) * eps
    gauss = -0.5 * ((u - mean) / np.exp(log_std)) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    want = (gauss - np.log(1.0 - np.tanh(u.astype(np.float64)) ** 2)).sum(-1)
    np.testing.assert_allclose(np.asarray(action), np.tanh(u), atol=1e-6)
    np.testing.assert_allclose(np.asarray(log_prob), want, rtol=1e-4, atol=1e-4)


def test_actor_loss_hand_worked():
    # Critic probs [0.2, 0.3, 0.5] and [0.5, 0.3, 0.2] -> mean [0.35, 0.3, 0.35] -> Q = 0.
    # A second sample: [0.1, 0.2, 0.7] twice -> Q = 0.6.
    logits = np.log(np.array([[[0.2, 0.3, 0.5], [0.1, 0.2, 0.7]],
                              [[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]], np.float32))
    mean = jnp.array([[0.3], [-0.2]])
    log_std = jnp.array([[-1.0], [-0.5]])
    key = jax.random.key(7)
    loss, metrics = losses.actor_loss(
        {"mean": mean, "log_std": log_std}, {"logits": jnp.asarray(logits)}, jnp.float32(0.5),
        _batch([0.0, 0.0], [False, False]), jnp.ones((2, 1)), key, nets=FAKE,
    )
    _, log_prob = networks.sample_policy(key, mean, log_std, jnp.ones((2, 1)))
    want = np.mean(0.5 * np.asarray(log_prob) - np.array([0.0, 0.6]))
    assert float(loss) == pytest.approx(want, rel=1e-5)
    np.testing.assert_allclose(np.asarray(metrics["log_prob"]), np.asarray(log_prob))
    assert float(metrics["actor_q_mean"]) == pytest.approx(0.3, abs=1e-6)


def test_temperature_loss_hand_worked():
    # alpha = 0.5; H = -log pi = [1, 3]; H_target = [-0.5, -1.5]; gaps [1.5, 4.5] -> mean 3.
    log_alpha = jnp.log(jnp.float32(0.5))
    loss_fn = lambda la: losses.temperature_loss(la, jnp.array([-1.0, -3.0]),
                                                 jnp.array([-0.5, -1.5]))
    (loss, metrics), grad = jax.value_and_grad(loss_fn, has_aux=True)(log_alpha)
    assert float(loss) == pytest.approx(1.5)
    assert float(grad) == pytest.approx(1.5)  # d/dlog_alpha of alpha * 3 at alpha = 0.5
    assert float(metrics["alpha"]) == pytest.approx(0.5)
