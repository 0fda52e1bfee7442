"""Embedded local cloud: moto's server + the SAM template + a local Lambda runtime that polls SQS itself.

No Docker and no AWS: every endpoint is on 127.0.0.1 and every credential is fake.
"""
