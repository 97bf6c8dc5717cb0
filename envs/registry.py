"""Task registry and suites, as data.

Task names are `<suite>/<task>`: `dmc/cheetah-run` (dm_control domain and task names, joined by a
hyphen), `metaworld/pick-place`, `atari/pong`. Each `TaskSpec` records which backends implement the
task and under which id, its time limit, action repeat and metric. `get_task` resolves a name (the
`<suite>/` prefix may be left out when unambiguous) and fails with one line listing close matches.
"""

from __future__ import annotations

import dataclasses
import difflib
import re

DMC_EPISODE_LENGTH = 1000
# BRC (spec sec. 8) trains MetaWorld with 200-step episodes; EnvPool's own default is 500.
METAWORLD_EPISODE_LENGTH = 200
# EnvPool's Atari default: 27,000 agent steps = 108,000 frames at frame skip 4.
ATARI_EPISODE_LENGTH = 27_000

# Random-policy and human scores per Atari game (the Atari-57 table of Mnih et al. 2015 /
# Badia et al. 2020, used for human-normalised scores by DQN Zoo, Atari 100k (Kaiser et al.
# 2020), DrQ and Agarwal et al. 2021); eval logs (R - random) / (human - random) per game.
# Checked value by value against DQN Zoo's `dqn_zoo/atari_data.py` (all 57 games, equal), the
# rliable colab of Agarwal et al. 2021 (the 26 Atari-100k games, equal) and the random scores of
# google-research/reincarnating_rl (equal except Video Pinball, whose random score is 0.0 there;
# DQN Zoo's 16256.9 is kept).
ATARI_RANDOM_HUMAN: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7), "amidar": (5.8, 1719.5), "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3), "asteroids": (719.1, 47388.7), "atlantis": (12850.0, 29028.1),
    "bank-heist": (14.2, 753.1), "battle-zone": (2360.0, 37187.5), "beam-rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4), "bowling": (23.1, 160.7), "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5), "centipede": (2090.9, 12017.0), "chopper-command": (811.0, 7387.8),
    "crazy-climber": (10780.5, 35829.4), "defender": (2874.5, 18688.9),
    "demon-attack": (152.1, 1971.0), "double-dunk": (-18.6, -16.4), "enduro": (0.0, 860.5),
    "fishing-derby": (-91.7, -38.7), "freeway": (0.0, 29.6), "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5), "gravitar": (173.0, 3351.4), "hero": (1027.0, 30826.4),
    "ice-hockey": (-11.2, 0.9), "jamesbond": (29.0, 302.8), "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5), "kung-fu-master": (258.5, 22736.3),
    "montezuma-revenge": (0.0, 4753.3), "ms-pacman": (307.3, 6951.6),
    "name-this-game": (2292.3, 8049.0), "phoenix": (761.4, 7242.6), "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6), "private-eye": (24.9, 69571.3), "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0), "road-runner": (11.5, 7845.0), "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7), "skiing": (-17098.1, -4336.9), "solaris": (1236.3, 12326.7),
    "space-invaders": (148.0, 1668.7), "star-gunner": (664.0, 10250.0), "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3), "time-pilot": (3568.0, 5229.2), "tutankham": (11.4, 167.6),
    "up-n-down": (533.4, 11693.2), "venture": (0.0, 1187.5), "video-pinball": (16256.9, 17667.9),
    "wizard-of-wor": (563.5, 4756.5), "yars-revenge": (3092.9, 54576.9), "zaxxon": (32.5, 9173.3),
}

# DrQ(eps)'s Atari-100k mean scores per game (Agarwal et al. 2021: DrQ with Dopamine's standard
# epsilon-greedy parameters, training eps decayed to 0.01 and evaluation eps 0.001), a reference
# for discrete runs. Agarwal et al. release the runs (gs://rl-benchmark-data/atari_100k), not a
# per-game table; these are the means later papers tabulate, read in two independent paper
# appendices that agree on all 26 games (both head the column "DrQ"; they are not Yarats et al.'s
# original DrQ numbers, evaluated with eps 0.05). With ATARI_RANDOM_HUMAN they give the mean
# human-normalised score 0.465 and 3 games above human, as those tables report.
DRQ_EPSILON_ATARI100K: dict[str, float] = {
    "alien": 865.2, "amidar": 137.8, "assault": 579.6, "asterix": 763.6, "bank-heist": 232.9,
    "battle-zone": 10165.3, "boxing": 9.0, "breakout": 19.8, "chopper-command": 844.6,
    "crazy-climber": 21539.0, "demon-attack": 1321.5, "freeway": 20.3, "frostbite": 1014.2,
    "gopher": 621.6, "hero": 4167.9, "jamesbond": 349.1, "kangaroo": 1088.4, "krull": 4402.1,
    "kung-fu-master": 11467.4, "ms-pacman": 1218.1, "pong": -9.1, "private-eye": 3.5,
    "qbert": 1810.7, "road-runner": 11211.4, "seaquest": 352.3, "up-n-down": 4324.5,
}


