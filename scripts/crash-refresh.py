#!/usr/bin/env python3
"""Threat model B6 (docs/threat-model.md): `kill -9` during a movingimage refresh storm,
restart, nothing lost.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. on a fresh copy of config/tollgate.toml in a temp dir, with strict reuse detection
     (`admin.refresh_reuse_interval = "0s"`: every rotated token is reuse at once):
     `tollgate org add --id vm1`
     and FAMILIES users of vm1 (`tollgate user add`, password on stdin);
  3. starts `tollgate serve` (127.0.0.1:0), logs each user in once
     (`POST /v1/vms/auth/login`): one refresh-token family per user;
  4. refresh storm: one thread per family refreshes its own family sequentially
     (`POST /v1/vms/auth/refresh/vm1`), logging SENT(family, token) before each request
     and ACK(family, new token) after each 200;
  5. after STORM_S seconds, `kill -9` the server (its PID only) mid-storm, restarts it
     on the same data directory, and checks, per family:
       - the last acknowledged token still refreshes (200) -- unless a request with
         that very token was in flight at the kill (last SENT == last ACK and the request
         reached the server), in which case a 401 is allowed too: that in-flight
         rotation committed but its answer never arrived;
       - every earlier acknowledged (rotated) token is refused with 401;
       - after that reuse, the family's newest token is refused too (B2: reuse revokes
         the family);
     and that the server answered nothing but 200 before the kill (no 5xx at all).

Usage: python3 scripts/crash-refresh.py        (from any directory)
Env:   TOLLGATE_BIN     use this binary instead of building one
       E2E_KEEP_TMP=1   keep the temp dir (server logs, refresh.log of SENT/ACK lines)
Needs: python3 (standard library only).
Prints "crash-refresh: N passed, M failed"; exits non-zero on any failure.
"""

import base64
import json
import os
import sys
import threading
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import Fatal, http, run_checks, run_main, say, start_server  # noqa: E402

NAME = "crash-refresh"
FAMILIES = 8
STORM_S = 1.5  # storm length before the kill
REQUEST_TIMEOUT_S = 10  # per HTTP request
JOIN_TIMEOUT_S = REQUEST_TIMEOUT_S + 5  # per storm thread after the kill
OVERALL_TIMEOUT_S = 240  # the whole script after the build
VM = "vm1"
PASSWORD = "crash-refresh-password"  # at least 8 characters


class Family:
    """One login's refresh-token family, driven by one thread."""

    def __init__(self, idx, username, family_id):
        self.idx = idx
        self.username = username
        self.family_id = family_id  # the access tokens' `fam` claim
        self.acked = []  # every token the server acknowledged, oldest first
        self.last_sent = None  # the token of the most recent request
        self.statuses = {}  # HTTP status -> count, answers of the first server
        self.refusals = []  # (status, body) of non-200 answers during the storm
        self.error = None  # the transport error that ended the thread, if any
        self.error_before_kill = False
        self.reached_server = True  # whether the last request got through connect()


class Log:
    """SENT/ACK lines, in order, to a file (and kept in memory)."""

    def __init__(self, path):
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.f = open(path, "w", encoding="utf-8")

    def write(self, kind, fam, token):
        with self.lock:
            self.f.write(f"+{time.monotonic() - self.t0:8.4f} {kind} family={fam} token={token}\n")

    def close(self):
        with self.lock:
            self.f.close()


def refused_connect(err):
    """Did this transport error happen before the request reached the server?"""
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    return isinstance(reason, ConnectionRefusedError)


def storm(fam, url, log, killed, stop):
    while not stop.is_set():
        token = fam.acked[-1]
        log.write("SENT", fam.idx, token)
        fam.last_sent = token
        try:
            status, body = http("POST", url, {"refreshToken": token}, timeout=REQUEST_TIMEOUT_S)
        except OSError as e:  # the kill (or, before it, a server fault)
            fam.error = repr(e)
            fam.error_before_kill = not killed.is_set()
            fam.reached_server = not refused_connect(e)
            return
        fam.statuses[status] = fam.statuses.get(status, 0) + 1
        if status != 200:
            fam.refusals.append((status, body[:200]))
            return  # this family's state is unknown now; the checks will report it
        try:
            new = json.loads(body)["refreshToken"]
        except (ValueError, KeyError, TypeError):
            fam.refusals.append((status, b"200 without a refreshToken: " + body[:200]))
            return
        log.write("ACK", fam.idx, new)
        fam.acked.append(new)


