"""Our trainer next to Brax's SAC trainer on the same MuJoCo Playground env, in one invocation.

    python -m benchmarks.peer                          # both measurements, CartpoleBalance
    python -m benchmarks.peer --mode peer --peer.num-envs 64
    python -m benchmarks.peer --mode time_to_score --ours.critic-width 128

*peer*: throughput of the full training loop (acting, replay, ``updates_per_step`` gradient steps
of ``batch_size`` per vectorized env step) of ``brc_mjx`` with one task and of
``brax.training.agents.sac.train``, with the same env, number of envs, batch, updates per env step
and hidden width. Our BroNets (critic and actor) get ``depth`` residual blocks, i.e. ``1 + 2 depth``
dense layers of width ``width``; Brax's MLPs get ``hidden_layer_sizes = (width,) * (1 + 2 depth)``
with a LayerNorm'd Q-network. Exact parameter counts of both sides go into the row. Steady state is
the median env-steps/s of the epochs after the first (Brax compiles its epoch inside the first one;
ours is compiled ahead of time but its first epoch holds the warm-up). Target: ours / Brax >= 2.
The row also holds one gradient update of each side on the same synthetic batch (seconds and
XLA's FLOP count, :func:`update_costs`): where both do about the same FLOPs and both run near the
device's matmul rate, no loop engineering can make ours twice as fast.
*time_to_score*: wall-clock (env construction and compilation included) until the deterministic
eval return reaches ``target`` (900) on single-task CartpoleBalance, each trainer with its own
fastest sensible settings and the same eval protocol (``eval_episodes`` episodes every
``eval_every`` env steps). Ours runs through its own host-loop parts (``run.set_up``, the
evaluation hook, ``run.train_epochs``; no checkpoints, no warm-start cache, no curves drawn);
Brax's evals are timestamped by its ``progress_fn``, which stops it (by raising) once it scores.
Ours runs once per seed of ``ours_seeds`` (caches cleared, so each compiles from scratch) and its
median time counts; Brax runs once (``seed``). Target: ours <= 0.5 x Brax. The row splits each
side's wall time into ``train_s`` (ours: the epochs, compiled ahead of time; Brax: its
``training/walltime``, prefill and its epoch's compile included), ``eval_s`` (first eval's
compile included) and ``compile_s``.

Compile seconds of either side are the union of the time spans JAX reports for tracing, lowering
and XLA compilation (``jax.monitoring``) while that side runs, so both are measured the same way.
Brax 0.14.2 runs unchanged on jax 0.9.2 here: no compatibility shim is needed. Playground envs are
loaded with ``impl="jax"`` for both (``envs.mjx_backend.load_playground``): its default, MuJoCo
Warp, is very slow on CPU. One JSON row per measurement goes to ``benchmarks/results/peer.jsonl``.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import tyro

from benchmarks.brax_sac import brax_networks, playground_env, run_brax
from benchmarks.common import RESULTS_DIR, CompileClock, append_row, row_header, xla_flops
from brc_mjx import hooks as hooks_lib
from brc_mjx import run as run_lib
from brc_mjx import train
from brc_mjx.config import (
    EnvConfig,
    LearnerConfig,
    MeshConfig,
    NetworkConfig,
    ReplayConfig,
    TrainConfig,
)
from configs.models import parameter_counts


@dataclasses.dataclass(frozen=True)
class PeerConfig:
    """Settings shared by both trainers in the throughput comparison."""

    num_envs: int = 32
    """Parallel environments."""
    batch_size: int = 256
    """Transitions per gradient step."""
    updates_per_step: int = 1
    """Gradient steps per vectorized env step (Brax: grad_updates_per_step)."""
    width: int = 256
    """Hidden width of every layer of critic and actor (ours: BroNet width; Brax: MLP sizes)."""
    depth: int = 1
    """Our BroNets' residual blocks (1 + 2 depth dense layers); Brax gets as many MLP layers."""
    steps_per_epoch: int = 100
    """Vectorized env steps per timed epoch (one host round-trip each, both sides)."""
    epochs: int = 4
    """Timed epochs after the first (compile / warm-up) one; the median is reported."""


