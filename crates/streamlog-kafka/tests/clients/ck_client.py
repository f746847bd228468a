# confluent-kafka: produce with delivery callbacks + flush; consumer with
# assign/seek; offsets_for_times; get_watermark_offsets; commit.
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
bootstrap, topic = sys.argv[1], sys.argv[2]
delivered = []
def cb(err, msg):
    if err is not None:
        print("delivery failed", err); sys.exit(1)
    delivered.append((msg.partition(), msg.offset()))
p = Producer({'bootstrap.servers': bootstrap, 'enable.idempotence': True, 'linger.ms': 5, 'compression.type': sys.argv[3] if len(sys.argv) > 3 else 'none'})
t0 = int(time.time() * 1000)
for i in range(10):
    p.produce(topic, key=b'k%d' % i, value=b'v%d' % i, partition=0, timestamp=t0 + i * 1000,
              headers=[('h', b'x%d' % i)], on_delivery=cb)
p.produce(topic, key=b'nullvalue', value=None, partition=0, timestamp=t0 + 10000, on_delivery=cb)
assert p.flush(10) == 0
print("delivered", len(delivered), sorted(delivered)[0], sorted(delivered)[-1])
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'ck-group', 'enable.auto.commit': False})
lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
print("watermarks", lo, hi)
[tp] = c.offsets_for_times([TopicPartition(topic, 0, t0 + 3500)], timeout=10)
print("offset_for_time", tp.offset)
c.assign([TopicPartition(topic, 0, 5)])
got = []
deadline = time.time() + 10
while len(got) < 6 and time.time() < deadline:
    m = c.poll(1.0)
    if m is None or m.error():
        continue
    got.append(m)
print("from5", [m.offset() for m in got])
print("headers", got[0].headers(), "value_none", got[-1].value() is None, "ts", got[0].timestamp()[1] - t0)
c.seek(TopicPartition(topic, 0, 2))
m = None
while m is None or m.error():
    m = c.poll(1.0)
print("after_seek", m.offset(), m.key(), m.value())
c.commit(offsets=[TopicPartition(topic, 0, 7, "meta-data")], asynchronous=False)
[cm] = c.committed([TopicPartition(topic, 0)], timeout=10)
print("committed", cm.offset, cm.metadata)
c.close()
