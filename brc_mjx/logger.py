"""Run logging: TensorBoard (tensorboardX), one JSONL file, and a console line per epoch."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import subprocess
import time

from rich.console import Console

PACKAGES = ("jax", "jaxlib", "flax", "optax", "mujoco", "mujoco-mjx", "brax", "playground",
            "envpool", "orbax-checkpoint", "numpy")


def git_commit() -> str:
    """The repository's HEAD commit (``unknown`` outside a git checkout)."""
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that change numerics or APIs."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_metadata() -> dict:
    """Commit, package versions, devices and host of this run."""
    import jax

    return {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "devices": [str(d) for d in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
        "python": platform.python_version(),
        "host": platform.node(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def truncate_records(path: str, env_steps: int) -> None:
    """Keep the records of ``path`` (JSONL) up to ``env_steps``; drop a torn last line."""
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if record.get("env_steps", 0) <= env_steps:
                kept.append(line if line.endswith("\n") else line + "\n")
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.writelines(kept)
    os.replace(tmp, path)


@contextlib.contextmanager
def phase(console: Console, what: str, enabled: bool = True, hint: str = ""):
    """Say what starts before it starts (with ``hint`` on that line) and how long it took once
    done.

    On a terminal a spinner shows the elapsed time meanwhile: a compile or a large initial state
    can take minutes and print nothing. Yields a dict: a ``"note"`` put there is appended to the
    closing line.
    """
    notes: dict = {}
    if not enabled:
        yield notes
        return
    start = time.perf_counter()
    opening = f"{what} ({hint}) ..." if hint else f"{what} ..."
    if console.is_terminal:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn(opening), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            progress.add_task(what, total=None)
            yield notes
    else:
        console.print(opening)
        yield notes
    note = f" ({notes['note']})" if notes.get("note") else ""
    console.print(f"{what}: {time.perf_counter() - start:.1f} s{note}")


def _start_wandb(run_dir: str, options, config: dict):
    """Start (or, for a resumed run, continue) the W&B run of ``run_dir``.

    The W&B run id is kept in ``run_dir/wandb_id`` so that a resumed run logs into the same
    W&B run; W&B's files go under ``run_dir/wandb``.
    """
    import wandb

    id_path = os.path.join(run_dir, "wandb_id")
    if os.path.exists(id_path):
        with open(id_path) as f:
            run_id = f.read().strip()
    else:
        import uuid

        run_id = uuid.uuid4().hex[:8]
        with open(id_path, "w") as f:
            f.write(run_id)
    return wandb.init(project=options.project, entity=options.entity or None,
                      group=options.group or None, tags=list(options.tags) or None,
                      name=os.path.basename(os.path.normpath(run_dir)), id=run_id,
                      resume="allow", config=config, dir=run_dir,
                      # W&B must not wrap stdout: the console's progress line owns the terminal
                      settings=wandb.Settings(console="off", silent=True))


class Logger:
    """Writes every record to TensorBoard and ``metrics.jsonl``, and a summary to the console."""

    def __init__(self, run_dir: str, task_names=(), enabled: bool = True, start_env_steps: int = 0,
                 console: Console | None = None, wandb=None, config: dict | None = None):
        """Open the run's logs, continuing from ``start_env_steps`` (per task).

        Records logged after ``start_env_steps`` by an earlier process (one that was killed or
        crashed after its last checkpoint) are dropped from ``metrics.jsonl`` and purged from
        TensorBoard, so a resumed run's logs hold every step once. On a terminal a live progress
        line (see :meth:`start_progress`) sits under the epoch lines; elsewhere (CI, a log file)
        every epoch is one plain, unwrapped line.
        """
        self.enabled = enabled
        self.task_names = tuple(task_names)
        self.start = time.perf_counter()
        self.console_out = console or Console(highlight=False, soft_wrap=True)
        self.progress = None
        self.last_eval = None
        if not enabled:  # non-lead processes of a multi-host run stay silent
            return
        from tensorboardX import SummaryWriter

        path = os.path.join(run_dir, "metrics.jsonl")
        if os.path.exists(path):
            truncate_records(path, start_env_steps)
        self.writer = SummaryWriter(os.path.join(run_dir, "tb"), purge_step=start_env_steps + 1)
        self.jsonl = open(path, "a")
        self.wandb_run = None
        if wandb is not None and wandb.enabled:
            self.wandb_run = _start_wandb(run_dir, wandb, config or {})

    def console(self, message: str) -> None:
        if self.enabled:
            self.console_out.print(message)

    def phase(self, what: str, hint: str = ""):
        """:func:`phase` on this logger's console (silent on non-lead processes)."""
        return phase(self.console_out, what, self.enabled, hint)

    def start_progress(self, total_env_steps: int, env_steps: int) -> None:
        """Show a live progress line (terminal only): steps per task, %, ETA, rates, last eval."""
        if not (self.enabled and self.console_out.is_terminal):
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
        from rich.table import Column

        # Steps, % and ETA first and the bar narrow: at 80 columns the stats are cut, not the ETA.
        fixed = dict(no_wrap=True, overflow="crop")
        self.progress = Progress(
            TextColumn("steps/task {task.completed:,.0f}/{task.total:,.0f}",
                       table_column=Column(min_width=25, **fixed)),
            TextColumn("{task.percentage:>3.0f}% ETA", table_column=Column(min_width=8, **fixed)),
            TimeRemainingColumn(table_column=Column(min_width=7, **fixed)),
            BarColumn(bar_width=12),
            TextColumn("{task.fields[stats]}",
                       table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            console=self.console_out, expand=True)
        self.task = self.progress.add_task("train", total=total_env_steps, completed=env_steps,
                                           stats="")
        self.progress.start()

    def log(self, env_steps: int, record: dict) -> None:
        if not self.enabled:
            return
        for name, value in record.items():
            self.writer.add_scalar(name, value, env_steps)
        self.jsonl.write(json.dumps({"env_steps": env_steps, **record}) + "\n")
        self.jsonl.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(record, step=env_steps)
        parts = [f"[{time.perf_counter() - self.start:7.1f}s] steps/task {env_steps:>8d}",
                 f"env-steps/s {record.get('perf/env_steps_per_s', 0):8.0f}",
                 f"updates/s {record.get('perf/updates_per_s', 0):6.1f}"]
        if "train/critic_loss" in record and record["train/critic_loss"] != 0:
            parts.append(f"critic {record['train/critic_loss']:.3f}")
            if "train/alpha" in record:  # discrete-action learners have no temperature
                parts.append(f"alpha {record['train/alpha']:.4f}")
        if "perf/compile_s" in record:
            parts.append(f"compile {record['perf/compile_s']:.1f}s")
        if "eval/mean_return" in record:
            parts.append(f"[bold]eval {record['eval/mean_return']:.1f}[/bold]")
            self.last_eval = record["eval/mean_return"]
        self.console_out.print(" | ".join(parts))
        if self.progress is not None:
            stats = (f"env-steps/s {record.get('perf/env_steps_per_s', 0):,.0f} | updates/s "
                     f"{record.get('perf/updates_per_s', 0):,.1f}")
            if self.last_eval is not None:
                stats += f" | eval {self.last_eval:.1f}"
            self.progress.update(self.task, completed=env_steps, stats=stats)

    def log_videos(self, paths: list[str], env_steps: int) -> None:
        """Send a run's video files (GIFs) to W&B (TensorBoard gets them from the writer)."""
        if self.wandb_run is None or not paths:
            return
        import wandb

        self.wandb_run.log({f"videos/{os.path.splitext(os.path.basename(p))[0].rsplit('_', 1)[0]}":
                            wandb.Video(p, format="gif") for p in paths}, step=env_steps)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.wandb_run is not None:
            self.wandb_run.finish()
        if self.progress is not None:
            self.progress.stop()
        self.writer.close()
        self.jsonl.close()
