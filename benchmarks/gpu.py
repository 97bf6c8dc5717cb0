"""The GPU benchmark entry: one command, at most ~8 minutes on one GPU, JSON rows.

    python -m benchmarks.gpu                 # on a GPU box (MJX impl="jax"; EnvPool not needed)
    python -m benchmarks.gpu --smoke         # tiny sizes on CPU in ~a minute (the test suite)
    python -m benchmarks.gpu --parts learning end_to_end

Parts, each a sweep of the CPU benchmarks' own measurements at GPU sizes:

- ``env_only``: MJX ``jit(scan(env.step))`` steps/s for cartpole-balance, cheetah-run and
  humanoid-run at 1k / 4k / 16k envs;
- ``collection``: our compiled epoch acting only (policy, env step, replay insert, normaliser)
  against env-only on the same env and batch (target >= 0.90);
- ``learning``: sgd steps/s and achieved FLOP/s at critic widths 1024 / 2048 / 4096, batch 1024
  and 4096, float32 and bfloat16 critic compute, each against a dense matmul of its dtype
  measured on the device (target at W=4096, bf16: >= 40 %);
- ``end_to_end``: the whole loop (acting + learning) on cheetah-run at 1k and 4k envs;
- ``peer``: Brax SAC against ours at matched envs / batch / widths, and the time-to-score race on
  CartpoleBalance (both on MJX here);
- ``population``: the dmc-easy-mjx-4m preset as populations of 1, 4 and 16 members in one
  program: env steps/s in all and per member, where the device saturates.

Every row goes to ``--out`` (default ``benchmarks/results/gpu.jsonl``) with the commit, device,
jax version and config (``common.row_header``); the part's name is the row's ``benchmark``.
Points are skipped, with a row saying so, once ``budget_s`` of wall time is spent, so the entry
always finishes inside a device lease.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from pathlib import Path

import tyro

from benchmarks.common import RESULTS_DIR, append_row, row_header

PARTS = ("env_only", "collection", "learning", "end_to_end", "peer", "population")


@dataclasses.dataclass(frozen=True)
class Sizes:
    """The sizes one run of the entry sweeps."""

    env_tasks: tuple[str, ...]
    env_batches: tuple[int, ...]
    env_scan: int  # vectorized steps per timed env-only rollout
    collection_task: str
    collection_batches: tuple[int, ...]
    loop_steps: int  # vectorized steps per timed epoch (collection / end-to-end)
    widths: tuple[int, ...]
    batches: tuple[int, ...]
    dtypes: tuple[str, ...]
    updates: int  # sgd steps per timed learning call
    e2e_batches: tuple[int, ...]  # envs per task, end-to-end
    e2e_width: int
    e2e_batch: int
    peer_envs: int
    peer_width: int
    peer_batch: int
    population_preset: str  # a training preset, run as populations of each size below
    population_members: tuple[int, ...]
    population_steps: int  # vectorized steps per timed epoch
    population_width: int = 0  # critic and actor width (0: the preset's)
    population_envs: int = 0  # envs per task (0: the preset's)
    population_tasks: tuple[str, ...] = ()  # the tasks (empty: the preset's)


GPU = Sizes(
    env_tasks=("dmc/cartpole-balance", "dmc/cheetah-run", "dmc/humanoid-run"),
    env_batches=(1024, 4096, 16384), env_scan=100,
    collection_task="dmc/cheetah-run", collection_batches=(1024, 4096), loop_steps=100,
    # widest first, bf16 first (the target point): a lease that runs out still measures it
    widths=(4096, 2048, 1024), batches=(1024, 4096), dtypes=("bfloat16", "float32"), updates=20,
    e2e_batches=(1024, 4096), e2e_width=1024, e2e_batch=1024,
    peer_envs=1024, peer_width=256, peer_batch=1024,
    population_preset="dmc-easy-mjx-4m", population_members=(1, 4, 16), population_steps=50,
)

SMOKE = Sizes(
    env_tasks=("dmc/cartpole-balance",), env_batches=(4,), env_scan=10,
    collection_task="dmc/cartpole-balance", collection_batches=(4,), loop_steps=10,
    widths=(32,), batches=(16,), dtypes=("float32", "bfloat16"), updates=2,
    e2e_batches=(4,), e2e_width=32, e2e_batch=16,
    peer_envs=8, peer_width=32, peer_batch=16,  # 8: Brax splits envs over the devices
    population_preset="cpu-default", population_members=(1, 2), population_steps=5,
    population_width=32, population_envs=2, population_tasks=("dmc/cartpole-balance",),
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Run the GPU benchmark entry (or, with --smoke, the same code at tiny sizes)."""

    smoke: bool = False
    """Tiny sizes on any device, for the test suite (rows still written to --out)."""
    parts: tuple[str, ...] = PARTS
    """Parts to run, in this order: env_only, collection, learning, end_to_end, peer,
    population."""
    budget_s: float = 420.0
    """Skip the remaining points (with a row saying so) once this much wall time is spent."""
    mjx_impl: str = "jax"
    """MJX implementation: jax (any device) | warp (NVIDIA, needs mujoco-warp + warp-lang)."""
    profile: bool = False
    """Also trace the widest learning points and the end-to-end epochs into
    benchmarks/profiles/ and print their XLA op time by phase."""
    out: Path = RESULTS_DIR / "gpu.jsonl"
    """JSONL file the rows are appended to."""


