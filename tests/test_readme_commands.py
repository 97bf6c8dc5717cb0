"""Every command in the README's (and docs/'s) code blocks parses with today's CLI: they cannot
drift.

Each ``brc-train`` / ``brc-info`` / ``brc-analyze`` / ``python -m benchmarks.<x>`` line of a
```bash block is parsed by the program's own parser (nothing runs), and the tasks it names must
exist in the registry. Shell variables set in the same block and ``for ...; do ...; done`` loops
are expanded as a shell would for this purpose.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import tyro

README = Path(__file__).parent.parent / "README.md"
DOCS = sorted((Path(__file__).parent.parent / "docs").glob("*.md"))


def documented_commands() -> list[list[str]]:
    """The commands of the README and of every page in docs/ (long write-ups moved there)."""
    return [argv for page in (README, *DOCS) for argv in readme_commands(page.read_text())]
PROGRAMS = ("brc-train", "brc-info", "brc-analyze")


def readme_commands(text: str) -> list[list[str]]:
    """argv lists (program first) of the commands in ``text``'s bash blocks."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        block = block.replace("\\\n", " ")
        # NAME="..." (a quoted value may span lines)
        variables = {m.group(1): " ".join(m.group(2).split())
                     for m in re.finditer(r'^([A-Z_]+)="([^"]*)"', block, re.M)}
        block = re.sub(r'^([A-Z_]+)="([^"]*)"', "", block, flags=re.M)
        for line in block.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if not line or line.startswith("#"):
                continue
            line = re.sub(r"^for .*?; do\s*", "", line)
            line = re.sub(r";\s*done$", "", line)
            if line in ("done", ""):
                continue
            for name, value in variables.items():
                line = line.replace(f"${name}", value)
            line = re.sub(r"\$\w+", "0", line)  # a loop variable (seed) takes a value
            for part in line.split("&&"):
                argv = shlex.split(part)
                if argv and argv[0].startswith(".venv/bin/"):
                    argv[0] = argv[0][len(".venv/bin/"):]
                if argv[:2] == ["python", "-m"] or (argv and argv[0] in PROGRAMS):
                    commands.append(argv)
    return commands


def check(argv: list[str]) -> None:
    """Parse ``argv`` with its program's parser; raises on an unknown flag, value or task."""
    import envs
    from brc_mjx.cli import InfoArgs, parse_train_args

    program, args = argv[0], argv[1:]
    try:
        if program == "brc-train":
            cfg = parse_train_args(args)
            envs.resolve_tasks(cfg.env.tasks)
        elif program == "brc-info":
            tyro.cli(InfoArgs, args=args)
        elif program == "brc-analyze":
            from brc_mjx.analysis.report import AnalyzeArgs

            tyro.cli(AnalyzeArgs, args=args)
        else:  # python -m benchmarks.<module>
            module = importlib.import_module(args[1])
            if hasattr(module, "COMMANDS"):  # a module with subcommands
                tyro.extras.subcommand_cli_from_dict(module.COMMANDS, args=args[2:])
            else:
                tyro.cli(module.Config, args=args[2:])
    except SystemExit as exc:  # --help exits 0; a parse error exits 2
        if exc.code not in (0, None):
            raise AssertionError(f"{' '.join(argv)!r} does not parse: exit {exc.code}") from None


def test_the_readme_has_commands_to_check():
    commands = documented_commands()
    assert len(commands) > 30
    assert ["brc-train", "--resume", "--run-dir", "runs/a"] in commands


@pytest.mark.parametrize("argv", documented_commands(), ids=" ".join)
def test_readme_command_parses(argv, capsys):
    check(argv)


def test_a_drifted_command_is_caught(capsys):
    with pytest.raises(AssertionError, match="does not parse: exit 2"):
        check(["brc-train", "--env.task", "dmc/cheetah-run"])  # the flag is --env.tasks
    with pytest.raises(ValueError, match="unknown task"):
        check(["brc-train", "--env.tasks", "dmc/cheetah-fly"])
