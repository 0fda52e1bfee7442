"""`jobgraph cost --billed` and `jobgraph cost --activate-tags` (make bootstrap): Cost Explorer beside the estimate.

Both use your AWS configuration; Cost Explorer answers from us-east-1 whatever your region.
"""

from __future__ import annotations

import argparse

from jobgraph.core.errors import JobGraphError


def add_options(cost: argparse.ArgumentParser) -> None:
    billed = cost.add_argument_group("billed cost (Cost Explorer, AWS runs)")
    billed.add_argument(
        "--billed", action="store_true", help="also print what AWS billed under the run's PerfTestRun tag, per service"
    )
    billed.add_argument("--tag", metavar="VALUE", help="PerfTestRun value to look up (default: the run's test run id)")
    billed.add_argument(
        "--activate-tags",
        action="store_true",
        help="make PerfTestRun (and Purpose, Environment, Project) active cost allocation tags (make bootstrap)",
    )


def activate(_args) -> int:
    from botocore.exceptions import BotoCoreError

    from jobgraph.bench.billing import activate_tags, cost_explorer

    try:
        lines = activate_tags(cost_explorer())
    except BotoCoreError as exc:  # no credentials, no network: one line, no traceback
        raise JobGraphError(f"Cost Explorer: {exc}") from None
    print("\n".join(lines))
    return 0


def billed_lines(args, run: dict) -> list[str]:
    """The billed-vs-estimated lines of one run record (a note where nothing can be billed)."""
    from jobgraph.bench.billing import billed_cost, billed_lines, cost_explorer, run_window

    if run.get("mode") != "AWS":
        return [f"  billed: nothing - run {run['run_id']} ran on the {run.get('mode')} cloud, not on AWS"]
    tag = args.tag or run.get("test_run_id")
    if not tag:
        raise JobGraphError(f"run {run['run_id']}: its record names no test run id; give --tag PERFTESTRUN_VALUE")
    from botocore.exceptions import BotoCoreError

    start, end = run_window(run)
    try:
        return billed_lines(run, billed_cost(cost_explorer(), tag, start, end))
    except BotoCoreError as exc:
        raise JobGraphError(f"Cost Explorer: {exc}") from None
