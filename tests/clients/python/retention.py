#!/usr/bin/env python3
"""Retention runs in the live broker: a topic with retention.ms=60000 and small segments
gets records stamped two hours ago; within a few retention checks the old segments are
deleted and the log start offset moves forward, while recent records stay."""
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def main():
    bootstrap = sys.argv[1]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    t = f"ret-{uuid.uuid4().hex[:8]}"
    cfg = {"retention.ms": "60000", "segment.bytes": "4096"}
    for f in admin.create_topics([NewTopic(t, 1, 1, config=cfg)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    old = int(time.time() * 1000) - 2 * 3600 * 1000
    for i in range(200):
        p.produce(t, (f"old-{i}-" + "x" * 100).encode(), timestamp=old + i)
        if i % 20 == 0:
            p.flush(10)
    p.flush(10)
    for i in range(5):
        p.produce(t, f"new-{i}".encode())
    p.flush(10)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x"})
    deadline = time.time() + 20
    lo = hi = 0
    while time.time() < deadline:
        lo, hi = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10)
        if lo >= 150:  # the segment holding the newest old records may still be active
            break
        time.sleep(0.2)
    if lo < 150:
        fail(f"log start offset is still {lo} (end {hi}); old segments were not deleted")
    c.assign([TopicPartition(t, 0, lo)])
    vals = []
    while len(vals) < hi - lo:
        ms = c.consume(100, timeout=5)
        if not ms:
            break
        vals += [m.value().decode() for m in ms if not m.error()]
    if [v for v in vals if v.startswith("new-")] != [f"new-{i}" for i in range(5)]:
        fail(f"recent records lost: {vals[-6:]}")
    print(f"ok: log start moved to {lo} of {hi}")


if __name__ == "__main__":
    main()
