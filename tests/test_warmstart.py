"""Warm starts: exported programs round-trip (same results as the traced program, read from disk
the second time, with a flax-dataclass state), keys ignore host-only fields and addresses, and
what cannot be exported is compiled as before."""

from __future__ import annotations

import dataclasses
import os

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import tiny_config
from toy_env import ToyEnv

from brc_mjx import run as run_lib
from brc_mjx import warmstart
from brc_mjx.config import to_json


@flax.struct.dataclass
class State:
    x: jax.Array
    n: jax.Array
    tag: str = flax.struct.field(pytree_node=False, default="s")


def step(state: State, scale: jax.Array):
    y = jnp.tanh(state.x * scale) + 1.0
    return State(x=y, n=state.n + 1, tag=state.tag), {"sum": y.sum(), "n": state.n}


def test_export_round_trip_matches_the_traced_program(tmp_path):
    state = State(x=jnp.arange(6.0).reshape(2, 3), n=jnp.int32(0))
    scale = jnp.float32(0.5)
    want_state, want = jax.jit(step)(state, scale)
    fn = jax.jit(step, donate_argnums=0)
    key = warmstart.program_key("step", {"a": 1}, (state, scale))
    compiled, hit = warmstart.compile_exported(fn, (state, scale), str(tmp_path), key,
                                               donate=True, state_out=True)
    assert not hit and os.listdir(tmp_path) == [f"{key}.jaxexport"]
    got_state, got = compiled(State(x=jnp.arange(6.0).reshape(2, 3), n=jnp.int32(0)), scale)
    assert isinstance(got_state, State) and got_state.tag == "s"
    np.testing.assert_allclose(got_state.x, want_state.x)
    assert int(got_state.n) == 1 and float(got["sum"]) == pytest.approx(float(want["sum"]))
    # a second process-like build reads the export from disk and gives the same results
    again, hit = warmstart.compile_exported(fn, (state, scale), str(tmp_path), key,
                                            donate=True, state_out=True)
    assert hit
    np.testing.assert_allclose(again(State(x=jnp.arange(6.0).reshape(2, 3), n=jnp.int32(0)),
                                     scale)[0].x, want_state.x)


def test_keys_follow_the_program_not_the_host_fields():
    args = (jnp.zeros((2, 3)),)
    cfg = to_json(tiny_config("/tmp/a"))
    base = warmstart.program_key("epoch", cfg, args)
    # run directory, resume and cache settings do not change the program
    host = dict(cfg, run_dir="/tmp/b", resume=True, compile_cache_dir="/x", video_every=5,
                seed=3, total_env_steps=10**6, eval_every=7, diagnostics_every=9)
    assert warmstart.program_key("epoch", host, args) == base
    # the program does
    assert warmstart.program_key("epoch", dict(cfg, batch_size=7), args) != base
    assert warmstart.program_key("epoch", cfg, (jnp.zeros((2, 4)),)) != base
    assert warmstart.program_key("eval", cfg, args) != base


def test_host_callbacks_fall_back_to_tracing(tmp_path):
    def with_callback(x):
        return jax.experimental.io_callback(lambda v: np.asarray(v) + 1, x, x, ordered=True)

    x = jnp.ones(3, jnp.float32)
    compiled, hit = warmstart.compile_exported(jax.jit(with_callback), (x,), str(tmp_path), "k")
    assert not hit and not os.listdir(tmp_path)
    np.testing.assert_allclose(compiled(x), [2, 2, 2])


class ExportableToy(ToyEnv):
    exportable = True  # the test env opts in (registry envs are exported without it)


def test_which_envs_are_exported():
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))
    assert not warmstart.usable(ToyEnv(), mesh)  # a custom env the key cannot pin down
    assert warmstart.usable(ExportableToy(), mesh)
    wide = jax.sharding.Mesh(np.array(jax.devices()[:2]), ("data",))
    assert not warmstart.usable(ExportableToy(), wide)  # sharded programs are traced
    assert warmstart.env_identity(ExportableToy())[0].endswith("ExportableToy")


def test_second_run_reads_its_programs_from_the_exports(tmp_path):
    cfg = tiny_config(tmp_path / "a", total_env_steps=80, compile_cache=True, eval_every=40,
                      diagnostics_every=40, compile_cache_dir=str(tmp_path / "cache"))
    cfg = dataclasses.replace(cfg, env=dataclasses.replace(cfg.env, eval_episodes=1))
    first = run_lib.run(cfg, env_factory=lambda c: (ExportableToy(), None))
    exports = sorted(os.listdir(tmp_path / "cache" / "exports"))
    assert len(exports) == 2  # the epoch and diagnostics (no eval env here)
    second = run_lib.run(dataclasses.replace(cfg, run_dir=str(tmp_path / "b")),
                         env_factory=lambda c: (ExportableToy(), None))
    assert sorted(os.listdir(tmp_path / "cache" / "exports")) == exports  # nothing new
    # the same program: the same final state
    np.testing.assert_array_equal(np.asarray(first["state"].replay.size),
                                  np.asarray(second["state"].replay.size))
    for a, b in zip(jax.tree.leaves(first["state"].learner),
                    jax.tree.leaves(second["state"].learner), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow  # ~30 s; in the slow suite (CI runs it): default suite ~10 min
def test_another_seed_reuses_the_exports_and_trains_as_if_traced(tmp_path):
    """The seed only feeds program inputs: seed 1 runs seed 0's exported programs and ends
    exactly where a traced seed-1 run (no cache) ends, and not where seed 0 ended."""
    cache = str(tmp_path / "cache")
    cfg = tiny_config(tmp_path / "a", total_env_steps=80, compile_cache=True,
                      compile_cache_dir=cache)
    make = lambda c: (ExportableToy(), None)  # noqa: E731
    seed0 = run_lib.run(cfg, env_factory=make)
    exports = sorted(os.listdir(os.path.join(cache, "exports")))
    seed1 = run_lib.run(dataclasses.replace(cfg, seed=1, total_env_steps=120,
                                            run_dir=str(tmp_path / "b")), env_factory=make)
    assert sorted(os.listdir(os.path.join(cache, "exports"))) == exports  # nothing new
    traced = run_lib.run(dataclasses.replace(cfg, seed=1, total_env_steps=120,
                                             compile_cache=False, run_dir=str(tmp_path / "c")),
                         env_factory=make)
    pairs = zip(jax.tree.leaves(seed1["state"].learner), jax.tree.leaves(traced["state"].learner),
                strict=True)
    for a, b in pairs:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    critic = lambda r: np.concatenate(  # noqa: E731
        [np.ravel(x) for x in jax.tree.leaves(r["state"].learner.critic_params)])
    assert not np.array_equal(critic(seed0), critic(seed1))
