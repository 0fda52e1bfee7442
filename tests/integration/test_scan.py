"""`make scan`: cfn-lint with the cfn-lint-serverless rules and checkov find nothing that is not justified.

Accepted findings are skipped per resource in template.yaml, each with its reason (checkov: `comment`;
cfn-lint: a YAML comment naming the rule). The set of skips is pinned here, so a new one is a reviewed
change to this file, not a quiet line in the template.
"""

from __future__ import annotations

import re

import pytest
from cfnlint.api import ManualArgs, lint, lint_file

from jobgraph.sam.template import load_template
from tests.lambda_support import ROOT
from tests.unit.test_buildspec_and_makefile import make

TEMPLATE = ROOT / "template.yaml"
SERVERLESS_RULES = ManualArgs(regions=["us-east-1", "eu-west-1"], append_rules=["cfn_lint_serverless.rules"])

FUNCTION_SKIPS = {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"}
CHECKOV_SKIPS = {
    **{queue: {"CKV_AWS_27"} for queue in ("IncomingDlq", "IncomingQueue", "OutgoingDlq", "OutgoingQueue")},
    "ResultsBucket": {"CKV_AWS_18", "CKV_AWS_21"},
    "JobsTable": {"CKV_AWS_28", "CKV_AWS_119"},
    "ProcessorFunction": FUNCTION_SKIPS | {"CKV_AWS_115"},  # the Scheduler and StartRun have reserved concurrency
    "SchedulerFunction": FUNCTION_SKIPS,
    "StartRunFunction": FUNCTION_SKIPS,
    **{group: {"CKV_AWS_158"} for group in ("ProcessorLogGroup", "SchedulerLogGroup", "StartRunLogGroup")},
    # the status API and the downstream triggers (issue 11)
    "ApiFunction": FUNCTION_SKIPS | {"CKV_AWS_115"},  # bounded by the HTTP API's throttling
    "TriggerFunction": FUNCTION_SKIPS | {"CKV_AWS_115"},  # once per run end
    **{group: {"CKV_AWS_158"} for group in ("StatusApiAccessLogGroup", "ApiLogGroup", "TriggerLogGroup")},
    **{queue: {"CKV_AWS_27"} for queue in ("TriggerQueue", "TriggerDlq")},
}
CFN_LINT_IGNORES = {
    "IncomingDlq": {"ES6000"},
    "OutgoingDlq": {"ES6000"},
    "ProcessorFunctionIncomingJobs": {"ES1001"},
    "SchedulerFunctionCompletedJobs": {"ES1001"},
    "AlarmEmailSubscription": {"ES7000"},
    "TriggerDlq": {"ES6000"},
    "TriggerFunctionRunEnds": {"ES1001"},
    "ApiFunction": {"WS1004"},
    "TriggerFunction": {"WS1004"},
}


def make_scan(*args: str):
    # The tests run in .venv, so it is current: make must not reinstall it under a running pytest.
    current = [f"--assume-old={stamp.relative_to(ROOT)}" for stamp in (ROOT / ".venv").glob(".installed*")]
    return make(*current, "scan", *args, check=False)


def _resource_text(name: str) -> str:
    """The lines of one resource in template.yaml, comments included (the loader drops those)."""
    text = TEMPLATE.read_text()
    start = text.index(f"\n  {name}:\n")
    end = re.compile(r"^  \S", re.MULTILINE).search(text, start + len(name) + 5)
    return text[start : end.start() if end else len(text)]


def test_serverless_rules_find_nothing_but_the_ignored():
    matches = lint_file(TEMPLATE, config=SERVERLESS_RULES)
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_ignoring_a_serverless_rule_is_what_keeps_it_quiet():
    """The ignores are per resource and really needed: dropping one brings its finding back."""
    text = TEMPLATE.read_text().replace("            - ES7000\n", "            - E9999\n", 1)
    assert [m.rule.id for m in lint(text, config=SERVERLESS_RULES)] == ["ES7000"]


def test_skips_and_ignores_are_the_reviewed_ones_each_with_its_reason():
    checkov, ignores = {}, {}
    for name, resource in load_template(TEMPLATE)["Resources"].items():
        metadata = resource.get("Metadata", {})
        skips = metadata.get("checkov", {}).get("skip", [])
        if skips:
            checkov[name] = {skip["id"] for skip in skips}
            for skip in skips:
                assert len(skip.get("comment", "").split()) >= 10, (name, skip["id"])
        ignored = metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        if ignored:
            ignores[name] = set(ignored)
            for rule in ignored:
                assert f"# {rule} (" in _resource_text(name), f"{name}: no comment says why {rule} is ignored"
    assert checkov == CHECKOV_SKIPS
    assert ignores == CFN_LINT_IGNORES


@pytest.mark.scan
def test_make_scan_passes():
    result = make_scan()
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Passed checks: \d+, Failed checks: 0, Skipped checks: 34", result.stdout), result.stdout


@pytest.mark.scan
def test_make_scan_fails_on_any_finding_and_runs_both_scanners(tmp_path):
    text = TEMPLATE.read_text()
    # one checkov skip and one cfn-lint ignore less
    text = re.sub(r"\n          - id: CKV_AWS_21\n(            .*\n)+", "\n", text, count=1)
    text = text.replace("            - ES7000\n", "            - E9999\n", 1)
    broken = tmp_path / "template.yaml"
    broken.write_text(text)
    result = make_scan(f"SCAN_TEMPLATE={broken}")
    assert result.returncode != 0
    assert "ES7000" in result.stdout
    assert re.search(r'CKV_AWS_21: "[^"]*"\s+FAILED for resource: AWS::S3::Bucket\.ResultsBucket', result.stdout)
