"""`sam local invoke` of the built functions with every events/*.json, against the local cloud, effects checked.

The events form one run (``events-demo``, one three-route sequence). Scenario 1 (template.yaml): StartRun
stores it and sends the FIRST job; each Processor event is one job of it (a route reads the previous
route's state); each Scheduler event is one completion. Scenario 3 (templates/scenario-3.yaml):
PrepareRun takes the same start-run.json and writes the plan; each StepTask event is one job of it.
``APPS`` holds, per template, its build folder and its cases: every file (``<function>-<case>.json``)
with its function, the events that must have run before it (``needs``), what it must do (``check``),
and, for a payload that must fail, why (``expected_failure``).

``SamLocalInvoker`` starts the local cloud's moto server on loopback *and* on the gateway of an internal
Docker network (containers.local_invoke_network), deploys the app's template into it (localcloud.stack),
and writes the ``--env-vars`` file: each function's environment as deployed there (bucket, table and
queue names) with ``AWS_ENDPOINT_URL`` set to the server as containers see it. ``invoke(case)`` seeds the
case's ``needs`` in-process (the local cloud's workers, from source) unless they already ran, drains
the queues, runs ``sam local invoke <Function> -e <event> --docker-network <internal network> ...`` on the
app's build folder, reads the handler's response from SAM's output and checks the effects in moto.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.core.errors import JobGraphError
from jobgraph.localcloud.server import FAKE_CREDENTIALS, LocalEndpoint, isolate_from_real_aws
from jobgraph.sam.localinvoke import local_invoke_template
from tests.samlocal.containers import ImageChoice

RUN = "events-demo"
# `<function>-<case>.json` -> logical id; "start-run" is a function name with a dash in it
FUNCTIONS = {
    "start-run": "StartRunFunction",
    "processor": "ProcessorFunction",
    "scheduler": "SchedulerFunction",
    "step-task": "StepTaskFunction",
    "api": "ApiFunction",
    "triggers": "TriggerFunction",
}
LOCAL_RUNTIME = "python3.13"
SAM_TIMEOUT_MARGIN_S = 180  # image build (layers copied into SAM's image) + container start


class InvokeError(JobGraphError):
    """sam local invoke could not be run at all (not: the function failed)."""


class CheckFailed(AssertionError):
    """An invocation did not have the effect its event should have."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def function_of(event: str | Path) -> str:
    """The function an events file is for, from its name: ``processor-first.json`` -> ProcessorFunction."""
    stem = Path(event).stem
    for prefix in sorted(FUNCTIONS, key=len, reverse=True):
        if stem == prefix or stem.startswith(f"{prefix}-"):
            return FUNCTIONS[prefix]
    raise InvokeError(f"{Path(event).name}: no function for this name (expected <{'|'.join(FUNCTIONS)}>-<case>.json)")


# ---------------------------------------------------------------------------------------------- effects


@dataclass
class StackState:
    """Reads of the deployed stack's bucket and table, for the checks."""

    s3: object
    dynamodb: object
    bucket: str
    table: str

    def exists(self, key: str) -> bool:
        return self.s3.list_objects_v2(Bucket=self.bucket, Prefix=key).get("KeyCount", 0) > 0

    def json(self, key: str) -> dict:
        return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def item(self, pk: str, sk: str) -> dict | None:
        from boto3.dynamodb.types import TypeDeserializer

        found = self.dynamodb.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
        return None if found is None else {k: TypeDeserializer().deserialize(v) for k, v in found.items()}


@dataclass
class Observed:
    """One invocation: what the handler returned (or its error) and the messages it sent."""

    response: object
    error: dict | None
    incoming: list[dict]
    outgoing: list[dict]
    state: StackState

    def jobs_sent(self) -> list[tuple[str, str]]:
        return [(body.get("exec_type"), body.get("job_id")) for body in self.incoming]

    def reports(self) -> list[tuple[str, str]]:
        return [(body.get("job_id"), body.get("status")) for body in self.outgoing]


Check = Callable[[Observed], str]


def _succeeded(observed: Observed) -> None:
    if observed.error is not None:
        raise CheckFailed(f"{observed.error.get('errorType')}: {str(observed.error.get('errorMessage'))[:200]}")


def _no_batch_failures(observed: Observed) -> None:
    _succeeded(observed)
    expect(observed.response == {"batchItemFailures": []}, f"response {observed.response!r}")


