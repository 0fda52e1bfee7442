"""`jobgraph run --stack NAME`: the same run on a stack deployed with `sam deploy`.

StartRun is invoked with lambda.invoke (RequestResponse), progress is read from the job records in
DynamoDB; everything else is cloudrun's shared path. This talks to AWS with your own AWS configuration;
the test suite exercises it against moto only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from jobgraph.core.graph import RunSpec, total_jobs
from jobgraph.core.models import Sequence
from jobgraph.runs.driver import GraphRun, Progress, RunFailed, RunOutcome, StackOutputs, describe_stack, execute


def lambda_invoker(lambda_client, function_name: str) -> Callable[[dict], dict]:
    """Invoke a function synchronously with a JSON payload; RunFailed names a function error."""

    def invoke(payload: dict) -> dict:
        response = lambda_client.invoke(
            FunctionName=function_name, InvocationType="RequestResponse", Payload=json.dumps(payload).encode()
        )
        raw = response["Payload"].read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        if response.get("FunctionError"):
            if isinstance(body, dict):
                detail = f"{body.get('errorType', 'Error')}: {body.get('errorMessage', '')}"
            else:
                detail = str(body)[:2000]
            raise RunFailed(f"{function_name} failed ({response['FunctionError']}): {detail}")
        return body

    return invoke


def dynamodb_progress(run: GraphRun, run_id: str, total: int) -> Callable[[], Progress]:
    def progress() -> Progress:
        return Progress(
            done=run.table.count_jobs(run_id),
            total=total,
            in_flight=run.in_flight(),
            dlq=sum(run.dlq_depths().values()),
        )

    return progress


def run_on_stack(
    session,
    outputs: StackOutputs,
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    *,
    overwrite: bool = False,
    show_progress: bool = False,
    timeout_s: float = 3600,
    stall_s: float = 300,
    interval_s: float = 2.0,
    scenario: int = 1,
) -> RunOutcome:
    from datetime import UTC, datetime

    from jobgraph.runs.aws_usage import stack_settings, stack_usage

    run = GraphRun(session, outputs, lambda_invoker(session.client("lambda"), outputs.start_run_function))
    started = datetime.now(UTC)
    outcome = execute(
        run,
        sequences,
        spec,
        out_dir,
        mode="AWS",
        progress=dynamodb_progress(run, spec.run_id, total_jobs(sequences)),
        overwrite=overwrite,
        show_progress=show_progress,
        timeout_s=timeout_s,
        stall_s=stall_s,
        interval_s=interval_s,
        settle_s=0.0,  # alarms on AWS evaluate on CloudWatch's own schedule
        scenario=scenario,
    )
    outcome.usage = stack_usage(session, outputs.stack_name, started, datetime.now(UTC))
    outcome.settings = {"scenarios": spec.scenarios, "seed": spec.seed, **stack_settings(session, outputs.stack_name)}
    return outcome


def run_on_aws(
    stack_name: str,
    sequences: list[Sequence],
    spec: RunSpec,
    out_dir: Path,
    *,
    region: str | None = None,
    **options,
) -> RunOutcome:
    import boto3

    session = boto3.session.Session(region_name=region)
    outputs = describe_stack(session.client("cloudformation"), stack_name)
    return run_on_stack(session, outputs, sequences, spec, out_dir, **options)


def run_load_on_aws(stack_name: str, load, out_dir: Path, *, region: str | None = None, **options) -> RunOutcome:
    """`jobgraph load --stack NAME`: the synthetic load on a deployed stack (progress from the job records)."""
    import boto3

    from jobgraph.runs.load import execute_load

    session = boto3.session.Session(region_name=region)
    outputs = describe_stack(session.client("cloudformation"), stack_name)

    def no_start_run(_payload: dict) -> dict:
        raise RunFailed("a load run starts no graph")

    from datetime import UTC, datetime

    from jobgraph.runs.aws_usage import stack_settings, stack_usage

    run = GraphRun(session, outputs, no_start_run)
    started = datetime.now(UTC)
    outcome = execute_load(
        run,
        load,
        out_dir,
        mode="AWS",
        progress=dynamodb_progress(run, load.run.run_id, load.messages),
        interval_s=2.0,
        **options,
    )
    outcome.usage = stack_usage(session, stack_name, started, datetime.now(UTC))
    outcome.settings = stack_settings(session, stack_name)
    return outcome
