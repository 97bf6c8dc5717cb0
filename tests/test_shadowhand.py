"""ShadowHand RotateZ: reward and goal sampling against hand-worked numbers, object generation
and split, the batched object models against each object's own model, and (slow) MJX against CPU
MuJoCo and the task in the loop."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import envs
from envs.shadowhand import hand, objects, rotate


def _zq(angle):  # w-first quaternion of a z-rotation, by hand
    return np.array([np.cos(angle / 2), 0.0, 0.0, np.sin(angle / 2)])


def test_rotation_error_and_sparse_reward_match_hand_worked_values():
    goal = _zq(0.3)
    cases = [
        (_zq(0.25), 0.05, True),  # 0.05 rad short of the goal: success
        (_zq(0.45), 0.15, False),  # 0.15 rad past it
        # the same orientation as q(0.28) with the sign flipped: w(q * conj(g)) = -cos(0.01), so
        # Gymnasium-Robotics' formula (no |w|) gives 2 (pi - 0.01): not a success
        (-_zq(0.28), 2 * np.pi - 0.02, False),
        # tilted 0.08 rad about x from q(0.3): error 0.08, success
        (np.array([np.cos(0.15) * np.cos(0.04), np.cos(0.15) * np.sin(0.04),
                   np.sin(0.15) * np.sin(0.04), np.sin(0.15) * np.cos(0.04)]), 0.08, True),
    ]
    for quat, want, ok in cases:
        err = float(rotate.rotation_error(jnp.asarray(quat), jnp.asarray(goal)))
        assert err == pytest.approx(want, abs=1e-5)
        r, success = rotate.reward(jnp.asarray(quat), jnp.asarray(goal))
        assert bool(success) is ok and float(r) == (0.0 if ok else -1.0)
        r, success = rotate.reward(jnp.asarray(quat), jnp.asarray(goal), dense=True)
        assert bool(success) is ok and float(r) == pytest.approx(-want, abs=1e-5)
    # batched: (2, 4) quaternions
    r, _ = rotate.reward(jnp.asarray([_zq(0.0), _zq(1.0)]), jnp.asarray([_zq(0.05), _zq(0.0)]))
    np.testing.assert_array_equal(np.asarray(r), [0.0, -1.0])


def test_quat_mul_matches_scipy_rotation_composition():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = Rotation.random(random_state=rng), Rotation.random(random_state=rng)
        qa, qb = np.roll(a.as_quat(), 1), np.roll(b.as_quat(), 1)  # scipy is x, y, z, w
        got = np.asarray(rotate.quat_mul(jnp.asarray(qa), jnp.asarray(qb)))
        want = np.roll((a * b).as_quat(), 1)
        np.testing.assert_allclose(got * np.sign(got[0]), want * np.sign(want[0]), atol=1e-6)


def test_goal_and_initial_pose_sampling_are_uniform_z_rotations():
    n = 8192
    keys = jax.random.split(jax.random.PRNGKey(3), n)
    position = jnp.asarray([1.0, 0.87, 0.17])
    goals = np.asarray(jax.vmap(rotate.sample_goal, (0, None))(keys, position))
    np.testing.assert_allclose(goals[:, :3], np.broadcast_to(position, (n, 3)))
    q = goals[:, 3:]
    np.testing.assert_allclose(q[:, 1:3], 0.0)  # pure z-rotations
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-6)
    angles = 2 * np.arctan2(q[:, 3], q[:, 0])  # in (-pi, pi)
    counts, _ = np.histogram(angles, bins=8, range=(-np.pi, np.pi))
    assert np.all(np.abs(counts - n / 8) < 5 * np.sqrt(n / 8)), counts  # uniform
    # The initial pose: a z-turn of the model's pose (here tilted about x) and N(0, 0.005) m.
    tilt = np.array([np.cos(0.2), np.sin(0.2), 0.0, 0.0])
    pose0 = jnp.asarray(np.concatenate([[1.0, 0.87, 0.2], tilt]))
    poses = np.asarray(jax.vmap(rotate.initial_pose, (0, None))(keys, pose0))
    offsets = poses[:, :3] - np.asarray(pose0[:3])
    np.testing.assert_allclose(offsets.mean(0), 0.0, atol=3e-4)
    np.testing.assert_allclose(offsets.std(0), rotate.POSITION_NOISE, rtol=0.05)
    # q = q0 * q_z: conj(q0) * q is a pure z-rotation, uniform in angle
    rel = Rotation.from_quat(np.roll(tilt, -1)).inv() * Rotation.from_quat(
        np.roll(poses[:, 3:], -1, axis=1))
    rotvec = rel.as_rotvec()
    np.testing.assert_allclose(rotvec[:, :2], 0.0, atol=1e-5)
    counts, _ = np.histogram(rotvec[:, 2], bins=8, range=(-np.pi, np.pi))
    assert np.all(np.abs(counts - n / 8) < 5 * np.sqrt(n / 8)), counts


def test_object_generation_is_reproducible_and_in_everyday_ranges():
    for family in objects.FAMILIES:
        objects.family_objects.cache_clear()
        first = objects.family_objects(family)
        objects.family_objects.cache_clear()
        assert objects.family_objects(family) == first  # same seed, same objects
        assert objects.family_objects(family, seed=1) != first
        assert len(first) == objects.OBJECT_COUNTS[family]
    hulls = objects.family_objects("hull")
    assert len({h.geoms[0].vertices for h in hulls}) == len(hulls)
    for h in hulls[:5]:
        verts = np.asarray(h.geoms[0].vertices).reshape(-1, 3)
        assert verts.shape == (32, 3) and objects.hull_has_fixed_topology(verts)
    for name in ("box-00", "sphere-03", "capsule-05", "hull-02", "compound-07"):
        m = hand.hand_model(objects.get_object(name))
        body = m.body("object").id
        mass = float(m.body_mass[body])
        assert 0.005 < mass < 0.5, (name, mass)  # 5 g - 500 g
        half = m.geom_rbound[m.body_geomadr[body]]
        assert 0.01 < half < 0.08, (name, half)
    with pytest.raises(ValueError, match="unknown ShadowHand object 'cube-00'"):
        objects.get_object("cube-00")


def test_train_test_split_is_disjoint_stratified_and_seeded():
    names = objects.object_names()
    assert len(names) == 114 and len(set(names)) == 114
    train, test = objects.TRAIN, objects.TEST
    assert (len(train), len(test)) == (85, 29)
    assert set(train).isdisjoint(test) and set(train) | set(test) == set(names)
    for family, count in objects.TEST_COUNTS.items():
        assert sum(objects.family_of(n) == family for n in test) == count
    assert objects.split(names) == (train, test)  # reproducible
    assert objects.split(names, seed=1)[1] != test  # another seed holds out others
    suite_train, suite_test = envs.SUITES["shadowhand-train"], envs.SUITES["shadowhand-test"]
    assert suite_train == tuple(f"shadowhand/rotate-z/{n}" for n in train)
    assert suite_test == tuple(f"shadowhand/rotate-z/{n}" for n in test)
    spec = envs.get_task("shadowhand/rotate-z/hull-03")
    assert (spec.episode_length, spec.has_success, spec.backends) == (100, True, ("mjx",))
    assert envs.get_task("shadowhand/rotate-z-dense/hull-03").mjx_id == "rotate-z-dense/hull-03"
    assert len([t for t in envs.TASKS if t.startswith("shadowhand/")]) == 2 * 114


def test_hand_model_is_the_gymnasium_hand_edited_for_mjx():
    m = hand.hand_model(objects.get_object("box-00"))
    assert (m.nq, m.nv, m.nu) == (31, 30, 20)
    assert np.all(m.geom_margin == 0)
    forearm = m.geom("robot0:C_forearm")
    assert forearm.type[0] == mujoco.mjtGeom.mjGEOM_BOX
    assert m.nmesh == 0 and m.nsensor == 0
    assert m.opt.timestep == 0.002 and m.opt.ls_iterations == hand.LS_ITERATIONS
    lo, hi = m.actuator_ctrlrange.T
    np.testing.assert_allclose([lo[0], hi[0]], [-0.489, 0.14])  # robot0:A_WRJ1


def test_model_batch_gathers_each_objects_own_arrays():
    from mujoco import mjx

    objs = [objects.get_object(n) for n in ("hull-00", "hull-01", "hull-02")]
    models = [mjx.put_model(hand.hand_model(o), impl="jax") for o in objs]
    batch = rotate.ModelBatch(models, [o.name for o in objs])
    assert batch.varying  # sizes, masses, mesh arrays differ
    for i, m in enumerate(models):
        got = batch.model(jnp.int32(i))
        np.testing.assert_array_equal(np.asarray(got.geom_size), np.asarray(m.geom_size))
        np.testing.assert_array_equal(np.asarray(got.body_mass), np.asarray(m.body_mass))
        np.testing.assert_array_equal(np.asarray(got._impl.mesh_convex[0].vert),
                                      np.asarray(m._impl.mesh_convex[0].vert))
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(m), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="one family"):
        rotate.RotateZ([objects.get_object("box-00"), objects.get_object("sphere-00")])


def test_each_object_of_a_batched_backend_is_drawn_from_its_own_model_and_envs():
    from types import SimpleNamespace

    from envs import mjx_backend

    objs = [objects.get_object(n) for n in ("box-00", "box-01")]
    task = rotate.RotateZ(objs)
    drawn = mjx_backend.renderables(task, envs_per_task=3)
    assert [r.model for r in drawn] == [hand.hand_model(o) for o in objs]
    sizes = [r.model.geom_size[r.model.geom("object_0").id] for r in drawn]
    np.testing.assert_allclose(sizes, [o.geoms[0].size for o in objs])
    assert drawn[0].fps == pytest.approx(25.0)
    qpos = np.arange(6 * 31, dtype=np.float32).reshape(6, 31)  # envs 0-2: box-00, 3-5: box-01
    state = SimpleNamespace(env_state=SimpleNamespace(data=SimpleNamespace(qpos=qpos)))
    np.testing.assert_array_equal(drawn[1].qpos(state), qpos[3:])
    np.testing.assert_array_equal(drawn[0].qpos(state), qpos[:3])
    m = drawn[0].model  # the collision geoms are drawn (group 0), the camera looks at the object
    assert np.all(m.geom_group == 0) and m.camera("closeup").id == 0
    assert m.cam_targetbodyid[0] == m.body("object").id


def test_a_multi_task_backend_needs_one_renderable_per_task():
    drawn = envs.Renderable(model=None, fps=1.0, qpos=lambda s: s)
    backend = envs.TaskBackend(reset=lambda k: (None, jnp.zeros((4, 1))), step=None, num_envs=4,
                               action_dim=1, renderables=(drawn,), num_tasks=2)
    with pytest.raises(ValueError, match="2 tasks has 1 renderables"):
        envs.make_multitask(["a", "b"], ["mjx", "mjx"], [backend], [10], [False])


def _cpu_reward(d, goal):
    """Gymnasium-Robotics' sparse reward in NumPy, from a CPU MjData."""
    w1, x1, y1, z1 = d.qpos[rotate.HAND_JOINTS + 3 : rotate.HAND_JOINTS + 7]
    w2, x2, y2, z2 = goal * np.array([1, -1, -1, -1])  # conjugate
    w = w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2
    return -1.0 + float(2 * np.arccos(np.clip(w, -1, 1)) < rotate.ROTATION_THRESHOLD)


