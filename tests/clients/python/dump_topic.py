#!/usr/bin/env python3
"""Prints every record of a topic (from the beginning to the current end) as
`partition offset timestamp key value`, one per line, in partition/offset order.

    dump_topic.py BOOTSTRAP TOPIC
"""
import sys

from confluent_kafka import Consumer, TopicPartition


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "dump", "enable.auto.commit": False})
    md = c.list_topics(topic, timeout=10)
    if topic not in md.topics or md.topics[topic].error:
        print(f"FAIL: topic {topic} missing", file=sys.stderr)
        sys.exit(1)
    parts = sorted(md.topics[topic].partitions)
    ends = {}
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = hi
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out = {p: [] for p in parts}
    pos = {p: 0 for p in parts}
    idle = 0
    while any(pos[p] < ends[p] for p in parts):
        msgs = c.consume(1000, timeout=2)
        if not msgs:
            idle += 1
            if idle > 10:
                print(f"FAIL: stalled at {pos} of {ends}", file=sys.stderr)
                sys.exit(1)
            continue
        for m in msgs:
            if m.error():
                print(f"FAIL: {m.error()}", file=sys.stderr)
                sys.exit(1)
            p = m.partition()
            out[p].append(f"{p} {m.offset()} {m.timestamp()[1]} {(m.key() or b'').decode()} {(m.value() or b'').decode()}")
            pos[p] = m.offset() + 1
    c.close()
    for p in parts:
        for line in out[p]:
            print(line)


if __name__ == "__main__":
    main()
