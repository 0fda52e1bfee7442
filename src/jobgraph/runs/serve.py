"""The status API (the same FastAPI app the ApiFunction serves on AWS) under uvicorn on loopback: the local
target's ``api_port`` option (`jobgraph serve`, `jobgraph run --serve`).

The app gets the ApiFunction's deployed environment (table, bucket, queue URLs as CloudFormation resolved
them) as its settings and clients of the target's endpoint, so presigned result URLs point at that endpoint's
S3 and runs it starts are picked up by the stack deployed there. No IAM auth locally (loopback only).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

from jobgraph.core.errors import JobGraphError


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def api_deps(environment: dict[str, str], clients):
    """The API's dependencies from the ApiFunction's environment, with clients of ``clients`` (``client(name)``):
    locally the endpoint's, whose lambda:Invoke runs scenario 3's asynchronous task invocations (controller.py)."""
    from jobgraph.services.observability import logger
    from jobgraph.services.settings import ApiSettings
    from jobgraph.services.status import ApiDeps

    # the API's log lines name its service as the ApiFunction's do on AWS (Powertools read the variable when this
    # process imported it, and only the API logs through it here: the functions run in their own processes)
    logger.append_keys(service=environment.get("POWERTOOLS_SERVICE_NAME") or "api")

    settings = ApiSettings(**{k: v for k, v in environment.items() if k.isupper()})
    return ApiDeps.from_settings(settings, client=clients.client)


class ApiServer:
    """uvicorn in a background thread (no signal handlers there: the main thread keeps Ctrl-C)."""

    def __init__(self, environment: dict[str, str], clients, host: str = "127.0.0.1", port: int = 0):
        import uvicorn

        from jobgraph.api.app import create_app
        from jobgraph.api.limits import LOCAL_HOSTS

        deps = api_deps(environment, clients)
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


def wait_until_interrupted(check: Callable[[], None], check_every_s: float = 1.0) -> None:
    """Until Ctrl-C / SIGTERM (KeyboardInterrupt), or until ``check`` raises (the cloud under the API died)."""
    while True:
        check()
        time.sleep(check_every_s)
