"""Command-line entry points."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import tyro
from rich.console import Console
from rich.table import Table

#: the paper-scale presets (64M, 256M, 1B critics) and the 4M MJX preset
ROOFLINE_PRESETS = ("dmc-easy-mjx-4m", "humanoidbench-h1-64m", "dmc-hard-64m", "dmc-hard-256m",
                    "dmc-hard-1b")


@dataclasses.dataclass(frozen=True)
class InfoArgs:
    """Print every model-size preset: exact parameter counts and per-device memory on a mesh.

    Nothing is allocated: counts and bytes come from ``jax.eval_shape`` and the partition rules
    of ``brc_mjx.parallel``; with ``--compile`` each preset's sharded ``sgd_step`` is also
    compiled and XLA's ``memory_analysis()`` is reported.
    """

    obs_dim: int = 223
    """Padded observation size (default: the largest of BRC's DMC dog tasks)."""
    action_dim: int = 38
    """Padded action size."""
    num_tasks: int = 7
    """Number of tasks (1 = single-task, no embedding)."""
    data: int = 1
    """Mesh size along the data axis."""
    fsdp: int = 1
    """Mesh size along the parameter-sharding axis."""
    batch_size: int = 1024
    """Global batch of one gradient step (for --compile)."""
    replay_capacity: int = 1_000_000
    """Replay transitions per task."""
    replay_obs_dtype: str = "float32"
    """Replay observation storage dtype."""
    critic_compute_dtype: str = "float32"
    """Critic compute dtype (float32 | bfloat16), for --compile."""
    presets: tuple[str, ...] = ()
    """Only these presets (default: all)."""
    compile: bool = False
    """Also compile each preset's sharded sgd_step and report XLA's per-device memory."""
    fake_devices: int = 0
    """Simulate this many CPU devices (sets XLA_FLAGS before JAX starts); 0: real devices."""
    roofline: bool = False
    """Instead of the memory table: predict, from XLA's cost analysis of one compiled sgd_step
    and one env step per training preset, the H100 / H200 lower bounds per update and per 1M env
    steps per task (brc_mjx.roofline)."""
    roofline_presets: tuple[str, ...] = ROOFLINE_PRESETS
    """Training presets of --roofline."""
    roofline_batches: tuple[int, ...] = (1024, 4096)
    """Batch sizes of --roofline (the preset's updates per env step are kept)."""
    roofline_dtypes: tuple[str, ...] = ("float32", "bfloat16")
    """Critic compute dtypes of --roofline."""
    out: Path | None = None
    """--roofline: also append one JSON row per point to this file."""
    train: tuple[str, ...] = ()
    """Instead of the model table: the whole training state of these training presets (e.g.
    cpu-default), by part (learner, replay, envs), from the real program's shapes: what one
    run, or one member of a population, holds on its device."""


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f}"


def info_main(argv: list[str] | None = None) -> None:
    """``brc-info``: the preset table, from ``jax.eval_shape`` of the real initialiser."""
    import os

    args = tyro.cli(InfoArgs, args=argv)
    if args.fake_devices:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "")
                                   + f" --xla_force_host_platform_device_count={args.fake_devices}")
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.roofline:
        roofline_rows(args)
    elif args.train:
        list(train_state_rows(args.train))
    else:
        list(preset_memory_rows(args))  # the table is printed once every row is computed



def parse_train_args(argv: list[str]):
    """Parse ``brc-train`` arguments: an optional preset name, then field overrides.

    With no preset name (no arguments, or only ``--field value`` overrides) ``cpu-default`` is
    used, so ``brc-train`` alone runs README's main job.
    """
    from configs.train import TRAIN_PRESETS

    stored = _resumed_config(argv)
    if stored is not None:
        from brc_mjx.config import TrainConfig

        return tyro.cli(TrainConfig, default=stored, args=argv, prog="brc-train",
                        description="Resume a run with its stored config; flags given with "
                                    "--resume override it (a resumed run may change only some).")
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["cpu-default", *argv]
    elif not argv[0].startswith("-") and argv[0] not in TRAIN_PRESETS:
        from configs.models import close_matches

        raise SystemExit(f"brc-train: error: unknown preset {argv[0]!r}"
                         f"{close_matches(argv[0], TRAIN_PRESETS)} (brc-train --help lists the "
                         "presets; with none, cpu-default runs)")
    presets = tyro.extras.subcommand_type_from_defaults(
        {name: cfg for name, (_, cfg) in TRAIN_PRESETS.items()},
        {name: text for name, (text, _) in TRAIN_PRESETS.items()}, prefix_names=False)
    # the default makes the preset optional in --help ("default: cpu-default")
    return tyro.cli(presets, default=TRAIN_PRESETS["cpu-default"][1], args=argv,
                    prog="brc-train", description="Train BRC (multi-task SAC, categorical BroNet "
                    "critics) in one jitted loop. The preset is optional: with none, cpu-default "
                    "runs.")


