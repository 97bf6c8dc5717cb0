"""Frozen, typed configuration for the BRC learner (spec sections 2-7).

Every field has a one-line docstring so that a tyro CLI documents it in ``--help``. Derived sizes
(input widths, masks, target entropies) are computed by pure functions from these configs and
the environment's sizes; they are never written back into a config.
"""

from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the critic ensemble, the actor and the task embedding."""

    critic_width: int = 4096
    """Width W of the critic's BroNet (per-critic params ~ 4 W^2)."""
    critic_depth: int = 2
    """Number of residual blocks in the critic's BroNet."""
    ensemble_size: int = 2
    """Number of critics whose categorical probabilities are averaged."""
    actor_width: int = 256
    """Width of the actor's BroNet trunk."""
    actor_depth: int = 1
    """Number of residual blocks in the actor's BroNet trunk."""
    embedding_dim: int = 32
    """Size of the learnable, L2-normalised task embedding (multi-task only)."""
    num_atoms: int = 101
    """Number of atoms of the categorical value support."""
    v_min: float = -10.0
    """Lowest atom of the support."""
    v_max: float = 10.0
    """Highest atom of the support."""


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """Optimisation hyper-parameters of BRC's SAC learner (spec section 7)."""

    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    """Network sizes."""
    actor_lr: float = 3e-4
    """AdamW learning rate of the actor."""
    critic_lr: float = 3e-4
    """AdamW learning rate of the critic ensemble and the task embedding."""
    temperature_lr: float = 3e-4
    """Adam (b1=0.5) learning rate of log alpha."""
    weight_decay: float = 1e-4
    """AdamW weight decay of actor and critic."""
    adam_b1: float = 0.9
    """AdamW beta1 of actor and critic."""
    adam_b2: float = 0.999
    """AdamW beta2 of actor and critic."""
    adam_eps: float = 1e-8
    """AdamW epsilon of actor and critic."""
    temperature_b1: float = 0.5
    """Adam beta1 of the temperature optimiser."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critic."""
    init_alpha: float = 0.1
    """Initial entropy temperature alpha."""
    mask_padded_actions: bool = True
    """Exclude padded action dims from log pi, entropy and H_target (False: reference behaviour)."""
    entropy_scale_mode: Literal["target", "empirical"] = "target"
    """Entropy term of the reward scale: |H_target|/2 ("target") or the per-task policy entropy."""
    empirical_entropy_ema: float = 0.99
    """EMA factor of the per-task policy entropy used by entropy_scale_mode="empirical"."""
    fallback_reward_scale: float = 1.0
    """Reward scale of a task that has not finished a training episode yet (raw rewards)."""


def validate(cfg: LearnerConfig) -> None:
    """Raise ``ValueError`` with one clear line for the first invalid field of ``cfg``."""
    net = cfg.network
    checks = [
        (net.critic_width > 0, f"network.critic_width must be > 0, got {net.critic_width}"),
        (net.critic_depth >= 0, f"network.critic_depth must be >= 0, got {net.critic_depth}"),
        (net.ensemble_size >= 1, f"network.ensemble_size must be >= 1, got {net.ensemble_size}"),
        (net.actor_width > 0, f"network.actor_width must be > 0, got {net.actor_width}"),
        (net.num_atoms >= 2, f"network.num_atoms must be >= 2, got {net.num_atoms}"),
        (net.v_max > net.v_min, f"network.v_max ({net.v_max}) must exceed v_min ({net.v_min})"),
        (net.embedding_dim > 0, f"network.embedding_dim must be > 0, got {net.embedding_dim}"),
        (0.0 <= cfg.gamma < 1.0, f"gamma must be in [0, 1), got {cfg.gamma}"),
        (0.0 < cfg.tau <= 1.0, f"tau must be in (0, 1], got {cfg.tau}"),
        (cfg.init_alpha > 0.0, f"init_alpha must be > 0, got {cfg.init_alpha}"),
        (cfg.actor_lr > 0.0, f"actor_lr must be > 0, got {cfg.actor_lr}"),
        (cfg.critic_lr > 0.0, f"critic_lr must be > 0, got {cfg.critic_lr}"),
        (cfg.temperature_lr > 0.0, f"temperature_lr must be > 0, got {cfg.temperature_lr}"),
        (cfg.fallback_reward_scale > 0.0,
         f"fallback_reward_scale must be > 0, got {cfg.fallback_reward_scale}"),
        (cfg.entropy_scale_mode in ("target", "empirical"),
         f"entropy_scale_mode must be 'target' or 'empirical', got {cfg.entropy_scale_mode!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
