"""The worker image (docker/worker.Dockerfile) runs the worker like a Fargate task: opt-in, needs Docker.

    JOBGRAPH_DOCKER_TESTS=1 [WORKER_BASE_IMAGE=...] .venv/bin/pytest tests/e2e/test_worker_image.py

No registry is reachable here, so the base image must already be on this machine: WORKER_BASE_IMAGE, else
jobgraph/lambda-python3.13:local (the debootstrap-built python3.13 image of `make lambda-image`) or
python:3.13-slim if present. Skipped, with the reason, when Docker or a base image is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import pytest

from jobgraph.adapters.sqs import FifoQueue
from jobgraph.core.generator import generate_sequences
from jobgraph.core.graph import route_job
from jobgraph.core.run import RunSpec
from jobgraph.localcloud import containers
from tests.conftest import DOCKER_OPT_IN, capability_absent, opted_in
from tests.integration.conftest import create_fifo_queue, create_table
from tests.lambda_support import ROOT

pytestmark = pytest.mark.e2e
CANDIDATE_BASES = ("python:3.13-slim", containers.STANDIN_IMAGE)
IMAGE = "jobgraph-worker:e2e"


def _docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def image() -> str:
    if not opted_in(DOCKER_OPT_IN):
        capability_absent("no Docker run asked for: the worker image is built and run in Docker", DOCKER_OPT_IN)
    if shutil.which("docker") is None or _docker("info", check=False).returncode != 0:
        capability_absent("no Docker daemon answers (start one with `make docker-up`)", DOCKER_OPT_IN)
    wanted = os.environ.get("WORKER_BASE_IMAGE")
    candidates = [wanted] if wanted else list(CANDIDATE_BASES)
    base = next((c for c in candidates if _docker("image", "inspect", c, check=False).returncode == 0), None)
    if base is None and not wanted:
        try:  # the stand-in python3.13 image, from Debian's packages (as `make lambda-image` builds it)
            base = containers.ensure_standin_image(
                ROOT / "docker" / "lambda-python3.13", ROOT / ".cache" / "lambda-image"
            ).tag
        except containers.ImageBuildError as exc:
            capability_absent(
                f"no python3.13 base image (tried {candidates}) and none could be built: {exc}", DOCKER_OPT_IN
            )
    if base is None:
        capability_absent(
            f"WORKER_BASE_IMAGE={wanted} is not on this machine (no registry is reachable)", DOCKER_OPT_IN
        )
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    subprocess.run(
        ["make", "--no-print-directory", "worker-image", f"WORKER_BASE_IMAGE={base}", "IMAGE_TAG=e2e"],
        cwd=ROOT, env=env, check=True, capture_output=True, timeout=900,
    )  # fmt: skip
    return IMAGE


def test_the_image_exits_2_naming_missing_configuration(image):
    result = _docker("run", "--rm", "--network", "none", image, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "INCOMING_QUEUE_URL: not set" in result.stderr


def test_the_container_processes_a_job_and_exits_0_on_docker_stop(image):
    from jobgraph.localcloud.server import LocalEndpoint

    with LocalEndpoint() as endpoint:
        s3, sqs, dynamodb = endpoint.client("s3"), endpoint.client("sqs"), endpoint.client("dynamodb")
        s3.create_bucket(Bucket="results", CreateBucketConfiguration={"LocationConstraint": endpoint.region})
        create_table(dynamodb, "jobs")
        incoming, _ = create_fifo_queue(sqs, "incoming")
        outgoing, _ = create_fifo_queue(sqs, "outgoing")
        (sequence,) = generate_sequences(1, seed=3)
        job = route_job(RunSpec("image", "default", 50, 1), sequence, 0)
        FifoQueue(incoming, client=sqs).send_jobs([job])
        variables = {
            **endpoint.environment(), "BUCKET_NAME": "results", "TABLE_NAME": "jobs", "INCOMING_QUEUE_URL": incoming,
            "OUTGOING_QUEUE_URL": outgoing, "WAIT_TIME_SECONDS": "2", "POWERTOOLS_SERVICE_NAME": "worker",
            "POWERTOOLS_TRACE_DISABLED": "true",
        }  # fmt: skip
        # as the task definition runs it: read-only root, /tmp writable, the image's own user and command
        container = _docker(
            "run", "-d", "--network", "host", "--read-only", "--tmpfs", "/tmp",
            *[arg for key, value in variables.items() for arg in ("-e", f"{key}={value}")], image,
        ).stdout.strip()  # fmt: skip
        try:
            deadline, completions = time.monotonic() + 90, []
            while time.monotonic() < deadline and not completions:
                completions = sqs.receive_message(QueueUrl=outgoing, WaitTimeSeconds=0).get("Messages", [])
                time.sleep(0.5)
            assert completions, _docker("logs", container).stdout
            assert json.loads(completions[0]["Body"])["job_id"] == job.job_id
            # `docker stop` is what ECS does: SIGTERM, then SIGKILL after the stop timeout
            started = time.monotonic()
            _docker("stop", "--time", "30", container)
            assert time.monotonic() - started < 10
            state = json.loads(_docker("inspect", container).stdout)[0]["State"]
            logs = _docker("logs", container)
            assert state["ExitCode"] == 0, logs.stdout + logs.stderr
            assert '"worker stopped"' in logs.stdout
        finally:
            _docker("rm", "-f", container, check=False)
