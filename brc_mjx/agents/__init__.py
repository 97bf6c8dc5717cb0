"""Agents: the learners the one loop (``brc_mjx.train``) runs, each a value behind the interface
of :mod:`brc_mjx.agents.base`.

- ``brc``           :class:`BRC`, continuous actions (DMC, MetaWorld, HumanoidBench, ShadowHand)
- ``brc_discrete``  :class:`DiscreteBRC`, discrete actions (Atari)

:func:`select` is the one place that picks an agent for a config and an env.
"""

from __future__ import annotations

from brc_mjx.agents.base import Agent
from brc_mjx.agents.brc import BRC
from brc_mjx.agents.brc_discrete import DiscreteBRC


def select(cfg, env, plan=None) -> Agent:
    """The agent for ``env``'s action space, built for its sizes (and a transfer ``plan``'s:
    ``brc_mjx.transfer.Plan``)."""
    if env.discrete:
        from brc_mjx.agents.brc_discrete.learner import make_learner

        if plan is not None and plan.active:
            raise ValueError("--init-from / --replay-from are not supported for discrete-action "
                             "(Atari) tasks yet")
        return DiscreteBRC(make_learner(cfg.learner, cfg.discrete, env.obs_shape, env.obs_dtype,
                                        env.action_dims))
    from brc_mjx.agents.brc.learner import make_learner

    action_dims = plan.learner_action_dims(env) if plan else tuple(env.action_dims)
    return BRC(make_learner(cfg.learner, env.obs_dim, action_dims,
                            task_input=plan.task_input(env) if plan else None,
                            action_dim=env.action_dim))


__all__ = ["Agent", "BRC", "DiscreteBRC", "select"]