def check_start_run(observed: Observed) -> str:
    _succeeded(observed)
    response = observed.response or {}
    expect(response.get("status") == "RUNNING", f"response {response!r}")
    expect(observed.jobs_sent() == [("FIRST", f"{RUN}-s0-r0")], f"sent {observed.jobs_sent()}")
    run = observed.state.item(f"RUN#{RUN}", "RUN")
    expect(run is not None and run["status"] == "RUNNING", f"run record {run}")
    expect(observed.state.exists(f"_jobgraph/runs/{RUN}/sequences/0-99.json"), "sequence 0 not stored")
    return "run RUNNING, sequence stored, FIRST job sent"


def check_route(index: int) -> Check:
    def check(observed: Observed) -> str:
        _no_batch_failures(observed)
        job = f"{RUN}-s0-r{index}"
        key = f"{RUN}/delays/{job}.parquet"
        expect(observed.state.exists(key), f"{key} not written")
        record = observed.state.item(f"RUN#{RUN}", f"JOB#{job}")
        expect(record is not None and record["status"] == "COMPLETED", f"job record {record}")
        expect(observed.reports() == [(job, "completed")], f"reported {observed.reports()}")
        return f"delays/{job}.parquet, job COMPLETED, reported"

    return check


def check_aggregation(observed: Observed) -> str:
    _no_batch_failures(observed)
    summary = observed.state.json(f"{RUN}/percentiles/0.json")
    expect(summary["routes"] == 3 and summary["scenarios"] == 1000, f"percentiles/0.json {summary}")
    expect(observed.reports() == [(f"{RUN}-s0-agg", "completed")], f"reported {observed.reports()}")
    return "percentiles/0.json (3 routes x 1000), reported"


def check_merge(observed: Observed) -> str:
    _no_batch_failures(observed)
    merged = observed.state.json(f"{RUN}/merged_percentiles.json")
    expect(merged["sequences"] == 1, f"merged_percentiles.json {merged}")
    expect(observed.reports() == [(f"{RUN}-merge", "completed")], f"reported {observed.reports()}")
    return "merged_percentiles.json, reported"


def check_poison(observed: Observed) -> str:
    # one record, and it failed: Powertools raises BatchProcessingError (the whole batch failed), so
    # Lambda retries it and SQS's redrive moves it to the DLQ after maxReceiveCount receives
    expect(observed.error is not None, f"the poison batch succeeded: {observed.response!r}")
    expect(observed.error.get("errorType") == "BatchProcessingError", f"error {observed.error}")
    record = observed.state.item("POISON", "MSG#0f1e2d3c-0000-4000-8000-000000000030")
    expect(record is not None and record["status"] == "FAILED", f"poison record {record}")
    expect(observed.outgoing == [], f"reported {observed.reports()}")
    return "BatchProcessingError, POISON record FAILED, nothing reported"


def check_next_job(exec_type: str, job_id: str) -> Check:
    def check(observed: Observed) -> str:
        _no_batch_failures(observed)
        expect(observed.jobs_sent() == [(exec_type, job_id)], f"sent {observed.jobs_sent()}")
        return f"sent {exec_type} {job_id}"

    return check


def check_failed_completion(observed: Observed) -> str:
    _no_batch_failures(observed)
    expect(observed.incoming == [], f"sent {observed.jobs_sent()}")
    return "nothing scheduled"


def check_merge_claim(observed: Observed) -> str:
    _no_batch_failures(observed)
    expect(observed.jobs_sent() == [("MERGE", f"{RUN}-merge")], f"sent {observed.jobs_sent()}")
    run = observed.state.item(f"RUN#{RUN}", "RUN")
    expect(run is not None and run["sequences_remaining"] == 0, f"run record {run}")
    return "sequences_remaining 0, MERGE sent"


def check_run_completed(observed: Observed) -> str:
    _no_batch_failures(observed)
    run = observed.state.item(f"RUN#{RUN}", "RUN")
    expect(run is not None and run["status"] == "COMPLETED", f"run record {run}")
    return "run COMPLETED"


def check_prepare_run(observed: Observed) -> str:
    _succeeded(observed)
    response = observed.response or {}
    expect(response.get("status") == "RUNNING" and response.get("jobs_total") == 5, f"response {response!r}")
    expect(observed.state.exists(response["plan_key"]), f"plan {response['plan_key']} not stored")
    run = observed.state.item(f"RUN#{RUN}", "RUN")
    expect(run is not None and run["status"] == "RUNNING", f"run record {run}")
    return "run RUNNING, plan stored (5 jobs)"


