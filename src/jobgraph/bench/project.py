"""`jobgraph project RUN_DIR --sequences N`: makespan and cost of N sequences on a recorded run's implementation,
by discrete-event simulation (simpy) of its job graph, fed with what the run measured.

What the model takes from the run record (bench/record.py):
- the graph's shape: routes per sequence (the projection repeats the run's sequences, in order, to N);
- per job: its stage's processing time (every job's, resampled) plus the runner's per-job overhead, i.e. what
  the runner was busy with beyond the stage work (idempotency and job records, SQS calls, heartbeats):
  ``(sum of invocation or batch times - sum of stage times) / jobs``;
- the Scheduler's (queue graphs) busy time per message it scheduled;
- INIT of a new execution environment (a cold start), paid by each worker's first invocation;
- the starter (StartRun, or scenario 3's PrepareRun), its time per sequence (it plans and stores every sequence);
- the MERGE job, its time per sequence (it reads every sequence's percentiles).
And the stack's settings: batch size, workers per event source (Lambda concurrency; locally the workers this
machine runs), ECS tasks, the Distributed Map's concurrency (SequenceConcurrency).

The simulated graph is the one the code runs: StartRun puts each sequence's first job on the incoming queue;
the runner (Processor workers, ECS tasks) takes batches of up to ``batch_size`` jobs — one per FIFO message
group, so one job per aircraft in flight — runs them one after another and sends the completions when the batch
is done; the Scheduler takes batches of completions and sends each sequence's next job, the AGGREGATION after
the last route, and the MERGE once every sequence is aggregated. Scenario 3: at most ``map_concurrency``
sequences are walked at once, one job at a time each, every job a Lambda task from a pool of ``task_concurrency``
environments, with ``gap_ms`` of Step Functions latency between a job and the next.

``--on aws`` projects onto the stack's AWS settings (template parameters of the record, or the templates'
defaults) with the documented quotas as limits (AWS_QUOTAS) and the assumptions of AWS_ASSUMPTIONS; everything
the projection assumed is listed in its result.
"""

from __future__ import annotations

import numpy as np

from jobgraph.bench.record import ROUTE_STAGES
from jobgraph.bench.simulation import Model, ProjectionError, on_lanes, simulate
from jobgraph.core.models import ExecType

# a sequence's jobs: its routes, then its AGGREGATION
SEQUENCE_STAGES = (*ROUTE_STAGES, ExecType.AGGREGATION.value)
STARTERS = ("StartRunFunction", "PrepareRunFunction")
RUNNER_FUNCTION = {1: "ProcessorFunction", 3: "StepTaskFunction"}
SCENARIO_2_GROUP_CONCURRENCY = 10  # templates/scenario-2.yaml: the worker's GROUP_CONCURRENCY
SCHEDULER = "SchedulerFunction"

# Documented AWS defaults (per account and region) that can bound a run of this graph; each one a rate a
# projection checks its makespan against (units per job x jobs / rate).
AWS_QUOTAS = {
    "lambda_concurrency": (1000, "Lambda concurrent executions per account and region (default quota)"),
    "sqs_fifo_messages_per_s": (
        3000,
        "SQS FIFO without high throughput mode: 300 API calls/s per action, 10 messages per batch call",
    ),
    "sfn_transitions_per_s": (
        5000,
        "Step Functions Standard state transitions: refill 5,000/s (us-east-1, us-west-2, eu-west-1; 800/s elsewhere)",
    ),
    "dynamodb_wru_per_s": (40000, "DynamoDB on-demand table write throughput (default table quota 40,000 WRU/s)"),
}
# What AWS does not document and the run cannot measure when it ran locally: stated, overridable in code.
AWS_ASSUMPTIONS = {
    "hop_ms": (
        20.0,
        "latency from a message sent to its receipt by a polling event source or ECS task (long polling)",
    ),
    "sfn_gap_ms": (
        50.0,
        "Step Functions latency between a job's task and the next (Map iteration start, state transitions)",
    ),
    "ecs_tasks": (2, "ECS tasks running (make scale-up's DESIRED_COUNT; the template's DesiredCount is 0)"),
}
# templates' defaults (template.yaml, templates/scenario-*.yaml) for records that carry no stack parameters
TEMPLATE_DEFAULTS = {
    "ProcessorBatchSize": "10",
    "ProcessorMaxConcurrency": "10",
    "SchedulerReservedConcurrency": "10",
    "SequenceConcurrency": "40",
    "WorkerCpu": "256",
    "WorkerMemory": "512",
    "Architecture": "x86_64",
}


