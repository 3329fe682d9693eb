#!/bin/bash
# Spark on Kubernetes: the command of executor pods started from the lakesync-spark image.
#
# The image's ENTRYPOINT is spark-submit with the lakesync driver. Executor pods are created by
# the driver with the argument `executor` and their settings in the environment; the executor pod
# template (deploy/k8s/spark-conf.yaml) runs this script instead, which starts Spark's Kubernetes
# executor backend the way Apache Spark's own image entrypoint does.
set -euo pipefail

if [ "${1:-}" != executor ]; then
  echo "usage: executor-entrypoint.sh executor  (run by Spark on Kubernetes in executor pods)" >&2
  exit 2
fi

java_opts=()
for name in "${!SPARK_JAVA_OPT_@}"; do  # SPARK_JAVA_OPT_0, _1, ...: the executor's JVM options
  java_opts+=("${!name}")
done
classpath="${SPARK_CONF_DIR:-$SPARK_HOME/conf}:${SPARK_HOME}/jars/*${SPARK_EXTRA_CLASSPATH:+:$SPARK_EXTRA_CLASSPATH}"

exec "${JAVA_HOME}/bin/java" "${java_opts[@]}" \
  -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
  -cp "${classpath}" \
  org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
  --driver-url "${SPARK_DRIVER_URL}" \
  --executor-id "${SPARK_EXECUTOR_ID}" \
  --cores "${SPARK_EXECUTOR_CORES}" \
  --app-id "${SPARK_APPLICATION_ID}" \
  --hostname "${SPARK_EXECUTOR_POD_IP}" \
  --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID}" \
  --podName "${SPARK_EXECUTOR_POD_NAME}"
