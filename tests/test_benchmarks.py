"""Benchmark bookkeeping that decides reported numbers: compile-time unions, row selection, tables.

Nothing here compiles or times anything; the figures are hand-worked.
"""

from __future__ import annotations

import pytest

from benchmarks import report
from benchmarks.peer import CompileClock


def test_compile_clock_counts_overlapping_spans_once():
    clock = CompileClock()
    clock.start()
    # Nested and overlapping spans (a jit traced inside another's trace), plus a disjoint one:
    # union = [0, 3] + [5, 6] = 4 s, while the plain sum would be 2 + 2 + 1 + 1 = 6 s.
    for event, start, end in [
        (CompileClock.EVENTS[0], 0.0, 2.0),
        (CompileClock.EVENTS[2], 1.0, 3.0),
        (CompileClock.EVENTS[1], 1.5, 2.5),
        (CompileClock.EVENTS[2], 5.0, 6.0),
        ("/jax/some/other_event", 10.0, 20.0),  # not a compile event: ignored
    ]:
        clock._listen(event, start, end)
    assert clock.stop() == 4.0
    clock._listen(CompileClock.EVENTS[0], 0.0, 100.0)  # stopped: not recorded
    clock.start()
    assert clock.stop() == 0.0


def _peer_row(time: str, benchmark: str, backend: str | None, ratio: float | None) -> dict:
    ours_cfg = {} if backend is None else {"backend": backend, "num_envs": 4, "critic_width": 64,
                                           "critic_depth": 1}
    return {
        "time": time, "device": "cpu:cpu", "benchmark": benchmark, "git_commit": "abcdef0123",
        "config": {"task": "dmc/cartpole-balance", "target": 900.0, "ours": ours_cfg,
                   "brax": {"grad_updates_per_step": 32}},
        "ours": {"time_to_score_s": 20.0, "compile_s": 5.0, "env_steps_per_s": 4000.0},
        "brax": {"time_to_score_s": 80.0, "compile_s": 30.0, "env_steps_per_s": 5000.0},
        "ratio": ratio, "target": 0.5,
    }


def test_peer_table_keeps_newest_row_per_backend():
    rows = [
        _peer_row("2026-01-01T00:00:00", "time_to_score", "envpool", 0.40),
        _peer_row("2026-01-02T00:00:00", "time_to_score", "envpool", 0.25),  # newer: kept
        _peer_row("2026-01-01T12:00:00", "time_to_score", "mjx", 0.45),
        _peer_row("2025-12-01T00:00:00", "time_to_score", None, 1.18),  # old row: backend mjx
    ]
    kept = report.newest_peer_rows(rows)
    assert sorted((r["config"]["ours"].get("backend"), r["ratio"]) for r in kept) == [
        ("envpool", 0.25), ("mjx", 0.45)]
    table = report.peer_table(rows)
    assert "| 0.25 |" in table and "| 0.40 |" not in table and "| 1.18 |" not in table
    assert "20.0 s to 900 (envpool, 4 envs, W=64 d=1)" in table


def test_replace_section_rewrites_only_between_markers():
    text = "intro\n<!-- report:x -->\nold\n<!-- /report:x -->\ntail\n"
    assert report.replace_section(text, "x", "new") == (
        "intro\n<!-- report:x -->\nnew\n<!-- /report:x -->\ntail\n")
    appended = report.replace_section("intro\n", "y", "body")
    assert appended == "intro\n\n<!-- report:y -->\nbody\n<!-- /report:y -->\n"


