"""TriggerStore: a trigger's claim (fresh, busy, taken over, finished by its owner only) and a run's approval."""

from __future__ import annotations

from jobgraph.core.ports import TriggerStore

SK = "FIRED#on_success#notify"


def test_a_trigger_is_claimed_once_and_only_its_owner_finishes_it(table: TriggerStore) -> None:
    fresh = table.claim_trigger("r", SK, "a", now=100.0, stale_s=90, trigger="notify", target="sqs")
    assert fresh.outcome == "fresh" and fresh.item["owner"] == "a" and fresh.item["attempts"] == 1
    assert (fresh.item["trigger"], fresh.item["target"], fresh.item["run_id"]) == ("notify", "sqs", "r")
    busy = table.claim_trigger("r", SK, "b", now=150.0, stale_s=90)
    assert busy.outcome == "busy" and busy.item["owner"] == "a"
    assert table.trigger_fired("r", SK, "b", "receipt") is False  # not b's claim
    assert table.trigger_fired("r", SK, "a", "receipt-1") is True
    fired = table.claim_trigger("r", SK, "c", now=500.0, stale_s=90)
    assert fired.outcome == "fired" and fired.item["receipt"] == "receipt-1" and fired.item["finished_at"]


def test_a_stale_claim_is_taken_over_once_and_its_old_owner_cannot_finish(table: TriggerStore) -> None:
    table.claim_trigger("r", SK, "a", now=100.0, stale_s=90)
    taken = table.claim_trigger("r", SK, "b", now=200.0, stale_s=90)
    assert taken.outcome == "takeover" and taken.item["owner"] == "b" and taken.item["taken_over_from"] == "a"
    assert taken.item["attempts"] == 2 and taken.item["first_claimed_epoch"] == 100
    assert table.claim_trigger("r", SK, "c", now=210.0, stale_s=90).outcome == "busy"
    assert table.release_trigger("r", SK, "a", "late") is False
    assert table.trigger_in_doubt("r", SK, "b", "crashed mid-send") is True
    in_doubt = table.claim_trigger("r", SK, "c", now=900.0, stale_s=90)
    assert in_doubt.outcome == "in_doubt" and in_doubt.item["last_error"] == "crashed mid-send"


def test_a_released_trigger_is_claimed_afresh_and_a_runs_claims_are_listed(table: TriggerStore) -> None:
    table.claim_trigger("r", SK, "a", now=100.0, stale_s=90)
    assert table.release_trigger("r", SK, "a", "x" * 3000) is True
    again = table.claim_trigger("r", SK, "b", now=101.0, stale_s=90)
    assert again.outcome == "fresh" and again.item["attempts"] == 2 and len(again.item["last_error"]) == 2000
    table.claim_trigger("r", "FIRED#on_success#archive", "a", now=102.0, stale_s=90)
    table.claim_trigger("other", SK, "a", now=102.0, stale_s=90)
    assert [c["sk"] for c in table.triggers_of_run("r")] == ["FIRED#on_success#archive", SK]
    assert table.triggers_of_run("none") == []


def test_an_approval_is_requested_once_decided_once_or_expires(table: TriggerStore) -> None:
    assert table.get_approval("r") is None
    item, created = table.request_approval("r", "wf", "Run Completed", ["p95 too high", "cost"], expires_epoch=1000.0)
    assert created and item["status"] == "PENDING_APPROVAL" and item["reasons"] == "p95 too high; cost"
    again, created = table.request_approval("r", "wf", "Run Completed", ["other"], expires_epoch=5000.0)
    assert not created and again["reasons"] == "p95 too high; cost"
    assert table.mark_approval_announced("r", "ev-p", "pending_event_id") is True
    assert table.mark_approval_announced("r", "ev-q", "pending_event_id") is False
    decided = table.decide_approval("r", "APPROVED", "ops@example.com", "fine", now=500.0)
    assert decided is not None and (decided["status"], decided["decided_by"]) == ("APPROVED", "ops@example.com")
    assert table.decide_approval("r", "REJECTED", "someone", "", now=501.0) is None
    assert table.expire_approval("r", now=2000.0) is None  # decided: nothing to expire
    assert table.get_approval("r")["pending_event_id"] == "ev-p"  # type: ignore[index]
    table.request_approval("late", "wf", "Run Completed", [], expires_epoch=1000.0)
    assert table.decide_approval("late", "APPROVED", "ops", "", now=1000.0) is None  # expired at 1000
    assert table.expire_approval("late", now=999.0) is None
    assert table.expire_approval("late", now=1000.0)["status"] == "EXPIRED"  # type: ignore[index]
    assert table.mark_approval_announced("none", "ev") is False
