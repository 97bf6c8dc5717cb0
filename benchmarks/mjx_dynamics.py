"""What the learner sees on MJX, one transition at a time (parity difference 4): from the same
state and action, how far the next state and the reward of a control step are from dm_control's.

States come from a dm_control rollout under uniform random actions (the physics EnvPool runs
and the official BRC code trains on: MuJoCo's C solver, float64, 100 / 50 iterations). Each
state, with its action and the solver's warm start, is stepped one control step by

- ``c-port-solver``: dm_control's physics with Playground's solver settings (float64): what the
  settings alone change;
- ``c-port-iterations``: the same with only Playground's solver and line-search iterations
  (Euler damping stays on, as in dm_control): the iterations' share;
- ``mjx-port``: our MJX env as it trains (``--env.mjx-solver port``, float32);
- ``mjx-eulerdamp``: the same with Euler damping turned back on (``--env.mjx-solver eulerdamp``);
- ``mjx-mujoco``: our MJX env with MuJoCo's solver defaults (``--env.mjx-solver mujoco``);

and compared with dm_control's own step. Per variant: the velocity error as a fraction of the
step's velocity change (``|v' - v'_ref| / |v'_ref - v|``, median and 90th percentile over
states), and the mean absolute reward error (rewards are in [0, 1] per step).

    python -m benchmarks.mjx_dynamics                       # cheetah-run, walker-walk, hopper-stand
    python -m benchmarks.mjx_dynamics --tasks dmc/cheetah-run --states 50

Rows go to ``benchmarks/results/mjx_dynamics.jsonl``.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import tyro

from benchmarks.common import RESULTS_DIR, append_row, row_header

VARIANTS = ("c-port-solver", "c-port-iterations", "mjx-port", "mjx-eulerdamp", "mjx-mujoco")


@dataclasses.dataclass(frozen=True)
class Config:
    tasks: tuple[str, ...] = ("dmc/cheetah-run", "dmc/walker-walk", "dmc/hopper-stand")
    states: int = 300
    """Consecutive states of one random-action rollout (the first 20 steps after reset are
    skipped)."""
    seed: int = 0
    record: bool = True


@dataclasses.dataclass(frozen=True)
class Transitions:
    """dm_control's own steps: states, actions, warm starts, and what each step reached."""

    qpos: np.ndarray
    qvel: np.ndarray
    warmstart: np.ndarray
    action: np.ndarray
    next_qvel: np.ndarray
    reward: np.ndarray
    contacts: np.ndarray  # (states,) contacts in the state before the step


def dm_control_transitions(task: str, states: int, seed: int) -> tuple[Transitions, object]:
    from dm_control import suite

    domain, name = task.split("/")[1].split("-")
    env = suite.load(domain, name, task_kwargs={"random": seed})
    env.reset()
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {f.name: [] for f in dataclasses.fields(Transitions)}
    for t in range(20 + states):
        action = rng.uniform(-1, 1, env.action_spec().shape)
        data = env.physics.data
        before = (data.qpos.copy(), data.qvel.copy(), data.qacc_warmstart.copy(), data.ncon)
        step = env.step(action)
        if t < 20:
            continue
        for key, value in zip(("qpos", "qvel", "warmstart", "contacts"), before, strict=True):
            rows[key].append(value)
        rows["action"].append(action)
        rows["next_qvel"].append(env.physics.data.qvel.copy())
        rows["reward"].append(step.reward)
    return Transitions(**{k: np.asarray(v) for k, v in rows.items()}), env


def c_step(env, tr: Transitions, solver_of, fields: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """One control step of dm_control's physics from each state, with the solver settings
    ``fields`` taken from the MuJoCo model ``solver_of`` (the rest stay dm_control's)."""
    physics, opt = env.physics, env.physics.model.opt
    default = {field: getattr(opt, field) for field in fields}
    for field in fields:
        setattr(opt, field, getattr(solver_of.opt, field))
    n_sub = int(round(env.control_timestep() / opt.timestep))
    qvel, reward = [], []
    for i in range(len(tr.action)):
        with physics.reset_context():
            physics.data.qpos[:], physics.data.qvel[:] = tr.qpos[i], tr.qvel[i]
        physics.data.qacc_warmstart[:] = tr.warmstart[i]
        physics.set_control(tr.action[i])
        physics.step(n_sub)
        qvel.append(physics.data.qvel.copy())
        reward.append(env.task.get_reward(physics))
    for field, value in default.items():
        setattr(opt, field, value)
    return np.asarray(qvel), np.asarray(reward)


def mjx_step(env, tr: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """One control step of an MJX env (ours, as it trains) from each state."""
    template = jax.jit(env.reset)(jax.random.key(0))

    def one(qpos, qvel, warmstart, action):
        data = template.data.replace(qpos=qpos, qvel=qvel, qacc_warmstart=warmstart)
        state = env.step(template.replace(data=data), action)
        return state.data.qvel, state.reward

    f32 = lambda x: np.asarray(x, np.float32)  # noqa: E731
    qvel, reward = jax.jit(jax.vmap(one))(f32(tr.qpos), f32(tr.qvel), f32(tr.warmstart),
                                          f32(tr.action))
    return np.asarray(qvel, np.float64), np.asarray(reward, np.float64)


def errors(tr: Transitions, qvel: np.ndarray, reward: np.ndarray) -> dict:
    change = np.linalg.norm(tr.next_qvel - tr.qvel, axis=-1)
    rel = np.linalg.norm(qvel - tr.next_qvel, axis=-1) / np.maximum(change, 1e-9)
    return dict(velocity_error_median=float(np.median(rel)),
                velocity_error_p90=float(np.quantile(rel, 0.9)),
                reward_abs_error=float(np.mean(np.abs(reward - tr.reward))))


def main(cfg: Config) -> list[dict]:
    import envs
    from envs.mjx_backend import load_mjx

    rows = []
    for task in cfg.tasks:
        tr, env = dm_control_transitions(task, cfg.states, cfg.seed)
        port, eulerdamp, mujoco = (load_mjx(envs.get_task(task), solver=s)
                                   for s in ("port", "eulerdamp", "mujoco"))
        iterations = ("iterations", "ls_iterations")
        results = dict(zip(VARIANTS, (c_step(env, tr, port.mj_model, (*iterations, "disableflags")),
                                      c_step(env, tr, port.mj_model, iterations),
                                      mjx_step(port, tr), mjx_step(eulerdamp, tr),
                                      mjx_step(mujoco, tr)), strict=True))
        for variant, (qvel, reward) in results.items():
            row = dict(row_header("mjx_dynamics"), task=task, variant=variant, states=cfg.states,
                       seed=cfg.seed, states_with_contact=float(np.mean(tr.contacts > 0)),
                       mean_reward=float(tr.reward.mean()), **errors(tr, qvel, reward))
            rows.append(row)
            print(f"{task} {variant:>13}: velocity error {row['velocity_error_median']:.3f} "
                  f"median, {row['velocity_error_p90']:.3f} p90 of the step's change; reward "
                  f"error {row['reward_abs_error']:.4f} (mean reward {row['mean_reward']:.3f})",
                  flush=True)
            if cfg.record:
                append_row(RESULTS_DIR / "mjx_dynamics.jsonl", row)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Config))
