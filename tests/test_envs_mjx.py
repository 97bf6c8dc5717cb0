"""MJX backend: transitions, auto-reset, truncation vs termination, padding and masking.

References are Playground's own env functions (called directly, not through `envs`) and NumPy.
"""

import functools

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.mjx_backend import load_playground, make_mjx_backend

EPISODE = 3  # short time limit, so a few steps cross episode ends
STEPS = 8
E = 2
TASKS = ("dmc/cartpole-balance", "dmc/reacher-easy")  # obs 5 / 6, actions 1 / 2


@functools.cache
def _env():
    return envs.make(list(TASKS), envs_per_task=E, backend="mjx", episode_length=EPISODE)


@functools.cache
def _rollout_fn():
    env = _env()

    @jax.jit
    def rollout(key, actions):  # actions (STEPS, num_envs, action_dim)
        state = env.reset(key)

        def body(state, action):
            next_state = env.step(state, action)
            return next_state, next_state

        _, states = jax.lax.scan(body, state, actions)
        return state, states  # initial state, stacked states after each step

    return rollout


def _actions(seed, nan_in_padding=True):
    env = _env()
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (STEPS, env.num_envs, env.action_dim)).astype(np.float32)
    if nan_in_padding:  # padded action dims must never reach a task
        a = np.where(env.action_mask[None] > 0, a, np.nan).astype(np.float32)
    return a


@functools.cache
def _rollout(seed=0):
    return jax.device_get(_rollout_fn()(jax.random.key(seed), _actions(seed)))


def test_sizes_come_from_the_tasks():
    env = _env()
    assert (env.num_envs, env.num_tasks, env.obs_dim) == (4, 2, 6)
    assert env.action_dims == (1, 2) and env.action_dim == 2
    np.testing.assert_array_equal(env.task_ids, [0, 0, 1, 1])
    np.testing.assert_array_equal(env.action_mask, [[1, 0], [1, 0], [1, 1], [1, 1]])
    assert env.episode_length == (EPISODE, EPISODE) and env.has_success == (False, False)


def test_shapes_dtypes_no_nan_and_rewards_in_unit_interval():
    init, states = _rollout()
    n = _env().num_envs
    assert init.obs.shape == (n, 6) and states.obs.shape == (STEPS, n, 6)
    assert states.obs.dtype == np.float32 and states.reward.dtype == np.float32
    assert states.terminated.dtype == bool and states.truncated.dtype == bool
    assert states.task_id.dtype == np.int32 and states.episode_length.dtype == np.int32
    for x in (states.obs, states.final_obs, states.reward):
        assert np.isfinite(x).all()  # NaN in the padded action dims did not leak in
    assert (states.reward >= 0).all() and (states.reward <= 1).all()
    # Cartpole (5 obs) is zero-padded to reacher's 6.
    assert (states.obs[:, :E, 5] == 0).all() and (init.obs[:E, 5] == 0).all()


def test_time_limit_truncates_and_counts():
    _, states = _rollout()
    expected = np.zeros((STEPS, _env().num_envs), bool)
    expected[EPISODE - 1 :: EPISODE] = True  # steps 3, 6 (1-based)
    np.testing.assert_array_equal(states.truncated, expected)
    assert not states.terminated.any()
    np.testing.assert_array_equal(states.episode_length[:, 0], [1, 2, 0, 1, 2, 0, 1, 2])
    np.testing.assert_array_equal(states.last_episode_length[-1], EPISODE)
    rewards = states.reward
    np.testing.assert_allclose(states.last_episode_return[-1], rewards[3:6].sum(0), rtol=1e-5)
    np.testing.assert_allclose(states.episode_return[-1], rewards[6:8].sum(0), rtol=1e-5)


