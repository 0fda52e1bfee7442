"""The AWS target: a stack deployed with `sam deploy` on an AWS endpoint (`jobgraph run --stack NAME`).

It talks through the client factory it is given — a boto3 session with your own AWS configuration, or any
object whose ``client(service)`` makes boto3 clients (an endpoint URL of your choice, the local cloud's
endpoint in the tests) — and never assumes which. StartRun is invoked with lambda.invoke (RequestResponse),
progress is read from the job records and queue attributes, usage from what AWS itself reports (REPORT
lines, CloudWatch metrics: runs/aws_usage.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from jobgraph.core.run import RunSpec
from jobgraph.runs.outcome import Progress, RunFailed, RunOutcome
from jobgraph.runs.outputs import StackOutputs, read_outputs
from jobgraph.runs.target import Output, Patience

Invoke = Callable[[dict], dict]


def lambda_invoker(lambda_client, function_name: str) -> Invoke:
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


class AwsTarget:
    """A deployed stack on an AWS endpoint, reached through ``clients`` (anything with ``client(service)``).

    ``invoker(lambda_client, function_name)`` makes the StartRun invoker (default: lambda.invoke).
    """

    mode = "AWS"
    links_to_console = True  # the report links to the stack's dashboard / Step Functions console
    child_executions = True  # Step Functions runs each Distributed Map iteration as a child execution
    settle_s = 0.0  # alarms on AWS evaluate on CloudWatch's own schedule: no waiting for queues to drain

    def __init__(
        self,
        clients,
        stack_name: str,
        output: Output,
        patience: Patience | None = None,
        *,
        interval_s: float = 2.0,
        invoker: Callable[[object, str], Invoke] = lambda_invoker,
    ):
        self.clients, self.stack_name, self.output = clients, stack_name, output
        self.patience = patience or Patience(timeout_s=3600, stall_s=300)
        self.interval_s = interval_s
        self.invoker = invoker
        self.outputs: StackOutputs | None = None
        self._since: datetime | None = None

    @classmethod
    def with_session(cls, stack_name: str, output: Output, patience: Patience | None = None, *, region=None):
        """The stack in ``region`` (default: your AWS configuration), through your own AWS configuration."""
        import os

        import boto3

        target = cls(boto3.session.Session(region_name=region), stack_name, output, patience)
        # AWS_ENDPOINT_URL (the local cloud's `jobgraph cloud env`): no AWS console behind it to link to
        target.links_to_console = not os.environ.get("AWS_ENDPOINT_URL")
        return target

    def refuse(self, workload) -> None:
        """Raise if this target cannot run ``workload`` as configured (an AWS stack runs what it was deployed for)."""

    @contextmanager
    def attach(self, run_id: str) -> Iterator[AwsTarget]:
        """The stack's outputs read; the usage window opens. An endpoint that stops answering meanwhile (a
        local cloud stopped or killed, a network gone) ends the run with one line naming it."""
        from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

        try:
            self.outputs = read_outputs(self.client("cloudformation"), self.stack_name)
            self._since = datetime.now(UTC)
            yield self
        except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError) as exc:
            origin = _origin(exc.kwargs.get("endpoint_url", ""))
            hint = (
                " (the local cloud: `jobgraph cloud status`)" if "127.0.0.1" in origin or "localhost" in origin else ""
            )
            raise RunFailed(
                f"the AWS endpoint {origin} stopped answering during run {run_id}: {type(exc).__name__}{hint}"
            ) from None

    def client(self, service: str, *, billed: bool = False):
        """A client of the endpoint. ``billed``: calls the workload itself makes (the same client on AWS,
        where every call is billed; the local target's request meter counts them apart)."""
        return self.clients.client(service)

    def start_run(self, function_name: str) -> Invoke:
        return self.invoker(self.client("lambda"), function_name)

    def progress(self, run) -> Callable[[], Progress]:
        return run.progress

    def check(self) -> None:
        """Called on every tick of a run; raises if the target can no longer run it."""

    def after_start(self, run_id: str) -> None:
        """Called once the workload has started."""

    def before_report(self) -> None:
        """Called once the run has ended, before its figures are read."""

    def finish(self, outcome: RunOutcome, spec: RunSpec) -> None:
        """The usage and settings of the run, as the endpoint reports them."""
        from jobgraph.runs.aws_usage import listed_resources, stack_settings, stack_usage

        # the stack and its nested stacks listed once, for both the usage and the settings
        listed = listed_resources(self.client("cloudformation"), self.stack_name)
        outcome.usage = stack_usage(self.clients, self.stack_name, self._since, datetime.now(UTC), listed)
        machine = outcome.extra.get("state_machine")
        if machine:
            read = f"{machine['child_histories_read']} of {machine['child_executions']} child executions"
            outcome.usage["stepfunctions"] = {
                "transitions": machine["states_entered"],
                "source": f"states entered in the execution's history and {read}",
            }
        settings = stack_settings(self.clients, self.stack_name, listed)
        outcome.settings = {"scenarios": spec.scenarios, "seed": spec.seed, **settings}
        outcome.settings["stack_parameters"] = dict(self.outputs.parameters)  # read with the outputs at attach

    def hold(self, what: str = "run done") -> None:
        """Keep the target up after the run (an option of the local target): nothing to hold on AWS."""


def _origin(url: str) -> str:
    """scheme://host:port of an endpoint URL (the request's path and query say nothing useful)."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.netloc else (url or "(unknown)")
