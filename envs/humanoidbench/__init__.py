"""HumanoidBench (Sferrazza et al. 2024) tasks on MJX, offline: the Unitree H1 without hands.

`h1` builds the MJX-loadable H1 from the packaged MuJoCo Menagerie model (feet-only or whole-body
contact); `scenes` the terrain, obstacles, chair and balance board; `locomotion` BRC's nine H1
tasks (walk, stand, run, stair, slide, crawl, pole, hurdle, maze) and reach, sit_simple,
sit_hard, balance_simple, balance_hard, with HumanoidBench's rewards, termination and score
normalisation.
"""

from envs.humanoidbench.locomotion import TASKS, H1Locomotion, reward, tolerance

__all__ = ["TASKS", "H1Locomotion", "reward", "tolerance"]
