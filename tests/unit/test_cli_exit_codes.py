"""docs/cli.md's exit codes: 2 for an argument unknown, missing, of the wrong type or out of range; 1 for options
that do not go together and anything else that stops a command."""

from __future__ import annotations

import pytest

from jobgraph.cli.main import main


def exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code)


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (["cost"], 2, "error: jobgraph cost: give one or more RUN_DIR (or --activate-tags)"),
        (["generate", "--count", "abc"], 2, "argument --count: 'abc': not a whole number"),
        (["bench", "--implementations", "2", "--generate", "1"], 1, "at least two implementations"),
    ],
)
def test_exit_code_and_line(args, code, said, capsys):
    assert exit_code(args) == code
    (line,) = capsys.readouterr().err.splitlines()
    assert said in line
