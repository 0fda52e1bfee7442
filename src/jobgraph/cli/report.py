"""Plain-text reports printed by the CLI."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

import numpy as np

from jobgraph.core.models import ExecType

if TYPE_CHECKING:
    from jobgraph.runs.outcome import RunOutcome


def _fmt_metric(metric: dict) -> str:
    return "  ".join(f"{k} {metric[k]:7.2f}" for k in ("p50", "p90", "p99", "mean", "max"))


def stage_table(stage_ms: dict[str, list[float]]) -> list[str]:
    lines = [f"  {'stage':<13}{'jobs':>6}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}"]
    for stage in ExecType:  # in the graph's order, then the synthetic load's
        values = stage_ms.get(stage)
        if not values:
            continue
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        lines.append(f"  {stage:<13}{len(values):>6}{p50:>10.1f}{p90:>10.1f}{p99:>10.1f}{max(values):>10.1f}")
    return lines


def merged_lines(merged: dict) -> list[str]:
    return [
        f"  final arrival delay (min)    {_fmt_metric(merged['final_arrival_delay_min'])}",
        f"  total departure delay (min)  {_fmt_metric(merged['total_departure_delay_min'])}",
        f"  curfew breach probability    {merged['curfew_breach_probability']:.4f}",
    ]


def print_solve_report(report) -> None:
    routes_per_s = report.route_jobs / report.wall_seconds if report.wall_seconds else float("inf")
    lines = [
        f"run {report.run_id}: {report.sequences} sequences, {report.jobs} jobs, "
        f"{report.merged['scenarios_per_sequence']} scenarios each",
        f"  wall time {report.wall_seconds:.2f} s, {routes_per_s:.0f} routes/s",
        *stage_table(report.stage_ms),
        *merged_lines(report.merged),
        f"results: {report.out_dir}",
    ]
    print("\n".join(lines))


def _percentiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    p50, p90, p99 = np.percentile(values, [50, 90, 99])
    return f"p50 {p50:.0f} ms, p90 {p90:.0f} ms, p99 {p99:.0f} ms, max {max(values):.0f} ms"


def cost_lines(record: dict) -> list[str]:
    """The cost headline and its split by service, from a run record (bench/record.py)."""
    cost = record["cost"]
    if cost is None:
        return ["  cost: not measured (no usage counters for this mode; see docs/benchmarks.md)"]
    table = cost["price_table"]
    per_1000 = cost["per_1000_route_jobs_usd"]
    headline = f"  cost ${cost['usd']:.6f} (prices {table['version']}, {table['region']})"
    if per_1000 is not None:
        headline += f" = ${per_1000:.4f} per 1,000 {'route ' if record['kind'] == 'graph' else ''}jobs"
    split = ", ".join(f"{service} ${usd:.6f}" for service, usd in sorted(cost["by_service_usd"].items()))
    return [headline, f"    {split}"] if split else [headline]


def request_lines(record: dict) -> list[str]:
    requests = record["api_requests"]
    if not requests.get("total_requests"):
        return []
    by_service = ", ".join(
        f"{service} {sum(actions.values())}" for service, actions in sorted(requests["requests"].items())
    )
    return [f"  AWS requests {requests['total_requests']} ({requests['per_job']:.1f} per job): {by_service}"]


def print_run_report(outcome, record: dict | None = None) -> None:
    """Report of `jobgraph run`: throughput, per-stage processing time, queue wait, retries, DLQs, alarms."""
    jobs_per_s = outcome.jobs / outcome.wall_seconds if outcome.wall_seconds else float("inf")
    from jobgraph.runs.scenarios import scenario

    # scenario 3 starts a Step Functions execution and runs jobs in StepTask; the others use StartRun/Processor
    starter, runner = ("StartExecution", "StepTask") if outcome.scenario == 3 else ("StartRun", "Processor")
    if outcome.extra.get("services"):  # scenario 2: the Processor's code in ECS worker tasks
        runner = "ECS workers"
    lines = [
        f"run {outcome.run_id}, scenario {outcome.scenario} ({scenario(outcome.scenario).name}), "
        f"on {outcome.mode} stack {outcome.stack_name}: {outcome.sequences} sequences, "
        f"{outcome.jobs} jobs, {outcome.merged['scenarios_per_sequence']} scenarios each",
        f"  wall time {outcome.wall_seconds:.2f} s ({starter} to run COMPLETED), {jobs_per_s:.1f} jobs/s",
        f"  processing time per stage ({runner}, from the job records):",
        *stage_table(outcome.stage_ms),
    ]
    lines += runner_lines(outcome) + failure_lines(outcome)
    lines.extend(merged_lines(outcome.merged))
    if record is not None:
        lines.extend(request_lines(record))
        lines.extend(cost_lines(record))
    lines.append(f"results: {outcome.out_dir}")
    if outcome.dashboard_url:
        lines.append(f"dashboard: {outcome.dashboard_url}")
    if outcome.extra.get("log_dir"):
        lines.append(f"function logs: {outcome.extra['log_dir']}")
    print("\n".join(lines))


def runner_lines(outcome: RunOutcome) -> list[str]:
    """Per function (Lambda workers) and per ECS service: its workers, invocations, waits and faults."""
    lines: list[str] = []
    for name, figures in outcome.extra.get("functions", {}).items():
        lines.append(
            f"  {name}: {figures['workers']} workers, {figures['invocations']} invocations "
            f"({figures['cold_starts']} cold), {figures['errors']} errors, {figures['worker_deaths']} worker deaths, "
            f"{figures['redeliveries']} redeliveries, {figures['duplicates']} duplicates injected"
        )
        if figures.get("last_error"):
            lines.append(f"    last error: {figures['last_error'][:200]}")
        if figures["queue_wait_ms"]:
            lines.append(f"    queue wait {_percentiles(figures['queue_wait_ms'])}")
        lines.append(f"    invocation {_percentiles(figures['invocation_ms'])}")
    for name, figures in outcome.extra.get("services", {}).items():
        lines.append(
            f"  ECS service {name}: {figures['tasks']} tasks, {figures['batches']} batches, "
            f"{figures['received']} messages ({figures['retried']} returned for retry), "
            f"{figures['restarts']} task restarts, {figures['redeliveries']} redeliveries"
        )
        lines.append(f"    queue wait {_percentiles(figures['queue_wait_ms'])}")
        lines.append(f"    batch {_percentiles(figures['batch_ms'])}")
        if figures["faults"]:
            lines.append(f"    {_faults_injected(figures['faults'])}")
    return lines


def _faults_injected(faults: dict[str, int]) -> str:
    return "faults injected: " + ", ".join(f"{kind} {count}" for kind, count in sorted(faults.items()))


def failure_lines(outcome: RunOutcome) -> list[str]:
    """What went wrong and what came of it: faults, retries, the state machine's tasks, DLQs, triggers, alarms."""
    lines: list[str] = []
    retried = {job: n for job, n in outcome.attempts.items() if n > 1}
    if outcome.extra.get("faults"):
        lines.append(f"  {_faults_injected(outcome.extra['faults'])}")
    lines.append(f"  jobs retried: {len(retried)} (max attempts {max(outcome.attempts.values(), default=0)})")
    machine = outcome.extra.get("state_machine")
    if machine:
        if machine["child_executions"]:
            children = f" + {machine['child_histories_read']} of {machine['child_executions']} child executions"
        elif outcome.mode == "local":
            children = "; Map iterations run inside moto's engine, their retries are the errors above"
        else:
            children = ""
        lines.append(
            f"  state machine (history of the execution{children}): {machine['states_entered']} states entered, "
            f"{machine['tasks_scheduled']} Lambda tasks scheduled, {machine['tasks_failed']} failed and retried"
        )
    if outcome.dlq:
        lines.append("  dead-letter queues: " + ", ".join(f"{name} {count}" for name, count in outcome.dlq.items()))
    triggered = outcome.extra.get("downstream_triggers")
    if triggered is not None:
        lines.append(f"  downstream triggers (trigger DLQ {triggered['dlq']}):")
        for trigger in triggered["triggers"]:
            receipt = f" ({trigger['receipt']})" if trigger.get("receipt") else ""
            lines.append(f"    {trigger['status']:<17} {trigger['name']} -> {trigger['type']}{receipt}")
    for name, contents in outcome.dlq_contents.items():
        if contents:
            counted = Counter(contents)
            shown = ", ".join(f"{what} x{n}" if n > 1 else what for what, n in sorted(counted.items())[:8])
            more = f", ... ({len(counted) - 8} more)" if len(counted) > 8 else ""
            lines.append(f"    {name}: {shown}{more}")
    if outcome.alarms:
        lines.append("  alarms:")
        lines.extend(f"    {state:<17} {name}" for name, state in sorted(outcome.alarms.items()))
    return lines


