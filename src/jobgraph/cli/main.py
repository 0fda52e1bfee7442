"""`jobgraph` command line: generate, validate, solve, run."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from jobgraph.cli import billing as cli_billing
from jobgraph.cli import options as opts
from jobgraph.cli import triggers as cli_triggers
from jobgraph.cli.errors import OneLineParser
from jobgraph.cli.errors import report as report_error
from jobgraph.core.errors import InvalidSequenceError, JobGraphError
from jobgraph.core.models import MAX_SCENARIOS, RUN_ID_PATTERN
from jobgraph.runs.scenarios import SCENARIOS, scenario

EXIT_INVALID_INPUT = 2
EXIT_FAILED = 1
SERVICE_LATENCY_HELP = (
    "hold each AWS request for its service's p50/p99 latency: 'default' (stated assumptions) or a JSON profile "
    "measured on AWS (README, How a job runs)"
)


def _run_id(value: str) -> str:
    import re

    if not re.match(RUN_ID_PATTERN, value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: use 1-64 letters, digits, '.', '_' or '-', not starting with '.', '_' or '-'"
        )
    return value


# numeric option types: ASCII whole numbers within bounds (cli/options.py)
_scenarios = opts.bounded_int(1, MAX_SCENARIOS)
_non_negative = opts.bounded_int(0)
_positive = opts.bounded_int(1)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `solve` and `run`, so the same graph can be solved both ways."""
    parser.add_argument("--sequences", type=Path, default=Path("sequences"), help="folder of sequence JSON files")
    parser.add_argument(
        "--generate",
        type=opts.generated_count,
        metavar="N",
        help="generate N sequences with --seed instead of reading --sequences",
    )
    parser.add_argument("--run-id", type=_run_id, default="example", help="name of the run (results folder)")
    parser.add_argument("--out", type=Path, default=Path("results"), help="where <run-id>/ is written")
    parser.add_argument("--scenarios", type=_scenarios, default=1000, help="Monte-Carlo scenarios per sequence")
    parser.add_argument("--seed", type=opts.seed, default=42, help="run seed (same seed, same numbers)")
    parser.add_argument(
        "--test-run-id", type=opts.test_run_id, default="default", help="cost-tracking tag value (PerfTestRun)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing <out>/<run-id>")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


_rate = opts.rate


