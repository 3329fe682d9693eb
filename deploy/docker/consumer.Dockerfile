# syntax=docker/dockerfile:1
# The consumer service, `lakesync consume` (Kafka -> PostgreSQL). Build from the repository root:
#
#   docker build -f deploy/docker/consumer.Dockerfile -t lakesync-consumer:0.1.0 .
#
# Configuration: a TOML file at $LAKESYNC_CONFIG (mount it), LAKESYNC_<SECTION>__<KEY> variables,
# and secret files in $LAKESYNC_SECRETS_DIR named like those variables. Nothing secret is baked in.
# Base images are pinned by exact version tag; add digests where a registry is reachable
# (deploy/README.md, "Images").

# --- build: the lakesync wheel and a virtualenv with the consumer's pinned dependencies ----------
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY lakesync/ lakesync/
COPY changes/ changes/
COPY connectors/ connectors/
COPY streaming/ streaming/
COPY batch/ batch/
COPY observability/ observability/
COPY deploy/ deploy/
# The consumer never starts Spark nor reads Delta: no pyspark, delta-spark, deltalake or pandas
# (tests/unit/streaming/consumer/test_no_spark.py keeps it so). It keeps Arrow: it decodes
# envelopes and writes COPY data with it. Every version and hash comes from the consumer's lock
# file (deploy/requirements/consumer.txt, `make lock`); lakesync itself goes in without dependencies.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/lakesync \
    && /opt/lakesync/bin/pip install --no-cache-dir --require-hashes --requirement deploy/requirements/consumer.txt \
    && /opt/lakesync/bin/pip install --no-cache-dir --no-deps /wheels/lakesync-0.1.0-py3-none-any.whl

# --- runtime: the interpreter, the virtualenv, an unprivileged user; no compiler, no pip cache ----
FROM python:3.11.14-slim-bookworm
RUN groupadd --system --gid 10001 lakesync \
    && useradd --system --uid 10001 --gid lakesync --home-dir /nonexistent --shell /usr/sbin/nologin lakesync
COPY --from=build /opt/lakesync /opt/lakesync
ENV PATH=/opt/lakesync/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LAKESYNC_CONFIG=/etc/lakesync/lakesync.toml \
    LAKESYNC_LOG_FORMAT=json \
    LAKESYNC_CONSUMER__HTTP_HOST=0.0.0.0 \
    LAKESYNC_CONSUMER__HTTP_PORT=9101
USER 10001:10001
WORKDIR /tmp
EXPOSE 9101
# SIGTERM: the batch in flight gets consumer.shutdown_grace_s, the process exits within 10 s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "deploy.healthcheck", "consumer", "/healthz"]
ENTRYPOINT ["lakesync", "consume"]
CMD []
