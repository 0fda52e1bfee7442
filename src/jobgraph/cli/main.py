"""`jobgraph` command line: every command of README.md's table (parser.py) and what runs it."""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path

from jobgraph.cli import billing as cli_billing
from jobgraph.cli import cloud as cli_cloud
from jobgraph.cli import triggers as cli_triggers
from jobgraph.cli.errors import report as report_error
from jobgraph.cli.errors import usage_line
from jobgraph.cli.parser import build_parser
from jobgraph.cli.targets import BENCH_LOCAL, local_options, refuse_local_only, run_output, run_target
from jobgraph.core.errors import InvalidSequenceError, JobGraphError
from jobgraph.runs.scenarios import scenario

EXIT_INVALID_INPUT = 2
EXIT_FAILED = 1
# botocore's errors for an AWS configuration that is missing (not a bug: say what to set); matched by name so that
# the command line does not import botocore before a command needs it
AWS_CONFIGURATION_ERRORS = frozenset(
    {"NoRegionError", "NoCredentialsError", "ProfileNotFound", "PartialCredentialsError"}
)
AWS_CONFIGURATION_HINT = (
    "(--stack/--env/--billed use your AWS configuration: set AWS_REGION or --region and credentials, e.g. "
    'AWS_PROFILE; for the local cloud: eval "$(jobgraph cloud env)")'
)
EXIT_READER_GONE = 141  # 128 + SIGPIPE, what a shell reports for a command whose pipe's reader left


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe nobody reads any more (POLLERR on its write end), not some other broken pipe."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no real file descriptor (captured output), or no poll()
        return False


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


def run_prices(args):
    """The price table of `run`, `load`, `sweep` and `bench`: --prices, for --price-region, else --region, else the
    default region. Read before the run: a bad price table must not cost a finished run its record."""
    from jobgraph.bench import prices

    return prices.price_table(args.price_region or args.region or prices.DEFAULT_REGION, path=args.prices)


def cmd_solve(args) -> int:
    from jobgraph.adapters.local_disk import staged_run
    from jobgraph.cli.report import print_solve_report
    from jobgraph.core.graph import total_jobs
    from jobgraph.core.solver import solve
    from jobgraph.runs.progress import progress_bar

    sequences, spec = run_inputs(args)
    with progress_bar(total_jobs(sequences), enabled=not args.no_progress and sys.stderr.isatty()) as bar:
        report = solve(
            sequences, spec, args.out, staging=staged_run, overwrite=args.overwrite, on_job=lambda _job: bar.update()
        )
    print_solve_report(report)
    return 0


def cmd_run(args) -> int:
    from jobgraph.runs.execute import execute
    from jobgraph.runs.target import Patience

    table = run_prices(args)
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


def cmd_serve(args) -> int:
    from jobgraph.runs.local import LocalTarget
    from jobgraph.runs.target import Output

    options = replace(local_options(args, scenario(1)), api_port=args.port)
    LocalTarget(options, Output(args.out, overwrite=True)).serve_until_interrupted()
    return 0


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
    if not args.runs:  # a missing argument (argparse's nargs cannot say "unless --activate-tags")
        print(usage_line("jobgraph cost", "give one or more RUN_DIR (or --activate-tags)"), file=sys.stderr)
        return EXIT_INVALID_INPUT
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
    from jobgraph.core.models import MAX_SYNTHETIC_DATA_KB, MAX_SYNTHETIC_WORK_MS
    from jobgraph.core.run import RunSpec
    from jobgraph.runs.execute import execute
    from jobgraph.runs.load import SyntheticLoad
    from jobgraph.runs.target import Patience

    if args.work_duration_ms > MAX_SYNTHETIC_WORK_MS or args.data_size_kb > MAX_SYNTHETIC_DATA_KB:
        raise JobGraphError(
            f"--work-duration-ms is at most {MAX_SYNTHETIC_WORK_MS}, --data-size-kb at most {MAX_SYNTHETIC_DATA_KB}"
        )
    table = run_prices(args)
    load = SyntheticLoad(
        args.messages, args.work_duration_ms, args.data_size_kb, args.concurrency, args.groups, args.scenario
    )
    target = run_target(args, scenario(args.scenario), Patience(args.timeout, args.stall_timeout))
    execute(load, target, RunSpec.synthetic(args.run_id, args.test_run_id), then=lambda outcome: report(outcome, table))
    return 0


def cmd_sweep(args) -> int:
    from jobgraph.bench import sweep
    from jobgraph.bench.compare import compare
    from jobgraph.runs.execute import execute

    points = sweep.sweep_points(args.memory, args.architecture)
    table = run_prices(args)
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
    from jobgraph.bench import suite, sweep
    from jobgraph.runs.execute import execute
    from jobgraph.runs.outcome import RunFailed
    from jobgraph.runs.target import Patience

    if args.env:
        refuse_local_only(args, BENCH_LOCAL, "--env")
    points = sweep.sweep_points(args.memory, args.architecture) if args.memory else []
    chosen_implementations = suite.implementations(args.implementations, points)
    if len(chosen_implementations) < 2:  # refused before a run that could only end in "nothing to compare"
        raise JobGraphError("bench compares at least two implementations: add scenarios or --memory sizes")
    table = run_prices(args)
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

    if implementation.memory_mb:
        sweep.redeploy(args.env, sweep.SweepPoint(implementation.memory_mb, implementation.architecture), run_id)
    return AwsTarget.with_session(chosen.stack_name(args.env), run_output(args), patience, region=args.region)


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
    "cloud": cli_cloud.cmd_cloud,
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
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a reader gone shows here, not as an error while Python exits
        return status
    except BrokenPipeError as exc:
        if not _stdout_reader_gone():
            report_error(args, exc, expected=False)
            return EXIT_FAILED
        # `jobgraph cost … | head`: the reader has what it wanted; stop quietly, as cat or grep do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return EXIT_READER_GONE
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
        if type(exc).__name__ in AWS_CONFIGURATION_ERRORS and type(exc).__module__.startswith("botocore"):
            print(f"error: {exc} {AWS_CONFIGURATION_HINT}", file=sys.stderr)
            return EXIT_FAILED
        report_error(args, exc, expected=False)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
