#!/usr/bin/env python3
"""End-to-end: live token renewal in query-token mode, with a real encoder and player.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. writes its own config in a temp dir: a `file://` origin on `media/`, route
     `/live/{rid}/` (type live), resource `cam`, `[token] leeway = "1s"`,
     `[manifest] renew_before = "10s"`, `renew_ttl = "20s"`;
  3. starts ffmpeg as the live encoder (lavfi testsrc2 + sine, -re, libx264, 1 s HLS
     segments, sliding window of 6, delete_segments) writing media/live/cam/index.m3u8,
     and a master.m3u8 beside it; waits for >= 3 segments;
  4. mints a token with `--ttl 20s --session 75s` (sxp = mint + 75 s), checks the config,
     starts `tollgate serve` and the player:
     `ffmpeg -i http://EDGE/live/cam/master.m3u8?token=T -map 0 -c copy -f null -`
     (only the master URL has the token; the gate rewrites every child URL);
  5. halfway through, after the original token's exp, probes the gate itself (tagged
     with X-Forwarded-For 192.0.2.7 so its log lines are told apart from the player's):
     the master and media playlist with the expired original token -> 200 with a
     renewed child token (same jti and sxp, exp = now + renew_ttl), a segment with the
     expired original token -> 403 expired, with the renewed token -> 200;
  6. lets the player run until sxp + leeway + 10 s, then checks, from the gate's access
     log (stderr, logfmt lines) and the player's stderr (timestamped line by
     line on arrival):
       - before sxp: every player request answered 200/206 (ffmpeg asks for segments
         with Range: bytes=0-), >= 60 segments, >= 60 s (3 token lifetimes) of playback,
         no gap > 4 s between segments, segments still served after the original
         token's exp (only renewal makes that possible);
       - media playlist reloads answered manifest="renewed"; every request shows the
         minted token's jti (renewal keeps the jti);
       - after sxp: the player is refused (403 reason expired), no 200/206 after
         sxp + leeway + 2 s, and a fresh request with the original token (and one with
         a renewed token) -> 403 `x-tollgate-reason: expired`;
       - the player's stderr has no error line before sxp, and shows the refusal after.

Usage: python3 scripts/e2e-live.py        (from any directory; about 90 s)
Env:   TOLLGATE_BIN      use this binary instead of building one
       E2E_KEEP_TMP=1    keep the temp dir (config, server/encoder/player logs)
       E2E_LIVE_BREAK    make the checks fail on purpose (to prove they can):
                         `1` or `rewrite`: `[manifest] rewrite = false` (children get no
                         token); `nosession`: mint without --session (no sxp, no renewal)
Needs: python3 (standard library only), ffmpeg with libx264 and the lavfi inputs.
Prints "e2e-live: N passed, M failed"; exits non-zero on any failure.
"""

import base64
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import (Checks, Fatal, Server, binary, gate_config, run_main, say,  # noqa: E402
                         watchdog)

NAME = "e2e-live"
RID = "cam"
TTL_S = 20  # token lifetime
SESSION_S = 75  # sxp = mint + SESSION_S
LEEWAY_S = 1  # [token] leeway
RENEW_BEFORE_S = 10  # [manifest] renew_before
RENEW_TTL_S = 20  # [manifest] renew_ttl
HLS_TIME_S = 1
HLS_LIST_SIZE = 6
TAIL_S = 10  # keep playing this long after sxp + leeway
ENCODER_READY_TIMEOUT_S = 30  # until index.m3u8 lists >= 3 segments
PLAYER_TIMEOUT_S = 150  # hard bound on the player's run
OVERALL_TIMEOUT_S = 175  # the whole script after the build
CLI_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 10
PROBE_AT_S = TTL_S + 10  # after mint: the original token has expired by then
PROBE_CLIENT = "192.0.2.7"  # X-Forwarded-For of the script's own requests
MIN_PLAYBACK_S = 3 * TTL_S  # three token lifetimes
MIN_SEGMENTS = int(0.8 * SESSION_S / HLS_TIME_S)
MAX_SEGMENT_GAP_S = 4.0
AFTER_SXP_200_SLACK_S = LEEWAY_S + 2  # no 200/206 later than sxp + this
OK = (200, 206)  # ffmpeg asks for segments with Range: bytes=0-, so they come back 206

# The player's error lines (ffmpeg -loglevel warning).
PLAYER_ERROR = re.compile(r"Failed to (open|reload)|HTTP error|Server returned|Unable to open"
                          r"|Error (opening|when loading)|403 Forbidden|401 Unauthorized", re.I)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The access log in its default format, logfmt: `ts=<RFC 3339> method=GET route=… …`.
