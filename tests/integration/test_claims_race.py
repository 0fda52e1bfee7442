"""Exactly-once, head-on: many concurrent claimants and duplicate reports straight at the table.

No queue in between (so no FIFO deduplication to hide a wrong condition): threads call the table
adapter's public methods against the local cloud's moto server — which, like DynamoDB, applies each
request atomically — released together by a barrier, with every report duplicated several times.
"""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from jobgraph.adapters.dynamodb import JobsTable
from jobgraph.adapters.memory import MemoryJobsTable, MemoryTable
from jobgraph.core.errors import RunNotFoundError
from jobgraph.localcloud.server import LocalEndpoint
from tests.integration.conftest import create_table

THREADS = 12
SEQUENCES = 40
DUPLICATES = 4


@pytest.fixture(scope="module")
def endpoint():
    with LocalEndpoint() as local:
        create_table(local.client("dynamodb"), "race-jobs")
        yield local


@pytest.fixture(params=["dynamodb", "memory"])
def tables(request):
    """One adapter per thread, each with its own client (as separate Lambda instances have); or the in-memory
    fake (adapters/memory) shared by every thread, held to the same exactly-once rules under the same race."""
    if request.param == "memory":
        return [MemoryJobsTable(MemoryTable("race-jobs"))] * THREADS
    endpoint = request.getfixturevalue("endpoint")
    return [
        JobsTable("race-jobs", client=endpoint._session.client("dynamodb", endpoint_url=endpoint.url))
        for _ in range(THREADS)
    ]


def race(tables: list[JobsTable], calls: list) -> list:
    """Run ``calls`` (functions of a table) on THREADS threads released together; results in call order."""
    barrier = threading.Barrier(THREADS)
    chunks = [calls[i::THREADS] for i in range(THREADS)]

    def worker(index: int) -> list[tuple[int, object]]:
        barrier.wait()
        positions = range(index, len(calls), THREADS)
        return [(position, call(tables[index])) for position, call in zip(positions, chunks[index], strict=True)]

    with ThreadPoolExecutor(THREADS) as pool:
        done = [pair for part in pool.map(worker, range(THREADS)) for pair in part]
    return [result for _, result in sorted(done, key=lambda pair: pair[0])]


def new_run(table: JobsTable, run_id: str, sequences: int = SEQUENCES) -> None:
    table.create_run(run_id, "t", sequences=sequences, jobs_total=sequences * 3 + 1, scenarios=10, seed=1)


def agg(run_id: str, sequence_id: int) -> str:
    return f"{run_id}-s{sequence_id}-agg"


def test_every_sequence_is_counted_once_under_concurrent_duplicates(tables):
    new_run(tables[0], "count")
    reports = [s for s in range(SEQUENCES) for _ in range(DUPLICATES)]
    random.Random(1).shuffle(reports)
    results = race(tables, [lambda t, s=s: (s, t.count_down_sequence("count", s)) for s in reports])
    counted = [s for s, first in results if first]
    assert sorted(counted) == list(range(SEQUENCES))  # each sequence counted by exactly one of its reports
    run = tables[0].get_run("count")
    assert run["sequences_remaining"] == 0
    assert sorted(int(s) for s in run["counted_sequences"]) == list(range(SEQUENCES))


def test_exactly_one_merge_claimant_while_sequences_are_still_being_counted(tables):
    """Each report does what the Scheduler does: count the sequence, then try to claim the MERGE."""
    new_run(tables[0], "merge")
    reports = [s for s in range(SEQUENCES) for _ in range(DUPLICATES)]
    random.Random(2).shuffle(reports)

    def report(table: JobsTable, sequence_id: int):
        table.count_down_sequence("merge", sequence_id)
        return agg("merge", sequence_id), table.claim_merge("merge", agg("merge", sequence_id))

    results = race(tables, [lambda t, s=s: report(t, s) for s in reports])
    winners = {claimant for claimant, won in results if won}
    assert len(winners) == 1  # one AGGREGATION completion claims the MERGE
    assert tables[0].get_run("merge")["merge_claimed_by"] == winners.pop()
    assert tables[0].get_run("merge")["sequences_remaining"] == 0


def test_many_claimants_after_the_countdown_one_wins(tables):
    new_run(tables[0], "claim", sequences=3)
    for sequence_id in range(3):
        assert tables[0].count_down_sequence("claim", sequence_id)
    claimants = [f"claim-s{i % 3}-agg" for i in range(60)]  # the three completions, each redelivered 20 times
    results = race(tables, [lambda t, c=c: (c, t.claim_merge("claim", c)) for c in claimants])
    winners = {c for c, won in results if won}
    assert len(winners) == 1
    # the winner's redeliveries all win (it may re-send the MERGE), the others' none
    (winner,) = winners
    assert [won for c, won in results if c == winner] == [True] * 20


def test_no_merge_before_the_last_sequence_and_a_re_claim_only_by_the_claimant(tables):
    table = tables[0]
    new_run(table, "reclaim", sequences=2)
    assert table.count_down_sequence("reclaim", 0)
    assert not table.claim_merge("reclaim", agg("reclaim", 0))  # one sequence still running
    assert table.count_down_sequence("reclaim", 1)
    assert not table.count_down_sequence("reclaim", 1)  # a duplicate of the last report
    assert table.claim_merge("reclaim", agg("reclaim", 1))
    # the claimant crashed before sending the MERGE: its redelivery may claim again, nobody else may
    assert table.claim_merge("reclaim", agg("reclaim", 1))
    assert not table.claim_merge("reclaim", agg("reclaim", 0))
    assert not table.claim_merge("reclaim", "some-other-job")
    assert table.get_run("reclaim")["merge_claimed_by"] == agg("reclaim", 1)


