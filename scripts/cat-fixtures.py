#!/usr/bin/env python3
"""Mint the Common Access Token interop fixtures with Python `cwt` (PyPI), not tollgate.

Writes tests/fixtures/cat/keys.json (the TEST keys, made here from fixed seeds: never
use them anywhere else) and tests/fixtures/cat/cases.json: one case per line of CASES
below, each a token (base64url, no padding), the request it is presented with, the
time, and the verdict tollgate must reach ("ok" or a reason code). A few cases `cwt`
cannot produce (a duplicated map key, a critical COSE header) are built by hand with
cbor2 (which `cwt` depends on) and say so in their name. Then scripts/cat-eyevinn/mint.mjs
adds a second generator's tokens (Eyevinn's `@eyevinn/cat` from npm, when it installs)
as cases-eyevinn.json. tests/it/cat_fixtures.rs reads the files and checks every verdict.

Usage:
  python3 scripts/cat-fixtures.py            # rewrite tests/fixtures/cat/
  python3 scripts/cat-fixtures.py --check    # mint afresh into a temporary directory,
      # compare its case names and verdicts with the committed ones, and run the Rust
      # fixture test on the fresh tokens (TOLLGATE_CAT_FIXTURES=<dir>); exit 1 on any
      # difference
"""

import base64
import copy
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile

import cbor2
import cwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives import serialization
from cwt import COSEKey

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "cat")

# Fixed time for every case, and the claims every valid token starts from.
NOW = 1_900_000_000
T0 = NOW - 10
ISS = "fixture-issuer"

# TEST KEYS ONLY, derived from fixed seeds so the fixtures are reproducible.
HS_SECRET = hashlib.sha256(b"tollgate cat fixture TEST hs256 key").digest()
OTHER_SECRET = hashlib.sha256(b"tollgate cat fixture TEST wrong key").digest()
EC_SCALAR = int.from_bytes(hashlib.sha256(b"tollgate cat fixture TEST es256 key").digest(), "big") % (
    0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551 - 1
) + 1
ED_SEED = hashlib.sha256(b"tollgate cat fixture TEST ed25519 key").digest()

# Claim keys (CTA-5007) and URI component / match type labels.
IAT, ISS_K, AUD, EXP, NBF, CTI = 6, 1, 3, 4, 5, 7
CATREPLAY, CATV, CATNIP, CATU, CATM, CATH, CATGEO, CATIF, CATR, CATTPRINT = 308, 310, 311, 312, 313, 315, 316, 322, 323, 324
# The claim key the crit cases' policy names for the issuer's list of critical claims.
CRIT = 325
CRIT_POLICY = {"crit_claim": CRIT}
SCHEME, HOST, PORT, PATH, QUERY, PARENT, FILENAME, STEM, EXT = range(9)
EXACT, PREFIX, SUFFIX, CONTAINS, REGEX, SHA256, SHA512_256 = 0, 1, 2, 3, 4, -1, -2

REQUEST = {
    "scheme": "https",
    "host": "media.example.com",
    "port": 443,
    "path": "/vod/movie/v0/seg_001.m4s",
    "query": "a=1",
    "method": "GET",
    "client_ip": "192.0.2.7",
    "headers": [["X-Device", "tv-42"]],
    "country": None,
    "asn": None,
}


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def hs_key(kid="hs", secret=HS_SECRET, alg="HS256"):
    return COSEKey.from_symmetric_key(secret, alg=alg, kid=kid)


def ec_private():
    return ec.derive_private_key(EC_SCALAR, ec.SECP256R1())


def es_key(kid="es"):
    pem = ec_private().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return COSEKey.from_pem(pem, alg="ES256", kid=kid)


def ed_key(kid="ed"):
    pem = ed25519.Ed25519PrivateKey.from_private_bytes(ED_SEED).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return COSEKey.from_pem(pem, alg="EdDSA", kid=kid)


def keys_json():
    ec_pub = ec_private().public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    ed_pub = ed25519.Ed25519PrivateKey.from_private_bytes(ED_SEED).public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return {
        "_note": "TEST keys for the fixtures only, made by scripts/cat-fixtures.py from fixed seeds",
        "hs": {"alg": "HS256", "key_hex": HS_SECRET.hex()},
        "es": {"alg": "ES256", "key_hex": ec_pub.hex()},
        "ed": {"alg": "EdDSA", "key_hex": ed_pub.hex()},
    }