def _samples(record: dict, kind: str, name: str) -> list[float]:
    return record.get("samples", {}).get(kind, {}).get(name) or []


def _parameters(record: dict) -> dict:
    """The stack's template parameters as the record has them (deployed values, then `--parameter` overrides)."""
    settings = record.get("settings", {})
    return {**settings.get("stack_parameters", {}), **settings.get("parameters", {})}


def _parameter(record: dict, key: str) -> str:
    return str(_parameters(record).get(key, TEMPLATE_DEFAULTS[key]))


def _lanes(record: dict) -> int:
    """Message groups of a batch the runner ran at once: the stack's GroupConcurrency (scenario 1), the ECS
    task definition's GROUP_CONCURRENCY (scenario 2: 10); 1 where the record has neither (before 16.2)."""
    found = _parameters(record).get("GroupConcurrency")
    if found is not None:
        return int(found)
    return SCENARIO_2_GROUP_CONCURRENCY if record["scenario"] == 2 else 1


def _jobs_wait_apart(record: dict, on: str) -> bool:
    """Whether a batch's jobs waited on their services each on its own: on AWS, or in a local run under a service
    latency profile (their requests' service times overlap). A local run without one is bound by the one serial
    server: a batch's jobs take turns on it, so their times add up (the scale of busy over processing time)."""
    return on == "aws" or record.get("mode") == "AWS" or bool(record.get("settings", {}).get("service_latency"))


def expected_batch_ms(samples: np.ndarray, jobs_per_batch: float, lanes: int, draws: int = 400) -> float:
    """The mean time of a batch of ``jobs_per_batch`` jobs (a fraction: batches of its floor and ceiling in
    proportion) drawn from ``samples`` and laid out on ``lanes`` lanes."""
    rng = np.random.default_rng(0)
    low, high = int(np.floor(jobs_per_batch)), int(np.ceil(jobs_per_batch))
    total = 0.0
    for _ in range(draws):
        size = high if rng.random() < jobs_per_batch - low else low
        total += on_lanes(list(rng.choice(samples, size=max(1, size))), lanes)
    return total / draws


def _slot_overhead_ms(record: dict, function: str) -> float:
    """Per batch, the local event source's time beyond the invocation (0 where the record has no slot times)."""
    slots, invocations = _samples(record, "slot_ms", function), _samples(record, "invocation_ms", function)
    if not slots or not invocations:
        return 0.0
    # medians: a cold start's slot also holds the worker's start and INIT, which the model adds on its own
    return max(0.0, float(np.median(slots)) - float(np.median(invocations)))


def _init_ms(record: dict, function: str) -> float:
    return float(record.get("init_ms", {}).get(function, {}).get("mean", 0.0) or 0.0)


def _busy_ms(record: dict, function: str) -> float | None:
    """The function's invocation times added up: every invocation's (local runs), else its billed duration less
    INIT from its REPORT lines (runs on AWS record no invocation of their own); None: not recorded."""
    samples = _samples(record, "invocation_ms", function)
    if samples:
        return float(sum(samples))
    usage = (record.get("usage") or {}).get("lambda", {}).get(function)
    if usage and usage.get("requests"):
        return float(usage["duration_ms"]) - float(sum(usage.get("init_durations_ms") or []))
    return None


def _mapping(record: dict, function: str, key: str):
    """An event source setting of the function: as the local runtime ran it, else as deployed."""
    value = record.get("functions", {}).get(function, {}).get(key)
    return value if value is not None else record.get("settings", {}).get("mappings", {}).get(function, {}).get(key)


def chains_of(record: dict) -> list[int]:
    chains = record.get("graph", {}).get("routes_per_sequence") or []
    if not chains or len(chains) != record["sequences"]:
        raise ProjectionError(
            f"run {record['run_id']}: its record has no routes per sequence (recorded before `jobgraph project` "
            "existed, or a synthetic load): rerun it with this version"
        )
    return chains


