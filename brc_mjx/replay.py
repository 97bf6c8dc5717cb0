"""Device-resident multi-task replay buffer: pure ``init`` / ``add`` / ``sample``.

The buffer lives inside the jit-compiled training step of BRC (Nauman et al., "Bigger,
Regularized, Categorical: High-Capacity Value Functions are Efficient Multi-Task Learners",
https://arxiv.org/abs/2505.23150), so it is a frozen pytree (:class:`ReplayState`) changed only by
pure functions, in the style of Flashbax:

* **One array per field, each in its own dtype.** ``terminated`` / ``truncated`` stay ``bool``,
  ``task_id`` stays ``int32``; observations may be stored narrower (``bfloat16`` / ``float16``) to
  halve the dominant cost, and are cast back to ``float32`` when sampled.
* **Per-task rings.** Every leaf is shaped ``(num_tasks, capacity_per_task, ...)``. Each task owns
  ``capacity_per_task`` slots, so a task with many or long episodes can never evict another task's
  data, and sampling a task uniformly and then a slot uniformly gives every task exactly an equal
  expected share of each batch (the paper's multi-task sampling) without any per-task bookkeeping.
* **Lockstep sizes.** The vectorised env is laid out task-major with the same number of envs per
  task, so every ``add`` writes the same number ``E`` of transitions to every task. One scalar
  write index and one scalar fill level therefore describe all rings, and sampling is a single 2-D
  gather on ``(task, slot)`` pairs.
* **Modular ring writes.** ``add`` scatters into slots ``(insert_pos + arange(E)) % capacity``; the
  storage is never rolled or copied, so with the state donated to the jitted step XLA updates it in
  place.
* ``next_obs`` is the true final observation at a time-limit truncation (not the reset one), and
  ``terminated`` and ``truncated`` are kept apart: only ``terminated`` cuts the bootstrap.

Rewards are stored raw; the learner rescales them per task at sampling time (the paper's
per-task reward normalisation).

Allocating a buffer that does not fit the device fails late and obscurely, so callers first compute
its size without allocating and check it::

    check_fits(memory_bytes(example, num_tasks, capacity_per_task, obs_dtype))
    state = init(example, num_tasks, capacity_per_task, obs_dtype)

Shape legend used in comments: ``T`` = num_tasks, ``C`` = capacity_per_task, ``E`` = envs per task,
``B`` = sample batch size.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

_OBS_FIELDS = ("obs", "next_obs")
OBS_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
_GIB = float(1 << 30)


@flax.struct.dataclass
class Transition:
    """One environment transition (or a batch of them, with leading axes ``...``).

    Attributes:
        obs: ``(..., obs_dim)`` float observation at time t.
        action: ``(..., action_dim)`` float32 action taken at t.
        reward: ``(...,)`` float32 raw reward (the learner normalises it per task, not the buffer).
        next_obs: ``(..., obs_dim)`` observation at t+1; the true final observation when the episode
            was truncated or terminated, never the observation after an auto-reset.
        terminated: ``(...,)`` bool, true when the episode reached a terminal state (no bootstrap).
        truncated: ``(...,)`` bool, true when a time limit cut the episode (still bootstraps).
        task_id: ``(...,)`` int32 task index in ``[0, num_tasks)``.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    task_id: jax.Array


@flax.struct.dataclass
class ReplayState:
    """The replay buffer: per-task rings advancing in lockstep.

    Attributes:
        data: Storage; each leaf is ``(num_tasks, capacity_per_task, ...)`` in its storage dtype.
        insert_pos: ``()`` int32 ring index of the next write, shared by all tasks.
        size: ``()`` int32 number of filled slots per task (``<= capacity_per_task``); the filled
            slots are always ``[0, size)`` because writes start at slot 0.
    """

    data: Transition
    insert_pos: jax.Array
    size: jax.Array

    @property
    def num_tasks(self) -> int:
        """Number of task rings (static)."""
        return self.data.reward.shape[0]

    @property
    def capacity_per_task(self) -> int:
        """Slots per task ring (static)."""
        return self.data.reward.shape[1]


def example_transition(obs_dim: int, action_dim: int) -> Transition:
    """Shapes and dtypes of one unbatched transition (``jax.ShapeDtypeStruct`` leaves)."""
    f32 = jnp.float32
    return Transition(
        obs=jax.ShapeDtypeStruct((obs_dim,), f32),
        action=jax.ShapeDtypeStruct((action_dim,), f32),
        reward=jax.ShapeDtypeStruct((), f32),
        next_obs=jax.ShapeDtypeStruct((obs_dim,), f32),
        terminated=jax.ShapeDtypeStruct((), jnp.bool_),
        truncated=jax.ShapeDtypeStruct((), jnp.bool_),
        task_id=jax.ShapeDtypeStruct((), jnp.int32),
    )


