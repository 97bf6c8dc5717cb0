"""A picture of HumanoidBench H1 scenes: each task's robot at its keyframe, in its scene, drawn
side by side from a three-quarter view (the videos' tracking camera turned by ``--azimuth``).

    python -m benchmarks.h1_scenes --tasks sit_simple sit_hard balance_simple balance_hard \\
        --out docs/plots/h1_sit_balance.png
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np
import tyro


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple[str, ...] = ("sit_simple", "sit_hard", "balance_simple", "balance_hard")
    """H1 task names (``envs.humanoidbench.TASKS``)."""
    out: pathlib.Path = pathlib.Path("docs/plots/h1_sit_balance.png")
    azimuth: float = 140.0
    """Camera azimuth in degrees (the videos use 90: from the side)."""
    distance: float = 3.5
    width: int = 360
    height: int = 300


def main(cfg: Config) -> np.ndarray:
    import imageio.v2 as imageio
    import mujoco

    from envs.humanoidbench import TASKS, H1Locomotion

    unknown = [t for t in cfg.tasks if t not in TASKS]
    if unknown:
        raise SystemExit(f"benchmarks.h1_scenes: unknown H1 task {unknown[0]!r}; expected some "
                         f"of {', '.join(TASKS)}")
    tiles = []
    for task in cfg.tasks:
        model = H1Locomotion(task).render_model
        data = mujoco.MjData(model)
        data.qpos[:] = model.key_qpos[0]
        mujoco.mj_forward(model, data)
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        camera.trackbodyid = 1
        camera.distance, camera.azimuth, camera.elevation = cfg.distance, cfg.azimuth, -15.0
        with mujoco.Renderer(model, cfg.height, cfg.width) as renderer:
            renderer.update_scene(data, camera=camera)
            tiles.append(renderer.render())
    image = np.concatenate(tiles, axis=1)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    imageio.imwrite(cfg.out, image)
    print(f"h1_scenes: {', '.join(cfg.tasks)} -> {cfg.out}")
    return image


if __name__ == "__main__":
    main(tyro.cli(Config))
