"""`sam local invoke` of the built functions with events/*.json, offline: Docker, image, local cloud, table.

    python scripts/local_invoke.py --all                                    # every events/*.json, every app
    python scripts/local_invoke.py --all --scenario 3                       # scenario 3's only
    python scripts/local_invoke.py --event events/processor-first.json      # one (its prerequisites seeded)
    python scripts/local_invoke.py --event events/scheduler-merge.json --function SchedulerFunction
    python scripts/local_invoke.py --event events/start-run.json --scenario 3   # PrepareRun, not StartRun
    python scripts/local_invoke.py docker-up                                # only start (install) dockerd
    python scripts/local_invoke.py image                                    # only build the stand-in image

The Makefile's `local-invoke`, `local-invoke-all`, `docker-up` and `lambda-image` targets call this
(after `make build` and `make build-sfn`). `--image auto|official|local` (LAMBDA_IMAGE in make) picks the Lambda base image:
auto uses public.ecr.aws/lambda/python:3.13 when it is on this machine or its registry resolves, else
the stand-in built here from Debian (docker/lambda-python3.13/). Exit code 1 if any event FAILED.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives beside the tests that use it (tests/samlocal)

from jobgraph.core.errors import JobGraphError  # noqa: E402
from jobgraph.localcloud.server import allow_loopback_only  # noqa: E402
from tests.samlocal import containers  # noqa: E402
from tests.samlocal.saminvoke import APPS, SamLocalInvoker, case_for, format_table  # noqa: E402

RECIPE = ROOT / "docker" / "lambda-python3.13"
CACHE = ROOT / ".cache" / "lambda-image"
LOGS = ROOT / "results" / ".logs" / "local-invoke"


def say(message: str) -> None:
    print(f"local-invoke: {message}", file=sys.stderr, flush=True)


def prepare(image_mode: str) -> containers.ImageChoice:
    """Docker daemon, the internal network and the base image; what is already there is reused."""
    say(f"docker daemon {containers.ensure_docker(install=True, log=say)}")
    choice = containers.choose_image(image_mode, containers.docker_arch())
    say(f"image {choice.image} ({choice.reason})")
    if choice.kind == "local":
        built = containers.ensure_standin_image(RECIPE, CACHE, log=say)
        say(f"{built.tag}: {built.action} in {built.seconds:.1f} s (recipe {built.recipe})")
    return choice


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", nargs="?", choices=("invoke", "docker-up", "image"), default="invoke")
    parser.add_argument("--all", action="store_true", help="every events/*.json, in dependency order")
    parser.add_argument("--event", type=Path, help="one events file")
    parser.add_argument("--function", help="logical id; must match the event's file name if given")
    parser.add_argument("--scenario", type=int, choices=sorted(APPS), help="the app (template) to invoke")
    parser.add_argument("--image", default="auto", choices=("auto", "official", "local"), help="Lambda base image")
    args = parser.parse_args(argv)
    try:
        if args.step == "docker-up":
            say(f"docker daemon {containers.ensure_docker(install=True, log=say)}")
            return 0
        if args.step == "image":
            prepare("local")
            return 0
        if args.all == bool(args.event):
            parser.error("give --all or --event")
        if args.all:
            files = {p.stem for p in (ROOT / "events").glob("*.json")}
            unknown = sorted(files - {event for app in APPS.values() for event in app.cases})
            if unknown:
                parser.error(f"events without an entry in saminvoke.APPS: {', '.join(unknown)}")
            apps = [APPS[args.scenario]] if args.scenario else list(APPS.values())
            plan = [(app, [case for case in app.cases.values() if case.event in files]) for app in apps]
        else:
            app, case = case_for(args.event, args.scenario)
            if args.function and args.function != case.function:
                parser.error(f"{args.event.name} is an event for {case.function}, not {args.function}")
            plan = [(app, [case])]
        choice = prepare(args.image)
        gateway = containers.local_invoke_network()
        allow_loopback_only()  # this process talks to the local cloud on loopback only; containers use the gateway
        started = time.monotonic()
        results = []
        for app, cases in plan:
            log_dir = LOGS / f"scenario-{app.scenario}"
            with SamLocalInvoker(ROOT, choice, containers.NETWORK, gateway, log_dir, app=app, log=say) as invoker:
                say(
                    f"{app.template} deployed as {app.stack_name}; local cloud on 127.0.0.1 and {gateway} "
                    f"(docker network {containers.NETWORK}); env: {invoker.env_file.relative_to(ROOT)}"
                )
                for case in cases:
                    result = invoker.invoke(case)
                    say(f"{case.function} {case.file}: {result.outcome} ({result.wall_s:.1f} s)")
                    results.append(result)
    except (JobGraphError, containers.DockerUnavailable) as exc:
        say(f"error: {exc}")
        return 2
    print(format_table(results))
    for result in results:
        if result.case.expected_failure:
            print(f"expected failure: {result.case.file}: {result.case.expected_failure}")
    failed = [r for r in results if not r.passed]
    print(
        f"{len(results) - len(failed)} passed, {len(failed)} failed in {time.monotonic() - started:.1f} s "
        f"({choice.kind} image {choice.image}); logs: {LOGS.relative_to(ROOT)}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
