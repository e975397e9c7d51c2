//! CloudFront signed URLs and signed cookies, black-box: credentials signed here the way
//! CloudFront's documented steps sign them (RSA and ECDSA keys made by the test,
//! `Hash-Algorithm=SHA256`, since aws-lc-rs signs with SHA-256 only) and the SHA-1
//! fixtures botocore signed (`scripts/cloudfront-fixtures.py`), sent to a real gate on
//! 127.0.0.1:0. Accepted on their resource with every CloudFront parameter and cookie
//! stripped before the recording origin; refused with the right reason when expired,
//! not yet valid, tampered, for another path or another address; and the threat model's
//! K cases.

use crate::common;

use std::net::IpAddr;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, RsaKeyPair};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::Method;

use crate::foreign::{assert_refused, last_seen};
use common::*;

/// A key pair made by the test: what a CloudFront key group's private half signs.
enum Signer {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
}

impl Signer {
    fn public_pem(&self) -> String {
        use aws_lc_rs::encoding::AsDer as _;
        let der = match self {
            Signer::Rsa(k) => k.public_key().as_der().expect("der").as_ref().to_vec(),
            Signer::Ec(k) => k.public_key().as_der().expect("der").as_ref().to_vec(),
        };
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(der)
        )
    }

    /// `openssl sha256 -sign key.pem | openssl base64 -A | tr -- '+=/' '-_~'`.
    fn sign(&self, policy: &str) -> String {
        let rng = SystemRandom::new();
        let sig = match self {
            Signer::Rsa(k) => {
                let mut out = vec![0; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &rng,
                    policy.as_bytes(),
                    &mut out,
                )
                .expect("sign");
                out
            }
            Signer::Ec(k) => k
                .sign(&rng, policy.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
        };
        cf_b64(&sig)
    }
}

fn cf_b64(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .replace('+', "-")
        .replace('=', "_")
        .replace('/', "~")
}

/// The keys: RSA `KRSA` and ECDSA `KEC` made here; `KRSA1` and `KEC1`, botocore's.
struct Keys {
    rsa: Signer,
    ec: Signer,
    fixtures: serde_json::Value,
    _dir: tempfile::TempDir,
    toml: String,
}

fn keys() -> Keys {
    let rsa = Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"));
    let ec =
        Signer::Ec(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).expect("ec"));
    let text = include_str!("../fixtures/cloudfront/fixtures.json");
    let fixtures: serde_json::Value = serde_json::from_str(text).expect("fixtures");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut toml = String::new();
    for (id, pem) in [
        ("KRSA", rsa.public_pem()),
        ("KEC", ec.public_pem()),
        (
            "KRSA1",
            fixtures["rsa_public_pem"].as_str().expect("pem").into(),
        ),
        (
            "KEC1",
            fixtures["ec_public_pem"].as_str().expect("pem").into(),
        ),
    ] {
        let path = dir.path().join(format!("{id}.pem"));
        std::fs::write(&path, pem).expect("write");
        toml += &format!(
            "[[formats.keys]]\nid = \"{id}\"\npublic_key_file = {:?}\n",
            path.display().to_string()
        );
    }
    Keys {
        rsa,
        ec,
        fixtures,
        _dir: dir,
        toml,
    }
}

/// Routes: `/cf/` CloudFront for URLs signed as `https://media.example/…`; `/cfh/`
/// CloudFront for the URL as requested (http, the gate's address); `/ea/` EdgeAuth;
/// `/vod/` native only.
fn setup(origin: &TestOrigin, keys: &Keys) -> Setup {
    let mut setup = Setup::standard(vec![origin.url()]);
    let key_lines = &keys.toml;
    setup.extra = format!(
        r#"
[[routes]]
name = "vod"
path = "/vod/{{rid}}/"
type = "vod"
origin = "o"

[[routes]]
name = "cf"
path = "/cf/{{rid}}/"
type = "vod"
origin = "o"
formats = ["cloudfront"]

[[routes]]
name = "cfh"
path = "/cfh/{{rid}}/"
type = "vod"
origin = "o"
formats = ["cloudfront_here"]

[[routes]]
name = "ea"
path = "/ea/{{rid}}/"
type = "vod"
origin = "o"
formats = ["akamai"]

[[formats]]
name = "cloudfront"
kind = "cloudfront"
url_prefix = "https://media.example"
{key_lines}
[[formats]]
name = "cloudfront_here"
kind = "cloudfront"
{key_lines}
[[formats]]
name = "akamai"
kind = "edgeauth"
key = "52a152a152a152a152a152a152a152a1"

[[resources]]
id = "a"
type = "vod"
org = "org1"
project = "p1"
"#
    );
    setup
}

