"""`jobgraph compare` on two real local runs (Processor 256 MB vs 1024 MB), checked in headless Chromium."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest

from jobgraph.bench.compare import compare, sweep_settings
from jobgraph.bench.record import read
from jobgraph.cli.main import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("runs")
    runs = []
    for memory in (256, 1024):
        code = main(
            ["run", "--generate", "4", "--seed", "8", "--scenarios", "50", "--run-id", f"mem{memory}",
             "--out", str(out), "--template", str(ROOT / "template.yaml"), "--no-progress",
             "--parameter", f"ProcessorMemorySize={memory}"]
        )  # fmt: skip
        assert code == 0
        runs.append(out / f"mem{memory}")
    return runs


def test_compare_writes_a_self_contained_report_with_every_figure(two_runs, tmp_path, capsys):
    assert main(["compare", *map(str, two_runs), "--out", str(tmp_path / "cmp")]) == 0
    assert "compared 2 runs" in capsys.readouterr().out
    names = sorted(p.name for p in (tmp_path / "cmp").iterdir())
    assert names == ["cost.png", "reliability.png", "report.html", "stages.png", "sweep.png", "time.png"]
    page = (tmp_path / "cmp" / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 5 and "mem256" in page and "mem1024" in page
    records = [read(run) for run in two_runs]
    # the table shows each run's measured cost per 1,000 route jobs
    for record in records:
        assert f"{record['cost']['per_1000_route_jobs_usd']:.4f}" in page


def test_a_sweep_only_when_runs_differ_in_memory_or_architecture_alone(two_runs):
    records = [read(run) for run in two_runs]
    swept = sweep_settings(records)
    assert [s["ProcessorFunction"]["memory_mb"] for s in swept] == [256, 1024]
    other = copy.deepcopy(records)
    other[1]["settings"]["scenarios"] = 999  # a different graph size is not a memory sweep
    assert sweep_settings(other) is None
    assert sweep_settings([records[0], copy.deepcopy(records[0])]) is None  # nothing swept


def test_fewer_than_two_runs_is_a_clear_error(two_runs, tmp_path, capsys):
    assert main(["compare", str(two_runs[0]), "--out", str(tmp_path)]) != 0
    assert "compare needs at least two run folders" in capsys.readouterr().err


def test_the_report_renders_in_headless_chromium(chromium, two_runs, tmp_path):
    import matplotlib.image

    report, figures = compare(two_runs, tmp_path / "cmp")
    profile = tmp_path / "profile"
    dom = subprocess.run(
        [*chromium, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    # the page's own check: every figure decoded and has a size; and no script error on the console
    assert f"<title>jobgraph comparison: {len(figures)}/{len(figures)} figures rendered</title>" in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*chromium, f"--user-data-dir={profile}", "--window-size=1280,2600",
         f"--screenshot={shot}", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    pixels = matplotlib.image.imread(shot)[..., :3]
    # not blank: a real share of the page is drawn (bars, boxes, text), in more than one colour
    drawn = (pixels.mean(axis=2) < 0.9).mean()
    assert drawn > 0.03, f"only {drawn:.1%} of the screenshot is drawn"
    assert len({tuple(p) for p in (pixels[::40, ::40] * 255).astype(int).reshape(-1, 3)}) > 10


def test_a_local_sweep_records_each_setting_and_draws_the_sweep(tmp_path, capsys):
    code = main(
        ["sweep", "--memory", "512,2048", "--generate", "3", "--seed", "4", "--scenarios", "40", "--run-id", "sw",
         "--out", str(tmp_path), "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "swept 2 settings" in out and "sweep.png" in out
    memories = [read(tmp_path / f"sw-{m}mb-x8664")["settings"]["functions"]["ProcessorFunction"]["memory_mb"]
                for m in (512, 2048)]  # fmt: skip
    assert memories == [512, 2048]
    assert (tmp_path / "sw-sweep" / "report.html").is_file()
