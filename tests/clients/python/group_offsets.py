#!/usr/bin/env python3
"""Commits known offsets for a fixed group (mode `commit`) or reads them back (mode `read`);
prints one line per partition so a test can compare them across broker restarts."""
import os
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPIC = "durable-offsets"
GROUP = "durable-group"


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.environ["EDDY_BOOTSTRAP"]
    mode = sys.argv[2]
    if mode == "commit":
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for f in admin.create_topics([NewTopic(TOPIC, 3, 1)]).values():
            f.result(30)
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
        for i in range(60):
            p.produce(TOPIC, f"v{i}".encode(), partition=i % 3)
        p.flush(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False})
    tps = [TopicPartition(TOPIC, i) for i in range(3)]
    if mode == "commit":
        offs = [TopicPartition(TOPIC, i, 5 + 2 * i, metadata=f"meta-{i}") for i in range(3)]
        c.commit(offsets=offs, asynchronous=False)
    got = c.committed(tps, timeout=10)
    c.close()
    for tp in sorted(got, key=lambda t: t.partition):
        if tp.error:
            print(f"FAIL: {tp}", file=sys.stderr)
            sys.exit(1)
        print(f"{tp.partition}:{tp.offset}:{tp.metadata}")


if __name__ == "__main__":
    main()
