"""The Makefile's AWS targets with ENV=local (the local cloud), and what `make run` does with ENV given,
checked as dry runs (the e2e tests and `make codebuild-local` run them for real)."""

from __future__ import annotations

import shlex

import pytest

from tests.make_support import dry_run, make, makefile_targets, recipe_lines


def test_the_local_cloud_targets_exist():
    assert {"cloud-up", "cloud-down", "cloud-status", "codebuild-local"} <= makefile_targets()
    assert "jobgraph cloud up" in dry_run("cloud-up") and "jobgraph cloud down" in dry_run("cloud-down")


def test_env_local_is_accepted_and_needs_a_running_local_cloud(tmp_path):
    result = make("deploy", "ENV=local", f"CLOUD_DIR={tmp_path}", check=False)  # nothing answers in tmp_path
    assert result.returncode != 0
    assert "ENV=local: the local cloud in" in result.stderr and "make cloud-up" in result.stderr


def test_deploy_on_local_uses_the_local_environment_with_stage_dev():
    (command,) = [c for c in recipe_lines(dry_run("deploy", "ENV=local", "TEST_RUN_ID=x")) if "sam deploy" in c]
    deploy = shlex.split(command[command.index("sam deploy") :])
    assert deploy[deploy.index("--config-env") + 1] == "local"
    assert "Stage=dev" in deploy and "Environment=local" in deploy  # the templates' Stage is dev|prod


@pytest.mark.parametrize(("env", "prompts"), [("local", False), ("dev", False), ("prod", True)])
def test_destroy_asks_only_for_prod(env, prompts):
    (delete,) = [c for c in recipe_lines(dry_run("destroy", f"ENV={env}")) if "sam delete" in c]
    assert ("--no-prompts" not in delete) is prompts


def test_deploy_sfn_reads_samconfig_although_its_template_is_in_the_build_folder():
    (deploy,) = [c for c in recipe_lines(dry_run("deploy-sfn", "ENV=local")) if "sam deploy" in c]
    words = shlex.split(deploy[deploy.index("sam deploy") :])
    assert words[words.index("--config-file") + 1].endswith("/samconfig.toml")
    assert words[words.index("--config-env") + 1] == "local" and "Stage=dev" in words


def test_deploy_ecs_on_local_builds_and_pushes_no_image():
    out = recipe_lines(dry_run("deploy-ecs", "ENV=local", "IMAGE_TAG=t"))
    assert any("sam deploy" in c and "--stack-name scenario-2-local" in c for c in out)
    assert not [c for c in out if c.startswith("docker ") or "push-image" in c]
    assert [c for c in recipe_lines(dry_run("deploy-ecs", "ENV=dev", "IMAGE_TAG=t")) if "push-image" in c]


def test_run_with_env_goes_to_the_deployed_stack_and_without_it_stays_local():
    load = " ".join(recipe_lines(dry_run("run", "MESSAGES=200", "ENV=local")))
    assert "jobgraph load --messages 200" in load and "--stack scenario-1-local" in load
    graph = " ".join(recipe_lines(dry_run("run", "SCENARIO=3", "ENV=dev")))
    assert "jobgraph run --scenario 3 --stack scenario-3-dev" in graph
    assert "--stack" not in " ".join(recipe_lines(dry_run("run", "MESSAGES=200")))


def test_run_ecs_sends_messages_when_asked():
    out = recipe_lines(dry_run("run-ecs", "ENV=local", "MESSAGES=50"))
    assert out[-2].endswith("status --require-running")
    assert "jobgraph load --messages 50" in out[-1] and "--scenario 2 --stack scenario-2-local" in out[-1]
