"""Command-line entry points."""

from __future__ import annotations

import dataclasses

import tyro
from rich.console import Console
from rich.table import Table


@dataclasses.dataclass(frozen=True)
class InfoArgs:
    """Print every model-size preset with its exact parameter counts (nothing is allocated)."""

    obs_dim: int = 223
    """Padded observation size (default: the largest of BRC's DMC dog tasks)."""
    action_dim: int = 38
    """Padded action size."""
    num_tasks: int = 7
    """Number of tasks (1 = single-task, no embedding)."""


def info_main() -> None:
    """``brc-info``: the preset table, from ``jax.eval_shape`` of the real initialiser."""
    from configs import MODEL_PRESETS, model_preset, parameter_counts

    args = tyro.cli(InfoArgs)
    table = Table(title=f"BRC presets (obs {args.obs_dim}, action {args.action_dim}, "
                        f"{args.num_tasks} tasks)")
    for column in ("preset", "critic width", "per critic", "critic ensemble+emb", "actor", "total"):
        table.add_column(column, justify="right")
    for name, width in MODEL_PRESETS.items():
        c = parameter_counts(model_preset(name), args.obs_dim, args.action_dim, args.num_tasks)
        table.add_row(name, str(width), f"{c['critic_member']:,}", f"{c['critic']:,}",
                      f"{c['actor']:,}", f"{c['total']:,}")
    Console().print(table)


def parse_train_args(argv: list[str]):
    """Parse ``brc-train`` arguments: an optional preset name, then field overrides.

    With no preset name (no arguments, or only ``--field value`` overrides) ``cpu-default`` is
    used, so ``brc-train`` alone runs README's main job.
    """
    from configs.train import TRAIN_PRESETS

    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["cpu-default", *argv]
    return tyro.extras.overridable_config_cli(
        TRAIN_PRESETS, prog="brc-train", args=argv,
        description="Train BRC (multi-task SAC, categorical BroNet critics) in one jitted loop.",
    )


def train_main(argv: list[str] | None = None) -> int:
    """``brc-train``: run (or ``--resume``) a training run; exit 1 with one line on failure."""
    import sys

    from brc_mjx.run import NonFiniteError, run

    cfg = parse_train_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run(cfg)
    except (ValueError, NonFiniteError) as err:
        print(f"brc-train: error: {err}", file=sys.stderr)
        return 1
    if "eval/mean_return" in result:
        Console().print(f"final eval mean return {result['eval/mean_return']:.1f}")
    return 0