def test_auto_reset_keeps_the_true_final_obs():
    """final_obs is what Playground's own step gives from the previous state; obs restarts."""
    init, states = _rollout()
    actions = _actions(0)
    env = _env()
    prev_backend = jax.tree.map(
        lambda a, b: jnp.concatenate([a[None], b[:-1]]), init.backend, states.backend)
    for t, name in enumerate(TASKS):
        pg = load_playground(envs.get_task(name).mjx_id)
        rows = slice(t * E, (t + 1) * E)
        a = actions[:, rows, : env.action_dims[t]]
        pg_step = jax.jit(jax.vmap(jax.vmap(pg.step)))  # over (time, env)
        expected = jax.device_get(pg_step(prev_backend[t].env_state, a))
        np.testing.assert_allclose(states.final_obs[:, rows, : env.obs_dims[t]],
                                   expected.obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(states.reward[:, rows], expected.reward, rtol=1e-5, atol=1e-6)
    ended = states.truncated | states.terminated
    np.testing.assert_array_equal(states.obs[~ended], states.final_obs[~ended])
    # Where an episode ended, obs is a new episode's first obs, not the last one.
    assert (np.abs(states.obs[ended] - states.final_obs[ended]).sum(-1) > 1e-3).all()


def test_diverged_physics_terminates_and_resets():
    """A NaN action makes MJX diverge: Playground's `done` -> terminated, never NaN outputs."""
    actions = _actions(1)
    actions[1, 0, 0] = np.nan  # env 0 (cartpole), step 2
    init, states = jax.device_get(_rollout_fn()(jax.random.key(1), actions))
    assert states.terminated[1, 0] and not states.truncated[1, 0]
    assert states.terminated.sum() == 1
    assert np.isfinite(states.obs).all() and np.isfinite(states.final_obs).all()
    assert np.isfinite(states.reward).all()
    assert states.last_episode_length[1, 0] == 2 and states.episode_length[1, 0] == 0
    # The following episodes run their full time limit from there (steps 5 and 8, 1-based).
    np.testing.assert_array_equal(np.flatnonzero(states.truncated[:, 0]) + 1, [5, 8])


# A Playground-like env with a known termination, to pin terminated vs truncated exactly.
@flax.struct.dataclass
class _CounterState:
    obs: jax.Array
    reward: jax.Array
    done: jax.Array
    count: jax.Array


class _CounterEnv:
    """obs = [count, start]; terminates when count reaches `start + 4`."""

    action_size = 1

    def reset(self, key):
        start = jax.random.randint(key, (), 0, 3).astype(jnp.float32)
        return _CounterState(obs=jnp.stack([start, start]), reward=jnp.float32(0),
                             done=jnp.float32(0), count=start)

    def step(self, state, action):
        count = state.count + 1
        done = (count >= state.obs[1] + 4).astype(jnp.float32)
        return _CounterState(obs=jnp.stack([count, state.obs[1]]), reward=action[0],
                             done=done, count=count)


def test_termination_vs_truncation_with_a_counter_env():
    backend = make_mjx_backend(_CounterEnv(), envs_per_task=1, episode_length=3)
    env = envs.make_multitask(["counter-a", "counter-b"], ["mjx", "mjx"],
                              [backend, make_mjx_backend(_CounterEnv(), 1, 6)], [3, 6],
                              [False, False])

    def body(state, _):
        state = env.step(state, jnp.ones((2, 1)))
        return state, state

    _, states = jax.jit(lambda k: jax.lax.scan(body, env.reset(k), None, length=12))(
        jax.random.key(0))
    # Task a: time limit 3 < termination at 4 steps, so only truncations, every 3 steps.
    np.testing.assert_array_equal(np.flatnonzero(states.truncated[:, 0]) + 1, [3, 6, 9, 12])
    assert not states.terminated[:, 0].any()
    # Task b: terminates after 4 steps, before its time limit of 6.
    np.testing.assert_array_equal(np.flatnonzero(states.terminated[:, 1]) + 1, [4, 8, 12])
    assert not states.truncated[:, 1].any()
    # final_obs at the ends holds the true last count; obs restarts at a fresh start value.
    ends = np.flatnonzero(states.terminated[:, 1])
    np.testing.assert_array_equal(states.final_obs[ends, 1, 0],
                                  states.final_obs[ends, 1, 1] + 4)
    np.testing.assert_array_equal(states.obs[ends, 1, 0], states.obs[ends, 1, 1])


@pytest.mark.slow
@pytest.mark.parametrize("name", envs.SUITES["dmc-mjx"])
def test_every_mjx_task_resets_and_steps(name):
    env = envs.make(name, envs_per_task=2, backend="mjx")
    pg = load_playground(envs.get_task(name).mjx_id)
    assert env.obs_dim == pg.observation_size and env.action_dim == pg.action_size

    @jax.jit
    def run(key):
        state = env.reset(key)

        def body(state, k):
            a = jax.random.uniform(k, (env.num_envs, env.action_dim), minval=-1, maxval=1)
            state = env.step(state, a)
            return state, (state.obs, state.reward)

        return jax.lax.scan(body, state, jax.random.split(key, 5))[1]

    obs, reward = jax.device_get(run(jax.random.key(0)))
    assert obs.shape == (5, 2, env.obs_dim) and np.isfinite(obs).all()
    assert ((reward >= 0) & (reward <= 1)).all()


class _TracedCounterEnv(_CounterEnv):
    """Counts how often JAX traces (runs in Python) its reset and step."""

    def __init__(self):
        self.traces = {"reset": 0, "step": 0}

    def reset(self, key):
        self.traces["reset"] += 1
        return super().reset(key)

    def step(self, state, action):
        self.traces["step"] += 1
        return super().step(state, action)


def test_physics_is_traced_once_per_env_object():
    """Two backends of one env object (a run's train and eval envs: 3 and 2 envs), their size
    probe (eval_shape) and two compiled rollouts trace its reset and step once each."""
    env = _TracedCounterEnv()
    train = make_mjx_backend(env, envs_per_task=3, episode_length=2)
    evaluation = make_mjx_backend(env, envs_per_task=2, episode_length=2)

    def rollout(backend, key):
        state, _ = backend.reset(key)
        for _ in range(3):  # auto-resets inside step reuse the traced reset as well
            state = backend.step(state, jnp.ones((backend.num_envs, 1))).state
        return state.steps

    for backend in (train, evaluation):
        jax.eval_shape(backend.reset, jax.random.PRNGKey(0))
        np.testing.assert_array_equal(jax.jit(functools.partial(rollout, backend))(
            jax.random.PRNGKey(1)), np.ones(backend.num_envs))
    assert env.traces == {"reset": 1, "step": 1}
    # another env object is its own cache entry
    other = _TracedCounterEnv()
    jax.eval_shape(make_mjx_backend(other, 3, 2).reset, jax.random.PRNGKey(0))
    assert other.traces["reset"] == 1


@pytest.mark.parametrize("name", ["dmc/walker-walk", "dmc/hopper-stand", "dmc/cheetah-run"])
def test_observation_matches_dm_control_at_the_same_state(name):
    """The MJX observation of a state is dm_control's observation of that state (the official
    BRC code trains on dm_control): the same fields, in dm_control's order, within float32.

    The state is a random reset state of the MJX env, set into dm_control's physics."""
    suite = pytest.importorskip("dm_control.suite")  # in the test extra (not the jax 0.11 job)

    from envs.mjx_backend import load_mjx

    spec = envs.get_task(name)
    env = load_mjx(spec)
    state = jax.jit(env.reset)(jax.random.key(3))
    domain, task = name.split("/")[1].split("-")
    dmc = suite.load(domain, task)
    physics = dmc.physics
    with physics.reset_context():
        physics.data.qpos[:] = np.asarray(state.data.qpos)
        physics.data.qvel[:] = np.asarray(state.data.qvel)
    expected = np.concatenate([np.asarray(v, np.float64).ravel()
                               for v in dmc.task.get_observation(physics).values()])
    np.testing.assert_allclose(np.asarray(state.obs), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["dmc/walker-walk", "dmc/hopper-stand", "dmc/cheetah-run"])
def test_reward_and_observation_are_those_of_the_state_the_step_reached(name):
    """After a step, the MJX reward and observation are dm_control's reward and observation of
    the state that step reached (dm_control reads them after the physics step; Playground's
    own step reads positions and sensors from before its last substep: a cheetah, one substep
    per control step, was rewarded for the speed it had before the action).

    The states come from MJX steps under random actions, from a reset state pushed forward at
    4 m/s (so that the speed rewards are not 0 and change from step to step); each one is set
    into dm_control's physics, whose task computes the reference."""
    suite = pytest.importorskip("dm_control.suite")

    from envs.mjx_backend import load_mjx

    env = load_mjx(envs.get_task(name))
    step = jax.jit(env.step)
    state = jax.jit(env.reset)(jax.random.key(5))
    qpos, qvel = state.data.qpos, state.data.qvel.at[0].set(4.0)
    if name == "dmc/hopper-stand":  # upright and lifted: standing, then falling (rewards != 0)
        qpos = qpos.at[1].add(0.8).at[2].set(0.0)
    state = state.replace(data=state.data.replace(qpos=qpos, qvel=qvel))
    rewards = []
    domain, task = name.split("/")[1].split("-")
    dmc = suite.load(domain, task)
    physics = dmc.physics
    rng = np.random.default_rng(0)
    for t in range(30):
        action = rng.uniform(-1, 1, env.action_size).astype(np.float32)
        state = step(state, action)
        if t not in (0, 2, 9, 19, 29):
            continue
        with physics.reset_context():
            physics.data.qpos[:] = np.asarray(state.data.qpos)
            physics.data.qvel[:] = np.asarray(state.data.qvel)
            physics.data.ctrl[:] = action
        np.testing.assert_allclose(float(state.reward), dmc.task.get_reward(physics),
                                   rtol=1e-4, atol=1e-4)
        rewards.append(float(state.reward))
        expected = dmc.task.get_observation(physics)
        touch = expected.pop("touch", None)  # hopper: log(1 + contact force), solver-dependent
        kinematic = np.concatenate([np.asarray(v, np.float64).ravel() for v in expected.values()])
        obs = np.asarray(state.obs)
        np.testing.assert_allclose(obs[:kinematic.size], kinematic, rtol=1e-4, atol=1e-4)
        if touch is not None:  # MJX solves contacts in 4 iterations, dm_control in up to 100
            np.testing.assert_allclose(obs[kinematic.size:], touch, atol=0.25)
    assert max(rewards) > 0.05 and len(set(rewards)) >= 3, rewards  # not a trivial 0 == 0


def test_mjx_solver_mujoco_sets_dm_controls_solver_and_steps():
    import mujoco
    from mujoco import mjx

    port, full = load_playground("CheetahRun"), load_playground("CheetahRun", solver="mujoco")
    eulerdamp = int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
    assert (port.mj_model.opt.iterations, port.mj_model.opt.ls_iterations) == (4, 8)
    assert port.mj_model.opt.disableflags & eulerdamp
    # dm_control's cheetah.xml leaves MuJoCo's defaults: 100 / 50 iterations, Euler damping on
    assert (full.mj_model.opt.iterations, full.mj_model.opt.ls_iterations) == (100, 50)
    assert not full.mj_model.opt.disableflags & eulerdamp
    assert int(full.mjx_model.opt.iterations) == 100  # the model MJX steps, not only the CPU one
    data = mjx.make_data(full.mjx_model)
    assert np.isfinite(np.asarray(jax.jit(mjx.step)(full.mjx_model, data).qpos)).all()
    damped = load_playground("CheetahRun", solver="eulerdamp")  # Playground's 4 / 8, damping on
    assert (damped.mj_model.opt.iterations, damped.mj_model.opt.ls_iterations) == (4, 8)
    assert not damped.mj_model.opt.disableflags & eulerdamp
    assert not int(damped.mjx_model.opt.disableflags) & eulerdamp
    with pytest.raises(ValueError, match="mjx_solver 'exact'"):
        envs.make("dmc/cheetah-run", 2, mjx_solver="exact")
