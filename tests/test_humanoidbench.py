"""HumanoidBench H1 on MJX: the model's layout, reward parity with HumanoidBench's formulas on CPU
MuJoCo (dm_control's own `tolerance`, NumPy), termination / reset / truncation, registry."""

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from dm_control.utils import rewards as dm_rewards

import envs
from envs.humanoidbench import H1Locomotion, tolerance
from envs.humanoidbench import h1 as h1_model_lib

JOINTS = [
    "left_hip_yaw", "left_hip_roll", "left_hip_pitch", "left_knee", "left_ankle",
    "right_hip_yaw", "right_hip_roll", "right_hip_pitch", "right_knee", "right_ankle", "torso",
    "left_shoulder_pitch", "left_shoulder_roll", "left_shoulder_yaw", "left_elbow",
    "right_shoulder_pitch", "right_shoulder_roll", "right_shoulder_yaw", "right_elbow",
]


def test_model_layout_and_mass():
    m = h1_model_lib.h1_model()
    assert (m.nq, m.nv, m.nu) == (26, 25, 19)  # free joint (7 / 6) + 19 hinges
    assert [m.joint(i).name for i in range(1, m.njnt)] == JOINTS
    assert [m.actuator(i).name for i in range(m.nu)] == JOINTS
    assert abs(m.body_mass.sum() - 51.65) < 0.01  # HumanoidBench's H1 (ankles 0.552448 kg)
    # HumanoidBench's gains: hip kp 200 kv 5 |f| <= 200, knee 300 / 6 / 300, ankle 40 / 2 / 40,
    # torso 300 / 6 / 200, shoulder pitch+roll 100 / 2 / 40, shoulder yaw and elbow 100 / 2 / 18.
    kp = [200] * 3 + [300, 40] + [200] * 3 + [300, 40, 300] + [100] * 8
    kv = [5] * 3 + [6, 2] + [5] * 3 + [6, 2, 6] + [2] * 8
    force = [200] * 3 + [300, 40] + [200] * 3 + [300, 40, 200] + [40, 40, 18, 18] * 2
    np.testing.assert_array_equal(m.actuator_gainprm[:, 0], kp)
    np.testing.assert_array_equal(m.actuator_biasprm[:, 1], -np.array(kp))
    np.testing.assert_array_equal(m.actuator_biasprm[:, 2], -np.array(kv))
    np.testing.assert_array_equal(m.actuator_forcerange[:, 1], force)
    # control range = joint range; hip pitch is HumanoidBench's (-3.14, 2.53)
    np.testing.assert_array_equal(m.actuator_ctrlrange, m.jnt_range[1:])
    np.testing.assert_array_equal(m.jnt_range[m.joint("left_hip_pitch").id], [-3.14, 2.53])
    assert m.opt.timestep == 0.002 and m.opt.iterations == 100 and m.opt.ls_iterations == 50
    # the only geoms: the floor and the Menagerie's three capsules under each foot
    assert m.geom("floor").id == 0
    assert list(m.geom_type) == [mujoco.mjtGeom.mjGEOM_PLANE] + [mujoco.mjtGeom.mjGEOM_CAPSULE] * 6
    feet = [m.body(b).id for b in ("left_ankle_link", "right_ankle_link")]
    np.testing.assert_array_equal(m.geom_bodyid[1:], [feet[0]] * 3 + [feet[1]] * 3)
    np.testing.assert_array_equal(m.key_qpos[0], h1_model_lib.QPOS0)


@pytest.mark.parametrize("sigmoid,vam", [("gaussian", 0.1), ("linear", 0.0), ("quadratic", 0.0),
                                         ("linear", 0.3), ("gaussian", 0.5)])
@pytest.mark.parametrize("bounds", [(0.0, 0.0), (1.65, np.inf), (0.9, np.inf), (-1.0, 2.0)])
def test_tolerance_matches_dm_control(sigmoid, vam, bounds):
    x = np.random.default_rng(0).uniform(-6, 6, 400)
    for margin in (0.0, 0.4125, 1.9, 10.0):
        want = dm_rewards.tolerance(x, bounds=bounds, margin=margin, sigmoid=sigmoid,
                                    value_at_margin=vam)
        got = tolerance(jnp.asarray(x), *bounds, margin=margin, sigmoid=sigmoid,
                        value_at_margin=vam)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)


