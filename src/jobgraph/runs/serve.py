"""`jobgraph serve` / `jobgraph run --serve`: the status API (the same FastAPI app the ApiFunction serves on
AWS) under uvicorn on loopback, against the local cloud's deployed stack.

The app gets the ApiFunction's deployed environment (table, bucket, queue URLs as CloudFormation resolved
them) as its settings and clients bound to the local endpoint, so presigned result URLs point at the local
S3 and runs it starts are picked up by the local runtime's pollers. No IAM auth locally (loopback only).
"""

from __future__ import annotations

import json
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
    from jobgraph.services.settings import ApiSettings
    from jobgraph.services.status import ApiDeps

    function = session.runtime.functions.get(API_FUNCTION)
    if function is None:
        raise JobGraphError(
            f"stack {session.stack.name} has no {API_FUNCTION}: it nests templates/shared/status-api.yaml in every scenario"
        )
    settings = ApiSettings(**{k: v for k, v in function.environment.items() if k.isupper()})
    local_lambda = LocalAsyncLambda(session.runtime)
    return ApiDeps.from_settings(
        settings, client=lambda service: local_lambda if service == "lambda" else session.endpoint.client(service)
    )


class LocalAsyncLambda:
    """lambda:Invoke with InvocationType Event (scenario 3's tasks on StepTask) for the local runtime's functions:
    the invocation runs in the background, as Lambda's event queue would run it."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.by_name = {spec.function_name: logical_id for logical_id, spec in runtime.functions.items()}

    def invoke(self, FunctionName: str, InvocationType: str, Payload: bytes) -> dict:  # boto3's argument names
        if InvocationType != "Event":
            raise ValueError(f"only asynchronous (Event) invocations are run this way, not {InvocationType}")
        logical_id = self.by_name[FunctionName.rsplit(":", 1)[-1]]
        event = json.loads(Payload)
        threading.Thread(target=self.runtime.invoke, args=(logical_id, event), name="async-invoke", daemon=True).start()
        return {"StatusCode": 202}


class ApiServer:
    """uvicorn in a background thread (no signal handlers there: the main thread keeps Ctrl-C)."""

    def __init__(self, session: LocalSession, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        from jobgraph.api.app import create_app

        deps = local_api_deps(session)
        self.host, self.port = host, port or _free_port(host)
        config = uvicorn.Config(
            create_app(lambda: deps), host=self.host, port=self.port, log_level="warning", lifespan="off"
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