def test_counting_a_sequence_of_an_unknown_run_is_an_error(tables):
    with pytest.raises(RunNotFoundError, match="'nope': cannot count sequence 3"):
        tables[0].count_down_sequence("nope", 3)
    assert not tables[0].claim_merge("nope", "x")


# --- downstream trigger claims ----------------------------------------------------------------------------
# (racing takers, fencing and the targets' side are in test_trigger_claims.py; here: every status's answer)
SK, T0, STALE_S = "FIRED#success#notify", 1_800_000_000.0, 90.0


def test_a_fresh_trigger_claim_has_one_winner_among_concurrent_callers(tables):
    claims = race(tables, [lambda t, i=i: t.claim_trigger("tr", SK, f"owner-{i}", T0, STALE_S) for i in range(36)])
    assert [c.outcome for c in claims].count("fresh") == 1
    assert {c.outcome for c in claims} == {"fresh", "busy"}
    (claim,) = tables[0].triggers_of_run("tr")
    assert claim["status"] == "CLAIMED" and claim["owner"] in {f"owner-{i}" for i in range(36)}


def test_each_status_answers_a_new_claim(tables):
    table = tables[0]
    assert table.claim_trigger("st", SK, "a", T0, STALE_S).outcome == "fresh"
    assert table.claim_trigger("st", SK, "b", T0 + STALE_S - 1, STALE_S).outcome == "busy"  # its holder may live
    assert table.claim_trigger("st", SK, "b", T0 + STALE_S + 1, STALE_S).outcome == "takeover"  # it is dead
    assert not table.release_trigger("st", SK, "a", "late")  # fenced: "a" lost its claim
    assert table.release_trigger("st", SK, "b", "target refused")  # RELEASED: the retry claims afresh
    again = table.claim_trigger("st", SK, "c", T0 + 200, STALE_S)
    assert again.outcome == "fresh" and again.item["owner"] == "c" and again.item["attempts"] == 3
    assert table.trigger_fired("st", SK, "c", "message-id-1")
    assert table.claim_trigger("st", SK, "d", T0 + 9999, STALE_S).outcome == "fired"  # never again
    other = "FIRED#failure#page"  # another trigger of the same run is its own claim
    assert table.claim_trigger("st", other, "e", T0, STALE_S).outcome == "fresh"
    assert table.trigger_in_doubt("st", other, "e", "the send may have happened")
    assert table.claim_trigger("st", other, "f", T0 + 9999, STALE_S).outcome == "in_doubt"
    statuses = {c["sk"]: (c["status"], c.get("receipt")) for c in table.triggers_of_run("st")}
    assert statuses == {SK: ("FIRED", "message-id-1"), other: ("IN_DOUBT", None)}


# --- the job record: one claim, one completion per job (services/idempotency.run_claimed) -------------


def job_claims_for(run_id: str, jobs: int):
    """Jobs of a run as claim_job takes them (what it reads: run_id, job_id, exec_type)."""
    from jobgraph.core.generator import generate_sequences
    from jobgraph.core.graph import route_job
    from jobgraph.core.run import RunSpec

    spec = RunSpec(run_id, "t", 10, 1)
    return [route_job(spec, sequence, 0) for sequence in generate_sequences(jobs, seed=6)]


def test_each_job_is_claimed_once_and_completed_once_under_concurrent_duplicates(tables):
    """Every job delivered DUPLICATES times (different messages: different claimants), all at once; each
    delivery that wins a claim reports its completion DUPLICATES times, as redeliveries would."""
    from jobgraph.core.models import CompletedJob, JobStatus

    jobs = job_claims_for("jobclaims", SEQUENCES)
    deliveries = [(job, f"message-{job.job_id}-{copy}") for job in jobs for copy in range(DUPLICATES)]
    random.Random(3).shuffle(deliveries)
    claims = race(
        tables, [lambda t, j=j, m=m: (j.job_id, m, t.claim_job(j, m, lease_ms=60_000)) for j, m in deliveries]
    )
    winners = {}
    for job_id, message, claim in claims:
        if claim.granted:
            assert job_id not in winners, f"{job_id} claimed twice"
            winners[job_id] = message
        else:  # refused by the winner's live claim
            assert claim.record["status"] == "PROCESSING" and claim.record["claimed_by"] != message
    assert sorted(winners) == sorted(job.job_id for job in jobs)

    def completion(job, output: str) -> CompletedJob:
        return CompletedJob(
            job_id=job.job_id, status=JobStatus.COMPLETED, output_key=output, processing_time_ms=1.0,
            test_run_id="t", run_id=job.run_id, correlation_id=job.correlation_id, exec_type=job.exec_type,
        )  # fmt: skip

    reports = [(job, f"out-{copy}") for job in jobs for copy in range(DUPLICATES)]
    random.Random(4).shuffle(reports)
    recorded = race(tables, [lambda t, j=j, o=o: (j.job_id, o, t.record_job(completion(j, o))) for j, o in reports])
    firsts = {}
    for job_id, output, refused in recorded:
        if refused is None:
            assert job_id not in firsts, f"{job_id} completed twice"
            firsts[job_id] = output
        else:  # the loser gets the one stored completion back
            assert refused["status"] == "COMPLETED"
    assert sorted(firsts) == sorted(winners)
    for job in jobs:
        item = tables[0].get_job(job.run_id, job.job_id)
        assert item is not None and item["output_key"] == firsts[job.job_id] and item["reports"] == 1
        # and a late duplicate's claim is refused with that completion
        refused = tables[1].claim_job(job, "late-message", lease_ms=60_000)
        assert not refused.granted
        assert refused.record["status"] == "COMPLETED" and refused.record["output_key"] == firsts[job.job_id]
