#!/usr/bin/env python3
"""Acceptance: an Azure AD access token minted by an independent JOSE implementation
(PyJWT + cryptography) is accepted by tollgate's Azure Video Indexer API, the way an
Azure SDK client's token is accepted by Azure Resource Manager.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. makes an RSA key with `cryptography`, writes its public half as a JWKS
     (`jwt.algorithms.RSAAlgorithm.to_jwk`) next to a fresh copy of
     config/tollgate.toml, and adds an `[[azure.tenants]]` entry naming that file;
  3. with the CLI: an organisation bound to a subscription and resource group
     (`org add --azure-subscription … --azure-resource-group …`) and a VOD resource;
  4. starts `tollgate serve` and POSTs `generateRestrictedViewerAccessToken` with an
     AAD-shaped token (`iss` sts.windows.net, `aud` management.azure.com, `tid`, `oid`,
     `scp` user_impersonation) signed by PyJWT: 200 with an `accessToken`, also with
     the path's fixed segments, account and resource group in other cases;
  5. and, so that a pass means something: an expired token, one signed by another key
     under the same `kid`, one for another audience are 401 with ARM's code and a
     `WWW-Authenticate: Bearer authorization_uri=…` challenge; another subscription
     is 404 ResourceNotFound; another api-version is 400 InvalidApiVersionParameter.

Usage: python3 scripts/azure-aad-pyjwt.py     (from any directory)
Env:   TOLLGATE_BIN     use this binary instead of building one
       E2E_KEEP_TMP=1   keep the temp dir (server logs)
Needs: python3 and PyJWT with its crypto extra: pip install 'pyjwt[crypto]'
Prints "azure-aad-pyjwt: N passed, M failed"; exits non-zero on any failure.
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request

NAME = "azure-aad-pyjwt"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import require_pyjwt, run_checks, run_main, say, start_server  # noqa: E402

require_pyjwt(NAME)
import jwt  # noqa: E402  PyJWT
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from jwt.algorithms import RSAAlgorithm  # noqa: E402

OVERALL_TIMEOUT_S = 120  # the whole script after the build
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ISSUER = f"https://sts.windows.net/{TENANT}/"
AUDIENCE = "https://management.azure.com/"
KID = "aad-e2e-1"
ORG = "acme-vi"
SUB = "b04775c3-63fa-40f3-9430-139d2e5522d3"
GROUP = "Media-RG"
RESOURCE = "film-1"

# Everything talks to 127.0.0.1 only; never route that through a proxy.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def post(url, body, token):
    """POST JSON with a bearer token: (status, headers, parsed JSON body or None)."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with OPENER.open(req, timeout=10) as resp:
            status, headers, raw = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        with e:
            status, headers, raw = e.code, e.headers, e.read()
    try:
        return status, headers, json.loads(raw)
    except ValueError:
        return status, headers, None


def path(sub=SUB, group=GROUP, account=ORG, version="2024-01-01", lower=False):
    p = (f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.VideoIndexer/"
         f"accounts/{account}/generateRestrictedViewerAccessToken")
    if lower:
        p = p.lower()
    return f"{p}?api-version={version}"


def mint(key, **edits):
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "tid": TENANT,
              "oid": "5c9d1b2a-0000-4000-8000-000000000001", "scp": "user_impersonation",
              "iat": now, "nbf": now, "exp": now + 3600}
    claims.update(edits)
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


def setup(ws, public):
    """The JWKS file, the tenant entry and the bound organisation."""
    jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    jwk.update({"kid": KID, "alg": "RS256", "use": "sig"})
    with open(ws.path("config", "aad-keys.json"), "w") as f:
        json.dump({"keys": [jwk]}, f)
    with open(ws.config, "a") as f:
        f.write(f'\n[[azure.tenants]]\ntenant_id = "{TENANT}"\nissuer = "{ISSUER}"\n'
                f'jwks = "aad-keys.json"\naccounts = ["{ORG}"]\n')
    ws.cli("org", "add", "--id", ORG, "--azure-subscription", SUB,
           "--azure-resource-group", GROUP)
    ws.cli("resource", "add", "--id", RESOURCE, "--type", "vod", "--org", ORG)


def check_azure(ws, checks, servers):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    setup(ws, key.public_key())
    server = start_server(ws, "serve", servers)
    say(NAME, f"ready (pid {server.pid}): admin={server.admin}")

    body = {"scope": "Video", "videoId": RESOURCE}
    for label, p in [("the documented path", path()),
                     ("a lower-cased path, account and group", path(lower=True))]:
        status, _, answer = post(server.url(p), body, mint(key))
        token = (answer or {}).get("accessToken")
        claims = jwt.decode(token, options={"verify_signature": False}) if token else {}
        checks.check(status == 200 and claims.get("org") == ORG
                     and claims.get("rid") == RESOURCE,
                     f"{label}: a PyJWT-signed AAD token is accepted", f"{status} {answer}")

    refusals = [
        ("an expired token", path(), mint(key, exp=int(time.time()) - 3600), 401,
         "ExpiredAuthenticationToken"),
        ("another key under the same kid", path(), mint(other), 401,
         "InvalidAuthenticationToken"),
        ("another audience", path(), mint(key, aud="https://graph.microsoft.com"), 401,
         "InvalidAuthenticationTokenAudience"),
        ("another subscription", path(sub="00000000-0000-0000-0000-000000000000"),
         mint(key), 404, "ResourceNotFound"),
        ("another api-version", path(version="2022-08-01"), mint(key), 400,
         "InvalidApiVersionParameter"),
    ]
    for label, p, token, want, code in refusals:
        status, headers, answer = post(server.url(p), body, token)
        got = ((answer or {}).get("error") or {}).get("code")
        checks.check(status == want and got == code, f"{label}: {want} {code}",
                     f"{status} {answer}")
        if want == 401:
            challenge = headers.get("WWW-Authenticate", "")
            checks.check(challenge.startswith("Bearer authorization_uri=")
                         and TENANT in challenge,
                         f"{label}: ARM's challenge names the tenant's authority",
                         repr(challenge))
    checks.check(server.alive(), "server still running")


if __name__ == "__main__":
    run_main(NAME, lambda: run_checks(NAME, OVERALL_TIMEOUT_S, check_azure))
