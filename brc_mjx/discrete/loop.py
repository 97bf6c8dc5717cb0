"""The discrete learner's parts of the one-jit loop of :mod:`brc_mjx.train`.

``train`` draws the loop once for both learners and calls these where the discrete one differs:
its state starts the frame replay at the envs' first frames, a step acts epsilon-greedily and
writes frames (not transitions), batches are n-step windows, and only the critic is trained.
"""

from __future__ import annotations

import jax

from brc_mjx.discrete import acting
from brc_mjx.discrete import learner as learner_lib
from brc_mjx.discrete import replay as frame_replay


def check_capacity(cfg, env) -> None:
    """Each env's ring must hold a frame stack and an n-step window, with room to sample."""
    e = cfg.env.envs_per_task
    stack, _ = frame_replay.stack_and_frame(env.obs_shape)
    slots = cfg.replay.capacity_per_task // e
    needed = 4 * (cfg.discrete.n_step + stack)
    if slots < needed:
        raise ValueError(
            f"replay.capacity_per_task {cfg.replay.capacity_per_task} gives {slots} slots per "
            f"env ({e} envs per task); discrete tasks need at least {needed} "
            "(4 x (n_step + frame stack))")


def replay_bytes(cfg, env) -> int:
    """Bytes of the frame replay of this run, without allocating it."""
    return frame_replay.memory_bytes(env.obs_shape, env.obs_dtype, env.num_tasks,
                                     env.envs_per_task, cfg.replay.capacity_per_task)


def init_parts(cfg, learner: learner_lib.DiscreteLearner, env, num_envs: int,
               max_episode_length: int, key: jax.Array):
    """``(learner_state, replay, env_state, key)`` of a fresh run: the frame replay begins with
    the envs' first frames."""
    key, key_learner, key_env = jax.random.split(key, 3)
    env_state = env.reset(key_env)
    replay = frame_replay.init(env.obs_shape, env.obs_dtype, env.num_tasks,
                               env.envs_per_task, cfg.replay.capacity_per_task)
    learner_state = learner_lib.init_state(learner, key_learner, num_envs, max_episode_length)
    return learner_state, frame_replay.begin(replay, env_state.obs), env_state, key


def collect(learner: learner_lib.DiscreteLearner, env, cfg, warmup_vector_steps: int, state,
            key: jax.Array):
    """Act epsilon-greedily in every env and write the step into the frame replay.

    ``state`` is the ``TrainState``; returns ``(env_state, replay)``.
    """
    e = cfg.env.envs_per_task
    env_state, action = acting.actor_step(learner, env, state.learner, state.env, key,
                                          state.env_steps * e, warmup_vector_steps * e)
    with jax.named_scope("replay_add"):
        replay = frame_replay.add(state.replay, action, env_state.reward, env_state.terminated,
                                  env_state.truncated, env_state.final_obs, env_state.obs)
    return env_state, replay


def sample(learner: learner_lib.DiscreteLearner, cfg, replay, key: jax.Array):
    """A batch of n-step windows."""
    return frame_replay.sample(replay, key, cfg.batch_size, cfg.discrete.n_step,
                               learner.cfg.gamma)
