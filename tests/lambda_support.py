"""Helpers to run the Lambda handlers in-process: load by path, a Lambda context, cache resets."""

from __future__ import annotations

import importlib.util
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

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
        targets.default_client,
    ):
        cached.cache_clear()
