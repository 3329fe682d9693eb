# syntax=docker/dockerfile:1
# The Spark jobs: `lakesync stream` (default), `reconcile`, `rebuild` through spark-submit.
# Build from the repository root:
#
#   docker build -f deploy/docker/spark.Dockerfile -t lakesync-spark:0.1.0 .
#   docker run lakesync-spark:0.1.0 stream --once
#
# Spark is pyspark's distribution (the version pyproject.toml pins, the one the tests run), on a
# Temurin 17 JRE. The Delta and PostgreSQL JDBC jars come from the same Maven pom and plugin as
# deploy/setup.sh, into Spark's own jars/ directory: on the classpath of the driver and of every
# executor started from this image (Kubernetes), with nothing fetched at run time.
# spark-submit options go in $SPARK_CONF_DIR/spark-defaults.conf (mount one; see deploy/k8s/).

# --- jars: deploy/maven/spark-jars.pom.xml and s3a-jars.pom.xml (the S3A connector for s3a://
# tables and state), resolved like deploy/setup.sh does -----------------------------------------
FROM maven:3.9.11-eclipse-temurin-17 AS jars
WORKDIR /build
COPY deploy/maven/spark-jars.pom.xml ./spark-jars.pom.xml
COPY deploy/maven/s3a-jars.pom.xml ./s3a-jars.pom.xml
RUN mvn -B -q -Dstyle.color=never -f spark-jars.pom.xml \
        org.apache.maven.plugins:maven-dependency-plugin:3.11.0:copy-dependencies \
        -DoutputDirectory=/jars -DincludeScope=runtime \
    && mvn -B -q -Dstyle.color=never -f s3a-jars.pom.xml \
        org.apache.maven.plugins:maven-dependency-plugin:3.11.0:copy-dependencies \
        -DoutputDirectory=/jars -DincludeScope=runtime

# --- build: the lakesync wheel and a virtualenv with every pinned dependency (pyspark included) -
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
# Every version and hash comes from the runtime lock file (deploy/requirements/runtime.txt, `make lock`).
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && python -m venv /opt/lakesync \
    && /opt/lakesync/bin/pip install --no-cache-dir --require-hashes --requirement deploy/requirements/runtime.txt \
    && /opt/lakesync/bin/pip install --no-cache-dir --no-deps /wheels/lakesync-0.1.0-py3-none-any.whl

# --- jre: only its Java runtime is copied ----------------------------------------------------------
FROM eclipse-temurin:17.0.16_8-jre-noble AS jre

# --- runtime -------------------------------------------------------------------------------------
FROM python:3.11.14-slim-bookworm
RUN groupadd --system --gid 10001 lakesync \
    && useradd --system --uid 10001 --gid lakesync --home-dir /nonexistent --shell /usr/sbin/nologin lakesync \
    && mkdir -p /opt/lakesync-spark/conf /var/lib/lakesync/state \
    && chown -R lakesync:lakesync /var/lib/lakesync
COPY --from=jre /opt/java/openjdk /opt/java/openjdk
COPY --from=build /opt/lakesync /opt/lakesync
COPY --from=jars /jars/ /opt/lakesync/lib/python3.11/site-packages/pyspark/jars/
COPY deploy/spark/driver.py /opt/lakesync-spark/driver.py
COPY deploy/spark/executor-entrypoint.sh /opt/lakesync-spark/executor-entrypoint.sh
ENV JAVA_HOME=/opt/java/openjdk \
    SPARK_HOME=/opt/lakesync/lib/python3.11/site-packages/pyspark \
    SPARK_CONF_DIR=/opt/lakesync-spark/conf \
    PYSPARK_PYTHON=/opt/lakesync/bin/python \
    PATH=/opt/lakesync/bin:/opt/java/openjdk/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LAKESYNC_CONFIG=/etc/lakesync/lakesync.toml \
    LAKESYNC_LOG_FORMAT=json \
    LAKESYNC_STATE_DIR=/var/lib/lakesync/state \
    LAKESYNC_STREAM__HTTP_HOST=0.0.0.0 \
    LAKESYNC_STREAM__HTTP_PORT=9102
USER 10001:10001
WORKDIR /var/lib/lakesync
EXPOSE 9102
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD ["python", "-m", "deploy.healthcheck", "stream", "/healthz"]
ENTRYPOINT ["spark-submit", "/opt/lakesync-spark/driver.py"]
CMD ["stream"]
