"""moto's server, in-process, on a loopback port: the local stand-in for every AWS endpoint.

Only 127.0.0.1 is ever used and credentials are fake, so nothing a local run does can reach AWS.
The one exception is opt-in: ``LocalEndpoint(container_hosts=...)`` also serves the same backends on
the gateway address of a local, internal Docker network, for `sam local invoke` containers
(``tests.samlocal.saminvoke``); this process and its workers keep using loopback.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

from jobgraph.localcloud import motopatches
from jobgraph.localcloud.cloudformation import changesets as cfn
from jobgraph.localcloud.lambda_runtime.sandbox import allow_loopback_only
from jobgraph.localcloud.latency import LatencyProfile
from jobgraph.localcloud.observability.meter import HARNESS_USER_AGENT, RequestMeter
from jobgraph.localcloud.stepfunctions import engine as sfn_engine

__all__ = ["FAKE_CREDENTIALS", "LocalEndpoint", "allow_loopback_only", "isolate_from_real_aws"]

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}
LOOPBACK = "127.0.0.1"
_ACTIVE = threading.Lock()


class _SerialMotoServer:
    """moto's WSGI app on a threaded werkzeug server, one request at a time.

    moto's backends are not thread-safe: a conditional update can interleave with another between its
    check and its write, which would let two schedulers both win the MERGE claim, and a DynamoDB
    transaction deep-copies the table while another request writes it ("dictionary changed size during
    iteration"). AWS applies each request atomically; serialising requests restores that (the
    server is bound by the GIL anyway). A long poll gives the lock up while it waits (motopatches).
    """

    def __init__(
        self,
        port: int,
        meter: RequestMeter,
        container_hosts: tuple[str, ...] = (),
        routes: dict[str, Callable[[], dict]] | None = None,
        latency: LatencyProfile | None = None,
    ):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        motopatches.apply()
        cfn.apply()
        app = meter.wrap(DomainDispatcherApplication(create_backend_app))
        # a long poll gives the lock up while it waits (motopatches.ServerLock)
        lock = self._lock = motopatches.ServerLock()
        motopatches.SERVER_LOCKS.append(lock)
        routes = routes or {}

        def serial_app(environ, start_response):
            arrived = time.monotonic()
            route = routes.get(environ.get("PATH_INFO", ""))
            if route is not None and environ.get("REQUEST_METHOD") == "GET":  # the local cloud's own answers
                body = json.dumps(route(), default=str).encode()
                start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                return [body]
            with lock:
                # the body is materialised under the lock too: moto builds some responses lazily
                chunks = list(app(environ, start_response))
            if latency is not None:  # outside the lock, so requests in flight together wait together (latency.py)
                latency.wait(environ, since=arrived)
            return chunks

        def listen(host: str, port: int):
            try:
                return make_server(host, port, serial_app, threaded=True, request_handler=MotoRequestHandler)
            except SystemExit:  # werkzeug reports a failed bind by printing it and exiting
                raise OSError(
                    f"moto server: cannot listen on {host}:{port} (the port is in use, or not an address of this machine)"
                ) from None

        self._server = listen(LOOPBACK, port)
        self.port = self._server.server_address[1]
        # one app and one lock behind every listener: the same backends, still one request at a time
        self._servers = [self._server]
        self.container_ports: dict[str, int] = {}
        try:
            for host in container_hosts:
                server = listen(host, 0)
                self._servers.append(server)
                self.container_ports[host] = server.server_address[1]
        except BaseException:
            for server in self._servers:
                server.server_close()
            raise
        self._threads = [
            threading.Thread(target=server.serve_forever, daemon=True, name=f"moto-server-{index}")
            for index, server in enumerate(self._servers)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        if self._lock in motopatches.SERVER_LOCKS:
            motopatches.SERVER_LOCKS.remove(self._lock)


@dataclass
class LocalEndpoint:
    """A started moto server plus boto3 clients bound to it (use as a context manager)."""

    region: str = "eu-west-1"
    port: int = 0  # 0: any free port
    meter: RequestMeter = field(default_factory=RequestMeter)  # every API call, by service and action
    # Extra addresses to serve on (a free port each), for containers only: each must be the gateway of a
    # local internal Docker network (containers.local_invoke_network checks that); never a public one.
    container_hosts: tuple[str, ...] = ()
    # GET paths the local cloud answers itself, with JSON (e.g. /_jobgraph/status), outside moto and its lock
    routes: dict[str, Callable[[], dict]] = field(default_factory=dict)
    latency: LatencyProfile | None = None  # each workload request held for its service time (latency.py)
    _server: object = field(default=None, repr=False)
    _clients: dict = field(default_factory=dict, repr=False)

    def start(self) -> LocalEndpoint:
        # moto's request log and its "not supported by CloudFormation" warnings would drown the progress bar
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message=".*not supported by moto's CloudFormation.*")
        logging.getLogger("moto").setLevel(logging.ERROR)
        # moto keeps its state in module globals, shared by every server in this process: one local
        # cloud at a time, and each starts from (and leaves behind) an empty account
        if not _ACTIVE.acquire(blocking=False):
            raise RuntimeError("a local cloud is already running in this process")
        try:
            self._server = _SerialMotoServer(self.port, self.meter, self.container_hosts, self.routes, self.latency)
            self._server.start()
            self.port = self._server.port
            self._reset()
            # state machines run in moto's ASL engine, whose own calls come back to this server
            sfn_engine.enable_step_functions(self.port)
        except BaseException:
            if self._server is None:
                _ACTIVE.release()
            else:
                self.stop()
            raise
        return self

    def _reset(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.url}/moto-api/reset", method="POST"), timeout=30)

    def stop(self) -> None:
        if self._server is not None:
            try:
                self._reset()
            finally:
                sfn_engine.disable_step_functions()
                self._server.stop()
                self._server = None
                self._clients.clear()
                _ACTIVE.release()

    def __enter__(self) -> LocalEndpoint:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def lock(self) -> motopatches.ServerLock:
        """The lock every request holds: hold it to read or change moto's backends from another thread."""
        if self._server is None:
            raise RuntimeError("the local endpoint is not started")
        return self._server._lock

    def container_url(self, host: str) -> str:
        """The URL a container reaches this server at, through ``host`` (one of ``container_hosts``)."""
        if self._server is None:
            raise RuntimeError("the local endpoint is not started")
        return f"http://{host}:{self._server.container_ports[host]}"

    @cached_property
    def _session(self):
        import boto3

        return boto3.session.Session(
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            aws_session_token=FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
            region_name=self.region,
        )

    def client(self, service: str, *, billed: bool = False, region: str | None = None):
        """A cached boto3 client for ``service`` that can only talk to this server.

        ``billed``: the calls stand for AWS's own work on the account's behalf (a Lambda event source
        mapping polling SQS is billed as SQS requests), so the meter counts them with the workload's;
        other clients are the harness's (deploy, progress, export) and are counted apart.
        ``region``: another region than the endpoint's (a stack deployed with --region).
        """
        if self._server is None:
            raise RuntimeError("the local endpoint is not started")
        key = (service, billed, region or self.region)
        if key not in self._clients:
            from botocore.config import Config

            self._clients[key] = self._session.client(
                service,
                region_name=region or self.region,
                endpoint_url=self.url,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=50,
                    user_agent_extra=None if billed else HARNESS_USER_AGENT,
                ),
            )
        return self._clients[key]

    def environment(self, region: str | None = None) -> dict[str, str]:
        """What a local Lambda worker needs so that unmodified boto3 code talks to this server."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_DEFAULT_REGION": region or self.region,
            "AWS_REGION": region or self.region,
        }


def isolate_from_real_aws() -> None:
    """Drop profile/endpoint settings a developer's shell may carry, before any client is made."""
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        os.environ.pop(variable, None)
    os.environ.update(FAKE_CREDENTIALS)
