"""Registry, suites and episode bookkeeping: no simulation, no compilation."""

import numpy as np
import pytest

import envs
from envs.registry import SUITES, TASKS


def test_unknown_task_is_one_line_with_close_matches():
    with pytest.raises(envs.UnknownTaskError) as err:
        envs.resolve_tasks("dmc/cheeta-run")
    msg = str(err.value)
    assert "\n" not in msg and "dmc/cheetah-run" in msg
    with pytest.raises(envs.UnknownTaskError, match="dmc-easy"):
        envs.resolve_tasks(["dmc-eazy"])


def test_names_resolve_with_or_without_suite_prefix():
    assert envs.get_task("cheetah-run") is envs.get_task("dmc/cheetah-run")
    names = [t.name for t in envs.resolve_tasks(["dmc-easy", "dmc/cartpole-balance"])]
    assert names == list(SUITES["dmc-easy"])  # suite expanded, repeat dropped


def test_every_playground_dmc_task_is_registered_for_mjx():
    from mujoco_playground import dm_control_suite

    registered = {t.mjx_id for t in TASKS.values() if t.mjx_id and t.suite == "dmc"}
    assert registered == set(dm_control_suite.ALL_ENVS)


def test_envpool_ids_exist_and_paper_tasks_are_there():
    import envpool

    available = set(envpool.list_all_envs())
    assert all(t.envpool_id in available for t in TASKS.values() if t.envpool_id)
    for name in SUITES["dmc-hard"]:
        assert "envpool" in envs.get_task(name).backends
    assert len(SUITES["metaworld-mt10"]) == 10 and len(SUITES["metaworld-mt50"]) == 50
    assert len(SUITES["dmc-mt30"]) == 19
    assert all(t.metric == "success" and t.episode_length == 200
               for t in envs.resolve_tasks("metaworld-mt50"))
    assert envs.get_task("atari/pong").discrete


def test_task_metadata():
    for t in TASKS.values():
        assert t.episode_length > 0 and t.action_repeat >= 1 and t.metric in ("return", "success")
    cheetah = envs.get_task("dmc/cheetah-run")
    assert (cheetah.episode_length, cheetah.action_repeat, cheetah.backends) == (
        1000, 1, ("mjx", "envpool"))


def test_backend_errors():
    with pytest.raises(ValueError, match="no 'mjx' backend"):
        envs.make("dmc/dog-run", 1, backend="mjx")
    with pytest.raises(ValueError, match="unknown backend"):
        envs.make("dmc/cheetah-run", 1, backend="brax")


@pytest.mark.parametrize("name", ["dmc/humanoid-run", "dmc/fish-swim", "dmc/finger-spin",
                                  "dmc/quadruped-fetch", "dmc/cheetah-run", "dmc/walker-walk"])
def test_envpool_obs_keys_match_dm_control(name):
    _check_obs_keys(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SUITES["dmc-envpool"])
def test_envpool_obs_keys_match_dm_control_all(name):
    _check_obs_keys(name)


def _check_obs_keys(name):
    suite = pytest.importorskip("dm_control.suite")
    import envpool

    spec = envs.get_task(name)
    domain, task = name.removeprefix("dmc/").split("-", 1)
    expected = list(suite.load(domain, task).observation_spec())
    fields = envpool.make_spec(spec.envpool_id, num_envs=1).observation_spec()._fields
    keys = spec.envpool_obs_keys or tuple(k for k in fields if k not in ("env_id", "players"))
    assert list(keys) == expected


def test_record_episodes_matches_a_numpy_loop():
    rng = np.random.default_rng(0)
    n, steps = 5, 40
    rewards = rng.normal(size=(steps, n)).astype(np.float32)
    terminated = rng.random((steps, n)) < 0.05
    truncated = (rng.random((steps, n)) < 0.08) & ~terminated
    success = rng.random((steps, n)) < 0.1

    env_state = envs.EnvState(
        obs=np.zeros((n, 1), np.float32), reward=np.zeros(n, np.float32),
        terminated=np.zeros(n, bool), truncated=np.zeros(n, bool),
        final_obs=np.zeros((n, 1), np.float32), task_id=np.zeros(n, np.int32),
        episode_return=np.zeros(n, np.float32), episode_length=np.zeros(n, np.int32),
        episode_success=np.zeros(n, bool), last_episode_return=np.zeros(n, np.float32),
        last_episode_length=np.zeros(n, np.int32), last_episode_success=np.zeros(n, bool),
        backend=(),
    )
    # Reference: keep each env's episodes as lists and read the finished ones back.
    current = [[] for _ in range(n)]
    current_succ = [False] * n
    last = [(0.0, 0, False)] * n
    for t in range(steps):
        env_state = env_state.replace(**envs.record_episodes(
            env_state, rewards[t], terminated[t], truncated[t], success[t]))
        for i in range(n):
            current[i].append(rewards[t, i])
            current_succ[i] |= bool(success[t, i])
            if terminated[t, i] or truncated[t, i]:
                last[i] = (float(np.sum(current[i])), len(current[i]), current_succ[i])
                current[i], current_succ[i] = [], False
        np.testing.assert_allclose(env_state.episode_return,
                                   [np.sum(c) for c in current], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(env_state.episode_length, [len(c) for c in current])
        np.testing.assert_array_equal(env_state.episode_success, current_succ)
        np.testing.assert_allclose(env_state.last_episode_return, [x[0] for x in last],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(env_state.last_episode_length, [x[1] for x in last])
        np.testing.assert_array_equal(env_state.last_episode_success, [x[2] for x in last])
