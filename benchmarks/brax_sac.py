"""Brax's SAC trainer on a MuJoCo Playground env, as ``benchmarks.peer`` compares it with ours:
the env and network factories, parameter counts, the JAX-compatibility shim and ``run_brax``
(Brax's own ``train`` with every eval timestamped).
"""

from __future__ import annotations

import contextlib
import functools
import time

import jax
import jax.numpy as jnp

import envs
from benchmarks.common import CompileClock
from brc_mjx import parallel
from brc_mjx.config import MeshConfig


def playground_env(task: str):
    """The unbatched Playground env of our registry's ``task`` (``impl="jax"``)."""
    from envs.mjx_backend import load_playground

    return load_playground(envs.get_task(task).mjx_id, impl="jax")


def brax_networks(hidden_layer_sizes: tuple[int, ...], q_layer_norm: bool):
    """Brax SAC network factory with the given MLP sizes."""
    from brax.training.agents.sac import networks as sac_networks

    return functools.partial(sac_networks.make_sac_networks,
                             hidden_layer_sizes=hidden_layer_sizes,
                             q_network_layer_norm=q_layer_norm)


def brax_parameter_counts(factory, obs_size: int, action_size: int) -> dict[str, int]:
    """Parameter counts of Brax's SAC networks (``jax.eval_shape``, nothing allocated)."""
    nets = factory(observation_size=obs_size, action_size=action_size)
    key = jax.random.PRNGKey(0)

    def count(network):
        return sum(int(x.size) for x in jax.tree.leaves(jax.eval_shape(network.init, key)))

    critic, actor = count(nets.q_network), count(nets.policy_network)
    return dict(critic=critic, actor=actor, total=critic + actor)


def device_put_replicated(tree, devices):
    """``tree`` with each leaf stacked once per device along a new leading axis, that axis
    sharded over ``devices`` (our data axis): what Brax's pmapped trainers expect of JAX's
    function of this name."""
    sharding = parallel.batch_sharding(parallel.make_mesh(MeshConfig(), devices))
    return jax.tree.map(lambda leaf: jax.device_put(
        jnp.broadcast_to(leaf, (len(devices), *jnp.shape(leaf))), sharding), tree)


@contextlib.contextmanager
def brax_jax_compat():
    """Brax 0.14.2 calls ``jax.device_put_replicated``, which JAX >= 0.10 no longer has
    (google/brax#671): where it is missing, supply :func:`device_put_replicated` for the block."""
    if hasattr(jax, "device_put_replicated"):
        yield
        return
    jax.device_put_replicated = device_put_replicated
    try:
        yield
    finally:
        del jax.device_put_replicated


class _StopBrax(Exception):
    """Raised from Brax's progress_fn to end training (target reached or wall budget spent)."""


def run_brax(clock: CompileClock, task: str, seed: int, *, num_envs: int, batch_size: int,
             grad_updates_per_step: int, hidden_layer_sizes: tuple[int, ...], num_timesteps: int,
             num_evals: int, num_eval_envs: int, min_replay_size: int, learning_rate: float,
             discounting: float, normalize_observations: bool, q_network_layer_norm: bool,
             stop_at: float | None = None, wall_budget_s: float = float("inf")) -> dict:
    """Run Brax SAC on the Playground env of ``task``; timestamps every eval.

    Returns ``evals`` (one dict per eval: env steps, wall seconds since the start, return and
    Brax's own cumulative training / eval seconds and epoch steps/s), ``wall_s``, ``compile_s``,
    ``scored``, Brax's total ``train_s`` / ``eval_s`` (each including its compiles) and the
    parameter counts. Stops early once an eval return >= ``stop_at`` or the
    wall budget is spent.
    """
    from brax.training.agents.sac import train as brax_sac
    from mujoco_playground import wrapper

    evals: list[dict] = []
    clock.start()
    start = time.perf_counter()
    env = playground_env(task)
    factory = brax_networks(hidden_layer_sizes, q_network_layer_norm)

    def progress(step: int, metrics: dict) -> None:
        wall = time.perf_counter() - start
        evals.append(dict(
            env_steps=int(step), wall_s=wall, eval_return=float(metrics["eval/episode_reward"]),
            train_s=float(metrics.get("training/walltime", 0.0)),
            eval_s=float(metrics["eval/walltime"]),
            epoch_steps_per_s=float(metrics.get("training/sps", float("nan"))),
        ))
        if (stop_at is not None and evals[-1]["eval_return"] >= stop_at) or wall > wall_budget_s:
            raise _StopBrax

    try:
        with brax_jax_compat():
            brax_sac.train(
                environment=env, num_timesteps=num_timesteps,
                episode_length=int(env._config.episode_length),
                wrap_env_fn=wrapper.wrap_for_brax_training, num_envs=num_envs,
                num_eval_envs=num_eval_envs, learning_rate=learning_rate, discounting=discounting,
                seed=seed, batch_size=batch_size, num_evals=num_evals,
                normalize_observations=normalize_observations, min_replay_size=min_replay_size,
                max_replay_size=num_timesteps, grad_updates_per_step=grad_updates_per_step,
                deterministic_eval=True, network_factory=factory, progress_fn=progress,
                max_devices_per_host=1,  # one device, as ours (and no pmap over fake CPU ones)
            )
    except _StopBrax:
        pass
    wall = time.perf_counter() - start
    compile_s = clock.stop()
    scored = stop_at is not None and bool(evals) and evals[-1]["eval_return"] >= stop_at
    last = evals[-1] if evals else {}
    return dict(evals=evals, wall_s=wall, compile_s=compile_s, scored=scored,
                train_s=last.get("train_s", 0.0), eval_s=last.get("eval_s", 0.0),
                params=brax_parameter_counts(factory, env.observation_size, env.action_size))