@dataclasses.dataclass(frozen=True)
class OursScoreConfig:
    """Our settings for the time-to-score race, chosen for wall-clock speed on a small CPU.

    Measured here (2-core CPU, seeds 0-4, 900 reached after 15k-45k env steps): on a CPU a
    gradient update costs far more than a CartpoleBalance step, so few envs (many updates per
    env step), a small critic (the 101-atom head dominates its FLOPs at W=64) and a faster
    target (tau 0.02: 17-31 s vs 46 s at 0.005 for seeds 1-2) win; EnvPool needs no simulator
    compile (MJX adds ~15 s of compilation here).
    """

    backend: str = "envpool"
    """Simulator of our training and eval envs: envpool (dm_control's CartpoleBalance, nothing
    to compile) | mjx (the Playground env Brax runs)."""
    num_envs: int = 4
    """Parallel training environments (few: what matters on a CPU is updates per env step)."""
    batch_size: int = 256
    """Transitions per gradient step."""
    updates_per_step: int = 1
    """Gradient steps per vectorized env step."""
    critic_width: int = 64
    """Critic BroNet width."""
    critic_depth: int = 1
    """Critic BroNet residual blocks."""
    actor_width: int = 64
    """Actor BroNet width."""
    actor_depth: int = 1
    """Actor BroNet residual blocks."""
    learning_rate: float = 1e-3
    """AdamW learning rate of actor and critic."""
    tau: float = 0.02
    """Polyak rate of the target critic."""
    warmup_env_steps: int = 1_000
    """Uniform-random transitions before learning starts."""


