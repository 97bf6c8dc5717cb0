"""HumanoidBench H1 crawl / pole / hurdle / maze on MJX: the scenes' geometry (ray casts against
HumanoidBench's numbers), whole-body contact bits, the maze's stages (hand-worked), and per-step
reward parity with HumanoidBench's formulas re-computed in NumPy on CPU MuJoCo."""

import functools

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from dm_control.utils import rewards as dm_rewards

import envs
from envs.humanoidbench import H1Locomotion
from envs.humanoidbench import h1 as h1_lib
from envs.humanoidbench.locomotion import Readings, maze_reward, reward

INF = float("inf")
PENALTY = ("pole", "hurdle", "maze")  # tasks whose reward a contact discounts


def _ray(m, origin, direction):
    """Distance along a ray to the first static geom (CPU MuJoCo), -1 if none."""
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    geom = np.zeros(1, np.int32)
    return mujoco.mj_ray(m, d, np.asarray(origin, float), np.asarray(direction, float), None,
                         1, -1, geom)


def test_obstacle_geometry():
    down = (0.0, 0.0, -1.0)
    crawl = h1_lib.h1_model(scene="crawl", whole_body=True)
    assert _ray(crawl, (5.0, 0.0, 0.1), (0, 0, 1)) == pytest.approx(1.05)  # roof underside 1.15
    assert _ray(crawl, (1.0, 0.0, 0.1), (0, 0, 1)) == -1  # the tunnel starts at x = 2.2
    assert _ray(crawl, (2.1, 0.0, 1.0), (1, 0, 0)) == -1  # under the roof's edge: open
    assert _ray(crawl, (5.0, 0.0, 0.5), (0, 1, 0)) == pytest.approx(1.15)  # inner wall y 1.15
    pole = h1_lib.h1_model(scene="pole", whole_body=True)
    poles = [i for i in range(pole.ngeom) if pole.geom(i).name.startswith("pole_")]
    assert len(poles) == 144  # 21 rows of 4 and 20 of 3
    xy = {(round(float(pole.geom_pos[i][0]), 3), round(float(pole.geom_pos[i][1]), 3))
          for i in poles}
    assert {(1.0, 2.25), (1.0, -0.75), (2.0, 0.0), (2.0, -1.5), (41.0, 0.75)} <= xy
    assert (2.0, 0.75) not in xy and (1.0, 0.0) not in xy
    assert _ray(pole, (1.0, 0.75, 5.0), down) == pytest.approx(3.0)  # poles 2 m high
    assert _ray(pole, (0.5, 0.0, 1.0), (0, 1, 0)) == pytest.approx(3.0)  # barrier face y 3.0
    hurdle = h1_lib.h1_model(scene="hurdle", whole_body=True)
    for x in (7.0, 14.0, 70.0):
        assert _ray(hurdle, (x, 1.0, 5.0), down) == pytest.approx(5.0 - 0.375)
    assert _ray(hurdle, (3.0, 0.0, 0.1), (1, 0, 0)) == pytest.approx(4.0 - 0.03)
    maze = h1_lib.h1_model(scene="maze", whole_body=True)
    # corridors through HumanoidBench's checkpoints (0,0) -> (3,0) -> (3,6) -> (6,6)
    for x, y in ((0.5, 0.5), (1.5, 0.0), (3.0, 0.3), (3.0, 3.0), (3.0, 6.3), (6.0, 6.3)):
        assert _ray(maze, (x, y, 5.0), down) == pytest.approx(5.0), (x, y)  # the floor
    for x, y in ((0.0, -1.5), (-1.5, 0.0), (1.5, 1.5), (4.5, 4.5), (0.0, 7.5), (7.5, 0.0)):
        assert _ray(maze, (x, y, 5.0), down) == pytest.approx(3.8), (x, y)  # a 1.2 m block
    assert _ray(maze, (1.5, 0.0, 0.5), (0, -1, 0)) == pytest.approx(0.75)


