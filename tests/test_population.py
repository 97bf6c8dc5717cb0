"""Populations (``--population.*``): members of one compiled program are the single runs of
their seeds and settings, each in a run directory of its own.

The references are single runs made by the ordinary loop (``run.run`` without a population):
a member must reproduce one bit for bit when the members are mapped (``vectorize=False``), and
to float32 rounding when they are batched (``vmap``).
"""

from __future__ import annotations

import dataclasses
import json
import os

import jax
import numpy as np
import pytest
from test_train import tiny_config
from toy_env import ToyEnv

from brc_mjx import run as run_lib
from brc_mjx import rundir
from brc_mjx.analysis.report import analyze
from brc_mjx.config import EnvConfig, LearnerConfig, NetworkConfig, PopulationConfig


def factory(cfg):
    return ToyEnv(), ToyEnv(envs_per_task=4)


def config(run_dir, population=None, **overrides):
    # 5 epochs of 40 env steps per task: one of warm-up, four that learn; eval and a
    # checkpoint after every other epoch and at the end
    return tiny_config(run_dir, total_env_steps=200, eval_every=80, checkpoint_every=80,
                       population=population or PopulationConfig(), **overrides)


def records(run_dir) -> list[dict]:
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("perf/")}
                for line in f]


def leaves(tree) -> list[np.ndarray]:
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def member_leaves(states, group: int, index: int) -> list[np.ndarray]:
    state = states[group]
    return [np.asarray(x) if name == "env_steps" else np.asarray(x)[index]
            for name in ("learner", "replay", "env", "key", "env_steps")
            for x in jax.tree.leaves(getattr(state, name))]


def single_leaves(state) -> list[np.ndarray]:
    return [np.asarray(x) for name in ("learner", "replay", "env", "key", "env_steps")
            for x in jax.tree.leaves(getattr(state, name))]


@pytest.fixture(scope="module")
def singles(tmp_path_factory):
    """Single runs: (seed 0, tau 0.005) and (seed 3, tau 0.02)."""
    root = tmp_path_factory.mktemp("singles")
    out = {}
    for seed, tau in ((0, 0.005), (3, 0.02)):
        cfg = config(root / f"s{seed}-tau{tau}", seed=seed,
                     learner=LearnerConfig(network=NetworkConfig(critic_width=32, actor_width=32),
                                           tau=tau))
        out[seed, tau] = (run_lib.run(cfg, env_factory=factory)["state"], cfg.run_dir)
    return out


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """Seeds 0 and 3 x tau 0.005 and 0.02, members mapped: four members, two settings."""
    cfg = config(tmp_path_factory.mktemp("mapped") / "pop", PopulationConfig(
        seeds=(0, 3), sweep=("learner.tau=0.005,0.02",), vectorize=False))
    return run_lib.run(cfg, env_factory=factory), cfg.run_dir


@pytest.fixture(scope="module")
def batched(tmp_path_factory):
    """Seeds 0 and 3, members batched (vmap), never interrupted."""
    cfg = config(tmp_path_factory.mktemp("batched") / "pop", PopulationConfig(seeds=(0, 3)))
    return run_lib.run(cfg, env_factory=factory), cfg.run_dir


def test_mapped_members_are_their_single_runs_bit_for_bit(singles, mapped):
    result, pop_dir = mapped
    # members setting-major: (tau 0.005: seeds 0, 3), (tau 0.02: seeds 0, 3)
    for member, (group, index), (seed, tau) in ((0, (0, 0), (0, 0.005)), (3, (1, 1), (3, 0.02))):
        state, single_dir = singles[seed, tau]
        got, want = member_leaves(result["states"], group, index), single_leaves(state)
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)
        member_dir = os.path.join(pop_dir, f"member-{member}")
        assert records(member_dir) == records(single_dir)
        with open(os.path.join(member_dir, "config.json")) as f:
            member_cfg = json.load(f)
        with open(os.path.join(single_dir, "config.json")) as f:
            single_cfg = json.load(f)
        assert member_cfg.pop("run_dir") != single_cfg.pop("run_dir")
        assert member_cfg == single_cfg  # a member's config is a single run's: no population
        assert rundir.checkpoint_steps(member_dir) == [80, 160, 200]
        assert os.path.exists(os.path.join(member_dir, "curves.png"))


