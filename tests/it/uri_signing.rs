//! RFC 9246 URI Signing at the edge, black-box: JWTs signed here (HMAC-SHA256 over
//! hand-written JSON, so a claim can be written twice) sent to a real gate on
//! 127.0.0.1:0 whose `/us/` route lists a `uri_signing` format. Accepted on its
//! resource from the query parameter or the cookie, stripped before the recording
//! origin; refused with the right reason when expired, tampered, for another path
//! (`cdniuc`) or address (`cdniip`), on a route listing another format, and in the
//! THREATS cases (algorithm confusion, duplicated claims, overlong, unknown critical
//! claim).

use crate::common;

use std::net::IpAddr;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::Method;

use common::*;

use crate::foreign::assert_refused;

const ISS: &str = "Kabletown URI Authority";
const K: &str = "Kh_RkUMj-fzbD37qBnDf_3e_RvQ3RP9PaSmVEpE24AM";
const PACKAGE: &str = "URISigningPackage";

/// Routes: `/us/` URI Signing only, `/vod/` native only, `/ea/` EdgeAuth only.
fn setup(origin: &TestOrigin) -> Setup {
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.extra = format!(
        r#"
[[routes]]
name = "vod"
path = "/vod/{{rid}}/"
type = "vod"
origin = "o"

[[routes]]
name = "us"
path = "/us/{{rid}}/"
type = "vod"
origin = "o"
formats = ["ats"]

[[routes]]
name = "ea"
path = "/ea/{{rid}}/"
type = "vod"
origin = "o"
formats = ["akamai"]

[[formats]]
name = "ats"
kind = "uri_signing"
id = "mycdn"
renewal_kid = "First Key"

[[formats.issuers]]
name = "{ISS}"
keys = [{{ alg = "HS256", kid = "First Key", kty = "oct", k = "{K}" }}]

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

/// A compact JWS over exactly this header and payload text, HMAC-SHA256 with `K`.
fn jws(header: &str, payload: &str) -> String {
    let secret = URL_SAFE_NO_PAD.decode(K).expect("key");
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// A token for `/us/a/` expiring at `exp`, with `extra` claims.
fn token(exp: u64, extra: &str) -> String {
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"mycdn","exp":{exp},"cdniuc":"regex:https?://[^/]*/us/a/"{extra}}}"#
    );
    jws(r#"{"alg":"HS256","kid":"First Key"}"#, &payload)
}

#[tokio::test]
async fn l5_uri_signing_is_accepted_in_query_and_cookie_and_stripped_before_the_origin() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let tok = token(now() + 600, "");
    let got = get(addr, &format!("/us/a/seg.ts?keep=1&{PACKAGE}={tok}"), &[]).await;
    assert_eq!(got.status, 200, "query: {got:?}");
    let seen = origin.requests().pop().expect("seen");
    assert_eq!(
        seen.target, "/us/a/seg.ts?keep=1",
        "the package never reaches the origin"
    );
    let cookie = format!("other=1; {PACKAGE}={tok}");
    let got = get(addr, "/us/a/seg.ts", &[("cookie", &cookie)]).await;
    assert_eq!(got.status, 200, "cookie: {got:?}");
    let headers = format!("{:?}", origin.requests().pop().expect("seen").headers);
    assert!(
        headers.contains("other=1") && !headers.contains(PACKAGE) && !headers.contains(&tok),
        "{headers}"
    );
}

#[tokio::test]
async fn l6_uri_signing_is_refused_expired_tampered_for_another_path_or_address() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let at = |path: &str, tok: &str| format!("{path}?{PACKAGE}={tok}");
    let expired = token(now() - 3600, "");
    let got = get(addr, &at("/us/a/x.ts", &expired), &[]).await;
    assert_refused(&got, 403, "expired", "expired");
    let good = token(now() + 600, r#","cdniip":"127.0.0.1""#);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = token(now() + 9_999, "")
        .split('.')
        .nth(1)
        .expect("payload")
        .into();
    let tampered = parts.join(".");
    let got = get(addr, &at("/us/a/x.ts", &tampered), &[]).await;
    assert_refused(&got, 401, "bad_signature", "tampered");
    // The route's resource `b` is not under the token's cdniuc.
    let got = get(addr, &at("/us/b/x.ts", &good), &[]).await;
    assert_refused(&got, 403, "acl", "another path");
    // Accepted and cached from its address first: the hit still checks cdniip.
    assert_eq!(get(addr, &at("/us/a/x.ts", &good), &[]).await.status, 200);
    let other_ip: IpAddr = "127.0.0.3".parse().expect("ip");
    let got = request_from(other_ip, addr, Method::GET, &at("/us/a/x.ts", &good), &[]).await;
    assert_refused(&got, 403, "ip", "another address");
    assert_eq!(origin.count(), 1, "no refused request reached the origin");
}

