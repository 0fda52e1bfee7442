"""The skip policy (tests/conftest.py): absent capabilities skip, opted-in ones that are missing fail; and
the pipelines opt in to what their machines have."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import BROWSER_OPT_IN, DOCKER_OPT_IN, capability_absent

ROOT = Path(__file__).resolve().parents[2]


def test_an_absent_capability_not_asked_for_is_a_skip_naming_how_to_opt_in(monkeypatch):
    monkeypatch.delenv(DOCKER_OPT_IN, raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"no Docker daemon \(opt in with JOBGRAPH_DOCKER_TESTS=1"):
        capability_absent("no Docker daemon", DOCKER_OPT_IN)


@pytest.mark.parametrize("variable", [DOCKER_OPT_IN, BROWSER_OPT_IN])
def test_an_opted_in_capability_that_is_missing_fails(monkeypatch, variable):
    monkeypatch.setenv(variable, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{variable}=1 but it is missing"):
        capability_absent("it is missing", variable)


def test_codebuild_runs_the_docker_and_browser_tests_with_scenario_3_built():
    buildspec = yaml.safe_load((ROOT / "buildspec.yml").read_text())
    variables = buildspec["env"]["variables"]
    assert (variables[DOCKER_OPT_IN], variables[BROWSER_OPT_IN]) == ("1", "1")
    commands = buildspec["phases"]["build"]["commands"]
    # scenario 3 is built exactly when the Docker tests run (the variable above is "1": on CodeBuild, always)
    build_sfn = f'if [ "${{{DOCKER_OPT_IN}}}" = 1 ]; then make build-sfn; fi'
    assert commands.index(build_sfn) < next(i for i, c in enumerate(commands) if "pytest" in c)


def test_ci_opts_in_to_docker_only_after_a_daemon_started():
    script = (ROOT / ".ci" / "run").read_text()
    assert script.index("if make docker-up; then") < script.index(f"export {DOCKER_OPT_IN}=1")