class Budget:
    """Wall-clock budget shared by the parts: ``ok(name)`` is False (and a row is written) once
    it is spent."""

    def __init__(self, seconds: float, out: Path):
        self.start, self.seconds, self.out = time.perf_counter(), seconds, out
        self.skipped: list[str] = []

    def ok(self, name: str) -> bool:
        if time.perf_counter() - self.start < self.seconds:
            return True
        self.skipped.append(name)
        append_row(self.out, dict(row_header("skipped"), config=dict(point=name),
                                  reason=f"wall budget of {self.seconds:.0f} s spent"))
        print(f"skipped {name}: wall budget spent", flush=True)
        return False


def mjx_points(cfg: Config, budget: Budget, part: str, tasks, batches):
    """``(task, num_envs, env)`` of every point of ``part`` the budget still allows."""
    import envs

    for task in tasks:
        for n in batches:
            if budget.ok(f"{part} {task} {n}"):
                yield task, n, envs.make(task, n, backend="mjx", mjx_impl=cfg.mjx_impl)


def env_only(cfg: Config, sizes: Sizes, budget: Budget) -> None:
    from benchmarks.env_only import time_env

    for task, n, env in mjx_points(cfg, budget, "env_only", sizes.env_tasks, sizes.env_batches):
        r = time_env(env, sizes.env_scan)
        append_row(cfg.out, dict(row_header("gpu_env_only"), config=dict(
            task=task, num_envs=n, scan_len=sizes.env_scan, mjx_impl=cfg.mjx_impl), **r))
        print(f"env-only {task} {n} envs: {r['steps_per_s']:.0f} steps/s "
              f"(compile {r['compile_s']:.1f} s)", flush=True)


def _loop_config(sizes: Sizes, task: str, profile: bool = False):
    from benchmarks import loop

    return loop.Config(tasks=(task,), backend="mjx", steps=sizes.loop_steps,
                       critic_width=sizes.e2e_width, batch_size=sizes.e2e_batch, profile=profile)


def collection(cfg: Config, sizes: Sizes, budget: Budget) -> None:
    from benchmarks.env_only import time_env
    from benchmarks.loop import time_loop

    for task, n, env in mjx_points(cfg, budget, "collection", (sizes.collection_task,),
                                   sizes.collection_batches):
        bare = time_env(env, sizes.loop_steps)
        ours = time_loop(_loop_config(sizes, task), env, 0)
        ratio = ours["env_steps_per_s"] / bare["steps_per_s"]
        append_row(cfg.out, dict(row_header("gpu_collection"), config=dict(
            task=task, num_envs=n, steps=sizes.loop_steps), env_only=bare, collection=ours,
            ratio=ratio))
        print(f"collection {task} {n} envs: env-only {bare['steps_per_s']:.0f}, ours "
              f"{ours['env_steps_per_s']:.0f} steps/s, ratio {ratio:.2f} (target >= 0.90)",
              flush=True)