def _key_value(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r}: use KEY=VALUE")
    return key, val


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="jobgraph", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True)

    generate = commands.add_parser("generate", help="write generated aircraft daily sequences")
    generate.add_argument("--count", type=opts.generated_count, required=True)
    generate.add_argument("--seed", type=opts.seed, required=True)
    generate.add_argument("--out", type=Path, required=True)
    generate.add_argument("--start-id", type=opts.sequence_id, default=0, help="first sequence_id (to combine sets)")
    generate.add_argument("--airports", help="comma-separated IATA codes to use instead of the default pool")

    validate = commands.add_parser("validate", help="check sequence files without running anything")
    validate.add_argument("--sequences", type=Path, default=Path("sequences"))
    validate.add_argument("--strict-generator", action="store_true", help="also check the generator constraints")

    solve = commands.add_parser("solve", help="solve the graph in-process (reference solver)")
    add_run_options(solve)

    run = commands.add_parser(
        "run", help="run the graph through the SQS/Lambda loop: embedded local cloud, or a deployed stack (--stack)"
    )
    add_run_options(run)
    run.add_argument(
        "--scenario",
        type=int,
        choices=sorted(SCENARIOS),
        default=1,
        help="implementation: " + "; ".join(f"{n} = {s.name}" for n, s in SCENARIOS.items()),
    )
    run.add_argument(
        "--stack",
        type=opts.stack_name,
        metavar="NAME",
        help="run on this deployed AWS stack instead of the local cloud",
    )
    run.add_argument("--region", help="AWS region of --stack (default: your AWS configuration)")
    local = run.add_argument_group("local cloud")
    local.add_argument("--template", type=Path, help="SAM template to deploy locally (default: the scenario's)")
    local.add_argument(
        "--stack-name", type=opts.stack_name, help="name of the local stack (default: scenario-<n>-local)"
    )
    local.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=_key_value,
        help="template parameter override, repeatable (e.g. ProcessorBatchSize=5)",
    )
    local.add_argument("--max-workers", type=opts.workers, help="cap on worker processes per event source mapping")
    local.add_argument("--ecs-workers", type=opts.workers, help="worker tasks per ECS service (scenario 2; default 2)")
    local.add_argument("--fail-rate", type=_rate, default=0.0, help="P(an invocation raises before/after its effects)")
    local.add_argument("--duplicate-rate", type=_rate, default=0.0, help="P(a message is delivered twice)")
    local.add_argument("--kill-rate", type=_rate, default=0.0, help="P(a worker process dies mid-batch)")
    local.add_argument("--poison", type=opts.poison, default=0, help="send N malformed messages to the incoming queue")
    local.add_argument("--fault-seed", type=opts.seed, default=0, help="seed of the fault injector")
    local.add_argument("--service-latency", metavar="default|FILE", help=SERVICE_LATENCY_HELP)
    local.add_argument(
        "--serve",
        action="store_true",
        help="serve the status API during the run and keep the local cloud up after it until Ctrl-C",
    )
    local.add_argument("--api-port", type=opts.port, default=0, help="port of --serve's API (default: a free one)")
    local.add_argument("--triggers", type=Path, metavar="CONFIG", help="downstream trigger config (docs/triggers.md)")
    add_price_options(run)
    run.add_argument("--timeout", type=opts.seconds, default=1800, help="seconds to wait for the run to complete")
    run.add_argument("--stall-timeout", type=opts.seconds, default=60, help="seconds without progress and empty queues")
    cost = commands.add_parser("cost", help="the cost of recorded runs (OUT/<run_id>/run.json), line by line")
    cost.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR", help="run folder(s) written by `jobgraph run`")
    add_price_options(cost)
    cli_billing.add_options(cost)
    load = commands.add_parser(
        "load", help="synthetic load (seed 000's perf runner): N independent jobs through the Processor"
    )
    load.add_argument("--messages", type=opts.load_messages, required=True, help="jobs to send")
    load.add_argument("--work-duration-ms", type=_non_negative, default=100, help="work per job (ms)")
    load.add_argument("--data-size-kb", type=_non_negative, default=10, help="output written per job (KiB)")
    load.add_argument("--concurrency", type=opts.workers, default=4, help="concurrent senders (10 messages per call)")
    load.add_argument("--groups", type=_positive, default=100, help="FIFO message groups the jobs are spread over")
    load.add_argument("--run-id", type=_run_id, default="load", help="name of the load run (record folder)")
    load.add_argument("--out", type=Path, default=Path("results"), help="where <run-id>/run.json is written")
    load.add_argument(
        "--test-run-id", type=opts.test_run_id, default="default", help="cost-tracking tag value (PerfTestRun)"
    )
    load.add_argument("--overwrite", action="store_true", help="replace an existing <out>/<run-id>")
    load.add_argument("--no-progress", action="store_true", help="no progress bar")
    load.add_argument("--scenario", type=int, choices=[1, 2], default=1, help="1 = Lambda, 2 = ECS workers")
    load.add_argument("--stack", type=opts.stack_name, metavar="NAME", help="send the load to this deployed AWS stack")
    load.add_argument("--region", help="AWS region of --stack")
    load.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
        help="local template parameter override, repeatable (e.g. ProcessorMemorySize=1024)",
    )  # fmt: skip
    load.add_argument("--max-workers", type=opts.workers, help="cap on local worker processes per event source mapping")
    load.add_argument("--service-latency", metavar="default|FILE", help=SERVICE_LATENCY_HELP)
    load.add_argument("--timeout", type=opts.seconds, default=1800, help="seconds to wait for every job")
    load.add_argument(
        "--stall-timeout", type=opts.seconds, default=60, help="seconds without progress and empty queues"
    )
    add_price_options(load)
    serve = commands.add_parser(
        "serve", help="the status API (uvicorn, loopback) against a freshly deployed local cloud, until Ctrl-C"
    )
    serve.add_argument("--port", type=opts.port, default=8000, help="port on 127.0.0.1 (0: a free one)")
    serve.add_argument("--template", type=Path, default=Path("template.yaml"), help="SAM template to deploy locally")
    serve.add_argument("--stack-name", type=opts.stack_name, default="scenario-1-local", help="name of the local stack")
    serve.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE", type=_key_value,
        help="template parameter override, repeatable",
    )  # fmt: skip
    serve.add_argument("--max-workers", type=opts.workers, help="cap on worker processes per event source mapping")
    serve.add_argument("--out", type=Path, default=Path("results"), help="function logs go to <out>/.logs/serve")
    serve.add_argument("--triggers", type=Path, metavar="CONFIG", help="downstream trigger config (docs/triggers.md)")
    cli_triggers.add_parser(commands)
    openapi = commands.add_parser("openapi", help="print the status API's OpenAPI document (docs/openapi.json)")
    openapi.add_argument("--out", type=Path, help="write it to this file instead of stdout")
    sweep = commands.add_parser(
        "sweep", help="the same graph at several Processor memory sizes/architectures, recorded and compared"
    )
    add_run_options(sweep)
    sweep.add_argument("--memory", default="256,512,1024,2048", help="Processor memory sizes, MB, comma-separated")
    sweep.add_argument("--architecture", default="x86_64", help="x86_64 and/or arm64, comma-separated")
    sweep.add_argument(
        "--stack",
        type=opts.stack_name,
        metavar="NAME",
        help="on AWS: redeploy this stack (make deploy) for each setting",
    )
    sweep.add_argument("--env", default="dev", help="--stack's samconfig environment (make deploy ENV=…)")
    sweep.add_argument("--region", help="AWS region of --stack")
    sweep.add_argument("--compare-out", type=Path, help="report folder (default: <out>/<run-id>-sweep)")
    add_price_options(sweep)
    add_bench_parser(commands)
    add_project_parser(commands)
    compare = commands.add_parser("compare", help="compare recorded runs side by side: HTML report + PNG figures")
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="two or more run folders")
    compare.add_argument("--out", type=Path, default=Path("comparison"), help="folder for report.html and PNGs")
    add_debug_option(commands)
    return parser


