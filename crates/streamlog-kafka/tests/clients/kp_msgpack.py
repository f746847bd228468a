# The seed pair with msgpack serializers: a kafka-python producer that sends
# a msgpack value and a keyed one and prints `topic partition offset`, then a
# consumer with msgpack deserializers that prints
# `topic:partition:offset: key=… value=…`.
import sys
import msgpack
from kafka import KafkaProducer, KafkaConsumer
bootstrap, topic = sys.argv[1], sys.argv[2]
producer = KafkaProducer(bootstrap_servers=bootstrap, value_serializer=msgpack.dumps, key_serializer=msgpack.dumps)
futs = [producer.send(topic, {'event': 'created', 'id': 1, 'tags': ['a', 'b']}),
        producer.send(topic, key='user-7', value={'event': 'updated', 'id': 7, 'score': 1.5})]
for fut in futs:
    md = fut.get(timeout=10)
    print(md.topic, md.partition, md.offset)
producer.flush()
producer.close()
consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset='earliest', consumer_timeout_ms=10000,
                         value_deserializer=msgpack.loads, key_deserializer=lambda k: k and msgpack.loads(k))
got = []
for m in consumer:
    got.append(f"{m.topic}:{m.partition}:{m.offset}: key={m.key} value={m.value}")
    if len(got) == 2:
        break
consumer.close()
for line in sorted(got, key=lambda l: 'key=None' not in l):
    print(line)
