"""``brc-analyze RUN_DIR [RUN_DIR ...]``: curves, diagnostics and task-embedding PCA of runs.

Reads only what a run leaves on disk (``config.json``, ``metrics.jsonl``, the latest checkpoint)
and writes into the first run directory (or ``--out``):

- ``curves.png``: mean and per-task eval return against env steps per task, runs overlaid and
  labelled by the config fields in which they differ;
- ``diagnostics.png`` (if the runs logged ``diag/...``): gradient-conflict rate, mean pairwise
  cosine and the variance of per-task gradient norms over training;
- ``embeddings.png``: 2-D PCA of each run's learned task embeddings (L2-normalised rows of the
  critic's table), points labelled by task and coloured by domain;
- ``analysis.md``: the numbers behind the figures (final / best returns, embedding distances
  within and between domains).

Runs that differ only in their ``seed`` form one group: a curve is the mean over its seeds with
the min-max band shaded, and ``analysis.md`` has a table per group (final return mean and
standard deviation over seeds, and with ``--threshold`` the env steps each seed took to reach it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np
import tyro

from brc_mjx.agents.brc import leaf
from brc_mjx.config import diff_fields
from brc_mjx.core.blocks import EMBEDDING_KEY
from brc_mjx.curves import (  # noqa: F401 -- brc-analyze's reading and plotting, re-exported
    Run,
    group_by_label,
    load_run,
    mean_curve,
    plot_curves,
    pyplot,
    series,
    steps_axis,
    with_defaults,
)

EMBEDDING_PATH = leaf("critic_params", "params", EMBEDDING_KEY)


@dataclasses.dataclass(frozen=True)
class AnalyzeArgs:
    """Plot and summarise one or more brc_mjx runs (curves, diagnostics, task embeddings)."""

    run_dirs: tyro.conf.Positional[tuple[str, ...]]
    """Run directories (each with config.json and metrics.jsonl)."""
    out: str = ""
    """Output directory (default: the first run directory)."""
    threshold: float | None = None
    """Also report the env steps per task at which each run's eval mean return first reached
    this value."""
    until: int | None = None
    """Only read records up to this many env steps per task (compare runs of different lengths
    over the same span)."""
    ignore: tuple[str, ...] = ()
    """Config fields (dotted, e.g. total_env_steps) left out of the labels, like seed: runs
    differing only in them are grouped (e.g. with --until, runs of different lengths)."""


#: fields that say where and how a run ran, not what it learned: never part of a label (a
#: population's member runs on a one-device mesh; it groups with single runs of its setting)
LAYOUT_FIELDS = ("run_dir", "resume", "start_if_no_checkpoint", "mesh.", "population.",
                 "compile_cache", "compile_cache_dir", "distributed", "profile", "wandb.")


def label_runs(runs: Sequence[Run], ignore: Sequence[str] = ()) -> None:
    """Label each run by the config fields in which the runs differ (``LAYOUT_FIELDS`` and
    ``ignore`` excluded)."""
    def shown(name: str) -> bool:
        return name not in ignore and not any(
            name == f or (f.endswith(".") and name.startswith(f)) for f in LAYOUT_FIELDS)

    fields: list[str] = []
    for run in runs[1:]:
        for name, _, _ in diff_fields(runs[0].config, run.config):
            if name not in fields and shown(name):
                fields.append(name)

    def value(config, name):
        for part in name.split("."):
            config = config.get(part) if isinstance(config, dict) else None
        return config

    for run in runs:
        parts = [f"{name.rsplit('.', 1)[-1]}={value(run.config, name)}" for name in fields]
        # Runs that differ only in ignored fields (seeds) share one label, so they group.
        fallback = "same config" if len(runs) > 1 else os.path.basename(os.path.normpath(run.path))
        run.label = ", ".join(parts) or fallback


def steps_to(run: Run, key: str, threshold: float) -> int | None:
    """The first logged env step at which ``key`` reached ``threshold`` (None: never)."""
    x, y = series(run, key)
    hits = np.nonzero(y >= threshold)[0]
    return int(x[hits[0]]) if len(hits) else None


def domain(task: str) -> str:
    """The domain of a task name: ``dmc/cartpole-balance`` -> ``cartpole``."""
    return task.split("/", 1)[-1].split("-", 1)[0]


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Coordinates of the rows of ``x`` on its first two principal components ``(n, 2)``."""
    centered = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    coords = centered @ vt[:2].T
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))  # fewer than 2 components


