# confluent-kafka group member: subscribes, prints its assignment as it
# changes, stops after `seconds`.
import sys, time
from confluent_kafka import Consumer
bootstrap, topic, name, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'ck-members', 'auto.offset.reset': 'earliest',
              'session.timeout.ms': 6000, 'heartbeat.interval.ms': 200})
def on_assign(consumer, parts):
    print(name, "assigned", sorted(p.partition for p in parts), flush=True)
c.subscribe([topic], on_assign=on_assign)
end = time.time() + seconds
count = 0
while time.time() < end:
    m = c.poll(0.2)
    if m is not None and not m.error():
        count += 1
print(name, "consumed", count, flush=True)
c.close()
