"""What the loop asks of an agent: the one interface between ``brc_mjx.train`` / ``brc_mjx.run``
and a learner.

An agent is a value: a frozen, hashable object holding the learner's static parts (networks,
optimisers, config), passed to ``jax.jit`` through ``functools.partial``. Its state (parameters,
optimiser states, normaliser) and its replay are pytrees the loop carries in ``TrainState`` and
never looks inside. The loop draws the program once:

    init                  -> (learner state, replay, seeded replay or None, env state, key)
    per env step:  collect  (act, write the replay, update the agent's running statistics)
                   sample + update, ``updates_per_step`` times once the warm-up is over
    between epochs: eval_step (evaluation, videos), diagnose (if the agent has diagnostics)

Adding a learner takes one object that provides these methods (``tests/test_agents.py`` trains a
minimal one in the real loop) and, to reach it from the command line, a line in
``brc_mjx.agents.select``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax

LearnerState = Any  # the agent's state pytree
Replay = Any  # the agent's replay pytree
Batch = Any


class Agent(Protocol):
    """The methods the loop calls. ``cfg`` is the run's ``TrainConfig``, ``derived`` its
    ``train.Derived`` sizes, ``env`` the (batched, multi-task) env."""

    name: str
    action_dims: tuple[int, ...]  # each task's real action size (run metadata, transfer)

    def check(self, cfg, env) -> None:
        """Raise ``ValueError`` (one line) on a config this agent cannot run, before anything
        is allocated."""

    def replay_bytes(self, cfg, env, derived) -> int:
        """Bytes of the replay (and of a seeded one) for this run, without allocating."""

    def init(self, cfg, env, derived, key: jax.Array):
        """A fresh run: ``(learner_state, replay, offline, env_state, key)``; ``offline`` is the
        seeded replay of a data transfer or None."""

    def collect(self, cfg, env, derived, state, key: jax.Array, warmup: jax.Array):
        """One vectorized env step from ``state`` (the ``TrainState``), random while ``warmup``;
        returns ``(env_state, replay, learner_state)`` with the step written into the replay
        and the agent's running statistics (e.g. the reward normaliser) updated."""

    def sample(self, cfg, derived, replay: Replay, offline: Replay | None, key: jax.Array
               ) -> Batch:
        """One training batch."""

    def update(self, learner_state: LearnerState, batch: Batch, key: jax.Array):
        """One gradient step: ``(learner_state, metrics)``, metrics named ``train/...``."""

    def params(self, learner_state: LearnerState):
        """The trained parameters (counted at start, checked finite every epoch)."""

    def reset(self, learner_state: LearnerState, replay: Replay, env_state):
        """After every env was reset on resume: ``(learner_state, replay)`` with what referred
        to the lost episodes dropped."""

    def eval_step(self, env, learner_state: LearnerState, env_state, key: jax.Array):
        """Step every env under the evaluation policy; returns the env state."""

    diagnose: Callable | None
    """``diagnose(per_task, learner_state, replay, key) -> dict`` or None (no diagnostics)."""


def state_leaf(state_type: type, field: str, *keys: str | int) -> str:
    """The checkpoint path (``checkpoint.read_leaves``'s key) of a leaf of the agent's state in
    ``TrainState.learner``: ``state_leaf(LearnerState, "critic_params", "params")`` ->
    ``".learner.critic_params['params']"``. A field the state type does not have raises at once,
    so a renamed field breaks where the path is built, not at run time in a transfer."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(state_type)}
    if field not in names:
        raise KeyError(f"{state_type.__name__} has no field {field!r} (it has {sorted(names)})")
    return ".learner." + field + "".join(f"[{k!r}]" for k in keys)
