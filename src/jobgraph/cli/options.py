"""Types of the CLI's numeric options: checked and bounded before anything runs (issue 17.2).

Each refuses what it cannot take in one argparse line: not a plain ASCII whole number (full-width digits,
"1e3", "abc"), or outside its range. The upper bounds stop what would only fail later or never finish:
a seed beyond int64 (the run record, messages), a port beyond 65535, a generated graph too large to hold
in memory (10 000 sequences take ~7 s and ~100 MB; combine bigger sets with --start-id).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from jobgraph.core.bounds import SEED_LIMIT, SEQUENCE_ID_LIMIT, quote
from jobgraph.core.ids import TEST_RUN_ID_PATTERN

MAX_GENERATED_SEQUENCES = 10_000
MAX_PORT = 65_535
MAX_LOAD_MESSAGES = 1_000_000
MAX_WORKERS = 256  # local worker processes per event source mapping / ECS service
MAX_POISON = 10_000
MAX_SECONDS = 7 * 24 * 3600
MAX_PROJECTED_SEQUENCES = 1_000_000  # simulated one by one: 100 000 take ~10 s here, a million minutes
_LIMIT = 2**63  # any count: beyond it nothing downstream takes the number


def bounded_int(low: int, high: int = _LIMIT - 1, what: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number ``low..high`` written with ASCII digits."""

    def parse(value: str) -> int:
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not (digits.isascii() and digits.isdigit()):
            raise argparse.ArgumentTypeError(f"{quote(value)}: not a whole number")
        if len(digits) > 19:  # beyond any bound: not worth converting
            raise argparse.ArgumentTypeError(f"{quote(value)}: must be {low}..{high}{what}")
        number = int(text)
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{value}: must be {low}..{high}{what}")
        return number

    parse.__name__ = "number"
    return parse


def rate(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{quote(value)}: not a number") from None
    if not (math.isfinite(number) and 0.0 <= number <= 1.0):
        raise argparse.ArgumentTypeError(f"{value}: must be between 0 and 1")
    return number


seed = bounded_int(0, SEED_LIMIT - 1)
port = bounded_int(0, MAX_PORT, " (0: a free port)")
sequence_id = bounded_int(0, SEQUENCE_ID_LIMIT - 1)
generated_count = bounded_int(
    1, MAX_GENERATED_SEQUENCES, f"; generate bigger sets {MAX_GENERATED_SEQUENCES} at a time with --start-id"
)
load_messages = bounded_int(1, MAX_LOAD_MESSAGES)
workers = bounded_int(1, MAX_WORKERS)
poison = bounded_int(0, MAX_POISON)
seconds = bounded_int(1, MAX_SECONDS)
projected_count = bounded_int(1, MAX_PROJECTED_SEQUENCES)


def matching(pattern: str, what: str) -> Callable[[str], str]:
    """An argparse type: a string that matches ``pattern`` as a whole (``what`` says what it may hold)."""

    def parse(value: str) -> str:
        if not re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value):
            raise argparse.ArgumentTypeError(f"{quote(value)}: use {what}")
        return value

    parse.__name__ = "text"
    return parse


test_run_id = matching(TEST_RUN_ID_PATTERN, "1-128 letters, digits or _.:/=+@- (it becomes a tag value)")
stack_name = matching(r"[A-Za-z][-A-Za-z0-9]{0,127}", "a CloudFormation stack name: a letter, then letters, digits, -")
