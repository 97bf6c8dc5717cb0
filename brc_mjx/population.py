"""Populations: many runs (seeds, and settings that change no shape) trained in one compiled
program.

Every member is a run of its own: its config (seed and swept settings filled in, no
population), its run directory ``<run_dir>/member-<k>`` with ``config.json``, ``metrics.jsonl``,
curves, TensorBoard and checkpoints, readable by ``brc-analyze``, ``--init-from`` and
``brc-train --resume`` exactly like a single run's. The population's own directory holds its
``config.json`` (the command's config) and ``population.json`` (the members).

The program:

    set_up                  each member as a single run (``brc_mjx.run.set_up``): envs, agent,
                            state (fresh, or restored at the checkpoint every member has)
    stack                   members of one setting share an agent and env: their states are
                            stacked on a leading member axis; ``env_steps`` stays shared
    population epoch        ``jax.jit`` of, per setting, ``jax.vmap(train.train_epoch)``: one
                            program, every state donated
    per member              ``run.finish_epoch`` with the member's slice of the metrics and a
                            lazy view of its state: its hooks evaluate, log and checkpoint it

Envs must run inside the program (MJX): EnvPool pools step on the host, one pool per run.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import time
import typing
from collections.abc import Callable

import jax
import jax.numpy as jnp
from rich.console import Console

from brc_mjx import parallel, rundir, train
from brc_mjx.config import LearnerConfig, PopulationConfig, TrainConfig, to_json

#: learner settings a population may vary between members: none changes a shape of the state
SWEEPABLE = (
    "learner.actor_lr", "learner.critic_lr", "learner.temperature_lr", "learner.weight_decay",
    "learner.adam_b1", "learner.adam_b2", "learner.adam_eps", "learner.temperature_b1",
    "learner.gamma", "learner.tau", "learner.init_alpha", "learner.mask_padded_actions",
    "learner.fallback_reward_scale", "learner.reward_normalization",
)

def active(cfg: TrainConfig) -> bool:
    """Whether ``cfg`` asks for a population."""
    p = cfg.population
    return bool(p.seeds or p.size or p.sweep)


def _parse_value(name: str, text: str):
    hint = typing.get_type_hints(LearnerConfig)[name.split(".", 1)[1]]
    try:
        if hint is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        return hint(text)
    except ValueError:
        raise ValueError(f"population.sweep: {name} takes {hint.__name__} values, got "
                         f"{text!r}") from None


def parse_sweep(sweep: tuple[str, ...]) -> list[tuple[str, tuple]]:
    """``("learner.tau=0.005,0.02",)`` -> ``[("learner.tau", (0.005, 0.02))]``; one-line
    ``ValueError`` naming a field that may not vary or a value that does not parse."""
    out: list[tuple[str, tuple]] = []
    for item in sweep:
        name, sep, values = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not values.strip():
            raise ValueError(f"population.sweep: {item!r} is not field=value1,value2,...")
        if name not in SWEEPABLE:
            raise ValueError(f"population.sweep: {name} cannot vary within a population (members "
                             f"share one program and the state's shapes); these can: "
                             f"{', '.join(SWEEPABLE)}")
        if name in (n for n, _ in out):
            raise ValueError(f"population.sweep: {name} is swept twice")
        parsed = tuple(_parse_value(name, v.strip()) for v in values.split(","))
        if len(set(parsed)) != len(parsed):
            raise ValueError(f"population.sweep: {item!r} repeats a value")
        out.append((name, parsed))
    return out


def seeds(cfg: TrainConfig) -> tuple[int, ...]:
    p = cfg.population
    if p.seeds:
        return tuple(p.seeds)
    return tuple(range(cfg.seed, cfg.seed + max(p.size, 1)))


@dataclasses.dataclass(frozen=True)
class Member:
    index: int
    seed: int
    setting: tuple[tuple[str, object], ...]  # the swept fields' values
    cfg: TrainConfig  # the member's own run: its seed, setting, directory; no population

    @property
    def name(self) -> str:
        return f"member-{self.index}"


def validate(cfg: TrainConfig) -> None:
    """Fail fast, in one line, on a population that cannot run (before any env or compile)."""
    p = cfg.population
    if p.seeds and p.size:
        raise ValueError(f"population: give seeds ({list(p.seeds)}) or size ({p.size}), not both")
    if p.size < 0:
        raise ValueError(f"population.size must be >= 0, got {p.size}")
    if len(set(p.seeds)) != len(p.seeds):
        raise ValueError(f"population.seeds repeats a seed: {list(p.seeds)}")
    parse_sweep(p.sweep)
    if cfg.env.backend == "envpool":
        raise ValueError("population: env.backend envpool steps its pools on the host, one per "
                         "run; a population needs envs inside the program (env.backend mjx)")
    if cfg.distributed or jax.process_count() > 1:
        raise ValueError("population: multi-host populations are not supported; run one "
                         "population per host")
    data, fsdp = parallel.mesh_shape(cfg.mesh, jax.device_count())
    if fsdp > 1:
        raise ValueError(f"population: members are split over devices along the data axis, "
                         f"not sharded (mesh.fsdp {fsdp}): pass --mesh.fsdp 1")
    per_setting = len(seeds(cfg))
    if per_setting % data:
        raise ValueError(f"population: {per_setting} members per setting cannot be split over "
                         f"{data} devices (mesh.data): give a multiple of {data} seeds, or "
                         "--mesh.data 1")


def wandb_group(cfg: TrainConfig, setting) -> str:
    """A member's W&B group (with ``--wandb.enabled``): the seeds of one setting form one
    group, named after the population (``--wandb.group``, else its run directory) and, in a
    sweep, the setting."""
    base = cfg.wandb.group or os.path.basename(os.path.normpath(cfg.run_dir))
    return base + "".join(f" {name}={value}" for name, value in setting)


def members(cfg: TrainConfig) -> list[Member]:
    """The members of ``cfg``'s population, setting-major: ``member-<k>`` is the k-th
    (setting, seed) pair."""
    sweep = parse_sweep(cfg.population.sweep)
    names = [name for name, _ in sweep]
    out = []
    for values in itertools.product(*(v for _, v in sweep)):
        setting = tuple(zip(names, values, strict=True))
        learner = dataclasses.replace(cfg.learner, **{n.split(".", 1)[1]: v for n, v in setting})
        for seed in seeds(cfg):
            k = len(out)
            out.append(Member(k, seed, setting, dataclasses.replace(
                cfg, seed=seed, learner=learner, population=PopulationConfig(),
                wandb=(dataclasses.replace(cfg.wandb, group=wandb_group(cfg, setting))
                       if cfg.wandb.enabled else cfg.wandb),
                mesh=dataclasses.replace(cfg.mesh, data=1, fsdp=1),  # a member: one device
                run_dir=os.path.join(cfg.run_dir, f"member-{k}"))))
    return out


def prepare(cfg: TrainConfig) -> tuple[TrainConfig, list[Member], list[str]]:
    """Claim the population's directory (a new one never overwrites a run, as
    ``rundir.prepare``), check a resume against its ``config.json``; returns
    ``(cfg, members, messages)``."""
    messages = []
    if cfg.resume:
        stored = rundir.read_config(cfg.run_dir)
        if stored is None:
            raise rundir.RunDirError(f"--resume: {cfg.run_dir} holds no population "
                                     "(no config.json)")
        changed = rundir.resume_changes(stored, cfg)
        if changed:
            messages.append("resuming with changed settings: " + ", ".join(changed))
    elif rundir.holds_run(cfg.run_dir):
        base, n = cfg.run_dir.rstrip("/"), 2
        while rundir.holds_run(f"{base}-{n}"):
            n += 1
        messages.append(f"{cfg.run_dir} already holds a run (--resume continues it); this "
                        f"population writes to {base}-{n}")
        cfg = dataclasses.replace(cfg, run_dir=f"{base}-{n}")
    rundir.check_writable(cfg.run_dir)
    found = members(cfg)
    if cfg.resume:  # a member without a checkpoint starts afresh in place, with the others
        found = [dataclasses.replace(m, cfg=dataclasses.replace(
            m.cfg, start_if_no_checkpoint=True)) for m in found]
    return cfg, found, messages


def common_checkpoint(found: list[Member]) -> int:
    """The newest checkpoint (env steps per task) that every member has (0: none)."""
    common = None
    for m in found:
        steps = set(rundir.checkpoint_steps(m.cfg.run_dir))
        common = steps if common is None else common & steps
    return max(common or {0})


# --- the state of a population ------------------------------------------------------------------

#: vmap axes of a stacked TrainState: every field per member but the shared step counter
def _axes(state: train.TrainState) -> train.TrainState:
    return state.replace(**{f.name: (None if f.name == "env_steps" else 0)
                            for f in dataclasses.fields(state)})


def stack(states: list[train.TrainState]) -> train.TrainState:
    """Member states on a leading axis (``env_steps``, equal in all, stays a scalar)."""
    first = states[0]
    if any(int(s.env_steps) != int(first.env_steps) for s in states):
        raise ValueError("population: members are at different env steps: "
                         f"{[int(s.env_steps) for s in states]}")
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[s.replace(env_steps=None) for s in states])
    return stacked.replace(env_steps=first.env_steps)


@functools.partial(jax.jit, static_argnums=2)
def _take(tree, index, shared):
    return tree if shared else jax.tree.map(lambda x: x[index], tree)


class MemberState:
    """One member's view of a stacked state: each field is sliced out when first read (an
    evaluation reads only ``learner``); :meth:`whole` is the member's ``TrainState``."""

    def __init__(self, stacked: train.TrainState, index: int):
        self._stacked, self._index, self._fields = stacked, index, {}

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._fields:
            value = getattr(self._stacked, name)
            self._fields[name] = None if value is None else _take(
                value, self._index, name == "env_steps")
        return self._fields[name]

    def whole(self) -> train.TrainState:
        return self._stacked.replace(**{f.name: getattr(self, f.name)
                                        for f in dataclasses.fields(self._stacked)})


