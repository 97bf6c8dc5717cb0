"""Atari through EnvPool: env-only throughput and the random policy's score under the training
protocol's settings (sticky actions 0.25, minimal action sets, unclipped game scores) — the bar
the discrete learner must clear.

    python -m benchmarks.atari                                  # Breakout + Road Runner, CPU
    python -m benchmarks.atari --games atari/pong atari/boxing --episodes 16
    python -m benchmarks.atari --run-dir runs/atari-cpu --preset atari-cpu --episodes 32

With ``--run-dir`` the newest checkpoint of a finished discrete run (trained with ``--preset``'s
learner) is evaluated instead, on ``--episodes`` evaluation episodes per game: more than the
few a run evaluates along the way, for a final score with a smaller error.

Random-policy episodes run through the trainer's own evaluator (``evaluation.rollout``: each env's
first finished episode counts) with uniform actions over each game's set. Rows go to
``benchmarks/results/atari.jsonl`` with the published random / human scores next to them.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

import envs
from benchmarks.common import RESULTS_DIR, append_row, row_header
from benchmarks.env_only import time_env
from brc_mjx.evaluation import evaluate, rollout

RESULTS = RESULTS_DIR / "atari.jsonl"


@dataclasses.dataclass(frozen=True)
class Config:
    """Atari env-only throughput and random-policy scores."""

    games: tuple[str, ...] = ("atari/breakout", "atari/road-runner")
    """Games to measure."""
    envs_per_game: int = 8
    """Envs per game for the throughput measurement."""
    scan_len: int = 200
    """Env steps per timed rollout."""
    episodes: int = 16
    """Random-policy episodes per game (0: skip)."""
    out: Path = RESULTS
    """JSONL file the rows are appended to."""
    run_dir: str = ""
    """Evaluate this finished discrete run's newest checkpoint instead ("": measure the env)."""
    preset: str = "atari-cpu"
    """The training preset of --run-dir (its learner settings must equal the run's)."""


def uniform_step(env, env_state, key):
    """A uniform random policy's step over each game's actions."""
    num_actions = jnp.sum(jnp.asarray(env.action_mask), axis=-1).astype(jnp.int32)
    return env.step(env_state, jax.random.randint(key, (env.num_envs,), 0, num_actions))


def random_scores(env: envs.Env, key: jax.Array) -> dict[str, np.ndarray]:
    """Per-game mean return and finished fraction of one random episode in every env."""
    run = jax.jit(functools.partial(rollout, functools.partial(uniform_step, env), env,
                                    num_steps=max(env.episode_length)))
    out = jax.device_get(run(key))
    return {"return": out["return"], "finished": out["finished"]}


def evaluate_run(cfg: Config) -> None:
    """Evaluate the newest checkpoint of ``cfg.run_dir`` on ``cfg.episodes`` episodes per game."""
    from brc_mjx import checkpoint, rundir
    from brc_mjx.agents import DiscreteBRC
    from brc_mjx.agents.base import state_leaf
    from brc_mjx.agents.brc_discrete import learner as discrete_learner
    from brc_mjx.config import to_json
    from configs.train import TRAIN_PRESETS

    train_cfg = TRAIN_PRESETS[cfg.preset][1]
    stored = rundir.read_config(cfg.run_dir)
    if stored is None:
        raise ValueError(f"--run-dir {cfg.run_dir!r} holds no run (no config.json)")
    expected = to_json(train_cfg)
    for field in ("learner", "discrete"):
        if stored[field] != expected[field]:
            raise ValueError(f"--run-dir {cfg.run_dir}: its {field} settings differ from preset "
                             f"{cfg.preset!r}'s")
    tasks = stored["env"]["tasks"]
    atari = envs.AtariOptions(
        repeat_action_probability=stored["env"]["atari_repeat_action_probability"],
        full_action_space=stored["env"]["atari_full_action_space"], reward_clip=False)
    env = envs.make(tasks, cfg.episodes, backend="envpool", atari=atari)
    learner = discrete_learner.make_learner(train_cfg.learner, train_cfg.discrete,
                                            env.obs_shape, env.obs_dtype, env.action_dims)
    state = discrete_learner.init_state(learner, jax.random.key(0), env.num_envs,
                                        max(env.episode_length))
    critic = state_leaf(discrete_learner.DiscreteLearnerState, "critic_params")
    step, leaves = checkpoint.read_leaves(f"{cfg.run_dir}/checkpoints", prefixes=(critic,))
    flat, tree = jax.tree_util.tree_flatten_with_path(state.critic_params)
    params = [leaves[critic + jax.tree_util.keystr(path)] for path, _ in flat]
    state = state.replace(critic_params=jax.tree_util.tree_unflatten(tree, params))
    start = time.perf_counter()
    run = jax.jit(functools.partial(evaluate, DiscreteBRC(learner), env,
                                    num_steps=max(env.episode_length)))
    out = jax.device_get(run(state, jax.random.key(1)))
    returns = dict(zip(env.task_names, out["return"].tolist(), strict=True))
    normalised = envs.normalised_scores(env.task_names, out["return"])
    append_row(cfg.out, dict(
        row_header("atari_run_evaluation"),
        config=dict(run_dir=cfg.run_dir, preset=cfg.preset, checkpoint=step,
                    episodes_per_game=cfg.episodes, eval_epsilon=train_cfg.discrete.eval_epsilon),
        returns=returns, normalised=normalised,
        finished=dict(zip(env.task_names, out["finished"].tolist(), strict=True)),
        seconds=time.perf_counter() - start))
    for game in env.task_names:
        print(f"{game}: {returns[game]:.1f} over {cfg.episodes} episodes (human-normalised "
              f"{normalised.get(game, float('nan')):.3f}), checkpoint {step} of {cfg.run_dir}",
              flush=True)


def main(cfg: Config) -> None:
    if cfg.run_dir:
        evaluate_run(cfg)
        return
    for game in cfg.games:
        env = envs.make(game, cfg.envs_per_game, backend="envpool")
        result = time_env(env, cfg.scan_len)
        append_row(cfg.out, dict(row_header("atari_env_only"),
                                 config=dict(game=game, num_envs=env.num_envs,
                                             scan_len=cfg.scan_len), **result))
        print(f"{game}: env-only {result['steps_per_s']:.0f} steps/s at {env.num_envs} envs "
              f"(compile {result['compile_s']:.1f} s)", flush=True)
    if cfg.episodes:
        start = time.perf_counter()
        env = envs.make(list(cfg.games), cfg.episodes, backend="envpool",
                        atari=envs.AtariOptions(reward_clip=False))
        scores = random_scores(env, jax.random.key(0))
        seconds = time.perf_counter() - start
        published = {g: envs.get_task(g).score_range for g in cfg.games}
        normalised = envs.normalised_scores(cfg.games, scores["return"])
        append_row(cfg.out, dict(
            row_header("atari_random_policy"),
            config=dict(games=list(cfg.games), episodes_per_game=cfg.episodes,
                        options=dataclasses.asdict(envs.AtariOptions(reward_clip=False))),
            returns=dict(zip(cfg.games, scores["return"].tolist(), strict=True)),
            finished=dict(zip(cfg.games, scores["finished"].tolist(), strict=True)),
            normalised=normalised, published_random_human=published, seconds=seconds))
        for k, game in enumerate(cfg.games):
            print(f"{game}: random policy {scores['return'][k]:.1f} over {cfg.episodes} "
                  f"episodes (human-normalised {normalised.get(game, float('nan')):.3f}; "
                  f"published random / human {published[game]})", flush=True)


if __name__ == "__main__":
    main(tyro.cli(Config))
