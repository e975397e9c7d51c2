#!/usr/bin/env python3
"""Operations acceptance (docs/threat-model.md F1, E2, F2, E1): metrics, reload under
load, the failed-verification budget, graceful shutdown.

On a fresh copy of config/tollgate.toml in a temp dir (edge limits `per_ip` and
`per_subject` off, since all load comes from one address; `shutdown_grace = "60s"`; the
origin rewritten to `file://../media`, a copy of the repository's sample/ tree plus a
50 MiB file, so nothing is written into the repository), with `tollgate serve` on
127.0.0.1:0:

  1. F1  after a 200, a 401 and a 404 on the edge, `promtool check metrics` on a
         `/metrics` scrape exits 0 and prints nothing (no lint problems);
  2. E2  under load -- wrk (HTTP/1.1 over TLS) and h2load (HTTP/2 over TLS) fetch a
         segment with a valid path token for LOAD_S seconds -- `tollgate keys rotate`,
         the TLS certificate and key replaced by a new openssl pair, SIGHUP: the reload
         is counted (`tollgate_config_reloads_total{result="ok"}`), a token minted with
         the new kid gets 200 at once, a new TLS connection presents the new certificate,
         the old token still gets 200, and wrk and h2load saw no error and no non-2xx;
  3. E2  a broken config (garbage appended; then a key path pointing at a missing file)
         and SIGHUP: the process stays up and serves with the old state, the error
         counter goes up, `tollgate_config_last_reload_successful` is 0, stderr and the
         422 of `POST /v1/reload` give the reason; the file restored, `POST /v1/reload`
         answers 200 and the gauge is 1 again;
  4. F2  (fresh server) BAD_REQUESTS requests with random JWT-shaped tokens on random
         paths from 127.0.0.1: about BUDGET 401s, then 429s with Retry-After; a valid
         token from 127.0.0.2 and an already verified token from 127.0.0.1 still get 200;
         the metrics' series set (names and labels) is unchanged, the verification cache
         did not grow, and VmRSS grew by less than RSS_BOUND_MIB;
  5. E1  (fresh server) a 50 MiB download read at ~DOWNLOAD_MIB_S MiB/s, SIGTERM one
         second in: new connections to both edge ports are refused at once while the
         download goes on; it completes with the right length and SHA-256; the process
         exits 0 within the grace and says so on stderr. Then (fresh server) an idle
         keep-alive connection does not hold up the exit.

Usage: python3 scripts/e2e-ops.py          (from any directory; about 40 s after the build)
Env:   TOLLGATE_BIN      use this binary instead of building one (cargo build --release)
       E2E_KEEP_TMP=1    keep the temp dir (server logs, wrk/h2load output)
       E2E_OPS_BREAK=keys    prove check 2 can fail: the old key is removed from the
                             config before the reload, so the load's token stops working
       E2E_OPS_BREAK=budget  prove check 4 can fail: `bad_tokens_per_ip = "off"`
Needs: python3 (standard library only), openssl, and the Debian packages
       prometheus (promtool), nghttp2-client (h2load), wrk.
Prints "e2e-ops: N passed, M failed"; exits non-zero on any failure.
"""

import base64
import hashlib
from http import client as httpclient
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import (REPO_ROOT, Checks, Fatal, Server, Workspace, binary, count_failure, http,  # noqa: E402
                          run_main, say, stop_servers, watchdog)

NAME = "e2e-ops"
OVERALL_TIMEOUT_S = 420  # the whole script after the build
REQUEST_TIMEOUT_S = 10  # per HTTP request of the script itself
RELOAD_WAIT_S = 10  # for a SIGHUP reload to show in the metrics

LOAD_S = 20  # wrk and h2load run this long
SWAP_AT_S = 5  # keys and certificate swapped this far into the load
LOAD_TOOL_SLACK_S = 30  # beyond LOAD_S for wrk/h2load to finish
MIN_REQUESTS = 1000  # per tool: fewer would make the load check meaningless
SEGMENT = "v0/seg_000.ts"  # ~100 KB, under vod/demo/

BAD_REQUESTS = 10_000
BUDGET = 30  # burst of the shipped bad_tokens_per_ip = "30/m burst 30"
BUDGET_MARGIN = 10  # refill at 0.5/s during the flood, and racing client threads
FLOOD_THREADS = 4
# 10,000 refused tokens must cost no per-token memory: failed verifications are not
# cached and the budget keeps one entry per address. A cached or logged-in-memory
# entry per token (token text ~250 B + grant + map overhead, well over 1 KiB each)
# would add >10 MiB; allocator noise from 4 busy keep-alive connections is a few MiB.
RSS_BOUND_MIB = 8

