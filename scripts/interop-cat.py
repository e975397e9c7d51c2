#!/usr/bin/env python3
"""Interop: Common Access Tokens (CTA-5007) minted by the issuers' own code -- Python
`cwt` (PyPI) and Eyevinn's `@eyevinn/cat` (npm, when it installs) -- accepted and
refused by a running tollgate as the specification and the reference decide.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. writes its own config: a `file://` origin holding the request path the fixtures
     name (/vod/movie/v0/seg_001.m4s), the route `/vod/{rid}/` with
     `formats = ["cat"]`, the route `/nat/{rid}/` with the native token only, one
     `[[formats]]` of kind `cat` with the fixtures' TEST keys (HS256 `hs`, ES256 `es`
     and EdDSA `ed` as SPKI public keys) and `issuer = "fixture-issuer"`,
     `edge.trusted_proxies = ["127.0.0.1"]` (so each request can present the fixtures'
     client address in X-Forwarded-For), limits off;
  3. mints afresh, at the current time, scripts/cat-fixtures.py's cases with `cwt`
     (every claim and match type, pass and fail; a few hand-built with cbor2 where cwt
     refuses) and scripts/cat-eyevinn/mint.mjs's with `@eyevinn/cat`; a case whose
     verdict needs a setting the edge does not configure here (a critical-claim key, the
     hex-text payload, a country source) is skipped and said so;
  4. presents each to the TLS listener as the fixtures' request (https, Host
     media.example.com, `X-Device: tv-42`, GET, from 192.0.2.7): in the
     `CTA-Common-Access-Token` header; the core cases (valid for each algorithm and
     generator, expired, tampered, another path (`catu`), another address (`catnip`),
     another method (`catm`)) also in the `CAT` query parameter and in the
     `CTA-Common-Access-Token` cookie; and a valid CAT on the route that lists only the
     native token (`401 missing`: that route does not look for it);
  5. checks the status and `x-tollgate-reason` of each: 200 for "ok", otherwise the
     case's reason code with 401 (the token cannot be trusted), 403 (it does not allow
     this request) or 431 (too long).

Usage: python3 scripts/interop-cat.py
Env:   TOLLGATE_BIN           use this binary instead of building one
       INTEROP_CAT_BREAK=key     give tollgate another HS256 key than the generators
       INTEROP_CAT_BREAK=native  let the native-only route accept the CAT too
                              (either run must fail: this proves the script can)
       E2E_KEEP_TMP=1         keep the temp dir
Needs: pip install cwt; node >= 20 and npm for @eyevinn/cat (skipped, and said so,
       when it does not install).
Prints one line per case and "interop-cat: N passed, M failed"; exits non-zero on any
failure.
"""

import http.client
import importlib.util
import json
import os
import ssl
import subprocess
import sys
import time

NAME = "interop-cat"
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tollgate_e2e import gate_config, run_checks, run_main, say, start_server  # noqa: E402

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    _spec = importlib.util.spec_from_file_location("cat_fixtures", os.path.join(HERE, "cat-fixtures.py"))
    fx = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(fx)
except ImportError as e:
    print(f"{NAME}: FATAL: {e}; install cwt with: {sys.executable} -m pip install cwt",
          file=sys.stderr)
    print(f"{NAME}: 0 passed, 1 failed")
    sys.exit(2)

OVERALL_TIMEOUT_S = 300
HEADER = "CTA-Common-Access-Token"
COOKIE = "CTA-Common-Access-Token"
QUERY = "CAT"
EYEVINN = os.path.join(HERE, "cat-eyevinn")

# Reasons for which the token itself cannot be trusted (401); every other refusal is a
# token that does not allow this request (403), as for the native token.
UNTRUSTED = {"malformed", "unknown_kid", "bad_signature", "algorithm",
             "critical", "version", "issuer", "audience", "missing"}
# Presented in all three carriers (the rest in the header only).
CORE = {"hs256_valid_tagged", "es256_valid", "eddsa_valid", "expired", "tampered_hs256",
        "catu_path_prefix_other_path", "catnip_v4_other_address", "catm_post_only",
        "eyevinn_valid", "eyevinn_expired", "eyevinn_tampered",
        "eyevinn_catu_path_prefix_other_path", "eyevinn_catnip_other_address",
        "eyevinn_catm_post_only"}


