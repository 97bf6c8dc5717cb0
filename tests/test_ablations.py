"""The paper's ablation switches: MSE critic, plain-MLP critic, one-hot / per-task-head
conditioning, no reward normalisation. Hand-worked numbers and gradient routing, then every switch
through the one-jit loop."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_losses import FakeActor, _batch
from test_train import tiny_config, toy_factory

from brc_mjx import run as run_lib
from brc_mjx.agents.brc import losses, networks
from brc_mjx.agents.brc.networks import Networks
from brc_mjx.config import NetworkConfig


class FakeScalarCritic:
    """Returns ``params['q']`` (ensemble, batch, 1) whatever the input."""

    num_atoms = 3
    atoms = jnp.array([-1.0, 0.0, 1.0])

    def apply(self, params, obs, action, task_id):
        return params["q"]


SCALAR = Networks(critic=FakeScalarCritic(), actor=FakeActor(), num_tasks=1, scalar=True)


def test_mse_critic_loss_hand_worked():
    # Online Q per critic: [1, 2] and [3, 0]; target critics [0.5, 1] and [1.5, 3] -> mean [1, 2].
    # Raw rewards [1, 2] / scale 2 -> [0.5, 1]; gamma 0.5; sample 1 terminated; alpha 0:
    # y = [0.5 + 0.5 * 1, 1] = [1, 1]; loss = ((0 + 1) / 2) + ((4 + 1) / 2) = 3.
    online = {"q": jnp.array([[1.0, 2.0], [3.0, 0.0]])[..., None]}
    target = {"q": jnp.array([[0.5, 1.0], [1.5, 3.0]])[..., None]}
    actor = {"mean": jnp.zeros((2, 1)), "log_std": jnp.full((2, 1), -1.0)}
    batch = _batch([1.0, 2.0], [False, True])
    args = (online, target, actor)
    rest = (batch, jnp.array([2.0, 2.0]), jnp.ones((2, 1)), jax.random.key(0))
    loss, metrics = losses.mse_critic_loss(*args, jnp.float32(0.0), *rest, nets=SCALAR, gamma=0.5)
    assert float(loss) == pytest.approx(3.0)
    assert float(metrics["target_q_mean"]) == pytest.approx(1.0)
    assert float(metrics["q_mean"]) == pytest.approx(1.5)
    # The soft term: alpha 0.5 subtracts 0.5 * gamma * log pi(a'|s') from the non-terminal target.
    _, log_prob = networks.sample_policy(jax.random.key(0), actor["mean"], actor["log_std"],
                                         jnp.ones((2, 1)))
    y0 = 0.5 + 0.5 * (1.0 - 0.5 * float(log_prob[0]))
    want = ((1.0 - y0) ** 2 + (2.0 - 1.0) ** 2) / 2 + ((3.0 - y0) ** 2 + (0.0 - 1.0) ** 2) / 2
    loss, _ = losses.mse_critic_loss(*args, jnp.float32(0.5), *rest, nets=SCALAR, gamma=0.5)
    assert float(loss) == pytest.approx(want, rel=1e-5)


def _nets(scalar: bool = False, **fields) -> Networks:
    cfg = NetworkConfig(critic_width=8, critic_depth=1, actor_width=8, num_atoms=5, **fields)
    return networks.make_networks(cfg, action_dim=2, num_tasks=3, scalar_critic=scalar)


def _inputs():
    return jnp.ones((2, 4)), jnp.ones((2, 2)), jnp.array([0, 2], jnp.int32)


def test_heads_route_each_task_to_its_own_head():
    nets = _nets(task_conditioning="heads")
    critic_params, actor_params = networks.init_params(nets, jax.random.key(0), 4, 2)
    assert networks.EMBEDDING_KEY not in critic_params["params"]
    obs, action, task_id = _inputs()  # tasks 0 and 2 present, task 1 absent

    def per_head(grads_kernel, features):  # (..., W, heads * features) -> |grad| per head
        g = np.abs(np.asarray(grads_kernel))
        return g.reshape(*g.shape[:-1], 3, features).sum(axis=tuple(range(g.ndim - 1)) + (-1,))

    grads = jax.grad(lambda p: jnp.sum(nets.critic.apply(p, obs, action, task_id)))(critic_params)
    head = grads["params"]["ensemble"]["Dense_0"]["kernel"]  # (ensemble, W, heads * atoms)
    assert head.shape == (2, 8, 3 * 5)
    g = per_head(head, 5)
    assert g[0] > 0 and g[2] > 0 and g[1] == 0.0, g

    def actor_out(p):
        mean, log_std = losses.policy(nets, p, critic_params, obs, task_id)
        return jnp.sum(mean) + jnp.sum(log_std)

    agrads = jax.grad(actor_out)(actor_params)["params"]
    for name in ("Dense_0", "Dense_1"):  # mean and log-std heads
        g = per_head(agrads[name]["kernel"], 2)
        assert g[0] > 0 and g[2] > 0 and g[1] == 0.0, (name, g)


def test_onehot_and_mlp_shapes():
    nets = _nets(task_conditioning="onehot", critic_arch="mlp")
    critic_params, actor_params = networks.init_params(nets, jax.random.key(0), 4, 2)
    params = critic_params["params"]
    assert networks.EMBEDDING_KEY not in params
    trunk = params["ensemble"]["MLP_0"]
    # 1 + 2 depth = 3 Dense layers, no LayerNorm; input = obs 4 + action 2 + one-hot 3
    assert sorted(trunk) == ["Dense_0", "Dense_1", "Dense_2"]
    assert trunk["Dense_0"]["kernel"].shape == (2, 9, 8)
    assert actor_params["params"]["BroNet_0"]["Dense_0"]["kernel"].shape == (4 + 3, 8)
    obs, action, task_id = _inputs()
    out = nets.critic.apply(critic_params, obs, action, task_id)
    assert out.shape == (2, 2, 5)
    # one-hot: the critic sees the task, so the same (s, a) under another task differs
    other = nets.critic.apply(critic_params, obs, action, jnp.array([1, 1], jnp.int32))
    assert not np.allclose(np.asarray(out[:, 0]), np.asarray(other[:, 0]))
    # the plain MLP really is Dense-ReLU: compare with NumPy
    x = np.concatenate([np.ones((2, 4)), np.ones((2, 2)), np.eye(3)[[0, 2]]], axis=1)
    member = jax.tree.map(lambda a: np.asarray(a)[0], params["ensemble"])
    h = x
    for name in ("Dense_0", "Dense_1", "Dense_2"):
        h = np.maximum(h @ member["MLP_0"][name]["kernel"] + member["MLP_0"][name]["bias"], 0)
    want = h @ member["Dense_0"]["kernel"] + member["Dense_0"]["bias"]
    np.testing.assert_allclose(np.asarray(out[0]), want, rtol=1e-5, atol=1e-5)


def test_scalar_critic_head():
    nets = _nets(scalar=True)
    critic_params, _ = networks.init_params(nets, jax.random.key(0), 4, 2)
    obs, action, task_id = _inputs()
    assert nets.scalar and nets.critic.apply(critic_params, obs, action, task_id).shape == (2, 2, 1)


def with_switches(cfg, network=(), **learner):
    """``cfg`` with learner fields and network fields (a dict) replaced."""
    net = dataclasses.replace(cfg.learner.network, **dict(network))
    return dataclasses.replace(cfg, learner=dataclasses.replace(cfg.learner, network=net,
                                                                **learner))


def test_onehot_trains_in_the_one_jit_loop(tmp_path):
    # mse + mlp + heads + no reward normalisation train in test_analysis's second run
    cfg = with_switches(tiny_config(tmp_path / "run", total_env_steps=160),
                        network={"task_conditioning": "onehot"})
    result = run_lib.run(cfg, env_factory=toy_factory)
    assert result["epochs_done"] == 4
    assert np.isfinite(result["train/critic_loss"]) and result["train/critic_loss"] > 0
