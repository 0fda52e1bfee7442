"""ECS services of the local cloud: each active service runs its desired count of local tasks (service.py),
follows UpdateService, reports runningCount and task records, and ships its tasks' output to their awslogs group.

``ServiceControl`` is the Controller's part for ECS (controller.py composes it).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from jobgraph.localcloud.ecs.service import LocalEcsService
from jobgraph.localcloud.inventory import ServiceState


@dataclass
class LocalService:
    state: ServiceState
    service: LocalEcsService
    shipped: dict[Path, int] = field(default_factory=dict)  # task log file -> bytes already sent to CloudWatch


class ServiceControl:
    """The ECS services deployed, scaled and stopped (a part of the Controller)."""

    def _reconcile_services(self, services: dict[str, ServiceState]) -> None:
        for arn, state in services.items():
            current = self.services.get(arn)
            if state.problem or state.spec is None:
                self.failures[arn.rsplit("/", 1)[-1]] = state.problem
                continue
            if current is not None and current.state.task_definition != state.task_definition:
                with self._state_lock:
                    self.services.pop(arn, None)
                threading.Thread(target=current.service.stop, daemon=True).start()  # a new deployment
                current = None
            if current is None:
                try:
                    service = LocalEcsService(
                        state.spec,
                        self.endpoint,
                        self.log_dir,
                        tasks=state.desired,
                        faults=self.faults,
                    ).start()
                except Exception as exc:  # its command cannot run here, its queue is gone, ...
                    self.failures[state.spec.service_name] = f"{type(exc).__name__}: {exc}"
                    continue
                self.failures.pop(state.spec.service_name, None)
                with self._state_lock:
                    self.services[arn] = LocalService(state, service)
            elif current.service.tasks != state.desired:
                current.service.scale(state.desired)
                current.state = state
        with self._state_lock:
            gone = [self.services.pop(arn) for arn in list(self.services) if arn not in services]
        for service in gone:
            threading.Thread(target=service.service.stop, daemon=True).start()
        self._report_running(services)

    def _report_running(self, services: dict[str, ServiceState]) -> None:
        """ECS's runningCount/pendingCount and service events, from the local tasks (servicehooks)."""
        from jobgraph.localcloud import servicehooks

        with self._state_lock:
            running = {arn: local.service.running() for arn, local in self.services.items()}
            tasks = [(arn, local.state.spec, list(local.service.runs)) for arn, local in self.services.items()]
        with self.endpoint.lock:
            servicehooks.report_running(running)
            servicehooks.report_tasks(tasks)
        for local in list(self.services.values()):
            if local.service.fatal:
                self.failures[local.state.spec.service_name] = local.service.fatal

    def _ship_task_logs(self) -> None:
        """What ECS tasks printed since the last sample, into their awslogs group (as the awslogs driver)."""
        for local in list(self.services.values()):
            if not local.state.log_group:
                continue
            for path in sorted(local.service.log_dir.glob(f"{local.state.spec.service_name}-*.log")):
                offset = local.shipped.get(path, 0)
                try:
                    with open(path, "rb") as handle:
                        handle.seek(offset)
                        chunk = handle.read()
                except OSError:
                    continue
                complete = chunk[: chunk.rfind(b"\n") + 1]
                if not complete:
                    continue
                local.shipped[path] = offset + len(complete)
                slot = path.stem.rsplit("-", 1)[-1]
                stream = f"{local.state.log_prefix or 'ecs'}/{local.state.spec.container}/local-{slot}"
                now = int(time.time() * 1000)
                lines = [(now, line) for line in complete.decode("utf-8", "replace").splitlines() if line.strip()]
                self.cloudwatch.put_logs(local.state.log_group, stream, lines)
