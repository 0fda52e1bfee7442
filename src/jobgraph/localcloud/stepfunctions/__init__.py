"""Step Functions, locally: moto's ASL engine with state machines from CloudFormation and Lambda tasks in the local runtime; leaves out execution history of Map iterations."""
