"""Hostile sequence files and messages (issue 17.1): each is refused with one short line naming file, sequence
and field, before a parser or the solver can fail on it (GUIDE §2's bounds, core/bounds.py)."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from jobgraph.core.bounds import (
    MAX_JSON_DEPTH,
    MAX_SEQUENCE_FILE_BYTES,
    SEQUENCE_ID_LIMIT,
    JsonBoundsError,
    check_json_text,
    loads_bounded,
    quote,
)
from jobgraph.core.errors import InvalidSequenceError
from jobgraph.core.loader import load_sequences, sequence_files
from jobgraph.core.models import CompletedJob, IncomingJob
from jobgraph.core.run import RunManifest

MAX_LINE = 300


def refusal(tmp_path, text: str | bytes, name: str = "1.json") -> str:
    """The one problem line of a folder holding one hostile file."""
    folder = tmp_path / "sequences"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(InvalidSequenceError) as caught:
        load_sequences(folder)
    (line,) = caught.value.problems  # the CLI prints "error: <line>"
    assert line.startswith(f"{path}: "), line
    assert len(line) < MAX_LINE + len(str(path)), line
    return line


def with_field(seed_000_sequence: dict, **changes) -> str:
    return json.dumps({**seed_000_sequence, **changes})


@pytest.mark.parametrize(
    ("sequence_id", "expected"),
    [
        (2**63, "sequence_id: Input should be less than 9007199254740992"),
        (SEQUENCE_ID_LIMIT, "sequence_id: Input should be less than 9007199254740992"),
        (-1, "sequence_id: Input should be greater than or equal to 0"),
        (True, "sequence_id: expected a JSON integer, got boolean True"),
        ("1000", "sequence_id: expected a JSON integer, got string '1000'"),
        (1.0, "sequence_id: expected a JSON integer, got number 1.0"),
        (None, "sequence_id: expected a JSON integer, got null None"),
    ],
)
def test_sequence_id_is_a_json_integer_in_range(tmp_path, seed_000_sequence, sequence_id, expected):
    line = refusal(tmp_path, with_field(seed_000_sequence, sequence_id=sequence_id))
    assert expected in line


def test_largest_sequence_id_is_accepted(tmp_path, seed_000_sequence):
    folder = tmp_path / "ok"
    folder.mkdir()
    (folder / "a.json").write_text(with_field(seed_000_sequence, sequence_id=SEQUENCE_ID_LIMIT - 1))
    (sequence,) = load_sequences(folder)
    assert sequence.sequence_id == SEQUENCE_ID_LIMIT - 1


def test_a_41_digit_id_is_refused_before_conversion(tmp_path, seed_000_sequence):
    line = refusal(
        tmp_path, with_field(seed_000_sequence, sequence_id=0).replace('"sequence_id": 0', '"sequence_id": ' + "9" * 41)
    )
    assert "refused before parsing: a number of 41 digits" in line


def test_a_5000_digit_id_is_refused_before_conversion(tmp_path, seed_000_sequence):
    text = with_field(seed_000_sequence, sequence_id=0).replace('"sequence_id": 0', '"sequence_id": ' + "7" * 5000)
    assert "a number of 5000 digits" in refusal(tmp_path, text)


def test_long_digit_runs_inside_strings_are_not_numbers():
    check_json_text(json.dumps({"note": "1" * 500, "escaped": '"' + "2" * 50}))


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting_is_refused_before_parsing(tmp_path, opener):
    closer = "]" if opener == "[" else "}"
    line = refusal(tmp_path, opener * 100_000 + closer * 100_000)
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in line


def test_nesting_at_the_limit_is_parsed():
    document = loads_bounded(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH, max_bytes=1000)
    depth = 0
    while isinstance(document, list):
        depth, document = depth + 1, document[0] if document else None
    assert depth == MAX_JSON_DEPTH


def test_brackets_inside_strings_do_not_count():
    check_json_text(json.dumps({"a": "[" * 1000 + '\\"{{{' * 100}))


def test_a_file_over_1_mib_is_refused_unread(tmp_path, seed_000_sequence):
    padding = " " * MAX_SEQUENCE_FILE_BYTES
    line = refusal(tmp_path, with_field(seed_000_sequence) + padding)
    assert "larger than 1048576 bytes (1 MiB)" in line


def test_a_10_mb_field_is_not_echoed(tmp_path, seed_000_sequence):
    seed_000_sequence["routes"][0]["estimated_takeoff_time"] = "x" * 10_000_000
    with pytest.raises(InvalidSequenceError) as caught:
        load_sequences(_folder_with(tmp_path, json.dumps(seed_000_sequence)))
    # over 1 MiB: refused unread; the same value through the model (API, messages) is quoted short
    assert "larger than" in str(caught.value)
    from jobgraph.core.loader import parse_sequence

    with pytest.raises(InvalidSequenceError) as caught:
        parse_sequence(seed_000_sequence, "request")
    (line,) = str(caught.value).splitlines()
    assert len(line) < MAX_LINE
    assert "routes[0].estimated_takeoff_time: 'xxxx" in line and "(10000000 characters)" in line


def test_a_long_unknown_field_name_is_cut(tmp_path, seed_000_sequence):
    line = refusal(tmp_path, json.dumps({**seed_000_sequence, "k" * 5000: 1}))
    assert "unknown field" in line and "(5000 characters)" in line


def test_a_huge_sequence_id_label_is_cut(tmp_path, seed_000_sequence):
    line = refusal(tmp_path, json.dumps({**seed_000_sequence, "sequence_id": "9" * 100_000}))
    assert line.startswith(f"{tmp_path}/sequences/1.json: sequence ?: sequence_id: expected a JSON integer")


@pytest.mark.parametrize("time", ["１２:００:００", "12:00:00\n", "12:00:0٠", " 12:00:00", "12:00"])
def test_times_are_ascii_hh_mm_ss(tmp_path, seed_000_sequence, time):
    seed_000_sequence["routes"][0]["estimated_gate_open_time"] = time
    line = refusal(tmp_path, json.dumps(seed_000_sequence))
    assert "routes[0].estimated_gate_open_time:" in line and "is not a time of the form HH:MM:SS" in line


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_numbers_are_refused(tmp_path, seed_000_sequence, constant):
    text = with_field(seed_000_sequence, sequence_id=0).replace('"sequence_id": 0', f'"sequence_id": {constant}')
    assert f"{constant} is not a JSON number" in refusal(tmp_path, text)


def test_non_utf8_file(tmp_path):
    assert "not UTF-8 text: byte 0 cannot be decoded" in refusal(tmp_path, b"\xff\xfe{}")


@pytest.mark.parametrize(("text", "expected"), [("", "not valid JSON"), ("[]", "expected a JSON object, got list")])
def test_empty_and_non_object_files(tmp_path, text, expected):
    assert expected in refusal(tmp_path, text)


def test_a_5000_digit_file_name_sorts_without_int(tmp_path, seed_000_sequence):
    folder = _folder_with(tmp_path, json.dumps(seed_000_sequence), name="9" * 200 + ".json")
    (folder / "10.json").write_text(with_field(seed_000_sequence, sequence_id=1))
    (folder / "9.json").write_text(with_field(seed_000_sequence, sequence_id=2))
    assert [p.name[:3] for p in sequence_files(folder)] == ["9.j", "10.", "999"]


def test_missing_and_non_folder_sequences(tmp_path):
    for path, expected in ((tmp_path / "nope", "no such folder"), (tmp_path / "file.json", "not a folder")):
        if expected == "not a folder":
            path.write_text("{}")
        with pytest.raises(InvalidSequenceError, match=expected):
            load_sequences(path)


def test_quote_cuts_every_kind_of_value():
    assert quote("a" * 1000).endswith("… (1000 characters)")
    assert quote(10**5000) == "an integer of about 5001 digits"
    assert quote(list(range(1000))) == "an array of 1000 items"
    assert len(quote({"k": "v" * 1000})) <= 81


def test_loads_bounded_refuses_oversize_before_decoding():
    with pytest.raises(JsonBoundsError, match="more than the 10 allowed"):
        loads_bounded(b"\xff" * 11, max_bytes=10)


# --- messages: the same bounds and strict types (GUIDE §6) ------------------------------------------


def incoming(**changes) -> dict:
    return {
        "job_id": "r-s1-r0",
        "run_id": "r",
        "test_run_id": "t",
        "correlation_id": "r-s1",
        "sequence_id": 1,
        "exec_type": "AGGREGATION",
        "total_routes": 2,
        "scenarios": 10,
        "seed": 1,
        **changes,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sequence_id", 2**63),
        ("sequence_id", True),
        ("sequence_id", "1"),
        ("scenarios", "1000"),
        ("scenarios", True),
        ("seed", 2**63),
        ("seed", 1.5),
        ("total_routes", "2"),
    ],
)
def test_messages_take_strict_integers_in_range(field, value):
    with pytest.raises(ValidationError) as caught:
        IncomingJob.model_validate_json(json.dumps(incoming(**{field: value})))
    assert caught.value.errors()[0]["loc"][0] == field


def test_a_completion_with_a_huge_sequence_id_is_refused():
    body = {
        "job_id": "j",
        "status": "completed",
        "processing_time_ms": 1.0,
        "test_run_id": "t",
        "run_id": "r",
        "correlation_id": "c",
        "exec_type": "FIRST",
        "sequence_id": "9" * 5000,
    }
    with pytest.raises(ValidationError):
        CompletedJob.model_validate_json(json.dumps(body).replace('"' + "9" * 5000 + '"', "9" * 5000))


def test_manifest_ids_are_bounded():
    with pytest.raises(ValidationError):
        RunManifest(run_id="r", scenarios=1, seed=1, sequence_ids=[SEQUENCE_ID_LIMIT], total_route_jobs=1)


def _folder_with(tmp_path, text: str, name: str = "1.json"):
    folder = tmp_path / "seqs"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    return folder


# --- trigger configs (the YAML of `--triggers` and `jobgraph triggers`) -------------------------------


def alias_bomb() -> str:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for name, previous in zip("bcde", "abcd", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 10)}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfeversion: 1\n", ": not UTF-8 text: byte 0 cannot be decoded"),
        (b"", "the file is empty"),
        (b"# only a comment\n", "the file is empty"),
        (b"[" * 20_000 + b"]" * 20_000, "nested deeper than 32 levels"),
        ("\n".join("  " * i + "a:" for i in range(100)).encode(), "nested deeper than 32 levels"),
        (alias_bomb().encode(), "values once its aliases are expanded"),
        (b"version: 1\ntriggers: [\n", "not valid YAML"),
        (b"x" * (64 * 1024 + 1), ": larger than 65536 bytes, the limit of a trigger config"),
    ],
    ids=["non-utf8", "empty", "comment-only", "deep-flow", "deep-block", "alias-bomb", "broken", "oversize"],
)
def test_hostile_trigger_configs(tmp_path, content, expected):
    from jobgraph.core.errors import ConfigurationError
    from jobgraph.sam.triggers import load_trigger_config

    path = tmp_path / "triggers.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigurationError) as caught:
        load_trigger_config(path)
    (line,) = str(caught.value).splitlines()
    assert line.startswith(f"{path}: ") and expected in line, line
    assert len(line) < MAX_LINE + len(str(path))


@pytest.mark.parametrize("kind", ["folder", "missing", "non-utf8", "oversize", "broken"])
def test_a_template_and_a_trigger_config_are_refused_in_the_same_words(tmp_path, kind):
    # both are a file a user names (--template, a trigger config): one reader, one wording (core.bounds)
    from jobgraph.core.errors import ConfigurationError
    from jobgraph.sam.template import MAX_TEMPLATE_BYTES, load_sam_template
    from jobgraph.sam.triggers import MAX_CONFIG_FILE_BYTES, load_trigger_config

    words = {
        "folder": "not a file",
        "missing": "no such file",
        "non-utf8": "not UTF-8 text: byte 0 cannot be decoded",
        "oversize": "larger than ",
        "broken": "not valid YAML",
    }[kind]
    readers = [(load_sam_template, MAX_TEMPLATE_BYTES, ValueError), (load_trigger_config, MAX_CONFIG_FILE_BYTES, ConfigurationError)]  # fmt: skip
    for load, limit, refused in readers:
        path = tmp_path / load.__name__ / "file.yaml"
        path.parent.mkdir()
        if kind == "folder":
            path.mkdir()
        elif kind == "non-utf8":
            path.write_bytes(b"\xff\xfeversion: 1\n")
        elif kind == "oversize":
            path.write_bytes(b"#" * (limit + 1))
        elif kind == "broken":
            path.write_text("version: [unclosed\n")
        with pytest.raises(refused) as caught:
            load(path)
        (line,) = str(caught.value).splitlines()
        assert line.startswith(f"{path}: {words}"), line
        assert len(line) < MAX_LINE + len(str(path))