def domain_distances(embeddings: np.ndarray, domains: Sequence[str]) -> dict[str, float]:
    """Mean cosine distance (1 - cos) between task embeddings of the same domain and of
    different domains (NaN where there is no such pair)."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    dist = 1.0 - unit @ unit.T
    same, other = [], []
    for i in range(len(domains)):
        for j in range(i + 1, len(domains)):
            (same if domains[i] == domains[j] else other).append(dist[i, j])
    return {"within_domain": float(np.mean(same)) if same else float("nan"),
            "between_domains": float(np.mean(other)) if other else float("nan")}


def task_embeddings(run: Run) -> np.ndarray | None:
    """The latest checkpoint's task-embedding table ``(num_tasks, dim)``, or None."""
    from brc_mjx.checkpoint import read_leaves

    directory = os.path.join(run.path, "checkpoints")
    if not os.path.isdir(directory):
        return None
    try:
        _, leaves = read_leaves(directory)
    except FileNotFoundError:
        return None
    return leaves.get(EMBEDDING_PATH)


DIAG_KEYS = (("diag/conflict_rate", "gradient-conflict rate"),
             ("diag/mean_cosine", "mean pairwise gradient cosine"),
             ("diag/grad_norm_var", "variance of per-task grad norms"))


def plot_diagnostics(runs: Sequence[Run], path: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(DIAG_KEYS), figsize=(4.5 * len(DIAG_KEYS), 3.2))
    for ax, (key, title) in zip(axes, DIAG_KEYS, strict=True):
        for run in runs:
            ax.plot(*series(run, key), marker=".", label=run.label)
        ax.set(title=title, xlabel="env steps per task")
        steps_axis(ax)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_embeddings(tables: Sequence[tuple[Run, np.ndarray, list[str]]], path: str) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 4.5), squeeze=False)
    for ax, (run, table, tasks) in zip(axes.flat, tables, strict=True):
        coords = pca_2d(table / np.linalg.norm(table, axis=1, keepdims=True))
        domains = [domain(t) for t in tasks]
        colors = {d: plt.cm.tab10(i % 10) for i, d in enumerate(dict.fromkeys(domains))}
        for (x, y), task, d in zip(coords, tasks, domains, strict=True):
            ax.scatter(x, y, color=colors[d])
            ax.annotate(task.split("/", 1)[-1], (x, y), fontsize=7)
        name = os.path.basename(os.path.normpath(run.path))
        title = name if run.label in (name, "same config") else f"{name}, {run.label}"
        ax.set(title=f"task embeddings (PCA): {title}", xlabel="PC 1", ylabel="PC 2")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def group_table(runs: Sequence[Run], threshold: float | None) -> list[str]:
    """Markdown rows summarising each group of seeds (and the steps to ``threshold``)."""
    head = "| setting | seeds | final mean eval (mean +- sd) | best mean eval (mean) |"
    rule = "|---|---:|---:|---:|"
    if threshold is not None:
        head += f" env steps to {threshold:g} (per seed) | median |"
        rule += "---|---:|"
    lines = [head, rule]
    for label, members in group_by_label(runs).items():
        finals, bests = [], []
        for run in members:
            _, y = series(run, "eval/mean_return")
            if len(y):
                finals.append(y[-1])
                bests.append(y.max())
        final = f"{np.mean(finals):.1f} +- {np.std(finals):.1f}" if finals else "-"
        best = f"{np.mean(bests):.1f}" if bests else "-"
        row = f"| {label} | {len(members)} | {final} | {best} |"
        if threshold is not None:
            hits = [steps_to(run, "eval/mean_return", threshold) for run in members]
            reached = sorted(h for h in hits if h is not None)
            # A seed that never reached it counts as beyond every logged step in the median.
            ranked = reached + [np.inf] * (len(hits) - len(reached))
            median = np.median(ranked)
            shown = ", ".join("never" if h is None else str(h) for h in hits)
            row += f" {shown} | {'never' if np.isinf(median) else f'{median:g}'} |"
        lines.append(row)
    return lines


def grad_norm_cv(record: dict) -> float | None:
    """Coefficient of variation (sd / mean) of a diagnostics record's per-task critic gradient
    norms: how unequal the tasks' gradient magnitudes are, independent of their overall scale."""
    norms = [v for k, v in record.items() if k.startswith("diag/") and k.endswith("/grad_norm")]
    if len(norms) < 2 or np.mean(norms) == 0:
        return None
    return float(np.std(norms) / np.mean(norms))


def diagnostics_table(runs: Sequence[Run]) -> list[str]:
    """Per setting: each diagnostic averaged over a run's diagnostics points, then mean +- sd
    over the setting's seeds."""
    lines = ["| setting | seeds | conflict rate | mean cosine | grad-norm variance | "
             "grad-norm CV (sd / mean) |", "|---|---:|---:|---:|---:|---:|"]
    for label, members in group_by_label(runs).items():
        cells = []
        for key in [k for k, _ in DIAG_KEYS] + ["cv"]:
            per_run = []
            for run in members:
                if key == "cv":
                    ys = [grad_norm_cv(r) for r in run.records if "diag/conflict_rate" in r]
                    ys = [y for y in ys if y is not None]
                else:
                    ys = list(series(run, key)[1])
                if ys:
                    per_run.append(np.mean(ys))
            cells.append(f"{np.mean(per_run):.4g} +- {np.std(per_run):.2g}" if per_run else "-")
        lines.append(f"| {label} | {len(members)} | " + " | ".join(cells) + " |")
    return lines


