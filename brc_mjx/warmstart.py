"""Warm starts in seconds: compiled programs kept as serialized `jax.export` artifacts.

The persistent XLA cache (`run.enable_compile_cache`) skips XLA's compilation on a second start,
but not JAX's tracing of the Python that builds the program, which for MJX physics is most of a
warm start (~20 s per program on 2 CPU cores). Here each program (the training epoch,
evaluation, diagnostics) is exported once (`jax.export`, StableHLO) into
`<compile cache dir>/exports/<key>.jaxexport`; a later start with the same key deserializes it
(~1-2 s) instead of tracing, and XLA's persistent cache then skips compiling as well.

The key hashes everything the program depends on: the config (less the fields that only steer
the host: run directory, resume, profiling, cache settings), the input shapes / dtypes /
shardings and tree structure, the source of `brc_mjx`, `envs` and `configs`, the versions of
jax, jaxlib and mujoco, and the devices. A change to any of them exports afresh. Programs that
call back into the host (EnvPool) cannot be exported and are traced as before.

Exported functions take and return only built-in containers, so the state pytree (flax dataclasses,
MJX data) is passed as its flat list of leaves and rebuilt around the call.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import pathlib
import re
from collections.abc import Callable
from typing import Any

import jax

#: Config fields that steer only the host loop and never change a compiled program: the seed
#: only draws the initial state and the eval / diagnostics keys (all program inputs), and the
#: budget and cadences only count epochs on the host. Seeds of one setting, or a longer run, so
#: reuse one another's exports. A field that a program starts to depend on must leave this list.
HOST_ONLY_FIELDS = ("run_dir", "resume", "start_if_no_checkpoint", "profile", "compile_cache",
                    "compile_cache_dir", "video_every", "keep_checkpoints", "distributed", "seed",
                    "total_env_steps", "eval_every", "checkpoint_every", "diagnostics_every",
                    "wandb")
_PACKAGES = ("brc_mjx", "envs", "configs")


@functools.cache
def source_digest() -> str:
    """sha256 over the Python sources of the packages the programs are built from."""
    h = hashlib.sha256()
    root = pathlib.Path(__file__).resolve().parent.parent
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def program_key(name: str, config: dict, args: Any, extra: Any = ()) -> str:
    """The cache key of program `name` compiled for `args` (arrays or ShapeDtypeStructs)."""
    import mujoco

    config = {k: v for k, v in config.items() if k not in HOST_ONLY_FIELDS}
    leaves, tree = jax.tree.flatten(args)
    described = [(tuple(x.shape), str(x.dtype), str(getattr(x, "sharding", None)))
                 for x in leaves]
    # Static leaves of MJX's data print as objects with their address: drop the addresses (what
    # they hold follows from the config, the sources and the versions, all in the key).
    tree_text = re.sub(r" at 0x[0-9a-f]+", "", str(tree))
    parts = [name, json.dumps(config, sort_keys=True), tree_text, described, repr(extra),
             source_digest(), jax.__version__, importlib.metadata.version("jaxlib"),
             mujoco.__version__, [d.device_kind for d in jax.devices()], jax.process_count()]
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:32]


def usable(env, mesh) -> bool:
    """Whether programs over `env` on `mesh` are exported: a one-device mesh (sharded programs
    are traced as before), no host callbacks (EnvPool), and an env the key pins down: an
    `envs.Env` of registry tasks (its programs follow from task names, config and sources), or
    an env object that declares `exportable = True` (its type is part of the key)."""
    import envs

    if mesh.devices.size != 1 or "envpool" in tuple(getattr(env, "backends", ())):
        return False
    if getattr(env, "exportable", False):
        return True
    return isinstance(env, envs.Env) and all(n in envs.TASKS for n in env.task_names)


def env_identity(env) -> tuple:
    """What the key records of an env: its type, task names and backends."""
    kind = type(env)
    return (f"{kind.__module__}.{kind.__qualname__}", tuple(env.task_names),
            tuple(getattr(env, "backends", ())))


def compile_exported(fn: Callable, args: tuple, directory: str, key: str,
                     donate: bool = False, state_out: bool = False) -> tuple[Callable, bool]:
    """Compile `fn(*args)` through a serialized export under `directory`.

    `fn` must be a `jax.jit`-ed function whose outputs are built-in containers of arrays, except
    with `state_out`, where it returns `(state, metrics)` with `state` of the same tree structure
    as `args[0]`. With `donate` the first argument is donated. Returns `(compiled, hit)`: a
    callable with `fn`'s signature and results, and whether the export came from disk. Any
    failure to export (e.g. host callbacks) falls back to compiling `fn` directly.
    """
    from jax import export

    leaves, tree = jax.tree.flatten(args)
    state_tree = jax.tree.structure(args[0]) if state_out else None

    def flat(*flat_args):
        out = fn(*jax.tree.unflatten(tree, flat_args))
        if state_out:
            return jax.tree.leaves(out[0]), out[1]
        return out

    path = os.path.join(directory, f"{key}.jaxexport")
    hit = os.path.exists(path)
    try:
        if hit:
            with open(path, "rb") as f:
                exported = export.deserialize(bytearray(f.read()))
        else:
            exported = export.export(jax.jit(flat))(*leaves)
            os.makedirs(directory, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "wb") as f:
                f.write(exported.serialize())
            os.replace(tmp, path)
    except Exception:  # noqa: BLE001 -- not exportable (host callbacks, ...): trace as usual
        return fn.lower(*args).compile(), False

    donated = tuple(range(jax.tree.structure(args[0]).num_leaves)) if donate else ()
    call = jax.jit(exported.call, donate_argnums=donated).lower(*leaves).compile()

    def compiled(*call_args):
        out = call(*jax.tree.leaves(call_args))
        if state_out:
            return jax.tree.unflatten(state_tree, out[0]), out[1]
        return out

    return compiled, hit
