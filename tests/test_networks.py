"""Network structure: parameter counts vs the spec formula, init properties, padded-action masks."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from brc_mjx.agents.brc import losses, networks
from brc_mjx.agents.brc.learner import init_state, make_learner
from brc_mjx.config import LearnerConfig, NetworkConfig
from configs import MODEL_PRESETS, model_preset, parameter_counts
from configs.train import TRAIN_PRESETS


def spec_formula(width, d_in):
    """Spec section 2: P(W) = 4 W^2 + (d_in + 116) W + 101 at depth 2."""
    return 4 * width * width + (d_in + 116) * width + 101


@pytest.mark.parametrize("name", list(MODEL_PRESETS))
@pytest.mark.parametrize("obs_dim,action_dim,num_tasks", [(5, 1, 1), (223, 38, 7), (39, 4, 50)])
def test_preset_parameter_counts_equal_spec_formula(name, obs_dim, action_dim, num_tasks):
    width = MODEL_PRESETS[name]
    counts = parameter_counts(model_preset(name), obs_dim, action_dim, num_tasks)
    d_in = obs_dim + action_dim + (32 if num_tasks > 1 else 0)
    assert counts["critic_member"] == spec_formula(width, d_in)
    assert counts["embedding"] == (32 * num_tasks if num_tasks > 1 else 0)
    assert counts["critic"] == 2 * spec_formula(width, d_in) + counts["embedding"]


def test_named_sizes_are_what_they_say():
    member = lambda n: parameter_counts(model_preset(n), 100, 10, 10)["critic_member"]
    assert 64e6 < member("brc-64m") < 72e6
    assert 256e6 < member("brc-256m") < 280e6
    assert 1.0e9 < member("brc-1b") < 1.1e9


def test_unknown_preset_names_close_matches():
    with pytest.raises(ValueError, match="did you mean brc-64m"):
        model_preset("brc-64")


def test_init_orthogonal_ensemble_independent_target_identical():
    cfg = LearnerConfig(network=NetworkConfig(critic_width=32, actor_width=32))
    learner = make_learner(cfg, obs_dim=6, action_dims=(2, 3))
    state = init_state(learner, jax.random.key(0), num_envs=2, max_episode_length=5)
    trunk = state.critic_params["params"]["ensemble"]["BroNet_0"]
    kernel = np.asarray(trunk["Dense_1"]["kernel"])  # (ensemble, 32, 32), square
    for k in range(2):
        np.testing.assert_allclose(kernel[k].T @ kernel[k], 2.0 * np.eye(32), atol=1e-4)
    assert not np.allclose(kernel[0], kernel[1])  # independent members
    assert np.all(np.asarray(trunk["Dense_1"]["bias"]) == 0.0)
    jax.tree.map(np.testing.assert_array_equal, state.critic_params, state.target_critic_params)
    assert float(jnp.exp(state.log_alpha)) == pytest.approx(0.1)
    mean, log_std = learner.nets.actor.apply(
        state.actor_params, jnp.full((3, 6), 100.0), jnp.ones((3, 32)) / np.sqrt(32)
    )
    assert mean.shape == (3, 3)
    assert np.all(np.asarray(log_std) >= -10.0) and np.all(np.asarray(log_std) <= 2.0)


class Batch:
    def __init__(self, **kw):
        self.__dict__.update(kw)


def _masking_setup():
    cfg = LearnerConfig(network=NetworkConfig(critic_width=32, actor_width=32))
    learner = make_learner(cfg, obs_dim=4, action_dims=(1, 3))
    state = init_state(learner, jax.random.key(1), num_envs=2, max_episode_length=5)
    rng = np.random.default_rng(0)
    batch = Batch(
        obs=jnp.asarray(rng.normal(size=(6, 4)), jnp.float32),
        action=jnp.asarray(rng.uniform(-1, 1, size=(6, 3)), jnp.float32),
        reward=jnp.ones(6), next_obs=jnp.asarray(rng.normal(size=(6, 4)), jnp.float32),
        terminated=jnp.zeros(6, bool), truncated=jnp.zeros(6, bool),
        task_id=jnp.zeros(6, jnp.int32),  # task 0 has one real action dim
    )
    # The same batch and actor but different values in the padded dims (1, 2).
    noisy_action = batch.action.at[:, 1:].set(jnp.asarray(rng.uniform(-1, 1, (6, 2))))
    batch2 = Batch(**{**batch.__dict__, "action": noisy_action})
    actor2 = jax.tree.map(lambda x: x, state.actor_params)
    for head in ("Dense_0", "Dense_1"):  # mean and log-std heads
        k = actor2["params"][head]["kernel"]
        actor2["params"][head]["kernel"] = k.at[:, 1:].set(rng.normal(size=(k.shape[0], 2)))
    return learner, state, batch, batch2, actor2


@pytest.mark.parametrize("mask_padded", [True, False])
def test_padded_action_dims_change_neither_log_pi_nor_critic_loss(mask_padded):
    learner, state, batch, batch2, actor2 = _masking_setup()
    mask = learner.action_mask()[batch.task_id]
    key = jax.random.key(5)
    pol = functools.partial(losses.policy, learner.nets, critic_params=state.critic_params,
                            obs=batch.obs, task_id=batch.task_id)
    _, logp1 = networks.sample_policy(key, *pol(state.actor_params), mask, mask_padded)
    _, logp2 = networks.sample_policy(key, *pol(actor2), mask, mask_padded)
    loss_fn = functools.partial(
        losses.critic_loss, state.critic_params, state.target_critic_params,
        alpha=jnp.float32(0.1), reward_scale=jnp.ones(6), action_mask=mask, key=key,
        nets=learner.nets, gamma=0.99, mask_padded=mask_padded,
    )
    loss1, _ = loss_fn(actor_params=state.actor_params, batch=batch)
    loss2, _ = loss_fn(actor_params=actor2, batch=batch2)
    if mask_padded:
        np.testing.assert_allclose(np.asarray(logp1), np.asarray(logp2), rtol=1e-6)
        assert float(loss1) == pytest.approx(float(loss2), rel=1e-6)
    else:  # the reference behaviour: padded dims leak into both
        assert not np.allclose(np.asarray(logp1), np.asarray(logp2))
        assert float(loss1) != pytest.approx(float(loss2), rel=1e-6)


def test_target_entropy_and_mask_tables():
    learner = make_learner(LearnerConfig(network=NetworkConfig(critic_width=8)), 4, (1, 3))
    np.testing.assert_array_equal(np.asarray(learner.action_mask()), [[1, 0, 0], [1, 1, 1]])
    np.testing.assert_allclose(np.asarray(learner.target_entropy()), [-0.5, -1.5])
    unmasked = make_learner(
        LearnerConfig(network=NetworkConfig(critic_width=8), mask_padded_actions=False), 4, (1, 3)
    )
    np.testing.assert_allclose(np.asarray(unmasked.target_entropy()), [-1.5, -1.5])


@pytest.mark.parametrize("name", sorted(TRAIN_PRESETS))
def test_every_training_preset_resolves_its_tasks_and_validates(name):
    import envs
    from brc_mjx import train

    _, cfg = TRAIN_PRESETS[name]
    train.validate(cfg)  # no env is built
    specs = envs.resolve_tasks(list(cfg.env.tasks))
    assert specs, name
    for spec in specs:
        assert cfg.env.backend in spec.backends, (name, spec.name, spec.backends)
