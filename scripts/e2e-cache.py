#!/usr/bin/env python3
"""The shield cache's failure modes with real curl processes (threat model G4).

Starts a release tollgate with its cache on, in front of an origin on loopback that
either breaks a segment mid-body (`reset-*`: headers with a Content-Length, 64 KiB, a
pause so every viewer joins the fill, then a TCP reset) or streams one slowly
(`slow-*`: 1 MiB over about a second). Then, each viewer a `curl` process with a token
of its own:

  1. reset: N viewers on one segment. Every curl must fail with exit 18 (partial file)
     or 56 (receive failure) — never 0, which would be a clean, short body — and none
     may hang (each has a 20 s limit). The origin is asked once.
  2. disconnect: N viewers on one slow segment; the first is killed (SIGKILL) a moment
     after it starts. Every other curl must exit 0 with the whole 1 MiB, and the origin
     is asked once: the viewer who left did not cancel the fetch the others share.

Prints a line per case and exits non-zero on any failure. Loopback only; the processes
it starts are ended by their PIDs.

  cargo build --release && python3 scripts/e2e-cache.py [--viewers 20]
"""

import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import gate_run

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW_BYTES = 1 << 20


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    counts = {}
    lock = threading.Lock()

    def do_GET(self):
        with Origin.lock:
            Origin.counts[self.path] = Origin.counts.get(self.path, 0) + 1
        if "reset-" in self.path:
            self.send_response(200)
            self.send_header("content-type", "video/mp2t")
            self.send_header("content-length", str(4 << 20))
            self.end_headers()
            self.wfile.write(b"r" * (64 << 10))
            self.wfile.flush()
            time.sleep(0.8)
            # SO_LINGER 0: close() sends a reset, not a clean FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("content-type", "video/mp2t")
        self.send_header("content-length", str(SLOW_BYTES))
        self.end_headers()
        chunk = SLOW_BYTES // 16
        try:
            for _ in range(16):
                self.wfile.write(b"s" * chunk)
                self.wfile.flush()
                time.sleep(1.0 / 16)
        except ConnectionError:
            pass  # without a shield, the killed viewer's own fetch ends here

    def log_message(self, *args):
        pass


def curl(port, path, token):
    url = f"http://127.0.0.1:{port}{path}?token={token}"
    return subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-w", "%{size_download}",
                             "--max-time", "20", url], stdout=subprocess.PIPE, text=True)


def reset_case(port, tokens):
    procs = [curl(port, "/live/ev/reset-1.ts", t) for t in tokens]
    codes = [p.wait(timeout=30) for p in procs]
    sizes = [int(p.stdout.read() or 0) for p in procs]
    clean = [c for c in codes if c == 0]
    other = [c for c in codes if c not in (18, 56)]
    fetches = Origin.counts.get("/live/ev/reset-1.ts", 0)
    ok = not clean and not other and fetches == 1
    print(f"e2e-cache reset: {len(tokens)} viewers, exit codes {sorted(set(codes))}, "
          f"bytes received {min(sizes)}-{max(sizes)} of {4 << 20}, origin fetches {fetches}: "
          f"{'ok' if ok else 'FAIL'}")
    return ok


def disconnect_case(port, tokens):
    first = curl(port, "/live/ev/slow-1.ts", tokens[0])
    time.sleep(0.15)  # the first viewer is mid-body when it leaves
    others = [curl(port, "/live/ev/slow-1.ts", t) for t in tokens[1:]]
    time.sleep(0.15)
    first.send_signal(signal.SIGKILL)
    first.wait()
    codes = [p.wait(timeout=30) for p in others]
    sizes = [int(p.stdout.read() or 0) for p in others]
    fetches = Origin.counts.get("/live/ev/slow-1.ts", 0)
    ok = all(c == 0 for c in codes) and all(s == SLOW_BYTES for s in sizes) and fetches == 1
    print(f"e2e-cache disconnect: first viewer killed mid-body; the other {len(others)} exit "
          f"codes {sorted(set(codes))}, all {SLOW_BYTES} bytes: "
          f"{all(s == SLOW_BYTES for s in sizes)}, origin fetches {fetches}: "
          f"{'ok' if ok else 'FAIL'}")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "target/release/tollgate"))
    ap.add_argument("--viewers", type=int, default=20)
    a = ap.parse_args()
    origin = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    try:
        with gate_run.gate(a.bin, gate_run.cached_route(origin.server_port, origin='read_timeout = "5s"')) as g:
            tokens = [g.mint("ev", f"viewer-{i}") for i in range(a.viewers)]
            ok = reset_case(g.plain, tokens) & disconnect_case(g.plain, tokens)
    finally:
        origin.shutdown()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