BIG_MIB = 50
GRACE_S = 60
DOWNLOAD_MIB_S = 6  # 50 MiB take ~8 s
SIGTERM_AFTER_S = 1.0
REFUSED_WITHIN_S = 2.0  # new connections must be refused this soon after SIGTERM
EXIT_AFTER_DOWNLOAD_S = 5.0  # the process must not linger once the download is done
IDLE_EXIT_S = 3.0  # an idle keep-alive connection must not hold up the exit

BREAK = os.environ.get("E2E_OPS_BREAK", "")

_INSECURE = ssl.create_default_context()
_INSECURE.check_hostname = False
_INSECURE.verify_mode = ssl.CERT_NONE


# ------------------------------------------------------------------------- helpers

def set_setting(text, key, value):
    """Replace the one `key = ...` line of the config text (keys are unique here)."""
    pattern = re.compile(rf"^{re.escape(key)} = .*$", re.M)
    if len(pattern.findall(text)) != 1:
        raise Fatal(f"config: expected exactly one `{key} = ...` line")
    return pattern.sub(lambda _m: f"{key} = {value}", text)


def config_path(ws, rel):
    """A path from the config, resolved against the config's directory."""
    return os.path.normpath(os.path.join(os.path.dirname(ws.config), rel))


def prepare(ws):
    """Own origin directory (sample copy + the big file) and the test settings."""
    media = ws.path("media")
    shutil.copytree(os.path.join(REPO_ROOT, "sample"), media)
    big = random.Random(20240501).randbytes(BIG_MIB << 20)
    with open(os.path.join(media, "vod", "demo", "big.ts"), "wb") as f:
        f.write(big)
    with open(ws.config, encoding="utf-8") as f:
        text = f.read()
    text = set_setting(text, "upstreams", '["file://../media"]')
    text = set_setting(text, "per_ip", '"off"')
    text = set_setting(text, "per_subject", '"off"')
    text = set_setting(text, "shutdown_grace", f'"{GRACE_S}s"')
    if BREAK == "budget":
        text = set_setting(text, "bad_tokens_per_ip", '"off"')
    with open(ws.config, "w", encoding="utf-8") as f:
        f.write(text)
    return hashlib.sha256(big).hexdigest()


def mint(ws):
    return ws.cli_text("token", "mint", "--resource", "demo").strip()


def kid_of(token):
    head = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4))).get("kid")


def hostport(addr):
    host, port = addr.rsplit(":", 1)
    return host, int(port)


def edge_get(addr, path, tls=False, source=None, timeout=REQUEST_TIMEOUT_S):
    """One GET on a new connection to the edge: (status, headers dict, body)."""
    host, port = hostport(addr)
    src = (source, 0) if source else None
    if tls:
        conn = httpclient.HTTPSConnection(host, port, timeout=timeout, context=_INSECURE,
                                           source_address=src)
    else:
        conn = httpclient.HTTPConnection(host, port, timeout=timeout, source_address=src)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def cert_fingerprint(addr):
    """SHA-256 of the DER certificate a new TLS connection is shown (no verification)."""
    host, port = hostport(addr)
    with socket.create_connection((host, port), timeout=REQUEST_TIMEOUT_S) as raw:
        with _INSECURE.wrap_socket(raw, server_hostname="localhost") as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def scrape(srv):
    status, body = http("GET", srv.url("/metrics"), timeout=REQUEST_TIMEOUT_S)
    if status != 200:
        raise Fatal(f"GET /metrics: HTTP {status}")
    return body.decode()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+\S+)?$")


