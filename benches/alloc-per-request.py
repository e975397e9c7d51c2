#!/usr/bin/env python3
"""Heap allocations per proxied request, counted by heaptrack.

    TOLLGATE_BIN=target/alloc/release/tollgate python3 benches/alloc-per-request.py

The binary must use glibc malloc (jemalloc is invisible to heaptrack): build it with
`cargo build --release --no-default-features --target-dir target/alloc`. Needs Debian's
`heaptrack`. Not a test; CI does not run it.

How: the shipped config (rate limits off), with its origin replaced by an in-process HTTP/1.1 origin on
loopback that answers every GET with the same 1 KiB body (keep-alive). tollgate runs
under heaptrack twice; each run serves N requests of one cached EdDSA path-prefix token
on one client connection (`/t/<token>/vod/demo/x.ts`: no manifest step). N is 10,000
and then 20,000; the difference of the two totals divided by 10,000 is the cost of one
request, with start-up, the first verification and pool warm-up cancelled out.
"""

import http.server
import os
import re
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import tollgate_e2e as e2e  # noqa: E402

NAME = "alloc-per-request"
BODY = b"x" * 1024
RUNS = (10_000, 20_000)


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and
        # delayed ACKs hold every answer for ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp2t")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *_args):
        pass


def start_origin():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def use_origin(ws, port):
    with open(ws.config, encoding="utf-8") as f:
        text = f.read()
    text = text.replace('upstreams = ["file://../sample"]', f'upstreams = ["http://127.0.0.1:{port}"]')
    # One client sends every request: the per-address and per-subject limits are off.
    text = text.replace('per_ip = "200/s burst 400"', 'per_ip = "off"')
    text = text.replace('per_subject = "100/s burst 200"', 'per_subject = "off"')
    with open(ws.config, "w", encoding="utf-8") as f:
        f.write(text)


def read_response(sock, buf):
    """Read one response with a Content-Length body; return the rest of `buf`."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise e2e.Fatal("the gate closed the connection")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        raise e2e.Fatal(f"not a 200: {head[:200]!r}")
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise e2e.Fatal("short body")
        rest += chunk
    return rest[length:]


def drive(addr, token, count):
    host, port = addr.rsplit(":", 1)
    req = f"GET /t/{token}/vod/demo/x.ts HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        buf = b""
        for _ in range(count):  # bounded: `count` requests, each answered in 10 s
            sock.sendall(req)
            buf = read_response(sock, buf)


def allocations(ws, token, count, out_base):
    server = e2e.Server(ws, f"heaptrack-{count}", taskset=["heaptrack", "-o", out_base])
    gate_pid = None
    try:
        server.wait_ready(timeout=60)
        fields = server.listening()
        gate_pid = int(fields["pid"])
        drive(fields["edge-plain"], token, count)
    finally:
        # Stop tollgate itself (heaptrack's child, started by us) so heaptrack writes
        # its file and exits by itself; then make sure the wrapper is gone too.
        if gate_pid is not None:
            try:
                os.kill(gate_pid, signal.SIGTERM)
                server.proc.wait(timeout=120)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        server.stop()
    files = [f for f in os.listdir(os.path.dirname(out_base))
             if f.startswith(os.path.basename(out_base))]
    if not files:
        raise e2e.Fatal("heaptrack wrote no file")
    data = os.path.join(os.path.dirname(out_base), sorted(files)[-1])
    printed = subprocess.run(["heaptrack_print", "-f", data, "-s", "0", "-a", "0", "-p", "0",
                              "-t", "0", "-l", "0", "-T", "0"],
                             capture_output=True, text=True, timeout=300)
    m = re.search(r"total memory allocations: (\d+)|calls to allocation functions: (\d+)",
                  printed.stdout)
    if not m:
        raise e2e.Fatal(f"heaptrack_print said: {printed.stdout[-500:]} {printed.stderr[-500:]}")
    return int(m.group(1) or m.group(2))


def main():
    e2e.watchdog(900)
    bin_path = e2e.binary(NAME, release=True)
    ws = e2e.Workspace(NAME, bin_path)
    origin = start_origin()
    use_origin(ws, origin.server_address[1])
    token = ws.cli_text("token", "mint", "--resource", "demo", "--ttl", "1h").split()[-1]
    totals = {}
    for count in RUNS:
        totals[count] = allocations(ws, token, count, ws.path(f"heaptrack.{count}"))
        e2e.say(NAME, f"{count} requests: {totals[count]} allocations in the whole run")
    per = (totals[RUNS[1]] - totals[RUNS[0]]) / (RUNS[1] - RUNS[0])
    e2e.say(NAME, f"allocations per request: {per:.1f}")
    origin.shutdown()
    ws.remove(keep=False)
    return 0


if __name__ == "__main__":
    e2e.run_main(NAME, main)
