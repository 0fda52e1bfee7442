"""`jobgraph bench`'s recommendation and summary (bench/suite.py), on records whose answers are worked out by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobgraph.bench.compare import CompareError
from jobgraph.bench.suite import check_same_graph, implementations, recommend, recommendation_lines, summary
from jobgraph.bench.sweep import sweep_points


def row(run_id: str, makespan: float, per_1000: float | None) -> dict:
    return {"implementation": run_id.upper(), "run_id": run_id, "makespan_s": makespan,
            "per_1000_route_jobs_usd": per_1000}  # fmt: skip


def test_each_strategy_names_the_best_and_its_margin_over_the_runner_up():
    rows = [row("a", 100.0, 0.020), row("b", 50.0, 0.030), row("c", 80.0, 0.018)]
    chosen = recommend(rows)
    assert chosen["cheapest"]["run_id"] == "c" and chosen["cheapest"]["runner_up"] == "A"
    assert chosen["cheapest"]["margin"] == pytest.approx(1 - 0.018 / 0.020)
    assert chosen["fastest"]["run_id"] == "b" and chosen["fastest"]["margin"] == pytest.approx(1 - 50 / 80)
    # balanced: sqrt(cost / 0.018 x makespan / 50): a 2.0 -> 1.49, b 1.67 -> 1.29, c 1.6 -> 1.26
    assert chosen["balanced"]["run_id"] == "c" and chosen["balanced"]["runner_up"] == "B"
    assert chosen["balanced"]["score"] == pytest.approx((0.018 / 0.018 * 80 / 50) ** 0.5)
    assert chosen["balanced"]["margin"] == pytest.approx(1 - (1.6**0.5) / ((0.030 / 0.018) ** 0.5))
    lines = recommendation_lines(chosen)
    assert lines[0].startswith("cheapest (lowest cost per 1,000 route jobs): C [c] — $0.0180 per 1,000 route jobs")
    assert "37.5% faster than C" in lines[1]


def test_runs_without_a_cost_are_left_out_of_the_strategies_that_need_one():
    chosen = recommend([row("a", 10.0, None), row("b", 20.0, 0.02)])
    assert chosen["fastest"]["run_id"] == "a"
    assert chosen["cheapest"] is None and chosen["balanced"] is None
    assert "no recommendation" in recommendation_lines(chosen)[0]


def test_the_summary_reads_every_figure_from_the_record():
    record = {
        "run_id": "r", "scenario": 2, "scenario_name": "SQS FIFO + ECS Fargate", "mode": "local", "jobs": 20,
        "wall_seconds": 4.0, "settings": {},
        "samples": {"stage_ms": {"FIRST": [10.0], "INTERMEDIATE": [20.0, 30.0], "LAST": [40.0], "AGGREGATION": [5.0]}},
        "functions": {"SchedulerFunction": {"cold_starts": 2}, "StartRunFunction": {"cold_starts": 1}},
        "init_ms": {"SchedulerFunction": {"count": 2, "mean": 100.0}, "StartRunFunction": {"count": 1, "mean": 400.0}},
        "api_requests": {"per_job": 7.5},
        "cost": {"usd": 0.5, "per_1000_route_jobs_usd": 0.25, "by_service_usd": {"S3": 0.4, "SQS": 0.1}},
    }  # fmt: skip
    figures = summary(record)
    assert figures["jobs_per_s"] == 5.0 and figures["cold_starts"] == 3
    assert figures["route_p50_ms"] == 25.0 and figures["aggregation_p99_ms"] == 5.0
    assert figures["init_mean_ms"] == pytest.approx(200.0) and figures["requests_per_job"] == 7.5
    assert figures["implementation"] == "scenario 2 (SQS FIFO + ECS Fargate)"


def test_implementations_are_the_scenarios_then_scenario_1_at_each_processor_setting():
    chosen = implementations([1, 2, 3], sweep_points("512,1024", "arm64"))
    assert [i.run_id("b") for i in chosen] == ["b-s1", "b-s2", "b-s3", "b-s1-512mb-arm64", "b-s1-1024mb-arm64"]
    assert chosen[3].parameters == {"ProcessorMemorySize": "512", "Architecture": "arm64"}


def test_runs_of_different_graphs_are_not_compared():
    same = {"sequences": 3, "jobs": 20, "kind": "graph", "settings": {"scenarios": 50}, "run_id": "a"}
    check_same_graph([same, {**same, "run_id": "b"}])
    with pytest.raises(CompareError, match="these runs differ"):
        check_same_graph([same, {**same, "run_id": "b", "jobs": 21}])


def test_with_env_each_implementation_runs_on_its_deployed_stack_redeployed_for_processor_settings(monkeypatch):
    import argparse

    from jobgraph.bench import sweep
    from jobgraph.bench.suite import Implementation
    from jobgraph.cli.main import bench_aws_target
    from jobgraph.runs.scenarios import scenario

    redeployed = []
    monkeypatch.setattr(sweep, "redeploy", lambda env, point, run_id: redeployed.append((env, point, run_id)))
    args = argparse.Namespace(env="dev", region="eu-west-1", out=Path("results"), overwrite=False, no_progress=True)
    plain = bench_aws_target(args, scenario(3), Implementation(3), "b-s3", None)
    assert plain.stack_name == "scenario-3-dev" and redeployed == []
    point = Implementation(1, 1024, "arm64", {"ProcessorMemorySize": "1024", "Architecture": "arm64"})
    tuned = bench_aws_target(args, scenario(1), point, "b-s1-1024mb-arm64", None)
    assert tuned.stack_name == "scenario-1-dev"
    assert redeployed == [("dev", sweep.SweepPoint(1024, "arm64"), "b-s1-1024mb-arm64")]
