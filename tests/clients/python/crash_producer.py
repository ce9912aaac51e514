#!/usr/bin/env python3
"""Produces numbered records with acks=all until killed, appending `value offset` of every
acknowledged record to ACKED_FILE (flushed per line) so a test can check them after a
broker crash.

    crash_producer.py BOOTSTRAP TOPIC ACKED_FILE [PREFIX] [MAX_RATE]
"""
import time
import sys

from confluent_kafka import Producer


def main():
    bootstrap, topic, path = sys.argv[1], sys.argv[2], sys.argv[3]
    prefix = sys.argv[4] if len(sys.argv) > 4 else "m"
    rate = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    out = open(path, "a", buffering=1)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1,
                  "message.timeout.ms": 5000, "retries": 0})

    def dr(err, msg):
        if err is None:
            out.write(f"{msg.value().decode()} {msg.offset()}\n")

    i = 0
    start = time.monotonic()
    while True:
        if rate and i > rate * (time.monotonic() - start):
            p.poll(0.001)
            continue
        try:
            p.produce(topic, value=f"{prefix}{i}".encode(), on_delivery=dr)
            i += 1
        except BufferError:
            pass
        p.poll(0.0005 if i % 50 == 0 else 0)


if __name__ == "__main__":
    main()