fn canned_policy(url: &str, exp: u64) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":"{url}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{exp}}}}}}}]}}"#
    )
}

/// A canned signed URL's query (SHA-256) for `url`.
fn canned(signer: &Signer, id: &str, url: &str, exp: u64) -> String {
    let sig = signer.sign(&canned_policy(url, exp));
    format!("Expires={exp}&Signature={sig}&Key-Pair-Id={id}&Hash-Algorithm=SHA256")
}

/// A custom policy: `resource`, `DateLessThan`, and optional extra conditions.
fn custom_policy(resource: &str, exp: u64, extra: &str) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{exp}}}{extra}}}}}]}}"#
    )
}

/// A custom policy's (Policy, Signature) pair, SHA-256.
fn custom(signer: &Signer, policy: &str) -> (String, String) {
    (cf_b64(policy.as_bytes()), signer.sign(policy))
}

fn custom_query(signer: &Signer, id: &str, policy: &str) -> String {
    let (policy, sig) = custom(signer, policy);
    format!("Policy={policy}&Signature={sig}&Key-Pair-Id={id}&Hash-Algorithm=SHA256")
}

#[tokio::test]
async fn k1_signed_urls_and_cookies_canned_and_custom_rsa_and_ecdsa_are_accepted_and_stripped() {
    let origin = TestOrigin::start().await;
    let keys = keys();
    let gate = start(setup(&origin, &keys)).await;
    let addr = gate.plain();
    let exp = now() + 600;

    // A canned RSA URL, signed for the URL as requested (with its own query).
    let url = format!("http://{addr}/cfh/a/seg.ts?keep=1");
    let q = canned(&keys.rsa, "KRSA", &url, exp);
    let got = get(addr, &format!("/cfh/a/seg.ts?keep=1&{q}"), &[]).await;
    assert_eq!(got.status, 200, "canned RSA URL: {got:?}");
    assert_eq!(last_seen(&origin).0, "/cfh/a/seg.ts?keep=1");

    // A custom ECDSA URL with a wildcard resource, under url_prefix.
    let policy = custom_policy("https://media.example/cf/a/*", exp, "");
    let q = custom_query(&keys.ec, "KEC", &policy);
    let got = get(addr, &format!("/cf/a/v1/seg.ts?{q}"), &[]).await;
    assert_eq!(got.status, 200, "custom ECDSA URL: {got:?}");
    assert_eq!(last_seen(&origin).0, "/cf/a/v1/seg.ts");

    // Custom RSA cookies, other cookies kept.
    let (p, sig) = custom(&keys.rsa, &policy);
    let cookie = format!(
        "other=1; CloudFront-Policy={p}; CloudFront-Signature={sig}; CloudFront-Key-Pair-Id=KRSA; CloudFront-Hash-Algorithm=SHA256"
    );
    let got = get(addr, "/cf/a/index.m3u8", &[("cookie", &cookie)]).await;
    assert_eq!(got.status, 200, "custom RSA cookies: {got:?}");
    let (target, headers) = last_seen(&origin);
    assert_eq!(target, "/cf/a/index.m3u8");
    assert!(
        headers.contains("other=1") && !headers.contains("CloudFront"),
        "{headers}"
    );

    // Canned ECDSA cookies (CloudFront-Expires), for the one URL they name.
    let sig = keys
        .ec
        .sign(&canned_policy("https://media.example/cf/a/x.ts", exp));
    let cookie = format!(
        "CloudFront-Expires={exp}; CloudFront-Signature={sig}; CloudFront-Key-Pair-Id=KEC; CloudFront-Hash-Algorithm=SHA256"
    );
    let got = get(addr, "/cf/a/x.ts", &[("cookie", &cookie)]).await;
    assert_eq!(got.status, 200, "canned ECDSA cookies: {got:?}");
    assert!(!last_seen(&origin).1.contains("CloudFront"));

    // botocore's SHA-1 URLs (no Hash-Algorithm), RSA and ECDSA, canned and custom.
    for case in [
        "canned_rsa_sha1",
        "canned_ec_sha1",
        "custom_rsa_sha1",
        "custom_ec_sha1",
    ] {
        let q = keys.fixtures[case].as_str().expect(case);
        let q = q.replace("Key-Pair-Id=KRSA", "Key-Pair-Id=KRSA1");
        let q = q.replace("Key-Pair-Id=KEC", "Key-Pair-Id=KEC1");
        let got = get(addr, &format!("/cf/a/seg.ts?{q}"), &[]).await;
        assert_eq!(got.status, 200, "{case}: {got:?}");
        assert_eq!(last_seen(&origin).0, "/cf/a/seg.ts", "{case}");
    }
}