@dataclasses.dataclass(frozen=True)
class AtariOptions:
    """EnvPool settings of Atari tasks (its other wrappers keep their defaults: frame skip 4 with
    max-pooling, 84x84 gray frames, a 4-frame stack, fire on reset, the 27,000-step limit).

    A life loss never ends an episode (EnvPool's ``episodic_life`` stays off): with it EnvPool
    keeps the old frames in the stack after a life loss, while the frame-efficient replay
    rebuilds every episode's first stack as its first frame repeated, EnvPool's reset stack.
    """

    repeat_action_probability: float = 0.25
    """Sticky actions: the probability that the previous action repeats (Machado et al. 2018)."""
    reward_clip: bool = True
    """Rewards become their sign (training); evaluation envs use False to report game scores."""
    full_action_space: bool = False
    """All 18 actions for every game (False: each game's minimal action set, masked by
    `env.action_mask` in multi-game batches)."""
    noop_max: int = 30
    """Up to this many no-op actions after a reset."""

    def validate(self) -> None:
        """Raise ``ValueError`` with one clear line for the first invalid field."""
        if not 0.0 <= self.repeat_action_probability <= 1.0:
            raise ValueError(f"atari repeat_action_probability must be in [0, 1], got "
                             f"{self.repeat_action_probability}")
        if self.noop_max < 0:
            raise ValueError(f"atari noop_max must be >= 0, got {self.noop_max}")

    def envpool_kwargs(self) -> dict:
        """The keyword arguments of ``envpool.make_dm`` these options set."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task: where it is implemented and how it is scored."""

    name: str  # canonical name, e.g. "dmc/cheetah-run"
    suite: str  # "dmc" | "humanoidbench" | "shadowhand" | "metaworld" | "atari"
    episode_length: int  # time limit in agent steps (a time-limit end is a truncation)
    action_repeat: int = 1  # simulator steps per agent step, as the backend applies it
    metric: str = "return"  # "return" | "success"
    mjx_id: str | None = None  # Playground dm_control_suite name / H1 task / ShadowHand object
    envpool_id: str | None = None  # EnvPool task id
    # Observation fields to concatenate, in order. EnvPool's DMC specs expose the union of fields
    # over a domain's tasks (e.g. humanoid-run also has an all-zero `position`), so tasks whose
    # dm_control observation differs from EnvPool's field list name dm_control's keys here.
    envpool_obs_keys: tuple[str, ...] | None = None
    discrete: bool = False
    # (random-policy return, target return): eval also logs (R - random) / (target - random).
    score_range: tuple[float, float] | None = None

    @property
    def has_success(self) -> bool:
        return self.metric == "success"

    @property
    def backends(self) -> tuple[str, ...]:
        return tuple(
            b for b, i in (("mjx", self.mjx_id), ("envpool", self.envpool_id)) if i is not None
        )


def _camel(words: str) -> str:
    return "".join(w.capitalize() for w in re.split(r"[_\-]", words))


# dm_control (domain, task) -> Playground name, for the tasks Playground's dm_control_suite has.
_PLAYGROUND_DMC = {
    ("acrobot", "swingup"): "AcrobotSwingup",
    ("acrobot", "swingup_sparse"): "AcrobotSwingupSparse",
    ("ball_in_cup", "catch"): "BallInCup",
    ("cartpole", "balance"): "CartpoleBalance",
    ("cartpole", "balance_sparse"): "CartpoleBalanceSparse",
    ("cartpole", "swingup"): "CartpoleSwingup",
    ("cartpole", "swingup_sparse"): "CartpoleSwingupSparse",
    ("cheetah", "run"): "CheetahRun",
    ("finger", "spin"): "FingerSpin",
    ("finger", "turn_easy"): "FingerTurnEasy",
    ("finger", "turn_hard"): "FingerTurnHard",
    ("fish", "swim"): "FishSwim",
    ("hopper", "hop"): "HopperHop",
    ("hopper", "stand"): "HopperStand",
    ("humanoid", "stand"): "HumanoidStand",
    ("humanoid", "walk"): "HumanoidWalk",
    ("humanoid", "run"): "HumanoidRun",
    ("pendulum", "swingup"): "PendulumSwingup",
    ("point_mass", "easy"): "PointMass",
    ("reacher", "easy"): "ReacherEasy",
    ("reacher", "hard"): "ReacherHard",
    ("swimmer", "swimmer6"): "SwimmerSwimmer6",
    ("walker", "run"): "WalkerRun",
    ("walker", "stand"): "WalkerStand",
    ("walker", "walk"): "WalkerWalk",
}

