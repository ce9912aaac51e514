#!/usr/bin/env python3
"""Throughput of one librdkafka (confluent-kafka) producer and consumer against a broker.

Starts nothing: point it at a running broker. Produces N messages of SIZE bytes to a fresh
one-partition topic, then consumes them back, and prints one JSON line per phase:
messages/s and MB/s, plus the broker's peak and current RSS when --pid is given.

    python benches/scripts/librdkafka_throughput.py --bootstrap 127.0.0.1:9092 \
        --messages 1000000 --size 100 --acks 1 --pid $(pgrep -n eddy)
"""
import argparse
import json
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def rss_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def cpu_s(pid):
    """User+system CPU seconds used by a process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default=os.environ.get("EDDY_BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--messages", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--acks", default="1")
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--compression", default="none")
    ap.add_argument("--pid", type=int, default=None, help="broker pid, for RSS figures")
    args = ap.parse_args()

    topic = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    for f in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        f.result(30)

    payload = os.urandom(args.size)
    p = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "compression.codec": args.compression,
        "batch.size": 1_000_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "enable.idempotence": False,
    })
    failed = [0]

    def on_delivery(err, _msg):
        if err is not None:
            failed[0] += 1

    cpu0 = cpu_s(args.pid) if args.pid else None
    t0 = time.perf_counter()
    for _ in range(args.messages):
        while True:
            try:
                p.produce(topic, payload, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.001)
    remaining = p.flush(120)
    t1 = time.perf_counter()
    if remaining or failed[0]:
        print(f"produce failed: {failed[0]} errors, {remaining} undelivered", file=sys.stderr)
        sys.exit(1)
    produce_s = t1 - t0
    out = {
        "phase": "produce", "messages": args.messages, "size": args.size, "acks": args.acks,
        "seconds": round(produce_s, 3),
        "msgs_per_s": round(args.messages / produce_s),
        "mb_per_s": round(args.messages * args.size / produce_s / 1e6, 1),
    }
    if args.pid:
        out["broker_peak_rss_kib"] = rss_kib(args.pid, "VmHWM")
        out["broker_rss_kib"] = rss_kib(args.pid, "VmRSS")
        out["broker_cpu_s"] = round(cpu_s(args.pid) - cpu0, 2)
    print(json.dumps(out), flush=True)

    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "unused",
        "enable.auto.commit": False,
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
        # librdkafka 2.x backs fetching off for fetch.queue.backoff.ms (1 s) whenever its
        # local queue holds queued.min.messages (100k): with 100 B records that, not the
        # broker, would set the pace.
        "queued.min.messages": 1_000_000,
        "fetch.queue.backoff.ms": 10,
    })
    c.assign([TopicPartition(topic, 0, 0)])
    got = 0
    cpu0 = cpu_s(args.pid) if args.pid else None
    t0 = time.perf_counter()
    while got < args.messages:
        batch = c.consume(num_messages=10_000, timeout=5)
        if not batch:
            print(f"consume stalled at {got}", file=sys.stderr)
            sys.exit(1)
        for m in batch:
            if m.error():
                print(f"consume error: {m.error()}", file=sys.stderr)
                sys.exit(1)
        got += len(batch)
    t1 = time.perf_counter()
    c.close()
    consume_s = t1 - t0
    out = {
        "phase": "consume", "messages": got, "size": args.size,
        "seconds": round(consume_s, 3),
        "msgs_per_s": round(got / consume_s),
        "mb_per_s": round(got * args.size / consume_s / 1e6, 1),
    }
    if args.pid:
        out["broker_peak_rss_kib"] = rss_kib(args.pid, "VmHWM")
        out["broker_cpu_s"] = round(cpu_s(args.pid) - cpu0, 2)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
