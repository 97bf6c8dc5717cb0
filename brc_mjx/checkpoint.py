"""Checkpoint and resume the whole ``TrainState`` with orbax's ``CheckpointManager``.

The state is saved as its flat list of leaves, so any backend's env state pytree can be
checkpointed without registering its node types with orbax. Next to the arrays each checkpoint
stores what identifies the state across processes: every leaf's path, shape and dtype (never the
tree definition's text, which embeds object addresses for MJX's static fields), and the run's
config. Typed PRNG key arrays are stored as their raw key data.

Restoring takes an abstract state (``jax.eval_shape`` of the initialiser, with shardings) and
rebuilds the tree. A checkpoint whose leaves do not match that state is refused with the first
differing leaf and the config fields that differ. If the latest checkpoint cannot be read (partial
write, corruption), the previous ones are tried in turn; orbax writes into a temporary directory
and renames it when complete, so a write killed midway leaves a temporary directory that is
ignored (and removed by the next manager).
"""

from __future__ import annotations

import logging
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from brc_mjx.config import diff_fields

log = logging.getLogger(__name__)

FORMAT = 2  # 1: flat leaves checked by str(treedef) (not readable across processes)


class NoReadableCheckpoint(RuntimeError):
    """Checkpoints exist but none of them can be read."""


class StructureMismatch(ValueError):
    """A checkpoint holds a state of another structure (another config): never a fallback."""


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _key_impl(leaf):
    """The PRNG implementation of a (possibly abstract) typed key array."""
    if isinstance(leaf, jax.Array):
        return jax.random.key_impl(leaf)
    return leaf.dtype._impl  # abstract key: the impl is recorded on its dtype


def _to_storable(leaf):
    return jax.random.key_data(leaf) if _is_key(leaf) else leaf