def add_debug_option(commands) -> None:
    """--debug after the command too (``jobgraph run ... --debug``, ``jobgraph triggers push ... --debug``);
    SUPPRESS keeps the top-level one's value."""
    for command in commands.choices.values():
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        for action in command._actions:  # nested commands (argparse keeps them as a subparsers action)
            if isinstance(action, argparse._SubParsersAction):
                add_debug_option(action)


def _implementations(value: str) -> list[int]:
    try:
        numbers = [int(n) for n in value.split(",") if n.strip()]
    except ValueError:
        numbers = []
    if not numbers or any(n not in SCENARIOS for n in numbers) or len(set(numbers)) != len(numbers):
        raise argparse.ArgumentTypeError(f"{value!r}: distinct scenario numbers from {sorted(SCENARIOS)}, e.g. 1,2,3")
    return numbers


def add_bench_parser(commands) -> None:
    bench = commands.add_parser(
        "bench", help="the same graph on scenarios 1, 2 and 3 (+ Processor settings), recorded, compared, recommended"
    )
    add_run_options(bench)
    bench.add_argument(
        "--implementations", type=_implementations, default=[1, 2, 3], metavar="N,N",
        help="scenarios to run, comma-separated (default 1,2,3)",
    )  # fmt: skip
    bench.add_argument("--memory", help="also scenario 1 at these Processor memory sizes, MB, comma-separated")
    bench.add_argument("--architecture", default="x86_64", help="with --memory: x86_64 and/or arm64, comma-separated")
    bench.add_argument("--env", help="on AWS: the stacks scenario-<n>-<env> deployed for this environment")
    bench.add_argument("--region", help="AWS region of the --env stacks")
    bench.add_argument(
        "--max-workers", type=opts.workers, help="local: cap on worker processes per event source mapping"
    )
    bench.add_argument("--ecs-workers", type=opts.workers, help="local: worker tasks of scenario 2's ECS service")
    bench.add_argument("--service-latency", metavar="default|FILE", help=f"local: {SERVICE_LATENCY_HELP}")
    bench.add_argument("--report-out", type=Path, help="report folder (default: <out>/<run-id>-report)")
    bench.add_argument("--timeout", type=opts.seconds, default=1800, help="seconds to wait for each run to complete")
    bench.add_argument(
        "--stall-timeout", type=opts.seconds, default=60, help="seconds without progress and empty queues"
    )
    add_price_options(bench)


