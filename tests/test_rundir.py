"""Run-directory rules and checkpoint structure checks on hand-made dirs, configs and states."""

from __future__ import annotations

import dataclasses
import json
import os

import jax.numpy as jnp
import pytest

from brc_mjx import checkpoint, rundir
from brc_mjx.config import TrainConfig, diff_fields, resumable, to_json
from brc_mjx.logger import truncate_records


def _cfg(run_dir, **changes) -> TrainConfig:
    return dataclasses.replace(TrainConfig(run_dir=str(run_dir)), **changes)


def _fake_run(run_dir, cfg, steps=(1, 2)):
    """A run directory as a run leaves it: config.json and finished checkpoint directories."""
    os.makedirs(run_dir / "checkpoints", exist_ok=True)
    (run_dir / "config.json").write_text(json.dumps(to_json(cfg)))
    for step in steps:
        os.makedirs(run_dir / "checkpoints" / str(step))
    os.makedirs(run_dir / "checkpoints" / "3.orbax-checkpoint-tmp")  # a killed write: not a step


def test_diff_fields_and_resumable():
    old = {"seed": 0, "total_env_steps": 10, "env": {"tasks": ["a"], "eval_episodes": 4},
           "mesh": {"data": -1}}
    new = {"seed": 0, "total_env_steps": 20, "env": {"tasks": ["a", "b"], "eval_episodes": 4},
           "mesh": {"data": 2}, "added": 1}
    assert diff_fields(old, new) == [("total_env_steps", 10, 20), ("env.tasks", ["a"], ["a", "b"]),
                                     ("mesh.data", -1, 2), ("added", None, 1)]
    assert resumable("total_env_steps") and resumable("mesh.data") and resumable("mesh.fsdp")
    assert not resumable("env.tasks") and not resumable("seed") and not resumable("total")


def test_checkpoint_steps_ignore_partial_writes(tmp_path):
    _fake_run(tmp_path, _cfg(tmp_path), steps=(2, 10))
    assert rundir.checkpoint_steps(str(tmp_path)) == [2, 10]
    assert rundir.checkpoint_steps(str(tmp_path / "nothing")) == []


def test_resume_needs_a_checkpoint_or_the_explicit_flag(tmp_path):
    cfg = _cfg(tmp_path / "empty", resume=True)
    with pytest.raises(rundir.RunDirError, match=r"--resume: .*empty holds no checkpoint"):
        rundir.prepare(cfg)
    cfg2, restore, messages = rundir.prepare(dataclasses.replace(cfg, start_if_no_checkpoint=True))
    assert cfg2 == dataclasses.replace(cfg, start_if_no_checkpoint=True) and not restore
    assert messages == [f"{cfg.run_dir} holds no checkpoint: starting a fresh run there"]


def test_resume_lists_allowed_changes_and_refuses_others(tmp_path):
    stored = _cfg(tmp_path)
    _fake_run(tmp_path, stored)
    longer = dataclasses.replace(stored, resume=True, total_env_steps=200_000, eval_every=5_000)
    cfg, restore, messages = rundir.prepare(longer)
    assert restore and cfg == longer
    assert messages == ["resuming with changed settings: total_env_steps 100000 -> 200000, "
                        "eval_every 10000 -> 5000"]
    other = dataclasses.replace(stored, resume=True, seed=3, batch_size=512)
    with pytest.raises(rundir.RunDirError) as err:
        rundir.prepare(other)
    assert str(err.value) == (
        f"--resume: the config differs from {tmp_path}/config.json in fields a resumed run cannot "
        "change: batch_size (256 -> 512), seed (0 -> 3) (start a new run for that)")


def test_a_new_run_never_writes_into_an_existing_run(tmp_path):
    base = tmp_path / "run"
    _fake_run(base, _cfg(base))
    os.makedirs(tmp_path / "run-2")
    (tmp_path / "run-2" / "config.json").write_text("{}")
    cfg, restore, messages = rundir.prepare(_cfg(base))
    assert cfg.run_dir == f"{base}-3" and not restore and os.path.isdir(cfg.run_dir)
    assert messages == [f"{base} already holds a run (--resume continues it); this one writes to "
                        f"{base}-3"]
    with pytest.raises(rundir.RunDirError, match="already holds a run: pass --resume"):
        rundir.prepare(_cfg(base, distributed=True))