@pytest.mark.slow  # ~23 s; in the slow suite (CI runs it): default suite ~10 min
def test_rebuilt_brax_update_does_the_work_of_brax_sac():
    """The peer row's Brax update (losses + optimisers rebuilt from Brax's API) counts the matmul
    FLOPs of a full SAC step: alpha, critic, actor, Polyak, nothing missing, nothing doubled."""
    from benchmarks.peer import update_costs

    obs, act, width, batch = 5, 1, 128, 64
    costs = update_costs(obs, act, width=width, depth=1, batch_size=batch, learning_rate=1e-3,
                         updates=2, repeats=1)
    # Multiply-accumulates per sample of one forward pass (Brax MLPs: 3 hidden layers of W).
    q = (obs + act) * width + 2 * width * width + width  # one of the two Q networks
    p = obs * width + 2 * width * width + 2 * act * width  # the policy (mean and scale)
    # alpha loss: policy forward. critic loss: online Q forward + weight grads + input grads
    # (not of the data input), policy forward at s', target Q forward. actor loss: policy forward
    # + weight grads + input grads (not of the data input), Q forward + input grads down to a.
    macs = 2 * (6 * q - (obs + act) * width) + (5 * p - obs * width)
    matmul_flops = 2 * batch * macs
    # XLA's count adds the elementwise work (LayerNorm, tanh, Adam): a few percent at this width.
    assert matmul_flops <= costs["brax"]["flops"] <= 1.05 * matmul_flops
    assert costs["ours"]["seconds"] > 0 and costs["brax"]["seconds"] > 0


def test_h1_contact_and_random_policy_refuse_unknown_tasks_before_compiling(tmp_path):
    from benchmarks import h1_contact, h1_scenes, random_policy

    with pytest.raises(SystemExit, match="unknown H1 task"):
        h1_contact.main(h1_contact.Config(tasks=("walk", "jog")))
    with pytest.raises(SystemExit, match="unknown H1 task 'sit'"):
        h1_scenes.main(h1_scenes.Config(tasks=("sit",), out=tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()
    with pytest.raises(ValueError, match="no-such-task"):
        random_policy.main(random_policy.Config(tasks=("dmc/no-such-task",)))


def test_mjx_forward_times_both_steps_of_one_env():
    from benchmarks import mjx_forward

    (row,) = mjx_forward.main(mjx_forward.Config(tasks=("CartpoleBalance",), num_envs=(2,),
                                                 steps=2, record=False))
    assert row["playground_steps_per_s"] > 0 and row["after_step_forward_steps_per_s"] > 0
    assert row["ratio"] == row["after_step_forward_steps_per_s"] / row["playground_steps_per_s"]


@pytest.mark.slow  # ~20 s: the helper is covered by the mjx_forward test in the default suite
def test_mjx_solver_times_both_solver_settings():
    from benchmarks import mjx_solver

    (row,) = mjx_solver.main(mjx_solver.Config(tasks=("CartpoleBalance",), num_envs=(2,),
                                               steps=2, record=False))
    assert row["benchmark"] == "mjx_solver"
    assert row["port_steps_per_s"] > 0 and row["mujoco_steps_per_s"] > 0
    assert row["ratio"] == row["mujoco_steps_per_s"] / row["port_steps_per_s"]


@pytest.mark.slow  # two MJX cheetah compiles, ~1-2 min
def test_mjx_dynamics_with_mujocos_solver_steps_as_dm_control():
    """From dm_control's states, our MJX cheetah with ``--env.mjx-solver mujoco`` reaches
    dm_control's next velocities (float32 against float64), and dm_control's own physics with
    Playground's 4 / 8 iterations does not: the benchmark measures the settings, not noise."""
    pytest.importorskip("dm_control.suite")
    from benchmarks import mjx_dynamics

    rows = mjx_dynamics.main(mjx_dynamics.Config(tasks=("dmc/cheetah-run",), states=20,
                                                 record=False))
    by = {row["variant"]: row for row in rows}
    assert tuple(by) == mjx_dynamics.VARIANTS
    assert by["mjx-mujoco"]["velocity_error_p90"] < 1e-3
    assert by["mjx-mujoco"]["reward_abs_error"] < 1e-4
    # the cheetah's difference is its Euler damping: Playground's iterations with it turned on
    assert by["mjx-eulerdamp"]["velocity_error_p90"] < 1e-3
    assert by["c-port-solver"]["velocity_error_median"] > 0.01
    assert by["mjx-port"]["velocity_error_median"] > 0.01