def skip_reason(case):
    """Why a fixture case cannot be presented to this gate as it is configured, or None."""
    if case.get("policy"):
        return f"needs the library policy {case['policy']} (no such format key here)"
    if case["request"].get("country") or case["request"].get("asn"):
        return "needs a geolocation source"
    return None


def public_pem(key):
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def configure(ws):
    """The config (the shipped one is replaced), the TEST public keys, the media file."""
    hs = fx.OTHER_SECRET if os.environ.get("INTEROP_CAT_BREAK") == "key" else fx.HS_SECRET
    native_formats = '["native", "cat"]' if os.environ.get("INTEROP_CAT_BREAK") == "native" \
        else '["native"]'
    cfg_dir = os.path.dirname(ws.config)
    with open(os.path.join(cfg_dir, "cat-es.pub.pem"), "w") as f:
        f.write(public_pem(fx.ec_private().public_key()))
    with open(os.path.join(cfg_dir, "cat-ed.pub.pem"), "w") as f:
        f.write(public_pem(ed25519.Ed25519PrivateKey.from_private_bytes(fx.ED_SEED).public_key()))
    for prefix in ("vod", "nat"):
        seg = os.path.join(cfg_dir, "media", prefix, "movie", "v0", "seg_001.m4s")
        os.makedirs(os.path.dirname(seg), exist_ok=True)
        with open(seg, "wb") as f:
            f.write(b"segment bytes")
    body = f"""
[limits]
per_ip = "off"
per_subject = "off"
bad_tokens_per_ip = "off"

[[origins]]
name = "interop"
upstreams = ["file://media"]

[[routes]]
name = "cat"
path = "/vod/{{rid}}/"
type = "vod"
origin = "interop"
formats = ["cat"]

[[routes]]
name = "native"
path = "/nat/{{rid}}/"
type = "vod"
origin = "interop"
formats = {native_formats}

[[formats]]
name = "cat"
kind = "cat"
issuer = "{fx.ISS}"

[[formats.keys]]
kid = "hs"
alg = "HS256"
key = "{hs.hex()}"

[[formats.keys]]
kid = "es"
alg = "ES256"
key_file = "cat-es.pub.pem"

[[formats.keys]]
kid = "ed"
alg = "EdDSA"
key_file = "cat-ed.pub.pem"
"""
    with open(ws.config, "w") as f:
        f.write(gate_config(NAME, "30s", edge='trusted_proxies = ["127.0.0.1"]\n', body=body))


def cwt_cases(now):
    """scripts/cat-fixtures.py's cases, minted by cwt now (its time and claims read its
    module globals, so moving them moves every case)."""
    fx.NOW, fx.T0 = now, now - 10
    return fx.cases()


def eyevinn_cases(ws, now):
    """scripts/cat-eyevinn/mint.mjs's cases, minted by @eyevinn/cat now; [] (said) when
    the package does not install."""
    if not os.path.isdir(os.path.join(EYEVINN, "node_modules", "@eyevinn", "cat")):
        # `npm ci` first; npm 11 refuses this lock file (its optional platform packages),
        # where `npm install` installs the same locked versions and leaves the lock as is.
        for cmd in (["npm", "ci"], ["npm", "install"]):
            rc = subprocess.call(cmd + ["--no-audit", "--no-fund", "--quiet"], cwd=EYEVINN,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, timeout=600)
            if rc == 0:
                break
        else:
            say(NAME, "SKIP @eyevinn/cat: it did not install (npm); only cwt's tokens run")
            return []
    out = ws.path("eyevinn")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "keys.json"), "w") as f:
        json.dump(fx.keys_json(), f)
    with open(os.path.join(out, "cases.json"), "w") as f:
        json.dump([{"now": now, "request": fx.REQUEST}], f)
    subprocess.run(["node", os.path.join(EYEVINN, "mint.mjs"), out], check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=120)
    with open(os.path.join(out, "cases-eyevinn.json")) as f:
        return json.load(f)


