#!/usr/bin/env python3
"""Interop: CloudFront signed URLs and signed cookies made by botocore's
`CloudFrontSigner` (PyPI, signing with `cryptography`) are accepted and refused by
tollgate as CloudFront would.

  1. builds tollgate (cargo build) unless TOLLGATE_BIN points at a binary;
  2. makes an RSA 2048 key (`KRSA`) and an ECDSA P-256 key (`KEC`), writes their public
     halves and adds two CloudFront formats to a copy of the shipped config over a
     file:// origin: `/cf/` for URLs signed as https://media.example/… (`url_prefix`),
     `/cfh/` for the URL as requested (http://<the gate's address>/…);
  3. signs with CloudFrontSigner: canned and custom policies (wildcard resources,
     `DateGreaterThan`, `IpAddress`), SHA-1 (its default) and SHA-256
     (`Hash-Algorithm=SHA256`); signed cookies from the same policies and signatures;
  4. checks tollgate's status and reason for each: accepted on its resource, `expired`,
     `not_yet_valid`, `bad_signature` when tampered, for another path (canned) or under
     the other key type's id, `acl` for another path (custom), `ip` from another
     address (127.0.0.2).

Usage: python3 scripts/interop-cloudfront.py
Env:   TOLLGATE_BIN      use this binary instead of building one
       INTEROP_SABOTAGE=1 give tollgate another public key for KRSA than the one that
                         signs (the run must fail: this proves the script can)
       E2E_KEEP_TMP=1    keep the temp dir
Needs: pip install botocore cryptography
Prints "interop-cloudfront: N passed, M failed"; exits non-zero on any failure.
"""

import datetime
import os
import sys
import time

NAME = "interop-cloudfront"

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tollgate_e2e import edge_get as get, run_checks, run_main, say, start_server  # noqa: E402

try:
    from botocore.signers import CloudFrontSigner
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
except ImportError:
    print(f"{NAME}: FATAL: botocore and cryptography are needed for {sys.executable}; "
          f"install them with: {sys.executable} -m pip install botocore cryptography",
          file=sys.stderr)
    print(f"{NAME}: 0 passed, 1 failed")
    sys.exit(2)

OVERALL_TIMEOUT_S = 120
PREFIX = "https://media.example"
FILES = ["/cf/demo/seg-1.ts", "/cf/demo/seg-2.ts", "/cf/other/seg-1.ts",
         "/cfh/demo/seg-1.ts"]


def pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def configure_tollgate(ws, rsa_key, ec_key):
    served = rsa.generate_private_key(65537, 2048) if os.environ.get("INTEROP_SABOTAGE") else rsa_key
    os.makedirs(ws.path("cf-keys"), exist_ok=True)
    for name, key in (("rsa", served), ("ec", ec_key)):
        with open(ws.path(f"cf-keys/{name}.pem"), "wb") as f:
            f.write(pem(key))
    keys = ""
    for kid, name in (("KRSA", "rsa"), ("KEC", "ec")):
        keys += f"""
[[formats.keys]]
id = "{kid}"
public_key_file = "{ws.path(f'cf-keys/{name}.pem')}"
"""
    with open(ws.config, "a") as f:
        f.write(f"""
[[origins]]
name = "interop"
upstreams = ["file://{ws.path('media')}"]

[[routes]]
name = "cf"
path = "/cf/{{rid}}/"
type = "vod"
origin = "interop"
formats = ["cloudfront"]

[[routes]]
name = "cfh"
path = "/cfh/{{rid}}/"
type = "vod"
origin = "interop"
formats = ["cloudfront_here"]

[[formats]]
name = "cloudfront"
kind = "cloudfront"
url_prefix = "{PREFIX}"
{keys}
[[formats]]
name = "cloudfront_here"
kind = "cloudfront"
{keys}
""")


def at(seconds):
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)


