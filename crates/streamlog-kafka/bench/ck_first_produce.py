# Started before the server: a confluent-kafka producer that keeps trying to
# connect; prints "ready" once its record is queued, then "delivered" when
# the server has acknowledged it.
import sys
from confluent_kafka import Producer
bootstrap, topic = sys.argv[1], sys.argv[2]
p = Producer({'bootstrap.servers': bootstrap, 'reconnect.backoff.ms': 1, 'reconnect.backoff.max.ms': 2,
              'linger.ms': 0, 'log_level': 0, 'topic.metadata.refresh.fast.interval.ms': 1, 'retry.backoff.ms': 1})
ok = []
p.produce(topic, value=b'x' * 100, on_delivery=lambda err, msg: ok.append(err is None))
print("ready", flush=True)
p.flush(30)
print("delivered" if ok == [True] else "failed", flush=True)
