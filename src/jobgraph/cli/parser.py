"""The `jobgraph` command line's options: one function per command (main.py runs the commands)."""

from __future__ import annotations

import argparse
from pathlib import Path

from jobgraph.cli import billing as cli_billing
from jobgraph.cli import options as opts
from jobgraph.cli import triggers as cli_triggers
from jobgraph.cli.errors import OneLineParser
from jobgraph.core.ids import RUN_ID_PATTERN
from jobgraph.core.models import MAX_SCENARIOS
from jobgraph.runs.scenarios import SCENARIOS

SERVICE_LATENCY_HELP = (
    "hold each AWS request for its service's p50/p99 latency: 'default' (stated assumptions) or a JSON profile "
    "measured on AWS (docs/cli.md, 'Service latency locally')"
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
    add_record_options(parser)


def add_record_options(parser: argparse.ArgumentParser) -> None:
    """--test-run-id, --overwrite and --no-progress of the commands that write <out>/<run-id> (add_run_options, load)."""
    parser.add_argument(
        "--test-run-id", type=opts.test_run_id, default="default", help="cost-tracking tag value (PerfTestRun)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing <out>/<run-id>")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_parameter_option(parser, help_text: str) -> None:
    """--parameter KEY=VALUE, repeatable: a template parameter override of `run`, `load` and `serve`."""
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE", type=_key_value, help=help_text
    )


_rate = opts.rate


