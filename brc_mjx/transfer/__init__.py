"""Transfer to new tasks (spec section 9): start a run from another run's weights or its data.

**Model transfer** (``--init-from RUN_DIR``): the critic, target critic and actor of the source's
checkpoint are loaded into a run whose task list may mix the source's tasks and new ones. Tasks
are matched by name: a source task keeps its embedding row bit-exactly (and its reward
statistics); a new task gets a fresh row (``transfer.new_embedding``: the initialiser's draw or
the mean of the source rows) and fresh statistics. Optimisers start fresh and the temperature at
``init_alpha`` unless ``transfer.keep_optimizer`` / ``keep_temperature``; the replay starts
empty. The run keeps the source's padded input sizes (its envs are padded to them) and, from a
multi-task source, its task input even when it trains a single task.

**Data transfer** (``--replay-from RUN_DIR``, the paper's baseline): a freshly initialised learner
whose replay is seeded with the source checkpoint's stored transitions of every source task.
Source tasks that this run has no envs for become *offline tasks*: they get embedding rows, are
sampled like any task (each of the ``T_env + T_source`` rings gets an equal share of a batch) and
are never collected. Their reward statistics come with their data (without them a task that
never finishes an episode here would train on raw rewards).

Everything a run needs from its sources is resolved before any env is built and written to
``<run_dir>/transfer.json``; a resumed run reads it from there (the source may be gone by then).
Incompatible sources fail in one line naming the bad value.
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from brc_mjx import checkpoint, rundir
from brc_mjx import replay as replay_lib
from brc_mjx.agents.brc import leaf as brc_leaf
from brc_mjx.core.blocks import EMBEDDING_KEY
from brc_mjx.core.normalizer import NormalizerState

PLAN_FILE = "transfer.json"

#: Network fields a model transfer must share with its source (they set the weights' shapes or
#: what the outputs mean).
NETWORK_FIELDS = ("critic_width", "critic_depth", "ensemble_size", "actor_width", "actor_depth",
                  "embedding_dim", "num_atoms", "v_min", "v_max", "critic_arch",
                  "task_conditioning")


class TransferError(ValueError):
    """A transfer source cannot be used as asked (always one line)."""


@dataclasses.dataclass(frozen=True)
class Source:
    """What a run takes from one source run: where, which checkpoint, its tasks and sizes."""

    run_dir: str
    step: int
    task_names: tuple[str, ...]  # the source learner's tasks (its embedding rows, in order)
    action_dims: tuple[int, ...]
    obs_dim: int  # the source's padded input sizes
    action_dim: int
    network: dict  # the source's learner.network config
    critic_loss: str
    replay_capacity: int  # per task
    replay_obs_dtype: str
    replay_tasks: int  # rings in its replay (its tasks with envs)

    @property
    def task_input(self) -> bool:
        """Whether the source's networks read a task input (several tasks)."""
        return len(self.task_names) > 1

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.run_dir, "checkpoints")


def read_source(run_dir: str, step: int, flag: str) -> Source:
    """Read and check the source run ``run_dir`` (config.json, meta.json, checkpoint ``step``)."""
    if not os.path.isdir(run_dir):
        raise TransferError(f"{flag}: {run_dir} is not a directory")
    config = rundir.read_config(run_dir)
    meta_path = os.path.join(run_dir, "meta.json")
    if config is None or not os.path.exists(meta_path):
        raise TransferError(f"{flag}: {run_dir} is not a brc_mjx run directory (no config.json "
                            "or meta.json)")
    with open(meta_path) as f:
        meta = json.load(f)
    if "action_dims" not in meta:
        raise TransferError(f"{flag}: {meta_path} has no action_dims (written by an older "
                            "brc_mjx); resume the source run once with this version to add them")
    by_env_steps = rundir.checkpoints_by_env_steps(run_dir)
    if not by_env_steps:
        raise TransferError(f"{flag}: {run_dir} holds no checkpoint")
    if step == -1:
        step = by_env_steps[max(by_env_steps)]
    elif step not in by_env_steps:
        raise TransferError(f"{flag}: {run_dir} has no checkpoint at {step} env steps per task "
                            f"(it has {', '.join(map(str, sorted(by_env_steps)))})")
    else:
        step = by_env_steps[step]
    names = meta["task_names"]
    return Source(
        run_dir=os.path.abspath(run_dir), step=step, task_names=tuple(names),
        action_dims=tuple(int(a) for a in meta["action_dims"]), obs_dim=int(meta["obs_dim"]),
        action_dim=int(meta["action_dim"]), network=dict(config["learner"]["network"]),
        critic_loss=config["learner"]["critic_loss"],
        replay_capacity=int(config["replay"]["capacity_per_task"]),
        replay_obs_dtype=config["replay"]["obs_dtype"],
        replay_tasks=len(meta.get("env_task_names", names)),
    )


