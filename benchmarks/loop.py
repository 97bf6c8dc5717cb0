"""Loop throughput: collection (act-only) vs env-only, and the end-to-end training loop.

    python -m benchmarks.loop                       # both, on the default task and batch
    python -m benchmarks.loop --mode collection --num-envs 16 256

*collection*: our compiled epoch with ``updates_per_step=0`` and no warm-up, i.e. policy inference
+ env step + replay insert + normaliser update, against the bare ``jit(scan(env.step))`` of the
same env and batch (random actions). Target: collection >= 90 % of env-only. The row also holds
the *ceiling* of that ratio for this actor: env step time plus the policy's FLOPs (XLA's count)
at the device's measured dense-matmul FLOP/s, with zero cost for everything else. Where the
ceiling is below the target, the policy forward itself costs more than 10 % of an env step.
*end_to_end*: the full epoch (acting, replay, ``updates_per_step`` sgd steps of ``batch_size``)
on the same env: env-steps/s and updates/s, compile time apart.
Rows go to ``benchmarks/results/loop.jsonl``.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import tyro

import envs
from benchmarks.common import RESULTS_DIR, append_row, profile_call, row_header, xla_flops
from benchmarks.env_only import time_env
from benchmarks.learning import matmul_flops_per_s
from brc_mjx import hooks as hooks_lib
from brc_mjx import run as run_lib
from brc_mjx.agents.brc.acting import policy_action
from brc_mjx.config import EnvConfig, LearnerConfig, MeshConfig, NetworkConfig, TrainConfig


@dataclasses.dataclass(frozen=True)
class Config:
    """Collection and end-to-end loop throughput."""

    mode: tuple[str, ...] = ("collection", "end_to_end")
    """Which measurements: collection | end_to_end."""
    tasks: tuple[str, ...] = ("dmc/cartpole-balance",)
    """Tasks of the (multi-task) env."""
    backend: str = "mjx"
    """Env backend."""
    num_envs: tuple[int, ...] = (16, 256)
    """Envs per task to sweep."""
    steps: int = 200
    """Vectorized steps per timed epoch."""
    critic_width: int = 256
    """Critic width (end-to-end; the actor is what collection runs)."""
    batch_size: int = 256
    """Gradient-step batch (end-to-end)."""
    updates_per_step: int = 1
    """Gradient steps per vectorized env step (end-to-end)."""
    profile: bool = False
    """Also trace one more epoch per point into benchmarks/profiles/ and print its phase split."""
    out: Path = RESULTS_DIR / "loop.jsonl"
    """JSONL file the rows are appended to."""


def policy_flops(program, state) -> float:
    """XLA's FLOP count of one sampled policy action for every env of the batch."""
    learner, env_state = program.agent.learner, state.env
    mask = jnp.ones((env_state.obs.shape[0], learner.action_dim), jnp.float32)
    fn = functools.partial(policy_action, learner)
    return xla_flops(jax.jit(fn).lower(state.learner, env_state.obs, env_state.task_id, mask,
                                       jax.random.key(0)).compile())


class EpochSeconds(hooks_lib.Hook):
    """Collects each epoch's wall seconds and update count."""

    def __init__(self):
        self.epochs: list[tuple[float, float]] = []

    def record(self, epoch, state, record: dict) -> None:
        seconds = record["perf/epoch_s"]
        self.epochs.append((seconds, record["perf/updates_per_s"] * seconds))


def time_loop(cfg: Config, env, updates_per_step: int) -> dict:
    """Compile and time one epoch of our loop on ``env`` through the trainer's own parts
    (``run.set_up``, ``run.compile_epoch``, ``run.train_epochs``); returns timings and rates."""
    import tempfile

    e = env.num_envs // env.num_tasks
    train_cfg = TrainConfig(
        env=EnvConfig(tasks=cfg.tasks, backend=cfg.backend, envs_per_task=e, eval_episodes=0),
        learner=LearnerConfig(network=NetworkConfig(critic_width=cfg.critic_width)),
        mesh=MeshConfig(data=1, fsdp=1),
        batch_size=cfg.batch_size,
        updates_per_step=updates_per_step,
        total_env_steps=10 * cfg.steps * e,
        warmup_env_steps=0,
        steps_per_epoch=cfg.steps,
        checkpoint_every=0,
        compile_cache=False,  # compile time is measured
        run_dir=tempfile.mkdtemp(prefix="brc-loop-"),
    )
    session = run_lib.set_up(train_cfg, env_factory=lambda _: (env, None))
    flops = policy_flops(session.program, session.state)
    epoch, compile_s = run_lib.compile_epoch(session)
    times = EpochSeconds()
    # a warm-up epoch (it also fills some replay), then the best of two timed ones
    run_lib.train_epochs(session, epoch, [times], stop_epoch=3)
    session.logger.close()
    best, updates = min(times.epochs[1:])
    if cfg.profile:
        name = f"loop-{'collection' if updates_per_step == 0 else 'end_to_end'}-{e}envs"

        def run_once():
            session.state, _ = jax.block_until_ready(epoch(session.state))

        profile_call(name, epoch, run_once, cfg.steps)
    return dict(compile_s=compile_s, steady_s=best,
                env_steps_per_s=cfg.steps * env.num_envs / best, updates_per_s=updates / best,
                policy_flops_per_vector_step=flops,
                actor_width=session.agent.learner.cfg.network.actor_width)


def main(cfg: Config) -> None:
    for e in cfg.num_envs:
        env = envs.make(list(cfg.tasks), e, backend=cfg.backend)
        config = dict(tasks=cfg.tasks, backend=cfg.backend, envs_per_task=e, steps=cfg.steps)
        if "collection" in cfg.mode:
            bare = time_env(env, cfg.steps)
            ours = time_loop(cfg, env, updates_per_step=0)
            ratio = ours["env_steps_per_s"] / bare["steps_per_s"]
            # Ceiling: env step + the policy's FLOPs at the device's dense-matmul FLOP/s for the
            # actor's (envs, W) x (W, W) product, nothing else (no replay, no overhead).
            width = ours["actor_width"]
            matmul = matmul_flops_per_s(env.num_envs, width, width, repeats=3)
            env_s = env.num_envs / bare["steps_per_s"]
            ceiling = env_s / (env_s + ours["policy_flops_per_vector_step"] / matmul)
            append_row(cfg.out, dict(row_header("collection"), config=config, env_only=bare,
                                     collection=ours, ratio=ratio, matmul_flops_per_s=matmul,
                                     ceiling=ceiling))
            print(f"collection {','.join(cfg.tasks)} envs/task {e}: env-only "
                  f"{bare['steps_per_s']:.0f} steps/s, act+insert {ours['env_steps_per_s']:.0f} "
                  f"steps/s, ratio {ratio:.2f} (target >= 0.90; ceiling at this actor's "
                  f"FLOPs and the measured matmul FLOP/s: {ceiling:.2f})", flush=True)
        if "end_to_end" in cfg.mode:
            r = time_loop(cfg, env, updates_per_step=cfg.updates_per_step)
            append_row(cfg.out, dict(row_header("end_to_end"), config=dict(
                config, critic_width=cfg.critic_width, batch_size=cfg.batch_size,
                updates_per_step=cfg.updates_per_step), **r))
            print(f"end-to-end {','.join(cfg.tasks)} envs/task {e}: {r['env_steps_per_s']:.0f} "
                  f"env-steps/s, {r['updates_per_s']:.1f} updates/s, compile "
                  f"{r['compile_s']:.1f} s", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Config))