def present(gate, case, carrier, path=None):
    """One request as the case's: returns (status, reason, location)."""
    req = case["request"]
    token = case["token"]
    target = path or req["path"]
    query = req["query"]
    headers = {"Host": req["host"], "X-Forwarded-For": req["client_ip"]}
    headers.update({k: v for k, v in req["headers"]})
    if carrier == "header":
        headers[HEADER] = token
    elif carrier == "cookie":
        headers["Cookie"] = f"theme=dark; {COOKIE}={token}"
    else:
        query = f"{query}&{QUERY}={token}" if query else f"{QUERY}={token}"
    host, port = gate.rsplit(":", 1)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the generated dev certificate
    conn = http.client.HTTPSConnection(host, int(port), timeout=10, context=ctx)
    try:
        conn.request(req["method"], f"{target}?{query}" if query else target, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.getheader("x-tollgate-reason") or "", resp.getheader("location")
    finally:
        conn.close()


# Where the edge answers otherwise than the library's verdict, and why: (status,
# reason, what the Location starts with; "{path}" is the request's path).
AT_THE_EDGE = {
    # The edge has a replay store: the first use passes, the second is refused (below).
    "catreplay_prohibited_without_store": (200, "", None),
    # Renewal is due (no deadline: the last 60 s before exp): redirected with its code
    # to the same URL with the renewed token in the query.
    "catr_redirect": (307, "", "{path}?a=1&CAT="),
    # Refused on `exp`, answered as the token's catif says.
    "catif_on_expired": (302, "expired", "https://login.example/"),
    "eyevinn_catif_on_exp": (307, "expired", "https://auth.example.net/?CAT="),
}


def expected(verdict):
    if verdict == "ok":
        return 200, ""
    if verdict == "too_long":  # as for an overlong native token
        return 431, verdict
    return (401 if verdict in UNTRUSTED else 403), verdict


def check_case(gate, checks, case, carrier, want=None, note=""):
    status, reason, location = want or AT_THE_EDGE.get(case["name"]) \
        or (*expected(case["expect"]), None)
    location = location and location.format(path=case["request"]["path"])
    got = present(gate, case, carrier)
    what = f"{case['generator'].split()[0]} {case['name']}{note} in the {carrier}: {status} {reason}"
    if location:
        what = f"{what.rstrip()} to {location}…"
    checks.check(got[:2] == (status, reason) and (got[2] or "").startswith(location or ""),
                 what.rstrip(),
                 f"got {got[0]} {got[1]!r}" + (f" Location {got[2][:60]}…" if got[2] else ""))


def check_tokens(ws, checks, servers):
    configure(ws)
    now = int(time.time())
    cases = cwt_cases(now) + eyevinn_cases(ws, now)
    server = start_server(ws, "serve", servers)
    gate = server.listening()["edge-tls"]
    by_name = {}
    for case in cases:
        by_name[case["name"]] = case
        why = skip_reason(case)
        if why:
            say(NAME, f"SKIP {case['name']}: {why}")
            continue
        for carrier in (("header", "query", "cookie") if case["name"] in CORE else ("header",)):
            check_case(gate, checks, case, carrier)
    check_case(gate, checks, by_name["catreplay_prohibited_without_store"], "header",
               want=(403, "replay", None), note=" used again")
    valid = by_name["hs256_valid_tagged"]
    for carrier in ("header", "query", "cookie"):
        got = present(gate, valid, carrier, path=valid["request"]["path"].replace("/vod/", "/nat/", 1))
        checks.check(got[:2] == (401, "missing"),
                     f"a valid CAT in the {carrier} on the route that lists only the native "
                     "token: 401 missing", f"got {got[0]} {got[1]!r}")
    checks.check(len(cases) >= 60, f"{len(cases)} cases minted afresh")


def main():
    import cwt
    say(NAME, f"Python cwt {cwt.__version__} from {os.path.dirname(cwt.__file__)}")
    brk = os.environ.get("INTEROP_CAT_BREAK", "")
    if brk not in ("", "key", "native"):
        say(NAME, f"INTEROP_CAT_BREAK={brk!r}: use key or native", err=True)
        return 2
    if brk:
        say(NAME, f"INTEROP_CAT_BREAK={brk}: this run is meant to FAIL")
    return run_checks(NAME, OVERALL_TIMEOUT_S, check_tokens)


if __name__ == "__main__":
    run_main(NAME, main)
