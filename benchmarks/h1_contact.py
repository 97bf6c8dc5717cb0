"""What whole-body contact costs the HumanoidBench H1 tasks: env-only steps/s, feet-only against
whole-body, for every H1 task at each batch size, in one run.

    python -m benchmarks.h1_contact                       # every H1 task, 16 and 256 envs
    python -m benchmarks.h1_contact --tasks walk pole --num-envs 16

Each (task, contact, num_envs) builds the task's MJX env with that contact model
(``H1Locomotion(task, whole_body=...)``; the task's own reward and scene either way), batches it
into the ``Env`` that ``envs.make`` builds (MJX backend with auto-reset, multi-task wrapper) and
times it with ``benchmarks.env_only.time_env``
(compile apart, one warm-up, one timed rollout of random actions). One JSON row per
configuration goes to ``benchmarks/results/h1_contact.jsonl``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tyro

from benchmarks.common import RESULTS_DIR, append_row, row_header
from benchmarks.env_only import time_env

RESULTS = RESULTS_DIR / "h1_contact.jsonl"


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple[str, ...] = ()
    """H1 task names (``envs.humanoidbench.TASKS``); empty: all of them."""
    num_envs: tuple[int, ...] = (16, 256)
    env_steps: int = 2048
    """Env steps per timed rollout (scan length = env_steps // num_envs, at least 8)."""
    out: Path = RESULTS


def main(cfg: Config) -> list[dict]:
    from envs.humanoidbench import TASKS, H1Locomotion
    from envs.mjx_backend import make_mjx_backend
    from envs.multitask import make_multitask

    tasks = cfg.tasks or tuple(TASKS)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"benchmarks.h1_contact: unknown H1 task(s) {unknown}; expected "
                         f"some of {', '.join(TASKS)}")
    rows = []
    for task in tasks:
        for whole_body in (False, True):
            env = H1Locomotion(task, whole_body=whole_body)
            for n in cfg.num_envs:
                batched = make_multitask(  # the Env envs.make builds, with this contact
                    [f"humanoidbench/h1-{task}"], ["mjx"],
                    [make_mjx_backend(env, n, env.episode_length)], [env.episode_length],
                    [False])
                timing = time_env(batched, max(8, cfg.env_steps // n))
                row = dict(row_header("h1_contact"), task=f"humanoidbench/h1-{task}",
                           contact="whole-body" if whole_body else "feet-only",
                           task_default=whole_body == TASKS[task].whole_body, num_envs=n,
                           ngeom=int(env.mj_model.ngeom), **timing)
                append_row(cfg.out, row)
                rows.append(row)
                print(f"h1-{task:7s} {row['contact']:10s} {n:4d} envs: "
                      f"{timing['steps_per_s']:8.0f} env steps/s (compile "
                      f"{timing['compile_s']:.0f} s)", flush=True)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Config))