def claims(**extra):
    c = {ISS_K: ISS, IAT: T0, EXP: NOW + 60, CTI: b"fixture-cti"}
    for k, v in extra.items():
        key = int(k[1:])
        if v is None:
            c.pop(key, None)
        else:
            c[key] = v
    return c


def mint(c, key=None, tagged=True):
    return cwt.encode(c, key or hs_key(), tagged=tagged)


def tampered(token):
    raw = bytearray(token)
    at = raw.find(ISS.encode())
    raw[at] ^= 0x01
    return bytes(raw)


def hand_mac0(payload_bytes, protected=None, kid=b"hs", secret=HS_SECRET):
    """A COSE_Mac0 built by hand, for what `cwt` refuses to make."""
    protected = cbor2.dumps(protected or {1: 5})
    mac_structure = cbor2.dumps(["MAC0", protected, b"", payload_bytes])
    tag = hmac.new(secret, mac_structure, hashlib.sha256).digest()
    return cbor2.dumps(cbor2.CBORTag(61, cbor2.CBORTag(17, [protected, {4: kid}, payload_bytes, tag])))


def duplicated_iss():
    # cbor2 cannot write a map with a repeated key; splice one: map of 3 -> map of 4.
    body = cbor2.dumps({ISS_K: ISS, EXP: NOW + 60, CTI: b"fixture-cti"})
    assert body[0] == 0xA3
    return b"\xa4" + body[1:] + cbor2.dumps(ISS_K) + cbor2.dumps("someone-else")


def uri(component, kind, value):
    return {CATU: {component: {kind: value}}}


def case(name, token, expect, request=None, now=NOW, policy=None):
    req = copy.deepcopy(REQUEST)
    req.update(request or {})
    out = {"name": name, "generator": f"python cwt {cwt.__version__}", "token": b64(token), "now": now, "request": req, "expect": expect}
    if policy:
        out["policy"] = policy
    return out


