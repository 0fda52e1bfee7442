"""Bounds of the input contract (GUIDE §2), the same for sequence files, the API and queue messages.

A JSON document is checked *before* a parser meets it where a parser would fail on it: its size, its nesting
depth (Python's json recurses per level: 100 000 nested arrays raise RecursionError) and the digit count of
its numbers (Python refuses to convert integers of more than 4 300 digits and is quadratic below that).
An error quotes at most ~80 characters of a bad value, so a 10 MB field is not echoed back whole.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, cast

from pydantic import BeforeValidator, Field

# 2**53: every id below it is exact in a JSON double (JavaScript clients, jq, DynamoDB's number type
# round-trips it); ids are also part of job ids, S3 keys and seeds of the delay model
SEQUENCE_ID_LIMIT = 2**53
SEED_LIMIT = 2**63  # numpy's SeedSequence takes more, but the run record and messages keep it a signed int64
MAX_SEQUENCE_FILE_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
MAX_NUMBER_DIGITS = 20  # 2**63 has 19 digits; a longer literal is refused before anything converts it
MAX_QUOTED_CHARS = 80
MAX_PARSER_MESSAGE = 200  # characters of a parser's own message (it may quote the file's text)
MAX_SCENARIOS = 100_000


class JsonBoundsError(ValueError):
    """A JSON document is too large, too deeply nested or holds an over-long number."""


def quote(value: object, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr`` of a value for an error message, cut to about ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        # str() of a huge int is slow, and refused beyond 4 300 digits
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}… ({len(value)} characters)"
    if isinstance(value, (list, tuple, dict)) and len(value) > limit:
        return f"an {json_type(value)} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}…"


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type (what a user wrote), for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


# tokens that matter for depth and digits: an escape pair inside a string, a quote, a bracket, a long digit run
_TOKENS = re.compile(r'\\.|"|[\[\]{}]|[0-9]{' + str(MAX_NUMBER_DIGITS + 1) + ",}", re.DOTALL)


def check_json_text(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse nesting deeper than ``max_depth`` and numbers of more than MAX_NUMBER_DIGITS digits.

    One linear pass over the interesting characters; stops at the first problem. The text need not be valid
    JSON: what else is wrong is the parser's to say.
    """
    depth, in_string = 0, False
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token == '"':
            in_string = not in_string
        elif in_string:
            continue
        elif token in "[{":
            depth += 1
            if depth > max_depth:
                raise JsonBoundsError(f"nested deeper than {max_depth} levels (at character {match.start()})")
        elif token in "]}":
            depth -= 1
        elif token[0].isdigit():
            raise JsonBoundsError(
                f"a number of {len(token)} digits at character {match.start()} (at most {MAX_NUMBER_DIGITS})"
            )


def _no_constant(name: str) -> float:
    raise JsonBoundsError(f"{name} is not a JSON number")


