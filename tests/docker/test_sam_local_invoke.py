"""Every events/*.json through `sam local invoke` of the built functions, in Docker, effects checked (opt-in).

Given the local cloud deployed from each app's template (template.yaml, templates/scenario-3.yaml) and
serving an internal Docker network, when each event runs through `sam local invoke` (the app's build, the
python3.13 base image: the official one if it is here or its registry resolves, else the stand-in built
from Debian), then each has its effect in the bucket, the table and the queues, and processor-poison.json
fails as documented.

Marked `docker` and opt-in: JOBGRAPH_DOCKER_TESTS=1 (`make test-docker`; `.ci/run` sets it when it could
start a Docker daemon). A daemon that is installed but stopped is started; without one an opted-in run
fails (tests/conftest.py's skip policy). The first run on a machine builds the stand-in image (~35-60 s: debootstrap).
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import DOCKER_OPT_IN, capability_absent, opted_in
from tests.lambda_support import EVENTS, ROOT
from tests.samlocal import containers
from tests.samlocal.saminvoke import APPS, SamLocalInvoker

pytestmark = pytest.mark.docker


def _quiet(message: str) -> None:
    del message


@pytest.fixture(scope="module")
def invoke_setup():
    if not opted_in(DOCKER_OPT_IN):
        capability_absent("no Docker run asked for: `make test-docker` runs sam local invoke in Docker", DOCKER_OPT_IN)
    try:
        containers.ensure_docker(install=False)
    except containers.DockerUnavailable as exc:
        capability_absent(f"no Docker daemon could be started: {exc}", DOCKER_OPT_IN)
    choice = containers.choose_image(os.environ.get("LAMBDA_IMAGE", "auto"), containers.docker_arch())
    if choice.kind == "local":
        containers.ensure_standin_image(ROOT / "docker" / "lambda-python3.13", ROOT / ".cache" / "lambda-image")
    return choice, containers.local_invoke_network()


@pytest.fixture(scope="module")
def every_event(invoke_setup, tmp_path_factory):
    """Per app, all its cases in one local cloud, in order (each one's prerequisites ran before it)."""
    choice, gateway = invoke_setup
    results = {}
    for app in APPS.values():
        log_dir = tmp_path_factory.mktemp(f"sam-local-invoke-{app.scenario}")
        with SamLocalInvoker(ROOT, choice, containers.NETWORK, gateway, log_dir, app=app, log=_quiet) as invoker:
            results.update({(app.scenario, case.event): invoker.invoke(case) for case in app.cases.values()})
    return results


CASES = [(app.scenario, event) for app in APPS.values() for event in app.cases]


def test_the_cases_cover_every_events_file():
    assert {event for _, event in CASES} == {p.stem for p in EVENTS.glob("*.json")}


@pytest.mark.parametrize(("scenario", "event"), CASES, ids=[f"{n}-{event}" for n, event in CASES])
def test_event_has_its_effect_through_sam_local_invoke(every_event, scenario, event):
    result = every_event[(scenario, event)]
    expected = "expected failure" if APPS[scenario].cases[event].expected_failure else "ok"
    assert result.outcome == expected, f"{result.detail}\n{result.log.read_text()[-3000:]}"


def test_a_single_event_gets_its_prerequisites_seeded(invoke_setup, tmp_path):
    """scheduler-merge alone: StartRun and the MERGE claim are seeded in-process, then SAM runs it."""
    choice, gateway = invoke_setup
    with SamLocalInvoker(ROOT, choice, containers.NETWORK, gateway, tmp_path, log=_quiet) as invoker:
        result = invoker.invoke(APPS[1].cases["scheduler-merge"])
    assert (result.outcome, result.detail) == ("ok", "run COMPLETED"), result.log.read_text()[-3000:]
