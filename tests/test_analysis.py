"""brc-analyze: PCA and embedding distances by hand, labels, and the files it writes from runs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from test_ablations import with_switches
from test_train import tiny_config
from toy_env import ToyEnv

from brc_mjx import run as run_lib
from brc_mjx.analysis import report


def test_pca_2d_hand_worked():
    x = np.array([[-1.0, 0.0, 3.0], [1.0, 0.0, 3.0], [0.0, 0.5, 3.0], [0.0, -0.5, 3.0]])
    coords = report.pca_2d(x)  # mean [0, 0, 3]; PC 1 = x axis (variance 0.5), PC 2 = y axis
    np.testing.assert_allclose(np.abs(coords), [[1, 0], [1, 0], [0, 0.5], [0, 0.5]], atol=1e-12)
    assert report.pca_2d(np.array([[0.0], [2.0]])).shape == (2, 2)  # one component, padded


def test_domain_distances_hand_worked():
    emb = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    d = report.domain_distances(emb, ["cartpole", "cartpole", "walker", "walker"])
    # within: (0,1) cos 1 -> 0; (2,3) cos 0 -> 1; mean 0.5.
    # between: (0,2) 1, (0,3) 2, (1,2) 1, (1,3) 2 -> mean 1.5
    assert d == {"within_domain": pytest.approx(0.5), "between_domains": pytest.approx(1.5)}
    assert report.domain("dmc/cartpole-balance") == "cartpole"
    assert report.domain("metaworld/reach") == "reach"


def test_labels_name_the_differing_fields():
    runs = [report.Run("a", {"seed": 0, "learner": {"critic_loss": "categorical"},
                             "run_dir": "a"}, [], []),
            report.Run("b", {"seed": 0, "learner": {"critic_loss": "mse"}, "run_dir": "b"}, [], [])]
    report.label_runs(runs)
    assert [r.label for r in runs] == ["critic_loss=categorical", "critic_loss=mse"]


def test_where_a_run_ran_is_not_a_label():
    """A population member (one-device mesh) and a single run of its setting group together."""
    def config(data, tau, run_dir):
        return {"seed": 0, "mesh": {"data": data}, "learner": {"tau": tau}, "run_dir": run_dir,
                "compile_cache": data == 1, "wandb": {"group": run_dir}}

    runs = [report.Run("m", config(1, 0.005, "pop/member-0"), [], []),
            report.Run("s", config(-1, 0.005, "single"), [], []),
            report.Run("t", config(-1, 0.02, "other"), [], [])]
    report.label_runs(runs)
    assert [r.label for r in runs] == ["tau=0.005", "tau=0.005", "tau=0.02"]


def test_fields_a_run_predates_take_their_defaults():
    old = {"seed": 0, "env": {"tasks": ["a"]}}  # written before env.reward_scales existed
    filled = report.with_defaults(old)
    assert filled["env"]["tasks"] == ["a"] and filled["env"]["reward_scales"] == []
    assert filled["learner"]["critic_loss"] == "categorical"


def _run(path, seed, loss, returns):
    records = [{"env_steps": 1000 * (k + 1), "eval/mean_return": r} for k, r in enumerate(returns)]
    return report.Run(path, {"seed": seed, "learner": {"critic_loss": loss}}, records, [])


def test_seeds_group_into_mean_curves_and_steps_to_threshold():
    runs = [_run("a0", 0, "categorical", [10, 50, 90]), _run("a1", 1, "categorical", [30, 70, 80]),
            _run("m0", 0, "mse", [0, 10, 60]), _run("m1", 1, "mse", [0, 20])]
    report.label_runs(runs, ignore=("seed",))
    groups = report.group_by_label(runs)
    assert list(groups) == ["critic_loss=categorical", "critic_loss=mse"]
    steps, mean, low, high = report.mean_curve(groups["critic_loss=mse"], "eval/mean_return")
    np.testing.assert_array_equal(steps, [1000, 2000])  # steps every seed logged
    np.testing.assert_array_equal(mean, [0, 15])
    np.testing.assert_array_equal(high - low, [0, 10])
    assert report.steps_to(runs[0], "eval/mean_return", 50) == 2000
    assert report.steps_to(runs[3], "eval/mean_return", 50) is None
    rows = report.group_table(runs, threshold=60)
    # categorical: finals 90, 80 -> 85 +- 5; first >= 60 at 3000 and 2000 -> median 2500.
    assert rows[2] == "| critic_loss=categorical | 2 | 85.0 +- 5.0 | 85.0 | 3000, 2000 | 2500 |"
    # mse: finals 60, 20; one seed never reaches 60 -> the median is "never" of (3000, never).
    assert rows[3] == "| critic_loss=mse | 2 | 40.0 +- 20.0 | 40.0 | 3000, never | never |"


def test_ignored_fields_group_runs_like_seeds():
    runs = [report.Run("a", {"seed": 0, "total_env_steps": 100, "w": 1}, [], []),
            report.Run("b", {"seed": 1, "total_env_steps": 50, "w": 1}, [], []),
            report.Run("c", {"seed": 0, "total_env_steps": 50, "w": 2}, [], [])]
    report.label_runs(runs, ignore=("seed", "total_env_steps"))
    assert [r.label for r in runs] == ["w=1", "w=1", "w=2"]


def test_task_table_by_setting_hand_worked():
    def run(path, seed, tasks, finals):
        last = {f"eval/{t}/return": f for t, f in zip(tasks, finals, strict=True)}
        recs = [{"env_steps": 1000, **{f"eval/{t}/return": 0.0 for t in tasks}},
                {"env_steps": 2000, **last}]
        return report.Run(path, {"seed": seed, "env": {"tasks": list(tasks)}}, recs, [])

    runs = [run("m0", 0, ["a", "b"], [10, 40]), run("m1", 1, ["a", "b"], [30, 60]),
            run("s0", 0, ["a"], [50]), run("s1", 1, ["a"], [70])]
    report.label_runs(runs, ignore=("seed",))
    rows = report.task_table(runs)
    assert rows[0] == "| setting | a | b |"
    # multi-task: a (10, 30) -> 20 +- 10, b (40, 60) -> 50 +- 10; single-task a: 60 +- 10
    assert rows[2].endswith("| 20.0 +- 10.0 | 50.0 +- 10.0 |")
    assert rows[3].endswith("| 60.0 +- 10.0 |  |")


def test_diagnostics_by_setting_hand_worked(tmp_path):
    def record(step, conflict, norms):
        r = {"env_steps": step, "diag/conflict_rate": conflict, "diag/mean_cosine": 0.0,
             "diag/grad_norm_var": float(np.var(norms))}
        r.update({f"diag/t{k}/grad_norm": n for k, n in enumerate(norms)})
        return r

    # seed 0: conflict 0.5, 0.0 -> 0.25; norms (1, 3): CV = 1 / 2 = 0.5, (2, 2): 0 -> 0.25
    # seed 1: conflict 1.0 -> 1.0; norms (1, 1, 4): mean 2, sd sqrt(2) -> CV 0.7071
    # setting: conflict (0.25 + 1) / 2 = 0.625 +- 0.375; CV (0.25 + 0.7071) / 2 = 0.4786
    runs = [report.Run("a", {"seed": 0}, [record(1000, 0.5, [1, 3]), record(2000, 0.0, [2, 2])],
                       []),
            report.Run("b", {"seed": 1}, [record(1000, 1.0, [1, 1, 4])], [])]
    report.label_runs(runs, ignore=("seed",))
    row = report.diagnostics_table(runs)[2].split(" | ")
    assert row[1:3] == ["2", "0.625 +- 0.38"]
    assert row[-1].startswith("0.4786 +- ")
    assert report.grad_norm_cv({"diag/t0/grad_norm": 5.0}) is None
    # --until keeps the records up to that many env steps
    path = tmp_path / "r"
    path.mkdir()
    for name, obj in (("config.json", {}), ("meta.json", {"task_names": []})):
        (path / name).write_text(json.dumps(obj))
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(record(s, 0.0, [1, 1]))
                                                  for s in (1000, 2000, 3000)))
    assert [r["env_steps"] for r in report.load_run(str(path), until=2000).records] == [
        1000, 2000]


def _factory(cfg):
    return ToyEnv(), ToyEnv(envs_per_task=cfg.env.eval_episodes)


def test_brc_analyze_writes_its_files_from_tiny_runs(tmp_path, capsys):
    """Two runs with diagnostics: BRC, and every ablation switch at once (MSE critic, plain MLP,
    per-task heads, raw rewards), which trains in the same loop."""
    ablations = {"critic_loss": "mse", "reward_normalization": False,
                 "network": {"critic_arch": "mlp", "task_conditioning": "heads"}}
    dirs = []
    for name, switches in (("brc", {}), ("ablations", ablations)):
        cfg = tiny_config(tmp_path / name, total_env_steps=160, eval_every=80,
                          diagnostics_every=80, warmup_env_steps=40)
        cfg = with_switches(dataclasses.replace(
            cfg, env=dataclasses.replace(cfg.env, eval_episodes=2)), **switches)
        result = run_lib.run(cfg, env_factory=_factory)
        assert result["epochs_done"] == 4 and np.isfinite(result["train/critic_loss"])
        with open(tmp_path / name / "metrics.jsonl") as f:
            records = [json.loads(line) for line in f]
        assert "train/critic_loss" not in records[0]  # warm-up epoch: no learner metrics
        assert records[1]["train/critic_loss"] > 0
        logged = [r for r in records if "diag/conflict_rate" in r]
        assert [r["env_steps"] for r in logged] == [80, 160]  # diagnostics every 80 steps
        for task in ("toy/task0", "toy/task1"):
            assert logged[-1][f"diag/{task}/grad_norm"] > 0
            assert np.isfinite(logged[-1][f"diag/{task}/critic_loss"])
        assert "perf/diagnostics_s" in logged[0]
        # the run draws its own eval curves after every evaluation
        assert (tmp_path / name / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert not (tmp_path / name / "curves.tmp.png").exists()
        dirs.append(str(tmp_path / name))
    assert result["train/reward_scale_mean"] == 1.0  # raw rewards in the ablation run
    out = tmp_path / "report"
    capsys.readouterr()
    assert report.main([*dirs, "--out", str(out)]) == 0
    written = capsys.readouterr().out.split()
    assert sorted(written) == sorted(str(out / f) for f in
                                     ("curves.png", "diagnostics.png", "embeddings.png",
                                      "analysis.md"))
    for name in ("curves.png", "diagnostics.png", "embeddings.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "analysis.md").read_text()
    assert "critic_loss=categorical" in md and "critic_loss=mse" in md
    assert "task_conditioning=heads" in md and "reward_normalization=False" in md
    assert "within a domain" in md  # the BRC run has a 2-task embedding table
    assert report.main([str(tmp_path / "nothing")]) == 1
    assert "is not a readable run directory" in capsys.readouterr().err
