#!/usr/bin/env python3
"""End-to-end: browser players with default Chromium settings, through tollgate.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. writes its own config in a temp dir: a `file://` origin on `media/` (the sample VOD
     as media/vod/demo, a live encoder's output as media/live/cam), routes `/vod/{rid}/`
     and `/live/{rid}/`, `edge.cors_origins = ["http://page.test:P"]` (the page),
     `[token] leeway = "1s"`, `[manifest] renew_before = "10s"`, `renew_ttl = "20s"`;
  3. **cookie mode across sites** (`manifest.mode = "cookie"`, the TLS listener): the
     page is http://page.test:P, the media https://media.test:Q — different sites, so
     the media's cookie is a third-party cookie, which Chromium blocks by default (as
     Safari does). hls.js (`xhr.withCredentials`) plays the HLS VOD to the end and
     shaka (`allowCrossSiteCredentials`) the DASH VOD: only the manifest URL carries
     `?token=`, every other request rides on the `Partitioned` cookie;
  4. **a page-appended token on a live stream** (`manifest.mode = "query"`): ffmpeg
     encodes a live HLS stream; a token minted `--ttl 20s --session 300s`; hls.js plays
     it for 65 s (more than three token lifetimes) while the page appends that original
     token to every request (xhrSetup), beside the renewed one the gate put in each
     child URL. Every request must be answered (the fresher of two copies of one
     session wins), and the access log must show renewed playlists and segments served
     after the original token's exp.

Both runs go through scripts/e2e-hlsjs.sh (Chromium, npm packages, play.mjs), which
exits 1 when playback fails: a refusal, a failed request, a fatal player error.

Usage: python3 scripts/e2e-browsers.py     (from any directory; about 2.5 min)
Env:   TOLLGATE_BIN    use this binary instead of building one
       E2E_KEEP_TMP=1  keep the temp dir (config, server/encoder/player logs)
       E2E_BROWSERS_ONLY=cookie|live   run one part
Needs: python3, ffmpeg with libx264, node >= 20, npm, Debian's chromium.
Prints "e2e-browsers: N passed, M failed"; exits non-zero on any failure.
"""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gate_run import free_port  # noqa: E402
from tollgate_e2e import (REPO_ROOT, Checks, Fatal, Server, binary, count_failure,  # noqa: E402
                         gate_config, run_main, say, watchdog)

