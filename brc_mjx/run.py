"""The thin host loop around the compiled epoch, as parts a benchmark or a new entry point reuses:

    set_up          checks, run directory (new / resumed), transfer plan, envs, program, state,
                    logger, run metadata                                        -> Session
    compile_epoch   the compiled epoch, with its phase message
    hooks           what happens between epochs: Evaluation (+ videos, curves), Diagnostics,
                    Checkpoints, Profile; prepare_hooks compiles their programs up front
    train_epochs    the epoch loop: epoch, record, hooks, log; stops on non-finite values

``run`` composes them. Everything expensive happens inside ``train.make_train_epoch``'s single
compiled program; this module only decides *when* to call it, evaluate, log and checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from rich.console import Console

from brc_mjx import checkpoint, parallel, profiling, rundir, train, transfer, video, warmstart
from brc_mjx.analysis import diagnostics
from brc_mjx.config import TrainConfig, to_json
from brc_mjx.evaluation import evaluate
from brc_mjx.logger import Logger, phase, run_metadata
from envs import normalised_scores


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
                    atari=atari)
    if cfg.env.reward_scales:
        env = envs.scale_rewards(env, cfg.env.reward_scales)
    eval_env = None
    if cfg.env.eval_episodes > 0:  # evaluation reports the game score: rewards never clipped
        eval_env = envs.make(tasks, cfg.env.eval_episodes, backend=cfg.env.backend,
                             seed=cfg.seed + EVAL_SEED_OFFSET,
                             atari=dataclasses.replace(atari, reward_clip=False))
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


def compile_side(fn, args: tuple, name: str, cfg: TrainConfig, env, mesh, export_dir: str):
    """Compile an evaluation / diagnostics program for `args`, through `warmstart`'s exports
    when they are on and usable for `env` on `mesh`; returns ``(compiled, cached)``."""
    if export_dir and warmstart.usable(env, mesh):
        key = warmstart.program_key(name, to_json(cfg), args, warmstart.env_identity(env))
        return warmstart.compile_exported(fn, args, export_dir, key)
    return fn.lower(*args).compile(), False


def video_plan(cfg: TrainConfig, eval_env, logger: Logger) -> bool:
    """Whether this run writes videos; a one-line console note says why not when --video asked
    for them and they cannot be made (no eval env, no MJX task, no OpenGL backend)."""
    if not cfg.video:
        return False
    if eval_env is None:
        problem = "no evaluation env (env.eval_episodes is 0)"
    elif not video.drawable_tasks(eval_env):
        problem = ("no task can be drawn (videos need MJX tasks: EnvPool keeps its physics "
                   "in the pool)")
    else:
        video.choose_gl()
        problem = video.renderer_problem()
    if problem:
        logger.console(f"videos off: {problem}")
    return problem is None


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


def _report_phases(logger: Logger, profile_dir: str, hlo_text: str, steps: int,
                   wall_s: float) -> None:
    """Print and save (``phases.json``) the traced op time per phase of one train step.

    ``wall_s`` is the host-measured time of the traced epochs: it turns the op time of the span
    the trace holds (the profiler keeps ~1M events) into figures per train step.
    """
    if not logger.enabled:  # one report per run: process 0's
        return
    wall_us = 1e6 * wall_s / steps
    summary, span_us = profiling.summarize(profile_dir, hlo_text, wall_us)
    with open(os.path.join(profile_dir, "phases.json"), "w") as f:
        json.dump({"us_per_train_step": summary, "wall_us_per_train_step": wall_us,
                   "steps": steps, "span_us": span_us}, f, indent=2)
    profiling.save_program(profile_dir, hlo_text, "train_epoch")
    logger.console(f"profile: {wall_us:.0f} us of wall time per train step (traced); XLA op "
                   f"time by phase (over the first {span_us / 1e6:.2f} s of the trace):\n"
                   + profiling.format_summary(summary))


def write_curves(run_dir: str) -> None:
    """``run_dir/curves.png``: the run's eval curves so far (mean and per task), drawn by
    brc-analyze's plotter from ``metrics.jsonl`` after every evaluation (~0.5 s on a CPU)."""
    from brc_mjx import curves

    run = curves.load_run(run_dir)
    run.label = os.path.basename(os.path.normpath(run_dir))
    tmp = os.path.join(run_dir, "curves.tmp.png")
    curves.plot_curves([run], tmp)
    os.replace(tmp, os.path.join(run_dir, "curves.png"))  # a reader never sees half a file


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
           agent_factory: Callable | None = None) -> Session:
    """Everything before the first epoch: checks, the run directory (new or resumed), the
    transfer plan, envs, the program, the state (restored, or built and transferred into), the
    logger and the run's metadata files."""
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
        console = Console(highlight=False, soft_wrap=True)
        state, resumed_at = None, None
        if restore:
            target = jax.tree.map(
                lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                program.abstract_state, program.shardings)
            resumed_at, state = checkpoint.restore_latest(manager, target, to_json(cfg))
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


