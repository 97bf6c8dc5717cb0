"""The phase split of a profiler trace, on a hand-written HLO module and trace."""

# ruff: noqa: E501  (HLO lines as XLA prints them)

from __future__ import annotations

import gzip
import json

import pytest

from brc_mjx import profiling

HLO = """\
ENTRY %main {
  %dot.1 = f32[2,256,256]{2,1,0} dot(%a, %b), lhs_contracting_dims={2}, metadata={op_name="jit(train_epoch)/while/body/critic_update/jvp(Critic)/Dense_1/dot_general"}
  %add_fusion.7 = f32[4,8]{1,0} fusion(%c), kind=kLoop, calls=%fused, metadata={op_name="jit(train_epoch)/while/body/act/Actor/Dense_0/add"}
  %cond.2 = (f32[4]{0}, s32[]) conditional(%p, %x, %y), branch_computations={%b0, %b1}, metadata={op_name="jit(train_epoch)/while/body/act/cond"}
  %scatter.3 = f32[16,5]{1,0} scatter(%r, %i, %u), metadata={op_name="jit(train_epoch)/while/body/replay_add/scatter"}
  %copy.4 = f32[8]{0} copy(%z), metadata={op_name="jit(train_epoch)/while/body/is_finite"}
  %while.5 = (s32[], f32[8]{0}) while(%t), condition=%cnd, body=%bdy, metadata={op_name="jit(train_epoch)/while"}
  %wrapped_reduce-window.8 = f32[1,8,8]{2,1,0} fusion(%dot.1, %constant.6428), kind=kLoop, calls=%wrapped_reduce-window_computation.78, metadata={stack_frame_id=8128}
  ROOT %tuple.6 = (f32[8]{0}) tuple(%copy.4)
}
"""


def test_instruction_phases_reads_op_name_scopes_and_skips_control_flow():
    phases = profiling.instruction_phases(HLO)
    # cond.2 / while.5 enclose other ops; the reduction XLA split off (no op_name) and the tuple
    # take their first operand's phase.
    assert phases == {"dot.1": "critic_update", "add_fusion.7": "act", "scatter.3": "replay_add",
                      "copy.4": "other", "wrapped_reduce-window.8": "critic_update",
                      "tuple.6": "other"}


def test_phase_summary_sums_leaf_op_time_and_its_span(tmp_path):
    events = [
        {"ph": "X", "name": "dot.1", "ts": 1000.0, "dur": 300.0},
        {"ph": "X", "name": "dot.1", "ts": 1500.0, "dur": 100.0},
        {"ph": "X", "name": "add_fusion.7", "ts": 1310.0, "dur": 40.0},
        {"ph": "X", "name": "cond.2", "ts": 1300.0, "dur": 500.0},  # parent: not counted
        {"ph": "X", "name": "scatter.3", "ts": 1700.0, "dur": 20.0},
        {"ph": "X", "name": "copy.4", "ts": 1990.0, "dur": 10.0},
        {"ph": "X", "name": "wrapped_reduce-window.8", "ts": 1400.0, "dur": 60.0},
        {"ph": "X", "name": "ThunkExecutor::Execute", "ts": 0.0, "dur": 9999.0},  # runtime
        {"ph": "i", "name": "dot.1", "ts": 5000.0, "dur": 1e6},  # not a complete event
    ]
    path = tmp_path / "t.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    assert profiling.latest_perfetto_trace(str(tmp_path)) == str(path)
    totals, span = profiling.phase_summary(str(path), HLO)
    assert totals == {"critic_update": 460.0, "act": 40.0, "replay_add": 20.0, "other": 10.0}
    assert list(totals) == ["critic_update", "act", "replay_add", "other"]  # largest first
    assert span == 1000.0  # 1000 (first op start) -> 2000 (copy.4 ends)
    # A step takes 500 us of wall time: the span holds two steps.
    summary = profiling.per_step(totals, span, wall_us_per_step=500.0)
    assert summary == {"critic_update": 230.0, "act": 20.0, "replay_add": 10.0, "other": 5.0}
    lines = profiling.format_summary(summary).splitlines()
    assert lines[0].split() == ["critic_update", "230.0", "us/step", "86.8", "%"]


def test_gpu_kernel_events_count_under_the_instruction_named_in_their_args(tmp_path):
    # On a GPU the event is named by the kernel; the HLO instruction is args["hlo_op"].
    events = [
        {"ph": "X", "name": "sm90_xmma_gemm_bf16bf16_f32", "ts": 10.0, "dur": 70.0,
         "args": {"hlo_op": "dot.1", "hlo_module": "jit_train_epoch"}},
        {"ph": "X", "name": "loop_add_fusion", "ts": 90.0, "dur": 5.0,
         "args": {"hlo_op": "add_fusion.7"}},
        {"ph": "X", "name": "cudaLaunchKernel", "ts": 0.0, "dur": 3.0, "args": {}},  # host API
        {"ph": "X", "name": "memcpy", "ts": 200.0, "dur": 9.0},  # no args: not an instruction
    ]
    path = tmp_path / "g.trace.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    totals, span = profiling.phase_summary(str(path), HLO)
    assert totals == {"critic_update": 70.0, "act": 5.0}
    assert span == 85.0  # 10 -> 95
    # With the derived "XLA Ops" line in the trace too, the same work is counted once, from it.
    events.append({"ph": "X", "name": "dot.1", "ts": 10.0, "dur": 72.0})
    with gzip.open(path, "wt") as f:
        json.dump({"traceEvents": events}, f)
    assert profiling.phase_summary(str(path), HLO) == ({"critic_update": 72.0}, 72.0)


def test_latest_perfetto_trace_names_the_directory_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        profiling.latest_perfetto_trace(str(tmp_path))
