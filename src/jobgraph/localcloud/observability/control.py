"""CloudWatch of the local cloud, periodically: Lambda concurrency, SQS and Step Functions metrics flushed into
moto's CloudWatch, and every alarm evaluated; the alarms a stack declares made and deleted with it.

``MetricsControl`` is the Controller's part for metrics and alarms (controller.py composes it).
"""

from __future__ import annotations

from jobgraph.localcloud.cloudformation import changesets as cfn
from jobgraph.localcloud.inventory import queue_metrics, regional_backends
from jobgraph.localcloud.observability.alarms import evaluate_alarms


class MetricsControl:
    """Metrics sampled and alarms evaluated (a part of the Controller)."""

    def _make_alarms(self, operation: cfn.StackOperation) -> None:
        from moto.cloudformation.models import cloudformation_backends

        from jobgraph.localcloud.cloudformation.stack import alarm_definitions

        with self.endpoint.lock:
            stack = cloudformation_backends[operation.account_id][operation.region].stacks[operation.stack_id]
            definitions = alarm_definitions(stack)
        cloudwatch = self.endpoint.client("cloudwatch", region=operation.region)
        names = [properties["AlarmName"] for _logical_id, properties in definitions]
        stale = sorted(set(self.alarms.get(operation.stack_id, [])) - set(names))
        if stale:
            cloudwatch.delete_alarms(AlarmNames=stale)
        for _logical_id, properties in definitions:
            cloudwatch.put_metric_alarm(**properties)
        self.alarms[operation.stack_id] = names

    def _delete_alarms(self, operation: cfn.StackOperation) -> None:
        """The stack's alarms, deleted in moto's CloudWatch directly: this may run holding the lock."""
        from moto.cloudwatch.models import cloudwatch_backends

        names = self.alarms.pop(operation.stack_id, [])
        if names:
            with self.endpoint.lock:
                cloudwatch_backends[operation.account_id][operation.region].delete_alarms(names)

    def _before_request(self, service: str, _action: str) -> None:
        """Inside the server's lock, before a request: a CloudWatch reader sees every metric so far."""
        if service == "monitoring":
            self.cloudwatch.flush(locked=True)

    def sample(self) -> None:
        """The periodic figures: queue depths, concurrency, executions, ECS task logs; then alarms."""
        buffer = self.cloudwatch.buffer
        with self._state_lock:
            busy = {f.revision.name: sum(w.busy for w in f.pool.workers) for f in self.functions.values()}
            for mapping in self.mappings.values():
                name = mapping.poller.mapping.function.function_name
                busy[name] = busy.get(name, 0) + sum(w.busy for w in mapping.poller.workers)
        for name, count in busy.items():
            buffer.add("AWS/Lambda", "ConcurrentExecutions", (("FunctionName", name),), count, "Count")
        with self.endpoint.lock:
            for namespace, metric, dimensions, value in queue_metrics() + self._execution_metrics():
                buffer.add(namespace, metric, dimensions, value, "Seconds" if "Age" in metric else "Count")
        self._ship_task_logs()
        self.cloudwatch.flush()
        for region in self._regions():
            evaluate_alarms(self.endpoint.client("cloudwatch", region=region), "")

    def _regions(self) -> list[str]:
        from moto.cloudwatch.models import cloudwatch_backends

        return sorted({region for _a, region, backend in regional_backends(cloudwatch_backends) if backend.alarms})

    def _execution_metrics(self) -> list[tuple[str, str, tuple, float]]:
        """AWS/States Executions{Started,Succeeded,Failed,TimedOut,Aborted} per state machine (holding the lock)."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends

        found = []
        for _account, _region, backend in regional_backends(stepfunctions_parser_backends):
            for machine in list(backend.state_machines):
                dimensions = (("StateMachineArn", machine.arn),)
                for execution in list(machine.executions):
                    status, seen = execution.status, self._seen_executions.get(execution.execution_arn)
                    if seen is None:
                        found.append(("AWS/States", "ExecutionsStarted", dimensions, 1.0))
                    if status != seen and status != "RUNNING":
                        metric = {"SUCCEEDED": "Succeeded", "FAILED": "Failed", "TIMED_OUT": "TimedOut"}.get(
                            status, "Aborted"
                        )
                        found.append(("AWS/States", f"Executions{metric}", dimensions, 1.0))
                    self._seen_executions[execution.execution_arn] = status
        return found
