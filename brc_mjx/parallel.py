"""The one place for the device mesh, its axis names and the partition rules of ``TrainState``.

Mesh axes: ``data`` x ``fsdp``.

- **data**: envs, their replay slots and every sampled batch are split along it; gradients are
  averaged across it by XLA (the loss is a mean over a data-sharded batch).
- **fsdp**: large parameter tensors (critic kernels) are split along it; their AdamW moments and
  Polyak targets have the same shapes and follow the same rule, so they are split identically.

Everything else (small params, temperature, task statistics, PRNG key, counters) is replicated.
The loop is compiled once with ``jax.jit`` and these ``NamedSharding``s (GSPMD inserts the
collectives); see ``train.make_train_epoch``.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from brc_mjx.config import MeshConfig

DATA = "data"
FSDP = "fsdp"


def mesh_shape(cfg: MeshConfig, num_devices: int) -> tuple[int, int]:
    """``(data, fsdp)`` on ``num_devices``; one-line ``ValueError`` if they do not fit.

    ``data=-1`` takes every device not used by fsdp; an explicit ``data x fsdp`` smaller than the
    device count uses the first ``data x fsdp`` devices.
    """
    if cfg.fsdp < 1 or cfg.data == 0 or cfg.data < -1:
        raise ValueError(f"mesh data={cfg.data} x fsdp={cfg.fsdp}: sizes must be >= 1 (data -1)")
    if cfg.data == -1:
        if num_devices % cfg.fsdp:
            raise ValueError(f"mesh.fsdp={cfg.fsdp} does not divide the {num_devices} devices")
        return num_devices // cfg.fsdp, cfg.fsdp
    if cfg.data * cfg.fsdp > num_devices:
        raise ValueError(
            f"mesh data={cfg.data} x fsdp={cfg.fsdp} needs {cfg.data * cfg.fsdp} devices, "
            f"only {num_devices} are available"
        )
    return cfg.data, cfg.fsdp


def make_mesh(cfg: MeshConfig, devices=None) -> Mesh:
    """The ``(data, fsdp)`` mesh over ``devices`` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    data, fsdp = mesh_shape(cfg, len(devices))
    devices = devices[: data * fsdp]
    # Auto axes: GSPMD propagates shardings and inserts collectives (no sharding-in-types).
    auto = (jax.sharding.AxisType.Auto,) * 2
    return jax.make_mesh((data, fsdp), (DATA, FSDP), axis_types=auto, devices=devices)


def param_spec(shape: tuple[int, ...], fsdp: int, min_size: int) -> P:
    """Shard the largest fsdp-divisible dim of a big (>= 2-D) tensor; replicate the rest."""
    if fsdp == 1 or len(shape) < 2 or math.prod(shape) < min_size:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % fsdp == 0:
            spec = [None] * len(shape)
            spec[dim] = FSDP
            return P(*spec)
    return P()


def _data_spec(shape: tuple[int, ...], axis: int, data: int) -> P:
    """Split ``axis`` along data when it divides evenly, else replicate."""
    if len(shape) <= axis or shape[axis] % data:
        return P()
    return P(*([None] * axis), DATA)


def _top_name(path) -> str:
    entry = path[0]
    return getattr(entry, "name", getattr(entry, "key", str(entry)))


def _learner_spec(path, shape, num_envs: int, mesh: Mesh, cfg: MeshConfig) -> P:
    """Normaliser windows split along data; params, AdamW moments and target by param_spec."""
    if _top_name(path) == "normalizer":
        return _data_spec(shape, 0, mesh.shape[DATA]) if shape[:1] == (num_envs,) else P()
    return param_spec(shape, mesh.shape[FSDP], cfg.min_shard_size)


def state_shardings(abstract_state, mesh: Mesh, cfg: MeshConfig, num_envs: int):
    """``NamedSharding`` for every leaf of a ``TrainState`` (abstract or concrete).

    Rules: replay rings (and a seeded offline replay's) split along data on their slot axis
    (axis 1); env-state and normaliser leaves whose leading dim is ``num_envs`` split along
    data; learner leaves (params, AdamW moments, target) by :func:`param_spec`; the rest
    replicated.
    """
    data = mesh.shape[DATA]

    def rule(path, leaf) -> NamedSharding:
        shape = tuple(np.shape(leaf))
        top = _top_name(path)
        if top in ("replay", "offline"):
            spec = _data_spec(shape, 1, data) if len(shape) >= 2 else P()
        elif top == "env":
            spec = _data_spec(shape, 0, data) if shape[:1] == (num_envs,) else P()
        elif top == "learner":
            spec = _learner_spec(path[1:], shape, num_envs, mesh, cfg)
        else:
            spec = P()
        return NamedSharding(mesh, spec)

    return jax.tree_util.tree_map_with_path(rule, abstract_state)


def learner_shardings(abstract_learner_state, mesh: Mesh, cfg: MeshConfig):
    """Shardings of a bare ``LearnerState``, by the same rules as its part of a ``TrainState``."""
    num_envs = abstract_learner_state.normalizer.length.shape[0]
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: NamedSharding(
            mesh, _learner_spec(path, tuple(np.shape(leaf)), num_envs, mesh, cfg)),
        abstract_learner_state,
    )


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Sampled batches: split along data on their leading axis."""
    return NamedSharding(mesh, P(DATA))


def replicated(mesh: Mesh) -> NamedSharding:
    """Fully replicated sharding (metrics, scalars)."""
    return NamedSharding(mesh, P())


def per_device_bytes(abstract_tree, shardings) -> int:
    """Bytes one device holds of ``abstract_tree`` under ``shardings`` (no allocation)."""
    total = 0
    for leaf, sharding in zip(jax.tree.leaves(abstract_tree), jax.tree.leaves(shardings),
                              strict=True):
        shard_shape = sharding.shard_shape(tuple(leaf.shape))
        total += math.prod(shard_shape) * np.dtype(leaf.dtype).itemsize
    return total


def initialize_distributed() -> None:
    """Join a multi-host run: one process per host, all devices of all hosts in one mesh.

    ``jax.distributed.initialize()`` detects SLURM, Open MPI and Cloud TPU environments by itself.
    For a torchrun-style launch set ``COORDINATOR_ADDRESS`` (host:port of process 0),
    ``NUM_PROCESSES`` and ``PROCESS_ID`` (or ``MASTER_ADDR``/``MASTER_PORT``, ``WORLD_SIZE``,
    ``RANK``), which are passed on explicitly.
    """
    import os

    # CPU-only multi-process runs (and tests) need a CPU collectives backend; GPUs/TPUs ignore it.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    env = os.environ
    address = env.get("COORDINATOR_ADDRESS")
    if address is None and "MASTER_ADDR" in env:
        address = f"{env['MASTER_ADDR']}:{env.get('MASTER_PORT', '1234')}"
    num = env.get("NUM_PROCESSES", env.get("WORLD_SIZE"))
    pid = env.get("PROCESS_ID", env.get("RANK"))
    if address is not None:
        if num is None or pid is None:
            raise ValueError(
                f"coordinator address {address} is set but NUM_PROCESSES/WORLD_SIZE "
                "or PROCESS_ID/RANK is missing"
            )
        jax.distributed.initialize(address, num_processes=int(num), process_id=int(pid))
    else:
        jax.distributed.initialize()
