#!/usr/bin/env python3
"""Compaction test client.

    compaction_check.py BOOTSTRAP write TOPIC VERSIONS KEYS   -> JSON {"latest": {key: [value, offset]}, "deleted": {key: tombstone offset}}
    compaction_check.py BOOTSTRAP dump TOPIC                  -> JSON lines {"offset", "key", "value"} (value null for tombstones)

`write` creates TOPIC compacted with small segments, writes VERSIONS versions of KEYS keys
(values `k<i>-v<version>`), then tombstones for every tenth key, then 2,000 filler records
(`filler-<i>`) so that all of the above lies in sealed segments, which the cleaner may clean.
"""
import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def write(bootstrap, topic, versions, keys):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, 1, 1, config={
        "cleanup.policy": "compact", "segment.bytes": "65536",
        "delete.retention.ms": "100", "min.compaction.lag.ms": "0"})])
    for f in fs.values():
        f.result()
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    latest = {}
    deleted = set()

    def dr(err, msg):
        if err is not None:
            print(f"FAIL: delivery {err}", file=sys.stderr)
            sys.exit(1)
        k = msg.key().decode()
        if k.startswith("filler-"):
            return
        v = msg.value().decode() if msg.value() is not None else None
        latest[k] = [v, msg.offset()]

    for version in range(versions):
        for i in range(keys):
            p.produce(topic, key=f"k{i}", value=f"k{i}-v{version}", on_delivery=dr)
            p.poll(0)
        p.flush()
    for i in range(0, keys, 10):
        p.produce(topic, key=f"k{i}", value=None, on_delivery=dr)
        deleted.add(f"k{i}")
    p.flush()
    for i in range(2000):
        p.produce(topic, key=f"filler-{i}", value="x" * 60, on_delivery=dr)
        p.poll(0)
    p.flush()
    live = {k: v for k, v in latest.items() if k not in deleted}
    tombstones = {k: latest[k][1] for k in sorted(deleted)}
    print(json.dumps({"latest": live, "deleted": tombstones}))


def dump(bootstrap, topic):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-dump",
                  "enable.auto.commit": False})
    lo, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.assign([TopicPartition(topic, 0, lo)])
    pos = lo
    idle = 0
    while pos < hi and idle < 20:
        msgs = c.consume(1000, timeout=1)
        if not msgs:
            idle += 1
            continue
        for m in msgs:
            if m.error():
                print(f"FAIL: {m.error()}", file=sys.stderr)
                sys.exit(1)
            pos = m.offset() + 1
            print(json.dumps({"offset": m.offset(), "key": m.key().decode() if m.key() else None,
                              "value": m.value().decode() if m.value() is not None else None}))
    c.close()


def main():
    bootstrap, mode, topic = sys.argv[1], sys.argv[2], sys.argv[3]
    if mode == "write":
        write(bootstrap, topic, int(sys.argv[4]), int(sys.argv[5]))
    else:
        dump(bootstrap, topic)


if __name__ == "__main__":
    main()
