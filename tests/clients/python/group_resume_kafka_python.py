#!/usr/bin/env python3
"""kafka-python consumer group: consume part of a topic, commit, close; a new consumer in
the same group resumes exactly at the committed offset.

    group_resume_kafka_python.py BOOTSTRAP
"""
import os
import sys
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.environ["EDDY_BOOTSTRAP"]
    topic = f"kp-grp-{uuid.uuid4().hex[:8]}"
    group = f"kpg-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(100):
        p.send(topic, f"v{i}".encode())
    p.flush()
    p.close()

    def consumer():
        return KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=10000, heartbeat_interval_ms=1000,
                             consumer_timeout_ms=15000, max_poll_records=10)

    c = consumer()
    seen = []
    for m in c:
        seen.append(m.offset)
        if len(seen) == 40:
            break
    if seen != list(range(40)):
        fail(f"first consumer read {seen[:5]}... expected offsets 0..39 in order")
    # kafka-python 2.0 has OffsetAndMetadata(offset, metadata); 2.1+ adds leader_epoch.
    fields = len(OffsetAndMetadata._fields)
    oam = OffsetAndMetadata(40, "checkpoint", -1) if fields == 3 else OffsetAndMetadata(40, "checkpoint")
    c.commit({TopicPartition(topic, 0): oam})
    committed = c.committed(TopicPartition(topic, 0))
    if committed != 40:
        fail(f"committed offset reads back as {committed}, expected 40")
    c.close()

    c2 = consumer()
    rest = [m.offset for m in c2]
    c2.commit()
    c2.close()
    if rest != list(range(40, 100)):
        fail(f"resumed consumer read {rest[:5]}...; expected 40..99")
    # kafka-python 2.x names these list_consumer_groups / list_consumer_group_offsets;
    # 3.x renamed them list_groups / list_group_offsets.
    list_groups = getattr(admin, "list_groups", None) or admin.list_consumer_groups
    list_offsets = getattr(admin, "list_group_offsets", None) or admin.list_consumer_group_offsets
    listed = list_groups()
    def name_of(g):
        if isinstance(g, dict):
            return g.get("group_id")
        if isinstance(g, tuple):
            return g[0]
        return getattr(g, "group_id", getattr(g, "group", g))
    names = [name_of(g) for g in listed]
    if group not in names:
        fail(f"listing groups does not show {group}: {listed}")
    offsets = list_offsets(group)
    # 3.x nests the answer under the group id.
    offsets = offsets.get(group, offsets)
    got = offsets.get(TopicPartition(topic, 0))
    if got is None or got.offset != 100:
        fail(f"admin sees committed offsets {offsets}, expected 100 after the second consumer closed")
    print("ok: resumed at the committed offset", flush=True)


if __name__ == "__main__":
    main()