def series(text):
    """{"name{labels}": value} of an exposition (labels as printed)."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise Fatal(f"/metrics: unparsable line {line!r}")
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def metric(srv, key):
    value = series(scrape(srv)).get(key)
    if value is None:
        raise Fatal(f"/metrics has no series {key}")
    return value


def wait_until(pred, timeout, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Fatal(f"no VmRSS in /proc/{pid}/status")


def stderr_text(srv):
    with open(srv.err, "rb") as f:
        return f.read().decode(errors="replace")


def admin_token(ws):
    with open(config_path(ws, ws.settings["admin"]["token_file"]), encoding="utf-8") as f:
        return f.read().strip()


def post_reload(ws, srv):
    status, body = http("POST", srv.url("/v1/reload"), timeout=REQUEST_TIMEOUT_S,
                        headers={"Authorization": f"Bearer {admin_token(ws)}"})
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"unparsable": body[:300].decode(errors="replace")}


def sighup_and_wait(srv, result):
    """SIGHUP; wait (bounded) until tollgate_config_reloads_total{result} goes up."""
    key = f'tollgate_config_reloads_total{{result="{result}"}}'
    before = metric(srv, key)
    os.kill(srv.pid, signal.SIGHUP)
    t0 = time.monotonic()
    seen = wait_until(lambda: metric(srv, key) > before, RELOAD_WAIT_S, 0.02)
    return seen, time.monotonic() - t0


def need_tool(name, package):
    path = shutil.which(name)
    if not path:
        raise Fatal(f"`{name}` not found: install Debian's {package} package "
                    f"(apt-get install -y {package})")
    return path


# -------------------------------------------------------------------------- checks

def check_metrics_lint(checks, ws, srv, edge_plain, token):
    """1. F1: `promtool check metrics` is clean after some edge traffic."""
    got = (edge_get(edge_plain, f"/t/{token}/vod/demo/{SEGMENT}")[0],
           edge_get(edge_plain, "/t/e30.e30.AAAA/vod/demo/master.m3u8")[0],
           edge_get(edge_plain, "/no/such/route")[0])
    checks.check(got == (200, 401, 404), "F1: traffic before the scrape: 200, 401, 404",
                 f"got {got}")
    promtool = shutil.which("promtool")
    if not promtool:
        checks.fail("F1: promtool not found: install Debian's prometheus package "
                    "(apt-get install -y prometheus); cannot lint /metrics")
        return
    text = scrape(srv)
    p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30)
    said = (p.stdout + p.stderr).decode(errors="replace").strip()
    say(NAME, f"F1: {len(series(text))} series scraped; promtool exit {p.returncode}")
    checks.check(p.returncode == 0 and not said,
                 "F1: promtool check metrics: exit 0, no lint problems",
                 f"exit {p.returncode}: {said[:2000]}")


def new_certificate(ws):
    """A fresh P-256 self-signed pair, moved over the config's cert and key files.
    Returns the SHA-256 of the new certificate's DER."""
    openssl = need_tool("openssl", "openssl")
    entry = ws.settings["tls"]["certs"][0]
    cert, key = config_path(ws, entry["cert"]), config_path(ws, entry["key"])
    tmp_cert, tmp_key = cert + ".new", key + ".new"
    p = subprocess.run([openssl, "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-days", "2", "-keyout", tmp_key, "-out", tmp_cert],
                       capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise Fatal(f"openssl req failed: {p.stderr.decode(errors='replace')}")
    os.replace(tmp_key, key)
    os.replace(tmp_cert, cert)
    with open(cert, encoding="ascii") as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def remove_key(ws, kid):
    """E2E_OPS_BREAK=keys: drop the [[keys]] table of `kid` from the config."""
    with open(ws.config, encoding="utf-8") as f:
        text = f.read()
    pattern = re.compile(rf'^\[\[keys\]\]\nkid = "{re.escape(kid)}"\n(?:(?!\[).*\n)*', re.M)
    text, n = pattern.subn("", text)
    if n != 1:
        raise Fatal(f"E2E_OPS_BREAK=keys: no [[keys]] table for {kid} in the config")
    with open(ws.config, "w", encoding="utf-8") as f:
        f.write(text)
    say(NAME, f"E2E_OPS_BREAK=keys: removed key {kid} from the config before the reload")


def parse_wrk(text):
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {"requests": int(m.group(1)) if m else None,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0,
            "socket_errors_line": errors.group(0) if errors else "",
            "non2xx": int(non2xx.group(1)) if non2xx else 0}


def parse_h2load(text):
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", text)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text)
    if not m:
        return None
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    out = dict(zip(keys, map(int, m.groups())))
    out["2xx"], out["3xx"], out["4xx"], out["5xx"] = map(int, codes.groups()) if codes else (0,) * 4
    return out


def check_reload_under_load(checks, ws, srv, edge_tls, token_old):
    """2. E2: keys and certificate swapped by SIGHUP under wrk + h2load over TLS."""
    wrk, h2load = need_tool("wrk", "wrk"), need_tool("h2load", "nghttp2-client")
    path = f"/t/{token_old}/vod/demo/{SEGMENT}"
    url = f"https://{edge_tls}{path}"
    old_kid = kid_of(token_old)
    status = edge_get(edge_tls, path, tls=True)[0]
    if status != 200:
        raise Fatal(f"E2: the load URL answers {status} before the load, want 200")
    fp_before = cert_fingerprint(edge_tls)

    wrk_out, h2_out = ws.path("wrk.out"), ws.path("h2load.out")
    tools = []  # our own children, waited for (or killed by handle) in `finally`
    t_start = time.monotonic()
    try:
        for cmd, out in (([wrk, "-t1", "-c16", f"-d{LOAD_S}s", "--timeout", "10s", url], wrk_out),
                         ([h2load, "-c4", "-m8", "-D", str(LOAD_S), url], h2_out)):
            with open(out, "wb") as f:
                tools.append(subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL))
        time.sleep(SWAP_AT_S)
        rotated = ws.cli_text("keys", "rotate")
        m = re.search(r"new active key (\S+);", rotated)
        if not m:
            raise Fatal(f"keys rotate printed no new kid: {rotated!r}")
        new_kid = m.group(1)
        if BREAK == "keys":
            remove_key(ws, old_kid)
        fp_new_file = new_certificate(ws)
        load_running = all(t.poll() is None for t in tools)
        seen, took = sighup_and_wait(srv, "ok")
        at = time.monotonic() - t_start
        checks.check(seen, f"E2: SIGHUP reload counted ok within {RELOAD_WAIT_S}s "
                           f"({took * 1000:.0f} ms, {at:.1f}s into the load)",
                     f"tollgate_config_reloads_total{{result=\"ok\"}} did not go up; "
                     f"stderr tail: {stderr_text(srv)[-800:]}")
        checks.check(load_running, "E2: wrk and h2load were both running at the reload",
                     "a load tool had already exited")
        checks.check(re.search(rf'configuration reloaded.*active_kid="?{re.escape(new_kid)}\b',
                               stderr_text(srv)) is not None,
                     f"E2: stderr logs the reload with active_kid={new_kid}")

        token_new = mint(ws)
        checks.check(kid_of(token_new) == new_kid and new_kid != old_kid,
                     f"E2: a token minted after the rotation has the new kid {new_kid}",
                     f"its kid is {kid_of(token_new)}, the old one {old_kid}")
        status = edge_get(edge_tls, f"/t/{token_new}/vod/demo/{SEGMENT}", tls=True)[0]
        checks.check(status == 200, "E2: the new kid's token gets 200 right after the reload",
                     f"HTTP {status}")
        fp_after = cert_fingerprint(edge_tls)
        checks.check(fp_after == fp_new_file and fp_after != fp_before,
                     "E2: a new TLS connection presents the new certificate "
                     f"({fp_before[:16]}… -> {fp_after[:16]}…)",
                     f"before {fp_before[:16]}, after {fp_after[:16]}, "
                     f"new file {fp_new_file[:16]}")
        status = edge_get(edge_tls, path, tls=True)[0]
        checks.check(status == 200, f"E2: the old kid's ({old_kid}) token still gets 200",
                     f"HTTP {status}")
    finally:
        for t in tools:
            try:
                t.wait(timeout=max(1, LOAD_S + LOAD_TOOL_SLACK_S - (time.monotonic() - t_start)))
            except subprocess.TimeoutExpired:
                t.kill()  # our own child, by its Popen handle
                t.wait(timeout=10)
    with open(wrk_out, encoding="utf-8", errors="replace") as f:
        wrk_text = f.read()
    with open(h2_out, encoding="utf-8", errors="replace") as f:
        h2_text = f.read()
    w = parse_wrk(wrk_text)
    h = parse_h2load(h2_text)
    say(NAME, f"E2: wrk (HTTP/1.1, TLS, 16 conns): {w['requests']} requests, "
              f"{w['non2xx']} non-2xx, {w['socket_errors']} socket errors")
    if h:
        say(NAME, f"E2: h2load (HTTP/2, TLS, 4 conns x 8 streams): {h['total']} total, "
                  f"{h['done']} done, {h['succeeded']} succeeded, {h['failed']} failed, "
                  f"{h['errored']} errored, {h['timeout']} timeout; {h['2xx']} 2xx, "
                  f"{h['4xx']} 4xx, {h['5xx']} 5xx")
    checks.check(tools[0].returncode == 0 and w["requests"] is not None
                 and w["requests"] >= MIN_REQUESTS and w["non2xx"] == 0
                 and w["socket_errors"] == 0,
                 f"E2: wrk saw only 2xx and no socket errors ({w['requests']} requests)",
                 f"exit {tools[0].returncode}, {w['requests']} requests (want >= "
                 f"{MIN_REQUESTS}), {w['non2xx']} non-2xx/3xx, "
                 f"{w['socket_errors_line'] or 'no socket errors'}\n{wrk_text[-1500:]}")
    # "2xx" counts response heads, so it may exceed "done" by streams still in flight
    # when the duration ended; every finished request must have succeeded.
    good_h2 = (h is not None and tools[1].returncode == 0
               and h["failed"] == 0 and h["errored"] == 0 and h["timeout"] == 0
               and h["succeeded"] == h["done"] == h["total"] and h["2xx"] >= h["succeeded"]
               and h["3xx"] == h["4xx"] == h["5xx"] == 0 and h["done"] >= MIN_REQUESTS)
    checks.check(good_h2,
                 f"E2: h2load: 0 failed, 0 errored, 0 timeout, all "
                 f"{h['succeeded'] if h else '?'} requests succeeded with 2xx",
                 f"exit {tools[1].returncode}: {h}\n{h2_text[-1500:]}")