def test_whole_body_contact_bits():
    """Whole-body models: 20 body primitives (capsules and spheres: legs, knees, torso, chest,
    head, arms, hands) that touch the floor and every scene geom and not each other; the feet
    as before; the robot still weighs 51.65 kg."""
    for scene in ("crawl", "pole", "hurdle", "maze", ""):
        m = h1_lib.h1_model(scene=scene, whole_body=True)
        robot = [i for i in range(m.ngeom) if m.body_rootid[m.geom_bodyid[i]] != 0]
        static = [i for i in range(m.ngeom) if i not in robot]
        body = [i for i in robot if m.geom_contype[i] == h1_lib.BODY_BIT]
        assert len(body) == 20 and abs(m.body_mass.sum() - 51.65) < 0.01
        assert {int(m.geom_type[i]) for i in body} == {mujoco.mjtGeom.mjGEOM_CAPSULE,
                                                  mujoco.mjtGeom.mjGEOM_SPHERE}
        parts = {m.body(m.geom_bodyid[i]).name for i in body}
        assert {"torso_link", "left_knee_link", "right_elbow_link", "left_hip_pitch_link",
                "right_shoulder_yaw_link"} <= parts

        def collide(a, b, m=m):
            return bool(m.geom_contype[a] & m.geom_conaffinity[b]
                        | m.geom_contype[b] & m.geom_conaffinity[a])

        touchable = [i for i in static if m.geom_contype[i] or m.geom_conaffinity[i]]
        assert all(collide(b, s) for b in body for s in touchable)
        assert not any(collide(a, b) for a in body for b in body)
    feet_only = h1_lib.h1_model(scene="stair")
    assert not any(feet_only.geom_contype[i] == h1_lib.BODY_BIT for i in range(feet_only.ngeom))


def _readings(**kw):
    base = dict(head_height=1.7, torso_upright=1.0, com_velocity=jnp.zeros(3),
                actuator_force=jnp.zeros(19), left_foot_height=0.0, right_foot_height=0.0,
                imu=jnp.array([0.0, 0.0, 1.2]), pelvis_quat=jnp.array([1.0, 0, 0, 0]),
                pelvis_xy=jnp.zeros(2), penalised_contact=jnp.array(False), pelvis_upright=1.0,
                left_hand=jnp.zeros(3), robot_qvel=jnp.zeros(25))
    base.update(kw)
    return Readings(**{k: jnp.asarray(v, jnp.float32) if k != "penalised_contact" else v
                       for k, v in base.items()})


def test_maze_stages_hand_worked():
    # Standing still at the start: the pelvis within 0.4 m of checkpoint (0, 0) -> stage 1,
    # bonus 100 x 1; then move along +x at 2 m/s (still: tol(-2, margin 1) = 0 -> move 1/6), the
    # proximity to checkpoint (3, 0) from the imu at (0, 0): tol(3, margin 1) gaussian
    # = 0.1 ** 9; standing and small control are 1: 0.2 + 0.4 / 6 + 0.4 * 1e-9 + 100.
    r, stage = maze_reward(_readings(), jnp.int32(0))
    assert int(stage) == 1
    assert float(r) == pytest.approx(100 + 0.2 + 0.4 / 6 + 0.4 * 0.1**9, rel=1e-5)
    # Stage 1 far from (3, 0): no advance, no bonus; moving at 2 m/s along +x: move = 1;
    # a touched block scales everything by 0.1
    r, stage = maze_reward(_readings(com_velocity=jnp.array([2.0, 0.0, 0.0]),
                                     pelvis_xy=jnp.array([1.0, 0.0]),
                                     imu=jnp.array([3.0, 0.0, 1.2]),
                                     penalised_contact=jnp.array(True)), jnp.int32(1))
    assert int(stage) == 1 and float(r) == pytest.approx(0.1 * (0.2 + 0.4 + 0.4), rel=1e-5)
    # At (3, 6) in stage 2 -> stage 3 (+300), the direction turns to +x; at (6, 6) in stage 3
    # -> stage 4 (+400), where move is 1 whatever the velocity; stage 4 stays 4, no bonus again
    r, stage = maze_reward(_readings(pelvis_xy=jnp.array([3.1, 5.8]),
                                     com_velocity=jnp.array([2.0, 0.0, 0.0])), jnp.int32(2))
    assert int(stage) == 3 and float(r) > 300.6
    r, stage = maze_reward(_readings(pelvis_xy=jnp.array([6.0, 6.0]),
                                     imu=jnp.array([6.0, 6.0, 1.2])), jnp.int32(3))
    assert int(stage) == 4 and float(r) == pytest.approx(400 + 0.2 + 0.4 + 0.4, rel=1e-5)
    r, stage = maze_reward(_readings(pelvis_xy=jnp.array([6.0, 6.0]),
                                     imu=jnp.array([6.0, 6.0, 1.2])), jnp.int32(4))
    assert int(stage) == 4 and float(r) == pytest.approx(1.0, rel=1e-5)


