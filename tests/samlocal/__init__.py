"""The `sam local invoke` harness (make test-docker, scripts/local_invoke.py): the case catalogue and the Docker driver."""
