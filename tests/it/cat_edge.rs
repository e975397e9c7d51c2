//! The Common Access Token as a route format, black-box: CATs made here with coset and
//! aws-lc-rs (COSE_Mac0 HS256 under kid `k1`, CWT-tagged, base64url), sent to a real
//! gate on 127.0.0.1:0 whose routes list the `cat` format. Each is accepted in every
//! carrier and stripped before the recording origin; refused with its reason when
//! expired, tampered, for another path (`catu`), another address (`catnip`), another
//! method (`catm`); ignored on a route that does not list the format; a conflict beside
//! a second CAT or a native token; answered as its `catif` says; and renewed (`catr`) in
//! each mode, never past what the presented token allows (threat model I4).

use crate::common;

use std::net::IpAddr;
use std::sync::Arc;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use ciborium::value::Value;
use coset::{iana, CoseMac0Builder, HeaderBuilder, TaggedCborSerializable};
use http::{Method, Response};
use http_body_util::Full;
use tollgate::token::cat::{self, CatKey, CatKeys, CatPolicy};

use common::*;

/// The HS256 secret of kid `k1`, hex (32 bytes).
const KEY: &str = "6b31c0ffee6b31c0ffee6b31c0ffee6b31c0ffee6b31c0ffee6b31c0ffee6b31";
const HEADER: &str = "CTA-Common-Access-Token";

const EXP: i64 = 4;
const IAT: i64 = 6;
const CTI: i64 = 7;
const CATNIP: i64 = 311;
const CATU: i64 = 312;
const CATM: i64 = 313;
const CATIF: i64 = 322;
const CATR: i64 = 323;

fn secret() -> Vec<u8> {
    (0..KEY.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Routes: `/cat/` CAT only, `/mix/` native and CAT, `/vod/` native only.
fn setup(origin: &TestOrigin) -> Setup {
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.extra.push_str(&format!(
        r#"
[[routes]]
name = "cat"
path = "/cat/{{rid}}/"
type = "vod"
origin = "o"
formats = ["cat"]

[[routes]]
name = "mix"
path = "/mix/{{rid}}/"
type = "vod"
origin = "o"
formats = ["native", "cat"]

[[formats]]
name = "cat"
kind = "cat"

[[formats.keys]]
kid = "k1"
alg = "HS256"
key = "{KEY}"
"#
    ));
    setup
}

/// The origin: a media playlist for `.m3u8`, the target otherwise.
async fn origin() -> TestOrigin {
    TestOrigin::start_with(Arc::new(|s: &Seen| {
        let (ctype, body) = if s.target.contains(".m3u8") {
            (
                "application/vnd.apple.mpegurl",
                "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg-1.ts\n#EXTINF:4,\nseg-2.ts\n"
                    .to_string(),
            )
        } else {
            ("video/mp2t", format!("origin:{}", s.target))
        };
        Response::builder()
            .status(200)
            .header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    }))
    .await
}

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}
fn txt(s: &str) -> Value {
    Value::Text(s.into())
}
fn map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect())
}

/// A CAT: `exp` in `ttl` seconds (negative: in the past), a `cti`, and `extra` claims.
fn token(ttl: i64, extra: Vec<(i64, Value)>) -> String {
    let mut claims = vec![
        (EXP, int(now() as i64 + ttl)),
        (CTI, Value::Bytes(b"cti-1".to_vec())),
    ];
    claims.extend(extra);
    let mut payload = Vec::new();
    ciborium::ser::into_writer(&map(claims), &mut payload).expect("cbor");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret());
    let mac0 = CoseMac0Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::HMAC_256_256)
                .key_id(b"k1".to_vec())
                .build(),
        )
        .payload(payload)
        .create_tag(b"", |d| hmac::sign(&key, d).as_ref().to_vec())
        .build()
        .to_tagged_vec()
        .expect("cose");
    let inner: Value = ciborium::de::from_reader(mac0.as_slice()).expect("decode");
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Value::Tag(61, Box::new(inner)), &mut out).expect("cbor");
    URL_SAFE_NO_PAD.encode(out)
}

/// `catu` with a path prefix.
fn catu_prefix(prefix: &str) -> (i64, Value) {
    (CATU, map(vec![(3, map(vec![(1, txt(prefix))]))]))
}

/// `catr` of `kind` (0 automatic, 1 cookie, 2 header, 3 redirect), `expadd` 120 and a
/// deadline of an hour (so every test token is due).
fn catr(kind: i64) -> (i64, Value) {
    (
        CATR,
        map(vec![(0, int(kind)), (1, int(120)), (2, int(3600))]),
    )
}

#[track_caller]
fn assert_refused(got: &Got, status: u16, reason: &str, what: &str) {
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (status, reason),
        "{what}: {got:?}"
    );
}

/// What the origin received last: its target and its headers, as text.
fn last_seen(origin: &TestOrigin) -> (String, String) {
    let seen = origin.requests().pop().expect("the origin saw the request");
    (seen.target, format!("{:?}", seen.headers))
}

