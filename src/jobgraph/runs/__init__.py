"""Runs: one run of a job graph (or of a synthetic load) on a deployed stack, followed to its end, its results
exported and its figures gathered for the report — through one path, ``execute(workload, target, spec)``.

- A **Target** is an AWS endpoint with a stack deployed on it: real AWS (``runs/aws.py``: a boto3 session, or
  any client factory, and ``--stack``) or the embedded local cloud (``runs/local.py``: the local cloud brought
  up, the template deployed into it in-process, then the AWS target's path on it). It gives the run its
  clients and stack outputs, its StartRun invoker, its progress, usage and settings, its teardown, and the
  run's output folder (checked once, before anything starts). Serving the status API is a local target option.
- A **Workload** is what runs on the stack: the queue graph (scenarios 1 and 2: StartRun, then SQS FIFO queues
  and Lambda or ECS workers; ``runs/graph.py``), the state machine graph (scenario 3, ``runs/statemachine.py``)
  or the synthetic load (``jobgraph load``, ``runs/load.py``). It starts, says when it has ended (or failed,
  stalled, timed out) and gathers its figures into a ``RunOutcome``.
- ``spec`` (core.run.RunSpec) names the run: run id, cost tag, scenarios, seed.
"""