# --- hooks: what happens between epochs --------------------------------------------------------
#
# A hook is compiled once before the first epoch (``prepare``) and then called after every
# epoch: ``record(epoch, state, record)`` adds to the epoch's record before it is logged,
# ``logged(epoch, state, record)`` acts on what was logged. ``Epoch`` says where the loop is.


@dataclasses.dataclass(frozen=True)
class Epoch:
    index: int  # 0-based epoch of the whole run
    env_steps: int  # per task, at its end
    last: bool  # the run's last epoch


class Hook:
    """Base hook: does nothing. ``compiled`` names what ``prepare`` compiled (for the phase
    message); ``cached`` those loaded from the warm-start cache."""

    compiled: tuple[str, ...] = ()
    cached: tuple[str, ...] = ()

    def prepare(self, session: Session) -> None:
        pass

    def start(self) -> dict:
        """Before the first epoch of this call; returns what it logged (at step 0)."""
        return {}

    def before(self, epoch: int) -> None:
        pass

    def record(self, epoch: Epoch, state, record: dict) -> None:
        pass

    def logged(self, epoch: Epoch, state, record: dict) -> None:
        pass


class Evaluation(Hook):
    """Evaluation every ``eval_every`` steps and at the end (and at the start with
    ``eval_at_start``), with videos; the eval scores and ``perf/eval_s`` go into the record."""

    def __init__(self, session: Session):
        self.session = session
        cfg = session.cfg
        self.key = jax.random.PRNGKey(cfg.seed + 1)
        self.videos = video_plan(cfg, session.eval_env, session.logger)
        self.next_video = cfg.video_every or np.inf
        self.fn = None
        self.compiled = ("evaluation",) if session.eval_env is not None else ()

    def prepare(self, session: Session) -> None:
        if not self.compiled:
            return
        cfg, derived = session.cfg, session.program.derived
        fn = jax.jit(functools.partial(evaluate, session.agent, session.eval_env,
                                       num_steps=derived.max_episode_length, trace=self.videos))
        self.fn, hit = compile_side(fn, (session.state.learner, self.key),
                                    f"evaluate:{self.videos}", cfg, session.eval_env,
                                    session.program.mesh, session.export_dir)
        self.cached = ("evaluation",) if hit else ()

    def start(self) -> dict:
        """With ``eval_at_start`` on a fresh run: the starting policy's scores, logged at step
        0 (with a key no epoch uses)."""
        s = self.session
        if not (s.cfg.eval_at_start and self.fn is not None and s.start_epoch == 0):
            return {}
        record: dict = {}
        self.evaluate_into(record, s.state.learner, jax.random.PRNGKey(s.cfg.seed + 3))
        s.logger.log(0, record)
        return record

    def evaluate_into(self, record: dict, learner_state, key: jax.Array) -> dict:
        """Evaluate the current policy; its per-task and mean scores go into ``record``."""
        env = self.session.env
        ev = jax.device_get(self.fn(learner_state, key))
        for k, name in enumerate(env.task_names):
            record[f"eval/{name}/return"] = float(ev["return"][k])
            if env.has_success[k]:
                record[f"eval/{name}/success"] = float(ev["success"][k])
        record["eval/mean_return"] = float(np.mean(ev["return"]))
        if any(env.has_success):
            record["eval/mean_success"] = float(np.mean(
                [ev["success"][k] for k in range(env.num_tasks) if env.has_success[k]]))
        scores = normalised_scores(env.task_names, ev["return"])
        record.update({f"eval/{name}/normalised_score": v for name, v in scores.items()})
        if scores:
            record["eval/mean_normalised_score"] = float(np.mean(list(scores.values())))
        return ev

    def record(self, epoch: Epoch, state, record: dict) -> None:
        session, derived = self.session, self.session.program.derived
        cfg = session.cfg
        if self.fn is None or not (epoch.last or (
                derived.eval_every_epochs and (epoch.index + 1) % derived.eval_every_epochs == 0)):
            return
        t = time.perf_counter()
        ev = self.evaluate_into(record, state.learner, jax.random.fold_in(self.key, epoch.index))
        record["perf/eval_s"] = time.perf_counter() - t
        if self.videos and session.lead and (epoch.last or epoch.env_steps >= self.next_video):
            t = time.perf_counter()
            paths = video.write_videos(session.eval_env, ev["qpos"], ev["ended"],
                                       os.path.join(cfg.run_dir, "videos"), epoch.env_steps,
                                       session.logger.writer)
            session.logger.log_videos(paths, epoch.env_steps)
            record["perf/video_s"] = time.perf_counter() - t
            self.next_video = (epoch.env_steps // cfg.video_every + 1) * cfg.video_every if (
                cfg.video_every) else np.inf