@pytest.mark.slow
def test_batched_objects_step_as_cpu_mujoco_on_each_objects_own_model():
    """Two compound objects in one batched env: every env follows CPU MuJoCo on its object's own
    model from the same state under the same actions (qpos, 3 env steps = 60 physics steps)."""
    names = ("compound-00", "compound-01")
    env = rotate.RotateZ([objects.get_object(n) for n in names])
    reset = jax.jit(jax.vmap(env.reset))
    step = jax.jit(jax.vmap(env.step))
    state = reset(jax.random.split(jax.random.PRNGKey(0), 2), jnp.arange(2))
    actions = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (3, 2, 20), minval=-1,
                                            maxval=1))
    def cpu_sim(i, name):  # env i's state on the CPU model of object `name`
        m = hand.hand_model(objects.get_object(name))
        d = mujoco.MjData(m)
        d.qpos[:], d.qvel[:] = np.asarray(state.data.qpos[i]), np.asarray(state.data.qvel[i])
        return m, d

    own = [cpu_sim(i, names[i]) for i in range(2)]
    # Control: each env's state on the *other* object's model drifts off within the same steps
    # (measured 0.02-0.16 max |dq|, own model < 0.004): the comparison can tell objects apart.
    swapped = [cpu_sim(i, names[1 - i]) for i in range(2)]
    lo, hi = own[0][0].actuator_ctrlrange.T
    swapped_error = np.zeros(2)
    for k in range(3):
        state = step(state, jnp.asarray(actions[k]))
        for i in range(2):
            ctrl = np.clip((hi + lo) / 2 + actions[k, i] * (hi - lo) / 2, lo, hi)
            for m, d in (own[i], swapped[i]):
                d.ctrl[:] = ctrl
                for _ in range(rotate.N_SUBSTEPS):
                    mujoco.mj_step(m, d)
            qpos = np.asarray(state.data.qpos[i])
            np.testing.assert_allclose(qpos, own[i][1].qpos, atol=5e-3)
            swapped_error[i] = max(swapped_error[i], np.abs(qpos - swapped[i][1].qpos).max())
            goal = np.asarray(state.goal[i, 3:])
            assert float(state.reward[i]) == _cpu_reward(own[i][1], goal)
    assert np.all(swapped_error > 1e-2), swapped_error
    assert np.all(np.isfinite(np.asarray(state.obs)))


