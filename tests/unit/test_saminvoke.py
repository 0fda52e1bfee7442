"""`sam local invoke` tooling without Docker: event mapping, output parsing, table."""

from __future__ import annotations

import json

import pytest

from jobgraph.localcloud.saminvoke import (
    CASES,
    EventCase,
    InvokeError,
    InvokeResult,
    case_for,
    format_table,
    function_of,
    parse_sam_output,
)
from tests.lambda_support import EVENTS, FUNCTIONS


def test_every_event_file_has_a_case_and_every_case_a_file():
    assert {p.stem for p in EVENTS.glob("*.json")} == set(CASES)


@pytest.mark.parametrize(
    ("name", "function"),
    [("start-run.json", "StartRunFunction"), ("start-run-big.json", "StartRunFunction"),
     ("processor-first.json", "ProcessorFunction"), ("events/scheduler-merge.json", "SchedulerFunction")],
)  # fmt: skip
def test_function_comes_from_the_file_name(name, function):
    assert function_of(name) == function


def test_a_file_name_naming_no_function_is_refused():
    with pytest.raises(InvokeError, match="no function"):
        function_of("processorfirst.json")
    with pytest.raises(InvokeError, match="no entry"):
        case_for("events/processor-unknown.json")


def test_cases_name_template_functions_and_list_prerequisites_before_themselves():
    order = list(CASES)
    for position, case in enumerate(CASES.values()):
        assert case.function in FUNCTIONS.values()
        for need in case.needs:
            assert need in CASES and order.index(need) < position, (case.event, need)
    expected_failures = {c.event for c in CASES.values() if c.expected_failure}
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