def add_project_parser(commands) -> None:
    project = commands.add_parser(
        "project", help="projected makespan and cost of N sequences on a recorded run's implementation (simulation)"
    )
    project.add_argument("run", type=Path, metavar="RUN_DIR", help="a graph run's folder written by `jobgraph run`")
    project.add_argument(
        "--sequences",
        type=opts.projected_count,
        nargs="+",
        required=True,
        metavar="N",
        help="sequences (aircraft) to project",
    )
    project.add_argument(
        "--on", choices=("run", "aws"), default="run",
        help="run: the run's own platform and settings; aws: the stack's AWS settings and quotas",
    )  # fmt: skip
    project.add_argument("--seed", type=opts.seed, default=0, help="seed of the simulation's draws")
    project.add_argument("--json", type=Path, metavar="FILE", help="also write the projection as JSON")


def add_price_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cost")
    group.add_argument("--price-region", help="price the run with this region's prices (default: the stack's)")
    group.add_argument("--prices", type=Path, help="a JSON price table of your own (shape: jobgraph/bench/prices.py)")


def cmd_generate(args) -> int:
    from jobgraph.adapters.local_disk import check_out_dir
    from jobgraph.core.bounds import SEQUENCE_ID_LIMIT
    from jobgraph.core.generator import generate_sequences, write_sequences

    if args.start_id + args.count > SEQUENCE_ID_LIMIT:
        raise JobGraphError(f"--start-id {args.start_id} + --count {args.count}: ids must stay below 2**53")
    check_out_dir(args.out)
    airports = [c.strip().upper() for c in args.airports.split(",") if c.strip()] if args.airports else None
    try:
        sequences = generate_sequences(args.count, args.seed, start_id=args.start_id, airports=airports)
    except ValueError as exc:
        raise JobGraphError(str(exc)) from None
    paths = write_sequences(sequences, args.out)
    print(f"wrote {len(paths)} sequences to {args.out} (ids {args.start_id}..{args.start_id + args.count - 1})")
    return 0


def cmd_validate(args) -> int:
    from jobgraph.core.loader import load_sequences

    sequences = load_sequences(args.sequences)
    if args.strict_generator:
        from jobgraph.core.generator import check_constraints

        problems = [f"sequence {s.sequence_id}: {p}" for s in sequences for p in check_constraints(s)]
        if problems:
            raise InvalidSequenceError(str(args.sequences), problems)
    routes = sum(len(s.routes) for s in sequences)
    print(f"{len(sequences)} sequences, {routes} routes: valid")
    return 0


def run_inputs(args):
    """Sequences and run spec, shared by `solve` and `run` so both can be fed the same graph."""
    from jobgraph.core.run import RunSpec

    if args.generate:
        from jobgraph.core.generator import generate_sequences

        sequences = generate_sequences(args.generate, args.seed)
    else:
        from jobgraph.core.loader import load_sequences

        sequences = load_sequences(args.sequences)
    spec = RunSpec(run_id=args.run_id, test_run_id=args.test_run_id, scenarios=args.scenarios, seed=args.seed)
    return sequences, spec


def cmd_solve(args) -> int:
    from jobgraph.cli.report import print_solve_report
    from jobgraph.core.graph import total_jobs
    from jobgraph.core.solver import solve
    from jobgraph.runs.progress import progress_bar

    sequences, spec = run_inputs(args)
    with progress_bar(total_jobs(sequences), enabled=not args.no_progress and sys.stderr.isatty()) as bar:
        report = solve(sequences, spec, args.out, overwrite=args.overwrite, on_job=lambda _job: bar.update())
    print_solve_report(report)
    return 0


def cmd_run(args) -> int:
    from jobgraph.bench import prices
    from jobgraph.runs.execute import execute
    from jobgraph.runs.target import Patience

    # before the run: a bad price table must not cost a finished run its record
    table = prices.price_table(args.price_region or args.region or prices.DEFAULT_REGION, path=args.prices)
    sequences, spec = run_inputs(args)
    chosen = scenario(args.scenario)
    target = run_target(args, chosen, Patience(args.timeout, args.stall_timeout))
    execute(chosen.graph(sequences), target, spec, then=lambda outcome: report(outcome, table))
    return 0


def report(outcome, table) -> None:
    """The run's record written beside its results, and its report printed (a load's, or a graph run's)."""
    from jobgraph.bench import record
    from jobgraph.cli.report import print_load_report, print_run_report

    run_record = record.build(outcome, table)
    path = record.write(outcome.out_dir, run_record)
    (print_load_report if "load" in outcome.extra else print_run_report)(outcome, run_record)
    print(f"run record: {path}", flush=True)