@pytest.mark.slow
def test_rotate_z_episodes_in_the_multitask_env():
    """Two box objects x 4 envs through `envs.make`: 100-step truncated episodes, rewards in
    {-1, 0}, the success flag only at episode ends, the objects resting on the palm after reset."""
    tasks = ["shadowhand/rotate-z/box-00", "shadowhand/rotate-z/box-01"]
    env = envs.make(tasks, envs_per_task=4)
    assert (env.num_tasks, env.num_envs, env.obs_dim, env.action_dim) == (2, 8, 68, 20)
    assert len(env.backends) == 2 and env.has_success == (True, True)
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    on_palm = np.asarray(state.obs[:, 56]) > 0.04  # object z after settling
    assert on_palm.all(), np.asarray(state.obs[:, 56])
    np.testing.assert_array_equal(np.asarray(state.task_id), [0, 0, 0, 0, 1, 1, 1, 1])

    def body(s, key):
        action = jax.random.uniform(key, (env.num_envs, env.action_dim), minval=-1, maxval=1)
        s = env.step(s, action)
        return s, (s.reward, s.truncated, s.terminated, s.last_episode_success, s.obs)

    keys = jax.random.split(jax.random.PRNGKey(1), 101)
    state, (rewards, truncated, terminated, _, obs) = jax.jit(
        lambda s: jax.lax.scan(body, s, keys))(state)
    rewards, truncated = np.asarray(rewards), np.asarray(truncated)
    assert set(np.unique(rewards)) <= {-1.0, 0.0}
    assert truncated[99].all() and not truncated[:99].any() and not truncated[100].any()
    assert not np.asarray(terminated).any()
    assert np.all(np.isfinite(np.asarray(obs)))
    np.testing.assert_array_equal(np.asarray(state.last_episode_length), 100)
    # the goal part of the observation changes at the reset only
    goals = np.asarray(obs)[:, :, 61:68]
    np.testing.assert_array_equal(goals[0], goals[98])
    assert not np.allclose(goals[98], goals[100])


