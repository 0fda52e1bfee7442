"""Mutation score of the last `make mutation` run (mutmut 3's results under mutants/), per module.

    .venv/bin/python tests/mutation_score.py [--survivors]

A mutant counts as killed when a unit or integration test failed (or timed out) with it; as equivalent when
it is listed in EQUIVALENT below with the reason no test can tell it from the original. Score = killed /
(mutants checked − equivalent), target ≥ 90 % per module. Exit status 1 if a module misses the target or a
survivor is neither killed nor justified.

For the table adapter only its run and claim methods count (the issue's scope): the rest of the file
(status API queries, task records, triggers, approvals) is mutated too, but not counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.90
KILLED = {1, 3, 36, 24, -24, 152, 255}  # test failure, pytest internal error, timeouts (mutmut's codes)
SURVIVED, NO_TESTS = {0}, {5, 33}

# module → the functions that count (None: all of them)
SCOPE: dict[str, set[str] | None] = {
    "jobgraph.core.delay_model": None,
    "jobgraph.core.stats": None,
    "jobgraph.core.graph": None,
    "jobgraph.bench.cost": None,
    "jobgraph.runs.aws_usage": None,
    "jobgraph.services.scheduler": None,
    "jobgraph.services.records": None,
    "jobgraph.core.retry": None,
    # the run's countdown/MERGE claim/completion and the job record's claim and completion (issue 19.6), in the
    # table adapter's modules (adapters/dynamodb/: table.py's condition helpers and the stores' one conditional
    # update, TableAccess, runs.py, jobs.py)
    "jobgraph.adapters.dynamodb.table": {
        "conditional_failed",
        "condition_failed_first",
        "transaction_conflict",
        *(f"TableAccess.{method}" for method in ("_update", "_update_if", "_update_new")),
    },
    "jobgraph.adapters.dynamodb.runs": {
        f"DynamoRunStore.{method}"
        for method in ("count_down_sequence", "claim_merge", "complete_run", "fail_run", "_end")
    },
    "jobgraph.adapters.dynamodb.jobs": {
        f"DynamoJobStore.{method}"
        for method in (
            "claim_job",
            "_claim",
            "record_job",
            "record_jobs",
            "_record_together",
            "_outcome_update",
            "_counter_update",
            "job_attempts",
        )
    },
}

# mutant name → why no test can tell it from the original
_UNREACHABLE_MEMORY = (
    "a function is listed only if a REPORT line matched, which always sets memory_mb: `or` never reads config"
)
_LAST_PATH_PART = "the queue name is the URL's last path part whichever split count or index picks it"
_SERVICE_NAME = (
    "the ECS service's name is its ARN's last path part (service/cluster/name or service/name) whichever split "
    "count or index picks it"
)
_ZIP_SAME_LENGTH = "zip over PERCENTILES and its five values: strict or not, the same pairs"
_DTYPE_INFERRED = "numpy infers the same dtype from the JSON ints/floats (or a float index finds the same bin)"
_NO_CONTEXT = "the record handler takes no Lambda context (Powertools hands it only to a handler with lambda_context)"
_EXPONENT_BOUND = (
    "the exponent's bound (2^32) only keeps the arithmetic finite: messages are dead-lettered after 3 receives "
    "(maxReceiveCount), and past 32 any base over 10.1 µs meets SQS's 12 h ceiling either way"
)
_CASE_INSENSITIVE = "DynamoDB's expression keywords (SET, ADD, REMOVE, AND...) are case-insensitive"
_ERROR_ALWAYS = "botocore's parsed error responses always hold an Error mapping: the {} default is never read"
_ROUND_INT = "round(n, 3) of an int is that int: rounding the counts too changes nothing"
_ROUNDED_TIMES = (
    "each job's time is rounded to 3 decimals (counter_deltas): their float sum is within 1e-12 of a 3-decimal "
    "number, which round(·, 3) and round(·, 4) both give"
)
_SQS_RECORD_FIELDS = "Powertools hands failure_handler an SQSRecord, whose message_id and body always exist: getattr's default is never read"
_BODY_IS_STR = "an SQSRecord's body is always a str: str(body) is body"
_ONE_GROUP_PER_PROCESSOR = (
    "FifoBatch gives each processor one message group: failing every later record is failing the rest of the group"
)
_FALSY = "Powertools reads raise_on_entire_batch_failure by truthiness: None and False alike"
_THREAD_NAMES = "the pool threads' name prefix shows only in thread dumps, never in a result or a log line"
_ONE_GROUP_INLINE = "one group on a one-thread pool or inline: the same records, in the same order, the same outcome"
_CONTEXT_NOT_READ = (
    "the context reaches only Powertools, which hands it to no record handler of ours (no lambda_context)"
)
_STATE_NONE = (
    "route_job/aggregation_job build a job without a state: copying state=None into it gives the same job "
    "(equal, and no serializer reads which fields were set)"
)
_RNG_CACHE = (
    "the per-thread generator is a cache: a new one re-keyed with the same state draws the same numbers, only slower"
)
_NO_32_BIT_DRAWS = (
    "the model draws only doubles (random, exponential, normal: 64-bit words), never the buffered 32-bit half"
)
EQUIVALENT: dict[str, str] = {
    "jobgraph.core.graph.x_next_for_sequence__mutmut_30": _STATE_NONE,
    **{f"jobgraph.core.delay_model.x_route_rng__mutmut_{n}": _RNG_CACHE for n in (7, 8, 13, 14)},
    **{f"jobgraph.core.delay_model.x_route_rng__mutmut_{n}": _NO_32_BIT_DRAWS for n in (47, 50)},
    **{
        f"jobgraph.services.records.xǁReportingFifoProcessorǁfailure_handler__mutmut_{n}": _SQS_RECORD_FIELDS
        for n in (5, 8, 11, 14, 17, 20)
    },
    **{
        f"jobgraph.services.records.xǁReportingFifoProcessorǁfailure_handler__mutmut_{n}": _BODY_IS_STR
        for n in (52, 53, 54)
    },
    **{
        f"jobgraph.services.records.xǁReportingFifoProcessorǁ__init____mutmut_{n}": _ONE_GROUP_PER_PROCESSOR
        for n in (2, 4, 5)
    },
    "jobgraph.services.records.xǁReportingFifoProcessorǁ__init____mutmut_7": _FALSY,
    **{
        f"jobgraph.services.records.xǁFifoBatchǁ_run_group__mutmut_{n}": _CONTEXT_NOT_READ
        for n in (8, 11, 12, 13, 16, 17)
    },
    "jobgraph.services.records.x_process_batch_then_send__mutmut_3": _CONTEXT_NOT_READ,
    **{f"jobgraph.services.records.xǁFifoBatchǁprocess__mutmut_{n}": _CONTEXT_NOT_READ for n in (33, 40)},
    **{f"jobgraph.services.records.xǁFifoBatchǁprocess__mutmut_{n}": _THREAD_NAMES for n in (19, 21, 22, 23)},
    "jobgraph.services.records.xǁFifoBatchǁprocess__mutmut_16": _ONE_GROUP_INLINE,
    **{f"jobgraph.core.stats.x_describe__mutmut_{n}": _ZIP_SAME_LENGTH for n in (10, 13, 14)},
    **{f"jobgraph.core.stats.x_describe_histogram__mutmut_{n}": _ZIP_SAME_LENGTH for n in (73, 76, 77)},
    **{f"jobgraph.core.stats.x_merge_histograms__mutmut_{n}": _DTYPE_INFERRED for n in (17, 19, 25, 27)},
    **{
        f"jobgraph.core.stats.x_describe_histogram__mutmut_{n}": _DTYPE_INFERRED for n in (6, 8, 14, 16, 52, 54, 60, 62)
    },
    # (mutmut numbers a function's mutants in order: these were renumbered when stack_usage changed)
    **{f"jobgraph.runs.aws_usage.x_stack_usage__mutmut_{n}": _UNREACHABLE_MEMORY for n in (79, 80, 81)},
    **{f"jobgraph.runs.aws_usage.x_stack_usage__mutmut_{n}": _LAST_PATH_PART for n in (114, 117, 118)},
    **{f"jobgraph.runs.aws_usage.x_fargate_usage__mutmut_{n}": _SERVICE_NAME for n in (5, 8, 9)},
    "jobgraph.services.scheduler.xǁSchedulerRuntimeǁrun_batch__mutmut_2": _NO_CONTEXT,
    "jobgraph.adapters.dynamodb.runs.xǁDynamoRunStoreǁ_end__mutmut_24": _CASE_INSENSITIVE,
    **{
        f"jobgraph.adapters.dynamodb.runs.xǁDynamoRunStoreǁcount_down_sequence__mutmut_{n}": _CASE_INSENSITIVE
        for n in (12, 15)
    },
    **{
        f"jobgraph.adapters.dynamodb.runs.xǁDynamoRunStoreǁclaim_merge__mutmut_{n}": _CASE_INSENSITIVE for n in (11, 14)
    },
    "jobgraph.adapters.dynamodb.jobs.xǁDynamoJobStoreǁclaim_job__mutmut_60": _CASE_INSENSITIVE,
    **{f"jobgraph.adapters.dynamodb.jobs.xǁDynamoJobStoreǁrecord_job__mutmut_{n}": _ERROR_ALWAYS for n in (106, 108)},
    **{
        f"jobgraph.adapters.dynamodb.jobs.xǁDynamoJobStoreǁ_record_together__mutmut_{n}": _ERROR_ALWAYS
        for n in (66, 68)
    },
    "jobgraph.adapters.dynamodb.jobs.xǁDynamoJobStoreǁ_record_together__mutmut_45": _ROUND_INT,
    "jobgraph.adapters.dynamodb.jobs.xǁDynamoJobStoreǁ_record_together__mutmut_50": _ROUNDED_TIMES,
    **{
        f"jobgraph.adapters.dynamodb.jobs.xǁDynamoJobStoreǁ_outcome_update__mutmut_{n}": _CASE_INSENSITIVE
        for n in (107, 111)
    },
    "jobgraph.adapters.dynamodb.jobs.xǁDynamoJobStoreǁ_counter_update__mutmut_19": _CASE_INSENSITIVE,
    **{f"jobgraph.adapters.dynamodb.table.x_conditional_failed__mutmut_{n}": _ERROR_ALWAYS for n in (4, 6)},
    "jobgraph.core.retry.x_backoff_s__mutmut_30": _EXPONENT_BOUND,
}


def function_of(mutant: str) -> str:
    """'jobgraph.core.stats.x_describe__mutmut_3' → 'describe'; class methods: 'JobsTable.claim_merge'."""
    name = mutant.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]
    if name.startswith("xǁ"):
        _, cls, method = name.split("ǁ")
        return f"{cls}.{method}"
    return name.removeprefix("x_")


def results(mutants_dir: Path) -> dict[str, dict[str, int | None]]:
    """Exit code per mutant, per module."""
    out: dict[str, dict[str, int | None]] = {}
    for meta in sorted(mutants_dir.glob("src/**/*.py.meta")):
        module = ".".join(meta.relative_to(mutants_dir / "src").with_suffix("").with_suffix("").parts)
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            out[module] = codes
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=ROOT / "mutants")
    parser.add_argument("--survivors", action="store_true", help="list every unjustified survivor")
    args = parser.parse_args(argv)
    by_module = results(args.mutants)
    if not by_module:
        print(f"no mutmut results under {args.mutants}: run `make mutation` first")
        return 1
    failed = False
    unjustified: list[str] = []
    print(
        f"{'module':<34} {'mutants':>7} {'checked':>7} {'killed':>7} {'equiv.':>6} {'survived':>8} {'no test':>7} "
        f"{'unchecked':>9} {'score':>7}"
    )
    for module, codes in sorted(by_module.items()):
        scope = SCOPE.get(module)
        counted = {m: c for m, c in codes.items() if scope is None or function_of(m) in scope}
        killed = sum(c in KILLED for c in counted.values())
        # a listed mutant counts as equivalent once it ran and survived (until then it is unchecked)
        equivalent = [m for m, c in counted.items() if c is not None and c not in KILLED and m in EQUIVALENT]
        left = [m for m, c in counted.items() if c not in KILLED and m not in equivalent]
        unchecked = [m for m in left if counted[m] is None]
        no_tests = sum(counted[m] in NO_TESTS for m in left)
        checked = len(counted) - len(unchecked) - len(equivalent)
        score = killed / checked if checked else 1.0
        shown = f"{score:.1%}" if checked else "–"  # nothing checked yet: no score to show
        verdict = "PASS" if score >= TARGET and not unchecked else "MISS"
        failed |= verdict == "MISS"
        print(
            f"{module:<34} {len(counted):>7} {len(counted) - len(unchecked):>7} {killed:>7} {len(equivalent):>6} "
            f"{sum(counted[m] in SURVIVED for m in left):>8} {no_tests:>7} {len(unchecked):>9} {shown:>7}  {verdict}"
        )
        unjustified.extend(m for m in left if counted[m] is not None and counted[m] not in NO_TESTS)
        unjustified.extend(m for m in left if counted[m] in NO_TESTS)
    stale = sorted(set(EQUIVALENT) - {m for codes in by_module.values() for m in codes})
    if stale:
        print(f"listed as equivalent but not produced by this run (remove them): {stale}")
        failed = True
    if unjustified:
        print(f"{len(unjustified)} survivors (or untested) neither killed nor justified (`mutmut show NAME`: the diff)")
        if args.survivors:
            for name in unjustified:
                print(f"  {name}")
    return 1 if failed or unjustified else 0  # "not checked" (an unfinished run) is a MISS too


if __name__ == "__main__":
    sys.exit(main())
