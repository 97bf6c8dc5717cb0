"""What happens between epochs: hooks the host loop (``brc_mjx.run``) calls around the compiled
epoch.

A hook is compiled once before the first epoch (``prepare``, all of them by
:func:`prepare_hooks`) and then called after every epoch: ``record(epoch, state, record)`` adds
to the epoch's record before it is logged, ``logged(epoch, state, record)`` acts on what was
logged. :func:`default_hooks` are a training run's: Profile, Evaluation (+ videos),
Diagnostics, Curves, Checkpoints. A benchmark adds its own (``benchmarks/loop.py``,
``benchmarks/peer.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import time
from typing import TYPE_CHECKING

import jax
import numpy as np

from brc_mjx import checkpoint, profiling, rundir, video, warmstart
from brc_mjx.analysis import diagnostics
from brc_mjx.config import TrainConfig, to_json
from brc_mjx.evaluation import evaluate
from brc_mjx.logger import Logger
from envs import normalised_scores

if TYPE_CHECKING:
    from brc_mjx.run import Session


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


def whole(state):
    """The ``TrainState`` a hook was given: itself, or a population member's whole state (a
    ``population.MemberState`` view slices its fields only when they are read)."""
    return state.whole() if hasattr(state, "whole") else state


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
                            whole(state), to_json(s.cfg))


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