def model_of(record: dict, on: str = "run") -> Model:
    """The model of ``record``'s run: on its own platform and settings (``run``) or on AWS defaults (``aws``)."""
    if record.get("kind") != "graph":
        raise ProjectionError(f"run {record['run_id']}: only graph runs can be projected, not a {record['kind']}")
    scenario, chains = record["scenario"], chains_of(record)
    stage_samples = record["samples"]["stage_ms"]
    stage_ms = {s: np.asarray(stage_samples.get(s) or [0.0], dtype=float) for s in SEQUENCE_STAGES}
    merge = stage_samples.get("MERGE") or [0.0]
    processed_ms = sum(sum(stage_samples.get(s) or []) for s in (*SEQUENCE_STAGES, "MERGE"))
    jobs = record["jobs"]
    functions = record.get("functions", {})
    if scenario == 2:
        if not record.get("services"):
            raise ProjectionError(
                f"run {record['run_id']}: scenario 2 record without its ECS service's batch times (a run on AWS "
                "records none yet): project a local run of scenario 2"
            )
        service_name, service = next(iter(record["services"].items()))
        busy_ms = sum(_samples(record, "batch_ms", service_name))
        concurrency, init = int(service["tasks"]), 0.0
        batch_size = 10  # the worker receives up to 10 messages per call
        batches = len(_samples(record, "batch_ms", service_name)) or int(service.get("batches") or 1)
        runner_received = int(service.get("received") or jobs)
    else:
        runner = RUNNER_FUNCTION[scenario]
        busy_ms = _busy_ms(record, runner)
        if busy_ms is None:
            raise ProjectionError(f"run {record['run_id']}: its record has no invocation times of {runner}")
        concurrency = int(_mapping(record, runner, "workers") or functions.get(runner, {}).get("workers") or 1)
        batch_size = int(_mapping(record, runner, "batch_size") or 1)
        init = _init_ms(record, runner)
        batches = len(_samples(record, "invocation_ms", runner)) or int(
            functions.get(runner, {}).get("invocations") or 1
        )
        runner_received = int(functions.get(runner, {}).get("received") or jobs)
    starter = next((s for s in STARTERS if _busy_ms(record, s) is not None), None)
    starter_ms = _busy_ms(record, starter) if starter else 0.0
    model = Model(
        scenario=scenario,
        chains=chains,
        stage_ms=stage_ms,
        job_overhead_ms=max(0.0, (busy_ms - processed_ms) / jobs),
        job_scale=min(1.0, busy_ms / processed_ms) if processed_ms else 1.0,
        merge_ms_per_sequence=float(np.mean(merge)) / record["sequences"],
        starter_ms_per_sequence=starter_ms / record["sequences"],
        starter_init_ms=_init_ms(record, starter) if starter else 0.0,
        runner_concurrency=concurrency,
        runner_init_ms=init,
        batch_size=batch_size,
        on=on,
    )
    if on == "run" and scenario == 1:
        # what the local event source adds to each batch beyond the invocation (the event's way to the worker
        # and back, the log lines, the deletes): the slot's time less the invocation's, per batch
        model.batch_overhead_ms = _slot_overhead_ms(record, runner)
    lanes = _lanes(record) if scenario in (1, 2) and _jobs_wait_apart(record, on) else 1
    if lanes > 1 and model.job_scale < 1 and batches > 1:
        # the runner overlapped a batch's jobs: a batch is its jobs on the lanes plus what it does once (the
        # outcomes written together, the completions sent), that part estimated as the mean batch's time less
        # its jobs' laid out on the lanes (the MERGE taken out: its own batch of one, its time measured)
        pooled = np.concatenate([stage_ms[s] for s in SEQUENCE_STAGES])
        jobs_per_batch = max(1.0, (runner_received - 1) / (batches - 1))
        expected = expected_batch_ms(pooled, jobs_per_batch, lanes) * (batches - 1) + float(np.mean(merge))
        model.lanes, model.job_scale, model.job_overhead_ms = lanes, 1.0, 0.0
        model.batch_overhead_ms += max(0.0, (busy_ms - expected) / batches)
    if scenario in (1, 2):
        scheduler_ms = _busy_ms(record, SCHEDULER)
        if scheduler_ms is None:
            raise ProjectionError(f"run {record['run_id']}: its record has no Scheduler figures")
        # every job's completion is one message to the Scheduler (as many as it received, where that is recorded)
        received = functions.get(SCHEDULER, {}).get("received") or record["jobs"]
        model.scheduler_concurrency = int(_mapping(record, SCHEDULER, "workers") or 1)
        slots = _samples(record, "slot_ms", SCHEDULER)
        if slots and on == "run":  # the slots' time, less the cold starts' INIT (the model adds INIT itself)
            colds = int(functions.get(SCHEDULER, {}).get("cold_starts") or 0)
            scheduler_ms = max(scheduler_ms, sum(slots) - colds * _init_ms(record, SCHEDULER))
        model.scheduler_ms_per_message = scheduler_ms / received
        model.scheduler_init_ms = _init_ms(record, SCHEDULER)
        # the Scheduler keeps up (its queue holds at most a few batches): its median queue wait is a queue hop's
        # latency — from SendMessage to a poller's receive — rather than waiting for a free worker
        waits = _samples(record, "queue_wait_ms", SCHEDULER)
        if waits:
            model.hop_ms = float(np.median(waits))
        elif record["mode"] == "AWS":  # AWS reports no queue wait per message: the stated assumption
            model.hop_ms = AWS_ASSUMPTIONS["hop_ms"][0]
    else:
        model.map_concurrency = int(_parameter(record, "SequenceConcurrency"))
    if on == "aws":
        _on_aws(model, record)
    elif on != "run":
        raise ProjectionError(f"--on {on!r}: choose run or aws")
    return model


