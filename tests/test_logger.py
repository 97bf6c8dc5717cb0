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


def test_phase_says_what_starts_and_how_long_it_took():
    import io
    import re

    from rich.console import Console

    from brc_mjx.logger import phase

    out = io.StringIO()
    with phase(Console(file=out, width=200), "compiling the training epoch") as done:
        done["note"] = "loaded from the warm-start cache"
    lines = out.getvalue().splitlines()
    assert lines[0] == "compiling the training epoch ..."
    assert re.fullmatch(r"compiling the training epoch: \d+\.\d s \(loaded from the warm-start "
                        r"cache\)", lines[1])
    out = io.StringIO()
    with phase(Console(file=out, width=200), "compiling", hint="minutes the first time"):
        pass
    lines = out.getvalue().splitlines()
    assert lines[0] == "compiling (minutes the first time) ..."
    assert re.fullmatch(r"compiling: \d+\.\d s", lines[1])  # the hint is said once
    out = io.StringIO()
    with phase(Console(file=out, width=200), "building", enabled=False):
        pass
    assert out.getvalue() == ""
    # on a terminal the spinner is transient: only the closing line stays
    out = io.StringIO()
    with phase(Console(file=out, width=200, force_terminal=True, highlight=False), "building"):
        pass
    assert re.search(r"building: \d+\.\d s", out.getvalue())
    # an error inside propagates, and no closing line claims it finished
    out = io.StringIO()
    try:
        with phase(Console(file=out, width=200), "failing"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines() == ["failing ..."]


def test_progress_line_keeps_its_eta_at_80_columns(tmp_path):
    import io
    import re

    from rich.console import Console

    from brc_mjx.logger import Logger

    out = io.StringIO()
    console = Console(file=out, width=80, force_terminal=True, highlight=False, soft_wrap=True)
    logger = Logger(str(tmp_path), ("a",), console=console)
    logger.start_progress(300_000, 20_000)
    logger.log(40_000, {"perf/env_steps_per_s": 1234.0, "perf/updates_per_s": 230.5,
                        "eval/mean_return": 512.3})
    logger.progress.refresh()
    logger.close()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert re.search(r"steps/task 40,000/300,000\s+13% ETA (\d+:\d\d:\d\d|-:--:--)", text)
