"""Checkpoint and resume the whole ``TrainState`` with orbax's ``CheckpointManager``.

The state is saved as its flat list of leaves (plus the tree structure's text for a sanity check),
so any backend's env state pytree can be checkpointed without registering its node types with
orbax. Typed PRNG key arrays are stored as their raw key data. Restoring takes an abstract state
(``jax.eval_shape`` of the initialiser, with shardings) and rebuilds the tree. If the latest
checkpoint cannot be read (partial write, corruption), the previous ones are tried in turn.
"""

from __future__ import annotations

import logging
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_impl(leaf):
    """The PRNG implementation of a (possibly abstract) typed key array."""
    if isinstance(leaf, jax.Array):
        return jax.random.key_impl(leaf)
    return leaf.dtype._impl  # abstract key: the impl is recorded on its dtype


def _to_storable(leaf):
    return jax.random.key_data(leaf) if _is_key(leaf) else leaf


def make_manager(directory: str, keep: int) -> ocp.CheckpointManager:
    """A synchronous manager keeping the ``keep`` newest checkpoints in ``directory``."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=False
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
    """Write ``state`` as checkpoint ``step`` (blocks until it is on disk)."""
    leaves, treedef = jax.tree.flatten(state)
    # orbax refuses zero-size arrays (MJX's data has some); they carry no values anyway.
    items = {f"{i:05d}": _to_storable(x) for i, x in enumerate(leaves) if np.size(x) > 0}
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(items),
            meta=ocp.args.JsonSave({"treedef": str(treedef), "num_leaves": len(leaves)}),
        ),
    )
    manager.wait_until_finished()


def _restore_step(manager, step: int, abstract_state):
    leaves, treedef = jax.tree.flatten(abstract_state)
    meta = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    if meta["num_leaves"] != len(leaves) or meta["treedef"] != str(treedef):
        raise ValueError(
            f"checkpoint {step} holds a different state structure ({meta['num_leaves']} leaves, "
            f"expected {len(leaves)}): was it written by another config?"
        )
    targets = {}
    for i, leaf in enumerate(leaves):
        if math.prod(leaf.shape) == 0:
            continue
        if _is_key(leaf):
            data = jax.eval_shape(jax.random.key_data, leaf)
            targets[f"{i:05d}"] = jax.ShapeDtypeStruct(data.shape, data.dtype,
                                                       sharding=getattr(leaf, "sharding", None))
        else:
            targets[f"{i:05d}"] = leaf
    items = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(targets))
    )["state"]
    restored = []
    for i, leaf in enumerate(leaves):
        if math.prod(leaf.shape) == 0:
            sharding = getattr(leaf, "sharding", None)
            empty = np.zeros(leaf.shape, leaf.dtype)
            restored.append(jax.device_put(empty, sharding) if sharding else jnp.asarray(empty))
            continue
        x = items[f"{i:05d}"]
        if _is_key(leaf):
            x = jax.random.wrap_key_data(x, impl=_key_impl(leaf))
        restored.append(x)
    return jax.tree.unflatten(treedef, restored)


def restore_latest(manager: ocp.CheckpointManager, abstract_state):
    """Restore the newest readable checkpoint.

    Args:
      manager: the run's manager.
      abstract_state: ``jax.ShapeDtypeStruct`` tree of the state (with shardings if any).

    Returns:
      ``(step, state)``, or ``(None, None)`` when there is no checkpoint at all.

    Raises:
      RuntimeError: if checkpoints exist but none can be read.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    errors = []
    for step in steps:
        try:
            return step, _restore_step(manager, step, abstract_state)
        except Exception as err:  # noqa: BLE001 - any read failure means: try the previous one
            message = f"checkpoint {step} is unreadable ({type(err).__name__}: {err})"
            log.warning("%s; falling back to the previous checkpoint", message)
            print(f"warning: {message}; falling back to the previous checkpoint")
            errors.append(message)
    if steps:
        raise RuntimeError("no readable checkpoint: " + "; ".join(errors))
    return None, None