@pytest.mark.slow
def test_brc_train_runs_shadowhand_objects_in_the_one_jit_loop(tmp_path):
    """`brc-train --env.tasks ...` on two box objects (one batched model): epochs, the per-task
    success metric from evaluation, finite losses, and (where OpenGL works) a video per object,
    each drawn from its own model."""
    import dataclasses
    import os

    from brc_mjx import run as run_lib
    from brc_mjx import video
    from configs.train import SHADOWHAND_CPU

    env_cfg = dataclasses.replace(SHADOWHAND_CPU.env, envs_per_task=2, eval_episodes=2,
                                  tasks=("shadowhand/rotate-z/box-00",
                                         "shadowhand/rotate-z/box-01"))
    cfg = dataclasses.replace(SHADOWHAND_CPU, env=env_cfg, total_env_steps=400,
                              warmup_env_steps=100, steps_per_epoch=100, updates_per_step=2,
                              eval_every=400, diagnostics_every=0, checkpoint_every=0,
                              batch_size=32, compile_cache=False, run_dir=str(tmp_path / "run"),
                              video=video.renderer_problem() is None)
    out = run_lib.run(cfg)
    assert out["epochs_done"] == 2
    keys = [k for k in out if k.endswith("/success")]
    assert keys == [f"eval/shadowhand/rotate-z/box-0{i}/success" for i in range(2)], keys
    assert all(0.0 <= out[k] <= 1.0 for k in keys)
    assert np.isfinite(out["train/critic_loss"])
    if cfg.video:
        names = sorted(os.listdir(tmp_path / "run" / "videos"))
        assert names == [f"shadowhand_rotate-z_box-0{i}_400.gif" for i in range(2)], names


