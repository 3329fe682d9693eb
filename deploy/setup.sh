#!/usr/bin/env bash
# One setup path for a fresh machine (Debian, Python >= 3.11): idempotent, quick when cached.
#
#   1. Java 17+ and Maven           (Debian packages, only when missing)
#   2. PostgreSQL server            (Debian packages, only when missing)
#      promtool, chromium + chromedriver for the observability tests (same)
#   3. Python virtualenv            ($LAKESYNC_VENV, default ./.venv; from the lock files, with hashes)
#   4. JVM jars with Maven          (deploy/maven/*.pom.xml -> $LAKESYNC_CACHE_DIR/jars/{spark,s3a,kafka,connect,connect-plugins})
#   5. SeaweedFS (S3 server)        (built from its Go module -> $LAKESYNC_CACHE_DIR/bin/weed)
#   6. the executors' Python        (the runtime lock file packed with venv-pack ->
#                                    $LAKESYNC_CACHE_DIR/pyenv/executor-env-<stamp>.tar.gz)
#
# Nothing is downloaded at run time: Spark gets the jars through spark.jars, the embedded Kafka
# broker runs from its own jar directory. Set LAKESYNC_SETUP_QUIET=1 to silence progress lines.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LAKESYNC_VENV:-$ROOT/.venv}"
CACHE="${LAKESYNC_CACHE_DIR:-$HOME/.cache/lakesync}"
PYTHON="${PYTHON:-python3}"
# Empty LAKESYNC_EXTRAS: the runtime dependencies only (deploy/requirements/runtime.txt).
EXTRAS="${LAKESYNC_EXTRAS-dev,bench}"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.11.0"
# SeaweedFS publishes no semver tags: its Go module is pinned by pseudo-version (commit of 2026-11-09).
SEAWEEDFS_MODULE="github.com/seaweedfs/seaweedfs"
SEAWEEDFS_VERSION="v0.0.0-20261109003541-7506e5f91cd6"
started=$SECONDS

say() { [ "${LAKESYNC_SETUP_QUIET:-0}" = 1 ] || echo "[setup] $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "[setup] need root to run: $*" >&2; exit 1; fi
}