def _resumed_config(argv: list[str]):
    """The stored config of the run that ``argv`` resumes, or None.

    ``brc-train --resume --run-dir R`` (no preset name) continues R as it was configured: its
    ``config.json`` is the default every other flag overrides. With a preset name, or where R has
    no ``config.json``, the preset is the default as for a new run.
    """
    from brc_mjx import rundir
    from brc_mjx.config import TrainConfig, from_json

    if not argv or not argv[0].startswith("-") or "--resume" not in argv:
        return None
    run_dir = None
    for i, arg in enumerate(argv):
        if arg in ("--run-dir", "--run_dir") and i + 1 < len(argv):
            run_dir = argv[i + 1]
        elif arg.startswith(("--run-dir=", "--run_dir=")):
            run_dir = arg.split("=", 1)[1]
    try:
        stored = rundir.read_config(run_dir) if run_dir else None
        return None if stored is None else from_json(TrainConfig, stored)
    except (ValueError, TypeError) as err:  # RunDirError is a ValueError
        raise SystemExit(f"brc-train: error: {run_dir}/config.json: {err}") from None


def train_main(argv: list[str] | None = None) -> int:
    """``brc-train``: run (or ``--resume``) a training run; exit 1 with one line on failure."""
    import os
    import sys

    # XLA:CPU logs a false "machine type doesn't match" error for every program loaded from the
    # compilation cache (openxla/xla#44565); set TF_CPP_MIN_LOG_LEVEL yourself to see C++ logs.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from brc_mjx.checkpoint import NoReadableCheckpoint
    from brc_mjx.run import NonFiniteError, run

    cfg = parse_train_args(sys.argv[1:] if argv is None else argv)
    try:
        result = run(cfg)
    except (ValueError, NonFiniteError, NoReadableCheckpoint) as err:
        print(f"brc-train: error: {err}", file=sys.stderr)
        return 1
    if "eval/mean_return" in result:
        Console().print(f"final eval mean return {result['eval/mean_return']:.1f}")
    for k, record in enumerate(result.get("members", [])):
        if "eval/mean_return" in record:
            Console().print(f"member-{k}: final eval mean return {record['eval/mean_return']:.1f}")
    return 0


def train_state_rows(presets: tuple[str, ...]):
    """Print the bytes of each training preset's ``TrainState`` by part; yields one dict each."""
    import jax
    import numpy as np

    from brc_mjx import run, train
    from configs.train import TRAIN_PRESETS

    unknown = [name for name in presets if name not in TRAIN_PRESETS]
    if unknown:
        raise SystemExit(f"brc-info: error: unknown training preset(s) {', '.join(unknown)} "
                         "(brc-train --help lists them)")
    table = Table(title="training state of one run (one population member), MB")
    parts = ("learner", "replay", "env", "offline")
    for column in ("preset", "tasks", "envs", *parts, "total"):
        table.add_column(column, justify="right")
    for name in presets:
        cfg = TRAIN_PRESETS[name][1]
        env, _ = run.make_envs(dataclasses.replace(
            cfg, env=dataclasses.replace(cfg.env, eval_episodes=0)))
        abstract = train.build(cfg, env).abstract_state
        row = {"preset": name, "tasks": env.num_tasks, "envs": env.num_envs}
        for part in parts:
            row[part] = sum(int(np.prod(x.shape)) * x.dtype.itemsize
                            for x in jax.tree.leaves(getattr(abstract, part)))
        row["total"] = sum(row[part] for part in parts)
        table.add_row(name, str(env.num_tasks), str(env.num_envs),
                      *(f"{row[p] / 1e6:.1f}" for p in (*parts, "total")))
        yield row
    Console(width=200).print(table)


