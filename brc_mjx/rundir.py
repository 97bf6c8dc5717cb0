"""The run directory: claim it for a new run, check a resume against it, write its records safely.

Rules (all checked before any env is built or anything compiles; every failure is one line):

- A new run never writes into a directory that already holds a run (a ``config.json`` or
  checkpoints): it takes the first free ``<run_dir>-2``, ``-3``, ... and says so; nothing is
  overwritten. Multi-host runs need a free ``run_dir`` (processes could not agree on a new name).
- ``--resume`` needs a checkpoint in ``run_dir`` (or ``--start-if-no-checkpoint`` to start fresh
  there). The stored ``config.json`` is compared with the resumed config: changes in
  ``config.RESUMABLE_FIELDS`` (a longer budget, eval/checkpoint cadence, the mesh, ...) are listed,
  any other change is refused, naming the fields.
- JSON files are written atomically (temporary file + rename), so a kill never leaves half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile

from brc_mjx.config import diff_fields, resumable, to_json


class RunDirError(ValueError):
    """The run directory cannot be used as asked."""


def checkpoint_steps(run_dir: str) -> list[int]:
    """Numbers of the complete checkpoints in ``run_dir`` (orbax's finished step directories)."""
    directory = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


#: checkpoints named by env steps per task (this version); run directories written before name
#: them by epoch ("epochs") and say nothing in their meta.json
ENV_STEPS = "env_steps_per_task"


def checkpoint_numbering(run_dir: str) -> str:
    """How ``run_dir``'s checkpoints are named: ``ENV_STEPS`` (a new run, or one started by
    this version) or ``"epochs"`` (a run directory written by an earlier version, kept so)."""
    path = os.path.join(run_dir, "meta.json")
    if not os.path.exists(path):
        return ENV_STEPS
    try:
        with open(path) as f:
            return json.load(f).get("checkpoint_numbering", "epochs")
    except (OSError, json.JSONDecodeError) as err:
        raise RunDirError(f"cannot read {path}: {err}") from None


def checkpoint_number(numbering: str, env_steps: int, epochs: int) -> int:
    """The name of the checkpoint taken after ``epochs`` epochs, at ``env_steps`` per task."""
    return env_steps if numbering == ENV_STEPS else epochs


def checkpoints_by_env_steps(run_dir: str) -> dict[int, int]:
    """``{env steps per task: checkpoint number}`` of ``run_dir``'s complete checkpoints, for
    either numbering (an epoch is ``steps_per_epoch * envs_per_task`` env steps per task)."""
    steps = checkpoint_steps(run_dir)
    if checkpoint_numbering(run_dir) == ENV_STEPS:
        return {s: s for s in steps}
    config = read_config(run_dir)  # every run directory with checkpoints has one
    per_epoch = int(config["steps_per_epoch"]) * int(config["env"]["envs_per_task"])
    return {s * per_epoch: s for s in steps}


#: a population's directory lists its members here (``brc_mjx.population``)
POPULATION_FILE = "population.json"


def with_members(run_dirs) -> list[str]:
    """``run_dirs`` with every population directory replaced by its members' run directories
    (in member order); other directories unchanged."""
    out = []
    for path in run_dirs:
        listing = os.path.join(path, POPULATION_FILE)
        if not os.path.exists(listing):
            out.append(path)
            continue
        try:
            with open(listing) as f:
                out.extend(os.path.join(path, m["member"]) for m in json.load(f)["members"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise RunDirError(f"cannot read {listing}: {err}") from None
    return out


def holds_run(run_dir: str) -> bool:
    """Whether ``run_dir`` already holds (part of) a run."""
    return os.path.exists(os.path.join(run_dir, "config.json")) or bool(checkpoint_steps(run_dir))


def check_writable(run_dir: str) -> None:
    """Create ``run_dir`` and prove a file can be written there; one-line error otherwise."""
    try:
        os.makedirs(run_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as err:
        raise RunDirError(f"run_dir {run_dir!r} is not writable: "
                          f"{err.strerror or type(err).__name__}") from None


@contextlib.contextmanager
def removed_if_left_empty(run_dir: str):
    """Remove ``run_dir`` when what runs inside fails before a file was written there.

    A run refused at set-up (an unknown task, a replay that does not fit, ...) then leaves no
    empty directory behind, and the next run takes that name instead of ``<run_dir>-2``.
    """
    try:
        yield
    except BaseException:
        if os.path.isdir(run_dir) and not any(files for _, _, files in os.walk(run_dir)):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def write_json(path: str, obj) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (never a half-written file)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def read_config(run_dir: str) -> dict | None:
    """The stored ``config.json`` of ``run_dir`` (None if there is none)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise RunDirError(f"cannot read {path}: {err}") from None


def resume_changes(stored: dict, cfg) -> list[str]:
    """Check a resumed config against the stored one; returns the allowed changes as text.

    Raises:
      RunDirError: naming every changed field that a resume may not change.
    """
    from brc_mjx.config import from_json

    # fields added since the run was written read as their defaults
    changes = diff_fields(to_json(from_json(type(cfg), stored)), to_json(cfg))
    refused = [f"{name} ({old} -> {new})" for name, old, new in changes if not resumable(name)]
    if refused:
        raise RunDirError(
            f"--resume: the config differs from {cfg.run_dir}/config.json in fields a resumed run "
            f"cannot change: {', '.join(refused)} (start a new run for that)")
    return [f"{name} {old} -> {new}" for name, old, new in changes
            if name not in ("resume", "start_if_no_checkpoint")]


def prepare(cfg):
    """Resolve where and how a run starts; returns ``(cfg, restore, messages)``.

    ``cfg`` may come back with another ``run_dir`` (a new run next to an existing one);
    ``restore`` says whether to restore the latest checkpoint; ``messages`` are lines to print.
    """
    import dataclasses

    messages = []
    restore = False
    if cfg.resume:
        if checkpoint_steps(cfg.run_dir):
            restore = True
            stored = read_config(cfg.run_dir)
            if stored is not None:
                changed = resume_changes(stored, cfg)
                if changed:
                    messages.append("resuming with changed settings: " + ", ".join(changed))
        elif cfg.start_if_no_checkpoint:
            messages.append(f"{cfg.run_dir} holds no checkpoint: starting a fresh run there")
        else:
            raise RunDirError(
                f"--resume: {cfg.run_dir} holds no checkpoint to resume (pass "
                "--start-if-no-checkpoint to start a fresh run there instead)")
    elif holds_run(cfg.run_dir):
        if cfg.distributed:
            raise RunDirError(f"run_dir {cfg.run_dir} already holds a run: pass --resume to "
                              "continue it or choose a new --run-dir")
        base, n = cfg.run_dir.rstrip("/"), 2
        while holds_run(f"{base}-{n}"):
            n += 1
        messages.append(f"{cfg.run_dir} already holds a run (--resume continues it); this one "
                        f"writes to {base}-{n}")
        cfg = dataclasses.replace(cfg, run_dir=f"{base}-{n}")
    check_writable(cfg.run_dir)
    return cfg, restore, messages
