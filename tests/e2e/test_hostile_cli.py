"""Hostile but fair use of the `jobgraph` CLI (issue 17): every case exits non-zero with one line on stderr
under 300 characters, no traceback, and writes nothing outside its output folder.

Each case runs `python -m jobgraph.cli` in a scratch folder (its working directory, HOME and TMPDIR all inside
it); every file outside `out/` is compared before and after, and the user's own folder under `out/` too.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from tests.processes import jobgraph_cli

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = str(ROOT / "template.yaml")
pytestmark = pytest.mark.e2e
MAX_LINE = 300

GOOD_SEQUENCE = {
    "sequence_id": 0,
    "home_airport_iata": "DUB",
    "routes": [
        {
            "origin_iata": "DUB",
            "destination_iata": "OSL",
            "estimated_gate_open_time": "00:25:00",
            "estimated_takeoff_time": "02:04:00",
            "estimated_arrival_time": "03:41:00",
        },
        {
            "origin_iata": "OSL",
            "destination_iata": "DUB",
            "estimated_gate_open_time": "03:55:00",
            "estimated_takeoff_time": "05:28:00",
            "estimated_arrival_time": "07:33:00",
        },
    ],
}


def sequence_text(**changes) -> str:
    return json.dumps({**GOOD_SEQUENCE, **changes})


def time_text(value: str) -> str:
    document = json.loads(sequence_text())
    document["routes"][0]["estimated_gate_open_time"] = value
    return json.dumps(document)


def alias_bomb() -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for name, previous in zip("bcde", "abcd", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    return "\n".join(lines) + "\n"


# hostile sequence files: each alone in seqs/ (as `validate --sequences seqs`), with what the line must say
SEQUENCE_FILES = {
    "id-2**63": (sequence_text(sequence_id=2**63), "sequence_id: Input should be less than 9007199254740992"),
    "id-true": (sequence_text(sequence_id=True), "expected a JSON integer, got boolean True"),
    "id-string": (sequence_text(sequence_id="1000"), "expected a JSON integer, got string '1000'"),
    "id-41-digits": (sequence_text().replace('"sequence_id": 0', '"sequence_id": ' + "9" * 41), "41 digits"),
    "id-5000-digits": (sequence_text().replace('"sequence_id": 0', '"sequence_id": ' + "9" * 5000), "5000 digits"),
    "id-negative": (sequence_text(sequence_id=-1), "greater than or equal to 0"),
    "deep-array": ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
    "10-MB-field": (time_text("x" * 10_000_000), "larger than 1048576 bytes"),
    "100-kB-time": (time_text("9" * 100_000), "(100000 characters)"),
    "full-width-time": (time_text("１２:００:００"), "is not a time of the form HH:MM:SS"),
    "newline-time": (time_text("12:00:00\n"), "is not a time of the form HH:MM:SS"),
    "nan-id": (sequence_text().replace('"sequence_id": 0', '"sequence_id": NaN'), "NaN is not a JSON number"),
    "non-utf8": ("\udcff", "not UTF-8 text"),
    "empty": ("", "not valid JSON"),
    "array": ("[]", "expected a JSON object"),
    "long-field-name": (sequence_text(**{"k" * 5000: 1}), "unknown field"),
}

# hostile trigger configs, for `jobgraph triggers CONFIG`
TRIGGER_FILES = {
    "non-utf8": (b"\xff\xfeversion: 1\n", "not UTF-8 text"),
    "empty": (b"", "the file is empty"),
    "deep": (b"[" * 20_000 + b"]" * 20_000, "nested deeper than 32 levels"),
    "alias-bomb": (alias_bomb().encode(), "once its aliases are expanded"),
    "binary": (b"\0" * 70_000, "larger than 65536 bytes, the limit of a trigger config"),
}


def with_parameter(*parameters: str) -> list[str]:
    """A local run of the shipped template with these --parameter values."""
    return ["run", "--template", TEMPLATE, *(a for p in parameters for a in ("--parameter", p)), "--generate", "1",
            "--out", "out"]  # fmt: skip


def cases() -> list[tuple[str, list[str], str]]:
    """(id, arguments, what the error line must contain); paths are relative to the scratch folder."""
    found = [
        # numbers
        ("seed-23-digits", ["solve", "--seed", "9" * 23, "--generate", "1"], "--seed"),
        ("seed-negative", ["solve", "--seed", "-1", "--generate", "1"], "must be 0.."),
        ("scenarios-zero", ["solve", "--scenarios", "0", "--generate", "1"], "must be 1..100000"),
        ("scenarios-full-width", ["solve", "--scenarios", "１０", "--generate", "1"], "not a whole number"),
        ("scenarios-float", ["solve", "--scenarios", "1e3", "--generate", "1"], "not a whole number"),
        ("count-100M", ["generate", "--count", "100000000", "--seed", "1", "--out", "out/g"], "must be 1..10000"),
        ("count-zero", ["generate", "--count", "0", "--seed", "1", "--out", "out/g"], "must be 1..10000"),
        ("run-generate-huge", ["run", "--generate", "99999999"], "must be 1..10000"),
        (
            "start-id-overflow",
            ["generate", "--count", "5", "--seed", "1", "--out", "out/g", "--start-id", str(2**53 - 2)],
            "ids must stay below 2**53",
        ),
        ("serve-port-99999", ["serve", "--port", "99999"], "must be 0..65535"),
        ("api-port-negative", ["run", "--api-port", "-1"], "must be 0..65535"),
        ("kill-rate-nan", ["run", "--kill-rate", "nan"], "between 0 and 1"),
        ("fail-rate-text", ["run", "--fail-rate", "often"], "not a number"),
        ("max-workers-huge", ["run", "--max-workers", "100000"], "must be 1..256"),
        ("messages-huge", ["load", "--messages", "10000000000"], "must be 1..1000000"),
        ("timeout-zero", ["run", "--timeout", "0"], "must be 1.."),
        ("run-id-traversal", ["solve", "--run-id", "../../etc", "--generate", "1"], "--run-id"),
        ("unknown-command", ["frobnicate"], "invalid choice"),
        ("missing-option", ["generate", "--seed", "1"], "required"),
        ("bad-parameter-form", ["run", "--parameter", "NoEquals"], "use KEY=VALUE"),
        # paths
        ("out-is-a-file", ["solve", "--generate", "1", "--out", "a-file"], "exists and is not a folder"),
        ("out-in-proc", ["solve", "--generate", "1", "--out", "/proc/x"], "cannot write there"),
        ("out-below-a-file", ["solve", "--generate", "1", "--out", "a-file/below"], "cannot write there"),
        (
            "overwrite-onto-file",
            ["solve", "--generate", "1", "--out", "out", "--run-id", "afile", "--overwrite"],
            "is a file, not a run folder jobgraph wrote",
        ),
        (
            "overwrite-user-folder",
            ["solve", "--generate", "1", "--out", "out", "--run-id", "important", "--overwrite"],
            "holds what jobgraph did not write",
        ),
        (
            "exists-no-overwrite",
            ["solve", "--generate", "1", "--out", "out", "--run-id", "important"],
            "already exists",
        ),
        ("sequences-missing", ["validate", "--sequences", "nowhere"], "no such folder"),
        ("sequences-is-a-file", ["validate", "--sequences", "a-file"], "not a folder"),
        ("sequences-empty-folder", ["validate", "--sequences", "empty"], "no *.json sequence files"),
        ("solve-41-digit-id", ["solve", "--sequences", "seqs-id-41-digits", "--out", "out"], "41 digits"),
        ("cost-of-nothing", ["cost"], "give one or more RUN_DIR"),
        ("cost-of-a-file", ["cost", "a-file"], "Not a directory"),
        ("cost-of-a-folder", ["cost", "empty"], "no run record"),
        ("compare-nothing", ["compare", "empty", "empty", "--out", "out/c"], "no run record"),
        ("openapi-into-proc", ["openapi", "--out", "/proc/x/y"], "No such file or directory"),
        ("triggers-a-folder", ["triggers", "validate", "empty"], "empty: not a file"),
        ("triggers-missing", ["triggers", "validate", "nowhere.yaml"], "nowhere.yaml: no such file"),
        # the local cloud's template and parameters, refused before anything is deployed
        (
            "template-passwd",
            ["run", "--template", "/etc/passwd", "--generate", "1", "--out", "out"],
            "not a SAM template",
        ),
        ("template-a-folder", ["run", "--template", "empty", "--generate", "1", "--out", "out"], "empty: not a file"),
        ("parameter-not-a-number", with_parameter("ProcessorBatchSize=abc"), "'abc' is not a number"),
        ("parameter-not-allowed", with_parameter("Stage=../../x"), "is not one of AllowedValues ['dev', 'prod']"),
        ("parameter-over-max", with_parameter("ProcessorMemorySize=99999"), "greater than MaxValue 10240"),
        ("parameter-pattern", with_parameter("ProjectPrefix=UPPER"), "does not match AllowedPattern"),
        ("parameter-unknown", with_parameter("Colour=red"), "Colour"),
        (
            "parameter-prod-without-pitr",
            with_parameter("Stage=prod", "EnablePointInTimeRecovery=false"),
            "rule ProdKeepsPointInTimeRecovery",
        ),
        (
            "local-option-on-stack",
            ["run", "--stack", "s", "--fail-rate", "0.5", "--generate", "1"],
            "--fail-rate applies to the local cloud only",
        ),
    ]
    found += [
        ("cost-deep-record", ["cost", "deep-record"], "nested deeper than 32 levels"),
        ("cost-array-record", ["cost", "array-record"], "schema None, expected"),
        ("prices-deep", ["run", "--generate", "1", "--prices", "deep.json", "--out", "out"], "price table"),
        ("test-run-id-long", ["solve", "--generate", "1", "--test-run-id", "x" * 300], "(300 characters): use 1-128"),
        ("test-run-id-newline", ["solve", "--generate", "1", "--test-run-id", "a\nb"], "--test-run-id"),
        ("stack-name-bad", ["run", "--generate", "1", "--stack-name", "bad name!"], "CloudFormation stack name"),
        ("stack-bad", ["run", "--generate", "1", "--stack", "../x"], "CloudFormation stack name"),
        ("unrecognised-huge", ["solve", "--" + "a" * 100_000], "unrecognized arguments"),
        # bench and project: what they read and how much they would simulate
        ("project-a-file", ["project", "a-file", "--sequences", "10"], "Not a directory"),
        ("project-deep-record", ["project", "deep-record", "--sequences", "10"], "nested deeper than 32 levels"),
        ("project-a-billion", ["project", "empty", "--sequences", "1000000000"], "must be 1..1000000"),
        ("bench-scenario-9", ["bench", "--implementations", "1,9", "--generate", "1"], "distinct scenario numbers"),
        ("bench-memory-text", ["bench", "--memory", "abc", "--generate", "1", "--out", "out"], "comma-separated"),
        ("bench-memory-huge", ["bench", "--memory", "99999999", "--generate", "1", "--out", "out"], "128..10240"),
        ("bench-workers-huge", ["bench", "--max-workers", "100000", "--generate", "1"], "must be 1..256"),
        ("bench-memory-100k-digits", ["bench", "--memory", "9" * 100_000, "--generate", "1"], "(100000 characters)"),
        ("bench-architecture", ["bench", "--memory", "256", "--architecture", "sparc"], "choose from x86_64, arm64"),
        ("bench-one-implementation", ["bench", "--implementations", "2", "--generate", "1"], "at least two"),
        ("project-array-record", ["project", "array-record", "--sequences", "10"], "schema None, expected"),
        ("project-seed-huge", ["project", "empty", "--sequences", "10", "--seed", "9" * 30], "must be 0.."),
    ]
    found += [(f"sequence-{name}", ["validate", "--sequences", f"seqs-{name}"], said)
              for name, (_text, said) in SEQUENCE_FILES.items()]  # fmt: skip
    found += [(f"triggers-{name}", ["triggers", "validate", f"triggers-{name}.yaml"], said)
              for name, (_text, said) in TRIGGER_FILES.items()]  # fmt: skip
    return found


def make_scratch(root: Path) -> None:
    for folder in ("work", "home", "tmp", "work/empty", "work/out/important/data"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    work = root / "work"
    (work / "a-file").write_text("not a folder")
    (work / "out" / "afile").write_text("a file where a run folder would go")
    (work / "out" / "important" / "thesis.tex").write_text("years of work")
    deep = "[" * 100_000 + "]" * 100_000
    for name, text in (("deep-record", deep), ("array-record", "[]")):
        (work / name).mkdir()
        (work / name / "run.json").write_text(text)
    (work / "deep.json").write_text(deep)
    for name, (text, _said) in SEQUENCE_FILES.items():
        (work / f"seqs-{name}").mkdir()
        data = text.encode("utf-8", errors="surrogateescape")
        (work / f"seqs-{name}" / "1.json").write_bytes(data)
    for name, (data, _said) in TRIGGER_FILES.items():
        (work / f"triggers-{name}.yaml").write_bytes(data)


def snapshot(root: Path, skip: Path) -> dict[str, str]:
    """Every file and folder under ``root`` but ``skip`` (the output folder), with a digest of its content."""
    found = {}
    for path in root.rglob("*"):
        if skip in path.parents or path == skip:
            continue
        found[str(path.relative_to(root))] = hashlib.md5(path.read_bytes()).hexdigest() if path.is_file() else "/"
    return found


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    make_scratch(root)
    return root


def invoke(scratch: Path, args: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    """`jobgraph <args>` in-process, in the scratch folder (cwd, HOME, TMPDIR): (exit code, stdout, stderr)."""
    import tempfile

    from jobgraph.cli.main import main

    monkeypatch.chdir(scratch / "work")
    monkeypatch.setenv("HOME", str(scratch / "home"))
    monkeypatch.setenv("TMPDIR", str(scratch / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch / "tmp"))
    extra = ["--no-progress"] if args[0] in ("solve", "run") else []
    try:
        code = main([*args, *extra])
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clean_line(code: int, out: str, err: str, said: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code not in (0, None), out
    assert len(lines) == 1, err[-3000:]
    (line,) = lines
    assert line.startswith("error: ") and len(line) < MAX_LINE, line
    assert "Traceback" not in err + out
    assert said in line, line


@pytest.mark.parametrize(("case", "args", "said"), cases(), ids=[c[0] for c in cases()])
def test_hostile_invocation_is_one_clean_line(scratch, case, args, said, monkeypatch, capsys):
    out_dir, important = scratch / "work" / "out", scratch / "work" / "out" / "important"
    before, before_important = snapshot(scratch, out_dir), snapshot(important, scratch / "nothing")
    assert_one_clean_line(*invoke(scratch, args, monkeypatch, capsys), said)
    # nothing written outside the output folder, and the user's folder inside it untouched
    assert snapshot(scratch, out_dir) == before
    assert snapshot(important, scratch / "nothing") == before_important


# the same through the installed entry point, for one case of each kind: exit code and stderr as a shell sees them
ENTRY_POINT_CASES = ["seed-23-digits", "sequence-id-5000-digits", "overwrite-user-folder", "triggers-alias-bomb"]


@pytest.mark.parametrize("case", ENTRY_POINT_CASES)
def test_hostile_invocation_through_the_entry_point(scratch, case):
    (args, said) = next((a, s) for c, a, s in cases() if c == case)
    out_dir = scratch / "work" / "out"
    before = snapshot(scratch, out_dir)
    completed = jobgraph_cli(
        *args,
        cwd=scratch / "work",
        env={**os.environ, "HOME": str(scratch / "home"), "TMPDIR": str(scratch / "tmp")},
        timeout_s=120,
    )
    assert_one_clean_line(completed.returncode, completed.stdout, completed.stderr, said)
    assert snapshot(scratch, out_dir) == before
