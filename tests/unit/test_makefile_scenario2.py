"""The Makefile's scenario-2 targets (deploy-ecs, scale-up/-down, ecs-status, run-ecs, destroy-ecs, run SCENARIO=2),
checked as dry runs: they need AWS credentials and Docker to really run."""

from __future__ import annotations

import shlex

import pytest

from tests.make_support import TAGS, dry_run, make, makefile_targets, recipe_lines


def test_the_seed_targets_exist():
    assert {"deploy-ecs", "scale-up", "scale-down", "ecs-status", "run-ecs", "destroy-ecs"} <= makefile_targets()


def test_deploy_ecs_builds_deploys_with_every_parameter_and_tag_then_pushes_the_image():
    out = recipe_lines(dry_run("deploy-ecs", "ENV=prod", "TEST_RUN_ID=fargate-1", "IMAGE_TAG=abc123",
                           "PARAMS=WorkerCpu=512 WorkerMemory=1024"))  # fmt: skip
    build = next(i for i, c in enumerate(out) if "sam build -t templates/scenario-2.yaml" in c)
    image = next(i for i, c in enumerate(out) if c.startswith("docker build"))
    deploy = next(i for i, c in enumerate(out) if "sam deploy" in c)
    push = next(i for i, c in enumerate(out) if "push-image" in c)
    assert build < deploy and image < deploy < push
    assert "--build-dir .aws-sam/build-scenario-2" in out[build]
    words = shlex.split(out[deploy][out[deploy].index("sam deploy") :])
    assert words[words.index("--stack-name") + 1] == "scenario-2-prod"
    assert words[words.index("--template-file") + 1] == ".aws-sam/build-scenario-2/template.yaml"
    assert "--confirm-changeset" in words  # prod: review the change set
    overrides = words[words.index("--parameter-overrides") + 1 : words.index("--tags")]
    assert overrides == [
        "Stage=prod", "TestRunId=fargate-1", "ProjectPrefix=jobgraph", "Architecture=x86_64", "ImageTag=abc123",
        "WorkerCpu=512", "WorkerMemory=1024",
    ]  # fmt: skip
    assert words[words.index("--tags") + 1 :] == [
        "PerfTestRun=fargate-1", "Purpose=PerformanceTesting", "Environment=prod", "Project=jobgraph",
    ]  # fmt: skip
    assert set(TAGS) == {t.split("=")[0] for t in words[words.index("--tags") + 1 :]}
    assert out[push].endswith("--stack scenario-2-prod --region eu-west-1 push-image jobgraph-worker:abc123 abc123")
    assert "--build-arg BASE_IMAGE=python:3.13-slim -t jobgraph-worker:abc123" in out[image]


def test_the_worker_image_can_be_built_from_a_local_base_image():
    out = dry_run("worker-image", "WORKER_BASE_IMAGE=jobgraph/lambda-python3.13:local", "IMAGE_TAG=t")
    assert "docker build --build-arg BASE_IMAGE=jobgraph/lambda-python3.13:local -t jobgraph-worker:t" in out
    assert "--only-binary=:all:" in out and "-r docker/worker-requirements.txt" in out


@pytest.mark.parametrize(
    ("target", "args", "expected"),
    [
        ("scale-up", ["DESIRED_COUNT=4"], "scale 4 --wait"),
        ("scale-down", [], "scale 0 --wait"),
        ("ecs-status", [], "status"),
    ],
)
def test_scaling_targets_drive_the_stacks_service(target, args, expected):
    out = recipe_lines(dry_run(target, "ENV=dev", *args))
    assert out[-1].endswith(f"scripts/ecs_service.py --stack scenario-2-dev --region eu-west-1 {expected}")


def test_run_ecs_checks_for_running_workers_then_runs_scenario_2_on_the_stack():
    out = recipe_lines(dry_run("run-ecs", "ENV=dev", "TEST_RUN_ID=t1", "RUN_ID=r1"))
    assert out[-2].endswith("status --require-running")
    run = shlex.split(out[-1])
    assert run[:3] == [".venv/bin/jobgraph", "run", "--scenario"] and run[3] == "2"
    assert run[run.index("--stack") + 1] == "scenario-2-dev" and run[run.index("--test-run-id") + 1] == "t1"
    assert run[run.index("--run-id") + 1] == "r1"


def test_destroy_ecs_scales_down_empties_the_bucket_then_deletes_the_stack():
    out = recipe_lines(dry_run("destroy-ecs", "ENV=dev"))
    scale = next(i for i, c in enumerate(out) if c.endswith("scale 0 --wait"))
    empty = next(i for i, c in enumerate(out) if "empty_results_bucket.py --stack-name scenario-2-dev" in c)
    delete = next(i for i, c in enumerate(out) if "sam delete --stack-name scenario-2-dev" in c)
    assert scale < empty < delete


def test_make_run_passes_the_scenario():
    assert "jobgraph run --scenario 2 " in dry_run("run", "SCENARIO=2")
    assert "jobgraph run --scenario 1 " in dry_run("run")


@pytest.mark.parametrize("target", ["deploy-ecs", "scale-up"])
def test_scenario_2_targets_refuse_an_unknown_environment(target):
    result = make(target, "ENV=qa", check=False)
    assert result.returncode != 0 and "ENV must be dev, prod or local" in result.stderr