def numpy_reward(m, d, task):
    """HumanoidBench's `get_reward` (basic_locomotion_envs.py), re-computed on CPU MuJoCo data."""
    tol = dm_rewards.tolerance
    if task in ("stair", "slide"):  # ClimbingUpwards: head above each foot, looser upright
        head = d.site("head").xpos[2]
        standing = (tol(head - d.site("left_foot").xpos[2], bounds=(1.2, float("inf")),
                        margin=0.45)
                    * tol(head - d.site("right_foot").xpos[2], bounds=(1.2, float("inf")),
                          margin=0.45))
        upright = tol(d.xmat[m.body("torso_link").id][8], bounds=(0.5, float("inf")),
                      sigmoid="linear", margin=1.9, value_at_margin=0)
        small_control = (4 + tol(d.actuator_force, margin=10, value_at_margin=0,
                                 sigmoid="quadratic").mean()) / 5
        move = tol(d.sensor("pelvis_subtreelinvel").data[0], bounds=(1, float("inf")), margin=1,
                   value_at_margin=0, sigmoid="linear")
        return standing * upright * small_control * (5 * move + 1) / 6
    standing = tol(d.site("head").xpos[2], bounds=(1.65, float("inf")), margin=1.65 / 4)
    upright = tol(d.xmat[m.body("torso_link").id][8], bounds=(0.9, float("inf")),
                  sigmoid="linear", margin=1.9, value_at_margin=0)
    small_control = tol(d.actuator_force, margin=10, value_at_margin=0,
                        sigmoid="quadratic").mean()
    small_control = (4 + small_control) / 5
    com_vel = d.sensor("pelvis_subtreelinvel").data
    if task == "stand":
        return small_control * standing * upright * tol(com_vel[:2], margin=2).mean()
    speed = {"walk": 1, "run": 5}[task]
    move = tol(com_vel[0], bounds=(speed, float("inf")), margin=speed, value_at_margin=0,
               sigmoid="linear")
    return small_control * standing * upright * (5 * move + 1) / 6


@functools.cache
def _mjx_step(task="walk"):
    env = H1Locomotion(task)

    @jax.jit
    def step(data, action):
        data = env.physics(data, action)
        return env.readings(data), env._obs(data, jnp.zeros(3)), data.qpos[2]

    return env, step


def test_reward_parity_with_cpu_mujoco():
    """Per step, from the same CPU state and action: MJX rewards == HumanoidBench's on CPU."""
    from mujoco import mjx

    from envs.humanoidbench.locomotion import reward

    env, step = _mjx_step()
    m = env.mj_model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    mujoco.mj_resetDataKeyframe(m, d, 0)
    d.qpos[:] += rng.uniform(-0.01, 0.01, m.nq)  # HumanoidBench's reset noise
    mujoco.mj_forward(m, d)
    actions = rng.uniform(-1, 1, (30, m.nu))
    tasks = {t: envs.humanoidbench.TASKS[t] for t in ("walk", "stand", "run")}
    got, want, heights = {t: [] for t in tasks}, {t: [] for t in tasks}, []
    for a in actions:
        readings, obs, height = step(mjx.put_data(m, d, impl="jax"), jnp.asarray(a, jnp.float32))
        # HumanoidBench: unnormalize_action, then do_simulation (10 x mj_step)
        low, high = m.actuator_ctrlrange.T
        d.ctrl[:] = (a + 1) / 2 * (high - low) + low
        mujoco.mj_step(m, d, nstep=10)
        np.testing.assert_allclose(obs, np.concatenate([d.qpos, d.qvel]), atol=2e-3)
        heights.append(d.qpos[2])
        for t in got:
            got[t].append(float(reward(readings, tasks[t])))
            want[t].append(numpy_reward(m, d, t))
    for t in got:
        np.testing.assert_allclose(got[t], want[t], rtol=2e-3, atol=1e-4, err_msg=t)
    # the sequence spans a fall, so the rewards are not all ~1 or all ~0
    assert max(want["stand"]) - min(want["stand"]) > 0.1


