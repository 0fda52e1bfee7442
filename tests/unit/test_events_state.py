"""The events/ payloads that carry a route state carry the exact state their predecessor computes.

route r's state rides in route r's completion (scheduler-<stage>.json) and in the next job
(processor-<next>.json), as the Processor and the Scheduler hand it on. The oracle is the delay model run
over start-run.json's sequence, route by route. To regenerate the files after a model change:

    .venv/bin/python -m tests.unit.test_events_state --write
"""

from __future__ import annotations

import hashlib
import json
import sys

from jobgraph.core import parquet_codec
from jobgraph.core.delay_model import simulate_route
from jobgraph.core.models import Sequence
from tests.lambda_support import EVENTS, event

# the file whose message carries route r's state, for each r of the events' three-route sequence
CARRIERS = {
    0: ("scheduler-first", "processor-intermediate"),
    1: ("scheduler-intermediate", "processor-last"),
    2: ("scheduler-last", "processor-aggregation"),
}


def route_states() -> dict[int, dict]:
    request = event("start-run")
    sequence = Sequence.model_validate(request["sequences"][0])
    states, previous = {}, None
    for index, route in enumerate(sequence.routes):
        result = simulate_route(
            route,
            route_index=index,
            sequence_id=sequence.sequence_id,
            seed=request["seed"],
            scenarios=request["scenarios"],
            previous=previous,
        )
        previous = result.state
        states[index] = parquet_codec.carry_state(result.state).model_dump(mode="json")
    return states


def with_state(name: str, state: dict) -> dict:
    payload = event(name)
    record = payload["Records"][0]
    body = json.loads(record["body"])
    body["state"] = state
    record["body"] = json.dumps(body, separators=(",", ":"))
    record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()
    return payload


def test_each_carrier_holds_the_state_its_predecessor_computes():
    for index, state in route_states().items():
        for name in CARRIERS[index]:
            body = json.loads(event(name)["Records"][0]["body"])
            assert body.get("state") == state, f"{name}.json: regenerate (module docstring)"


def test_md5_of_body_matches_the_body():
    for names in CARRIERS.values():
        for name in names:
            record = event(name)["Records"][0]
            assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest(), name


if __name__ == "__main__" and "--write" in sys.argv:
    for index, state in route_states().items():
        for name in CARRIERS[index]:
            (EVENTS / f"{name}.json").write_text(json.dumps(with_state(name, state), indent=2) + "\n")