def family_of(access_token):
    """The `fam` claim of an access token (payload decoded, not verified: only an id)."""
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims["fam"]


def revoked_families(ws):
    """Family ids with a `family` revocation in the store (`tollgate revoke list`)."""
    return {r["value"] for r in ws.cli("revoke", "list") if r["kind"] == "family"}


def refresh(server, token):
    return http("POST", server.url(f"/v1/vms/auth/refresh/{VM}"), {"refreshToken": token},
                timeout=REQUEST_TIMEOUT_S)


def strict_reuse(ws):
    """Set `admin.refresh_reuse_interval = "0s"` in the workspace's config copy, so that
    the rotated tokens presented seconds after the storm are reuse, not a retry."""
    with open(ws.config, encoding="utf-8") as f:
        text = f.read()
    shipped = 'refresh_reuse_interval = "30s"'
    if shipped not in text:
        raise Fatal(f"config/tollgate.toml no longer sets {shipped}")
    with open(ws.config, "w", encoding="utf-8") as f:
        f.write(text.replace(shipped, 'refresh_reuse_interval = "0s"'))


def kill_mid_storm(ws, first, families):
    """The refresh storm, one thread per family, SENT/ACK lines in refresh.log; `kill -9`
    the server after STORM_S. Returns how many families were still refreshing then."""
    log = Log(ws.path("refresh.log"))
    try:
        for fam in families:
            log.write("ACK", fam.idx, fam.acked[0])  # the login's token
        killed = threading.Event()
        stop = threading.Event()
        url = first.url(f"/v1/vms/auth/refresh/{VM}")
        threads = [threading.Thread(target=storm, args=(f, url, log, killed, stop),
                                    name=f"family-{f.idx}", daemon=True) for f in families]
        for t in threads:
            t.start()
        time.sleep(STORM_S)
        alive_at_kill = sum(t.is_alive() for t in threads)
        killed.set()
        first.kill9()  # SIGKILL, this server's PID only
        stop.set()
        say(NAME, f"kill -9 {first.pid} after {STORM_S}s of storm "
                  f"({alive_at_kill}/{FAMILIES} families still refreshing)")
        for t in threads:
            t.join(JOIN_TIMEOUT_S)
        hung = [t.name for t in threads if t.is_alive()]
        if hung:
            raise Fatal(f"storm threads did not finish within {JOIN_TIMEOUT_S}s of the kill: {hung}")
    finally:
        log.close()
    return alive_at_kill