@pytest.mark.slow  # ~40 s; in the slow suite (CI runs it): default suite ~10 min
def test_env_terminates_and_resets():
    env = envs.make("humanoidbench/h1-stand", envs_per_task=2, episode_length=70)
    assert (env.obs_dim, env.action_dim, env.episode_length) == (51, 19, (70,))

    @jax.jit
    def rollout(key):
        state = env.reset(key)

        def body(s, k):
            s = env.step(s, jax.random.uniform(k, (2, 19), minval=-1, maxval=1))
            return s, s

        return state, jax.lax.scan(body, state, jax.random.split(key, 140))[1]

    first, states = jax.device_get(rollout(jax.random.key(0)))
    qpos0 = h1_model_lib.QPOS0
    assert np.all(np.abs(first.obs[:, :26] - qpos0) <= 0.01 + 1e-6)
    assert np.all(first.obs[:, 26:] == 0)
    term, trunc = states.terminated, states.truncated
    assert term.any()  # random actions topple the robot
    # terminated exactly when the pelvis (final obs qpos[2]) is below 0.2
    np.testing.assert_array_equal(term, states.final_obs[..., 2] < 0.2)
    ended = term | trunc
    # after an end the next obs is a fresh reset (near the keyframe)
    np.testing.assert_array_less(np.abs(states.obs[ended][:, :26] - qpos0), 0.01 + 1e-6)
    assert np.all(np.isfinite(states.reward)) and np.all(states.reward >= 0)
    assert np.all(states.reward <= 1)


def test_registry_suites_and_scores():
    assert envs.SUITES["humanoidbench-h1-walk-stand-run"] == (
        "humanoidbench/h1-walk", "humanoidbench/h1-stand", "humanoidbench/h1-run")
    assert set(envs.SUITES["humanoidbench-h1-walk-stand-run"]) <= set(
        envs.SUITES["humanoidbench-h1"])
    spec = envs.get_task("h1-walk")
    assert spec.backends == ("mjx",) and spec.episode_length == 1000
    # (R - random) / (target - random): walk (350 - 2.377) / (700 - 2.377) = 0.498313...
    scores = envs.normalised_scores(
        ["humanoidbench/h1-walk", "dmc/cartpole-balance", "humanoidbench/h1-stand", "toy/t0"],
        [350.0, 900.0, 10.545, 1.0])
    assert scores.keys() == {"humanoidbench/h1-walk", "humanoidbench/h1-stand"}
    assert abs(scores["humanoidbench/h1-walk"] - 347.623 / 697.623) < 1e-9
    assert scores["humanoidbench/h1-stand"] == 0.0
    with pytest.raises(ValueError, match="no 'envpool' backend"):
        envs.make("humanoidbench/h1-walk", envs_per_task=1, backend="envpool")


# Where the robot is put for the terrain parity test: on the first tread of the first pyramid
# (x 0.5-1.1, top 0.18 m; feet 1 cm above it), and 10 cm above the first slope (0.35 per m).
TERRAIN_START = {"stair": (0.7, 0.18 + 0.01), "slide": (2.0, 0.35 * 1.7 + 0.1)}


@pytest.mark.slow  # ~40 s each on 2 cores (CI runs the slow tests too)
@pytest.mark.parametrize("task", ["stair", "slide"])
def test_terrain_reward_parity_with_cpu_mujoco(task):
    """Stair / slide: from a pose on the terrain and a fixed random action sequence, MJX's
    per-step reward == HumanoidBench's ClimbingUpwards reward re-computed on CPU MuJoCo, and
    the feet land on the terrain (contacts with the stairs / slide, not the floor)."""
    from mujoco import mjx

    from envs.humanoidbench.locomotion import reward

    env, step = _mjx_step(task)
    m = env.mj_model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(1)
    mujoco.mj_resetDataKeyframe(m, d, 0)
    d.qpos[0], lift = TERRAIN_START[task]
    d.qpos[2] += lift
    d.qpos[:] += rng.uniform(-0.01, 0.01, m.nq)
    mujoco.mj_forward(m, d)
    terrain = {m.geom(i).id for i in range(m.ngeom)
               if m.geom_bodyid[i] == 0 and m.geom(i).name != "floor"}
    terrain |= {i for i in range(m.ngeom) if m.geom_bodyid[i] != 0
                and m.body_weldid[m.geom_bodyid[i]] == 0}
    got, want, touched = [], [], 0
    for a in rng.uniform(-1, 1, (30, m.nu)):
        readings, obs, _ = step(mjx.put_data(m, d, impl="jax"), jnp.asarray(a, jnp.float32))
        low, high = m.actuator_ctrlrange.T
        d.ctrl[:] = (a + 1) / 2 * (high - low) + low
        mujoco.mj_step(m, d, nstep=10)
        np.testing.assert_allclose(obs, np.concatenate([d.qpos, d.qvel]), atol=2e-3)
        touched += sum(int(c.geom1 in terrain or c.geom2 in terrain) for c in d.contact[:d.ncon])
        got.append(float(reward(readings, env.task)))
        want.append(numpy_reward(m, d, task))
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-4)
    assert touched > 0 and max(want) - min(want) > 0.05


