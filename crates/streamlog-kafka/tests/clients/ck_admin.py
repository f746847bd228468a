# confluent-kafka AdminClient against the front: CreateTopics, DescribeConfigs,
# CreatePartitions, DeleteRecords, ListGroups, DescribeGroups, DeleteTopics.
# Prints one line per step.
import sys, time
from confluent_kafka import Producer, Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, NewPartitions, ConfigResource, ResourceType
bootstrap, prefix = sys.argv[1], sys.argv[2]
a = AdminClient({'bootstrap.servers': bootstrap})
t = prefix + '-topic'
fs = a.create_topics([NewTopic(t, num_partitions=2, replication_factor=1,
                               config={'retention.ms': '3600000', 'cleanup.policy': 'delete'})])
fs[t].result(10)
print("created", t)
try:
    a.create_topics([NewTopic(t, num_partitions=2, replication_factor=1)])[t].result(10)
    print("created twice")
except Exception as e:
    print("create again:", e.args[0].name())
[res] = a.describe_configs([ConfigResource(ResourceType.TOPIC, t)]).values()
cfg = res.result(10)
print("config retention.ms", cfg['retention.ms'].value, "cleanup.policy", cfg['cleanup.policy'].value)
a.create_partitions([NewPartitions(t, 5)])[t].result(10)
md = a.list_topics(t, timeout=10)
print("partitions", len(md.topics[t].partitions))
try:
    a.create_partitions([NewPartitions(t, 3)])[t].result(10)
    print("shrunk")
except Exception as e:
    print("shrink:", e.args[0].name())
p = Producer({'bootstrap.servers': bootstrap})
for i in range(10):
    p.produce(t, value=b'v%d' % i, partition=0)
assert p.flush(10) == 0
[f] = a.delete_records([TopicPartition(t, 0, 4)]).values()
print("deleted before", f.result(10).low_watermark)
c = Consumer({'bootstrap.servers': bootstrap, 'group.id': prefix + '-group', 'auto.offset.reset': 'earliest',
              'enable.auto.commit': False})
lo, hi = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10)
print("watermarks", lo, hi)
c.subscribe([t])
m = None
deadline = time.time() + 15
while (m is None or m.error()) and time.time() < deadline:
    m = c.poll(0.5)
print("first offset after delete", m.offset(), m.partition())
groups = a.list_consumer_groups().result(10)
print("listed", prefix + '-group' in [g.group_id for g in groups.valid])
[d] = a.describe_consumer_groups([prefix + '-group']).values()
g = d.result(10)
print("described", g.group_id, str(g.state).split('.')[-1], len(g.members),
      sorted(tp.partition for tp in g.members[0].assignment.topic_partitions))
c.close()
a.delete_topics([t])[t].result(10)
print("exists after delete", t in a.list_topics(timeout=10).topics)
