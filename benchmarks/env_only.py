"""Bare env throughput: `jit(scan(env.step))` steps/s per backend, task and batch size.

    python -m benchmarks.env_only      # the default short sweep, a few minutes on CPU
    python -m benchmarks.env_only --tasks dmc/walker-walk --backends mjx --num-envs 1024 4096

Compile time is measured apart (`lower().compile()`), then the compiled rollout runs once to warm
up and once timed. One JSON row per (backend, task, num_envs) is appended to
`benchmarks/results/env_only.jsonl`. Random uniform actions are drawn inside the scan.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import tyro

import envs
from benchmarks.common import RESULTS_DIR, append_row, row_header

RESULTS = RESULTS_DIR / "env_only.jsonl"


@dataclasses.dataclass(frozen=True)
class Config:
    """Env-only throughput sweep."""

    tasks: tuple[str, ...] = ("dmc/cartpole-balance", "dmc/cheetah-run", "dmc/dog-run")
    """Tasks to time, one at a time (tasks without the backend are skipped)."""
    backends: tuple[str, ...] = ("mjx", "envpool")
    """Backends to time."""
    num_envs: tuple[int, ...] = (16, 256)
    """Batch sizes (envs per task)."""
    dog_max_envs: int = 32
    """Cap on batch size for EnvPool dog tasks, which take ~125 MB of host RAM per env."""
    env_steps: int = 20_000
    """Target env steps per timed rollout; scan length = env_steps // num_envs, in [10, 500]."""
    mjx_impl: str = "jax"
    """MJX implementation: jax | warp (NVIDIA GPUs)."""
    out: Path = RESULTS
    """JSONL file the rows are appended to."""


def time_env(env: envs.Env, scan_len: int) -> dict[str, float]:
    """Compile and time `scan_len` steps of `env`; returns compile_s, steady_s, steps_per_s."""

    def rollout(state, key):
        def body(state, k):
            if env.discrete:
                action = jax.random.randint(k, (env.num_envs,), 0, env.action_dim)
            else:
                action = jax.random.uniform(k, (env.num_envs, env.action_dim), jnp.float32, -1, 1)
            state = env.step(state, action)
            return state, state.reward.sum()

        state, rewards = jax.lax.scan(body, state, jax.random.split(key, scan_len))
        return state, rewards.sum()

    key = jax.random.key(0)
    state = jax.block_until_ready(jax.jit(env.reset)(key))
    start = time.perf_counter()
    compiled = jax.jit(rollout).lower(state, key).compile()
    compile_s = time.perf_counter() - start
    state, _ = jax.block_until_ready(compiled(state, key))  # warm-up
    start = time.perf_counter()
    jax.block_until_ready(compiled(state, key))
    steady_s = time.perf_counter() - start
    return dict(compile_s=compile_s, steady_s=steady_s,
                steps_per_s=env.num_envs * scan_len / steady_s)


def main(cfg: Config) -> None:
    print(f"{'backend':8} {'task':24} {'envs':>6} {'compile_s':>10} {'steps/s':>10}")
    for backend in cfg.backends:
        for task in cfg.tasks:
            if backend not in envs.get_task(task).backends:
                continue
            sizes = cfg.num_envs
            if backend == "envpool" and task.startswith("dmc/dog"):
                sizes = sorted({min(n, cfg.dog_max_envs) for n in sizes})
            for num_envs in sizes:
                scan_len = min(500, max(10, cfg.env_steps // num_envs))
                env = envs.make(task, num_envs, backend=backend, mjx_impl=cfg.mjx_impl)
                result = time_env(env, scan_len)
                row = dict(
                    row_header("env_only"),
                    config=dict(task=task, backend=backend, num_envs=num_envs,
                                scan_len=scan_len, mjx_impl=cfg.mjx_impl),
                    **result,
                )
                append_row(cfg.out, row)
                print(f"{backend:8} {task:24} {num_envs:6d} {result['compile_s']:10.1f} "
                      f"{result['steps_per_s']:10.0f}", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Config))
