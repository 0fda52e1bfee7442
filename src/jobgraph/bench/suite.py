"""`jobgraph bench`: the same graph on every implementation (scenarios 1, 2 and 3, plus optional Processor
memory/architecture settings of scenario 1), each run recorded (run.json), then one report that compares them
and recommends one per strategy.

The report is `jobgraph compare`'s (bench/compare.py: the same figures and page) with two sections in front:
- a summary table per implementation: makespan, jobs/s, route-job and AGGREGATION processing p50/p99, cold starts
  and mean INIT, AWS requests per job, cost per run and per 1,000 route jobs, cost by service;
- the recommendation per strategy, naming the implementation and its margin over the runner-up:
  *cheapest* (lowest cost per 1,000 route jobs), *fastest* (shortest makespan) and *balanced* (lowest product
  of cost per 1,000 route jobs and makespan: the smallest geometric mean of "times the cheapest's cost" and
  "times the fastest's makespan", so that 10 % cheaper weighs as much as 10 % faster).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jobgraph.bench.compare import CompareError, draw, write_report
from jobgraph.bench.record import ROUTE_STAGES, read

STRATEGIES = {
    "cheapest": "lowest cost per 1,000 route jobs",
    "fastest": "shortest makespan, start to run COMPLETED",
    "balanced": "lowest cost x makespan, each relative to the best",
}


@dataclass(frozen=True)
class Implementation:
    """One implementation to run: a scenario, with Processor settings (scenario 1) as template parameters."""

    scenario: int
    memory_mb: int | None = None
    architecture: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    def run_id(self, prefix: str) -> str:
        suffix = f"-{self.memory_mb}mb-{self.architecture.replace('_', '')}" if self.memory_mb else ""
        return f"{prefix}-s{self.scenario}{suffix}"


def implementations(scenarios: list[int], points=()) -> list[Implementation]:
    """Every scenario at its template's settings, then scenario 1 at each memory/architecture point (sweep.py's)."""
    chosen = [Implementation(n) for n in scenarios]
    chosen += [Implementation(1, p.memory_mb, p.architecture, p.parameters()) for p in points]
    return chosen


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def implementation_label(record: dict) -> str:
    """The scenario, and for scenario 1 the Processor's memory and architecture (the settings bench varies)."""
    processor = record.get("settings", {}).get("functions", {}).get("ProcessorFunction", {})
    name = f"scenario {record['scenario']} ({record['scenario_name']})"
    if record["scenario"] == 1 and processor:
        name += f" · Processor {processor.get('memory_mb')} MB {processor.get('architecture')}"
    return name


def summary(record: dict) -> dict:
    """One implementation's row of the summary table, every figure read from its run record."""
    samples = record.get("samples", {}).get("stage_ms", {})
    routes = [v for stage in ROUTE_STAGES for v in samples.get(stage) or []]
    aggregation = samples.get("AGGREGATION") or []
    init = [d for d in record.get("init_ms", {}).values() if d.get("count")]
    init_count = sum(d["count"] for d in init)
    cost = record.get("cost") or {}
    return {
        "implementation": implementation_label(record),
        "run_id": record["run_id"],
        "mode": record["mode"],
        "makespan_s": record["wall_seconds"],
        "jobs_per_s": record["jobs"] / record["wall_seconds"] if record["wall_seconds"] else None,
        "route_p50_ms": _percentile(routes, 50),
        "route_p99_ms": _percentile(routes, 99),
        "aggregation_p50_ms": _percentile(aggregation, 50),
        "aggregation_p99_ms": _percentile(aggregation, 99),
        "cold_starts": sum(f["cold_starts"] for f in record.get("functions", {}).values()),
        "init_mean_ms": sum(d["mean"] * d["count"] for d in init) / init_count if init_count else None,
        "requests_per_job": record.get("api_requests", {}).get("per_job"),
        "cost_usd": cost.get("usd"),
        "per_1000_route_jobs_usd": cost.get("per_1000_route_jobs_usd"),
        "cost_by_service_usd": cost.get("by_service_usd", {}),
    }


def _margin(best: float, runner_up: float) -> float:
    """How much lower ``best`` is than ``runner_up``, as a share of the runner-up."""
    return 1 - best / runner_up if runner_up else 0.0


def recommend(rows: list[dict]) -> dict[str, dict]:
    """Per strategy: the implementation chosen, its figure, the runner-up and the margin (None when fewer than two
    implementations have the figures it needs)."""
    priced = [r for r in rows if r["per_1000_route_jobs_usd"] is not None]
    scores = {
        "cheapest": [(r["per_1000_route_jobs_usd"], r) for r in priced],
        "fastest": [(r["makespan_s"], r) for r in rows],
    }
    if priced:
        cheapest = min(r["per_1000_route_jobs_usd"] for r in priced)
        fastest = min(r["makespan_s"] for r in priced)
        scores["balanced"] = [
            (math.sqrt(r["per_1000_route_jobs_usd"] / cheapest * r["makespan_s"] / fastest), r) for r in priced
        ] if cheapest > 0 and fastest > 0 else []  # fmt: skip
    else:
        scores["balanced"] = []
    chosen = {}
    for strategy, scored in scores.items():
        ranked = sorted(scored, key=lambda pair: pair[0])
        if len(ranked) < 2:
            chosen[strategy] = None
            continue
        (best, row), (second, other) = ranked[0], ranked[1]
        chosen[strategy] = {
            "implementation": row["implementation"],
            "run_id": row["run_id"],
            "score": best,
            "runner_up": other["implementation"],
            "runner_up_score": second,
            "margin": _margin(best, second),
        }
    return chosen


