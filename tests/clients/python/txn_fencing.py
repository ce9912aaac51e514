#!/usr/bin/env python3
"""A second producer with the same transactional.id fences the first.

    txn_fencing.py BOOTSTRAP

The first producer has an open transaction with records in the log when the second one
calls init_transactions: the broker aborts that transaction and bumps the epoch. The first
producer's commit then fails with a fatal fencing error, its records never become visible
to read_committed, and the second producer's transaction commits normally.
"""
import sys

from confluent_kafka import KafkaError, KafkaException, Producer

from txn_common import create_topic, fail, read_all

TOPIC = "txn-fencing"
PARTS = 2
FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


def producer(bootstrap):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "txn-fencing",
                  "transaction.timeout.ms": 60000, "linger.ms": 5})
    p.init_transactions(30)
    return p


def main():
    bootstrap = sys.argv[1]
    create_topic(bootstrap, TOPIC, PARTS)
    first = producer(bootstrap)
    first.begin_transaction()
    for i in range(10):
        first.produce(TOPIC, f"zombie-{i}".encode(), partition=i % PARTS)
    first.flush(30)

    second = producer(bootstrap)

    # The zombie's commit is refused with a fatal fencing error.
    try:
        first.commit_transaction(30)
        fail("the fenced producer committed its transaction")
    except KafkaException as e:
        err = e.args[0]
        if err.code() not in FENCED:
            fail(f"the fenced producer's commit failed, but not with a fencing error: {err}")
        print(f"fenced producer's commit refused: {err}")

    # Its further sends fail too (the producer is in a fatal state).
    try:
        first.begin_transaction()
        first.produce(TOPIC, b"zombie-late", partition=0)
        first.flush(10)
        first.commit_transaction(10)
        fail("the fenced producer committed a later transaction")
    except KafkaException as e:
        print(f"fenced producer's next transaction refused: {e.args[0]}")

    second.begin_transaction()
    for i in range(10):
        second.produce(TOPIC, f"winner-{i}".encode(), partition=i % PARTS)
    second.commit_transaction(30)

    rc = read_all(bootstrap, TOPIC, PARTS, "read_committed")
    seen = [v for part in range(PARTS) for (_, v) in rc[part]]
    if any(v.startswith("zombie") for v in seen):
        fail(f"read_committed saw the fenced producer's records: {seen}")
    if sorted(seen) != sorted(f"winner-{i}" for i in range(10)):
        fail(f"read_committed saw {seen}, expected the ten winner records")
    ru = read_all(bootstrap, TOPIC, PARTS, "read_uncommitted")
    zombies = [v for part in range(PARTS) for (_, v) in ru[part] if v.startswith("zombie-")]
    if len(zombies) != 10:
        fail(f"the fenced producer's records should be in the log (aborted): {zombies}")
    print("ok: the first producer was fenced; only the second one's records are committed")


if __name__ == "__main__":
    main()
