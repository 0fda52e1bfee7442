"""Reference solver: the whole graph in-process, through the same stage functions as the Lambdas.

Results are written through the caller's ``staging`` (``adapters/local_disk.staged_run``) and moved into
place only when the MERGE has been written, so ``OUT/<run_id>`` either holds a complete run or does not exist.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jobgraph.core import stages
from jobgraph.core.graph import aggregation_job, merge_job, route_job, run_manifest, total_jobs
from jobgraph.core.models import ExecType, IncomingJob, Sequence
from jobgraph.core.ports import RunStaging
from jobgraph.core.results import ResultStore
from jobgraph.core.run import RunSpec

ProgressHook = Callable[[IncomingJob], None]


@dataclass
class SolveReport:
    run_id: str
    out_dir: Path
    sequences: int
    jobs: int
    wall_seconds: float
    stage_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    merged: dict[str, Any] = field(default_factory=dict)

    @property
    def route_jobs(self) -> int:
        return sum(len(v) for k, v in self.stage_ms.items() if ExecType(k).is_route)


def solve_into(
    store: ResultStore, spec: RunSpec, sequences: list[Sequence], on_job: ProgressHook | None = None
) -> dict[str, list[float]]:
    """Run every job of the graph in dependency order against ``store``; returns per-stage timings (ms)."""
    stage_ms: dict[str, list[float]] = defaultdict(list)

    def execute(job: IncomingJob) -> None:
        started = time.perf_counter()
        stages.run_job(job, store)
        stage_ms[job.exec_type.value].append((time.perf_counter() - started) * 1000)
        if on_job:
            on_job(job)

    store.put_manifest(run_manifest(spec, sequences, "solver"))
    for sequence in sequences:
        for route_index in range(len(sequence.routes)):
            execute(route_job(spec, sequence, route_index))
        execute(aggregation_job(spec, sequence.sequence_id, len(sequence.routes)))
    execute(merge_job(spec))
    return stage_ms


def solve(
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    *,
    staging: RunStaging,
    overwrite: bool = False,
    on_job: ProgressHook | None = None,
) -> SolveReport:
    started = time.perf_counter()
    with staging(out_dir, spec.run_id, overwrite=overwrite) as blobs:
        store = ResultStore(blobs)
        stage_ms = solve_into(store, spec, sequences, on_job)
        merged = store.get_merged(spec.run_id)
    return SolveReport(
        run_id=spec.run_id,
        out_dir=out_dir / spec.run_id,
        sequences=len(sequences),
        jobs=total_jobs(sequences),
        wall_seconds=time.perf_counter() - started,
        stage_ms=stage_ms,
        merged=merged,
    )
