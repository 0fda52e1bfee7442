"""Reading sequence files with errors a person can act on (GUIDE §2).

Every file is checked before anything runs; all problems of all files are reported together, one line
each, naming the file, the sequence and the field. A file is bounded before it is parsed (core/bounds.py:
at most 1 MiB, nesting at most 32 deep, numbers of at most 20 digits) and an error quotes at most ~80
characters of a bad value.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from jobgraph.core.bounds import (
    MAX_QUOTED_CHARS,
    MAX_SEQUENCE_FILE_BYTES,
    SEQUENCE_ID_LIMIT,
    JsonBoundsError,
    loads_bounded,
    quote,
)
from jobgraph.core.errors import ConfigurationError, InvalidSequenceError
from jobgraph.core.models import Sequence


def _location(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, str) and (len(part) > MAX_QUOTED_CHARS or not part.isprintable()):
            part = quote(part)  # an unknown field's name is user input too
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
            message = f"{quote(error.get('input'))} does not match the expected format ({error['ctx']['pattern']})"
        lines.append(f"{where}: {message}" if where else message)
    return lines


def validate_document[M: BaseModel](
    model: type[M], document: object, source: str, error: Callable[[str], Exception] = ConfigurationError
) -> M:
    """A decoded document (None, an empty file: {}) → ``model``; ``error`` names the source and every bad field."""
    try:
        return model.model_validate(document if document is not None else {})
    except ValidationError as exc:
        raise error(f"{source}: " + "; ".join(format_validation_error(exc))) from None


def parse_sequence(document: object, source: str) -> Sequence:
    """Validate one decoded JSON document; raise InvalidSequenceError listing every problem."""
    if not isinstance(document, dict):
        raise InvalidSequenceError(source, [f"expected a JSON object, got {type(document).__name__}"])
    given = document.get("sequence_id")
    # the id names the sequence in every line; one that is itself wrong is quoted once, in its own line
    label = f"sequence {given}" if type(given) is int and 0 <= given < SEQUENCE_ID_LIMIT else "sequence ?"
    try:
        return Sequence.model_validate(document)
    except ValidationError as exc:
        raise InvalidSequenceError(source, [f"{label}: {line}" for line in format_validation_error(exc)]) from None


def read_bounded(path: Path, max_bytes: int = MAX_SEQUENCE_FILE_BYTES) -> bytes:
    """At most ``max_bytes`` of a file, read without trusting its reported size; JsonBoundsError beyond."""
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise JsonBoundsError(f"larger than {max_bytes} bytes (1 MiB), the limit of a sequence file")
    return data


def load_sequence_file(path: Path) -> Sequence:
    try:
        document = loads_bounded(read_bounded(path), max_bytes=MAX_SEQUENCE_FILE_BYTES)
    except json.JSONDecodeError as exc:
        raise InvalidSequenceError(
            str(path), [f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]
        ) from None
    except JsonBoundsError as exc:
        raise InvalidSequenceError(str(path), [f"refused before parsing: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise InvalidSequenceError(str(path), [f"not UTF-8 text: byte {exc.start} cannot be decoded"]) from None
    except OSError as exc:
        raise InvalidSequenceError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from None
    return parse_sequence(document, str(path))


def sequence_files(directory: Path) -> list[Path]:
    """*.json files of a folder, in numeric-then-name order."""
    if not directory.exists():
        raise InvalidSequenceError(str(directory), ["no such folder"])
    if not directory.is_dir():
        raise InvalidSequenceError(str(directory), ["not a folder (--sequences takes a folder of *.json files)"])
    try:
        files = [p for p in directory.iterdir() if p.suffix == ".json" and p.is_file()]
    except OSError as exc:
        raise InvalidSequenceError(str(directory), [f"cannot list the folder: {exc.strerror or exc}"]) from None
    if not files:
        raise InvalidSequenceError(str(directory), ["no *.json sequence files"])
    return sorted(files, key=_numeric_first)


def _numeric_first(path: Path) -> tuple[object, ...]:
    # numbers compared as ASCII digit strings (no int(): a 5 000-digit file name would be refused by Python)
    stem = path.stem
    if stem.isascii() and stem.isdigit():
        digits = stem.lstrip("0")
        return (0, len(digits), digits, stem)
    return (1, 0, "", stem)


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
