"""The one-jit training loop, drawn from the inside out (spec section 4 + the replay of style.md).

    sgd_step                      (learner.py)   critic -> target -> actor -> temperature
    lax.scan over updates         (_learn)       sample a batch, sgd_step, updates_per_step times
    train_step                    act in all envs, insert into replay, update the normaliser, learn
    lax.scan over train_step      train_epoch
    jax.jit(train_epoch, donate)  make_train_epoch: one compiled program, TrainState donated

Discrete-action tasks (Atari) run the same loop with the peer learner of ``brc_mjx.discrete``:
epsilon-greedy acting, the frame-efficient replay with n-step windows, and the critic-only
``sgd_step``; the few places that differ call ``brc_mjx.discrete.loop``.

Nothing inside an epoch touches the host. The thin host loop (``brc_mjx.run``) evaluates, logs and
checkpoints between epochs.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import time
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from brc_mjx import normalizer, parallel, warmstart
from brc_mjx import replay as replay_lib
from brc_mjx.acting import actor_step
from brc_mjx.config import TrainConfig, to_json
from brc_mjx.config import validate as validate_learner
from brc_mjx.discrete import learner as discrete_learner
from brc_mjx.discrete import loop as discrete_loop
from brc_mjx.discrete import replay as frame_replay
from brc_mjx.learner import Learner, LearnerState, make_learner, sgd_step
from brc_mjx.learner import init_state as init_learner_state
from brc_mjx.transfer import Plan

OBS_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@flax.struct.dataclass
class TrainState:
    """All training state in one pytree: learner, replay, envs, PRNG key, counter."""

    learner: LearnerState  # or a DiscreteLearnerState (discrete tasks)
    replay: replay_lib.ReplayState  # or a frame_replay.FrameReplayState (discrete tasks)
    env: object  # envs.EnvState
    key: jax.Array  # raw uint32 PRNG key (checkpointable)
    env_steps: jax.Array  # () int32 vectorized env steps taken
    offline: replay_lib.ReplayState | None = None  # seeded transitions, never added to


@dataclasses.dataclass(frozen=True)
class Derived:
    """Sizes derived from a config and an env (never written back into the config)."""

    num_tasks: int
    num_envs: int
    vector_steps: int  # vectorized env steps of the whole run (whole epochs)
    warmup_vector_steps: int
    epochs: int
    eval_every_epochs: int
    checkpoint_every_epochs: int
    diagnostics_every_epochs: int
    replay_ratio: float  # sampled transitions per collected transition
    max_episode_length: int
    offline_tasks: int = 0  # rings of the seeded (data transfer) replay
    offline_capacity: int = 0  # slots per ring
    offline_obs_dtype: str = "float32"
    offline_batch: int = 0  # transitions of each batch sampled from it


def validate(cfg: TrainConfig) -> None:
    """Fail fast, with one clear line, on a config that cannot run (before any env or compile)."""
    validate_learner(cfg.learner)
    checks = [
        (cfg.env.envs_per_task >= 1,
         f"env.envs_per_task must be >= 1, got {cfg.env.envs_per_task}"),
        (cfg.env.eval_episodes >= 0,
         f"env.eval_episodes must be >= 0, got {cfg.env.eval_episodes}"),
        (len(cfg.env.tasks) >= 1, "env.tasks must name at least one task or suite"),
        (cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}"),
        (cfg.video_every >= 0, f"video_every must be >= 0, got {cfg.video_every}"),
        (not cfg.wandb.enabled or importlib.util.find_spec("wandb") is not None,
         "--wandb.enabled needs the wandb package: pip install -e '.[wandb]'"),
        (cfg.updates_per_step >= 0, f"updates_per_step must be >= 0, got {cfg.updates_per_step}"),
        (cfg.steps_per_epoch >= 1, f"steps_per_epoch must be >= 1, got {cfg.steps_per_epoch}"),
        (cfg.total_env_steps >= 1, f"total_env_steps must be >= 1, got {cfg.total_env_steps}"),
        (cfg.warmup_env_steps >= 0, f"warmup_env_steps must be >= 0, got {cfg.warmup_env_steps}"),
        (cfg.warmup_env_steps < cfg.total_env_steps,
         f"warmup_env_steps ({cfg.warmup_env_steps}) must be shorter than total_env_steps "
         f"({cfg.total_env_steps})"),
        (cfg.replay.capacity_per_task >= cfg.env.envs_per_task,
         f"replay.capacity_per_task ({cfg.replay.capacity_per_task}) must be >= "
         f"env.envs_per_task ({cfg.env.envs_per_task})"),
        (cfg.eval_every >= 0, f"eval_every must be >= 0, got {cfg.eval_every}"),
        (cfg.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {cfg.checkpoint_every}"),
        (cfg.diagnostics_every >= 0,
         f"diagnostics_every must be >= 0, got {cfg.diagnostics_every}"),
        (cfg.diagnostics_per_task >= 1,
         f"diagnostics_per_task must be >= 1, got {cfg.diagnostics_per_task}"),
        (all(x > 0 for x in cfg.env.reward_scales),
         f"env.reward_scales must all be > 0, got {cfg.env.reward_scales}"),
        (cfg.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {cfg.keep_checkpoints}"),
        (cfg.replay.obs_dtype in OBS_DTYPES,
         f"replay.obs_dtype must be one of {sorted(OBS_DTYPES)}, got {cfg.replay.obs_dtype!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    data, _ = parallel.mesh_shape(cfg.mesh, jax.device_count())
    if cfg.batch_size % data:
        raise ValueError(
            f"batch_size {cfg.batch_size} is not divisible by the data-parallel size {data}"
        )


def derive(cfg: TrainConfig, env, plan=None) -> Derived:
    """Pure function from (config, env, transfer plan) to the run's sizes."""
    e = cfg.env.envs_per_task
    if env.num_envs != e * env.num_tasks:
        raise ValueError(
            f"env has {env.num_envs} envs for {env.num_tasks} tasks, but env.envs_per_task is {e}"
        )
    epoch_transitions = cfg.steps_per_epoch * e  # per task
    if env.discrete:
        discrete_loop.check_capacity(cfg, env)
    epochs = max(1, math.ceil(cfg.total_env_steps / epoch_transitions))

    def every(n):
        return 0 if n == 0 else max(1, math.ceil(n / epoch_transitions))

    offline = {}
    source = plan and plan.replay
    if source is not None:  # every ring, online or seeded, gets an equal share of a batch
        rings = env.num_tasks + source.replay_tasks
        offline = dict(offline_tasks=source.replay_tasks, offline_capacity=source.replay_capacity,
                       offline_obs_dtype=source.replay_obs_dtype,
                       offline_batch=cfg.batch_size * source.replay_tasks // rings)

    return Derived(
        num_tasks=env.num_tasks,
        num_envs=env.num_envs,
        vector_steps=epochs * cfg.steps_per_epoch,
        warmup_vector_steps=math.ceil(cfg.warmup_env_steps / e),
        epochs=epochs,
        eval_every_epochs=every(cfg.eval_every),
        checkpoint_every_epochs=every(cfg.checkpoint_every),
        diagnostics_every_epochs=every(cfg.diagnostics_every),
        replay_ratio=cfg.updates_per_step * cfg.batch_size / env.num_envs,
        max_episode_length=int(max(env.episode_length)),
        **offline,
    )


def example_transition(env) -> replay_lib.Transition:
    """One unbatched transition's shapes and dtypes, from the env's sizes."""
    return replay_lib.example_transition(env.obs_dim, env.action_dim)


def replay_bytes(cfg: TrainConfig, env, derived: Derived | None = None) -> int:
    """Bytes of the replay buffer (and of a seeded one) for this run, without allocating."""
    if env.discrete:
        return discrete_loop.replay_bytes(cfg, env)
    example = example_transition(env)
    total = replay_lib.memory_bytes(example, env.num_tasks, cfg.replay.capacity_per_task,
                                    OBS_DTYPES[cfg.replay.obs_dtype])
    if derived is not None and derived.offline_tasks:
        total += replay_lib.memory_bytes(example, derived.offline_tasks, derived.offline_capacity,
                                         OBS_DTYPES[derived.offline_obs_dtype])
    return total


def init_train_state(cfg: TrainConfig, learner: Learner, env, derived: Derived) -> TrainState:
    """Fresh state: learner params, empty replay, reset envs, the run's PRNG key."""
    key = jax.random.PRNGKey(cfg.seed)
    if env.discrete:
        learner_state, replay, env_state, key = discrete_loop.init_parts(
            cfg, learner, env, derived.num_envs, derived.max_episode_length, key)
        state = TrainState(learner=learner_state, replay=replay, env=env_state, key=key,
                           env_steps=jnp.zeros((), jnp.int32))
        return jax.tree.map(lambda x: jnp.array(x, copy=True), state)
    key, key_learner, key_env = jax.random.split(key, 3)
    state = TrainState(
        learner=init_learner_state(
            learner, key_learner, derived.num_envs, derived.max_episode_length
        ),
        replay=replay_lib.init(
            example_transition(env), env.num_tasks, cfg.replay.capacity_per_task,
            OBS_DTYPES[cfg.replay.obs_dtype],
        ),
        env=env.reset(key_env),
        key=key,
        env_steps=jnp.zeros((), jnp.int32),
        offline=replay_lib.init(
            example_transition(env), derived.offline_tasks, derived.offline_capacity,
            OBS_DTYPES[derived.offline_obs_dtype],
        ) if derived.offline_tasks else None,
    )
    # Leaves may share a buffer (e.g. an env's obs and final_obs at reset); the whole state is
    # donated to the compiled epoch, so give every leaf its own buffer.
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


def _sample(replay, offline, key, batch_size: int, offline_batch: int):
    """A batch from the replay, with ``offline_batch`` of its rows from the seeded replay."""
    if offline is None or offline_batch == 0:
        return replay_lib.sample(replay, key, batch_size)
    key_online, key_offline = jax.random.split(key)
    parts = (replay_lib.sample(replay, key_online, batch_size - offline_batch),
             replay_lib.sample(offline, key_offline, offline_batch))
    return jax.tree.map(lambda *x: jnp.concatenate(x), *parts)


def _learn(learner: Learner, cfg: TrainConfig, derived: Derived, batch_sharding, learner_state,
           replay, offline, key):
    """``updates_per_step`` gradient steps on fresh replay batches; mean metrics."""

    discrete = isinstance(learner, discrete_learner.DiscreteLearner)

    def one(state, k):
        key_sample, key_sgd = jax.random.split(k)
        with jax.named_scope("sample"):
            if discrete:
                batch = discrete_loop.sample(learner, cfg, replay, key_sample)
            else:
                batch = _sample(replay, offline, key_sample, cfg.batch_size,
                                derived.offline_batch)
            if batch_sharding is not None:
                batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        if discrete:
            return discrete_learner.sgd_step(learner, state, batch, key_sgd)
        return sgd_step(learner, state, batch, key_sgd)

    learner_state, metrics = jax.lax.scan(one, learner_state, jax.random.split(
        key, cfg.updates_per_step))
    return learner_state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


def train_step(
    learner: Learner, env, cfg: TrainConfig, derived: Derived, state: TrainState,
    batch_sharding=None,
):
    """Act in all envs, insert the transitions, update the normaliser, then learn.

    Returns ``(state, metrics)``; learning is skipped (zero metrics, ``updated`` = 0) while the
    uniform-random warm-up lasts.
    """
    key, key_act, key_learn = jax.random.split(state.key, 3)
    warmup = state.env_steps < derived.warmup_vector_steps
    if isinstance(learner, discrete_learner.DiscreteLearner):
        env_state, replay = discrete_loop.collect(learner, env, cfg,
                                                  derived.warmup_vector_steps, state, key_act)
    else:
        env_state, transition = actor_step(learner, env, state.learner, state.env, key_act,
                                           warmup)
        with jax.named_scope("replay_add"):
            replay = replay_lib.add(state.replay, transition)
    learner_state = state.learner.replace(
        normalizer=normalizer.update(
            state.learner.normalizer, env_state.reward, env_state.terminated,
            env_state.truncated, state.env.task_id, learner.cfg.gamma,
        )
    )
    learn = functools.partial(_learn, learner, cfg, derived, batch_sharding)
    if cfg.updates_per_step > 0:
        metric_shapes = jax.eval_shape(learn, learner_state, replay, state.offline, key_learn)[1]
        skip = lambda ls, rp, off, k: (ls, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                                                        metric_shapes))
        learner_state, metrics = jax.lax.cond(warmup, skip, learn, learner_state, replay,
                                              state.offline, key_learn)
    else:
        metrics = {}
    metrics["updated"] = jnp.logical_and(jnp.logical_not(warmup), cfg.updates_per_step > 0)

    ended = jnp.logical_or(env_state.terminated, env_state.truncated).astype(jnp.float32)
    t = derived.num_tasks
    metrics["episode_return_sum"] = jax.ops.segment_sum(
        ended * env_state.last_episode_return, env_state.task_id, num_segments=t)
    metrics["episodes"] = jax.ops.segment_sum(ended, env_state.task_id, num_segments=t)
    new_state = state.replace(
        learner=learner_state, replay=replay, env=env_state, key=key,
        env_steps=state.env_steps + 1,
    )
    return new_state, metrics