apt_updated=0
apt_install() {
  if [ $apt_updated = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  say "installing Debian packages: $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}

ensure_system_packages() {
  if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then apt_install openjdk-17-jre-headless; fi
  command -v mvn >/dev/null || apt_install maven
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then apt_install postgresql; fi
  # `runuser` runs initdb/pg_ctl as the postgres user when we are root (util-linux, always there on Debian).
  command -v runuser >/dev/null || apt_install util-linux
  # Observability tests: promtool (Debian's prometheus package) checks the alert rules, and a real
  # headless Chromium driven through chromedriver renders the built-in lag page.
  command -v promtool >/dev/null || apt_install prometheus
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt_install chromium chromium-driver
  fi
}

stamp_of() { cat "$@" | sha256sum | cut -c1-16; }

# The virtualenv holds exactly the lock files' versions, checked against their hashes
# (deploy/requirements/: runtime.txt, or dev.txt = runtime + the dev and bench extras), then
# lakesync itself, editable and without dependencies. `make lock` updates the locks.
ensure_venv() {
  local lock="$ROOT/deploy/requirements/dev.txt"
  [ -n "$EXTRAS" ] || lock="$ROOT/deploy/requirements/runtime.txt"
  local stamp; stamp="$(stamp_of "$ROOT/pyproject.toml" "$lock")"
  if [ -f "$VENV/.lakesync-stamp" ] && [ "$(cat "$VENV/.lakesync-stamp")" = "$stamp" ]; then
    say "python env up to date ($VENV)"; return
  fi
  say "creating python env in $VENV from $(basename "$lock")"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip setuptools
  "$VENV/bin/python" -m pip install -q --require-hashes --requirement "$lock"
  # The build backend is the setuptools just installed: no isolated build env to download.
  "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation --editable "$ROOT"
  echo "$stamp" > "$VENV/.lakesync-stamp"
}

# Copy a pom's runtime dependencies into $2; skipped when the pom has not changed since last time.
fetch_jars() {
  local pom="$1" dest="$2" stamp
  stamp="$(stamp_of "$pom")"
  if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$stamp" ]; then
    say "jars up to date ($dest)"; return
  fi
  say "fetching jars for $(basename "$pom") into $dest"
  local tmp="$dest.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  # Maven prints terminal escape codes even when quiet: its output is shown only if it fails.
  if ! mvn -B -q -Dstyle.color=never -f "$pom" "$DEPENDENCY_PLUGIN:copy-dependencies" \
      -DoutputDirectory="$tmp" -DincludeScope=runtime >"$tmp.log" 2>&1; then
    echo "[setup] Maven could not fetch the jars of $(basename "$pom"):" >&2
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    exit 1
  fi
  rm -f "$tmp.log"
  echo "$stamp" > "$tmp/.stamp"
  # Swap in whole, so an interrupted fetch never leaves a half-filled directory behind.
  rm -rf "$dest"; mv "$tmp" "$dest"
}

# SeaweedFS's go.mod has a replace directive, which `go install module@version` refuses: download the
# module and build its `weed` command inside it, where the module is the main module.
ensure_seaweedfs() {
  local bin="$CACHE/bin/weed"
  if [ -x "$bin" ] && [ "$(cat "$bin.version" 2>/dev/null)" = "$SEAWEEDFS_VERSION" ]; then
    say "seaweedfs up to date ($bin)"; return
  fi
  command -v go >/dev/null || apt_install golang-go
  say "building seaweedfs $SEAWEEDFS_VERSION (a few minutes, once)"
  local dir
  dir="$(cd "$CACHE" && GOTOOLCHAIN=auto go mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -n "$dir" ] || { echo "[setup] could not download $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" >&2; exit 1; }
  mkdir -p "$CACHE/bin"
  (cd "$dir" && GOTOOLCHAIN=auto go build -buildvcs=false -o "$bin.tmp.$$" ./weed)
  mv "$bin.tmp.$$" "$bin"
  echo "$SEAWEEDFS_VERSION" > "$bin.version"
}

# What Spark executors run Python with on a cluster: the runtime lock file (with its hashes) in a venv
# packed by venv-pack, shipped with `spark.archives` (lakesync itself travels as a wheel, named .zip, in
# spark.submit.pyFiles). pyspark's jars/ are left out: executors run the cluster's own Spark JVM.
ensure_executor_env() {
  local lock="$ROOT/deploy/requirements/runtime.txt" stamp out build
  stamp="$(stamp_of "$lock")"
  out="$CACHE/pyenv/executor-env-$stamp.tar.gz"
  if [ -f "$out" ]; then say "executor python env up to date ($out)"; return; fi
  say "packing the executors' python env into $out"
  mkdir -p "$CACHE/pyenv"
  build="$CACHE/pyenv/build.$$"
  rm -rf "$build"
  "$PYTHON" -m venv "$build"
  PYTHONWARNINGS=ignore "$build/bin/python" -m pip install -q --require-hashes --requirement "$lock"
  rm -rf "$build"/lib/python*/site-packages/pyspark/jars
  # venv-pack picks the format from the name: the partial file must end in .tar.gz too.
  "$VENV/bin/venv-pack" -q -p "$build" -o "$CACHE/pyenv/partial.$$.tar.gz"
  chmod 644 "$CACHE/pyenv/partial.$$.tar.gz"
  mv "$CACHE/pyenv/partial.$$.tar.gz" "$out"
  rm -rf "$build"
}

ensure_system_packages
ensure_venv
mkdir -p "$CACHE/jars"
fetch_jars "$ROOT/deploy/maven/spark-jars.pom.xml" "$CACHE/jars/spark"
fetch_jars "$ROOT/deploy/maven/s3a-jars.pom.xml" "$CACHE/jars/s3a"
ensure_seaweedfs
ensure_executor_env
fetch_jars "$ROOT/deploy/maven/kafka-broker.pom.xml" "$CACHE/jars/kafka"
# The consumer benchmark's reference: Kafka Connect standalone and the Debezium JDBC sink plugin.
fetch_jars "$ROOT/deploy/maven/kafka-connect.pom.xml" "$CACHE/jars/connect"
mkdir -p "$CACHE/jars/connect-plugins"
fetch_jars "$ROOT/deploy/maven/debezium-jdbc-sink.pom.xml" "$CACHE/jars/connect-plugins/debezium-jdbc"
say "ready in $((SECONDS - started)) s: $VENV/bin/lakesync, jars in $CACHE/jars"
