"""`jobgraph sweep`: the settings it tries, how it redeploys a stack for each, and its errors."""

from __future__ import annotations

import subprocess

import pytest

from jobgraph.bench.sweep import SweepError, SweepPoint, deploy_command, redeploy, sweep, sweep_points


def test_points_are_every_memory_for_every_architecture():
    points = sweep_points("256, 1024", "x86_64,arm64")
    assert points == [SweepPoint(256, "x86_64"), SweepPoint(1024, "x86_64"), SweepPoint(256, "arm64"),
                      SweepPoint(1024, "arm64")]  # fmt: skip
    assert points[2].run_id("sw") == "sw-256mb-arm64"
    assert points[0].parameters() == {"ProcessorMemorySize": "256", "Architecture": "x86_64"}


@pytest.mark.parametrize(
    ("memory", "architecture", "message"),
    [("256,big", "x86_64", "comma-separated list of MB"), ("64", "x86_64", r"128\.\.10240 MB \(bad: \[64\]\)"),
     ("256", "sparc", "choose from x86_64, arm64")],
)  # fmt: skip
def test_bad_settings_are_clear_errors(memory, architecture, message):
    with pytest.raises(SweepError, match=message):
        sweep_points(memory, architecture)


def test_on_aws_each_setting_is_deployed_before_it_runs():
    calls = []

    def runner(command):
        calls.append(("deploy", command))
        return subprocess.CompletedProcess(command, 0)

    folders = sweep(
        sweep_points("512,2048", "arm64"),
        "aws",
        run_one=lambda point, run_id: calls.append(("run", run_id)) or run_id,
        before_each=lambda point, run_id: redeploy("dev", point, run_id, runner=runner),
    )
    assert folders == ["aws-512mb-arm64", "aws-2048mb-arm64"]
    assert calls == [
        ("deploy", deploy_command("dev", SweepPoint(512, "arm64"), "aws-512mb-arm64")),
        ("run", "aws-512mb-arm64"),
        ("deploy", deploy_command("dev", SweepPoint(2048, "arm64"), "aws-2048mb-arm64")),
        ("run", "aws-2048mb-arm64"),
    ]
    assert calls[0][1] == ["make", "deploy", "ENV=dev", "TEST_RUN_ID=aws-512mb-arm64", "LAYER_ARCH=arm64",
                           "PARAMS=ProcessorMemorySize=512"]  # fmt: skip


def test_a_failed_redeploy_stops_the_sweep_naming_the_setting():
    def failing(command):
        return subprocess.CompletedProcess(command, 2)

    with pytest.raises(SweepError, match="redeploy for 1024 MB x86_64 failed: make deploy ENV=prod"):
        redeploy("prod", SweepPoint(1024, "x86_64"), "r", runner=failing)