def check_broken_reload(checks, ws, srv, edge_plain, token):
    """3. E2: a broken config keeps the running state; fixing it reloads again."""
    with open(ws.config, encoding="utf-8") as f:
        good = f.read()
    seg = f"/t/{token}/vod/demo/{SEGMENT}"
    missing = "../data/keys/missing-on-purpose.pub.pem"
    broken = [
        ("garbage appended", good + "\n[[[ this is not TOML\n", None),
        ("a key file missing", re.sub(r'^public = ".*"$', f'public = "{missing}"', good,
                                      count=1, flags=re.M), "missing-on-purpose"),
    ]
    try:
        for label, text, needle in broken:
            with open(ws.config, "w", encoding="utf-8") as f:
                f.write(text)
            log_before = stderr_text(srv).count("configuration reload failed")
            seen, _took = sighup_and_wait(srv, "error")
            checks.check(seen, f"E2 broken ({label}): SIGHUP counted as "
                               "tollgate_config_reloads_total{result=\"error\"}")
            checks.check(srv.alive(), f"E2 broken ({label}): the process is still running")
            status = edge_get(edge_plain, seg)[0]
            checks.check(status == 200, f"E2 broken ({label}): the edge still serves 200 "
                                        "with the old token", f"HTTP {status}")
            gauge = metric(srv, "tollgate_config_last_reload_successful")
            checks.check(gauge == 0, f"E2 broken ({label}): "
                                     "tollgate_config_last_reload_successful is 0", f"{gauge}")
            lines = [ln for ln in stderr_text(srv).splitlines()
                     if "configuration reload failed" in ln][log_before:]
            reason = re.search(r'error="?([^"]*)', lines[-1]).group(1) if lines else ""
            checks.check(bool(reason) and (needle is None or needle in lines[-1]),
                         f"E2 broken ({label}): stderr gives the reason: {reason[:120]!r}",
                         f"log lines: {lines[-2:]}")
            status, answer = post_reload(ws, srv)
            error = str(answer.get("error", ""))
            checks.check(status == 422 and answer.get("result") == "error" and bool(error)
                         and (needle is None or needle in error),
                         f"E2 broken ({label}): POST /v1/reload answers 422 with the reason: "
                         f"{error[:120]!r}", f"HTTP {status} {answer}")
    finally:
        with open(ws.config, "w", encoding="utf-8") as f:
            f.write(good)
    status, answer = post_reload(ws, srv)
    checks.check(status == 200 and answer.get("result") == "ok",
                 f"E2 restored: POST /v1/reload answers 200 "
                 f"(generation {answer.get('report', {}).get('generation')}, "
                 f"kids {answer.get('report', {}).get('kids')})", f"HTTP {status} {answer}")
    gauge = metric(srv, "tollgate_config_last_reload_successful")
    checks.check(gauge == 1, "E2 restored: tollgate_config_last_reload_successful is 1 again",
                 f"{gauge}")
    status = edge_get(edge_plain, seg)[0]
    checks.check(status == 200, "E2 restored: the edge serves 200", f"HTTP {status}")


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def random_token(rng):
    """Three base64url segments: a plausible header and claims, a random signature."""
    head = {"alg": "EdDSA", "typ": "JWT", "kid": rng.choice(["dev-ed25519", "nope"])}
    claims = {"iss": "tollgate-dev", "rid": "demo", "rty": "vod", "sub": f"u{rng.random()}",
              "exp": int(time.time()) + 3600, "jti": f"{rng.getrandbits(64):016x}"}
    return ".".join([b64url(json.dumps(head).encode()), b64url(json.dumps(claims).encode()),
                     b64url(rng.randbytes(64))])