def check_step_task(job_id: str, output_key: str, completes_run: bool = False) -> Check:
    def check(observed: Observed) -> str:
        _succeeded(observed)
        response = observed.response or {}
        expect(response.get("status") == "completed", f"response {response!r}")
        expect(response.get("output_key") == output_key, f"output_key {response.get('output_key')}")
        expect(observed.state.exists(output_key), f"{output_key} not written")
        record = observed.state.item(f"RUN#{RUN}", f"JOB#{job_id}")
        expect(record is not None and record["status"] == "COMPLETED", f"job record {record}")
        done = f"{output_key.removeprefix(RUN + '/')}, job COMPLETED"
        if completes_run:
            run = observed.state.item(f"RUN#{RUN}", "RUN")
            expect(run is not None and run["status"] == "COMPLETED", f"run record {run}")
            done += ", run COMPLETED"
        return done

    return check


def check_api(status_code: int, what: Callable[[dict, Observed], str]) -> Check:
    """An HTTP API (payload 2.0) response: its status code, then ``what`` on its JSON body."""

    def check(observed: Observed) -> str:
        _succeeded(observed)
        response = observed.response if isinstance(observed.response, dict) else {}
        expect(response.get("statusCode") == status_code, f"response {str(observed.response)[:300]}")
        return f"{status_code}: " + what(json.loads(response.get("body") or "{}"), observed)

    return check


def _run_started(body: dict, observed: Observed) -> str:
    run = observed.state.item(f"RUN#{body.get('run_id')}", "RUN")
    expect(run is not None and run["status"] == "RUNNING", f"run record {run}")
    first = ("FIRST", f"{body['run_id']}-s0-r0")
    expect(observed.jobs_sent() == [first], f"sent {observed.jobs_sent()}")
    return f"run {body['run_id']} RUNNING, FIRST job sent"


def _run_status(body: dict, _observed: Observed) -> str:
    # RUNNING when only its needs ran; COMPLETED when --all ran the whole chain before it
    expect(body.get("run_id") == RUN and body.get("status") in ("RUNNING", "COMPLETED"), f"body {body}")
    return f"run {RUN} {body['status']}"


def _jobs_page(body: dict, _observed: Observed) -> str:
    jobs = [job.get("job_id") for job in body.get("jobs", [])]
    expect(0 < len(jobs) <= 2 and all(job.startswith(f"{RUN}-") for job in jobs), f"jobs {jobs}")
    return f"COMPLETED jobs, page of {len(jobs)} (limit 2)"


def _results(body: dict, _observed: Observed) -> str:
    text = json.dumps(body)
    expect("merged_percentiles.json" in text and "Signature" in text, f"body {text[:300]}")
    return "presigned URLs for merged_percentiles.json and the sequence files"


def _task_queued(body: dict, observed: Observed) -> str:
    expect(len(observed.incoming) == 1 and observed.incoming[0].get("exec_type") == "SYNTHETIC",
           f"sent {observed.jobs_sent()}")  # fmt: skip
    return f"task {body.get('task_id', '?')} queued"


def check_trigger_event(observed: Observed) -> str:
    _no_batch_failures(observed)
    return "run end handled (no trigger configured in the default template)"


@dataclass(frozen=True)
class EventCase:
    event: str  # file stem in events/
    check: Check
    needs: tuple[str, ...] = ()  # events that must have run before, in order
    expected_failure: str = ""  # why this payload must make the invocation fail
    function_id: str = ""  # logical id, when the file name does not say it (start-run.json for PrepareRun)

    @property
    def function(self) -> str:
        return self.function_id or function_of(self.event)

    @property
    def file(self) -> str:
        return f"{self.event}.json"


