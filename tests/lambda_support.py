"""Helpers to run the Lambda handlers in-process: load by path, a Lambda context, cache resets, the AWS calls
they make recorded."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.iam_policy import Call

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
FUNCTIONS = {
    "processor": "ProcessorFunction",
    "scheduler": "SchedulerFunction",
    "start_run": "StartRunFunction",
    "api": "ApiFunction",
}


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:test-function"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "test"
    remaining_ms: int = 60_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def load_handler(function: str, code_root: Path = ROOT / "functions"):
    """Import functions/<function>/app.py under a unique module name and return lambda_handler."""
    name = f"_handler_{function}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, code_root / function / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.lambda_handler


def event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


def reset_cached_clients() -> None:
    """Runtimes and boto3 clients are cached per process (as in Lambda); tests start each stack fresh."""
    from jobgraph.adapters import clients, targets
    from jobgraph.services import processor, scheduler, start_run, status, step_tasks, triggers

    for cached in (
        clients.default_client,
        processor.processor_runtime,
        scheduler.scheduler_runtime,
        start_run.start_run_deps,
        step_tasks.prepare_run_deps,
        step_tasks.step_task_runtime,
        status.api_deps,
        triggers.trigger_runtime,
        targets.single_attempt_client,
    ):
        cached.cache_clear()


@contextmanager
def recording_calls[H: Callable](hook: H) -> Iterator[H]:
    """``hook(params, model)`` sees every API call of the boto3 clients built from the default session while this
    lasts; the cached clients and runtimes are dropped first, so the next ones the code builds carry it."""
    import boto3

    events = boto3._get_default_session().events
    unique_id = f"call-recorder-{id(hook)}"
    events.register("provide-client-params", hook, unique_id=unique_id)
    reset_cached_clients()
    try:
        yield hook
    finally:
        events.unregister("provide-client-params", unique_id=unique_id)


class CallRecorder:
    """Every API call, per handler: installed with ``recording_calls``, a call outside ``invoking`` fails."""

    def __init__(self):
        self.calls: dict[str, list[Call]] = defaultdict(list)
        self.function: str | None = None

    def __call__(self, params, model, **_kwargs):
        if self.function is None:
            raise AssertionError(f"AWS call {model.name} outside a handler invocation")
        self.calls[self.function].append(Call(model.service_model.service_name, model.name, dict(params)))

    @contextmanager
    def invoking(self, function: str):
        self.function = function
        try:
            yield
        finally:
            self.function = None