def test_crawl_pole_hurdle_rewards_hand_worked():
    tasks = envs.humanoidbench.TASKS
    # crawl, in the perfect pose (head and imu at 0.8, pelvis quat (0.75, 0, 0.65, 0)) at 1 m/s
    # with no force: 0.1 + 0.25 + 0.4 + 0.25 * tol(|q - q*| = 0) = 1; outside |y| <= 1: 0
    perfect = _readings(head_height=0.8, imu=jnp.array([5.0, 0.0, 0.8]),
                        pelvis_quat=jnp.array([0.75, 0.0, 0.65, 0.0]),
                        com_velocity=jnp.array([1.0, 0.0, 0.0]))
    assert float(reward(perfect, tasks["crawl"])) == pytest.approx(1.0, rel=1e-6)
    outside = perfect.replace(imu=jnp.array([5.0, 1.01, 0.8]))
    assert float(reward(outside, tasks["crawl"])) == 0.0
    # pole: standing still: 0.5 * 1 + 0.5 * (1/6); touching a pole: a tenth of it
    still = _readings()
    assert float(reward(still, tasks["pole"])) == pytest.approx(0.5 + 0.5 / 6, rel=1e-6)
    touching = still.replace(penalised_contact=jnp.array(True))
    assert float(reward(touching, tasks["pole"])) == pytest.approx(0.1 * (0.5 + 0.5 / 6))
    # hurdle at 5 m/s, upright 0.8 (its looser bound) counts as upright: 1; at 2.5 m/s
    # move = (5 * 0.5 + 1) / 6
    fast = _readings(torso_upright=0.8, com_velocity=jnp.array([5.0, 0.0, 0.0]))
    assert float(reward(fast, tasks["hurdle"])) == pytest.approx(1.0, rel=1e-6)
    half = fast.replace(com_velocity=jnp.array([2.5, 0.0, 0.0]))
    assert float(reward(half, tasks["hurdle"])) == pytest.approx(3.5 / 6, rel=1e-5)


