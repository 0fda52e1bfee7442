"""Issue 16.1/16.2: AWS requests, cost and billed Lambda time per job — this tree against a baseline commit, side
by side in one run, on the same graph, under the same service latency profile.

    .venv/bin/python benchmarks/bench_datapath.py                          # baseline: merge-base with main
    .venv/bin/python benchmarks/bench_datapath.py --baseline 0c4e47e --sequences 50 --rounds 2
    .venv/bin/python benchmarks/bench_datapath.py --latency none           # without the latency profile
    .venv/bin/python benchmarks/bench_datapath.py --json out/datapath.json
    .venv/bin/python benchmarks/bench_datapath.py --serial    # + this tree with GroupConcurrency=1 (16.2 alone)

The baseline's template, functions and ``src/`` (its CoreLayer) are extracted with ``git archive`` and
deployed by this tree's ``jobgraph run --template …`` into the embedded local cloud, so both sides run
under the same harness, request meter, price table and ``--service-latency`` profile; only the code the
functions run differs. Runs alternate (baseline, current, baseline, …) to share the machine's noise.
Every run's result files (delays, percentiles, merged) must equal ``jobgraph solve``'s byte for byte:
the exit status is non-zero otherwise. Targets, reported not asserted: ≤ 6 AWS requests per job, cost per
1,000 route jobs ≥ 30 % lower, billed Processor ms per route job ≥ 3× lower.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from jobgraph.bench.record import read

ROOT = Path(__file__).resolve().parents[1]
JOBGRAPH = Path(sys.executable).with_name("jobgraph")
RUN_ID = "bench"
# what a local deployment of scenario 1 reads from a checkout
TREE = ["template.yaml", "templates", "functions", "src", "layers"]
RESULTS = ("delays", "percentiles", "merged_percentiles.json")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def extract(revision: str, into: Path) -> Path:
    """The baseline's deployable files (git archive: tracked files only, as a clone would have them)."""
    archive = subprocess.run(["git", "archive", revision, *TREE], cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "template.yaml"


def jobgraph(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(JOBGRAPH), *args], cwd=ROOT, capture_output=True, text=True)


def result_files(run_dir: Path) -> dict[str, bytes]:
    files = {}
    for name in RESULTS:
        path = run_dir / name
        for file in sorted(path.rglob("*") if path.is_dir() else [path]):
            if file.is_file():
                files[file.relative_to(run_dir).as_posix()] = file.read_bytes()
    return files


def figures(run_dir: Path) -> dict:
    record = read(run_dir)
    jobs, route_jobs = record["jobs"], record["route_jobs"]
    usage = record["usage"]
    lam = usage["lambda"]
    processor_ms = lam.get("ProcessorFunction", {}).get("duration_ms", 0)
    requests = record["api_requests"]["requests"]
    # the SQS line is priced from CloudWatch's message counts (an upper bound on requests: runs/aws_usage.py);
    # the request meter counts the billed 64 KB requests themselves: the cost with SQS priced from those
    sqs = [item for item in record["cost"]["items"] if item["service"] == "SQS"]
    metered_sqs = record["api_requests"]["units"].get("sqs_requests_64kb", 0)
    metered_cost = record["cost"]["usd"] + sum(metered_sqs * i["unit_price_usd"] - i["usd"] for i in sqs)
    return {
        "wall_s": record["wall_seconds"],
        "jobs": jobs,
        "route_jobs": route_jobs,
        "requests_per_job": record["api_requests"]["total_requests"] / jobs,
        "requests_by_action_per_job": {
            f"{service}:{action}": count / jobs
            for service, actions in requests.items()
            for action, count in actions.items()
        },
        "cost_per_1000_route_jobs_usd": record["cost"]["per_1000_route_jobs_usd"],
        "cost_by_service_usd": record["cost"]["by_service_usd"],
        "cost_per_1000_route_jobs_sqs_metered_usd": metered_cost / route_jobs * 1000,
        "processor_billed_ms_per_route_job": processor_ms / route_jobs,
        "lambda_billed_ms_per_route_job": sum(f["duration_ms"] for f in lam.values()) / route_jobs,
        "processor_invocations": lam.get("ProcessorFunction", {}).get("requests", 0),
        "units_per_job": {
            "dynamodb_wru": usage["dynamodb"]["wru"] / jobs,
            "s3_put": usage["s3"]["put"] / jobs,
            "s3_get": usage["s3"]["get"] / jobs,
            "sqs_64kb": usage["sqs"]["requests_64kb"] / jobs,
            "sqs_64kb_metered": metered_sqs / jobs,
        },
    }


