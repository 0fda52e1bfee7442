# jobgraph ECS worker (scenario 2): `python3.13 -m jobgraph.services.worker`, the task definition's command.
#
# Built from the context `make worker-context` prepares (.aws-sam/worker-image): site-packages/ holds the
# jobgraph package (core, adapters, services — what the Lambda core layer ships) and the pinned wheels of
# both layers plus boto3, downloaded for manylinux/cp313 on the host. So the build itself needs neither pip
# nor a network, only a base image with python3.13:
#   BASE_IMAGE=python:3.13-slim (default, Docker Hub), or any local image with /usr/bin/python3.13 or
#   /usr/local/bin/python3.13, e.g. the debootstrap-built Debian trixie image of `make lambda-image`.
ARG BASE_IMAGE=python:3.13-slim
FROM ${BASE_IMAGE}

COPY site-packages /opt/jobgraph/site-packages
ENV PYTHONPATH=/opt/jobgraph/site-packages \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Bytecode compiled once by the image's own interpreter (the task's root file system is read-only), and the
# image refuses to build if the worker cannot even be imported.
RUN python3.13 -m compileall -q /opt/jobgraph/site-packages \
 && POWERTOOLS_TRACE_DISABLED=true python3.13 -c "import jobgraph.services.worker"

# nobody: the worker needs no privileges and writes nothing but /tmp (a task volume)
USER 65534:65534
CMD ["python3.13", "-m", "jobgraph.services.worker"]
