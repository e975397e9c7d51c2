#!/usr/bin/env python3
"""Does the shield cache keep tollgate's memory within its budget? (threat model G5)

Starts a release tollgate whose only route is cached with `cache.max_bytes = BUDGET`,
in front of an in-process origin that answers every path with OBJECT bytes, then asks
for distinct objects until FILL times the budget has gone through the cache, and reads
the process's resident set (VmRSS) from /proc: at the start, after the fill, and once it
has settled (jemalloc returns freed pages to the kernel over a ~10 s decay; see settle()).
It also reads `tollgate_cache_bytes`, `_objects` and `_evictions_total` from /metrics.

Passes (exit 0) when what the fill added to the resident set (settled − start) is at
most 1.10 × the budget, and prints one line of numbers either way, with the whole
process's settled RSS against the budget (at the default 256 MiB that is within 1.10
too; at a small budget the process's own ~14 MiB dominates it).

  cargo build --release
  python3 benches/cache-memory.py [--budget-mib 256] [--object-kib 1024] [--fill 3]

Loopback only; the tollgate it starts (scripts/gate_run.py) is ended by its PID.
"""

import argparse
import http.client
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import gate_run  # noqa: E402  (scripts/gate_run.py: start, mint, stop)


def start_origin(object_bytes):
    body = b"m" * object_bytes

    class Origin(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("content-type", "video/mp4")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def settle(pid, longest):
    """RSS once it stops falling: jemalloc returns freed pages gradually over its 10 s
    decay (sooner or later by how busy the machine is), so sample once a second until
    five seconds bring less than 1 MiB, for at most `longest` seconds."""
    samples = [rss_bytes(pid)]
    for _ in range(longest):
        time.sleep(1)
        samples.append(rss_bytes(pid))
        if len(samples) > 5 and samples[-6] - samples[-1] < (1 << 20):
            break
    return samples[-1]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def metric(admin, name):
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


def fetch_all(port, token, count, threads):
    errors = []

    def worker(k):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(k, count, threads):
            c.request("GET", f"/live/ev/obj{i}.mp4?token={token}")
            r = c.getresponse()
            r.read()
            if r.status != 200:
                errors.append(r.status)

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/tollgate"))
    ap.add_argument("--budget-mib", type=int, default=256)
    ap.add_argument("--object-kib", type=int, default=1024)
    ap.add_argument("--fill", type=float, default=3.0)
    ap.add_argument("--settle", type=int, default=45, help="longest wait for RSS to settle, s")
    ap.add_argument("--threads", type=int, default=4)
    a = ap.parse_args()
    budget = a.budget_mib << 20
    obj = a.object_kib << 10
    count = int(a.fill * budget / obj)
    origin = start_origin(obj)
    sizes = f"max_bytes = {budget}\nmax_object_bytes = {max(obj * 2, 1 << 20)}"
    routes = gate_run.cached_route(origin.server_port, cache=sizes)
    try:
        with gate_run.gate(a.bin, routes) as g:
            token = g.mint("ev")
            start = rss_bytes(g.proc.pid)
            t0 = time.monotonic()
            errors = fetch_all(g.plain, token, count, a.threads)
            took = time.monotonic() - t0
            filled = rss_bytes(g.proc.pid)
            settled = settle(g.proc.pid, a.settle)
            held = metric(g.admin, "tollgate_cache_bytes")
            objects = metric(g.admin, "tollgate_cache_objects")
            evictions = metric(g.admin, "tollgate_cache_evictions_total")
    finally:
        origin.shutdown()
    mib = lambda b: b / (1 << 20)
    grew = settled - start
    ok = grew <= 1.10 * budget and not errors
    print(f"cache-memory: budget {mib(budget):.0f} MiB, {count} distinct {a.object_kib} KiB objects "
          f"({a.fill:g}x) in {took:.1f} s, errors {len(errors)}; cache holds {mib(held):.1f} MiB, "
          f"{objects:.0f} objects, {evictions:.0f} evictions; RSS start {mib(start):.1f} MiB, after fill {mib(filled):.1f} MiB, "
          f"settled {mib(settled):.1f} MiB = {settled / budget:.3f} x budget, grown by "
          f"{grew / budget:.3f} x budget (limit 1.10): "
          f"{'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
