"""Per-sample parity with the official BRC code on single-task DMC: eval curves as JSON rows.

    python -m benchmarks.parity run --tasks dmc/walker-walk --seeds 0 1 2 --backends mjx envpool
    python -m benchmarks.parity official LOG --task dmc/walker-walk --seed 0   # parse its print
    python -m benchmarks.parity plot                                           # docs/plots/
    python -m benchmarks.parity cross --tasks dmc/cheetah-run --source envpool  # swap envs

``run`` trains brc_mjx at the official code's single-task config (``official_config``: 1 env, 2
updates per env step, batch 256, critic width 256, depth 2, 101 atoms, tau 0.005, 1,000 uniform
warm-up steps, 10 deterministic eval episodes every 2k steps) one (task, seed, backend) at a
time, and appends one row per run with its eval curve to ``benchmarks/results/parity.jsonl``.
``official`` turns the log of the official ``train.py`` (run as docs/parity.md says, with one
added print of its eval return) into rows of the same form, and ``plot`` draws mean +- sd per
task and implementation. ``cross`` evaluates the final policies of finished runs on each
backend (the 10 deterministic episodes of the eval, before any update), to tell a policy that
learned less from an environment that pays differently. Rows carry the commit, device and
versions (``common.row_header``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import tyro

from benchmarks.common import RESULTS_DIR, append_row, row_header

RESULTS = RESULTS_DIR / "parity.jsonl"
PLOTS = Path(__file__).parent.parent / "docs" / "plots"


def official_config(task: str, seed: int, backend: str, steps: int, run_dir: str,
                    resume: bool = False, start_if_no_checkpoint: bool = False,
                    mjx_solver: str = "port", **learner_overrides):
    """brc_mjx's ``TrainConfig`` at the official code's single-task DMC settings (``resume``:
    continue ``run_dir`` from its last checkpoint, written every 2k steps)."""
    from brc_mjx.config import EnvConfig, LearnerConfig, ReplayConfig, TrainConfig
    from configs import model_preset

    learner = dataclasses.replace(
        LearnerConfig(network=model_preset("brc-250k", actor_width=256), tau=0.005),
        **learner_overrides)
    return TrainConfig(
        env=EnvConfig(tasks=(task,), backend=backend, envs_per_task=1, eval_episodes=10,
                      mjx_solver=mjx_solver),
        learner=learner,
        replay=ReplayConfig(capacity_per_task=max(steps, 1)),
        batch_size=256, updates_per_step=2, total_env_steps=steps, warmup_env_steps=1_000,
        steps_per_epoch=1_000, eval_every=2_000, checkpoint_every=2_000, video=False,
        seed=seed, run_dir=run_dir, resume=resume, start_if_no_checkpoint=start_if_no_checkpoint)


def eval_curve(run_dir: str | Path) -> list[tuple[int, float]]:
    """``[(env steps per task, eval mean return), ...]`` from a run's ``metrics.jsonl``."""
    curve = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "eval/mean_return" in record:
            curve.append((int(record["env_steps"]), float(record["eval/mean_return"])))
    return curve


def temperature_curve(run_dir: str | Path) -> list[tuple[int, float]]:
    """``[(env steps per task, alpha), ...]`` from a run's ``metrics.jsonl``."""
    curve = []
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        alpha = record.get("train/alpha")
        if alpha is not None:
            curve.append((int(record["env_steps"]), float(alpha)))
    return curve


#: the one line added to the official ``train.py`` after its evaluation (docs/parity.md)
OFFICIAL_LINE = re.compile(
    r"^PARITY step (\d+) return ([-+0-9.eE]+)(?: temperature ([-+0-9.eE]+))?")


def parse_official(text: str) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """The eval curve (and temperature, where printed) of an official ``train.py`` log."""
    curve, temps = [], []
    for line in text.splitlines():
        m = OFFICIAL_LINE.match(line.strip())
        if m:
            curve.append((int(m.group(1)), float(m.group(2))))
            if m.group(3) is not None:
                temps.append((int(m.group(1)), float(m.group(3))))
    return curve, temps


@dataclasses.dataclass(frozen=True)
class Run:
    """Train brc_mjx at the official single-task config, one run per (task, seed, backend)."""

    tasks: tuple[str, ...] = ("dmc/walker-walk", "dmc/hopper-stand", "dmc/quadruped-walk")
    seeds: tuple[int, ...] = (0, 1, 2)
    backends: tuple[str, ...] = ("mjx", "envpool")
    steps: int = 20_000
    """Env steps per run."""
    variant: str = ""
    """A label for rows of a changed setting (with --set); empty: our defaults."""
    set: tuple[str, ...] = ()
    """Learner overrides ``field=value`` (e.g. ``init_alpha=0.1``) for a variant."""
    mjx_solver: str = "port"
    """The MJX backend's physics (``--env.mjx-solver``): port, or eulerdamp / mujoco (a
    variant)."""
    runs_dir: Path = Path("runs/parity")
    out: Path = RESULTS