def train_epoch(
    learner: Learner, env, cfg: TrainConfig, derived: Derived, state: TrainState,
    batch_sharding=None,
):
    """``steps_per_epoch`` train steps in one ``lax.scan``; returns ``(state, epoch_metrics)``.

    Epoch metrics: gradient-step metrics averaged over the steps that learned, per-task training
    episode returns (sum and count of finished episodes) and whether all parameters are finite.
    """
    step = functools.partial(train_step, learner, env, cfg, derived,
                             batch_sharding=batch_sharding)
    state, metrics = jax.lax.scan(lambda s, _: step(s), state, None, length=cfg.steps_per_epoch)
    updated = metrics.pop("updated").astype(jnp.float32)  # (steps,)
    n_updated = jnp.sum(updated)
    out = {
        k: jnp.sum(v * updated) / jnp.maximum(n_updated, 1.0)
        for k, v in metrics.items()
        if k.startswith("train/")
    }
    out["updates"] = n_updated * cfg.updates_per_step
    out["episode_return_sum"] = jnp.sum(metrics["episode_return_sum"], axis=0)  # (num_tasks,)
    out["episodes"] = jnp.sum(metrics["episodes"], axis=0)
    if isinstance(learner, discrete_learner.DiscreteLearner):
        params = state.learner.critic_params
    else:
        params = (state.learner.actor_params, state.learner.critic_params,
                  state.learner.log_alpha)
    out["params_finite"] = jnp.all(
        jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(params)])
    )
    return state, out