# --- the run ------------------------------------------------------------------------------------

def _mapped(epoch_fn, state: train.TrainState):
    """``epoch_fn`` over the members one after another (``lax.map``): each member's ops have a
    single run's shapes, so its floats are a single run's, bit for bit."""
    steps = state.env_steps
    members, metrics = jax.lax.map(lambda member: epoch_fn(member.replace(env_steps=steps)),
                                   state.replace(env_steps=None))
    return members.replace(env_steps=members.env_steps[0]), metrics


def member_shardings(states: tuple, data: int):
    """Shardings that split every stacked leaf's member axis over ``data`` devices (the shared
    ``env_steps`` replicated); None on one device."""
    if data == 1:
        return None
    mesh = jax.sharding.Mesh(jax.devices()[:data], ("data",))
    split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    whole = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    return tuple(jax.tree.map(lambda _: split, s.replace(env_steps=None)).replace(env_steps=whole)
                 for s in states), whole


def compile_population_epoch(groups: list[tuple], states: tuple, vectorize: bool = True,
                             data: int = 1):
    """The population's epoch, compiled for ``states`` (a stacked state per setting); returns
    ``(epoch_fn, seconds)``. ``groups``: ``(agent, env, cfg, derived)`` per setting; members
    ``vectorize``d (``vmap``) or one after another (``lax.map``), split over ``data`` devices."""
    def epoch(states):
        out = []
        for (agent, env, cfg, derived), state in zip(groups, states, strict=True):
            fn = functools.partial(train.train_epoch, agent, env, cfg, derived)
            if vectorize:
                out.append(jax.vmap(fn, in_axes=(_axes(state),),
                                    out_axes=(_axes(state), 0))(state))
            else:
                out.append(_mapped(fn, state))
        return tuple(s for s, _ in out), tuple(m for _, m in out)

    t = time.perf_counter()
    shardings = member_shardings(states, data)
    if shardings is None:
        fn = jax.jit(epoch, donate_argnums=0)
    else:
        split, whole = shardings
        fn = jax.jit(epoch, in_shardings=(split,), out_shardings=(split, whole),
                     donate_argnums=0)
    fn = fn.lower(states).compile()
    return fn, time.perf_counter() - t


