"""What dm_control's solver settings cost on MJX (parity difference 4): env-only steps/s of the
DMC tasks with Playground's solver settings (``--env.mjx-solver port``, the default) and with
MuJoCo's defaults (``--env.mjx-solver mujoco``: 100 solver / 50 line-search iterations, Euler
damping on), side by side in one process.

    python -m benchmarks.mjx_solver                    # cheetah-run, walker-walk, hopper-stand
    python -m benchmarks.mjx_solver --tasks CheetahRun --num-envs 16
    python -m benchmarks.mjx_solver --solver eulerdamp  # only Euler damping turned back on

Each point: ``jit(scan(vmap(step)))`` over 100 steps with zero actions, best of 3 after a warm-up
(`benchmarks.mjx_forward.steps_per_s`). Rows go to ``benchmarks/results/mjx_solver.jsonl``.
"""

from __future__ import annotations

import dataclasses

import tyro

from benchmarks import mjx_forward


@dataclasses.dataclass(frozen=True)
class Config(mjx_forward.Config):
    solver: str = "mujoco"
    """The setting timed against ``port``: mujoco or eulerdamp (``envs.mjx_backend.SOLVERS``)."""


def main(cfg: Config) -> list[dict]:
    from envs.mjx_backend import load_playground

    def variants(task):
        envs = (load_playground(task, solver=s) for s in ("port", cfg.solver))
        return tuple((env.step, env.reset) for env in envs)

    return mjx_forward.side_by_side(cfg, "mjx_solver", variants,
                                    ("port_steps_per_s", f"{cfg.solver}_steps_per_s"),
                                    ("Playground's solver", f"--env.mjx-solver {cfg.solver}"))


if __name__ == "__main__":
    main(tyro.cli(Config))
