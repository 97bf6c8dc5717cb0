"""Transfer (--init-from / --replay-from) on toy runs: what is loaded, what is fresh, the errors."""

import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config
from toy_env import ToyEnv

from brc_mjx import checkpoint, train, transfer
from brc_mjx import run as run_lib
from brc_mjx.agents.brc import losses, sample_mixed
from brc_mjx.config import EnvConfig, LearnerConfig, NetworkConfig, TransferConfig
from brc_mjx.evaluation import evaluate
from brc_mjx.replay import Transition

EMB = ".learner.critic_params['params']['task_embedding']"


def kinds_of(cfg):
    return tuple(int(name.removeprefix("toy/task")) for name in cfg.env.tasks)


def toy_tasks(cfg, obs_dim=3):
    """Env factory: the toy tasks named in cfg.env.tasks (``toy/task<kind>``)."""
    env = ToyEnv(kinds=kinds_of(cfg), envs_per_task=cfg.env.envs_per_task, obs_dim=obs_dim)
    eval_env = None
    if cfg.env.eval_episodes:
        eval_env = ToyEnv(kinds=kinds_of(cfg), envs_per_task=cfg.env.eval_episodes,
                          obs_dim=obs_dim)
    return env, eval_env


def config(run_dir, tasks, **overrides):
    cfg = tiny_config(run_dir, env=EnvConfig(tasks=tasks, envs_per_task=2, eval_episodes=2),
                      **overrides)
    return cfg


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A finished two-task source run (toy/task1, toy/task2)."""
    run_dir = tmp_path_factory.mktemp("source") / "run"
    cfg = config(run_dir, ("toy/task1", "toy/task2"), total_env_steps=200, eval_every=100)
    result = run_lib.run(cfg, env_factory=toy_tasks)
    return cfg, result


def test_row_map_and_map_rows_by_hand():
    rows = transfer.row_map(["a", "b", "c"], ["c", "x", "a"])
    np.testing.assert_array_equal(rows, [2, -1, 0])
    src = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], np.float32)
    fresh = np.full((3, 2), -9.0, np.float32)
    np.testing.assert_array_equal(transfer.map_rows(src, fresh, rows),
                                  [[5, 7], [-9, -9], [1, 2]])
    np.testing.assert_allclose(transfer.map_rows(src, fresh, rows, "mean"),
                               [[5, 7], [3, 13 / 3], [1, 2]], rtol=1e-7)


def test_model_transfer_loads_weights_keeps_source_rows_and_policy(tmp_path, source):
    src_cfg, src_result = source
    _, src = checkpoint.read_leaves(os.path.join(src_cfg.run_dir, "checkpoints"))
    # Source tasks first in the same order, then a new one; warm-up covers the first epoch, so
    # its evaluation runs the transferred weights untouched.
    cfg = config(tmp_path / "t", ("toy/task1", "toy/task2", "toy/task0"),
                 init_from=src_cfg.run_dir, warmup_env_steps=60, eval_every=40,
                 total_env_steps=80)
    result = run_lib.run(cfg, env_factory=toy_tasks, max_epochs=1)
    state = result["state"].learner
    table = np.asarray(state.critic_params["params"]["task_embedding"])
    assert table.shape == (3, src[EMB].shape[1])
    np.testing.assert_array_equal(table[:2], src[EMB])  # bit-identical source rows
    assert not np.any(np.all(table[2] == src[EMB], axis=1))  # the new row is a fresh draw
    flat = jax.tree_util.tree_flatten_with_path(jax.device_get(state.actor_params))[0]
    for path, leaf in flat:  # warm-up epoch: no update, so the actor is the source's
        np.testing.assert_array_equal(leaf, src[".learner.actor_params" +
                                                jax.tree_util.keystr(path)])
    np.testing.assert_allclose(float(jnp.exp(state.log_alpha)), cfg.learner.init_alpha,
                               rtol=1e-6)  # temperature reset
    assert int(state.critic_opt_state[0].count) == 0  # fresh optimiser
    # Statistics: the source's for its tasks, fresh for the new one; then this epoch's
    # episodes (20 steps of 12-step episodes: one per env, two per task) on top.
    episodes = np.asarray(state.normalizer.episodes)
    np.testing.assert_array_equal(episodes, list(src[".learner.normalizer.episodes"] + 2) + [2])

    # The first evaluation equals the source's policy evaluated with the same key.
    env_src = ToyEnv(kinds=(1, 2), envs_per_task=2)
    agent_src = train.build(src_cfg, env_src).agent
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed + 1), 0)
    ev = evaluate(agent_src, env_src, src_result["state"].learner, key, num_steps=12)
    with open(os.path.join(result["run_dir"], "metrics.jsonl")) as f:
        first = json.loads(f.readline())
    for k, name in enumerate(("toy/task1", "toy/task2")):
        np.testing.assert_allclose(first[f"eval/{name}/return"], float(ev["return"][k]),
                                   rtol=1e-5)
    with open(os.path.join(result["run_dir"], "meta.json")) as f:
        assert json.load(f)["task_names"] == ["toy/task1", "toy/task2", "toy/task0"]


def transferred(cfg):
    """The program and the initial state of a transfer run, built as ``run`` builds them."""
    plan = transfer.plan(cfg, restore=False)
    env, _ = transfer.fit_envs(plan, cfg, *toy_tasks(cfg))
    program = train.build(cfg, env, plan)
    state = train.init_sharded_state(cfg, env, program)
    return program, transfer.load(state, plan, plan.learner_tasks(env), cfg)


def test_single_new_task_keeps_task_input_and_mean_embedding(tmp_path, source):
    src_cfg, _ = source
    _, src = checkpoint.read_leaves(os.path.join(src_cfg.run_dir, "checkpoints"))
    cfg = config(tmp_path / "t", ("toy/task0",), init_from=src_cfg.run_dir,
                 transfer=TransferConfig(new_embedding="mean", keep_temperature=True,
                                         keep_optimizer=True))
    program, state = transferred(cfg)
    assert program.agent.learner.nets.multi and program.agent.learner.num_tasks == 1
    state = state.learner
    table = np.asarray(state.critic_params["params"]["task_embedding"])
    np.testing.assert_allclose(table, src[EMB].mean(axis=0, keepdims=True), rtol=1e-6)
    assert int(state.critic_opt_state[0].count) == int(src[".learner.critic_opt_state[0].count"])
    assert float(state.log_alpha) == float(src[".learner.log_alpha"])


def test_policy_of_a_source_task_is_the_sources_under_its_new_id(source, tmp_path):
    src_cfg, src_result = source
    cfg = config(tmp_path / "t", ("toy/task0", "toy/task2"), init_from=src_cfg.run_dir)
    program, state = transferred(cfg)
    nets_src = train.build(src_cfg, ToyEnv(kinds=(1, 2))).agent.learner.nets
    nets_new = program.agent.learner.nets
    obs = jax.random.normal(jax.random.key(3), (5, 3))
    src, new = src_result["state"].learner, state.learner
    mean_src, _ = losses.policy(nets_src, src.actor_params, src.critic_params, obs,
                                jnp.full(5, 1))
    mean_new, _ = losses.policy(nets_new, new.actor_params, new.critic_params, obs,
                                jnp.full(5, 1))
    np.testing.assert_array_equal(mean_new, mean_src)  # toy/task2: id 1 in both runs


def test_data_transfer_seeds_exactly_the_source_transitions(tmp_path, source):
    src_cfg, _ = source
    _, src = checkpoint.read_leaves(os.path.join(src_cfg.run_dir, "checkpoints"))
    cfg = config(tmp_path / "d", ("toy/task0",), replay_from=src_cfg.run_dir,
                 checkpoint_every=40)
    result = run_lib.run(cfg, env_factory=toy_tasks, max_epochs=2)
    state = result["state"]
    off = jax.device_get(state.offline)
    for name in ("obs", "action", "reward", "next_obs", "terminated", "truncated"):
        np.testing.assert_array_equal(getattr(off.data, name), src[f".replay.data.{name}"])
    # Source ids 0, 1 (toy/task1, toy/task2) become this run's offline tasks 1, 2.
    np.testing.assert_array_equal(off.data.task_id, src[".replay.data.task_id"] + 1)
    assert int(off.size) == int(src[".replay.size"])
    table = state.learner.critic_params["params"]["task_embedding"]
    assert table.shape[0] == 3  # one row per task, offline ones included
    assert int(state.replay.size) == 2 * 20 * 2  # this run's own ring collects as usual
    np.testing.assert_array_equal(state.learner.normalizer.return_max[1:],
                                  src[".learner.normalizer.return_max"])
    assert float(result["train/critic_loss"]) > 0
    with open(os.path.join(result["run_dir"], "meta.json")) as f:
        meta = json.load(f)
    assert meta["task_names"] == ["toy/task0", "toy/task1", "toy/task2"]
    assert meta["env_task_names"] == ["toy/task0"]

    # The resumed run needs nothing from the source (its plan is in transfer.json).
    moved = str(tmp_path / "source-moved")
    shutil.copytree(src_cfg.run_dir, moved)
    resumed = run_lib.run(cfg.__class__(**{**cfg.__dict__, "run_dir": result["run_dir"],
                                           "resume": True, "replay_from": src_cfg.run_dir}),
                          env_factory=toy_tasks, max_epochs=1)
    assert resumed["epochs_done"] == 3


def test_mixed_batches_take_offline_rows_in_proportion():
    def ring(tasks, value):
        data = Transition(obs=jnp.full((tasks, 4, 2), value), action=jnp.zeros((tasks, 4, 1)),
                          reward=jnp.full((tasks, 4), value), next_obs=jnp.zeros((tasks, 4, 2)),
                          terminated=jnp.zeros((tasks, 4), bool),
                          truncated=jnp.zeros((tasks, 4), bool),
                          task_id=jnp.zeros((tasks, 4), jnp.int32))
        from brc_mjx.replay import ReplayState
        return ReplayState(data=data, insert_pos=jnp.int32(0), size=jnp.int32(4))

    batch = sample_mixed(ring(1, 1.0), ring(2, 2.0), jax.random.key(0), 12, 8)
    np.testing.assert_array_equal(batch.reward, [1.0] * 4 + [2.0] * 8)


@pytest.mark.parametrize("change, message", [
    (dict(learner=LearnerConfig(network=NetworkConfig(critic_width=64, actor_width=32))),
     "learner.network.critic_width is 32 there and 64 here"),
    (dict(learner=LearnerConfig(network=NetworkConfig(critic_width=32, actor_width=32)),
          transfer=TransferConfig(init_step=7)), "has no checkpoint at 7 env steps per task (it "
                                                 "has"),
])
def test_incompatible_sources_fail_in_one_line(tmp_path, source, change, message):
    src_cfg, _ = source
    cfg = config(tmp_path / "t", ("toy/task0",), init_from=src_cfg.run_dir, **change)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        run_lib.run(cfg, env_factory=lambda c: pytest.fail("envs built before the check"))


def test_sizes_beyond_the_source_input_and_missing_checkpoint_fail(tmp_path, source):
    src_cfg, _ = source
    cfg = config(tmp_path / "t", ("toy/task0",), init_from=src_cfg.run_dir)
    with pytest.raises(ValueError, match="toy/task0 has observation size 4, larger than the "
                                         "source's padded input 3"):
        run_lib.run(cfg, env_factory=lambda c: toy_tasks(c, obs_dim=4))
    empty = tmp_path / "empty"
    shutil.copytree(src_cfg.run_dir, empty, ignore=shutil.ignore_patterns("checkpoints"))
    cfg = config(tmp_path / "u", ("toy/task0",), init_from=str(empty))
    with pytest.raises(ValueError, match=f"--init-from: {empty} holds no checkpoint"):
        run_lib.run(cfg, env_factory=toy_tasks)


def test_read_leaves_reads_only_the_asked_prefixes(source):
    src_cfg, _ = source
    directory = os.path.join(src_cfg.run_dir, "checkpoints")
    step, every = checkpoint.read_leaves(directory)
    _, some = checkpoint.read_leaves(directory, step, prefixes=(".learner.actor_params",))
    assert some and set(some) == {p for p in every if p.startswith(".learner.actor_params")}
    for path, value in some.items():
        np.testing.assert_array_equal(value, every[path])


def _fake_source(tasks, obs_dim=3, action_dim=3):
    return transfer.Source(run_dir="/src", step=1, task_names=tuple(tasks),
                           action_dims=(1,) * len(tasks), obs_dim=obs_dim, action_dim=action_dim,
                           network={}, critic_loss="categorical", replay_capacity=10,
                           replay_obs_dtype="float32", replay_tasks=len(tasks))


def _fake_env(tasks, obs_dims, action_dims):
    from types import SimpleNamespace

    return SimpleNamespace(task_names=tuple(tasks), obs_dims=tuple(obs_dims),
                           action_dims=tuple(action_dims), obs_dim=max(obs_dims),
                           action_dim=max(action_dims), num_tasks=len(tasks))


@pytest.mark.parametrize("source, env, conditioning, message", [
    (_fake_source(["a", "b"]), _fake_env(["a", "c"], (3, 2), (3, 4)), "embedding",
     "--init-from /src: c has action size 4, larger than the source's padded input 3"),
    (_fake_source(["a"]), _fake_env(["a", "c"], (3, 3), (1, 1)), "embedding",
     "--init-from /src: a single-task network has no task input, so it cannot start a run of "
     "2 tasks"),
    (_fake_source(["a", "b"]), _fake_env(["b", "a"], (3, 3), (1, 1)), "onehot",
     "--init-from /src: task_conditioning 'onehot' ties the network to the source's task list"),
])
def test_env_checks_name_the_bad_value(source, env, conditioning, message):
    cfg = tiny_config("/tmp/unused", learner=LearnerConfig(
        network=NetworkConfig(task_conditioning=conditioning)))
    with pytest.raises(transfer.TransferError, match=message.replace("(", r"\(")):
        transfer.check_env(transfer.Plan(init=source), env, cfg)


def test_transfer_options_without_a_source_are_refused(tmp_path):
    cfg = config(tmp_path / "t", ("toy/task0",), transfer=TransferConfig(keep_optimizer=True))
    with pytest.raises(ValueError, match=r"transfer.keep_optimizer \(True\) has no effect "
                                         "without --init-from"):
        run_lib.run(cfg, env_factory=lambda c: pytest.fail("envs built before the check"))