def preset_memory_rows(args: InfoArgs):
    """Compute and print the table of ``brc-info``; yields one dict per preset."""
    import functools

    import jax

    from brc_mjx import parallel, replay
    from brc_mjx.agents.brc.learner import init_state, make_learner, sgd_step
    from brc_mjx.config import LearnerConfig, MeshConfig
    from brc_mjx.replay import OBS_DTYPES
    from configs import MODEL_PRESETS, model_preset, parameter_counts

    mesh_cfg = MeshConfig(data=args.data, fsdp=args.fsdp)
    mesh = parallel.make_mesh(mesh_cfg)
    names = args.presets or tuple(MODEL_PRESETS)
    title = (f"BRC presets: obs {args.obs_dim}, action {args.action_dim}, {args.num_tasks} tasks; "
             f"mesh data={args.data} x fsdp={args.fsdp} ({jax.devices()[0].device_kind}); "
             "GB per device")
    table = Table(title=title)
    columns = ["preset", "width", "per critic", "total params", "params", "adamw", "target",
               "replay"]
    if args.compile:
        columns += ["xla args", "xla temp", "xla total"]
    for column in columns:
        table.add_column(column, justify="right")
    example = replay.example_transition(args.obs_dim, args.action_dim)
    replay_per_device = replay.memory_bytes(
        example, args.num_tasks, args.replay_capacity, OBS_DTYPES[args.replay_obs_dtype]
    ) // args.data
    for name in names:
        net = model_preset(name, critic_compute_dtype=args.critic_compute_dtype)
        counts = parameter_counts(net, args.obs_dim, args.action_dim, args.num_tasks)
        learner = make_learner(LearnerConfig(network=net), args.obs_dim,
                               (args.action_dim,) * args.num_tasks)
        abstract = jax.eval_shape(functools.partial(
            init_state, learner, num_envs=args.num_tasks, max_episode_length=1000),
            jax.random.key(0))
        shardings = parallel.learner_shardings(abstract, mesh, mesh_cfg)
        part = {f: parallel.per_device_bytes(getattr(abstract, f), getattr(shardings, f))
                for f in ("actor_params", "critic_params", "target_critic_params",
                          "actor_opt_state", "critic_opt_state")}
        row = {"preset": name, "width": net.critic_width, "per_critic": counts["critic_member"],
               "total_params": counts["total"],
               "params": part["actor_params"] + part["critic_params"],
               "adamw": part["actor_opt_state"] + part["critic_opt_state"],
               "target": part["target_critic_params"], "replay": replay_per_device}
        cells = [name, str(net.critic_width), f"{counts['critic_member']:,}",
                 f"{counts['total']:,}", _gb(row["params"]), _gb(row["adamw"]),
                 _gb(row["target"]), _gb(replay_per_device)]
        if args.compile:
            batch = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct((args.batch_size, *x.shape), x.dtype), example)
            step = jax.jit(
                functools.partial(sgd_step, learner),
                in_shardings=(shardings, parallel.batch_sharding(mesh), parallel.replicated(mesh)),
                out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=0)
            mem = step.lower(abstract, batch, jax.random.key(0)).compile().memory_analysis()
            total = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                     + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
            row.update(xla_args=mem.argument_size_in_bytes, xla_temp=mem.temp_size_in_bytes,
                       xla_total=total)
            cells += [_gb(mem.argument_size_in_bytes), _gb(mem.temp_size_in_bytes), _gb(total)]
        table.add_row(*cells)
        yield row
    Console(width=200).print(table)


def _check_roofline_args(args: InfoArgs) -> None:
    """One-line errors for bad ``--roofline`` input, before anything is built or compiled."""
    from configs.models import close_matches
    from configs.train import TRAIN_PRESETS

    for name in args.roofline_presets:
        if name not in TRAIN_PRESETS:
            raise SystemExit(f"brc-info: error: unknown training preset {name!r}"
                             f"{close_matches(name, TRAIN_PRESETS)}")
    for batch in args.roofline_batches:
        if batch < 1:
            raise SystemExit(f"brc-info: error: --roofline-batches must be >= 1, got {batch}")
    for dtype in args.roofline_dtypes:
        if dtype not in ("float32", "bfloat16"):
            raise SystemExit(f"brc-info: error: --roofline-dtypes: {dtype!r} is not float32 or "
                             "bfloat16")


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}" if seconds * 1e6 >= 10 else f"{seconds * 1e6:.1f}"


