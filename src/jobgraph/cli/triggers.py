"""`jobgraph triggers validate | push | show | approve`: the workflow config (seed 003) and approvals.

``validate`` checks a config and prints the IAM grants (Trigger*Arns template parameters) it needs;
``push`` uploads it to a deployed stack's S3 location, where the trigger function reads it at run time
(no deploy); ``show`` prints the config in effect (the same S3 → SSM → default lookup the function does)
or what fired for one run; ``approve`` decides a run's PENDING_APPROVAL. The stack commands use your AWS
configuration (or ``AWS_ENDPOINT_URL``, e.g. the local cloud).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from jobgraph.core.errors import ConfigurationError, JobGraphError

SUBCOMMANDS = ("validate", "push", "show", "approve")


def add_parser(commands) -> None:
    triggers = commands.add_parser(
        "triggers", help="downstream workflows (seed 003): validate, push (no redeploy), show, approve"
    )
    sub = triggers.add_subparsers(dest="triggers_command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    validate = sub.add_parser("validate", help="check a config; print the IAM grants (template parameters) it needs")
    validate.add_argument("config", type=Path, metavar="CONFIG", help="YAML or JSON workflow config (docs/triggers.md)")
    validate.add_argument("--region", default="eu-west-1", help="region of the stack (ARNs of Glue jobs, MWAA, buses)")
    validate.add_argument("--account", default="123456789012", help="account of the stack")
    push = sub.add_parser("push", help="validate a config and upload it where a deployed stack reads it")
    push.add_argument("config", type=Path, metavar="CONFIG", help="YAML or JSON workflow config (docs/triggers.md)")
    _stack_options(push)
    push.add_argument("--ssm", action="store_true", help="also write the SSM fallback parameter (8 KB at most)")
    push.add_argument("--force", action="store_true", help="push despite missing grants or an expiring bucket rule")
    show = sub.add_parser("show", help="the config a stack's trigger function uses now, or what fired for a run")
    _stack_options(show)
    show.add_argument("--run", metavar="RUN_ID", help="what the run's triggers did, and its approval")
    approve = sub.add_parser("approve", help="approve (or --reject) a run waiting in PENDING_APPROVAL")
    approve.add_argument("run_id", metavar="RUN_ID")
    _stack_options(approve)
    approve.add_argument("--reject", action="store_true", help="reject instead: on_approval never fires")
    approve.add_argument("--by", default="", help="who decides (default: your AWS identity)")
    approve.add_argument("--comment", default="", help="kept with the decision")


def _stack_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stack", required=True, metavar="NAME", help="the deployed stack")
    parser.add_argument("--region", help="AWS region of --stack (default: your AWS configuration)")


def legacy_argv(argv: list[str]) -> list[str]:
    """`jobgraph triggers FILE` (before push/show/...) still validates FILE, with a note on what changed."""
    if len(argv) >= 2 and argv[0] == "triggers" and argv[1] not in SUBCOMMANDS and not argv[1].startswith("-"):
        print(
            "note: `jobgraph triggers CONFIG` is now `jobgraph triggers validate CONFIG`; the config is no longer a "
            "template parameter: `jobgraph triggers push CONFIG --stack NAME` puts it where the stack reads it at "
            "run time (docs/triggers.md)",
            file=sys.stderr,
        )
        return ["triggers", "validate", *argv[1:]]
    return argv


def cmd_triggers(args) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    command = {"validate": validate, "push": push, "show": show, "approve": approve}[args.triggers_command]
    try:
        return command(args)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise JobGraphError(f"{exc.operation_name}: {error.get('Code')}: {error.get('Message')}") from None
    except BotoCoreError as exc:
        raise JobGraphError(str(exc)) from None


def _gate(gate) -> str:
    return f"{gate.field} > {gate.above:g}" if gate.above is not None else f"{gate.field} < {gate.below:g}"


def describe(config) -> list[str]:
    lines = []
    for key, workflow in config.workflows.items():
        gate = ""
        if workflow.approval is not None:
            when = workflow.approval.when
            rule = "every run" if when is None else " or ".join(_gate(g) for g in when)
            gate = f" (approval when {rule}, expires after {workflow.approval.expires_after_hours:g} h)"
        lines.append(f"{key}: {workflow.description or '-'}{gate}")
        for kind in ("success", "failure", "approval"):
            for trigger in workflow.triggers(kind):
                lines.append(f"  on_{kind:<9} {trigger.trigger_id} -> {trigger.type}")
    return lines or ["(no workflows)"]


def validate(args) -> int:
    from jobgraph.sam.triggers import load_trigger_config, template_parameters

    config = load_trigger_config(args.config)
    print("\n".join(describe(config)))
    parameters = template_parameters(config, args.region, args.account)
    line = " ".join(shlex.quote(f"{k}={v}") for k, v in parameters.items() if v)
    print("IAM grants for these targets (deploy once with them; later configs within them need no deploy):")
    print(f'make deploy PARAMS="{line}"' if line else "(none)")
    return 0


def _session(region: str | None):
    import boto3

    return boto3.session.Session(region_name=region)


def push(args) -> int:
    from jobgraph.sam.triggers import load_trigger_config, push_config, stack_triggers

    config = load_trigger_config(args.config)
    session = _session(args.region)
    where = stack_triggers(session.client("cloudformation"), args.stack)
    ssm = session.client("ssm") if args.ssm else None
    for line in push_config(config, where, session.client("s3"), ssm, force=args.force):
        print(line)
    return 0


def show(args) -> int:
    from jobgraph.adapters.trigger_config import TriggerConfigStore
    from jobgraph.sam.triggers import stack_triggers

    session = _session(args.region)
    where = stack_triggers(session.client("cloudformation"), args.stack)
    if args.run:
        return show_run(session, where, args.run)
    store = TriggerConfigStore(where.bucket, where.key, where.parameter, "{}", client=session.client)
    loaded = store.load()
    for reason in loaded.skipped:
        print(f"skipped {reason}")
    version = f" (version {loaded.version})" if loaded.version else ""
    print(f"in effect: {loaded.source}{version}")
    print("\n".join(describe(loaded.config)))
    return 0


def show_run(session, where, run_id: str) -> int:
    from jobgraph.adapters.dynamodb import JobsTable
    from jobgraph.services.approvals import approval_view

    table = JobsTable(where.table, client=session.client("dynamodb"))
    approval = table.get_approval(run_id)
    if approval is not None:
        view = approval_view(approval, time.time())
        decided = f" by {view['decided_by']} at {view['decided_at']}" if view["decided_by"] else ""
        print(f"approval ({view['workflow']}): {view['status']}{decided}; expires {view['expires_at']}")
        for reason in view["reasons"]:
            print(f"  because {reason}")
    claims = table.triggers_of_run(run_id)
    for claim in sorted(claims, key=lambda c: str(c["sk"])):
        detail = claim.get("receipt") or claim.get("last_error") or ""
        print(
            f"{claim.get('status', '?'):<9} on_{claim.get('kind', '?'):<9} {claim.get('trigger', '?')} -> "
            f"{claim.get('target_type', '?')} (attempts {int(claim.get('attempts', 0))}) {detail}".rstrip()
        )
    if approval is None and not claims:
        print(f"run {run_id}: no trigger fired and no approval requested (yet)")
    return 0


def approve(args) -> int:
    from jobgraph.adapters.dynamodb import JobsTable
    from jobgraph.adapters.events import RunEvents
    from jobgraph.sam.triggers import stack_triggers
    from jobgraph.services.approvals import decide

    session = _session(args.region)
    where = stack_triggers(session.client("cloudformation"), args.stack)
    decided_by = args.by or _caller(session)
    table = JobsTable(where.table, client=session.client("dynamodb"))
    events = RunEvents(where.bus, client=session.client("events")) if where.bus else None
    view = decide(table, events, args.run_id, "REJECTED" if args.reject else "APPROVED", decided_by, args.comment)
    then = "its on_approval triggers fire now" if view["status"] == "APPROVED" else "nothing fires"
    print(f"run {view['run_id']} ({view['workflow']}): {view['status']} by {view['decided_by']}; {then}")
    return 0


def _caller(session) -> str:
    try:
        return session.client("sts").get_caller_identity()["Arn"]
    except Exception as exc:  # no identity to name: the decision still needs a name
        raise ConfigurationError(f"cannot tell who you are ({exc}): give --by NAME") from None
