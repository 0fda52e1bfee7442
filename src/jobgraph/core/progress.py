"""A run's progress as counters: what the jobs table keeps per run so the status API answers in O(1).

Every terminal change of a job record (to COMPLETED or FAILED) adds to a few counters on one small item in
the run's partition (adapters/dynamodb/jobs.py writes it in the same transaction as the job record, so they
never disagree): jobs per latest status, per stage and status, and per stage a histogram of the completed
jobs' processing times in quarter-octave buckets (each bucket spans a factor 2^(1/4); a percentile read
from it is within ±9 % of the true value), plus their sum for the exact mean.

Pure Python (the API ships without numpy). ``estimate_seconds`` turns the counters and a queue depth into
the time left, as the status API reports it (``estimated_time_seconds``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from jobgraph.core.models import ExecType

BUCKETS_PER_OCTAVE = 4
TERMINAL = ("COMPLETED", "FAILED")
# one letter per stage: the counters' attribute names count towards the item's size (and its write units)
STAGE_CODES = {
    ExecType.FIRST: "F",
    ExecType.INTERMEDIATE: "I",
    ExecType.LAST: "L",
    ExecType.AGGREGATION: "A",
    ExecType.MERGE: "M",
    ExecType.SYNTHETIC: "S",
}
STAGE_OF_CODE = {code: stage for stage, code in STAGE_CODES.items()}


def time_bucket(ms: float) -> int:
    """Bucket of a processing time: 0 below 1 ms, else 1 + floor(4·log2(ms)) (bucket b spans [2^((b-1)/4), 2^(b/4)))."""
    return 0 if ms < 1 else 1 + math.floor(BUCKETS_PER_OCTAVE * math.log2(ms))


def bucket_value(bucket: int) -> float:
    """The value a bucket stands for: the geometric middle of its span (0.5 ms for bucket 0)."""
    return 0.5 if bucket == 0 else 2 ** ((bucket - 0.5) / BUCKETS_PER_OCTAVE)


def counter_deltas(stage: ExecType, old_status: str | None, new_status: str, ms: float) -> dict[str, int | float]:
    """What one job record's change adds to its run's counters (attribute name -> increment).

    Only terminal statuses count: the latest status of each job is counted once (a failure then a
    completion moves the job from FAILED to COMPLETED), and a completion's time joins the histogram once.
    """
    code = STAGE_CODES[stage]
    deltas: dict[str, int | float] = {}
    if old_status == new_status or new_status not in TERMINAL:
        return deltas
    if old_status in TERMINAL:
        deltas[f"n{old_status[0]}"] = -1
        deltas[f"{old_status[0].lower()}{code}"] = -1
    deltas[f"n{new_status[0]}"] = 1
    deltas[f"{new_status[0].lower()}{code}"] = 1
    if new_status == "COMPLETED":
        deltas[f"h{code}{time_bucket(ms)}"] = 1
        deltas[f"t{code}"] = round(ms, 3)
    return deltas


@dataclass
class StageProgress:
    completed: int = 0
    failed: int = 0
    total_ms: float = 0.0
    histogram: dict[int, int] = field(default_factory=dict)

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the completed jobs' times, from the histogram (None: none completed)."""
        count = sum(self.histogram.values())
        if count == 0:
            return None
        rank = min(count, max(1, math.ceil(q * count)))
        seen = 0
        for bucket in sorted(self.histogram):
            seen += self.histogram[bucket]
            if seen >= rank:
                return round(bucket_value(bucket), 3)
        raise AssertionError("unreachable: the rank is at most the count")

    def timings(self) -> dict[str, float | None] | None:
        count = sum(self.histogram.values())
        if count == 0:
            return None
        return {
            "count": count,
            "mean": round(self.total_ms / count, 3),
            "p50": self.percentile(0.5),
            "p90": self.percentile(0.9),
            "p99": self.percentile(0.99),
        }


@dataclass
class Progress:
    """A run's (or an hour of tasks') counters, decoded."""

    completed: int = 0
    failed: int = 0
    stages: dict[ExecType, StageProgress] = field(default_factory=dict)

    @classmethod
    def from_counters(cls, counters: dict[str, Any]) -> Progress:
        progress = cls(completed=int(counters.get("nC", 0)), failed=int(counters.get("nF", 0)))
        for name, value in counters.items():
            kind, code, rest = name[:1], name[1:2], name[2:]
            if code not in STAGE_OF_CODE or kind not in "cfht" or (kind != "h" and rest):
                continue
            stage = progress.stages.setdefault(STAGE_OF_CODE[code], StageProgress())
            if kind == "c":
                stage.completed = int(value)
            elif kind == "f":
                stage.failed = int(value)
            elif kind == "t":
                stage.total_ms = float(value)
            elif rest.isdigit():
                stage.histogram[int(rest)] = int(value)
        return progress

    def merged(self, other: Progress) -> Progress:
        """Both counts added (tasks: the current and the previous hour)."""
        out = Progress(self.completed + other.completed, self.failed + other.failed)
        for source in (self, other):
            for stage, counts in source.stages.items():
                target = out.stages.setdefault(stage, StageProgress())
                target.completed += counts.completed
                target.failed += counts.failed
                target.total_ms += counts.total_ms
                for bucket, n in counts.histogram.items():
                    target.histogram[bucket] = target.histogram.get(bucket, 0) + n
        return out

    def p50_ms(self, stages: tuple[ExecType, ...] | None = None) -> float | None:
        """Median processing time over the given stages (all if None), from their histograms."""
        pooled = StageProgress()
        for stage, counts in self.stages.items():
            if stages is None or stage in stages:
                for bucket, n in counts.histogram.items():
                    pooled.histogram[bucket] = pooled.histogram.get(bucket, 0) + n
        return pooled.percentile(0.5)


def estimate_seconds(jobs_left: int, p50_ms: float | None, parallel: int, ahead: int = 0) -> int | None:
    """Time left for ``jobs_left`` jobs with ``ahead`` others queued before them, ``parallel`` at a time, each
    taking the recent median: rounds of work, each a median long. None when no job finished yet (no median)."""
    if p50_ms is None:
        return None
    if jobs_left <= 0:
        return 0
    rounds = math.ceil((jobs_left + max(0, ahead)) / max(1, parallel))
    return max(1, math.ceil(rounds * p50_ms / 1000))
