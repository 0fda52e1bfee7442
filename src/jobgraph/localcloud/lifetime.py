"""Nothing outlives its parent: the tie between a local-cloud process and the children it starts.

Parent side, ``child_options()``: keyword arguments for ``subprocess.Popen`` that start the child in its own
process group (one ``killpg`` stops it and everything it starts; Ctrl-C on the terminal no longer reaches it,
its parent stops it in order) and hand it the read end of this process's *lifeline*, a pipe whose only write
end this process holds. ``stop_group()`` stops such a child: SIGTERM to its group, a grace period, SIGKILL.

Child side, ``follow_parent()`` (first thing in the child): a daemon thread blocks reading the lifeline;
when the parent dies, however it dies (``kill -9`` included), the kernel closes the write end, the read
returns EOF and the thread SIGKILLs the child's whole process group. ``exit_after()`` is the backstop of a
SIGTERM handler that finishes work in hand: the process exits after the grace period whatever it is doing
(a boto3 call retrying against a server that is gone, for instance).

Why a pipe rather than Linux's ``prctl(PR_SET_PDEATHSIG)``: the parent-death signal fires when the *thread*
that forked the child ends, not the process, and local-cloud children are started from poller and monitor
threads that may end while the child is still in use; a pipe's write end belongs to the process. It also
works on macOS.

Standard library only, any Python 3: Lambda sandboxes load this file by path under the function's own
interpreter (sandbox.py), where jobgraph is not importable.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading

LIFELINE_VARIABLE = "JOBGRAPH_LIFELINE_FD"
_lifeline: list[int] = []  # [read_fd, write_fd] of this process's lifeline, made on first use
_lifeline_lock = threading.Lock()


def _lifeline_read_fd() -> int:
    with _lifeline_lock:
        if not _lifeline:
            # os.pipe's descriptors are not inheritable: the write end never reaches a child (Popen closes
            # every descriptor but pass_fds), so the children's read ends see EOF exactly when this process dies
            _lifeline.extend(os.pipe())
        return _lifeline[0]


def child_options(env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = ()) -> dict:
    """Popen keyword arguments tying a child to this process (its own process group + the lifeline).

    ``env``: the child's environment (default: this process's); ``pass_fds``: other descriptors to pass.
    The child must call :func:`follow_parent` (Python) to die with its parent.
    """
    read_fd = _lifeline_read_fd()
    return {
        "start_new_session": True,
        "pass_fds": (*pass_fds, read_fd),
        "env": {**(os.environ if env is None else env), LIFELINE_VARIABLE: str(read_fd)},
    }


def _kill_own_group() -> None:
    try:
        if os.getpgid(0) == os.getpid():  # a group leader (child_options): take everything it started along
            os.killpg(0, signal.SIGKILL)
    finally:
        os.kill(os.getpid(), signal.SIGKILL)


def follow_parent() -> bool:
    """In a child started with :func:`child_options`: die with the parent. False if there is no lifeline."""
    value = os.environ.pop(LIFELINE_VARIABLE, None)
    if value is None or not value.isdigit():
        return False
    fd = int(value)
    os.set_inheritable(fd, False)  # the child's own children get their own lifeline from it, not this one

    def watch() -> None:
        try:
            while os.read(fd, 1):  # nobody writes: returns b"" (EOF) when the last write end closes
                pass
        except OSError:
            pass
        _kill_own_group()

    threading.Thread(target=watch, name="lifeline", daemon=True).start()
    return True


def exit_after(grace_s: float, code: int = 128 + signal.SIGTERM) -> threading.Timer:
    """Exit with ``code`` in ``grace_s`` seconds whatever the process is doing (a SIGTERM handler's backstop)."""
    timer = threading.Timer(grace_s, os._exit, args=(code,))
    timer.daemon = True
    timer.start()
    return timer


def backstop_signals(grace_s: float, signals: tuple[int, ...] = (signal.SIGTERM,)) -> None:
    """From now on, ``grace_s`` seconds after one of ``signals`` arrives this process exits, whatever handler
    the program installed for it and whatever it is doing then (call from the main thread).

    Works beside the program's own handlers: Python writes the number of every signal it handles to the
    wakeup descriptor (``signal.set_wakeup_fd``), which a daemon thread reads. The signal needs a Python
    handler (a program that finishes its work in hand installs one); with the default action it kills anyway.
    """
    reader, writer = socket.socketpair()
    writer.setblocking(False)
    signal.set_wakeup_fd(writer.fileno())
    watched = {int(s) for s in signals}

    def watch() -> None:
        with reader:
            while True:
                data = reader.recv(64)
                if not data:
                    return
                if watched & set(data):
                    exit_after(grace_s)
                    return

    threading.Thread(target=watch, name="signal-backstop", daemon=True).start()
    _keep.append(writer)  # the descriptor must stay open for as long as the process runs


_keep: list = []


def signal_group(process: subprocess.Popen, sig: int) -> None:
    """Send ``sig`` to a child of :func:`spawn` and everything in its process group (to a child started
    otherwise, while it runs, alone)."""
    try:
        if getattr(process, "jobgraph_group", False):
            os.killpg(process.pid, sig)
        elif process.returncode is None:
            process.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def spawn(args: list[str], *, env: dict[str, str] | None = None, pass_fds: tuple[int, ...] = (), **popen_kwargs):
    """``subprocess.Popen(args, ...)`` with :func:`child_options`: a child in its own group, tied to this process."""
    process = subprocess.Popen(args, **child_options(env, pass_fds), **popen_kwargs)
    process.jobgraph_group = True  # its pid is its process group's id (start_new_session)
    return process


def stop_group(process: subprocess.Popen, grace_s: float) -> int | None:
    """Stop a child of :func:`spawn` and everything it started: SIGTERM to its process group, up to
    ``grace_s`` seconds to exit, then SIGKILL. Returns its exit code. Safe to call on a child that has exited
    (what it left behind in its group is killed) and twice."""
    if process.returncode is None:
        signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            signal_group(process, signal.SIGKILL)
            process.wait(timeout=5)
    # grandchildren left in the group: while any lives, the kernel keeps the group's id (the pid) reserved
    signal_group(process, signal.SIGKILL)
    return process.returncode
