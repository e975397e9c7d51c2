#!/usr/bin/env python3
"""Interop: Akamai EdgeAuth 2.0 tokens minted by the reference generator
(`akamai-edgeauth` from PyPI, `akamai.edgeauth.EdgeAuth`) are accepted and refused by
tollgate as an Akamai edge would.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. adds three EdgeAuth formats to a copy of the shipped config, each on its own route
     over a file:// origin: `/ea/` (HMAC-SHA256, `hdnts`), `/ea1/` (SHA-1, escape-early,
     the generator's default name `__token__`), `/ea5/` (MD5, field delimiter `,`);
  3. mints with EdgeAuth: ACL tokens (one and several `!`-separated ACLs, wildcards), URL
     tokens, `ip`-bound, `id` and `data` fields, start times in the future, end times in
     the past; and sends them in the query, a cookie and a header;
  4. checks tollgate's status and reason for each: accepted on its resource, `expired`,
     `not_yet_valid`, `bad_signature` when tampered or for another path (URL token),
     `acl` for another path (ACL token), `ip` from another address (127.0.0.2), and
     `bad_signature` for a token of another algorithm or key.

Usage: python3 scripts/interop-edgeauth.py
Env:   TOLLGATE_BIN      use this binary instead of building one
       INTEROP_SABOTAGE=1 give tollgate another key than the generator (the run must
                         fail: this proves the script can)
       E2E_KEEP_TMP=1    keep the temp dir
Needs: pip install akamai-edgeauth
Prints "interop-edgeauth: N passed, M failed"; exits non-zero on any failure.
"""

import os
import sys
import time

NAME = "interop-edgeauth"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import edge_get as get, run_checks, run_main, say, start_server  # noqa: E402

try:
    from akamai.edgeauth import EdgeAuth
except ImportError:
    print(f"{NAME}: FATAL: akamai-edgeauth is not installed for {sys.executable}; "
          f"install it with: {sys.executable} -m pip install akamai-edgeauth",
          file=sys.stderr)
    print(f"{NAME}: 0 passed, 1 failed")
    sys.exit(2)

OVERALL_TIMEOUT_S = 120
KEY = "4d7a1f0c2b9e8d6a5c3b1a0f9e8d7c6b"
OTHER_KEY = "00112233445566778899aabbccddeeff"
FILES = ["/ea/demo/seg-1.ts", "/ea/demo/seg-2.ts", "/ea/other/seg-1.ts",
         "/ea1/demo/seg-1.ts", "/ea5/demo/seg-1.ts"]


def configure_tollgate(ws):
    key = OTHER_KEY if os.environ.get("INTEROP_SABOTAGE") else KEY
    media = ws.path("media")
    routes = ""
    for name, prefix in (("ea", "ea"), ("ea1", "ea1"), ("ea5", "ea5")):
        routes += f"""
[[routes]]
name = "{name}"
path = "/{prefix}/{{rid}}/"
type = "vod"
origin = "interop"
formats = ["akamai_{name}"]
"""
    with open(ws.config, "a") as f:
        f.write(f"""
[[origins]]
name = "interop"
upstreams = ["file://{media}"]
{routes}
[[formats]]
name = "akamai_ea"
kind = "edgeauth"
key = "{key}"

[[formats]]
name = "akamai_ea1"
kind = "edgeauth"
key = "{key}"
algorithm = "sha1"
escape_early = true
token_name = "__token__"

[[formats]]
name = "akamai_ea5"
kind = "edgeauth"
key = "{key}"
algorithm = "md5"
field_delimiter = ","
""")


