"""BRC for discrete actions (the paper's Atari agent, built on DrQ(epsilon)), as an agent of the
one loop (:class:`DiscreteBRC`): epsilon-greedy acting, the frame-efficient replay with n-step
windows, a critic-only ``sgd_step``. Shared with BRC (``brc_mjx.core``): the categorical
projection, BroNet blocks, reward normaliser, update helper.

- ``networks``  Nature-CNN encoder -> task embedding -> BroNet -> (actions, atoms) logits
- ``losses``    n-step categorical cross-entropy per action, DrQ's random shift
- ``learner``   the state pytree and ``sgd_step`` (critic -> Polyak target)
- ``acting``    epsilon-greedy collection and evaluation
- ``replay``    the frame-efficient replay (each frame stored once) with n-step windows
"""

from __future__ import annotations

import dataclasses

import jax

from brc_mjx.agents.brc import drop_episodes, update_normalizer
from brc_mjx.agents.brc_discrete import acting
from brc_mjx.agents.brc_discrete import learner as learner_lib
from brc_mjx.agents.brc_discrete import replay as frame_replay


@dataclasses.dataclass(frozen=True, eq=False)
class DiscreteBRC:
    """The discrete-action agent (``brc_mjx.agents.base.Agent``)."""

    learner: learner_lib.DiscreteLearner
    name: str = "brc-discrete"
    diagnose = None  # the diagnostics read an actor and a temperature: it has neither

    @property
    def action_dims(self) -> tuple[int, ...]:
        return self.learner.action_dims

    def check(self, cfg, env) -> None:
        """Each env's ring must hold a frame stack and an n-step window, with room to sample."""
        e = cfg.env.envs_per_task
        stack, _ = frame_replay.stack_and_frame(env.obs_shape)
        slots = cfg.replay.capacity_per_task // e
        needed = 4 * (cfg.discrete.n_step + stack)
        if slots < needed:
            raise ValueError(
                f"replay.capacity_per_task {cfg.replay.capacity_per_task} gives {slots} slots "
                f"per env ({e} envs per task); discrete tasks need at least {needed} "
                "(4 x (n_step + frame stack))")

    def replay_bytes(self, cfg, env, derived) -> int:
        del derived
        return frame_replay.memory_bytes(env.obs_shape, env.obs_dtype, env.num_tasks,
                                         env.envs_per_task, cfg.replay.capacity_per_task)

    def init(self, cfg, env, derived, key):
        """The frame replay begins with the envs' first frames; no seeded replay."""
        key, key_learner, key_env = jax.random.split(key, 3)
        env_state = env.reset(key_env)
        replay = frame_replay.init(env.obs_shape, env.obs_dtype, env.num_tasks,
                                   env.envs_per_task, cfg.replay.capacity_per_task)
        learner_state = learner_lib.init_state(self.learner, key_learner, derived.num_envs,
                                               derived.max_episode_length)
        return learner_state, frame_replay.begin(replay, env_state.obs), None, env_state, key

    def collect(self, cfg, env, derived, state, key, warmup):
        """Epsilon-greedy (its schedule counts transitions) and the frames into the replay."""
        del warmup  # the schedule reads the step count
        e = cfg.env.envs_per_task
        env_state, action = acting.actor_step(self.learner, env, state.learner, state.env, key,
                                              state.env_steps * e, derived.warmup_vector_steps * e)
        with jax.named_scope("replay_add"):
            replay = frame_replay.add(state.replay, action, env_state.reward,
                                      env_state.terminated, env_state.truncated,
                                      env_state.final_obs, env_state.obs)
        learner_state = update_normalizer(state.learner, env_state, state.env.task_id,
                                          self.learner.cfg.gamma)
        return env_state, replay, learner_state

    def sample(self, cfg, derived, replay, offline, key):
        """A batch of n-step windows."""
        del derived, offline
        return frame_replay.sample(replay, key, cfg.batch_size, cfg.discrete.n_step,
                                   self.learner.cfg.gamma)

    def update(self, learner_state, batch, key):
        return learner_lib.sgd_step(self.learner, learner_state, batch, key)

    def params(self, learner_state):
        return learner_state.critic_params

    def reset(self, learner_state, replay, env_state):
        """The frame replay starts new episodes at the reset frames."""
        return drop_episodes(learner_state), frame_replay.begin(replay, env_state.obs)

    def eval_step(self, env, learner_state, env_state, key):
        return acting.eval_step(self.learner, env, learner_state, env_state, key)