def roofline_rows(args: InfoArgs, presets: dict | None = None) -> list[dict]:
    """Compute, print (and with ``--out`` append) the ``brc-info --roofline`` table.

    ``presets`` maps a name to a ``TrainConfig`` (default: ``configs.train.TRAIN_PRESETS``).
    Returns one dict per (preset, dtype, batch).
    """
    import json

    import jax

    import envs
    from brc_mjx import roofline
    from configs import parameter_counts

    if presets is None:
        _check_roofline_args(args)
        from configs.train import TRAIN_PRESETS

        presets = {name: TRAIN_PRESETS[name][1] for name in args.roofline_presets}
    accs = roofline.ACCELERATORS
    table = Table(title=(
        "PREDICTION (roofline lower bounds, not measurements): XLA cost analysis of one compiled "
        f"sgd_step / env step on {jax.devices()[0].device_kind}, against datasheet peaks: "
        + "; ".join(f"{a.name} {a.flops_per_s['bfloat16'] / 1e12:.0f} TFLOP/s bf16, "
                    f"{a.flops_per_s['tf32'] / 1e12:.0f} TF32, {a.bytes_per_s / 1e12:.2f} TB/s"
                    for a in accs)
        + ". Each time is 'lower bound - estimate': the bound charges the FLOPs at the peak and "
          "the program's inputs + outputs at the bandwidth (the binding roof in brackets), the "
          "estimate charges XLA's bytes accessed instead (this machine's fusion). float32 "
          "matmuls are charged at TF32 (XLA's default precision on NVIDIA). An env step counts "
          "one solver iteration (XLA counts a loop body once); EnvPool steps on the host (not "
          "counted)."))
    columns = ["preset", "critic params", "dtype", "batch", "GFLOP/update", "GB in+out",
               "GB accessed"]
    columns += [f"{a.name} us/update" for a in accs]
    columns += ["env step GFLOP / GB accessed"]
    columns += [f"{a.name} env us/step" for a in accs]
    columns += [f"{a.name} min/1M steps/task" for a in accs]
    for column in columns:
        table.add_column(column, justify="right")
    rows = []
    for name, cfg in presets.items():
        env = envs.make(cfg.env.tasks, cfg.env.envs_per_task, backend=cfg.env.backend)
        updates, env_cost = roofline.preset_costs(cfg, env, args.roofline_batches,
                                                  args.roofline_dtypes)
        counts = parameter_counts(cfg.learner.network, env.obs_dim, env.action_dim,
                                  env.num_tasks)
        for (batch, dtype), cost in updates.items():
            matmul = roofline.matmul_type(dtype)
            row = dict(preset=name, tasks=env.num_tasks, envs_per_task=cfg.env.envs_per_task,
                       updates_per_step=cfg.updates_per_step,
                       critic_width=cfg.learner.network.critic_width,
                       critic_member_params=counts["critic_member"],
                       total_params=counts["total"], dtype=dtype, matmul=matmul, batch=batch,
                       update=dataclasses.asdict(cost),
                       env_step=env_cost and dataclasses.asdict(env_cost), predicted={})
            cells = [name, f"{counts['critic_member'] / 1e6:,.1f}M", dtype, str(batch),
                     f"{cost.flops / 1e9:,.1f}", f"{cost.io_bytes / 1e9:.3f}",
                     f"{cost.bytes / 1e9:.3f}"]
            env_cells, million_cells = [], []
            for acc in accs:
                upd = roofline.bound(cost, acc, matmul)
                step = roofline.bound(env_cost, acc, matmul) if env_cost else None
                lo, hi = (roofline.seconds_per_million(
                    u, e, cfg.updates_per_step, cfg.env.envs_per_task)
                    for u, e in ((upd.seconds, step.seconds if step else 0.0),
                                 (upd.estimate_s, step.estimate_s if step else 0.0)))
                row["predicted"][acc.name] = dict(
                    update_s=upd.seconds, update_limit=upd.limit, update_estimate_s=upd.estimate_s,
                    env_step_s=step and step.seconds,
                    env_step_estimate_s=step and step.estimate_s,
                    seconds_per_million=lo, seconds_per_million_estimate=hi)
                cells.append(f"{_us(upd.seconds)} ({upd.limit[:3]}) - {_us(upd.estimate_s)}")
                env_cells.append(f"{_us(step.seconds)} - {_us(step.estimate_s)}" if step
                                 else "host")
                million_cells.append(f"{lo / 60:,.1f} - {hi / 60:,.1f}")
            cells.append(f"{env_cost.flops / 1e9:.3f} / {env_cost.bytes / 1e9:.3f}"
                         if env_cost else "host")
            table.add_row(*cells, *env_cells, *million_cells)
            rows.append(row)
            if args.out is not None:
                from benchmarks.common import append_row, row_header

                append_row(args.out, dict(row_header("roofline"), **row))
            print(json.dumps({k: row[k] for k in ("preset", "dtype", "batch")}) + " done",
                  flush=True)
    Console(width=250).print(table)
    return rows
