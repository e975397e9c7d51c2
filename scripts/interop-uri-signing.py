#!/usr/bin/env python3
"""Interop: RFC 9246 URI Signing JWTs minted by PyJWT (from PyPI) are accepted and
refused by tollgate as Apache Traffic Server's `uri_signing` plugin would.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. adds a `uri_signing` format to a copy of the shipped config on the route `/us/`
     over a file:// origin, with the plugin's config transcribed: one issuer with an
     HS256 key (the plugin's documented example key) and an ES256 key (a JWK PyJWT
     exports), `id = "mycdn"`;
  3. mints with `jwt.encode`: tokens with `cdniuc` as a regex and as a SHA-256 hash,
     `cdniip`-bound, `aud`, `jti`, `cdnicrit`, with and without a `kid`, expired,
     not yet valid, tampered, unsigned (`alg: none`); and sends them in the
     `URISigningPackage` query parameter, cookie, path parameter
     (`seg-1.ts;URISigningPackage=…`) and path segment (`/URISigningPackage=…/`), the
     plugin's two path forms;
  4. checks tollgate's status and reason for each: accepted on its resource, `expired`,
     `not_yet_valid`, `bad_signature` when tampered or signed with another key, `acl`
     for another path, `ip` from another address (127.0.0.2), `audience`, and
     `malformed` for `alg: none` and an unknown critical claim.

A real ATS is not run beside it: Debian's `trafficserver` package (9.2) does not ship
the experimental `uri_signing` plugin, so the verdicts are the plugin's documented ones.

Usage: python3 scripts/interop-uri-signing.py
Env:   TOLLGATE_BIN      use this binary instead of building one
       INTEROP_SABOTAGE=1 give tollgate other keys than PyJWT signs with (the run must
                         fail: this proves the script can)
       E2E_KEEP_TMP=1    keep the temp dir
Needs: pip install 'pyjwt[crypto]'
Prints "interop-uri-signing: N passed, M failed"; exits non-zero on any failure.
"""

import base64
import hashlib
import json
import os
import sys
import time

NAME = "interop-uri-signing"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import edge_get, require_pyjwt, run_checks, run_main, start_server  # noqa: E402

require_pyjwt(NAME)
import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from jwt.algorithms import ECAlgorithm  # noqa: E402

OVERALL_TIMEOUT_S = 120
ISS = "Kabletown URI Authority"
# The plugin's documented example key (32 bytes, base64url) and another.
K = "Kh_RkUMj-fzbD37qBnDf_3e_RvQ3RP9PaSmVEpE24AM"
OTHER_K = "fZBpDBNbk2GqhwoB_DGBAsBxqQZVix04rIoLJ7p_RlE"
PACKAGE = "URISigningPackage"
FILES = ["/us/demo/seg-1.ts", "/us/demo/seg-2.ts", "/us/other/seg-1.ts"]


def secret(k):
    return base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def configure_tollgate(ws, es_public):
    sabotage = bool(os.environ.get("INTEROP_SABOTAGE"))
    k = OTHER_K if sabotage else K
    es = ec.generate_private_key(ec.SECP256R1()).public_key() if sabotage else es_public
    es_jwk = json.loads(ECAlgorithm.to_jwk(es))
    media = ws.path("media")
    with open(ws.config, "a") as f:
        f.write(f"""
[[origins]]
name = "interop"
upstreams = ["file://{media}"]

[[routes]]
name = "us"
path = "/us/{{rid}}/"
type = "vod"
origin = "interop"
formats = ["ats"]

[[formats]]
name = "ats"
kind = "uri_signing"
id = "mycdn"

[[formats.issuers]]
name = "{ISS}"
keys = [
  {{ alg = "HS256", kid = "First Key", kty = "oct", k = "{k}" }},
  {{ alg = "ES256", kid = "ec", kty = "EC", crv = "P-256", x = "{es_jwk['x']}", y = "{es_jwk['y']}" }},
]
""")


