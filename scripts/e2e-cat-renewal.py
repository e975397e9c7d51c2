#!/usr/bin/env python3
"""End-to-end: Common Access Token renewal (`catr`) on a live stream, played by real
browser players for more than three token lifetimes, all at once.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. writes its own config in a temp dir: a `file://` origin on `media/`, route
     `/live/{rid}/` (type live) with `formats = ["cat"]`, one `[[formats]]` of kind
     `cat` (HS256 key `k1`, the default carriers: header and cookie
     `CTA-Common-Access-Token`, query `CAT`, `live_session = "1h"`),
     `edge.cors_origins` naming the three pages;
  3. starts ffmpeg as the live encoder (scripts/e2e-live.py's: 1 s HLS segments, a
     sliding window) writing media/live/cam/;
  4. mints three CATs with Python `cwt` (PyPI), not tollgate: `exp` = now + LIFETIME
     (60 s by default; 60-120), a `cti` each, and a `catr` (`expadd` = LIFETIME,
     `deadline` = LIFETIME / 2) of a different type for each player;
  5. plays the stream, in parallel, in three headless Chromiums (scripts/e2e-hlsjs.sh
     through scripts/e2e-browsers.py's `play`) for 3 x LIFETIME + 20 s:
       - **shaka-player, header renewal** (`catr` type 2): shaka speaks CAT itself
         (`networking.commonAccessTokenHeaderName`: it keeps the token each response
         carries in that header and sends it on the next request to the host); only
         the very first token is put in by a request filter, shaka's documented hook
         (play.mjs --cat-header);
       - **hls.js, cookie renewal** (`catr` type 1): hls.js knows nothing of CAT; the
         page sets the first token as a cookie for its host and hls.js sends cookies
         (`xhrSetup`: `withCredentials`, its documented hook); the browser stores each
         renewed `Set-Cookie` by itself (play.mjs --credentials --cat-cookie). The page
         and the media share a host name (page.test), so the cookie is first-party;
       - **hls.js, manifest-rewrite renewal** (`catr` type 0, automatic; the CAT in the
         master URL's query): nothing in the player; the gate puts renewed tokens in the
         playlists' URLs. hls.js reloads the media playlist at the URL the master gave
         it, whose token expires after one lifetime: the format's `live_session` lets
         that reload through, answered only with a playlist carrying a renewed token;
  6. checks: each player played the whole time with every request answered (play.mjs:
     no response >= 400, no failed request, no fatal player error, the media time kept
     up); the gate's access log has no 4xx and shows requests through the whole run;
     `tollgate_foreign_requests_total{format="cat"}` counts no refusal.

Usage: python3 scripts/e2e-cat-renewal.py     (from any directory; about 4.5 min)
Env:   TOLLGATE_BIN            use this binary instead of building one
       E2E_CAT_LIFETIME_S=N    the tokens' lifetime (60-120, default 60)
       E2E_CAT_BREAK=norenew   mint the tokens without `catr` (the run must fail once
                               the first lifetime is over: this proves it can)
       E2E_CAT_BREAK=nosession leave `live_session` out of the format (hlsjs-rewrite
                               must fail: hls.js reloads the media playlist at the URL
                               the master gave it, whose token expires)
       E2E_KEEP_TMP=1          keep the temp dir (config, gate/encoder/player logs)
       E2E_CAT_ONLY=LABEL,...  run only these players (shaka-header, hlsjs-cookie,
                               hlsjs-rewrite), e.g. to look at one
Needs: python3 with cwt (pip install cwt), ffmpeg with libx264, node >= 20, npm,
       Debian's chromium.
Prints "e2e-cat-renewal: N passed, M failed"; exits non-zero on any failure.
"""

import importlib.util
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gate_run import free_port  # noqa: E402
from tollgate_e2e import (Checks, Fatal, Server, binary, count_failure, gate_config,  # noqa: E402
                         http, run_main, say, watchdog)

NAME = "e2e-cat-renewal"
HERE = os.path.dirname(os.path.abspath(__file__))


def load(name, file):
    """A sibling script as a module (their names have dashes)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The live encoder and the access-log parser are scripts/e2e-live.py's, the browser run
# scripts/e2e-browsers.py's, the CAT claim keys scripts/cat-fixtures.py's.
live = load("e2e_live", "e2e-live.py")
browsers = load("e2e_browsers", "e2e-browsers.py")
try:
    fx = load("cat_fixtures", "cat-fixtures.py")
except ImportError as e:
    print(f"{NAME}: FATAL: {e}; install cwt with: {sys.executable} -m pip install cwt",
          file=sys.stderr)
    print(f"{NAME}: 0 passed, 1 failed")
    sys.exit(2)

KID = "k1"
SECRET = secrets.token_bytes(32)
HEADER = "CTA-Common-Access-Token"
COOKIE = "CTA-Common-Access-Token"
QUERY = "CAT"
RID = "cam"
OK = (200, 206)

CAT_FORMAT = f"""
[[formats]]
name = "cat"
kind = "cat"
live_session = "1h"

[[formats.keys]]
kid = "{KID}"
alg = "HS256"
key = "{SECRET.hex()}"