def _field_names() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(Transition))


def _storage_dtype(name: str, dtype: Any, obs_dtype: Any) -> np.dtype:
    return np.dtype(obs_dtype) if name in _OBS_FIELDS else np.dtype(dtype)


def init(
    example: Transition,
    num_tasks: int,
    capacity_per_task: int,
    obs_dtype: Any = jnp.float32,
) -> ReplayState:
    """Allocates an empty buffer.

    Args:
        example: One unbatched transition (arrays or ``jax.ShapeDtypeStruct`` leaves) giving each
            field's per-transition shape and dtype.
        num_tasks: Number of tasks ``T``.
        capacity_per_task: Ring size ``C`` of each task.
        obs_dtype: Storage dtype of ``obs`` and ``next_obs`` (a float dtype, e.g.
            ``jnp.bfloat16`` to halve their memory); other fields keep the example's dtype.

    Returns:
        An empty ``ReplayState`` whose leaves are ``(T, C, *example_leaf.shape)`` zeros.

    Raises:
        ValueError: On non-positive sizes or a non-float ``obs_dtype``.
    """
    if num_tasks < 1 or capacity_per_task < 1:
        raise ValueError(
            f"replay: num_tasks ({num_tasks}) and capacity_per_task ({capacity_per_task}) "
            "must be >= 1"
        )
    if not jnp.issubdtype(obs_dtype, jnp.floating):
        raise ValueError(f"replay: obs_dtype must be a float dtype, got {np.dtype(obs_dtype)}")
    data = {
        name: jnp.zeros(
            (num_tasks, capacity_per_task, *leaf.shape),
            _storage_dtype(name, leaf.dtype, obs_dtype),
        )
        for name, leaf in ((n, getattr(example, n)) for n in _field_names())
    }
    return ReplayState(
        data=Transition(**data),
        insert_pos=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def add(state: ReplayState, batch: Transition) -> ReplayState:
    """Writes one step of the vectorised env, ``E`` transitions per task, into the rings.

    Task ``t`` receives its ``E`` transitions, in env order, at slots
    ``(insert_pos + arange(E)) % C``.

    Args:
        state: The buffer (donate it to the enclosing jit so the write happens in place).
        batch: Leaves ``(T * E, ...)`` in task-major layout: env ``i`` belongs to task ``i // E``.
            ``obs`` / ``next_obs`` are cast to the storage dtype; every other field must already
            have its storage dtype.

    Returns:
        The updated buffer.

    Raises:
        ValueError: At trace time, if the leading dims disagree, do not divide by ``T``, exceed the
            capacity (``E > C`` would overwrite its own writes), or a field's shape/dtype differs
            from storage.
    """
    num_tasks, capacity = state.num_tasks, state.capacity_per_task
    names = _field_names()
    leading = {n: jnp.shape(getattr(batch, n))[:1] for n in names}
    if len(set(leading.values())) != 1 or () in leading.values():
        raise ValueError(f"replay.add: batch fields need one common leading dim, got {leading}")
    (num_envs,) = leading["obs"]
    if num_envs % num_tasks:
        raise ValueError(
            f"replay.add: batch leading dim {num_envs} is not divisible by num_tasks {num_tasks} "
            "(expected task-major layout, num_tasks * envs_per_task)"
        )
    envs_per_task = num_envs // num_tasks
    if envs_per_task > capacity:
        raise ValueError(
            f"replay.add: {envs_per_task} transitions per task per add exceed "
            f"capacity_per_task {capacity}; raise the capacity or use fewer envs per task"
        )

    # Slots of this write; unique because E <= C.
    slots = (state.insert_pos + jnp.arange(envs_per_task, dtype=jnp.int32)) % capacity  # (E,)
    new_data = {}
    for name in names:
        stored = getattr(state.data, name)  # (T, C, ...)
        new = jnp.asarray(getattr(batch, name))  # (T * E, ...)
        if new.shape[1:] != stored.shape[2:]:
            raise ValueError(
                f"replay.add: field {name!r} has per-transition shape {new.shape[1:]}, "
                f"buffer stores {stored.shape[2:]}"
            )
        if name in _OBS_FIELDS:
            new = new.astype(stored.dtype)
        elif new.dtype != stored.dtype:
            raise ValueError(
                f"replay.add: field {name!r} has dtype {new.dtype}, buffer stores {stored.dtype}"
            )
        new = new.reshape(num_tasks, envs_per_task, *new.shape[1:])  # (T, E, ...)
        new_data[name] = stored.at[:, slots].set(new, unique_indices=True)
    return state.replace(
        data=Transition(**new_data),
        insert_pos=(state.insert_pos + envs_per_task) % capacity,
        size=jnp.minimum(state.size + envs_per_task, capacity),
    )


def sample(state: ReplayState, key: jax.Array, batch_size: int) -> Transition:
    """Samples ``batch_size`` transitions uniformly over (task, filled slot), with replacement.

    The task is uniform in ``[0, T)`` and the slot uniform in ``[0, size)``, so each task has an
    equal expected share of the batch. Sampling an empty buffer (``size == 0``) returns the zero
    placeholder rows; add at least once first.

    Args:
        state: The buffer.
        key: PRNG key.
        batch_size: Number of transitions ``B`` (static under jit).

    Returns:
        A ``Transition`` with leaves ``(B, ...)``; ``obs`` / ``next_obs`` as float32, the other
        fields in their storage dtype.
    """
    key_task, key_slot = jax.random.split(key)
    task = jax.random.randint(key_task, (batch_size,), 0, state.num_tasks)  # (B,)
    slot = jax.random.randint(key_slot, (batch_size,), 0, state.size)  # (B,)
    return _gather(state, task, slot)


def _gather(state: ReplayState, task: jax.Array, slot: jax.Array) -> Transition:
    """Rows ``data[task, slot]`` of every field (index arrays broadcast); obs as float32."""
    out = {}
    for name in _field_names():
        rows = getattr(state.data, name)[task, slot]  # (*index shape, ...)
        out[name] = rows.astype(jnp.float32) if name in _OBS_FIELDS else rows
    return Transition(**out)


def sample_per_task(state: ReplayState, key: jax.Array, per_task: int) -> Transition:
    """Samples ``per_task`` transitions of every task, uniformly over its filled slots.

    Returns:
        A ``Transition`` with leaves ``(num_tasks, per_task, ...)``: row ``t`` holds task ``t``'s
        samples (for per-task statistics such as per-task gradients).
    """
    slot = jax.random.randint(key, (state.num_tasks, per_task), 0, state.size)  # (T, k)
    return _gather(state, jnp.arange(state.num_tasks)[:, None], slot)


def memory_bytes(
    example: Transition,
    num_tasks: int,
    capacity_per_task: int,
    obs_dtype: Any = jnp.float32,
) -> int:
    """Bytes the buffer from ``init`` with these arguments would occupy, without allocating it.

    Args:
        example: As for :func:`init`.
        num_tasks: As for :func:`init`.
        capacity_per_task: As for :func:`init`.
        obs_dtype: As for :func:`init`.

    Returns:
        Total bytes over all leaves of the ``ReplayState`` (unsharded).
    """
    shapes = jax.eval_shape(lambda: init(example, num_tasks, capacity_per_task, obs_dtype))
    return sum(
        math.prod(leaf.shape) * np.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(shapes)
    )


def available_memory_bytes(device: jax.Device | None = None) -> int | None:
    """Free memory on ``device`` (default: the first local device), or None if unknown.

    Accelerators report ``bytes_limit - bytes_in_use`` through ``memory_stats()``; the CPU backend
    usually reports nothing, in which case the host's available RAM is used (psutil if installed,
    else ``os.sysconf``).
    """
    device = device if device is not None else jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:  # Some backends raise instead of returning None.
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(bytes_needed: int, available_bytes: int | None = None) -> None:
    """Refuses, before allocation, a buffer that cannot fit in memory.

    Args:
        bytes_needed: Size from :func:`memory_bytes` (per device if the buffer is sharded).
        available_bytes: Free bytes; defaults to :func:`available_memory_bytes` of the first local
            device. When that is unknown the check passes.

    Raises:
        ValueError: With a one-line message naming bytes needed and available.
    """
    if available_bytes is None:
        available_bytes = available_memory_bytes()
        if available_bytes is None:
            return
    if bytes_needed > available_bytes:
        raise ValueError(
            f"replay buffer needs {bytes_needed} bytes ({bytes_needed / _GIB:.2f} GiB) but only "
            f"{available_bytes} bytes ({available_bytes / _GIB:.2f} GiB) are available; "
            "reduce capacity_per_task or store obs as bfloat16"
        )
