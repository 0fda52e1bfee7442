"""TriggerStore: a trigger's claim (fresh, busy, taken over, finished by its owner only)."""

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
