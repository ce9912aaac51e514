#!/usr/bin/env python3
"""Produces N keyed records with acks=all to TOPIC (created with P partitions), flushing
every FLUSH_EVERY records so the log holds many batches.

    produce_n.py BOOTSTRAP TOPIC N [PARTITIONS] [FLUSH_EVERY]
"""
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    bootstrap, topic, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parts = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    flush_every = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, parts, 1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2})
    errors = []
    p_cb = lambda err, msg: errors.append(err) if err else None
    for i in range(n):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), on_delivery=p_cb)
        if flush_every and (i + 1) % flush_every == 0:
            p.flush(30)
        elif i % 1000 == 0:
            p.poll(0)
    left = p.flush(60)
    if left or errors:
        print(f"FAIL: {left} undelivered, errors {errors[:3]}", file=sys.stderr)
        sys.exit(1)
    print(f"produced {n}")


if __name__ == "__main__":
    main()
