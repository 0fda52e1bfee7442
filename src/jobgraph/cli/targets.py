"""Where a command's run goes: a deployed stack (--stack) or the local cloud with the scenario's template, and
the local cloud's options from the command line (main.py's commands use these)."""

from __future__ import annotations

import sys
from pathlib import Path

from jobgraph.core.errors import JobGraphError

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
    output = run_output(args)
    if getattr(args, "stack", None):
        from jobgraph.runs.aws import AwsTarget

        refuse_local_only(args, LOCAL_ONLY, "--stack")
        return AwsTarget.with_session(args.stack, output, patience, region=args.region)
    from jobgraph.runs.local import LocalTarget

    options = local_options(args, chosen)
    options.parameters.update(parameters or {})
    return LocalTarget(options, output, patience)


def run_output(args):
    """Where a run's results go (--out, --overwrite) and whether its progress bar shows."""
    from jobgraph.runs.target import Output

    return Output(args.out, args.overwrite, not args.no_progress and sys.stderr.isatty())


def refuse_local_only(args, dests, where: str) -> None:
    """Local-only options given with an AWS target (``where``: --stack, --env) would be silently ignored there."""
    given = [flag for dest, flag in LOCAL_ONLY.items() if dest in dests and getattr(args, dest, None)]
    if given:
        verb = "applies" if len(given) == 1 else "apply"
        raise JobGraphError(f"{', '.join(given)} {verb} to the local cloud only, not to {where}")


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
    template = getattr(args, "template", None)
    if template is None and not chosen.template.exists():  # the default is the checkout's, relative to it
        raise JobGraphError(
            f"{chosen.template}: no such file here: the local cloud deploys the jobgraph checkout's SAM template "
            "- run this from the checkout's folder, or pass --template PATH"
        )
    triggers = local_triggers(getattr(args, "triggers", None))
    return LocalOptions(
        template=template or chosen.template,
        stack_name=getattr(args, "stack_name", None) or chosen.local_stack_name,
        parameters={**triggers["parameters"], **dict(getattr(args, "parameter", []))},
        trigger_config=triggers["trigger_config"],
        faults=faults,
        max_workers=getattr(args, "max_workers", None),
        **({"ecs_workers": ecs_workers} if ecs_workers else {}),
        api_port=args.api_port if getattr(args, "serve", False) else None,
        service_latency=getattr(args, "service_latency", None),
    )


def local_triggers(path: Path | None) -> dict:
    """A workflow config for the local cloud: validated before anything is deployed, pushed to the local
    stack's S3 once it is (LocalOptions.trigger_config), with the grants it needs as template parameters."""
    if path is None:
        return {"parameters": {}, "trigger_config": None}
    from jobgraph.localcloud.server import LocalEndpoint
    from jobgraph.sam.triggers import LOCAL_ACCOUNT, load_trigger_config, template_parameters

    config = load_trigger_config(path)
    return {"parameters": template_parameters(config, LocalEndpoint.region, LOCAL_ACCOUNT), "trigger_config": config}