class _Prefixed(Console):
    """A console whose lines start with the member's name."""

    def __init__(self, prefix: str, quiet: bool):
        super().__init__(highlight=False, soft_wrap=True, quiet=quiet)
        self.prefix = prefix

    def print(self, *objects, **kwargs):
        super().print(self.prefix, *objects, **kwargs)


def set_up_members(cfg: TrainConfig, found: list[Member], env_factory: Callable,
                   agent_factory: Callable | None, console: Console) -> list:
    """Each member set up as a single run (``run.set_up``: envs, program, state, logger, its
    run directory), resumed at the checkpoint all have; then the population's own files."""
    from brc_mjx import run as run_lib

    restore_at = common_checkpoint(found) if cfg.resume else None
    sessions = []
    with rundir.removed_if_left_empty(cfg.run_dir):
        for m in found:
            sessions.append(run_lib.set_up(m.cfg, env_factory, agent_factory, restore_at,
                                           _Prefixed(f"{m.name} |", quiet=False)))
            if "envpool" in sessions[-1].env.backends:
                raise ValueError("population: task(s) on the EnvPool backend step on the host; "
                                 "a population needs envs inside the program (env.backend mjx)")
        rundir.write_json(os.path.join(cfg.run_dir, "config.json"), to_json(cfg))
        rundir.write_json(os.path.join(cfg.run_dir, rundir.POPULATION_FILE), {"members": [
            {"member": m.name, "seed": m.seed, "setting": dict(m.setting)} for m in found]})
    start = {s.start_epoch for s in sessions}
    if len(start) != 1:
        raise ValueError(f"population: members resumed at different epochs {sorted(start)}")
    return sessions


