#!/usr/bin/env python3
"""Time from process start to the first answered ApiVersions request, and idle RSS.

    python3 benches/scripts/startup.py --bin target/release/eddy [--runs 10]

Each run starts the broker on a free port with a fresh data directory, sends a raw
ApiVersions v0 request as fast as the port accepts, and records the elapsed time until the
response arrives. Prints min/median/max in milliseconds and the idle RSS after 1 s.
"""
import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def api_versions_v0():
    client = b"startup"
    body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    return struct.pack(">i", len(body)) + body


def one_run(binary, extra):
    port = free_port()
    data = tempfile.mkdtemp(prefix="eddy-startup-")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data] + extra,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.perf_counter() - t0 > 10:
                    raise RuntimeError("broker did not start within 10 s")
                time.sleep(0.0005)
        s.sendall(api_versions_v0())
        hdr = s.recv(4)
        (n,) = struct.unpack(">i", hdr)
        got = 0
        while got < n:
            got += len(s.recv(n - got))
        elapsed = (time.perf_counter() - t0) * 1000
        s.close()
        time.sleep(1)
        rss = None
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        return elapsed, rss
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/eddy")
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    times, rss = [], []
    for _ in range(args.runs):
        t, r = one_run(args.bin, [])
        times.append(t)
        rss.append(r)
    print(json.dumps({
        "startup_to_first_api_versions_ms": {
            "min": round(min(times), 1), "median": round(statistics.median(times), 1),
            "max": round(max(times), 1)},
        "idle_rss_kib": {"min": min(rss), "max": max(rss)},
        "runs": args.runs,
    }))


if __name__ == "__main__":
    main()