def test_unwritable_run_dir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(rundir.RunDirError) as err:
        rundir.prepare(_cfg(tmp_path / "file" / "run"))
    assert str(err.value) == f"run_dir '{tmp_path}/file/run' is not writable: Not a directory"


def test_truncate_records_keeps_steps_up_to_the_checkpoint_and_drops_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"env_steps": 100, "a": 1}\n{"env_steps": 200, "a": 2}\n'
                    '{"env_steps": 300, "a": 3}\n{"env_steps": 40')
    truncate_records(str(path), 200)
    assert path.read_text() == '{"env_steps": 100, "a": 1}\n{"env_steps": 200, "a": 2}\n'


def test_checkpoint_mismatch_names_the_leaf_its_shapes_and_the_config_fields(tmp_path):
    manager = checkpoint.make_manager(str(tmp_path), keep=2)
    saved = {"learner": {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}, "n": jnp.zeros((), jnp.int32)}
    checkpoint.save(manager, 4, saved, {"width": 3, "seed": 0})
    wider = {"learner": {"w": jnp.zeros((2, 5)), "b": jnp.zeros(5)}, "n": jnp.zeros((), jnp.int32)}
    with pytest.raises(checkpoint.StructureMismatch) as err:
        checkpoint.restore_latest(manager, wider, {"width": 5, "seed": 0})
    # leaves are matched in the pytree's (sorted-key) order: 'b' comes first
    assert str(err.value) == (
        "checkpoint 4 does not fit this run: ['learner']['b'] is (3,) float32 in the checkpoint, "
        "(5,) float32 in this run; config fields that differ from the checkpoint's: width (3 -> 5)")
    extra = {**saved, "new": jnp.zeros(2)}
    with pytest.raises(checkpoint.StructureMismatch, match=r"has no leaf \['new'\]"):
        checkpoint.restore_latest(manager, extra)
    fewer = {"learner": saved["learner"]}
    with pytest.raises(checkpoint.StructureMismatch, match=r"leaf this run does not have: \['n'\]"):
        checkpoint.restore_latest(manager, fewer)


def test_read_leaves_by_path(tmp_path, caplog):
    manager = checkpoint.make_manager(str(tmp_path), keep=2)
    checkpoint.save(manager, 1, {"a": jnp.arange(3.0), "e": jnp.zeros((0, 2))})
    checkpoint.save(manager, 2, {"a": jnp.arange(3.0) + 1, "e": jnp.zeros((0, 2))})
    caplog.clear()
    step, leaves = checkpoint.read_leaves(str(tmp_path))
    assert not [r for r in caplog.records if "read only" in r.getMessage()
                or "read_only" in r.getMessage()]  # orbax's warnings about read-only reads
    assert step == 2 and list(leaves) == ["['a']"]
    assert leaves["['a']"].tolist() == [1.0, 2.0, 3.0]
    assert checkpoint.read_leaves(str(tmp_path), 1)[1]["['a']"].tolist() == [0.0, 1.0, 2.0]


