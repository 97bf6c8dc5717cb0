"""Multi-task diagnostics: gradient statistics against NumPy, per-task routing, logging."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config
from toy_env import ToyEnv

from brc_mjx import replay as replay_lib
from brc_mjx import train
from brc_mjx.agents import BRC
from brc_mjx.agents.brc import losses
from brc_mjx.agents.brc.learner import make_learner, reward_scales
from brc_mjx.analysis import diagnostics


def test_gradient_stats_hand_worked_and_against_numpy():
    grads = jnp.array([[1.0, 0.0], [0.0, 1.0], [-2.0, 0.2]])
    stats = diagnostics.gradient_stats(grads)
    n2 = np.sqrt(4.04)
    np.testing.assert_allclose(np.asarray(stats["grad_norm"]), [1.0, 1.0, n2], rtol=1e-6)
    # pairs (0,1): 0 (orthogonal is no conflict), (0,2): -2/n2, (1,2): 0.2/n2
    assert float(stats["conflict_rate"]) == pytest.approx(1 / 3)
    assert float(stats["mean_cosine"]) == pytest.approx((0 - 2 / n2 + 0.2 / n2) / 3, rel=1e-6)
    assert float(stats["grad_norm_var"]) == pytest.approx(np.var([1.0, 1.0, n2]), rel=1e-5)

    rng = np.random.default_rng(0)
    g = rng.normal(size=(5, 40))
    stats = diagnostics.gradient_stats(jnp.asarray(g, jnp.float32))
    cos = [g[i] @ g[j] / np.linalg.norm(g[i]) / np.linalg.norm(g[j])
           for i in range(5) for j in range(i + 1, 5)]
    assert float(stats["conflict_rate"]) == pytest.approx(np.mean(np.array(cos) < 0))
    assert float(stats["mean_cosine"]) == pytest.approx(np.mean(cos), abs=1e-6)
    np.testing.assert_allclose(np.asarray(stats["cosine"])[0, 1], cos[0], rtol=1e-5)


def test_sample_per_task_takes_each_row_from_its_task():
    example = replay_lib.example_transition(2, 1)
    state = replay_lib.init(example, num_tasks=3, capacity_per_task=8)
    for step in range(5):  # 5 filled slots; reward = 100 * task + slot
        batch = jax.tree.map(lambda x: jnp.zeros((3, *x.shape), x.dtype), example)
        batch = batch.replace(reward=jnp.arange(3, dtype=jnp.float32) * 100 + step,
                              task_id=jnp.arange(3, dtype=jnp.int32))
        state = replay_lib.add(state, batch)
    sample = replay_lib.sample_per_task(state, jax.random.key(1), 16)
    reward = np.asarray(sample.reward)  # (3, 16)
    assert reward.shape == (3, 16)
    np.testing.assert_array_equal(reward // 100, np.repeat(np.arange(3)[:, None], 16, 1))
    assert (reward % 100).max() < 5  # only filled slots


@pytest.fixture(scope="module")
def filled():
    """A toy learner and a replay filled by two epochs of the loop."""
    env = ToyEnv()
    cfg = tiny_config("/tmp/unused", warmup_env_steps=20)
    learner = make_learner(cfg.learner, env.obs_dim, env.action_dims)
    derived = train.derive(cfg, env)
    state = train.init_train_state(cfg, BRC(learner), env, derived)
    epoch = train.make_train_epoch(BRC(learner), env, cfg, derived)
    for _ in range(2):
        state, _ = epoch(state)
    return learner, state


def test_each_task_gradient_is_its_own_samples_gradient(filled):
    learner, state = filled
    fn = jax.jit(functools.partial(diagnostics.diagnose, learner, 8))
    key = jax.random.key(5)
    fn(state.learner, state.replay, key)  # compile
    with jax.transfer_guard("disallow"):
        diag = fn(state.learner, state.replay, key)
    diag = jax.device_get(diag)
    # Rebuild task 1's batch and loss exactly as documented: same keys, that task's rows only.
    key_sample, key_tasks = jax.random.split(key)
    batch = replay_lib.sample_per_task(state.replay, key_sample, 8)
    sub = jax.tree.map(lambda x: x[1], batch)
    key_loss = jax.random.split(jax.random.split(key_tasks, 2)[1])[0]
    lrn, cfg = state.learner, learner.cfg
    mask = learner.action_mask()[sub.task_id]
    scales = reward_scales(learner, lrn)[sub.task_id]
    (loss, _), grads = jax.value_and_grad(losses.critic_loss, has_aux=True)(
        lrn.critic_params, lrn.target_critic_params, lrn.actor_params, jnp.exp(lrn.log_alpha),
        sub, scales, mask, key_loss, nets=learner.nets, gamma=cfg.gamma)
    norm = np.sqrt(sum(float(jnp.sum(g ** 2)) for g in jax.tree.leaves(grads)))
    assert diag["critic_loss"][1] == pytest.approx(float(loss), rel=1e-5)
    assert diag["grad_norm"][1] == pytest.approx(norm, rel=1e-4)
    assert diag["entropy"].shape == diag["q_mean"].shape == (2,)
    assert 0.0 <= diag["conflict_rate"] <= 1.0