# The live encoder, its process wrapper and the access-log parser are e2e-live.py's.
_spec = importlib.util.spec_from_file_location(
    "e2e_live", os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e-live.py"))
live = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(live)

NAME = "e2e-browsers"
PAGE_HOST = "page.test"
MEDIA_HOST = "media.test"
TTL_S = 20  # the live token's lifetime
SESSION_S = 300  # its session: longer than the run
LIVE_PLAY_S = 65  # more than three lifetimes
VOD_TIMEOUT_S = 60
OVERALL_TIMEOUT_S = 330

# After e2e-live.py's file origin, live route and resource: the VOD, the manifest mode.
VOD_AND_MANIFEST = """
[[routes]]
name = "vod"
path = "/vod/{{rid}}/"
type = "vod"
origin = "media"

[[resources]]
id = "demo"
type = "vod"
org = "o"
project = "p"

[manifest]
mode = "{mode}"
renew_before = "10s"
renew_ttl = "20s"
"""


class BrowserWorkspace:
    """A temp dir: media/vod/demo (a copy of the sample VOD: the file origin follows no
    symlink), media/live/cam (the encoder's), and one config per manifest mode."""

    def __init__(self, bin_path, page_origin):
        self.name = NAME
        self.bin = bin_path
        self.dir = tempfile.mkdtemp(prefix=f"tollgate-{NAME}.",
                                    dir=os.environ.get("TMPDIR") or None)
        shutil.copytree(os.path.join(REPO_ROOT, "sample", "vod", "demo"),
                        self.path("media", "vod", "demo"))
        self.live = self.path("media", "live", "cam")
        os.makedirs(self.live)
        with open(os.path.join(self.live, "master.m3u8"), "w", encoding="utf-8") as f:
            f.write(live.MASTER)
        self.page_origin = page_origin
        self.config = None

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def use_mode(self, mode):
        """Write the config for `mode` ("cookie" or "query"); Server reads ws.config."""
        self.config = self.path(f"tollgate-{mode}.toml")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(gate_config(NAME, "1s", edge=f'cors_origins = ["{self.page_origin}"]\n',
                                body=live.MEDIA + VOD_AND_MANIFEST.format(mode=mode)))

    def mint(self, *args):
        p = subprocess.run([self.bin, "token", "mint", "--config", self.config, *args],
                           capture_output=True, timeout=30, cwd=self.dir,
                           stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise Fatal(f"token mint {' '.join(args)}: {p.stderr.decode(errors='replace')}")
        return p.stdout.decode().strip().splitlines()[-1].strip()

    def remove(self, keep):
        if keep:
            say(NAME, f"kept {self.dir}", err=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def play(ws, label, url, *options, timeout_s):
    """scripts/e2e-hlsjs.sh with the page on PAGE_HOST; returns (exit code, summary)."""
    port = ws.page_origin.rsplit(":", 1)[1]
    cmd = ["bash", os.path.join(REPO_ROOT, "scripts", "e2e-hlsjs.sh"), url,
           "--page-host", PAGE_HOST, "--page-port", port, "--timeout-s", str(timeout_s),
           *options]
    env = dict(os.environ, E2E_INSECURE="1")  # the dev certificate, on media.test
    log = ws.path(f"player-{label}.out")
    with open(log, "wb") as out:
        p = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                           stdin=subprocess.DEVNULL, timeout=timeout_s + 120)
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    summary = {}
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                summary = json.loads(line)
            except ValueError:
                pass
    if p.returncode != 0:
        print(f"----- {label} player output -----\n{text[-6000:]}", file=sys.stderr)
    return p.returncode, summary


def edge(server, which):
    with open(server.out, encoding="utf-8", errors="replace") as f:
        m = re.search(rf"^tollgate listening: .*\b{which}=(\S+)", f.read(), re.M)
    if not m:
        raise Fatal(f"no {which} address in the 'tollgate listening:' line")
    return m.group(1)


def cookie_runs(ws, checks):
    """hls.js and shaka, cookie mode, page and media on different sites."""
    ws.use_mode("cookie")
    token = ws.mint("--resource", "demo", "--ttl", "10m")
    server = Server(ws, "cookie")
    try:
        server.wait_ready()
        port = edge(server, "edge-tls").rsplit(":", 1)[1]
        base = f"https://{MEDIA_HOST}:{port}/vod/demo"
        for player, path in (("hlsjs", "master.m3u8"), ("shaka", "dash/manifest.mpd")):
            rc, s = play(ws, f"cookie-{player}", f"{base}/{path}?token={token}",
                         "--player", player, "--credentials", timeout_s=VOD_TIMEOUT_S)
            without = [r for r in s.get("requests", []) if "token=" not in r]
            checks.check(rc == 0 and s.get("cross_origin") and len(without) >= 2,
                         f"cookie mode, page on {PAGE_HOST}, media on {MEDIA_HOST}: {player} "
                         f"plays to the end ({s.get('fragments_loaded')} fragments, "
                         f"{len(without)} requests on the cookie alone)",
                         f"exit {rc}, stop {s.get('stop')}, reasons {s.get('reasons')}")
    finally:
        server.stop()
        if checks.failed:
            print(server.logs(30), file=sys.stderr)


def live_run(ws, checks):
    """hls.js on a live stream, the page appending the original token to every request."""
    encoder = live.start_encoder(ws.live, ws.dir, ws.path("encoder.err"))
    ws.use_mode("query")
    server = None
    try:
        token = ws.mint("--resource", "cam", "--ttl", f"{TTL_S}s", "--session", f"{SESSION_S}s")
        exp = live.claims_of(token)["exp"]
        server = Server(ws, "live")
        server.wait_ready()
        url = f"http://{MEDIA_HOST}:{edge(server, 'edge-plain').rsplit(':', 1)[1]}" \
              f"/live/cam/master.m3u8?token={token}"
        rc, s = play(ws, "live", url, "--append-token", "--live-s", str(LIVE_PLAY_S),
                     timeout_s=LIVE_PLAY_S + 45)
        checks.check(rc == 0, f"live, page-appended token: hls.js plays {LIVE_PLAY_S}s "
                              f"(> 3 x {TTL_S}s token lifetime) with every request answered "
                              f"({s.get('fragments_loaded')} fragments, live {s.get('live')})",
                     f"exit {rc}, reasons {s.get('reasons')}, failed {s.get('failed')}")
        lines = live.access_lines(server.err)
        renewed = [a for a in lines if a.manifest == "renewed"]
        # Segments are the answers with no manifest= field.
        late = [a for a in lines if a.t > exp + 2 and a.status == 200 and not a.manifest]
        refused = [a for a in lines if a.status >= 400]
        checks.check(renewed and late and not refused,
                     f"access log: {len(renewed)} renewed playlists, {len(late)} segments "
                     f"served after the original token's exp, {len(refused)} refusals",
                     "; ".join(a.raw for a in refused[:3]))
    finally:
        encoder.stop()
        if server is not None:
            server.stop()
            if checks.failed:
                print(server.logs(30), file=sys.stderr)


def main():
    keep = bool(os.environ.get("E2E_KEEP_TMP"))
    only = os.environ.get("E2E_BROWSERS_ONLY", "")
    if only not in ("", "cookie", "live"):
        raise Fatal(f"E2E_BROWSERS_ONLY={only!r}: use cookie or live")
    checks = Checks(NAME)
    bin_path = binary(NAME)
    if not shutil.which("ffmpeg"):
        raise Fatal("ffmpeg not found (Debian: apt-get install -y ffmpeg)")
    watchdog(OVERALL_TIMEOUT_S)
    os.environ["NO_COLOR"] = "1"  # plain access-log lines
    started = time.monotonic()
    ws = BrowserWorkspace(bin_path, f"http://{PAGE_HOST}:{free_port()}")
    try:
        if only in ("", "cookie"):
            cookie_runs(ws, checks)
        if only in ("", "live"):
            live_run(ws, checks)
    except Exception as e:  # still clean up, and count it
        count_failure(NAME, checks, e)
    finally:
        ws.remove(keep)
        say(NAME, f"took {time.monotonic() - started:.0f}s")
    return checks.summary()


if __name__ == "__main__":
    run_main(NAME, main)
