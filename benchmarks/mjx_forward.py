"""What observing the state a step reached costs: MJX env-only steps/s of Playground's DMC step
as Playground ships it, and with the ``mjx.forward`` that ``envs.mjx_backend`` adds after it (so
that observation and reward are dm_control's), side by side in one process.

    python -m benchmarks.mjx_forward                   # cheetah-run, walker-walk, hopper-stand
    python -m benchmarks.mjx_forward --tasks CheetahRun --num-envs 16

Each point: ``jit(scan(vmap(step)))`` over 100 steps with zero actions, best of 3 after a warm-up.
Rows go to ``benchmarks/results/mjx_forward.jsonl``.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import tyro

from benchmarks.common import RESULTS_DIR, append_row, row_header


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple[str, ...] = ("CheetahRun", "WalkerWalk", "HopperStand")
    """Playground task ids."""
    num_envs: tuple[int, ...] = (16, 256)
    steps: int = 100
    record: bool = True


def steps_per_s(step, reset, num_envs: int, steps: int) -> float:
    states = jax.jit(jax.vmap(reset))(jax.random.split(jax.random.PRNGKey(0), num_envs))
    actions = jnp.zeros((num_envs, states.data.ctrl.shape[-1]))

    def roll(s):
        return jax.lax.scan(lambda s, _: (jax.vmap(step)(s, actions), None), s, None,
                            length=steps)[0]

    fn = jax.jit(roll).lower(states).compile()
    jax.block_until_ready(fn(states))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        jax.block_until_ready(fn(states))
        best = min(best, time.perf_counter() - start)
    return steps * num_envs / best


def side_by_side(cfg: Config, benchmark: str, variants, keys: tuple[str, str],
                 labels: tuple[str, str]) -> list[dict]:
    """For each task and env count: steps/s of two variants (``variants(task)`` gives two
    ``(step, reset)`` pairs), one row each with their ratio, recorded under ``benchmark``."""
    rows = []
    for task in cfg.tasks:
        pair = variants(task)
        for n in cfg.num_envs:
            a, b = (steps_per_s(step, reset, n, cfg.steps) for step, reset in pair)
            row = dict(row_header(benchmark), task=task, num_envs=n, steps=cfg.steps,
                       **{keys[0]: a, keys[1]: b}, ratio=b / a)
            rows.append(row)
            print(f"{task} x{n}: {labels[0]} {a:,.0f} steps/s, {labels[1]} {b:,.0f} "
                  f"({b / a:.2f}x)", flush=True)
            if cfg.record:
                append_row(RESULTS_DIR / f"{benchmark}.jsonl", row)
    return rows


def main(cfg: Config) -> list[dict]:
    from envs.mjx_backend import load_playground

    def variants(task):
        env = load_playground(task)
        return (env.step.__wrapped__, env.reset.__wrapped__), (env.step, env.reset.__wrapped__)

    return side_by_side(cfg, "mjx_forward", variants,
                        ("playground_steps_per_s", "after_step_forward_steps_per_s"),
                        ("Playground", "with the forward after the step"))


if __name__ == "__main__":
    main(tyro.cli(Config))