def print_load_report(outcome, record: dict) -> None:
    """Report of `jobgraph load`: throughput, processing time, queue waits, requests and cost."""
    load = outcome.extra["load"]
    lines = [
        f"load {outcome.run_id}, scenario {outcome.scenario}, on {outcome.mode} stack {outcome.stack_name}: "
        f"{load['messages']} jobs of {load['work_duration_ms']} ms / {load['data_size_kb']} KiB, "
        f"{load['concurrency']} senders, {load['groups']} message groups",
        f"  sent in {load['send_seconds']:.2f} s; all completed in {outcome.wall_seconds:.2f} s: "
        f"{load['jobs_per_second']:.1f} jobs/s",
        *stage_table(outcome.stage_ms),
    ]
    for name, figures in outcome.extra.get("functions", {}).items():
        lines.append(
            f"  {name}: {figures['workers']} workers, {figures['invocations']} invocations "
            f"({figures['cold_starts']} cold), {figures['errors']} errors"
        )
        lines.append(f"    queue wait {_percentiles(figures['queue_wait_ms'])}")
    lines.append("  dead-letter queues: " + ", ".join(f"{name} {count}" for name, count in outcome.dlq.items()))
    lines.extend(request_lines(record))
    lines.extend(cost_lines(record))
    print("\n".join(lines))


