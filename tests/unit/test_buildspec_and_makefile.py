"""buildspec.yml (CodeBuild) and the Makefile's deploy targets agree with each other and with samconfig.toml."""

from __future__ import annotations

import fnmatch
import re
import shlex
import shutil
import subprocess

import yaml

from tests.lambda_support import ROOT
from tests.make_support import TAGS, dry_run, make, makefile_targets


def buildspec() -> dict:
    return yaml.safe_load((ROOT / "buildspec.yml").read_text())


def commands(phase: str) -> list[str]:
    return [" ".join(c.split()) for c in buildspec()["phases"][phase]["commands"]]


def make_invocations(command: str) -> list[list[str]]:
    """The words of each `make` a buildspec command runs (on its own, or in an `if ...; then make ...; fi`)."""
    return [shlex.split(m) for m in re.findall(r"(?:^|;|&&|\bthen)\s*make\s+([^;&|]+)", command)]


def test_buildspec_make_targets_exist():
    used = {
        word
        for phase in buildspec()["phases"]
        for command in commands(phase)
        for invocation in make_invocations(command)
        for word in invocation
        if "=" not in word
    }
    assert used == {"venv", "sam-cli", "validate", "build", "build-sfn", "run-aws"}
    assert used <= makefile_targets()


def test_buildspec_builds_before_the_tests_and_reports_junit():
    build = commands("build")
    assert build.index("make build") < next(i for i, c in enumerate(build) if "pytest" in c)
    (pytest_command,) = [c for c in build if "pytest" in c]
    junit = re.search(r"--junitxml=(\S+)", pytest_command).group(1)
    report = buildspec()["reports"]["jobgraph-tests"]
    assert junit.startswith(report["base-directory"] + "/")
    assert any(fnmatch.fnmatch(junit.split("/", 1)[1], pattern) for pattern in report["files"])
    assert "make validate" in commands("pre_build")


def test_buildspec_deploy_passes_every_parameter_and_tag():
    (deploy,) = [c for c in commands("post_build") if "sam deploy" in c]
    for parameter in ("Stage=", "TestRunId=", "ProjectPrefix="):
        assert parameter in deploy
    for tag in TAGS:
        assert f'"{tag}=' in deploy


def test_make_deploy_passes_every_parameter_and_tag_for_the_environment():
    out = dry_run("deploy", "ENV=prod", "TEST_RUN_ID=memory-1024mb", "PARAMS=ProcessorMemorySize=1024")
    command = " ".join(line.rstrip("\\").strip() for line in out.splitlines() if line.strip())
    deploy = command[command.index("sam deploy") :]
    words = shlex.split(deploy)
    assert words[words.index("--config-env") + 1] == "prod"
    overrides = words[words.index("--parameter-overrides") + 1 : words.index("--tags")]
    assert overrides == [
        "Stage=prod", "TestRunId=memory-1024mb", "ProjectPrefix=jobgraph", "Architecture=x86_64",
        "ProcessorMemorySize=1024",
    ]  # fmt: skip
    assert words[words.index("--tags") + 1 :] == [
        "PerfTestRun=memory-1024mb", "Purpose=PerformanceTesting", "Environment=prod", "Project=jobgraph",
    ]  # fmt: skip


def test_make_deploy_and_destroy_refuse_an_unknown_environment():
    for target in ("deploy", "destroy"):
        result = make(target, "ENV=qa", check=False)
        assert result.returncode != 0 and "ENV must be dev, prod or local" in result.stderr


def test_make_destroy_empties_the_bucket_before_deleting_the_stack():
    out = dry_run("destroy", "ENV=dev")
    empty = out.index("scripts/empty_results_bucket.py --config-env dev")
    assert empty < out.index("sam delete --config-env dev")


def test_make_finds_a_python313_itself_and_refuses_another_version():
    """The Lambda runtime is python3.13: the virtualenvs and the layers' bytecode are made with it."""
    venv = dry_run("venv", "VENV=/nonexistent-venv")
    (command,) = [line for line in venv.splitlines() if line.endswith("-m venv /nonexistent-venv")]
    found = command.split()[0]
    version = subprocess.run([found, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
    assert version.stdout.split() == ["3", "13"]
    refused = make("-n", "venv", "VENV=/nonexistent-venv", "PYTHON=python3", check=False)
    if "3.13" not in subprocess.run(["python3", "--version"], capture_output=True, text=True).stdout:
        assert refused.returncode != 0 and "PYTHON=python3 is not Python 3.13" in refused.stderr


def test_make_says_what_to_install_when_no_python313_is_found(tmp_path):
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")}
    result = subprocess.run(
        [shutil.which("make"), "--no-print-directory", "-n", "venv", "VENV=/nonexistent-venv"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "No python3.13 found" in result.stderr and "pyenv install 3.13" in result.stderr


def test_make_run_messages_is_the_synthetic_load_and_scenario_picks_the_implementation():
    load = " ".join(dry_run("run", "MESSAGES=1000").replace("\\\n", " ").split())
    assert "jobgraph load --messages 1000 --work-duration-ms 100 --data-size-kb 10" in load and "--scenario 1" in load
    graph = dry_run("run", "SCENARIO=2")
    assert "jobgraph run --scenario 2 --sequences sequences" in graph
