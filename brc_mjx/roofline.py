"""Roofline predictions: lower bounds on the time of an update and of 1M env steps per task.

A program that does ``F`` floating-point operations and moves ``B`` bytes to and from device
memory cannot run faster than ``max(F / peak FLOP/s, B / memory bandwidth)`` on a device. ``F``
comes from XLA's own cost analysis of the compiled program (``flops``), so it counts what the
program does, not a hand model of it. ``B`` is taken two ways: the *floor*, the bytes of the
program's inputs and outputs (``memory_analysis()``: every parameter, optimiser moment and batch
element is read once and every result written once, however well a compiler fuses), which makes
the bound a true lower bound; and XLA's ``bytes accessed`` (every fused op's operands and
results), an estimate of the traffic that depends on how the compiler fused; the device
numbers are the vendors' datasheet peaks. These are **predictions**, made without the device, to
hold a real measurement against: ``predicted / measured`` is the fraction of the roofline a run
reaches (its MFU where the bound is compute).

What the numbers leave out (each makes the true time longer than the bound, never shorter):

- XLA counts a loop body once, whatever its trip count: MJX's constraint solver iterates inside
  a ``while`` loop, so an env step's cost is that of one solver iteration.
- The cost analysis is of the program compiled for the machine that makes the prediction (a CPU):
  a GPU compiler fuses differently, which moves ``bytes accessed`` (not ``F`` or the floor).
- Every FLOP is charged at the tensor-core rate of the matmul dtype; elementwise work runs slower.
- Kernel launches, host work (EnvPool steps on the host) and collectives are not counted.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class Accelerator:
    """A device's datasheet peaks."""

    name: str
    flops_per_s: Mapping[str, float]
    """Dense matmul peak per matmul type: ``bfloat16``, ``tf32`` (float32 data at XLA's default
    precision on NVIDIA tensor cores) and ``float32`` (``precision=highest``)."""
    bytes_per_s: float
    """Device memory bandwidth."""
    device_kinds: tuple[str, ...] = ()
    """Substrings of ``jax.Device.device_kind`` that name this device."""


# NVIDIA's datasheets (SXM parts, dense, no sparsity). The H200 has the H100's chip with more and
# faster memory (141 GB of HBM3e at 4.8 TB/s).
H100_SXM = Accelerator("H100 SXM", {"bfloat16": 989e12, "tf32": 495e12, "float32": 67e12},
                       3.35e12, ("H100",))
H200 = Accelerator("H200", {"bfloat16": 989e12, "tf32": 495e12, "float32": 67e12}, 4.8e12,
                   ("H200",))
ACCELERATORS = (H100_SXM, H200)


def accelerator_for(device_kind: str) -> Accelerator | None:
    """The accelerator whose name appears in ``device_kind`` (e.g. ``"NVIDIA H100 80GB HBM3"``)."""
    for acc in ACCELERATORS:
        if any(k.lower() in device_kind.lower() for k in acc.device_kinds):
            return acc
    return None


def matmul_type(compute_dtype: str, precision: str = "default") -> str:
    """The peak that a matmul of ``compute_dtype`` runs at: float32 at XLA's default precision
    goes through the tensor cores as TF32; ``precision="highest"`` keeps true float32."""
    if compute_dtype == "bfloat16":
        return "bfloat16"
    if compute_dtype == "float32":
        return "float32" if precision == "highest" else "tf32"
    raise ValueError(f"compute dtype {compute_dtype!r}: expected float32 or bfloat16")


@dataclasses.dataclass(frozen=True)
class Cost:
    """XLA's count for one call of a program."""

    flops: float
    bytes: float
    """XLA's ``bytes accessed``: operands and results of every (fused) op."""
    io_bytes: float
    """Inputs plus outputs of the whole program: the traffic no compiler can avoid."""

    @property
    def intensity(self) -> float:
        """FLOPs per byte accessed."""
        return self.flops / self.bytes if self.bytes else math.inf


