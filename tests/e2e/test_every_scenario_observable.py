"""Scenarios 2 and 3 are observable as scenario 1 is (issue 15.6): the status API answers about their runs and
runs their tasks, and their downstream triggers fire on a run's end — from the shared template pieces.

Both through the CLI, `jobgraph run --scenario 2|3 --serve --triggers` (scenario 2's ECS workers as local
processes, scenario 3's state machine run by moto's engine with the local Lambda runtime behind its tasks); then,
with the local cloud kept up, a second run started through the API itself and a task run to completion.
"""

from __future__ import annotations

import httpx
import pytest

from jobgraph.core.ids import route_job_id
from tests.processes import served_run, wait_for

pytestmark = pytest.mark.e2e


def own_bus_trigger(stack: str) -> str:
    """A workflow for the runs of the default test run: on success, an event on the stack's own bus (its source
    matches none of the stack's rules)."""
    return f"""\
workflows:
  default:
    on_success:
      - type: eventbridge
        name: announce
        event_bus: {stack}-runs
"""


@pytest.mark.parametrize("scenario", [2, 3])
def test_the_scenario_serves_the_api_and_fires_its_triggers(scenario, tmp_path, seed_000_sequence):
    stack, run_id = f"scenario-{scenario}-local", f"observed-{scenario}"
    config = tmp_path / "triggers.yaml"
    config.write_text(own_bus_trigger(stack))
    args = [
        "--scenario", str(scenario), "--generate", "2", "--seed", "4", "--scenarios", "20", "--run-id", run_id,
        "--out", str(tmp_path / "out"), "--no-progress", "--triggers", str(config),
        *(["--ecs-workers", "2"] if scenario == 2 else []),
    ]  # fmt: skip
    with served_run(args, ready_within_s=300) as served:
        base, lines, output = served.base, served.lines, served.output
        # the API answers about the run
        run = httpx.get(f"{base}/runs/{run_id}", timeout=10).json()
        assert run["status"] == "COMPLETED" and run["progress"]["jobs_by_status"]["PENDING"] == 0, run
        listed = httpx.get(f"{base}/runs?status=COMPLETED", timeout=10).json()["runs"]
        assert [r["run_id"] for r in listed] == [run_id]
        job = httpx.get(f"{base}/status/{route_job_id(run_id, 0, 0)}", timeout=10).json()
        assert job["status"] == "COMPLETED" and set(job["files"]) == {"delays"}
        # the run's end was announced (scenario 2: the Scheduler; 3: the state machine's AnnounceRunCompleted via
        # StepTask) and the shared trigger function fired on it, as the run report lists
        assert any(line.split()[:2] == ["FIRED", "default/on_success/announce"] for line in lines), output

        # a second run, started through the API itself, on the same runner
        started = httpx.post(f"{base}/runs", json={"run_id": f"{run_id}-api", "sequences": [seed_000_sequence],
                                                   "scenarios": 20}, timeout=30)  # fmt: skip
        assert started.status_code == 202 and started.json()["scenario"] == scenario, started.text
        second = wait_for(lambda: (r := httpx.get(f"{base}/runs/{run_id}-api", timeout=10)).status_code == 200
                          and r.json()["status"] == "COMPLETED" and r.json(), "the API's run", 180)  # fmt: skip
        assert second["progress"]["jobs_by_status"] == {"COMPLETED": 4, "PENDING": 0}
        assert httpx.get(f"{base}/download/{run_id}-api-merge/output", timeout=10).status_code == 302
        # and a task, run to completion by the scenario's runner (ECS workers / StepTask)
        task = httpx.post(
            f"{base}/tasks", json={"work_duration_ms": 1}, headers={"Idempotency-Key": f"scenario-{scenario}-task"}
        )
        assert task.status_code == 202, task.text
        url = f"{base}/tasks/{task.json()['task_id']}"
        done = wait_for(lambda: (t := httpx.get(url, timeout=10).json())["status"] == "COMPLETED" and t, "task", 90)
        assert done["attempts"] == 1 and done["download_url"]
