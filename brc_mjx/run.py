"""The thin host loop around the compiled epoch, as parts a benchmark or a new entry point reuses:

    set_up          checks, run directory (new / resumed), transfer plan, envs, program, state,
                    logger, run metadata                                        -> Session
    compile_epoch   the compiled epoch, with its phase message
    hooks           what happens between epochs (``brc_mjx.hooks``): Evaluation (+ videos),
                    Curves, Diagnostics, Checkpoints, Profile; prepare_hooks compiles them
    train_epochs    the epoch loop: epoch, record, hooks, log; stops on non-finite values

``run`` composes them. Everything expensive happens inside ``train.make_train_epoch``'s single
compiled program; this module only decides *when* to call it, evaluate, log and checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from rich.console import Console

from brc_mjx import checkpoint, parallel, rundir, train, transfer
from brc_mjx.config import TrainConfig, to_json
from brc_mjx.hooks import Epoch, Hook, default_hooks, prepare_hooks
from brc_mjx.logger import Logger, phase, run_metadata


class NonFiniteError(RuntimeError):
    """Training produced a NaN/Inf loss or parameter."""


def atari_options(cfg: TrainConfig):
    """The EnvPool settings of the run's Atari tasks (training envs: rewards clipped as set)."""
    import envs

    return envs.AtariOptions(
        repeat_action_probability=cfg.env.atari_repeat_action_probability,
        reward_clip=cfg.env.atari_reward_clip,
        full_action_space=cfg.env.atari_full_action_space,
    )


#: host-simulator (EnvPool) seeds of the evaluation envs are the run's seed plus this: disjoint
#: from the training pools' seeds (seed + env index) for any batch under a million envs
EVAL_SEED_OFFSET = 1 << 20


def make_envs(cfg: TrainConfig):
    """Training and evaluation env batches from the registry (fails fast on unknown names).

    Host simulators (EnvPool) are seeded from ``cfg.seed``, so runs of different seeds see
    different initial states (MJX envs take their randomness from the run's key instead).
    """
    import envs

    tasks = list(cfg.env.tasks)
    atari = atari_options(cfg)
    env = envs.make(tasks, cfg.env.envs_per_task, backend=cfg.env.backend, seed=cfg.seed,
                    atari=atari, mjx_solver=cfg.env.mjx_solver)
    if cfg.env.reward_scales:
        env = envs.scale_rewards(env, cfg.env.reward_scales)
    eval_env = None
    if cfg.env.eval_episodes > 0:  # evaluation reports the game score: rewards never clipped
        eval_env = envs.make(tasks, cfg.env.eval_episodes, backend=cfg.env.backend,
                             seed=cfg.seed + EVAL_SEED_OFFSET,
                             atari=dataclasses.replace(atari, reward_clip=False),
                             mjx_solver=cfg.env.mjx_solver)
    return env, eval_env


DEFAULT_COMPILE_CACHE = "~/.cache/brc_mjx/xla"


def enable_compile_cache(directory: str) -> str:
    """Turn on JAX's persistent compilation cache in ``directory`` (created); returns its path.

    Every program is cached whatever its compile time, so the run's epoch, evaluation and
    initialiser all load from disk on a second identical run.
    """
    from jax.experimental.compilation_cache import compilation_cache

    path = os.path.abspath(os.path.expanduser(
        directory or os.environ.get("JAX_COMPILATION_CACHE_DIR") or DEFAULT_COMPILE_CACHE))
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise ValueError(f"compile_cache_dir {path!r} cannot be created: {err.strerror}") from None
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if jax.config.jax_compilation_cache_dir != path:
        compilation_cache.set_cache_dir(path)
        compilation_cache.reset_cache()  # a process that compiled before must look again
    return path


