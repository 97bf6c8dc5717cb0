"""Summarise the JSON rows: refresh the tables in benchmarks/README.md and draw the plots.

    python -m benchmarks.report

For every benchmark the newest row per (device, config) is kept. Tables are written between the
``<!-- report:NAME -->`` / ``<!-- /report:NAME -->`` markers of the README; plots go to
``benchmarks/plots/`` (steps/s vs envs, sgd steps/s vs critic width).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.common import RESULTS_DIR

HERE = Path(__file__).parent
README = HERE / "README.md"
PLOTS = HERE / "plots"


def load(name: str) -> list[dict]:
    """Rows of ``results/<name>.jsonl``, newest per (device, config)."""
    path = RESULTS_DIR / f"{name}.jsonl"
    if not path.exists():
        return []
    newest: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            key = json.dumps([row.get("benchmark"), row["device"], row["config"]], sort_keys=True)
            newest[key] = row
    return list(newest.values())


def _commit(row) -> str:
    return row["git_commit"][:8] + ("+" if row["git_commit"].endswith("-dirty") else "")


def env_only_table(rows) -> str:
    lines = ["| device | backend | task | envs | steps/s | compile s | commit |",
             "|---|---|---|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["device"], r["config"]["backend"],
                                         r["config"]["task"], r["config"]["num_envs"])):
        c = r["config"]
        lines.append(f"| {r['device']} | {c['backend']} | {c['task']} | {c['num_envs']} | "
                     f"{r['steps_per_s']:,.0f} | {r['compile_s']:.1f} | {_commit(r)} |")
    return "\n".join(lines)


def learning_table(rows) -> str:
    lines = ["| device | width | batch | sgd steps/s | GFLOP/step | GFLOP/s | matmul GFLOP/s | "
             "fraction (target >= 0.5 at W >= 1024) | commit |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["device"], r["config"]["batch"],
                                         r["config"]["width"])):
        c = r["config"]
        lines.append(
            f"| {r['device']} | {c['width']} | {c['batch']} | {r['sgd_steps_per_s']:.1f} | "
            f"{r['flops_per_step'] / 1e9:.3f} | {r['achieved_flops_per_s'] / 1e9:.1f} | "
            f"{r['matmul_flops_per_s'] / 1e9:.1f} | {r['fraction_of_matmul']:.2f} | "
            f"{_commit(r)} |")
    return "\n".join(lines)


def gpu_learning_table(rows) -> str:
    """The GPU entry's learning points, each against its roofline prediction (brc_mjx.roofline:
    ``predicted / measured`` time per sgd step, i.e. the MFU where compute binds)."""
    rows = [r for r in rows if r.get("benchmark") == "gpu_learning"]
    if not rows:
        return "No GPU learning row yet (`benchmarks/results/gpu.jsonl`)."
    lines = ["| device | dtype | width | batch | sgd steps/s | GFLOP/step | TFLOP/s | matmul "
             "TFLOP/s | of matmul | predicted us/step (bound) | measured us/step | of roofline "
             "| commit |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["device"], r["config"].get("compute_dtype", "float32"),
                                         r["config"]["width"], r["config"]["batch"])):
        c = r["config"]
        predicted = r.get("predicted_s_per_step")
        lines.append(
            f"| {r['device']} | {c.get('compute_dtype', 'float32')} | {c['width']} | "
            f"{c['batch']} | {r['sgd_steps_per_s']:.1f} | {r['flops_per_step'] / 1e9:.1f} | "
            f"{r['achieved_flops_per_s'] / 1e12:.1f} | {r['matmul_flops_per_s'] / 1e12:.1f} | "
            f"{r['fraction_of_matmul']:.2f} | "
            + (f"{predicted * 1e6:.0f} ({r['predicted_limit']})" if predicted else "-")
            + f" | {1e6 / r['sgd_steps_per_s']:.0f} | {_opt(r.get('fraction_of_roofline'))} | "
            f"{_commit(r)} |")
    return "\n".join(lines)


def loop_table(rows) -> str:
    lines = ["| device | benchmark | tasks | envs/task | env-only steps/s | ours env-steps/s | "
             "updates/s | ratio (collection target >= 0.90) | ceiling | compile s | commit |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted(rows, key=lambda r: (r["device"], r["benchmark"],
                                         r["config"]["envs_per_task"])):
        c = r["config"]
        if r["benchmark"] == "collection":
            ours = r["collection"]
            lines.append(
                f"| {r['device']} | collection | {', '.join(c['tasks'])} | {c['envs_per_task']} |"
                f" {r['env_only']['steps_per_s']:,.0f} | {ours['env_steps_per_s']:,.0f} | - | "
                f"{r['ratio']:.2f} | {_opt(r.get('ceiling'))} | {ours['compile_s']:.1f} | "
                f"{_commit(r)} |")
        else:
            lines.append(
                f"| {r['device']} | end-to-end (W={c['critic_width']}, batch {c['batch_size']}, "
                f"{c['updates_per_step']} upd/step) | {', '.join(c['tasks'])} | "
                f"{c['envs_per_task']} | - | {r['env_steps_per_s']:,.0f} | "
                f"{r['updates_per_s']:.1f} | - | - | {r['compile_s']:.1f} | {_commit(r)} |")
    return "\n".join(lines)


def _opt(x, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def _time_to(side: dict, target: float) -> str:
    t = side.get("time_to_score_s")
    return "not reached" if t is None else f"{t:.1f} s to {target:g}"


def newest_peer_rows(rows) -> list[dict]:
    """The newest row per (device, benchmark, our backend): settings evolve, rows accumulate."""
    newest: dict[tuple, dict] = {}
    for r in sorted(rows, key=lambda r: r["time"]):
        backend = r["config"].get("ours", {}).get("backend", "mjx")
        newest[(r["device"], r["benchmark"], backend)] = r
    return list(newest.values())


def peer_table(rows) -> str:
    lines = ["| device | benchmark | task | ours | Brax SAC | ratio ours/Brax | target | "
             "one update ms (ours / Brax) | update FLOPs ours/Brax | compile s (ours / Brax) | "
             "commit |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted(newest_peer_rows(rows), key=lambda r: (r["device"], r["benchmark"],
                                                           r["time"])):
        ours, brax, task = r["ours"], r["brax"], r["config"]["task"]
        update = r.get("update")
        per_update = flop_ratio = "-"
        if update:
            per_update = (f"{update['ours']['seconds'] * 1e3:.2f} / "
                          f"{update['brax']['seconds'] * 1e3:.2f}")
            flop_ratio = f"{update['flop_ratio']:.2f}"
        if r["benchmark"] == "peer":
            figures = (f"{ours['env_steps_per_s']:,.0f} env-steps/s",
                       f"{brax['env_steps_per_s']:,.0f} env-steps/s", f">= {r['target']}")
        else:
            target, o = r["config"]["target"], r["config"]["ours"]
            upd = r["config"]["brax"].get("grad_updates_per_step", "?")
            settings = (f"{o.get('backend', 'mjx')}, {o['num_envs']} envs, W={o['critic_width']}"
                        f" d={o['critic_depth']}")
            if len(ours.get("seeds", ())) > 1:
                settings += f"; median of {len(ours['seeds'])} seeds"
            figures = (f"{_time_to(ours, target)} ({settings})",
                       f"{_time_to(brax, target)} ({upd} upd/step)", f"<= {r['target']}")
        lines.append(f"| {r['device']} | {r['benchmark']} | {task} | {figures[0]} | "
                     f"{figures[1]} | {_opt(r.get('ratio'))} | {figures[2]} | {per_update} | "
                     f"{flop_ratio} | {ours['compile_s']:.1f} / {brax['compile_s']:.1f} | "
                     f"{_commit(r)} |")
    return "\n".join(lines)


def _loglog(series: dict[tuple, list[tuple]], name: str, fontsize: int, **labels) -> Path:
    """One log-log line per ``series`` entry, saved as ``plots/<name>``.

    Keys are tuples sorted for the legend order whose last item is the line's label; values are
    the ``(x, y)`` points.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, pts in sorted(series.items()):
        ax.plot(*zip(*sorted(pts), strict=True), marker="o", label=key[-1])
    ax.set(xscale="log", yscale="log", **labels)
    ax.legend(fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(PLOTS / name, dpi=120)
    plt.close(fig)
    return PLOTS / name


def plot(env_rows, learning_rows) -> list[Path]:
    out = []
    if env_rows:
        series: dict[tuple, list[tuple]] = {}
        for r in env_rows:
            c = r["config"]
            key = (r["device"], c["backend"], c["task"],
                   f"{c['backend']} {c['task']} ({r['device']})")
            series.setdefault(key, []).append(
                (c["num_envs"], r["steps_per_s"]))
        out.append(_loglog(series, "env_steps_vs_envs.png", 6, xlabel="parallel envs",
                           ylabel="env steps/s", title="env-only throughput"))
    if learning_rows:
        series = {}
        for r in learning_rows:
            c = r["config"]
            key = (r["device"], c["batch"], f"batch {c['batch']} ({r['device']})")
            series.setdefault(key, []).append(
                (c["width"], r["sgd_steps_per_s"]))
        out.append(_loglog(series, "updates_vs_width.png", 7, xlabel="critic width W",
                           ylabel="sgd steps/s", title="BRC gradient steps/s"))
    return out


def replace_section(text: str, name: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- report:{name} -->\n).*?(<!-- /report:{name} -->)", re.S)
    if not pattern.search(text):
        return text + f"\n<!-- report:{name} -->\n{body}\n<!-- /report:{name} -->\n"
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> None:
    env_rows, learning_rows = load("env_only"), load("learning")
    loop_rows, peer_rows = load("loop"), load("peer")
    text = README.read_text()
    text = replace_section(text, "env_only", env_only_table(env_rows))
    text = replace_section(text, "learning", learning_table(learning_rows))
    text = replace_section(text, "loop", loop_table(loop_rows))
    text = replace_section(text, "peer", peer_table(peer_rows))
    text = replace_section(text, "gpu_learning", gpu_learning_table(load("gpu")))
    README.write_text(text)
    for path in plot(env_rows, learning_rows):
        print(f"wrote {path}")
    print(f"refreshed {README}")


if __name__ == "__main__":
    main()