_ROUTES = ("processor-first", "processor-intermediate", "processor-last")
# In the order `--all` runs them: each case's needs come before it, so nothing is seeded.
CASES: dict[str, EventCase] = {
    case.event: case
    for case in (
        EventCase("start-run", check_start_run),
        EventCase("processor-first", check_route(0), ("start-run",)),
        EventCase("processor-intermediate", check_route(1), ("start-run", *_ROUTES[:1])),
        EventCase("processor-last", check_route(2), ("start-run", *_ROUTES[:2])),
        EventCase("processor-aggregation", check_aggregation, ("start-run", *_ROUTES)),
        EventCase("processor-merge", check_merge, ("start-run", *_ROUTES, "processor-aggregation")),
        EventCase(
            "processor-poison",
            check_poison,
            expected_failure="a poison message (no job fields): its only record fails, so the invocation fails "
            "(BatchProcessingError) and SQS redrives the message to the DLQ",
        ),
        EventCase("scheduler-first", check_next_job("INTERMEDIATE", f"{RUN}-s0-r1"), ("start-run",)),
        EventCase("scheduler-intermediate", check_next_job("LAST", f"{RUN}-s0-r2"), ("start-run",)),
        EventCase("scheduler-last", check_next_job("AGGREGATION", f"{RUN}-s0-agg"), ("start-run",)),
        EventCase("scheduler-failed", check_failed_completion, ("start-run",)),
        EventCase("scheduler-aggregation", check_merge_claim, ("start-run",)),
        EventCase("scheduler-merge", check_run_completed, ("start-run", "scheduler-aggregation")),
        # the status API (HTTP API payload 2.0 events) and the downstream-trigger function
        EventCase("api-post-runs", check_api(202, _run_started)),
        EventCase("api-get-run", check_api(200, _run_status), ("start-run",)),
        EventCase("api-list-jobs", check_api(200, _jobs_page), ("start-run", "processor-first")),
        EventCase(
            "api-get-results",
            check_api(200, _results),
            ("start-run", *_ROUTES, "processor-aggregation", "processor-merge"),
        ),
        EventCase("api-post-task", check_api(202, _task_queued)),
        EventCase("triggers-run-completed", check_trigger_event),
    )
}


_STEPS = ("step-task-first", "step-task-intermediate", "step-task-last", "step-task-aggregation")
STEP_FUNCTIONS_CASES: dict[str, EventCase] = {
    case.event: case
    for case in (
        EventCase("start-run", check_prepare_run, function_id="PrepareRunFunction"),
        *(
            EventCase(
                f"step-task-{stage}",
                check_step_task(f"{RUN}-s0-r{index}", f"{RUN}/delays/{RUN}-s0-r{index}.parquet"),
                ("start-run", *_STEPS[:index]),
            )
            for index, stage in enumerate(("first", "intermediate", "last"))
        ),
        EventCase(
            "step-task-aggregation",
            check_step_task(f"{RUN}-s0-agg", f"{RUN}/percentiles/0.json"),
            ("start-run", *_STEPS[:3]),
        ),
        EventCase(
            "step-task-merge",
            check_step_task(f"{RUN}-merge", f"{RUN}/merged_percentiles.json", completes_run=True),
            ("start-run", *_STEPS),
        ),
    )
}


@dataclass(frozen=True)
class SamApp:
    """One SAM template whose functions the events exercise: its build folder and its cases."""

    scenario: int
    template: str  # relative to the project folder
    build_dir: str  # what `build_command` writes
    build_command: str
    cases: dict[str, EventCase]

    @property
    def stack_name(self) -> str:
        return f"scenario-{self.scenario}-local"


APPS: dict[int, SamApp] = {
    1: SamApp(1, "template.yaml", ".aws-sam/build", "make build", CASES),
    3: SamApp(3, "templates/scenario-3.yaml", ".aws-sam/build-scenario-3", "make build-sfn", STEP_FUNCTIONS_CASES),
}


def case_for(event: str | Path, scenario: int | None = None) -> tuple[SamApp, EventCase]:
    """The app and case of an events file: the given scenario's, else the first app that has one."""
    stem = Path(event).stem
    apps = [APPS[scenario]] if scenario is not None else list(APPS.values())
    for app in apps:
        if stem in app.cases:
            return app, app.cases[stem]
    where = f"scenario {scenario}'s" if scenario is not None else "any"
    raise InvokeError(f"{Path(event).name}: no entry in {where} cases (saminvoke.APPS): what should it do?")


# ---------------------------------------------------------------------------------------------- invoking


@dataclass
class InvokeResult:
    case: EventCase
    outcome: str  # "ok", "expected failure" or "FAILED"
    detail: str
    wall_s: float
    handler_ms: float | None
    log: Path

    @property
    def passed(self) -> bool:
        return self.outcome != "FAILED"


_REPORT = re.compile(r"REPORT RequestId: \S+\s+(?:Init Duration: [\d.]+ ms\s+)?Duration: ([\d.]+) ms")