# Every dm_control suite task EnvPool 1.2.5 ships (its ids are CamelCase(domain + task) + "-v1",
# except humanoid_CMU).
_ENVPOOL_DMC = [
    ("acrobot", "swingup"), ("acrobot", "swingup_sparse"), ("ball_in_cup", "catch"),
    ("cartpole", "balance"), ("cartpole", "balance_sparse"), ("cartpole", "swingup"),
    ("cartpole", "swingup_sparse"), ("cartpole", "two_poles"), ("cartpole", "three_poles"),
    ("cheetah", "run"), ("dog", "stand"), ("dog", "walk"), ("dog", "trot"), ("dog", "run"),
    ("dog", "fetch"), ("finger", "spin"), ("finger", "turn_easy"), ("finger", "turn_hard"),
    ("fish", "upright"), ("fish", "swim"), ("hopper", "stand"), ("hopper", "hop"),
    ("humanoid", "stand"), ("humanoid", "walk"), ("humanoid", "run"),
    ("humanoid", "run_pure_state"), ("humanoid_CMU", "stand"), ("humanoid_CMU", "walk"),
    ("humanoid_CMU", "run"), ("lqr", "lqr_2_1"), ("lqr", "lqr_6_2"),
    ("manipulator", "bring_ball"), ("manipulator", "bring_peg"), ("manipulator", "insert_ball"),
    ("manipulator", "insert_peg"), ("pendulum", "swingup"), ("point_mass", "easy"),
    ("point_mass", "hard"), ("quadruped", "walk"), ("quadruped", "run"),
    ("quadruped", "escape"), ("quadruped", "fetch"), ("reacher", "easy"), ("reacher", "hard"),
    ("stacker", "stack_2"), ("stacker", "stack_4"), ("swimmer", "swimmer6"),
    ("swimmer", "swimmer15"), ("walker", "stand"), ("walker", "walk"), ("walker", "run"),
]

_DOG_KEYS = (
    "joint_angles", "joint_velocites", "torso_pelvis_height", "z_projection",
    "torso_com_velocity", "inertial_sensors", "foot_forces", "touch_sensors", "actuator_state",
)
_HUMANOID_KEYS = (
    "joint_angles", "head_height", "extremities", "torso_vertical", "com_velocity", "velocity",
)
_QUADRUPED_KEYS = (
    "egocentric_state", "torso_velocity", "torso_upright", "imu", "force_torque",
)
# dm_control's observation keys (and order) where EnvPool's field list differs; checked against
# `dm_control.suite.load(...).observation_spec()` for every task above.
_ENVPOOL_DMC_OBS_KEYS = {
    ("dog", "stand"): _DOG_KEYS,
    ("dog", "walk"): _DOG_KEYS,
    ("dog", "trot"): _DOG_KEYS,
    ("dog", "run"): _DOG_KEYS,
    ("finger", "spin"): ("position", "velocity", "touch"),
    ("fish", "upright"): ("joint_angles", "upright", "velocity"),
    ("fish", "swim"): ("joint_angles", "upright", "target", "velocity"),
    ("humanoid", "stand"): _HUMANOID_KEYS,
    ("humanoid", "walk"): _HUMANOID_KEYS,
    ("humanoid", "run"): _HUMANOID_KEYS,
    ("humanoid", "run_pure_state"): ("position", "velocity"),
    ("quadruped", "walk"): _QUADRUPED_KEYS,
    ("quadruped", "run"): _QUADRUPED_KEYS,
    ("quadruped", "escape"): (*_QUADRUPED_KEYS, "origin", "rangefinder"),
    ("quadruped", "fetch"): (*_QUADRUPED_KEYS, "ball_state", "target_position"),
}


def _envpool_dmc_id(domain: str, task: str) -> str:
    if domain == "humanoid_CMU":
        return f"HumanoidCMU{_camel(task)}-v1"
    return f"{_camel(domain)}{_camel(task)}-v1"


