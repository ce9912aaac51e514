#!/usr/bin/env python3
"""A transactional producer commits some transactions and aborts others across 3
partitions, while a plain producer writes to the same partitions between them.

    txn_commit_abort.py BOOTSTRAP

Checks: a read_committed consumer sees exactly the committed and plain records, in offset
order; a read_uncommitted consumer sees every data record (aborted ones too); neither sees
a control batch as a message (each partition has exactly one marker offset per ended
transaction that no consumer returns); records of an open transaction stay invisible to
read_committed (the last stable offset stops before them) until it commits.
"""
import sys

from confluent_kafka import Producer

from txn_common import create_topic, fail, read_all, watermarks

TOPIC = "txn-commit-abort"
PARTS = 3
TXNS = 12


def main():
    bootstrap = sys.argv[1]
    create_topic(bootstrap, TOPIC, PARTS)
    delivered = {}  # value -> (partition, offset)

    def dr(err, msg):
        if err is not None:
            fail(f"delivery failed: {err}")
        delivered[msg.value().decode()] = (msg.partition(), msg.offset())

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "txn-commit-abort",
                  "transaction.timeout.ms": 60000, "linger.ms": 5})
    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    p.init_transactions(30)
    committed, aborted = [], []
    for t in range(TXNS):
        p.begin_transaction()
        values = []
        for i in range(30):
            v = f"t{t}-r{i}"
            p.produce(TOPIC, v.encode(), partition=i % PARTS, on_delivery=dr)
            values.append(v)
            if i == 15:
                # Plain records land inside the transaction's offset range.
                p.flush(30)
                for part in range(PARTS):
                    pv = f"plain-{t}-{part}"
                    plain.produce(TOPIC, pv.encode(), partition=part, on_delivery=dr)
                    committed.append(pv)
                plain.flush(30)
        # Everything is in the log before the transaction ends, aborted ones included.
        p.flush(30)
        if t % 3 == 1:
            p.abort_transaction(30)
            aborted += values
        else:
            p.commit_transaction(30)
            committed += values
    ended = TXNS

    # A transaction left open: read_committed must stop before it.
    p.begin_transaction()
    open_values = [f"open-r{i}" for i in range(9)]
    for i, v in enumerate(open_values):
        p.produce(TOPIC, v.encode(), partition=i % PARTS, on_delivery=dr)
    p.flush(30)
    after_open = [f"after-open-{part}" for part in range(PARTS)]
    for part, v in enumerate(after_open):
        plain.produce(TOPIC, v.encode(), partition=part, on_delivery=dr)
    plain.flush(30)

    def by_partition(values):
        out = {q: [] for q in range(PARTS)}
        for v in values:
            part, off = delivered[v]
            out[part].append((off, v))
        return {q: sorted(out[q]) for q in out}

    for part in range(PARTS):
        lo, hi = watermarks(bootstrap, TOPIC, part, "read_committed")
        first_open = min(off for (off, _) in by_partition(open_values)[part])
        if hi != first_open:
            fail(f"partition {part}: read_committed end offset (LSO) {hi}, expected the open "
                 f"transaction's first offset {first_open}")
        _, hw = watermarks(bootstrap, TOPIC, part, "read_uncommitted")
        if hw <= first_open:
            fail(f"partition {part}: high watermark {hw} not past the open transaction")

    rc = read_all(bootstrap, TOPIC, PARTS, "read_committed")
    want = by_partition(committed)
    for part in range(PARTS):
        if rc[part] != want[part]:
            fail(f"read_committed partition {part}: got {len(rc[part])} records, want "
                 f"{len(want[part])}; first difference: "
                 f"{next(((g, w) for g, w in zip(rc[part], want[part]) if g != w), None)}")

    ru = read_all(bootstrap, TOPIC, PARTS, "read_uncommitted")
    want_all = by_partition(committed + aborted + open_values + after_open)
    for part in range(PARTS):
        if ru[part] != want_all[part]:
            fail(f"read_uncommitted partition {part}: got {len(ru[part])} records, want "
                 f"{len(want_all[part])}")
        _, hw = watermarks(bootstrap, TOPIC, part, "read_uncommitted")
        markers = hw - len(ru[part])
        if markers != ended:
            fail(f"partition {part}: {markers} offsets hold no data record, expected one "
                 f"marker per ended transaction ({ended})")

    p.commit_transaction(30)
    rc = read_all(bootstrap, TOPIC, PARTS, "read_committed")
    want = by_partition(committed + open_values + after_open)
    for part in range(PARTS):
        if rc[part] != want[part]:
            fail(f"after the last commit, read_committed partition {part}: got "
                 f"{len(rc[part])} records, want {len(want[part])}")
    total = sum(len(v) for v in want.values())
    print(f"ok: {total} committed records seen by read_committed, "
          f"{len(aborted)} aborted ones only by read_uncommitted")


if __name__ == "__main__":
    main()
