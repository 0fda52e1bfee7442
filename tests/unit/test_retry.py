"""core/retry.backoff_s against its formula written out: base × 2^(attempt−1) seconds, at most a quarter taken off
by the jitter draw, rounded up to whole seconds, never below 1 s, never above the cap or SQS's 12 h."""

from __future__ import annotations

import math

import pytest

from jobgraph.core.retry import backoff_s


class Draw:
    """A random source whose draw is fixed, so each wait can be computed by hand."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize("attempt", range(1, 11))
def test_without_jitter_each_attempt_doubles_the_wait(attempt):
    assert backoff_s(attempt, 1, 10_000, Draw(0.0)) == 2 ** (attempt - 1)
    assert backoff_s(attempt, 3, 10_000, Draw(0.0)) == 3 * 2 ** (attempt - 1)


@pytest.mark.parametrize(("attempt", "draw", "expected"), [(4, 0.5, 7), (4, 0.999, 7), (6, 0.999, 25), (6, 0.2, 31)])
def test_the_draw_takes_up_to_a_quarter_off_rounded_up(attempt, draw, expected):
    # 2^3 = 8: 8 x (1 - 0.25 x 0.5) = 7; 8 x (1 - 0.24975) = 6.002 → 7; 32 x 0.75025 = 24.008 → 25; 32 x 0.95 = 30.4 → 31
    assert expected == math.ceil(2 ** (attempt - 1) * (1 - 0.25 * draw))
    assert backoff_s(attempt, 1, 10_000, Draw(draw)) == expected


def test_the_wait_never_exceeds_the_cap_nor_sqs_twelve_hours():
    assert backoff_s(12, 1, 300, Draw(0.0)) == 300
    assert backoff_s(12, 1, 1, Draw(0.0)) == 1
    # a cap above SQS's largest visibility timeout is held to 12 h
    assert backoff_s(40, 1, 10**6, Draw(0.0)) == 43_200
    # thousands of receives stay a number (the exponent is bounded)
    assert backoff_s(5_000, 1, 300, Draw(0.5)) == 300


def test_never_below_one_second_while_backoff_is_on():
    assert backoff_s(1, 0.01, 300, Draw(0.999)) == 1
    assert backoff_s(1, 1, 0, Draw(0.0)) == 1  # a zero cap still waits the shortest SQS delay


def test_a_first_delivery_and_a_count_below_one_wait_the_base():
    assert backoff_s(0, 4, 300, Draw(0.0)) == backoff_s(1, 4, 300, Draw(0.0)) == 4
    assert backoff_s(-3, 4, 300, Draw(0.0)) == 4


@pytest.mark.parametrize("base", [0, 0.0, -1])
def test_a_base_of_zero_or_less_turns_backoff_off(base):
    assert backoff_s(5, base, 300, Draw(0.5)) == 0


def test_without_a_random_source_the_draw_stays_within_a_quarter():
    waits = {backoff_s(3, 10, 300) for _ in range(200)}
    assert waits <= set(range(30, 41)) and len(waits) > 1