def _dmc_tasks() -> list[TaskSpec]:
    pairs = list(dict.fromkeys([*_PLAYGROUND_DMC, *_ENVPOOL_DMC]))
    envpool_pairs = set(_ENVPOOL_DMC)
    return [
        TaskSpec(
            name=f"dmc/{domain}-{task}",
            suite="dmc",
            episode_length=DMC_EPISODE_LENGTH,
            mjx_id=_PLAYGROUND_DMC.get((domain, task)),
            envpool_id=_envpool_dmc_id(domain, task) if (domain, task) in envpool_pairs else None,
            envpool_obs_keys=_ENVPOOL_DMC_OBS_KEYS.get((domain, task)),
        )
        for domain, task in pairs
    ]


def _kebab(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", camel).lower()


def _envpool_tasks() -> list[TaskSpec]:
    """MetaWorld and Atari, named after what the installed EnvPool registers."""
    try:
        from envpool.registration import registry
    except ImportError:  # EnvPool is optional for MJX-only use.
        return []
    tasks = []
    for envpool_id, (import_path, _, _) in sorted(registry.specs.items()):
        if import_path == "envpool.mujoco.metaworld" and envpool_id.startswith("MetaWorld/"):
            tasks.append(TaskSpec(
                name=f"metaworld/{_kebab(envpool_id.removeprefix('MetaWorld/').split('-v')[0])}",
                suite="metaworld",
                episode_length=METAWORLD_EPISODE_LENGTH,
                metric="success",
                envpool_id=envpool_id,
                envpool_obs_keys=("obs",),
            ))
        elif import_path == "envpool.atari" and envpool_id.endswith("-v5"):
            game = _kebab(envpool_id.removesuffix("-v5")).replace("up-ndown", "up-n-down")
            tasks.append(TaskSpec(
                name=f"atari/{game}",
                suite="atari",
                episode_length=ATARI_EPISODE_LENGTH,
                action_repeat=4,
                envpool_id=envpool_id,
                envpool_obs_keys=("obs",),
                discrete=True,
                score_range=ATARI_RANDOM_HUMAN.get(game),
            ))
    return tasks


def _humanoidbench_tasks() -> list[TaskSpec]:
    """HumanoidBench's H1 (no hands) locomotion tasks, on MJX only (`envs.humanoidbench`)."""
    from envs.humanoidbench.locomotion import TASKS as H1_TASKS

    return [
        TaskSpec(
            name=f"humanoidbench/h1-{t.name}",
            suite="humanoidbench",
            episode_length=1000,
            mjx_id=t.name,
            score_range=(t.random_return, t.target_return),
        )
        for t in H1_TASKS.values()
    ]


SHADOWHAND_TASKS = ("rotate-z", "rotate-z-dense")  # sparse (BRC's) and dense rewards


def _shadowhand_tasks() -> list[TaskSpec]:
    """ShadowHand rotation about z, one task per generated object (`envs.shadowhand`), MJX only;
    `mjx_id` is `<task>/<object>`."""
    from envs.shadowhand.objects import object_names
    from envs.shadowhand.rotate import EPISODE_LENGTH

    return [
        TaskSpec(name=f"shadowhand/{task}/{name}", suite="shadowhand",
                 episode_length=EPISODE_LENGTH, metric="success", mjx_id=f"{task}/{name}")
        for task in SHADOWHAND_TASKS for name in object_names()
    ]


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [*_dmc_tasks(), *_humanoidbench_tasks(), *_shadowhand_tasks(), *_envpool_tasks()]
}

def _shadowhand_suite(part: str, task: str = "rotate-z") -> tuple[str, ...]:
    from envs.shadowhand.objects import TEST, TRAIN

    return tuple(f"shadowhand/{task}/{name}" for name in (TRAIN if part == "train" else TEST))


_METAWORLD_MT10 = (
    "reach", "push", "pick-place", "door-open", "drawer-open", "drawer-close",
    "button-press-topdown", "peg-insert-side", "window-open", "window-close",
)