def path_and_query(url):
    """`https://host/p?q` → `/p?q`: the request target."""
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def cases(gate, rsa_key, ec_key, now):
    """(what, target, headers, source address, expected status, expected reason)."""
    rsa1 = CloudFrontSigner("KRSA", lambda m: rsa_key.sign(m, padding.PKCS1v15(), hashes.SHA1()))
    ec1 = CloudFrontSigner("KEC", lambda m: ec_key.sign(m, ec.ECDSA(hashes.SHA1())))
    ec256 = CloudFrontSigner("KEC", lambda m: ec_key.sign(m, ec.ECDSA(hashes.SHA256())))
    ec_as_rsa = CloudFrontSigner("KRSA", lambda m: ec_key.sign(m, ec.ECDSA(hashes.SHA1())))
    seg = f"{PREFIX}/cf/demo/seg-1.ts"
    soon = at(now + 600)

    def canned(signer, url, until=soon):
        return path_and_query(signer.generate_presigned_url(url, date_less_than=until))

    def custom(signer, url, resource, until=soon, start=None, ip=None):
        policy = signer.build_policy(resource, until, date_greater_than=start, ip_address=ip)
        return path_and_query(signer.generate_presigned_url(url, policy=policy))

    def cookies(signer, resource):
        policy = signer.build_policy(resource, soon).encode()
        enc = signer._url_b64encode  # botocore's own CloudFront base64
        return (f"a=1; CloudFront-Policy={enc(policy).decode()}; "
                f"CloudFront-Signature={enc(signer.rsa_signer(policy)).decode()}; "
                f"CloudFront-Key-Pair-Id={signer.key_id}")

    good = canned(rsa1, seg)
    exp = good.split("Expires=")[1].split("&")[0]
    wildcard = custom(rsa1, seg, f"{PREFIX}/cf/demo/*")
    sha256 = canned(ec256, seg) + "&Hash-Algorithm=SHA256"
    bound = custom(ec1, seg, f"{PREFIX}/cf/*", ip="127.0.0.1")
    return [
        ("canned, RSA SHA-1", good, {}, "127.0.0.1", 200, ""),
        ("canned, ECDSA SHA-1", canned(ec1, seg), {}, "127.0.0.1", 200, ""),
        ("canned, ECDSA SHA-256 (Hash-Algorithm=SHA256)", sha256, {}, "127.0.0.1", 200, ""),
        ("canned, the URL as requested (no url_prefix)",
         canned(rsa1, f"http://{gate}/cfh/demo/seg-1.ts"), {}, "127.0.0.1", 200, ""),
        ("custom, wildcard resource", wildcard, {}, "127.0.0.1", 200, ""),
        ("custom, wildcard resource, another file under it",
         wildcard.replace("seg-1", "seg-2"), {}, "127.0.0.1", 200, ""),
        ("signed cookies, custom policy", "/cf/demo/seg-2.ts",
         {"Cookie": cookies(rsa1, f"{PREFIX}/cf/demo/*")}, "127.0.0.1", 200, ""),
        ("signed cookies for another path", "/cf/other/seg-1.ts",
         {"Cookie": cookies(ec1, f"{PREFIX}/cf/demo/*")}, "127.0.0.1", 403, "acl"),
        ("a signed URL beside signed cookies for another path: the URL decides",
         good, {"Cookie": cookies(ec1, f"{PREFIX}/cf/other/*")}, "127.0.0.1", 200, ""),
        ("signed cookies beside a tampered URL: the URL decides",
         good.replace("seg-1", "seg-2"), {"Cookie": cookies(rsa1, f"{PREFIX}/cf/demo/*")},
         "127.0.0.1", 401, "bad_signature"),
        ("canned, expired", canned(rsa1, seg, at(now - 3600)), {}, "127.0.0.1", 403,
         "expired"),
        ("custom, DateGreaterThan in the future",
         custom(rsa1, seg, f"{PREFIX}/cf/*", at(now + 7200), at(now + 3600)), {},
         "127.0.0.1", 403, "not_yet_valid"),
        ("canned, tampered Expires", good.replace(f"Expires={exp}", f"Expires={int(exp) + 1}"),
         {}, "127.0.0.1", 401, "bad_signature"),
        ("canned, another path", good.replace("seg-1", "seg-2"), {}, "127.0.0.1", 401,
         "bad_signature"),
        ("custom, another path", wildcard.replace("/cf/demo/", "/cf/other/"), {},
         "127.0.0.1", 403, "acl"),
        ("custom IpAddress, from its address", bound, {}, "127.0.0.1", 200, ""),
        ("custom IpAddress, from another address", bound, {}, "127.0.0.2", 403, "ip"),
        ("an ECDSA signature under the RSA key's id", canned(ec_as_rsa, seg), {},
         "127.0.0.1", 401, "bad_signature"),
    ]


def check_urls(ws, checks, servers):
    for p in FILES:
        os.makedirs(os.path.dirname(ws.path("media" + p)), exist_ok=True)
        with open(ws.path("media" + p), "wb") as f:
            f.write(b"segment bytes")
    rsa_key = rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    configure_tollgate(ws, rsa_key, ec_key)
    server = start_server(ws, "serve", servers)
    gate = server.listening()["edge-plain"]
    for what, target, headers, source, status, reason in cases(gate, rsa_key, ec_key,
                                                               int(time.time())):
        got_status, got_reason = get(gate, target, headers, source)
        checks.check((got_status, got_reason) == (status, reason),
                     f"{what}: {status} {reason}".rstrip(),
                     f"got {got_status} {got_reason!r}")


def main():
    import botocore
    say(NAME, f"botocore {botocore.__version__} from {os.path.dirname(botocore.__file__)}")
    return run_checks(NAME, OVERALL_TIMEOUT_S, check_urls)


if __name__ == "__main__":
    run_main(NAME, main)
