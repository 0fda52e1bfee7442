"""`sam local invoke` tooling without Docker: event mapping, output parsing, table."""

from __future__ import annotations

import json

import pytest

from jobgraph.sam.template import load_template, nested_locations
from tests.lambda_support import EVENTS, ROOT
from tests.samlocal.saminvoke import (
    APPS,
    EventCase,
    InvokeError,
    InvokeResult,
    case_for,
    format_table,
    function_of,
    parse_sam_output,
)


def test_every_event_file_has_a_case_and_every_case_a_file():
    covered = {event for app in APPS.values() for event in app.cases}
    assert {p.stem for p in EVENTS.glob("*.json")} == covered


@pytest.mark.parametrize(
    ("name", "function"),
    [("start-run.json", "StartRunFunction"), ("start-run-big.json", "StartRunFunction"),
     ("processor-first.json", "ProcessorFunction"), ("events/scheduler-merge.json", "SchedulerFunction"), ("step-task-first.json", "StepTaskFunction")],
)  # fmt: skip
def test_function_comes_from_the_file_name(name, function):
    assert function_of(name) == function


def test_a_file_name_naming_no_function_is_refused():
    with pytest.raises(InvokeError, match="no function"):
        function_of("processorfirst.json")
    with pytest.raises(InvokeError, match="no entry"):
        case_for("events/processor-unknown.json")
    with pytest.raises(InvokeError, match="scenario 3's"):
        case_for("events/processor-first.json", scenario=3)


def test_start_run_is_startrun_in_scenario_1_and_preparerun_in_scenario_3():
    assert [(a.scenario, c.function) for a, c in (case_for("start-run.json"), case_for("start-run.json", 3))] == [
        (1, "StartRunFunction"),
        (3, "PrepareRunFunction"),
    ]
    assert case_for("events/step-task-merge.json")[0].scenario == 3


@pytest.mark.parametrize("scenario", sorted(APPS))
def test_cases_name_template_functions_and_list_prerequisites_before_themselves(scenario):
    app = APPS[scenario]
    # the template's functions and its nested templates' (`sam local invoke ApiFunction` finds those too)
    templates = [ROOT / app.template]
    for path in templates:
        nested = nested_locations(load_template(path))
        templates += [path.parent / location for location in nested.values()]
    functions = {
        name
        for path in templates
        for name, resource in load_template(path)["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    order = list(app.cases)
    for position, case in enumerate(app.cases.values()):
        assert case.function in functions, (scenario, case.event)
        for need in case.needs:
            assert need in app.cases and order.index(need) < position, (case.event, need)
    expected_failures = {c.event for a in APPS.values() for c in a.cases.values() if c.expected_failure}
    assert expected_failures == {"processor-poison"}


def test_sam_output_gives_response_error_and_duration():
    stderr = (
        "START RequestId: abc Version: $LATEST\n"
        "REPORT RequestId: abc\tInit Duration: 0.05 ms\tDuration: 715.21 ms\tBilled Duration: 716 ms\n"
    )
    assert parse_sam_output('noise\n{"batchItemFailures": []}\n', stderr) == ({"batchItemFailures": []}, None, 715.21)
    error = {"errorType": "BatchProcessingError", "errorMessage": "All records failed", "stackTrace": []}
    assert parse_sam_output(json.dumps(error), "") == (None, error, None)
    with pytest.raises(InvokeError, match="no response"):
        parse_sam_output("", "Error: Running AWS SAM projects locally requires a container runtime.")


def test_table_lists_function_event_result_and_durations(tmp_path):
    case = EventCase("processor-poison", lambda o: "", expected_failure="poison")
    table = format_table([InvokeResult(case, "expected failure", "BatchProcessingError", 6.25, 1771.6, tmp_path)])
    header, row = table.splitlines()
    assert header.split()[:4] == ["function", "event", "result", "wall"]
    assert row.split()[:2] == ["ProcessorFunction", "processor-poison.json"]
    assert "expected failure" in row and "6.2" in row and "1772" in row
