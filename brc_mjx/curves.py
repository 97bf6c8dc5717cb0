"""A run's eval curves from its run directory: reading ``metrics.jsonl``, mean curves over
seeds, and the curves plot. Training draws ``curves.png`` with it after every evaluation;
``brc-analyze`` (``brc_mjx.analysis.report``) builds its reports on it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import numpy as np


@dataclasses.dataclass
class Run:
    """What a run directory holds, as read from disk."""

    path: str
    config: dict
    records: list[dict]
    task_names: list[str]  # the env's task order (task ids), from meta.json
    label: str = ""

    @property
    def tasks(self) -> list[str]:
        """Tasks with eval records, sorted."""
        names = {k.split("/", 1)[1].rsplit("/", 1)[0] for r in self.records for k in r
                 if k.startswith("eval/") and k.endswith("/return")}
        return sorted(names)


def load_run(path: str, until: int | None = None) -> Run:
    """Read a run directory (records up to ``until`` env steps); one-line ``ValueError`` if it
    is not one."""
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        with open(os.path.join(path, "metrics.jsonl")) as f:
            records = [json.loads(line) for line in f if line.strip()]
        with open(os.path.join(path, "meta.json")) as f:
            task_names = json.load(f).get("task_names", [])
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable run directory: {err}") from None
    if until is not None:
        records = [r for r in records if r.get("env_steps", 0) <= until]
    return Run(path=path, config=with_defaults(config), records=records, task_names=task_names)


def with_defaults(config: dict) -> dict:
    """``config`` with the fields it predates filled with their defaults (an older run used
    what is now the default), so that runs are compared on what really differs."""
    from brc_mjx.config import TrainConfig, to_json

    def merge(default, stored):
        if not isinstance(default, dict) or not isinstance(stored, dict):
            return stored
        return {**default, **{k: merge(default.get(k), v) for k, v in stored.items()}}

    return merge(to_json(TrainConfig()), config)


def series(run: Run, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(env_steps, values)`` of every record holding ``key``."""
    pts = [(r["env_steps"], r[key]) for r in run.records if key in r]
    if not pts:
        return np.zeros(0), np.zeros(0)
    x, y = zip(*pts, strict=True)
    return np.asarray(x), np.asarray(y, dtype=float)


def group_by_label(runs: Sequence[Run]) -> dict[str, list[Run]]:
    """Runs sharing a label (labelled with ``ignore=("seed",)``: seeds of one setting)."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    return groups


def mean_curve(runs: Sequence[Run], key: str):
    """``(steps, mean, low, high)`` of ``key`` over runs, at the steps all of them logged."""
    curves = [dict(zip(*series(run, key), strict=True)) for run in runs]
    steps = sorted(set.intersection(*(set(c) for c in curves))) if curves else []
    values = np.asarray([[c[x] for x in steps] for c in curves], dtype=float).reshape(
        len(curves), len(steps))
    return (np.asarray(steps), values.mean(axis=0), values.min(axis=0), values.max(axis=0))


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def steps_axis(ax) -> None:  # also used by benchmarks.shadowhand
    """Env steps in thousands (``100k``): full numbers overlap on narrow panels."""
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k"))


def plot_curves(runs: Sequence[Run], path: str) -> None:
    plt = pyplot()
    groups = group_by_label(runs)
    tasks = sorted({t for run in runs for t in run.tasks})
    cols = min(4, len(tasks) + 1)
    rows = -(-(len(tasks) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    # Tasks scored by success (MetaWorld, ShadowHand) are drawn as success rates.
    metric = {t: "success" if any(f"eval/{t}/success" in r for run in runs for r in run.records)
              else "return" for t in tasks}
    mean = "success" if tasks and all(m == "success" for m in metric.values()) else "return"
    panels = ([(f"eval/mean_{mean}", "mean over tasks", mean)]
              + [(f"eval/{t}/{metric[t]}", t, metric[t]) for t in tasks])
    for ax, (key, title, ylabel) in zip(axes.flat, panels, strict=False):
        for label, members in groups.items():
            x, mean, low, high = mean_curve(members, key)
            name = label if len(members) == 1 else f"{label} ({len(members)} seeds)"
            (line,) = ax.plot(x, mean, marker=".", label=name)
            if len(members) > 1:
                ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
        ax.set(title=title, xlabel="env steps per task", ylabel=f"eval {ylabel}")
        steps_axis(ax)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    # One legend under the panels: inside a panel it hides the curves.
    handles, labels = axes.flat[0].get_legend_handles_labels()
    ncol = min(2, len(labels))
    legend_h = 0.25 * -(-len(labels) // ncol) / (3 * rows)
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, legend_h + 0.02, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