def cases(now):
    """(what, target, headers, source address, expected status, expected reason)."""
    ea = EdgeAuth(key=KEY, token_name="hdnts", window_seconds=600)
    acl = ea.generate_acl_token("/ea/demo/*")
    several = ea.generate_acl_token(["/nowhere/*", "/ea/demo/seg-*.ts"])
    url = ea.generate_url_token("/ea/demo/seg-1.ts")
    expired = EdgeAuth(key=KEY, start_time=now - 7200, end_time=now - 3600)
    future = EdgeAuth(key=KEY, start_time=now + 3600, end_time=now + 7200)
    bound = EdgeAuth(key=KEY, ip="127.0.0.1", session_id="viewer-42", payload="app-data",
                     window_seconds=600).generate_acl_token("/ea/*")
    early = EdgeAuth(key=KEY, algorithm="sha1", escape_early=True, ip="127.0.0.1",
                     session_id="viewer 42", window_seconds=600)
    md5 = EdgeAuth(key=KEY, algorithm="md5", field_delimiter=",", window_seconds=600)
    wrong_key = EdgeAuth(key=OTHER_KEY, window_seconds=600).generate_acl_token("/ea/*")
    exp = acl.split("exp=")[1].split("~")[0]
    tampered = acl.replace(f"exp={exp}", f"exp={int(exp) + 3600}")
    seg = "/ea/demo/seg-1.ts"
    return [
        ("ACL token in the query", f"{seg}?hdnts={acl}", {}, "127.0.0.1", 200, ""),
        ("ACL token in a cookie", seg, {"Cookie": f"a=1; hdnts={acl}"}, "127.0.0.1", 200, ""),
        ("ACL token in a header", seg, {"hdnts": acl}, "127.0.0.1", 200, ""),
        ("several ACLs, one matching", f"/ea/demo/seg-2.ts?hdnts={several}", {},
         "127.0.0.1", 200, ""),
        ("URL token on its path", f"{seg}?hdnts={url}", {}, "127.0.0.1", 200, ""),
        ("URL token on another path", f"/ea/demo/seg-2.ts?hdnts={url}", {}, "127.0.0.1",
         401, "bad_signature"),
        ("ACL token on another path", f"/ea/other/seg-1.ts?hdnts={acl}", {}, "127.0.0.1",
         403, "acl"),
        ("expired", f"{seg}?hdnts={expired.generate_acl_token('/ea/*')}", {}, "127.0.0.1",
         403, "expired"),
        ("start time in the future", f"{seg}?hdnts={future.generate_acl_token('/ea/*')}",
         {}, "127.0.0.1", 403, "not_yet_valid"),
        ("tampered exp", f"{seg}?hdnts={tampered}", {}, "127.0.0.1", 401, "bad_signature"),
        ("ip-bound, from its address", f"{seg}?hdnts={bound}", {}, "127.0.0.1", 200, ""),
        ("ip-bound, from another address", f"{seg}?hdnts={bound}", {}, "127.0.0.2", 403,
         "ip"),
        ("another key", f"{seg}?hdnts={wrong_key}", {}, "127.0.0.1", 401, "bad_signature"),
        ("SHA-1, escape-early URL token under __token__",
         f"/ea1/demo/seg-1.ts?__token__={early.generate_url_token('/ea1/demo/seg-1.ts')}",
         {}, "127.0.0.1", 200, ""),
        ("a SHA-256 token on the SHA-1 route", f"/ea1/demo/seg-1.ts?__token__={acl}", {},
         "127.0.0.1", 401, "bad_signature"),
        ("MD5 with the ',' delimiter",
         f"/ea5/demo/seg-1.ts?hdnts={md5.generate_acl_token('/ea5/*')}", {}, "127.0.0.1",
         200, ""),
        ("an EdgeAuth token under another route's name", f"/ea1/demo/seg-1.ts?hdnts={acl}",
         {}, "127.0.0.1", 401, "missing"),
    ]


def check_tokens(ws, checks, servers):
    for p in FILES:
        os.makedirs(os.path.dirname(ws.path("media" + p)), exist_ok=True)
        with open(ws.path("media" + p), "wb") as f:
            f.write(b"segment bytes")
    configure_tollgate(ws)
    server = start_server(ws, "serve", servers)
    gate = server.listening()["edge-plain"]
    for what, target, headers, source, status, reason in cases(int(time.time())):
        got_status, got_reason = get(gate, target, headers, source)
        checks.check((got_status, got_reason) == (status, reason),
                     f"{what}: {status} {reason}".rstrip(),
                     f"got {got_status} {got_reason!r}")


def main():
    import akamai.edgeauth
    say(NAME, f"akamai-edgeauth from {os.path.dirname(akamai.edgeauth.__file__)}")
    return run_checks(NAME, OVERALL_TIMEOUT_S, check_tokens)


if __name__ == "__main__":
    run_main(NAME, main)