def task_table(runs: Sequence[Run]) -> list[str]:
    """Per setting and task, the final eval return (mean +- sd over the setting's seeds): e.g.
    a multi-task setting next to single-task settings on the same tasks."""
    tasks = sorted({t for r in runs for t in r.tasks})
    lines = ["| setting | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    for label, members in group_by_label(runs).items():
        cells = []
        for t in tasks:
            finals = [y[-1] for y in (series(r, f"eval/{t}/return")[1] for r in members)
                      if len(y)]
            cells.append(f"{np.mean(finals):.1f} +- {np.std(finals):.1f}" if finals else "")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def analyze(run_dirs: Sequence[str], out: str = "", threshold: float | None = None,
            until: int | None = None, ignore: Sequence[str] = ()) -> list[str]:
    """Write the figures and ``analysis.md`` for ``run_dirs`` (a population's directory stands
    for its members' runs); returns the written paths."""
    from brc_mjx.rundir import with_members

    out = out or run_dirs[0]
    run_dirs = with_members(run_dirs)
    runs = [load_run(p, until) for p in run_dirs]
    label_runs(runs, ignore=("seed", *ignore))
    os.makedirs(out, exist_ok=True)
    written = []
    lines = ["# brc-analyze", "", "| run | label | env steps | final mean eval | best mean eval |",
             "|---|---|---:|---:|---:|"]
    for run in runs:
        x, y = series(run, "eval/mean_return")
        final = f"{y[-1]:.1f}" if len(y) else "-"
        best = f"{y.max():.1f}" if len(y) else "-"
        steps = run.records[-1]["env_steps"] if run.records else 0
        lines.append(f"| {run.path} | {run.label} | {steps} | {final} | {best} |")
    lines += ["", "Final eval return per task:", "", "| run | " + " | ".join(
        sorted({t for r in runs for t in r.tasks})) + " |"]
    tasks = sorted({t for r in runs for t in r.tasks})
    lines.append("|---|" + "---:|" * len(tasks))
    for run in runs:
        cells = []
        for t in tasks:
            _, y = series(run, f"eval/{t}/return")
            cells.append(f"{y[-1]:.1f}" if len(y) else "-")
        lines.append(f"| {os.path.basename(os.path.normpath(run.path))}: {run.label} | "
                     + " | ".join(cells) + " |")
    lines += ["", "By setting (runs that differ only in seed grouped):", "",
              *group_table(runs, threshold), "", "Final eval return per task by setting "
              "(mean +- sd over seeds):", "", *task_table(runs)]

    path = os.path.join(out, "curves.png")
    plot_curves(runs, path)
    written.append(path)
    if any("diag/conflict_rate" in r for run in runs for r in run.records):
        path = os.path.join(out, "diagnostics.png")
        plot_diagnostics(runs, path)
        written.append(path)
        lines += ["", "Last diagnostics:", "", "| run | conflict rate | mean cosine | "
                  "grad-norm variance |", "|---|---:|---:|---:|"]
        for run in runs:
            cells = []
            for key, _ in DIAG_KEYS:
                _, y = series(run, key)
                cells.append(f"{y[-1]:.4g}" if len(y) else "-")
            lines.append(f"| {run.label} | " + " | ".join(cells) + " |")
        lines += ["", "Diagnostics by setting (each run's mean over its diagnostics points; "
                  "mean +- sd over seeds):", "", *diagnostics_table(runs)]

    tables = []
    for run in runs:
        table = task_embeddings(run)
        names = run.task_names
        if table is not None and len(names) == len(table):
            tables.append((run, np.asarray(table, np.float64), list(names)))
    if tables:
        path = os.path.join(out, "embeddings.png")
        plot_embeddings(tables, path)
        written.append(path)
        lines += ["", "Task-embedding cosine distances (1 - cos), mean over task pairs:", "",
                  "| run | within a domain | between domains |", "|---|---:|---:|"]
        for run, table, names in tables:
            d = domain_distances(table, [domain(t) for t in names])
            lines.append(f"| {os.path.basename(os.path.normpath(run.path))}: {run.label} | "
                         f"{d['within_domain']:.3f} | "
                         f"{d['between_domains']:.3f} |")
    path = os.path.join(out, "analysis.md")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    """``brc-analyze``: exit 1 with one line if a directory is not a run."""
    import sys

    args = tyro.cli(AnalyzeArgs, args=argv, prog="brc-analyze")
    try:
        written = analyze(args.run_dirs, args.out, args.threshold, args.until, args.ignore)
    except ValueError as err:
        print(f"brc-analyze: error: {err}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0