def flood(addr, count, seed, tally, lock):
    """`count` requests with random tokens on random paths over one keep-alive
    connection (http.client reconnects by itself if the server closes it)."""
    rng = random.Random(seed)
    host, port = hostport(addr)
    conn = httpclient.HTTPConnection(host, port, timeout=REQUEST_TIMEOUT_S)
    mine = {}
    no_retry_after = 0
    try:
        for _ in range(count):
            rid = rng.choice(["demo", "trailer", f"r{rng.getrandbits(32)}"])
            path = (f"/t/{random_token(rng)}/vod/{rid}"
                    f"/v{rng.randrange(3)}/seg_{rng.getrandbits(24):06x}.ts")
            conn.request("GET", path)
            resp = conn.getresponse()
            resp.read()
            mine[resp.status] = mine.get(resp.status, 0) + 1
            if resp.status == 429 and not resp.getheader("Retry-After"):
                no_retry_after += 1
    finally:
        conn.close()
        with lock:
            for s, n in mine.items():
                tally[s] = tally.get(s, 0) + n
            tally["no_retry_after"] = tally.get("no_retry_after", 0) + no_retry_after


def check_bad_token_budget(checks, ws, srv, edge_plain):
    """4. F2 + the failed-verification budget + RSS under a flood of bad tokens."""
    verified = mint(ws)
    seg = f"/t/{verified}/vod/demo/{SEGMENT}"
    # Warm up (allocator arenas, connections): valid requests from several connections.
    warm = []
    for _ in range(50):
        warm.append(edge_get(edge_plain, seg)[0])
    if set(warm) != {200}:
        raise Fatal(f"F2: warm-up answers {sorted(set(warm))}, want only 200")
    before = series(scrape(srv))
    rss_before = vm_rss_kib(srv.pid)

    tally, lock = {}, threading.Lock()
    per = BAD_REQUESTS // FLOOD_THREADS
    threads = [threading.Thread(target=flood, args=(edge_plain, per, i, tally, lock),
                                daemon=True) for i in range(FLOOD_THREADS)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    took = time.monotonic() - t0
    if any(t.is_alive() for t in threads):
        raise Fatal("F2: the flood did not finish within 120 s")
    missing_ra = tally.pop("no_retry_after", 0)
    total = sum(tally.values())
    say(NAME, f"F2: {total} bad-token requests in {took:.1f}s ({total / took:.0f}/s), "
              f"statuses {dict(sorted(tally.items()))}")
    n401, n429 = tally.get(401, 0), tally.get(429, 0)
    checks.check(total == BAD_REQUESTS, f"F2: all {BAD_REQUESTS} flood requests answered",
                 f"{total}")
    checks.check(n401 <= BUDGET + BUDGET_MARGIN,
                 f"F2: {n401} x 401 (<= budget {BUDGET} + margin {BUDGET_MARGIN})",
                 f"{n401} failed verifications were let through")
    checks.check(n429 >= BAD_REQUESTS - BUDGET - BUDGET_MARGIN,
                 f"F2: {n429} x 429 (>= {BAD_REQUESTS - BUDGET - BUDGET_MARGIN})",
                 f"only {n429} requests were rate limited")
    checks.check(n401 + n429 == total, "F2: no status other than 401 and 429",
                 f"{dict(sorted(tally.items()))}")
    checks.check(n429 > 0 and missing_ra == 0, "F2: every 429 carries Retry-After",
                 f"{missing_ra} of {n429} without it")
    status, headers, _ = edge_get(edge_plain, f"/t/{random_token(random.Random(99))}/vod/demo/x.ts")
    checks.check(status == 429 and headers.get("x-tollgate-reason") == "rate_limited",
                 "F2: a further bad token from 127.0.0.1 gets 429, "
                 "x-tollgate-reason: rate_limited",
                 f"HTTP {status}, reason {headers.get('x-tollgate-reason')}")

    status = edge_get(edge_plain, f"/t/{mint(ws)}/vod/demo/{SEGMENT}", source="127.0.0.2")[0]
    checks.check(status == 200, "F2: a valid token from 127.0.0.2 (another client) gets 200",
                 f"HTTP {status}")
    status = edge_get(edge_plain, seg)[0]
    checks.check(status == 200, "F2: an already verified token from 127.0.0.1 still gets 200",
                 f"HTTP {status}")
    # The block lasts until one failure's worth has refilled (2 s at 30/m), and minting
    # takes a process start: mint first, re-arm the block with a few bad tokens (the first
    # may spend a refilled cell), then ask at once.
    fresh = mint(ws)
    rearm = random.Random(7)
    for _ in range(3):
        edge_get(edge_plain, f"/t/{random_token(rearm)}/vod/demo/x.ts")
    status = edge_get(edge_plain, f"/t/{fresh}/vod/demo/{SEGMENT}")[0]
    checks.check(status == 429, "F2: a valid but never verified token from 127.0.0.1 gets 429 "
                                "(budget spent, no signature work)", f"HTTP {status}")

    after = series(scrape(srv))
    rss_after = vm_rss_kib(srv.pid)
    added, gone = sorted(set(after) - set(before)), sorted(set(before) - set(after))
    checks.check(not added and not gone,
                 f"F2: the series set is unchanged ({len(before)} series)",
                 f"added {added[:20]}{' …' if len(added) > 20 else ''}; gone {gone[:20]}")
    limited = (after.get('tollgate_rate_limited_total{limiter="bad_token"}', 0)
               - before.get('tollgate_rate_limited_total{limiter="bad_token"}', 0))
    checks.check(limited >= n429, f"F2: tollgate_rate_limited_total{{limiter=\"bad_token\"}} "
                                  f"went up by {limited:.0f} (>= {n429})")
    cached = (after.get("tollgate_verify_cache_entries", 0)
              - before.get("tollgate_verify_cache_entries", 0))
    checks.check(cached <= 3, f"F2: verification cache grew by {cached:.0f} entries "
                              "(failed tokens are not cached)")
    grew = (rss_after - rss_before) / 1024
    say(NAME, f"F2: VmRSS {rss_before / 1024:.1f} MiB before, {rss_after / 1024:.1f} MiB after")
    checks.check(grew < RSS_BOUND_MIB,
                 f"F2: VmRSS grew by {grew:.1f} MiB (< {RSS_BOUND_MIB} MiB) over the flood",
                 f"{rss_before} kB -> {rss_after} kB")


class Download(threading.Thread):
    """GET the big file over plain HTTP/1.1, read at about DOWNLOAD_MIB_S MiB/s."""

    def __init__(self, addr, path):
        super().__init__(daemon=True)
        self.addr, self.path = hostport(addr), path
        self.status = None
        self.length = None
        self.got = 0
        self.sha = hashlib.sha256()
        self.error = None
        self.started = self.done = None

    def run(self):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 << 10)
            s.settimeout(REQUEST_TIMEOUT_S)
            s.connect(self.addr)
            with s:
                self.started = time.monotonic()
                s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                buf = b""
                while b"\r\n\r\n" not in buf:
                    chunk = s.recv(65536)
                    if not chunk:
                        raise OSError("closed before the response head")
                    buf += chunk
                head, body = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                self.status = int(lines[0].split()[1])
                for ln in lines[1:]:
                    k, _, v = ln.partition(":")
                    if k.strip().lower() == "content-length":
                        self.length = int(v)
                self.sha.update(body)
                self.got = len(body)
                rate = DOWNLOAD_MIB_S << 20
                while self.length is None or self.got < self.length:
                    chunk = s.recv(64 << 10)
                    if not chunk:
                        break
                    self.sha.update(chunk)
                    self.got += len(chunk)
                    ahead = self.got / rate - (time.monotonic() - self.started)
                    if ahead > 0:
                        time.sleep(ahead)
        except OSError as e:
            self.error = repr(e)
        finally:
            self.done = time.monotonic()