@dataclasses.dataclass(frozen=True)
class BraxScoreConfig:
    """Brax SAC's settings for the time-to-score race (Playground's DMC SAC config, resized)."""

    num_envs: int = 32
    """Parallel training environments."""
    batch_size: int = 256
    """Transitions per gradient step."""
    grad_updates_per_step: int = 32
    """Gradient steps per vectorized env step (32 = num_envs: one update per env transition;
    with one per vectorized step its temperature, starting at 1, barely falls in 200k steps)."""
    hidden_layer_sizes: tuple[int, ...] = (128, 128)
    """Hidden layers of Brax's policy and Q MLPs."""
    learning_rate: float = 1e-3
    """Adam learning rate of policy and Q (Playground's DMC SAC config)."""
    discounting: float = 0.99
    """Discount factor."""
    min_replay_size: int = 1_024
    """Transitions collected before learning starts (prefill)."""
    normalize_observations: bool = True
    """Running observation normalisation (Playground's DMC SAC config)."""
    q_network_layer_norm: bool = True
    """LayerNorm in the Q MLP (Playground's DMC SAC config)."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Brax SAC peer comparison: loop throughput and time-to-score."""

    mode: tuple[str, ...] = ("peer", "time_to_score")
    """Which measurements: peer | time_to_score."""
    task: str = "dmc/cartpole-balance"
    """Task (our registry name; its Playground env is what Brax trains on)."""
    seed: int = 0
    """Seed of both trainers."""
    peer: PeerConfig = dataclasses.field(default_factory=PeerConfig)
    """Throughput comparison settings."""
    ours: OursScoreConfig = dataclasses.field(default_factory=OursScoreConfig)
    """Our time-to-score settings."""
    brax: BraxScoreConfig = dataclasses.field(default_factory=BraxScoreConfig)
    """Brax's time-to-score settings."""
    target: float = 900.0
    """Deterministic eval return to reach."""
    ours_seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of our time-to-score runs (Brax runs ``seed``); the ratio uses our median time."""
    eval_every: int = 5_000
    """Env steps between evals (both sides; rounded to whole epochs / Brax epochs)."""
    eval_episodes: int = 16
    """Deterministic eval episodes per eval (both sides, run in parallel)."""
    max_env_steps: int = 200_000
    """Env-step budget of each side in the race."""
    wall_budget_s: float = 240.0
    """Wall-clock budget of each side in the race (checked at every eval)."""
    peer_target: float = 2.0
    """Target of ours / Brax env-steps/s."""
    score_target: float = 0.5
    """Target of ours / Brax time-to-score."""
    out: Path = RESULTS_DIR / "peer.jsonl"
    """JSONL file the rows are appended to."""


def _compile_updates(step, carry, batch, updates: int):
    """Compile ``updates`` scanned calls of ``step(carry, batch, key) -> carry``.

    Returns ``(timed_call, flops)``: ``timed_call()`` runs them once and returns seconds per
    update; ``flops`` is XLA's cost analysis of one un-scanned step (it counts a loop body once).
    """
    def many(carry, key):
        body = lambda c, k: (step(c, batch, k), None)
        return jax.lax.scan(body, carry, jax.random.split(key, updates))[0]

    compiled = jax.jit(many).lower(carry, jax.random.key(0)).compile()
    carry = jax.block_until_ready(compiled(carry, jax.random.key(0)))
    flops = xla_flops(jax.jit(step).lower(carry, batch, jax.random.key(0)).compile())

    def timed_call() -> float:
        start = time.perf_counter()
        jax.block_until_ready(compiled(carry, jax.random.key(1)))
        return (time.perf_counter() - start) / updates

    return timed_call, flops


def update_costs(obs_size: int, action_size: int, *, width: int, depth: int, batch_size: int,
                 learning_rate: float, updates: int = 20, repeats: int = 5) -> dict:
    """One gradient update of each trainer on the same synthetic batch: seconds and FLOPs.

    Ours: ``brc_mjx.agents.brc.learner.sgd_step`` (critic, Polyak, actor, temperature). Brax:
    its SAC update rebuilt from ``brax.training.agents.sac.losses.make_losses`` and
    ``brax.training.gradients.gradient_update_fn`` in the order of its ``sgd_step`` (alpha,
    critic, actor, Polyak), with the networks of :func:`brax_networks`. The FLOP ratio is the
    ceiling of ours / Brax throughput when both run at the same FLOP/s.
    """
    import optax
    from brax.training import gradients
    from brax.training import types as brax_types
    from brax.training.acme import running_statistics, specs
    from brax.training.agents.sac import losses as sac_losses

    from brc_mjx.agents.brc import learner as learner_lib
    from brc_mjx.replay import Transition

    keys = jax.random.split(jax.random.key(1), 4)
    obs = jax.random.normal(keys[0], (batch_size, obs_size))
    next_obs = jax.random.normal(keys[1], (batch_size, obs_size))
    action = jax.random.uniform(keys[2], (batch_size, action_size), minval=-1.0, maxval=1.0)
    reward = jax.random.uniform(keys[3], (batch_size,))
    zeros = jnp.zeros((batch_size,))

    network = NetworkConfig(critic_width=width, critic_depth=depth, actor_width=width,
                            actor_depth=depth)
    learner = learner_lib.make_learner(
        LearnerConfig(network=network, actor_lr=learning_rate, critic_lr=learning_rate),
        obs_size, (action_size,))
    ours_state = learner_lib.init_state(learner, jax.random.key(0), num_envs=1,
                                        max_episode_length=10)
    ours_batch = Transition(obs=obs, action=action, reward=reward, next_obs=next_obs,
                            terminated=zeros.astype(bool), truncated=zeros.astype(bool),
                            task_id=zeros.astype(jnp.int32))
    ours_step = lambda state, batch, key: learner_lib.sgd_step(learner, state, batch, key)[0]
    ours_call, ours_flops = _compile_updates(ours_step, ours_state, ours_batch, updates)

    hidden = (width,) * (1 + 2 * depth)
    nets = brax_networks(hidden, True)(
        observation_size=obs_size, action_size=action_size,
        preprocess_observations_fn=running_statistics.normalize)
    alpha_loss, critic_loss, actor_loss = sac_losses.make_losses(
        sac_network=nets, reward_scaling=1.0, discounting=0.99, action_size=action_size)
    alpha_opt, policy_opt, q_opt = (optax.adam(3e-4), optax.adam(learning_rate),
                                    optax.adam(learning_rate))
    alpha_update = gradients.gradient_update_fn(alpha_loss, alpha_opt, pmap_axis_name=None)
    critic_update = gradients.gradient_update_fn(critic_loss, q_opt, pmap_axis_name=None)
    actor_update = gradients.gradient_update_fn(actor_loss, policy_opt, pmap_axis_name=None)
    normalizer = running_statistics.init_state(specs.Array((obs_size,), jnp.dtype("float32")))
    policy_params = nets.policy_network.init(jax.random.key(2))
    q_params = nets.q_network.init(jax.random.key(3))
    log_alpha = jnp.asarray(0.0)
    brax_state = (log_alpha, alpha_opt.init(log_alpha), policy_params,
                  policy_opt.init(policy_params), q_params, q_opt.init(q_params), q_params)
    brax_batch = brax_types.Transition(
        observation=obs, action=action, reward=reward, discount=jnp.ones((batch_size,)),
        next_observation=next_obs, extras={"state_extras": {"truncation": zeros},
                                           "policy_extras": {}})

    def brax_step(state, batch, key):
        log_alpha, alpha_os, policy, policy_os, q, q_os, target_q = state
        k_alpha, k_critic, k_actor = jax.random.split(key, 3)
        _, log_alpha, alpha_os = alpha_update(log_alpha, policy, normalizer, batch, k_alpha,
                                              optimizer_state=alpha_os)
        alpha = jnp.exp(log_alpha)
        _, q, q_os = critic_update(q, policy, normalizer, target_q, alpha, batch, k_critic,
                                   optimizer_state=q_os)
        _, policy, policy_os = actor_update(policy, normalizer, q, alpha, batch, k_actor,
                                            optimizer_state=policy_os)
        target_q = jax.tree.map(lambda t, p: t * 0.995 + p * 0.005, target_q, q)
        return log_alpha, alpha_os, policy, policy_os, q, q_os, target_q

    brax_call, brax_flops = _compile_updates(brax_step, brax_state, brax_batch, updates)
    # Interleaved, best of ``repeats`` each: both sides see the same host load.
    ours_s = brax_s = float("inf")
    for _ in range(repeats):
        ours_s, brax_s = min(ours_s, ours_call()), min(brax_s, brax_call())
    return dict(ours=dict(seconds=ours_s, flops=ours_flops),
                brax=dict(seconds=brax_s, flops=brax_flops),
                flop_ratio=ours_flops / brax_flops, time_ratio=ours_s / brax_s)


def ours_train_config(task: str, seed: int, *, num_envs: int, backend: str = "mjx", batch_size: int,
                      updates_per_step: int, network: NetworkConfig, learning_rate: float,
                      steps_per_epoch: int, tau: float = LearnerConfig.tau,
                      total_env_steps: int, warmup_env_steps: int,
                      eval_episodes: int) -> TrainConfig:
    """A single-task, single-device ``TrainConfig`` of our trainer."""
    cfg = TrainConfig(
        env=EnvConfig(tasks=(task,), backend=backend, envs_per_task=num_envs,
                      eval_episodes=eval_episodes),
        learner=LearnerConfig(network=network, actor_lr=learning_rate, critic_lr=learning_rate,
                              tau=tau),
        replay=ReplayConfig(capacity_per_task=max(total_env_steps, num_envs)),
        mesh=MeshConfig(data=1, fsdp=1),
        batch_size=batch_size,
        updates_per_step=updates_per_step,
        total_env_steps=total_env_steps,
        warmup_env_steps=warmup_env_steps,
        steps_per_epoch=steps_per_epoch,
        eval_every=0,
        checkpoint_every=0,
        seed=seed,
    )
    train.validate(cfg)
    return cfg


class ScoreTrace(hooks_lib.Hook):
    """Epoch seconds, timestamped evals and the stop rule of :func:`run_ours`."""

    def __init__(self, session, start: float, stop_at: float | None, wall_budget_s: float):
        self.session, self.start = session, start
        self.stop_at, self.wall_budget_s = stop_at, wall_budget_s
        self.epoch_s: list[float] = []
        self.evals: list[dict] = []
        self.eval_s = 0.0
        self.scored = False

    def logged(self, epoch, state, record: dict) -> None:
        self.epoch_s.append(record["perf/epoch_s"])
        if "eval/mean_return" not in record:
            return
        self.eval_s += record["perf/eval_s"]
        wall = time.perf_counter() - self.start
        self.evals.append(dict(env_steps=epoch.env_steps, wall_s=wall,
                               eval_return=record["eval/mean_return"]))
        self.scored = self.stop_at is not None and record["eval/mean_return"] >= self.stop_at
        self.session.stop = self.scored or wall > self.wall_budget_s


def run_ours(clock: CompileClock, cfg: TrainConfig, max_epochs: int | None = None, *,
             evaluate_every: int = 0,
             stop_at: float | None = None, wall_budget_s: float = float("inf")) -> dict:
    """Set up, compile and run our trainer (at most ``max_epochs`` epochs) through its own
    host-loop parts (``run.set_up``, ``run.compile_epoch``, the evaluation hook,
    ``run.train_epochs``), in a temporary run directory, without checkpoints or warm-start.

    With ``evaluate_every`` > 0 the deterministic evaluator runs every that many epochs and the
    loop stops once its return >= ``stop_at`` or the wall budget is spent. Returns per-epoch
    seconds, ``evals`` (env steps, wall seconds since the start, return), ``wall_s``,
    ``compile_s`` (JAX's compile spans), ``epoch_compile_s`` (ahead-of-time compile of the
    epoch alone), the summed training and eval seconds and the parameter counts.
    """
    import tempfile

    clock.start()
    start = time.perf_counter()
    epoch_transitions = cfg.steps_per_epoch * cfg.env.envs_per_task
    cfg = dataclasses.replace(
        cfg, eval_every=evaluate_every * epoch_transitions, checkpoint_every=0,
        compile_cache=False, run_dir=tempfile.mkdtemp(prefix="brc-peer-"),
        env=dataclasses.replace(cfg.env, eval_episodes=cfg.env.eval_episodes if evaluate_every
                                else 0))
    session = run_lib.set_up(cfg)
    epoch_fn, epoch_compile_s = run_lib.compile_epoch(session)
    trace = ScoreTrace(session, start, stop_at, wall_budget_s)
    hooks = [hooks_lib.Evaluation(session), trace]
    hooks_lib.prepare_hooks(session, hooks)
    derived = session.program.derived
    epochs = derived.epochs if max_epochs is None else min(max_epochs, derived.epochs)
    run_lib.train_epochs(session, epoch_fn, hooks, epochs)
    session.logger.close()
    wall = time.perf_counter() - start
    env = session.env
    return dict(
        epoch_s=trace.epoch_s, evals=trace.evals, wall_s=wall, compile_s=clock.stop(),
        epoch_compile_s=epoch_compile_s, train_s=sum(trace.epoch_s), eval_s=trace.eval_s,
        scored=trace.scored,
        params=parameter_counts(cfg.learner.network, env.obs_dim, env.action_dim, 1),
    )


def measure_peer(cfg: Config, clock: CompileClock) -> None:
    """Loop throughput of both trainers at matched sizes; one row, one summary line."""
    p = cfg.peer
    epoch_env_steps = p.steps_per_epoch * p.num_envs
    total = (p.epochs + 1) * epoch_env_steps
    warmup = max(p.batch_size, p.num_envs)  # ours: inside the first (untimed) epoch
    if warmup >= epoch_env_steps:
        raise ValueError(f"peer: warm-up {warmup} must fit in one epoch ({epoch_env_steps} steps)")
    network = NetworkConfig(critic_width=p.width, critic_depth=p.depth, actor_width=p.width,
                            actor_depth=p.depth)
    train_cfg = ours_train_config(
        cfg.task, cfg.seed, num_envs=p.num_envs, batch_size=p.batch_size,
        updates_per_step=p.updates_per_step, network=network,
        learning_rate=LearnerConfig().critic_lr, steps_per_epoch=p.steps_per_epoch,
        total_env_steps=total, warmup_env_steps=warmup, eval_episodes=0,
    )
    ours = run_ours(clock, train_cfg, max_epochs=p.epochs + 1)
    ours_steady = statistics.median(ours["epoch_s"][1:])
    ours_sps = epoch_env_steps / ours_steady

    # Brax: one prefill of ``warmup`` transitions, then p.epochs + 1 epochs of exactly
    # p.steps_per_epoch vectorized steps (an eval after each: num_eval_envs kept small).
    hidden = (p.width,) * (1 + 2 * p.depth)
    brax = run_brax(
        clock, cfg.task, cfg.seed, num_envs=p.num_envs, batch_size=p.batch_size,
        grad_updates_per_step=p.updates_per_step, hidden_layer_sizes=hidden,
        num_timesteps=warmup + total, num_evals=p.epochs + 2, num_eval_envs=1,
        min_replay_size=warmup, learning_rate=cfg.brax.learning_rate,
        discounting=cfg.brax.discounting, normalize_observations=cfg.brax.normalize_observations,
        q_network_layer_norm=True,
    )
    epochs = [e for e in brax["evals"] if e["env_steps"] > 0]  # the first eval precedes training
    brax_sps = statistics.median(e["epoch_steps_per_s"] for e in epochs[1:])
    ratio = ours_sps / brax_sps
    env = playground_env(cfg.task)
    update = update_costs(env.observation_size, env.action_size, width=p.width, depth=p.depth,
                          batch_size=p.batch_size, learning_rate=cfg.brax.learning_rate)
    config = dict(
        task=cfg.task, num_envs=p.num_envs, batch_size=p.batch_size,
        updates_per_step=p.updates_per_step, steps_per_epoch=p.steps_per_epoch,
        timed_epochs=p.epochs,
        ours=dict(network=dataclasses.asdict(network), warmup_env_steps=warmup),
        brax=dict(hidden_layer_sizes=hidden, q_network_layer_norm=True, min_replay_size=warmup,
                  learning_rate=cfg.brax.learning_rate,
                  normalize_observations=cfg.brax.normalize_observations),
    )
    row = dict(
        row_header("peer"), config=config,
        ours=dict(compile_s=ours["compile_s"], epoch_compile_s=ours["epoch_compile_s"],
                  steady_s=ours_steady, epoch_s=ours["epoch_s"], env_steps_per_s=ours_sps,
                  updates_per_s=ours_sps / p.num_envs * p.updates_per_step,
                  wall_s=ours["wall_s"], params=ours["params"]),
        brax=dict(compile_s=brax["compile_s"], steady_s=epoch_env_steps / brax_sps,
                  epoch_steps_per_s=[e["epoch_steps_per_s"] for e in epochs],
                  env_steps_per_s=brax_sps,
                  updates_per_s=brax_sps / p.num_envs * p.updates_per_step,
                  wall_s=brax["wall_s"], params=brax["params"]),
        update=update,
        ratio=ratio, target=cfg.peer_target,
    )
    append_row(cfg.out, row)
    print(f"peer {cfg.task} {p.num_envs} envs, batch {p.batch_size}, "
          f"{p.updates_per_step} upd/step, "
          f"width {p.width}: ours {ours_sps:.0f} env-steps/s (compile {ours['compile_s']:.1f} s), "
          f"Brax SAC {brax_sps:.0f} env-steps/s (compile {brax['compile_s']:.1f} s), ours/Brax "
          f"{ratio:.2f} (target >= {cfg.peer_target:g}) "
          f"{'MET' if ratio >= cfg.peer_target else 'MISSED'}", flush=True)
    o, b = update["ours"], update["brax"]
    print(f"  one gradient update on the same batch: ours {o['seconds'] * 1e3:.2f} ms / "
          f"{o['flops'] / 1e6:.0f} MFLOP, Brax {b['seconds'] * 1e3:.2f} ms / "
          f"{b['flops'] / 1e6:.0f} MFLOP: FLOP ratio {update['flop_ratio']:.2f}, time ratio "
          f"{update['time_ratio']:.2f} (at equal FLOP/s ours/Brax env-steps/s is about "
          f"{1 / update['flop_ratio']:.2f})", flush=True)


def _first_score(evals: list[dict], target: float) -> dict | None:
    return next((e for e in evals if e["eval_return"] >= target), None)


def measure_time_to_score(cfg: Config, clock: CompileClock) -> None:
    """Wall-clock to the target eval return, ours vs Brax SAC; one row, one summary line."""
    o, b = cfg.ours, cfg.brax
    steps_per_epoch = max(1, round(cfg.eval_every / o.num_envs))
    network = NetworkConfig(critic_width=o.critic_width, critic_depth=o.critic_depth,
                            actor_width=o.actor_width, actor_depth=o.actor_depth)
    train_cfg = ours_train_config(
        cfg.task, cfg.seed, num_envs=o.num_envs, backend=o.backend, batch_size=o.batch_size,
        updates_per_step=o.updates_per_step, network=network, learning_rate=o.learning_rate,
        steps_per_epoch=steps_per_epoch, tau=o.tau,
        total_env_steps=cfg.max_env_steps, warmup_env_steps=o.warmup_env_steps,
        eval_episodes=cfg.eval_episodes,
    )
    runs = []
    for seed in cfg.ours_seeds:
        jax.clear_caches()  # every run compiles from scratch, as a fresh process would
        result = run_ours(clock, dataclasses.replace(train_cfg, seed=seed), evaluate_every=1,
                          stop_at=cfg.target, wall_budget_s=cfg.wall_budget_s)
        hit = _first_score(result["evals"], cfg.target)
        runs.append((float("inf") if hit is None else hit["wall_s"], seed, result, hit))
        print(f"time-to-score ours (seed {seed}): {_describe(result, hit)}", flush=True)
    # Median run (the upper one of an even count); a run that does not score counts as slowest.
    _, _, ours, ours_hit = sorted(runs, key=lambda r: r[0])[len(runs) // 2]
    seeds = [dict(seed=seed, time_to_score_s=hit and hit["wall_s"],
                  env_steps_to_score=hit and hit["env_steps"], compile_s=result["compile_s"])
             for _, seed, result, hit in runs]

    jax.clear_caches()
    brax = run_brax(
        clock, cfg.task, cfg.seed, num_envs=b.num_envs, batch_size=b.batch_size,
        grad_updates_per_step=b.grad_updates_per_step, hidden_layer_sizes=b.hidden_layer_sizes,
        num_timesteps=cfg.max_env_steps, num_evals=cfg.max_env_steps // cfg.eval_every + 1,
        num_eval_envs=cfg.eval_episodes, min_replay_size=b.min_replay_size,
        learning_rate=b.learning_rate, discounting=b.discounting,
        normalize_observations=b.normalize_observations,
        q_network_layer_norm=b.q_network_layer_norm, stop_at=cfg.target,
        wall_budget_s=cfg.wall_budget_s,
    )
    brax_hit = _first_score(brax["evals"], cfg.target)
    print(f"time-to-score Brax: {_describe(brax, brax_hit)}", flush=True)

    ratio = ours_hit["wall_s"] / brax_hit["wall_s"] if ours_hit and brax_hit else None
    config = dict(
        task=cfg.task, target=cfg.target, eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes, max_env_steps=cfg.max_env_steps,
        wall_budget_s=cfg.wall_budget_s, ours=dataclasses.asdict(o),
        ours_steps_per_epoch=steps_per_epoch, brax=dataclasses.asdict(b),
    )
    row = dict(
        row_header("time_to_score"), config=config,
        ours=dict(time_to_score_s=ours_hit and ours_hit["wall_s"],
                  env_steps_to_score=ours_hit and ours_hit["env_steps"],
                  compile_s=ours["compile_s"], epoch_compile_s=ours["epoch_compile_s"],
                  train_s=ours["train_s"], eval_s=ours["eval_s"], wall_s=ours["wall_s"],
                  evals=ours["evals"], params=ours["params"], seeds=seeds),
        brax=dict(time_to_score_s=brax_hit and brax_hit["wall_s"],
                  env_steps_to_score=brax_hit and brax_hit["env_steps"],
                  compile_s=brax["compile_s"], train_s=brax["train_s"],
                  eval_s=brax["eval_s"], wall_s=brax["wall_s"], evals=brax["evals"],
                  params=brax["params"]),
        ratio=ratio, target=cfg.score_target,
    )
    append_row(cfg.out, row)
    verdict = "n/a (one side did not score)" if ratio is None else (
        f"{ratio:.2f} (target <= {cfg.score_target:g}) "
        f"{'MET' if ratio <= cfg.score_target else 'MISSED'}")
    print(f"time-to-score {cfg.task} >= {cfg.target:g}: ours (median of {len(runs)} seeds) "
          f"{_seconds(ours_hit)}, Brax SAC {_seconds(brax_hit)}, ours/Brax {verdict}", flush=True)


def _seconds(hit: dict | None) -> str:
    return "not reached" if hit is None else f"{hit['wall_s']:.1f} s ({hit['env_steps']} steps)"


def _describe(result: dict, hit: dict | None) -> str:
    best = max((e["eval_return"] for e in result["evals"]), default=float("nan"))
    return (f"{_seconds(hit)}, best return {best:.0f}; wall {result['wall_s']:.1f} s: training "
            f"epochs {result['train_s']:.1f} s, {len(result['evals'])} evals "
            f"{result['eval_s']:.1f} s, compiling {result['compile_s']:.1f} s (may overlap both)")


def main(cfg: Config) -> None:
    unknown = set(cfg.mode) - {"peer", "time_to_score"}
    if unknown:
        raise ValueError(f"unknown mode(s) {sorted(unknown)}; expected peer | time_to_score")
    if not cfg.ours_seeds:
        raise ValueError("ours_seeds must name at least one seed")
    # Import both stacks before either clock starts: a module import is paid once per process and
    # would otherwise be charged to whichever side runs first.
    import brax.training.agents.sac.train  # noqa: F401
    import mujoco_playground  # noqa: F401

    if "time_to_score" in cfg.mode and cfg.ours.backend == "envpool":
        import envpool  # noqa: F401  (not installed on GPU boxes: MJX there)

    clock = CompileClock()
    if "peer" in cfg.mode:
        measure_peer(cfg, clock)
    if "time_to_score" in cfg.mode:
        measure_time_to_score(cfg, clock)


if __name__ == "__main__":
    main(tyro.cli(Config))