# options of `run`, `load` and `serve` (argparse dest -> flag) that only the local cloud has
LOCAL_ONLY = {
    "fail_rate": "--fail-rate", "duplicate_rate": "--duplicate-rate", "kill_rate": "--kill-rate",
    "poison": "--poison", "parameter": "--parameter", "max_workers": "--max-workers", "template": "--template",
    "stack_name": "--stack-name", "ecs_workers": "--ecs-workers", "serve": "--serve", "triggers": "--triggers",
    "service_latency": "--service-latency",
}  # fmt: skip
BENCH_LOCAL = ("max_workers", "ecs_workers", "service_latency")  # the LOCAL_ONLY options `bench` has


def run_target(args, chosen, patience=None, parameters: dict[str, str] | None = None):
    """Where a run goes: the stack that --stack names, on AWS; else the local cloud with the scenario's template
    (``parameters``: template parameters on top of --parameter). Local-only options are refused with --stack:
    they would be silently ignored there."""
    from jobgraph.runs.target import Output

    output = Output(args.out, args.overwrite, not args.no_progress and sys.stderr.isatty())
    if getattr(args, "stack", None):
        from jobgraph.runs.aws import AwsTarget

        local_only = [flag for dest, flag in LOCAL_ONLY.items() if getattr(args, dest, None)]
        if local_only:
            raise JobGraphError(f"{', '.join(local_only)} apply to the local cloud only, not to --stack")
        return AwsTarget.with_session(args.stack, output, patience, region=args.region)
    from jobgraph.runs.local import LocalTarget

    options = local_options(args, chosen)
    options.parameters.update(parameters or {})
    return LocalTarget(options, output, patience)


def local_options(args, chosen):
    """The local cloud's options of `run`, `load`, `serve` or `sweep` (each has some): template, stack,
    parameters, faults, workers, the status API."""
    from jobgraph.runs.local import FaultPlan, LocalOptions

    try:
        faults = FaultPlan(
            fail_rate=getattr(args, "fail_rate", 0.0),
            duplicate_rate=getattr(args, "duplicate_rate", 0.0),
            kill_rate=getattr(args, "kill_rate", 0.0),
            poison=getattr(args, "poison", 0),
            seed=getattr(args, "fault_seed", 0),
        )
    except ValueError as exc:
        raise JobGraphError(str(exc)) from None
    ecs_workers = getattr(args, "ecs_workers", None)
    triggers = local_triggers(getattr(args, "triggers", None))
    return LocalOptions(
        template=getattr(args, "template", None) or chosen.template,
        stack_name=getattr(args, "stack_name", None) or chosen.local_stack_name,
        parameters={**triggers["parameters"], **dict(getattr(args, "parameter", []))},
        trigger_config=triggers["trigger_config"],
        faults=faults,
        max_workers=getattr(args, "max_workers", None),
        **({"ecs_workers": ecs_workers} if ecs_workers else {}),
        api_port=args.api_port if getattr(args, "serve", False) else None,
        service_latency=getattr(args, "service_latency", None),
    )


def cmd_serve(args) -> int:
    from dataclasses import replace

    from jobgraph.runs.local import LocalTarget
    from jobgraph.runs.target import Output

    options = replace(local_options(args, scenario(1)), api_port=args.port)
    LocalTarget(options, Output(args.out, overwrite=True)).serve_until_interrupted()
    return 0


def local_triggers(path: Path | None) -> dict:
    """A workflow config for the local cloud: validated before anything is deployed, pushed to the local
    stack's S3 once it is (LocalOptions.trigger_config), with the grants it needs as template parameters."""
    if path is None:
        return {"parameters": {}, "trigger_config": None}
    from jobgraph.localcloud.server import LocalEndpoint
    from jobgraph.sam.triggers import LOCAL_ACCOUNT, load_trigger_config, template_parameters

    config = load_trigger_config(path)
    return {"parameters": template_parameters(config, LocalEndpoint.region, LOCAL_ACCOUNT), "trigger_config": config}


