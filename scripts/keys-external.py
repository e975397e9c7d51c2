#!/usr/bin/env python3
"""Acceptance: an Ed25519 key written by `tollgate keys generate` is usable by external
signers (OpenSSL 3.0, Python `cryptography`, PyJWT), and the gate accepts what they sign.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. `tollgate keys generate --alg EdDSA` writes `<kid>.pem` and `<kid>.pub.pem`;
  3. `openssl pkey` reads the private key, and the public key it derives is the written
     `<kid>.pub.pem`;
  4. `cryptography`'s `load_pem_private_key` reads it, and its public key is the same;
  5. PyJWT signs a resource token with it; a gate whose config lists the key verifies
     it (`200` for the sample's master playlist), and refuses it under another kid;
  6. the written key is the RFC 8410 PKCS#8 v1 form byte for byte (version 0, no `[1]`
     public key): this is the check that tells v1 from v2. Controls, so that the
     readers' passes mean something: OpenSSL 3.0 refuses the same key as PKCS#8 v2
     (version 1 and the `[1]` public key, as tollgate wrote it before), and
     `cryptography` refuses it under an unassigned OID (which shows only that its reader
     can refuse: `cryptography` 51 and later read v2, so the v2 control is OpenSSL's
     alone; the script prints what `cryptography` did with v2).

Usage: python3 scripts/keys-external.py         (from any directory)
Env:   TOLLGATE_BIN     use this binary instead of building one
       E2E_KEEP_TMP=1   keep the temp dir (server logs)
Needs: python3 with PyJWT and cryptography (pip install 'pyjwt[crypto]'), openssl.
Prints "keys-external: N passed, M failed"; exits non-zero on any failure.
"""

import base64
import os
import subprocess
import sys
import time

NAME = "keys-external"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import (Fatal, http, require_pyjwt, run_checks, run_main,  # noqa: E402
                          start_server)

require_pyjwt(NAME)
import jwt  # noqa: E402  PyJWT
from cryptography.exceptions import UnsupportedAlgorithm  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

OVERALL_TIMEOUT_S = 90  # the whole script after the build
KID = "external-signer"
TOOL_TIMEOUT_S = 20


def openssl(*args, stdin=None):
    """`openssl <args>`: (exit code, stdout text)."""
    p = subprocess.run(["openssl", *args], input=stdin, capture_output=True,
                       timeout=TOOL_TIMEOUT_S)
    return p.returncode, p.stdout.decode(errors="replace")


def pem(der):
    body = base64.encodebytes(der).decode().replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END PRIVATE KEY-----\n"


def as_pkcs8_v2(key):
    """The same Ed25519 key as an RFC 5958 OneAsymmetricKey: version 1 and the public
    key as [1] (what rcgen and aws-lc-rs write)."""
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw,
                                           serialization.PublicFormat.Raw)
    body = (bytes([0x02, 1, 1]) + bytes.fromhex("300506032b6570")
            + bytes([0x04, 34, 0x04, 32]) + raw + bytes([0x81, 33, 0]) + public)
    return pem(bytes([0x30, len(body)]) + body)


V1_PREFIX = bytes.fromhex("302e020100300506032b657004220420")  # RFC 8410 section 7


def der_of(pem_text):
    body = "".join(line for line in pem_text.splitlines() if not line.startswith("-----"))
    return base64.b64decode(body)


def check_readers(checks, ws, private_path, public_pem):
    """Steps 3, 4 and 6: both readers take the written key, which is the v1 form."""
    rc, derived = openssl("pkey", "-in", private_path, "-pubout")
    checks.check(rc == 0, "openssl pkey reads the written private key", f"exit {rc}")
    checks.check(derived.strip() == public_pem.strip(),
                 "openssl derives the written public key from it")
    with open(private_path, "rb") as f:
        written = f.read()
    key = serialization.load_pem_private_key(written, password=None)
    checks.ok("cryptography load_pem_private_key reads the written private key")
    ours = key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    checks.check(ours.decode().strip() == public_pem.strip(),
                 "cryptography derives the written public key from it")
    der = der_of(written.decode())
    checks.check(len(der) == 48 and der.startswith(V1_PREFIX),
                 "the written key is PKCS#8 v1 as RFC 8410 gives it (version 0, no public key)",
                 f"{len(der)} bytes, starts {der[:16].hex()}")
    check_controls(checks, ws, key)
    return key