def _check_finite(metrics: dict, env_steps: int) -> None:
    for name, value in metrics.items():
        if name.startswith("train/") and not np.all(np.isfinite(value)):
            raise NonFiniteError(
                f"non-finite metric {name} = {value} at env step {env_steps} (per task); "
                "stopping, the last good checkpoint is kept"
            )
    if not bool(metrics["params_finite"]):
        raise NonFiniteError(
            f"non-finite parameters after env step {env_steps} (per task); "
            "stopping, the last good checkpoint is kept"
        )


@dataclasses.dataclass
class Session:
    """A run set up to train (:func:`set_up`): what the epoch loop and its hooks share."""

    cfg: TrainConfig
    env: Any
    eval_env: Any
    program: train.Program
    state: train.TrainState
    logger: Logger
    manager: Any  # orbax CheckpointManager of run_dir/checkpoints
    numbering: str  # how checkpoints are named (rundir.checkpoint_numbering)
    export_dir: str  # warm-start exports ("" when off, or for a resumed run)
    lead: bool  # process 0: logs and writes run metadata
    start_epoch: int
    stop: bool = False  # a hook sets it to end the loop after the current epoch

    @property
    def agent(self):
        return self.program.agent


def set_up(cfg: TrainConfig, env_factory: Callable[[TrainConfig], tuple] = make_envs,
           agent_factory: Callable | None = None, restore_at: int | None = None,
           console: Console | None = None) -> Session:
    """Everything before the first epoch: checks, the run directory (new or resumed), the
    transfer plan, envs, the program, the state (restored, or built and transferred into), the
    logger and the run's metadata files.

    ``restore_at``: a resumed run restores its newest checkpoint at or before this one (0: none,
    the run starts afresh in its directory); a population's members resume at a common step.
    ``console``: where the run's lines go (default: the terminal).
    """
    if cfg.distributed:
        parallel.initialize_distributed()
    train.validate(cfg)
    atari_options(cfg).validate()  # before the run directory is touched
    cfg, restore, messages = rundir.prepare(cfg)
    numbering = rundir.checkpoint_numbering(cfg.run_dir)  # before meta.json is rewritten
    with rundir.removed_if_left_empty(cfg.run_dir):
        export_dir = ""
        if cfg.compile_cache:
            cache_dir = enable_compile_cache(cfg.compile_cache_dir)
            messages.append(f"compilation cache: {cache_dir}")
            export_dir = os.path.join(cache_dir, "exports")
        plan = transfer.plan(cfg, restore)
        env, eval_env = env_factory(cfg)
        env, eval_env = transfer.fit_envs(plan, cfg, env, eval_env)
        program = train.build(cfg, env, plan,
                              agent_factory(cfg, env, plan) if agent_factory else None)
        agent, derived = program.agent, program.derived
        tasks = plan.learner_tasks(env)
        needed = agent.replay_bytes(cfg, env, derived)
        from brc_mjx import replay as replay_lib

        data, _ = parallel.mesh_shape(cfg.mesh, jax.device_count())
        replay_lib.check_fits(needed // data)

        manager = checkpoint.make_manager(os.path.join(cfg.run_dir, "checkpoints"),
                                          cfg.keep_checkpoints)
        lead = jax.process_index() == 0  # only process 0 logs and writes run metadata
        console = console or Console(highlight=False, soft_wrap=True)
        state, resumed_at = None, None
        if restore:
            target = jax.tree.map(
                lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                program.abstract_state, program.shardings)
            resumed_at, state = checkpoint.restore_latest(manager, target, to_json(cfg),
                                                          at_most=restore_at)
        if restore and state is None:
            messages.append("no checkpoint at or before the population's common one: starting "
                            "afresh in place")
        elif restore:
            messages.append(
                f"resumed from checkpoint {resumed_at} "
                f"({int(state.env_steps) * cfg.env.envs_per_task} env steps per task)")
            if "envpool" in env.backends:
                state = train.reset_envs(env, program, state)
                messages.append("EnvPool envs cannot be restored: all envs were reset, the "
                                "episodes in flight are lost (their transitions stay in the "
                                "replay)")
        if state is None:
            params = sum(x.size for x in jax.tree.leaves(
                agent.params(program.abstract_state.learner)))
            with phase(console, f"building the initial state ({params / 1e6:,.1f}M parameters, "
                                f"{needed / 2**30:.2f} GiB of replay)", lead):
                state = train.init_sharded_state(cfg, env, program)
            if plan.active:
                state = transfer.load(state, plan, tasks, cfg)
                messages.extend(transfer.describe(plan, tasks, cfg))

    start_env_steps = int(state.env_steps) * cfg.env.envs_per_task
    logger = Logger(cfg.run_dir, env.task_names, enabled=lead, start_env_steps=start_env_steps,
                    console=console, wandb=cfg.wandb, config=to_json(cfg))
    for message in messages:
        logger.console(message)
    logger.console(
        f"tasks {', '.join(env.task_names)} | {derived.num_envs} envs | obs {env.obs_dim} | "
        f"action {env.action_dim} | replay {needed / 2**30:.3f} GiB | replay ratio "
        f"{derived.replay_ratio:.2f} ({cfg.updates_per_step} x {cfg.batch_size} per "
        f"{derived.num_envs} transitions) | {derived.epochs} epochs | run_dir {cfg.run_dir}"
    )
    if lead:
        rundir.write_json(os.path.join(cfg.run_dir, "config.json"), to_json(cfg))
        rundir.write_json(os.path.join(cfg.run_dir, "meta.json"),
                          {**run_metadata(), "task_names": list(tasks),
                           "env_task_names": list(env.task_names),
                           "action_dims": list(agent.action_dims), "obs_dim": env.obs_dim,
                           "action_dim": env.action_dim, "checkpoint_numbering": numbering})
        transfer.save_plan(plan, cfg.run_dir)
    if resumed_at is not None or cfg.profile:  # --profile reads the traced program's HLO
        # A state restored from a checkpoint crashed (SIGSEGV) the first epoch of an epoch
        # program deserialized from an export written by another process (a fresh state, or the
        # same program exported in this process, do not): resumed runs trace their programs.
        export_dir = ""
    return Session(cfg=cfg, env=env, eval_env=eval_env, program=program, state=state,
                   logger=logger, manager=manager, numbering=numbering, export_dir=export_dir,
                   lead=lead, start_epoch=int(state.env_steps) // cfg.steps_per_epoch)


def compile_epoch(session: Session):
    """The compiled epoch, with its phase message; returns ``(epoch_fn, seconds)``."""
    with session.logger.phase("compiling the training epoch",
                              hint="minutes on a CPU the first time; a later start with the "
                                   "same settings loads it from the cache") as done:
        epoch_fn, seconds, cached = train.compile_epoch(session.cfg, session.env,
                                                        session.program, session.state,
                                                        session.export_dir)
        done["note"] = "loaded from the warm-start cache" if cached else ""
    return epoch_fn, seconds


def epoch_record(session: Session, metrics: dict, seconds: float) -> dict:
    """The logged record of one epoch's metrics: learner metrics (only from epochs that
    learned: warm-up epochs have none, not zeros), per-task training returns, rates."""
    cfg, env = session.cfg, session.env
    record = ({k: float(v) for k, v in metrics.items() if k.startswith("train/")}
              if metrics["updates"] > 0 else {})
    episodes = metrics["episodes"]
    for k, name in enumerate(env.task_names):
        if episodes[k] > 0:
            record[f"train/{name}/episode_return"] = float(
                metrics["episode_return_sum"][k] / episodes[k])
    record["perf/env_steps_per_s"] = cfg.steps_per_epoch * env.num_envs / seconds
    record["perf/updates_per_s"] = float(metrics["updates"]) / seconds
    record["perf/epoch_s"] = seconds
    return record


def finish_epoch(session: Session, hooks: list[Hook], index: int, metrics: dict, seconds: float,
                 state, extra: dict | None = None) -> dict:
    """After epoch ``index`` (``metrics`` on the host, ``state`` the state it left): the finite
    check, the record (with ``extra`` added), the hooks, the log. Returns the record."""
    epoch = Epoch(index, (index + 1) * session.cfg.steps_per_epoch * session.cfg.env.envs_per_task,
                  index + 1 == session.program.derived.epochs)
    _check_finite(metrics, epoch.env_steps)
    record = epoch_record(session, metrics, seconds)
    record.update(extra or {})
    for hook in hooks:
        hook.record(epoch, state, record)
    session.logger.log(epoch.env_steps, record)
    for hook in hooks:
        hook.logged(epoch, state, record)
    return record


def train_epochs(session: Session, epoch_fn, hooks: list[Hook], stop_epoch: int,
                 first_extra: dict | None = None) -> dict:
    """Run epochs ``session.start_epoch .. stop_epoch - 1``: each epoch, then
    :func:`finish_epoch` (the first one with ``first_extra`` added). Stops on a non-finite metric
    or parameter (raising), or after an epoch where a hook set ``session.stop``. Returns every key
    logged, at its latest value; the final state is left in ``session.state``."""
    result: dict = {}
    for index in range(session.start_epoch, stop_epoch):
        for hook in hooks:
            hook.before(index)
        t = time.perf_counter()
        session.state, metrics = epoch_fn(session.state)
        metrics = jax.device_get(metrics)
        result.update(finish_epoch(session, hooks, index, metrics, time.perf_counter() - t,
                                   session.state,
                                   first_extra if index == session.start_epoch else None))
        if session.stop:
            break
    return result


def run(
    cfg: TrainConfig,
    env_factory: Callable[[TrainConfig], tuple] = make_envs,
    max_epochs: int | None = None,
    agent_factory: Callable | None = None,
) -> dict:
    """Train (or resume) according to ``cfg``; returns the last epoch's metrics and eval (a
    population, ``--population.*``: ``brc_mjx.population.run``'s result).

    The parts, each usable alone: :func:`set_up`, :func:`compile_epoch`, the hooks
    (``brc_mjx.hooks``: ``default_hooks``, ``prepare_hooks``), :func:`train_epochs`.

    Args:
      cfg: the run's config.
      env_factory: builds ``(train_env, eval_env_or_None)`` from the config.
      max_epochs: stop after this many epochs of *this call* (for tests / interruption).
      agent_factory: ``(cfg, env, plan) -> Agent`` (``brc_mjx.agents.base``); default:
        ``brc_mjx.agents.select``.
    """
    from brc_mjx import population

    if population.active(cfg):
        return population.run(cfg, env_factory, max_epochs, agent_factory)
    session = set_up(cfg, env_factory, agent_factory)
    cfg, logger, derived = session.cfg, session.logger, session.program.derived
    start_epoch = session.start_epoch
    if start_epoch >= derived.epochs:
        logger.console(f"the run is complete ({start_epoch} of {derived.epochs} epochs): nothing "
                       "to do (a larger --total-env-steps continues it)")
        logger.close()
        return {"state": session.state, "epochs_done": start_epoch, "run_dir": cfg.run_dir}
    epoch_fn, compile_s = compile_epoch(session)
    hooks = default_hooks(session, epoch_fn)
    side_compile_s = prepare_hooks(session, hooks)

    logger.start_progress(derived.epochs * cfg.steps_per_epoch * cfg.env.envs_per_task,
                          int(session.state.env_steps) * cfg.env.envs_per_task)
    stop_epoch = derived.epochs if max_epochs is None else min(derived.epochs,
                                                              start_epoch + max_epochs)
    result: dict = {"compile_s": compile_s}
    for hook in hooks:
        result.update(hook.start())
    result.update(train_epochs(session, epoch_fn, hooks, stop_epoch, {
        "perf/compile_s": compile_s, "perf/eval_compile_s": side_compile_s}))
    logger.close()
    result["state"] = session.state
    result["epochs_done"] = stop_epoch
    result["run_dir"] = cfg.run_dir
    return result