@dataclasses.dataclass(frozen=True)
class Plan:
    """A run's sources and what follows from them for its structure."""

    init: Source | None = None  # --init-from
    replay: Source | None = None  # --replay-from

    @property
    def active(self) -> bool:
        return self.init is not None or self.replay is not None

    def sizes(self, env) -> tuple[int, int]:
        """Padded ``(obs_dim, action_dim)`` of the run: the sources' (the env's if none)."""
        source = self.init or self.replay
        if source is None:
            return env.obs_dim, env.action_dim
        return source.obs_dim, source.action_dim

    def offline_tasks(self, env) -> tuple[str, ...]:
        """Seeded source tasks this run has no envs for (learner tasks after the env's)."""
        if self.replay is None:
            return ()
        return tuple(t for t in self.replay.task_names if t not in env.task_names)

    def learner_tasks(self, env) -> tuple[str, ...]:
        """The learner's tasks (embedding rows): the env's, then the offline ones."""
        return tuple(env.task_names) + self.offline_tasks(env)

    def learner_action_dims(self, env) -> tuple[int, ...]:
        replay = self.replay
        dims = dict(zip(replay.task_names, replay.action_dims, strict=True)) if replay else {}
        return tuple(env.action_dims) + tuple(dims[t] for t in self.offline_tasks(env))

    def task_input(self, env) -> bool | None:
        """Force a task input for a single task trained from a multi-task network."""
        if self.init is not None and self.init.task_input:
            return True
        return None

    def to_json(self) -> dict:
        return {"init": self.init and dataclasses.asdict(self.init),
                "replay": self.replay and dataclasses.asdict(self.replay)}

    @staticmethod
    def from_json(obj: dict) -> Plan:
        def source(d):
            if d is None:
                return None
            return Source(**{**d, "task_names": tuple(d["task_names"]),
                             "action_dims": tuple(d["action_dims"])})
        return Plan(init=source(obj.get("init")), replay=source(obj.get("replay")))


def _check_network(source: Source, cfg) -> None:
    net = dataclasses.asdict(cfg.learner.network)
    for name in NETWORK_FIELDS:
        if source.network.get(name) != net[name]:
            raise TransferError(
                f"--init-from {source.run_dir}: learner.network.{name} is "
                f"{source.network.get(name)!r} there and {net[name]!r} here (a transferred "
                "network keeps the source's sizes)")
    if source.critic_loss != cfg.learner.critic_loss:
        raise TransferError(f"--init-from {source.run_dir}: learner.critic_loss is "
                            f"{source.critic_loss!r} there and {cfg.learner.critic_loss!r} here")


def plan(cfg, restore: bool) -> Plan:
    """Resolve the run's sources before anything is built (one-line errors).

    A resumed run (``restore``) reads the plan stored in its run directory.
    """
    stored = os.path.join(cfg.run_dir, PLAN_FILE)
    if restore and os.path.exists(stored):
        with open(stored) as f:
            return Plan.from_json(json.load(f))
    t = cfg.transfer
    if t.new_embedding not in ("random", "mean"):
        raise TransferError(f"transfer.new_embedding must be 'random' or 'mean', got "
                            f"{t.new_embedding!r}")
    for name in ("init_step", "replay_step"):
        if getattr(t, name) < -1:
            raise TransferError(f"transfer.{name} must be a checkpoint number or -1, got "
                                f"{getattr(t, name)}")
    defaults = type(t)()
    for name, flag in (("init_step", "init_from"), ("new_embedding", "init_from"),
                       ("keep_optimizer", "init_from"), ("keep_temperature", "init_from"),
                       ("replay_step", "replay_from")):
        if getattr(t, name) != getattr(defaults, name) and not getattr(cfg, flag):
            raise TransferError(f"transfer.{name} ({getattr(t, name)!r}) has no effect without "
                                f"--{flag.replace('_', '-')}")
    init = read_source(cfg.init_from, t.init_step, "--init-from") if cfg.init_from else None
    replay = (read_source(cfg.replay_from, t.replay_step, "--replay-from")
              if cfg.replay_from else None)
    if init is not None:
        _check_network(init, cfg)
    if init is not None and replay is not None and (
            (init.obs_dim, init.action_dim) != (replay.obs_dim, replay.action_dim)):
        raise TransferError(
            f"--init-from and --replay-from have different padded inputs (obs/action "
            f"{init.obs_dim}/{init.action_dim} and {replay.obs_dim}/{replay.action_dim})")
    return Plan(init=init, replay=replay)