def connect_refused(addr):
    try:
        with socket.create_connection(hostport(addr), timeout=1):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def check_graceful_shutdown(checks, ws, srv, big_sha):
    """5. E1: SIGTERM during a slow 50 MiB download."""
    lst = srv.listening()
    edge_plain, edge_tls = lst["edge-plain"], lst["edge-tls"]
    token = mint(ws)
    dl = Download(edge_plain, f"/t/{token}/vod/demo/big.ts")
    dl.start()
    time.sleep(SIGTERM_AFTER_S)
    if dl.status != 200:
        raise Fatal(f"E1: the download had no 200 head {SIGTERM_AFTER_S}s in "
                    f"(status {dl.status}, error {dl.error})")
    got_at_term = dl.got
    exited = {}

    def reap():  # the exit time, independent of the download's end
        try:
            exited["rc"] = srv.proc.wait(timeout=GRACE_S + 10)
        except subprocess.TimeoutExpired:
            exited["rc"] = None
        exited["at"] = time.monotonic()

    os.kill(srv.pid, signal.SIGTERM)
    t_term = time.monotonic()
    reaper = threading.Thread(target=reap, daemon=True)
    reaper.start()
    refused = wait_until(lambda: connect_refused(edge_plain) and connect_refused(edge_tls),
                         REFUSED_WITHIN_S, 0.02)
    t_refused = time.monotonic() - t_term
    still = dl.is_alive() and dl.got < BIG_MIB << 20
    checks.check(refused and still,
                 f"E1: new connections to both edge ports refused {t_refused * 1000:.0f} ms "
                 f"after SIGTERM, while the download goes on ({dl.got >> 20} MiB read)",
                 f"refused={refused} within {REFUSED_WITHIN_S}s, download running={still}")
    dl.join(GRACE_S + 10)
    if dl.is_alive():
        raise Fatal("E1: the download did not end within the grace period")
    reaper.join(GRACE_S + 15)
    rc, t_exit = exited.get("rc"), exited.get("at", time.monotonic())
    ok_body = (dl.error is None and dl.length == BIG_MIB << 20 and dl.got == dl.length
               and dl.sha.hexdigest() == big_sha)
    checks.check(ok_body,
                 f"E1: the download completed: {dl.got} bytes (= {BIG_MIB} MiB), SHA-256 "
                 f"matches, {dl.done - dl.started:.1f}s "
                 f"({got_at_term >> 20} MiB read at SIGTERM)",
                 f"error {dl.error}, Content-Length {dl.length}, got {dl.got}, "
                 f"sha {dl.sha.hexdigest()[:16]} want {big_sha[:16]}")
    # The gate may exit a little before the client has read the last bytes out of the
    # socket buffers; it must not linger long after the download either.
    after_term, dl_end = t_exit - t_term, dl.done - t_term
    say(NAME, f"E1: SIGTERM {SIGTERM_AFTER_S}s into the download; refused after "
              f"{t_refused * 1000:.0f} ms; download done {dl_end:.2f}s and process exit "
              f"{after_term:.2f}s after SIGTERM")
    checks.check(rc == 0 and after_term < GRACE_S
                 and abs(after_term - dl_end) < EXIT_AFTER_DOWNLOAD_S,
                 f"E1: the process exited with status 0, {after_term:.1f}s after SIGTERM "
                 f"(grace {GRACE_S}s), {after_term - dl_end:+.2f}s from the download's end",
                 f"exit status {rc}, {after_term:.1f}s after SIGTERM, download done "
                 f"{dl_end:.1f}s after SIGTERM")
    err = stderr_text(srv)
    checks.check("shutting down" in err and re.search(r"\bstopped\b", err) is not None,
                 "E1: stderr says it shut down ('shutting down' ... 'stopped')",
                 f"stderr tail: {err[-600:]}")