#[tokio::test]
async fn k5_cloudfront_is_refused_expired_early_tampered_for_another_path_or_address() {
    let origin = TestOrigin::start().await;
    let keys = keys();
    let gate = start(setup(&origin, &keys)).await;
    let addr = gate.plain();
    let url = "https://media.example/cf/a/seg.ts";
    let at = |q: &str| format!("/cf/a/seg.ts?{q}");

    let expired = canned(&keys.rsa, "KRSA", url, now() - 3600);
    assert_refused(
        &get(addr, &at(&expired), &[]).await,
        403,
        "expired",
        "expired",
    );
    let later = custom_policy(
        "https://media.example/cf/*",
        now() + 7200,
        &format!(r#","DateGreaterThan":{{"AWS:EpochTime":{}}}"#, now() + 3600),
    );
    let early = custom_query(&keys.rsa, "KRSA", &later);
    assert_refused(
        &get(addr, &at(&early), &[]).await,
        403,
        "not_yet_valid",
        "early",
    );

    let good = canned(&keys.rsa, "KRSA", url, now() + 600);
    let tampered = good.replace("Expires=", "Expires=1");
    assert_refused(
        &get(addr, &at(&tampered), &[]).await,
        401,
        "bad_signature",
        "tampered",
    );
    // A canned policy signs the URL: another path is another signature, even once the
    // credential is cached for its own URL.
    assert_eq!(get(addr, &at(&good), &[]).await.status, 200);
    let got = get(addr, &format!("/cf/a/seg2.ts?{good}"), &[]).await;
    assert_refused(&got, 401, "bad_signature", "canned, another path");
    // A custom policy names a pattern, checked on every request (cached or not).
    let scoped = custom_query(
        &keys.ec,
        "KEC",
        &custom_policy("https://media.example/cf/a/*", now() + 600, ""),
    );
    assert_eq!(get(addr, &at(&scoped), &[]).await.status, 200);
    let got = get(addr, &format!("/cf/b/seg.ts?{scoped}"), &[]).await;
    assert_refused(&got, 403, "acl", "custom, another path");

    let bound = custom_query(
        &keys.rsa,
        "KRSA",
        &custom_policy(
            "https://media.example/cf/a/*",
            now() + 600,
            r#","IpAddress":{"AWS:SourceIp":"127.0.0.1/32"}"#,
        ),
    );
    assert_eq!(get(addr, &at(&bound), &[]).await.status, 200);
    let other_ip: IpAddr = "127.0.0.3".parse().expect("ip");
    let got = request_from(other_ip, addr, Method::GET, &at(&bound), &[]).await;
    assert_refused(
        &got,
        403,
        "ip",
        "custom, another address (after a cached hit)",
    );
    assert_eq!(origin.count(), 3, "no refused request reached the origin");
}

#[tokio::test]
async fn k2_k3_k4_cloudfront_threats_key_confusion_missing_duplicated_overlong_and_other_routes() {
    let origin = TestOrigin::start().await;
    let keys = keys();
    let gate = start(setup(&origin, &keys)).await;
    let addr = gate.plain();
    let url = "https://media.example/cf/a/seg.ts";
    let exp = now() + 600;
    let at = |q: &str| format!("/cf/a/seg.ts?{q}");

    // K2: an ECDSA signature under the RSA key's id, and the reverse.
    let by_ec = canned(&keys.ec, "KRSA", url, exp);
    assert_refused(
        &get(addr, &at(&by_ec), &[]).await,
        401,
        "bad_signature",
        "ec under rsa",
    );
    let by_rsa = canned(&keys.rsa, "KEC", url, exp);
    assert_refused(
        &get(addr, &at(&by_rsa), &[]).await,
        401,
        "bad_signature",
        "rsa under ec",
    );
    let unknown = canned(&keys.rsa, "KNOPE", url, exp);
    assert_refused(
        &get(addr, &at(&unknown), &[]).await,
        401,
        "unknown_kid",
        "unknown id",
    );

    // K3: missing, duplicated, overlong.
    let good = canned(&keys.rsa, "KRSA", url, exp);
    let no_id = good
        .split("&Key-Pair-Id")
        .next()
        .expect("prefix")
        .to_string();
    assert_refused(
        &get(addr, &at(&no_id), &[]).await,
        401,
        "malformed",
        "no Key-Pair-Id",
    );
    let both = format!("{good}&Policy={}", cf_b64(b"{}"));
    assert_refused(
        &get(addr, &at(&both), &[]).await,
        401,
        "malformed",
        "Policy and Expires",
    );
    let twice = format!("{good}&Signature=AAAA");
    assert_refused(
        &get(addr, &at(&twice), &[]).await,
        400,
        "conflict",
        "Signature twice",
    );
    // Signed cookies beside a signed URL: the URL decides alone, as CloudFront does
    // (a good URL with a stale cookie plays; the cookie does not reach the origin).
    let cookie = "CloudFront-Key-Pair-Id=KEC; CloudFront-Signature=AAAA; keep=1";
    let got = get(addr, &at(&good), &[("cookie", cookie)]).await;
    assert_eq!(
        got.status, 200,
        "a signed URL beside other cookies: {got:?}"
    );
    let seen = format!("{:?}", origin.requests().pop().expect("seen").headers);
    assert!(
        seen.contains("keep=1") && !seen.contains("CloudFront-"),
        "{seen}"
    );
    let long = format!("{good}&Policy={}", "A".repeat(5000));
    assert_refused(
        &get(addr, &at(&long), &[]).await,
        431,
        "too_long",
        "overlong",
    );
    let lookalike = format!("{good}&key-pair-id=KRSA");
    assert_refused(
        &get(addr, &at(&lookalike), &[]).await,
        401,
        "malformed",
        "lookalike",
    );

    // K4: a valid CloudFront URL where only another format (or native) is listed.
    let here = canned(
        &keys.rsa,
        "KRSA",
        &format!("http://{addr}/ea/a/seg.ts"),
        exp,
    );
    let got = get(addr, &format!("/ea/a/seg.ts?{here}"), &[]).await;
    assert_refused(&got, 401, "missing", "cloudfront on an EdgeAuth route");
    let here = canned(
        &keys.rsa,
        "KRSA",
        &format!("http://{addr}/vod/a/seg.ts"),
        exp,
    );
    let got = get(addr, &format!("/vod/a/seg.ts?{here}"), &[]).await;
    assert_refused(&got, 401, "missing", "cloudfront on a native route");
    assert_eq!(
        origin.count(),
        1,
        "only the signed URL beside cookies was served"
    );
}
