"""Helpers shared by the transaction test clients."""
import sys
import time

from confluent_kafka import Consumer, KafkaError, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, NewTopic


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def create_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, partitions, 1)]).values():
        f.result(30)


def read_all(bootstrap, topic, partitions, isolation, timeout=60.0, until=None):
    """Reads every partition from the beginning to its end (the last stable offset for
    read_committed) and returns {partition: [(offset, value)]}. With `until`, keeps reading
    until that predicate holds for what was read (or the timeout passes)."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"reader-{isolation}-{time.monotonic_ns()}",
        "isolation.level": isolation,
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "fetch.wait.max.ms": 100,
    })
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    got = {p: [] for p in range(partitions)}
    at_eof = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                at_eof.add(m.partition())
                if len(at_eof) == partitions and (until is None or until(got)):
                    break
                continue
            fail(f"consumer error: {m.error()}")
        at_eof.discard(m.partition())
        got[m.partition()].append((m.offset(), m.value().decode()))
    else:
        c.close()
        fail(f"{isolation} consumer did not reach the end of {topic} within {timeout}s "
             f"(eof on {sorted(at_eof)}, read {sum(len(v) for v in got.values())})")
    c.close()
    return got


def watermarks(bootstrap, topic, partition, isolation):
    """(low, high) as a consumer with this isolation level sees them: for read_committed
    the high one is the last stable offset."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks",
                  "isolation.level": isolation})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10,
                                       cached=False)
    finally:
        c.close()