def median_of(rows: list[dict], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", default=None, help="commit to compare with (default: merge-base HEAD main)")
    parser.add_argument("--sequences", type=int, default=50)
    parser.add_argument("--scenarios", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=1, help="runs per side, alternating")
    parser.add_argument("--latency", default="default", help="--service-latency for both sides: default|FILE|none")
    parser.add_argument("--max-workers", type=int, help="--max-workers for both sides (default: the core count)")
    parser.add_argument(
        "--serial", action="store_true", help="also this tree one record at a time (GroupConcurrency=1)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    baseline = args.baseline or git("merge-base", "HEAD", "main")
    current = git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--", *TREE) else "")
    graph = ["--generate", str(args.sequences), "--seed", str(args.seed), "--scenarios", str(args.scenarios)]
    latency = [] if args.latency == "none" else ["--service-latency", args.latency]
    latency += ["--max-workers", str(args.max_workers)] if args.max_workers else []
    sides = {"baseline": None, "current": ROOT / "template.yaml"}
    if args.serial:
        sides["serial"] = ROOT / "template.yaml"
    rows: dict[str, list[dict]] = {side: [] for side in sides}
    mismatches = []
    with tempfile.TemporaryDirectory(prefix="bench-datapath-") as tmp:
        tmp = Path(tmp)
        sides["baseline"] = extract(baseline, tmp / "baseline")
        solved = jobgraph("solve", *graph, "--run-id", RUN_ID, "--out", str(tmp / "solve"))
        if solved.returncode:
            print(solved.stdout, solved.stderr, file=sys.stderr)
            return 2
        reference = result_files(tmp / "solve" / RUN_ID)
        print(f"graph: {args.sequences} generated sequences (seed {args.seed}), S = {args.scenarios}; "
              f"latency profile: {args.latency}; baseline {baseline[:12]}, current {current}", flush=True)  # fmt: skip
        for round_ in range(args.rounds):
            for side, template in sides.items():
                out = tmp / f"{side}-{round_}"
                started = time.monotonic()
                serial = ["--parameter", "GroupConcurrency=1"] if side == "serial" else []
                ran = jobgraph("run", "--template", str(template), *graph, *latency, *serial, "--run-id", RUN_ID,
                               "--out", str(out), "--no-progress")  # fmt: skip
                if ran.returncode:
                    print(f"{side} run {round_} failed:\n{ran.stdout[-3000:]}\n{ran.stderr[-3000:]}", file=sys.stderr)
                    return 2
                row = figures(out / RUN_ID)
                row["command_s"] = time.monotonic() - started
                same = result_files(out / RUN_ID) == reference
                if not same:
                    mismatches.append(f"{side} round {round_}")
                row["same_as_solve"] = same
                rows[side].append(row)
                print(f"  {side:8} round {round_}: {row['requests_per_job']:.2f} requests/job, "
                      f"${row['cost_per_1000_route_jobs_usd']:.4f}/1k route jobs, Processor "
                      f"{row['processor_billed_ms_per_route_job']:.1f} billed ms/route job, "
                      f"results {'identical' if same else 'DIFFER'} to solve", flush=True)  # fmt: skip

    def med(side: str, key: str) -> float:
        return median_of(rows[side], key)

    keys = [
        ("requests_per_job", "AWS requests per job", "{:.2f}"),
        ("cost_per_1000_route_jobs_usd", "cost per 1,000 route jobs (USD)", "{:.5f}"),
        ("cost_per_1000_route_jobs_sqs_metered_usd", "  the same, SQS from the request meter", "{:.5f}"),
        ("processor_billed_ms_per_route_job", "Processor billed ms per route job", "{:.1f}"),
        ("lambda_billed_ms_per_route_job", "all Lambda billed ms per route job", "{:.1f}"),
        ("processor_invocations", "Processor invocations", "{:.0f}"),
        ("wall_s", "run wall s (StartRun → COMPLETED)", "{:.1f}"),
    ]
    serial_header = f" {'serial':>12}" if args.serial else ""
    print(
        f"\n{'median of ' + str(args.rounds) + ' round(s)':<40} {'baseline':>12} {'current':>12} {'change':>9}{serial_header}"
    )
    summary = {}
    for key, label, fmt in keys:
        before, after = med("baseline", key), med("current", key)
        change = (after - before) / before if before else 0.0
        summary[key] = {"baseline": before, "current": after, "change": change}
        serial = ""
        if args.serial:
            summary[key]["serial"] = med("serial", key)
            serial = f" {fmt.format(summary[key]['serial']):>12}"
        print(f"{label:<40} {fmt.format(before):>12} {fmt.format(after):>12} {change * 100:>8.0f}%{serial}")
    per_action = sorted({a for side in rows.values() for row in side for a in row["requests_by_action_per_job"]})
    print("\nrequests per job by action (first round)")
    for action in per_action:
        b = rows["baseline"][0]["requests_by_action_per_job"].get(action, 0)
        c = rows["current"][0]["requests_by_action_per_job"].get(action, 0)
        print(f"  {action:<40} {b:>12.2f} {c:>12.2f}")
    print("\nbilling units per job (first round)")
    for unit in rows["baseline"][0]["units_per_job"]:
        print(f"  {unit:<40} {rows['baseline'][0]['units_per_job'][unit]:>12.2f} "
              f"{rows['current'][0]['units_per_job'][unit]:>12.2f}")  # fmt: skip
    requests = summary["requests_per_job"]["current"]
    cost_cut = -summary["cost_per_1000_route_jobs_usd"]["change"]
    speedup = summary["processor_billed_ms_per_route_job"]["baseline"] / max(
        summary["processor_billed_ms_per_route_job"]["current"], 1e-9
    )
    print(f"\nrequests per job {requests:.2f} (target <= 6: {'PASS' if requests <= 6 else 'MISS'})")
    print(f"cost per 1,000 route jobs {cost_cut * 100:.0f} % lower (target >= 30 %: "
          f"{'PASS' if cost_cut >= 0.30 else 'MISS'})")  # fmt: skip
    print(
        f"Processor billed ms per route job {speedup:.1f}x lower (target >= 3x: {'PASS' if speedup >= 3 else 'MISS'})"
    )
    if args.serial:
        alone = summary["processor_billed_ms_per_route_job"]["serial"] / max(
            summary["processor_billed_ms_per_route_job"]["current"], 1e-9
        )
        print(f"  of which the concurrent groups alone (GroupConcurrency 1 -> 10): {alone:.1f}x")
    if mismatches:
        print(f"CORRECTNESS: results differ from jobgraph solve in {mismatches}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        document = {"baseline": baseline, "current": current, "latency": args.latency}
        document.update(rows=rows, summary=summary, mismatches=mismatches)
        args.json.write_text(json.dumps(document, indent=2))
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
