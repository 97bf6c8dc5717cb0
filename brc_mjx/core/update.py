"""The gradient-update helper every agent's ``sgd_step`` uses, and the padding mask of tasks'
action layouts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import optax


def leading_mask(counts: Sequence[int], size: int) -> jax.Array:
    """``(len(counts), size)`` float32, row ``t`` is 1 on its first ``counts[t]`` entries: a
    task's real action dims (continuous) or its actions (discrete), 0 on the padding."""
    counts = jnp.asarray(counts)
    return (jnp.arange(size)[None, :] < counts[:, None]).astype(jnp.float32)


def apply_update(
    loss_fn: Callable,
    params,
    opt_state,
    optimizer: optax.GradientTransformation,
    *args,
    axis_name: str | None = None,
    **kwargs,
):
    """One optimiser step on ``loss_fn(params, *args, **kwargs) -> (loss, metrics)``.

    Args:
      loss_fn: differentiated in its first argument.
      params, opt_state, optimizer: what is updated and how.
      axis_name: if set (inside ``shard_map``/``pmap``), gradients and loss are averaged over it.

    Returns:
      ``(params, opt_state, metrics)`` with ``grad_norm`` added to the metrics.
    """
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, *args, **kwargs)
    if axis_name is not None:
        grads = jax.lax.pmean(grads, axis_name)
        metrics = jax.lax.pmean(metrics, axis_name)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {**metrics, "grad_norm": optax.global_norm(grads)}
