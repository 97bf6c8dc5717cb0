"""ShadowHand RotateZ: env-only throughput of one object vs many objects in one batch, and the
random policy's success rate (the bar a learner must clear).

    python -m benchmarks.shadowhand                       # CPU default, ~10 minutes alone
    python -m benchmarks.shadowhand --num-envs 1024 4096  # on a GPU

For each family in `--families`, the same number of envs is stepped as (a) one object and (b)
`--objects` objects of the family in one batched model (each env gathers its object's model),
side by side in one process, so their ratio is the cost of holding many objects in one batch.
Then `--episodes` 100-step episodes per object and baseline policy give its success rate
(success at the episode's last step) and mean episode return: `random` (uniform actions in
[-1, 1]) and `zero` (every joint held at the middle of its range, the reset's settling pose: the
hand keeps still, so it scores when the goal happens to lie within 0.1 rad of where the object
already is). `--dense` measures the dense-reward tasks. Rows go to
`benchmarks/results/shadowhand.jsonl`.

    python -m benchmarks.shadowhand --num-envs --dense --episodes 64   # baselines only

`--plot-run RUN_DIR` draws a training run's eval success and return (mean over its objects, and
per object) against env steps per object, with the newest baseline rows of the same tasks as
dashed lines, into `--plot-out`, and measures nothing:

    python -m benchmarks.shadowhand --plot-run runs/shadowhand-cpu \
        --plot-out benchmarks/plots/shadowhand_boxes_dense_curve.png
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import envs
from benchmarks.common import RESULTS_DIR, append_row, row_header
from benchmarks.env_only import time_env
from envs.shadowhand import objects

RESULTS = RESULTS_DIR / "shadowhand.jsonl"


@dataclasses.dataclass(frozen=True)
class Config:
    """ShadowHand throughput and random-policy baseline."""

    families: tuple[str, ...] = ("box", "hull")
    """Object families to time (one batched model each)."""
    objects: int = 4
    """Objects of a family in the many-object batch (its first training objects)."""
    num_envs: tuple[int, ...] = (64,)
    """Total envs per measurement (the many-object batch splits them evenly)."""
    scan_len: int = 20
    """Env steps per timed rollout."""
    episodes: int = 16
    """Episodes per object and baseline policy for the success baselines (0: skip)."""
    policies: tuple[str, ...] = ("random", "zero")
    """Baseline policies: `random` (uniform actions) and `zero` (hold the settling pose)."""
    dense: bool = False
    """Use the dense-reward tasks (`rotate-z-dense`; success is the same flag)."""
    out: Path = RESULTS
    """JSONL file the rows are appended to (and the baselines are read from with --plot-run)."""
    plot_run: str = ""
    """A training run directory to plot against the baselines (then nothing is measured)."""
    plot_out: Path = Path("shadowhand_curve.png")
    """Where --plot-run's figure goes."""


POLICIES = ("random", "zero")


def family_tasks(family: str, count: int, dense: bool = False) -> list[str]:
    names = [n for n in objects.TRAIN if objects.family_of(n) == family][:count]
    kind = "rotate-z-dense" if dense else "rotate-z"
    return [f"shadowhand/{kind}/{n}" for n in names]


def baseline(env: envs.Env, key: jax.Array,
             policy: str = "random") -> tuple[np.ndarray, np.ndarray]:
    """Per-task (success rate, mean return) of `policy` over one episode of every env."""
    if policy not in POLICIES:
        raise ValueError(f"unknown baseline policy {policy!r}; expected one of {POLICIES}")
    length = max(env.episode_length)

    def body(state, k):
        shape = (env.num_envs, env.action_dim)
        if policy == "random":
            action = jax.random.uniform(k, shape, jnp.float32, -1, 1)
        else:
            action = jnp.zeros(shape, jnp.float32)
        return env.step(state, action), None

    @jax.jit
    def run(key):
        key_reset, key_steps = jax.random.split(key)
        state, _ = jax.lax.scan(body, env.reset(key_reset), jax.random.split(key_steps, length))
        return state.last_episode_success, state.last_episode_return

    success, returns = (np.asarray(x).reshape(env.num_tasks, env.envs_per_task)
                        for x in run(key))
    return success.mean(axis=1), returns.mean(axis=1)


