"""Learning throughput: BRC gradient steps/s and achieved FLOP/s per critic width and batch.

    python -m benchmarks.learning                       # default sweep (a few minutes on CPU)
    python -m benchmarks.learning --widths 1024 --batches 1024

Each point compiles ``lax.scan`` over ``updates`` calls of ``sgd_step`` (critic + target + actor +
temperature) on a fixed synthetic multi-task batch, and times it after a warm-up. FLOPs per step
come from XLA's own ``cost_analysis()`` of the compiled program; the compute limit is the measured
FLOP/s of a dense float32 matmul of the same device (the critic's dominant op: a
``(batch*ensemble, W) x (W, W)`` product), so ``fraction`` = achieved / matmul FLOP/s.
Rows go to ``benchmarks/results/learning.jsonl``.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import tyro

from benchmarks.common import RESULTS_DIR, append_row, profile_call, row_header
from brc_mjx import roofline
from brc_mjx.agents.brc.learner import init_state, make_learner, sgd_step
from brc_mjx.config import LearnerConfig, NetworkConfig
from brc_mjx.replay import Transition


@dataclasses.dataclass(frozen=True)
class Config:
    """Gradient-step throughput sweep."""

    widths: tuple[int, ...] = (128, 256, 512, 1024)
    """Critic widths W."""
    batches: tuple[int, ...] = (256,)
    """Global batch sizes."""
    updates: int = 10
    """sgd steps per timed call (lax.scan)."""
    repeats: int = 3
    """Timed calls per point (the best is kept)."""
    obs_dim: int = 24
    """Observation size of the synthetic batch."""
    action_dim: int = 6
    """Action size of the synthetic batch."""
    num_tasks: int = 4
    """Tasks of the synthetic batch (multi-task: the critic has an embedding)."""
    compute_dtypes: tuple[str, ...] = ("float32",)
    """Critic compute dtypes (float32 | bfloat16); each is compared with a matmul of its dtype."""
    profile: bool = False
    """Also trace one more call per point into benchmarks/profiles/ and print its phase split."""
    out: Path = RESULTS_DIR / "learning.jsonl"
    """JSONL file the rows are appended to."""


def best_time(fn, *args, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of an already-compiled ``fn``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops_per_s(m: int, k: int, n: int, repeats: int, dtype: str = "float32") -> float:
    """Measured FLOP/s of an ``(m, k) x (k, n)`` matmul in ``dtype``, 10 per call."""
    a = jax.random.normal(jax.random.key(0), (m, k), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (k, n), jnp.float32).astype(dtype)

    def ten(a, b):
        return jax.lax.fori_loop(0, 10, lambda i, x: (x @ b) * jnp.asarray(0.5, x.dtype), a)

    fn = jax.jit(ten).lower(a, b).compile()
    jax.block_until_ready(fn(a, b))
    return 10 * 2 * m * k * n / best_time(fn, a, b, repeats=repeats)


def synthetic_batch(cfg: Config, batch: int) -> Transition:
    keys = jax.random.split(jax.random.key(2), 4)
    return Transition(
        obs=jax.random.normal(keys[0], (batch, cfg.obs_dim)),
        action=jax.random.uniform(keys[1], (batch, cfg.action_dim), minval=-1, maxval=1),
        reward=jax.random.uniform(keys[2], (batch,)),
        next_obs=jax.random.normal(keys[3], (batch, cfg.obs_dim)),
        terminated=jnp.zeros((batch,), bool),
        truncated=jnp.zeros((batch,), bool),
        task_id=jnp.arange(batch, dtype=jnp.int32) % cfg.num_tasks,
    )


def time_learning(cfg: Config, width: int, batch: int, dtype: str = "float32") -> dict:
    """Compile and time ``cfg.updates`` sgd steps at critic ``width``, ``batch`` and critic
    compute ``dtype``."""
    net = NetworkConfig(critic_width=width, critic_compute_dtype=dtype)
    learner = make_learner(LearnerConfig(network=net), cfg.obs_dim,
                           (cfg.action_dim,) * cfg.num_tasks)
    state = init_state(learner, jax.random.key(0), num_envs=cfg.num_tasks, max_episode_length=10)
    data = synthetic_batch(cfg, batch)

    def run(state, key):
        step = functools.partial(sgd_step, learner, batch=data)
        return jax.lax.scan(lambda s, k: step(s, key=k), state, jax.random.split(key, cfg.updates))

    start = time.perf_counter()
    compiled = jax.jit(run, donate_argnums=0).lower(state, jax.random.key(1)).compile()
    compile_s = time.perf_counter() - start
    # XLA's cost analysis counts a loop body once, whatever its trip count: take the FLOPs of
    # one un-scanned step.
    single = jax.jit(functools.partial(sgd_step, learner)).lower(state, data, jax.random.key(1))
    cost = roofline.cost_of(single.compile())
    flops_per_step = cost.flops
    state, _ = jax.block_until_ready(compiled(state, jax.random.key(1)))  # warm-up
    best = float("inf")
    for i in range(cfg.repeats):
        start = time.perf_counter()
        state, _ = jax.block_until_ready(compiled(state, jax.random.key(i + 2)))
        best = min(best, time.perf_counter() - start)
    if cfg.profile:
        holder = [state]

        def run_once():
            holder[0], _ = jax.block_until_ready(compiled(holder[0], jax.random.key(99)))

        profile_call(f"learning-{dtype}-w{width}-b{batch}", compiled, run_once, cfg.updates)
    steps_per_s = cfg.updates / best
    peak = matmul_flops_per_s(batch * 2, width, width, cfg.repeats, dtype)
    achieved = flops_per_step * steps_per_s
    result = dict(compile_s=compile_s, steady_s=best, sgd_steps_per_s=steps_per_s,
                  flops_per_step=flops_per_step, bytes_per_step=cost.bytes,
                  io_bytes_per_step=cost.io_bytes, achieved_flops_per_s=achieved,
                  matmul_flops_per_s=peak, fraction_of_matmul=achieved / peak)
    acc = roofline.accelerator_for(jax.devices()[0].device_kind)
    if acc is not None:  # a device with datasheet peaks: the prediction beside the measurement
        predicted = roofline.bound(cost, acc, roofline.matmul_type(dtype))
        result.update(predicted_s_per_step=predicted.seconds, predicted_limit=predicted.limit,
                      estimated_s_per_step=predicted.estimate_s,
                      fraction_of_roofline=predicted.seconds * steps_per_s)
    return result


def main(cfg: Config) -> None:
    print(f"{'dtype':>9} {'width':>6} {'batch':>6} {'steps/s':>9} {'GFLOP/step':>11} "
          f"{'GFLOP/s':>9} {'matmul':>8} {'frac':>6}")
    for dtype in cfg.compute_dtypes:
        for batch in cfg.batches:
            for width in cfg.widths:
                point(cfg, width, batch, dtype)


def point(cfg: Config, width: int, batch: int, dtype: str, benchmark: str = "learning") -> dict:
    """Time one (width, batch, dtype) point, append its row to ``cfg.out`` and print it."""
    r = time_learning(cfg, width, batch, dtype)
    config = dict(width=width, batch=batch, updates=cfg.updates, obs_dim=cfg.obs_dim,
                  action_dim=cfg.action_dim, num_tasks=cfg.num_tasks)
    if dtype != "float32":  # float32 rows keep the config of earlier rows
        config["compute_dtype"] = dtype
    append_row(cfg.out, dict(row_header(benchmark), config=config, **r))
    print(f"{dtype:>9} {width:6d} {batch:6d} {r['sgd_steps_per_s']:9.1f} "
          f"{r['flops_per_step'] / 1e9:11.3f} {r['achieved_flops_per_s'] / 1e9:9.1f} "
          f"{r['matmul_flops_per_s'] / 1e9:8.1f} {r['fraction_of_matmul']:6.2f}", flush=True)
    return r


if __name__ == "__main__":
    main(tyro.cli(Config))
