#!/usr/bin/env bash
# Figures for the Kafka front: time from start to a working endpoint, and
# produce throughput of 100 B records through kcat (librdkafka) against
# the in-process path (`streamlog perf`-like loop via kcat's own count).
# Usage: bash crates/streamlog-kafka/bench/wire_bench.sh [RECORDS]
set -euo pipefail
cd "$(dirname "$0")/../../.."
N=${1:-500000}
cargo build --release -q -p streamlog-kafka
DIR=$(mktemp -d); PORT=$((20000 + RANDOM % 10000))
start=$(date +%s%N)
(sleep 600 | STREAMLOG_KAFKA_EXIT_ON_EOF=1 target/release/streamlog-kafka serve --data "$DIR/data" --listen 127.0.0.1:$PORT >/dev/null) &
until kcat -b 127.0.0.1:$PORT -L -t warm >/dev/null 2>&1; do sleep 0.005; done
ready=$(date +%s%N)
echo "process start to first successful metadata (kcat -L): $(( (ready - start) / 1000000 )) ms"
python3 -c "import sys; r=b'x'*100+b'\n'; sys.stdout.buffer.write(r*$N)" > "$DIR/in"
t0=$(date +%s%N)
kcat -b 127.0.0.1:$PORT -P -t bench -p 0 -X linger.ms=5 -X batch.num.messages=10000 < "$DIR/in"
t1=$(date +%s%N)
echo "kcat produce of $N x 100 B: $(( N * 1000000000 / (t1 - t0) )) records/s"
t0=$(date +%s%N)
kcat -b 127.0.0.1:$PORT -C -t bench -p 0 -o beginning -e -q -f '\n' | wc -l >/dev/null
t1=$(date +%s%N)
echo "kcat consume of $N: $(( N * 1000000000 / (t1 - t0) )) records/s"
pkill -P $$ sleep || true
rm -rf "$DIR"