def busy_ms_per_job(record: dict) -> float:
    """What the run's workers were busy with per job (runner and Scheduler): how fast the machine ran this run's
    jobs, whatever the graph's size — the measure `scaled` compares two runs by."""
    samples = record.get("samples", {})
    busy = sum(sum(v) for v in samples.get("batch_ms", {}).values())
    busy += sum(sum(samples.get("invocation_ms", {}).get(f) or []) for f in (*RUNNER_FUNCTION.values(), SCHEDULER))
    return busy / record["jobs"]


def scaled(model: Model, factor: float) -> Model:
    """The model with every measured time multiplied by ``factor`` (a faster or slower machine)."""
    from dataclasses import replace

    return replace(
        model,
        stage_ms={stage: samples * factor for stage, samples in model.stage_ms.items()},
        job_overhead_ms=model.job_overhead_ms * factor,
        merge_ms_per_sequence=model.merge_ms_per_sequence * factor,
        starter_ms_per_sequence=model.starter_ms_per_sequence * factor,
        starter_init_ms=model.starter_init_ms * factor,
        runner_init_ms=model.runner_init_ms * factor,
        batch_overhead_ms=model.batch_overhead_ms * factor,
        scheduler_ms_per_message=model.scheduler_ms_per_message * factor,
        scheduler_init_ms=model.scheduler_init_ms * factor,
    )


def _on_aws(model: Model, record: dict) -> None:
    """The stack's settings on AWS, capped by the account's Lambda concurrency; the stated assumptions."""
    lambdas = AWS_QUOTAS["lambda_concurrency"][0]
    model.hop_ms = AWS_ASSUMPTIONS["hop_ms"][0]
    if model.scenario == 1:
        model.runner_concurrency = min(int(_parameter(record, "ProcessorMaxConcurrency")), lambdas)
        model.batch_size = int(_parameter(record, "ProcessorBatchSize"))
    elif model.scenario == 2:
        model.runner_concurrency = int(AWS_ASSUMPTIONS["ecs_tasks"][0])
    else:
        model.runner_concurrency = min(model.map_concurrency, lambdas)
        model.gap_ms = AWS_ASSUMPTIONS["sfn_gap_ms"][0]
    if model.scenario in (1, 2):
        model.scheduler_concurrency = min(int(_parameter(record, "SchedulerReservedConcurrency")), lambdas)
    if record["mode"] != "AWS":
        model.notes.append(
            "service times are the local run's: each job's requests went to this machine's local cloud "
            "(one request at a time, CPU shared with the workers) instead of AWS; project from a run on AWS "
            "(`jobgraph run --stack`) for AWS-measured service times"
        )