#[tokio::test]
async fn cat_is_accepted_in_header_query_and_cookie_and_stripped_before_the_origin() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let tok = token(600, vec![catu_prefix("/cat/a/")]);

    let got = get(addr, "/cat/a/seg-1.ts", &[(HEADER, &tok)]).await;
    assert_eq!(got.status, 200, "header: {got:?}");
    let (target, headers) = last_seen(&origin);
    assert_eq!(target, "/cat/a/seg-1.ts");
    assert!(
        !headers
            .to_ascii_lowercase()
            .contains("cta-common-access-token"),
        "{headers}"
    );
    assert!(!headers.contains(&tok), "{headers}");

    let got = get(addr, &format!("/cat/a/seg-1.ts?keep=1&CAT={tok}"), &[]).await;
    assert_eq!(got.status, 200, "query: {got:?}");
    assert_eq!(last_seen(&origin).0, "/cat/a/seg-1.ts?keep=1");

    let cookie = format!("other=1; {HEADER}={tok}");
    let got = get(addr, "/cat/a/seg-1.ts", &[("cookie", &cookie)]).await;
    assert_eq!(got.status, 200, "cookie: {got:?}");
    let (_, headers) = last_seen(&origin);
    assert!(
        headers.contains("other=1") && !headers.contains(&tok),
        "{headers}"
    );
}

#[tokio::test]
async fn cat_is_refused_expired_tampered_other_path_other_ip_other_method() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let at = "/cat/a/seg-1.ts";

    let expired = token(-3600, vec![]);
    assert_refused(
        &get(addr, at, &[(HEADER, &expired)]).await,
        403,
        "expired",
        "expired",
    );

    let good = token(600, vec![catu_prefix("/cat/a/")]);
    let mut raw = URL_SAFE_NO_PAD.decode(&good).expect("b64");
    let at_cti = raw.windows(5).position(|w| w == b"cti-1").expect("cti");
    raw[at_cti] ^= 1;
    let tampered = URL_SAFE_NO_PAD.encode(raw);
    assert_refused(
        &get(addr, at, &[(HEADER, &tampered)]).await,
        401,
        "bad_signature",
        "tampered",
    );

    // Accepted first, so the second refusal is a cache hit re-checked, not a miss.
    assert_eq!(get(addr, at, &[(HEADER, &good)]).await.status, 200);
    let other_path = get(addr, "/cat/b/seg-1.ts", &[(HEADER, &good)]).await;
    assert_refused(&other_path, 403, "scope", "catu, another path");

    let bound = token(
        600,
        vec![(
            CATNIP,
            Value::Array(vec![Value::Tag(
                52,
                Box::new(Value::Bytes(vec![127, 0, 0, 1])),
            )]),
        )],
    );
    assert_eq!(get(addr, at, &[(HEADER, &bound)]).await.status, 200);
    let other_ip: IpAddr = "127.0.0.3".parse().expect("ip");
    let got = request_from(other_ip, addr, Method::GET, at, &[(HEADER, &bound)]).await;
    assert_refused(&got, 403, "ip", "catnip, another address");

    let head_only = token(600, vec![(CATM, Value::Array(vec![txt("HEAD")]))]);
    let got = request(addr, Method::HEAD, at, &[(HEADER, &head_only)]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let got = get(addr, at, &[(HEADER, &head_only)]).await;
    assert_refused(&got, 403, "method", "catm, another method");

    let seen = origin.requests().len();
    assert_eq!(
        seen, 3,
        "only the three accepted requests reached the origin"
    );
}

#[tokio::test]
async fn a_cat_on_a_route_that_does_not_list_its_format_is_no_credential() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let tok = token(600, vec![]);
    let got = get(gate.plain(), "/vod/a/seg-1.ts", &[(HEADER, &tok)]).await;
    assert_refused(&got, 401, "missing", "header on a native route");
    let got = get(gate.plain(), &format!("/vod/a/seg-1.ts?CAT={tok}"), &[]).await;
    assert_refused(&got, 401, "missing", "query on a native route");
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn two_cats_or_a_cat_beside_a_native_token_are_a_conflict() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let (one, two) = (token(600, vec![]), token(601, vec![]));
    let got = get(addr, &format!("/cat/a/x.ts?CAT={one}"), &[(HEADER, &two)]).await;
    assert_refused(&got, 400, "conflict", "two CATs");
    let native = gate.token_for("a");
    let got = get(
        addr,
        &format!("/mix/a/x.ts?token={native}"),
        &[(HEADER, &one)],
    )
    .await;
    assert_refused(&got, 400, "conflict", "a CAT and a native token");
    // The same CAT twice is one credential.
    let got = get(addr, &format!("/cat/a/x.ts?CAT={one}"), &[(HEADER, &one)]).await;
    assert_eq!(got.status, 200, "{got:?}");
}

#[tokio::test]
async fn catif_answers_a_refusal_with_the_tokens_status_and_headers() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let catif = (
        CATIF,
        map(vec![(
            EXP,
            Value::Array(vec![
                int(302),
                Value::Map(vec![(txt("Location"), txt("https://login.example/renew"))]),
            ]),
        )]),
    );
    let tok = token(-3600, vec![catif]);
    let got = get(gate.plain(), "/cat/a/x.ts", &[(HEADER, &tok)]).await;
    assert_eq!(got.status, 302, "{got:?}");
    assert_eq!(got.headers["location"], "https://login.example/renew");
    assert_eq!(got.reason(), "expired");
    assert_eq!(origin.count(), 0);
}
