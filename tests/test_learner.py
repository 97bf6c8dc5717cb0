"""sgd_step: jit, determinism, Polyak target, and the critic learning a tiny fixed batch."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brc_mjx.agents.brc.learner import init_state, make_learner, sgd_step
from brc_mjx.config import LearnerConfig, NetworkConfig
from brc_mjx.replay import Transition


def _setup(width=32, tau=0.005):
    cfg = LearnerConfig(network=NetworkConfig(critic_width=width, actor_width=32), tau=tau)
    learner = make_learner(cfg, obs_dim=5, action_dims=(2, 3))
    state = init_state(learner, jax.random.key(0), num_envs=4, max_episode_length=10)
    rng = np.random.default_rng(0)
    n = 32
    batch = Transition(
        obs=jnp.asarray(rng.normal(size=(n, 5)), jnp.float32),
        action=jnp.asarray(rng.uniform(-1, 1, (n, 3)), jnp.float32),
        reward=jnp.asarray(rng.uniform(0, 1, n), jnp.float32),
        next_obs=jnp.asarray(rng.normal(size=(n, 5)), jnp.float32),
        terminated=jnp.asarray(rng.random(n) < 0.2),
        truncated=jnp.zeros(n, bool),
        task_id=jnp.asarray(np.arange(n) % 2, jnp.int32),
    )
    return learner, state, batch


def test_sgd_step_jits_is_deterministic_and_polyak_updates_target():
    learner, state, batch = _setup(tau=0.25)
    step = jax.jit(functools.partial(sgd_step, learner))
    s1, m1 = step(state, batch, jax.random.key(1))
    s2, m2 = step(state, batch, jax.random.key(1))
    jax.tree.map(np.testing.assert_array_equal, s1, s2)  # bit-identical for a fixed key
    assert all(np.isfinite(float(v)) for v in m1.values())
    # target' = tau * critic' + (1 - tau) * target, on every leaf (embedding table included)
    jax.tree.map(
        lambda new, old, tgt: np.testing.assert_allclose(
            np.asarray(tgt), 0.25 * np.asarray(new) + 0.75 * np.asarray(old), rtol=1e-5,
            atol=1e-6),
        s1.critic_params, state.target_critic_params, s1.target_critic_params,
    )
    assert int(s1.steps) == 1
    s3, _ = step(state, batch, jax.random.key(2))
    assert not np.allclose(np.asarray(s3.log_alpha), np.asarray(s1.log_alpha)) or not np.allclose(
        jax.tree.leaves(s3.actor_params)[0], jax.tree.leaves(s1.actor_params)[0])


def test_temperature_moves_toward_target_entropy():
    learner, state, batch = _setup()
    step = jax.jit(functools.partial(sgd_step, learner))
    s, m = step(state, batch, jax.random.key(1))
    # At init the policy is nearly deterministic (log std ~ -4): entropy far below target,
    # so the temperature loss gradient must raise alpha.
    assert float(m["train/entropy_gap"]) < 0
    assert float(s.log_alpha) > float(state.log_alpha)


def test_critic_loss_goes_down_on_a_tiny_fixed_batch():
    learner, state, batch = _setup(width=64)

    @jax.jit
    def run(state, key):
        def body(state, key):
            return sgd_step(learner, state, batch, key)

        return jax.lax.scan(body, state, jax.random.split(key, 300))

    _, metrics = run(state, jax.random.key(3))
    loss = np.asarray(metrics["train/critic_loss"])
    assert np.all(np.isfinite(loss))
    assert loss[-20:].mean() < 0.7 * loss[:20].mean(), (loss[:5], loss[-5:])


def test_make_learner_rejects_bad_config():
    with pytest.raises(ValueError, match="gamma must be in"):
        make_learner(LearnerConfig(gamma=1.0), 4, (1,))
    with pytest.raises(ValueError, match="action dim >= 1"):
        make_learner(LearnerConfig(), 4, (0, 2))


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_every_critic_matmul_forward_and_backward_runs_in_the_compute_dtype(dtype):
    """On a GPU the critic's FLOPs reach the bf16 tensor cores only if every matmul of the
    forward and backward pass takes bf16 operands: none may fall back to float32."""
    cfg = LearnerConfig(network=NetworkConfig(critic_width=64, actor_width=32,
                                              critic_compute_dtype=dtype))
    learner = make_learner(cfg, 5, (2, 3))
    state = init_state(learner, jax.random.key(0), num_envs=4, max_episode_length=10)
    obs, act, tid = jnp.ones((8, 5)), jnp.zeros((8, 3)), jnp.zeros(8, jnp.int32)

    def loss(params):
        return learner.nets.critic.apply(params, obs, act, tid).sum()

    short = {"bfloat16": "bf16", "float32": "f32"}[dtype]
    for fn, matmuls in ((loss, 6), (jax.grad(loss), 6 + 11)):
        text = jax.jit(fn).lower(state.critic_params).as_text()
        operands = [re.search(r": \((.*?)\) ->", line).group(1)
                    for line in text.splitlines() if "stablehlo.dot_general" in line]
        # embedding-input block, 4 hidden layers (2 residual blocks), the 101-atom head; the
        # backward adds an input and a weight gradient per layer (the first layer's input
        # gradient, towards the observation, is not needed)
        assert len(operands) == matmuls
        for pair in operands:
            assert re.findall(r"x([a-z]+[0-9]*)>", pair) == [short, short], pair


def test_bfloat16_critic_compute_keeps_float32_params_and_tracks_float32():
    cfg32 = LearnerConfig(network=NetworkConfig(critic_width=64, actor_width=32))
    cfg16 = LearnerConfig(network=NetworkConfig(critic_width=64, actor_width=32,
                                                critic_compute_dtype="bfloat16"))
    l32 = make_learner(cfg32, 5, (2, 3))
    l16 = make_learner(cfg16, 5, (2, 3))
    state = init_state(l32, jax.random.key(0), num_envs=4, max_episode_length=10)
    obs, act = jnp.ones((8, 5)), jnp.zeros((8, 3))
    tid = jnp.zeros(8, jnp.int32)
    logits32 = l32.nets.critic.apply(state.critic_params, obs, act, tid)
    logits16 = l16.nets.critic.apply(state.critic_params, obs, act, tid)  # same fp32 params
    assert logits16.dtype == jnp.float32
    assert not np.array_equal(np.asarray(logits32), np.asarray(logits16))  # really bf16 math
    np.testing.assert_allclose(np.asarray(logits16), np.asarray(logits32), atol=0.1)
    _, _, batch = _setup()
    s16, m = jax.jit(functools.partial(sgd_step, l16))(state, batch, jax.random.key(1))
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(s16.critic_params))
    assert np.isfinite(float(m["train/critic_loss"]))