def make_train_epoch(learner: Learner, env, cfg: TrainConfig, derived: Derived,
                     mesh=None, shardings=None):
    """The compiled epoch: ``jax.jit`` with the whole ``TrainState`` donated.

    With a ``mesh`` and the state's ``shardings`` (``parallel.state_shardings``) the epoch is
    compiled for the mesh: the state keeps its shardings and every sampled batch is split along
    the data axis.
    """
    if mesh is None:
        return jax.jit(
            functools.partial(train_epoch, learner, env, cfg, derived), donate_argnums=0
        )
    fn = functools.partial(train_epoch, learner, env, cfg, derived,
                           batch_sharding=parallel.batch_sharding(mesh))
    return jax.jit(fn, in_shardings=(shardings,),
                   out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=0)


class Program(NamedTuple):
    """The static parts of a run, built once from (config, env) by :func:`build`."""

    learner: Learner
    derived: Derived
    mesh: Mesh
    abstract_state: TrainState  # jax.ShapeDtypeStruct leaves
    shardings: TrainState  # a NamedSharding per leaf


def build(cfg: TrainConfig, env, plan=None) -> Program:
    """Learner, derived sizes, mesh and the state's shardings (nothing is allocated).

    ``plan`` (``brc_mjx.transfer.Plan``) adds the offline tasks of a data transfer to the
    learner's tasks and keeps a transferred network's task input.
    """
    plan = plan or Plan()  # no sources: the env's own tasks and sizes
    if env.discrete:
        if plan.active:
            raise ValueError("--init-from / --replay-from are not supported for discrete-action "
                             "(Atari) tasks yet")
        learner = discrete_learner.make_learner(cfg.learner, cfg.discrete, env.obs_shape,
                                                env.obs_dtype, env.action_dims)
    else:
        learner = make_learner(cfg.learner, env.obs_dim, plan.learner_action_dims(env),
                               task_input=plan.task_input(env), action_dim=env.action_dim)
    derived = derive(cfg, env, plan)
    mesh = parallel.make_mesh(cfg.mesh)
    abstract = jax.eval_shape(functools.partial(init_train_state, cfg, learner, env, derived))
    shardings = parallel.state_shardings(abstract, mesh, cfg.mesh, env.num_envs)
    return Program(learner, derived, mesh, abstract, shardings)


