"""The solver's report counts the graph's route jobs (FIRST, INTERMEDIATE, LAST) and prints one row per stage
that ran, in the graph's order: the stages are core's ExecType, not a list kept beside it."""

from __future__ import annotations

from jobgraph.adapters.local_disk import staged_run
from jobgraph.cli.report import stage_table
from jobgraph.core.generator import generate_sequences
from jobgraph.core.run import RunSpec
from jobgraph.core.solver import solve


def test_route_jobs_and_the_stage_rows_follow_the_graph(tmp_path):
    sequences = generate_sequences(3, seed=5)
    report = solve(sequences, RunSpec("solve-report", "t", 10, 5), tmp_path, staging=staged_run)
    routes = sum(len(sequence.routes) for sequence in sequences)
    assert report.route_jobs == routes and report.jobs == routes + len(sequences) + 1
    rows = [line.split()[:2] for line in stage_table(report.stage_ms)[1:]]
    ran = [stage for stage in ("FIRST", "INTERMEDIATE", "LAST") if report.stage_ms.get(stage)]
    assert [stage for stage, _jobs in rows] == [*ran, "AGGREGATION", "MERGE"]
    assert {stage: int(jobs) for stage, jobs in rows} == {k: len(v) for k, v in report.stage_ms.items()}
