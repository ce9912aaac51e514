#!/usr/bin/env python3
"""Feeds a pipeline's input topic with transactions: one committed, one aborted, then one
left open while a plain producer writes behind it; the open one commits when told to.

    txn_pipeline_input.py BOOTSTRAP TOPIC READY_FILE GO_FILE

Values are {"user": KIND, "ts": MS, "amount": 1, "id": "KIND-I"} with KIND ok (committed),
bad (aborted), late (committed only after GO_FILE appears) and plain (no transaction,
written while "late" is open, so behind the last stable offset until it commits).
READY_FILE is created once everything up to the open transaction is written.
"""
import json
import os
import sys
import time

from confluent_kafka import Producer

from txn_common import fail


def main():
    bootstrap, topic, ready, go = sys.argv[1:5]
    now = int(time.time() * 1000)

    def value(kind, i):
        return json.dumps({"user": kind, "ts": now + i, "amount": 1, "id": f"{kind}-{i}"})

    def dr(err, msg):
        if err is not None:
            fail(f"delivery failed: {err}")

    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": "pipeline-input",
                  "transaction.timeout.ms": 120000, "linger.ms": 5})
    p.init_transactions(30)
    for kind, n, commit in (("ok", 100, True), ("bad", 100, False)):
        p.begin_transaction()
        for i in range(n):
            p.produce(topic, value(kind, i), partition=0, on_delivery=dr)
        p.flush(30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
    p.begin_transaction()
    for i in range(50):
        p.produce(topic, value("late", i), partition=0, on_delivery=dr)
    p.flush(30)
    plain = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(10):
        plain.produce(topic, value("plain", i), partition=0, on_delivery=dr)
    if plain.flush(30) != 0:
        fail("plain records not delivered")
    open(ready, "w").close()
    deadline = time.monotonic() + 120
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            fail("never told to commit")
        time.sleep(0.05)
    p.commit_transaction(30)
    print("committed the open transaction", flush=True)


if __name__ == "__main__":
    main()
