"""Evaluation videos: one deterministic episode per task, rendered on the host as GIFs.

The frames come from the evaluation episode itself (`evaluation.evaluate(..., trace=True)`, outside
the training epoch): for every task with an `envs.Renderable` (MJX tasks; EnvPool keeps its
physics in the pool), the qpos of its first env at every step. The host then sets each qpos
into a CPU `MjData`, runs `mj_forward` and draws it with `mujoco.Renderer` (offscreen: EGL or
OSMesa on a headless machine, picked by `choose_gl` before MuJoCo's GL module loads). Frames go to
`run_dir/videos/<task>_<env steps>.gif` and to TensorBoard as animated images.
"""

from __future__ import annotations

import ctypes.util
import io
import os

import numpy as np

#: MUJOCO_GL values tried on a headless machine, with the library each one needs.
GL_LIBRARIES = (("egl", "EGL"), ("osmesa", "OSMesa"))


def choose_gl() -> str:
    """Pick an offscreen OpenGL backend for MuJoCo when none is set and there is no display.

    Must run before `mujoco` is first imported (it reads MUJOCO_GL once, at import), so
    `brc_mjx/__init__.py` calls it. Returns the value in effect ("" for MuJoCo's default, GLFW).
    """
    if os.environ.get("MUJOCO_GL") or os.environ.get("DISPLAY"):
        return os.environ.get("MUJOCO_GL", "")
    for value, library in GL_LIBRARIES:
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = value
            return value
    return ""


def renderer_problem() -> str | None:
    """None if MuJoCo can render offscreen here, else one line saying why not and what to do."""
    try:
        import mujoco

        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody>"
                                               "</mujoco>")
        with mujoco.Renderer(model, 16, 16) as renderer:
            renderer.update_scene(mujoco.MjData(model))
            renderer.render()
    except Exception as err:  # no display, no EGL / OSMesa library, a broken driver
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return (f"no OpenGL backend for videos (MUJOCO_GL={os.environ.get('MUJOCO_GL', '')!r}: "
                f"{reason}); install EGL (GPU drivers) or OSMesa (Debian: libosmesa6), "
                "or run without --video")
    return None


def drawable_tasks(env) -> list[int]:
    """Indices of the tasks of `env` that can be drawn (those with a `Renderable`)."""
    return [t for t, r in enumerate(getattr(env, "renderables", ())) if r is not None]


def physics_trace(env, state):
    """What a video needs from one env state (traceable): a tuple over drawable tasks of their
    first env's qpos `(nq,)`, and `(num_tasks,)` bool, True where that env's episode ended at
    the step that produced `state` (its physics is then already the next episode's reset)."""
    import jax.numpy as jnp

    first = jnp.arange(env.num_tasks) * env.envs_per_task
    backend = getattr(env, "task_backend", ()) or range(env.num_tasks)  # task -> backend state
    qpos = tuple(env.renderables[t].qpos(state.backend[backend[t]])[0]
                 for t in drawable_tasks(env))
    return qpos, (state.terminated | state.truncated)[first]


def first_episode(qpos: np.ndarray, ended: np.ndarray) -> np.ndarray:
    """The frames of the first episode: the reset state up to the last state before the end
    (the state after the ending step is already the next episode's reset)."""
    stop = int(np.argmax(ended)) + 1 if ended.any() else len(ended) + 1
    return qpos[:stop]


def moving_extent(model) -> float:
    """Radius of the bodies that move (not welded to the world) at the model's reference pose,
    around their mean position: what a tracking camera must keep in view. A scene's static
    geoms (a 70 m hurdle track) do not count, as they do in ``model.stat.extent``."""
    import mujoco

    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    moving = [i for i in range(model.ngeom) if model.body_weldid[model.geom_bodyid[i]] != 0]
    if not moving:
        return float(model.stat.extent)
    pos = data.geom_xpos[moving]
    centre = pos.mean(axis=0)
    return float(np.max(np.linalg.norm(pos - centre, axis=1) + model.geom_rbound[moving]))


def render(renderable, qpos: np.ndarray, width: int = 256, height: int = 192,
           max_frames: int = 150) -> tuple[np.ndarray, float]:
    """Draw every k-th qpos of `renderable.model` (at most `max_frames`); returns
    `(frames (N, height, width, 3) uint8, frames per second)`."""
    import mujoco

    model = renderable.model
    stride = max(1, -(-len(qpos) // max_frames))
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    if model.ncam > 0:  # the model's own first camera (DM Control's tracking views)
        camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        camera.fixedcamid = 0
    else:  # follow the first body, from the side, at a distance fitting the moving bodies
        camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        camera.trackbodyid = 1 if model.nbody > 1 else 0
        camera.distance = moving_extent(model) + 1.5
        camera.azimuth, camera.elevation = 90.0, -15.0
    frames = []
    with mujoco.Renderer(model, height, width) as renderer:
        for q in qpos[::stride]:
            data.qpos[:] = q
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera)
            frames.append(renderer.render())
    return np.stack(frames), renderable.fps / stride


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """An endlessly looping animated GIF of `frames` (N, H, W, 3) uint8."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(20, round(1000 / fps)), loop=0)
    return buf.getvalue()


def write_videos(env, qpos, ended, out_dir: str, env_steps: int, writer=None) -> list[str]:
    """Render the first episode of every drawable task into `out_dir/<task>_<env_steps>.gif`
    (and TensorBoard `video/<task>` when `writer`, a tensorboardX SummaryWriter, is given)."""
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for k, t in enumerate(drawable_tasks(env)):
        frames, fps = render(env.renderables[t], first_episode(np.asarray(qpos[k]),
                                                               np.asarray(ended[:, t])))
        data = gif_bytes(frames, fps)
        name = env.task_names[t].replace("/", "_")
        path = os.path.join(out_dir, f"{name}_{env_steps}.gif")
        with open(path, "wb") as f:
            f.write(data)
        paths.append(path)
        if writer is not None:
            from tensorboardX.proto.summary_pb2 import Summary

            image = Summary.Image(height=frames.shape[1], width=frames.shape[2], colorspace=3,
                                  encoded_image_string=data)
            writer._get_file_writer().add_summary(
                Summary(value=[Summary.Value(tag=f"video/{env.task_names[t]}", image=image)]),
                env_steps)
    return paths
