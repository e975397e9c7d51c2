#!/usr/bin/env python3
"""Live fan-out: N players, each with its own token, on one new object — how many
origin requests, and how long each player waits for its first byte.

Targets, measured one after the other in the same run, against one origin:
  tollgate  its shield cache (key without the token);
  nginx     proxy_cache + proxy_cache_lock, cache key without the token;
  varnish   default streaming, vcl_hash without the token.

Scenarios (a fresh object per scenario and target, so nothing is cached before):
  seg200   a new segment behind an origin that answers after 200 ms;
  seg50    the same behind a 50 ms origin;
  stream   the origin sends its headers at once and the body in 4 chunks over 750 ms
           (a CMAF segment as it is encoded);
  llhls    one LL-HLS blocking playlist reload (`_HLS_msn`/`_HLS_part`): the origin
           holds every such request until 1.2 s after the first arrived.

Each player opens its own connection first; then the N requests start spread evenly
over 1 s. Per player: time to first body byte (TTFB), time to the last byte, and the
*added* latency: TTFB minus the soonest the first byte could have come (the origin's
first body byte, or the request itself if that was earlier). The origin reports its
request count and when it sent its first body byte.

  python3 benches/fanout/fanout.py            (or bash benches/fanout/run.sh)
  FANOUT_N=500  FANOUT_PEERS=1  FANOUT_ASSERT=0  FANOUT_SCENARIOS=seg200,seg50,stream,llhls
  TOLLGATE_BIN=target/release/tollgate  FANOUT_OUT=target/fanout

FANOUT_ASSERT=1 exits non-zero unless tollgate made exactly one origin request per
scenario and every player got a whole 200. Loopback only; every process it starts is
ended by its PID.
"""

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "scripts"))
import gate_run  # noqa: E402  (scripts/gate_run.py: start, mint, stop a gate)

SEGMENT = int(os.environ.get("FANOUT_SEGMENT_KIB", "256")) << 10
PLAYLIST = (b"#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=1\n"
            b"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3\n#EXT-X-MEDIA-SEQUENCE:0\n"
            b"#EXTINF:4,\nseg0.m4s\n#EXT-X-PART:DURATION=1,URI=\"seg1.part0.m4s\"\n"
            b"#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg1.part1.m4s\"\n")


# ---------------------------------------------------------------- the origin

class OriginState:
    def __init__(self):
        self.paths = {}  # target -> {"count", "first_byte_at", "first_arrival"}

    def seen(self, target):
        p = self.paths.setdefault(target, {"count": 0, "first_byte_at": None, "first_arrival": time.monotonic()})
        p["count"] += 1
        return p