def projection_lines(projection: dict) -> list[str]:
    """`jobgraph project`'s report: the replay of the run itself, one line per projected size, the assumptions."""
    measured, replay = projection["measured"], projection["replay"]
    where = "its own settings" if projection["on"] == "run" else "AWS (the stack's settings, default quotas)"
    lines = [
        f"projection of run {projection['run_id']} (scenario {projection['scenario']}, {projection['mode']}) on {where}",
        (
            f"  replay at the run's size ({measured['sequences']} sequences): simulated {replay['makespan_s']:.1f} s, "
            f"measured {measured['makespan_s']:.1f} s ({replay['error']:+.0%}: how much of the run the model explains)"
            if replay["error"] is not None
            else f"  at the run's size ({measured['sequences']} sequences) on AWS: {replay['makespan_s']:.1f} s "
            f"(the run itself: {measured['makespan_s']:.1f} s, {projection['mode']})"
        ),
        f"  {'sequences':>10}{'jobs':>10}{'makespan':>12}{'jobs/s':>9}{'cost USD':>12}{'USD/1k route':>14}  bound by",
    ]
    for row in projection["projections"]:
        cost = row["cost"] or {}
        usd = f"{cost['usd']:.4f}" if cost else "n/a"
        per_1000 = f"{cost['per_1000_route_jobs_usd']:.4f}" if cost.get("per_1000_route_jobs_usd") else "n/a"
        lines.append(
            f"  {row['sequences']:>10}{row['jobs']:>10}{duration(row['makespan_s']):>12}{row['jobs_per_s']:>9.1f}"
            f"{usd:>12}{per_1000:>14}  {row['bound_by']}"
        )
        lines.extend(f"    warning: {warning}" for warning in row["warnings"])
    lines.append("  assumptions:")
    lines.extend(f"    - {line}" for line in projection["assumptions"])
    return lines


def duration(seconds: float) -> str:
    """1.5 s, 12.0 min, 3.2 h."""
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
