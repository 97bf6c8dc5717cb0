"""The agent interface holds: a third learner, written only here, trains in the real loop.

``RewardModel`` is deliberately small: it fits a quadratic reward model ``r(s, a)`` by SGD on
batches from brc_mjx's transition replay, acts uniformly at random during the warm-up and then
greedily (the best of a few random candidate actions under its model). It uses the loop
(``brc_mjx.run.run``), the replay, the evaluator, logging and checkpoints as BRC does, and nothing
of BRC's learner.
"""

from __future__ import annotations

import dataclasses
import json
import os

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config
from toy_env import ToyEnv

from brc_mjx import replay as replay_lib
from brc_mjx import run as run_lib
from brc_mjx.evaluation import rollout

CANDIDATES = 16


@flax.struct.dataclass
class ModelState:
    w: jax.Array  # (features,) weights of the reward model
    steps: jax.Array


def features(obs, action, task):
    """Quadratic in (obs, action), with a linear part and a bias per task."""
    z = jnp.concatenate([obs, action], axis=-1)
    cross = obs[..., :action.shape[-1]] * action
    linear = jnp.concatenate([z, jnp.ones_like(z[..., :1])], -1)
    per_task = task[..., :, None] * linear[..., None, :]
    return jnp.concatenate([z * z, cross, per_task.reshape(*z.shape[:-1], -1)], axis=-1)


@dataclasses.dataclass(frozen=True, eq=False)
class RewardModel:
    obs_dim: int
    action_dim: int
    action_dims: tuple[int, ...]
    lr: float = 0.05
    name: str = "reward-model"
    diagnose = None

    def check(self, cfg, env):
        if cfg.batch_size < 2:
            raise ValueError(f"reward-model needs batch_size >= 2, got {cfg.batch_size}")

    def replay_bytes(self, cfg, env, derived):
        return replay_lib.memory_bytes(replay_lib.example_transition(env.obs_dim, env.action_dim),
                                       env.num_tasks, cfg.replay.capacity_per_task)

    def init(self, cfg, env, derived, key):
        key, key_env = jax.random.split(key)
        z = self.obs_dim + self.action_dim
        n = z + self.action_dim + env.num_tasks * (z + 1)
        replay = replay_lib.init(replay_lib.example_transition(env.obs_dim, env.action_dim),
                                 env.num_tasks, cfg.replay.capacity_per_task)
        state = ModelState(w=jnp.zeros(n, jnp.float32), steps=jnp.zeros((), jnp.int32))
        return state, replay, None, env.reset(key_env), key

    def greedy(self, env, state, obs, key):
        mask = jnp.asarray(env.action_mask)
        cands = jax.random.uniform(key, (CANDIDATES, *mask.shape), minval=-1.0, maxval=1.0) * mask
        task = jax.nn.one_hot(env.task_ids, len(self.action_dims))
        scores = jax.vmap(lambda a: features(obs, a, task) @ state.w)(cands)  # (candidates, envs)
        best = jnp.argmax(scores, axis=0)
        return jnp.take_along_axis(cands, best[None, :, None], axis=0)[0]

    def collect(self, cfg, env, derived, state, key, warmup):
        mask = jnp.asarray(env.action_mask)
        random = jax.random.uniform(key, mask.shape, minval=-1.0, maxval=1.0) * mask
        action = jnp.where(warmup, random, self.greedy(env, state.learner, state.env.obs, key))
        nxt = env.step(state.env, action)
        transition = replay_lib.Transition(
            obs=state.env.obs, action=action, reward=nxt.reward, next_obs=nxt.final_obs,
            terminated=nxt.terminated, truncated=nxt.truncated, task_id=state.env.task_id)
        return nxt, replay_lib.add(state.replay, transition), state.learner

    def sample(self, cfg, derived, replay, offline, key):
        return replay_lib.sample(replay, key, cfg.batch_size)

    def update(self, state, batch, key):
        def loss(w):
            task = jax.nn.one_hot(batch.task_id, len(self.action_dims))
            return jnp.mean(jnp.square(features(batch.obs, batch.action, task) @ w
                                       - batch.reward))

        value, grad = jax.value_and_grad(loss)(state.w)
        return (state.replace(w=state.w - self.lr * grad, steps=state.steps + 1),
                {"train/critic_loss": value})

    def params(self, state):
        return state.w

    def reset(self, state, replay, env_state):
        return state, replay

    def eval_step(self, env, state, env_state, key):
        return env.step(env_state, self.greedy(env, state, env_state.obs, key))


def make_agent(cfg, env, plan):
    return RewardModel(env.obs_dim, env.action_dim, env.action_dims)


def test_a_third_agent_trains_in_the_real_loop(tmp_path):
    cfg = tiny_config(tmp_path / "run", total_env_steps=1200, warmup_env_steps=100,
                      eval_every=400, batch_size=64)
    result = run_lib.run(cfg, env_factory=lambda c: (ToyEnv(), ToyEnv(envs_per_task=8)),
                         agent_factory=make_agent)
    state = result["state"]
    assert int(state.learner.steps) == (1200 - 100) // 2  # one update per vectorized step
    with open(os.path.join(cfg.run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    # 30 epochs of 40 transitions per task; the first two are all warm-up (100), with no update
    assert sum("train/critic_loss" in r for r in records) == 28
    assert os.listdir(os.path.join(cfg.run_dir, "checkpoints"))

    # Its greedy policy beats a uniform random one, through the same evaluator.
    eval_env = ToyEnv(envs_per_task=8)
    agent = make_agent(cfg, eval_env, None)
    key = jax.random.key(7)
    greedy = rollout(lambda s, k: agent.eval_step(eval_env, state.learner, s, k), eval_env, key,
                     eval_env.episode_len)
    mask = jnp.asarray(eval_env.action_mask)
    uniform = rollout(lambda s, k: eval_env.step(s, jax.random.uniform(
        k, mask.shape, minval=-1.0, maxval=1.0) * mask), eval_env, key, eval_env.episode_len)
    assert np.all(np.asarray(greedy["return"]) > np.asarray(uniform["return"]) + 1.0), (
        greedy["return"], uniform["return"])


def test_checkpoint_leaf_paths_come_from_the_state_type():
    from brc_mjx.agents.base import state_leaf
    from brc_mjx.agents.brc import leaf

    assert leaf("critic_params", "params", "task_embedding") == (
        ".learner.critic_params['params']['task_embedding']")
    assert leaf("critic_opt_state", 0) == ".learner.critic_opt_state[0]"
    assert state_leaf(ModelState, "w") == ".learner.w"
    with pytest.raises(KeyError, match="LearnerState has no field 'critic_parms'"):
        leaf("critic_parms")
