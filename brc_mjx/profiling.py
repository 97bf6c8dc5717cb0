"""Where the time goes: capture a ``jax.profiler`` trace and split its XLA op time by phase.

The training loop names its phases with ``jax.named_scope`` (``act``, ``env_step``,
``replay_add``, ``sample``, ``critic_update``, ``actor_update``, ``temperature_update``). XLA keeps
those names in each HLO instruction's ``op_name`` metadata, and the profiler records one event per
executed instruction (on CPU: per thunk). :func:`phase_summary` joins the two: it sums the
durations of the leaf instructions of a trace (control flow such as ``while``/``conditional``
encloses other events and is skipped) under the first phase name found in their ``op_name``.

The shares are of summed op time, which is not wall time: independent ops can run concurrently and
tracing adds a little per op. Figures per step are scaled by the host-measured wall time of a step
(:func:`per_step`). Open the same trace in TensorBoard's profile plugin or Perfetto for
the timeline.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import gzip
import json
import os
import re

import jax

PHASES = ("act", "env_step", "replay_add", "sample", "critic_update", "actor_update",
          "temperature_update")
OTHER = "other"
_CONTROL_FLOW = {"while", "conditional", "call", "async-start", "async-done"}
# "%name = <shape> opcode(operands), ..., metadata={op_name="scope/scope/op" ...}"
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*? ([a-z][\w\-]*)\(([^)]*)\)")
_OP_NAME = re.compile(r'op_name="([^"]*)"')


@contextlib.contextmanager
def trace(directory: str):
    """Capture a profiler trace into ``directory`` (TensorBoard files + a Perfetto JSON)."""
    jax.profiler.start_trace(directory, create_perfetto_trace=True)
    try:
        yield
    finally:
        jax.profiler.stop_trace()


def save_program(directory: str, hlo_text: str, name: str) -> str:
    """Write a traced program's HLO beside its trace (``<directory>/<name>.hlo.txt``).

    The trace names ops by HLO instruction; with this file the phase split
    (:func:`summarize`) can be redone, and each op's shape and scopes read, from the files alone.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.hlo.txt")
    with open(path, "w") as f:
        f.write(hlo_text)
    return path


def instruction_phases(hlo_text: str, phases: tuple[str, ...] = PHASES) -> dict[str, str]:
    """Map each non-control-flow HLO instruction of ``hlo_text`` to its phase name.

    The phase is the first of ``phases`` among the scopes of the instruction's ``op_name``.
    Instructions that XLA created without an ``op_name`` (e.g. the windowed reductions it splits a
    long reduction into) take the phase of their first operand that has one.
    """
    out: dict[str, str] = {}
    for line in hlo_text.splitlines():
        m = _INSTRUCTION.match(line)
        if not m:
            continue
        name, opcode, operands = m.groups()
        op_name = _OP_NAME.search(line)
        if op_name:
            scopes = op_name.group(1).split("/")
            phase = next((p for p in phases if p in scopes), OTHER)
        else:
            inherited = (out.get(o.strip().lstrip("%")) for o in operands.split(","))
            phase = next((p for p in inherited if p is not None), None)
        if phase is not None and opcode not in _CONTROL_FLOW:
            out[name] = phase
    return out


def latest_perfetto_trace(directory: str) -> str:
    """The newest ``*.trace.json.gz`` under ``directory``."""
    files = glob.glob(os.path.join(directory, "**", "*.trace.json.gz"), recursive=True)
    if not files:
        raise FileNotFoundError(f"no Perfetto trace (*.trace.json.gz) under {directory}")
    return max(files, key=os.path.getmtime)


def phase_summary(trace_file: str, hlo_text: str) -> tuple[dict[str, float], float]:
    """Summed XLA op time per phase of a Perfetto trace, and the span of time it covers.

    The profiler keeps at most ~1M events, so a long trace holds only its first part: divide the
    totals by the number of steps that fit in the returned span (see :func:`per_step`), not by
    the number of steps traced.

    Args:
      trace_file: a ``*.trace.json.gz`` written by :func:`trace`.
      hlo_text: ``compiled.as_text()`` of the program that ran in the trace.

    Returns:
      ``({phase: microseconds}, span_us)``: op time per phase (largest first, ``other``
      included) and the microseconds from the first op event's start to the last one's end.
    """
    phases = instruction_phases(hlo_text)
    with gzip.open(trace_file, "rt") as f:
        events = [e for e in json.load(f)["traceEvents"] if e.get("ph") == "X"]
    # CPU thunks, and the GPU's derived "XLA Ops" line, are named by their instruction; GPU
    # kernels are named by the kernel, with the instruction in args["hlo_op"]. Count one view
    # only: the instruction-named events where there are any, else the kernels.
    named = [(e["name"], e) for e in events if e.get("name") in phases]
    if not named:
        named = [(op, e) for e in events
                 if (op := (e.get("args") or {}).get("hlo_op")) in phases]
    totals: dict[str, float] = collections.defaultdict(float)
    start, end = float("inf"), -float("inf")
    for name, event in named:
        ts, dur = float(event.get("ts", 0.0)), float(event.get("dur", 0.0))
        totals[phases[name]] += dur
        start, end = min(start, ts), max(end, ts + dur)
    span = max(end - start, 0.0)
    return dict(sorted(totals.items(), key=lambda kv: -kv[1])), span


def per_step(totals: dict[str, float], span_us: float, wall_us_per_step: float):
    """Scale op totals over ``span_us`` to one step of ``wall_us_per_step`` wall time."""
    steps = span_us / wall_us_per_step
    return {k: v / steps for k, v in totals.items()} if steps > 0 else dict(totals)


def summarize(directory: str, hlo_text: str, wall_us_per_step: float):
    """Per-step op time by phase of the newest trace under ``directory``, and its span (us)."""
    totals, span_us = phase_summary(latest_perfetto_trace(directory), hlo_text)
    return per_step(totals, span_us, wall_us_per_step), span_us


def format_summary(summary: dict[str, float], unit: str = "step") -> str:
    """One line per phase: microseconds per ``unit`` and share of the op time."""
    total = sum(summary.values()) or 1.0
    return "\n".join(f"  {phase:<20s} {us:10.1f} us/{unit}  {100 * us / total:5.1f} %"
                     for phase, us in summary.items())