def _quota_floors(record: dict, jobs: int) -> list[dict]:
    """The least time the documented AWS quotas allow for ``jobs`` jobs of this run's kind (the rates per job
    are the run's own: DynamoDB write units, state transitions; one message per job on each FIFO queue)."""
    usage, run_jobs = record.get("usage") or {}, record["jobs"]
    per_job = {"dynamodb_wru_per_s": (usage.get("dynamodb", {}).get("wru") or 0) / run_jobs}
    if record["scenario"] == 3:
        per_job["sfn_transitions_per_s"] = (usage.get("stepfunctions", {}).get("transitions") or 0) / run_jobs
    else:
        per_job["sqs_fifo_messages_per_s"] = 1.0
    return [
        {"quota": key, "limit_per_s": AWS_QUOTAS[key][0], "per_job": rate, "floor_s": jobs * rate / AWS_QUOTAS[key][0],
         "what": AWS_QUOTAS[key][1]}
        for key, rate in per_job.items()
    ]  # fmt: skip


def _cost(record: dict, model: Model, jobs: int, route_jobs: int, makespan_s: float) -> dict | None:
    """The run's cost per job, by service, times the projected jobs; Fargate by the hour (tasks x makespan)."""
    cost = record.get("cost")
    if not cost:
        return None
    from jobgraph.bench.prices import price_table

    by_service = {
        service: usd / record["jobs"] * jobs for service, usd in cost["by_service_usd"].items() if service != "Fargate"
    }
    if model.scenario == 2:
        prices = price_table(cost["price_table"]["region"], cost["price_table"]["version"])["prices"]
        arch = _parameter(record, "Architecture")
        vcpu, gb = int(_parameter(record, "WorkerCpu")) / 1024, int(_parameter(record, "WorkerMemory")) / 1024
        hours = model.runner_concurrency * max(makespan_s, 60.0) / 3600  # Fargate bills a minute at least
        by_service["Fargate"] = hours * (
            vcpu * prices["fargate_vcpu_hour"][arch] + gb * prices["fargate_gb_hour"][arch]
        )
    total = sum(by_service.values())
    return {
        "usd": total,
        "per_1000_route_jobs_usd": total / route_jobs * 1000 if route_jobs else None,
        "by_service_usd": by_service,
        "price_table": cost["price_table"],
    }


def assumptions(record: dict, model: Model) -> list[str]:
    """Every assumption of a projection, in words (printed with it and written into docs/benchmarks.md)."""
    said = [
        f"graph: the run's {len(model.chains)} sequences repeated in order to the projected size "
        f"(mean {np.mean(model.chains):.2f} routes per sequence)",
        "service time per job: a processing time drawn from the run's jobs of the same stage, plus the runner's "
        f"measured overhead per job ({model.job_overhead_ms:.1f} ms: its busy time beyond stage processing / jobs)"
        + (
            f", times {model.job_scale:.2f} (the runner overlapped a batch's jobs: busy time / processing time)"
            if model.job_scale < 1
            else ""
        )
        + (
            f"; a batch's jobs on {model.lanes} lanes at once (its message groups), each job on the first lane free"
            if model.lanes > 1
            else ""
        )
        + (
            f"; {model.batch_overhead_ms:.1f} ms per batch beyond its jobs (written and sent together"
            + (
                ", and the local event source's own time per batch: its slot's time less the invocation's)"
                if model.on == "run" and model.scenario == 1
                else ")"
            )
            if model.batch_overhead_ms
            else ""
        ),
        f"MERGE: {model.merge_ms_per_sequence:.2f} ms per sequence (it reads every sequence's percentiles); "
        f"starter: {model.starter_ms_per_sequence:.2f} ms per sequence + INIT {model.starter_init_ms:.0f} ms",
        f"cold starts: INIT of {model.runner_init_ms:.0f} ms (runner) on each worker's first invocation"
        + (f", {model.scheduler_init_ms:.0f} ms (Scheduler)" if model.scheduler_concurrency else ""),
        "cost: the run's cost per job by service times the projected jobs"
        + ("; Fargate: tasks x makespan at the task's vCPU and memory" if model.scenario == 2 else ""),
        "no failures, retries or throttling beyond the quotas listed; every worker equally fast",
    ]
    if model.scenario in (1, 2):
        runner = "ECS tasks" if model.scenario == 2 else "Processor workers"
        said.append(
            f"queue graph: {model.runner_concurrency} {runner} taking batches of up to {model.batch_size} (one job per "
            f"aircraft in flight: FIFO groups), "
            + ("jobs of a batch on its lanes" if model.lanes > 1 else "jobs of a batch one after another")
            + ", completions sent at the batch's end; "
            + f"{model.scheduler_concurrency} Scheduler workers at {model.scheduler_ms_per_message:.1f} ms per message"
        )
    else:
        said.append(
            f"state machine: {model.map_concurrency} sequences at once (Distributed Map MaxConcurrency), one job at a "
            f"time each, {model.runner_concurrency} StepTask environments, {model.gap_ms:.0f} ms between jobs"
        )
    if model.on == "aws":
        if model.scenario in (1, 2):
            said.append(f"queue hop: {model.hop_ms:.0f} ms ({AWS_ASSUMPTIONS['hop_ms'][1]})")
        if model.scenario == 2:
            said.append(f"ECS: {model.runner_concurrency} tasks ({AWS_ASSUMPTIONS['ecs_tasks'][1]})")
        if model.scenario == 3:
            said.append(f"Step Functions: {AWS_ASSUMPTIONS['sfn_gap_ms'][1]}: {model.gap_ms:.0f} ms (not documented)")
        said.append(
            f"Lambda concurrency at most {AWS_QUOTAS['lambda_concurrency'][0]} ({AWS_QUOTAS['lambda_concurrency'][1]})"
        )
    return said + model.notes