class Curves(Hook):
    """``run_dir/curves.png`` redrawn after every logged evaluation."""

    def __init__(self, session: Session):
        self.session = session

    def logged(self, epoch: Epoch, state, record: dict) -> None:
        if self.session.lead and "eval/mean_return" in record:
            write_curves(self.session.cfg.run_dir)


class Diagnostics(Hook):
    """The agent's diagnostics every ``diagnostics_every`` steps after the warm-up."""

    def __init__(self, session: Session):
        self.session = session
        self.key = jax.random.PRNGKey(session.cfg.seed + 2)
        agent, every = session.agent, session.program.derived.diagnostics_every_epochs
        if every and agent.diagnose is None:
            session.logger.console(f"diagnostics off: the {agent.name} agent has none")
        self.compiled = ("diagnostics",) if every and agent.diagnose is not None else ()
        self.fn = None

    def prepare(self, session: Session) -> None:
        if not self.compiled:
            return
        fn = jax.jit(functools.partial(session.agent.diagnose, session.cfg.diagnostics_per_task))
        self.fn, hit = compile_side(fn, (session.state.learner, session.state.replay, self.key),
                                    "diagnose", session.cfg, session.env, session.program.mesh,
                                    session.export_dir)
        self.cached = ("diagnostics",) if hit else ()

    def record(self, epoch: Epoch, state, record: dict) -> None:
        every = self.session.program.derived.diagnostics_every_epochs
        if self.fn is None or (epoch.index + 1) % every or (
                epoch.env_steps <= self.session.cfg.warmup_env_steps):
            return
        t = time.perf_counter()
        diag = jax.device_get(self.fn(state.learner, state.replay,
                                      jax.random.fold_in(self.key, epoch.index)))
        record.update(diagnostics.records(diag, self.session.env.task_names))
        record["perf/diagnostics_s"] = time.perf_counter() - t


class Checkpoints(Hook):
    """A checkpoint every ``checkpoint_every`` steps and at the end."""

    def __init__(self, session: Session):
        self.session = session

    def logged(self, epoch: Epoch, state, record: dict) -> None:
        s, every = self.session, self.session.program.derived.checkpoint_every_epochs
        if epoch.last or (every and (epoch.index + 1) % every == 0):
            checkpoint.save(s.manager, rundir.checkpoint_number(s.numbering, epoch.env_steps,
                                                                epoch.index + 1),
                            state, to_json(s.cfg))


