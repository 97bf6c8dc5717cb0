"""The roofline prediction (brc_mjx.roofline, ``brc-info --roofline``) vs hand-worked numbers."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import pytest
from toy_env import ToyEnv

from brc_mjx import roofline
from brc_mjx.cli import InfoArgs, info_main, roofline_rows
from brc_mjx.config import EnvConfig, LearnerConfig, NetworkConfig, TrainConfig
from configs import parameter_counts


def test_bound_charges_flops_at_the_matmul_peak_and_bytes_at_the_bandwidth():
    # 1.978 TFLOP at 989 TFLOP/s is 2 ms; 3.35 GB in+out at 3.35 TB/s is 1 ms; 13.4 GB accessed
    # is 4 ms
    cost = roofline.Cost(flops=1.978e12, bytes=13.4e9, io_bytes=3.35e9)
    b = roofline.bound(cost, roofline.H100_SXM, "bfloat16")
    assert b.compute_s == pytest.approx(2e-3)
    assert b.floor_s == pytest.approx(1e-3)
    assert b.accessed_s == pytest.approx(4e-3)
    assert (b.seconds, b.limit, b.estimate_s) == (pytest.approx(2e-3), "compute",
                                                  pytest.approx(4e-3))
    # the same program as TF32 on an H200: 1.978e12 / 495e12 = 3.99596 ms; 3.35e9 / 4.8e12
    t = roofline.bound(cost, roofline.H200, roofline.matmul_type("float32"))
    assert t.compute_s == pytest.approx(3.995960e-3, rel=1e-6)
    assert t.floor_s == pytest.approx(0.697917e-3, rel=1e-5)
    # a memory-bound one: 1 GFLOP (1 us) against 6.7 GB in+out (2 ms)
    m = roofline.bound(roofline.Cost(1e9 * 0.989, 6.7e9, 6.7e9), roofline.H100_SXM, "bfloat16")
    assert (m.seconds, m.limit) == (pytest.approx(2e-3), "memory")


def test_matmul_type_and_device_names():
    assert roofline.matmul_type("bfloat16") == "bfloat16"
    assert roofline.matmul_type("float32") == "tf32"
    assert roofline.matmul_type("float32", precision="highest") == "float32"
    with pytest.raises(ValueError, match="float16"):
        roofline.matmul_type("float16")
    assert roofline.accelerator_for("NVIDIA H100 80GB HBM3") is roofline.H100_SXM
    assert roofline.accelerator_for("NVIDIA H200") is roofline.H200
    assert roofline.accelerator_for("cpu") is None


def test_seconds_per_million_env_steps_per_task():
    # 16 envs per task: 62,500 vectorized steps, each 32 updates of 1 ms and one 0.5 ms env step
    assert roofline.seconds_per_million(1e-3, 0.5e-3, 32, 16) == pytest.approx(62_500 * 32.5e-3)
    # one env per task, 2 updates per step, host env: 1M x 2 x 1 ms
    assert roofline.seconds_per_million(1e-3, 0.0, 2, 1) == pytest.approx(2_000.0)


def test_cost_of_reads_xla_counts_of_a_matmul():
    a = jax.ShapeDtypeStruct((64, 128), jnp.float32)
    b = jax.ShapeDtypeStruct((128, 32), jnp.float32)
    cost = roofline.cost_of(jax.jit(jnp.dot).lower(a, b).compile())
    assert cost.flops == 2 * 64 * 128 * 32
    assert cost.io_bytes == 4 * (64 * 128 + 128 * 32 + 64 * 32)
    assert cost.bytes >= cost.io_bytes


def _toy_cfg(width: int) -> TrainConfig:
    return TrainConfig(
        env=EnvConfig(tasks=("toy",), envs_per_task=2),
        learner=LearnerConfig(network=NetworkConfig(critic_width=width, actor_width=32)),
        batch_size=64, updates_per_step=2)


def test_an_update_costs_twelve_critic_passes_per_sample_and_member():
    """The critic's matmuls dominate a wide update: per sample and ensemble member, the critic
    loss runs a forward and a backward for the weights and the inputs (6 P FLOPs), the target
    one forward (2 P) and the actor loss a forward and an input backward (4 P): 12 P. The
    embedding, the narrow actor, LayerNorms and the categorical head add a few per cent."""
    env = ToyEnv(num_tasks=2, obs_dim=5)
    cfg = _toy_cfg(512)
    costs, env_cost = roofline.preset_costs(cfg, env, (128,), ("float32",))
    assert env_cost is None  # the toy env is not MJX: its step is not on the device's roofline
    p = parameter_counts(cfg.learner.network, env.obs_dim, env.action_dim, env.num_tasks)
    hand = 12 * 128 * cfg.learner.network.ensemble_size * p["critic_member"]
    assert 1.0 <= costs[128, "float32"].flops / hand <= 1.1
    # the floor: every parameter and both AdamW moments of the learner are read and written
    assert costs[128, "float32"].io_bytes >= 2 * 3 * 4 * p["total"]


def test_roofline_rows_on_an_mjx_task(tmp_path):
    cfg = dataclasses.replace(
        _toy_cfg(64), env=EnvConfig(tasks=("dmc/cartpole-balance",), envs_per_task=3))
    args = InfoArgs(roofline=True, roofline_batches=(32,), roofline_dtypes=("bfloat16",),
                    out=tmp_path / "rows.jsonl")
    (row,) = roofline_rows(args, presets={"tiny": cfg})
    assert (row["batch"], row["dtype"], row["matmul"]) == (32, "bfloat16", "bfloat16")
    assert row["env_step"]["flops"] > 0 and row["update"]["flops"] > 0
    for acc in roofline.ACCELERATORS:
        p = row["predicted"][acc.name]
        assert p["update_s"] == pytest.approx(max(row["update"]["flops"] / 989e12,
                                                  row["update"]["io_bytes"] / acc.bytes_per_s))
        # 1e6 / 3 vectorized steps of 2 updates and one env step
        assert p["seconds_per_million"] == pytest.approx(1e6 / 3 * (2 * p["update_s"]
                                                                    + p["env_step_s"]))
        assert p["update_estimate_s"] >= p["update_s"]
    assert (tmp_path / "rows.jsonl").read_text().count('"benchmark": "roofline"') == 1


@pytest.mark.parametrize("argv, message", [
    (["--roofline", "--roofline-presets", "dmc-hard-64"], "unknown training preset 'dmc-hard-64'; "
     "did you mean"),
    (["--roofline", "--roofline-batches", "0"], "--roofline-batches must be >= 1, got 0"),
    (["--roofline", "--roofline-dtypes", "float16"], "'float16' is not float32 or bfloat16"),
])
def test_roofline_bad_input_is_one_line_before_anything_compiles(argv, message):
    with pytest.raises(SystemExit) as exc:
        info_main(argv)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_nan_floor_when_a_backend_reports_no_memory():
    class NoMemory:
        def cost_analysis(self):
            return [{"flops": 10.0, "bytes accessed": 20.0}]

        def memory_analysis(self):
            return None

    cost = roofline.cost_of(NoMemory())
    assert (cost.flops, cost.bytes) == (10.0, 20.0) and math.isnan(cost.io_bytes)
