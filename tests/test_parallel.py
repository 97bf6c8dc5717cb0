"""Mesh and sharding on 8 fake CPU devices (set in conftest.py)."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config
from toy_env import ToyEnv

from brc_mjx import checkpoint, parallel, train
from brc_mjx.agents.brc.learner import init_state, make_learner, sgd_step
from brc_mjx.config import LearnerConfig, MeshConfig
from brc_mjx.replay import Transition
from configs import model_preset

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) devices")


def _mesh_config(data, fsdp):
    return MeshConfig(data=data, fsdp=fsdp, min_shard_size=256)


def _run_epochs(data, fsdp, epochs=2):
    env = ToyEnv(envs_per_task=4)
    cfg = tiny_config("/tmp/unused", mesh=_mesh_config(data, fsdp), batch_size=32,
                      warmup_env_steps=40)
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, envs_per_task=4))
    program = train.build(cfg, env)
    state = train.init_sharded_state(cfg, env, program)
    epoch, _, _ = train.compile_epoch(cfg, env, program, state)
    for _ in range(epochs):
        state, metrics = epoch(state)
    assert float(metrics["updates"]) > 0
    return state


@pytest.fixture(scope="module")
def reference_state():
    return _run_epochs(1, 1)


@pytest.mark.parametrize("data,fsdp", [(4, 2), (8, 1)])
def test_epochs_on_8_devices_match_one_device(reference_state, data, fsdp):
    state = _run_epochs(data, fsdp)
    ref = jax.device_get(reference_state.learner)
    got = jax.device_get(state.learner)
    for name in ("actor_params", "critic_params", "target_critic_params", "log_alpha"):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5),
                     getattr(ref, name), getattr(got, name))
    # Collected data differ only by float round-off of the (sharded) policy's actions.
    np.testing.assert_allclose(jax.device_get(reference_state.replay.data.obs),
                               jax.device_get(state.replay.data.obs), atol=1e-4)


def test_large_weights_and_replay_are_sharded():
    state = _run_epochs(4, 2, epochs=1)
    critic = state.learner.critic_params["params"]["ensemble"]["BroNet_0"]
    kernel = critic["Dense_1"]["kernel"]  # (2, 32, 32): 2048 elements >= min_shard_size
    assert "fsdp" in kernel.sharding.spec, kernel.sharding
    assert kernel.addressable_shards[0].data.size == kernel.size // 2
    mu = state.learner.critic_opt_state[0].mu["params"]["ensemble"]["BroNet_0"]["Dense_1"]
    assert mu["kernel"].sharding.spec == kernel.sharding.spec  # moments follow their params
    target = state.learner.target_critic_params["params"]["ensemble"]["BroNet_0"]["Dense_1"]
    assert target["kernel"].sharding.spec == kernel.sharding.spec
    obs = state.replay.data.obs  # (tasks, capacity, obs)
    assert obs.sharding.spec[1] == "data"
    assert obs.addressable_shards[0].data.shape[1] == obs.shape[1] // 4
    assert state.env.obs.sharding.spec[0] == "data"  # 8 envs over 4 data shards
    assert state.learner.log_alpha.sharding.is_fully_replicated


def test_1b_sgd_step_compiles_on_8_devices_under_80gb():
    obs_dim, action_dims, batch = 223, (38,) * 7, 1024
    cfg = LearnerConfig(network=model_preset("brc-1b"))
    learner = make_learner(cfg, obs_dim, action_dims)
    mesh = parallel.make_mesh(MeshConfig(data=1, fsdp=8))
    abstract = jax.eval_shape(
        functools.partial(init_state, learner, num_envs=7, max_episode_length=1000),
        jax.random.key(0))
    shardings = parallel.learner_shardings(abstract, mesh, MeshConfig(fsdp=8))
    big = abstract.critic_params["params"]["ensemble"]["BroNet_0"]["Dense_1"]["kernel"]
    assert big.shape == (2, 16384, 16384)
    f32 = jnp.float32
    abstract_batch = Transition(
        obs=jax.ShapeDtypeStruct((batch, obs_dim), f32),
        action=jax.ShapeDtypeStruct((batch, 38), f32),
        reward=jax.ShapeDtypeStruct((batch,), f32),
        next_obs=jax.ShapeDtypeStruct((batch, obs_dim), f32),
        terminated=jax.ShapeDtypeStruct((batch,), bool),
        truncated=jax.ShapeDtypeStruct((batch,), bool),
        task_id=jax.ShapeDtypeStruct((batch,), jnp.int32),
    )
    step = jax.jit(functools.partial(sgd_step, learner),
                   in_shardings=(shardings, parallel.batch_sharding(mesh),
                                 parallel.replicated(mesh)),
                   out_shardings=(shardings, parallel.replicated(mesh)), donate_argnums=0)
    compiled = step.lower(abstract, abstract_batch, jax.random.key(0)).compile()
    mem = compiled.memory_analysis()
    per_device = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                  + mem.temp_size_in_bytes - mem.alias_size_in_bytes)
    # 2.16e9 critic params x (param + target + 2 AdamW moments) x 4 B = 34.6 GB unsharded;
    # fsdp=8 puts ~4.3 GB of that on each device.
    assert per_device < 80e9, per_device
    assert mem.argument_size_in_bytes < 8e9, mem.argument_size_in_bytes


@pytest.mark.parametrize("save_mesh,restore_mesh", [((4, 2), (1, 1)), ((1, 1), (8, 1))])
def test_checkpoint_restores_across_meshes(tmp_path, save_mesh, restore_mesh):
    state = _run_epochs(*save_mesh, epochs=1)
    manager = checkpoint.make_manager(str(tmp_path / "ckpt"), keep=1)
    checkpoint.save(manager, 1, state)
    env = ToyEnv(envs_per_task=4)
    cfg = tiny_config("/tmp/unused", mesh=_mesh_config(*restore_mesh))
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, envs_per_task=4))
    program = train.build(cfg, env)
    target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          program.abstract_state, program.shardings)
    step, restored = checkpoint.restore_latest(manager, target)
    assert step == 1
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b)),
                 jax.device_get(state), jax.device_get(restored))
    kernel = restored.learner.critic_params["params"]["ensemble"]["BroNet_0"]["Dense_1"]["kernel"]
    assert kernel.sharding.mesh.devices.size == restore_mesh[0] * restore_mesh[1]
