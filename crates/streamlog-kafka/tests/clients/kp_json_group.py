# A JSON-serializing kafka-python producer, then a consumer in a group with
# auto_offset_reset='earliest' that reads them all, commits, and prints each.
import sys, json
from kafka import KafkaProducer, KafkaConsumer
bootstrap, topic, group, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
producer = KafkaProducer(bootstrap_servers=bootstrap, value_serializer=lambda v: json.dumps(v).encode('utf-8'))
for i in range(n):
    producer.send(topic, {'n': i, 'text': 'record %d' % i})
producer.flush()
producer.close()
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset='earliest',
                         enable_auto_commit=False, consumer_timeout_ms=15000,
                         value_deserializer=lambda b: json.loads(b.decode('utf-8')))
got = []
for m in consumer:
    got.append(m.value['n'])
    if len(got) == n:
        break
consumer.commit()
consumer.close()
print("consumed", sorted(got))