def loads_bounded(data: bytes, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> object:
    """Decode a UTF-8 JSON document within the bounds; JsonBoundsError, UnicodeDecodeError or
    json.JSONDecodeError otherwise. NaN and Infinity, which Python's json accepts, are refused."""
    if len(data) > max_bytes:
        raise JsonBoundsError(f"{len(data)} bytes, more than the {max_bytes} allowed")
    text = data.decode("utf-8")
    check_json_text(text, max_depth=max_depth)
    return json.loads(text, parse_constant=_no_constant)


MAX_YAML_NODES = 10_000  # after aliases are expanded: "billion laughs" anchors stay small on disk only


def loads_yaml_bounded(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> object:
    """Decode a YAML document (safe tags only) within the bounds; JsonBoundsError or yaml.YAMLError otherwise.
    Depth and size are counted while the document is composed, before PyYAML's recursive constructor (or
    anything walking the result) could fail on it; the text's own size is its reader's to bound
    (``read_user_file``). An empty document is refused: it is a file someone forgot to fill in, not a config."""
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = 0
        sizes: dict[int, int]

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            if self.depth >= max_depth:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # PyYAML's stubs leave it untyped
                raise JsonBoundsError(f"nested deeper than {max_depth} levels (line {mark.line + 1})")
            self.depth += 1
            try:
                node = super().compose_node(parent, index)
            finally:
                self.depth -= 1
            # the size of the node once aliases are expanded: an alias repeats its anchor's whole subtree
            sizes = self.__dict__.setdefault("sizes", {})
            if node is not None and id(node) not in sizes:
                children = node.value if isinstance(node.value, list) else []
                flat = [c for item in children for c in (item if isinstance(item, tuple) else (item,))]
                sizes[id(node)] = 1 + sum(sizes.get(id(child), 1) for child in flat)
                if sizes[id(node)] > MAX_YAML_NODES:
                    raise JsonBoundsError(f"more than {MAX_YAML_NODES} values once its aliases are expanded")
            return node

    loader = BoundedLoader(text)
    try:
        document = loader.get_single_data()
    finally:
        loader.dispose()
    if document is None:
        raise JsonBoundsError("the file is empty (a config needs at least `version: 1`)")
    return document


MAX_DOCUMENT_BYTES = 64 << 20  # a JSON file jobgraph wrote itself (run record, price table): generous


def read_json(
    path: str | os.PathLike[str], *, max_bytes: int = MAX_DOCUMENT_BYTES, max_depth: int = MAX_JSON_DEPTH
) -> object:
    """A JSON file, read at most ``max_bytes`` + 1 bytes and bounded like :func:`loads_bounded`; OSError or
    ValueError (JsonBoundsError, UnicodeDecodeError, json.JSONDecodeError) otherwise."""
    from pathlib import Path

    with Path(path).open("rb") as handle:
        data = handle.read(max_bytes + 1)
    return loads_bounded(data, max_bytes=max_bytes, max_depth=max_depth)


def read_user_file[T](
    path: str | os.PathLike[str],
    parse: Callable[[str], T],
    *,
    max_bytes: int,
    limit: str,
    syntax: str,
    parse_errors: tuple[type[Exception], ...],
    error: Callable[[str], Exception],
) -> T:
    """``parse`` of the text of a file a user named (a template, a trigger config), or ``error`` with one line
    naming the file and what is wrong, in the same words for every such file: no such file, not a file, larger
    than ``max_bytes`` (``limit`` says whose; read without trusting the size the file reports), cannot read (the
    system's reason), not UTF-8 text (the first bad byte), refused before parsing (``parse``'s JsonBoundsError),
    or not valid ``syntax`` (the parser's message, on one line and cut)."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {'not a file' if path.exists() else 'no such file'}")
    try:
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{path}: larger than {max_bytes} bytes, {limit}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text: byte {exc.start} cannot be decoded") from None
    try:
        return parse(text)
    except JsonBoundsError as exc:
        raise error(f"{path}: refused before parsing: {exc}") from None
    except parse_errors as exc:
        raise error(f"{path}: not valid {syntax}: {' '.join(str(exc).split())[:MAX_PARSER_MESSAGE]}") from None


def _json_integer(value: object) -> object:
    # lax pydantic would take true as 1 and "1000" as 1000: the contract wants a JSON integer (GUIDE §2)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a JSON integer, got {json_type(value)} {quote(value)}")
    return value


def json_int(**bounds: int) -> Any:
    """An integer field that takes JSON integers only (not booleans, strings or floats), within ``bounds``
    (``ge``/``gt``/``le``/``lt``); the bounds come first so that OpenAPI documents them."""
    return Annotated[int, Field(**cast(dict[str, Any], bounds)), BeforeValidator(_json_integer)]


# the contract's integers (GUIDE §2): the same in sequence files, API bodies and queue messages
if TYPE_CHECKING:  # to mypy they are ints (it takes no call as a type); pydantic gets the Annotated bounds
    SequenceId = int
    Positive = int
    Seed = int
    Count = int
    Scenarios = int
else:
    SequenceId = json_int(ge=0, lt=SEQUENCE_ID_LIMIT)
    Positive = json_int(ge=1)
    Seed = json_int(ge=0, lt=SEED_LIMIT)
    Count = json_int(ge=0)
    Scenarios = json_int(ge=1, le=MAX_SCENARIOS)
