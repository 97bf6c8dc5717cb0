"""The whole CPU benchmark suite in one command, then the tables and plots.

    brc-bench                 # or: python -m benchmarks.suite
    brc-bench --skip peer     # leave out a part

Runs, each with its own defaults: ``env_only``, ``loop`` (collection + end-to-end), ``learning``,
``peer`` (Brax SAC throughput + time-to-score), then ``report``. Each part appends its JSON rows to
``benchmarks/results/``; the wall time of every part is printed at the end.
"""

from __future__ import annotations

import dataclasses
import time

import tyro

PARTS = ("env_only", "loop", "learning", "peer")


@dataclasses.dataclass(frozen=True)
class Config:
    """Run every benchmark with its defaults, then refresh benchmarks/README.md."""

    skip: tuple[str, ...] = ()
    """Parts to leave out (env_only, loop, learning, peer)."""


def main(cfg: Config) -> None:
    from benchmarks import env_only, learning, loop, peer, report

    unknown = sorted(set(cfg.skip) - set(PARTS))
    if unknown:
        raise SystemExit(f"brc-bench: unknown part(s) {unknown}; parts are {list(PARTS)}")
    modules = {"env_only": env_only, "loop": loop, "learning": learning, "peer": peer}
    seconds = {}
    for name in PARTS:
        if name in cfg.skip:
            continue
        print(f"== {name}", flush=True)
        start = time.perf_counter()
        modules[name].main(modules[name].Config())
        seconds[name] = time.perf_counter() - start
    report.main()
    total = sum(seconds.values())
    print("suite: " + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
          + f"; total {total / 60:.1f} min")


def cli() -> None:
    """``brc-bench`` entry point."""
    main(tyro.cli(Config))


if __name__ == "__main__":
    cli()
