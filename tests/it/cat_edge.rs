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
// The foreign formats' own: a refusal's status and reason, what the origin saw last.
use crate::foreign::{assert_refused, last_seen};

/// The HS256 secret of kid `k1`, hex (32 bytes).
pub(crate) const KEY: &str = "6b31c0ffee6b31c0ffee6b31c0ffee6b31c0ffee6b31c0ffee6b31c0ffee6b31";
const HEADER: &str = "CTA-Common-Access-Token";

const EXP: i64 = 4;
const IAT: i64 = 6;
const CTI: i64 = 7;
const CATREPLAY: i64 = 308;
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

/// The origin: a media playlist for `.m3u8` (text for `broken.m3u8`, a 404 for
/// `gone.m3u8`, a 206 for `partial.m3u8`), the target otherwise.
async fn origin() -> TestOrigin {
    TestOrigin::start_with(Arc::new(|s: &Seen| {
        let status = match &s.target {
            t if t.contains("gone.m3u8") => 404,
            t if t.contains("partial.m3u8") => 206,
            _ => 200,
        };
        let (ctype, body) = if s.target.contains("broken.m3u8") {
            ("text/plain", "not a playlist".to_string())
        } else if s.target.contains(".m3u8") {
            (
                "application/vnd.apple.mpegurl",
                "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nseg-1.ts\n#EXTINF:4,\nseg-2.ts\n"
                    .to_string(),
            )
        } else {
            ("video/mp2t", format!("origin:{}", s.target))
        };
        Response::builder()
            .status(status)
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
pub(crate) fn token(ttl: i64, extra: Vec<(i64, Value)>) -> String {
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

/// The claims map of a CAT's text, verified with `k1`, without `exp` and `iat`; and its
/// `exp` and `iat`.
fn claims_of(text: &str) -> (Vec<(Value, Value)>, Option<u64>, Option<u64>) {
    let mut keys = CatKeys::new();
    keys.insert(b"k1".to_vec(), CatKey::hs256(&secret()));
    let policy = CatPolicy::default();
    let bytes = cat::decode_text(text).expect("base64url");
    let verified = cat::verify(&bytes, &keys, &policy).expect("verifies with k1");
    let value: Value = ciborium::de::from_reader(verified.payload.as_slice()).expect("cbor");
    let Value::Map(entries) = value else {
        panic!("claims are a map")
    };
    let rest = entries
        .into_iter()
        .filter(|(k, _)| *k != int(EXP) && *k != int(IAT))
        .collect();
    (rest, verified.claims.exp, verified.claims.iat)
}

/// The renewed token in a response header value (`token; params`).
fn header_token(got: &Got) -> String {
    let value = got.headers[HEADER].to_str().expect("text");
    value.split(';').next().expect("token").trim().to_string()
}

#[tokio::test]
async fn catr_header_renewal_sets_the_header_and_exposes_it() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let tok = token(30, vec![catr(2), catu_prefix("/cat/a/")]);
    let got = get(gate.plain(), "/cat/a/seg-1.ts", &[(HEADER, &tok)]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let renewed = header_token(&got);
    assert_ne!(renewed, tok);
    let expose = format!("{:?}", got.headers.get_all("access-control-expose-headers"));
    assert!(expose.contains(HEADER), "{expose}");
    let (_, exp, iat) = claims_of(&renewed);
    let (n, exp) = (now(), exp.expect("exp"));
    assert!(
        exp >= n + 118 && exp <= n + 122,
        "exp = now + expadd: {exp} vs {n}"
    );
    assert!(iat.is_some_and(|iat| iat + 2 >= n && iat <= n + 2));
    // The renewal opens what the original did.
    let again = get(gate.plain(), "/cat/a/seg-2.ts", &[(HEADER, &renewed)]).await;
    assert_eq!(again.status, 200, "{again:?}");
}

#[tokio::test]
async fn catr_automatic_renews_through_the_carrier_the_token_came_in() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let tok = token(30, vec![catr(0)]);
    let got = get(gate.plain(), "/cat/a/seg-1.ts", &[(HEADER, &tok)]).await;
    assert!(got.headers.contains_key(HEADER), "header → header: {got:?}");
    let cookie = format!("{HEADER}={tok}");
    let got = get(gate.plain(), "/cat/a/seg-1.ts", &[("cookie", &cookie)]).await;
    let set = got.headers["set-cookie"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        set.starts_with(&format!("{HEADER}=")),
        "cookie → cookie: {set}"
    );
    assert!(!got.headers.contains_key(HEADER));
}

#[tokio::test]
async fn catr_cookie_renewal_sets_the_cookie_with_its_params() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let catr = (
        CATR,
        map(vec![
            (0, int(1)),
            (1, int(120)),
            (2, int(3600)),
            (3, txt("cat-renewed")),
            (5, Value::Array(vec![txt("Path=/cat/"), txt("Secure")])),
        ]),
    );
    let tok = token(30, vec![catr]);
    let got = get(gate.plain(), "/cat/a/seg-1.ts", &[(HEADER, &tok)]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let set = got.headers["set-cookie"].to_str().expect("text");
    let (pair, params) = set.split_once("; ").expect("params");
    let renewed = pair.strip_prefix("cat-renewed=").expect("cookie-name");
    assert_eq!(params, "Path=/cat/; Secure");
    assert_eq!(claims_of(renewed).0, claims_of(&tok).0);
}

#[tokio::test]
async fn catr_redirect_renewal_answers_with_the_renewed_url_without_the_origin() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let tok = token(30, vec![catr(3)]);
    let got = get(
        gate.plain(),
        &format!("/cat/a/seg-1.ts?keep=1&CAT={tok}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 302, "{got:?}");
    let location = got.headers["location"].to_str().expect("text");
    let renewed = location
        .strip_prefix("/cat/a/seg-1.ts?keep=1&CAT=")
        .expect("same URL, the token replaced");
    assert_ne!(renewed, tok);
    assert_eq!(claims_of(renewed).0, claims_of(&tok).0);
    assert_eq!(
        origin.count(),
        0,
        "a redirect renewal does not ask the origin"
    );
    let followed = get(gate.plain(), location, &[]).await;
    assert_eq!(followed.status, 200, "{followed:?}");
}

#[tokio::test]
async fn catr_automatic_from_the_query_rewrites_the_playlist_with_the_renewed_token() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let tok = token(30, vec![catr(0), catu_prefix("/cat/a/")]);
    let got = get(gate.plain(), &format!("/cat/a/index.m3u8?CAT={tok}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let body = String::from_utf8(got.body.to_vec()).expect("utf-8");
    let children: Vec<&str> = body.lines().filter(|l| l.starts_with("seg-")).collect();
    assert_eq!(children.len(), 2, "{body}");
    let renewed = children[0]
        .strip_prefix("seg-1.ts?CAT=")
        .expect("child carries the token");
    assert_ne!(renewed, tok, "a due token's children get the renewal");
    assert_eq!(claims_of(renewed).0, claims_of(&tok).0);
    assert_eq!(last_seen(&origin).0, "/cat/a/index.m3u8");
    // Not due: the children carry the request's own token.
    let fresh = token(7200, vec![catr(0)]);
    let got = get(gate.plain(), &format!("/cat/a/index.m3u8?CAT={fresh}"), &[]).await;
    let body = String::from_utf8(got.body.to_vec()).expect("utf-8");
    assert!(body.contains(&format!("seg-1.ts?CAT={fresh}")), "{body}");
}

#[tokio::test]
async fn catr_is_not_renewed_before_its_deadline() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    // Due within 60 s of exp without a deadline: 600 s left is not due, though the
    // renewal (an hour) would outlast the token.
    let catr = (CATR, map(vec![(0, int(2)), (1, int(3600))]));
    let tok = token(600, vec![catr.clone()]);
    let got = get(gate.plain(), "/cat/a/seg-1.ts", &[(HEADER, &tok)]).await;
    assert_eq!(got.status, 200);
    assert!(!got.headers.contains_key(HEADER), "{got:?}");
    // In its last minute it is.
    let tok = token(30, vec![catr]);
    let got = get(gate.plain(), "/cat/a/seg-1.ts", &[(HEADER, &tok)]).await;
    assert!(got.headers.contains_key(HEADER), "{got:?}");
}

#[tokio::test]
async fn i4_a_renewal_keeps_every_claim_of_the_presented_token_but_exp_and_iat() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let tok = token(
        30,
        vec![
            catr(2),
            catu_prefix("/cat/a/"),
            (CATM, Value::Array(vec![txt("GET")])),
            (IAT, int(now() as i64 - 500)),
            // An unknown claim travels unchanged too.
            (9999, txt("issuer-private")),
        ],
    );
    let got = get(gate.plain(), "/cat/a/seg-1.ts", &[(HEADER, &tok)]).await;
    let renewed = header_token(&got);
    let (before, exp0, _) = claims_of(&tok);
    let (after, exp1, _) = claims_of(&renewed);
    assert_eq!(after, before, "only exp and iat change");
    assert!(exp1 > exp0);
    // Still confined to its path: a renewal opens nothing the original did not.
    let other = get(gate.plain(), "/cat/b/seg-1.ts", &[(HEADER, &renewed)]).await;
    assert_refused(&other, 403, "scope", "renewal for another path");
}

#[tokio::test]
async fn i4_a_refused_token_is_never_renewed() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let expired = token(-3600, vec![catr(2)]);
    let got = get(addr, "/cat/a/seg-1.ts", &[(HEADER, &expired)]).await;
    assert_refused(&got, 403, "expired", "expired");
    assert!(!got.headers.contains_key(HEADER), "{got:?}");
    let elsewhere = token(30, vec![catr(2), catu_prefix("/cat/a/")]);
    let got = get(addr, "/cat/b/seg-1.ts", &[(HEADER, &elsewhere)]).await;
    assert_refused(&got, 403, "scope", "another path");
    assert!(!got.headers.contains_key(HEADER), "{got:?}");
    let redirect = token(30, vec![catr(3), catu_prefix("/cat/a/")]);
    let got = get(addr, &format!("/cat/b/seg-1.ts?CAT={redirect}"), &[]).await;
    assert_refused(&got, 403, "scope", "redirect mode, another path");
    assert!(!got.headers.contains_key("location"));
    let mut raw = URL_SAFE_NO_PAD
        .decode(token(30, vec![catr(2)]))
        .expect("b64");
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let tampered = URL_SAFE_NO_PAD.encode(raw);
    let got = get(addr, "/cat/a/seg-1.ts", &[(HEADER, &tampered)]).await;
    assert_refused(&got, 401, "bad_signature", "tampered");
    assert!(!got.headers.contains_key(HEADER), "{got:?}");
}

#[tokio::test]
async fn catif_mints_the_token_a_header_asks_for_with_the_formats_key() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let claims = map(vec![
        (EXP, int(now() as i64 + 60)),
        (CTI, Value::Bytes(b"login".to_vec())),
    ]);
    let catif = (
        CATIF,
        map(vec![(
            EXP,
            Value::Array(vec![
                int(307),
                Value::Map(vec![(
                    txt("Location"),
                    Value::Array(vec![txt("https://login.example/?CAT="), claims]),
                )]),
                Value::Bytes(b"k1".to_vec()),
            ]),
        )]),
    );
    let tok = token(-3600, vec![catif]);
    let got = get(gate.plain(), "/cat/a/x.ts", &[(HEADER, &tok)]).await;
    assert_eq!((got.status.as_u16(), got.reason()), (307, "expired"));
    let location = got.headers["location"].to_str().expect("text");
    let minted = location
        .strip_prefix("https://login.example/?CAT=")
        .expect("the prefix, then the token");
    let (rest, _, _) = claims_of(minted);
    assert!(
        rest.contains(&(int(CTI), Value::Bytes(b"login".to_vec()))),
        "{rest:?}"
    );
}

/// [`setup`] with the live-session allowance (an hour past `exp`) and `/cat/` serving
/// a live type; `/mix/` stays VOD.
fn setup_live(origin: &TestOrigin) -> Setup {
    let mut setup = setup(origin);
    setup.extra = setup
        .extra
        .replace(
            "kind = \"cat\"\n",
            "kind = \"cat\"\nlive_session = \"1h\"\n",
        )
        .replace(
            "path = \"/cat/{rid}/\"\ntype = \"vod\"",
            "path = \"/cat/{rid}/\"\ntype = \"live\"",
        );
    assert!(setup.extra.contains("live_session"), "{}", setup.extra);
    assert!(setup.extra.contains("type = \"live\""), "{}", setup.extra);
    setup
}

/// The child URIs' token of a rewritten playlist.
fn child_token(got: &Got) -> String {
    let body = String::from_utf8(got.body.to_vec()).expect("utf-8");
    let line = body
        .lines()
        .find(|l| l.starts_with("seg-1.ts"))
        .unwrap_or_else(|| panic!("no child in {body}"));
    line.strip_prefix("seg-1.ts?CAT=")
        .unwrap_or_else(|| panic!("the child carries no token: {line}"))
        .to_string()
}

#[tokio::test]
async fn j12_an_expired_renewable_cat_from_the_query_reloads_a_live_playlist_within_live_session() {
    let origin = origin().await;
    let gate = start(setup_live(&origin)).await;
    let addr = gate.plain();
    // Ten minutes expired, automatic renewal: the URL a live player is stuck with.
    let stuck = token(-600, vec![catr(0), catu_prefix("/cat/a/")]);
    let got = get(addr, &format!("/cat/a/index.m3u8?CAT={stuck}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let renewed = child_token(&got);
    assert_ne!(renewed, stuck);
    let (claims, exp, _) = claims_of(&renewed);
    assert_eq!(
        claims,
        claims_of(&stuck).0,
        "the same claims but exp and iat"
    );
    assert!(exp.expect("exp") > now(), "the children's token is valid");
    // The children's token plays the segment; the stuck one does not.
    let seg = get(addr, &format!("/cat/a/seg-1.ts?CAT={renewed}"), &[]).await;
    assert_eq!(seg.status, 200, "{seg:?}");
    assert_refused(
        &get(addr, &format!("/cat/a/seg-1.ts?CAT={stuck}"), &[]).await,
        403,
        "expired",
        "a segment never gets the allowance",
    );
    // Other claims are checked as always.
    assert_refused(
        &get(addr, &format!("/cat/b/index.m3u8?CAT={stuck}"), &[]).await,
        403,
        "scope",
        "another path",
    );
    // An origin error passes; an answer that is not a renewed playlist does not.
    let gone = get(addr, &format!("/cat/a/gone.m3u8?CAT={stuck}"), &[]).await;
    assert_eq!(gone.status, 404, "{gone:?}");
    for (what, name) in [
        ("a 200 that is no playlist", "broken"),
        ("a 206", "partial"),
    ] {
        let got = get(addr, &format!("/cat/a/{name}.m3u8?CAT={stuck}"), &[]).await;
        assert_refused(&got, 403, "expired", what);
    }
    // A HEAD is answered as the GET would be: the renewed playlist's length.
    let target = format!("/cat/a/index.m3u8?CAT={stuck}");
    let head = request(addr, Method::HEAD, &target, &[]).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty());
    let length: usize = head.headers["content-length"]
        .to_str()
        .expect("text")
        .parse()
        .expect("number");
    assert_eq!(length, got.body.len(), "HEAD {head:?}");
}

#[tokio::test]
async fn j12_the_live_session_allowance_needs_every_condition() {
    let origin = origin().await;
    let live = start(setup_live(&origin)).await;
    let plain = start(setup(&origin)).await;
    let playlist = "/cat/a/index.m3u8";
    let refused = |got: Got, what: &str| assert_refused(&got, 403, "expired", what);
    let stuck = token(-600, vec![catr(0)]);
    refused(
        get(plain.plain(), &format!("{playlist}?CAT={stuck}"), &[]).await,
        "a format without live_session",
    );
    refused(
        get(live.plain(), playlist, &[(HEADER, &stuck)]).await,
        "a token in the header (its renewal is the header's)",
    );
    let before = origin.count();
    let target = format!("{playlist}?CAT={stuck}");
    refused(
        request(live.plain(), Method::POST, &target, &[]).await,
        "a POST (the origin would act on it)",
    );
    assert_eq!(origin.count(), before, "the POST never reached the origin");
    refused(
        get(live.plain(), &format!("/mix/a/index.m3u8?CAT={stuck}"), &[]).await,
        "a VOD route (its players do not reload playlists)",
    );
    // The token's own answer to expiry (`catif` on `exp`) wins over the allowance.
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
    let answered = token(-600, vec![catr(0), catif]);
    let got = get(live.plain(), &format!("{playlist}?CAT={answered}"), &[]).await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (302, "expired"),
        "{got:?}"
    );
    for (what, tok) in [
        ("no catr", token(-600, vec![])),
        ("catr by header", token(-600, vec![catr(2)])),
        ("past live_session", token(-7200, vec![catr(0)])),
        (
            "single use",
            token(-600, vec![catr(0), (CATREPLAY, int(1))]),
        ),
    ] {
        refused(
            get(live.plain(), &format!("{playlist}?CAT={tok}"), &[]).await,
            what,
        );
    }
    // The control: the same shape inside its allowance passes.
    let got = get(live.plain(), &format!("{playlist}?CAT={stuck}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
}

#[tokio::test]
async fn a_head_of_a_playlist_with_a_query_cat_states_the_rewritten_length() {
    let origin = origin().await;
    let gate = start(setup(&origin)).await;
    let tok = token(7200, vec![catr(0)]);
    let target = format!("/cat/a/index.m3u8?CAT={tok}");
    let got = get(gate.plain(), &target, &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let head = request(gate.plain(), Method::HEAD, &target, &[]).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty());
    assert_eq!(
        head.headers
            .get("content-length")
            .map(|v| v.to_str().unwrap_or("")),
        Some(got.body.len().to_string().as_str()),
        "the HEAD states the rewritten playlist's length, not the origin's"
    );
    assert!(got.body.len() > 70, "the children carry the token: {got:?}");
}
