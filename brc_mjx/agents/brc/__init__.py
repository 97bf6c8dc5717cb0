"""BRC for continuous actions (the paper's agent): multi-task SAC with categorical BroNet critics,
on transitions in the per-task ring replay. Its parts: ``learner`` (state, ``sgd_step``),
``losses``, ``networks``, ``acting`` (acting, evaluation) here, and ``brc_mjx.replay`` and
``brc_mjx.core``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from brc_mjx import replay as replay_lib
from brc_mjx.agents.base import state_leaf
from brc_mjx.agents.brc.acting import actor_step, deterministic_step
from brc_mjx.agents.brc.learner import Learner, LearnerState, sgd_step
from brc_mjx.agents.brc.learner import init_state as init_learner_state
from brc_mjx.core import normalizer
from brc_mjx.replay import OBS_DTYPES


def leaf(field: str, *keys: str | int) -> str:
    """Checkpoint path of a leaf of BRC's state (``agents.base.state_leaf``)."""
    return state_leaf(LearnerState, field, *keys)


def example_transition(env) -> replay_lib.Transition:
    """One unbatched transition's shapes and dtypes, from the env's sizes."""
    return replay_lib.example_transition(env.obs_dim, env.action_dim)


def update_normalizer(learner_state, env_state, task_id, gamma: float):
    """``learner_state`` with the step's rewards and episode ends in its reward normaliser."""
    return learner_state.replace(normalizer=normalizer.update(
        learner_state.normalizer, env_state.reward, env_state.terminated, env_state.truncated,
        task_id, gamma))


def drop_episodes(learner_state):
    """``learner_state`` with the normaliser's episodes in flight dropped (envs were reset)."""
    return learner_state.replace(normalizer=normalizer.drop_episodes(learner_state.normalizer))


def sample_mixed(replay, offline, key, batch_size: int, offline_batch: int):
    """A batch from the replay, with ``offline_batch`` of its rows from the seeded replay."""
    if offline is None or offline_batch == 0:
        return replay_lib.sample(replay, key, batch_size)
    key_online, key_offline = jax.random.split(key)
    parts = (replay_lib.sample(replay, key_online, batch_size - offline_batch),
             replay_lib.sample(offline, key_offline, offline_batch))
    return jax.tree.map(lambda *x: jnp.concatenate(x), *parts)


@dataclasses.dataclass(frozen=True, eq=False)
class BRC:
    """The continuous-action agent (``brc_mjx.agents.base.Agent``)."""

    learner: Learner
    name: str = "brc"

    @property
    def action_dims(self) -> tuple[int, ...]:
        return self.learner.action_dims

    def check(self, cfg, env) -> None:
        del cfg, env  # train.validate covers the replay's sizes

    @staticmethod
    def _rings(cfg, env, derived) -> list[tuple[int, int, object]]:
        """``(tasks, capacity per task, obs dtype)`` of the replay and, with a data transfer,
        of the seeded replay."""
        rings = [(env.num_tasks, cfg.replay.capacity_per_task, OBS_DTYPES[cfg.replay.obs_dtype])]
        if derived is not None and derived.offline_tasks:
            rings.append((derived.offline_tasks, derived.offline_capacity,
                          OBS_DTYPES[derived.offline_obs_dtype]))
        return rings

    def replay_bytes(self, cfg, env, derived) -> int:
        example = example_transition(env)
        return sum(replay_lib.memory_bytes(example, *ring)
                   for ring in self._rings(cfg, env, derived))

    def init(self, cfg, env, derived, key):
        key, key_learner, key_env = jax.random.split(key, 3)
        learner_state = init_learner_state(self.learner, key_learner, derived.num_envs,
                                           derived.max_episode_length)
        example = example_transition(env)
        replay, *offline = [replay_lib.init(example, *ring)
                            for ring in self._rings(cfg, env, derived)]
        return learner_state, replay, offline[0] if offline else None, env.reset(key_env), key

    def collect(self, cfg, env, derived, state, key, warmup):
        env_state, transition = actor_step(self.learner, env, state.learner, state.env, key,
                                           warmup)
        with jax.named_scope("replay_add"):
            replay = replay_lib.add(state.replay, transition)
        learner_state = update_normalizer(state.learner, env_state, state.env.task_id,
                                          self.learner.cfg.gamma)
        return env_state, replay, learner_state

    def sample(self, cfg, derived, replay, offline, key):
        return sample_mixed(replay, offline, key, cfg.batch_size, derived.offline_batch)

    def update(self, learner_state: LearnerState, batch, key):
        return sgd_step(self.learner, learner_state, batch, key)

    def params(self, learner_state: LearnerState):
        return (learner_state.actor_params, learner_state.critic_params, learner_state.log_alpha)

    def reset(self, learner_state, replay, env_state):
        del env_state
        return drop_episodes(learner_state), replay

    def eval_step(self, env, learner_state, env_state, key):
        return deterministic_step(self.learner, env, learner_state, env_state, key)

    def diagnose(self, per_task: int, learner_state, replay, key):
        from brc_mjx.analysis import diagnostics

        return diagnostics.diagnose(self.learner, per_task, learner_state, replay, key)
