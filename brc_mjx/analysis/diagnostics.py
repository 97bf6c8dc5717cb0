"""Multi-task diagnostics on the device: per-task critic loss and gradient, gradient conflicts.

BRC's argument (arXiv 2505.23150) rests on per-task gradients: cross-entropy keeps their
magnitudes balanced across tasks whose reward scales differ, and larger critics have fewer
conflicting gradients between tasks. :func:`diagnose` measures both on one fixed-size replay batch
(``per_task`` samples of every task), as its own compiled function that the host loop calls every
``diagnostics_every`` transitions; nothing of it runs inside the training epoch.

The gradient of a task is that of the run's critic loss on the task's samples, with respect to
every critic parameter (task-specific ones included: a task's embedding row or output head only
receives its own task's gradient, which lowers the magnitude of the cosines but not their sign).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from brc_mjx import replay as replay_lib
from brc_mjx.agents.brc import losses
from brc_mjx.agents.brc.learner import Learner, LearnerState, reward_scales
from brc_mjx.agents.brc.networks import sample_policy


def gradient_stats(grads: jax.Array) -> dict[str, jax.Array]:
    """Norms and pairwise cosines of per-task gradients ``grads`` ``(num_tasks, num_params)``.

    Returns:
      ``grad_norm`` ``(T,)``; ``grad_norm_var``: variance of the norms across tasks;
      ``cosine`` ``(T, T)``; ``conflict_rate``: fraction of task pairs ``i < j`` whose cosine is
      negative; ``mean_cosine``: mean cosine over those pairs (0 and 0 with one task).
    """
    num_tasks = grads.shape[0]
    norms = jnp.linalg.norm(grads, axis=1)  # (T,)
    unit = grads / jnp.maximum(norms, 1e-12)[:, None]
    cosine = unit @ unit.T  # (T, T)
    upper = jnp.triu(jnp.ones((num_tasks, num_tasks), bool), k=1)
    pairs = max(num_tasks * (num_tasks - 1) // 2, 1)
    return {
        "grad_norm": norms,
        "grad_norm_var": jnp.var(norms),
        "cosine": cosine,
        "conflict_rate": jnp.sum(upper & (cosine < 0)) / pairs,
        "mean_cosine": jnp.sum(jnp.where(upper, cosine, 0.0)) / pairs,
    }


def diagnose(learner: Learner, per_task: int, state: LearnerState, replay, key: jax.Array):
    """Per-task diagnostics from ``per_task`` replay samples of every task.

    Args:
      learner: static learner (bind with ``functools.partial`` before jit).
      per_task: samples per task (static).
      state: learner state.
      replay: the replay buffer (``ReplayState``).
      key: PRNG key.

    Returns:
      ``{"critic_loss", "grad_norm", "entropy", "q_mean"}`` each ``(num_tasks,)`` (entropy is the
      policy's ``-log pi`` of a fresh sample, ``q_mean`` the critic's Q of it) plus the scalars of
      :func:`gradient_stats` and its ``cosine`` matrix.
    """
    cfg, nets = learner.cfg, learner.nets
    key_sample, key_tasks = jax.random.split(key)
    batch = replay_lib.sample_per_task(replay, key_sample, per_task)  # leaves (T, k, ...)
    scales = reward_scales(learner, state)  # (T,)
    alpha = jnp.exp(state.log_alpha)
    loss_fn = losses.CRITIC_LOSSES[cfg.critic_loss]

    def one_task(sub, key):  # sub: leaves (k, ...) of one task
        key_loss, key_pi = jax.random.split(key)
        mask = learner.action_mask()[sub.task_id]  # (k, action_dim)
        (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.critic_params, state.target_critic_params, state.actor_params, alpha, sub,
            scales[sub.task_id], mask, key_loss, nets=nets, gamma=cfg.gamma,
            mask_padded=cfg.mask_padded_actions)
        mean, log_std = losses.policy(nets, state.actor_params, state.critic_params, sub.obs,
                                      sub.task_id)
        action, log_prob = sample_policy(key_pi, mean, log_std, mask, cfg.mask_padded_actions)
        q = losses.critic_value(nets, state.critic_params, sub.obs, action, sub.task_id)
        return loss, ravel_pytree(grads)[0], -jnp.mean(log_prob), jnp.mean(q)

    keys = jax.random.split(key_tasks, replay.num_tasks)  # the tasks with envs
    loss, grads, entropy, q = jax.vmap(one_task)(batch, keys)  # grads: (T, num_params)
    return {"critic_loss": loss, "entropy": entropy, "q_mean": q, **gradient_stats(grads)}


def records(diag: dict, task_names) -> dict[str, float]:
    """Host-side ``diag/...`` log records of one :func:`diagnose` result (device_get first)."""
    out = {f"diag/{k}": float(diag[k])
           for k in ("grad_norm_var", "conflict_rate", "mean_cosine")}
    for t, name in enumerate(task_names):
        for k in ("critic_loss", "grad_norm", "entropy", "q_mean"):
            out[f"diag/{name}/{k}"] = float(diag[k][t])
    return out
