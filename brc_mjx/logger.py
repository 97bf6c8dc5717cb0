"""Run logging: TensorBoard (tensorboardX), one JSONL file, and a console line per epoch."""

from __future__ import annotations

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


class Logger:
    """Writes every record to TensorBoard and ``metrics.jsonl``, and a summary to the console."""

    def __init__(self, run_dir: str, task_names=(), enabled: bool = True):
        self.enabled = enabled
        self.task_names = tuple(task_names)
        self.start = time.perf_counter()
        self.console_out = Console(highlight=False)
        if not enabled:  # non-lead processes of a multi-host run stay silent
            return
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(os.path.join(run_dir, "tb"))
        self.jsonl = open(os.path.join(run_dir, "metrics.jsonl"), "a")

    def console(self, message: str) -> None:
        if self.enabled:
            self.console_out.print(message)

    def log(self, env_steps: int, record: dict) -> None:
        if not self.enabled:
            return
        for name, value in record.items():
            self.writer.add_scalar(name, value, env_steps)
        self.jsonl.write(json.dumps({"env_steps": env_steps, **record}) + "\n")
        self.jsonl.flush()
        parts = [f"[{time.perf_counter() - self.start:7.1f}s] steps/task {env_steps:>8d}",
                 f"env-steps/s {record.get('perf/env_steps_per_s', 0):8.0f}",
                 f"updates/s {record.get('perf/updates_per_s', 0):6.1f}"]
        if "train/critic_loss" in record and record["train/critic_loss"] != 0:
            parts.append(f"critic {record['train/critic_loss']:.3f}")
            parts.append(f"alpha {record.get('train/alpha', 0):.4f}")
        if "perf/compile_s" in record:
            parts.append(f"compile {record['perf/compile_s']:.1f}s")
        if "eval/mean_return" in record:
            parts.append(f"[bold]eval {record['eval/mean_return']:.1f}[/bold]")
        self.console_out.print(" | ".join(parts))

    def close(self) -> None:
        if not self.enabled:
            return
        self.writer.close()
        self.jsonl.close()