def parse_sam_output(stdout: str, stderr: str) -> tuple[object, dict | None, float | None]:
    """(response, error, handler duration in ms) from `sam local invoke`'s output.

    SAM prints the function's response, JSON, on stdout (an error response is
    ``{"errorType": ..., "errorMessage": ...}``) and the container's log with Lambda's REPORT line on stderr.
    """
    response: object = None
    for line in reversed(stdout.strip().splitlines()):
        try:
            response = json.loads(line)
            break
        except ValueError:
            continue
    else:
        raise InvokeError(f"no response on sam local invoke's output: {stderr.strip()[-1500:]}")
    error = None
    if isinstance(response, dict) and "errorType" in response and "errorMessage" in response:
        error, response = response, None
    reports = _REPORT.findall(stderr)
    return response, error, float(reports[-1]) if reports else None


def built_runtime(build_dir: Path) -> str:
    """The CPython tag of the built layers' compiled modules (``cp313``), to refuse a build for another runtime."""
    found = {m.group(1) for p in build_dir.glob("*Layer/python/**/*.so") if (m := re.search(r"cpython-(\d+)", p.name))}
    if len(found) != 1:
        raise InvokeError(
            f"{build_dir}: cannot tell the build's Python version (compiled modules for {found or 'none'})"
        )
    return f"cp{found.pop()}"


