"""brc_mjx: BRC ("Bigger, Regularized, Categorical", arXiv 2505.23150) multi-task SAC.

The learner core lives in a handful of modules, each with one job:

- ``config``      frozen, typed configuration of the learner and its networks
- ``networks``    BroNet trunk, categorical critic ensemble, tanh-Gaussian actor, task embedding
- ``categorical`` the fixed support, the TD-target projection, scalar Q from probabilities
- ``losses``      critic / actor / temperature losses, pure ``(...) -> (loss, metrics)``
- ``normalizer``  per-task return statistics and reward scale, on device
- ``learner``     the learner state pytree, one gradient-update helper and ``sgd_step``
"""

from brc_mjx.video import choose_gl as _choose_gl

__version__ = "0.1.0"

_choose_gl()  # before anything imports mujoco: offscreen OpenGL for videos on a headless host