def _height_below(m, x, y=0.0):
    """Height of the highest surface under (x, y), by a ray cast down from 10 m (CPU MuJoCo)."""
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    geom = np.zeros(1, np.int32)
    dist = mujoco.mj_ray(m, d, np.array([x, y, 10.0]), np.array([0.0, 0.0, -1.0]), None, 1, -1,
                         geom)
    return 10.0 - dist


def test_terrain_geometry_and_contact_bits():
    """HumanoidBench's stairs (0.18 m rise, 0.6 m tread, 0.9 m top, pyramids from x = 0.5 every
    6 m) and slides (0.35 slope up to a 1.75 m ridge at x = 5.3, every 10 m), measured by ray
    casts; the terrain touches only the foot spheres, the floor only the foot capsules."""
    stair = h1_model_lib.h1_model(scene="stair")
    for x, z in [(0.3, 0.0), (0.7, 0.18), (1.3, 0.36), (1.9, 0.54), (2.5, 0.72), (3.2, 0.9),
                 (5.7, 0.18), (6.2, 0.0), (9.2, 0.9), (12.2, 0.0), (21.2, 0.9), (23.7, 0.18)]:
        assert _height_below(stair, x) == pytest.approx(z, abs=1e-6), x
    slide = h1_model_lib.h1_model(scene="slide")
    for x, z in [(0.1, 0.0), (2.8, 0.875), (5.3, 1.75), (7.8, 0.875), (12.8, 0.875),
                 (85.3, 1.75)]:
        assert _height_below(slide, x, y=1.0) == pytest.approx(z, abs=1e-6), x
    for m in (stair, slide):
        assert abs(m.body_mass.sum() - 51.65) < 0.01  # the terrain is static and massless
        kind = {i: m.geom_type[i] for i in range(m.ngeom)}
        robot = [i for i in range(m.ngeom) if m.geom_bodyid[i] != 0
                 and m.body_weldid[m.geom_bodyid[i]] != 0]
        terrain = [i for i in range(1, m.ngeom) if i not in robot]
        spheres = [i for i in robot if kind[i] == mujoco.mjtGeom.mjGEOM_SPHERE]
        capsules = [i for i in robot if kind[i] == mujoco.mjtGeom.mjGEOM_CAPSULE]
        assert len(spheres) == 10 and len(capsules) == 6 and len(robot) == 16

        def collide(a, b, m=m):
            return bool(m.geom_contype[a] & m.geom_conaffinity[b]
                        | m.geom_contype[b] & m.geom_conaffinity[a])

        assert all(collide(s, t) for s in spheres for t in terrain)
        assert not any(collide(c, t) for c in capsules for t in terrain)
        assert all(collide(c, 0) for c in capsules) and not any(collide(s, 0) for s in spheres)
    with pytest.raises(ValueError, match="unknown H1 scene 'stairs'"):
        h1_model_lib.build_spec(scene="stairs")


@pytest.mark.slow  # traces the stair env's rollout (~60 s on 2 cores)
def test_climbing_tasks_end_when_the_torso_tips_over():
    """stair / slide terminate when the torso's z-axis z (= the pelvis's: the torso joint turns
    about z) drops below 0.1, not on pelvis height; from qpos: 1 - 2 (qx^2 + qy^2). Like
    HumanoidBench, the rule reads `xmat` after the step, which MuJoCo computed before the last
    of the 10 substeps' integration, so the qpos value may differ from it by one substep's turn
    (< 0.02 here)."""
    env = envs.make("humanoidbench/h1-stair", envs_per_task=2, episode_length=120)

    @jax.jit
    def rollout(key):
        def body(s, k):
            s = env.step(s, jax.random.uniform(k, (2, 19), minval=-1, maxval=1))
            return s, s

        return jax.lax.scan(body, env.reset(key), jax.random.split(key, 240))[1]

    states = jax.device_get(rollout(jax.random.key(0)))
    quat = states.final_obs[..., 3:7]
    upright = 1 - 2 * (quat[..., 1] ** 2 + quat[..., 2] ** 2)
    assert states.terminated.any()
    differ = states.terminated != (upright < 0.1)
    assert np.all(np.abs(upright[differ] - 0.1) < 0.02), upright[differ]
    assert differ.mean() < 0.01
    # the pelvis-height rule of walk / stand / run would end other steps
    assert (states.terminated != (states.final_obs[..., 2] < 0.2)).any()
    assert np.all((states.reward >= 0) & (states.reward <= 1))
