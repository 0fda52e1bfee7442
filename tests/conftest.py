"""Shared fixtures. Tests never talk to real AWS: fake credentials, loopback endpoints only."""

from __future__ import annotations

import copy
import os

import pytest

# Set before boto3 is imported anywhere, so no test can reach a real account by accident.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_REGION": "eu-west-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "PerfTesting",
    }
)
for _var in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
    os.environ.pop(_var, None)

# ... and any connection that is not to this machine raises, whatever the code under test does
from jobgraph.localcloud.server import allow_loopback_only  # noqa: E402

allow_loopback_only()


def make_route(origin, destination, gate, takeoff, arrival):
    return {
        "origin_iata": origin,
        "destination_iata": destination,
        "estimated_gate_open_time": gate,
        "estimated_takeoff_time": takeoff,
        "estimated_arrival_time": arrival,
    }


@pytest.fixture
def seed_000_sequence() -> dict:
    """The example sequence of seed 000."""
    return {
        "sequence_id": 0,
        "home_airport_iata": "DUB",
        "routes": [
            make_route("DUB", "OSL", "00:25:00", "02:04:00", "03:41:00"),
            make_route("OSL", "DME", "03:55:00", "05:28:00", "07:33:00"),
        ],
    }


THREE_ROUTES = {
    "sequence_id": 7,
    "home_airport_iata": "DUB",
    "routes": [
        make_route("DUB", "LHR", "01:00:00", "02:30:00", "03:40:00"),
        make_route("LHR", "CDG", "04:00:00", "04:30:00", "05:40:00"),
        make_route("CDG", "DUB", "20:30:00", "20:35:00", "22:10:00"),
    ],
}


@pytest.fixture
def three_route_sequence() -> dict:
    """Route 1 has a 5-minute buffer (knock-on bites); route 2 lands 50 min before the curfew."""
    return copy.deepcopy(THREE_ROUTES)


# --- skip policy --------------------------------------------------------------------------------------
# A test may be skipped only because a capability is absent on this machine (a Docker daemon, a browser,
# the whole suite for the collection guard). A run that opted in to a capability — the variable set to
# "1", as .ci/run does for Docker after starting a daemon and buildspec.yml does on CodeBuild — FAILS
# where the capability is missing: an opted-in check that cannot run is a failure, never a quiet gap.
DOCKER_OPT_IN = "JOBGRAPH_DOCKER_TESTS"
BROWSER_OPT_IN = "JOBGRAPH_BROWSER_TESTS"


def opted_in(variable: str) -> bool:
    return os.environ.get(variable) == "1"


def capability_absent(what: str, opt_in: str) -> None:
    """Skip (capability absent, not asked for) or fail (the run opted in with ``opt_in``=1) — never returns."""
    if opted_in(opt_in):
        pytest.fail(f"{opt_in}=1 but {what}", pytrace=False)
    pytest.skip(f"{what} (opt in with {opt_in}=1 where it is present)")


def pytest_itemcollected(item):
    from tests.collection_guard import record

    record(item)


def pytest_terminal_summary(terminalreporter, config):
    from tests.collection_guard import summary

    terminalreporter.write_line(summary(config))
    # the skip list, one line per reason: each must name a capability this machine truly lacks
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in sorted(reasons.items()):
        terminalreporter.write_line(f"skipped {count:>3}: {reason}")


# The coverage figure `make test` prints is measured on every test but the end-to-end ones (tests/e2e): those
# drive whole local clouds, and measuring them cost ~1.5x their time (docs/development.md, "Coverage"). They
# still run, in the same pytest run, with coverage paused. JOBGRAPH_COVER_E2E=1 measures them too.
@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    plugin = item.config.pluginmanager.get_plugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    pause = (
        controller is not None
        and getattr(controller, "started", False)
        and "e2e" in item.path.relative_to(item.config.rootpath).parts[:2]
        and not opted_in("JOBGRAPH_COVER_E2E")
    )
    if not pause:
        return (yield)
    controller.pause()
    try:
        return (yield)
    finally:
        controller.resume()
