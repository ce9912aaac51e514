#!/usr/bin/env python3
"""Consumer-group rebalance with confluent-kafka (librdkafka) against a running broker.

    group_rebalance.py BOOTSTRAP [range|roundrobin|cooperative-sticky]

Three consumers in one group on a 6-partition topic must each own 2 partitions. One is
killed with SIGKILL: within its session timeout (plus the rebalance) the two survivors own 3
each. Consumers commit after processing, so across all of them every produced message is
consumed at least once and none is skipped. With cooperative-sticky, survivors must never
lose a partition they held before the kill (incremental rebalance).
"""
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
SESSION_MS = 6000


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def member(bootstrap, topic, group, strategy, name, events):
    """One group member: reports assignment changes and consumed (partition, offset)."""
    owned = set()

    def on_assign(c, parts):
        for p in parts:
            owned.add(p.partition)
        events.put(("assign", name, sorted(p.partition for p in parts), sorted(owned)))

    def on_revoke(c, parts):
        for p in parts:
            owned.discard(p.partition)
        events.put(("revoke", name, sorted(p.partition for p in parts), sorted(owned)))

    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "client.id": name,
        "session.timeout.ms": SESSION_MS,
        "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": strategy,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
    deadline = time.time() + 120
    while time.time() < deadline:
        batch = c.consume(num_messages=500, timeout=0.2)
        got = []
        for m in batch:
            if m.error():
                events.put(("error", name, str(m.error()), None))
                continue
            got.append((m.partition(), m.offset()))
        if got:
            events.put(("consumed", name, got, None))
            try:
                c.commit(asynchronous=False)
            except KafkaException as e:
                # A commit during a rebalance may be refused; the records are redelivered.
                events.put(("commit-error", name, str(e), None))
    c.close()


def main():
    bootstrap = sys.argv[1] if len(sys.argv) > 1 else os.environ["EDDY_BOOTSTRAP"]
    strategy = sys.argv[2] if len(sys.argv) > 2 else "range"
    topic = f"grp-{strategy}-{uuid.uuid4().hex[:8]}"
    group = f"g-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        f.result(30)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    end = [0] * PARTITIONS

    def produce(n, tag):
        def dr(err, msg):
            if err:
                fail(f"produce failed: {err}")
            end[msg.partition()] = max(end[msg.partition()], msg.offset() + 1)
        for i in range(n):
            p.produce(topic, f"{tag}-{i}".encode(), partition=i % PARTITIONS, on_delivery=dr)
        if p.flush(30):
            fail("produce did not finish")

    produce(3000, "a")
    ctx = mp.get_context("spawn")
    # One queue per member: a member killed with SIGKILL while putting to a shared queue
    # would leave its lock held and silence every other member.
    queues = {n: ctx.Queue() for n in ("m1", "m2", "m3")}
    procs = {}
    for n in ("m1", "m2", "m3"):
        pr = ctx.Process(target=member, args=(bootstrap, topic, group, strategy, n, queues[n]), daemon=True)
        pr.start()
        procs[n] = pr

    owned = {}
    consumed = {i: set() for i in range(PARTITIONS)}
    history = []

    def next_event(timeout):
        t_end = time.time() + timeout
        while True:
            for n, q in queues.items():
                if n == "m3" and "m3" in killed:
                    continue
                try:
                    return q.get_nowait()
                except queue.Empty:
                    pass
            if time.time() >= t_end:
                return None
            time.sleep(0.005)

    killed = set()

    def pump(timeout):
        ev = next_event(timeout)
        if ev is None:
            return
        kind, name, a, b = ev
        if kind in ("assign", "revoke"):
            owned[name] = set(b)
            history.append((time.time(), kind, name, a))
        elif kind == "consumed":
            for part, off in a:
                consumed[part].add(off)
        elif kind == "error":
            history.append((time.time(), "error", name, a))

    def wait_for(pred, secs, what):
        t_end = time.time() + secs
        while time.time() < t_end:
            pump(0.1)
            if pred():
                return
        fail(f"timed out waiting for {what}; owned={ {k: sorted(v) for k, v in owned.items()} } history={history[-10:]}")

    def balanced(names, each):
        return all(len(owned.get(n, ())) == each for n in names) and \
            sorted(x for n in names for x in owned.get(n, ())) == list(range(PARTITIONS))

    wait_for(lambda: balanced(["m1", "m2", "m3"], 2), 60, "3 members with 2 partitions each")
    print(f"stable with 3 members: { {k: sorted(v) for k, v in owned.items()} }", flush=True)
    before = {n: set(owned[n]) for n in ("m1", "m2")}
    hist_mark = len(history)

    os.kill(procs["m3"].pid, signal.SIGKILL)
    killed.add("m3")
    killed_at = time.time()
    owned.pop("m3", None)
    produce(3000, "b")
    wait_for(lambda: balanced(["m1", "m2"], 3), SESSION_MS / 1000 + 20, "2 survivors with 3 partitions each")
    took = time.time() - killed_at
    print(f"rebalanced in {took:.1f}s: { {k: sorted(v) for k, v in owned.items()} }", flush=True)
    if took > SESSION_MS / 1000 + 15:
        fail(f"rebalance after kill took {took:.1f}s")

    if strategy == "cooperative-sticky":
        for t, kind, name, parts in history[hist_mark:]:
            if kind == "revoke" and name in before and set(parts) & before[name]:
                fail(f"{name} lost partitions {parts} it held before the kill (cooperative rebalance must not revoke them)")
        for n in ("m1", "m2"):
            if not before[n] <= owned[n]:
                fail(f"{n} held {sorted(before[n])} but now owns {sorted(owned[n])}")

    def all_consumed():
        return all(consumed[i] >= set(range(end[i])) for i in range(PARTITIONS))

    wait_for(all_consumed, 60, "every produced message to be consumed")
    for i in range(PARTITIONS):
        missing = set(range(end[i])) - consumed[i]
        if missing:
            fail(f"partition {i}: skipped offsets {sorted(missing)[:10]}")
    for pr in procs.values():
        pr.kill()
    print(f"ok: {sum(end)} messages consumed at least once, none skipped", flush=True)


if __name__ == "__main__":
    main()
