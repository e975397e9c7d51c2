#!/usr/bin/env python3
"""Acceptance: an independent JOSE implementation (PyJWT) verifies issued
tokens from the JWKS alone.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. on a fresh copy of config/tollgate.toml in a temp dir, with the CLI: an org, a
     project, a resource (vod), an API token for the org and a movingimage user;
  3. starts `tollgate serve` (127.0.0.1:0) and fetches `GET /.well-known/jwks.json`;
  4. issues a BlendVision token (`POST /bv/cms/v1/resources/tokens`), an Azure Video
     Indexer restricted viewer token (scope Video) and a movingimage access token
     (`POST /v1/vms/auth/login`), and verifies each with PyJWT only: the key is picked
     from `jwt.PyJWKSet.from_dict(jwks)` by the token header's `kid`, then
     `jwt.decode(token, key.key, algorithms=["EdDSA"], issuer=<config issuer>, ...)`;
     the claims (`rid`, `rty`, `sub`, `org`, `scope`, `exp`, ...) are checked;
  5. and, so that a pass means something: a token with a changed payload, one checked
     against the wrong issuer, and one whose `kid` is not in the JWKS are refused.

Usage: python3 scripts/jwks-pyjwt.py          (from any directory)
Env:   TOLLGATE_BIN     use this binary instead of building one
       E2E_KEEP_TMP=1   keep the temp dir (server logs)
Needs: python3 and PyJWT with its crypto extra: pip install 'pyjwt[crypto]'
Prints "jwks-pyjwt: N passed, M failed"; exits non-zero on any failure.
"""

import base64
import json
import os
import sys
import time

NAME = "jwks-pyjwt"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import (Fatal, http, require_pyjwt, run_checks, run_main, say,  # noqa: E402
                          start_server)

require_pyjwt(NAME)
import jwt  # noqa: E402  PyJWT

OVERALL_TIMEOUT_S = 120  # the whole script after the build
ORG = "acme-vi"  # also the Azure accountName: 3-50 of [A-Za-z0-9-]
PROJECT = "acme-project"
RESOURCE = "film-1"
CUSTOMER = "customer-42"
USERNAME = "jwks-user"
PASSWORD = "jwks-user-password"
TTL_S = 600