def cases():
    path = REQUEST["path"]
    out = [
        case("hs256_valid_tagged", mint(claims()), "ok"),
        case("hs256_valid_untagged", mint(claims(), tagged=False), "ok"),
        case("es256_valid", mint(claims(), es_key()), "ok"),
        case("eddsa_valid", mint(claims(), ed_key()), "ok"),
        case("expired", mint(claims(_4=NOW - 100)), "expired"),
        case("expired_within_leeway", mint(claims(_4=NOW - 10)), "ok"),
        case("not_yet_valid", mint(claims(_5=NOW + 600, _4=NOW + 900)), "not_yet_valid"),
        case("tampered_hs256", tampered(mint(claims())), "bad_signature"),
        case("tampered_es256", tampered(mint(claims(), es_key())), "bad_signature"),
        case("tampered_eddsa", tampered(mint(claims(), ed_key())), "bad_signature"),
        case("wrong_key_hs256", mint(claims(), hs_key(secret=OTHER_SECRET)), "bad_signature"),
        case("unknown_kid", mint(claims(), hs_key(kid="nobody")), "unknown_kid"),
        # Algorithm confusion: an HMAC keyed with the ES256 key's public point, under its kid.
        case("alg_confusion_hmac_with_es256_public_key", mint(claims(), hs_key(kid="es", secret=bytes.fromhex(keys_json()["es"]["key_hex"]))), "algorithm"),
        case("alg_es256_signed_under_hs_kid", mint(claims(), es_key(kid="hs")), "algorithm"),
        case("alg_hs384_under_hs256_kid", mint(claims(), hs_key(alg="HS384")), "algorithm"),
        case("wrong_issuer", mint(claims(_1="someone-else")), "issuer"),
        case("overlong", mint(claims(_999=b"\0" * 5000)), "too_long"),
        case("hand_built_duplicated_claim_key", hand_mac0(duplicated_iss()), "malformed"),
        case("hand_built_critical_cose_header", hand_mac0(cbor2.dumps(claims()), protected={1: 5, 2: [-70000], -70000: 1}), "critical"),
        case("crit_unknown_claim", mint(claims(_999=1, _325=[999])), "critical", policy=CRIT_POLICY),
        case("crit_known_claim", mint(claims(_999=1, _325=[CATU], _312={PATH: {PREFIX: "/vod/"}})), "ok", policy=CRIT_POLICY),
        case("crit_lists_unchecked_cattprint", mint(claims(_324={0: 1}, _325=[CATTPRINT])), "critical", policy=CRIT_POLICY),
        case("cattprint_not_critical_ignored", mint(claims(_324={0: 1})), "ok"),
        case("unknown_noncritical_claim_ignored", mint(claims(_999={"x": 1})), "ok"),
        case("catv_1", mint(claims(_310=1)), "ok"),
        case("catv_2", mint(claims(_310=2)), "version"),
        # catu: every component and match type, pass and fail.
        case("catu_scheme_exact", mint(claims(**{"_312": {SCHEME: {EXACT: "https"}}})), "ok"),
        case("catu_scheme_exact_fail", mint(claims(**{"_312": {SCHEME: {EXACT: "http"}}})), "scope"),
        case("catu_host_exact", mint(claims(**{"_312": {HOST: {EXACT: "media.example.com"}}})), "ok"),
        case("catu_host_suffix_fail", mint(claims(**{"_312": {HOST: {SUFFIX: ".example.net"}}})), "scope"),
        case("catu_port_exact", mint(claims(**{"_312": {PORT: {EXACT: "443"}}})), "ok"),
        case("catu_path_prefix", mint(claims(**{"_312": {PATH: {PREFIX: "/vod/movie/"}}})), "ok"),
        case("catu_path_prefix_other_path", mint(claims(**{"_312": {PATH: {PREFIX: "/vod/other/"}}})), "scope"),
        case("catu_query_exact", mint(claims(**{"_312": {QUERY: {EXACT: "a=1"}}})), "ok"),
        case("catu_parent_path_exact", mint(claims(**{"_312": {PARENT: {EXACT: "/vod/movie/v0"}}})), "ok"),
        case("catu_filename_contains", mint(claims(**{"_312": {FILENAME: {CONTAINS: "seg_"}}})), "ok"),
        case("catu_stem_exact", mint(claims(**{"_312": {STEM: {EXACT: "seg_001"}}})), "ok"),
        case("catu_extension_exact", mint(claims(**{"_312": {EXT: {EXACT: ".m4s"}}})), "ok"),
        case("catu_extension_exact_fail", mint(claims(**{"_312": {EXT: {EXACT: ".ts"}}})), "scope"),
        case("catu_path_regex", mint(claims(**{"_312": {PATH: {REGEX: [r"^/vod/[a-z]+/v[0-9]/"]}}})), "ok"),
        case("catu_path_regex_fail", mint(claims(**{"_312": {PATH: {REGEX: [r"^/live/"]}}})), "scope"),
        case("catu_path_sha256", mint(claims(**{"_312": {PATH: {SHA256: hashlib.sha256(path.encode()).digest()}}})), "ok"),
        case("catu_path_sha256_fail", mint(claims(**{"_312": {PATH: {SHA256: hashlib.sha256(b"/other").digest()}}})), "scope"),
        case("catu_path_sha512_256", mint(claims(**{"_312": {PATH: {SHA512_256: hashlib.new("sha512_256", path.encode()).digest()}}})), "ok"),
        case("catu_path_sha512_truncated_is_not_sha512_256", mint(claims(**{"_312": {PATH: {SHA512_256: hashlib.sha512(path.encode()).digest()[:32]}}})), "scope"),
        case("catu_unknown_component", mint(claims(**{"_312": {42: {EXACT: "x"}}})), "malformed"),
        # catm
        case("catm_get", mint(claims(_313=["GET", "HEAD"])), "ok"),
        case("catm_post_only", mint(claims(_313=["POST"])), "method"),
        # catnip (RFC 9164 tags 52/54)
        case("catnip_v4_prefix", mint(claims(_311=[cbor2.CBORTag(52, [24, bytes([192, 0, 2])])])), "ok"),
        case("catnip_v4_other_address", mint(claims(_311=[cbor2.CBORTag(52, bytes([198, 51, 100, 1]))])), "ip"),
        case("catnip_v4_client_v6_prefix", mint(claims(_311=[cbor2.CBORTag(54, [32, bytes.fromhex("20010db8")])])), "ip"),
        case("catnip_v6_client_v6_prefix", mint(claims(_311=[cbor2.CBORTag(54, [32, bytes.fromhex("20010db8")])])), "ok", {"client_ip": "2001:db8::7"}),
        # cath
        case("cath_prefix", mint(claims(_315={"x-device": {PREFIX: "tv-"}})), "ok"),
        case("cath_exact_fail", mint(claims(_315={"x-device": {EXACT: "phone"}})), "header"),
        case("cath_missing_header", mint(claims(_315={"x-other": {CONTAINS: ""}})), "header"),
        # catgeoiso3166
        case("catgeo_without_geo_source", mint(claims(_316=["SE"])), "geo_unavailable"),
        case("catgeo_listed", mint(claims(_316=["SE", "NO"])), "ok", {"country": "SE"}),
        case("catgeo_not_listed", mint(claims(_316=["SE", "NO"])), "geo", {"country": "US"}),
        # catreplay
        case("catreplay_permitted", mint(claims(_308=0)), "ok"),
        case("catreplay_prohibited_without_store", mint(claims(_308=1)), "replay_unenforced"),
        case("catreplay_detect", mint(claims(_308=2)), "ok"),
        # catr
        case("catr_header", mint(claims(_323={0: 2, 1: 120, 2: 30, 4: "CTA-Common-Access-Token"})), "ok"),
        case("catr_cookie", mint(claims(_323={0: 1, 1: 120, 3: "CTA-Common-Access-Token", 5: ["Secure", "HttpOnly"]})), "ok"),
        case("catr_redirect", mint(claims(_323={0: 3, 1: 120, 7: 307})), "ok"),
        case("catr_missing_expadd", mint(claims(_323={0: 2})), "malformed"),
        case("catr_redirect_with_200", mint(claims(_323={0: 3, 1: 120, 7: 200})), "malformed"),
        # catif: the refusal of its claim carries its instruction (checked in Rust).
        case("catif_on_expired", mint(claims(_4=NOW - 100, _322={EXP: [302, {"Location": "https://login.example/"}]})), "expired"),
        case("catif_malformed", mint(claims(_322={EXP: "not an array"})), "malformed"),
        # aud is not checked unless configured (the reference's default).
        case("aud_present_not_configured", mint(claims(_3="some-cdn")), "ok"),
    ]
    return out


