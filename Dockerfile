# syntax=docker/dockerfile:1
# tokenpipe image: the `tokenpipe` CLI (worker, migrate, ...) on python:3.11-slim.
#
#   docker build -t tokenpipe .
#   docker run --rm tokenpipe --help
#   docker run --rm -e TOKENPIPE_KAFKA_BOOTSTRAP=... -e TOKENPIPE_CLICKHOUSE_DSN=... tokenpipe worker
#
# Two stages: the build stage has a compiler (for any dependency that ships no wheel for
# the platform) and writes a virtualenv; the runtime stage only copies that virtualenv.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# The whole (filtered, see .dockerignore) context: pyproject.toml, README.md and the packages.
COPY . .
# The pip cache survives between builds (BuildKit), so a code change does not re-download
# chdb/pyarrow; `pip install .` builds a regular (non-editable) install into the venv.
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install . \
 && tokenpipe --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="tokenpipe" \
      org.opencontainers.image.description="LLM token usage and cost metering: Kafka + faust workers + ClickHouse"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TOKENPIPE_DATA_DIR=/var/lib/tokenpipe \
    TOKENPIPE_WEB_HOST=0.0.0.0 \
    TOKENPIPE_WEB_PORT=6066
# Unprivileged user; its home is the data dir (faust table stores, embedded ClickHouse).
RUN groupadd --system --gid 10001 tokenpipe \
 && useradd --system --uid 10001 --gid tokenpipe --home-dir /var/lib/tokenpipe \
      --create-home --shell /usr/sbin/nologin tokenpipe
COPY --from=build /opt/venv /opt/venv
USER tokenpipe
WORKDIR /var/lib/tokenpipe
EXPOSE 6066
# slim has no curl: ask /health with the standard library. urlopen raises on a refused
# connection, a timeout or an HTTP status >= 400, and the traceback makes the exit code 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('TOKENPIPE_WEB_PORT', '6066'), timeout=4)"]
ENTRYPOINT ["tokenpipe"]
CMD ["worker"]