def test_batched_members_match_single_runs_to_float32_rounding(singles, batched):
    result, pop_dir = batched
    state, single_dir = singles[0, 0.005]
    got, want = records(os.path.join(pop_dir, "member-0")), records(single_dir)
    assert [r["env_steps"] for r in got] == [r["env_steps"] for r in want]
    assert got[0] == want[0]  # the warm-up epoch: the same envs, keys and replay writes
    for a, b in zip(got[1:], want[1:], strict=True):
        assert a.keys() == b.keys()
        for key in b:  # batched reductions sum in another order: ~1e-6 apart after 4 epochs
            np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5, err_msg=key)
    for a, b in zip(member_leaves(result["states"], 0, 0), single_leaves(state), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_a_population_resumes_at_the_checkpoint_every_member_has(tmp_path, batched):
    full, full_dir = batched
    cfg = config(tmp_path / "pop", PopulationConfig(seeds=(0, 3)))
    run_lib.run(cfg, env_factory=factory, max_epochs=4)  # "killed" after epoch 4
    assert rundir.checkpoint_steps(cfg.run_dir + "/member-0") == [80, 160]
    # killed between two members' writes: member 1 never wrote its checkpoint 160
    import shutil

    shutil.rmtree(os.path.join(cfg.run_dir, "member-1", "checkpoints", "160"))
    resumed = run_lib.run(dataclasses.replace(cfg, resume=True), env_factory=factory)
    aside = [n for n in os.listdir(os.path.join(cfg.run_dir, "member-0", "checkpoints"))
             if n.startswith("160.ahead-")]
    assert len(aside) == 1  # member 0's newer checkpoint set aside, not deleted
    for group in range(1):
        for index in range(2):
            for a, b in zip(member_leaves(resumed["states"], group, index),
                            member_leaves(full["states"], group, index), strict=True):
                np.testing.assert_array_equal(a, b)
    for member in ("member-0", "member-1"):
        got = records(os.path.join(cfg.run_dir, member))
        assert [r["env_steps"] for r in got] == [40, 80, 120, 160, 200]  # each step once
        assert got == records(os.path.join(full_dir, member))


def test_brc_analyze_reads_a_population_as_its_members(tmp_path, mapped):
    _, pop_dir = mapped
    assert rundir.with_members([pop_dir]) == [os.path.join(pop_dir, f"member-{k}")
                                              for k in range(4)]
    analyze([pop_dir], out=str(tmp_path))
    text = (tmp_path / "analysis.md").read_text()
    assert "| tau=0.005 | 2 |" in text and "| tau=0.02 | 2 |" in text  # grouped by seed
    for k in range(4):
        assert f"member-{k}" in text


def test_a_member_is_a_source_for_init_from(tmp_path, mapped):
    _, pop_dir = mapped
    cfg = config(tmp_path / "warm", init_from=os.path.join(pop_dir, "member-1"))
    result = run_lib.run(cfg, env_factory=factory, max_epochs=1)
    assert result["epochs_done"] == 1


@pytest.mark.parametrize("population, overrides, message", [
    (PopulationConfig(sweep=("learner.network.critic_width=32,64",)), {},
     "learner.network.critic_width cannot vary within a population"),
    (PopulationConfig(sweep=("learner.tau=0.005,fast",)), {},
     "learner.tau takes float values, got 'fast'"),
    (PopulationConfig(sweep=("learner.tau",)), {}, "is not field=value1,value2"),
    (PopulationConfig(seeds=(0, 1), size=2), {}, "give seeds ([0, 1]) or size (2), not both"),
    (PopulationConfig(seeds=(1, 1)), {}, "population.seeds repeats a seed: [1, 1]"),
    (PopulationConfig(size=2), {"env": EnvConfig(tasks=("toy",), backend="envpool")},
     "env.backend envpool steps its pools on the host"),
])
def test_a_population_that_cannot_run_fails_in_one_line_before_anything(
        tmp_path, population, overrides, message):
    cfg = config(tmp_path / "pop", population, **overrides)
    with pytest.raises(ValueError) as err:
        run_lib.run(cfg, env_factory=factory)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not os.path.exists(cfg.run_dir)


def test_the_seeds_of_one_setting_share_a_wandb_group(tmp_path):
    from brc_mjx import population
    from brc_mjx.config import WandbConfig

    cfg = config(tmp_path / "pop",
                 PopulationConfig(seeds=(0, 1), sweep=("learner.tau=0.005,0.02",)),
                 wandb=WandbConfig(enabled=True))
    groups = [m.cfg.wandb.group for m in population.members(cfg)]
    assert groups == ["pop learner.tau=0.005"] * 2 + ["pop learner.tau=0.02"] * 2
    named = dataclasses.replace(cfg, wandb=WandbConfig(enabled=True, group="mine"),
                                population=PopulationConfig(seeds=(0, 1)))
    assert [m.cfg.wandb.group for m in population.members(named)] == ["mine", "mine"]
    off = dataclasses.replace(cfg, wandb=WandbConfig())  # W&B off: a member's config is a
    assert {m.cfg.wandb.group for m in population.members(off)} == {""}  # single run's
