"""Shared pieces of the benchmarks: the JSON row header, appending rows, XLA FLOP counts."""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from pathlib import Path

import jax

from brc_mjx.logger import git_commit, package_versions

RESULTS_DIR = Path(__file__).parent / "results"
PROFILES_DIR = Path(__file__).parent / "profiles"  # traces of --profile runs (not committed)


# What the benchmarks themselves write: a suite run must not mark its own later rows dirty.
OUTPUTS = ("benchmarks/results", "benchmarks/plots", "benchmarks/README.md")


def _commit() -> str:
    """HEAD commit, with ``-dirty`` when tracked files other than benchmark outputs changed."""
    import subprocess

    commit = git_commit()
    excludes = [f":(top,exclude){path}" for path in OUTPUTS]
    try:
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ":(top)", *excludes],
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


def xla_flops(compiled) -> float:
    """FLOPs of a compiled program by XLA's cost analysis (a loop body counts once)."""
    from brc_mjx.roofline import cost_of

    return cost_of(compiled).flops


def profile_call(name: str, compiled, run_once, steps: int) -> dict[str, float]:
    """Trace one blocking ``run_once()`` of ``compiled`` into ``profiles/<name>``.

    Prints and returns the XLA op time per phase and per step (``brc_mjx.profiling``); open the
    trace itself with TensorBoard's profile plugin or Perfetto. The program's HLO text is saved
    beside the trace (``program.hlo.txt``) so that the split can be redone from the files alone.
    A trace that cannot be split is reported in one line and the benchmark goes on.
    """
    from brc_mjx import profiling

    directory = str(PROFILES_DIR / name)
    hlo_text = compiled.as_text()
    profiling.save_program(directory, hlo_text, "program")
    try:
        with profiling.trace(directory):
            start = time.perf_counter()
            run_once()
            wall_us = 1e6 * (time.perf_counter() - start) / steps
        summary, _ = profiling.summarize(directory, hlo_text, wall_us)
    except Exception as e:  # noqa: BLE001 -- the profile is an extra; the measurement stands
        print(f"profile {name} ({directory}): failed: {e!r}", flush=True)
        return {}
    print(f"profile {name} ({directory}): {wall_us:.0f} us of wall time per step (traced); "
          f"XLA op time by phase:\n{profiling.format_summary(summary)}", flush=True)
    return summary


def append_row(path: Path, row: dict) -> None:
    """Append one JSON row to ``path`` (created with its folder if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


class CompileClock:
    """Wall seconds JAX spends tracing, lowering and compiling, as a union of time spans.

    Spans nest (a jit traced inside another's trace), so summing durations would double count.
    """

    EVENTS = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        self.recording = False
        jax.monitoring.register_event_time_span_listener(self._listen)

    def _listen(self, event: str, start: float, end: float, **_) -> None:
        if self.recording and event in self.EVENTS:
            self.spans.append((start, end))

    def start(self) -> None:
        self.spans, self.recording = [], True

    def stop(self) -> float:
        """Stop recording; returns the seconds covered by the recorded spans."""
        self.recording = False
        total, reach = 0.0, -float("inf")
        for start, end in sorted(self.spans):
            if end > reach:
                total += end - max(start, reach)
                reach = end
        return total