SUITES: dict[str, tuple[str, ...]] = {
    # Cheap on CPU (1-2 dof, no contacts) and learned by SAC within ~100k steps each.
    "dmc-easy": (
        "dmc/cartpole-balance", "dmc/cartpole-swingup", "dmc/reacher-easy", "dmc/point_mass-easy",
    ),
    # BRC's hardest DMC set: dogs (EnvPool only) and humanoids.
    "dmc-hard": (
        "dmc/dog-stand", "dmc/dog-walk", "dmc/dog-trot", "dmc/dog-run",
        "dmc/humanoid-stand", "dmc/humanoid-walk", "dmc/humanoid-run",
    ),
    # TD-MPC2's MT30 = 19 dm_control tasks + 11 custom ones that are in neither backend;
    # this is the 19 that exist.
    "dmc-mt30": (
        "dmc/walker-stand", "dmc/walker-walk", "dmc/walker-run", "dmc/cheetah-run",
        "dmc/reacher-easy", "dmc/reacher-hard", "dmc/acrobot-swingup", "dmc/pendulum-swingup",
        "dmc/cartpole-balance", "dmc/cartpole-balance_sparse", "dmc/cartpole-swingup",
        "dmc/cartpole-swingup_sparse", "dmc/ball_in_cup-catch", "dmc/finger-spin",
        "dmc/finger-turn_easy", "dmc/finger-turn_hard", "dmc/fish-swim", "dmc/hopper-stand",
        "dmc/hopper-hop",
    ),
    # BRC's nine HumanoidBench H1 (no hands) tasks, and every H1 task made here (the nine,
    # reach, sit and balance)
    "humanoidbench-h1": tuple(f"humanoidbench/h1-{t}" for t in (
        "walk", "stand", "run", "stair", "crawl", "pole", "slide", "hurdle", "maze")),
    "humanoidbench-h1-all": tuple(t.name for t in TASKS.values() if t.suite == "humanoidbench"),
    "humanoidbench-h1-walk-stand-run": (
        "humanoidbench/h1-walk", "humanoidbench/h1-stand", "humanoidbench/h1-run",
    ),
    # BRC's 85 training / 29 held-out objects (generated, envs/shadowhand/objects.py), family by
    # family, so that the objects of one family share one batched model in `envs.make`.
    "shadowhand-train": _shadowhand_suite("train"),
    "shadowhand-test": _shadowhand_suite("test"),
    # A handful of training objects, one family (one compiled model): CPU runs.
    "shadowhand-boxes": _shadowhand_suite("train")[:4],
    "shadowhand-boxes-dense": _shadowhand_suite("train", "rotate-z-dense")[:4],
    "dmc-mjx": tuple(t.name for t in TASKS.values() if t.suite == "dmc" and t.mjx_id),
    "dmc-envpool": tuple(t.name for t in TASKS.values() if t.suite == "dmc" and t.envpool_id),
}
if any(t.suite == "metaworld" for t in TASKS.values()):
    SUITES["metaworld-mt10"] = tuple(f"metaworld/{n}" for n in _METAWORLD_MT10)
    SUITES["metaworld-mt50"] = tuple(t.name for t in TASKS.values() if t.suite == "metaworld")


class UnknownTaskError(KeyError, ValueError):
    """An unknown task or suite name; prints as one plain line."""

    def __str__(self) -> str:
        return str(self.args[0])


def _unknown(kind: str, name: str, known: list[str]) -> UnknownTaskError:
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see envs.TASKS / envs.SUITES"
    return UnknownTaskError(f"unknown {kind} {name!r}{hint}")


def _short(name: str) -> str:
    return name.split("/", 1)[1]


def get_task(name: str) -> TaskSpec:
    """Look a task up by name; the `<suite>/` prefix may be omitted when unambiguous."""
    if name in TASKS:
        return TASKS[name]
    matches = [t for t in TASKS.values() if _short(t.name) == name]
    if len(matches) == 1:
        return matches[0]
    raise _unknown("task", name, [*TASKS, *(_short(n) for n in TASKS)])


def resolve_tasks(tasks: str | list[str] | tuple[str, ...]) -> tuple[TaskSpec, ...]:
    """Expand suite names and resolve task names, keeping order and dropping repeats."""
    names = [tasks] if isinstance(tasks, str) else list(tasks)
    out: list[TaskSpec] = []
    for name in names:
        if name in SUITES:
            out.extend(get_task(n) for n in SUITES[name])
            continue
        try:
            out.append(get_task(name))
        except KeyError:
            known = [*SUITES, *TASKS, *(_short(n) for n in TASKS)]
            raise _unknown("task or suite", name, known) from None
    return tuple(dict.fromkeys(out))


def normalised_scores(task_names, returns) -> dict[str, float]:
    """(R - R_random) / (R_target - R_random) for every registered task with a score range
    (names outside the registry, e.g. test envs', have none)."""
    out = {}
    for name, ret in zip(task_names, returns, strict=True):
        spec = TASKS.get(name)
        score_range = spec.score_range if spec is not None else None
        if score_range is not None:
            low, high = score_range
            out[name] = (float(ret) - low) / (high - low)
    return out
