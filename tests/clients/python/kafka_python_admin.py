#!/usr/bin/env python3
"""kafka-python: admin create/list/describe configs/delete topics, produce and consume."""
import os
import sys
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.environ["EDDY_BOOTSTRAP"]
    topic = f"kp-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="kp-admin")
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                  topic_configs={"retention.ms": "3600000"})])
    if topic not in admin.list_topics():
        fail(f"{topic} not listed")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        fail("creating an existing topic must fail")
    except Exception as e:  # TopicAlreadyExistsError
        if "TopicAlreadyExists" not in type(e).__name__ and "36" not in str(e):
            fail(f"unexpected error for duplicate topic: {e!r}")
    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    text = repr(res)
    if "retention.ms" not in text or "3600000" not in text:
        fail(f"describe_configs lacks the override: {text[:500]}")

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
    futures = [p.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=i % 3)
               for i in range(300)]
    p.flush()
    metas = [f.get(timeout=10) for f in futures]
    p.close()
    c = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                      consumer_timeout_ms=10000)
    tps = [TopicPartition(topic, i) for i in range(3)]
    c.assign(tps)
    c.seek_to_beginning()
    got = [(m.partition, m.offset, m.key, m.value) for m in c]
    c.close()
    want = sorted((m.partition, m.offset, f"k{i}".encode(), f"v{i}".encode()) for i, m in enumerate(metas))
    if sorted(got) != want:
        fail(f"consumed {len(got)} records, expected {len(want)}; first diff {[x for x in sorted(got) if x not in want][:3]}")
    admin.delete_topics([topic])
    for _ in range(50):
        if topic not in admin.list_topics():
            break
        time.sleep(0.1)
    else:
        fail("topic still listed after delete")
    admin.close()
    print("ok")


if __name__ == "__main__":
    main()
