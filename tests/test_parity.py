"""benchmarks.parity: the official config, the official log's parse, the mean +- sd summary."""

from __future__ import annotations

import json

import pytest

from benchmarks import parity


def test_official_config_is_the_official_single_task_setting():
    cfg = parity.official_config("dmc/walker-walk", 2, "envpool", 20_000, "r")
    net = cfg.learner.network
    assert (cfg.env.tasks, cfg.env.backend, cfg.env.envs_per_task, cfg.env.eval_episodes) == (
        ("dmc/walker-walk",), "envpool", 1, 10)
    assert (cfg.batch_size, cfg.updates_per_step, cfg.warmup_env_steps, cfg.eval_every) == (
        256, 2, 1_000, 2_000)
    assert (net.critic_width, net.critic_depth, net.num_atoms, net.ensemble_size) == (
        256, 2, 101, 2)
    assert (net.actor_width, net.actor_depth, net.v_max) == (256, 1, 10.0)
    assert (cfg.learner.tau, cfg.learner.gamma, cfg.learner.init_alpha) == (0.005, 0.99, 0.1)
    assert (cfg.learner.actor_lr, cfg.learner.critic_lr, cfg.learner.temperature_lr) == (
        3e-4, 3e-4, 3e-4)
    assert cfg.replay.capacity_per_task >= 20_000 and cfg.seed == 2
    assert parity.official_config("dmc/walker-walk", 0, "mjx", 10, "r",
                                  init_alpha=0.5).learner.init_alpha == 0.5


def test_parse_official_reads_the_added_print_and_nothing_else():
    log = "\n".join([
        "{'goal_online': array([0.]), 'return_online': array([30.5])}",
        "PARITY step 2000 return 28.36 temperature 0.0607",
        "I1206 noise PARITY step 9 return 1",
        "PARITY step 4000 return 1.5e2 temperature 3e-3",
    ])
    curve, temps = parity.parse_official(log)
    assert curve == [(2000, 28.36), (4000, 150.0)]
    assert temps == [(2000, 0.0607), (4000, 0.003)]


def test_summary_is_mean_and_sample_sd_over_seeds_at_common_steps():
    rows = [dict(impl="official", config=dict(task="t", seed=s), curve=c) for s, c in
            enumerate([[(2000, 10.0), (4000, 100.0)], [(2000, 20.0), (4000, 200.0)],
                       [(2000, 30.0)]])]
    out = parity.summary(rows)["t"]["official"]
    assert set(out) == {2000}  # seed 2 has no 4k point
    mean, sd, n = out[2000]
    assert (mean, n) == (20.0, 3) and sd == pytest.approx(10.0)  # sd of 10, 20, 30 (ddof 1)


def test_load_rows_keeps_the_newest_per_impl_task_seed(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [dict(impl="a", config=dict(task="t", seed=0), curve=[[2000, v]]) for v in (1, 2)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (row,) = parity.load_rows(path)
    assert row["curve"] == [[2000, 2]]


def test_bad_override_is_one_line():
    with pytest.raises(SystemExit, match="--set 'nonsense=1'"):
        parity._overrides(("nonsense=1",))
    assert parity._overrides(("tau=0.02", "reward_normalization=false")) == dict(
        tau=0.02, reward_normalization=False)


def test_official_rows_from_a_log(tmp_path):
    log = tmp_path / "o.log"
    log.write_text("PARITY step 2000 return 5.0 temperature 0.1\n")
    out = tmp_path / "rows.jsonl"
    parity.official(parity.Official(log=log, task="dmc/walker-walk", seed=1, out=out))
    row = json.loads(out.read_text())
    assert (row["impl"], row["config"]["seed"], row["curve"]) == ("official", 1, [[2000, 5.0]])
    with pytest.raises(SystemExit, match="no 'PARITY step N return R' line"):
        empty = tmp_path / "e.log"
        empty.write_text("nothing\n")
        parity.official(parity.Official(log=empty, task="t", seed=0, out=out))


def test_markdown_table_has_mean_sd_and_count_per_step():
    summ = {"dmc/t": {"official": {2000: (20.0, 10.0, 3), 4000: (40.0, 5.0, 3)},
                      "ours": {2000: (19.4, 1.0, 2)}}}
    text = parity.markdown(summ)
    assert "| implementation | 2k | 4k |" in text
    assert "| official | 20 +- 10 (3) | 40 +- 5 (3) |" in text
    assert "| ours | 19 +- 1 (2) |  |" in text


def test_the_documented_official_command_parses(tmp_path):
    import tyro

    cmd = tyro.extras.subcommand_cli_from_dict(
        parity.COMMANDS,
        args=["official", "logs/walker-walk-s0.log", "--task", "dmc/walker-walk", "--seed", "0"])
    assert (str(cmd.log), cmd.task, cmd.seed) == ("logs/walker-walk-s0.log", "dmc/walker-walk", 0)


def test_cross_names_a_missing_run_before_building_anything(tmp_path):
    (tmp_path / "dmc_cheetah-run-mjx-s0-after-step").mkdir()
    (tmp_path / "dmc_cheetah-run-mjx-s0-after-step" / "metrics.jsonl").write_text("")
    cfg = parity.Cross(seeds=(0, 1), variant="after-step", runs_dir=tmp_path,
                       out=tmp_path / "rows.jsonl")
    with pytest.raises(SystemExit, match="dmc_cheetah-run-mjx-s1-after-step"):
        parity.cross(cfg)
    assert not (tmp_path / "rows.jsonl").exists()
