"""Two processes on this machine joined by jax.distributed (gloo CPU collectives): the loop runs
over a 2-device global mesh, both processes end with the same parameters, only process 0 logs."""

import json
import os
import socket
import subprocess
import sys

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # ~27 s; in the slow suite (CI runs it): default suite ~10 min
def test_two_process_run_agrees_and_only_process_0_logs(tmp_path):
    port = _free_port()
    worker = os.path.join(os.path.dirname(__file__), "multihost_worker.py")
    procs = []
    for pid in range(2):
        env = dict(os.environ, COORDINATOR_ADDRESS=f"127.0.0.1:{port}", NUM_PROCESSES="2",
                   PROCESS_ID=str(pid))
        procs.append(subprocess.Popen([sys.executable, worker, str(tmp_path / "run")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outs = [p.communicate(timeout=240)[0] for p in procs]
    results = []
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
        results.append(json.loads(out.split("RESULT ")[-1].splitlines()[0]))
    assert [r["process"] for r in results] == [0, 1]
    assert all(r["processes"] == 2 and r["devices"] == 2 for r in results)
    assert results[0]["actor_sum"] == results[1]["actor_sum"]
    assert results[0]["critic_loss"] == results[1]["critic_loss"]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 4  # 160 transitions per task / 40 per epoch, written by process 0 only
    assert "steps/task" in outs[0] and "steps/task" not in outs[1]
