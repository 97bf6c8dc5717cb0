"""The uniform random policy's score on continuous-action tasks, through the evaluator that
scores training runs (``brc_mjx.evaluation.rollout``): the bar a learner must clear.

    python -m benchmarks.random_policy --tasks humanoidbench/h1-crawl --episodes 10
    python -m benchmarks.random_policy --tasks humanoidbench-h1 --episodes 4   # a suite

Each task runs ``--episodes`` episodes (one per env) of actions drawn uniformly from [-1, 1],
seeded by ``--seed``; one JSON row per task (mean return, and the normalised score where the task
has a score range) goes to ``benchmarks/results/random_policy.jsonl``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import tyro

import envs
from benchmarks.common import RESULTS_DIR, append_row, row_header
from brc_mjx.evaluation import rollout

RESULTS = RESULTS_DIR / "random_policy.jsonl"


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple[str, ...] = ("humanoidbench/h1-crawl",)
    """Task names or suites (``envs.SUITES``)."""
    episodes: int = 10
    """Episodes per task (envs per task, one episode each)."""
    backend: str = "auto"
    seed: int = 0
    out: Path = RESULTS


def main(cfg: Config) -> list[dict]:
    # unknown names fail here, before anything compiles
    names = [spec.name for spec in envs.resolve_tasks(cfg.tasks)]
    rows = []
    for task in names:
        env = envs.make(task, cfg.episodes, backend=cfg.backend, seed=cfg.seed)
        if env.discrete:
            raise SystemExit(f"benchmarks.random_policy: {task} has discrete actions; its "
                             "random policy is benchmarks.atari's")

        def random_step(state, key, env=env):
            action = jax.random.uniform(key, (env.num_envs, env.action_dim), minval=-1, maxval=1)
            return env.step(state, action)

        scores = jax.device_get(jax.jit(
            lambda key, env=env, step=random_step: rollout(step, env, key,
                                                           max(env.episode_length)))(
            jax.random.key(cfg.seed)))
        ret = float(scores["return"][0])
        normalised = envs.normalised_scores([task], [ret]).get(task)
        row = dict(row_header("random_policy"), task=task, episodes=cfg.episodes,
                   backend=env.backends[0], seed=cfg.seed, mean_return=ret,
                   finished=float(scores["finished"][0]), normalised_score=normalised)
        append_row(cfg.out, row)
        rows.append(row)
        print(f"{task}: random policy {ret:.2f} over {cfg.episodes} episodes"
              + (f" (normalised {normalised:.4f})" if normalised is not None else ""), flush=True)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Config))
