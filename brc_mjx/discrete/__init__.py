"""BRC's discrete-action variant (the paper's Atari agent, built on DrQ(epsilon)).

A peer of the continuous learner, sharing its pieces (categorical projection, BroNet blocks,
reward normaliser, update helper), run by the one-jit loop of ``brc_mjx.train`` as the agent
``brc_mjx.agents.DiscreteBRC``:

- ``networks``  Nature-CNN encoder -> task embedding -> BroNet -> (actions, atoms) logits
- ``losses``    n-step categorical cross-entropy per action, DrQ's random shift
- ``learner``   the state pytree and ``sgd_step`` (critic -> Polyak target)
- ``acting``    epsilon-greedy collection and evaluation
- ``replay``    the frame-efficient replay (each frame stored once) with n-step windows
"""
