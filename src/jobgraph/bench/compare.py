"""`jobgraph compare RUN_DIR…`: runs side by side, as PNG figures and one self-contained HTML report.

Figures (matplotlib, Agg backend, no display needed), each a PNG next to ``report.html``, which embeds
them as data URIs so the single HTML file can be mailed or attached to a ticket:
- wall time and time per job;
- processing time per stage, as box plots of every job's time (from run.json's samples);
- cost and cost per 1,000 route jobs, split by service;
- cold starts and retried jobs;
- when the runs differ only in Lambda memory and/or architecture: a sweep of cost per 1,000 route jobs
  against wall time, one point per setting (Lambda Power Tuning's chart, for a whole job graph).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

from jobgraph.bench.record import STAGES, read
from jobgraph.core.errors import JobGraphError

SWEEP_KEYS = ("memory_mb", "architecture")


class CompareError(JobGraphError):
    """The runs cannot be compared (too few, or records without the figures a chart needs)."""


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    path: Path


def label(run: dict) -> str:
    settings = run.get("settings", {})
    processor = settings.get("functions", {}).get("ProcessorFunction", {})
    parts = [run["run_id"], f"s{run['scenario']}"]
    if processor:
        parts.append(f"{processor.get('memory_mb')} MB {processor.get('architecture')}")
    return " · ".join(parts)


def sweep_settings(runs: list[dict]) -> list[dict] | None:
    """Per run, the memory/architecture of its functions, if that is all the runs differ in; else None."""

    def without_sweep(run: dict) -> tuple:
        settings = run.get("settings", {})
        functions = {
            name: {k: v for k, v in f.items() if k not in SWEEP_KEYS}
            for name, f in settings.get("functions", {}).items()
        }
        parameters = {
            k: v for k, v in settings.get("parameters", {}).items() if k not in ("ProcessorMemorySize", "Architecture")
        }
        rest = {
            k: v for k, v in settings.items() if k not in ("functions", "parameters", "template", "stack_parameters")
        }
        return (run["scenario"], run["sequences"], repr(sorted(rest.items())), repr(functions), repr(parameters))

    if len(runs) < 2 or len({without_sweep(r) for r in runs}) != 1:
        return None
    swept = [
        {name: {k: f.get(k) for k in SWEEP_KEYS} for name, f in r.get("settings", {}).get("functions", {}).items()}
        for r in runs
    ]
    return swept if len({repr(s) for s in swept}) > 1 else None


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def draw(runs: list[dict], out: Path) -> list[Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [label(r) for r in runs]
    figures = []

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.barh(labels, [r["wall_seconds"] for r in runs], color="#4477aa")
    left.set_xlabel("wall time (s), StartRun to run COMPLETED")
    right.barh(labels, [(r["seconds_per_job"] or 0) * 1000 for r in runs], color="#66ccee")
    right.set_xlabel("time per job (ms)")
    right.set_yticks(range(len(labels)), [""] * len(labels))
    _save(fig, out / "time.png")
    figures.append(Figure("time", "Wall time and time per job", out / "time.png"))

    stages = [s for s in STAGES if any(r.get("samples", {}).get("stage_ms", {}).get(s) for r in runs)]
    if stages:
        fig, axes = plt.subplots(1, len(stages), figsize=(3.2 * len(stages), 3.8), squeeze=False)
        for axis, stage in zip(axes[0], stages, strict=True):
            data = [r.get("samples", {}).get("stage_ms", {}).get(stage) or [0.0] for r in runs]
            axis.boxplot(data, showfliers=False)
            axis.set_title(stage)
            axis.set_xticks(range(1, len(runs) + 1), [r["run_id"] for r in runs], rotation=30, ha="right")
            axis.set_ylabel("processing time (ms)" if stage == stages[0] else "")
        _save(fig, out / "stages.png")
        figures.append(Figure("stages", "Processing time per stage (every job)", out / "stages.png"))

    priced = [r for r in runs if r.get("cost")]
    if priced:
        services = sorted({s for r in priced for s in r["cost"]["by_service_usd"]})
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
        offset = [0.0] * len(priced)
        for service in services:
            values = [r["cost"]["by_service_usd"].get(service, 0.0) * 1000 for r in priced]
            left.barh([label(r) for r in priced], values, left=offset, label=service)
            offset = [a + b for a, b in zip(offset, values, strict=True)]
        left.set_xlabel("cost of the run (USD x 1,000)")
        left.legend(fontsize="small")
        right.barh(
            [label(r) for r in priced], [r["cost"]["per_1000_route_jobs_usd"] or 0 for r in priced], color="#228833"
        )
        right.set_xlabel("USD per 1,000 route jobs")
        right.set_yticks(range(len(priced)), [""] * len(priced))
        _save(fig, out / "cost.png")
        figures.append(Figure("cost", "Cost, split by service, and per 1,000 route jobs", out / "cost.png"))

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    left.barh(labels, [sum(f["cold_starts"] for f in r.get("functions", {}).values()) for r in runs], color="#ee6677")
    left.set_xlabel("cold starts (all functions)")
    right.barh(labels, [r["retried_jobs"] for r in runs], color="#aa3377")
    right.set_xlabel("jobs retried")
    right.set_yticks(range(len(labels)), [""] * len(labels))
    _save(fig, out / "reliability.png")
    figures.append(Figure("reliability", "Cold starts and retries", out / "reliability.png"))

    swept = sweep_settings(priced)
    if swept is not None:
        fig, axis = plt.subplots(figsize=(7, 4.5))
        for run, settings in zip(priced, swept, strict=True):
            x, y = run["wall_seconds"], run["cost"]["per_1000_route_jobs_usd"] or 0
            processor = settings.get("ProcessorFunction", {})
            axis.scatter([x], [y], s=60)
            axis.annotate(f"{processor.get('memory_mb')} MB {processor.get('architecture')}", (x, y), fontsize=8)
        axis.set_xlabel("wall time (s)")
        axis.set_ylabel("USD per 1,000 route jobs")
        axis.set_title("Memory / architecture sweep: cost against time")
        _save(fig, out / "sweep.png")
        figures.append(Figure("sweep", "Sweep: cost against time per setting", out / "sweep.png"))
    plt.close("all")
    return figures


def _table(runs: list[dict]) -> str:
    head = (
        "run", "scenario", "mode", "jobs", "wall s", "ms/job", "cold starts", "retried", "AWS requests/job",
        "cost USD", "USD / 1,000 route jobs",
    )  # fmt: skip
    rows = []
    for r in runs:
        cost = r.get("cost") or {}
        per_job = r.get("api_requests", {}).get("per_job")
        cells = (
            r["run_id"], f"{r['scenario']} {r['scenario_name']}", r["mode"], r["jobs"], f"{r['wall_seconds']:.2f}",
            f"{(r['seconds_per_job'] or 0) * 1000:.1f}", sum(f["cold_starts"] for f in r.get("functions", {}).values()),
            r["retried_jobs"], f"{per_job:.1f}" if per_job is not None else "n/a",
            f"{cost['usd']:.6f}" if cost else "n/a",
            f"{cost['per_1000_route_jobs_usd']:.4f}" if cost.get("per_1000_route_jobs_usd") is not None else "n/a",
        )  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    header = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"
    return f"<table>{header}{''.join(rows)}</table>"


def write_report(
    runs: list[dict], figures: list[Figure], out: Path, heading: str | None = None, preamble: str = ""
) -> Path:
    """report.html: ``heading``, ``preamble`` (HTML: `jobgraph bench` puts its summary and recommendation there),
    the runs' table and every figure embedded."""
    prices = sorted(
        {f"{r['cost']['price_table']['version']} {r['cost']['price_table']['region']}" for r in runs if r.get("cost")}
    )
    sections = []
    for figure in figures:
        data = base64.b64encode(figure.path.read_bytes()).decode()
        sections.append(
            f'<section><h2>{html.escape(figure.title)}</h2><img class="figure" alt="{figure.name}" '
            f'src="data:image/png;base64,{data}"></section>'
        )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>jobgraph comparison</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}img{{max-width:100%}}</style></head>
<body><h1>{html.escape(heading or f"jobgraph: {len(runs)} runs compared")}</h1>
<p>Prices: {html.escape(", ".join(prices) or "none (no run has usage counters)")}. Runs: {html.escape(", ".join(r["run_id"] for r in runs))}.</p>
{preamble}
{_table(runs)}
{"".join(sections)}
<script>
// a page check for headless browsers: every figure decoded and drawn
window.addEventListener("load", () => {{
  const figures = [...document.querySelectorAll("img.figure")];
  const ok = figures.filter((img) => img.complete && img.naturalWidth > 0).length;
  document.title = `jobgraph comparison: ${{ok}}/${{figures.length}} figures rendered`;
}});
</script>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page)
    return path


def compare(run_dirs: list[Path], out: Path) -> tuple[Path, list[Figure]]:
    if len(run_dirs) < 2:
        raise CompareError("compare needs at least two run folders")
    runs = [read(d) for d in run_dirs]
    out.mkdir(parents=True, exist_ok=True)
    figures = draw(runs, out)
    return write_report(runs, figures, out), figures
