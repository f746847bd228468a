#!/usr/bin/env bash
# Installs the Kafka clients that crates/streamlog-kafka's tests run against:
# kcat from Debian's packages, kafka-python and confluent-kafka from PyPI in a
# virtualenv at .venv-kafka. Idempotent; a client that cannot be installed is
# reported, and the tests that need it skip (saying so).
set -uo pipefail
cd "$(dirname "$0")/.."
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v kcat >/dev/null || need_apt+=(kcat)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null; then
    $SUDO apt-get update -qq >/dev/null 2>&1 || echo "install-test-clients: apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 \
        || echo "install-test-clients: apt-get install ${need_apt[*]} failed"
fi
command -v kcat >/dev/null && echo "install-test-clients: kcat $(kcat -V 2>/dev/null | head -1)"

VENV=.venv-kafka
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV" || { echo "install-test-clients: cannot create $VENV"; exit 0; }
fi
if ! "$VENV/bin/python" -c 'import kafka, confluent_kafka, msgpack' 2>/dev/null; then
    "$VENV/bin/pip" install -q --disable-pip-version-check kafka-python confluent-kafka msgpack \
        || echo "install-test-clients: pip install failed"
fi
"$VENV/bin/python" -c 'import kafka, confluent_kafka; print("install-test-clients: kafka-python", kafka.__version__, "confluent-kafka", confluent_kafka.version()[0], "librdkafka", confluent_kafka.libversion()[0])' 2>/dev/null || true
exit 0
