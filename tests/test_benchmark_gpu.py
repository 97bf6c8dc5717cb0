"""The GPU benchmark entry at smoke sizes on CPU, so that it cannot rot between GPU sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from benchmarks import gpu


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow  # ~70 s; in the slow suite (CI runs it): default suite ~10 min
def test_smoke_collection_and_learning_write_their_rows(tmp_path):
    out = tmp_path / "gpu.jsonl"
    skipped = gpu.main(gpu.Config(smoke=True, parts=("collection", "learning"), out=out))
    assert skipped == []
    rows = _rows(out)
    assert [r["benchmark"] for r in rows] == ["gpu_collection", "gpu_learning", "gpu_learning"]
    collection = rows[0]
    assert collection["config"] == {"task": "dmc/cartpole-balance", "num_envs": 4, "steps": 10}
    assert collection["ratio"] == pytest.approx(
        collection["collection"]["env_steps_per_s"] / collection["env_only"]["steps_per_s"])
    f32, bf16 = rows[1], rows[2]
    assert "compute_dtype" not in f32["config"] and bf16["config"]["compute_dtype"] == "bfloat16"
    for row in (f32, bf16):
        assert row["config"]["width"] == 32 and row["config"]["batch"] == 16
        assert row["fraction_of_matmul"] == pytest.approx(
            row["achieved_flops_per_s"] / row["matmul_flops_per_s"])
        assert row["device"].startswith("cpu") and row["versions"]["jax"]


def test_spent_budget_skips_points_with_a_row(tmp_path):
    out = tmp_path / "gpu.jsonl"
    skipped = gpu.main(gpu.Config(smoke=True, parts=("learning",), budget_s=0.0, out=out))
    assert skipped == ["learning float32 w32 b16", "learning bfloat16 w32 b16"]
    assert [r["config"]["point"] for r in _rows(out)] == skipped


def test_a_failing_part_writes_a_row_and_the_parts_after_it_still_run(tmp_path, monkeypatch):
    out = tmp_path / "gpu.jsonl"
    ran = []

    def broken(cfg, sizes, budget):
        raise ValueError("no GPU memory left")

    monkeypatch.setitem(gpu.RUNNERS, "learning", broken)
    monkeypatch.setitem(gpu.RUNNERS, "env_only", lambda cfg, sizes, budget: ran.append("env"))
    with pytest.raises(RuntimeError, match=r"part\(s\) \['learning'\] failed"):
        gpu.main(gpu.Config(smoke=True, parts=("learning", "env_only"), out=out))
    assert ran == ["env"]  # in the order given, after the failure
    (row,) = _rows(out)
    assert row["benchmark"] == "failed" and row["config"] == {"part": "learning"}
    assert row["error"] == "ValueError: no GPU memory left"


def test_unknown_part_is_one_line():
    with pytest.raises(SystemExit, match=r"unknown part\(s\) \['gpus'\]"):
        gpu.main(gpu.Config(parts=("gpus",)))


@pytest.mark.slow
def test_whole_smoke_including_env_only_end_to_end_and_peer(tmp_path):
    out = tmp_path / "gpu.jsonl"
    assert gpu.main(gpu.Config(smoke=True, out=out)) == []
    kinds = [r["benchmark"] for r in _rows(out)]
    for kind in ("gpu_env_only", "gpu_collection", "gpu_learning", "gpu_end_to_end", "peer",
                 "population_scale"):
        assert kind in kinds
    members = [r["members"] for r in _rows(out) if r["benchmark"] == "population_scale"]
    assert members == [1, 2]


def test_brax_compat_replicates_each_leaf_over_the_devices():
    """Brax 0.14.2 on JAX >= 0.10 (the GPU machine's 0.11.2) needs our device_put_replicated."""
    import jax
    import numpy as np

    from benchmarks.brax_sac import brax_jax_compat, device_put_replicated

    devices = jax.local_devices()[:2]
    tree = {"w": np.arange(6.0).reshape(2, 3), "step": np.int32(7)}
    out = device_put_replicated(tree, devices)
    np.testing.assert_array_equal(np.asarray(out["w"]), np.stack([tree["w"], tree["w"]]))
    np.testing.assert_array_equal(np.asarray(out["step"]), [7, 7])
    assert {s.device for s in out["w"].addressable_shards} == set(devices)
    assert all(s.data.shape == (1, 2, 3) for s in out["w"].addressable_shards)
    had = hasattr(jax, "device_put_replicated")
    with brax_jax_compat():
        assert callable(jax.device_put_replicated)
    assert hasattr(jax, "device_put_replicated") == had


GPU_BOX = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_box.sh"


def test_gpu_box_carries_every_package_at_a_version_ci_tests(tmp_path):
    """Each wheel gpu_box.sh brings is pinned in the jax 0.11 CI set, and a missing pin is an
    error naming the package (a stale list must not silently download something untested)."""
    text = GPU_BOX.read_text()
    packages = text.split('PACKAGES="')[1].split('"')[0].split()
    pins = (GPU_BOX.parents[1] / ".ci" / "jax011-requirements.txt").read_text().lower()
    for name in packages:
        assert f"\n{name.lower()}==" in pins, name
    assert {"mujoco", "mujoco-mjx", "playground", "brax", "tyro"} <= set(packages)
    box = tmp_path / "benchmarks" / "gpu_box.sh"  # a checkout whose pins lack "brax"
    box.parent.mkdir()
    box.write_text(text)
    (tmp_path / ".ci").mkdir()
    (tmp_path / ".ci" / "jax011-requirements.txt").write_text("mujoco==3.17.0\n")
    r = subprocess.run(["bash", str(box), "wheels", str(tmp_path / "w")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "mujoco-mjx is not pinned" in r.stderr
    r = subprocess.run(["bash", str(GPU_BOX), "fly"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("usage: gpu_box.sh wheels DIR")


def _gpu_box_run(tmp_path, *args, timeout, site_files=None):
    """`gpu_box.sh run` on a machine whose Python (this one) has everything: the wheel install is
    skipped (its site folder already holds mujoco); ``site_files`` are put first on the path."""
    site = tmp_path / "site"
    (site / "mujoco").mkdir(parents=True)
    for name, text in (site_files or {}).items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    env = dict(os.environ, GPU_BOX_PYTHON=sys.executable, GPU_BOX_SITE=str(site))
    return subprocess.run(["bash", str(GPU_BOX), "run", str(tmp_path / "none"),
                           str(tmp_path / "out"), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_gpu_box_run_stops_in_one_line_naming_a_module_the_machine_lacks(tmp_path):
    """Before any log or measurement: Playground imports lxml at import time; a machine without it
    (here: an lxml that cannot be imported, first on the path) is named in one line, exit 2."""
    out = tmp_path / "out"
    r = _gpu_box_run(tmp_path, "--smoke", timeout=300, site_files={
        "lxml/__init__.py": "raise ModuleNotFoundError(\"No module named 'lxml'\", name='lxml')\n"})
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        "gpu_box.sh: importing mujoco_playground fails on this machine (No module named 'lxml'); "
        "add the missing package to PACKAGES and rerun 'wheels'")
    assert not (out / "log").exists() and not (out / "gpu.jsonl").exists()


@pytest.mark.slow
def test_gpu_box_run_leaves_log_rows_and_traces(tmp_path):
    """`gpu_box.sh run` as on a GPU machine whose Python has everything (install skipped)."""
    out = tmp_path / "out"
    r = _gpu_box_run(tmp_path, "--smoke", "--profile", "--parts", "learning", timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    log = (out / "log").read_text()
    assert "jax " in log and "== learning:" in log
    assert [row["benchmark"] for row in _rows(out / "gpu.jsonl")] == ["gpu_learning"] * 2
    with tarfile.open(out / "profiles.tgz") as tar:
        names = tar.getnames()
    for dtype in ("float32", "bfloat16"):
        assert f"profiles/learning-{dtype}-w32-b16/program.hlo.txt" in names
        assert any(n.startswith(f"profiles/learning-{dtype}-w32-b16/") and
                   n.endswith(".trace.json.gz") for n in names)
