"""EnvPool backend, stepped inside jit: hidden reset steps, time limits, dm_control rewards.

References: EnvPool's raw NumPy API in a plain loop, and dm_control's own `suite.load`.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs

envpool = pytest.importorskip("envpool")
os.environ.setdefault("MUJOCO_GL", "egl")


def _rollout(env, actions, seed=0):
    """jit(scan(step)) over `actions` (T, num_envs, ...); returns (initial, stacked states)."""

    @jax.jit
    def run(key, actions):
        state = env.reset(key)

        def body(state, action):
            state = env.step(state, action)
            return state, state

        return state, jax.lax.scan(body, state, actions)[1]

    return jax.device_get(run(jax.random.key(seed), actions))


def _flat(ts, keys):
    order = np.argsort(ts.observation.env_id)
    n = len(order)
    obs = np.concatenate([np.asarray(getattr(ts.observation, k)).reshape(n, -1) for k in keys], 1)
    return obs[order].astype(np.float32), order


def test_reset_steps_never_surface_as_transitions():
    """Against EnvPool's raw API in a NumPy loop that resets ended envs one at a time."""
    n, limit, steps, seed = 3, 4, 11, 5
    env = envs.make("dmc/cartpole-balance", n, backend="envpool", seed=seed,
                    episode_length=limit)
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, n, 1)).astype(np.float32)
    init, states = _rollout(env, actions)

    keys = ("position", "velocity")
    pool = envpool.make_dm("CartpoleBalance-v1", num_envs=n, seed=seed, max_episode_steps=limit)
    ref_obs, _ = _flat(pool.reset(), keys)
    np.testing.assert_allclose(init.obs, ref_obs, rtol=1e-6)
    for t in range(steps):
        ts = pool.step(actions[t].astype(np.float64), np.arange(n))
        final_obs, order = _flat(ts, keys)
        last = ts.step_type[order] == 2
        obs = final_obs.copy()
        for i in np.flatnonzero(last):  # the reset step: action ignored, FIRST obs back
            ts_reset = pool.step(np.zeros((1, 1)), np.array([i], np.int32))
            assert ts_reset.step_type[0] == 0
            obs[i] = _flat(ts_reset, keys)[0][0]
        np.testing.assert_allclose(states.final_obs[t], final_obs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(states.obs[t], obs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(states.reward[t], ts.reward[order], rtol=1e-6)
        np.testing.assert_array_equal(states.truncated[t], last)
    # Every episode has exactly `limit` transitions: none was a reset step.
    np.testing.assert_array_equal(np.flatnonzero(states.truncated[:, 0]) + 1, [4, 8])
    assert not states.terminated.any()
    assert (states.last_episode_length[-1] == limit).all()


def test_metaworld_time_limit_is_a_truncation_and_success_is_reported():
    # EnvPool's MetaWorld ends a time-limited episode with discount 0; that is not a termination.
    env = envs.make("metaworld/reach", 2, backend="envpool", episode_length=3)
    assert env.has_success == (True,) and env.obs_dim == 39 and env.action_dim == 4
    actions = np.random.default_rng(0).uniform(-1, 1, (7, 2, 4)).astype(np.float32)
    _, states = _rollout(env, actions)
    np.testing.assert_array_equal(np.flatnonzero(states.truncated[:, 0]) + 1, [3, 6])
    assert not states.terminated.any()
    assert states.episode_success.dtype == bool and np.isfinite(states.obs).all()


def test_a_stale_state_fails_loudly():
    env = envs.make("dmc/cartpole-balance", 1, backend="envpool")
    step = jax.jit(env.step)
    state = jax.jit(env.reset)(jax.random.key(0))
    a = jnp.zeros((1, 1))
    jax.block_until_ready(step(state, a))
    with pytest.raises(Exception, match="stale EnvState"):
        jax.block_until_ready(step(state, a))


def test_atari_is_registered_and_steps_with_discrete_actions():
    env = envs.make("atari/pong", 2, backend="envpool")
    assert env.discrete and env.action_dim == 6 and env.obs_shape == (4, 84, 84)
    actions = np.array([[0, 1], [2, 3], [4, 5]], np.int32)
    init, states = _rollout(env, actions)
    assert states.obs.shape == (3, 2, 4, 84, 84) and states.obs.dtype == np.uint8
    assert states.reward.shape == (3, 2)


def test_mixed_backends_in_one_jitted_scan():
    env = envs.make(["dmc/cartpole-balance", "dmc/cheetah-run"], 2,
                    backend={"dmc/cheetah-run": "envpool"}, episode_length=5)
    assert env.backends == ("mjx", "envpool") and env.obs_dim == 17 and env.action_dim == 6
    actions = np.random.default_rng(0).uniform(-1, 1, (6, 4, 6)).astype(np.float32)
    _, states = _rollout(env, actions)
    assert states.obs.shape == (6, 4, 17) and states.obs.dtype == np.float32
    assert np.isfinite(states.obs).all() and (states.obs[:, :2, 5:] == 0).all()
    np.testing.assert_array_equal(states.truncated[4], [True] * 4)
    np.testing.assert_array_equal(states.task_id[0], [0, 0, 1, 1])


# dm_control reference: set dm_control's physics to the state EnvPool reset to (recovered from
# the observation), then feed both the same actions.
def _qpos_qvel(name, obs):
    if name in ("dmc/cartpole-swingup", "dmc/cartpole-balance"):  # [x, cos, sin, v_x, v_pole]
        return [obs[0], np.arctan2(obs[2], obs[1])], obs[3:5]
    if name == "dmc/pendulum-swingup":  # [zz, xz, v]
        return [np.arctan2(obs[1], obs[0])], obs[2:3]
    if name == "dmc/point_mass-easy":  # [qpos(2), qvel(2)]
        return obs[:2], obs[2:4]
    if name == "dmc/cheetah-run":  # [qpos[1:], qvel]; the reward ignores the root x
        return np.concatenate([[0.0], obs[:8]]), obs[8:17]
    raise KeyError(name)


@pytest.mark.parametrize("name", ["dmc/cartpole-balance", "dmc/cartpole-swingup",
                                  "dmc/cheetah-run", "dmc/pendulum-swingup",
                                  "dmc/point_mass-easy"])
def test_rewards_and_observations_match_dm_control(name):
    suite = pytest.importorskip("dm_control.suite")
    steps = 60
    env = envs.make(name, 1, backend="envpool", seed=3)
    actions = np.random.default_rng(1).uniform(
        -1, 1, (steps, 1, env.action_dim)).astype(np.float32)
    init, states = _rollout(env, actions)
    assert not (states.terminated | states.truncated).any()

    domain, task = name.removeprefix("dmc/").split("-", 1)
    ref = suite.load(domain, task, task_kwargs={"random": 0})
    ref.reset()
    qpos, qvel = _qpos_qvel(name, init.obs[0])
    with ref.physics.reset_context():
        ref.physics.data.qpos[:] = qpos
        ref.physics.data.qvel[:] = qvel
    ref_obs = np.concatenate(
        [np.ravel(v) for v in ref.task.get_observation(ref.physics).values()])
    np.testing.assert_allclose(init.obs[0], ref_obs, rtol=1e-5, atol=1e-5)
    ref_steps = [ref.step(a[0]) for a in actions]
    rewards = np.array([ts.reward for ts in ref_steps])
    ref_obs = np.array([np.concatenate([np.ravel(v) for v in ts.observation.values()])
                        for ts in ref_steps])
    np.testing.assert_allclose(states.reward[:, 0], rewards, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(states.final_obs[:, 0], ref_obs, rtol=1e-4, atol=1e-4)
    if name in ("dmc/cartpole-balance", "dmc/cartpole-swingup", "dmc/cheetah-run"):
        assert rewards.std() > 1e-4  # (the other two stay at reward 0 under random actions)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", envs.SUITES["dmc-envpool"] + envs.SUITES.get("metaworld-mt50", ()))
def test_every_envpool_task_resets_and_steps(name):
    env = envs.make(name, 2, backend="envpool")
    actions = np.random.default_rng(0).uniform(
        -1, 1, (5, 2, env.action_dim)).astype(np.float32)
    init, states = _rollout(env, actions)
    assert init.obs.shape == (2, env.obs_dim) and states.obs.shape == (5, 2, env.obs_dim)
    assert states.obs.dtype == np.float32 and states.reward.dtype == np.float32
    assert np.isfinite(states.obs).all() and np.isfinite(states.reward).all()


def test_atari_options_reach_the_pool():
    from envs.envpool_backend import HostPool

    options = envs.AtariOptions(repeat_action_probability=0.5, reward_clip=False,
                                full_action_space=True, noop_max=7)
    host = HostPool(envs.get_task("atari/pong"), 2, 0, 100, 0, options.envpool_kwargs())
    config = host.pool.spec.config
    assert (config.repeat_action_probability, config.reward_clip, config.full_action_space,
            config.noop_max, config.episodic_life) == (0.5, False, True, 7, False)
    assert host.action_dim == 18
    # through envs.make: the defaults (sticky 0.25, clipped rewards, minimal action set)
    assert envs.make("atari/pong", 1, backend="envpool").action_dim == 6
    assert envs.make("atari/pong", 1, backend="envpool",
                     atari=envs.AtariOptions(full_action_space=True)).action_dim == 18


def test_atari_reward_clip_trains_on_signs_while_scores_stay_raw():
    # Alien pays 10 points per egg: random play collects some within 150 steps
    actions = np.random.default_rng(0).integers(0, 18, (150, 2)).astype(np.int32)
    rewards = {}
    for clip in (True, False):
        env = envs.make("atari/alien", 2, backend="envpool",
                        atari=envs.AtariOptions(reward_clip=clip))
        rewards[clip] = np.asarray(_rollout(env, actions)[1].reward)
    assert set(np.unique(rewards[True])) <= {-1.0, 0.0, 1.0} and rewards[True].max() == 1.0
    assert rewards[False].max() >= 10.0


def test_bad_atari_options_fail_before_any_pool():
    with pytest.raises(ValueError, match=r"repeat_action_probability must be in \[0, 1\], got 1.5"):
        envs.make("atari/pong", 1, backend="envpool",
                  atari=envs.AtariOptions(repeat_action_probability=1.5))
    with pytest.raises(ValueError, match="noop_max must be >= 0, got -1"):
        envs.make("atari/pong", 1, backend="envpool", atari=envs.AtariOptions(noop_max=-1))


def test_atari_human_normalised_scores_by_hand():
    # Breakout: random 1.7, human 30.5; Road Runner: random 11.5, human 7845; Pong -20.7 / 14.6
    scores = envs.normalised_scores(["atari/breakout", "atari/road-runner", "atari/pong"],
                                    [16.1, 11.5, -3.05])
    assert scores["atari/breakout"] == pytest.approx((16.1 - 1.7) / 28.8)
    assert scores["atari/road-runner"] == pytest.approx(0.0)
    assert scores["atari/pong"] == pytest.approx(0.5)
    assert envs.get_task("atari/up-n-down").score_range == (533.4, 11693.2)


def test_bad_atari_options_fail_before_any_pool_of_any_suite(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was built before the options were checked")

    monkeypatch.setattr(envpool, "make_dm", no_pool)
    with pytest.raises(ValueError, match=r"repeat_action_probability .* got -0.1"):
        envs.make(["dmc/cheetah-run", "atari/pong"], 1, backend="envpool",
                  atari=envs.AtariOptions(repeat_action_probability=-0.1))


# The 26 Atari-100k games (Kaiser et al. 2020) by registry name, with (random, human) from the
# standard table (DQN Zoo's atari_data.py; the rliable colab has the same for these games).
_ATARI_100K = {
    "alien": (227.8, 7127.7), "amidar": (5.8, 1719.5), "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3), "bank-heist": (14.2, 753.1), "battle-zone": (2360.0, 37187.5),
    "boxing": (0.1, 12.1), "breakout": (1.7, 30.5), "chopper-command": (811.0, 7387.8),
    "crazy-climber": (10780.5, 35829.4), "demon-attack": (152.1, 1971.0),
    "freeway": (0.0, 29.6), "frostbite": (65.2, 4334.7), "gopher": (257.6, 2412.5),
    "hero": (1027.0, 30826.4), "jamesbond": (29.0, 302.8), "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5), "kung-fu-master": (258.5, 22736.3),
    "ms-pacman": (307.3, 6951.6), "pong": (-20.7, 14.6), "private-eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0), "road-runner": (11.5, 7845.0), "seaquest": (68.4, 42054.7),
    "up-n-down": (533.4, 11693.2),
}


def test_atari_100k_games_score_random_as_0_and_human_as_1():
    names = [f"atari/{game}" for game in _ATARI_100K]
    assert [envs.get_task(n).score_range for n in names] == list(_ATARI_100K.values())
    random_scores = envs.normalised_scores(names, [low for low, _ in _ATARI_100K.values()])
    human_scores = envs.normalised_scores(names, [high for _, high in _ATARI_100K.values()])
    assert random_scores == pytest.approx(dict.fromkeys(names, 0.0), abs=1e-12)
    assert human_scores == pytest.approx(dict.fromkeys(names, 1.0), abs=1e-12)
    # by hand: Ms. Pac-Man 3629.45 = halfway between 307.3 and 6951.6; Pong 0 = 20.7 / 35.3
    scores = envs.normalised_scores(["atari/ms-pacman", "atari/pong"], [3629.45, 0.0])
    assert scores == pytest.approx({"atari/ms-pacman": 0.5, "atari/pong": 20.7 / 35.3})


def test_every_atari_57_game_is_registered_with_a_score_range():
    from envs.registry import ATARI_RANDOM_HUMAN

    assert len(ATARI_RANDOM_HUMAN) == 57
    for game, score_range in ATARI_RANDOM_HUMAN.items():
        assert envs.get_task(f"atari/{game}").score_range == score_range
    assert envs.get_task("atari/adventure").score_range is None  # not in the table


def test_drq_epsilon_reference_covers_atari_100k_at_its_published_mean():
    from envs.registry import DRQ_EPSILON_ATARI100K

    assert set(DRQ_EPSILON_ATARI100K) == set(_ATARI_100K)
    names = [f"atari/{game}" for game in DRQ_EPSILON_ATARI100K]
    scores = envs.normalised_scores(names, list(DRQ_EPSILON_ATARI100K.values()))
    assert np.mean(list(scores.values())) == pytest.approx(0.465, abs=5e-4)
    assert sum(s > 1 for s in scores.values()) == 3


def test_atari_frame_stack_repeats_the_first_frame_and_shifts_by_one():
    # The frame-efficient replay rebuilds stacks from single frames on these two rules.
    env = envs.make("atari/breakout", 2, backend="envpool", seed=1)
    actions = np.random.default_rng(0).integers(0, env.action_dim, (30, 2)).astype(np.int32)
    init, states = _rollout(env, actions)
    assert (init.obs == init.obs[:, :1]).all()  # (envs, 4, 84, 84): frame 0 four times
    prev = init.obs
    for t in range(len(actions)):
        np.testing.assert_array_equal(states.final_obs[t][:, :3], prev[:, 1:])
        prev = states.obs[t]
    assert len({states.obs[-1][0, k].tobytes() for k in range(4)}) > 1  # it does move


def test_runs_of_different_seeds_start_envpool_envs_differently():
    """The run's seed reaches the host simulators: two seeds give different initial states, one
    seed the same; the evaluation envs are seeded apart from the training envs."""
    from brc_mjx.config import EnvConfig, TrainConfig
    from brc_mjx.run import make_envs

    def first_obs(seed):
        cfg = TrainConfig(env=EnvConfig(tasks=("dmc/cartpole-swingup",), backend="envpool",
                                        envs_per_task=2, eval_episodes=2), seed=seed)
        env, eval_env = make_envs(cfg)
        key = jax.random.key(0)
        return (np.asarray(jax.jit(env.reset)(key).obs),
                np.asarray(jax.jit(eval_env.reset)(key).obs))

    train0, eval0 = first_obs(0)
    train0_again, _ = first_obs(0)
    train1, _ = first_obs(1)
    np.testing.assert_array_equal(train0, train0_again)
    assert not np.allclose(train0, train1)
    assert not np.allclose(train0, eval0)


def test_actions_in_minus_one_one_are_mapped_onto_the_actuator_ranges():
    """Quadruped's actuators take [-1, 1] (yaw), [-1, 1.1] (lift), [-0.8, 0.8] (extend): an
    agent's action a in [-1, 1] reaches EnvPool as low + (a + 1) / 2 * (high - low)."""
    env = envs.make("dmc/quadruped-walk", 2, backend="envpool", seed=5)
    raw = envpool.make_dm("QuadrupedWalk-v1", num_envs=2, batch_size=2, seed=5,
                          max_episode_steps=1000)
    spec = raw.spec.action_spec()
    low, high = np.asarray(spec.minimum), np.asarray(spec.maximum)
    assert not np.allclose(high, 1.0)  # the task has limits other than [-1, 1]
    actions = np.random.default_rng(0).uniform(-1, 1, (3, 2, env.action_dim)).astype(np.float32)
    _, states = _rollout(env, jnp.asarray(actions))
    raw.reset()
    for t in range(3):
        ts = raw.step(low + (actions[t] + 1) / 2 * (high - low), np.arange(2))
        obs, _ = _flat(ts, envs.get_task("dmc/quadruped-walk").envpool_obs_keys)
        np.testing.assert_allclose(states.obs[t], obs, rtol=1e-5, atol=1e-5)
