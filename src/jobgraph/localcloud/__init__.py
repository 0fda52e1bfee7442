"""The local cloud: a local AWS endpoint (moto's server, patched where AWS differs) and a controller that runs
whatever is deployed into it — Lambda functions, event source mappings, ECS services, state machines, alarms —
as AWS would; `jobgraph cloud up` keeps one running, `jobgraph run` starts one for a run.

No Docker and no AWS: every endpoint is on 127.0.0.1 and every credential is fake.
"""
