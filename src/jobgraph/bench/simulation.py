"""The discrete-event simulation (simpy) behind `jobgraph project`: one run of N sequences through the job
graph a recorded run measured (bench/project.py builds the Model from the run record and reads the result)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from jobgraph.core.errors import JobGraphError
from jobgraph.core.models import ExecType, exec_type_for


class ProjectionError(JobGraphError):
    """The run record lacks what the projection needs, or the request is out of range."""


@dataclass
class Model:
    """Everything the simulation needs, in ms unless named otherwise."""

    scenario: int
    chains: list[int]  # routes per sequence of the source graph, repeated to the projected size
    stage_ms: dict[str, np.ndarray]  # per route stage: processing times of the run's jobs
    job_overhead_ms: float  # the runner's busy time per job beyond the stage's processing
    # < 1 where the runner overlapped a batch's jobs (message groups processed concurrently): its busy time per
    # job is then less than the job's own processing time
    job_scale: float
    merge_ms_per_sequence: float
    starter_ms_per_sequence: float
    starter_init_ms: float
    runner_concurrency: int
    runner_init_ms: float  # 0 where the runner was running before the run (ECS tasks)
    batch_size: int = 10
    # message groups of a batch the runner runs at once (GROUP_CONCURRENCY), each job on the first free lane,
    # and its time per batch beyond its jobs' (the outcomes written together, the completions sent): with
    # lanes > 1 a batch takes batch_overhead_ms + its jobs laid out on the lanes, not their sum
    lanes: int = 1
    batch_overhead_ms: float = 0.0
    scheduler_concurrency: int = 0
    scheduler_ms_per_message: float = 0.0
    scheduler_init_ms: float = 0.0
    map_concurrency: int = 0  # scenario 3
    hop_ms: float = 0.0  # queue hop latency beyond the service times
    gap_ms: float = 0.0  # scenario 3: between a sequence's jobs
    on: str = "run"
    notes: list[str] = field(default_factory=list)


def _queue(simpy, env):
    """A FIFO queue of messages: a simpy Store over a deque (Store's list pops from the front in O(n), which
    made a 100,000-sequence projection quadratic)."""

    class Queue(simpy.Store):
        def __init__(self, env):
            super().__init__(env)
            self.items = deque()

        def _do_get(self, event):
            if self.items:
                event.succeed(self.items.popleft())
            return None

    return Queue(env)


class _Sim:
    """One simulated run of ``sequences`` sequences (simpy)."""

    def __init__(self, model: Model, sequences: int, seed: int):
        import simpy

        self.simpy = simpy
        self.model = model
        self.env = simpy.Environment()
        self.rng = np.random.default_rng(seed)
        source = model.chains
        self.chains = [source[i % len(source)] for i in range(sequences)]
        self.cold_starts = 0
        self.finished = self.env.event()

    def service_ms(self, sequence: int, position: int) -> float:
        routes = self.chains[sequence]
        # positions 0..routes-1 are the routes (named as the graph names them), ``routes`` the AGGREGATION
        stage = ExecType.AGGREGATION if position == routes else exec_type_for(position, routes)
        samples = self.model.stage_ms[stage]
        return (float(samples[self.rng.integers(len(samples))]) + self.model.job_overhead_ms) * self.model.job_scale

    def merge_ms(self) -> float:
        return (self.model.merge_ms_per_sequence * len(self.chains) + self.model.job_overhead_ms) * self.model.job_scale

    def starter_s(self) -> float:
        return (self.model.starter_init_ms + self.model.starter_ms_per_sequence * len(self.chains)) / 1000

    def run(self) -> float:
        self.env.process(self.queue_graph() if self.model.scenario in (1, 2) else self.state_machine())
        self.env.run(until=self.finished)
        return self.env.now

    # --- scenarios 1 and 2 ---------------------------------------------------------------------------------
    def deliver(self, queue, messages: list) -> None:
        """Messages sent now, receivable by a poller ``hop_ms`` later."""
        if not self.model.hop_ms:
            for message in messages:
                queue.put(message)
            return

        def later():
            yield self.env.timeout(self.model.hop_ms / 1000)
            for message in messages:
                queue.put(message)

        self.env.process(later())

    @staticmethod
    def _batch(store, first, size: int) -> list:
        batch = [first]
        while store.items and len(batch) < size:
            batch.append(store.items.popleft())
        return batch

    def queue_graph(self):
        model, env = self.model, self.env
        incoming, outgoing = _queue(self.simpy, env), _queue(self.simpy, env)
        remaining = [len(self.chains)]
        merge = (-1, -1)

        def runner(init_ms: float):
            while True:
                batch = self._batch(incoming, (yield incoming.get()), model.batch_size)
                busy = init_ms
                if init_ms:
                    self.cold_starts += 1
                init_ms = 0.0
                times = [self.merge_ms() if job == merge else self.service_ms(*job) for job in batch]
                busy += model.batch_overhead_ms + on_lanes(times, model.lanes)
                yield env.timeout(busy / 1000)
                if merge in batch:
                    self.finished.succeed()
                    return
                self.deliver(outgoing, batch)

        def scheduler(init_ms: float):
            while True:
                batch = self._batch(outgoing, (yield outgoing.get()), 10)
                if init_ms:
                    self.cold_starts += 1
                yield env.timeout((init_ms + len(batch) * model.scheduler_ms_per_message) / 1000)
                init_ms = 0.0
                sent = []
                for sequence, position in batch:
                    if position < self.chains[sequence]:
                        sent.append((sequence, position + 1))
                        continue
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        sent.append(merge)
                self.deliver(incoming, sent)

        yield env.timeout(self.starter_s())
        for _ in range(model.runner_concurrency):
            env.process(runner(model.runner_init_ms))
        for _ in range(model.scheduler_concurrency):
            env.process(scheduler(model.scheduler_init_ms))
        for sequence in range(len(self.chains)):
            incoming.put((sequence, 0))

    # --- scenario 3 ---------------------------------------------------------------------------------------
    def state_machine(self):
        model, env = self.model, self.env
        environments = _queue(self.simpy, env)  # Lambda execution environments of StepTask: cold until first used
        for _ in range(model.runner_concurrency):
            environments.put(True)
        sequences = iter(range(len(self.chains)))

        def task(ms: float):
            cold = yield environments.get()
            if cold:
                self.cold_starts += 1
            yield env.timeout(((model.runner_init_ms if cold else 0.0) + ms) / 1000)
            environments.put(False)

        def iteration():  # one of the Distributed Map's concurrent slots, walking sequences one after another
            for sequence in sequences:
                for position in range(self.chains[sequence] + 1):
                    yield env.timeout(model.gap_ms / 1000)
                    yield env.process(task(self.service_ms(sequence, position)))

        yield env.timeout(self.starter_s())
        slots = [env.process(iteration()) for _ in range(min(model.map_concurrency, len(self.chains)))]
        yield self.simpy.AllOf(env, slots)
        yield env.timeout(model.gap_ms / 1000)
        yield env.process(task(self.merge_ms()))
        self.finished.succeed()


def on_lanes(times: list[float], lanes: int) -> float:
    """How long jobs of these times take on ``lanes`` lanes, each taken in order by the first lane free (a
    batch's message groups on a pool of ``lanes`` threads); one lane: their sum."""
    if lanes <= 1 or len(times) <= 1:
        return float(sum(times))
    ends = [0.0] * min(lanes, len(times))
    for time in times:
        first = ends.index(min(ends))
        ends[first] += time
    return max(ends)


def simulate(model: Model, sequences: int, seed: int = 0) -> dict:
    """Makespan (s) of ``sequences`` sequences and the simulation's own counts."""
    if sequences < 1:
        raise ProjectionError(f"--sequences {sequences}: at least 1")
    sim = _Sim(model, sequences, seed)
    makespan = sim.run()
    routes = sum(sim.chains)
    return {
        "sequences": sequences,
        "jobs": routes + sequences + 1,  # routes, one AGGREGATION per sequence, one MERGE
        "route_jobs": routes,
        "makespan_s": makespan,
        "cold_starts": sim.cold_starts,
    }
