"""A population against the same runs one after another: wall time, compile included.

    python -m benchmarks.population                          # cpu-default, 4 seeds, 60k steps
    python -m benchmarks.population --members 4 --total-env-steps 60000 --preset cpu-default

Both arms are ``brc-train`` processes, as a user runs them, each arm with a fresh (empty)
compilation cache of its own:

- **sequential**: ``brc-train PRESET --seed k`` for k = 0 .. members - 1, one after another (the
  first compiles; the later ones load its programs from the cache, as a user's second run does);
- **population**: ``brc-train PRESET --population.seeds 0 .. members - 1`` (one process, one
  program).

Run it alone: the arms are timed on the same cores one after another. One JSON row per arm and
one for the ratio go to ``benchmarks/results/population.jsonl``; the runs stay in
``runs/bench-population/<time>`` (each member's and run's ``metrics.jsonl``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tyro

from benchmarks.common import RESULTS_DIR, append_row, row_header

BRC_TRAIN = str(Path(sys.executable).with_name("brc-train"))


@dataclasses.dataclass(frozen=True)
class Config:
    """A population vs the same runs one after another."""

    preset: str = "cpu-default"
    members: int = 4
    total_env_steps: int = 60_000
    """Per task, per run."""
    extra: str = ""
    """More brc-train flags for both arms, as one string (e.g. "--no-video")."""
    out: str = ""
    """Run directory root (default: runs/bench-population/<time>)."""
    record: bool = True
    """Append the rows to benchmarks/results/population.jsonl (False: print only, a smoke test)."""


def _last(run_dir: str) -> dict:
    """The final record and the compile seconds of a run directory's metrics.jsonl."""
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    compile_s = next((r["perf/compile_s"] for r in records if "perf/compile_s" in r), None)
    return {"env_steps": records[-1]["env_steps"], "compile_s": compile_s,
            "final_eval": records[-1].get("eval/mean_return")}


def _train(args: list[str], cache: str, log: str) -> float:
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("XLA_FLAGS", None)
    start = time.perf_counter()
    with open(log, "w") as out:
        subprocess.run([BRC_TRAIN, *args], stdout=out, stderr=subprocess.STDOUT, env=env,
                       check=True)
    return time.perf_counter() - start


def main(cfg: Config) -> list[dict]:
    root = cfg.out or os.path.join("runs", "bench-population", time.strftime("%Y%m%d-%H%M%S"))
    os.makedirs(root, exist_ok=True)
    common = [cfg.preset, "--total-env-steps", str(cfg.total_env_steps), *shlex.split(cfg.extra)]
    seeds = [str(k) for k in range(cfg.members)]
    header = {**row_header("population"), "preset": cfg.preset, "members": cfg.members,
              "total_env_steps": cfg.total_env_steps, "extra": cfg.extra}
    rows = []

    with tempfile.TemporaryDirectory() as cache:
        walls, runs = [], []
        for seed in seeds:
            run_dir = os.path.join(root, f"seq-s{seed}")
            walls.append(_train([*common, "--seed", seed, "--run-dir", run_dir], cache,
                                f"{run_dir}.log"))
            runs.append(_last(run_dir))
            print(f"sequential seed {seed}: {walls[-1]:.1f} s, {runs[-1]}", flush=True)
        rows.append({**header, "arm": "sequential", "wall_s": sum(walls), "run_wall_s": walls,
                     "runs": runs})

    with tempfile.TemporaryDirectory() as cache:
        run_dir = os.path.join(root, "population")
        wall = _train([*common, "--population.seeds", *seeds, "--run-dir", run_dir], cache,
                      f"{run_dir}.log")
        runs = [_last(os.path.join(run_dir, f"member-{k}")) for k in range(cfg.members)]
        print(f"population: {wall:.1f} s, {runs}", flush=True)
        rows.append({**header, "arm": "population", "wall_s": wall, "runs": runs})

    ratio = rows[0]["wall_s"] / rows[1]["wall_s"]
    rows.append({**header, "arm": "ratio", "sequential_over_population": ratio})
    print(f"sequential {rows[0]['wall_s']:.1f} s / population {rows[1]['wall_s']:.1f} s = "
          f"{ratio:.2f}x", flush=True)
    for row in rows if cfg.record else ():
        append_row(RESULTS_DIR / "population.jsonl", row)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Config))
