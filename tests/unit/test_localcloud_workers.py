"""A local Lambda execution environment: cold and warm starts, timeouts, crashes, import errors."""

from __future__ import annotations

import pytest

from jobgraph.localcloud.workers import FunctionSpec, HandlerImportError, Worker

HANDLER = """
import os, time

def lambda_handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(3)
    if event.get("raise"):
        raise ValueError("bad payload")
    return {"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis(),
            "stage": os.environ["STAGE"]}
"""


@pytest.fixture
def worker(tmp_path):
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    spec = FunctionSpec("Fn", "local-fn", "app.lambda_handler", code, (), {"STAGE": "test"}, 1, 128)
    worker = Worker(spec, tmp_path / "fn.log")
    yield worker
    worker.stop()


def test_cold_then_warm_start_in_one_process_with_the_functions_environment(worker):
    first, second = worker.invoke({}), worker.invoke({})
    assert first.ok and first.cold_start and not second.cold_start
    assert first.result["pid"] == second.result["pid"] and first.result["stage"] == "test"
    assert 0 < first.result["remaining_ms"] <= 1000  # the context counts down from the timeout


def test_a_handler_error_is_a_failed_invocation_and_the_environment_survives(worker):
    failed = worker.invoke({"raise": True})
    assert not failed.ok and failed.error == "ValueError: bad payload" and not failed.died
    assert worker.invoke({}).ok and worker.starts == 1


def test_timeout_tears_the_environment_down(worker):
    timed_out = worker.invoke({"sleep": 5})
    assert not timed_out.ok and timed_out.error == "Task timed out after 1 s"
    again = worker.invoke({})
    assert again.ok and again.cold_start and worker.starts == 2


def test_a_crash_is_reported_and_the_next_invocation_starts_afresh(worker):
    crashed = worker.invoke({"exit": True})
    assert not crashed.ok and crashed.died and "exit code 3" in crashed.error
    assert worker.invoke({}).cold_start


def test_a_handler_that_cannot_be_imported_names_itself(tmp_path):
    spec = FunctionSpec("Broken", "local-broken", "app.missing", tmp_path, (), {}, 1, 128)
    (tmp_path / "app.py").write_text("x = 1\n")
    with pytest.raises(HandlerImportError, match=r"Broken: handler app\.missing .* failed to import"):
        Worker(spec, tmp_path / "b.log").invoke({})
