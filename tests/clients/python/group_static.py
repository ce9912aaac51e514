#!/usr/bin/env python3
"""Static membership (KIP-345) with confluent-kafka: a restarted static member rejoins
without a rebalance.

    group_static.py BOOTSTRAP

m1 joins first (and leads), then m2; the group settles at 2 partitions each on a
4-partition topic. m2 closes (static members send no LeaveGroup) and restarts with the same
group.instance.id within its session timeout: it gets the same partitions back, m1 sees no
revocation or new assignment, and the group generation does not change.
"""
import os
import sys
import time
import uuid

from confluent_kafka import Consumer, ConsumerGroupState
from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def make(bootstrap, group, topic, instance, events):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.instance.id": instance,
        "client.id": instance,
        "session.timeout.ms": 15000,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": "range",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    def on_assign(_c, parts):
        events.append((instance, "assign", sorted(p.partition for p in parts)))
    def on_revoke(_c, parts):
        events.append((instance, "revoke", sorted(p.partition for p in parts)))
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    return c


def spin(consumers, secs):
    t_end = time.time() + secs
    while time.time() < t_end:
        for c in consumers:
            c.poll(0.05)


def assignment(c):
    return sorted(p.partition for p in c.assignment())


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.environ["EDDY_BOOTSTRAP"]
    topic = f"static-{uuid.uuid4().hex[:8]}"
    group = f"gs-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 4, 1)]).values():
        f.result(30)
    events = []
    m1 = make(bootstrap, group, topic, "m1", events)
    t_end = time.time() + 30
    while len(assignment(m1)) != 4 and time.time() < t_end:
        m1.poll(0.1)
    if len(assignment(m1)) != 4:
        fail(f"m1 alone should own 4 partitions, has {assignment(m1)}")
    m2 = make(bootstrap, group, topic, "m2", events)
    t_end = time.time() + 40
    while time.time() < t_end and not (len(assignment(m1)) == 2 and len(assignment(m2)) == 2):
        m1.poll(0.05)
        m2.poll(0.05)
    a1, a2 = assignment(m1), assignment(m2)
    if len(a1) != 2 or len(a2) != 2:
        fail(f"expected 2+2 partitions, got m1={a1} m2={a2}")

    def generation():
        desc = admin.describe_consumer_groups([group])[group].result(10)
        return desc.state, sorted(m.client_id for m in desc.members)

    spin([m1, m2], 1.0)
    state_before = generation()
    mark = len(events)
    print(f"stable: m1={a1} m2={a2} {state_before}", flush=True)

    m2.close()  # static member: no LeaveGroup is sent
    m2 = make(bootstrap, group, topic, "m2", events)
    t_end = time.time() + 10
    while time.time() < t_end and assignment(m2) != a2:
        m1.poll(0.05)
        m2.poll(0.05)
    if assignment(m2) != a2:
        fail(f"restarted m2 should get {a2} back, has {assignment(m2)}")
    spin([m1, m2], 3.0)
    m1_events = [e for e in events[mark:] if e[0] == "m1"]
    if m1_events:
        fail(f"m1 saw a rebalance after m2's static restart: {m1_events}")
    if assignment(m1) != a1:
        fail(f"m1's assignment changed from {a1} to {assignment(m1)}")
    state_after = generation()
    if state_after[0] != ConsumerGroupState.STABLE:
        fail(f"group should be stable, is {state_after}")
    m1.close()
    m2.close()
    print("ok: static member rejoined without a rebalance", flush=True)


if __name__ == "__main__":
    main()