def check_idle_keepalive(checks, ws, srv):
    """5b. E1: an idle keep-alive connection does not hold up the exit."""
    edge_plain = srv.listening()["edge-plain"]
    token = mint(ws)
    s = socket.create_connection(hostport(edge_plain), timeout=REQUEST_TIMEOUT_S)
    with s:
        conn = httpclient.HTTPConnection(*hostport(edge_plain), timeout=REQUEST_TIMEOUT_S)
        conn.sock = s  # one request, then the connection stays open and idle
        conn.request("GET", f"/t/{token}/vod/demo/v0/index.m3u8")
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200 or resp.will_close:
            raise Fatal(f"E1 idle: want a 200 on a kept-alive connection, got {resp.status} "
                        f"(will_close={resp.will_close})")
        os.kill(srv.pid, signal.SIGTERM)
        t0 = time.monotonic()
        try:
            rc = srv.proc.wait(timeout=GRACE_S + 5)
        except subprocess.TimeoutExpired:
            rc = None
        took = time.monotonic() - t0
        try:
            s.settimeout(2)
            closed = s.recv(1) == b""
        except OSError:
            closed = True  # reset also means closed
    checks.check(rc == 0 and took < IDLE_EXIT_S and closed,
                 f"E1: with an idle keep-alive connection open the process exited with "
                 f"status 0 {took:.2f}s after SIGTERM, closing it",
                 f"exit status {rc} after {took:.1f}s (want < {IDLE_EXIT_S}s), closed={closed}")