def check_same_graph(records: list[dict]) -> None:
    """The implementations must have run the same graph, or the comparison says nothing."""
    shapes = {(r["sequences"], r["jobs"], r.get("settings", {}).get("scenarios"), r["kind"]) for r in records}
    if len(shapes) > 1:
        runs = ", ".join(f"{r['run_id']} ({r['sequences']} sequences, {r['jobs']} jobs)" for r in records)
        raise CompareError(f"bench compares one graph on several implementations; these runs differ: {runs}")


def _money(value: float | None, digits: int = 6) -> str:
    return f"{value:.{digits}f}" if value is not None else "n/a"


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "n/a"


def summary_table(rows: list[dict]) -> str:
    head = (
        "implementation", "run", "makespan s", "jobs/s", "route p50 ms", "route p99 ms", "AGGREGATION p50 ms",
        "AGGREGATION p99 ms", "cold starts", "INIT mean ms", "AWS requests/job", "cost per run USD",
        "USD / 1,000 route jobs", "cost by service USD",
    )  # fmt: skip
    body = []
    for r in rows:
        by_service = ", ".join(f"{s} {usd:.6f}" for s, usd in sorted(r["cost_by_service_usd"].items()))
        cells = (
            r["implementation"], r["run_id"], f"{r['makespan_s']:.2f}",
            f"{r['jobs_per_s']:.2f}" if r["jobs_per_s"] is not None else "n/a",
            _ms(r["route_p50_ms"]), _ms(r["route_p99_ms"]), _ms(r["aggregation_p50_ms"]), _ms(r["aggregation_p99_ms"]),
            r["cold_starts"], _ms(r["init_mean_ms"]),
            f"{r['requests_per_job']:.2f}" if r["requests_per_job"] is not None else "n/a",
            _money(r["cost_usd"]), _money(r["per_1000_route_jobs_usd"], 4), by_service or "n/a",
        )  # fmt: skip
        body.append(
            f'<tr data-run="{html.escape(r["run_id"])}">'
            + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells)
            + "</tr>"
        )
    header = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    return f'<table id="summary">{header}{"".join(body)}</table>'


def recommendation_lines(chosen: dict[str, dict]) -> list[str]:
    """The recommendation in words (the report's section and the command's output)."""
    lines = []
    for strategy, what in STRATEGIES.items():
        pick = chosen.get(strategy)
        if pick is None:
            lines.append(f"{strategy}: no recommendation (fewer than two implementations with the figures: {what})")
            continue
        if strategy == "cheapest":
            figures = f"${pick['score']:.4f} per 1,000 route jobs, {pick['margin']:.1%} cheaper than"
        elif strategy == "fastest":
            figures = f"{pick['score']:.2f} s, {pick['margin']:.1%} faster than"
        else:
            figures = f"score {pick['score']:.3f}, {pick['margin']:.1%} lower than"
        lines.append(
            f"{strategy} ({what}): {pick['implementation']} [{pick['run_id']}] — {figures} "
            f"{pick['runner_up']} ({pick['runner_up_score']:.4g})"
        )
    return lines


def recommendation_html(chosen: dict[str, dict], rows: list[dict]) -> str:
    items = "".join(
        f'<li data-strategy="{strategy}">{html.escape(line)}</li>'
        for strategy, line in zip(STRATEGIES, recommendation_lines(chosen), strict=True)
    )
    local = any(r["mode"] == "local" for r in rows)
    caveat = (
        "<p>Local runs: every worker is a process on this machine and every request goes to one local server, so "
        "memory and architecture change the price, not the speed; makespans move with the machine's load.</p>"
        if local
        else ""
    )
    balanced = (
        "<p><b>balanced</b> ranks implementations by √((cost per 1,000 route jobs ÷ the cheapest's) × (makespan ÷ the "
        "fastest's)): a setting 10 % dearer must be about 10 % faster to rank the same.</p>"
    )
    return f'<section id="recommendation"><h2>Recommendation</h2><ul>{items}</ul>{balanced}{caveat}</section>'


def bench_report(run_dirs: list[Path], out: Path) -> tuple[Path, list[dict], dict]:
    """The comparison of the runs in ``run_dirs`` with the summary table and the recommendation in front."""
    if len(run_dirs) < 2:
        raise CompareError("bench compares at least two implementations")
    records = [read(d) for d in run_dirs]
    check_same_graph(records)
    rows = [summary(r) for r in records]
    chosen = recommend(rows)
    out.mkdir(parents=True, exist_ok=True)
    figures = draw(records, out)
    preamble = (
        f"<h2>Summary per implementation</h2>{summary_table(rows)}{recommendation_html(chosen, rows)}"
        "<h2>Runs side by side</h2>"
    )
    title = f"jobgraph bench: {len(records)} implementations of one graph ({records[0]['sequences']} sequences)"
    return write_report(records, figures, out, heading=title, preamble=preamble), rows, chosen
