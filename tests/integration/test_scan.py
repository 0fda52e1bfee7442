"""`make scan`: cfn-lint with the cfn-lint-serverless rules and checkov find nothing that is not justified.

It scans every template: the three scenarios' and the shared pieces they nest (templates/shared/).
Accepted findings are skipped per resource in the templates, each with its reason (checkov: `comment`;
cfn-lint: a YAML comment naming the rule). The set of skips is pinned here, so a new one is a reviewed
change to this file, not a quiet line in a template.
"""

from __future__ import annotations

import re

import pytest
from cfnlint.api import ManualArgs, lint, lint_file

from jobgraph.sam.template import load_template
from tests.lambda_support import ROOT
from tests.make_support import make

TEMPLATE = ROOT / "template.yaml"
SERVERLESS_RULES = ManualArgs(regions=["us-east-1", "eu-west-1"], append_rules=["cfn_lint_serverless.rules"])

FUNCTION_SKIPS = {"CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"}
LOG_SKIPS = {"CKV_AWS_158"}
SSE_SQS = {"CKV_AWS_27"}
STORAGE_SKIPS = {"ResultsBucket": {"CKV_AWS_18", "CKV_AWS_21"}, "JobsTable": {"CKV_AWS_119"}}
# per template `make scan` covers (the three scenarios and the pieces they nest), per resource
CHECKOV_SKIPS = {
    "template.yaml": {
        **{queue: SSE_SQS for queue in ("IncomingDlq", "IncomingQueue", "OutgoingDlq", "OutgoingQueue")},
        **STORAGE_SKIPS,
        "ProcessorFunction": FUNCTION_SKIPS | {"CKV_AWS_115"},  # the Scheduler and StartRun have reserved concurrency
        "SchedulerFunction": FUNCTION_SKIPS,
        "StartRunFunction": FUNCTION_SKIPS,
        **{group: LOG_SKIPS for group in ("ProcessorLogGroup", "SchedulerLogGroup", "StartRunLogGroup")},
    },
    "templates/scenario-2.yaml": {
        **{queue: SSE_SQS for queue in ("IncomingDlq", "IncomingQueue", "OutgoingDlq", "OutgoingQueue")},
        **STORAGE_SKIPS,
        "WorkerRepository": {"CKV_AWS_51", "CKV_AWS_136"},
        "Cluster": {"CKV_AWS_65"},
        "SchedulerFunction": FUNCTION_SKIPS,
        "StartRunFunction": FUNCTION_SKIPS,
        **{group: LOG_SKIPS for group in ("WorkerLogGroup", "SchedulerLogGroup", "StartRunLogGroup")},
    },
    "templates/scenario-3.yaml": {
        **STORAGE_SKIPS,
        "PrepareRunFunction": FUNCTION_SKIPS | {"CKV_AWS_115"},  # once per run
        "StepTaskFunction": FUNCTION_SKIPS | {"CKV_AWS_115"},  # bounded by the Map's MaxConcurrency
        **{group: LOG_SKIPS for group in ("PrepareRunLogGroup", "StepTaskLogGroup", "StateMachineLogGroup")},
    },
    "templates/shared/status-api.yaml": {
        "ApiFunction": FUNCTION_SKIPS | {"CKV_AWS_115"},  # bounded by the HTTP API's throttling
        **{group: LOG_SKIPS for group in ("StatusApiAccessLogGroup", "ApiLogGroup")},
    },
    "templates/shared/triggers.yaml": {
        "TriggerFunction": FUNCTION_SKIPS | {"CKV_AWS_115"},  # once per run end
        "TriggerLogGroup": LOG_SKIPS,
        **{queue: SSE_SQS for queue in ("TriggerQueue", "TriggerDlq")},
    },
    "templates/shared/dashboard.yaml": {},
}
CFN_LINT_IGNORES = {
    "template.yaml": {
        "IncomingDlq": {"ES6000"},
        "OutgoingDlq": {"ES6000"},
        "ProcessorFunctionIncomingJobs": {"ES1001"},
        "SchedulerFunctionCompletedJobs": {"ES1001"},
        "AlarmEmailSubscription": {"ES7000"},
    },
    "templates/scenario-2.yaml": {
        "IncomingDlq": {"ES6000"},
        "OutgoingDlq": {"ES6000"},
        "SchedulerFunctionCompletedJobs": {"ES1001"},
        "AlarmEmailSubscription": {"ES7000"},
    },
    "templates/scenario-3.yaml": {
        "PrepareRunFunction": {"WS1004"},
        "StepTaskFunction": {"WS1004"},
        "AlarmEmailSubscription": {"ES7000"},
    },
    "templates/shared/status-api.yaml": {"ApiFunction": {"WS1004"}},
    "templates/shared/triggers.yaml": {
        "TriggerDlq": {"ES6000"},
        "TriggerFunctionRunEnds": {"ES1001"},
        "TriggerFunction": {"WS1004"},
    },
    "templates/shared/dashboard.yaml": {},
}
SCANNED = sorted(CHECKOV_SKIPS)


def make_scan(*args: str):
    # The tests run in .venv, so it is current: make must not reinstall it under a running pytest.
    current = [f"--assume-old={stamp.relative_to(ROOT)}" for stamp in (ROOT / ".venv").glob(".installed*")]
    return make(*current, "scan", *args, check=False)


def _resource_text(template: str, name: str) -> str:
    """The lines of one resource of a template, comments included (the loader drops those)."""
    text = (ROOT / template).read_text()
    start = text.index(f"\n  {name}:\n")
    end = re.compile(r"^  \S", re.MULTILINE).search(text, start + len(name) + 5)
    return text[start : end.start() if end else len(text)]


def test_make_scan_covers_every_template():
    """The scenarios' templates and every shared piece they nest: none is deployed unscanned."""
    on_disk = {p.relative_to(ROOT).as_posix() for p in [TEMPLATE, *(ROOT / "templates").rglob("*.yaml")]}
    assert set(SCANNED) == on_disk
    result = make("-n", "scan", check=False)
    assert all(template in result.stdout for template in SCANNED), result.stdout


@pytest.mark.parametrize("template", SCANNED)
def test_serverless_rules_find_nothing_but_the_ignored(template):
    matches = lint_file(ROOT / template, config=SERVERLESS_RULES)
    assert [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in matches] == []


def test_ignoring_a_serverless_rule_is_what_keeps_it_quiet():
    """The ignores are per resource and really needed: dropping one brings its finding back."""
    text = TEMPLATE.read_text().replace("            - ES7000\n", "            - E9999\n", 1)
    assert [m.rule.id for m in lint(text, config=SERVERLESS_RULES)] == ["ES7000"]


@pytest.mark.parametrize("template", SCANNED)
def test_skips_and_ignores_are_the_reviewed_ones_each_with_its_reason(template):
    checkov, ignores = {}, {}
    for name, resource in load_template(ROOT / template)["Resources"].items():
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
                assert f"# {rule} (" in _resource_text(template, name), f"{name}: no comment says why {rule} is ignored"
    assert checkov == CHECKOV_SKIPS[template]
    assert ignores == CFN_LINT_IGNORES[template]


@pytest.mark.scan
def test_make_scan_passes():
    result = make_scan()
    assert result.returncode == 0, result.stdout + result.stderr
    skipped = sum(len(ids) for skips in CHECKOV_SKIPS.values() for ids in skips.values())
    assert re.search(rf"Passed checks: \d+, Failed checks: 0, Skipped checks: {skipped}\b", result.stdout), (
        result.stdout
    )


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