def cases(now, es_private):
    """(what, target, headers, source address, expected status, expected reason)."""
    seg = "/us/demo/seg-1.ts"
    base = {"iss": ISS, "exp": now + 600, "cdniuc": r"regex:http://127\.0\.0\.1/us/demo/"}

    def hs(claims, kid="First Key", key=K):
        headers = {"kid": kid} if kid else None
        return jwt.encode(claims, secret(key), algorithm="HS256", headers=headers)

    def at(token, path=seg):
        return f"{path}?{PACKAGE}={token}"

    good = hs(dict(base, sub="viewer", aud="mycdn", jti="s-1", cdniv=1))
    header, payload, sig = good.split(".")
    later = dict(base, sub="viewer", aud="mycdn", jti="s-1", cdniv=1, exp=now + 99999)
    tampered = ".".join([header, b64(json.dumps(later).encode()), sig])
    uri = f"http://127.0.0.1{seg}"
    hashed = hs(dict(base, cdniuc="hash:sha-256;" + b64(hashlib.sha256(uri.encode()).digest())))
    es = jwt.encode(base, es_private, algorithm="ES256", headers={"kid": "ec"})
    bound = hs(dict(base, cdniip="127.0.0.1"))
    prefix = hs(dict(base, cdniip="127.0.0.0/8"))
    none = jwt.encode(base, None, algorithm="none", headers={"kid": "First Key"})
    return [
        ("HS256 token in the query", at(good), {}, "127.0.0.1", 200, ""),
        ("HS256 token in the cookie", seg, {"Cookie": f"a=1; {PACKAGE}={good}"},
         "127.0.0.1", 200, ""),
        ("HS256 token in a path parameter", f"{seg};{PACKAGE}={good}", {}, "127.0.0.1",
         200, ""),
        ("tampered, in a path parameter", f"{seg};{PACKAGE}={tampered}", {}, "127.0.0.1",
         401, "bad_signature"),
        ("HS256 token as a path segment", f"/us/demo/{PACKAGE}={good}/seg-1.ts", {},
         "127.0.0.1", 200, ""),
        ("another segment under the regex", at(good, "/us/demo/seg-2.ts"), {}, "127.0.0.1",
         200, ""),
        ("ES256 token (PyJWT's ECDSA)", at(es), {}, "127.0.0.1", 200, ""),
        ("no kid: the issuer's keys are tried", at(hs(base, kid=None)), {}, "127.0.0.1",
         200, ""),
        ("cdniuc hash container", at(hashed), {}, "127.0.0.1", 200, ""),
        ("cdniuc hash on another path", at(hashed, "/us/demo/seg-2.ts"), {}, "127.0.0.1",
         403, "acl"),
        ("another path", at(good, "/us/other/seg-1.ts"), {}, "127.0.0.1", 403, "acl"),
        ("expired", at(hs(dict(base, exp=now - 3600))), {}, "127.0.0.1", 403, "expired"),
        ("not yet valid", at(hs(dict(base, nbf=now + 3600))), {}, "127.0.0.1", 403,
         "not_yet_valid"),
        ("tampered payload", at(tampered), {}, "127.0.0.1", 401, "bad_signature"),
        ("signed with another key", at(hs(base, key=OTHER_K)), {}, "127.0.0.1", 401,
         "bad_signature"),
        ("cdniip, from its address", at(bound), {}, "127.0.0.1", 200, ""),
        ("cdniip, from another address", at(bound), {}, "127.0.0.2", 403, "ip"),
        ("cdniip prefix, from inside it", at(prefix), {}, "127.0.0.2", 200, ""),
        ("aud naming another CDN", at(hs(dict(base, aud="othercdn"))), {}, "127.0.0.1",
         401, "audience"),
        ("alg none", at(none), {}, "127.0.0.1", 401, "malformed"),
        ("an unknown critical claim", at(hs(dict(base, cdnicrit="cdniroles"))), {},
         "127.0.0.1", 401, "malformed"),
        ("a known critical claim", at(hs(dict(base, cdnicrit="exp,cdniuc"))), {},
         "127.0.0.1", 200, ""),
    ]


def check_tokens(ws, checks, servers):
    for p in FILES:
        os.makedirs(os.path.dirname(ws.path("media" + p)), exist_ok=True)
        with open(ws.path("media" + p), "wb") as f:
            f.write(b"segment bytes")
    es_private = ec.generate_private_key(ec.SECP256R1())
    configure_tollgate(ws, es_private.public_key())
    server = start_server(ws, "serve", servers)
    gate = server.listening()["edge-plain"]
    for what, target, headers, source, status, reason in cases(int(time.time()), es_private):
        got_status, got_reason = edge_get(gate, target, headers, source)
        checks.check((got_status, got_reason) == (status, reason),
                     f"{what}: {status} {reason}".rstrip(),
                     f"got {got_status} {got_reason!r}")


def main():
    return run_checks(NAME, OVERALL_TIMEOUT_S, check_tokens)


if __name__ == "__main__":
    run_main(NAME, main)
