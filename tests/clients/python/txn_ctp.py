#!/usr/bin/env python3
"""Consume-transform-produce with transactions (exactly-once).

    txn_ctp.py BOOTSTRAP setup N        create ctp-in / ctp-out, write N input records
    txn_ctp.py BOOTSTRAP work N PROGRESS [PAUSE_MS]
                                        transform until every input is consumed; after
                                        each commit append the total to PROGRESS; pause
                                        PAUSE_MS inside every transaction (so a kill lands
                                        in an open one)
    txn_ctp.py BOOTSTRAP verify N       ctp-out, read_committed, holds out-<i> exactly once
                                        for every input i

The worker reads ctp-in as a member of group ctp-group (static membership, read_committed,
no auto-commit) and, per transaction, writes one output per input and commits its input
offsets with send_offsets_to_transaction. A restarted worker first fences (and thereby
aborts) the killed one's transaction with init_transactions, then resumes from the
committed offsets.
"""
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from txn_common import create_topic, fail, read_all

IN, OUT, GROUP, PARTS = "ctp-in", "ctp-out", "ctp-group", 3


def setup(bootstrap, n):
    create_topic(bootstrap, IN, PARTS)
    create_topic(bootstrap, OUT, PARTS)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for i in range(n):
        p.produce(IN, f"in-{i}".encode(), key=str(i).encode(), partition=i % PARTS)
        if i % 1000 == 0:
            p.poll(0)
    if p.flush(60) != 0:
        fail("input records not delivered")
    print(f"wrote {n} input records")


def input_ends(consumer):
    return {p: consumer.get_watermark_offsets(TopicPartition(IN, p), timeout=10)[1]
            for p in range(PARTS)}


def work(bootstrap, n, progress_path, pause_ms):
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "ctp-worker",
                         "transaction.timeout.ms": 30000, "linger.ms": 5})
    # Fences a previous incarnation and aborts its open transaction before anything is read.
    producer.init_transactions(60)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP,
                         "group.instance.id": "ctp-worker-1", "session.timeout.ms": 6000,
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([IN])
    ends = input_ends(consumer)
    progress = open(progress_path, "a", buffering=1)
    done = 0
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        msgs = consumer.consume(num_messages=25, timeout=1.0)
        msgs = [m for m in msgs if not m.error()]
        assignment = consumer.assignment()
        if not msgs:
            if len(assignment) == PARTS:
                # Nothing consumed from a partition yet: its position is the committed one.
                committed = {tp.partition: tp.offset
                             for tp in consumer.committed(assignment, timeout=10)}
                positions = {tp.partition: tp.offset if tp.offset >= 0
                             else committed.get(tp.partition, -1)
                             for tp in consumer.position(assignment)}
                if all(positions[p] >= ends[p] for p in positions):
                    break
            continue
        producer.begin_transaction()
        for m in msgs:
            producer.produce(OUT, b"out-" + m.value(), key=m.key(), partition=m.partition())
        if pause_ms:
            producer.flush(30)
            time.sleep(pause_ms / 1000.0)
        positions = [tp for tp in consumer.position(assignment) if tp.offset >= 0]
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        done += len(msgs)
        progress.write(f"{done}\n")
    else:
        fail(f"worker did not finish within 240 s ({done} records transformed)")
    committed = consumer.committed([TopicPartition(IN, p) for p in range(PARTS)], timeout=10)
    for tp in committed:
        if tp.offset != ends[tp.partition]:
            fail(f"committed offset of {IN}-{tp.partition} is {tp.offset}, "
                 f"expected the end {ends[tp.partition]}")
    consumer.close()
    print(f"worker finished: {done} records transformed in this run")


def verify(bootstrap, n):
    out = read_all(bootstrap, OUT, PARTS, "read_committed")
    values = [v for p in range(PARTS) for (_, v) in out[p]]
    counts = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    missing = [i for i in range(n) if f"out-in-{i}" not in counts]
    dups = {v: c for v, c in counts.items() if c > 1}
    extra = [v for v in counts if not v.startswith("out-in-")]
    if missing or dups or extra or len(values) != n:
        fail(f"output is not exactly once: {len(values)} records, {len(missing)} missing "
             f"(e.g. {missing[:5]}), {len(dups)} duplicated (e.g. {list(dups.items())[:5]}), "
             f"unexpected {extra[:5]}")
    # Each partition's output is in input order (one worker, in-order transactions).
    for p in range(PARTS):
        idx = [int(v.split("-")[-1]) for (_, v) in out[p]]
        if idx != sorted(idx):
            fail(f"{OUT}-{p} is out of input order")
    aborted = sum(len(v) for v in read_all(bootstrap, OUT, PARTS, "read_uncommitted").values()) - n
    print(f"ok: {n} outputs exactly once; {aborted} aborted output records in the log")


def main():
    bootstrap, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    try:
        if mode == "setup":
            setup(bootstrap, n)
        elif mode == "work":
            work(bootstrap, n, sys.argv[4], int(sys.argv[5]) if len(sys.argv) > 5 else 0)
        elif mode == "verify":
            verify(bootstrap, n)
        else:
            fail(f"unknown mode {mode}")
    except KafkaException as e:
        fail(f"{mode}: {e.args[0]}")


if __name__ == "__main__":
    main()