@dataclasses.dataclass(frozen=True)
class Official:
    """Rows from an official ``train.py`` log (its added ``PARITY step N return R`` lines)."""

    log: tyro.conf.Positional[Path]
    """The official train.py's output."""
    task: str
    seed: int
    out: Path = RESULTS


@dataclasses.dataclass(frozen=True)
class Plot:
    """Mean +- sd eval curves per task and implementation, one PNG per task."""

    out: Path = RESULTS
    plots: Path = PLOTS


@dataclasses.dataclass(frozen=True)
class Cross:
    """Evaluate the final policy of each finished ``run`` (``<task>-<source>-s<seed>[-<variant>]``)
    on each backend."""

    tasks: tuple[str, ...] = ("dmc/cheetah-run",)
    seeds: tuple[int, ...] = (0, 1, 2)
    source: str = "mjx"
    """The backend the runs trained on."""
    variant: str = ""
    """The runs' variant label (``run --variant``), if any."""
    backends: tuple[str, ...] = ("mjx", "envpool")
    runs_dir: Path = Path("runs/parity")
    out: Path = RESULTS_DIR / "parity_cross.jsonl"


def cross(cfg: Cross) -> list[dict]:
    import shutil

    from brc_mjx.run import run as train

    suffix = f"-{cfg.variant}" if cfg.variant else ""
    sources = {(task, seed): cfg.runs_dir / f"{task.replace('/', '_')}-{cfg.source}-s{seed}{suffix}"
               for task in cfg.tasks for seed in cfg.seeds}
    source_name = cfg.source + suffix
    missing = [str(d) for d in sources.values() if not (d / "metrics.jsonl").exists()]
    if missing:  # before anything is built
        raise SystemExit(f"benchmarks.parity cross: no finished run at {missing[0]}")
    rows = []
    for (task, seed), source in sources.items():
        trained = eval_curve(source)[-1]
        for backend in cfg.backends:
            scratch = cfg.runs_dir / "cross" / f"{source.name}-on-{backend}"
            shutil.rmtree(scratch, ignore_errors=True)
            # the evaluation before the first update is the loaded policy's (10 deterministic
            # episodes); the loop needs one epoch past the warm-up (here one env step, two
            # updates), whose eval is not kept
            train(dataclasses.replace(
                official_config(task, seed, backend, 2, str(scratch)), init_from=str(source),
                eval_at_start=True, warmup_env_steps=1, steps_per_epoch=1, eval_every=2,
                checkpoint_every=2))
            returns = [r for step, r in eval_curve(scratch) if step == 0]
            row = dict(row_header("parity_cross"), config=dict(
                task=task, seed=seed, source=source_name, source_step=trained[0], on=backend),
                trained_eval=trained[1], evals=returns)
            append_row(cfg.out, row)
            rows.append(row)
            print(f"parity cross {task} {source_name} s{seed} (eval {trained[1]:.0f} at "
                  f"{trained[0] // 1000}k) on {backend}: "
                  + " ".join(f"{r:.0f}" for r in returns), flush=True)
    return rows


def _overrides(pairs: tuple[str, ...]) -> dict:
    from brc_mjx.config import LearnerConfig

    fields = {f.name: f.type for f in dataclasses.fields(LearnerConfig)}
    result = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in fields or not value:
            raise SystemExit(f"benchmarks.parity: --set {pair!r}: expected FIELD=VALUE with FIELD "
                             f"one of the learner's fields ({', '.join(fields)})")
        default = getattr(LearnerConfig(), name)
        result[name] = (value.lower() in ("1", "true", "yes") if isinstance(default, bool)
                        else type(default)(value))
    return result