def init_sharded_state(cfg: TrainConfig, env, program: Program) -> TrainState:
    """The initial state, built directly in its shardings (never whole on one device)."""
    init = functools.partial(init_train_state, cfg, program.learner, env, program.derived)
    return jax.jit(init, out_shardings=program.shardings)()


def reset_envs(env, program: Program, state: TrainState) -> TrainState:
    """``state`` with every env reset and the normaliser's episodes in flight dropped.

    For a resumed run whose simulator state lives outside the checkpoint (EnvPool's host pools);
    everything else (learner, replay, statistics, counters, key) is kept.
    """

    def reset(state):
        key_env = jax.random.fold_in(state.key, state.env_steps)
        learner_state = state.learner.replace(
            normalizer=normalizer.drop_episodes(state.learner.normalizer))
        env_state = env.reset(key_env)
        replay = state.replay
        if env.discrete:  # the frame replay starts new episodes at the reset frames
            replay = frame_replay.begin(replay, env_state.obs)
        return state.replace(env=env_state, learner=learner_state, replay=replay)

    return jax.jit(reset, in_shardings=(program.shardings,), out_shardings=program.shardings,
                   donate_argnums=0)(state)


def compile_epoch(cfg: TrainConfig, env, program: Program, state: TrainState,
                  export_dir: str = ""):
    """Compile the sharded epoch ahead of time for ``state``.

    With ``export_dir`` (and an exportable env, ``warmstart.usable``) the program goes through a
    serialized ``jax.export`` there, so a second identical start skips tracing it.

    Returns:
      ``(epoch_fn, seconds, cached)``: ``cached`` says the program came from an export.
    """
    start = time.perf_counter()
    epoch = make_train_epoch(program.learner, env, cfg, program.derived, program.mesh,
                             program.shardings)
    if export_dir and warmstart.usable(env, program.mesh):
        key = warmstart.program_key("train_epoch", to_json(cfg), (state,),
                                    warmstart.env_identity(env))
        epoch, cached = warmstart.compile_exported(epoch, (state,), export_dir, key, donate=True,
                                                   state_out=True)
    else:
        epoch, cached = epoch.lower(state).compile(), False
    return epoch, time.perf_counter() - start, cached
