"""HumanoidBench (Sferrazza et al. 2024) tasks on MJX, offline: the Unitree H1 without hands.

`h1` builds the MJX-loadable H1 from the packaged MuJoCo Menagerie model; `locomotion` has the
walk / stand / run tasks with HumanoidBench's rewards, termination and score normalisation.
"""

from envs.humanoidbench.locomotion import TASKS, H1Locomotion, reward, tolerance

__all__ = ["TASKS", "H1Locomotion", "reward", "tolerance"]
