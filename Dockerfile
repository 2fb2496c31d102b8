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

# Building needs BuildKit (Docker 23+, `docker buildx`) or buildah: `RUN --mount` below. There
# is no `# syntax=` line on purpose, so an air-gapped build does not pull a frontend image.
#
# BASE_IMAGE is any Debian-like image whose `python` is CPython 3.11+ with pip (make
# image-test builds a stand-in from Debian's packages where the default cannot be pulled).
ARG PYTHON_VERSION=3.11
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim

# --- build: the package and every dependency as wheels ---------------------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

# --- the base image ------------------------------------------------------------------
FROM ${BASE_IMAGE}
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
