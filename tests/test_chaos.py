"""Chaos tests: ``brc-train`` run exactly as a user runs it (a subprocess), killed and resumed.

One tiny MJX run (``dmc/cartpole-balance``) goes uninterrupted to the end: the reference. Others are
SIGKILLed after their 2nd checkpoint while the 3rd is being written, or have their newest
checkpoint corrupted, and are resumed by a new process: each must end with the reference's
parameters, optimiser states, replay, env state and per-epoch training metrics, bit for bit. An
EnvPool run is killed and resumed too (its envs are reset at resume, so it is checked to continue,
not to match).

The processes share a persistent compilation cache, so only the first of each program compiles,
and the EnvPool runs overlap the MJX ones (2 cores).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from brc_mjx.checkpoint import read_leaves

BRC_TRAIN = str(Path(sys.executable).with_name("brc-train"))
EPOCHS = 6
STEPS_PER_EPOCH = 25
ENVS_PER_TASK = 2
PER_EPOCH = STEPS_PER_EPOCH * ENVS_PER_TASK  # env steps per task per epoch
ARGS = [
    "--env.tasks", "dmc/cartpole-balance", "--env.envs-per-task", str(ENVS_PER_TASK),
    "--env.eval-episodes", "0", "--learner.network.critic-width", "32",
    "--learner.network.actor-width", "32", "--batch-size", "32", "--warmup-env-steps", "50",
    "--steps-per-epoch", str(STEPS_PER_EPOCH), "--total-env-steps", str(EPOCHS * PER_EPOCH),
    "--checkpoint-every", str(PER_EPOCH), "--keep-checkpoints", "3", "--mesh.data", "1",
    # ~10 MB of replay, so that a checkpoint write lasts long enough to be killed in.
    "--replay.capacity-per-task", "200000",
]
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("xla_cache"))


def _env(cache_dir: str) -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # one CPU device, as a user has (conftest simulates 8)
    env.update(JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", TF_CPP_MIN_LOG_LEVEL="3")
    return env


def brc_train(cache_dir, run_dir, *extra, kill_when=None) -> tuple[int, str]:
    """Run ``brc-train``; with ``kill_when`` (polled every ms) SIGKILL it once that holds.

    Returns the exit code (``-9`` when killed) and the output.
    """
    log = Path(f"{run_dir}.log{time.monotonic_ns()}")
    with open(log, "w") as out:
        proc = subprocess.Popen([BRC_TRAIN, *ARGS, "--run-dir", str(run_dir), *extra],
                                stdout=out, stderr=subprocess.STDOUT, env=_env(cache_dir))
        start = time.monotonic()
        while proc.poll() is None and time.monotonic() - start < TIMEOUT_S:
            if kill_when is not None and kill_when():
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.001)
        code = proc.wait(timeout=TIMEOUT_S)
    return code, log.read_text()


def _checkpoints(run_dir) -> list[str]:
    directory = Path(run_dir) / "checkpoints"
    return sorted(os.listdir(directory)) if directory.is_dir() else []


def _records(run_dir) -> list[dict]:
    """Every ``metrics.jsonl`` record without its timings (``perf/``)."""
    with open(Path(run_dir) / "metrics.jsonl") as f:
        return [{k: v for k, v in json.loads(line).items() if not k.startswith("perf/")}
                for line in f]


def assert_same_run(run_dir, reference_dir):
    step, leaves = read_leaves(str(Path(run_dir) / "checkpoints"))
    ref_step, ref_leaves = read_leaves(str(Path(reference_dir) / "checkpoints"))
    assert step == ref_step == EPOCHS
    assert leaves.keys() == ref_leaves.keys()
    for path, ref in ref_leaves.items():
        np.testing.assert_array_equal(leaves[path], ref, err_msg=path)
    records, ref_records = _records(run_dir), _records(reference_dir)
    # every epoch logged once, with the reference's losses, returns and final eval
    assert [r["env_steps"] for r in records] == [PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    assert records == ref_records


@pytest.fixture(scope="module")
def envpool_chain(tmp_path_factory, cache_dir):
    """The EnvPool run (killed after its 2nd checkpoint, then resumed), started in the background:
    it shares no compiled program with the MJX runs, so it overlaps them on the second core."""
    run_dir = tmp_path_factory.mktemp("chaos_envpool") / "envpool"
    results = []

    def chain():
        results.append(brc_train(cache_dir, run_dir, "--env.backend", "envpool",
                                 kill_when=lambda: "2" in _checkpoints(run_dir)))
        done = [int(n) for n in _checkpoints(run_dir) if n.isdigit()]
        results.append(max(done, default=None))
        results.append(brc_train(cache_dir, run_dir, "--env.backend", "envpool", "--resume"))

    thread = threading.Thread(target=chain, daemon=True)
    thread.start()
    yield run_dir, thread, results
    thread.join(TIMEOUT_S)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir, envpool_chain):
    run_dir = tmp_path_factory.mktemp("chaos") / "reference"
    code, out = brc_train(cache_dir, run_dir)
    assert code == 0, out
    return run_dir


def test_sigkill_mid_checkpoint_write_resumes_bit_exactly_and_falls_back_from_corruption(
        tmp_path, cache_dir, reference):
    """(a) SIGKILL after the 2nd checkpoint, (b) in the middle of writing the 3rd: a new process
    resumes from the 2nd, ignoring the partial one, and ends identical to the uninterrupted run.
    (d) The newest checkpoint's files corrupted: a resume falls back to the previous one."""
    run_dir = tmp_path / "killed"

    def writing_third():
        return any(name.startswith("3.") and "tmp" in name for name in _checkpoints(run_dir))

    code, out = brc_train(cache_dir, run_dir, kill_when=writing_third)
    assert code == -signal.SIGKILL, out
    names = _checkpoints(run_dir)
    assert "2" in names and "3" not in names, names
    assert any(n.startswith("3.") for n in names), names  # killed mid-write: a partial is left

    code, out = brc_train(cache_dir, run_dir, "--resume")
    assert code == 0, out
    assert "resumed from checkpoint 2 " in out
    assert_same_run(run_dir, reference)

    newest = Path(run_dir) / "checkpoints" / str(EPOCHS) / "state"
    for path in newest.rglob("*"):
        if path.is_file():
            path.write_bytes(b"garbage")
    code, out = brc_train(cache_dir, run_dir, "--resume")
    assert code == 0, out
    assert f"checkpoint {EPOCHS} is unreadable" in out
    assert f"resumed from checkpoint {EPOCHS - 1} " in out
    assert_same_run(run_dir, reference)  # the last epoch redone, written as a new checkpoint
    assert any(n.startswith(f"{EPOCHS}.unreadable") for n in _checkpoints(run_dir))


def test_envpool_run_resumes_with_reset_envs(envpool_chain):
    """(c) EnvPool's simulators cannot be restored: the resume resets the envs, says so, and
    continues from the checkpoint with every epoch logged once."""
    run_dir, thread, results = envpool_chain
    thread.join(TIMEOUT_S)
    (code, out), done, (resumed_code, resumed_out) = results
    assert code == -signal.SIGKILL, out
    assert resumed_code == 0, resumed_out
    assert f"resumed from checkpoint {done} " in resumed_out
    assert "EnvPool envs cannot be restored: all envs were reset" in resumed_out
    records = _records(run_dir)
    assert [r["env_steps"] for r in records] == [PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    assert records[-1]["train/critic_loss"] > 0
    step, leaves = read_leaves(str(run_dir / "checkpoints"))
    assert step == EPOCHS and int(leaves[".env_steps"]) == EPOCHS * STEPS_PER_EPOCH
