"""Domain exceptions: one module, so adapters and handlers translate into these and nothing matches on text.
``one_line`` is the one shape their messages take where a user reads them (the CLI, a failed run)."""

from __future__ import annotations

ONE_LINE_LIMIT = 240  # characters of a message a terminal line shows, with room for a path after it


def one_line(text: str, limit: int = ONE_LINE_LIMIT) -> str:
    """The first line of ``text``, cut to ``limit`` characters ("…" ends a cut line); "" for blank text."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 1] + "…"


class JobGraphError(Exception):
    """Base of every error jobgraph raises on purpose."""


class InvalidSequenceError(JobGraphError):
    """A sequence file or payload violates the contract of GUIDE §2.

    ``source`` names the file (or payload), ``problems`` holds one line per violation, each naming the
    sequence and the field, so a user can fix every problem in one pass.
    """

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class InvalidJobError(JobGraphError):
    """A queue message does not parse into a job (poison message)."""


class JobInProgressError(JobGraphError):
    """Another claimant holds a live claim on the job (it is running it now); retry after its lease."""


class MissingStateError(JobGraphError):
    """A stage needs an output of an earlier stage that is not stored (yet)."""


class StoreError(JobGraphError):
    """A storage backend failed in a way the caller cannot fix by retrying the same request."""


class ObjectNotFoundError(StoreError):
    """The requested object does not exist."""


class ConfigurationError(JobGraphError):
    """Settings (environment variables, CLI options) are missing or invalid."""


class ApprovalNotFoundError(JobGraphError):
    """No approval was requested for this run (its workflow has no approval, or its gates passed)."""


class ApprovalExpiredError(JobGraphError):
    """The run's approval expired before anyone decided: its on_approval triggers will not fire."""


class ApprovalConflictError(JobGraphError):
    """The run's approval was decided before, the other way."""


class RunExistsError(JobGraphError):
    """A run with this run_id was started before."""


class RunNotFoundError(JobGraphError):
    """No run with this id (or it expired)."""


class TaskNotFoundError(JobGraphError):
    """No task with this id (or it expired)."""


class TaskConflictError(JobGraphError):
    """A client key reused with a different task body."""


class JobNotFoundError(JobGraphError):
    """No record of this job (not started yet, or no such job)."""


class NoSuchFileError(JobGraphError):
    """The job has no file of this type."""


class NotReadyError(JobGraphError):
    """The job has not completed: its file does not exist yet."""


class BadTokenError(JobGraphError):
    """A pagination token that this API did not hand out for this listing."""


class TriggerFailedError(JobGraphError):
    """One or more triggers of a run did not fire (yet); the message is retried (and dead-lettered in the end)."""


class ClaimBusyError(JobGraphError):
    """Another invocation holds the trigger's claim: come back when it has fired it, or died."""


class TargetRefusedError(StoreError):
    """A trigger's target answered that it did not take the request: firing again is safe."""
