"""EnvPool backend: EnvPool's C++ thread pool, stepped from inside the jitted program.

Why a host callback and not EnvPool's XLA interface (`pool.xla()`), measured on this machine
(2 shared CPU cores, jax 0.9.2, envpool 1.2.5; `jit(fori_loop(step))`, steady state, one process per
measurement, raw step only, no auto-reset handling):

    CheetahRun, 32 envs    XLA (scoped x64) 130k steps/s    io_callback  86k steps/s
    CheetahRun, 64 envs    XLA: segfault                    io_callback 168k steps/s
    DogRun,     32 envs    XLA 2.2k steps/s                 io_callback  3.9k steps/s

The XLA path is only faster where the step itself is nearly free, it crashes at 64+ envs, it
needs float64 inputs (so `jax.enable_x64` around every call), and its fixed-shape send/recv cannot
reset a *subset* of envs: hiding EnvPool's reset step (below) would need a second full-batch step
that also advances the envs that did not end. The host callback does all of that in NumPy.

EnvPool's auto-reset convention: the step after an episode's LAST step returns the new episode's
FIRST observation and ignores the action. Such a step is not a transition, so it must never be
returned. Here, when envs end, the callback immediately steps just those envs once more (the reset
step, zero action) and returns their FIRST observation as `obs`, the real last one as `final_obs`.

EnvPool reports a time-limit end with discount 1 for DMC but discount 0 for MetaWorld, so the
time limit is tracked here: an end at the time limit (or with discount 1) is a truncation, any
other end a termination.

The pool's state lives on the host; the jitted `EnvState` carries only a tick counter, checked on
every step, so reusing a stale `EnvState` (which cannot rewind the host pool) fails loudly.
"""

from __future__ import annotations

import numpy as np
from jax import ShapeDtypeStruct
from jax import numpy as jnp
from jax.experimental import io_callback

from envs.core import BackendStep, TaskBackend
from envs.registry import AtariOptions, TaskSpec

_FIRST, _LAST = 0, 2
_TICK_MOD = 2**31 - 1


