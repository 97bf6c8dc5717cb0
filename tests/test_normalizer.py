"""The on-device return normaliser against the spec's episode formula on random episodes."""

import jax
import numpy as np
import pytest

from brc_mjx.core import normalizer

GAMMA = 0.9


def returns_to_go(rewards, truncated, gamma):
    """Spec section 5, written per episode."""
    bootstrap = np.mean(rewards) / (1.0 - gamma) if truncated else 0.0
    values = np.zeros(len(rewards))
    nxt = bootstrap
    for t in range(len(rewards) - 1, -1, -1):
        nxt = rewards[t] + gamma * nxt
        values[t] = nxt
    return values


def test_statistics_match_episode_formula_on_random_streams():
    rng = np.random.default_rng(0)
    num_tasks, envs_per_task, window, steps = 3, 2, 12, 90
    num_envs = num_tasks * envs_per_task
    task_id = np.repeat(np.arange(num_tasks), envs_per_task).astype(np.int32)
    rewards = rng.normal(size=(steps, num_envs)).astype(np.float32) * (1 + task_id)
    # Random episode ends: terminations at random, truncation at the time limit `window`.
    terminated = np.zeros((steps, num_envs), bool)
    truncated = np.zeros((steps, num_envs), bool)
    length = np.zeros(num_envs, int)
    for t in range(steps):
        length += 1
        term = rng.random(num_envs) < 0.08
        trunc = (length == window) & ~term
        terminated[t], truncated[t] = term, trunc
        length[term | trunc] = 0
    assert terminated.any() and truncated.any()

    state = normalizer.init(num_envs, num_tasks, window)
    update = jax.jit(normalizer.update, static_argnames=())
    for t in range(steps):
        state = update(state, rewards[t], terminated[t], truncated[t], task_id, GAMMA)

    want_max = np.full(num_tasks, -np.inf)
    want_min = np.full(num_tasks, np.inf)
    episodes = np.zeros(num_tasks, int)
    for e in range(num_envs):
        start = 0
        for t in range(steps):
            if terminated[t, e] or truncated[t, e]:
                v = returns_to_go(rewards[start:t + 1, e], truncated[t, e], GAMMA)
                k = task_id[e]
                want_max[k] = max(want_max[k], v.max())
                want_min[k] = min(want_min[k], v.min())
                episodes[k] += 1
                start = t + 1
    np.testing.assert_allclose(np.asarray(state.return_max), want_max, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(state.return_min), want_min, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(state.episodes), episodes)


def test_reward_scale_hand_worked_and_fallback():
    state = normalizer.init(num_envs=2, num_tasks=2, max_episode_length=5)
    # Task 0 saw returns in [-60, 50]: G = 60. Task 1 has no finished episode yet.
    state = state.replace(
        return_max=state.return_max.at[0].set(50.0),
        return_min=state.return_min.at[0].set(-60.0),
        episodes=state.episodes.at[0].set(3),
    )
    # scale_0 = (60 + 0.1 * 0.5 / (1 - 0.99)) / 10 = 6.5
    scale = normalizer.reward_scale(state, 0.1, np.array([0.5, 0.5]), 0.99, fallback_scale=1.0)
    np.testing.assert_allclose(np.asarray(scale), [6.5, 1.0], rtol=1e-5)
    assert np.all(np.isfinite(np.asarray(scale)))


def test_single_step_terminal_and_truncated_episode():
    # One env, rewards [1, 2] then truncation: B = 1.5 / (1 - 0.5) = 3; V1 = 2 + 0.5*3 = 3.5;
    # V0 = 1 + 0.5 * 3.5 = 2.75. Then a 1-step terminated episode with reward -4: V = -4.
    state = normalizer.init(num_envs=1, num_tasks=1, max_episode_length=4)
    tid = np.zeros(1, np.int32)
    f = np.array([False])
    state = normalizer.update(state, np.array([1.0]), f, f, tid, 0.5)
    state = normalizer.update(state, np.array([2.0]), f, np.array([True]), tid, 0.5)
    assert float(state.return_max[0]) == pytest.approx(3.5)
    assert float(state.return_min[0]) == pytest.approx(2.75)
    state = normalizer.update(state, np.array([-4.0]), np.array([True]), f, tid, 0.5)
    assert float(state.return_min[0]) == pytest.approx(-4.0)
    assert int(state.episodes[0]) == 2 and int(state.length[0]) == 0
