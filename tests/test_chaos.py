"""Chaos tests: ``brc-train`` run exactly as a user runs it (a subprocess), killed and resumed.

One tiny MJX run (``dmc/cartpole-balance``) goes uninterrupted to the end: the reference. Others are
SIGKILLed after their 2nd checkpoint (while the 3rd is being written, or with their newest
checkpoint corrupted afterwards) and resumed by a new process: each must end with the reference's
parameters, optimiser states, replay, env state and per-epoch training metrics, bit for bit. An
EnvPool run is killed and resumed too (its envs are reset at resume, so it is checked to continue,
not to match), and so is a population of two seeds, whose member 0 must end as the reference.

The processes share a persistent compilation cache, so only the first of each program compiles,
and independent chains of processes run side by side (2 cores).
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
# checkpoints are named by env steps per task: the 2nd and 3rd of a run, and the last
SECOND, THIRD, LAST = str(2 * PER_EPOCH), str(3 * PER_EPOCH), EPOCHS * PER_EPOCH
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

# ~2.5 min of subprocess runs: in the slow suite, which CI runs after the default one.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("xla_cache"))


def _env(cache_dir: str) -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)  # one CPU device, as a user has (conftest simulates 8)
    env.update(JAX_PLATFORMS="cpu", JAX_COMPILATION_CACHE_DIR=cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", TF_CPP_MIN_LOG_LEVEL="3")
    return env


def brc_train(cache_dir, run_dir, *extra, kill_when=None, resume=False) -> tuple[int, str]:
    """Run ``brc-train``; with ``kill_when`` (polled every ms) SIGKILL it once that holds.

    ``resume`` runs ``brc-train --resume --run-dir R`` alone, as a user resumes: the run's
    stored config holds every other setting. Returns the exit code (``-9`` when killed) and
    the output.
    """
    log = Path(f"{run_dir}.log{time.monotonic_ns()}")
    argv = (["--resume", "--run-dir", str(run_dir)] if resume
            else [*ARGS, "--run-dir", str(run_dir), *extra])
    with open(log, "w") as out:
        proc = subprocess.Popen([BRC_TRAIN, *argv],
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
    assert step == ref_step == LAST
    assert leaves.keys() == ref_leaves.keys()
    for path, ref in ref_leaves.items():
        np.testing.assert_array_equal(leaves[path], ref, err_msg=path)
    records, ref_records = _records(run_dir), _records(reference_dir)
    # every epoch logged once, with the reference's losses, returns and final eval
    assert [r["env_steps"] for r in records] == [PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    assert records == ref_records


def _in_background(fn) -> threading.Thread:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    return thread


def _newest(run_dir) -> int | None:
    return max((int(n) for n in _checkpoints(run_dir) if n.isdigit()), default=None)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, cache_dir):
    """Every run of this module, as three chains of processes on the 2 cores.

    The EnvPool chain shares no compiled program with the MJX runs and starts at once. The MJX
    reference runs first (it fills the compilation cache), then two MJX chains run side by side:
    (a)+(b) SIGKILL after the 2nd checkpoint, in the middle of writing the 3rd, then resume;
    (a)+(d) SIGKILL after the 2nd checkpoint, corrupt the newest checkpoint, then resume.
    """
    root = tmp_path_factory.mktemp("chaos")
    out = {"reference": root / "reference", "writing": root / "killed_writing",
           "corrupt": root / "killed_corrupt", "envpool": root / "envpool",
           "population": root / "population"}

    def envpool_chain():
        run_dir, pool = out["envpool"], ("--env.backend", "envpool")
        out["envpool_kill"] = brc_train(cache_dir, run_dir, *pool,
                                        kill_when=lambda: SECOND in _checkpoints(run_dir))
        out["envpool_killed_at"] = _newest(run_dir)
        out["envpool_resume"] = brc_train(cache_dir, run_dir, resume=True)

    def writing_chain():
        run_dir = out["writing"]

        def writing_third():
            return any(n.startswith(f"{THIRD}.") and "tmp" in n for n in _checkpoints(run_dir))

        out["writing_kill"] = brc_train(cache_dir, run_dir, kill_when=writing_third)
        out["writing_left"] = _checkpoints(run_dir)
        out["writing_resume"] = brc_train(cache_dir, run_dir, resume=True)

    def corrupt_chain():
        run_dir = out["corrupt"]
        out["corrupt_kill"] = brc_train(cache_dir, run_dir,
                                        kill_when=lambda: SECOND in _checkpoints(run_dir))
        newest = out["corrupt_newest"] = _newest(run_dir)
        for path in (Path(run_dir) / "checkpoints" / str(newest) / "state").rglob("*"):
            if path.is_file():
                path.write_bytes(b"garbage")
        out["corrupt_resume"] = brc_train(cache_dir, run_dir, resume=True)

    def population_chain():
        run_dir = out["population"]
        member_1 = run_dir / "member-1"
        out["population_kill"] = brc_train(
            cache_dir, run_dir, "--population.seeds", "0", "1", "--population.no-vectorize",
            kill_when=lambda: SECOND in _checkpoints(member_1))
        out["population_killed_at"] = _newest(member_1)
        out["population_resume"] = brc_train(cache_dir, run_dir, resume=True)

    threads = [_in_background(envpool_chain), _in_background(population_chain)]
    out["reference_run"] = brc_train(cache_dir, out["reference"])
    threads += [_in_background(writing_chain), _in_background(corrupt_chain)]
    for thread in threads:
        thread.join(3 * TIMEOUT_S)
    return out


def test_reference_run_completes(runs):
    code, log = runs["reference_run"]
    assert code == 0, log
    assert _newest(runs["reference"]) == LAST


def test_sigkill_mid_checkpoint_write_resumes_bit_exactly_from_the_previous_one(runs):
    """(a)+(b): killed after the 2nd checkpoint while the 3rd was being written; a new process
    resumes from the 2nd, ignoring the partial 3rd, and ends identical to the uninterrupted run."""
    code, log = runs["writing_kill"]
    assert code == -signal.SIGKILL, log
    left = runs["writing_left"]
    assert SECOND in left and THIRD not in left, left
    assert any(n.startswith(f"{THIRD}.") for n in left), left  # killed mid-write: a partial is left
    code, log = runs["writing_resume"]
    assert code == 0, log
    assert f"resumed from checkpoint {SECOND} " in log
    assert_same_run(runs["writing"], runs["reference"])
    # the partial write is removed
    assert not any(n.startswith(f"{THIRD}.") for n in _checkpoints(runs["writing"]))


def test_sigkill_then_corrupt_newest_checkpoint_falls_back_and_resumes_bit_exactly(runs):
    """(a)+(d): killed after the 2nd checkpoint, newest checkpoint's files overwritten: a resume
    says so, sets it aside, resumes from the previous one and ends identical again."""
    code, log = runs["corrupt_kill"]
    assert code == -signal.SIGKILL, log
    newest = runs["corrupt_newest"]
    assert newest is not None and 2 * PER_EPOCH <= newest < LAST
    code, log = runs["corrupt_resume"]
    assert code == 0, log
    assert f"checkpoint {newest} is unreadable" in log
    assert f"resumed from checkpoint {newest - PER_EPOCH} " in log
    assert_same_run(runs["corrupt"], runs["reference"])
    assert any(n.startswith(f"{newest}.unreadable") for n in _checkpoints(runs["corrupt"]))


def killed_then_resumed(runs, name: str) -> str:
    """The resume's output, after checking that run ``name`` was SIGKILLed and then resumed to
    its end."""
    code, log = runs[f"{name}_kill"]
    assert code == -signal.SIGKILL, log
    code, log = runs[f"{name}_resume"]
    assert code == 0, log
    return log


def test_envpool_run_resumes_with_reset_envs(runs):
    """(c) EnvPool's simulators cannot be restored: the resume resets the envs, says so, and
    continues from the checkpoint with every epoch logged once."""
    run_dir = runs["envpool"]
    log = killed_then_resumed(runs, "envpool")
    assert f"resumed from checkpoint {runs['envpool_killed_at']} " in log
    assert "EnvPool envs cannot be restored: all envs were reset" in log
    records = _records(run_dir)
    assert [r["env_steps"] for r in records] == [PER_EPOCH * (e + 1) for e in range(EPOCHS)]
    assert records[-1]["train/critic_loss"] > 0
    step, leaves = read_leaves(str(run_dir / "checkpoints"))
    assert step == LAST and int(leaves[".env_steps"]) == EPOCHS * STEPS_PER_EPOCH


def test_a_killed_population_resumes_and_its_member_is_the_single_run(runs):
    """(e) A population of seeds 0 and 1 (members mapped, so each is a single run bit for bit)
    is SIGKILLed after its members' 2nd checkpoint and resumed by ``brc-train --resume``: member 0
    ends identical to the uninterrupted single run of seed 0."""
    run_dir = runs["population"]
    log = killed_then_resumed(runs, "population")
    assert f"member-1 | resumed from checkpoint {runs['population_killed_at']} " in log
    assert_same_run(run_dir / "member-0", runs["reference"])
    with open(run_dir / "member-1" / "config.json") as f:
        assert json.load(f)["seed"] == 1
    assert _records(run_dir / "member-1") != _records(run_dir / "member-0")
