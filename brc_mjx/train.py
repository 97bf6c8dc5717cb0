"""The one-jit training loop, drawn from the inside out (spec section 4 + the replay of style.md).

    agent.update                  one gradient step (BRC: critic -> target -> actor -> temperature)
    lax.scan over updates         (_learn)       agent.sample + agent.update, updates_per_step times
    train_step                    agent.collect (act in all envs, write the replay), then learn
    lax.scan over train_step      train_epoch
    jax.jit(train_epoch, donate)  make_train_epoch: one compiled program, TrainState donated

The loop knows no learner: it calls an agent (``brc_mjx.agents.base.Agent``: init, collect,
sample, update), picked once by ``brc_mjx.agents.select`` (BRC for continuous actions, its
discrete-action peer for Atari) or given to :func:`build`.

Nothing inside an epoch touches the host. The thin host loop (``brc_mjx.run``) evaluates, logs and
checkpoints between epochs.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import math
import time
from typing import Generic, NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from brc_mjx import agents, parallel, warmstart
from brc_mjx import replay as replay_lib
from brc_mjx.agents.base import Agent, ReplayT, StateT
from brc_mjx.config import TrainConfig, to_json
from brc_mjx.config import validate as validate_learner
from brc_mjx.replay import OBS_DTYPES
from envs.mjx_backend import SOLVERS as MJX_SOLVERS


@flax.struct.dataclass
class TrainState(Generic[StateT, ReplayT]):
    """All training state in one pytree: learner, replay, envs, PRNG key, counter.

    Generic in the agent's two pytrees: BRC's is ``TrainState[LearnerState, ReplayState]``."""

    learner: StateT  # the agent's state (Agent.init)
    replay: ReplayT  # the agent's replay
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
        (cfg.env.mjx_solver in MJX_SOLVERS,
         f"env.mjx_solver must be one of {', '.join(MJX_SOLVERS)}, got {cfg.env.mjx_solver!r}"),
        (cfg.batch_size >= 1, f"batch_size must be >= 1, got {cfg.batch_size}"),
        (0 <= cfg.seed < 2**31, f"seed must be in [0, 2**31), got {cfg.seed}"),
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


def init_train_state(cfg: TrainConfig, agent: Agent, env, derived: Derived,
                     seed: jax.Array | int | None = None) -> TrainState:
    """Fresh state: the agent's state and replay, reset envs, the run's PRNG key (from ``seed``,
    default ``cfg.seed``)."""
    learner_state, replay, offline, env_state, key = agent.init(
        cfg, env, derived, jax.random.PRNGKey(cfg.seed if seed is None else seed))
    state = TrainState(learner=learner_state, replay=replay, env=env_state, key=key,
                       env_steps=jnp.zeros((), jnp.int32), offline=offline)
    # Leaves may share a buffer (e.g. an env's obs and final_obs at reset); the whole state is
    # donated to the compiled epoch, so give every leaf its own buffer.
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


def _learn(agent: Agent, cfg: TrainConfig, derived: Derived, batch_sharding, learner_state,
           replay, offline, key):
    """``updates_per_step`` gradient steps on fresh replay batches; mean metrics."""

    def one(state, k):
        key_sample, key_sgd = jax.random.split(k)
        with jax.named_scope("sample"):
            batch = agent.sample(cfg, derived, replay, offline, key_sample)
            if batch_sharding is not None:
                batch = jax.lax.with_sharding_constraint(batch, batch_sharding)
        return agent.update(state, batch, key_sgd)

    learner_state, metrics = jax.lax.scan(one, learner_state, jax.random.split(
        key, cfg.updates_per_step))
    return learner_state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)


def train_step(
    agent: Agent, env, cfg: TrainConfig, derived: Derived, state: TrainState,
    batch_sharding=None,
):
    """Act in all envs and write the replay (the agent's ``collect``), then learn.

    Returns ``(state, metrics)``; learning is skipped (zero metrics, ``updated`` = 0) while the
    uniform-random warm-up lasts.
    """
    key, key_act, key_learn = jax.random.split(state.key, 3)
    warmup = state.env_steps < derived.warmup_vector_steps
    env_state, replay, learner_state = agent.collect(cfg, env, derived, state, key_act, warmup)
    learn = functools.partial(_learn, agent, cfg, derived, batch_sharding)
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
    agent: Agent, env, cfg: TrainConfig, derived: Derived, state: TrainState,
    batch_sharding=None,
):
    """``steps_per_epoch`` train steps in one ``lax.scan``; returns ``(state, epoch_metrics)``.

    Epoch metrics: gradient-step metrics averaged over the steps that learned, per-task training
    episode returns (sum and count of finished episodes) and whether all parameters are finite.
    """
    step = functools.partial(train_step, agent, env, cfg, derived,
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
    out["params_finite"] = jnp.all(
        jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(agent.params(
            state.learner))])
    )
    return state, out


def make_train_epoch(agent: Agent, env, cfg: TrainConfig, derived: Derived,
                     mesh=None, shardings=None):
    """The compiled epoch: ``jax.jit`` with the whole ``TrainState`` donated.

    With a ``mesh`` and the state's ``shardings`` (``parallel.state_shardings``) the epoch is
    compiled for the mesh: the state keeps its shardings and every sampled batch is split along
    the data axis.
    """
    if mesh is None:
        return jax.jit(
            functools.partial(train_epoch, agent, env, cfg, derived), donate_argnums=0
        )
    fn = functools.partial(train_epoch, agent, env, cfg, derived,
                           batch_sharding=parallel.batch_sharding(mesh))
    return jax.jit(fn, in_shardings=(shardings,),
                   out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=0)


class Program(NamedTuple):
    """The static parts of a run, built once from (config, env) by :func:`build`."""

    agent: Agent
    derived: Derived
    mesh: Mesh
    abstract_state: TrainState  # jax.ShapeDtypeStruct leaves
    shardings: TrainState  # a NamedSharding per leaf


def build(cfg: TrainConfig, env, plan=None, agent: Agent | None = None) -> Program:
    """Agent, derived sizes, mesh and the state's shardings (nothing is allocated).

    ``plan`` (``brc_mjx.transfer.Plan``, or None: the env's own tasks and sizes) adds the
    offline tasks of a data transfer to the learner's tasks and keeps a transferred network's
    task input. ``agent``: the learner to run
    (default: ``brc_mjx.agents.select``'s for the env).
    """
    if agent is None:
        agent = agents.select(cfg, env, plan)
    agent.check(cfg, env)
    derived = derive(cfg, env, plan)
    mesh = parallel.make_mesh(cfg.mesh)
    abstract = jax.eval_shape(functools.partial(init_train_state, cfg, agent, env, derived))
    shardings = parallel.state_shardings(abstract, mesh, cfg.mesh, env.num_envs)
    return Program(agent, derived, mesh, abstract, shardings)


def init_sharded_state(cfg: TrainConfig, env, program: Program) -> TrainState:
    """The initial state, built directly in its shardings (never whole on one device)."""
    init = functools.partial(init_train_state, cfg, program.agent, env, program.derived)
    # the seed is an argument, not a constant: runs that differ only in seed (a population's
    # members) compile one program, which the compilation cache then holds
    return jax.jit(init, out_shardings=program.shardings)(jnp.asarray(cfg.seed, jnp.uint32))


def reset_envs(env, program: Program, state: TrainState) -> TrainState:
    """``state`` with every env reset and the normaliser's episodes in flight dropped.

    For a resumed run whose simulator state lives outside the checkpoint (EnvPool's host pools);
    everything else (learner, replay, statistics, counters, key) is kept.
    """

    def reset(state):
        env_state = env.reset(jax.random.fold_in(state.key, state.env_steps))
        learner_state, replay = program.agent.reset(state.learner, state.replay, env_state)
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
    epoch = make_train_epoch(program.agent, env, cfg, program.derived, program.mesh,
                             program.shardings)
    if export_dir and warmstart.usable(env, program.mesh):
        key = warmstart.program_key("train_epoch", to_json(cfg), (state,),
                                    warmstart.env_identity(env))
        epoch, cached = warmstart.compile_exported(epoch, (state,), export_dir, key, donate=True,
                                                   state_out=True)
    else:
        epoch, cached = epoch.lower(state).compile(), False
    return epoch, time.perf_counter() - start, cached
