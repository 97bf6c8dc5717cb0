"""Console output: plain lines off a terminal, a live progress line on one."""

from __future__ import annotations

import io

from rich.console import Console

from brc_mjx.logger import Logger

RECORD = {"perf/env_steps_per_s": 1234.0, "perf/updates_per_s": 56.0, "train/critic_loss": 2.5,
          "train/alpha": 0.1, "eval/mean_return": 321.0}


def _log(tmp_path, terminal: bool) -> str:
    out = io.StringIO()
    logger = Logger(str(tmp_path), ("a",), console=Console(
        file=out, force_terminal=terminal, width=200, soft_wrap=True, highlight=False))
    logger.start_progress(total_env_steps=400, env_steps=0)
    logger.log(200, RECORD)
    logger.log(400, {k: v for k, v in RECORD.items() if not k.startswith("eval/")})
    logger.close()
    return out.getvalue()


def test_plain_lines_when_not_a_terminal(tmp_path):
    lines = _log(tmp_path, terminal=False).splitlines()
    assert len(lines) == 2 and "\x1b" not in "".join(lines)  # one unwrapped line per epoch
    assert "steps/task      200" in lines[0] and "eval 321.0" in lines[0]
    assert "critic 2.500" in lines[1] and "eval" not in lines[1]


def test_progress_line_on_a_terminal(tmp_path):
    text = _log(tmp_path, terminal=True)
    assert "steps/task 400/400" in text and "100%" in text and "ETA" in text
    assert "eval 321.0" in text  # the latest eval stays on the progress line
