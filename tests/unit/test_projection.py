"""`jobgraph project`'s simulation against makespans worked out by hand (bench/project.py).

Each case is a graph small and regular enough that its makespan follows from the model's rules alone:
constant service times (every recorded sample equal), so the simulation must land on the exact figure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jobgraph.bench.project import TEMPLATE_DEFAULTS, model_of, project
from jobgraph.bench.simulation import ProjectionError, on_lanes, simulate
from jobgraph.sam.template import load_template

ROOT = Path(__file__).resolve().parents[2]


def record(scenario: int = 1, chains=(3,), job_ms: float = 100.0, overhead_ms: float = 0.0, **extra) -> dict:
    """A run record of ``chains`` (routes per sequence) whose every job took ``job_ms`` and whose runner was busy
    ``overhead_ms`` more per job; 1 worker of each kind, no INIT, no Scheduler time, no starter."""
    sequences, routes = len(chains), sum(chains)
    jobs = routes + sequences + 1
    stage_ms = {
        "FIRST": [job_ms] * sequences,
        "INTERMEDIATE": [job_ms] * max(1, routes - 2 * sequences),
        "LAST": [job_ms] * sequences,
        "AGGREGATION": [job_ms] * sequences,
        "MERGE": [job_ms * sequences],  # MERGE reads every sequence: per sequence job_ms
    }
    busy = sum(sum(v) for v in stage_ms.values()) + overhead_ms * jobs
    runner = {1: "ProcessorFunction", 2: None, 3: "StepTaskFunction"}[scenario]
    functions = {"SchedulerFunction": {"cold_starts": 0, "workers": 1, "received": jobs - 1}}
    samples = {"stage_ms": stage_ms, "invocation_ms": {"SchedulerFunction": [0.0]}, "batch_ms": {}}
    services = {}
    if runner:
        functions[runner] = {"cold_starts": 0, "workers": 1, "batch_size": 1}
        samples["invocation_ms"][runner] = [busy]
    else:
        services["svc"] = {"tasks": 1, "batches": 1, "received": jobs}
        samples["batch_ms"]["svc"] = [busy]
    base = {
        "run_id": "r", "kind": "graph", "scenario": scenario, "mode": "local", "sequences": sequences, "jobs": jobs,
        "wall_seconds": 1.0, "graph": {"routes_per_sequence": list(chains)}, "functions": functions,
        "services": services, "samples": samples, "init_ms": {},
        "settings": {"stack_parameters": {"SequenceConcurrency": "1"}},
    }  # fmt: skip
    return {**base, **extra}


def test_one_sequence_through_the_queue_graph_is_its_jobs_end_to_end():
    # 3 routes + AGGREGATION + MERGE (100 ms per sequence), one after another: 5 x 100 ms
    model = model_of(record(chains=(3,)))
    assert simulate(model, 1)["makespan_s"] == pytest.approx(0.5)


def test_the_runners_overhead_per_job_is_added_to_every_job():
    model = model_of(record(chains=(3,), overhead_ms=20.0))
    assert model.job_overhead_ms == pytest.approx(20.0)
    assert simulate(model, 1)["makespan_s"] == pytest.approx(0.5 + 5 * 0.020)


def test_sequences_share_one_worker_in_batches_of_one():
    # 2 sequences of 2 routes, 1 worker, batch 1: every job runs on the one worker, none overlaps:
    # 2 x (2 routes + AGGREGATION) x 100 ms + MERGE of 2 sequences (200 ms)
    model = model_of(record(chains=(2, 2)))
    assert simulate(model, 2)["makespan_s"] == pytest.approx(0.8)


def test_a_projection_repeats_the_runs_sequences_and_counts_jobs_like_the_graph():
    model = model_of(record(chains=(2, 4)))
    result = simulate(model, 5)  # chains 2, 4, 2, 4, 2
    assert result["route_jobs"] == 14 and result["jobs"] == 14 + 5 + 1
    # one worker, batch 1: all 14 routes and 5 aggregations back to back, then MERGE of 5 sequences (5 x 100 ms)
    assert result["makespan_s"] == pytest.approx(1.9 + 0.5)


def test_the_state_machine_walks_map_concurrency_sequences_at_once():
    rec = record(scenario=3, chains=(2, 2, 2, 2))
    rec["functions"]["StepTaskFunction"]["workers"] = 2
    rec["settings"]["stack_parameters"]["SequenceConcurrency"] = "2"
    model = model_of(rec)
    # 2 slots x 2 sequences each x 3 jobs x 100 ms, the slots in parallel; then MERGE of 4 sequences (400 ms)
    assert simulate(model, 4)["makespan_s"] == pytest.approx(0.6 + 0.4)
    model.gap_ms = 50.0  # a Step Functions gap before every task
    assert simulate(model, 4)["makespan_s"] == pytest.approx(0.6 + 6 * 0.05 + 0.05 + 0.4)


def test_cold_starts_are_paid_once_per_worker():
    rec = record(chains=(3,))
    rec["init_ms"] = {"ProcessorFunction": {"count": 1, "mean": 1000.0}}
    result = simulate(model_of(rec), 1)
    assert result["cold_starts"] == 1 and result["makespan_s"] == pytest.approx(1.5)


def test_on_aws_the_stacks_settings_and_quotas_apply():
    rec = record(chains=(3,) * 10, usage={"dynamodb": {"wru": 0}})
    rec["settings"]["stack_parameters"].update({"ProcessorMaxConcurrency": "5", "SchedulerReservedConcurrency": "3"})
    model = model_of(rec, on="aws")
    assert (model.runner_concurrency, model.scheduler_concurrency, model.batch_size) == (5, 3, 10)
    projection = project(rec, [20_000], on="aws")
    row = projection["projections"][0]
    # one message per job on each FIFO queue, at most 3,000 per second
    floor = next(f for f in row["quota_floors"] if f["quota"] == "sqs_fifo_messages_per_s")
    assert floor["floor_s"] == pytest.approx(row["jobs"] / 3000)
    assert row["makespan_s"] == max(row["simulated_s"], floor["floor_s"])
    assert any("local run" in line for line in projection["assumptions"])


def test_records_without_the_graphs_shape_are_refused_with_a_reason():
    rec = record()
    del rec["graph"]
    with pytest.raises(ProjectionError, match="no routes per sequence"):
        model_of(rec)
    with pytest.raises(ProjectionError, match="only graph runs"):
        model_of({**record(), "kind": "load"})


def test_a_runner_that_overlapped_its_jobs_is_busy_for_less_than_their_processing_time():
    # message groups processed concurrently: the Processor was busy half as long as its jobs' processing times add up
    rec = record(chains=(3,))
    rec["samples"]["invocation_ms"]["ProcessorFunction"] = [0.5 * 500.0]
    model = model_of(rec)
    assert (model.job_overhead_ms, model.job_scale) == (0.0, 0.5)
    assert simulate(model, 1)["makespan_s"] == pytest.approx(0.25)


def test_a_merge_that_would_outlast_its_functions_timeout_is_a_warning():
    rec = record(chains=(3,))  # MERGE: 100 ms per sequence
    rec["settings"]["functions"] = {"ProcessorFunction": {"timeout_s": 1}}
    rows = project(rec, [5, 20])["projections"]
    assert rows[0]["warnings"] == []
    assert rows[1]["warnings"] == [
        "MERGE of 20 sequences: about 2 s, over ProcessorFunction's timeout of 1 s (Lambda allows 900 s at most): "
        "the run would not finish on this stack as configured"
    ]


def test_a_run_on_aws_is_modelled_from_its_report_lines_and_deployed_settings():
    # what AwsTarget records: no invocation samples, usage from REPORT lines (billed ms hold INIT), mappings as deployed
    rec = record(chains=(3,))
    rec.update(mode="AWS", functions={}, samples={"stage_ms": rec["samples"]["stage_ms"]})
    rec["usage"] = {
        "lambda": {
            "ProcessorFunction": {"requests": 5, "duration_ms": 500 + 300, "init_durations_ms": [300.0]},
            "SchedulerFunction": {"requests": 4, "duration_ms": 50, "init_durations_ms": []},
        }
    }
    rec["settings"]["mappings"] = {
        "ProcessorFunction": {"batch_size": 10, "workers": 4},
        "SchedulerFunction": {"batch_size": 10, "workers": 3},
    }
    model = model_of(rec)
    assert (model.runner_concurrency, model.batch_size, model.scheduler_concurrency) == (4, 10, 3)
    assert model.job_overhead_ms == 0.0 and model.scheduler_ms_per_message == pytest.approx(50 / 5)
    assert model.hop_ms == 20.0  # AWS reports no queue wait per message: the stated assumption


def test_the_template_defaults_a_projection_falls_back_on_are_the_templates_own():
    """bench/project.py copies the defaults (an installed tool has no templates to read): they must not drift."""
    declared: dict[str, set[str]] = {}
    for template in ("template.yaml", "templates/scenario-2.yaml", "templates/scenario-3.yaml"):
        for name, spec in (load_template(ROOT / template).get("Parameters") or {}).items():
            if name in TEMPLATE_DEFAULTS:
                declared.setdefault(name, set()).add(str(spec["Default"]))
    assert declared == {name: {value} for name, value in TEMPLATE_DEFAULTS.items()}


def test_jobs_on_lanes_take_the_first_lane_free():
    assert on_lanes([100.0, 100.0, 100.0], 1) == 300.0
    assert on_lanes([100.0, 100.0, 100.0], 10) == 100.0  # all at once: the slowest
    assert on_lanes([100.0, 50.0, 50.0, 50.0], 2) == 150.0  # lanes 100 and 50+50, the last 50 on the first
    assert on_lanes([30.0], 4) == 30.0 and on_lanes([], 4) == 0.0


def overlapping_record() -> dict:
    """Two sequences of 3 routes, every job 100 ms, run by one Processor whose ten lanes ran a batch's groups at
    once under a latency profile: four batches of two jobs (100 ms on the lanes + 20 ms of the batch's own) and
    the MERGE (200 + 20)."""
    rec = record(chains=(3, 3))
    rec["settings"]["stack_parameters"]["GroupConcurrency"] = "10"
    rec["settings"]["service_latency"] = {"label": "default", "source": "assumptions"}
    rec["functions"]["ProcessorFunction"].update(batch_size=10, received=9)
    rec["samples"]["invocation_ms"]["ProcessorFunction"] = [120.0, 120.0, 120.0, 120.0, 220.0]
    return rec


def test_a_runner_whose_batch_jobs_waited_apart_is_modelled_as_lanes_plus_a_time_per_batch():
    model = model_of(overlapping_record())
    # busy 700 ms against 1,000 ms of processing: the lanes, not a scale; 20 ms per batch beyond its jobs
    assert (model.lanes, model.job_scale, model.job_overhead_ms) == (10, 1.0, 0.0)
    assert model.batch_overhead_ms == pytest.approx(20.0)
    # both sequences' jobs in one batch at each step: 4 x (20 + 100) ms, then MERGE 20 + 200 ms
    assert simulate(model, 2)["makespan_s"] == pytest.approx(0.7)
    words = " ".join(project(overlapping_record(), [4])["assumptions"])
    assert "on 10 lanes at once" in words and "20.0 ms per batch" in words
    # without a latency profile the one local server served the batch's jobs in turn: their times add up, scaled
    rec = overlapping_record()
    del rec["settings"]["service_latency"]
    model = model_of(rec)
    assert (model.lanes, model.job_scale, model.batch_overhead_ms) == (1, pytest.approx(0.7), 0.0)
    assert model_of(rec, on="aws").lanes == 10  # on AWS a batch's jobs wait on their services apart


def test_the_local_event_sources_time_per_batch_is_added_on_the_run_but_not_on_aws():
    """slot_ms: how long each batch held its event source slot; beyond the invocation it is the local poller's."""
    rec = record(chains=(3,))
    rec["samples"]["invocation_ms"]["ProcessorFunction"] = [100.0] * 4 + [100.0]
    rec["functions"]["ProcessorFunction"]["received"] = 5
    rec["samples"]["slot_ms"] = {"ProcessorFunction": [130.0] * 5, "SchedulerFunction": [40.0] * 4}
    model = model_of(rec)
    assert model.batch_overhead_ms == pytest.approx(30.0)
    assert model.scheduler_ms_per_message == pytest.approx(160.0 / 4)  # the slots' time per message received
    # five jobs, one after another, each batch 30 ms longer; four Scheduler messages of 40 ms between them
    assert simulate(model, 1)["makespan_s"] == pytest.approx(0.5 + 5 * 0.03 + 4 * 0.04)
    on_aws = model_of(rec, on="aws")
    assert on_aws.batch_overhead_ms == 0.0 and on_aws.scheduler_ms_per_message == pytest.approx(0.0)
