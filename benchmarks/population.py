"""A population against the same runs one after another: wall time, compile included.

    python -m benchmarks.population                          # cpu-default, 4 seeds, 60k steps
    python -m benchmarks.population --members 4 --total-env-steps 60000 --preset cpu-default
    python -m benchmarks.population --scale 1 2 4      # env steps/s of 1, 2, 4 members, one
                                                       # process each (in-process)

Both arms are ``brc-train`` processes, as a user runs them, each arm with a fresh (empty)
compilation cache of its own:

- **sequential**: ``brc-train PRESET --seed k`` for k = 0 .. members - 1, one after another (the
  first compiles; the later ones load its programs from the cache, as a user's second run does);
- **population**: ``brc-train PRESET --population.seeds 0 .. members - 1`` (one process, one
  program).

``--scale N ...`` instead times the compiled population epoch itself at each size (members
learning from the second epoch on, no evaluation, no checkpoint): env steps/s of the whole
population and per member, where the device saturates. ``benchmarks.gpu``'s ``population`` part
runs it on a lent GPU (dmc-easy-mjx-4m at 1, 4, 16 members).

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
    scale: tuple[int, ...] = ()
    """Instead of the wall-time comparison: time the population epoch at these member counts."""
    scale_epochs: int = 3
    """--scale: epochs per size (the first, with the compile, is not timed)."""
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


def scale(preset: str, sizes: tuple[int, ...], epochs: int, out: Path | None,
          steps_per_epoch: int = 0, width: int = 0, envs_per_task: int = 0,
          tasks: tuple[str, ...] = ()) -> list[dict]:
    """Env steps/s of ``preset``'s population epoch at each member count in ``sizes``
    (``steps_per_epoch`` / ``width`` / ``envs_per_task`` / ``tasks``: smaller sizes for a smoke
    test)."""
    from brc_mjx import run as run_lib
    from brc_mjx.config import MeshConfig, PopulationConfig
    from configs.train import TRAIN_PRESETS

    base = TRAIN_PRESETS[preset][1]
    env_cfg = dataclasses.replace(base.env, eval_episodes=0, tasks=tasks or base.env.tasks,
                                  envs_per_task=envs_per_task or base.env.envs_per_task)
    learner = base.learner if not width else dataclasses.replace(
        base.learner, network=dataclasses.replace(base.learner.network, critic_width=width,
                                                  actor_width=width))
    spe = steps_per_epoch or base.steps_per_epoch
    per_epoch = spe * env_cfg.envs_per_task
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = dataclasses.replace(
                base, env=env_cfg, learner=learner, steps_per_epoch=spe,
                warmup_env_steps=env_cfg.envs_per_task,  # every epoch learns
                total_env_steps=per_epoch * (epochs + 1),  # the last epoch (and its
                eval_every=0, checkpoint_every=0, diagnostics_every=0, video=False,  # save)
                compile_cache=False, population=PopulationConfig(size=n),  # never runs
                mesh=MeshConfig(data=1, fsdp=1),  # one device
                run_dir=os.path.join(tmp, "pop"))
            start = time.perf_counter()
            run_lib.run(cfg, max_epochs=epochs)
            wall = time.perf_counter() - start
            with open(os.path.join(cfg.run_dir, "member-0", "metrics.jsonl")) as f:
                records = [json.loads(line) for line in f]
        timed = [r["perf/epoch_s"] for r in records[1:]]
        epoch_s = sorted(timed)[len(timed) // 2]
        # every record's rate is steps_per_epoch * num_envs / epoch_s
        num_envs = round(records[0]["perf/env_steps_per_s"] * records[0]["perf/epoch_s"] / spe)
        member_rate = spe * num_envs / epoch_s
        row = {**row_header("population_scale"), "preset": preset, "members": n,
               "tasks": list(env_cfg.tasks),
               "steps_per_epoch": spe, "num_envs_per_member": num_envs,
               "critic_width": learner.network.critic_width, "epoch_s": epoch_s,
               "env_steps_per_s_per_member": member_rate,
               "env_steps_per_s_total": n * member_rate,
               "updates_per_s_per_member": records[-1]["perf/updates_per_s"],
               "compile_s": records[0].get("perf/compile_s"), "wall_s": wall}
        rows.append(row)
        print(f"population {preset} x{n}: epoch {epoch_s:.3f} s, "
              f"{n * member_rate:,.0f} env steps/s ({member_rate:,.0f} per member), "
              f"compile {row['compile_s']:.1f} s", flush=True)
        if out is not None:
            append_row(out, row)
    return rows


def main(cfg: Config) -> list[dict]:
    if cfg.scale:
        return scale(cfg.preset, cfg.scale, cfg.scale_epochs,
                     RESULTS_DIR / "population.jsonl" if cfg.record else None)
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
