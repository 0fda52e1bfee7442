"""`make codebuild-local` runs a buildspec as CodeBuild does: phase order, failures, variables, artifacts, reports."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("codebuild_local", ROOT / "scripts" / "codebuild_local.py")
codebuild = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(codebuild)


def run_build(tmp_path: Path, phases: dict, **extra) -> tuple[int, dict, str]:
    spec = {"version": 0.2, "env": {"shell": "bash", "variables": {"GREETING": "hi"}}, "phases": phases, **extra}
    path = tmp_path / "buildspec.yml"
    path.write_text(yaml.safe_dump(spec))
    code = codebuild.build(path, {"ENV": "test"}, {}, source=tmp_path)
    (build_dir,) = [p for p in (tmp_path / ".codebuild").iterdir() if p.is_dir()]
    summary = json.loads((build_dir / "build.json").read_text())
    log = (tmp_path / "trace").read_text() if (tmp_path / "trace").exists() else ""
    return code, summary, log


def test_phases_run_in_order_with_codebuild_variables_and_one_shell(tmp_path):
    code, summary, log = run_build(
        tmp_path,
        {
            "install": {"commands": ["echo install >> trace", "export CARRIED=over", "mkdir -p sub && cd sub"]},
            "pre_build": {"commands": ['echo "pre_build $CARRIED $(basename $PWD)" >> ../trace']},
            "build": {"commands": ['echo "build $GREETING $ENV $CODEBUILD_BUILD_SUCCEEDING" >> ../trace']},
            "post_build": {
                "commands": [
                    'echo "post_build $CODEBUILD_BUILD_NUMBER $CODEBUILD_SRC_DIR ${CODEBUILD_BUILD_ID%%:*}" >> ../trace'
                ]
            },
        },
    )
    assert code == 0 and summary["succeeded"] is True
    assert log.splitlines() == [
        "install",
        "pre_build over sub",  # exported variables and the directory carry over (buildspec 0.2)
        "build hi test 1",  # env.variables, then the overrides
        f"post_build 1 {tmp_path} jobgraph-local",
    ]
    assert summary["phases"] == dict.fromkeys(("install", "pre_build", "build", "post_build"), "SUCCEEDED")


def test_a_failing_build_command_stops_its_phase_but_post_build_runs_and_knows(tmp_path):
    code, summary, log = run_build(
        tmp_path,
        {
            "build": {
                "commands": ["echo one >> trace", "false", "echo never >> trace"],
                "finally": ["echo finally >> trace"],
            },
            "post_build": {"commands": ['echo "post $CODEBUILD_BUILD_SUCCEEDING" >> trace']},
        },
    )
    assert code == 1
    assert log.splitlines() == ["one", "finally", "post 0"]
    assert summary["phases"] == {"build": "FAILED", "post_build": "SUCCEEDED"} and summary["succeeded"] is False


def test_a_failing_install_ends_the_build_unless_it_may_continue(tmp_path):
    phases = {"install": {"commands": ["exit 3"]}, "build": {"commands": ["echo build >> trace"]}}
    code, summary, log = run_build(tmp_path, phases)
    assert code == 1 and log == ""
    assert summary["phases"] == {"install": "FAILED", "build": "SKIPPED"}
    continuing = {
        "install": {"on-failure": "CONTINUE", "commands": ["false"]},
        "build": {"commands": ["echo build >> trace"]},
    }
    again = tmp_path / "again"
    again.mkdir()
    code, summary, log = run_build(again, continuing)
    assert log.splitlines() == ["build"] and summary["phases"]["build"] == "SUCCEEDED"
    assert code == 1  # the build is still failed


def test_artifacts_and_reports_are_gathered_even_after_a_failure(tmp_path):
    junit = '<testsuite tests="3" failures="1" errors="0" skipped="1"><testcase name="a"/></testsuite>'
    code, summary, _log = run_build(
        tmp_path,
        {
            "build": {
                "commands": [
                    "mkdir -p out/deep reports && echo a > out/a.txt && echo b > out/deep/b.txt && echo x > out/x.log",
                    f"echo '{junit}' > reports/junit.xml",
                    "false",
                ]
            }
        },
        artifacts={"base-directory": "out", "files": ["**/*"], "exclude-paths": ["*.log"], "discard-paths": "yes"},
        reports={"tests": {"base-directory": "reports", "files": ["junit*.xml"], "file-format": "JUNITXML"}},
    )
    assert code == 1
    with zipfile.ZipFile(summary["artifacts"]) as archive:
        assert sorted(archive.namelist()) == ["a.txt", "b.txt"]
    assert summary["reports"] == {"tests": {"tests": 3, "failures": 1, "errors": 0, "skipped": 1}}


@pytest.mark.parametrize(
    "section", [{"version": 0.1, "phases": {}}, {"version": 0.2, "env": {"parameter-store": {"A": "/a"}}}]
)
def test_what_cannot_run_locally_is_refused(tmp_path, section):
    path = tmp_path / "buildspec.yml"
    path.write_text(yaml.safe_dump(section))
    with pytest.raises(codebuild.BuildspecError):
        codebuild.load_buildspec(path)


def test_the_projects_buildspec_deploys_and_runs_on_the_environment_it_is_given():
    spec = codebuild.load_buildspec(ROOT / "buildspec.yml")
    post_build = [" ".join(str(c).split()) for c in spec["phases"]["post_build"]["commands"]]
    deploy = next(c for c in post_build if "sam deploy" in c)
    assert '"Stage=${STAGE}"' in deploy and '--config-env "${ENV:-dev}"' in deploy
    assert post_build.index(deploy) < next(i for i, c in enumerate(post_build) if c.startswith("make run-aws"))
    assert spec["artifacts"]["files"]
