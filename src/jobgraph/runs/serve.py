"""`jobgraph serve` / `jobgraph run --serve`: the status API (the same FastAPI app the ApiFunction serves on
AWS) under uvicorn on loopback, against the local cloud's deployed stack.

The app gets the ApiFunction's deployed environment (table, bucket, queue URLs as CloudFormation resolved
them) as its settings and clients bound to the local endpoint, so presigned result URLs point at the local
S3 and runs it starts are picked up by the local runtime's pollers. No IAM auth locally (loopback only).
"""

from __future__ import annotations

import socket
import threading
import time

from jobgraph.core.errors import JobGraphError
from jobgraph.runs.local import LocalSession

API_FUNCTION = "ApiFunction"


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def local_api_deps(session: LocalSession):
    from jobgraph.adapters.dynamodb import JobsTable
    from jobgraph.adapters.s3 import S3BlobStore
    from jobgraph.adapters.sqs import FifoQueue
    from jobgraph.core.results import ResultStore
    from jobgraph.services.settings import ApiSettings
    from jobgraph.services.start_run import StartRunDeps
    from jobgraph.services.status import ApiDeps

    function = session.runtime.functions.get(API_FUNCTION)
    if function is None:
        raise JobGraphError(
            f"stack {session.stack.name} has no {API_FUNCTION}: the status API is part of scenario 1's template"
        )
    settings = ApiSettings(**{k: v for k, v in function.environment.items() if k.isupper()})
    endpoint = session.endpoint
    s3 = endpoint.client("s3")
    blobs = S3BlobStore(settings.bucket_name, settings.results_prefix, client=s3)
    run = StartRunDeps(
        results=ResultStore(blobs),
        table=JobsTable(settings.table_name, settings.record_ttl_days, client=endpoint.client("dynamodb")),
        incoming=FifoQueue(settings.incoming_queue_url, client=endpoint.client("sqs")),
        settings=settings,
    )
    return ApiDeps(run=run, blobs=blobs, settings=settings)


class ApiServer:
    """uvicorn in a background thread (no signal handlers there: the main thread keeps Ctrl-C)."""

    def __init__(self, session: LocalSession, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        from jobgraph.api.app import create_app
        from jobgraph.api.limits import LOCAL_HOSTS

        deps = local_api_deps(session)
        self.host, self.port = host, port or _free_port(host)
        config = uvicorn.Config(
            create_app(lambda: deps, trusted_hosts=LOCAL_HOSTS),
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="status-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> ApiServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise JobGraphError(f"status API did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)


def wait_until_interrupted(session: LocalSession, check_every_s: float = 1.0) -> None:
    """Keep the local cloud up until Ctrl-C / SIGTERM (KeyboardInterrupt) or until its runtime dies."""
    while True:
        session.check()
        time.sleep(check_every_s)
