# kafka-python consumer iterating from earliest.
import sys
from kafka import KafkaConsumer
bootstrap, topic, expect = sys.argv[1], sys.argv[2], int(sys.argv[3])
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset='earliest',
                         consumer_timeout_ms=10000, group_id=sys.argv[4] if len(sys.argv) > 4 else None)
n = 0
for m in consumer:
    key = m.key.decode() if m.key is not None else None
    print(f"{m.topic}:{m.partition}:{m.offset}: key={key} value={m.value.decode()}")
    n += 1
    if n == expect:
        break
if len(sys.argv) > 4:
    consumer.commit()
consumer.close()
