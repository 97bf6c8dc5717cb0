"""What dm_control's solver settings cost on MJX (parity difference 4): env-only steps/s of the
DMC tasks with Playground's solver settings (``--env.mjx-solver port``, the default) and with
MuJoCo's defaults (``--env.mjx-solver mujoco``: 100 solver / 50 line-search iterations, Euler
damping on), side by side in one process.

    python -m benchmarks.mjx_solver                    # cheetah-run, walker-walk, hopper-stand
    python -m benchmarks.mjx_solver --tasks CheetahRun --num-envs 16

Each point: ``jit(scan(vmap(step)))`` over 100 steps with zero actions, best of 3 after a warm-up
(`benchmarks.mjx_forward.steps_per_s`). Rows go to ``benchmarks/results/mjx_solver.jsonl``.
"""

from __future__ import annotations

import tyro

from benchmarks.mjx_forward import Config, side_by_side


def main(cfg: Config) -> list[dict]:
    from envs.mjx_backend import load_playground

    def variants(task):
        envs = (load_playground(task, solver=s) for s in ("port", "mujoco"))
        return tuple((env.step, env.reset) for env in envs)

    return side_by_side(cfg, "mjx_solver", variants,
                        ("port_steps_per_s", "mujoco_solver_steps_per_s"),
                        ("Playground's solver", "MuJoCo's defaults"))


if __name__ == "__main__":
    main(tyro.cli(Config))