def _warnings(record: dict, model: Model, sequences: int) -> list[str]:
    """What would stop the projected run on this stack: the MERGE job outlasting its function's timeout."""
    runner = RUNNER_FUNCTION.get(model.scenario)
    timeout_s = record.get("settings", {}).get("functions", {}).get(runner, {}).get("timeout_s") if runner else None
    merge_s = (model.merge_ms_per_sequence * sequences + model.job_overhead_ms) * model.job_scale / 1000
    if timeout_s and merge_s > timeout_s:
        return [
            f"MERGE of {sequences:,} sequences: about {merge_s:.0f} s, over {runner}'s timeout of {timeout_s} s "
            "(Lambda allows 900 s at most): the run would not finish on this stack as configured"
        ]
    return []


def project(record: dict, sizes: list[int], on: str = "run", seed: int = 0, speed: float = 1.0) -> dict:
    """Projections of ``record``'s run to each size in ``sizes``, with the replay of the run itself (the model
    at the run's own size, against its measured makespan: how well the model explains what it was fed).

    ``speed``: every measured time times this factor — the validation's way to take a loaded machine's changing
    speed out of the comparison of two runs (benchmarks/bench_projection.py).

    What the replay leaves unexplained (worker processes starting on a loaded machine, the harness noticing the
    end) is reported, not carried to other sizes: at small sizes it is mostly the machine's noise."""
    model = model_of(record, on)
    replay = simulate(model, record["sequences"], seed)
    model = scaled(model, speed) if speed != 1.0 else model
    rows = []
    for sequences in sizes:
        sim = simulate(model, sequences, seed)
        floors = _quota_floors(record, sim["jobs"]) if on == "aws" else []
        binding = max(floors, key=lambda f: f["floor_s"], default=None)
        makespan = max(sim["makespan_s"], binding["floor_s"] if binding else 0.0)
        rows.append(
            {
                **sim,
                "simulated_s": sim["makespan_s"],
                "makespan_s": makespan,
                "jobs_per_s": sim["jobs"] / makespan,
                "bound_by": binding["quota"] if binding and binding["floor_s"] > sim["makespan_s"] else "settings",
                "quota_floors": floors,
                "warnings": _warnings(record, model, sequences),
                "cost": _cost(record, model, sim["jobs"], sim["route_jobs"], makespan),
            }
        )
    return {
        "run_id": record["run_id"],
        "scenario": record["scenario"],
        "mode": record["mode"],
        "on": on,
        "measured": {"sequences": record["sequences"], "makespan_s": record["wall_seconds"]},
        "replay": {
            "makespan_s": replay["makespan_s"],
            "error": replay["makespan_s"] / record["wall_seconds"] - 1 if on == "run" else None,
        },
        "projections": rows,
        "assumptions": assumptions(record, model),
    }