def check_env(plan: Plan, env, cfg) -> None:
    """Checks that need the env's sizes (run right after the envs are built, before the learner)."""
    if not plan.active:
        return
    obs_cap, action_cap = plan.sizes(env)
    flag = "--init-from" if plan.init else "--replay-from"
    source = plan.init or plan.replay
    obs_dims = tuple(getattr(env, "obs_dims", ()) or (env.obs_dim,) * env.num_tasks)
    for name, obs_dim, action_dim in zip(env.task_names, obs_dims, env.action_dims, strict=True):
        if obs_dim > obs_cap:
            raise TransferError(f"{flag} {source.run_dir}: {name} has observation size "
                                f"{obs_dim}, larger than the source's padded input {obs_cap}")
        if action_dim > action_cap:
            raise TransferError(f"{flag} {source.run_dir}: {name} has action size "
                                f"{action_dim}, larger than the source's padded input "
                                f"{action_cap}")
    if plan.init is not None:
        tasks = plan.learner_tasks(env)
        if not plan.init.task_input and len(tasks) > 1:
            raise TransferError(f"--init-from {plan.init.run_dir}: a single-task network has no "
                                f"task input, so it cannot start a run of {len(tasks)} tasks")
        conditioning = cfg.learner.network.task_conditioning
        if conditioning != "embedding" and tasks != plan.init.task_names:
            raise TransferError(
                f"--init-from {plan.init.run_dir}: task_conditioning {conditioning!r} ties the "
                "network to the source's task list; new or reordered tasks need 'embedding'")


def fit_envs(plan: Plan, cfg, env, eval_env=None):
    """Check the envs against the plan and pad them to the sources' input sizes."""
    check_env(plan, env, cfg)
    if not plan.active:
        return env, eval_env
    from envs import pad_env

    sizes = plan.sizes(env)
    return pad_env(env, *sizes), eval_env and pad_env(eval_env, *sizes)


def save_plan(plan: Plan, run_dir: str) -> None:
    if plan.active:
        rundir.write_json(os.path.join(run_dir, PLAN_FILE), plan.to_json())


# --- loading -----------------------------------------------------------------------------------

_WEIGHTS = (brc_leaf("actor_params"), brc_leaf("critic_params"),
            brc_leaf("target_critic_params"))
_OPTIMIZER = (brc_leaf("actor_opt_state"), brc_leaf("critic_opt_state"))
_TEMPERATURE = (brc_leaf("log_alpha"), brc_leaf("temperature_opt_state"))
#: Per-task statistics (leading axis = the learner's tasks); new tasks keep their fresh rows.
_STATS = ("return_max", "return_min", "episodes")  # NormalizerState's per-task fields
assert set(_STATS) <= {f.name for f in dataclasses.fields(NormalizerState)}
_NORMALIZER = brc_leaf("normalizer")
_TASK_ROWS = tuple(f"{_NORMALIZER}.{name}" for name in _STATS) + (brc_leaf("policy_entropy"),)
_EMBEDDING = f"[{EMBEDDING_KEY!r}]"


def row_map(source_tasks, target_tasks) -> np.ndarray:
    """For each target task, its row in the source (``-1`` for a new task)."""
    index = {name: i for i, name in enumerate(source_tasks)}
    return np.asarray([index.get(name, -1) for name in target_tasks], np.int64)


def map_rows(source: np.ndarray, fresh: np.ndarray, rows: np.ndarray,
             new: str = "fresh") -> np.ndarray:
    """``fresh`` with row ``k`` replaced by ``source[rows[k]]`` where ``rows[k] >= 0``; new rows
    stay ``fresh`` (``new="fresh"``) or take the mean of the source rows (``new="mean"``)."""
    out = np.array(fresh, copy=True)
    known = rows >= 0
    out[known] = source[rows[known]]
    if new == "mean" and np.any(~known):
        out[~known] = np.mean(source, axis=0, dtype=np.float64).astype(out.dtype)
    return out


def _put(value: np.ndarray, like) -> jax.Array:
    sharding = getattr(like, "sharding", None)
    value = np.asarray(value, dtype=like.dtype)
    return jax.device_put(value, sharding) if sharding is not None else jnp.asarray(value)