@dataclass
class SamLocalInvoker:
    root: Path
    image: ImageChoice
    network: str
    gateway: str
    log_dir: Path
    app: SamApp = APPS[1]
    region: str = "eu-west-1"
    sam: Path | None = None
    log: Callable[[str], None] = print
    endpoint: LocalEndpoint | None = None
    stack: object = None
    env_file: Path | None = None
    _done: set[str] = field(default_factory=set)
    _workers: dict = field(default_factory=dict)

    @property
    def build_dir(self) -> Path:
        return self.root / self.app.build_dir

    def __enter__(self) -> SamLocalInvoker:
        from jobgraph.localcloud.cloudformation.stack import deploy

        template = self.build_dir / "template.yaml"
        if not template.is_file():
            raise InvokeError(f"{template} missing: run `{self.app.build_command}` first")
        tag = built_runtime(self.build_dir)
        if tag != "cp" + LOCAL_RUNTIME.removeprefix("python").replace(".", ""):
            raise InvokeError(
                f"the layers in {self.build_dir} hold {tag} modules; the {LOCAL_RUNTIME} runtime cannot load them "
                f"(layers/*/Makefile must download wheels for the template's runtime; then `{self.app.build_command}`)"
            )
        isolate_from_real_aws()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.endpoint = LocalEndpoint(region=self.region, container_hosts=(self.gateway,)).start()
        try:
            self.stack = deploy(self.endpoint, self.root / self.app.template, stack_name=self.app.stack_name)
            self.env_file = self.log_dir / "env-vars.json"
            self.env_file.write_text(json.dumps(self.env_vars(), indent=2, sort_keys=True) + "\n")
        except BaseException:
            self.endpoint.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        for worker in self._workers.values():
            worker.stop()
        self._workers.clear()
        if self.endpoint is not None:
            self.endpoint.stop()

    def env_vars(self) -> dict[str, dict[str, str]]:
        """The --env-vars content: per function, its deployed environment, pointed at the local server."""
        lambda_client = self.endpoint.client("lambda")
        container_url = self.endpoint.container_url(self.gateway)
        variables = {}
        for logical_id in self.stack.resources_of_type("AWS::Lambda::Function"):
            config = lambda_client.get_function_configuration(FunctionName=self.stack.physical_ids[logical_id])
            deployed = config.get("Environment", {}).get("Variables", {})
            if "AWS_ENDPOINT_URL" not in deployed:
                raise InvokeError(
                    f"{logical_id} does not declare AWS_ENDPOINT_URL (template Globals): `sam local invoke "
                    "--env-vars` sets only declared variables, so the handler would call AWS"
                )
            variables[logical_id] = {**{k: str(v) for k, v in deployed.items()}, "AWS_ENDPOINT_URL": container_url}
        return variables

    @property
    def state(self) -> StackState:
        outputs = self.stack.outputs
        return StackState(
            self.endpoint.client("s3"), self.endpoint.client("dynamodb"), outputs["ResultsBucketName"],
            outputs["JobsTableName"],
        )  # fmt: skip

    def _queue(self, output: str) -> list[dict]:
        """Drain the stack's queue of that output (none in a Step Functions stack)."""
        url = self.stack.outputs.get(output)
        return self.drain(url) if url else []

    def drain(self, queue_url: str) -> list[dict]:
        sqs = self.endpoint.client("sqs")
        bodies = []
        while True:
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0).get(
                "Messages", []
            )
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def seed(self, case: EventCase) -> None:
        """Run what ``case`` needs that has not run yet, in-process through the local cloud's workers."""
        from jobgraph.localcloud.lambda_runtime.runtime import function_specs
        from jobgraph.localcloud.lambda_runtime.workers import Worker

        missing = [need for need in case.needs if need not in self._done]
        if not missing:
            return
        self.log(f"seeding {', '.join(missing)} (local workers, from source)")
        specs = None
        for need in missing:
            function = self.app.cases[need].function
            if function not in self._workers:
                specs = specs or function_specs(self.endpoint, self.stack)
                self._workers[function] = Worker(specs[function], self.log_dir / f"seed-{function}.log")
            event = json.loads((self.root / "events" / f"{need}.json").read_text())
            invocation = self._workers[function].invoke(event)
            if not invocation.ok:
                raise InvokeError(f"seeding {need} failed: {invocation.error}")
            self._done.add(need)

    def sam_command(self, case: EventCase) -> list[str]:
        sam = self.sam or self.root / ".venv-sam" / "bin" / "sam"
        return [
            str(sam), "local", "invoke", case.function,
            # a nested application's function: a template with the parent's layers beside it (SAM CLI #2820)
            "--template", str(local_invoke_template(self.build_dir, case.function, self.log_dir)
                              or self.build_dir / "template.yaml"),
            "--event", str(self.root / "events" / case.file),
            "--env-vars", str(self.env_file),
            "--docker-network", self.network,
            "--region", self.region,
            *self.image.sam_args(),
        ]  # fmt: skip

    def sam_environment(self) -> dict[str, str]:
        """SAM's own environment: fake credentials (it passes them into the container) and the local endpoint.

        `sam local invoke` asks STS for the account id before every invocation; with AWS_ENDPOINT_URL
        that goes to the local cloud (moto answers at once) instead of AWS (no answer offline: ~7 s lost).
        The container's AWS_ENDPOINT_URL comes from --env-vars, which wins over SAM's environment.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        return {
            **env,
            **FAKE_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint.url,
            "SAM_CLI_TELEMETRY": "0",
        }

    def invoke(self, case: EventCase) -> InvokeResult:
        self.seed(case)
        self._queue("IncomingQueueUrl")
        self._queue("OutgoingQueueUrl")
        log_path = self.log_dir / f"{case.event}.log"
        timeout = self._timeout_s(case.function) + SAM_TIMEOUT_MARGIN_S
        started = time.monotonic()
        try:
            completed = subprocess.run(
                self.sam_command(case),
                cwd=self.root,
                env=self.sam_environment(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            log_path.write_text(f"{exc.stdout or ''}\n{exc.stderr or ''}")
            return InvokeResult(case, "FAILED", f"sam local invoke took over {timeout} s", timeout, None, log_path)
        wall_s = time.monotonic() - started
        log_path.write_text(f"$ {' '.join(self.sam_command(case))}\n{completed.stderr}\n--- stdout\n{completed.stdout}")
        self._done.add(case.event)
        try:
            response, error, handler_ms = parse_sam_output(completed.stdout, completed.stderr)
        except InvokeError as exc:
            return InvokeResult(case, "FAILED", f"exit {completed.returncode}: {exc}", wall_s, None, log_path)
        observed = Observed(
            response,
            error,
            self._queue("IncomingQueueUrl"),
            self._queue("OutgoingQueueUrl"),
            self.state,
        )
        try:
            detail = case.check(observed)
        except CheckFailed as exc:
            return InvokeResult(case, "FAILED", str(exc), wall_s, handler_ms, log_path)
        outcome = "expected failure" if case.expected_failure else "ok"
        return InvokeResult(case, outcome, detail, wall_s, handler_ms, log_path)

    def _timeout_s(self, logical_id: str) -> int:
        config = self.endpoint.client("lambda").get_function_configuration(
            FunctionName=self.stack.physical_ids[logical_id]
        )
        return int(config["Timeout"])


def format_table(results: list[InvokeResult]) -> str:
    rows = [("function", "event", "result", "wall s", "handler ms", "checked")]
    for r in results:
        handler = f"{r.handler_ms:.0f}" if r.handler_ms is not None else "-"
        rows.append((r.case.function, r.case.file, r.outcome, f"{r.wall_s:.1f}", handler, r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2])]
        cells += [row[3].rjust(widths[3]), row[4].rjust(widths[4]), row[5]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