def check_controls(checks, ws, key):
    """Step 6's controls: the readers above can refuse."""
    v2 = as_pkcs8_v2(key)
    v2_path = ws.path("v2.pem")
    with open(v2_path, "w") as f:
        f.write(v2)
    rc, _ = openssl("pkey", "-in", v2_path, "-noout")
    checks.check(rc != 0, "control: openssl refuses the same key as PKCS#8 v2")
    try:
        serialization.load_pem_private_key(v2.encode(), password=None)
        print(f"{NAME}: note: this cryptography reads PKCS#8 v2 too", flush=True)
    except ValueError:
        print(f"{NAME}: note: this cryptography refuses PKCS#8 v2", flush=True)
    unassigned_oid = bytes.fromhex("2b657f")  # 1.3.101.127, not Ed25519's 1.3.101.112
    wrong = bytearray(der_of(pem_of_key(key)))
    at = wrong.index(bytes.fromhex("2b6570"))
    wrong[at:at + 3] = unassigned_oid
    try:
        serialization.load_pem_private_key(pem(bytes(wrong)).encode(), password=None)
        checks.fail("control: cryptography read the key under an unassigned OID")
    except (ValueError, UnsupportedAlgorithm):
        checks.ok("control: cryptography refuses the key under another algorithm's OID")


def pem_of_key(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def add_verify_key(ws, public_path):
    """List the external key in the workspace's config (verification only)."""
    with open(ws.config, "a") as f:
        f.write(f'\n[[keys]]\nkid = "{KID}"\nalg = "EdDSA"\npublic = "{public_path}"\n')


def signed(key, kid, settings):
    """A resource token for the config's first resource, signed outside tollgate."""
    res = settings["resources"][0]
    now = int(time.time())
    claims = {"iss": settings["token"]["issuer"], "sub": "external", "scope": "resource",
              "rid": res["id"], "rty": res["type"], "org": res["org"],
              "iat": now, "exp": now + 300, "jti": "external-1"}
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid})


def check_keys(ws, checks, servers):
    out = ws.path("keys")
    p = subprocess.run([ws.bin, "keys", "generate", "--kid", KID, "--out", out],
                       capture_output=True, timeout=TOOL_TIMEOUT_S, cwd=ws.dir)
    if p.returncode != 0:
        raise Fatal(f"keys generate exited {p.returncode}: {p.stderr.decode()}")
    private_path = os.path.join(out, f"{KID}.pem")
    public_path = os.path.join(out, f"{KID}.pub.pem")
    with open(public_path) as f:
        public_pem = f.read()
    key = check_readers(checks, ws, private_path, public_pem)

    add_verify_key(ws, public_path)
    server = start_server(ws, "serve", servers)
    edge = server.listening()["edge-plain"]
    rid = ws.settings["resources"][0]["id"]
    url = f"http://{edge}/vod/{rid}/master.m3u8"
    token = signed(key, KID, ws.settings)
    status, _ = http("GET", url, headers={"Authorization": f"Bearer {token}"})
    checks.check(status == 200, "the gate plays a token PyJWT signed with the key",
                 f"HTTP {status}")
    status, _ = http("GET", url,
                     headers={"Authorization": f"Bearer {signed(key, 'dev-ed25519', ws.settings)}"})
    checks.check(status == 401, "control: the same key under another kid is refused",
                 f"HTTP {status}")
    checks.check(server.alive(), "server still running")


if __name__ == "__main__":
    run_main(NAME, lambda: run_checks(NAME, OVERALL_TIMEOUT_S, check_keys))
