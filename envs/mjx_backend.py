"""MJX backend: Playground's DM Control Suite and our HumanoidBench H1 tasks, vmapped, auto-reset.

Playground's stock `BraxAutoResetWrapper` writes the reset observation over `state.obs`, so the true
last observation of an episode is lost; the wrapper here keeps it as `final_obs`. Playground's DMC
envs never end an episode themselves except when the physics diverges (`done` = NaN in qpos/qvel);
that is a true termination here. The 1000-step time limit (`episode_length` in each task's config)
is applied here and reported as a truncation.

Playground defaults to `impl="warp"` (MuJoCo Warp), which needs an NVIDIA GPU and costs ~12 ms per
step on CPU; `impl="jax"` is the default here and `impl="warp"` is the switch for NVIDIA GPUs.

Playground's DMC envs read their observation and reward from `mjx.step`'s data, whose positions
and sensors come from the forward pass *before* the last substep's integration: a cheetah (one
substep per control step) is rewarded for the speed it had before the action. dm_control (and so
the official BRC code) reads them after the step. Here every DMC env's step ends with
`mjx.forward` (`_observed_after_step`), so observation and reward are those of the state the step
reached, as in dm_control; the dynamics are unchanged.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from envs.core import BackendStep, Renderable, TaskBackend


@flax.struct.dataclass
class MjxState:
    """Backend state for E envs of one Playground task."""

    env_state: Any  # Playground `mjx_env.State`, batched over E
    steps: jax.Array  # (E,) int32, steps taken in the current episode
    key: jax.Array  # (E, 2) uint32, per-env key for the next auto-reset


# Solver settings of Playground's DMC tasks: "port" keeps Playground's (e.g. cheetah 4 solver and
# 8 line-search iterations, Euler damping off), "eulerdamp" keeps its iterations and turns Euler
# (implicit) damping back on, "mujoco" sets MuJoCo's defaults, as dm_control's XMLs have them
# (the physics EnvPool runs, in float64 there). benchmarks/mjx_dynamics.py measures each one's
# step against dm_control's.
SOLVERS = {"port": {}, "eulerdamp": dict(eulerdamp=True),
           "mujoco": dict(iterations=100, ls_iterations=50, eulerdamp=True)}


def load_playground(mjx_id: str, impl: str = "jax", solver: str = "port",
                    **config_overrides: Any) -> Any:
    """Load a Playground dm_control_suite env with the given MJX implementation and solver
    settings (`SOLVERS`)."""
    import mujoco
    from mujoco_playground import dm_control_suite

    if not hasattr(mujoco.MjSpec, "find_body"):
        # Playground 0.2.0's reacher picks the MjSpec API by comparing version *strings*
        # ("3.17.0" < "3.3.0"), so with mujoco >= 3.10 it calls the removed `find_body`.
        mujoco.MjSpec.find_body = mujoco.MjSpec.body
    from mujoco_playground._src.dm_control_suite import walker

    env = dm_control_suite.load(mjx_id, config_overrides={"impl": impl, **config_overrides})
    if SOLVERS[solver]:
        from mujoco import mjx

        opt, settings = env._mj_model.opt, SOLVERS[solver]
        opt.iterations = settings.get("iterations", opt.iterations)
        opt.ls_iterations = settings.get("ls_iterations", opt.ls_iterations)
        if settings.get("eulerdamp"):
            opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
        env._mjx_model = mjx.put_model(env._mj_model, impl=impl)
    if int(env._config.action_repeat) != 1:  # Playground keeps action repeat in its config
        raise ValueError(f"{mjx_id}: expected action_repeat 1, got {env._config.action_repeat}")
    if isinstance(env, walker.PlanarWalker):
        env._get_obs = functools.partial(_walker_obs, env)
    env.reset = _observed_after_step(env.reset)
    env.step = _observed_after_step(env.step)
    return env


@contextlib.contextmanager
def _forward_after_substeps():
    """While open, Playground's `mjx_env.step` (the substeps of one control step) ends with
    `mjx.forward`: positions, sensors and velocities-derived fields of the state it reached."""
    from mujoco import mjx
    from mujoco_playground._src import mjx_env

    substeps = mjx_env.step

    def step(model, data, action, n_substeps=1):
        return mjx.forward(model, substeps(model, data, action, n_substeps))

    mjx_env.step = step
    try:
        yield
    finally:
        mjx_env.step = substeps


def _observed_after_step(method: Callable) -> Callable:
    """``method`` (a Playground env's reset or step) observing and rewarding the state its
    physics reached: Playground calls `mjx_env.step` by module attribute, so swapping it while
    the method runs (is traced) reaches every DMC env's step without copying one."""

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        with _forward_after_substeps():
            return method(*args, **kwargs)

    return wrapped


def _walker_obs(env: Any, data: Any, info: dict) -> jax.Array:
    """dm_control's walker observation: body orientations, torso *height*, joint velocities.

    Playground 0.2.0's walker puts the torso's zz orientation where dm_control has the torso's
    height (``xpos['torso', 'z']``); zz is already in the orientations, so that walker never sees
    how high it is, which 3/4 of its stand reward depends on (tests/test_envs_mjx.py compares
    with dm_control's own observation).
    """
    del info
    orientations = data.xmat[1:, [0, 0], [0, 2]].ravel()  # (2 * (bodies - 1),) xx, xz
    height = data.xpos[env._torso_id, 2]
    return jnp.concatenate([orientations, height.reshape(1), data.qvel])


def load_mjx(specs: Any, impl: str = "jax", solver: str = "port") -> Any:
    """The unbatched MJX env of registry task `specs` (Playground's DMC, our HumanoidBench H1),
    or of a tuple of ShadowHand tasks of one reward and object family (one batched model).

    One env object per task and implementation in a process (the train and eval envs of a run
    share it; it is only read), so that its physics is traced once (`traced_once`)."""
    return _load_mjx(specs if isinstance(specs, tuple) else (specs,), impl, solver)


@functools.cache
def _load_mjx(specs: tuple, impl: str, solver: str = "port") -> Any:
    spec = specs[0]
    if spec.suite == "shadowhand":
        from envs.shadowhand import RotateZ, get_object

        tasks = {s.mjx_id.split("/")[0] for s in specs}
        if len(tasks) != 1 or any(s.suite != "shadowhand" for s in specs):
            raise ValueError(f"one ShadowHand env holds one task, got {sorted(tasks)}")
        env = RotateZ(tuple(get_object(s.mjx_id.split("/")[1]) for s in specs), impl=impl,
                      dense=tasks == {"rotate-z-dense"})
        length = env.episode_length
    elif len(specs) > 1:
        raise ValueError(f"only ShadowHand tasks share one env, got {[s.name for s in specs]}")
    elif spec.suite == "humanoidbench":
        from envs.humanoidbench import H1Locomotion

        env = H1Locomotion(spec.mjx_id, impl=impl)
        length = env.episode_length
    else:
        env = load_playground(spec.mjx_id, impl=impl, solver=solver)
        length = int(env._config.episode_length)
    if length != spec.episode_length:
        raise ValueError(f"{spec.name}: the env's episode length {length} != the registry's")
    return env


@functools.cache
def traced_once(env: Any) -> tuple[Callable, Callable]:
    """`env.reset` and `env.step` (unbatched) as `jax.jit` functions, one pair per env object.

    JAX caches the jaxpr of a jitted function per input types, and the batched jaxpr per vmap
    axis size, so the MJX physics of a task is traced once per process however many programs
    and envs use it (the env sizes' `eval_shape`, the initial state, the training epoch, the
    evaluation with another number of envs): MJX tracing is most of a start's time on a CPU. The
    inner `jit`s are inlined into the programs that call them, which compute the same thing."""
    return jax.jit(env.reset), jax.jit(env.step)


def make_mjx_backend(env: Any, envs_per_task: int, episode_length: int) -> TaskBackend:
    """Wrap a single (unbatched) Playground-style env into a batched `TaskBackend`.

    Args:
      env: object with `reset(key) -> State` and `step(State, action) -> State` where `State` has
        `obs`, `reward`, `done` (Playground's `mjx_env.State`), and `action_size`. An env of
        several tasks (`num_variants = V`, e.g. the ShadowHand's objects of one family) takes
        `reset(key, variant)` and keeps the variant in its state; its `State.success` is the
        task's success flag (reported at an episode's last step only where the env has
        `success_at_end`).
      envs_per_task: E, envs per task stepped in parallel (vmapped): V * E envs in all, task-major.
      episode_length: time limit in steps; reaching it is a truncation.

    Returns:
      A `TaskBackend` whose step auto-resets ended envs and reports their true final obs.
    """
    env_reset, env_step = traced_once(env)
    num_tasks = int(getattr(env, "num_variants", 1))
    num_envs = num_tasks * envs_per_task
    # The variant (task) of each env, task-major; envs of one-task envs take only the key.
    variants = ((jnp.asarray(np.repeat(np.arange(num_tasks, dtype=np.int32), envs_per_task)),)
                if hasattr(env, "num_variants") else ())
    v_reset = jax.vmap(env_reset)
    v_step = jax.vmap(env_step)
    success_at_end = bool(getattr(env, "success_at_end", False))

    def reset(key: jax.Array) -> tuple[MjxState, jax.Array]:
        keys = jax.random.split(key, (num_envs, 2))  # (E, 2, 2): reset key, carried key
        env_state = v_reset(keys[:, 0], *variants)
        state = MjxState(
            env_state=env_state, steps=jnp.zeros((num_envs,), jnp.int32), key=keys[:, 1]
        )
        return state, env_state.obs.astype(jnp.float32)

    def step(state: MjxState, action: jax.Array) -> BackendStep:
        action = jnp.clip(action, -1.0, 1.0)
        next_env_state = v_step(state.env_state, action)
        steps = state.steps + 1
        # A diverged simulation (Playground's only `done`) ends the episode for good; its NaNs are
        # zeroed so they cannot reach replay (the transition is terminal, nothing bootstraps).
        terminated = next_env_state.done > 0
        truncated = (steps >= episode_length) & ~terminated
        ended = terminated | truncated
        final_obs = jnp.nan_to_num(next_env_state.obs.astype(jnp.float32))
        reward = jnp.nan_to_num(next_env_state.reward.astype(jnp.float32))

        keys = jax.vmap(jax.random.split)(state.key)  # (E, 2, 2)
        reset_keys, carry_keys = keys[:, 0], keys[:, 1]

        def reset_ended(env_state: Any) -> Any:
            fresh = v_reset(reset_keys, *variants)

            def pick(new: jax.Array, old: jax.Array) -> jax.Array:
                mask = ended.reshape(ended.shape + (1,) * (old.ndim - 1))
                return jnp.where(mask, new, old)

            return jax.tree.map(pick, fresh, env_state)

        success = getattr(next_env_state, "success", None)
        if success is None:
            success = jnp.zeros((num_envs,), bool)
        elif success_at_end:
            success = success & ended

        # DMC episodes end in lockstep, so most steps skip the (costly) reset entirely.
        env_state = jax.lax.cond(ended.any(), reset_ended, lambda s: s, next_env_state)
        new_state = MjxState(
            env_state=env_state, steps=jnp.where(ended, 0, steps), key=carry_keys
        )
        return BackendStep(
            state=new_state,
            obs=jnp.where(ended[:, None], env_state.obs.astype(jnp.float32), final_obs),
            final_obs=final_obs,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            success=success,
        )

    return TaskBackend(
        reset=reset, step=step, num_envs=num_envs, action_dim=int(env.action_size),
        renderables=renderables(env, envs_per_task), num_tasks=num_tasks,
    )


def renderables(env: Any, envs_per_task: int) -> tuple[Renderable, ...]:
    """One `Renderable` per task of `env`: its CPU model (`render_model` / `mj_model`, or
    `mj_models[i]` for the i-th task of a several-task env) and the qpos of its own envs."""
    models = getattr(env, "mj_models", None) or [
        getattr(env, "render_model", None) or getattr(env, "mj_model", None)]
    if any(m is None for m in models):
        return ()
    fps = 1.0 / float(env.dt)

    def task_qpos(i: int) -> Callable[[MjxState], jax.Array]:
        return lambda state: state.env_state.data.qpos[i * envs_per_task:(i + 1) * envs_per_task]

    return tuple(Renderable(model=m, fps=fps, qpos=task_qpos(i)) for i, m in enumerate(models))
