"""Shared pieces of the benchmarks: the JSON row header and appending rows."""

from __future__ import annotations

import datetime
import json
import os
import platform
from pathlib import Path

import jax

from brc_mjx.logger import git_commit, package_versions

RESULTS_DIR = Path(__file__).parent / "results"


def _commit() -> str:
    """HEAD commit, with ``-dirty`` when the working tree has uncommitted changes."""
    import subprocess

    commit = git_commit()
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=Path(__file__).parent, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return commit + ("-dirty" if dirty else "")


def row_header(benchmark: str) -> dict:
    """Commit, device kind and count, host, versions and time of a benchmark row."""
    device = jax.devices()[0]
    return dict(
        benchmark=benchmark,
        git_commit=_commit(),
        device=f"{device.platform}:{device.device_kind}",
        device_count=jax.device_count(),
        host=f"{platform.machine()} x{os.cpu_count()}",
        versions=package_versions(),
        time=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )


def append_row(path: Path, row: dict) -> None:
    """Append one JSON row to ``path`` (created with its folder if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")
