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
