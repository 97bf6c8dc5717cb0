"""The GPU benchmark entry at smoke sizes on CPU, so that it cannot rot between GPU sessions."""

from __future__ import annotations

import json

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
    for kind in ("gpu_env_only", "gpu_collection", "gpu_learning", "gpu_end_to_end", "peer"):
        assert kind in kinds


def test_brax_compat_replicates_each_leaf_over_the_devices():
    """Brax 0.14.2 on JAX >= 0.10 (the GPU machine's 0.11.2) needs our device_put_replicated."""
    import jax
    import numpy as np

    from benchmarks.peer import brax_jax_compat, device_put_replicated

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
