"""The scenario-2 stack's ECS worker service: scale it, show it, push its image (make scale-up/-down, ecs-status,
deploy-ecs).

    python scripts/ecs_service.py --stack scenario-2-dev --region eu-west-1 scale 2 --wait
    python scripts/ecs_service.py --stack scenario-2-dev --region eu-west-1 status [--require-running]
    python scripts/ecs_service.py --stack scenario-2-dev --region eu-west-1 push-image jobgraph-worker:abc abc

Cluster, service and repository come from the stack's outputs (ClusterName, ServiceName, RepositoryUri).
Needs credentials for that account; boto3 only, plus the docker CLI for push-image.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import time


def stack_outputs(stack: str, region: str, cloudformation=None) -> dict[str, str]:
    import boto3

    cloudformation = cloudformation or boto3.client("cloudformation", region_name=region)
    (described,) = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    missing = {"ClusterName", "ServiceName", "RepositoryUri"} - set(outputs)
    if missing:
        raise SystemExit(f"stack {stack} lacks the output(s) {', '.join(sorted(missing))}: is it a scenario-2 stack?")
    return outputs


def describe_service(ecs, outputs: dict[str, str]) -> dict:
    (service,) = ecs.describe_services(cluster=outputs["ClusterName"], services=[outputs["ServiceName"]])["services"]
    return service


def scale(ecs, outputs: dict[str, str], desired: int, wait: bool, timeout_s: float = 600, poll_s: float = 2) -> dict:
    """Set the desired count; with ``wait``, until that many tasks run (ECS stops tasks with SIGTERM)."""
    ecs.update_service(cluster=outputs["ClusterName"], service=outputs["ServiceName"], desiredCount=desired)
    print(f"{outputs['ServiceName']}: desired count {desired}")
    deadline = time.monotonic() + timeout_s
    while True:
        service = describe_service(ecs, outputs)
        running, pending = service["runningCount"], service["pendingCount"]
        if not wait or (running == desired and pending == 0):
            print(f"{outputs['ServiceName']}: {running} running, {pending} pending")
            return service
        if time.monotonic() > deadline:
            raise SystemExit(f"{outputs['ServiceName']}: {running} running after {timeout_s:.0f} s, wanted {desired}")
        time.sleep(poll_s)


def status(ecs, outputs: dict[str, str], require_running: bool) -> int:
    service = describe_service(ecs, outputs)
    print(
        f"{service['serviceName']} ({outputs['ClusterName']}): desired {service['desiredCount']}, "
        f"running {service['runningCount']}, pending {service['pendingCount']}\n"
        f"  task definition {service['taskDefinition']}"
    )
    for event in service.get("events", [])[:5]:
        print(f"  {event.get('createdAt')}: {event.get('message')}")
    if require_running and service["runningCount"] == 0:
        print(
            "no worker task is running: jobs would wait on the incoming queue. "
            "Start some with `make scale-up DESIRED_COUNT=2 ENV=...`",
            file=sys.stderr,
        )
        return 1
    return 0


def push_image(ecr, outputs: dict[str, str], local_image: str, tag: str) -> str:
    """docker login to the stack's registry with an ECR token, tag the local image, push it."""
    repository = outputs["RepositoryUri"]
    registry = repository.split("/", 1)[0]
    (auth,) = ecr.get_authorization_token()["authorizationData"]
    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    subprocess.run(
        ["docker", "login", "--username", user, "--password-stdin", registry], input=password, text=True, check=True
    )
    target = f"{repository}:{tag}"
    subprocess.run(["docker", "tag", local_image, target], check=True)
    subprocess.run(["docker", "push", target], check=True)
    print(f"pushed {target}")
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="scenario-2 stack name, e.g. scenario-2-dev")
    parser.add_argument("--region", required=True)
    commands = parser.add_subparsers(dest="command", required=True)
    scale_parser = commands.add_parser("scale", help="set the service's desired count")
    scale_parser.add_argument("desired", type=int)
    scale_parser.add_argument("--wait", action="store_true", help="until that many tasks run")
    status_parser = commands.add_parser("status", help="desired/running tasks and recent events")
    status_parser.add_argument("--require-running", action="store_true", help="exit 1 when no task runs")
    push = commands.add_parser("push-image", help="push a local image to the stack's ECR repository")
    push.add_argument("local_image")
    push.add_argument("tag")
    args = parser.parse_args(argv)

    import boto3

    outputs = stack_outputs(args.stack, args.region)
    if args.command == "scale":
        if args.desired < 0:
            parser.error("desired count must be >= 0")
        scale(boto3.client("ecs", region_name=args.region), outputs, args.desired, args.wait)
        return 0
    if args.command == "status":
        return status(boto3.client("ecs", region_name=args.region), outputs, args.require_running)
    push_image(boto3.client("ecr", region_name=args.region), outputs, args.local_image, args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
