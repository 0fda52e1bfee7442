"""The built handlers, run like Lambda runs them: isolated interpreter, only function + layers + boto3 on the path.

Given a moto server on loopback holding the stack's bucket, table and FIFO queues; when StartRun, the
Processor and the Scheduler are imported from .aws-sam/build in fresh `python -I -S` processes and
invoked with the events/ files; then their effects are in S3, DynamoDB and SQS. A file missing from a
layer (or a package the layers forgot) fails here, not on AWS.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest
import requests
from moto.server import ThreadedMotoServer

from jobgraph.sam.build import HEAVY_MODULES, run_isolated
from tests.integration.conftest import FakeStack, create_fifo_queue, create_table
from tests.lambda_support import EVENTS, ROOT

pytestmark = pytest.mark.build

RUN = "events-demo"
REGION = "eu-west-1"
BUCKET, TABLE = "smoke-results", "smoke-jobs"


@pytest.fixture(scope="module")
def moto_endpoint():
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    yield endpoint
    requests.post(f"{endpoint}/moto-api/reset", timeout=10)
    server.stop()


@pytest.fixture(scope="module")
def stack(moto_endpoint) -> FakeStack:
    def client(service):
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint)

    s3, sqs, dynamodb = client("s3"), client("sqs"), client("dynamodb")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    create_table(dynamodb, TABLE)
    incoming, incoming_dlq = create_fifo_queue(sqs, "smoke-incoming")
    outgoing, outgoing_dlq = create_fifo_queue(sqs, "smoke-outgoing")
    return FakeStack(s3, sqs, dynamodb, BUCKET, TABLE, incoming, outgoing, incoming_dlq, outgoing_dlq)


def lambda_env(stack: FakeStack, endpoint: str, service: str) -> dict[str, str]:
    """What the template sets (Globals + per function), with fake credentials and the loopback endpoint."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": f"smoke-{service}",
        "POWERTOOLS_SERVICE_NAME": service,
        "POWERTOOLS_METRICS_NAMESPACE": "PerfTesting",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # Tracing stays on, as on Lambda (Tracing: Active), so the X-Ray SDK in the core layer is imported
        # and used; the trace header says "not sampled", so nothing is sent to a (missing) daemon.
        "LAMBDA_TASK_ROOT": "/var/task",
        "_X_AMZN_TRACE_ID": "Root=1-67a1b2c3-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "TEST_RUN_ID": "default",
        "BUCKET_NAME": stack.bucket,
        "TABLE_NAME": stack.table,
        "INCOMING_QUEUE_URL": stack.incoming_url,
        "OUTGOING_QUEUE_URL": stack.outgoing_url,
        "RESULTS_PREFIX": "",
        "DEFAULT_SCENARIOS": "1000",
        "RECORD_TTL_DAYS": "30",
    }


def run(runnable, runtime_dir, stack, endpoint, function: str, service: str, events: list[str]):
    result = run_isolated(
        runnable[function],
        [EVENTS / f"{name}.json" for name in events],
        runtime_dir=runtime_dir,
        env=lambda_env(stack, endpoint, service),
        report=(
            "jobgraph",
            "boto3",
            "botocore",
            "pydantic",
            "aws_lambda_powertools",
            "aws_xray_sdk",
            "numpy",
            "pyarrow",
        ),
    )
    errors = [r for r in result.results if "error" in r]
    assert errors == [], result.stdout[-3000:]
    return result


def assert_isolated(result, runtime_dir: Path, build_dir: Path) -> None:
    """Nothing came from the dev virtualenv or the repository's sources."""
    for path in result.sys_path:
        assert ".venv" not in path and "site-packages" not in path, path
    for module, file in result.files.items():
        if file is None:
            continue
        origin = Path(file)
        if module in ("boto3", "botocore"):
            assert origin.is_relative_to(runtime_dir), (module, file)
        else:
            assert origin.is_relative_to(build_dir), (module, file)


@pytest.fixture(scope="module")
def smoke(runnable, runtime_dir, stack, moto_endpoint):
    """StartRun → Processor (FIRST, then INTERMEDIATE reading FIRST's state) → Scheduler, each in its own process."""
    args = (runnable, runtime_dir, stack, moto_endpoint)
    start = run(*args, "StartRunFunction", "start-run", ["start-run"])
    first_jobs = stack.drain(stack.incoming_url)
    processor = run(*args, "ProcessorFunction", "processor", ["processor-first", "processor-intermediate"])
    completions = stack.drain(stack.outgoing_url)
    scheduler = run(*args, "SchedulerFunction", "scheduler", ["scheduler-first"])
    next_jobs = stack.drain(stack.incoming_url)
    # the status API (FastAPI + Mangum from the function's own requirements) and the trigger function
    api = run(*args, "ApiFunction", "api", ["api-get-run", "api-list-jobs", "api-post-task"])
    tasks = stack.drain(stack.incoming_url)
    triggers = run(*args, "TriggerFunction", "triggers", ["triggers-run-completed"])
    return {
        "start": start, "first_jobs": first_jobs, "processor": processor, "completions": completions,
        "scheduler": scheduler, "next_jobs": next_jobs, "api": api, "tasks": tasks, "triggers": triggers,
    }  # fmt: skip