def learning(cfg: Config, sizes: Sizes, budget: Budget) -> None:
    from benchmarks import learning as learning_lib

    lcfg = learning_lib.Config(updates=sizes.updates, repeats=3, out=cfg.out)
    for width in sizes.widths:
        for batch in sizes.batches:
            for dtype in sizes.dtypes:
                if budget.ok(f"learning {dtype} w{width} b{batch}"):
                    traced = cfg.profile and width == max(sizes.widths)
                    learning_lib.point(dataclasses.replace(lcfg, profile=traced), width, batch,
                                       dtype, benchmark="gpu_learning")


def end_to_end(cfg: Config, sizes: Sizes, budget: Budget) -> None:
    from benchmarks.loop import time_loop

    for task, n, env in mjx_points(cfg, budget, "end_to_end", (sizes.collection_task,),
                                   sizes.e2e_batches):
        r = time_loop(_loop_config(sizes, task, cfg.profile), env, 1)
        append_row(cfg.out, dict(row_header("gpu_end_to_end"), config=dict(
            task=task, num_envs=n, critic_width=sizes.e2e_width, batch_size=sizes.e2e_batch,
            updates_per_step=1, steps=sizes.loop_steps), **r))
        print(f"end-to-end {task} {n} envs: {r['env_steps_per_s']:.0f} env-steps/s, "
              f"{r['updates_per_s']:.1f} updates/s (compile {r['compile_s']:.1f} s)", flush=True)


def peer(cfg: Config, sizes: Sizes, budget: Budget) -> None:
    from benchmarks import peer as peer_lib

    if not budget.ok("peer"):
        return
    mode = ("peer",) if cfg.smoke else ("peer", "time_to_score")
    remaining = max(30.0, budget.seconds - (time.perf_counter() - budget.start))
    pcfg = peer_lib.Config(
        mode=mode,
        peer=peer_lib.PeerConfig(num_envs=sizes.peer_envs, width=sizes.peer_width,
                                 batch_size=sizes.peer_batch, steps_per_epoch=sizes.loop_steps,
                                 epochs=2),
        ours=peer_lib.OursScoreConfig(backend="mjx"),
        ours_seeds=(0,), wall_budget_s=min(120.0, remaining / 3), out=cfg.out)
    peer_lib.main(pcfg)


def population(cfg: Config, sizes: Sizes, budget: Budget) -> None:
    """Env steps/s of a population's compiled epoch at each member count: where the device
    saturates (``benchmarks.population --scale``)."""
    from benchmarks import population as population_lib

    for n in sizes.population_members:
        if budget.ok(f"population {sizes.population_preset} x{n}"):
            population_lib.scale(sizes.population_preset, (n,), 3, cfg.out,
                                 steps_per_epoch=sizes.population_steps,
                                 width=sizes.population_width,
                                 envs_per_task=sizes.population_envs,
                                 tasks=sizes.population_tasks)


RUNNERS = {"env_only": env_only, "collection": collection, "learning": learning,
           "end_to_end": end_to_end, "peer": peer, "population": population}


def main(cfg: Config) -> list[str]:
    """Run the selected parts; returns the names of the points skipped for the budget."""
    unknown = sorted(set(cfg.parts) - set(PARTS))
    if unknown:
        raise SystemExit(f"benchmarks.gpu: unknown part(s) {unknown}; parts are {list(PARTS)}")
    import jax

    sizes = SMOKE if cfg.smoke else GPU
    budget = Budget(cfg.budget_s, cfg.out)
    print(f"benchmarks.gpu on {jax.devices()[0].device_kind} (jax {jax.__version__}), "
          f"{'smoke sizes' if cfg.smoke else 'GPU sizes'}, rows -> {cfg.out}", flush=True)
    failed = []
    for name in dict.fromkeys(cfg.parts):
        start = time.perf_counter()
        try:
            RUNNERS[name](cfg, sizes, budget)
        except Exception as e:  # noqa: BLE001 -- one broken part must not cost the lease the rest
            traceback.print_exc()
            failed.append(name)
            append_row(cfg.out, dict(row_header("failed"), config=dict(part=name),
                                     error=f"{type(e).__name__}: {e}"))
        print(f"== {name}: {time.perf_counter() - start:.0f} s", flush=True)
    if failed:
        raise RuntimeError(f"benchmarks.gpu: part(s) {failed} failed (tracebacks above; the "
                           f"other parts' rows are in {cfg.out})")
    return budget.skipped


if __name__ == "__main__":
    main(tyro.cli(Config))
