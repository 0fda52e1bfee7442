"""Powertools Logger / Metrics / Tracer: one neutral module that handlers and services both import.

Service name and metrics namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
(set per function in template.yaml); the namespace defaults to PerfTesting (seed 001).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "PerfTesting")

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)
tracer = Tracer()

__all__ = ["NAMESPACE", "MetricUnit", "logger", "metrics", "tracer"]