def leaf_specs(tree) -> list[list]:
    """``[path, shape, dtype]`` of every leaf: what a checkpoint must match (the same in every
    process).

    >>> leaf_specs({"a": jnp.zeros((2, 3))})
    [["['a']", [2, 3], 'float32']]
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [[jax.tree_util.keystr(path), list(np.shape(leaf)), str(leaf.dtype)]
            for path, leaf in flat]


def make_manager(directory: str, keep: int) -> ocp.CheckpointManager:
    """A synchronous manager keeping the ``keep`` newest checkpoints in ``directory``.

    Temporary directories of writes that never finished (a killed process) are removed.
    """
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, create=True, enable_async_checkpointing=False,
        cleanup_tmp_directories=True,
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(manager: ocp.CheckpointManager, step: int, state, config: dict | None = None) -> None:
    """Write ``state`` as checkpoint ``step`` (blocks until it is on disk).

    Args:
      manager: the run's manager.
      step: the checkpoint's number (a run uses its env steps per task).
      state: the pytree to save.
      config: the run's config as a JSON dict, stored to explain a later mismatch.
    """
    leaves = jax.tree.leaves(state)
    # orbax refuses zero-size arrays (MJX's data has some); they carry no values anyway.
    items = {f"{i:05d}": _to_storable(x) for i, x in enumerate(leaves) if np.size(x) > 0}
    meta = {"format": FORMAT, "leaves": leaf_specs(state), "config": config}
    manager.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(items), meta=ocp.args.JsonSave(meta),
        ),
    )
    manager.wait_until_finished()


def read_meta(manager: ocp.CheckpointManager, step: int) -> dict:
    """The stored leaf specs and config of checkpoint ``step``."""
    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def _mismatch(step: int, stored: list, expected: list) -> str | None:
    """One line naming the first leaf that differs between two ``leaf_specs`` lists, or None."""
    if stored == expected:
        return None
    have = {path: (tuple(shape), dtype) for path, shape, dtype in stored}
    want = {path: (tuple(shape), dtype) for path, shape, dtype in expected}

    def show(spec):
        return f"{spec[0]} {spec[1]}"

    for path, spec in want.items():
        if path not in have:
            return f"checkpoint {step} has no leaf {path} (this run's: {show(spec)})"
        if have[path] != spec:
            return (f"checkpoint {step} does not fit this run: {path} is {show(have[path])} "
                    f"in the checkpoint, {show(spec)} in this run")
    extra = next(path for path in have if path not in want)
    return f"checkpoint {step} holds a leaf this run does not have: {extra}"


def _restore_step(manager, step: int, abstract_state, config: dict | None):
    leaves, treedef = jax.tree.flatten(abstract_state)
    meta = read_meta(manager, step)
    if meta.get("format") != FORMAT:
        raise StructureMismatch(
            f"checkpoint {step} was written by an older brc_mjx (format "
            f"{meta.get('format', 1)}, this one reads {FORMAT}); start a new run")
    problem = _mismatch(step, meta["leaves"], leaf_specs(abstract_state))
    if problem:
        changed = diff_fields(meta.get("config") or {}, config or {}) if config else []
        if changed:
            problem += "; config fields that differ from the checkpoint's: " + ", ".join(
                f"{name} ({old} -> {new})" for name, old, new in changed)
        raise StructureMismatch(problem)
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


def _set_aside(manager: ocp.CheckpointManager, steps: list[int], why: str = "unreadable") -> None:
    """Rename checkpoints to ``<step>.<why>-<time>`` so the resumed run can write its own
    checkpoints under those numbers (nothing is deleted; process 0 renames on shared storage)."""
    if jax.process_index() == 0:
        for step in steps:
            path = os.path.join(str(manager.directory), str(step))
            os.replace(path, f"{path}.{why}-{int(time.time())}")
            print(f"warning: moved the {why} checkpoint {step} to {path}.{why}-*")
    manager.reload()


def restore_latest(manager: ocp.CheckpointManager, abstract_state, config: dict | None = None,
                   at_most: int | None = None):
    """Restore the newest readable checkpoint (at or before ``at_most``, if given: newer ones
    are set aside as ``<step>.ahead-<time>``).

    Args:
      manager: the run's manager.
      abstract_state: ``jax.ShapeDtypeStruct`` tree of the state (with shardings if any).
      config: this run's config as a JSON dict; named in the error if the state does not fit.

    Returns:
      ``(step, state)``, or ``(None, None)`` when there is no checkpoint at all.

    Raises:
      StructureMismatch: if a checkpoint holds a state of another structure (no fallback: every
        checkpoint of a run has the same structure, so the run's config differs).
      NoReadableCheckpoint: if checkpoints exist but none can be read.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    if at_most is not None and steps and steps[0] > at_most:
        _set_aside(manager, [s for s in steps if s > at_most], "ahead")
        steps = [s for s in steps if s <= at_most]
    errors = []
    for step in steps:
        try:
            state = _restore_step(manager, step, abstract_state, config)
        except StructureMismatch:
            raise
        except Exception as err:  # noqa: BLE001 - any read failure means: try the previous one
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            message = f"checkpoint {step} is unreadable ({type(err).__name__}: {first_line})"
            log.warning("%s; falling back to the previous checkpoint", message)
            print(f"warning: {message}; falling back to the previous checkpoint")
            errors.append(message)
            continue
        if errors:
            _set_aside(manager, steps[: len(errors)])
        return step, state
    if steps:
        raise NoReadableCheckpoint("no readable checkpoint: " + "; ".join(errors))
    return None, None


def _quiet_read_only(record: logging.LogRecord) -> bool:
    """Drop orbax's two warnings that a manager opened read-only is read-only."""
    message = record.getMessage()
    return not message.startswith(("CheckpointManagerOptions.read_only=True",
                                    "Given directory is read only"))


def read_leaves(directory: str, step: int | None = None,
                prefixes: tuple[str, ...] | None = None) -> tuple[int, dict[str, np.ndarray]]:
    """The stored leaves of checkpoint ``step`` (default: the newest) as ``{path: array}``.

    Reads a run's checkpoint without building its envs or learner (analysis, transfer, tests);
    paths are those of ``leaf_specs`` (e.g. ``.learner.log_alpha``), typed keys come back as
    their raw key data, zero-size leaves are left out. With ``prefixes`` only the leaves whose
    path starts with one of them are read from disk (e.g. the learner without the replay).
    """
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(_quiet_read_only)  # orbax warns that a read-only manager is read-only
    try:
        options = ocp.CheckpointManagerOptions(read_only=True, create=False)
        manager = ocp.CheckpointManager(os.path.abspath(directory), options=options)
    finally:
        absl_logger.removeFilter(_quiet_read_only)
    if step is None:
        step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {directory}")
    meta = read_meta(manager, step)
    paths = [path for path, _, _ in meta["leaves"]]
    if prefixes is None:
        args = ocp.args.StandardRestore()
    else:
        wanted = {f"{i:05d}": 0 for i, (path, shape, _) in enumerate(meta["leaves"])
                  if path.startswith(prefixes) and math.prod(shape) > 0}
        args = ocp.args.PyTreeRestore(
            item=wanted, restore_args={k: ocp.RestoreArgs(restore_type=np.ndarray)
                                       for k in wanted}, partial_restore=True)
    items = manager.restore(step, args=ocp.args.Composite(state=args))
    return step, {paths[int(i)]: np.asarray(x) for i, x in items["state"].items()}
