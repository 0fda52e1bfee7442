"""Powertools Logger / Metrics / Tracer: one neutral module that handlers and services both import.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
(set per function in template.yaml); the namespace defaults to PerfTesting (seed 001).
"""

from __future__ import annotations

import os
import threading

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PerfTesting")

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)
tracer = Tracer()

_metrics_lock = threading.Lock()


def add_metric(name: str, unit: MetricUnit, value: float) -> None:
    """``metrics.add_metric`` from any thread: a batch's message groups run in threads (records.py), and
    Powertools' metric set is a plain dict that flushes itself at 100 metrics."""
    with _metrics_lock:
        metrics.add_metric(name=name, unit=unit, value=value)


__all__ = ["NAMESPACE", "MetricUnit", "add_metric", "logger", "metrics", "tracer"]
