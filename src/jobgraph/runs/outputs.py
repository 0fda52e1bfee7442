"""A deployed stack's CloudFormation outputs: read once, then each workload requires the ones it uses.

The output keys are the names: the templates' ``Outputs`` and this module say the same thing, so there is
no second vocabulary to keep in step (``outputs["JobsTableName"]``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from jobgraph.runs.outcome import RunFailed

DEPLOYED = ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE")
# what a queue graph (scenarios 1 and 2) and a synthetic load read from their stack
QUEUE_OUTPUTS = (
    "IncomingQueueUrl",
    "OutgoingQueueUrl",
    "IncomingDlqUrl",
    "OutgoingDlqUrl",
    "ResultsBucketName",
    "JobsTableName",
    "StartRunFunctionName",
)
# what a state machine graph (scenario 3) reads from its stack
STATE_MACHINE_OUTPUTS = ("StateMachineArn", "ResultsBucketName", "JobsTableName")


@dataclass(frozen=True)
class StackOutputs(Mapping[str, str]):
    """Every output of one deployed stack, by output key; its parameter values beside them (the settings
    `jobgraph project` models: batch size, concurrency...), read in the same call."""

    stack_name: str
    values: Mapping[str, str]
    parameters: Mapping[str, str] = field(default_factory=dict)

    def __getitem__(self, key: str) -> str:
        return self.values[key]

    def __iter__(self):
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def require(self, keys: Iterable[str], kind: str) -> StackOutputs:
        """These outputs, or RunFailed naming the missing ones and the kind of stack that has them."""
        missing = sorted(set(keys) - set(self.values))
        if missing:
            raise RunFailed(f"stack {self.stack_name} lacks the output(s) {', '.join(missing)}: is it {kind}?")
        return self


def read_outputs(cloudformation, stack_name: str) -> StackOutputs:
    """The outputs (and parameters) of a deployed stack; RunFailed if it does not exist or is not deployed."""
    from botocore.exceptions import ClientError

    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise RunFailed(f"stack {stack_name}: {exc.response.get('Error', {}).get('Message', exc)}") from None
    stack = stacks[0]
    if stack["StackStatus"] not in DEPLOYED:
        raise RunFailed(f"stack {stack_name} is {stack['StackStatus']}, not deployed")
    return StackOutputs(
        stack_name,
        {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
        {p["ParameterKey"]: p.get("ResolvedValue", p.get("ParameterValue", "")) for p in stack.get("Parameters", [])},
    )