def numpy_reward(m, d, task, stage):
    """HumanoidBench's `get_reward` of crawl / pole / hurdle / maze (basic_locomotion_envs.py,
    pole.py, maze.py) on CPU MuJoCo data; returns (reward, next maze stage)."""
    tol = dm_rewards.tolerance
    head = d.site("head").xpos[2]
    upright_z = d.xmat[m.body("torso_link").id][8]
    small = (4 + tol(d.actuator_force, margin=10, value_at_margin=0,
                     sigmoid="quadratic").mean()) / 5
    vel = d.sensor("pelvis_subtreelinvel").data
    names = [m.geom(i).name for i in range(m.ngeom)]
    pairs = [(c.geom1, c.geom2) for c in d.contact[:d.ncon]]

    def touched(rule):
        return any(rule(names[a]) or rule(names[b]) for a, b in pairs)

    def move_of(speed):
        return (5 * tol(vel[0], bounds=(speed, INF), margin=speed, value_at_margin=0,
                        sigmoid="linear") + 1) / 6

    def stand(bound):
        return (tol(head, bounds=(1.65, INF), margin=1.65 / 4)
                * tol(upright_z, bounds=(bound, INF), sigmoid="linear", margin=1.9,
                      value_at_margin=0))

    imu = d.site("imu").xpos
    dont_move = tol(vel[:2], margin=2).mean()
    if task.startswith("sit"):  # basic_locomotion_envs.py, Sit
        sitting = tol(d.qpos[2], bounds=(0.68, 0.72), margin=0.2)
        chair = d.body("chair").xpos
        on_chair = (tol(d.qpos[0] - chair[0], bounds=(-0.19, 0.19), margin=0.2)
                    * tol(d.qpos[1] - chair[1], margin=0.1))
        posture = tol(head - imu[2], bounds=(0.35, 0.45), margin=0.3)
        upright = tol(upright_z, bounds=(0.95, INF), sigmoid="linear", margin=0.9,
                      value_at_margin=0)
        return small * (0.5 * sitting + 0.5 * on_chair) * upright * posture * dont_move, stage
    if task.startswith("balance"):  # balance.py, BalanceBase
        standing = tol(head, bounds=(1.65 + 0.37, INF), margin=1.65 / 4)
        upright = tol(upright_z, bounds=(0.9, INF), sigmoid="linear", margin=1.9,
                      value_at_margin=0)
        return small * standing * upright * dont_move, stage
    if task == "reach":  # reach.py
        hand_dist = np.sqrt(np.square(d.site("left_hand").xpos - REACH_GOAL).sum())
        healthy = d.xmat[1, -1] * 5.0
        motion = np.square(d.qvel[:25]).sum()
        return (healthy - 0.0001 * motion + (5 if hand_dist < 1 else 0)
                + (10 if hand_dist < 0.05 else 0)), stage
    if task == "crawl":
        crawling_head = tol(head, bounds=(0.6, 1.0), margin=1)
        crawling = tol(imu[2], bounds=(0.6, 1.0), margin=1)
        pose = tol(np.linalg.norm(d.body("pelvis").xquat - np.array([0.75, 0, 0.65, 0])),
                   margin=1)
        in_tunnel = tol(imu[1], bounds=(-1, 1), margin=0)
        return (0.1 * small + 0.25 * min(crawling, crawling_head) + 0.4 * move_of(1)
                + 0.25 * pose) * in_tunnel, stage
    if task == "pole":
        discount = 0.1 if touched(lambda n: n.startswith("pole_")) else 1
        return (0.5 * small * stand(0.9) + 0.5 * move_of(0.5)) * discount, stage
    if task == "hurdle":
        discount = 0.1 if touched(lambda n: n.endswith("_barrier")) else 1
        return small * stand(0.8) * move_of(5) * discount, stage
    # maze: update_move_direction, then the reward, as maze.py orders them
    checkpoints = [(0, 0), (3, 0), (3, 6), (6, 6), (6, 6)]
    turns = {0: (1, 0), 1: (0, 1), 2: (1, 0), 3: (0, 1)}
    direction = (1, 0) if stage == 0 else turns[stage - 1]
    bonus = 0
    if np.linalg.norm(d.body("pelvis").xpos[:2] - checkpoints[stage]) < 0.4:
        direction = turns.get(stage, direction)
        new = min(stage + 1, 4)
        bonus = new * 100 if new > stage else 0
        stage = new
    move = (tol(vel[0] - direction[0] * 2, margin=1, value_at_margin=0, sigmoid="linear")
            * tol(vel[1] - direction[1] * 2, margin=1, value_at_margin=0, sigmoid="linear"))
    move = (5 * (1 if stage == 4 else move) + 1) / 6
    proximity = tol(np.linalg.norm(np.array(checkpoints[stage]) - imu[:2]), margin=1)
    discount = 0.1 if touched(lambda n: n.startswith("block_")) else 1
    return (0.2 * stand(0.9) * small + 0.4 * move + 0.4 * proximity) * discount + bonus, stage


def numpy_terminated(m, d, task) -> bool:
    """HumanoidBench's `get_terminated` of sit (pelvis below 0.5 m) and balance (below 0.8 m,
    or the sphere touching anything but the floor and the board, or the floor anything but the
    sphere)."""
    if task.startswith("sit"):
        return bool(d.qpos[2] < 0.5)
    if d.qpos[2] < 0.8:
        return True
    floor, board = m.geom("floor").id, m.geom("stand_board_collision").id
    sphere = m.geom("pivot_sphere_collision").id
    for c in d.contact[:d.ncon]:
        pair = (c.geom1, c.geom2)
        if sphere in pair and floor not in pair and board not in pair:
            return True
        if floor in pair and sphere not in pair:
            return True
    return False


@functools.cache
def _mjx_step(task):
    env = H1Locomotion(task)

    @jax.jit
    def step(state, action):
        return env.step(state, action)

    return env, step