def write(outdir):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, "keys.json"), "w") as f:
        json.dump(keys_json(), f, indent=1, sort_keys=True)
        f.write("\n")
    all_cases = cases()
    names = [c["name"] for c in all_cases]
    assert len(names) == len(set(names)), "duplicate case names"
    with open(os.path.join(outdir, "cases.json"), "w") as f:
        json.dump(all_cases, f, indent=1)
        f.write("\n")
    return all_cases


EYEVINN = os.path.join(ROOT, "scripts", "cat-eyevinn")


def eyevinn(outdir):
    """Adds @eyevinn/cat's cases (cases-eyevinn.json) when the package installs."""
    if not os.path.isdir(os.path.join(EYEVINN, "node_modules", "@eyevinn", "cat")):
        rc = subprocess.call(["npm", "ci", "--no-audit", "--no-fund", "--quiet"], cwd=EYEVINN)
        if rc != 0:
            print("cat-fixtures: @eyevinn/cat did not install; only the Python cwt cases are minted afresh")
            return False
    subprocess.check_call(["node", os.path.join(EYEVINN, "mint.mjs"), outdir])
    return True


def verdicts(outdir, with_eyevinn=True):
    """Case name -> expected verdict, over cases.json and (if asked) cases-eyevinn.json."""
    out = {}
    for name in ["cases.json"] + (["cases-eyevinn.json"] if with_eyevinn else []):
        with open(os.path.join(outdir, name)) as f:
            out.update({c["name"]: c["expect"] for c in json.load(f)})
    return out


def check():
    with tempfile.TemporaryDirectory() as d:
        write(d)
        minted_eyevinn = eyevinn(d)
        committed = verdicts(OUT, minted_eyevinn)
        fresh = verdicts(d, minted_eyevinn)
        if fresh != committed:
            diff = sorted(set(fresh.items()) ^ set(committed.items()))
            print(f"cat-fixtures: regenerated verdicts differ from tests/fixtures/cat: {diff}")
            return 1
        env = dict(os.environ, TOLLGATE_CAT_FIXTURES=d)
        rc = subprocess.call(["cargo", "test", "--test", "it", "cat_fixtures::"], cwd=ROOT, env=env)
        print(f"cat-fixtures: {len(fresh)} freshly minted cases, rust verdicts {'match' if rc == 0 else 'DIFFER'}")
        return rc


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        sys.exit(check())
    n = len(write(OUT))
    print(f"cat-fixtures: wrote {n} cases to {os.path.relpath(OUT)}")
    eyevinn(OUT)
