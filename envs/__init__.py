"""Vectorized, jit-able environments for BRC: one functional API over MJX and EnvPool.

    env = envs.make("dmc-easy", envs_per_task=8)          # or ["dmc/cheetah-run", ...]
    state = env.reset(key)                               # EnvState, fixed shapes
    state = env.step(state, action)                      # action: (env.num_envs, env.action_dim)

`reset` and `step` are pure functions (no Python state is touched while tracing) and run inside
`jax.jit` / `lax.scan`. See `envs/README.md` for the transition contract and the backends.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from envs.core import BackendStep, Env, EnvState, Renderable, TaskBackend
from envs.multitask import make_multitask, pad_env, record_episodes, rewrap, scale_rewards
from envs.registry import (
    SUITES,
    TASKS,
    AtariOptions,
    TaskSpec,
    UnknownTaskError,
    get_task,
    normalised_scores,
    resolve_tasks,
)

BACKENDS = ("mjx", "envpool", "auto")

__all__ = [
    "AtariOptions",
    "BACKENDS",
    "SUITES",
    "TASKS",
    "BackendStep",
    "Env",
    "EnvState",
    "Renderable",
    "TaskBackend",
    "TaskSpec",
    "UnknownTaskError",
    "get_task",
    "make",
    "make_multitask",
    "normalised_scores",
    "pad_env",
    "rewrap",
    "scale_rewards",
    "record_episodes",
    "resolve_tasks",
]


def _pick_backend(spec: TaskSpec, wanted: str) -> str:
    if wanted not in BACKENDS:
        raise ValueError(f"unknown backend {wanted!r}; expected one of {BACKENDS}")
    if wanted == "auto":
        return spec.backends[0]
    if wanted not in spec.backends:
        raise ValueError(
            f"{spec.name} has no {wanted!r} backend (it has {', '.join(spec.backends)}); "
            "use backend 'auto' (--env.backend auto) or a per-task mapping"
        )
    return wanted


def _batch_key(spec: TaskSpec, backend: str) -> tuple:
    """Tasks with equal keys, when consecutive, are stepped by one backend."""
    if spec.suite == "shadowhand" and backend == "mjx":
        from envs.shadowhand.objects import family_of

        task, name = spec.mjx_id.split("/")
        return ("shadowhand", task, family_of(name))
    return ("task", spec.name)


def make(
    tasks: str | Sequence[str],
    envs_per_task: int,
    backend: str | Mapping[str, str] = "mjx",
    seed: int = 0,
    episode_length: int | None = None,
    mjx_impl: str = "jax",
    envpool_threads: int = 0,
    atari: AtariOptions | None = None,
    mjx_solver: str = "port",
) -> Env:
    """Build a task-major multi-task `Env` of `len(tasks) * envs_per_task` envs.

    Args:
      tasks: task names (`"dmc/cheetah-run"`), suite names (`"dmc-easy"`), or a list of both.
      envs_per_task: E, parallel envs per task.
      backend: `"mjx"`, `"envpool"` or `"auto"` (MJX where Playground has the task, else
        EnvPool), for all tasks; or a mapping from task name to backend (unlisted tasks: auto).
      seed: EnvPool seed; task t's pool gets `seed + t * envs_per_task` (EnvPool then seeds its
        env i with that + i). MJX randomness comes from the `reset` key instead.
      episode_length: override every task's time limit (steps); None keeps the registry's.
      mjx_impl: MJX implementation, `"jax"` (any device) or `"warp"` (NVIDIA GPUs only).
      envpool_threads: EnvPool worker threads per task (0: EnvPool's default).
      atari: EnvPool settings of Atari tasks (sticky actions, reward clipping, action set);
        None: `AtariOptions()`'s defaults.
      mjx_solver: physics of Playground's DMC tasks on MJX: `"port"` (Playground's solver
        settings), `"eulerdamp"` (those, with Euler damping on, as dm_control's) or `"mujoco"`
        (MuJoCo's defaults, as dm_control's); `mjx_backend.SOLVERS`.

    Returns:
      The `Env`; its `reset` / `step` are pure and jit-able.
    """
    from envs.mjx_backend import SOLVERS

    if mjx_solver not in SOLVERS:
        raise ValueError(f"mjx_solver {mjx_solver!r}: expected one of {', '.join(SOLVERS)}")
    specs = resolve_tasks(tasks)
    if envs_per_task < 1:
        raise ValueError(f"envs_per_task must be >= 1, got {envs_per_task}")
    if atari is not None:
        atari.validate()  # before any pool is created
    if isinstance(backend, Mapping):
        per_task = {get_task(k).name: v for k, v in backend.items()}
    else:
        per_task = {spec.name: backend for spec in specs}
    chosen = [_pick_backend(spec, per_task.get(spec.name, "auto")) for spec in specs]
    backend_names, backends, lengths = [], [], []
    t = 0  # first task of the current backend
    # Consecutive tasks with one batch key share a backend (ShadowHand objects of one family and
    # reward: one batched model, one compiled step); every other task has its own.
    for _, group in itertools.groupby(zip(specs, chosen, strict=True),
                                      key=lambda sc: _batch_key(*sc)):
        run = [spec for spec, _ in group]
        spec, name = run[0], chosen[t]
        length = episode_length or spec.episode_length
        if name == "mjx":
            from envs.mjx_backend import load_mjx, make_mjx_backend

            backends.append(make_mjx_backend(load_mjx(tuple(run), mjx_impl, mjx_solver),
                                             envs_per_task, length))
        else:
            from envs.envpool_backend import make_envpool_backend

            task_seed = (seed + t * envs_per_task) % (2**31 - envs_per_task)
            backends.append(make_envpool_backend(spec, envs_per_task, task_seed, length,
                                                 envpool_threads, atari))
        backend_names.extend([name] * len(run))
        lengths.extend([length] * len(run))
        t += len(run)
    return make_multitask(
        task_names=[s.name for s in specs],
        backend_names=backend_names,
        backends=backends,
        episode_lengths=lengths,
        has_success=[s.has_success for s in specs],
    )
