# kafka-python producer (the seed program): raw bytes and a keyed record.
import sys
from kafka import KafkaProducer
bootstrap, topic = sys.argv[1], sys.argv[2]
producer = KafkaProducer(bootstrap_servers=bootstrap)
for fut in [producer.send(topic, b'raw bytes'), producer.send(topic, key=b'key1', value=b'keyed value')]:
    md = fut.get(timeout=10)
    print(md.topic, md.partition, md.offset)
producer.flush()
producer.close()