class Profile(Hook):
    """With ``--profile``: a JAX profiler trace of three steady-state epochs, then where the
    time goes by phase."""

    def __init__(self, session: Session, epoch_fn):
        self.session, self.epoch_fn = session, epoch_fn
        start = session.start_epoch
        self.epochs = range(start + 2, start + 5) if session.cfg.profile else range(0)
        self.dir = os.path.join(session.cfg.run_dir, "profile")
        self.seconds = 0.0

    def before(self, epoch: int) -> None:
        if self.epochs and epoch == self.epochs.start:
            jax.profiler.start_trace(self.dir, create_perfetto_trace=True)

    def record(self, epoch: Epoch, state, record: dict) -> None:
        if epoch.index in self.epochs:
            self.seconds += record["perf/epoch_s"]
        if self.epochs and epoch.index + 1 == self.epochs.stop:
            jax.profiler.stop_trace()
            _report_phases(self.session.logger, self.dir, self.epoch_fn.as_text(),
                           len(self.epochs) * self.session.cfg.steps_per_epoch, self.seconds)


def default_hooks(session: Session, epoch_fn) -> list[Hook]:
    """The hooks of a training run, in the order they act after an epoch."""
    return [Profile(session, epoch_fn), Evaluation(session), Diagnostics(session),
            Curves(session), Checkpoints(session)]


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


def prepare_hooks(session: Session, hooks: list[Hook]) -> float:
    """Compile every hook's programs now, not at their first use mid-run; returns seconds."""
    t = time.perf_counter()
    sides = [name for hook in hooks for name in hook.compiled]
    with (session.logger.phase(f"compiling {' and '.join(sides)}") if sides
          else contextlib.nullcontext({})) as done:
        for hook in hooks:
            hook.prepare(session)
        cached = [name for hook in hooks for name in hook.cached]
        done["note"] = f"{' and '.join(cached)} loaded from the warm-start cache" if cached else ""
    return time.perf_counter() - t


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


def train_epochs(session: Session, epoch_fn, hooks: list[Hook], stop_epoch: int,
                 first_extra: dict | None = None) -> dict:
    """Run epochs ``session.start_epoch .. stop_epoch - 1``: each epoch, its record (the first
    one with ``first_extra`` added), the hooks, the log. Stops on a non-finite metric or
    parameter (raising), or after an epoch where a hook set ``session.stop``. Returns every key
    logged, at its latest value; the final state is left in ``session.state``."""
    cfg, logger = session.cfg, session.logger
    epochs = session.program.derived.epochs
    result: dict = {}
    for index in range(session.start_epoch, stop_epoch):
        for hook in hooks:
            hook.before(index)
        t = time.perf_counter()
        session.state, metrics = epoch_fn(session.state)
        metrics = jax.device_get(metrics)
        seconds = time.perf_counter() - t
        epoch = Epoch(index, (index + 1) * cfg.steps_per_epoch * cfg.env.envs_per_task,
                      index + 1 == epochs)
        _check_finite(metrics, epoch.env_steps)
        record = epoch_record(session, metrics, seconds)
        if index == session.start_epoch:
            record.update(first_extra or {})
        for hook in hooks:
            hook.record(epoch, session.state, record)
        logger.log(epoch.env_steps, record)
        for hook in hooks:
            hook.logged(epoch, session.state, record)
        result.update(record)
        if session.stop:
            break
    return result


def run(
    cfg: TrainConfig,
    env_factory: Callable[[TrainConfig], tuple] = make_envs,
    max_epochs: int | None = None,
    agent_factory: Callable | None = None,
) -> dict:
    """Train (or resume) according to ``cfg``; returns the last epoch's metrics and eval.

    The parts, each usable alone: :func:`set_up`, :func:`compile_epoch`, the hooks
    (:func:`default_hooks`, :func:`prepare_hooks`), :func:`train_epochs`.

    Args:
      cfg: the run's config.
      env_factory: builds ``(train_env, eval_env_or_None)`` from the config.
      max_epochs: stop after this many epochs of *this call* (for tests / interruption).
      agent_factory: ``(cfg, env, plan) -> Agent`` (``brc_mjx.agents.base``); default:
        ``brc_mjx.agents.select``.
    """
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
