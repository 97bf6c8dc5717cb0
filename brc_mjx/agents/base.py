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
from typing import Any, Protocol, TypeVar

import jax

StateT = TypeVar("StateT")  # the agent's state pytree (BRC: agents.brc.learner.LearnerState)
ReplayT = TypeVar("ReplayT")  # the agent's replay pytree (BRC: brc_mjx.replay.ReplayState)
Batch = Any


class Agent(Protocol[StateT, ReplayT]):
    """The methods the loop calls. ``cfg`` is the run's ``TrainConfig``, ``derived`` its
    ``train.Derived`` sizes, ``env`` the (batched, multi-task) env. The loop's
    ``TrainState[StateT, ReplayT]`` carries the two pytrees the agent names here."""

    name: str
    action_dims: tuple[int, ...]  # each task's real action size (run metadata, transfer)

    def check(self, cfg, env) -> None:
        """Raise ``ValueError`` (one line) on a config this agent cannot run, before anything
        is allocated."""

    def replay_bytes(self, cfg, env, derived) -> int:
        """Bytes of the replay (and of a seeded one) for this run, without allocating."""

    def init(self, cfg, env, derived, key: jax.Array
             ) -> tuple[StateT, ReplayT, ReplayT | None, Any, jax.Array]:
        """A fresh run: ``(learner_state, replay, offline, env_state, key)``; ``offline`` is the
        seeded replay of a data transfer or None."""

    def collect(self, cfg, env, derived, state, key: jax.Array, warmup: jax.Array
                ) -> tuple[Any, ReplayT, StateT]:
        """One vectorized env step from ``state`` (the ``TrainState``), random while ``warmup``;
        returns ``(env_state, replay, learner_state)`` with the step written into the replay
        and the agent's running statistics (e.g. the reward normaliser) updated."""

    def sample(self, cfg, derived, replay: ReplayT, offline: ReplayT | None, key: jax.Array
               ) -> Batch:
        """One training batch."""

    def update(self, learner_state: StateT, batch: Batch, key: jax.Array
               ) -> tuple[StateT, dict]:
        """One gradient step: ``(learner_state, metrics)``, metrics named ``train/...``."""

    def params(self, learner_state: StateT):
        """The trained parameters (counted at start, checked finite every epoch)."""

    def reset(self, learner_state: StateT, replay: ReplayT, env_state
              ) -> tuple[StateT, ReplayT]:
        """After every env was reset on resume: ``(learner_state, replay)`` with what referred
        to the lost episodes dropped."""

    def eval_step(self, env, learner_state: StateT, env_state, key: jax.Array):
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