# Start poses (x, y) next to what the task's reward penalises or, for crawl, at the tunnel's
# mouth: a pole 10 cm ahead of the torso, 25 cm from a barrier, 25 cm from a maze block.
STARTS = {"crawl": (1.9, 0.0), "pole": (0.85, 0.75), "hurdle": (0.5, 4.2), "maze": (0.0, -0.45),
          "reach": (0.0, 0.0),
          "sit_hard": (0.3, 0.0)}  # in sit_hard's start range; sit_simple and balance: keyframes
SIT_BALANCE = ("sit_simple", "sit_hard", "balance_simple", "balance_hard")
REACH_GOAL = np.array([0.3, 0.35, 0.9])  # about 0.5 m from the left hand at the keyframe


@pytest.mark.slow  # ~1-2 min each on 2 cores (CI runs the slow suite)
@pytest.mark.parametrize("task", ["crawl", "pole", "hurdle", "maze", "reach", *SIT_BALANCE])
def test_obstacle_reward_parity_with_cpu_mujoco(task):
    """From the same CPU state and a fixed random action sequence, per step: MJX's next state,
    reward and maze stage == CPU MuJoCo's next state and HumanoidBench's reward on it, with the
    robot's body touching the floor or the obstacles along the way (and, for pole / hurdle /
    maze, a penalised contact discounting some steps).

    One allowance, measured: a step whose next state differs by more than 2e-3 is counted, not
    compared. Here that happens only at hard impacts of a falling body (float32 MJX against
    float64 CPU MuJoCo, and MJX's capsule-box contacts, which are not CPU MuJoCo's; see
    envs/README.md): 0 of 30 steps for crawl and pole, 1 for maze, 3 for hurdle, each after
    step 25; 2 for sit_simple, 1 for sit_hard, balance_simple and balance_hard. At most 3 of
    30 may differ. Sit and balance also compare the termination (balance's by contact) with
    HumanoidBench's rule on the CPU contacts."""
    from mujoco import mjx

    from envs.humanoidbench.locomotion import State

    env, step = _mjx_step(task)
    m = env.mj_model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(1)
    mujoco.mj_resetDataKeyframe(m, d, 0)
    if task in STARTS:
        d.qpos[0], d.qpos[1] = STARTS[task]
    d.qpos[:] += rng.uniform(-0.01, 0.01, m.nq)
    mujoco.mj_forward(m, d)
    robot = m.body("pelvis").id
    body = {i for i in range(m.ngeom) if m.geom_contype[i] == h1_lib.BODY_BIT
            and m.body_rootid[m.geom_bodyid[i]] == robot}
    stage, body_contacts, discounted, diverged, close, ended = 0, 0, 0, 0, 0, 0
    for a in rng.uniform(-1, 1, (30, m.nu)):
        state = State(data=mjx.put_data(m, d, impl="jax"), obs=jnp.zeros(env.observation_size),
                      reward=jnp.zeros(()), done=jnp.zeros(()), stage=jnp.int32(stage),
                      goal=jnp.asarray(REACH_GOAL, jnp.float32))
        nxt = step(state, jnp.asarray(a, jnp.float32))
        low, high = m.actuator_ctrlrange.T
        d.ctrl[:] = (a + 1) / 2 * (high - low) + low
        for _ in range(10):  # HumanoidBench's do_simulation, substep by substep
            mujoco.mj_step(m, d)
            body_contacts += sum(int(c.geom1 in body or c.geom2 in body)
                                 for c in d.contact[:d.ncon])
        want, new_stage = numpy_reward(m, d, task, stage)
        close += int(task == "reach" and np.linalg.norm(d.site("left_hand").xpos - REACH_GOAL) < 1)
        cpu_obs = [d.qpos, d.qvel] + ([d.site("left_hand").xpos, REACH_GOAL] if task == "reach"
                                      else [])
        if np.abs(np.asarray(nxt.obs) - np.concatenate(cpu_obs)).max() > 2e-3:
            diverged += 1
        else:
            np.testing.assert_allclose(float(nxt.reward), want, rtol=2e-3, atol=1e-4)
            assert int(nxt.stage) == new_stage
            if task in SIT_BALANCE:
                assert bool(nxt.done) == numpy_terminated(m, d, task)
                ended += int(bool(nxt.done))
            discounted += int(task in PENALTY and want < 0.1 * 1.0001 and bool(jax.device_get(
                env.readings(nxt.data).penalised_contact)))
        stage = new_stage
    assert diverged <= 3, diverged
    if task == "reach":  # the hand came within 1 m of the goal: the +5 was paid and compared
        assert close > 0
    assert body_contacts > 0
    if task in PENALTY:
        assert discounted > 0