def cmd_openapi(args) -> int:
    from jobgraph.api.app import openapi_document

    if args.out:
        args.out.write_text(openapi_document())
        print(f"wrote {args.out}")
    else:
        sys.stdout.write(openapi_document())
    return 0


def cmd_cost(args) -> int:
    from jobgraph.bench import prices, record
    from jobgraph.bench.cost import run_cost
    from jobgraph.cli.report import cost_lines

    if args.activate_tags:
        return cli_billing.activate(args)
    if not args.runs:
        raise JobGraphError("give one or more RUN_DIR (or --activate-tags)")
    status = 0
    for run_dir in args.runs:
        try:
            run = record.read(run_dir)
        except record.RunRecordError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = EXIT_INVALID_INPUT
            continue
        table = prices.price_table(args.price_region or run["cost"]["price_table"]["region"], path=args.prices)
        run["cost"] = run_cost(run["usage"], table, run["route_jobs"])
        print(f"{run['run_id']}: scenario {run['scenario']} ({run['scenario_name']}), {run['route_jobs']} route jobs")
        for item in run["cost"]["items"]:
            print(
                f"    {item['service']:<15}{item['item']:<48}{item['quantity']:>14.4f} {item['unit']:<15}"
                f" x ${item['unit_price_usd']:.10f} = ${item['usd']:.6f}"
            )
        print("\n".join(cost_lines(run)))
        if args.billed:
            print("\n".join(cli_billing.billed_lines(args, run)))
    return status


def cmd_load(args) -> int:
    from jobgraph.bench import prices
    from jobgraph.core.models import MAX_SYNTHETIC_DATA_KB, MAX_SYNTHETIC_WORK_MS
    from jobgraph.core.run import RunSpec
    from jobgraph.runs.execute import execute
    from jobgraph.runs.load import SyntheticLoad
    from jobgraph.runs.target import Patience

    if args.work_duration_ms > MAX_SYNTHETIC_WORK_MS or args.data_size_kb > MAX_SYNTHETIC_DATA_KB:
        raise JobGraphError(
            f"--work-duration-ms is at most {MAX_SYNTHETIC_WORK_MS}, --data-size-kb at most {MAX_SYNTHETIC_DATA_KB}"
        )
    table = prices.price_table(args.price_region or args.region or prices.DEFAULT_REGION, path=args.prices)
    load = SyntheticLoad(
        args.messages, args.work_duration_ms, args.data_size_kb, args.concurrency, args.groups, args.scenario
    )
    target = run_target(args, scenario(args.scenario), Patience(args.timeout, args.stall_timeout))
    execute(load, target, RunSpec.synthetic(args.run_id, args.test_run_id), then=lambda outcome: report(outcome, table))
    return 0


def cmd_sweep(args) -> int:
    from jobgraph.bench import prices, sweep
    from jobgraph.bench.compare import compare
    from jobgraph.runs.execute import execute

    points = sweep.sweep_points(args.memory, args.architecture)
    table = prices.price_table(args.price_region or args.region or prices.DEFAULT_REGION, path=args.prices)
    sequences, base = run_inputs(args)
    chosen = scenario(1)

    def run_one(point, run_id: str) -> Path:
        spec = replace(base, run_id=run_id)
        target = run_target(args, chosen, parameters=point.parameters())
        return execute(chosen.graph(sequences), target, spec, then=lambda outcome: report(outcome, table)).out_dir

    def before_each(point, run_id: str) -> None:
        if args.stack:
            sweep.redeploy(args.env, point, run_id)

    folders = sweep.sweep(points, args.run_id, run_one, before_each)
    out = args.compare_out or args.out / f"{args.run_id}-sweep"
    if len(folders) < 2:
        print(f"one setting only: nothing to compare ({folders[0]})")
        return 0
    html, figures = compare(folders, out)
    print(f"swept {len(folders)} settings: {html} ({', '.join(f.path.name for f in figures)})")
    return 0


