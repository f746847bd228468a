# confluent-kafka throughput: produce N records of 100 B to partition 0, then
# consume them; prints records/s of each (process start-up excluded).
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
p = Producer({'bootstrap.servers': bootstrap, 'linger.ms': 5, 'batch.num.messages': 10000,
              'batch.size': 1000000, 'queue.buffering.max.messages': 1000000, 'acks': 1})
p.list_topics(topic, timeout=10)
value = b'x' * 100
t0 = time.perf_counter()
produce = p.produce
for _ in range(n):
    try:
        produce(topic, value, partition=0)
    except BufferError:
        p.poll(0.001)
        produce(topic, value, partition=0)
assert p.flush(60) == 0
t1 = time.perf_counter()
print(f"produce {n / (t1 - t0):.0f}", flush=True)
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'bench', 'enable.auto.commit': False,
              'fetch.max.bytes': 52428800, 'max.partition.fetch.bytes': 10485760})
c.assign([TopicPartition(topic, 0, 0)])
got = 0
t0 = time.perf_counter()
while got < n:
    got += sum(1 for m in c.consume(10000, 1.0) if not m.error())
t1 = time.perf_counter()
print(f"consume {n / (t1 - t0):.0f}", flush=True)
c.close()