[manifest]
rewrite = true
mode = "query"
"""


def lifetime():
    raw = os.environ.get("E2E_CAT_LIFETIME_S", "60")
    if not raw.isdigit() or not 60 <= int(raw) <= 120:
        raise Fatal(f"E2E_CAT_LIFETIME_S={raw!r}: a number of seconds from 60 to 120")
    return int(raw)


class Run:
    """One player's page origin (its own port, so the three pages never collide) and
    its log, in the shape scripts/e2e-browsers.py's `play` expects."""

    def __init__(self, ws_dir, label):
        self.label = label
        self.dir = ws_dir
        self.page_origin = f"http://{browsers.PAGE_HOST}:{free_port()}"
        self.rc, self.summary = None, {}

    def path(self, *parts):
        return os.path.join(self.dir, *parts)


class RenewalWorkspace:
    """A temp dir: media/live/cam (the encoder's output and a master playlist) and the
    config (the shape tollgate_e2e.Server expects: name, bin, dir, config, path)."""

    def __init__(self, bin_path, runs_labels, live_session=True):
        self.name = NAME
        self.bin = bin_path
        self.dir = tempfile.mkdtemp(prefix=f"tollgate-{NAME}.",
                                    dir=os.environ.get("TMPDIR") or None)
        self.live = self.path("media", "live", RID)
        os.makedirs(self.live)
        with open(os.path.join(self.live, "master.m3u8"), "w", encoding="utf-8") as f:
            f.write(live.MASTER)
        self.runs = {label: Run(self.dir, label) for label in runs_labels}
        origins = ", ".join(f'"{r.page_origin}"' for r in self.runs.values())
        route = live.MEDIA.replace('origin = "media"\n', 'origin = "media"\nformats = ["cat"]\n')
        fmt = CAT_FORMAT if live_session else CAT_FORMAT.replace('live_session = "1h"\n', "")
        self.config = self.path("tollgate.toml")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(gate_config(NAME, "1s", edge=f"cors_origins = [{origins}]\n",
                                body=route + fmt))

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def remove(self, keep):
        if keep:
            say(NAME, f"kept {self.dir}", err=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def mint(cti, life, catr):
    """A CAT minted by Python cwt: iat now, exp now + life, the given `catr` (or none)."""
    now = int(time.time())
    claims = {fx.IAT: now, fx.EXP: now + life, fx.CTI: cti.encode()}
    if catr is not None:
        claims[fx.CATR] = catr
    return fx.b64(fx.mint(claims, fx.hs_key(kid=KID, secret=SECRET)))


def players(edge_port, life, renew):
    """(label, URL, play.mjs options) per player, each with its own freshly minted CAT."""

    def catr(kind, extra=None):
        """type, expadd = the lifetime, deadline = half of it, and `extra` keys; no
        `catr` at all under E2E_CAT_BREAK=norenew."""
        return {0: kind, 1: life, 2: life // 2, **(extra or {})} if renew else None

    shaka = mint("shaka-header", life, catr(2, {4: HEADER}))
    cookie = mint("hlsjs-cookie", life, catr(1, {3: COOKIE, 5: ["Path=/"]}))
    query = mint("hlsjs-rewrite", life, catr(0))
    media = f"http://127.0.0.1:{edge_port}/live/{RID}/master.m3u8"
    # The cookie run's media is on the page's host name (another port): first-party.
    same_host = f"http://{browsers.PAGE_HOST}:{edge_port}/live/{RID}/master.m3u8"
    return [
        ("shaka-header", media, ["--player", "shaka", "--cat-header", f"{HEADER}={shaka}"]),
        ("hlsjs-cookie", same_host, ["--credentials", "--cat-cookie", f"{COOKIE}={cookie}"]),
        ("hlsjs-rewrite", f"{media}?{QUERY}={query}", []),
    ]


def play_all(ws, edge_port, life, renew, play_s):
    """Every player at once (CI pays the wall time once); returns when all are done."""
    threads = []
    for label, url, options in players(edge_port, life, renew):
        run = ws.runs.get(label)
        if run is None:
            continue

        def go(run=run, url=url, options=options):
            try:
                run.rc, run.summary = browsers.play(run, run.label, url, "--live-s", str(play_s),
                                                    *options, timeout_s=play_s + 60)
            except Exception as e:  # a harness failure is this player's failure
                run.rc, run.summary = -1, {"reasons": [f"harness: {e}"]}

        t = threading.Thread(target=go, name=label, daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(play_s + 240)


def foreign_counts(admin):
    """`tollgate_foreign_requests_total{format="cat",result=…}` from the admin listener."""
    status, body = http("GET", f"http://{admin}/metrics")
    if status != 200:
        raise Fatal(f"/metrics answered {status}")
    counts = {}
    for line in body.decode(errors="replace").splitlines():
        m = re.match(r'tollgate_foreign_requests_total\{([^}]*)\}\s+(\S+)', line)
        if m and 'format="cat"' in m.group(1):
            result = re.search(r'result="([^"]*)"', m.group(1))
            counts[result.group(1) if result else "?"] = int(float(m.group(2)))
    return counts


def network_errors(summary):
    """The player's own network error events, fatal or not (hls.js `networkError`;
    shaka's category 1, codes 1xxx): a refused request the player retried past."""
    return [e for e in summary.get("hls_errors", [])
            if e.get("type") == "networkError"
            or (e.get("type") == "shaka" and str(e.get("details", "")).startswith("1"))]


def check_players(ws, checks, life, play_s):
    for label, run in ws.runs.items():
        s = run.summary
        errors = network_errors(s)
        checks.check(run.rc == 0 and not errors,
                     f"{label}: played {play_s}s (> 3 x {life}s token lifetime), every request "
                     f"answered ({s.get('fragments_loaded')} fragments, "
                     f"{s.get('media_requests')} requests, live {s.get('live')}, "
                     f"{len(errors)} player network errors)",
                     f"exit {run.rc}, stop {s.get('stop')}, reasons {s.get('reasons')}, "
                     f"failed {s.get('failed', [])[:3]}, player errors "
                     f"{s.get('hls_errors', [])[:3]}")


def check_gate(server, checks, started, life, play_s, players_run):
    lines = live.access_lines(server.err)
    refused = [a for a in lines if 400 <= a.status < 500]
    served = [a for a in lines if a.status in OK]
    checks.check(served and not refused,
                 f"gate access log: {len(served)} answered 200/206, {len(refused)} 4xx",
                 "; ".join(a.raw for a in refused[:3]))
    last = max((a.t for a in served), default=started)
    checks.check(last - started >= 3 * life,
                 f"the gate served until {last - started:.0f}s after the tokens were minted "
                 f"(want >= {3 * life}s: three lifetimes)")
    if "hlsjs-rewrite" in players_run:
        # The query CAT of hls.js's media playlist URL expired one lifetime in: every
        # playlist after that was the live-session allowance, answered renewed.
        after = started + life + 2
        renewed = [a for a in served if a.manifest == "renewed" and a.t > after]
        checks.check(len(renewed) >= 20,
                     f"hlsjs-rewrite: {len(renewed)} playlists answered renewed after its "
                     f"first token expired (want >= 20: the live-session allowance)")
    counts = {k: v for k, v in foreign_counts(server.admin).items() if v}
    bad = {k: v for k, v in counts.items() if k != "ok"}
    checks.check(counts.get("ok", 0) > 0 and not bad,
                 f"tollgate_foreign_requests_total{{format=\"cat\"}}: {counts}",
                 f"refusals {bad}")


def only_players():
    labels = ["shaka-header", "hlsjs-cookie", "hlsjs-rewrite"]
    only = [x for x in os.environ.get("E2E_CAT_ONLY", "").split(",") if x]
    if any(x not in labels for x in only):
        raise Fatal(f"E2E_CAT_ONLY={','.join(only)}: players are {', '.join(labels)}")
    return only or labels


def main():
    keep = bool(os.environ.get("E2E_KEEP_TMP"))
    brk = os.environ.get("E2E_CAT_BREAK", "")
    if brk not in ("", "norenew", "nosession"):
        raise Fatal(f"E2E_CAT_BREAK={brk!r}: use norenew or nosession")
    life = lifetime()
    play_s = 3 * life + 20
    checks = Checks(NAME)
    bin_path = binary(NAME)
    if not shutil.which("ffmpeg"):
        raise Fatal("ffmpeg not found (Debian: apt-get install -y ffmpeg)")
    watchdog(play_s + 420)
    os.environ["NO_COLOR"] = "1"  # plain access-log lines
    begun = time.monotonic()
    ws = RenewalWorkspace(bin_path, only_players(), live_session=brk != "nosession")
    if brk == "norenew":
        say(NAME, "E2E_CAT_BREAK=norenew: the tokens carry no catr -- this run is meant to FAIL")
    if brk == "nosession":
        say(NAME, "E2E_CAT_BREAK=nosession: the format has no live_session -- hlsjs-rewrite "
                  "is meant to FAIL")
    encoder = server = None
    try:
        encoder = live.start_encoder(ws.live, ws.dir, ws.path("encoder.err"))
        server = Server(ws, "cat")
        server.wait_ready()
        edge_port = browsers.edge(server, "edge-plain").rsplit(":", 1)[1]
        say(NAME, f"gate (pid {server.pid}) on port {edge_port}; {len(ws.runs)} players for {play_s}s "
                  f"with {life}s tokens")
        started = time.time()
        play_all(ws, edge_port, life, brk != "norenew", play_s)
        check_players(ws, checks, life, play_s)
        check_gate(server, checks, started, life, play_s, ws.runs)
        checks.check(encoder.alive(), "the encoder ran throughout")
    except Exception as e:  # still clean up, and count it
        count_failure(NAME, checks, e)
    finally:
        if encoder is not None:
            encoder.stop()
        if server is not None:
            server.stop()
            if checks.failed:
                print(server.logs(30), file=sys.stderr)
        ws.remove(keep)
        say(NAME, f"took {time.monotonic() - begun:.0f}s")
    return checks.summary()


if __name__ == "__main__":
    run_main(NAME, main)
