#!/usr/bin/env python3
"""An idempotent confluent-kafka producer whose connections are cut mid-stream by a proxy
ends with every message exactly once, in order.

    idempotent_cut.py BROKER_ADDR PROXY_PORT

The broker must advertise 127.0.0.1:PROXY_PORT so every client connection goes through the
proxy, which closes all its connections every second while 20,000 records are produced with
acks=all and enable.idempotence=true (retries on). Then the topic is read back.
"""
import socket
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

N = 20000


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Proxy:
    def __init__(self, port, upstream):
        self.upstream = upstream
        self.conns = []
        self.lock = threading.Lock()
        self.cuts = 0
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(64)
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            c, _ = self.srv.accept()
            u = socket.create_connection(self.upstream)
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut_all(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass
        self.cuts += 1


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    proxy_port = int(sys.argv[2])
    proxy = Proxy(proxy_port, (host, int(port)))
    bootstrap = f"127.0.0.1:{proxy_port}"
    topic = f"idem-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(topic, 3, 1)]).values():
        f.result(30)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                  "linger.ms": 2, "batch.num.messages": 200, "message.timeout.ms": 120000,
                  "reconnect.backoff.ms": 10, "reconnect.backoff.max.ms": 100})
    errors = []
    delivered = [0]

    def dr(err, msg):
        if err:
            errors.append(str(err))
        else:
            delivered[0] += 1

    stop = threading.Event()

    def cutter():
        while not stop.is_set():
            time.sleep(1.0)
            proxy.cut_all()

    t = threading.Thread(target=cutter, daemon=True)
    t.start()
    for i in range(N):
        while True:
            try:
                p.produce(topic, key=f"k{i % 3}".encode(), value=f"{i}".encode(), partition=i % 3, on_delivery=dr)
                break
            except BufferError:
                p.poll(0.01)
        if i % 100 == 0:
            p.poll(0)
            time.sleep(0.05)
    left = p.flush(120)
    stop.set()
    t.join()
    if left or errors:
        fail(f"{left} undelivered, errors: {errors[:3]}")
    if proxy.cuts < 5:
        fail(f"only {proxy.cuts} cuts happened; the test needs the producer to see several")
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, i, 0) for i in range(3)])
    seen = {}
    order = {0: [], 1: [], 2: []}
    idle = 0
    while sum(len(v) for v in order.values()) < N and idle < 20:
        ms = c.consume(1000, timeout=1)
        if not ms:
            idle += 1
            continue
        for m in ms:
            if m.error():
                continue
            v = int(m.value())
            seen[v] = seen.get(v, 0) + 1
            order[m.partition()].append(v)
    time.sleep(1)
    for m in c.consume(1000, timeout=1):
        if not m.error():
            v = int(m.value())
            seen[v] = seen.get(v, 0) + 1
    c.close()
    dups = [v for v, n in seen.items() if n > 1]
    missing = [i for i in range(N) if i not in seen]
    if dups or missing:
        fail(f"{len(dups)} duplicated (e.g. {dups[:5]}), {len(missing)} missing (e.g. {missing[:5]}) after {proxy.cuts} cuts")
    for part, vals in order.items():
        if vals != sorted(vals):
            fail(f"partition {part} out of order")
    print(f"ok: {N} records exactly once through {proxy.cuts} connection cuts")


if __name__ == "__main__":
    main()
