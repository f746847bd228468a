# confluent-kafka member of a group shared with in-process consumers: prints
# its assignment changes with the time, every record it consumes, and
# commits each record; runs until the stop file exists.
import os, sys, time
from confluent_kafka import Consumer
bootstrap, topic, group, stop = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group, 'auto.offset.reset': 'earliest',
              'enable.auto.commit': False, 'session.timeout.ms': 6000, 'heartbeat.interval.ms': 100,
              'partition.assignment.strategy': 'range'})
def parts(ps):
    return ",".join(str(p.partition) for p in sorted(ps, key=lambda p: p.partition))
def on_assign(consumer, ps):
    print("assigned", repr(time.time()), parts(ps), flush=True)
def on_revoke(consumer, ps):
    print("revoked", repr(time.time()), parts(ps), flush=True)
c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_revoke)
while not os.path.exists(stop):
    m = c.poll(0.05)
    if m is not None and not m.error():
        c.commit(message=m, asynchronous=False)
        print("consumed", m.partition(), m.offset(), flush=True)
c.close()
print("closed", repr(time.time()), flush=True)
