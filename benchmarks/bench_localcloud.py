"""Local cloud scaling: time per job for 50/100/200/400 generated sequences, and the ratio to `jobgraph solve`.

    .venv/bin/python benchmarks/bench_localcloud.py                    # 50 100 200 400, ~6 min here
    .venv/bin/python benchmarks/bench_localcloud.py --sizes 20 50      # quicker
    .venv/bin/python benchmarks/bench_localcloud.py --json out.json    # also write the figures
    .venv/bin/python benchmarks/bench_localcloud.py --scenario 2 --sizes 100   # ECS workers (templates/scenario-2.yaml)
    .venv/bin/python benchmarks/bench_localcloud.py --scenario 3 --sizes 100   # Step Functions (scenario 3)

For each size the same generated graph is solved in-process (reference solver) and run through the
embedded local cloud (template deployed to moto, SQS pollers, Lambda worker processes). Time per job is
the run's wall time from StartRun to run COMPLETED divided by its jobs; the cloud's set-up (server,
deploy, first worker starts) is printed apart. Targets, reported not asserted: time per job flat within
±25 % across sizes, and run/solve ≤ 4×. Exit status is non-zero only if a run's merged result differs
from the solver's (correctness), or a run fails. Also printed: the AWS requests the run made per job
(the local cloud's request meter, by service and action; the harness's own calls left out).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from jobgraph.adapters.local_disk import staged_run
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import total_jobs
from jobgraph.core.run import RunSpec
from jobgraph.core.solver import solve
from jobgraph.localcloud.lambda_runtime.runtime import default_max_workers
from jobgraph.runs.execute import execute
from jobgraph.runs.local import LocalOptions, LocalTarget
from jobgraph.runs.scenarios import scenario as scenario_of
from jobgraph.runs.target import Output

ROOT = Path(__file__).resolve().parents[1]


def measure(
    size: int, scenarios: int, seed: int, max_workers: int | None, scenario: int = 1, ecs_workers: int = 2
) -> dict:
    sequences = generate_sequences(size, seed)
    spec = RunSpec(f"bench-{size}", "bench", scenarios, seed)
    jobs = total_jobs(sequences)
    with tempfile.TemporaryDirectory() as tmp:
        solved = solve(sequences, spec, Path(tmp) / "solve", staging=staged_run)
        started = time.monotonic()
        chosen = scenario_of(scenario)
        options = LocalOptions(
            template=ROOT / chosen.template,
            stack_name=chosen.local_stack_name,
            max_workers=max_workers,
            ecs_workers=ecs_workers,
        )
        # scenario 3 runs the state machine in moto's ASL engine; 1 and 2 the SQS pollers
        outcome = execute(chosen.graph(sequences), LocalTarget(options, Output(Path(tmp) / "run")), spec)
        command_s = time.monotonic() - started
    workers = {name: figures["workers"] for name, figures in outcome.extra["functions"].items()}
    workers.update({name: figures["tasks"] for name, figures in outcome.extra.get("services", {}).items()})
    requests = outcome.api_requests
    route_jobs = sum(len(s.routes) for s in sequences)
    return {
        "requests": requests["total_requests"],
        "requests_per_job": requests["total_requests"] / jobs,
        "requests_per_route_job": requests["total_requests"] / route_jobs,
        "requests_by_action": requests["requests"],
        "scenario": scenario,
        "sequences": size,
        "jobs": jobs,
        "solve_s": solved.wall_seconds,
        "run_s": outcome.wall_seconds,
        "command_s": command_s,
        "setup_and_export_s": command_s - outcome.wall_seconds,
        "solve_ms_per_job": solved.wall_seconds / jobs * 1000,
        "run_ms_per_job": outcome.wall_seconds / jobs * 1000,
        "ratio": outcome.wall_seconds / solved.wall_seconds,
        "workers": workers,
        "same_result": outcome.merged == solved.merged,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--scenarios", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-workers", type=int, default=None, help=f"default {default_max_workers()} here")
    parser.add_argument(
        "--scenario", type=int, choices=(1, 2, 3), default=1, help="1: SQS + Lambda, 2: ECS workers, 3: Step Functions"
    )
    parser.add_argument("--ecs-workers", type=int, default=2, help="worker tasks (scenario 2)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    rows = []
    print(f"{'sequences':>9} {'jobs':>6} {'solve s':>8} {'run s':>8} {'set-up s':>9} "
          f"{'solve ms/job':>13} {'run ms/job':>11} {'run/solve':>10}  workers")  # fmt: skip
    for size in args.sizes:
        row = measure(size, args.scenarios, args.seed, args.max_workers, args.scenario, args.ecs_workers)
        rows.append(row)
        print(
            f"{row['sequences']:>9} {row['jobs']:>6} {row['solve_s']:>8.2f} {row['run_s']:>8.2f} "
            f"{row['setup_and_export_s']:>9.2f} {row['solve_ms_per_job']:>13.2f} {row['run_ms_per_job']:>11.1f} "
            f"{row['ratio']:>9.1f}x  {row['workers']}",
            flush=True,
        )
    per_job = [row["run_ms_per_job"] for row in rows]
    mean = sum(per_job) / len(per_job)
    spread = max(abs(value - mean) / mean for value in per_job)
    worst = max(row["ratio"] for row in rows)
    print(f"time per job: mean {mean:.1f} ms, largest deviation from the mean {spread * 100:.0f} % "
          f"(target ±25 %: {'PASS' if spread <= 0.25 else 'MISS'})")  # fmt: skip
    print(f"run/solve: worst {worst:.1f}x (target <= 4x: {'PASS' if worst <= 4 else 'MISS'})")
    for row in rows:
        actions = ", ".join(
            f"{service}:{action} {count / row['jobs']:.2f}"
            for service, by_action in sorted(row["requests_by_action"].items())
            for action, count in sorted(by_action.items())
        )
        print(
            f"{row['sequences']} sequences: AWS requests {row['requests']} = {row['requests_per_job']:.2f} per job, "
            f"{row['requests_per_route_job']:.2f} per route job; per job: {actions}"
        )
    failures = [row["sequences"] for row in rows if not row["same_result"]]
    if failures:
        print(f"CORRECTNESS: merged results differ from the solver's for sizes {failures}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"rows": rows, "spread": spread, "worst_ratio": worst}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