def test_start_run_from_the_build_stores_the_run_and_seeds_the_first_job(smoke, stack):
    (result,) = smoke["start"].results
    assert result["response"]["status"] == "RUNNING" and result["response"]["first_jobs_sent"] == 1
    assert [m["body"]["job_id"] for m in smoke["first_jobs"]] == [f"{RUN}-s0-r0"]
    keys = [o["Key"] for o in stack.s3.list_objects_v2(Bucket=stack.bucket, Prefix="_jobgraph/runs/")["Contents"]]
    assert sorted(keys) == [f"_jobgraph/runs/{RUN}/manifest.json", f"_jobgraph/runs/{RUN}/sequences/0-99.json"]
    assert stack.item(f"RUN#{RUN}", "RUN")["status"] == "RUNNING"


def test_processor_from_the_build_writes_and_reads_parquet(smoke, stack):
    assert [r["response"] for r in smoke["processor"].results] == [{"batchItemFailures": []}] * 2
    for index in (0, 1):
        job_id = f"{RUN}-s0-r{index}"
        body = stack.s3.get_object(Bucket=stack.bucket, Key=f"{RUN}/delays/{job_id}.parquet")["Body"].read()
        table = pq.read_table(io.BytesIO(body))
        assert table.num_rows == 1000 and set(table.column("route_index").to_pylist()) == {index}
        assert stack.item(f"RUN#{RUN}", f"JOB#{job_id}")["status"] == "COMPLETED"
    assert [c["body"]["job_id"] for c in smoke["completions"]] == [f"{RUN}-s0-r0", f"{RUN}-s0-r1"]
    assert all(c["body"]["status"] == "completed" for c in smoke["completions"])


def test_scheduler_from_the_build_schedules_the_next_route(smoke):
    assert [r["response"] for r in smoke["scheduler"].results] == [{"batchItemFailures": []}]
    (job,) = smoke["next_jobs"]
    assert (job["body"]["exec_type"], job["body"]["job_id"]) == ("INTERMEDIATE", f"{RUN}-s0-r1")


def test_handlers_ran_only_on_the_built_artifacts_and_the_runtime_boto3(smoke, runtime_dir, built):
    build_dir = built["ProcessorFunction"].code_dir.parent
    for name in ("start", "processor", "scheduler"):
        assert_isolated(smoke[name], runtime_dir.resolve(), build_dir)
    assert Path(smoke["processor"].files["pyarrow"]).is_relative_to(build_dir / "ScientificLayer")
    assert Path(smoke["processor"].files["jobgraph"]).is_relative_to(build_dir / "CoreLayer")
    for name in ("start", "processor", "scheduler"):  # tracing is active: the X-Ray SDK came from the layer
        assert Path(smoke[name].files["aws_xray_sdk"]).is_relative_to(build_dir / "CoreLayer"), name


def test_the_api_and_trigger_functions_from_the_build_answer(smoke, built):
    assert [r["response"]["statusCode"] for r in smoke["api"].results] == [200, 200, 202]
    run_status = json.loads(smoke["api"].results[0]["response"]["body"])
    assert run_status["run_id"] == RUN and run_status["progress"]["jobs_by_status"]["COMPLETED"] == 2
    assert [m["body"]["exec_type"] for m in smoke["tasks"]] == ["SYNTHETIC"]
    assert [r["response"] for r in smoke["triggers"].results] == [{"batchItemFailures": []}]  # no trigger configured
    assert smoke["api"].top_level_modules() & set(HEAVY_MODULES) == set()  # numpy only for POST /runs generate


def test_scheduler_and_start_run_never_import_the_scientific_stack(smoke):
    for name in ("scheduler", "start"):
        assert smoke[name].top_level_modules() & set(HEAVY_MODULES) == set(), name
    assert {"numpy", "pyarrow"} <= smoke["processor"].top_level_modules()
    assert "pandas" not in smoke["processor"].top_level_modules()


def test_the_events_used_here_exist():
    assert {p.stem for p in EVENTS.glob("*.json")} >= {
        "start-run", "processor-first", "processor-intermediate", "scheduler-first",
    }  # fmt: skip
    assert json.loads((ROOT / "events" / "start-run.json").read_text())["run_id"] == RUN