#[tokio::test]
async fn l1_a_uri_signing_token_is_no_credential_on_a_route_listing_another_format() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let tok = token(now() + 600, "");
    for route in ["/ea/a/x.ts", "/vod/a/x.ts"] {
        let got = get(addr, &format!("{route}?{PACKAGE}={tok}"), &[]).await;
        assert_refused(&got, 401, "missing", route);
    }
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn l2_l3_l4_uri_signing_threats_at_the_edge() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let at = |tok: &str| format!("/us/a/x.ts?{PACKAGE}={tok}");
    let exp = now() + 600;
    let payload = format!(r#"{{"iss":"{ISS}","exp":{exp}}}"#);
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"First Key"}"#),
        URL_SAFE_NO_PAD.encode(&payload)
    );
    let got = get(addr, &at(&none), &[]).await;
    assert_refused(&got, 401, "malformed", "alg none");
    let hs384 = jws(r#"{"alg":"HS384","kid":"First Key"}"#, &payload);
    assert_refused(
        &get(addr, &at(&hs384), &[]).await,
        401,
        "bad_signature",
        "alg",
    );
    let twice = jws(
        r#"{"alg":"HS256","kid":"First Key"}"#,
        &format!(r#"{{"iss":"{ISS}","exp":{exp},"exp":{}}}"#, exp + 99_999),
    );
    assert_refused(
        &get(addr, &at(&twice), &[]).await,
        401,
        "malformed",
        "twice",
    );
    let crit = token(exp, r#","cdnicrit":"cdniroles","cdniroles":"x""#);
    assert_refused(&get(addr, &at(&crit), &[]).await, 401, "malformed", "crit");
    let overlong = token(exp, &format!(r#","sub":"{}""#, "x".repeat(5000)));
    assert_refused(
        &get(addr, &at(&overlong), &[]).await,
        431,
        "too_long",
        "long",
    );
    let good = token(exp, "");
    let two = format!("{}&{PACKAGE}={}", at(&good), token(exp + 1, ""));
    assert_refused(&get(addr, &two, &[]).await, 400, "conflict", "two tokens");
    assert_eq!(origin.count(), 0);
    let text =
        String::from_utf8(get(gate.admin(), "/metrics", &[]).await.body.to_vec()).expect("utf-8");
    let series = r#"tollgate_foreign_requests_total{format="ats",result="malformed"}"#;
    let count = text
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .map(str::trim);
    assert_eq!(count, Some("3"), "none, twice, crit: {text}");
}

#[tokio::test]
async fn i4_a_renewable_uri_signing_token_is_answered_with_its_renewal_cookie() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let at = now();
    let tok = token(
        at + 600,
        r#","jti":"s-9","cdniip":"127.0.0.0/8","cdniets":30,"cdnistt":1,"cdnistd":1"#,
    );
    let got = get(addr, &format!("/us/a/seg.ts?{PACKAGE}={tok}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let cookie = got
        .headers
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a renewal cookie");
    let (pair, path) = cookie.split_once("; Path=").expect("a path");
    assert_eq!(path, "/us", "cdnistd 1: the first path segment");
    let renewed = pair
        .strip_prefix(&format!("{PACKAGE}="))
        .expect("under the package name");
    // The renewal is the original's claims with exp = now + cdniets, never more.
    let payload = renewed.split('.').nth(1).expect("payload");
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json");
    let exp = claims["exp"].as_u64().expect("exp");
    assert!((at + 30..=now() + 30).contains(&exp), "{claims}");
    for kept in [
        "jti", "cdniip", "cdniuc", "aud", "cdniets", "cdnistt", "cdnistd",
    ] {
        assert!(claims.get(kept).is_some(), "{kept} kept: {claims}");
    }
    // It plays as a cookie, and it renews again; a token without cdnistt gets none.
    let got = get(addr, "/us/a/seg.ts", &[("cookie", pair)]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(got.headers.get("set-cookie").is_some());
    let plain = token(at + 600, "");
    let got = get(addr, &format!("/us/a/seg.ts?{PACKAGE}={plain}"), &[]).await;
    assert_eq!(got.status, 200);
    assert!(got.headers.get("set-cookie").is_none(), "{got:?}");
}

#[tokio::test]
async fn l7_uri_signing_in_the_path_is_accepted_stripped_and_cannot_hide_a_dot_segment() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let tok = token(now() + 600, "");
    for (target, forwarded) in [
        (
            format!("/us/a/seg.ts;{PACKAGE}={tok}?keep=1"),
            "/us/a/seg.ts?keep=1",
        ),
        (format!("/us/a;{PACKAGE}={tok}/seg.ts"), "/us/a/seg.ts"),
        (format!("/us/a/{PACKAGE}={tok}/seg.ts"), "/us/a/seg.ts"),
    ] {
        let got = get(addr, &target, &[]).await;
        assert_eq!(got.status, 200, "{target}: {got:?}");
        let seen = origin.requests().pop().expect("seen");
        assert_eq!(
            seen.target, forwarded,
            "the package never reaches the origin"
        );
    }
    // `cdniuc` is matched on the path without the package: another resource is refused.
    let got = get(addr, &format!("/us/b/seg.ts;{PACKAGE}={tok}"), &[]).await;
    assert_refused(&got, 403, "acl", "another path");
    // Removing the package must not leave a dot segment for the origin to resolve
    // (`/us/a/..;…/seg.ts` would reach it as `/us/seg.ts` under `a`'s token; the path
    // rules refuse `..;` first) or an empty one (`/us/a//seg.ts`).
    let got = get(addr, &format!("/us/a/..;{PACKAGE}={tok}/seg.ts"), &[]).await;
    assert_refused(&got, 400, "bad_path", "a dot segment behind the package");
    let got = get(addr, &format!("/us/a/;{PACKAGE}={tok}/seg.ts"), &[]).await;
    assert_refused(
        &got,
        401,
        "malformed",
        "an empty segment behind the package",
    );
    // On a route that does not list the format the parameter is the origin's.
    let got = get(addr, &format!("/vod/a/seg.ts;{PACKAGE}={tok}"), &[]).await;
    assert_refused(&got, 401, "missing", "native route");
    assert_eq!(
        origin.count(),
        3,
        "only the accepted requests reached the origin"
    );
}

#[tokio::test]
async fn l7_a_path_parameter_cannot_move_the_request_to_a_route_that_does_not_list_the_format() {
    let origin = TestOrigin::start().await;
    let mut setup = setup(&origin);
    // The longest prefix wins: `/us/x/…` is this native-only route, `/us/x;…/…` is `/us/`.
    setup.extra.push_str(
        "\n[[routes]]\nname = \"us-x\"\npath = \"/us/x/{rid}/\"\ntype = \"vod\"\norigin = \"o\"\n",
    );
    let gate = start(setup).await;
    let tok = jws(
        r#"{"alg":"HS256","kid":"First Key"}"#,
        &format!(
            r#"{{"iss":"{ISS}","aud":"mycdn","exp":{},"cdniuc":"regex:https?://[^/]*/us/"}}"#,
            now() + 600
        ),
    );
    let got = get(
        gate.plain(),
        &format!("/us/x;{PACKAGE}={tok}/a/seg.ts"),
        &[],
    )
    .await;
    assert_refused(
        &got,
        400,
        "bad_path",
        "another route once the package is removed",
    );
    // The control: the same token on its own route's path plays.
    let got = get(gate.plain(), &format!("/us/a/seg.ts;{PACKAGE}={tok}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(origin.count(), 1);
}