def test_cli_resume_without_checkpoint_fails_in_one_line(tmp_path, capsys):
    from brc_mjx.cli import train_main

    assert train_main(["--resume", "--run-dir", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"brc-train: error: --resume: {tmp_path}/none holds no checkpoint to resume "
                   "(pass --start-if-no-checkpoint to start a fresh run there instead)"]


def test_resume_with_only_the_run_dir_takes_the_stored_config(tmp_path):
    """``brc-train --resume --run-dir R`` continues R as configured (not as the default preset
    is); a flag given with it overrides the stored value, which prepare() then checks."""
    from brc_mjx.cli import parse_train_args
    from brc_mjx.config import EnvConfig

    run_dir = tmp_path / "r1"
    stored = _cfg(run_dir, env=EnvConfig(tasks=("dmc/walker-walk", "dmc/hopper-stand"),
                                         envs_per_task=3), batch_size=64, total_env_steps=12_000)
    _fake_run(run_dir, stored)
    cfg = parse_train_args(["--resume", "--run-dir", str(run_dir)])
    assert cfg == dataclasses.replace(stored, resume=True)
    cfg = parse_train_args(["--resume", f"--run-dir={run_dir}", "--total-env-steps", "20000"])
    assert cfg == dataclasses.replace(stored, resume=True, total_env_steps=20_000)
    assert rundir.resume_changes(to_json(stored), cfg) == ["total_env_steps 12000 -> 20000"]
    # a changed shape is refused by the rules of a resume, naming the field
    cfg = parse_train_args(["--resume", "--run-dir", str(run_dir), "--batch-size", "128"])
    with pytest.raises(rundir.RunDirError, match=r"batch_size \(64 -> 128\)"):
        rundir.prepare(cfg)
    # with a preset name the preset is the default, as for a new run
    cfg = parse_train_args(["cpu-default", "--resume", "--run-dir", str(run_dir)])
    assert cfg.env.tasks == ("dmc-easy",)


def test_config_json_round_trips_every_preset():
    from brc_mjx.config import from_json
    from configs.train import TRAIN_PRESETS

    for name, (_, cfg) in TRAIN_PRESETS.items():
        assert from_json(TrainConfig, json.loads(json.dumps(to_json(cfg)))) == cfg, name
    stored = to_json(TrainConfig())
    del stored["learner"]["tau"]  # written by an older version: the default fills it
    assert from_json(TrainConfig, stored).learner.tau == TrainConfig().learner.tau
    with pytest.raises(ValueError, match="has no field"):
        from_json(TrainConfig, {**to_json(TrainConfig()), "bogus": 1})


def test_unknown_preset_is_one_line_with_close_matches():
    from brc_mjx.cli import parse_train_args

    with pytest.raises(SystemExit) as exc:
        parse_train_args(["dmc-hrd-64m", "--batch-size", "8"])
    assert str(exc.value).startswith("brc-train: error: unknown preset 'dmc-hrd-64m'; did you "
                                     "mean dmc-hard-64m")
    assert "\n" not in str(exc.value)


def test_a_run_refused_at_set_up_leaves_no_directory(tmp_path, capsys):
    from brc_mjx.cli import train_main

    run_dir = tmp_path / "r"
    assert train_main(["--env.tasks", "dmc/nonexist", "--run-dir", str(run_dir)]) == 1
    assert "unknown task or suite 'dmc/nonexist'" in capsys.readouterr().err
    assert not run_dir.exists()
    # a directory that holds files is never removed
    (run_dir / "keep").mkdir(parents=True)
    (run_dir / "keep" / "notes.txt").write_text("mine")
    assert train_main(["--env.tasks", "dmc/nonexist", "--run-dir", str(run_dir)]) == 1
    assert (run_dir / "keep" / "notes.txt").read_text() == "mine"


def test_readme_names_every_training_preset():
    from pathlib import Path

    from configs.train import TRAIN_PRESETS

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    missing = [name for name in TRAIN_PRESETS if f"`{name}`" not in readme]
    assert not missing, f"README's preset table lacks {missing}"


def test_presets_parse_to_themselves_and_help_calls_the_preset_optional(capsys):
    from brc_mjx.cli import parse_train_args
    from configs.train import TRAIN_PRESETS

    assert parse_train_args([]) == TRAIN_PRESETS["cpu-default"][1]
    for name, (_, cfg) in TRAIN_PRESETS.items():
        assert parse_train_args([name]) == cfg, name
    assert parse_train_args(["atari-cpu", "--batch-size", "8"]).batch_size == 8
    with pytest.raises(SystemExit):
        parse_train_args(["--help"])
    out = capsys.readouterr().out
    assert "(default: cpu-default)" in out and "(required)" not in out