def test_registry_and_suites():
    nine = envs.SUITES["humanoidbench-h1"]
    assert set(nine) == {f"humanoidbench/h1-{t}" for t in (
        "walk", "stand", "run", "stair", "crawl", "pole", "slide", "hurdle", "maze")}
    assert set(envs.SUITES["humanoidbench-h1-all"]) == set(nine) | {
        f"humanoidbench/h1-{t}" for t in ("reach", *SIT_BALANCE)}
    scores = envs.normalised_scores(["humanoidbench/h1-maze", "humanoidbench/h1-crawl"],
                                    [106.441 + 0.5 * (1200 - 106.441), 700.0])
    assert scores["humanoidbench/h1-maze"] == pytest.approx(0.5)
    assert scores["humanoidbench/h1-crawl"] == pytest.approx(1.0)


def test_reach_reward_hand_worked_and_its_goal():
    from envs.humanoidbench.locomotion import reach_reward

    # upright pelvis (5), no motion; the hand 0.5 m from the goal: +5; 3 cm: +5 +10; joint
    # speeds 10 rad/s on 4 joints cost 1e-4 * 400 = 0.04; a pelvis tilted to zz 0.5 gives 2.5
    goal = jnp.array([0.5, 0.0, 1.0])
    still = _readings(pelvis_upright=1.0, left_hand=jnp.array([0.0, 0.0, 1.0]),
                      robot_qvel=jnp.zeros(25))
    assert float(reach_reward(still, goal)) == pytest.approx(10.0)
    near = still.replace(left_hand=jnp.array([0.47, 0.0, 1.0]))
    assert float(reach_reward(near, goal)) == pytest.approx(20.0)
    moving = still.replace(robot_qvel=jnp.zeros(25).at[:4].set(10.0),
                           left_hand=jnp.array([2.0, 0.0, 1.0]), pelvis_upright=0.5)
    assert float(reach_reward(moving, goal)) == pytest.approx(2.5 - 0.04, rel=1e-5)
    # the goal is drawn per reset inside HumanoidBench's box and observed after the left hand
    env = H1Locomotion("reach")
    states = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.key(0), 64))
    goals = np.asarray(states.goal)
    assert env.observation_size == 57 and states.obs.shape == (64, 57)
    assert np.all(goals >= [-2, -2, 0.2]) and np.all(goals <= [2, 2, 2.0])
    assert goals.std(0).min() > 0.3  # spread over the box, not one point
    np.testing.assert_array_equal(states.obs[:, 54:], goals)
    hand = np.asarray(states.data.site_xpos[:, env.mj_model.site("left_hand").id])
    np.testing.assert_allclose(states.obs[:, 51:54], hand)


def test_sit_and_balance_rewards_hand_worked():
    tasks = envs.humanoidbench.TASKS
    # sat on the chair: pelvis 0.70 m high, 0.1 m in front of the chair's origin, head 0.4 m
    # above the imu, upright, still, no force: every factor is 1
    seated = _readings(root=jnp.array([-0.15, 0.0, 0.70]), chair_xy=jnp.array([-0.25, 0.0]),
                       head_height=1.2, imu=jnp.array([-0.15, 0.0, 0.8]))
    for task in ("sit_simple", "sit_hard"):
        assert float(reward(seated, tasks[task])) == pytest.approx(1.0, rel=1e-6)
    # standing (pelvis 0.98): sitting = 0.1 ** ((0.98 - 0.72) / 0.2) ** 2 (gaussian)
    standing = seated.replace(root=jnp.array([-0.15, 0.0, 0.98]))
    assert float(reward(standing, tasks["sit_simple"])) == pytest.approx(
        0.5 * 0.1 ** 1.69 + 0.5, rel=1e-5)
    # 0.1 m to the side of the chair: on_chair = 0.1 (margin 0.1)
    aside = seated.replace(root=jnp.array([-0.15, 0.1, 0.70]))
    assert float(reward(aside, tasks["sit_simple"])) == pytest.approx(0.55, rel=1e-5)
    # balance: the head 0.37 m higher than `stand` asks (2.02 m): 1; at stand's 1.65 m:
    # standing = 0.1 ** (0.37 / (1.65 / 4)) ** 2
    on_board = _readings(head_height=2.02)
    assert float(reward(on_board, tasks["balance_simple"])) == pytest.approx(1.0, rel=1e-6)
    low = on_board.replace(head_height=jnp.float32(1.65))
    assert float(reward(low, tasks["balance_hard"])) == pytest.approx(
        0.1 ** ((0.37 / 0.4125) ** 2), rel=1e-5)