def duration_s(text):
    """A config duration ("250ms", "30s", "10m", "2h", "1d") in whole seconds."""
    for unit, mult in (("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(int(text[: -len(unit)]) * mult)
    raise Fatal(f"cannot read the duration {text!r}")


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Verifier:
    """PyJWT, given nothing but the JWKS document and the issuer name."""

    def __init__(self, jwks, issuer):
        self.jwks = jwt.PyJWKSet.from_dict(jwks)
        self.issuer = issuer

    def key_for(self, token):
        kid = jwt.get_unverified_header(token).get("kid")
        for k in self.jwks.keys:
            if k.key_id == kid:
                return k
        raise jwt.InvalidTokenError(f"kid {kid!r} is not in the JWKS")

    def decode(self, token, issuer=None):
        key = self.key_for(token)
        return jwt.decode(token, key.key, algorithms=["EdDSA"],
                          issuer=issuer or self.issuer,
                          options={"verify_aud": False, "require": ["exp", "iat", "iss"]})


def check_jwks(ws, checks, servers):
    issuer = ws.settings["token"]["issuer"]
    ws.cli("org", "add", "--id", ORG)
    ws.cli("project", "add", "--id", PROJECT, "--org", ORG)
    ws.cli("resource", "add", "--id", RESOURCE, "--type", "vod", "--org", ORG,
           "--project", PROJECT)
    api_token = ws.cli("api-token", "create", "--org", ORG)["token"]
    user_id = ws.cli("user", "add", "--username", USERNAME, "--org", ORG,
                     stdin=PASSWORD + "\n")["id"]

    server = start_server(ws, "serve", servers)
    say(NAME, f"ready (pid {server.pid}): admin={server.admin}")

    # ------------------------------------------------------------- the JWKS
    status, body = http("GET", server.url("/.well-known/jwks.json"))
    if status != 200:
        raise Fatal(f"GET /.well-known/jwks.json: HTTP {status} {body[:200]!r}")
    jwks = json.loads(body)
    kids = [k.get("kid") for k in jwks.get("keys", [])]
    try:
        verifier = Verifier(jwks, issuer)
        checks.ok(f"PyJWKSet.from_dict reads the JWKS (kids {kids})")
    except jwt.PyJWTError as e:
        raise Fatal(f"PyJWKSet.from_dict refused the JWKS {jwks}: {e!r}") from e
    # Longest lifetime each dialect's token may have: asked for, Azure's fixed one
    # hour, the config's movingimage access_ttl.
    expect_ttl = {"blendvision": TTL_S, "azure": 3600,
                  "movingimage": duration_s(ws.settings["admin"]["access_ttl"])}
    private_members = sorted({m for k in jwks["keys"] for m in ("d", "p", "q", "k") if m in k})
    checks.check(not private_members, "the JWKS holds public keys only",
                 f"private members {private_members}")

    def verify(label, token, expect):
        """Verify with PyJWT and compare the claims in `expect`; return the claims."""
        try:
            claims = verifier.decode(token)
        except jwt.PyJWTError as e:
            checks.fail(f"{label}: PyJWT refused the token: {e!r} "
                        f"(header {jwt.get_unverified_header(token)})")
            return None
        wrong = {k: (claims.get(k), v) for k, v in expect.items() if claims.get(k) != v}
        checks.check(not wrong, f"{label}: signature, iss and exp verified by PyJWT; "
                     f"claims {sorted(expect)} as expected",
                     "got/want " + "; ".join(f"{k}={g!r}/{w!r}" for k, (g, w) in wrong.items()))
        now = time.time()
        iat = claims.get("iat", 0)
        ttl = claims.get("exp", 0) - iat
        checks.check(abs(iat - now) <= 60 and 0 < ttl <= expect_ttl[label],
                     f"{label}: iat now, lifetime {ttl}s within {expect_ttl[label]}s",
                     f"iat={claims.get('iat')} exp={claims.get('exp')} now={int(now)}")
        return claims

    # ----------------------------------------------------------- BlendVision
    status, body = http(
        "POST", server.url("/bv/cms/v1/resources/tokens"),
        {"resource_id": RESOURCE, "resource_type": "RESOURCE_TYPE_VOD",
         "customer_id": CUSTOMER, "customer_name": "Customer Forty-Two",
         "expires_in": f"{TTL_S}s"},
        headers={"Authorization": f"Bearer {api_token}", "x-bv-org-id": ORG})
    if status != 200:
        raise Fatal(f"BlendVision issue: HTTP {status} {body[:300]!r}")
    bv_token = json.loads(body)["token"]
    verify("blendvision", bv_token,
           {"rid": RESOURCE, "rty": "vod", "sub": CUSTOMER, "org": ORG, "prj": PROJECT,
            "scope": "resource", "iss": issuer})

    # ----------------------------------------------------------------- Azure
    azure_path = (f"/subscriptions/0000-sub/resourceGroups/e2e-rg/providers/"
                  f"Microsoft.VideoIndexer/accounts/{ORG}/"
                  "generateRestrictedViewerAccessToken?api-version=2024-01-01")
    status, body = http("POST", server.url(azure_path),
                        {"scope": "Video", "videoId": RESOURCE},
                        headers={"Authorization": f"Bearer {api_token}"})
    if status != 200:
        checks.fail(f"Azure issue: HTTP {status} {body[:300]!r}")
    else:
        verify("azure", json.loads(body)["accessToken"],
               {"rid": RESOURCE, "rty": "vod", "org": ORG, "scope": "resource"})

    # ----------------------------------------------------------- movingimage
    status, body = http("POST", server.url("/v1/vms/auth/login"),
                        {"username": USERNAME, "password": PASSWORD})
    if status != 200:
        raise Fatal(f"movingimage login: HTTP {status} {body[:300]!r}")
    mi_token = json.loads(body)["accessToken"]
    mi = verify("movingimage", mi_token,
                {"sub": user_id, "name": USERNAME, "org": ORG, "scope": "account",
                 "iss": issuer})
    if mi is not None:
        checks.check(bool(mi.get("fam")), "movingimage: the access token names its "
                     "refresh family (fam)", f"claims {mi}")

    # ---------------------------------------------- refusals (PyJWT is awake)
    head, payload, sig = bv_token.split(".")
    claims = b64url_json(payload)
    claims["rid"] = "another-film"
    forged = ".".join([head, b64url(json.dumps(claims, separators=(",", ":")).encode()), sig])
    try:
        verifier.decode(forged)
        checks.fail("a token with a changed payload was accepted by PyJWT")
    except jwt.InvalidSignatureError:
        checks.ok("a token with a changed payload: InvalidSignatureError")
    except jwt.PyJWTError as e:
        checks.fail(f"a token with a changed payload: {e!r}, want InvalidSignatureError")
    try:
        verifier.decode(bv_token, issuer=issuer + "-other")
        checks.fail("the token was accepted for another issuer")
    except jwt.InvalidIssuerError:
        checks.ok("the token against another issuer: InvalidIssuerError")
    except jwt.PyJWTError as e:
        checks.fail(f"the token against another issuer: {e!r}, want InvalidIssuerError")
    hdr = b64url_json(head)
    hdr["kid"] = "no-such-kid"
    other_kid = ".".join([b64url(json.dumps(hdr).encode()), payload, sig])
    try:
        verifier.decode(other_kid)
        checks.fail("a token naming an unknown kid was accepted")
    except jwt.PyJWTError:
        checks.ok("a token naming a kid outside the JWKS is refused")

    checks.check(server.alive(), "server still running")


if __name__ == "__main__":
    run_main(NAME, lambda: run_checks(NAME, OVERALL_TIMEOUT_S, check_jwks))
