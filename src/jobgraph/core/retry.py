"""Exponential backoff of a failed message's redelivery (seed 002: "3 attempts with exponential backoff").

A queue consumer sets a failed message's visibility to ``backoff_s(attempt)`` before it returns the
message for retry, instead of leaving it invisible for the queue's whole visibility timeout (360 s for
the Processor's queue): base × 2^(attempt−1), capped, with up to a quarter taken off at random so that
messages which failed together do not all come back in the same second. SQS counts whole seconds.
"""

from __future__ import annotations

import math
import random

# SQS's largest visibility timeout (12 h)
MAX_VISIBILITY_S = 43_200
JITTER = 0.25


def backoff_s(attempt: int, base_s: float, max_s: int, rng: random.Random | None = None) -> int:
    """Whole seconds until attempt ``attempt + 1``: base × 2^(attempt−1), capped at ``max_s``, jittered.

    ``attempt`` is the message's ApproximateReceiveCount (1 on its first delivery). Never below 1 s when
    ``base_s`` > 0 (0 turns backoff off: visible again at once), never above ``max_s`` or SQS's 12 h.
    """
    if base_s <= 0:
        return 0
    ceiling = max(1, min(int(max_s), MAX_VISIBILITY_S))
    nominal: float = base_s * 2 ** min(max(attempt, 1) - 1, 32)
    draw = (rng or random).random()
    return max(1, min(ceiling, math.ceil(nominal * (1 - JITTER * draw))))
