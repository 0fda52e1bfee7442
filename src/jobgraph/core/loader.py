"""Reading sequence files with errors a person can act on (GUIDE §2).

Every file is checked before anything runs; all problems of all files are reported together, one line
each, naming the file, the sequence and the field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from jobgraph.core.errors import InvalidSequenceError
from jobgraph.core.models import Sequence


def _location(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def format_validation_error(exc: ValidationError) -> list[str]:
    lines = []
    for error in exc.errors():
        where = _location(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing":
            message = "required field is missing"
        elif error["type"] == "extra_forbidden":
            message = "unknown field"
        elif error["type"] == "string_pattern_mismatch":
            message = f"{error.get('input')!r} does not match the expected format ({error['ctx']['pattern']})"
        lines.append(f"{where}: {message}" if where else message)
    return lines


def parse_sequence(document: object, source: str) -> Sequence:
    """Validate one decoded JSON document; raise InvalidSequenceError listing every problem."""
    if not isinstance(document, dict):
        raise InvalidSequenceError(source, [f"expected a JSON object, got {type(document).__name__}"])
    label = f"sequence {document['sequence_id']}" if "sequence_id" in document else "sequence ?"
    try:
        return Sequence.model_validate(document)
    except ValidationError as exc:
        raise InvalidSequenceError(source, [f"{label}: {line}" for line in format_validation_error(exc)]) from None


def load_sequence_file(path: Path) -> Sequence:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidSequenceError(
            str(path), [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidSequenceError(str(path), [f"cannot read file: {exc}"]) from None
    return parse_sequence(document, str(path))


def sequence_files(directory: Path) -> list[Path]:
    """*.json files of a folder, in numeric-then-name order."""
    if not directory.is_dir():
        raise InvalidSequenceError(str(directory), ["not a directory"])
    files = [p for p in directory.iterdir() if p.suffix == ".json" and p.is_file()]
    if not files:
        raise InvalidSequenceError(str(directory), ["no *.json sequence files"])
    return sorted(files, key=lambda p: (0, int(p.stem), "") if p.stem.isdigit() else (1, 0, p.stem))


def check_unique(sequences: list[tuple[str, Sequence]]) -> list[str]:
    seen: dict[int, str] = {}
    problems = []
    for source, sequence in sequences:
        if sequence.sequence_id in seen:
            problems.append(
                f"{source}: sequence {sequence.sequence_id}: sequence_id: duplicate of {seen[sequence.sequence_id]}"
            )
        else:
            seen[sequence.sequence_id] = source
    return problems


def load_sequences(directory: Path) -> list[Sequence]:
    """All sequences of a folder, or InvalidSequenceError with every problem found."""
    loaded: list[tuple[str, Sequence]] = []
    problems: list[str] = []
    for path in sequence_files(directory):
        try:
            loaded.append((str(path), load_sequence_file(path)))
        except InvalidSequenceError as exc:
            problems.extend(f"{exc.source}: {p}" for p in exc.problems)
    problems.extend(check_unique(loaded))
    if problems:
        raise InvalidSequenceError(str(directory), problems)
    return [sequence for _, sequence in loaded]
