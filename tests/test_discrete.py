"""The discrete (Atari) BRC learner: per-action categorical target and loss against hand-worked
numbers, epsilon-greedy acting, DrQ's random shift, the networks' shapes, and the one-jit loop
on a toy chain MDP and on an EnvPool Atari game."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from discrete_toy_env import chain_env

from brc_mjx.agents.brc_discrete import acting, losses
from brc_mjx.agents.brc_discrete.learner import make_learner
from brc_mjx.agents.brc_discrete.networks import init_params
from brc_mjx.agents.brc_discrete.replay import NStepBatch
from brc_mjx.config import (
    DiscreteConfig,
    EnvConfig,
    LearnerConfig,
    MeshConfig,
    NetworkConfig,
    TrainConfig,
)

ATOMS = np.array([-2.0, -1.0, 0.0, 1.0, 2.0], np.float32)


class FixedCritic:
    """A stand-in critic whose logits are its parameters (so the loss is hand-checkable)."""

    atoms = jnp.asarray(ATOMS)

    def apply(self, params, obs, task_id):
        del obs, task_id
        return params["logits"]  # (ensemble, batch, actions, atoms)


def _log(p):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(p, np.float32))


def test_nstep_target_by_hand():
    # R = 0.5, d = 0.9: T = [-1.3, -0.4, 0.5, 1.4, 2.3 -> 2]; positions b = T + 2.
    p = jnp.asarray([[0.1, 0.1, 0.2, 0.3, 0.3]])
    y = losses.nstep_target(p, jnp.asarray([0.5]), jnp.asarray([0.9]), jnp.asarray(ATOMS))
    np.testing.assert_allclose(y[0], [0.03, 0.11, 0.16, 0.28, 0.42], atol=1e-6)
    # termination (d = 0): every atom lands on 0.5, half on atom 2 and half on atom 3
    y = losses.nstep_target(p, jnp.asarray([0.5]), jnp.asarray([0.0]), jnp.asarray(ATOMS))
    np.testing.assert_allclose(y[0], [0, 0, 0.5, 0.5, 0], atol=1e-6)


def test_critic_loss_by_hand_per_action_with_mask_and_invalid_samples():
    # Target critic (ensemble of 2 with equal logits): action 0 has Q = 0, action 1 Q = 0.6,
    # action 2 would be best (Q = 2) but the task has only 2 actions: a* = 1.
    target_row = np.stack([_log([0.1, 0.2, 0.4, 0.2, 0.1]), _log([0.1, 0.1, 0.2, 0.3, 0.3]),
                           _log([0, 0, 0, 0, 1.0])])
    target_row = np.nan_to_num(target_row, neginf=-50.0)
    target = np.stack([target_row, target_row])[:, None]  # (E=2, B=1, A=3, N=5)
    target = np.concatenate([target, target], axis=1)  # B = 2 (the second sample is invalid)
    rng = np.random.default_rng(0)
    online = rng.normal(size=(2, 2, 3, 5)).astype(np.float32)
    batch = NStepBatch(obs=jnp.zeros((2, 1)), action=jnp.asarray([0, 2], jnp.int32),
                  reward=jnp.asarray([1.0, 7.0]), discount=jnp.asarray([0.9, 0.5]),
                  next_obs=jnp.zeros((2, 1)), task_id=jnp.asarray([0, 0], jnp.int32),
                  valid=jnp.asarray([True, False]))
    nets = type("Nets", (), {"critic": FixedCritic()})()
    loss, metrics = losses.critic_loss(
        {"logits": jnp.asarray(online)}, {"logits": jnp.asarray(target)}, batch,
        reward_scale=jnp.asarray([2.0, 2.0]), action_mask=jnp.asarray([[1, 1, 0], [1, 1, 0.]]),
        key=jax.random.PRNGKey(0), nets=nets, augment_pad=0)
    y = np.array([0.03, 0.11, 0.16, 0.28, 0.42])  # R~ = 1.0 / 2 = 0.5, d = 0.9, a* = 1
    expected = 0.0
    for k in range(2):
        logits = online[k, 0, 0]  # member k, sample 0, taken action 0
        log_softmax = logits - np.log(np.sum(np.exp(logits)))
        expected += -np.sum(y * log_softmax)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    assert float(metrics["valid_fraction"]) == 0.5
    np.testing.assert_allclose(float(metrics["target_q_mean"]), np.sum(y * ATOMS), rtol=1e-5)


def test_epsilon_schedule():
    cfg = DiscreteConfig(epsilon_start=1.0, epsilon_end=0.01, epsilon_decay_steps=100)
    eps = [float(acting.epsilon(cfg, jnp.asarray(t), 50)) for t in (0, 49, 50, 100, 150, 10_000)]
    np.testing.assert_allclose(eps, [1.0, 1.0, 1.0, 0.505, 0.01, 0.01], rtol=1e-6)


def test_random_shift_is_an_edge_padded_crop():
    rng = np.random.default_rng(1)
    obs = rng.integers(0, 255, (3, 2, 7, 9), dtype=np.uint8)
    out = np.asarray(losses.random_shift(jax.random.PRNGKey(3), jnp.asarray(obs), 2))
    padded = np.pad(obs, ((0, 0), (0, 0), (2, 2), (2, 2)), mode="edge")
    for b in range(3):
        crops = [padded[b, :, dy:dy + 7, dx:dx + 9] for dy in range(5) for dx in range(5)]
        assert any(np.array_equal(out[b], c) for c in crops)
    assert np.array_equal(losses.random_shift(jax.random.PRNGKey(3), jnp.asarray(obs), 0), obs)


def _small_learner(obs_shape, dtype, action_dims, **net):
    network = NetworkConfig(critic_width=16, critic_depth=1, num_atoms=11, **net)
    return make_learner(LearnerConfig(network=network), DiscreteConfig(), obs_shape, dtype,
                        action_dims)


def test_critic_shapes_image_and_flat():
    learner = _small_learner((4, 84, 84), jnp.uint8, (6, 4))
    params = init_params(learner.nets, jax.random.PRNGKey(0), (4, 84, 84), jnp.uint8)
    logits = learner.nets.critic.apply(params, jnp.zeros((3, 4, 84, 84), jnp.uint8),
                                       jnp.asarray([0, 1, 1]))
    assert logits.shape == (2, 3, 6, 11)  # (ensemble, batch, actions, atoms)
    assert params["params"]["task_embedding"].shape == (2, 32)
    flat = _small_learner((5,), jnp.float32, (2,))
    params = init_params(flat.nets, jax.random.PRNGKey(0), (5,), jnp.float32)
    assert "task_embedding" not in params["params"]  # single task: no embedding
    assert flat.nets.critic.apply(params, jnp.zeros((3, 5)), jnp.zeros(3, jnp.int32)).shape == (
        2, 3, 2, 11)


def test_epsilon_greedy_respects_each_tasks_actions():
    learner = _small_learner((5,), jnp.float32, (2, 3))
    state_params = init_params(learner.nets, jax.random.PRNGKey(0), (5,), jnp.float32)
    state = type("S", (), {"critic_params": state_params})()
    mask = jnp.asarray(np.repeat([[1, 1, 0], [1, 1, 1]], 500, axis=0), jnp.float32)
    obs = jax.random.normal(jax.random.PRNGKey(1), (1000, 5))
    task = jnp.asarray(np.repeat([0, 1], 500), jnp.int32)
    random = acting.epsilon_greedy(learner, state, obs, task, mask, jnp.asarray(1.0),
                                   jax.random.PRNGKey(2))
    assert set(np.asarray(random[:500]).tolist()) == {0, 1}
    assert set(np.asarray(random[500:]).tolist()) == {0, 1, 2}
    greedy = acting.epsilon_greedy(learner, state, obs, task, mask, jnp.asarray(0.0),
                                   jax.random.PRNGKey(2))
    q = losses.q_values(learner.nets, state_params, obs, task, mask)
    np.testing.assert_array_equal(greedy, np.argmax(np.asarray(q), axis=-1))
    assert int(jnp.max(greedy[:500])) <= 1


def _chain_cfg(tmp_path, **overrides) -> TrainConfig:
    cfg = TrainConfig(
        env=EnvConfig(tasks=("chain",), envs_per_task=4, eval_episodes=2),
        learner=LearnerConfig(network=NetworkConfig(critic_width=32, critic_depth=1),
                              critic_lr=1e-3, tau=0.05),
        discrete=DiscreteConfig(n_step=3, epsilon_decay_steps=400, augment_pad=0),
        batch_size=64, updates_per_step=1, total_env_steps=800, warmup_env_steps=200,
        steps_per_epoch=50, eval_every=400, checkpoint_every=0, compile_cache=False,
        run_dir=str(tmp_path / "run"),
    )
    return dataclasses.replace(cfg, **overrides)


def test_loop_runs_on_the_chain_and_counts_episodes(tmp_path):
    from brc_mjx import run

    cfg = _chain_cfg(tmp_path)
    factory = lambda c: (chain_env((0, 1), 4), chain_env((0, 1), 2))
    result = run.run(cfg, env_factory=factory)
    assert result["epochs_done"] == 4
    assert np.isfinite(result["train/critic_loss"])
    # chain episodes last 3-20 steps: each one's final observation is a slot without a transition
    assert 0.7 < result["train/valid_fraction"] <= 1.0
    assert "eval/chain/kind1/return" in result
    assert int(result["state"].learner.steps) == (800 - 200) // 4 + 0  # 1 update per step


@pytest.mark.slow
def test_learns_the_chain_to_its_optimum(tmp_path):
    from brc_mjx import run

    cfg = _chain_cfg(tmp_path, total_env_steps=6000, eval_every=2000)
    factory = lambda c: (chain_env((0, 1), 4), chain_env((0, 1), 2))
    result = run.run(cfg, env_factory=factory)
    # optimal: always right, undiscounted return 1 (the myopic left exit pays 0.2)
    assert result["eval/chain/kind0/return"] == pytest.approx(1.0)
    assert result["eval/chain/kind1/return"] == pytest.approx(1.0)


def test_conv_with_matmul_kernel_gradient_matches_the_convolution():
    from brc_mjx.agents.brc_discrete.networks import _conv, conv_matmul_grad

    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(2, 11, 13, 3)), jnp.float32)
    kernel = jnp.asarray(rng.normal(size=(4, 4, 3, 5)), jnp.float32)
    weights = jnp.asarray(rng.normal(size=(2, 4, 5, 5)), jnp.float32)  # output is (2, 4, 5, 5)

    def loss(conv):
        return lambda x, k: jnp.sum(jnp.sin(conv(x, k, 2)) * weights)

    np.testing.assert_allclose(conv_matmul_grad(x, kernel, 2), _conv(x, kernel, 2), rtol=1e-6)
    for got, want in zip(jax.grad(loss(conv_matmul_grad), (0, 1))(x, kernel),
                         jax.grad(loss(_conv), (0, 1))(x, kernel), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # and against a direct NumPy sum for one kernel entry: d/dk[i,j,c,f] of sum(out * w)
    out_grad = np.asarray(jnp.cos(_conv(x, kernel, 2)) * weights)
    i, j, c, f = 1, 2, 0, 3
    xs = np.asarray(x)
    manual = sum(out_grad[b, h, w, f] * xs[b, 2 * h + i, 2 * w + j, c]
                 for b in range(2) for h in range(4) for w in range(5))
    got = jax.grad(loss(conv_matmul_grad), 1)(x, kernel)[i, j, c, f]
    np.testing.assert_allclose(float(got), manual, rtol=1e-4)


def test_loop_runs_a_few_epochs_on_an_envpool_atari_game(tmp_path):
    pytest.importorskip("envpool")  # not in CI's JAX 0.11 set (a CPU simulator)
    from brc_mjx import run
    from configs.train import ATARI_100K

    cfg = dataclasses.replace(
        ATARI_100K,
        env=dataclasses.replace(ATARI_100K.env, tasks=("atari/pong",), envs_per_task=2,
                                eval_episodes=0),
        learner=dataclasses.replace(ATARI_100K.learner, network=NetworkConfig(
            critic_width=16, critic_depth=1, ensemble_size=1)),
        replay=dataclasses.replace(ATARI_100K.replay, capacity_per_task=400),
        batch_size=8, total_env_steps=240, warmup_env_steps=80, steps_per_epoch=40,
        checkpoint_every=120, compile_cache=False, run_dir=str(tmp_path / "pong"),
        mesh=MeshConfig(data=1))  # EnvPool's host callbacks run on one device (no SPMD)
    result = run.run(cfg)
    assert result["epochs_done"] == 3
    assert np.isfinite(result["train/critic_loss"])
    state = result["state"]
    assert state.replay.frames.dtype == jnp.uint8 and state.replay.frames.shape[2:] == (84, 84)
    assert int(state.learner.steps) == (240 - 80) // 2
    # resume from the checkpoint at 120 steps per task: the EnvPool envs are reset, the frame
    # replay begins new episodes there, and training carries on to a larger budget
    more = run.run(dataclasses.replace(cfg, total_env_steps=320, resume=True))
    assert more["epochs_done"] == 4 and np.isfinite(more["train/critic_loss"])


def test_atari_benchmark_smoke_random_policy_through_the_evaluator(tmp_path):
    pytest.importorskip("envpool")
    import json

    from benchmarks import atari

    out = tmp_path / "atari.jsonl"
    atari.main(atari.Config(games=("atari/breakout",), envs_per_game=2, scan_len=5, episodes=2,
                            out=out))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["benchmark"] for r in rows] == ["atari_env_only", "atari_random_policy"]
    random_row = rows[1]
    assert random_row["finished"]["atari/breakout"] == 1.0  # both episodes ended
    assert 0.0 <= random_row["returns"]["atari/breakout"] < 30.5  # below the human score
    assert random_row["published_random_human"]["atari/breakout"] == [1.7, 30.5]
