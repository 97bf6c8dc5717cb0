"""--wandb.enabled in offline mode: the run's metrics and config, read back from W&B's own file.

The file (``run-<id>.wandb``) is a LevelDB-style log of protobuf ``Record``s: a 7-byte file
header, then 32 KiB blocks of chunks, each with a 7-byte header (crc32, length, type: 1 full,
2 first, 3 middle, 4 last). The reader below is written from that format, independently of
the logger.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import struct

import pytest
from toy_env import ToyEnv

wandb = pytest.importorskip("wandb")

from test_train import tiny_config  # noqa: E402

from brc_mjx import run as run_lib  # noqa: E402
from brc_mjx.config import EnvConfig, TrainConfig, WandbConfig  # noqa: E402

BLOCK = 32 * 1024


def read_records(path: str) -> list:
    """Every protobuf ``Record`` of a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def _items(items) -> dict:
    return {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in items}


def test_offline_wandb_logs_every_metric_and_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = tiny_config(
        tmp_path / "r", env=EnvConfig(tasks=("toy",), envs_per_task=2, eval_episodes=2),
        total_env_steps=120, warmup_env_steps=40, eval_every=80, checkpoint_every=0,
        wandb=WandbConfig(enabled=True, project="p", group="g", tags=("t1",)))
    run_lib.run(cfg, env_factory=lambda c: (ToyEnv(), ToyEnv(envs_per_task=2)))

    (path,) = glob.glob(str(tmp_path / "r" / "wandb" / "offline-run-*" / "run-*.wandb"))
    records = read_records(path)
    history = [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    with open(tmp_path / "r" / "metrics.jsonl") as f:
        jsonl = [json.loads(line) for line in f]
    assert len(history) == len(jsonl) == 3  # one per epoch of 40 env steps per task
    for logged, line in zip(history, jsonl, strict=True):
        assert logged["_step"] == line["env_steps"]
        for name, value in line.items():
            if name != "env_steps":
                assert logged[name] == pytest.approx(value, rel=1e-6), name
    assert "eval/mean_return" in history[-1]
    # the config travels in the run record (and in later config records, if any)
    config = {}
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind in ("run", "config"):
            config.update(_items((r.run.config if kind == "run" else r.config).update))
    value = {k: v["value"] if isinstance(v, dict) and set(v) == {"value"} else v
             for k, v in config.items()}
    assert value["batch_size"] == 16 and value["learner"]["network"]["critic_width"] == 32
    assert value["wandb"]["group"] == "g"
    run_id = open(tmp_path / "r" / "wandb_id").read().strip()
    assert os.path.basename(path) == f"run-{run_id}.wandb"

    # a resumed run continues the same W&B run
    run_lib.run(dataclasses.replace(cfg, resume=True, total_env_steps=160),
                env_factory=lambda c: (ToyEnv(), ToyEnv(envs_per_task=2)))
    assert open(tmp_path / "r" / "wandb_id").read().strip() == run_id
    paths = glob.glob(str(tmp_path / "r" / "wandb" / "offline-run-*" / f"run-{run_id}.wandb"))
    assert len(paths) == 2


def test_wandb_without_the_package_is_one_line(monkeypatch):
    import importlib.util

    from brc_mjx import train

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(ValueError, match=r"--wandb.enabled needs the wandb package: pip install"):
        train.validate(TrainConfig(wandb=WandbConfig(enabled=True)))
