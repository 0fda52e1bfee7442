"""`jobgraph bench` and `jobgraph project` on real local runs of scenarios 1, 2 and 3 (lean: 16 and 48 sequences,
20 Monte-Carlo scenarios each).

- The bench report's summary table and recommendation are checked against the run records it read.
- The projection from each 16-sequence run is checked against the measured makespan of the 48-sequence run of
  the same scenario and generator, run right after it. Seed 7: the first 16 sequences are those of the 16-sequence
  graph and their mean routes per sequence (5.19) is within 1.2 % of the 48's (5.25), so the check is on the
  model's dynamics, not on how well 16 sequences sample a graph's shape. (At 8 sequences each worker's slow first
  job weighs so much in the busy time per job that the speed factor below is biased: -25 % for scenario 3 once.)
  Both runs share this machine with whatever else runs, whose speed moves by 2-3x within minutes
  (docs/benchmarks.md), so the projection is compared with every measured time scaled by how much slower or
  faster the larger run's jobs ran (busy ms per job, from the two records): what is checked is the model's
  error, not the machine's change of speed. The raw projection is
  printed beside it; the issue's 50 -> 200 validation, raw and normalised, repeated, is
  benchmarks/bench_projection.py (tens of minutes: too long for `make test`), its figures in docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import html
import io
import subprocess
from pathlib import Path

import pytest

from jobgraph.bench.project import busy_ms_per_job, project
from jobgraph.bench.record import read
from jobgraph.bench.suite import recommend, summary
from jobgraph.cli.main import main

pytestmark = pytest.mark.e2e

SMALL, LARGE = 16, 48
# Not the issue's ±20 %: that is validated at 50 -> 200 by benchmarks/bench_projection.py (raw medians -13, -7, -20 %,
# normalised errors -14 % .. +6 % over 9 pairs, 2026-12-03). Runs of 10-100 s on this shared machine change speed *within* the run, which one
# speed factor per run cannot take out: 14 lean pairs measured while writing this test spread -25 % .. +34 %.
# At ±50 % this test fails a model that gets a concurrency wrong (one worker for two doubles the makespan) or a
# broken record -> model path; finer errors are the benchmark's and the unit tests' (tests/unit/test_projection.py
# checks the simulation against makespans worked out by hand).
TOLERANCE = 0.50


def _bench(out: Path, sequences: int) -> tuple[str, list[Path]]:
    """`jobgraph bench` of a generated graph on scenarios 1, 2 and 3: what it printed, the three run folders."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(
            ["bench", "--generate", str(sequences), "--seed", "7", "--scenarios", "20", "--run-id",
             f"b{sequences}", "--out", str(out), "--no-progress"]
        )  # fmt: skip
    assert code == 0, printed.getvalue()
    return printed.getvalue(), [out / f"b{sequences}-s{n}" for n in (1, 2, 3)]


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bench")


@pytest.fixture(scope="module")
def small(out):
    return _bench(out, SMALL)


@pytest.fixture(scope="module")
def large(out, small):  # after the small runs: the validation pair runs back to back
    return _bench(out, LARGE)


def test_the_bench_report_tables_and_recommends_from_the_records_it_read(small):
    printed, runs = small
    records = [read(run) for run in runs]
    assert [r["scenario"] for r in records] == [1, 2, 3]
    page = (runs[0].parent / f"b{SMALL}-report" / "report.html").read_text()
    for record in records:  # each implementation's row: its own measured figures
        row = page.split(f'<tr data-run="{record["run_id"]}">', 1)[1].split("</tr>", 1)[0]
        cells = [html.unescape(c.split("</td>")[0]) for c in row.split("<td>")[1:]]
        assert cells[2] == f"{record['wall_seconds']:.2f}"
        assert cells[3] == f"{record['jobs'] / record['wall_seconds']:.2f}"
        assert cells[11] == f"{record['cost']['usd']:.6f}"
        assert cells[12] == f"{record['cost']['per_1000_route_jobs_usd']:.4f}"
    chosen = recommend([summary(r) for r in records])
    cheapest = min(records, key=lambda r: r["cost"]["per_1000_route_jobs_usd"])
    fastest = min(records, key=lambda r: r["wall_seconds"])
    assert chosen["cheapest"]["run_id"] == cheapest["run_id"]
    assert chosen["fastest"]["run_id"] == fastest["run_id"]
    for strategy in ("cheapest", "fastest", "balanced"):
        item = page.split(f'<li data-strategy="{strategy}">', 1)[1].split("</li>", 1)[0]
        assert f"[{chosen[strategy]['run_id']}]" in html.unescape(item)
        assert f"{chosen[strategy]['margin']:.1%}" in html.unescape(item)
    assert f"cheapest (lowest cost per 1,000 route jobs): {chosen['cheapest']['implementation']}" in printed
    # each run is an ordinary record: `jobgraph cost` and `jobgraph compare` read it
    assert main(["cost", str(runs[0])]) == 0


def test_a_projection_from_the_small_runs_predicts_the_larger_runs(small, large, capsys):
    errors = {}
    for source, target in zip(small[1], large[1], strict=True):
        before, measured = read(source), read(target)
        raw = project(before, [LARGE])["projections"][0]["makespan_s"]
        speed = busy_ms_per_job(measured) / busy_ms_per_job(before)
        normalised = project(before, [LARGE], speed=speed)["projections"][0]["makespan_s"]
        errors[measured["scenario"]] = normalised / measured["wall_seconds"] - 1
        with capsys.disabled():  # the figures, in the test log
            print(f"\nscenario {measured['scenario']}: measured {measured['wall_seconds']:.1f} s; projected "
                  f"{raw:.1f} s raw, {normalised:.1f} s at the larger run's speed (x{speed:.2f}): "
                  f"{errors[measured['scenario']]:+.0%}")  # fmt: skip
    assert all(abs(error) <= TOLERANCE for error in errors.values()), errors
    # scenario 1's event sources recorded each batch's time in its slot, one per invocation, never shorter
    scenario_1 = read(small[1][0])
    for function in ("ProcessorFunction", "SchedulerFunction"):
        slots, invocations = (scenario_1["samples"][kind][function] for kind in ("slot_ms", "invocation_ms"))
        assert len(slots) == len(invocations) == scenario_1["functions"][function]["invocations"]
        assert sorted(slots)[len(slots) // 2] >= sorted(invocations)[len(invocations) // 2]
    assert main(["project", str(small[1][0]), "--sequences", str(LARGE), "100"]) == 0
    assert "replay at the run's size" in capsys.readouterr().out


def test_the_bench_report_renders_in_headless_chromium(chromium, small, tmp_path):
    report = small[1][0].parent / f"b{SMALL}-report" / "report.html"
    dom = subprocess.run(
        [*chromium, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    figures = report.read_text().count('class="figure"')
    assert f"{figures}/{figures} figures rendered</title>" in dom.stdout and figures >= 4
    assert 'id="recommendation"' in dom.stdout and 'id="summary"' in dom.stdout