def run(cfg: Run) -> None:
    import envs
    from brc_mjx.run import run as train

    overrides = _overrides(cfg.set)
    for task in cfg.tasks:
        envs.get_task(task)  # unknown names fail before anything trains
    for task in cfg.tasks:
        for backend in cfg.backends:
            for seed in cfg.seeds:
                name = f"{task.replace('/', '_')}-{backend}-s{seed}" + (
                    f"-{cfg.variant}" if cfg.variant else "")
                run_dir = cfg.runs_dir / name
                header = row_header("parity")  # the commit and versions the run starts with
                done = (run_dir / "metrics.jsonl").exists() and any(
                    step >= cfg.steps for step, _ in eval_curve(run_dir))
                if done:  # a finished run of an earlier call: its row is written again, with
                    # the commit its run directory was last started at (not today's)
                    print(f"parity: {run_dir} is complete, not trained again", flush=True)
                    meta = json.loads((run_dir / "meta.json").read_text())
                    header = dict(header, git_commit=meta["git_commit"],
                                  versions=meta["versions"], time=meta["time"])
                else:
                    train(official_config(task, seed, backend, cfg.steps, str(run_dir),
                                          resume=run_dir.exists(), start_if_no_checkpoint=True,
                                          mjx_solver=cfg.mjx_solver, **overrides))
                curve = eval_curve(run_dir)
                impl = f"brc_mjx-{backend}" + (f"-{cfg.variant}" if cfg.variant else "")
                append_row(cfg.out, dict(header, impl=impl, config=dict(
                    task=task, seed=seed, backend=backend, steps=cfg.steps, set=list(cfg.set),
                    mjx_solver=cfg.mjx_solver),
                    curve=curve, temperature=temperature_curve(run_dir)))
                print(f"parity {impl} {task} seed {seed}: "
                      + ", ".join(f"{s // 1000}k {r:.0f}" for s, r in curve), flush=True)


def official(cfg: Official) -> None:
    curve, temps = parse_official(cfg.log.read_text())
    if not curve:
        raise SystemExit(f"benchmarks.parity: no 'PARITY step N return R' line in {cfg.log}")
    append_row(cfg.out, dict(row_header("parity"), impl="official", config=dict(
        task=cfg.task, seed=cfg.seed, steps=curve[-1][0], log=str(cfg.log)), curve=curve,
        temperature=temps))
    print(f"parity official {cfg.task} seed {cfg.seed}: {len(curve)} evals, last {curve[-1]}")


def load_rows(path: Path) -> list[dict]:
    """Newest row per (impl, task, seed)."""
    newest = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            newest[row["impl"], row["config"]["task"], row["config"]["seed"]] = row
    return list(newest.values())


def summary(rows: list[dict]) -> dict:
    """``{task: {impl: {step: (mean, sd, n)}}}`` over seeds, at the steps every seed has."""
    import numpy as np

    grouped: dict = {}
    for row in rows:
        grouped.setdefault(row["config"]["task"], {}).setdefault(row["impl"], []).append(
            dict(row["curve"]))
    out: dict = {}
    for task, impls in grouped.items():
        for impl, curves in impls.items():
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            out.setdefault(task, {})[impl] = {
                s: (float(np.mean([c[s] for c in curves])),
                    float(np.std([c[s] for c in curves], ddof=1)) if len(curves) > 1 else 0.0,
                    len(curves)) for s in steps}
    return out


def markdown(summ: dict) -> str:
    """One table per task: eval return mean +- sd (n seeds) per implementation and step."""
    out = []
    for task, impls in sorted(summ.items()):
        steps = sorted({s for points in impls.values() for s in points})
        out.append(f"**{task}**\n")
        out.append("| implementation | " + " | ".join(f"{s // 1000}k" for s in steps) + " |")
        out.append("|---|" + "---:|" * len(steps))
        for impl, points in sorted(impls.items()):
            cells = [f"{points[s][0]:.0f} +- {points[s][1]:.0f} ({points[s][2]})"
                     if s in points else "" for s in steps]
            out.append(f"| {impl} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def plot(cfg: Plot) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg.plots.mkdir(parents=True, exist_ok=True)
    paths = []
    summ = summary(load_rows(cfg.out))
    print(markdown(summ))
    for task, impls in sorted(summ.items()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for impl, points in sorted(impls.items()):
            steps = sorted(points)
            mean = [points[s][0] for s in steps]
            sd = [points[s][1] for s in steps]
            n = points[steps[0]][2] if steps else 0
            ax.plot(steps, mean, marker="o", label=f"{impl} (n={n})")
            ax.fill_between(steps, [m - d for m, d in zip(mean, sd, strict=True)],
                            [m + d for m, d in zip(mean, sd, strict=True)], alpha=0.2)
        ax.set(xlabel="env steps", ylabel="eval return (10 episodes, deterministic)",
               title=f"{task}: mean +- sd over seeds")
        ax.legend()
        fig.tight_layout()
        path = cfg.plots / f"parity_{task.replace('/', '_')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
        print(f"wrote {path}")
    return paths


#: the subcommands of ``python -m benchmarks.parity``
COMMANDS = {"run": Run, "official": Official, "plot": Plot, "cross": Cross}


def main(argv: list[str] | None = None) -> None:
    # XLA:CPU logs a false machine-type error per cached program (as brc-train, brc_mjx.cli)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cmd = tyro.extras.subcommand_cli_from_dict(COMMANDS, args=argv)
    {Run: run, Official: official, Plot: plot, Cross: cross}[type(cmd)](cmd)


if __name__ == "__main__":
    main()
