"""Cold import time of each built Lambda handler, in fresh isolated interpreters (as on a Lambda cold start).

    .venv/bin/python benchmarks/bench_import.py [--runs 7] [--no-pyc-comparison] [--json PATH]

Each run starts a new ``python -I -S -B`` process whose ``sys.path`` holds only the function folder, its
layers' ``python/`` folders (from ``.aws-sam/build``), a stand-in for the runtime's boto3/botocore and the
standard library (``jobgraph.sam.build.run_isolated``), and times ``import app`` there. Reported: the
median (and min/max) of N runs per function, and which of pandas/pyarrow/numpy each import pulled in.
The Scheduler and StartRun must pull in none of them (they ship without the scientific layer): the exit
status is 1 if they do.

The layers ship ``.pyc`` files compiled by the layer Makefiles (unchecked-hash: /opt is read-only on
Lambda, so Python cannot cache what it compiles). The second table measures the same imports from a copy
of the build with every ``.pyc`` removed — what a cold start costs when it must compile the sources it
imports, as before the layers shipped bytecode. Run ``make build`` first (``make bench-build`` does).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from jobgraph.sam.build import HEAVY_MODULES, base_python, built_functions, run_isolated, runtime_packages_dir

ROOT = Path(__file__).resolve().parents[1]
ENV = {
    # settings are read lazily (on the first invocation), but keep the import honest and offline
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "POWERTOOLS_SERVICE_NAME": "bench",
    "POWERTOOLS_METRICS_NAMESPACE": "PerfTesting",
    "BUCKET_NAME": "bench-bucket",
    "TABLE_NAME": "bench-table",
    "INCOMING_QUEUE_URL": "http://127.0.0.1:9/q.fifo",
    "OUTGOING_QUEUE_URL": "http://127.0.0.1:9/q.fifo",
}


def measure(functions, runtime_dir: Path, runs: int) -> dict:
    figures = {}
    for logical_id, function in sorted(functions.items()):
        times, heavy = [], set()
        for _ in range(runs):
            result = run_isolated(
                function, runtime_dir=runtime_dir, env={**ENV, "AWS_LAMBDA_FUNCTION_NAME": logical_id}
            )
            times.append(result.import_s * 1000)
            heavy |= result.top_level_modules() & set(HEAVY_MODULES)
        figures[logical_id] = {
            "median_ms": statistics.median(times),
            "min_ms": min(times),
            "max_ms": max(times),
            "runs": runs,
            "heavy_modules": sorted(heavy),
        }
    return figures


def print_table(title: str, figures: dict) -> None:
    print(f"\n{title}")
    print(f"{'function':<20}{'median ms':>11}{'min':>9}{'max':>9}   pulls in")
    for logical_id, f in figures.items():
        pulled = ", ".join(f["heavy_modules"]) or "none of pandas/pyarrow/numpy"
        print(f"{logical_id:<20}{f['median_ms']:>11.0f}{f['min_ms']:>9.0f}{f['max_ms']:>9.0f}   {pulled}")


def sources_only_copy(build_dir: Path, dest: Path) -> Path:
    copy = dest / "build"
    shutil.copytree(build_dir, copy, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build-dir", type=Path, default=ROOT / ".aws-sam" / "build")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-pyc-comparison", action="store_true", help="skip the sources-only table")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        runtime_dir = runtime_packages_dir(Path(tmp, "runtime"))
        report = {"as_built": measure(built_functions(args.build_dir), runtime_dir, args.runs)}
        print(f"interpreter: {base_python()} -I -S -B; {args.runs} fresh processes per function")
        print_table("cold `import app` from .aws-sam/build (with the layers' .pyc, as deployed):", report["as_built"])
        if not args.no_pyc_comparison:
            copy = sources_only_copy(args.build_dir, Path(tmp))
            report["sources_only"] = measure(built_functions(copy), runtime_dir, args.runs)
            print_table("same, from a copy without any .pyc (every import compiles):", report["sources_only"])

    scheduler = report["as_built"]["SchedulerFunction"]
    print(f"\nScheduler cold import: {scheduler['median_ms']:.0f} ms median")
    failures = [
        logical_id
        for logical_id in ("SchedulerFunction", "StartRunFunction")
        if report["as_built"][logical_id]["heavy_modules"]
    ]
    for logical_id in failures:
        print(f"FAIL: {logical_id} imports {report['as_built'][logical_id]['heavy_modules']}", file=sys.stderr)
    if not failures:
        print("PASS: Scheduler and StartRun import none of pandas/pyarrow/numpy")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