# ---------------------------------------------------------------------------- main

def run_check(checks, what, fn, *args):
    """One check; an unexpected failure inside it counts as a FAIL and the rest go on."""
    try:
        return fn(checks, *args)
    except Fatal as e:
        checks.fail(f"{what}: {e}")
    except Exception:
        traceback.print_exc()
        checks.fail(f"{what}: the check raised (traceback above)")
    return None


def start(ws, label, servers):
    srv = Server(ws, label)
    servers.append(srv)
    srv.wait_ready()
    lst = srv.listening()
    say(NAME, f"{label}: pid {srv.pid}, edge-tls={lst['edge-tls']} "
              f"edge-plain={lst['edge-plain']} admin={srv.admin}")
    return srv, lst


def main():
    if BREAK not in ("", "keys", "budget"):
        raise Fatal(f"E2E_OPS_BREAK={BREAK!r}: want keys or budget")
    keep = bool(os.environ.get("E2E_KEEP_TMP"))
    checks = Checks(NAME)
    bin_path = binary(NAME, release=True)
    watchdog(OVERALL_TIMEOUT_S)
    t0 = time.monotonic()
    ws = Workspace(NAME, bin_path)
    servers = []
    try:
        big_sha = prepare(ws)
        if BREAK:
            say(NAME, f"E2E_OPS_BREAK={BREAK}: a check is meant to FAIL in this run")

        srv, lst = start(ws, "ops", servers)
        token = mint(ws)
        run_check(checks, "F1", check_metrics_lint, ws, srv, lst["edge-plain"], token)
        run_check(checks, "E2 load", check_reload_under_load, ws, srv, lst["edge-tls"], token)
        run_check(checks, "E2 broken", check_broken_reload, ws, srv, lst["edge-plain"], token)
        srv.stop()

        srv, lst = start(ws, "budget", servers)
        run_check(checks, "F2", check_bad_token_budget, ws, srv, lst["edge-plain"])
        srv.stop()

        srv, _ = start(ws, "shutdown", servers)
        run_check(checks, "E1", check_graceful_shutdown, ws, srv, big_sha)
        srv, _ = start(ws, "idle", servers)
        run_check(checks, "E1 idle", check_idle_keepalive, ws, srv)
    except Exception as e:  # Fatal, a bug, an answer of an unexpected shape: still clean up
        count_failure(NAME, checks, e)
    finally:
        stop_servers(NAME, servers, checks, log_lines=40)
        ws.remove(keep)
    say(NAME, f"run time {time.monotonic() - t0:.0f}s")
    checks.summary()
    return 1 if checks.failed else 0


if __name__ == "__main__":
    run_main(NAME, main)