ACCESS = re.compile(r"^ts=(\S+)\s+(.*)$")
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')

# Everything talks to 127.0.0.1 only; never route that through a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# The script's own probes say X-Forwarded-For: PROBE_CLIENT so that the access log tells
# them apart from the player's requests.
EDGE = 'trusted_proxies = ["127.0.0.1"]\n'

# The file origin on media/, the live route and its resource (scripts/e2e-browsers.py
# adds its VOD to them).
MEDIA = f"""
[[origins]]
name = "media"
upstreams = ["file://media"]

[[routes]]
name = "live"
path = "/live/{{rid}}/"
type = "live"
origin = "media"

[[resources]]
id = "{RID}"
type = "live"
org = "o"
project = "p"
"""

MANIFEST = f"""
[manifest]
rewrite = {{rewrite}}
mode = "query"
max_bytes = 1048576
allow_hosts = []
renew_before = "{RENEW_BEFORE_S}s"
renew_ttl = "{RENEW_TTL_S}s"
"""

MASTER = """\
#EXTM3U
#EXT-X-VERSION:3
#EXT-X-STREAM-INF:BANDWIDTH=400000,RESOLUTION=320x180,CODECS="avc1.42c01e,mp4a.40.2"
index.m3u8
"""


class LiveWorkspace:
    """A temp dir with this script's own config (the shape tollgate_e2e.Server expects)."""

    def __init__(self, bin_path, rewrite):
        self.name = NAME
        self.bin = bin_path
        self.dir = tempfile.mkdtemp(prefix=f"tollgate-{NAME}.",
                                    dir=os.environ.get("TMPDIR") or None)
        self.media = self.path("media", "live", RID)
        os.makedirs(self.media)
        self.config = self.path("tollgate.toml")
        with open(self.config, "w", encoding="utf-8") as f:
            f.write(gate_config(NAME, f"{LEEWAY_S}s", edge=EDGE, body=MEDIA + MANIFEST.format(
                rewrite="true" if rewrite else "false")))
        with open(os.path.join(self.media, "master.m3u8"), "w", encoding="utf-8") as f:
            f.write(MASTER)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run(self, *args):
        """`tollgate <args>`; returns stdout (text). Fatal on failure."""
        try:
            p = subprocess.run([self.bin, *args], capture_output=True, timeout=CLI_TIMEOUT_S,
                               cwd=self.dir, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise Fatal(f"tollgate {args[0]}: no answer within {CLI_TIMEOUT_S}s") from e
        if p.returncode != 0:
            raise Fatal(f"tollgate {' '.join(args)} exited {p.returncode}: "
                        f"{p.stderr.decode(errors='replace').strip()}")
        return p.stdout.decode(errors="replace")

    def remove(self, keep):
        if keep:
            say(NAME, f"kept {self.dir}", err=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Proc:
    """A child process (ffmpeg) stopped by its own PID; stderr captured line by line
    with each line's arrival time (ffmpeg's own lines carry none)."""

    def __init__(self, label, cmd, cwd, log_path):
        self.label = label
        self.lines = []  # (wall time, text)
        self.exited_at = None  # wall time the process was seen to exit
        self.lock = threading.Lock()
        self.log = open(log_path, "w", encoding="utf-8")
        self.log.write("# " + " ".join(cmd) + "\n")
        self.log.flush()
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self.reader = threading.Thread(target=self._read, name=f"{label}-stderr", daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(self.proc.stderr.readline, b""):
            now = time.time()
            text = raw.decode(errors="replace").rstrip("\r\n")
            with self.lock:
                self.lines.append((now, text))
                self.log.write(f"{iso(now)} {text}\n")
                self.log.flush()
        self.proc.wait()  # stderr closed: the process is ending
        self.exited_at = time.time()

    def snapshot(self):
        with self.lock:
            return list(self.lines)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM (ffmpeg finishes cleanly), 5 s, then SIGKILL; always reaps."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                say(NAME, f"{self.label} {self.pid} ignored SIGTERM for 5 s; SIGKILL", err=True)
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            except ProcessLookupError:
                pass
        self.reader.join(5)
        with self.lock:
            if not self.log.closed:
                self.log.close()


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%H:%M:%S.%f")[:-3]


def claims_of(token):
    """A JWT's payload (decoded, not verified: the gate verifies; we only read it)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def request(path_q, edge, timeout=REQUEST_TIMEOUT_S):
    """GET http://EDGE<path_q> as the script's probe. Returns (status, headers, body)."""
    req = urllib.request.Request(f"http://{edge}{path_q}", method="GET")
    req.add_header("X-Forwarded-For", PROBE_CLIENT)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.headers, e.read()


def child_token(playlist):
    """The token of the first URI line of an HLS playlist, and that line."""
    for line in playlist.splitlines():
        if line and not line.startswith("#"):
            m = re.search(r"[?&]token=([^&#]+)", line)
            return (m.group(1) if m else None), line
    return None, None


def start_encoder(media, cwd, log_path):
    """The live encoder (ffmpeg: test pattern and tone, 1 s HLS segments, a sliding
    window) writing `media`/index.m3u8; returns its Proc once >= 3 segments are listed.
    Also used by scripts/e2e-browsers.py."""
    index = os.path.join(media, "index.m3u8")
    encoder = Proc("encoder", [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-profile:v", "baseline", "-level", "3.0", "-pix_fmt", "yuv420p",
        "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
        "-force_key_frames", f"expr:gte(t,n_forced*{HLS_TIME_S})",
        "-c:a", "aac", "-b:a", "64k", "-ac", "2",
        "-f", "hls", "-hls_time", str(HLS_TIME_S), "-hls_list_size", str(HLS_LIST_SIZE),
        "-hls_flags", "delete_segments+temp_file",
        "-hls_segment_filename", os.path.join(media, "seg%05d.ts"),
        index,
    ], cwd, log_path)
    deadline = time.monotonic() + ENCODER_READY_TIMEOUT_S
    while segments_listed(index) < 3:
        if not encoder.alive():
            encoder.stop()
            raise Fatal("the encoder exited: "
                        + " | ".join(t for _, t in encoder.snapshot()[-5:]))
        if time.monotonic() > deadline:
            encoder.stop()
            raise Fatal(f"index.m3u8 has < 3 segments after {ENCODER_READY_TIMEOUT_S}s")
        time.sleep(0.2)
    return encoder


def segments_listed(playlist_path):
    try:
        with open(playlist_path, encoding="utf-8", errors="replace") as f:
            return f.read().count("#EXTINF")
    except OSError:
        return 0


class Access:
    """One access-log line: its wall time and fields."""

    def __init__(self, t, fields, raw):
        self.t = t
        self.f = fields
        self.raw = raw
        self.status = int(fields.get("status", "0"))
        self.reason = fields.get("reason", "")
        self.client = fields.get("client", "")
        self.token = fields.get("token", "")
        self.manifest = fields.get("manifest", "")


def access_lines(err_path):
    out = []
    with open(err_path, "rb") as f:
        for raw in f.read().decode(errors="replace").splitlines():
            line = ANSI.sub("", raw)
            m = ACCESS.match(line)
            if not m:
                continue
            t = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
            fields = {k: (v[1:-1] if v.startswith('"') else v) for k, v in FIELD.findall(m.group(2))}
            out.append(Access(t, fields, line))
    return out


def main():
    keep = bool(os.environ.get("E2E_KEEP_TMP"))
    brk = os.environ.get("E2E_LIVE_BREAK", "")
    if brk not in ("", "1", "rewrite", "nosession"):
        raise Fatal(f"E2E_LIVE_BREAK={brk!r}: use 1, rewrite or nosession")
    rewrite = brk not in ("1", "rewrite")
    session = brk != "nosession"
    checks = Checks(NAME)
    bin_path = binary(NAME)
    if not shutil.which("ffmpeg"):
        raise Fatal("ffmpeg not found (Debian: apt-get install -y ffmpeg)")
    watchdog(OVERALL_TIMEOUT_S)
    os.environ["NO_COLOR"] = "1"  # plain access-log lines (ANSI is stripped anyway)
    started = time.monotonic()
    ws = LiveWorkspace(bin_path, rewrite)
    if brk:
        say(NAME, f"E2E_LIVE_BREAK={brk}: "
                  + ("[manifest] rewrite = false" if not rewrite else "token minted without --session")
                  + " -- this run is meant to FAIL")
    encoder = player = server = None
    try:
        # ------------------------------------------------------------- encoder
        index = os.path.join(ws.media, "index.m3u8")
        encoder = start_encoder(ws.media, ws.dir, ws.path("encoder.err"))
        say(NAME, f"encoder (pid {encoder.pid}) live: {segments_listed(index)} segments listed")

        # ---------------------------------------------------------------- token
        mint = ["token", "mint", "--config", ws.config, "--resource", RID, "--ttl", f"{TTL_S}s"]
        if session:
            mint += ["--session", f"{SESSION_S}s"]
        token = ws.run(*mint).strip().splitlines()[-1].strip()
        claims = claims_of(token)
        iat, exp = claims["iat"], claims["exp"]
        jti = claims.get("jti")
        sxp = claims.get("sxp", iat + SESSION_S)  # nosession: the session that was meant
        checks.check(exp == iat + TTL_S and claims.get("sxp") == iat + SESSION_S,
                     f"minted token: exp = iat + {TTL_S}s, sxp = iat + {SESSION_S}s",
                     f"claims {claims}")
        say(NAME, f"token jti={jti} iat={iat} exp=+{exp - iat}s sxp=+{sxp - iat}s "
                  f"(sxp at {iso(sxp)} UTC)")
        rel = lambda t: f"+{t - iat:6.2f}s"  # noqa: E731

        # Keys exist now (mint makes the dev pair); check-config needs them.
        out = ws.run("check-config", ws.config).strip()
        checks.ok(f"check-config: {out.splitlines()[-1] if out else ''}")

        # --------------------------------------------------------- gate + player
        server = Server(ws, "live")
        server.wait_ready()
        with open(server.out, encoding="utf-8", errors="replace") as f:
            m = re.search(r"^tollgate listening: .*\bedge-plain=(\S+)", f.read(), re.M)
        if not m:
            raise Fatal("no edge-plain address in the 'tollgate listening:' line")
        edge = m.group(1)
        say(NAME, f"gate (pid {server.pid}) edge-plain={edge}")
        master_q = f"/live/{RID}/master.m3u8?token={token}"
        player = Proc("player", [
            "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
            "-rw_timeout", "10000000",
            "-i", f"http://{edge}{master_q}", "-map", "0", "-c", "copy", "-f", "null", "-",
        ], ws.dir, ws.path("player.err"))
        player_started = time.time()
        hard_stop = player_started + PLAYER_TIMEOUT_S
        end = sxp + LEEWAY_S + TAIL_S
        say(NAME, f"player (pid {player.pid}) started at {rel(player_started)}; "
                  f"playing until {rel(end)} (sxp + {LEEWAY_S}s leeway + {TAIL_S}s)")

        # --------------------------------------------- mid-session probe (after exp)
        probe_at = iat + PROBE_AT_S
        while time.time() < probe_at:
            time.sleep(0.2)
        now = int(time.time())
        s, _, body = request(master_q, edge)
        master_body = body.decode(errors="replace")
        renewed, variant_line = child_token(master_body) if s == 200 else (None, None)
        rc = None
        if s == 200 and renewed:
            rc = claims_of(renewed)
        checks.check(rc is not None and renewed != token,
                     f"probe at {rel(now)} (original token expired at {rel(exp)}): master with "
                     "the expired original token -> 200, children carry a renewed token",
                     f"HTTP {s}, child line {variant_line!r}, body {body[:200]!r}")
        if rc is not None:
            want_exp = min(now + RENEW_TTL_S, sxp)
            checks.check(rc.get("jti") == jti and rc.get("sxp") == claims.get("sxp")
                         and rc.get("exp", 0) > exp and abs(rc.get("exp", 0) - want_exp) <= 2
                         and rc.get("exp", 0) <= sxp,
                         f"renewed token: same jti and sxp, exp = min(now + {RENEW_TTL_S}s, sxp) "
                         f"(= {rel(want_exp)})",
                         f"renewed claims {rc}, original {claims}")
        seg_path = None
        s, _, body = request(f"/live/{RID}/index.m3u8?token={token}", edge)
        index_body = body.decode(errors="replace")
        seg_token, seg_line = None, None
        uris = [ln for ln in index_body.splitlines() if ln and not ln.startswith("#")] \
            if s == 200 else []
        if uris:
            seg_line = uris[-1]
            seg_path = seg_line.split("?")[0]
            m = re.search(r"[?&]token=([^&#]+)", seg_line)
            seg_token = m.group(1) if m else None
        checks.check(s == 200 and seg_token is not None and seg_token != token,
                     "probe: media playlist with the expired original token -> 200, segment "
                     "URLs carry a renewed token",
                     f"HTTP {s}, last URI line {seg_line!r}, body {body[:200]!r}")
        if seg_path:
            s, h, _ = request(f"/live/{RID}/{seg_path}?token={token}", edge)
            checks.check(s == 403 and h.get("x-tollgate-reason") == "expired",
                         "probe: a segment with the expired original token -> 403 expired "
                         "(sessions only renew manifests)",
                         f"HTTP {s} x-tollgate-reason={h.get('x-tollgate-reason')!r}")
        if seg_path and seg_token:
            s, _, body = request(f"/live/{RID}/{seg_path}?token={seg_token}", edge)
            checks.check(s == 200 and len(body) > 0,
                         "probe: that segment with the renewed token -> 200",
                         f"HTTP {s} ({len(body)} bytes)")

        # ------------------------------------------------------- play past sxp
        while time.time() < end and time.time() < hard_stop:
            if not player.alive():
                break
            time.sleep(0.25)
        player_exit = None
        if not player.alive():
            player.reader.join(2)
            player_exit = (player.exited_at or time.time(), player.proc.returncode)
            say(NAME, f"player exited by itself (status {player.proc.returncode}) "
                      f"at {rel(player_exit[0])}")
        while time.time() < end:  # the after-sxp checks need the clock past sxp
            time.sleep(0.25)
        if player.alive():
            player.stop()
            say(NAME, f"player stopped (pid {player.pid}) at {rel(time.time())}")
        else:
            player.stop()  # reaps, closes its log

        # Fresh requests after sxp: the original token, and a renewed one.
        s, h, _ = request(master_q, edge)
        checks.check(s == 403 and h.get("x-tollgate-reason") == "expired",
                     f"after sxp ({rel(time.time())}): master with the original token -> "
                     "403 x-tollgate-reason: expired",
                     f"HTTP {s} x-tollgate-reason={h.get('x-tollgate-reason')!r}")
        if renewed:
            s, h, _ = request(f"/live/{RID}/master.m3u8?token={renewed}", edge)
            checks.check(s == 403 and h.get("x-tollgate-reason") == "expired",
                         "after sxp: master with a renewed token -> 403 expired "
                         "(renewal never outlives sxp)",
                         f"HTTP {s} x-tollgate-reason={h.get('x-tollgate-reason')!r}")
        time.sleep(0.3)  # the last access lines reach the log

        # ------------------------------------------------------------- analysis
        lines = access_lines(server.err)
        mine = [a for a in lines if a.client != PROBE_CLIENT]  # the player's requests
        say(NAME, f"access log: {len(lines)} lines, {len(mine)} from the player")
        before = [a for a in mine if a.t < sxp]
        refused = [a for a in before if a.status not in OK]
        checks.check(before and not refused,
                     f"before sxp: all {len(before)} player requests answered 200/206",
                     f"{len(refused)} refused, first at {rel(refused[0].t)}" if refused
                     else "no player request before sxp")
        if refused:
            i = mine.index(refused[0])
            say(NAME, "access-log lines around the first refusal before sxp:", err=True)
            for a in mine[max(0, i - 6):i + 4]:
                say(NAME, f"  {rel(a.t)} {a.raw}", err=True)

        segs = [a for a in before if a.status in OK and a.manifest == ""]
        manifests = [a for a in before if a.status == 200 and a.manifest != ""]
        checks.check(len(segs) >= MIN_SEGMENTS,
                     f"before sxp: {len(segs)} segments served (want >= {MIN_SEGMENTS})")
        span = (segs[-1].t - segs[0].t) if segs else 0.0
        last_ok = max((a.t for a in before if a.status in OK), default=0.0)
        play = (last_ok - segs[0].t) if segs else 0.0
        checks.check(play >= MIN_PLAYBACK_S,
                     f"playback before sxp: first segment {rel(segs[0].t) if segs else '-'} "
                     f"to last 200/206 {rel(last_ok) if last_ok else '-'} = {play:.1f}s "
                     f"(want >= {MIN_PLAYBACK_S}s, 3 token lifetimes)")
        gaps = [(b.t - a.t, a.t) for a, b in zip(segs, segs[1:])]
        worst = max(gaps, default=(0.0, 0.0))
        checks.check(segs and worst[0] <= MAX_SEGMENT_GAP_S,
                     f"continuous: largest gap between segments {worst[0]:.2f}s "
                     f"(want <= {MAX_SEGMENT_GAP_S}s) over {span:.1f}s",
                     f"at {rel(worst[1])}" if segs else "no segments")
        late = [a for a in segs if a.t > exp + LEEWAY_S + 1]
        checks.check(len(late) >= 2 * TTL_S,
                     f"{len(late)} segments served after the original token's exp "
                     f"({rel(exp)} + leeway; want >= {2 * TTL_S})")

        renewals = [a for a in manifests if a.manifest == "renewed"]
        after_exp = [a for a in renewals if a.t > exp + LEEWAY_S + 1]
        outcomes = {}
        for a in manifests:
            outcomes[a.manifest] = outcomes.get(a.manifest, 0) + 1
        checks.check(len(after_exp) >= TTL_S,
                     f"playlist reloads answered manifest=\"renewed\": {len(renewals)}, "
                     f"{len(after_exp)} of them with the original token expired "
                     f"(want >= {TTL_S}); manifest outcomes {outcomes}")
        jtis = {a.token for a in mine if a.token}
        no_token = [a for a in mine if not a.token and a.t < sxp]
        checks.check(jti and jtis == {f"jti:{jti}"} and not no_token,
                     f"every player request carried the minted token's jti (jti:{jti}): "
                     "renewal keeps the jti",
                     f"token fields seen {sorted(jtis)}, {len(no_token)} requests without one")

        after = [a for a in mine if a.t >= sxp]
        expired = [a for a in after if a.status == 403 and a.reason == "expired"]
        checks.check(expired,
                     f"after sxp: the player is refused: {len(expired)} x 403 expired, "
                     f"first at {rel(expired[0].t) if expired else '-'}",
                     f"player requests after sxp: "
                     f"{[(rel(a.t), a.status, a.reason) for a in after[:8]]}")
        late_ok = [a for a in after if a.status in OK and a.t > sxp + AFTER_SXP_200_SLACK_S]
        checks.check(not late_ok,
                     f"no 200/206 to the player after sxp + {AFTER_SXP_200_SLACK_S}s ({rel(sxp + AFTER_SXP_200_SLACK_S)})",
                     f"{len(late_ok)}, e.g. {late_ok[0].raw if late_ok else ''}")
        if expired:
            say(NAME, f"first refusal {expired[0].t - sxp:.2f}s after sxp (leeway {LEEWAY_S}s)")
        last200 = max((a.t for a in after if a.status in OK), default=None)
        if last200 is not None:
            say(NAME, f"last 200/206 to the player at {rel(last200)} (sxp {rel(sxp)})")

        perr = player.snapshot()
        early_err = [(t, x) for t, x in perr if t < sxp and PLAYER_ERROR.search(x)]
        checks.check(not early_err,
                     "player stderr: no error line before sxp",
                     f"{len(early_err)}, e.g. "
                     + "; ".join(f"{rel(t)} {x}" for t, x in early_err[:5]))
        late_err = [(t, x) for t, x in perr if t >= sxp and PLAYER_ERROR.search(x)]
        checks.check(late_err,
                     f"player stderr shows the refusal after sxp: "
                     f"{late_err[0][1][:100] if late_err else ''!s} at "
                     f"{rel(late_err[0][0]) if late_err else '-'}",
                     "no error line after sxp")
        checks.check(player_exit is None or player_exit[0] >= sxp,
                     "the player kept playing until sxp",
                     f"it exited with status {player_exit[1] if player_exit else ''} at "
                     f"{rel(player_exit[0]) if player_exit else ''}")
        checks.check(encoder.alive(), "the encoder ran throughout",
                     " | ".join(t for _, t in encoder.snapshot()[-5:]))
        checks.check(server.alive(), "the gate is still running")
    except Fatal as e:
        say(NAME, f"FATAL: {e}", err=True)
        checks.failed += 1
    except Exception:  # a bug here, or an answer of an unexpected shape: still clean up
        traceback.print_exc()
        checks.failed += 1
    finally:
        for p in (player, encoder):
            if p is not None:
                try:
                    p.stop()
                except Exception as e:  # keep stopping the others
                    say(NAME, f"stopping {p.label} {p.pid}: {e}", err=True)
        if server is not None:
            try:
                server.stop()
            except Exception as e:
                say(NAME, f"stopping server {server.pid}: {e}", err=True)
            if checks.failed:
                print(server.logs(30), file=sys.stderr)
        if checks.failed and player is not None:
            print("----- player stderr (last 20 lines) -----", file=sys.stderr)
            for t, x in player.snapshot()[-20:]:
                print(f"{iso(t)} {x}", file=sys.stderr)
        ws.remove(keep)
        say(NAME, f"took {time.monotonic() - started:.0f}s")
    return checks.summary()


if __name__ == "__main__":
    run_main(NAME, main)
