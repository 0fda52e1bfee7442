"""Plain-text reports printed by the CLI."""

from __future__ import annotations

import numpy as np


def _fmt_metric(metric: dict) -> str:
    return "  ".join(f"{k} {metric[k]:7.2f}" for k in ("p50", "p90", "p99", "mean", "max"))


def stage_table(stage_ms: dict[str, list[float]]) -> list[str]:
    lines = [f"  {'stage':<13}{'jobs':>6}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}"]
    for stage in ("FIRST", "INTERMEDIATE", "LAST", "AGGREGATION", "MERGE"):
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
