"""How long a preset's initial state takes to build: flax's QR-based orthogonal init against
brc_mjx's QR-free one (``brc_mjx.core.orthogonal``), each preset in a fresh process, side by side.

    python -m benchmarks.init_state --presets dmc-hard-64m dmc-hard-256m humanoidbench-h1-64m

Run it alone. Each row: the preset, the init, the seconds of ``train.init_sharded_state``
(compiling and running it: parameters, replay of ``--capacity`` transitions per task, env reset).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import tyro

from benchmarks.common import RESULTS_DIR, row_header

INITS = ("flax-qr", "brc-mjx")


@dataclasses.dataclass(frozen=True)
class Args:
    presets: tuple[str, ...] = ("dmc-hard-64m", "dmc-hard-256m", "humanoidbench-h1-64m")
    capacity: int = 5000
    """Replay transitions per task (small: the replay's zeros are not what is measured)."""
    out: str = str(RESULTS_DIR / "init_state.jsonl")
    one: str = ""
    """Internal: ``PRESET:INIT`` measures one in this process and prints its row."""


def measure(preset: str, init: str, capacity: int) -> dict:
    """Build ``preset``'s initial state once with ``init`` and time it."""
    import flax.linen as nn
    import jax

    import envs
    from brc_mjx import train
    from brc_mjx.core import blocks
    from configs.train import TRAIN_PRESETS

    if init == "flax-qr":
        blocks.orthogonal = lambda gain: nn.initializers.orthogonal(scale=gain)
    cfg = TRAIN_PRESETS[preset][1]
    cfg = dataclasses.replace(cfg, replay=dataclasses.replace(cfg.replay,
                                                              capacity_per_task=capacity))
    env = envs.make(cfg.env.tasks, cfg.env.envs_per_task, backend=cfg.env.backend)
    program = train.build(cfg, env)
    start = time.perf_counter()
    jax.block_until_ready(train.init_sharded_state(cfg, env, program))
    seconds = time.perf_counter() - start
    return {**row_header("init_state"), "preset": preset, "init": init,
            "capacity_per_task": capacity, "seconds": round(seconds, 1)}


def main(args: Args) -> None:
    if args.one:
        preset, init = args.one.split(":")
        print(json.dumps(measure(preset, init, args.capacity)))
        return
    from configs.train import TRAIN_PRESETS

    unknown = [p for p in args.presets if p not in TRAIN_PRESETS]
    if unknown:
        raise SystemExit(f"unknown preset(s) {unknown}")
    for preset in args.presets:
        for init in INITS:
            out = subprocess.run([sys.executable, "-m", "benchmarks.init_state", "--one",
                                  f"{preset}:{init}", "--capacity", str(args.capacity)],
                                 capture_output=True, text=True, check=True).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(f"{preset:24s} {init:8s} {row['seconds']:7.1f} s", flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main(tyro.cli(Args))