class HostPool:
    """One EnvPool (dm_env API) for E envs of one task, with reset steps hidden."""

    def __init__(
        self,
        spec: TaskSpec,
        num_envs: int,
        seed: int,
        episode_length: int,
        num_threads: int = 0,
        options: dict | None = None,
    ):
        import envpool

        self.pool = envpool.make_dm(
            spec.envpool_id,
            num_envs=num_envs,
            batch_size=num_envs,
            num_threads=num_threads,
            seed=seed,
            max_episode_steps=episode_length,
            **(options or {}),
        )
        self.num_envs = num_envs
        self.episode_length = episode_length
        self.discrete = spec.discrete
        obs_spec = self.pool.spec.observation_spec()
        self.obs_keys = spec.envpool_obs_keys or tuple(
            k for k in obs_spec._fields if k not in ("env_id", "players")
        )
        shapes = [tuple(getattr(obs_spec, k).shape) for k in self.obs_keys]
        if spec.discrete:  # image observations keep their shape and uint8 dtype
            (self.obs_shape,) = shapes
            self.obs_dtype = np.dtype(getattr(obs_spec, self.obs_keys[0]).dtype)
        else:
            self.obs_shape = (sum(int(np.prod(s)) for s in shapes),)
            self.obs_dtype = np.dtype(np.float32)
        self.has_success = "success" in obs_spec._fields
        action_spec = self.pool.spec.action_spec()
        self.action_dtype = np.dtype(action_spec.dtype)
        self.action_dim = int(action_spec.num_values) if spec.discrete else action_spec.shape[0]
        # Agents act in [-1, 1]; a task whose actuators have other limits (quadruped: lift up to
        # 1.1, extend within +-0.8) gets them mapped linearly onto its range, as dm_control
        # users do (gymnasium's RescaleAction). [-1, 1] tasks pass through untouched.
        self.action_low = self.action_high = None
        if not spec.discrete:
            low = np.broadcast_to(np.asarray(action_spec.minimum, np.float32), (self.action_dim,))
            high = np.broadcast_to(np.asarray(action_spec.maximum, np.float32), (self.action_dim,))
            if not ((low == -1).all() and (high == 1).all()):
                self.action_low, self.action_high = low, high
        self.elapsed = np.zeros(num_envs, np.int64)
        self.tick = 0

    def _obs(self, ts) -> tuple[np.ndarray, np.ndarray]:
        """Observations of a timestep in env order, and the order permutation."""
        order = np.argsort(ts.observation.env_id)
        n = len(order)
        if self.discrete:
            obs = np.asarray(getattr(ts.observation, self.obs_keys[0]))
        else:
            obs = np.concatenate(
                [np.asarray(getattr(ts.observation, k)).reshape(n, -1) for k in self.obs_keys], 1
            ).astype(np.float32)
        return obs[order], order

    def _next_tick(self) -> np.ndarray:
        self.tick = (self.tick + 1) % _TICK_MOD
        return np.asarray(self.tick, np.int32)

    def reset(self, tick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        del tick  # a reset is valid from any state
        obs, _ = self._obs(self.pool.reset())
        self.elapsed[:] = 0
        return obs, self._next_tick()

    def step(self, tick: np.ndarray, action: np.ndarray):
        if int(tick) != self.tick:
            raise RuntimeError(
                f"stale EnvState for EnvPool task {self.pool.spec.config.task_name!r}: its envs "
                "live on the host and cannot be rewound; step only the latest EnvState"
            )
        if self.action_low is not None:
            action = self.action_low + (np.asarray(action) + 1) * 0.5 * (
                self.action_high - self.action_low)
        ts = self.pool.step(np.asarray(action, self.action_dtype), np.arange(self.num_envs))
        final_obs, order = self._obs(ts)
        reward = np.asarray(ts.reward, np.float32)[order]
        last = np.asarray(ts.step_type)[order] == _LAST
        discount = np.asarray(ts.discount)[order]
        if self.has_success:
            success = np.asarray(ts.observation.success)[order] > 0
        else:
            success = np.zeros(self.num_envs, bool)
        self.elapsed += 1
        terminated = last & (discount == 0) & (self.elapsed < self.episode_length)
        truncated = last & ~terminated

        obs = final_obs.copy()
        ended = np.flatnonzero(last)
        if ended.size:
            # EnvPool's reset step for the ended envs: action ignored, returns FIRST obs.
            zeros = np.zeros((ended.size, *np.shape(action)[1:]), self.action_dtype)
            ts_reset = self.pool.step(zeros, ended.astype(np.int32))
            if not (np.asarray(ts_reset.step_type) == _FIRST).all():
                raise RuntimeError("EnvPool did not reset the ended envs on the next step")
            obs[ended] = self._obs(ts_reset)[0]  # `ended` is sorted, like _obs's env order
            self.elapsed[ended] = 0
        return obs, final_obs, reward, terminated, truncated, success, self._next_tick()


def make_envpool_backend(
    spec: TaskSpec,
    num_envs: int,
    seed: int,
    episode_length: int,
    num_threads: int = 0,
    atari: AtariOptions | None = None,
) -> TaskBackend:
    """A `TaskBackend` over a `HostPool`, called through ordered `io_callback`s.

    ``atari``: the EnvPool settings of an Atari task (None: ``AtariOptions()``); other suites
    ignore it.
    """
    options = None
    if spec.suite == "atari":
        atari = atari or AtariOptions()
        atari.validate()
        options = atari.envpool_kwargs()
    host = HostPool(spec, num_envs, seed, episode_length, num_threads, options)
    e = num_envs
    obs_struct = ShapeDtypeStruct((e, *host.obs_shape), host.obs_dtype)
    tick_struct = ShapeDtypeStruct((), np.int32)
    step_structs = (
        obs_struct,
        obs_struct,
        ShapeDtypeStruct((e,), np.float32),
        ShapeDtypeStruct((e,), np.bool_),
        ShapeDtypeStruct((e,), np.bool_),
        ShapeDtypeStruct((e,), np.bool_),
        tick_struct,
    )

    def reset(key):
        del key  # EnvPool draws initial states from its own per-env seeds (set at creation)
        obs, tick = io_callback(
            host.reset, (obs_struct, tick_struct), jnp.zeros((), jnp.int32), ordered=True
        )
        return tick, obs

    def step(tick, action) -> BackendStep:
        if not spec.discrete:
            action = jnp.clip(action, -1.0, 1.0)
        obs, final_obs, reward, terminated, truncated, success, tick = io_callback(
            host.step, step_structs, tick, action, ordered=True
        )
        return BackendStep(
            state=tick,
            obs=obs,
            final_obs=final_obs,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            success=success,
        )

    return TaskBackend(
        reset=reset,
        step=step,
        num_envs=num_envs,
        action_dim=host.action_dim,
        discrete=spec.discrete,
    )
