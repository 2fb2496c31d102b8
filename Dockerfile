# syntax=docker/dockerfile:1
#
# The s3-event-bridge base image: a Lambda custom runtime (and SQS worker) for any program
# that reads and writes files. Build your function FROM it (docs/lambda.md):
#
#   FROM s3-event-bridge
#   COPY handler.py .
#   ENV MATCH_KEY='\.jpg$'
#   CMD ["python", "handler.py"]
#
# ENTRYPOINT is the bridge; CMD, set by your image, is the handler command. Under Lambda
# (AWS_LAMBDA_RUNTIME_API set) `s3-event-bridge python handler.py` runs the `lambda` mode.
# Nothing is written outside TMPDIR (/tmp) and no root privilege is needed, as on Lambda,
# whose file system is read-only but for /tmp and whose process does not run as root.

ARG PYTHON_VERSION=3.11

# --- build: the package and every dependency as wheels ---------------------------------
FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

# --- the base image ------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim
# Installed from the wheels only (no index), byte-compiled at install time so a read-only
# file system costs no start-up time.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m pip install --no-cache-dir --no-index --find-links /wheels s3-event-bridge \
    && s3-event-bridge --version
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TMPDIR=/tmp \
    LAMBDA_TASK_ROOT=/var/task
WORKDIR /var/task
ENTRYPOINT ["s3-event-bridge"]
