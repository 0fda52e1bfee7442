"""How the command line ends on what is not a bug. `jobgraph … | head`: a reader that leaves early ends the command
quietly (exit 141, as a shell reports SIGPIPE), not with "error: BrokenPipeError" and an error log; a broken pipe
that is not stdout's stays an error. No AWS region or credentials: one line saying what to set, no error log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jobgraph.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


def test_a_reader_that_left_ends_the_command_quietly(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "jobgraph.cli", "validate", "--sequences", str(ROOT / "sequences")],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    process.stdout.close()  # `| head -0`: gone before the command prints (its imports take far longer)
    _, err = process.communicate(timeout=120)
    assert process.returncode == cli_main.EXIT_READER_GONE, err
    assert err == ""
    assert not list(tmp_path.rglob("jobgraph-error-*.log"))


def test_a_broken_pipe_elsewhere_is_still_an_error(monkeypatch, capsys):
    def broken(_args):
        raise BrokenPipeError(32, "Broken pipe")  # e.g. a worker's pipe, while stdout is fine

    monkeypatch.setitem(cli_main.COMMANDS, "validate", broken)
    assert cli_main.main(["validate"]) == cli_main.EXIT_FAILED
    assert "error: BrokenPipeError" in capsys.readouterr().err


def test_a_missing_aws_configuration_says_what_to_set_without_a_log(monkeypatch, capsys, tmp_path):
    from botocore.exceptions import NoRegionError

    def no_region(_args):
        raise NoRegionError  # what boto3 raises for `jobgraph run --stack NAME` with no region configured

    monkeypatch.setitem(cli_main.COMMANDS, "validate", no_region)
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    assert cli_main.main(["validate"]) == cli_main.EXIT_FAILED
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: You must specify a region. (--stack/--env/--billed use your AWS configuration")
    assert "jobgraph cloud env" in line and "details in" not in line
