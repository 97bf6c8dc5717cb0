"""Env wrappers: reward scaling and input padding, against the unwrapped env."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_env import ToyEnv

import envs


def _rollout(env, steps=30):
    state = env.reset(jax.random.key(0))
    out = []
    for t in range(steps):
        action = jnp.full((env.num_envs, env.action_dim), 0.5 * np.sin(t), jnp.float32)
        state = env.step(state, action)
        out.append(jax.device_get((state.reward, state.episode_return, state.last_episode_return,
                                   state.obs)))
    return out


def test_scale_rewards_multiplies_rewards_and_returns_of_each_task():
    base = ToyEnv(episode_len=7)  # 2 tasks x 2 envs; episodes end within the rollout
    scaled = envs.scale_rewards(base, (1.0, 10.0))
    factor = np.array([1.0, 1.0, 10.0, 10.0])
    for (r, ret, last, obs), (r_s, ret_s, last_s, obs_s) in zip(
            _rollout(base), _rollout(scaled), strict=True):
        np.testing.assert_allclose(r_s, r * factor, rtol=1e-6)
        np.testing.assert_allclose(ret_s, ret * factor, rtol=1e-5)
        np.testing.assert_allclose(last_s, last * factor, rtol=1e-5)
        np.testing.assert_array_equal(obs_s, obs)
    assert scaled.task_names == base.task_names and scaled.obs_dims == (3, 3)


def test_scale_rewards_errors_name_the_values():
    with pytest.raises(ValueError, match=r"reward_scales has 1 values for 2 tasks \(toy/task0"):
        envs.scale_rewards(ToyEnv(), (2.0,))
    with pytest.raises(ValueError, match=r"reward_scales must be > 0, got \(1.0, 0.0\)"):
        envs.scale_rewards(ToyEnv(), (1.0, 0.0))


def test_pad_env_adds_zero_observations_and_ignores_extra_actions():
    base = ToyEnv()
    padded = envs.pad_env(base, obs_dim=5, action_dim=4)
    assert padded.obs_dim == 5 and padded.action_dim == 4
    np.testing.assert_array_equal(padded.action_mask[:, 2:], 0.0)
    for (r, _, _, obs), (r_p, _, _, obs_p) in zip(_rollout(base), _rollout(padded), strict=True):
        np.testing.assert_array_equal(obs_p[:, :3], obs)
        np.testing.assert_array_equal(obs_p[:, 3:], 0.0)
        np.testing.assert_array_equal(r_p, r)
    assert envs.pad_env(base, 3, 2) is base


def test_multitask_maps_tasks_onto_backends_of_several_tasks():
    """A backend of two tasks (3 envs each) then one of one task: task-major ids, per-task sizes,
    and each task's backend (videos read a task's physics from it)."""
    import jax
    import jax.numpy as jnp

    from envs import BackendStep, TaskBackend, make_multitask

    def backend(num_tasks, obs_dim, action_dim):
        n = 3 * num_tasks

        def reset(key):
            return jnp.zeros(()), jnp.full((n, obs_dim), float(obs_dim))

        def step(state, action):
            obs = jnp.broadcast_to(action.sum(1, keepdims=True), (n, obs_dim))
            zeros = jnp.zeros((n,), bool)
            return BackendStep(state=state, obs=obs, final_obs=obs, reward=action[:, 0],
                               terminated=zeros, truncated=zeros, success=zeros)

        return TaskBackend(reset=reset, step=step, num_envs=n, action_dim=action_dim,
                           num_tasks=num_tasks)

    env = make_multitask(["a", "b", "c"], ["mjx"] * 3, [backend(2, 4, 2), backend(1, 5, 3)],
                         [10] * 3, [False] * 3)
    assert (env.num_tasks, env.envs_per_task, env.num_envs) == (3, 3, 9)
    assert env.obs_dims == (4, 4, 5) and env.action_dims == (2, 2, 3)
    assert env.task_backend == (0, 0, 1)
    assert env.task_ids.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    state = env.step(env.reset(jax.random.PRNGKey(0)), jnp.ones((9, 3)))
    # the two-task backend got 2 action components per env, the other 3
    assert state.obs[:, 0].tolist() == [2.0] * 6 + [3.0] * 3