def baseline_levels(rows: list[dict], tasks: list[str]) -> dict[str, tuple[float, float]]:
    """policy -> (mean success, mean return) of the newest baseline row measured on exactly
    `tasks` (rows in file order; a row without a return gives NaN)."""
    levels = {}
    for row in rows:
        for policy in POLICIES:
            if (row.get("benchmark") == f"shadowhand_{policy}_success"
                    and list(row["config"]["tasks"]) == list(tasks)):
                levels[policy] = (float(row["mean_success"]),
                                  float(row.get("mean_return", float("nan"))))
    return levels


def plot_run(run_dir: str, rows: list[dict], out: Path) -> dict[str, tuple[float, float]]:
    """Draw `run_dir`'s eval success and return against the baselines of its tasks (see the
    module doc) into `out`; returns the baseline levels drawn."""
    from brc_mjx.analysis import report

    try:
        run = report.load_run(run_dir)
    except ValueError as err:
        raise SystemExit(f"--plot-run: {err}") from None
    tasks = run.task_names or run.tasks
    if not tasks or not report.series(run, "eval/mean_success")[0].size:
        raise SystemExit(f"--plot-run: {run_dir} has no evaluation with success rates yet")
    levels = baseline_levels(rows, tasks)
    plt = report.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for ax, metric in zip(axes, ("success", "return"), strict=True):
        for task in tasks:
            ax.plot(*report.series(run, f"eval/{task}/{metric}"), lw=0.8, alpha=0.45,
                    label=task.rsplit("/", 1)[-1])
        ax.plot(*report.series(run, f"eval/mean_{metric}"), "k.-", lw=1.8, label="mean")
        for (policy, level), style in zip(sorted(levels.items()), ("--", ":"), strict=False):
            ax.axhline(level[0 if metric == "success" else 1], color="tab:red", ls=style,
                       label=f"{policy} policy")
        ax.set(title=f"eval {metric} ({len(tasks)} objects)", xlabel="env steps per object",
               ylabel=f"eval {metric}")
        report.steps_axis(ax)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return levels


def main(cfg: Config) -> None:
    if cfg.plot_run:
        rows = [json.loads(line) for line in cfg.out.read_text().splitlines()
                if line.strip()] if cfg.out.exists() else []
        levels = plot_run(cfg.plot_run, rows, cfg.plot_out)
        print(f"wrote {cfg.plot_out} (baselines: "
              f"{', '.join(sorted(levels)) or 'none measured on these tasks'})")
        return
    for policy in cfg.policies:
        if policy not in POLICIES:
            raise SystemExit(f"unknown --policies entry {policy!r}; expected one of {POLICIES}")
    print(f"{'family':9} {'objects':>7} {'envs':>6} {'compile_s':>10} {'steps/s':>9}")
    for family in cfg.families:
        many = family_tasks(family, cfg.objects, cfg.dense)
        for num_envs in cfg.num_envs:
            for tasks in (many[:1], many):
                per_task = num_envs // len(tasks)
                env = envs.make(tasks, per_task)
                result = time_env(env, cfg.scan_len)
                row = dict(row_header("shadowhand_env_only"),
                           config=dict(family=family, tasks=tasks, envs_per_task=per_task,
                                       num_envs=env.num_envs, scan_len=cfg.scan_len),
                           **result)
                append_row(cfg.out, row)
                print(f"{family:9} {len(tasks):7d} {env.num_envs:6d} "
                      f"{result['compile_s']:10.1f} {result['steps_per_s']:9.0f}", flush=True)
        if cfg.episodes and cfg.policies:
            env = envs.make(many, cfg.episodes)
            for policy in cfg.policies:
                rates, returns = baseline(env, jax.random.key(0), policy)
                row = dict(row_header(f"shadowhand_{policy}_success"),
                           config=dict(family=family, tasks=many, episodes_per_task=cfg.episodes,
                                       policy=policy),
                           success=dict(zip(many, rates.tolist(), strict=True)),
                           mean_success=float(rates.mean()),
                           mean_return=float(returns.mean()))
                append_row(cfg.out, row)
                print(f"{family}: {policy}-policy success {rates.mean():.3f}, return "
                      f"{returns.mean():.1f} ({cfg.episodes} episodes x {len(many)} objects)",
                      flush=True)


if __name__ == "__main__":
    main(tyro.cli(Config))
