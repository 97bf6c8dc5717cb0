"""Frozen, typed configuration for the BRC learner (spec sections 2-7).

Every field has a one-line docstring so that a tyro CLI documents it in ``--help``. Derived sizes
(input widths, masks, target entropies) are computed by pure functions from these configs and
the environment's sizes; they are never written back into a config.
"""

from __future__ import annotations

import dataclasses
import json
import typing
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
    critic_compute_dtype: Literal["float32", "bfloat16"] = "float32"
    """Compute dtype of the critic's matmuls (parameters and optimiser stay float32)."""
    critic_arch: Literal["bronet", "mlp"] = "bronet"
    """Critic trunk: BroNet (LayerNorm, residual) or a plain Dense-ReLU MLP with as many layers
    (1 + 2 critic_depth) of the same width (ablation)."""
    task_conditioning: Literal["embedding", "onehot", "heads"] = "embedding"
    """How critic and actor see the task: a learned L2-normalised embedding (BRC), a one-hot
    vector, or a shared trunk with one output head per task (ablations; multi-task only)."""


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
    critic_loss: Literal["categorical", "mse"] = "categorical"
    """Critic head and loss: categorical cross-entropy (BRC) or a scalar head with squared TD
    error against the same soft TD target (ablation)."""
    reward_normalization: bool = True
    """Divide rewards by the per-task scale of spec section 5 (False: raw rewards, ablation)."""


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
        (net.critic_compute_dtype in ("float32", "bfloat16"),
         f"network.critic_compute_dtype must be float32 or bfloat16, "
         f"got {net.critic_compute_dtype!r}"),
        (0.0 <= cfg.gamma < 1.0, f"gamma must be in [0, 1), got {cfg.gamma}"),
        (0.0 < cfg.tau <= 1.0, f"tau must be in (0, 1], got {cfg.tau}"),
        (cfg.init_alpha > 0.0, f"init_alpha must be > 0, got {cfg.init_alpha}"),
        (cfg.actor_lr > 0.0, f"actor_lr must be > 0, got {cfg.actor_lr}"),
        (cfg.critic_lr > 0.0, f"critic_lr must be > 0, got {cfg.critic_lr}"),
        (cfg.temperature_lr > 0.0, f"temperature_lr must be > 0, got {cfg.temperature_lr}"),
        (cfg.fallback_reward_scale > 0.0,
         f"fallback_reward_scale must be > 0, got {cfg.fallback_reward_scale}"),
        (net.critic_arch in ("bronet", "mlp"),
         f"network.critic_arch must be 'bronet' or 'mlp', got {net.critic_arch!r}"),
        (net.task_conditioning in ("embedding", "onehot", "heads"),
         f"network.task_conditioning must be 'embedding', 'onehot' or 'heads', "
         f"got {net.task_conditioning!r}"),
        (cfg.critic_loss in ("categorical", "mse"),
         f"critic_loss must be 'categorical' or 'mse', got {cfg.critic_loss!r}"),
        (cfg.entropy_scale_mode in ("target", "empirical"),
         f"entropy_scale_mode must be 'target' or 'empirical', got {cfg.entropy_scale_mode!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class DiscreteConfig:
    """The discrete-action (Atari) variant of BRC, built on DrQ(epsilon); used when the tasks
    have discrete actions. Optimiser, network sizes, gamma, tau and reward normalisation come from
    ``learner`` (its actor and temperature fields are unused)."""

    n_step: int = 10
    """n of the n-step TD target (DrQ(epsilon): 10); it stops at an episode end."""
    epsilon_start: float = 1.0
    """Exploration epsilon right after the warm-up (the warm-up itself acts uniformly)."""
    epsilon_end: float = 0.01
    """Epsilon after the decay."""
    epsilon_decay_steps: int = 5_000
    """Transitions per task over which epsilon decays linearly, counted from the warm-up's end."""
    eval_epsilon: float = 0.001
    """Epsilon of the evaluation episodes (DrQ(epsilon): 0.001)."""
    augment_pad: int = 4
    """Random-shift augmentation of image observations (DrQ): pad by this many pixels
    (replicating the edge) and crop back at a random offset; 0 turns it off."""


def validate_discrete(cfg: DiscreteConfig) -> None:
    """Raise ``ValueError`` with one clear line for the first invalid field of ``cfg``."""
    checks = [
        (cfg.n_step >= 1, f"discrete.n_step must be >= 1, got {cfg.n_step}"),
        (0.0 <= cfg.epsilon_start <= 1.0,
         f"discrete.epsilon_start must be in [0, 1], got {cfg.epsilon_start}"),
        (0.0 <= cfg.epsilon_end <= 1.0,
         f"discrete.epsilon_end must be in [0, 1], got {cfg.epsilon_end}"),
        (cfg.epsilon_decay_steps >= 0,
         f"discrete.epsilon_decay_steps must be >= 0, got {cfg.epsilon_decay_steps}"),
        (0.0 <= cfg.eval_epsilon <= 1.0,
         f"discrete.eval_epsilon must be in [0, 1], got {cfg.eval_epsilon}"),
        (cfg.augment_pad >= 0, f"discrete.augment_pad must be >= 0, got {cfg.augment_pad}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Which tasks to train on and how many parallel environments."""

    tasks: tuple[str, ...] = ("dmc-easy",)
    """Task names (e.g. dmc/cartpole-balance) or suite names (e.g. dmc-easy)."""
    backend: str = "mjx"
    """Simulator backend: mjx | envpool | auto (MJX where Playground has the task, else EnvPool)."""
    envs_per_task: int = 8
    """Parallel training environments per task."""
    mjx_solver: str = "port"
    """Physics of the DMC tasks on MJX: port (Playground's settings: few solver iterations,
    Euler damping off, float32, fast), eulerdamp (those, with Euler damping on, as dm_control) or
    mujoco (MuJoCo's defaults, as dm_control: 100 solver and 50 line-search iterations, Euler
    damping on)."""
    eval_episodes: int = 4
    """Deterministic evaluation episodes per task (run in parallel)."""
    reward_scales: tuple[float, ...] = ()
    """Multiply task k's training rewards by reward_scales[k], one value per task in the order
    of the resolved task list (experiments with tasks of different reward scales); evaluation
    always reports the task's own return. Empty: rewards as the tasks give them."""
    atari_repeat_action_probability: float = 0.25
    """Atari: sticky actions, the probability that the previous action repeats (Machado et al.)."""
    atari_reward_clip: bool = True
    """Atari: train on the sign of the reward (evaluation always reports the game score)."""
    atari_full_action_space: bool = False
    """Atari: all 18 actions for every game (False: each game's minimal set; a multi-game run
    masks the actions a game does not have)."""


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """Device replay buffer."""

    capacity_per_task: int = 100_000
    """Transitions kept per task (ring)."""
    obs_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Storage dtype of observations (cast back to float32 when sampled)."""


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Device mesh: data-parallel x fully-sharded (parameter) axes."""

    data: int = -1
    """Devices along the data axis (-1: all devices not used by fsdp)."""
    fsdp: int = 1
    """Devices along the parameter-sharding axis."""
    min_shard_size: int = 1 << 18
    """Parameters with fewer elements than this stay replicated."""


@dataclasses.dataclass(frozen=True)
class TransferConfig:
    """How --init-from / --replay-from start a run from another run (spec section 9)."""

    init_step: int = -1
    """Checkpoint of --init-from to load, by env steps per task (-1: its newest)."""
    replay_step: int = -1
    """Checkpoint of --replay-from whose replay seeds this run, by env steps per task (-1: its
    newest)."""
    new_embedding: Literal["random", "mean"] = "random"
    """Embedding row of a task the source did not train: a fresh draw of the initialiser
    (N(0, 1), as in a new run) or the mean of the source's rows."""
    keep_optimizer: bool = False
    """Also load the source's AdamW states (default: fresh optimisers)."""
    keep_temperature: bool = False
    """Also load the source's temperature and its optimiser (default: init_alpha again)."""


@dataclasses.dataclass(frozen=True)
class WandbConfig:
    """Weights & Biases logging, beside TensorBoard and metrics.jsonl (``pip install -e
    '.[wandb]'``; ``WANDB_MODE=offline`` logs with no network, ``wandb sync`` uploads later)."""

    enabled: bool = False
    """Log the run's metrics, config and videos to W&B (a resumed run continues its W&B run)."""
    project: str = "brc_mjx"
    """W&B project."""
    entity: str = ""
    """W&B entity (team or user; empty: your default)."""
    group: str = ""
    """W&B group (e.g. the seeds of one setting; empty: none)."""
    tags: tuple[str, ...] = ()
    """W&B tags."""


@dataclasses.dataclass(frozen=True)
class PopulationConfig:
    """Many runs trained together in one compiled program (``brc_mjx.population``): every
    combination of a seed and a swept setting is a member, with its own parameters, optimisers,
    replay, normaliser, envs and key, and its own run directory ``run_dir/member-<k>``."""

    seeds: tuple[int, ...] = ()
    """Seeds of the members (empty and size 0: one run with --seed)."""
    size: int = 0
    """Members with seeds seed, seed + 1, ..., seed + size - 1 (instead of --population.seeds)."""
    sweep: tuple[str, ...] = ()
    """Settings the members differ in, each ``field=v1,v2,...`` (e.g. ``learner.tau=0.005,0.02``):
    learner settings that change no shape (``brc_mjx.population.SWEEPABLE``); every combination
    runs with every seed."""
    vectorize: bool = True
    """Step the members of a setting as one batched program (``vmap``). False: one after another
    inside the program (``lax.map``): slower, and bit-identical to single runs on a CPU."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A full BRC training run. Env-step budgets count transitions per task."""

    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    """Tasks and parallel environments."""
    learner: LearnerConfig = dataclasses.field(default_factory=LearnerConfig)
    """Learner hyper-parameters and network sizes."""
    discrete: DiscreteConfig = dataclasses.field(default_factory=DiscreteConfig)
    """The discrete-action (Atari) learner's own settings (used only for discrete tasks)."""
    replay: ReplayConfig = dataclasses.field(default_factory=ReplayConfig)
    """Replay buffer."""
    mesh: MeshConfig = dataclasses.field(default_factory=MeshConfig)
    """Device mesh (data x fsdp) the loop is sharded over."""
    batch_size: int = 256
    """Transitions per gradient step (all tasks together)."""
    updates_per_step: int = 1
    """Gradient steps per vectorized env step (sets the replay ratio)."""
    total_env_steps: int = 100_000
    """Training budget: transitions collected per task."""
    warmup_env_steps: int = 5_000
    """Uniform-random transitions per task before learning starts."""
    steps_per_epoch: int = 100
    """Vectorized env steps per compiled epoch (one host round-trip each)."""
    eval_every: int = 10_000
    """Evaluate every this many transitions per task (rounded up to whole epochs); 0: never."""
    eval_at_start: bool = False
    """Also evaluate before the first epoch (logged at env step 0): the starting policy, e.g. a
    policy transferred with --init-from onto held-out tasks, zero-shot."""
    checkpoint_every: int = 20_000
    """Checkpoint every this many transitions per task (rounded up to whole epochs); 0: never."""
    diagnostics_every: int = 0
    """Log multi-task diagnostics (diag/...: per-task critic loss, gradient norm, gradient
    conflicts, entropy, Q) every this many transitions per task; 0: never."""
    diagnostics_per_task: int = 64
    """Replay samples per task of one diagnostics batch."""
    video: bool = False
    """Render the last evaluation's first episode of every MJX task as a GIF into
    run_dir/videos (and TensorBoard), on the host, outside the training epoch."""
    video_every: int = 0
    """With --video, also render at the first evaluation at or after every this many
    transitions per task (0: only at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk."""
    seed: int = 0
    """Seed of every PRNG key of the run."""
    run_dir: str = "runs/default"
    """Directory for config, logs (JSONL, TensorBoard), checkpoints and profiles."""
    resume: bool = False
    """Continue from the latest good checkpoint in run_dir (fails if it holds none)."""
    start_if_no_checkpoint: bool = False
    """With --resume: start a fresh run in run_dir when it holds no checkpoint yet."""
    compile_cache: bool = True
    """Keep compiled XLA programs on disk so that a second identical run skips compiling."""
    compile_cache_dir: str = ""
    """Persistent compilation cache directory ("": $JAX_COMPILATION_CACHE_DIR if set, else
    ~/.cache/brc_mjx/xla); shared by runs, safe to delete."""
    init_from: str = ""
    """Model transfer: start from the critic, target critic and actor of this run directory's
    checkpoint; tasks may mix the source's (their embedding rows and reward statistics are kept)
    and new ones ("": a fresh learner)."""
    replay_from: str = ""
    """Data transfer: seed the replay with the transitions of this run directory's tasks; they
    are trained on (without envs) next to this run's tasks ("": an empty replay)."""
    transfer: TransferConfig = dataclasses.field(default_factory=TransferConfig)
    """Options of --init-from / --replay-from."""
    wandb: WandbConfig = dataclasses.field(default_factory=WandbConfig)
    """Weights & Biases logging (--wandb.enabled)."""
    population: PopulationConfig = dataclasses.field(default_factory=PopulationConfig)
    """Train several seeds / settings as one program (--population.seeds 0 1 2)."""
    profile: bool = False
    """Capture a jax.profiler trace of a few steady-state epochs into run_dir/profile."""
    distributed: bool = False
    """Multi-host: call jax.distributed.initialize() first (one process per host)."""


#: Fields a resumed run may change (prefixes end with "."): they change neither the state's
#: shapes nor the meaning of what was learned. Every other difference is refused.
RESUMABLE_FIELDS = (
    "total_env_steps", "eval_every", "eval_at_start", "checkpoint_every", "keep_checkpoints",
    "run_dir", "resume",
    "start_if_no_checkpoint", "profile", "distributed", "env.eval_episodes", "mesh.",
    "diagnostics_every", "diagnostics_per_task", "compile_cache", "compile_cache_dir",
    "video", "video_every", "wandb.",
)


def to_json(cfg) -> dict:
    """A config as the JSON dict written to ``config.json`` (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def from_json(cls, obj: dict):
    """The config of class ``cls`` stored as ``obj`` (``to_json``'s inverse).

    Lists become the tuples the fields declare; a field the JSON lacks (a run directory written
    by an older version) keeps its default, and a key no field has is refused.
    """
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(obj) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)}")
    values = {}
    for field in dataclasses.fields(cls):
        if field.name not in obj:
            continue
        value, hint = obj[field.name], hints[field.name]
        if dataclasses.is_dataclass(hint):
            value = from_json(hint, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[field.name] = value
    return cls(**values)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for name, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = value
    return out


def diff_fields(old: dict, new: dict) -> list[tuple[str, object, object]]:
    """``(dotted field, old value, new value)`` of every field that differs between two configs.

    Both are JSON dicts (``to_json``); a field missing on one side shows as ``None`` there.

    >>> diff_fields({"a": 1, "b": {"c": [2]}}, {"a": 1, "b": {"c": [3]}})
    [('b.c', [2], [3])]
    """
    flat_old, flat_new = _flat(old), _flat(new)
    names = list(flat_new) + [n for n in flat_old if n not in flat_new]
    return [(n, flat_old.get(n), flat_new.get(n)) for n in names
            if flat_old.get(n) != flat_new.get(n)]


def resumable(field: str) -> bool:
    """Whether a resumed run may change ``field`` (a dotted name from ``diff_fields``)."""
    return any(field == f or (f.endswith(".") and field.startswith(f)) for f in RESUMABLE_FIELDS)