def _baseline_row(policy, tasks, success, ret=None, benchmark=None):
    row = {"benchmark": benchmark or f"shadowhand_{policy}_success",
           "config": {"tasks": list(tasks)}, "mean_success": success}
    if ret is not None:
        row["mean_return"] = ret
    return row


def test_the_plot_takes_the_newest_baselines_measured_on_the_runs_own_tasks(tmp_path):
    import json

    from benchmarks import shadowhand as bench

    tasks = ["shadowhand/rotate-z-dense/box-00", "shadowhand/rotate-z-dense/box-01"]
    rows = [
        _baseline_row("random", tasks, 0.5, -100.0),  # superseded by the row below
        _baseline_row("random", tasks, 0.0, -237.0),
        _baseline_row("zero", tasks, 0.25),  # an older row: no return
        _baseline_row("zero", tasks[:1], 0.75, -1.0),  # other tasks
        _baseline_row("zero", list(reversed(tasks)), 0.75, -1.0),  # other task order
        _baseline_row("zero", tasks, 0.75, -1.0, benchmark="shadowhand_env_only"),
    ]
    levels = bench.baseline_levels(rows, tasks)
    assert levels["random"] == (0.0, -237.0)
    assert levels["zero"][0] == 0.25 and np.isnan(levels["zero"][1])

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "meta.json").write_text(json.dumps({"task_names": tasks}))
    (run / "metrics.jsonl").write_text(json.dumps({"env_steps": 100, "loss": 1.0}) + "\n")
    with pytest.raises(SystemExit, match="no evaluation with success rates"):
        bench.plot_run(str(run), rows, tmp_path / "c.png")
    records = [{"env_steps": s, "eval/mean_success": m, "eval/mean_return": -m,
                **{f"eval/{t}/{k}": m for t in tasks for k in ("success", "return")}}
               for s, m in ((1000, 0.0), (2000, 0.5))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "plots" / "curve.png"
    drawn = bench.plot_run(str(run), rows, out)
    assert sorted(drawn) == ["random", "zero"] and drawn["random"] == (0.0, -237.0)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="not a readable run directory"):
        bench.plot_run(str(tmp_path / "missing"), rows, out)
