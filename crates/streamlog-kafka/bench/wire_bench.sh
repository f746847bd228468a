#!/usr/bin/env bash
# Figures for the Kafka front, in one run (examples/wire_bench.rs):
# - start to first produce: KafkaServer::start until a confluent-kafka
#   producer, started before the server and retrying its connection, has its
#   first record acknowledged (also: broker open, and start to listening);
# - produce and consume throughput of 100 B records through kcat and
#   confluent-kafka against the in-process Producer::send / Consumer::poll.
# Needs scripts/install-test-clients.sh for the clients; missing ones are
# reported as SKIPPED.
# Usage: bash crates/streamlog-kafka/bench/wire_bench.sh [RECORDS]   (default 1000000)
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo run --release -q -p streamlog-kafka --example wire_bench -- "${1:-1000000}"