def check_crash(ws, checks, servers):
    strict_reuse(ws)
    # ---------------------------------------------------------------- state
    ws.cli("org", "add", "--id", VM)
    users = [f"crash-user-{i}" for i in range(FAMILIES)]
    for u in users:
        ws.cli("user", "add", "--username", u, "--org", VM, stdin=PASSWORD + "\n")

    first = start_server(ws, "before-kill", servers)
    say(NAME, f"ready (pid {first.pid}): admin={first.admin}")

    families = []
    for i, u in enumerate(users):
        status, body = http("POST", first.url("/v1/vms/auth/login"),
                            {"username": u, "password": PASSWORD}, timeout=REQUEST_TIMEOUT_S)
        if status != 200:
            raise Fatal(f"login {u}: HTTP {status} {body[:200]!r}")
        answer = json.loads(body)
        fam = Family(i, u, family_of(answer["accessToken"]))
        fam.acked.append(answer["refreshToken"])
        families.append(fam)
    checks.ok(f"{FAMILIES} logins, one refresh family each")

    alive_at_kill = kill_mid_storm(ws, first, families)

    total = {}
    for fam in families:
        for s, n in fam.statuses.items():
            total[s] = total.get(s, 0) + n
    say(NAME, f"storm answers by status: {dict(sorted(total.items()))}; "
              f"acknowledged rotations per family: {[len(f.acked) - 1 for f in families]}")
    five = {s: n for s, n in total.items() if s >= 500}
    checks.check(not five, "no 5xx during the storm", f"{five}")
    other = [(f.idx, r) for f in families for r in f.refusals]
    checks.check(not other, "every answer before the kill was 200",
                 "; ".join(f"family {i}: HTTP {s} {b!r}" for i, (s, b) in other[:8]))
    early = [(f.idx, f.error) for f in families if f.error and f.error_before_kill]
    checks.check(not early, "no transport error before the kill",
                 "; ".join(f"family {i}: {e}" for i, e in early))
    thin = [f.idx for f in families if len(f.acked) < 3]
    checks.check(not thin, "every family rotated at least twice before the kill",
                 f"families {thin} (the storm proves little for them)")
    in_flight = [f.idx for f in families
                 if f.last_sent == f.acked[-1] and f.error and f.reached_server]
    say(NAME, f"families with a request in flight at the kill: {in_flight}")
    checks.check(alive_at_kill > 0, "the kill landed during the storm",
                 "every storm thread had stopped before the kill")

    # -------------------------------------------------------------- restart
    second = start_server(ws, "after-restart", servers)
    say(NAME, f"restarted (pid {second.pid}) on the same data dir: admin={second.admin}")
    early_revoked = revoked_families(ws)
    checks.check(not early_revoked, "no family was revoked before the checks below",
                 f"revoked: {sorted(early_revoked)}")

    for fam in families:
        last = fam.acked[-1]
        was_in_flight = fam.idx in in_flight
        status, body = refresh(second, last)
        newest = None
        if status == 200:
            newest = json.loads(body)["refreshToken"]
            checks.ok(f"family {fam.idx}: last acknowledged token (#{len(fam.acked) - 1}) "
                      f"refreshes after the restart"
                      f"{' (its in-flight rotation had not committed)' if was_in_flight else ''}")
        elif status == 401 and was_in_flight:
            # Allowed only if the store knows the token as spent (its in-flight rotation
            # committed): presenting a spent token revokes the family, while a token
            # the store lost would be "unknown" and revoke nothing.
            if fam.family_id in revoked_families(ws):
                checks.ok(f"family {fam.idx}: last acknowledged token refused (401), "
                          "allowed: a request with it was in flight at the kill and that "
                          "rotation committed (the store knows the token as spent)")
            else:
                checks.fail(f"family {fam.idx}: ACKNOWLEDGED TOKEN LOST: the last "
                            "acknowledged token got 401 and the store does not know it "
                            "(presenting it revoked nothing)")
        else:
            checks.fail(f"family {fam.idx}: ACKNOWLEDGED TOKEN LOST: the last acknowledged "
                        f"token (#{len(fam.acked) - 1}, not in flight at the kill) got HTTP "
                        f"{status} {body[:200]!r} after the restart, want 200")

        rotated = fam.acked[:-1]
        live = []
        for i, tok in enumerate(rotated):
            s, b = refresh(second, tok)
            if s != 401:
                live.append((i, s, b[:120]))
        checks.check(not live,
                     f"family {fam.idx}: all {len(rotated)} rotated tokens refused (401)",
                     f"{len(live)} not refused, e.g. "
                     + "; ".join(f"#{i} -> HTTP {s} {b!r}" for i, s, b in live[:5]))

        if newest is not None and rotated:
            s, b = refresh(second, newest)
            checks.check(s == 401,
                         f"family {fam.idx}: reusing a rotated token revoked the family "
                         "(its newest token is refused)",
                         f"the newest token got HTTP {s} {b[:200]!r}, want 401")

    # Every family had rotated tokens presented: each must now be revoked, i.e. the
    # store still knew those tokens as spent (not merely "unknown").
    revoked = revoked_families(ws)
    unrevoked = [f.idx for f in families if f.family_id not in revoked]
    checks.check(not unrevoked, "every family is revoked after its rotated tokens were "
                 "presented (the store knew them as spent, not unknown)",
                 f"families {unrevoked} were not revoked")
    checks.check(second.alive(), "restarted server still running")


if __name__ == "__main__":
    run_main(NAME, lambda: run_checks(NAME, OVERALL_TIMEOUT_S, check_crash))
