"""Local ECS (localcloud/ecs/service.py): which commands it can run, and a task that cannot start stops the run."""

from __future__ import annotations

import sys
import time

import pytest

from jobgraph.localcloud.ecs.service import CRASH_LOOP, LocalEcsService, TaskSpec, TaskStartError, local_command
from jobgraph.localcloud.server import LocalEndpoint


def spec(command: tuple[str, ...], environment: dict[str, str] | None = None) -> TaskSpec:
    return TaskSpec(
        service_name="svc",
        cluster="cluster",
        task_definition_arn="arn:aws:ecs:eu-west-1:123456789012:task-definition/worker:1",
        container="worker",
        command=command,
        environment=environment or {},
        stop_timeout_s=5,
        queue_url="",
    )


def test_a_python_module_command_runs_through_the_task_wrapper_under_its_python_version():
    command = local_command(spec(("python3.13", "-m", "jobgraph.services.worker", "--flag")))
    assert command[1:] == ["-m", "jobgraph.localcloud.ecs.task", "-m", "jobgraph.services.worker", "--flag"]
    assert command[0] == sys.executable  # the test suite runs on 3.13 itself (interpreters.py's order)


@pytest.mark.parametrize("command", [(), ("sh", "-c", "echo hi"), ("python3.13", "worker.py"), ("node", "-m", "x")])
def test_other_commands_are_refused_with_the_reason(command):
    with pytest.raises(TaskStartError, match=r"python3\.x -m <module>"):
        local_command(spec(command))


def test_a_task_that_keeps_exiting_stops_the_service_with_its_log(tmp_path):
    # Given a worker task whose environment lacks its queue (the worker exits 2 at start)
    service = LocalEcsService(
        spec(("python3.13", "-m", "jobgraph.services.worker"), {"BUCKET_NAME": "b", "TABLE_NAME": "t"}),
        LocalEndpoint(),
        tmp_path,
        tasks=1,
    )
    service.start()
    try:
        deadline = time.monotonic() + 60
        while service.fatal is None and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        service.stop()
    # then it was restarted, and after CRASH_LOOP exits in a row the service reports why
    assert service.restarts == CRASH_LOOP - 1
    assert service.exit_codes == {2: CRASH_LOOP}
    assert f"exited with code 2 {CRASH_LOOP} times in a row" in service.fatal
    assert "INCOMING_QUEUE_URL: not set" in service.fatal