def _load_model(state, source: Source, tasks, cfg):
    """``state`` with the source's weights (and, as configured, optimiser / temperature) and
    the per-task rows of its source tasks."""
    _, leaves = checkpoint.read_leaves(source.checkpoint_dir, source.step,
                                       prefixes=(".learner.",))  # not the replay
    rows = row_map(source.task_names, tasks)
    t = cfg.transfer
    prefixes = _WEIGHTS + (_OPTIMIZER if t.keep_optimizer else ()) + (
        _TEMPERATURE if t.keep_temperature else ())
    flat, treedef = jax.tree_util.tree_flatten_with_path(state)
    out = []
    for path, leaf in flat:
        name = jax.tree_util.keystr(path)
        if name in _TASK_ROWS and name in leaves:
            leaf = _put(map_rows(leaves[name], np.asarray(leaf), rows), leaf)
        elif name.startswith(prefixes) and leaf.size > 0:
            if name not in leaves:
                raise TransferError(f"--init-from {source.run_dir}: checkpoint {source.step} "
                                    f"has no {name}")
            value = leaves[name]
            if name.endswith(_EMBEDDING):
                is_param = name.startswith(_WEIGHTS)
                value = map_rows(value, np.asarray(leaf), rows,
                                 t.new_embedding if is_param else "fresh")
            elif value.shape != leaf.shape:
                raise TransferError(f"--init-from {source.run_dir}: {name} is {value.shape} "
                                    f"there and {leaf.shape} here")
            leaf = _put(value, leaf)
        out.append(leaf)
    return jax.tree_util.tree_unflatten(treedef, out)


def _load_replay(state, source: Source, tasks):
    """``state`` with its offline replay holding every stored transition of the source's tasks
    (relabelled with this run's task ids) and their reward statistics."""
    _, leaves = checkpoint.read_leaves(source.checkpoint_dir, source.step,
                                       prefixes=(".replay.", _NORMALIZER + "."))
    ids = row_map(tasks, source.task_names[: source.replay_tasks])  # source ring -> our task
    data = {}
    for field in dataclasses.fields(replay_lib.Transition):
        like = getattr(state.offline.data, field.name)
        value = leaves[f".replay.data.{field.name}"]
        if field.name == "task_id":
            value = ids[np.asarray(value)].astype(np.int32)
        if value.shape != like.shape:
            raise TransferError(f"--replay-from {source.run_dir}: its replay {field.name} is "
                                f"{value.shape}, this run expects {like.shape}")
        data[field.name] = _put(value, like)
    offline = state.offline.replace(
        data=replay_lib.Transition(**data),
        insert_pos=_put(leaves[".replay.insert_pos"], state.offline.insert_pos),
        size=_put(leaves[".replay.size"], state.offline.size))
    rows = row_map(source.task_names, tasks)
    normalizer = state.learner.normalizer
    stats = {name: _put(map_rows(leaves[f"{_NORMALIZER}.{name}"],
                                 np.asarray(getattr(normalizer, name)), rows),
                        getattr(normalizer, name))
             for name in _STATS}
    learner = state.learner.replace(normalizer=normalizer.replace(**stats))
    return state.replace(offline=offline, learner=learner)


def load(state, plan: Plan, tasks, cfg):
    """A fresh ``TrainState`` with the plan's sources loaded into it (the replay source first,
    so a task in both keeps the model source's statistics)."""
    if plan.replay is not None:
        state = _load_replay(state, plan.replay, tasks)
    if plan.init is not None:
        state = _load_model(state, plan.init, tasks, cfg)
    return state


def describe(plan: Plan, tasks, cfg) -> list[str]:
    """Lines for the console saying what was taken from where."""
    lines = []
    if plan.init is not None:
        kept = [t for t in tasks if t in plan.init.task_names]
        new = [t for t in tasks if t not in plan.init.task_names]
        extra = [n for n, on in (("optimisers", cfg.transfer.keep_optimizer),
                                 ("temperature", cfg.transfer.keep_temperature)) if on]
        lines.append(
            f"model transfer from {plan.init.run_dir} checkpoint {plan.init.step}: weights"
            f"{''.join(', ' + e for e in extra)}; source tasks kept: {', '.join(kept) or 'none'}"
            f"; new tasks ({cfg.transfer.new_embedding} embedding): {', '.join(new) or 'none'}")
    if plan.replay is not None:
        lines.append(f"data transfer from {plan.replay.run_dir} checkpoint {plan.replay.step}: "
                     f"its replay of {', '.join(plan.replay.task_names[:plan.replay.replay_tasks])}"
                     " seeds this run")
    return lines