def _key_value(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{value!r}: use KEY=VALUE")
    return key, val


def build_parser() -> argparse.ArgumentParser:
    """Every command's options; main.COMMANDS runs them."""
    parser = OneLineParser(
        prog="jobgraph",
        description="Run and performance-test job graphs: in-process, on the embedded local cloud or on AWS "
        "(README.md, docs/cli.md). `jobgraph COMMAND --help` for each command.",
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (
        add_input_parsers, add_solve_parser, add_run_parser, add_cost_parser, add_load_parser, add_serve_parser,
        cli_triggers.add_parser, add_openapi_parser, add_sweep_parser, add_cloud_parser, add_bench_parser,
        add_project_parser, add_compare_parser,
    ):  # fmt: skip
        add(commands)
    add_debug_option(commands)
    return parser


def add_input_parsers(commands) -> None:
    """`generate` and `validate`: sequence files."""
    generate = commands.add_parser("generate", help="write generated aircraft daily sequences")
    generate.add_argument("--count", type=opts.generated_count, required=True, help="sequences to write (1..10000)")
    generate.add_argument("--seed", type=opts.seed, required=True, help="same seed, byte-identical files")
    generate.add_argument("--out", type=Path, required=True, help="folder for <sequence_id>.json files")
    generate.add_argument("--start-id", type=opts.sequence_id, default=0, help="first sequence_id (to combine sets)")
    generate.add_argument("--airports", help="comma-separated IATA codes to use instead of the default pool")

    validate = commands.add_parser("validate", help="check sequence files without running anything")
    validate.add_argument("--sequences", type=Path, default=Path("sequences"), help="folder of sequence JSON files")
    validate.add_argument("--strict-generator", action="store_true", help="also check the generator constraints")


def add_solve_parser(commands) -> None:
    """`solve`: the reference solver, in-process."""
    solve = commands.add_parser("solve", help="solve the graph in-process (reference solver)")
    add_run_options(solve)


def add_run_parser(commands) -> None:
    """`run`: the graph on the local cloud or a deployed stack (--stack)."""
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
    add_parameter_option(local, "template parameter override, repeatable (e.g. ProcessorBatchSize=5)")
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
    add_patience_options(run, "seconds to wait for the run to complete")


def add_cost_parser(commands) -> None:
    """`cost`: recorded runs priced line by line."""
    cost = commands.add_parser("cost", help="the cost of recorded runs (OUT/<run_id>/run.json), line by line")
    cost.add_argument("runs", nargs="*", type=Path, metavar="RUN_DIR", help="run folder(s) written by `jobgraph run`")
    add_price_options(cost)
    cli_billing.add_options(cost)


def add_load_parser(commands) -> None:
    """`load`: seed 000's synthetic load."""
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
    add_record_options(load)
    load.add_argument("--scenario", type=int, choices=[1, 2], default=1, help="1 = Lambda, 2 = ECS workers")
    load.add_argument("--stack", type=opts.stack_name, metavar="NAME", help="send the load to this deployed AWS stack")
    load.add_argument("--region", help="AWS region of --stack")
    add_parameter_option(load, "local template parameter override, repeatable (e.g. ProcessorMemorySize=1024)")
    load.add_argument("--max-workers", type=opts.workers, help="cap on local worker processes per event source mapping")
    load.add_argument("--service-latency", metavar="default|FILE", help=SERVICE_LATENCY_HELP)
    add_patience_options(load, "seconds to wait for every job")
    add_price_options(load)


def add_serve_parser(commands) -> None:
    """`serve`: the status API on a freshly deployed local cloud."""
    serve = commands.add_parser(
        "serve", help="the status API (uvicorn, loopback) against a freshly deployed local cloud, until Ctrl-C"
    )
    serve.add_argument("--port", type=opts.port, default=8000, help="port on 127.0.0.1 (0: a free one)")
    serve.add_argument("--template", type=Path, default=Path("template.yaml"), help="SAM template to deploy locally")
    serve.add_argument("--stack-name", type=opts.stack_name, default="scenario-1-local", help="name of the local stack")
    add_parameter_option(serve, "template parameter override, repeatable")
    serve.add_argument("--max-workers", type=opts.workers, help="cap on worker processes per event source mapping")
    serve.add_argument("--out", type=Path, default=Path("results"), help="function logs go to <out>/.logs/serve")
    serve.add_argument("--triggers", type=Path, metavar="CONFIG", help="downstream trigger config (docs/triggers.md)")


def add_openapi_parser(commands) -> None:
    """`openapi`: the status API's OpenAPI document."""
    openapi = commands.add_parser("openapi", help="print the status API's OpenAPI document (docs/openapi.json)")
    openapi.add_argument("--out", type=Path, help="write it to this file instead of stdout")


def add_sweep_parser(commands) -> None:
    """`sweep`: the graph at several Processor settings."""
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


def add_compare_parser(commands) -> None:
    """`compare`: recorded runs side by side."""
    compare = commands.add_parser("compare", help="compare recorded runs side by side: HTML report + PNG figures")
    compare.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="two or more run folders")
    compare.add_argument("--out", type=Path, default=Path("comparison"), help="folder for report.html and PNGs")


def add_cloud_parser(commands) -> None:
    cloud = commands.add_parser(
        "cloud", help="a long-lived local AWS endpoint that `sam deploy` and every AWS target use (up|status|env|down)"
    )
    cloud.add_argument("action", choices=("up", "status", "env", "down"))
    cloud.add_argument("--port", type=_non_negative, default=0, help="port on 127.0.0.1 (default: a free one)")
    cloud.add_argument("--region", default="eu-west-1", help="the endpoint's default region")
    cloud.add_argument("--dir", type=Path, help="state folder (default: $JOBGRAPH_CLOUD_DIR or .jobgraph)")
    cloud.add_argument(
        "--quiet",
        action="store_true",
        help="no output, only the exit code (status: 0 when the endpoint answers, 1 when not)",
    )


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
    add_patience_options(bench, "seconds to wait for each run to complete")
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


def add_patience_options(parser: argparse.ArgumentParser, timeout_help: str) -> None:
    """--timeout and --stall-timeout of the commands that wait for runs (runs.target.Patience)."""
    parser.add_argument("--timeout", type=opts.seconds, default=1800, help=timeout_help)
    parser.add_argument(
        "--stall-timeout", type=opts.seconds, default=60, help="seconds without progress and empty queues"
    )


def add_price_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cost")
    group.add_argument("--price-region", help="price the run with this region's prices (default: the stack's)")
    group.add_argument("--prices", type=Path, help="a JSON price table of your own (shape: jobgraph/bench/prices.py)")
