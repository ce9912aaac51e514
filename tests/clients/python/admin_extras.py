#!/usr/bin/env python3
"""confluent-kafka admin and log APIs beyond the basics: CreatePartitions, DeleteRecords,
DescribeCluster, DescribeConfigs for the broker, ListOffsets by timestamp, and
message.timestamp.type=LogAppendTime."""
import os
import sys
import time
import uuid

from confluent_kafka import (Consumer, Producer, TopicPartition, TIMESTAMP_CREATE_TIME,
                             TIMESTAMP_LOG_APPEND_TIME)
from confluent_kafka.admin import (AdminClient, ConfigResource, NewPartitions, NewTopic,
                                   ResourceType)


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def produce(bootstrap, topic, values, timestamp=None, partition=0):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for v in values:
        kw = {"timestamp": timestamp} if timestamp else {}
        p.produce(topic, v.encode(), partition=partition, **kw)
        p.flush(10)  # one batch per record, so timestamps are distinct per batch


def consume_all(bootstrap, topic, partition=0, start=0):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
    c.assign([TopicPartition(topic, partition, start)])
    out = []
    while (out[-1].offset() + 1 if out else start) < hi:
        ms = c.consume(100, timeout=5)
        if not ms:
            fail(f"stalled reading {topic}")
        out.extend(m for m in ms if not m.error())
    c.close()
    return out, lo, hi


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.environ["EDDY_BOOTSTRAP"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    t = f"extras-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(t, 2, 1)]).values():
        f.result(30)

    # CreatePartitions: 2 -> 4; shrinking is refused.
    for f in admin.create_partitions([NewPartitions(t, 4)]).values():
        f.result(30)
    if len(admin.list_topics(t, timeout=10).topics[t].partitions) != 4:
        fail("topic did not grow to 4 partitions")
    try:
        for f in admin.create_partitions([NewPartitions(t, 3)]).values():
            f.result(30)
        fail("shrinking partitions must fail")
    except Exception as e:
        if "INVALID_PARTITIONS" not in str(e) and "InvalidPartitions" not in str(e):
            fail(f"unexpected error shrinking: {e}")

    # DescribeCluster.
    cl = admin.describe_cluster().result(10)
    if len(cl.nodes) != 1 or not cl.cluster_id:
        fail(f"describe_cluster: {cl}")

    # Broker configs.
    res = admin.describe_configs([ConfigResource(ResourceType.BROKER, str(cl.nodes[0].id))])
    cfg = list(res.values())[0].result(10)
    if "num.partitions" not in cfg or "log.retention.ms" not in cfg:
        fail(f"broker configs lack expected keys: {sorted(cfg)[:10]}")

    # ListOffsets by timestamp, and DeleteRecords moving the log start.
    base = int(time.time() * 1000) - 100_000
    produce(bootstrap, t, [f"r{i}" for i in range(10)])
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(10):
        p.produce(t, f"ts{i}".encode(), partition=1, timestamp=base + i * 1000)
        p.flush(10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x"})
    found = c.offsets_for_times([TopicPartition(t, 1, base + 4500)], timeout=10)[0]
    if found.offset != 5:
        fail(f"offsets_for_times(base+4.5s) = {found.offset}, expected 5")
    c.close()
    done = admin.delete_records([TopicPartition(t, 0, 4)])
    for f in done.values():
        f.result(10)
    msgs, lo, hi = consume_all(bootstrap, t, 0, 4)
    if lo != 4 or hi != 10 or [m.value().decode() for m in msgs] != [f"r{i}" for i in range(4, 10)]:
        fail(f"after DeleteRecords: low {lo} high {hi}")

    # LogAppendTime: the broker's clock replaces the producer's timestamp.
    lt = f"logappend-{uuid.uuid4().hex[:8]}"
    for f in admin.create_topics([NewTopic(lt, 1, 1, config={"message.timestamp.type": "LogAppendTime"})]).values():
        f.result(30)
    before = int(time.time() * 1000)
    produce(bootstrap, lt, ["a", "b"], timestamp=1_000_000)
    after = int(time.time() * 1000)
    msgs, _, _ = consume_all(bootstrap, lt)
    for m in msgs:
        kind, ts = m.timestamp()
        if kind != TIMESTAMP_LOG_APPEND_TIME or not (before - 5 <= ts <= after + 5):
            fail(f"LogAppendTime topic returned timestamp {m.timestamp()} (expected log-append time in [{before}, {after}])")
    # A CreateTime topic keeps the producer's timestamp.
    msgs, _, _ = consume_all(bootstrap, t, 1)
    if msgs[0].timestamp() != (TIMESTAMP_CREATE_TIME, base):
        fail(f"CreateTime record has timestamp {msgs[0].timestamp()}, expected {base}")
    print("ok")


if __name__ == "__main__":
    main()
