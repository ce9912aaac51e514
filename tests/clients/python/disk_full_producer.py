#!/usr/bin/env python3
"""Produces COUNT records of about SIZE bytes with acks=all and no retries, appending
`value offset` of every acknowledged record to ACKED_FILE, and prints one JSON line:
{"acked": N, "errors": {"<kafka error code>": count}}.

    disk_full_producer.py BOOTSTRAP TOPIC ACKED_FILE PREFIX COUNT SIZE
"""
import json
import sys

from confluent_kafka import Producer


def main():
    bootstrap, topic, path, prefix = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    count, size = int(sys.argv[5]), int(sys.argv[6])
    out = open(path, "a", buffering=1)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
                  "retries": 0, "message.timeout.ms": 10000})
    acked = 0
    errors = {}

    def dr(err, msg):
        nonlocal acked
        if err is None:
            acked += 1
            out.write(f"{msg.value().decode()[:40].rstrip('.')} {msg.offset()}\n")
        else:
            errors[str(err.code())] = errors.get(str(err.code()), 0) + 1

    for i in range(count):
        value = f"{prefix}{i}".ljust(size, ".")
        while True:
            try:
                p.produce(topic, value=value.encode(), on_delivery=dr)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(30)
    print(json.dumps({"acked": acked, "errors": errors}))


if __name__ == "__main__":
    main()