def cmd_bench(args) -> int:
    from jobgraph.bench import prices, suite, sweep
    from jobgraph.runs.execute import execute
    from jobgraph.runs.outcome import RunFailed
    from jobgraph.runs.target import Patience

    local_only = [flag for dest, flag in LOCAL_ONLY.items() if dest in BENCH_LOCAL and getattr(args, dest, None)]
    if args.env and local_only:
        raise JobGraphError(f"{', '.join(local_only)} apply to the local cloud only, not to --env")
    points = sweep.sweep_points(args.memory, args.architecture) if args.memory else []
    chosen_implementations = suite.implementations(args.implementations, points)
    if len(chosen_implementations) < 2:  # refused before a run that could only end in "nothing to compare"
        raise JobGraphError("bench compares at least two implementations: add scenarios or --memory sizes")
    table = prices.price_table(args.price_region or args.region or prices.DEFAULT_REGION, path=args.prices)
    sequences, base = run_inputs(args)
    patience = Patience(args.timeout, args.stall_timeout)
    folders, failed = [], []
    for implementation in chosen_implementations:
        run_id, chosen = implementation.run_id(args.run_id), scenario(implementation.scenario)
        spec = replace(base, run_id=run_id)
        print(f"== {run_id}: scenario {chosen.number} ({chosen.name})", flush=True)
        try:
            if args.env:
                target = bench_aws_target(args, chosen, implementation, run_id, patience)
            else:
                target = run_target(args, chosen, patience, implementation.parameters)
            outcome = execute(chosen.graph(sequences), target, spec, then=lambda outcome: report(outcome, table))
        except (RunFailed, sweep.SweepError) as exc:
            print(f"error: {run_id}: {exc}", file=sys.stderr, flush=True)
            failed.append(run_id)
            continue
        folders.append(outcome.out_dir)
    if len(folders) < 2:
        raise JobGraphError(
            f"bench: {len(folders)} implementation(s) ran ({', '.join(failed)} failed): nothing to compare"
        )
    page, _rows, chosen = suite.bench_report(folders, args.report_out or args.out / f"{args.run_id}-report")
    print("\n".join(["recommendation:", *(f"  {line}" for line in suite.recommendation_lines(chosen))]))
    print(f"bench report: {page}")
    if failed:
        print(f"error: {len(failed)} implementation(s) failed: {', '.join(failed)}", file=sys.stderr)
    return EXIT_FAILED if failed else 0


def bench_aws_target(args, chosen, implementation, run_id: str, patience):
    """The stack scenario-<n>-<env> on AWS, redeployed first with the implementation's Processor settings."""
    from jobgraph.bench import sweep
    from jobgraph.runs.aws import AwsTarget
    from jobgraph.runs.target import Output

    if implementation.memory_mb:
        sweep.redeploy(args.env, sweep.SweepPoint(implementation.memory_mb, implementation.architecture), run_id)
    output = Output(args.out, args.overwrite, not args.no_progress and sys.stderr.isatty())
    return AwsTarget.with_session(chosen.stack_name(args.env), output, patience, region=args.region)


def cmd_project(args) -> int:
    import json

    from jobgraph.bench import project, record
    from jobgraph.cli.report import projection_lines

    projection = project.project(record.read(args.run), args.sequences, on=args.on, seed=args.seed)
    print("\n".join(projection_lines(projection)))
    if args.json:
        args.json.write_text(json.dumps(projection, indent=2) + "\n")
        print(f"projection: {args.json}")
    return 0


def cmd_compare(args) -> int:
    from jobgraph.bench.compare import compare

    report, figures = compare(args.runs, args.out)
    print(f"compared {len(args.runs)} runs: {report} ({', '.join(f.path.name for f in figures)})")
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "validate": cmd_validate,
    "solve": cmd_solve,
    "run": cmd_run,
    "cost": cmd_cost,
    "load": cmd_load,
    "compare": cmd_compare,
    "serve": cmd_serve,
    "openapi": cmd_openapi,
    "triggers": cli_triggers.cmd_triggers,
    "sweep": cmd_sweep,
    "project": cmd_project,
    "bench": cmd_bench,
}


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C so that the local cloud's workers and server are stopped on the way out."""


def _terminated(_signum, _frame):
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(cli_triggers.legacy_argv(sys.argv[1:] if argv is None else list(argv)))
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main_thread else None
    try:
        return _dispatch(args)
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _dispatch(args) -> int:
    try:
        return COMMANDS[args.command](args)
    except InvalidSequenceError as exc:
        for line in exc.problems:
            print(f"error: {line}" if exc.source in line else f"error: {exc.source}: {line}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except JobGraphError as exc:
        report_error(args, exc, expected=True)
        return EXIT_FAILED
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an untranslated failure: one line, the traceback in a log file
        report_error(args, exc, expected=False)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