def stack_members(cfg: TrainConfig, found: list[Member], sessions: list):
    """Members of one setting share an agent and env: their states stacked per setting (split
    over the data axis); each session's state becomes a view of its member. Returns
    ``(groups, states, slots)``: ``(agent, env, cfg, derived)`` and the stacked state per
    setting, and each member's ``(setting, index)``."""
    settings = list(dict.fromkeys(m.setting for m in found))
    slots = [(settings.index(m.setting), [n.setting for n in found[:m.index]].count(m.setting))
             for m in found]
    groups, states = [], []
    for setting in settings:
        group = [s for m, s in zip(found, sessions, strict=True) if m.setting == setting]
        lead = group[0]
        groups.append((lead.agent, lead.env, lead.cfg, lead.program.derived))
        states.append(stack([s.state for s in group]))
    data, _ = parallel.mesh_shape(cfg.mesh, jax.device_count())
    shardings = member_shardings(tuple(states), data)
    states = tuple(states) if shardings is None else jax.device_put(tuple(states), shardings[0])
    for session, (g, i) in zip(sessions, slots, strict=True):
        session.state = MemberState(states[g], i)  # each member's own copy is freed
    return groups, states, slots


def run(cfg: TrainConfig, env_factory: Callable | None = None, max_epochs: int | None = None,
        agent_factory: Callable | None = None) -> dict:
    """Train (or resume) ``cfg``'s population; returns ``{"members": [each member's last
    record], "run_dir": ..., "epochs_done": ...}`` (and ``states``, the stacked states)."""
    from brc_mjx import run as run_lib
    from brc_mjx.hooks import Profile, default_hooks, prepare_hooks

    train.validate(cfg)
    validate(cfg)
    cfg, found, messages = prepare(cfg)
    console = Console(highlight=False, soft_wrap=True)
    for line in messages:
        console.print(line)
    console.print(f"population of {len(found)} in {cfg.run_dir}: " + "; ".join(
        f"{m.name} seed {m.seed}" + "".join(f" {n}={v}" for n, v in m.setting) for m in found))
    sessions = set_up_members(cfg, found, env_factory or run_lib.make_envs, agent_factory,
                              console)
    start_epoch, epochs = sessions[0].start_epoch, sessions[0].program.derived.epochs
    if start_epoch >= epochs:
        console.print(f"the population is complete ({start_epoch} of {epochs} epochs): nothing "
                      "to do (a larger --total-env-steps continues it)")
        for session in sessions:
            session.logger.close()
        return {"members": [], "run_dir": cfg.run_dir, "epochs_done": start_epoch}

    groups, states, slots = stack_members(cfg, found, sessions)
    data, _ = parallel.mesh_shape(cfg.mesh, jax.device_count())
    with console.status(f"compiling the population's epoch ({len(found)} members)"):
        epoch_fn, compile_s = compile_population_epoch(groups, states,
                                                         cfg.population.vectorize, data)
    console.print(f"compiled the population's epoch in {compile_s:.1f}s")
    hooks, side_compile_s = [], []
    for session in sessions:  # one profile of the population's program: member 0's
        member_hooks = [h for h in default_hooks(session, epoch_fn)
                        if session is sessions[0] or not isinstance(h, Profile)]
        side_compile_s.append(prepare_hooks(session, member_hooks))
        hooks.append(member_hooks)

    stop_epoch = epochs if max_epochs is None else min(epochs, start_epoch + max_epochs)
    last: list[dict] = [{} for _ in found]
    for hook in (h for member_hooks in hooks for h in member_hooks):
        hook.start()
    for index in range(start_epoch, stop_epoch):
        for hook in (h for member_hooks in hooks for h in member_hooks):
            hook.before(index)
        t = time.perf_counter()
        states, metrics = epoch_fn(states)
        metrics = jax.device_get(metrics)
        seconds = time.perf_counter() - t
        for m, session, member_hooks, (g, i) in zip(found, sessions, hooks, slots, strict=True):
            session.state = MemberState(states[g], i)
            own = jax.tree.map(lambda x: x[i], metrics[g])  # noqa: B023 - used at once
            extra = {"perf/compile_s": compile_s, "perf/eval_compile_s": side_compile_s[m.index],
                     "perf/population_size": len(found)} if index == start_epoch else None
            last[m.index].update(run_lib.finish_epoch(
                session, member_hooks, index, own, seconds, session.state, extra))
        if any(s.stop for s in sessions):
            break
    for session in sessions:
        session.logger.close()
    return {"members": last, "run_dir": cfg.run_dir, "epochs_done": stop_epoch,
            "states": states}
