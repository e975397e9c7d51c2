#!/usr/bin/env python3
"""Writes tests/fixtures/cloudfront/fixtures.json: CloudFront credentials signed with
SHA-1 (CloudFront's default hash) by botocore's CloudFrontSigner, which the Rust tests
cannot make themselves (aws-lc-rs signs RSA and ECDSA with SHA-256 only).

Fresh RSA 2048 and ECDSA P-256 keys each run; the public halves go into the file, the
private halves are thrown away. Every credential names https://media.example/ URLs and
expires on 2100-01-01, so the fixtures stay valid. Needs `botocore` and `cryptography`
(PyPI). Run from the repository root: python3 scripts/cloudfront-fixtures.py
"""
import datetime
import json
import pathlib

from botocore.signers import CloudFrontSigner
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

OUT = pathlib.Path("tests/fixtures/cloudfront/fixtures.json")
URL = "https://media.example/cf/a/seg.ts"
EXPIRES = datetime.datetime(2100, 1, 1, tzinfo=datetime.timezone.utc)


def public_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def query(signed_url):
    return signed_url.split("?", 1)[1]


def main():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_signer = CloudFrontSigner(
        "KRSA", lambda m: rsa_key.sign(m, padding.PKCS1v15(), hashes.SHA1())
    )
    ec_signer = CloudFrontSigner("KEC", lambda m: ec_key.sign(m, ec.ECDSA(hashes.SHA1())))
    policy = rsa_signer.build_policy("https://media.example/cf/a/*", EXPIRES)
    fixtures = {
        "generator": "scripts/cloudfront-fixtures.py",
        "url": URL,
        "rsa_public_pem": public_pem(rsa_key),
        "ec_public_pem": public_pem(ec_key),
        "canned_rsa_sha1": query(rsa_signer.generate_presigned_url(URL, date_less_than=EXPIRES)),
        "canned_ec_sha1": query(ec_signer.generate_presigned_url(URL, date_less_than=EXPIRES)),
        "custom_rsa_sha1": query(rsa_signer.generate_presigned_url(URL, policy=policy)),
        "custom_ec_sha1": query(ec_signer.generate_presigned_url(URL, policy=policy)),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fixtures, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
