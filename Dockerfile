# syntax=docker/dockerfile:1
#
# ticklake worker image: `ticklake collect`, `ticklake sink`, `ticklake emulate`.
#
#   docker build -t ticklake:$(git describe --always) .
#   docker run --rm ticklake:... sink --config /etc/ticklake/config.yaml
#
# Dependencies come from requirements-runtime.lock: the runtime subset of
# requirements.lock, pinned to the same versions (scripts/check-deploy
# verifies that), so the image never resolves anything on its own. Every
# dependency ships wheels for CPython 3.11 on manylinux, so neither stage
# needs a compiler.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- build: a virtualenv with the locked dependencies and ticklake ----------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ONLY_BINARY=:all: \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/ticklake
ENV PATH=/opt/ticklake/bin:$PATH

WORKDIR /src
COPY requirements-runtime.lock ./
RUN pip install --no-deps --requirement requirements-runtime.lock

# The package itself: a wheel built from the source tree, without dependencies
# (they are all in the lock above). hatchling is a pure-Python wheel.
COPY pyproject.toml README.md ./
COPY worker ./worker
RUN pip install --no-deps . \
    && pip check \
    && python -m compileall -q /opt/ticklake/lib

# --- runtime: the virtualenv on a clean slim image, as an unprivileged user --
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="ticklake" \
      org.opencontainers.image.description="Market-data lake ingestion: collectors, Kafka sink, Parquet on S3" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN groupadd --system --gid 10001 ticklake \
    && useradd --system --uid 10001 --gid ticklake --no-create-home \
       --home-dir /tmp --shell /usr/sbin/nologin ticklake

COPY --from=build /opt/ticklake /opt/ticklake

# HOME=/tmp: the root filesystem is read-only in Kubernetes; /tmp is an emptyDir.
ENV PATH=/opt/ticklake/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

USER 10001:10001
WORKDIR /tmp
EXPOSE 9100

ENTRYPOINT ["ticklake"]
CMD ["--help"]
