"""A local Lambda execution environment: cold and warm starts, timeouts, crashes, import errors."""

from __future__ import annotations

import pytest

from jobgraph.localcloud.lambda_runtime.interpreters import RuntimeNotAvailable, interpreter_for
from jobgraph.localcloud.lambda_runtime.workers import FunctionSpec, HandlerImportError, Worker

HANDLER = """
import os, platform, time

def lambda_handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("exit"):
        os._exit(3)
    if event.get("raise"):
        raise ValueError("bad payload")
    return {"pid": os.getpid(), "remaining_ms": context.get_remaining_time_in_millis(),
            "stage": os.environ["STAGE"], "python": platform.python_version()}
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


def make_worker(tmp_path, runtime: str) -> Worker:
    code = tmp_path / runtime
    code.mkdir()
    (code / "app.py").write_text(HANDLER)
    spec = FunctionSpec("Fn", "local-fn", "app.lambda_handler", code, (), {"STAGE": "t"}, 5, 128, runtime=runtime)
    return Worker(spec, tmp_path / f"{runtime}.log")


def test_the_handler_runs_under_the_python_its_runtime_names(tmp_path):
    """Given a function declared with python3.13, when invoked, then its handler reports Python 3.13."""
    worker = make_worker(tmp_path, "python3.13")
    try:
        result = worker.invoke({})
    finally:
        worker.stop()
    assert result.ok, result.error
    assert result.result["python"].rsplit(".", 1)[0] == "3.13"
    assert worker.python_version == result.result["python"]


def test_the_interpreter_is_the_runtimes_choice_not_the_clis(tmp_path, monkeypatch):
    """With Python 3.13 alone: the runtime's interpreter (here named by JOBGRAPH_PYTHON3_13, a wrapper that
    marks its processes) runs the handler, not the interpreter running jobgraph."""
    import sys

    wrapper = tmp_path / "python3.13-witness"
    wrapper.write_text(f'#!/bin/sh\nJOBGRAPH_WITNESS=wrapper exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("JOBGRAPH_PYTHON3_13", str(wrapper))
    assert interpreter_for("python3.13") == str(wrapper)
    code = tmp_path / "fn"
    code.mkdir()
    (code / "app.py").write_text(
        "import os\ndef lambda_handler(event, context):\n    return {'witness': os.environ.get('JOBGRAPH_WITNESS')}\n"
    )
    worker = Worker(FunctionSpec("Fn", "local-fn", "app.lambda_handler", code, (), {}, 5, 128), tmp_path / "w.log")
    try:
        result = worker.invoke({})
    finally:
        worker.stop()
    assert result.ok, result.error
    assert result.result == {"witness": "wrapper"}


def test_an_unknown_runtime_version_is_a_clear_error(tmp_path):
    with pytest.raises(
        RuntimeNotAvailable, match=r"Fn: Runtime python3\.99 .* JOBGRAPH_PYTHON3_99=/path/to/python3\.99"
    ):
        make_worker(tmp_path, "python3.99").invoke({})


def test_an_override_of_the_wrong_version_is_refused(tmp_path, monkeypatch):
    import sys

    monkeypatch.setenv("JOBGRAPH_PYTHON3_12", sys.executable)  # the test runs on 3.13
    with pytest.raises(RuntimeNotAvailable, match=r"JOBGRAPH_PYTHON3_12=.* is not a Python 3\.12 interpreter"):
        interpreter_for("python3.12")