async def origin_conn(state, reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            target = head.split(b" ", 2)[1].decode()
            if target.startswith("/__stats"):
                body = json.dumps(state.paths).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
                continue
            await origin_answer(state, target, writer)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def origin_answer(state, target, writer):
    p = state.seen(target)
    if "_HLS_msn" in target:
        await asyncio.sleep(max(0.0, p["first_arrival"] + 1.2 - time.monotonic()))
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.apple.mpegurl\r\ncache-control: max-age=2\r\n"
        writer.write(head + b"content-length: %d\r\n\r\n" % len(PLAYLIST) + PLAYLIST)
    elif "stream" in target:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncache-control: max-age=60\r\ntransfer-encoding: chunked\r\n\r\n"
        part = SEGMENT // 4
        writer.write(head)
        for i in range(4):
            if i:
                await asyncio.sleep(0.25)
            writer.write(b"%x\r\n" % part + b"s" * part + b"\r\n")
            if i == 0:
                p["first_byte_at"] = p["first_byte_at"] or time.monotonic()
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:
        await asyncio.sleep(0.2 if "seg200" in target else 0.05)
        head = b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncache-control: max-age=60\r\n"
        writer.write(head + b"content-length: %d\r\n\r\n" % SEGMENT + b"m" * SEGMENT)
    p["first_byte_at"] = p["first_byte_at"] or time.monotonic()
    await writer.drain()


def run_origin(port):
    async def main():
        state = OriginState()
        server = await asyncio.start_server(lambda r, w: origin_conn(state, r, w), "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()
    asyncio.run(main())


# ---------------------------------------------------------------- the players

class Player(asyncio.BufferedProtocol):
    """One player's connection. Reads into a small fixed buffer (no copy of the body into
    Python objects) and stamps the time in the read callback itself, so that one
    player's bulk never delays another's first-byte time by more than one small read."""

    BUF = 16 * 1024

    def __init__(self):
        self.buf = bytearray(self.BUF)
        self.head = b""
        self.header_done = False
        self.body = 0
        self.starts = b""
        self.first = None
        self.chunked = False
        self.skip = 0
        self.line = b""
        self.ended = False
        self.done = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint):
        return self.buf

    def buffer_updated(self, n):
        now = time.monotonic()
        data = bytes(self.buf[:n]) if not self.header_done else None
        if not self.header_done:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            self.header_done = True
            self.head, rest = self.head.split(b"\r\n\r\n", 1)
            self.count(rest, now)
        else:
            self.count(memoryview(self.buf)[:n], now)

    def count(self, chunk, now):
        if not len(chunk):
            return
        if self.first is None:
            self.first = now
            self.starts = bytes(chunk[:16])
            self.chunked = b"transfer-encoding: chunked" in self.head.lower()
        if self.chunked:
            self.dechunk(bytes(chunk))
        else:
            self.body += len(chunk)

    def dechunk(self, data):
        """Count a chunked body's payload as it streams; `ended` at the last chunk."""
        pos = 0
        while pos < len(data):
            if self.skip:
                take = min(self.skip, len(data) - pos)
                self.skip -= take
                pos += take
                continue
            end = data.find(b"\n", pos)
            if end < 0:
                self.line += data[pos:]
                return
            line, self.line = (self.line + data[pos:end]).strip(), b""
            pos = end + 1
            if not line:
                continue  # the CRLF after a chunk's data
            n = int(line.split(b";")[0], 16)
            if n == 0:
                self.ended = True
                return
            self.body += n
            self.skip = n

    def eof_received(self):
        self.finish()

    def connection_lost(self, exc):
        self.finish()

    def finish(self):
        if not self.done.done():
            self.done.set_result(time.monotonic())

    def result(self, sent, done):
        try:
            status = int(self.head.split(b" ", 2)[1])
        except (IndexError, ValueError):
            return {"sent": sent, "ok": False}
        size = self.body if (self.ended or not self.chunked) else -1
        if self.first is None:
            return {"sent": sent, "ok": False}
        return {"sent": sent, "first": self.first, "done": done, "status": status, "size": size,
                "ok": status == 200, "starts": self.starts}


async def player(port, target, start_at, conn):
    transport, proto = conn
    loop = asyncio.get_running_loop()
    await asyncio.sleep(max(0.0, start_at - loop.time()))
    sent = time.monotonic()
    transport.write(f"GET {target} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n\r\n".encode())
    try:
        done = await asyncio.wait_for(asyncio.shield(proto.done), 30)
    except asyncio.TimeoutError:
        transport.close()
        return {"sent": sent, "ok": False}
    transport.close()
    return proto.result(sent, done)


async def fire(port, targets, spread):
    """One connection per target, opened first; the requests spread over `spread` s."""
    loop = asyncio.get_running_loop()
    conns = await asyncio.gather(*(loop.create_connection(Player, "127.0.0.1", port) for _ in targets))
    t0 = loop.time() + 0.2
    n = len(targets)
    return await asyncio.gather(*(player(port, t, t0 + spread * i / n, c) for i, (t, c) in enumerate(zip(targets, conns))))


# ---------------------------------------------------------------- the peers

NGINX = """
user root;
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {dir}/client;
  proxy_temp_path {dir}/proxy;
  proxy_cache_path {dir}/cache levels=1:2 keys_zone=fan:10m max_size=1g inactive=10m use_temp_path=off;
  upstream origin {{ server 127.0.0.1:{origin}; keepalive 32; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache fan;
      # The key without the token: path and the LL-HLS parameters.
      proxy_cache_key "$uri|$arg__HLS_msn|$arg__HLS_part|$arg__HLS_skip";
      proxy_cache_lock on;
      proxy_cache_lock_timeout 10s;
      proxy_cache_lock_age 10s;
      proxy_cache_valid 200 60s;
      proxy_read_timeout 10s;
    }}
  }}
}}
"""

VCL = """
vcl 4.1;
backend origin {{
  .host = "127.0.0.1";
  .port = "{origin}";
  .first_byte_timeout = 10s;
}}
sub vcl_hash {{
  # The key without the token (and the host, which is the same for every player).
  hash_data(regsuball(req.url, "([?&])token=[^&]*", "\\1"));
  return (lookup);
}}
"""


def start_nginx(d, origin):
    port = gate_run.free_port()
    os.makedirs(os.path.join(d, "cache"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as fh:
        fh.write(NGINX.format(dir=d, origin=origin, port=port))
    proc = subprocess.Popen(["nginx", "-c", conf, "-g", "daemon off;"], stderr=subprocess.DEVNULL)
    gate_run.wait_port(port, "nginx")
    return proc, port


def start_varnish(d, origin):
    port = gate_run.free_port()
    vcl = os.path.join(d, "fanout.vcl")
    with open(vcl, "w") as fh:
        fh.write(VCL.format(origin=origin))
    # A thread per client connection: start enough of them for every player up front.
    proc = subprocess.Popen(["varnishd", "-F", "-j", "none", "-n", os.path.join(d, "varnish"),
                             "-a", f"127.0.0.1:{port}", "-T", "127.0.0.1:0", "-f", vcl,
                             "-s", "malloc,256m", "-p", "thread_pool_min=400",
                             "-p", "thread_pool_max=2000"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gate_run.wait_port(port, "varnish")
    return proc, port


# ---------------------------------------------------------------- one scenario

def target_of(scenario, nonce):
    if scenario == "llhls":
        return f"/live/ev/index-{nonce}.m3u8", "?_HLS_msn=7&_HLS_part=1"
    return f"/live/ev/{scenario}-{nonce}.m4s", ""


def origin_stats(port):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /__stats HTTP/1.1\r\nhost: o\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < int(
                data.split(b"content-length: ")[1].split(b"\r\n")[0]):
            data += s.recv(65536)
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def pct(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def measure(name, port, scenario, tokens, origin_port, nonce):
    path, query = target_of(scenario, nonce)
    targets = []
    for t in tokens:
        q = f"{query}&token={t}" if query else f"?token={t}"
        targets.append(path + q)
    results = asyncio.run(fire(port, targets, 1.0))
    stats = origin_stats(origin_port)
    fetched = [v for k, v in stats.items() if k.split("?")[0] == path]
    fetches = sum(v["count"] for v in fetched)
    first_byte_at = min((v["first_byte_at"] for v in fetched if v["first_byte_at"]), default=None)
    if scenario == "llhls":
        # tollgate rewrites each player's copy (its own token in every child URL), so the
        # length differs per player: a whole playlist is one that starts as one and ended.
        good = [r for r in results if r["ok"] and r["starts"].startswith(b"#EXTM3U")]
    else:
        good = [r for r in results if r["ok"] and r["size"] == SEGMENT]
    ttfb = [(r["first"] - r["sent"]) * 1000 for r in good]
    total = [(r["done"] - r["sent"]) * 1000 for r in good]
    added = [(r["first"] - max(r["sent"], first_byte_at or r["sent"])) * 1000 for r in good]
    return {"target": name, "scenario": scenario, "players": len(tokens), "fetches": fetches,
            "bad": len(results) - len(good), "ttfb_p50": pct(ttfb, 50), "ttfb_p99": pct(ttfb, 99),
            "total_p99": pct(total, 99), "added_p50": pct(added, 50), "added_p99": pct(added, 99),
            "added_mean": statistics.fmean(added) if added else float("nan")}


# ---------------------------------------------------------------- the run

def report(rows, out):
    cols = ["scenario", "target", "players", "fetches", "bad", "ttfb_p50", "ttfb_p99", "total_p99", "added_p50", "added_p99"]
    with open(os.path.join(out, "fanout.tsv"), "w") as fh:
        fh.write("\t".join(cols) + "\n")
        for r in rows:
            fh.write("\t".join(str(round(r[c], 2)) if isinstance(r[c], float) else str(r[c]) for c in cols) + "\n")
    lines = ["| scenario | target | origin fetches | bad | TTFB p50 ms | TTFB p99 ms | total p99 ms | added p50 ms | added p99 ms |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['target']} | {r['fetches']} | {r['bad']} | {r['ttfb_p50']:.1f} | "
                     f"{r['ttfb_p99']:.1f} | {r['total_p99']:.1f} | {r['added_p50']:.1f} | {r['added_p99']:.1f} |")
    by = {(r["scenario"], r["target"]): r for r in rows}
    ratios = ["", "| scenario | TTFB p99 tollgate / varnish (target ≤ 1.10) | added p99 nginx / tollgate (target ≥ 10) |",
              "| --- | ---: | ---: |"]
    for s in dict.fromkeys(r["scenario"] for r in rows):
        t, v, n = by.get((s, "tollgate")), by.get((s, "varnish")), by.get((s, "nginx"))
        tv = f"{t['ttfb_p99'] / v['ttfb_p99']:.2f}" if t and v else "-"
        nt = f"{n['added_p99'] / max(t['added_p99'], 0.01):.1f}" if t and n else "-"
        ratios.append(f"| {s} | {tv} | {nt} |")
    text = "\n".join(lines + ratios) + "\n"
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text)
    print(text)


def main():
    n = int(os.environ.get("FANOUT_N", "500"))
    peers = os.environ.get("FANOUT_PEERS", "1") == "1"
    scenarios = os.environ.get("FANOUT_SCENARIOS", "seg200,seg50,stream,llhls").split(",")
    binary = os.environ.get("TOLLGATE_BIN", os.path.join(REPO, "target/release/tollgate"))
    out = os.environ.get("FANOUT_OUT", os.path.join(REPO, "target/fanout"))
    os.makedirs(out, exist_ok=True)
    if peers and not (shutil.which("nginx") and shutil.which("varnishd")):
        sys.exit("fanout: nginx and varnishd are needed (apt-get install nginx varnish), or FANOUT_PEERS=0")
    origin_port = gate_run.free_port()
    origin = subprocess.Popen([sys.executable, os.path.abspath(__file__), "origin", str(origin_port)])
    procs = []
    rows = []
    try:
        gate_run.wait_port(origin_port, "origin")
        with tempfile.TemporaryDirectory() as d, gate_run.gate(binary, gate_run.cached_route(origin_port, origin='read_timeout = "10s"\npool_max_idle = 64')) as g:
            print(f"fanout: minting {n} tokens")
            tokens = [g.mint("ev", f"player-{i}") for i in range(n)]
            targets = [("tollgate", g.plain)]
            if peers:
                for start in (start_nginx, start_varnish):
                    proc, port = start(d, origin_port)
                    procs.append(proc)
                    targets.append(("nginx" if start is start_nginx else "varnish", port))
            for k, scenario in enumerate(scenarios):
                # Rotate who goes first, so no target always meets the coldest machine.
                for name, port in targets[k % len(targets):] + targets[:k % len(targets)]:
                    row = measure(name, port, scenario, tokens, origin_port, f"{name}-{k}-{time.time_ns()}")
                    print(f"fanout: {scenario} {name}: {row['fetches']} origin fetches, TTFB p99 {row['ttfb_p99']:.1f} ms, bad {row['bad']}")
                    rows.append(row)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
        origin.send_signal(signal.SIGTERM)
        origin.wait(timeout=30)
    report(rows, out)
    if os.environ.get("FANOUT_ASSERT") == "1":
        wrong = [r for r in rows if r["target"] == "tollgate" and (r["fetches"] != 1 or r["bad"])]
        for r in wrong:
            print(f"fanout: FAIL {r['scenario']}: tollgate made {r['fetches']} origin requests, {r['bad']} bad answers")
        return 1 if wrong else 0
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "origin":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        run_origin(int(sys.argv[2]))
    else:
        sys.exit(main())
