#!/usr/bin/env python3
"""Helpers for benches/load/run.sh (standard library only).

  clients.py ports N
      Print N free TCP ports on 127.0.0.1 (bound to port 0 all at once, then closed).

  clients.py idle --port P --path PATH --conns N --pids PID[,PID...] [--metrics URL]
      Open N keep-alive connections to 127.0.0.1:P, one GET PATH on each (answer read in
      full, must be 200), and keep them all open. Then print the summed VmRSS of PIDS
      (and, with --metrics, tollgate's open-connection gauge), close everything, print
      the RSS again after a short pause.

  clients.py streams --port P --path PATH --streams N --pids PID[,PID...]
      Open N connections with a small receive buffer, GET PATH (a large file) on each,
      read the first 64 KiB and then stop reading, so that every answer is in flight at
      once and stalled on the client. Print the summed VmRSS of PIDS while they stall, and
      how much the kernel holds in the proxy's send queues for those connections.

Output is `key=value` lines for the shell to pick up. Every socket operation has a
timeout; the whole command is also bounded by `timeout` in run.sh.
"""

import argparse
import socket
import sys
import time
import urllib.request


def rss_kib(pids):
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def send_queue_kib(port):
    """Bytes waiting in the send queues of the sockets bound to local `port` (the proxy's
    side of the client connections), from /proc/net/tcp, in KiB."""
    total = 0
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            if int(cols[1].split(":")[1], 16) == port:
                total += int(cols[4].split(":")[0], 16)
    return total // 1024


def read_answer(sock, want_body=True):
    """Read one HTTP/1.1 answer with a Content-Length; return (status, body_len)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    for h in lines[1:]:
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError("no content-length in the answer")
    got = len(rest)
    while want_body and got < length:
        chunk = sock.recv(min(65536, length - got))
        if not chunk:
            raise ConnectionError("closed mid-body")
        got += len(chunk)
    return status, got


def request(path):
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: load-clients\r\n\r\n".encode()


def gauge(url, name):
    """Sum of a Prometheus metric's samples whose line starts with `name`."""
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return -1
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def cmd_ports(a):
    socks = []
    for _ in range(a.n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))
    for s in socks:
        s.close()


def cmd_idle(a):
    pids = [int(p) for p in a.pids.split(",") if p]
    print(f"rss_before_kib={rss_kib(pids)}")
    req = request(a.path)
    conns = []
    t0 = time.monotonic()
    try:
        for i in range(a.conns):
            s = socket.create_connection(("127.0.0.1", a.port), timeout=10)
            s.sendall(req)
            status, _ = read_answer(s)
            if status != 200:
                raise RuntimeError(f"connection {i}: status {status}")
            conns.append(s)
        print(f"opened={len(conns)} open_secs={time.monotonic() - t0:.1f}")
        time.sleep(a.settle)
        print(f"rss_with_idle_kib={rss_kib(pids)}")
        if a.metrics:
            open_now = gauge(a.metrics, 'tollgate_open_connections{listener="edge_plain"}')
            print(f"gauge_open_connections={open_now}")
        # Every connection must still be open and usable: one more request on a sample.
        for s in conns[:: max(1, len(conns) // 20)]:
            s.sendall(req)
            status, _ = read_answer(s)
            if status != 200:
                raise RuntimeError(f"a kept connection answered {status}")
    finally:
        for s in conns:
            s.close()
    time.sleep(a.settle)
    print(f"rss_after_close_kib={rss_kib(pids)}")


def cmd_streams(a):
    pids = [int(p) for p in a.pids.split(",") if p]
    print(f"rss_before_kib={rss_kib(pids)}")
    req = request(a.path)
    conns = []
    try:
        for i in range(a.streams):
            s = socket.socket()
            # Small receive buffer (set before connect, so the window stays small): the
            # answer stalls in the proxy rather than in this process's kernel buffers.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(10)
            s.connect(("127.0.0.1", a.port))
            s.sendall(req)
            status, got = read_answer(s, want_body=False)
            if status != 200:
                raise RuntimeError(f"stream {i}: status {status}")
            while got < a.read_first:
                chunk = s.recv(min(16384, a.read_first - got))
                if not chunk:
                    raise ConnectionError(f"stream {i}: closed early")
                got += len(chunk)
            conns.append(s)
        print(f"streams={len(conns)}")
        time.sleep(a.settle)
        print(f"rss_with_streams_kib={rss_kib(pids)}")
        # Where the rest of each body is: the proxy's socket send buffers (kernel memory).
        print(f"kernel_send_queue_kib={send_queue_kib(a.port)}")
    finally:
        for s in conns:
            s.close()


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    sp = sub.add_parser("ports")
    sp.add_argument("n", type=int)
    sp.set_defaults(f=cmd_ports)
    for name, f in (("idle", cmd_idle), ("streams", cmd_streams)):
        sp = sub.add_parser(name)
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--path", required=True)
        sp.add_argument("--pids", required=True)
        sp.add_argument("--settle", type=float, default=1.5)
        sp.set_defaults(f=f)
        if name == "idle":
            sp.add_argument("--conns", type=int, default=10000)
            sp.add_argument("--metrics")
        else:
            sp.add_argument("--streams", type=int, default=200)
            sp.add_argument("--read-first", type=int, default=65536)
    a = p.parse_args()
    a.f(a)


if __name__ == "__main__":
    sys.exit(main())
