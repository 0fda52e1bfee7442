"""Inside a local Lambda execution environment: the process that imports a handler and serves invocations.

Started by workers.Worker as ``<runtime's python> -I sandbox.py <fd>`` — under the interpreter the
function's ``Runtime`` names, not the CLI's own — so this file uses the standard library only: it must run
on any python3 runtime whatever is installed there. The handler's ``sys.path`` is what Lambda gives: the
function's code folder, then its layers, then the interpreter's own packages.

It also holds the loopback-only guard that local runs, their workers and the test suite install.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
import traceback
import uuid

KILL_EXIT_CODE = 137
_GUARD = [False]


def _is_loopback(host: object) -> bool:
    if not isinstance(host, str):
        return True  # not an internet address (AF_UNIX path, abstract socket)
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return host == "localhost"


def _refuse_non_loopback(event: str, args: tuple) -> None:
    if event in ("socket.connect", "socket.sendto"):
        address = args[1] if event == "socket.connect" else args[-1]
        if isinstance(address, tuple) and address and not _is_loopback(address[0]):
            raise ConnectionRefusedError(f"jobgraph local cloud: connection to {address[0]} refused (loopback only)")


def allow_loopback_only() -> None:
    """From now on this process can only connect to 127.0.0.1/::1 (a sys audit hook; cannot be undone).

    Installed by local runs, their worker processes and the test suite, so a mistake (a client without
    the local endpoint, a real AWS profile) fails loudly instead of reaching AWS.
    """
    if not _GUARD[0]:
        sys.addaudithook(_refuse_non_loopback)
        _GUARD[0] = True


class InjectedFault(RuntimeError):
    """Raised by the fault injector (``jobgraph run --fail-rate``), never by real code."""


class LocalLambdaContext:
    def __init__(self, spec: dict, deadline: float, request_id: str | None = None):
        self.function_name = spec["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec["arn"] or f"arn:aws:lambda:local:000000000000:function:{self.function_name}"
        self.memory_limit_in_mb = spec["memory_mb"]
        self.aws_request_id = request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{os.getpid()}"
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def serve(conn) -> None:
    """Import the handler (the cold start), report it, then run invocations until told to stop."""
    spec = conn.recv()
    log = sys.stdout
    for path in reversed([spec["code_dir"], *spec["layer_dirs"]]):
        sys.path.insert(0, path)
    module_name, _, function_name = spec["handler"].rpartition(".")
    started = time.perf_counter()
    try:
        module = __import__(module_name, fromlist=[function_name])
        handler = getattr(module, function_name)
    except BaseException:
        conn.send(("init-error", traceback.format_exc()))
        return
    conn.send(("ready", (time.perf_counter() - started) * 1000, sys.version.split()[0]))
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        if request is None:
            return
        event, fault, *rest = request  # the request id the platform's START line names (workers.Worker)
        context = LocalLambdaContext(spec, time.monotonic() + spec["timeout_s"], rest[0] if rest else None)
        started = time.perf_counter()
        try:
            if fault == "fail-before":
                raise InjectedFault("injected failure before side effects")
            if fault == "kill":
                # die mid-batch: the first half of the records has had its side effects (an event that
                # is not a batch, e.g. a Step Functions task, has had all of them)
                if isinstance(event, dict) and "Records" in event:
                    records = event["Records"]
                    handler({**event, "Records": records[: max(1, len(records) // 2)]}, context)
                else:
                    handler(event, context)
                log.flush()
                os._exit(KILL_EXIT_CODE)
            result = handler(event, context)
            if fault == "fail-after":
                raise InjectedFault("injected failure after side effects")
            _flush()
            conn.send(("ok", result, (time.perf_counter() - started) * 1000, _max_rss_mb()))
        except Exception as exc:
            print(traceback.format_exc(), file=log)
            _flush()
            conn.send(("error", f"{type(exc).__name__}: {exc}", (time.perf_counter() - started) * 1000, _max_rss_mb()))


def _flush() -> None:
    """Everything the invocation printed is in the log file before its answer is (the parent reads it then)."""
    sys.stdout.flush()
    sys.stderr.flush()


def _max_rss_mb() -> int:
    """Peak resident memory of this environment so far (REPORT's Max Memory Used)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024)  # bytes on macOS, KiB on Linux


def _follow_parent() -> None:
    """Die with the worker's parent (lifetime.py, loaded by path: under ``-I`` jobgraph is not importable)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "jobgraph_lifetime", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lifetime.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.follow_parent()


def main(fd: int) -> None:
    import signal
    from multiprocessing.connection import Connection

    _follow_parent()
    # Ctrl-C reaches the whole process group; the parent stops workers in order instead
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    allow_loopback_only()
    # stdout/stderr are the function's log file (workers.Worker opens it), line-buffered like Lambda's
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    serve(Connection(fd))


if __name__ == "__main__":
    main(int(sys.argv[1]))
