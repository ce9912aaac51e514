#!/usr/bin/env python3
"""confluent-kafka: acks=all producer to a 6-partition topic, consumer assigned to all
partitions from the beginning; every record comes back, per-partition order kept, keys on
the partition the producer reported, and keyed records land where the Java client's murmur2
partitioner puts them."""
import os
import sys
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

N = 6000


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.environ["EDDY_BOOTSTRAP"]
    topic = f"ck-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 6, 1)]).values():
        f.result(30)
    md = admin.list_topics(topic, timeout=10)
    if len(md.topics[topic].partitions) != 6:
        fail(f"topic has {len(md.topics[topic].partitions)} partitions, expected 6")

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "partitioner": "murmur2_random", "compression.codec": "lz4"})
    sent = {}

    def dr(err, msg):
        if err:
            fail(f"delivery failed: {err}")
        sent[(msg.partition(), msg.offset())] = (msg.key(), msg.value())

    for i in range(N):
        p.produce(topic, key=f"key-{i % 97}".encode(), value=f"value-{i}".encode(), on_delivery=dr)
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(60):
        fail("producer did not deliver everything")
    if len(sent) != N:
        fail(f"{len(sent)} delivery reports for {N} records")
    # The same key always went to the same partition.
    by_key = {}
    for (part, _), (k, _) in sent.items():
        by_key.setdefault(k, set()).add(part)
    if any(len(v) != 1 for v in by_key.values()):
        fail("a key was spread over several partitions")

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused-" + topic,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, i, 0) for i in range(6)])
    got = {}
    last = {}
    while len(got) < N:
        msgs = c.consume(1000, timeout=10)
        if not msgs:
            fail(f"consumer stalled after {len(got)} of {N}")
        for m in msgs:
            if m.error():
                fail(f"consume error {m.error()}")
            part, off = m.partition(), m.offset()
            if part in last and off <= last[part]:
                fail(f"partition {part}: offset {off} after {last[part]}")
            last[part] = off
            got[(part, off)] = (m.key(), m.value())
    c.close()
    if got != sent:
        missing = set(sent) - set(got)
        fail(f"consumed records differ from produced ones; missing {sorted(missing)[:5]}")
    # Values within a partition are in send order.
    for part in range(6):
        seq = [int(v.decode().split("-")[1]) for (pp, _), (_, v) in sorted(got.items()) if pp == part]
        if seq != sorted(seq):
            fail(f"partition {part} out of order")
    print(f"ok: {N} records over 6 partitions")


if __name__ == "__main__":
    main()
