#!/usr/bin/env python3
"""A transaction left open across a broker kill -9.

    txn_crash.py BOOTSTRAP open TIMEOUT_MS
        commits a transaction (committed-*), then opens another with transaction.timeout.ms
        = TIMEOUT_MS, writes open-* records into it (flushed: they are in the log) and
        exits at once without ending it. The test then kills the broker with SIGKILL and
        restarts it.
    txn_crash.py BOOTSTRAP after TIMEOUT_MS
        after the restart: the last stable offset must still stop at the open
        transaction's first record; a new transaction (later-*) commits; once the open
        transaction's timeout passes the broker aborts it, the LSO reaches the high
        watermark and a read_committed consumer sees committed-* and later-*, never open-*.
    txn_crash.py BOOTSTRAP resolved TIMEOUT_MS
        after a further restart: the same holds at once (the abort is durable).
"""
import os
import sys
import time

from confluent_kafka import Producer

from txn_common import create_topic, fail, read_all, watermarks

TOPIC, PARTS = "txn-crash", 2


def open_txn(bootstrap, timeout_ms):
    create_topic(bootstrap, TOPIC, PARTS)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "txn-crash-open",
                  "transaction.timeout.ms": timeout_ms, "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(TOPIC, f"committed-{i}".encode(), partition=i % PARTS)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(TOPIC, f"open-{i}".encode(), partition=i % PARTS)
    if p.flush(30) != 0:
        fail("open-* records not delivered")
    print("transaction open", flush=True)
    # No abort, no close: the process just ends, like a crashed producer.
    os._exit(0)


def after(bootstrap, timeout_ms):
    started = time.monotonic()
    ru = read_all(bootstrap, TOPIC, PARTS, "read_uncommitted")
    first_open = {}
    for part in range(PARTS):
        opens = [off for (off, v) in ru[part] if v.startswith("open-")]
        if len(opens) != 5:
            fail(f"partition {part}: expected 5 open-* records in the log, found {ru[part]}")
        first_open[part] = opens[0]
    for part in range(PARTS):
        _, lso = watermarks(bootstrap, TOPIC, part, "read_committed")
        if lso != first_open[part]:
            fail(f"partition {part}: after the restart the LSO is {lso}, expected it to stop "
                 f"at the open transaction's first offset {first_open[part]}")
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "txn-crash-later",
                  "transaction.timeout.ms": 60000, "linger.ms": 5})
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(10):
        p.produce(TOPIC, f"later-{i}".encode(), partition=i % PARTS)
    p.commit_transaction(30)
    # Still blocked: later-* sit behind the open transaction.
    stuck = [watermarks(bootstrap, TOPIC, part, "read_committed")[1] for part in range(PARTS)]
    if time.monotonic() - started < timeout_ms / 1000.0 / 2 and stuck != [first_open[q] for q in range(PARTS)]:
        fail(f"the LSO moved {stuck} before the open transaction was resolved")

    def has_later(got):
        return sum(1 for q in got for (_, v) in got[q] if v.startswith("later-")) == 10

    rc = read_all(bootstrap, TOPIC, PARTS, "read_committed", timeout=timeout_ms / 1000.0 + 60,
                  until=has_later)
    seen = sorted(v for q in range(PARTS) for (_, v) in rc[q])
    want = sorted([f"committed-{i}" for i in range(10)] + [f"later-{i}" for i in range(10)])
    if seen != want:
        fail(f"read_committed after the timeout saw {seen}, expected {want}")
    for part in range(PARTS):
        _, lso = watermarks(bootstrap, TOPIC, part, "read_committed")
        _, hw = watermarks(bootstrap, TOPIC, part, "read_uncommitted")
        if lso != hw:
            fail(f"partition {part}: LSO {lso} did not reach the high watermark {hw}")
    print(f"ok: the open transaction was aborted after its timeout; LSO advanced "
          f"({time.monotonic() - started:.1f} s after the restart)")


def resolved(bootstrap):
    rc = read_all(bootstrap, TOPIC, PARTS, "read_committed")
    seen = sorted(v for q in range(PARTS) for (_, v) in rc[q])
    want = sorted([f"committed-{i}" for i in range(10)] + [f"later-{i}" for i in range(10)])
    if seen != want:
        fail(f"after a restart read_committed saw {seen}, expected {want}")
    for part in range(PARTS):
        _, lso = watermarks(bootstrap, TOPIC, part, "read_committed")
        _, hw = watermarks(bootstrap, TOPIC, part, "read_uncommitted")
        if lso != hw:
            fail(f"after a restart partition {part} has LSO {lso}, high watermark {hw}")
    print("ok: the aborted transaction stays resolved after a restart")


def main():
    bootstrap, mode, timeout_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "open":
        open_txn(bootstrap, timeout_ms)
    elif mode == "after":
        after(bootstrap, timeout_ms)
    elif mode == "resolved":
        resolved(bootstrap)
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
