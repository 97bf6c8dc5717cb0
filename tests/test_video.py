"""Evaluation videos: the first-episode cut by hand, GIFs written by a run from a drawable env's
evaluation episode (skipped with the reason where this machine has no OpenGL backend), and the
one-line note when videos cannot be made."""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from test_train import tiny_config
from toy_env import ToyEnv

import envs
from brc_mjx import run as run_lib
from brc_mjx import video

SLIDER_XML = """<mujoco><worldbody><light pos="0 0 3"/><geom type="plane" size="2 2 .1"/>
<camera name="side" pos="0 -2 .5" xyaxes="1 0 0 0 .3 1"/><body><joint name="x" type="slide"
axis="1 0 0"/><geom type="box" size=".1 .1 .1" pos="0 0 .1" rgba="1 .3 .3 1"/></body>
</worldbody></mujoco>"""
EPISODE = 7


def slider_backend(num_envs: int) -> envs.TaskBackend:
    """A 1-D point (qpos = position) pushed by its action; truncated after EPISODE steps."""

    def reset(key):
        return {"x": jnp.zeros(num_envs), "t": jnp.zeros(num_envs, jnp.int32)}, jnp.zeros(
            (num_envs, 1))

    def step(state, action):
        x, t = state["x"] + 0.1 * action[:, 0], state["t"] + 1
        truncated = t >= EPISODE
        new = {"x": jnp.where(truncated, 0.0, x), "t": jnp.where(truncated, 0, t)}
        return envs.BackendStep(state=new, obs=new["x"][:, None], final_obs=x[:, None],
                                reward=-jnp.abs(x - 1.0), terminated=jnp.zeros(num_envs, bool),
                                truncated=truncated, success=jnp.zeros(num_envs, bool))

    model = mujoco.MjModel.from_xml_string(SLIDER_XML)
    return envs.TaskBackend(reset=reset, step=step, num_envs=num_envs, action_dim=1,
                            renderables=(envs.Renderable(model=model, fps=10.0,
                                                         qpos=lambda s: s["x"][:, None]),))


def slider_env(num_envs: int) -> envs.Env:
    return envs.make_multitask(["toy/slider"], ["toy"], [slider_backend(num_envs)], [EPISODE],
                               [False])


def test_first_episode_hand_worked():
    qpos = np.arange(6.0)[:, None]  # reset state, then the states after steps 1..5
    # ended at step 3 (index 2): frames are the reset and the states after steps 1 and 2
    np.testing.assert_array_equal(video.first_episode(qpos, np.array([0, 0, 1, 0, 1], bool)),
                                  [[0.0], [1.0], [2.0]])
    # never ended: every state
    assert len(video.first_episode(qpos, np.zeros(5, bool))) == 6


def test_run_writes_gifs_of_the_evaluation_episode(tmp_path):
    video.choose_gl()
    problem = video.renderer_problem()
    if problem:
        pytest.skip(problem)
    cfg = tiny_config(tmp_path / "run", video=True, eval_every=40, video_every=40,
                      total_env_steps=80)
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, eval_episodes=2))
    run_lib.run(cfg, env_factory=lambda c: (slider_env(2), slider_env(2)))
    from PIL import Image

    names = sorted(os.listdir(tmp_path / "run" / "videos"))
    assert names == ["toy_slider_40.gif", "toy_slider_80.gif"]  # every 40 steps, and the end
    with Image.open(tmp_path / "run" / "videos" / names[-1]) as gif:
        # one frame per state of the first episode: the reset and the states after steps 1..6
        # (the 7th step ends it; the state after it is the next reset)
        assert gif.n_frames == EPISODE and gif.size == (256, 192)
        frames = []
        for k in range(gif.n_frames):
            gif.seek(k)
            frames.append(np.asarray(gif.convert("RGB"), np.float32))
    assert np.abs(frames[-1] - frames[0]).max() > 0  # the box moved
    records = [line for line in open(tmp_path / "run" / "metrics.jsonl") if "perf/video_s" in line]
    assert len(records) == 2


def test_physics_trace_reads_the_first_env_of_each_task():
    env = slider_env(3)
    state = env.reset(jax.random.key(0))
    state = env.step(state, jnp.asarray([[1.0], [0.0], [-1.0]]))
    qpos, ended = video.physics_trace(env, state)
    np.testing.assert_allclose(np.asarray(qpos[0]), [0.1])  # env 0 only
    assert np.asarray(ended).tolist() == [False]


def test_videos_off_is_one_line_when_no_task_can_be_drawn(tmp_path, capsys):
    cfg = tiny_config(tmp_path / "run", video=True, eval_every=80, total_env_steps=80)
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, eval_episodes=1))
    run_lib.run(cfg, env_factory=lambda c: (ToyEnv(), ToyEnv(envs_per_task=1)))
    out = capsys.readouterr().out
    assert "videos off: no task can be drawn" in out
    assert not os.path.exists(tmp_path / "run" / "videos")


def test_tracking_distance_ignores_the_static_scene():
    """A 0.1 m ball and a capsule 0.5 m from it, on a 100 m static track: the tracking camera
    frames the moving bodies (radius around their mean: 0.25 + 0.1), not the track."""
    import mujoco

    from brc_mjx.video import moving_extent

    model = mujoco.MjModel.from_xml_string("""
    <mujoco><worldbody>
      <geom type="box" size="50 2 0.1" pos="50 0 0"/>
      <body pos="0 0 1"><freejoint/><geom type="sphere" size="0.1"/>
        <body pos="0.5 0 0"><joint type="hinge"/><geom type="sphere" size="0.1"/></body>
      </body>
    </worldbody></mujoco>""")
    assert model.stat.extent > 40
    assert moving_extent(model) == pytest.approx(0.35)
