"""Model-size presets, named by the per-critic parameter count ``~4 W^2`` (spec section 2).

``brc-64m``, ``brc-256m`` and ``brc-1b`` are the paper-scale critics (W = 4096, 8192, 16384);
the smaller ones are for CPUs and tests. :func:`parameter_counts` reports exact counts from
``jax.eval_shape`` of the real initialiser, so nothing is allocated, even for the 1B preset.
"""

from __future__ import annotations

import dataclasses
import difflib

import jax

from brc_mjx.agents.brc.networks import init_params, make_networks
from brc_mjx.config import NetworkConfig

#: preset name -> critic width W (depth 2, ensemble of 2, actor width 256).
MODEL_PRESETS: dict[str, int] = {
    "brc-tiny": 64,
    "brc-64k": 128,
    "brc-250k": 256,
    "brc-1m": 512,
    "brc-4m": 1024,
    "brc-16m": 2048,
    "brc-64m": 4096,
    "brc-256m": 8192,
    "brc-1b": 16384,
}


def close_matches(name: str, known) -> str:
    """``"; did you mean a, b?"`` for the names in ``known`` close to ``name`` ("" if none)."""
    close = difflib.get_close_matches(name, list(known), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""


def model_preset(name: str, **overrides) -> NetworkConfig:
    """The :class:`NetworkConfig` of preset ``name`` (fields may be overridden by keyword)."""
    if name not in MODEL_PRESETS:
        raise ValueError(f"unknown model preset {name!r}{close_matches(name, MODEL_PRESETS)} "
                         f"(known: {', '.join(MODEL_PRESETS)})")
    return dataclasses.replace(NetworkConfig(critic_width=MODEL_PRESETS[name]), **overrides)


def _count(tree) -> int:
    return sum(int(x.size) for x in jax.tree.leaves(tree))


def parameter_counts(
    cfg: NetworkConfig, obs_dim: int, action_dim: int, num_tasks: int
) -> dict[str, int]:
    """Exact parameter counts of the networks, computed with ``jax.eval_shape`` (no allocation).

    Returns:
      ``critic_member`` (one critic, the spec's P(W)), ``embedding`` (the shared task table),
      ``critic`` (ensemble + embedding), ``actor`` and ``total``.
    """
    nets = make_networks(cfg, action_dim, num_tasks)
    critic_shapes, actor_shapes = jax.eval_shape(
        lambda key: init_params(nets, key, obs_dim, action_dim), jax.random.key(0)
    )
    critic_tree = dict(critic_shapes["params"])
    embedding = critic_tree.pop("task_embedding", None)
    n_embedding = 0 if embedding is None else int(embedding.size)
    n_ensemble = _count(critic_tree)
    n_actor = _count(actor_shapes)
    return {
        "critic_member": n_ensemble // cfg.ensemble_size,
        "embedding": n_embedding,
        "critic": n_ensemble + n_embedding,
        "actor": n_actor,
        "total": n_ensemble + n_embedding + n_actor,
    }
