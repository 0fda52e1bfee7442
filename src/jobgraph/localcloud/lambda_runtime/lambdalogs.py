"""The platform lines Lambda writes around every invocation, in AWS's exact format.

Lambda writes ``START``, ``END`` and ``REPORT`` for each invocation into the function's log stream
(``/aws/lambda/<function>``, one stream per execution environment). ``REPORT`` is what billing tools read: the
duration, the billed duration (rounded up to the millisecond; since 2025-08-01 it includes the INIT phase of an
on-demand function's cold start), the configured and the used memory, and on a cold start the INIT duration.
``runs/aws_usage.py`` parses these lines from CloudWatch Logs, on AWS and on the local cloud alike.
"""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime


def stream_name(version: str = "$LATEST", now: datetime | None = None) -> str:
    """A log stream name as Lambda makes one per execution environment: ``2026/12/02/[$LATEST]<32 hex>``."""
    now = now or datetime.now(UTC)
    return f"{now:%Y/%m/%d}/[{version}]{secrets.token_hex(16)}"


def billed_ms(duration_ms: float, init_ms: float = 0.0) -> int:
    """Billed duration: the invocation (plus INIT on a cold start), rounded up to the millisecond."""
    return max(1, math.ceil(duration_ms + init_ms))


def start_line(request_id: str, version: str = "$LATEST") -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def timeout_line(request_id: str, timeout_s: float, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S.%f}"[:-3] + f"Z {request_id} Task timed out after {timeout_s:.2f} seconds"


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int,
    init_ms: float | None = None,
    status: str | None = None,
) -> str:
    """``REPORT RequestId: … Duration: … ms Billed Duration: … ms Memory Size: … MB Max Memory Used: … MB``,
    tab-separated with a trailing tab as Lambda writes it; ``Init Duration`` on a cold start, ``Status`` when
    the invocation timed out or its runtime died."""
    fields = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed_ms(duration_ms, init_ms or 0.0)} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max(1, max_memory_mb)} MB",  # not capped: no local memory limit (docs)
    ]
    if init_ms:
        fields.append(f"Init Duration: {init_ms:.2f} ms")
    if status:
        fields.append(f"Status: {status}")
    return "\t".join(fields) + "\t"
