"""Service latency for the local cloud: each AWS request waits as long as the service would take on AWS.

moto answers in about a millisecond of its own work, so locally a job's time is its CPU, and a function
that waits on S3, DynamoDB and SQS ten times over (a batch of ten jobs, one after the other) looks as
cheap as one that waits once. With a profile (``jobgraph run --service-latency default|FILE``) every
workload request is held for a time drawn from a log-normal distribution with the profile's p50 and p99
for its service and action, counted from the request's arrival: moto's own time and any wait for the
server's lock count toward it, so a request takes max(drawn time, local time). The rest is slept after
moto has answered and *outside* the server's lock (server.py), so requests in flight at the same time wait
at the same time, as they do on AWS. The run harness's own requests (progress, export) are not delayed.

A profile is JSON (or the built-in ``default``):

    {"label": "eu-west-1 from a 1024 MB Lambda, measured 2026-12",
     "source": "measured",
     "services": {"s3": {"GetObject": {"p50_ms": 18, "p99_ms": 70}, "*": {"p50_ms": 25, "p99_ms": 100}},
                  "dynamodb": {"*": {"p50_ms": 5, "p99_ms": 20}}}}

``"*"`` is a service's (or, at the top of ``services``, every other service's) default; a request with no
matching entry is not delayed.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.core.errors import ConfigurationError
from jobgraph.localcloud.observability.meter import classified, request_origin

# z of the 99th percentile of a standard normal: p99 = p50 · exp(σ · Z99)
Z99 = 2.3263478740408408
MAX_LATENCY_MS = 60_000

# Typical in-region figures for small requests from a Lambda function, as AWS documents them and as
# commonly measured (S3 first-byte latency of tens of ms, DynamoDB single-digit ms, SQS ~10 ms). They are
# ASSUMPTIONS, not measurements from this machine or account: measure yours (CloudWatch, X-Ray) and pass
# them with --service-latency FILE.
DEFAULT_PROFILE = {
    "label": "default: typical in-region latencies (assumptions, not measured; override with a measured file)",
    "source": "assumptions",
    "services": {
        "s3": {
            "GetObject": {"p50_ms": 20, "p99_ms": 80},
            "HeadObject": {"p50_ms": 15, "p99_ms": 60},
            "PutObject": {"p50_ms": 30, "p99_ms": 120},
            "*": {"p50_ms": 25, "p99_ms": 100},
        },
        "dynamodb": {
            "GetItem": {"p50_ms": 4, "p99_ms": 15},
            "Query": {"p50_ms": 8, "p99_ms": 30},
            "*": {"p50_ms": 6, "p99_ms": 25},
        },
        "sqs": {
            "SendMessage": {"p50_ms": 12, "p99_ms": 50},
            "SendMessageBatch": {"p50_ms": 15, "p99_ms": 60},
            "ReceiveMessage": {"p50_ms": 10, "p99_ms": 40},
            "*": {"p50_ms": 8, "p99_ms": 30},
        },
        "lambda": {"*": {"p50_ms": 15, "p99_ms": 60}},
        "events": {"*": {"p50_ms": 15, "p99_ms": 50}},
        "*": {"*": {"p50_ms": 10, "p99_ms": 40}},
    },
}


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p99_ms: float

    @property
    def sigma(self) -> float:
        return math.log(self.p99_ms / self.p50_ms) / Z99 if self.p50_ms > 0 else 0.0

    def draw_ms(self, rng: random.Random) -> float:
        """A log-normal draw: median p50, 99th percentile p99."""
        if self.p50_ms <= 0:
            return 0.0
        return min(MAX_LATENCY_MS, self.p50_ms * math.exp(self.sigma * rng.gauss(0.0, 1.0)))


@dataclass
class LatencyProfile:
    label: str
    source: str
    services: dict[str, dict[str, Latency]]
    seed: int = 0
    waited: Counter = field(default_factory=Counter)  # (service, action) -> requests timed
    waited_ms: Counter = field(default_factory=Counter)  # (service, action) -> their drawn service time
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self):
        self._rng = random.Random(self.seed)

    def latency(self, service: str, action: str) -> Latency | None:
        actions = self.services.get(service) or self.services.get("*") or {}
        return actions.get(action) or actions.get("*")

    def draw_ms(self, service: str, action: str) -> float:
        latency = self.latency(service, action)
        if latency is None:
            return 0.0
        with self._lock:
            delay = latency.draw_ms(self._rng)
            self.waited[(service, action)] += 1
            self.waited_ms[(service, action)] += delay
        return delay

    def wait(self, environ: dict, since: float | None = None) -> float:
        """Hold a served workload request until its service time has passed since ``since`` (its arrival,
        time.monotonic(); default: now). The caller holds no lock. Returns the ms slept."""
        if request_origin(environ) != "workload":
            return 0.0
        body = environ.get("wsgi.input")
        service, action = classified(environ, body.getvalue() if hasattr(body, "getvalue") else b"")
        delay = self.draw_ms(service, action)
        if since is not None:
            delay = max(0.0, delay - (time.monotonic() - since) * 1000)
        if delay:
            time.sleep(delay / 1000)
        return delay

    def summary(self) -> dict:
        """For run records: which profile, and per service the requests it timed and their drawn service time."""
        with self._lock:
            by_service: dict[str, dict] = {}
            for (service, action), count in self.waited.items():
                entry = by_service.setdefault(service, {"requests": 0, "service_ms": 0.0})
                entry["requests"] += count
                entry["service_ms"] += self.waited_ms[(service, action)]
        for entry in by_service.values():
            entry["service_ms"] = round(entry["service_ms"], 1)
        return {"label": self.label, "source": self.source, "by_service": dict(sorted(by_service.items()))}


def _latency(where: str, value: object) -> Latency:
    if not isinstance(value, dict) or set(value) != {"p50_ms", "p99_ms"}:
        raise ConfigurationError(f'{where}: expected {{"p50_ms": …, "p99_ms": …}}, got {str(value)[:80]}')
    p50, p99 = value["p50_ms"], value["p99_ms"]
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in (p50, p99))
    if not numbers or not 0 <= p50 <= p99 <= MAX_LATENCY_MS:
        raise ConfigurationError(f"{where}: need 0 <= p50_ms <= p99_ms <= {MAX_LATENCY_MS}, got {p50!r}, {p99!r}")
    return Latency(float(p50), float(p99))


def parse_profile(document: object, where: str = "profile", seed: int = 0) -> LatencyProfile:
    """A LatencyProfile from its JSON document; ConfigurationError naming the bad field."""
    if not isinstance(document, dict) or not isinstance(document.get("services"), dict):
        raise ConfigurationError(f'{where}: expected an object with "services": {{service: {{action: …}}}}')
    services = {}
    for service, actions in document["services"].items():
        if not isinstance(actions, dict):
            raise ConfigurationError(f"{where}: services.{service}: expected {{action: {{p50_ms, p99_ms}}}}")
        services[service] = {
            action: _latency(f"{where}: services.{service}.{action}", value) for action, value in actions.items()
        }
    return LatencyProfile(
        label=str(document.get("label", where))[:200],
        source=str(document.get("source", "file"))[:40],
        services=services,
        seed=seed,
    )


def load_profile(choice: str | Path | None, seed: int = 0) -> LatencyProfile | None:
    """``None`` (no latency), ``"default"`` (the built-in assumptions) or a JSON file."""
    if choice is None:
        return None
    if str(choice) == "default":
        return parse_profile(DEFAULT_PROFILE, "default", seed)
    path = Path(choice)
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"--service-latency {path}: not a readable JSON file ({exc})") from None
    return parse_profile(document, str(path), seed)
