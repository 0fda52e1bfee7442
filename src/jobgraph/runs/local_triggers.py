"""The downstream triggers of a local run: the config pushed where the deployed stack reads it, and what each
trigger of the run's workflow did (the local target's report; on AWS, `jobgraph triggers show`)."""

from __future__ import annotations

import time


def push_local_triggers(endpoint, stack_name: str, config) -> None:
    """`--triggers CONFIG`: the config goes where the deployed stack reads it at run time, as on AWS."""
    from jobgraph.sam.triggers import push_config, stack_triggers

    push_config(config, stack_triggers(endpoint.client("cloudformation"), stack_name), endpoint.client("s3"))


def local_trigger_report(table, run_id: str) -> list[dict]:
    """Each trigger the run's workflow claimed (FIRED, IN_DOUBT, or CLAIMED/RELEASED: not fired), and its
    approval if one was requested."""
    from jobgraph.services.approvals import approval_view

    report = [
        {
            "name": f"{claim.get('workflow')}/on_{claim.get('kind')}/{claim.get('trigger')}",
            "type": claim.get("target_type"),
            "status": claim.get("status") if claim.get("status") in ("FIRED", "IN_DOUBT") else "NOT FIRED",
            "receipt": claim.get("receipt") or claim.get("last_error"),
        }
        for claim in sorted(table.triggers_of_run(run_id), key=lambda c: str(c["sk"]))
    ]
    approval = table.get_approval(run_id)
    if approval is not None:
        view = approval_view(approval, time.time())
        report.append(
            {"name": f"{view['workflow']}/approval", "type": "approval", "status": view["status"],
             "receipt": "; ".join(view["reasons"])}
        )  # fmt: skip
    return report