def test_balance_contact_rule_hand_worked():
    from envs.humanoidbench.locomotion import balance_contact

    # geoms: 0 floor, 1 board, 2 sphere, 3 a foot
    floor, board, pivot = (jnp.arange(4) == i for i in range(3))

    def ends(pairs, active=None):
        geom = jnp.asarray(pairs)
        active = jnp.ones(len(pairs), bool) if active is None else jnp.asarray(active)
        return bool(balance_contact(geom, active, floor, board, pivot))

    assert not ends([(2, 0), (1, 2), (3, 1)])  # sphere on floor, board on sphere, foot on board
    assert ends([(3, 2)])  # a foot touches the sphere
    assert ends([(0, 3)])  # a foot touches the floor
    assert ends([(1, 0)])  # the board touches the floor
    assert not ends([(0, 3), (3, 2)], active=[False, False])  # slots not in contact


def test_sit_and_balance_keyframes():
    """HumanoidBench's qpos0 of each task: the robot, then the scene's free bodies."""
    for task, size, start, free in (
            ("sit_simple", 51, (0.0, 0.0, 0.98), ()),
            ("sit_hard", 64, (0.0, 0.0, 0.98), (-0.25, 0, 0, 1, 0, 0, 0)),
            ("balance_simple", 64, (-0.1, 0.0, 1.38), (0, 0, 0.37, 1, 0, 0, 0)),
            ("balance_hard", 77, (-0.1, 0.0, 1.38),
             (0, 0, 0.37, 1, 0, 0, 0, 0, 0, 0.17, 1, 0, 0, 0))):
        m = H1Locomotion(task).mj_model
        assert m.nq + m.nv == size
        np.testing.assert_allclose(m.key_qpos[0][:3], start)
        np.testing.assert_allclose(m.key_qpos[0][3:26], h1_lib.QPOS0[3:])
        np.testing.assert_allclose(m.key_qpos[0][26:], free)


@pytest.mark.slow  # ~1 min: compiles a whole-body reset
def test_sit_hard_reset():
    keys = jax.random.split(jax.random.key(0), 256)
    hard = H1Locomotion("sit_hard")
    states = jax.jit(jax.vmap(hard.reset))(keys)
    qpos = np.asarray(states.data.qpos)
    assert states.obs.shape == (256, 64)
    # HumanoidBench's SitHard: x ~ U(0.2, 0.4), y ~ U(-0.15, 0.15), yaw ~ U(-1.8, 1.8)
    assert qpos[:, 0].min() >= 0.2 and qpos[:, 0].max() <= 0.4 and qpos[:, 0].std() > 0.04
    assert np.abs(qpos[:, 1]).max() <= 0.15
    yaw = 2 * np.arctan2(qpos[:, 6], qpos[:, 3])
    np.testing.assert_allclose(qpos[:, 4:6], 0.0)
    assert np.abs(yaw).max() <= 1.8 + 1e-5 and np.abs(yaw).max() > 1.5
    # the chair at (-0.25, 0, 0), then the noise of every qpos entry (+-0.01)
    assert np.abs(qpos[:, 26:29] - [-0.25, 0.0, 0.0]).max() <= 0.01
    assert np.abs(qpos[:, 2] - 0.98).max() <= 0.01