def cost_of(compiled) -> Cost:
    """``Cost`` of a compiled program from ``cost_analysis()`` and ``memory_analysis()``."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    mem = compiled.memory_analysis()  # None where a backend does not report it
    io_bytes = math.nan if mem is None else mem.argument_size_in_bytes + mem.output_size_in_bytes
    return Cost(float(cost.get("flops", 0.0)), float(cost.get("bytes accessed", 0.0)),
                float(io_bytes))


@dataclasses.dataclass(frozen=True)
class Bound:
    """The roofline of one program on one device."""

    compute_s: float
    """FLOPs at the matmul peak."""
    floor_s: float
    """Inputs and outputs at the memory bandwidth."""
    accessed_s: float
    """XLA's bytes accessed at the memory bandwidth."""

    @property
    def seconds(self) -> float:
        """The lower bound: no run of the program on the device is faster."""
        return max(self.compute_s, self.floor_s)

    @property
    def estimate_s(self) -> float:
        """The roofline with XLA's bytes accessed: what a run that moves the traffic XLA counted
        (for the compiling machine's fusion) would take at the peaks."""
        return max(self.compute_s, self.accessed_s)

    @property
    def limit(self) -> str:
        """Which roof binds the lower bound: ``"compute"`` or ``"memory"``."""
        return "compute" if self.compute_s >= self.floor_s else "memory"


def bound(cost: Cost, acc: Accelerator, matmul: str) -> Bound:
    """The roofline of one call of a program of ``cost`` on ``acc`` with matmuls of type
    ``matmul`` (a key of ``acc.flops_per_s``)."""
    return Bound(cost.flops / acc.flops_per_s[matmul], cost.io_bytes / acc.bytes_per_s,
                 cost.bytes / acc.bytes_per_s)


def seconds_per_million(update_s: float, env_step_s: float, updates_per_step: int,
                        envs_per_task: int) -> float:
    """Lower bound on the wall time of 1M env steps per task.

    One vectorized step advances each task by ``envs_per_task`` env steps and runs
    ``updates_per_step`` updates, so 1M env steps per task is ``1e6 / envs_per_task`` vectorized
    steps, each costing one env step of the whole batch plus ``updates_per_step`` updates.
    """
    vector_steps = 1e6 / envs_per_task
    return vector_steps * (updates_per_step * update_s + env_step_s)


def preset_costs(cfg, env, batches, dtypes) -> tuple[dict, Cost | None]:
    """XLA's costs of one ``sgd_step`` per (batch, critic compute dtype) of training config
    ``cfg`` on ``env``, and of one step of the whole env batch (``None`` where a task steps on
    the host, as EnvPool does).

    Each program is compiled for the default device, on abstract inputs: nothing is allocated,
    even for the 1B preset.

    Returns:
      ``({(batch, dtype): Cost}, env_step_cost)``.
    """
    import functools

    import jax

    from brc_mjx import train

    update_costs = {}
    for dtype in dtypes:
        network = dataclasses.replace(cfg.learner.network, critic_compute_dtype=dtype)
        dcfg = dataclasses.replace(cfg, learner=dataclasses.replace(cfg.learner, network=network))
        program = train.build(dcfg, env)  # the batch size changes no state shape
        agent, shapes, key = program.agent, program.abstract_state, jax.random.key(0)
        for batch in batches:
            bcfg = dataclasses.replace(dcfg, batch_size=batch)
            data = jax.eval_shape(functools.partial(agent.sample, bcfg, program.derived),
                                  shapes.replay, shapes.offline, key)
            update_costs[batch, dtype] = cost_of(
                jax.jit(agent.update).lower(shapes.learner, data, key).compile())
    env_cost = None
    if all(name == "mjx" for name in env.backends):
        state = jax.eval_shape(env.reset, jax.random.key(0))
        action = jax.ShapeDtypeStruct((env.num_envs, env.action_dim), jax.numpy.float32)
        env_cost = cost_of(jax.jit(env.step).lower(state, action).compile())
    return update_costs, env_cost
