//! Foreign token formats, black-box: nginx `secure_link` links and Akamai EdgeAuth 2.0
//! tokens made here the way their issuers make them (MD5 base64url; HMAC over the
//! fields), sent to a real gate on 127.0.0.1:0 whose routes list the formats they
//! accept. Each is accepted on its resource with the credential stripped before the
//! recording origin; refused with the right reason when expired, tampered, for another
//! path or another address; refused on a route that does not list its format; and the
//! THREATS cases: missing or repeated fields, overlong values, two formats at once.

use crate::common;

use std::net::IpAddr;

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::Method;
use md5::{Digest, Md5};

use common::*;

const SECRET: &str = "s3cret-text";
const KEY: &str = "52a152a152a152a152a152a152a152a1";

/// Routes: `/vod/` native only, `/sl/` nginx secure_link only, `/ea/` native and
/// EdgeAuth (SHA-256), `/ea5/` EdgeAuth with HMAC-MD5 and escape-early.
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
name = "sl"
path = "/sl/{{rid}}/"
type = "vod"
origin = "o"
formats = ["nginx"]

[[routes]]
name = "ea"
path = "/ea/{{rid}}/"
type = "vod"
origin = "o"
formats = ["native", "akamai"]

[[routes]]
name = "ea5"
path = "/ea5/{{rid}}/"
type = "vod"
origin = "o"
formats = ["akamai_md5"]

[[formats]]
name = "nginx"
kind = "secure_link"
expression = "$secure_link_expires$uri$remote_addr {SECRET}"

[[formats]]
name = "akamai"
kind = "edgeauth"
key = "{KEY}"

[[formats]]
name = "akamai_md5"
kind = "edgeauth"
key = "{KEY}"
algorithm = "md5"
escape_early = true
token_name = "__token__"

[[resources]]
id = "a"
type = "vod"
org = "org1"
project = "p1"
"#
    );
    setup
}

/// A secure_link target for `path`, as nginx's documentation makes one.
fn link(path: &str, expires: u64, addr: &str) -> String {
    let digest = Md5::digest(format!("{expires}{path}{addr} {SECRET}").as_bytes());
    format!(
        "{path}?md5={}&expires={expires}",
        URL_SAFE_NO_PAD.encode(digest)
    )
}

/// An EdgeAuth token over `fields` (plus `extra`, what is signed but not sent), HMAC-SHA256.
fn edgeauth(fields: &str, extra: &str) -> String {
    let key: Vec<u8> = (0..KEY.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY[i..i + 2], 16).expect("hex"))
        .collect();
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        format!("{fields}{extra}").as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{fields}~hmac={hex}")
}

#[track_caller]
pub(crate) fn assert_refused(got: &Got, status: u16, reason: &str, what: &str) {
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (status, reason),
        "{what}: {got:?}"
    );
}

/// What the origin received last: the target and the Cookie and `hdnts` headers.
pub(crate) fn last_seen(origin: &TestOrigin) -> (String, String) {
    let seen = origin.requests().pop().expect("the origin saw the request");
    let headers = format!("{:?}", seen.headers);
    (seen.target, headers)
}

#[tokio::test]
async fn i5_secure_link_is_accepted_on_its_resource_and_stripped_before_the_origin() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let target = link("/sl/a/seg-1.ts", now() + 600, "127.0.0.1");
    let got = get(gate.plain(), &format!("{target}&keep=1"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let (seen, _) = last_seen(&origin);
    assert_eq!(
        seen, "/sl/a/seg-1.ts?keep=1",
        "md5 and expires never reach the origin"
    );
}

#[tokio::test]
async fn secure_link_is_refused_expired_tampered_for_another_path_or_address() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let expired = link("/sl/a/seg-1.ts", now() - 3600, "127.0.0.1");
    assert_refused(&get(addr, &expired, &[]).await, 403, "expired", "expired");
    let good = link("/sl/a/seg-1.ts", now() + 600, "127.0.0.1");
    let tampered = good.replace("expires=", "expires=1");
    assert_refused(
        &get(addr, &tampered, &[]).await,
        401,
        "bad_signature",
        "tampered",
    );
    let other_path = good.replace("seg-1", "seg-2");
    assert_refused(
        &get(addr, &other_path, &[]).await,
        401,
        "bad_signature",
        "path",
    );
    // Accepted (and cached) from its address first: the cache must not hand the
    // verdict to another address, whose value the signature binds.
    assert_eq!(get(addr, &good, &[]).await.status, 200);
    let other_ip: IpAddr = "127.0.0.3".parse().expect("ip");
    let got = request_from(other_ip, addr, Method::GET, &good, &[]).await;
    assert_refused(&got, 401, "bad_signature", "another address");
    let no_expiry = good.split("&expires").next().expect("md5 part").to_string();
    assert_refused(
        &get(addr, &no_expiry, &[]).await,
        401,
        "malformed",
        "no expires",
    );
    assert_eq!(origin.count(), 1, "no refused request reached the origin");
}

#[tokio::test]
async fn i5_edgeauth_is_accepted_in_query_cookie_and_header_and_stripped() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let token = edgeauth(
        &format!("st={}~exp={}~acl=/ea/a/*", now() - 10, now() + 600),
        "",
    );
    let got = get(addr, &format!("/ea/a/seg.ts?hdnts={token}&keep=1"), &[]).await;
    assert_eq!(got.status, 200, "query: {got:?}");
    assert_eq!(last_seen(&origin).0, "/ea/a/seg.ts?keep=1");
    let cookie = format!("other=1; hdnts={token}");
    let got = get(addr, "/ea/a/seg.ts", &[("cookie", &cookie)]).await;
    assert_eq!(got.status, 200, "cookie: {got:?}");
    let (_, headers) = last_seen(&origin);
    assert!(
        headers.contains("other=1") && !headers.contains("hmac"),
        "{headers}"
    );
    let got = get(addr, "/ea/a/seg.ts", &[("hdnts", &token)]).await;
    assert_eq!(got.status, 200, "header: {got:?}");
    let (_, headers) = last_seen(&origin);
    assert!(
        !headers.contains("hdnts") && !headers.contains("hmac"),
        "{headers}"
    );
}

#[tokio::test]
async fn edgeauth_is_refused_expired_tampered_for_another_path_or_address() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let at = |token: &str| format!("/ea/a/seg.ts?hdnts={token}");
    let expired = edgeauth(&format!("exp={}~acl=/ea/a/*", now() - 3600), "");
    assert_refused(
        &get(addr, &at(&expired), &[]).await,
        403,
        "expired",
        "expired",
    );
    let future = edgeauth(
        &format!("st={}~exp={}~acl=/ea/a/*", now() + 3600, now() + 7200),
        "",
    );
    assert_refused(
        &get(addr, &at(&future), &[]).await,
        403,
        "not_yet_valid",
        "st",
    );
    let good = edgeauth(&format!("exp={}~acl=/ea/a/*", now() + 600), "");
    let tampered = good.replace("acl=/ea/a/*", "acl=/ea/*");
    assert_refused(
        &get(addr, &at(&tampered), &[]).await,
        401,
        "bad_signature",
        "tampered",
    );
    let other = get(addr, &format!("/ea/b/seg.ts?hdnts={good}"), &[]).await;
    assert_refused(&other, 403, "acl", "another path");
    let bound = edgeauth(&format!("ip=127.0.0.1~exp={}~acl=/ea/a/*", now() + 600), "");
    let other_ip: IpAddr = "127.0.0.3".parse().expect("ip");
    let got = request_from(other_ip, addr, Method::GET, &at(&bound), &[]).await;
    assert_refused(&got, 403, "ip", "another address");
    // A URL token signs the request path; another path fails its signature.
    let url_token = edgeauth(&format!("exp={}", now() + 600), "~url=/ea/a/seg.ts");
    assert_eq!(get(addr, &at(&url_token), &[]).await.status, 200);
    let got = get(addr, &format!("/ea/a/seg2.ts?hdnts={url_token}"), &[]).await;
    assert_refused(&got, 401, "bad_signature", "url token, another path");
}

#[tokio::test]
async fn edgeauth_md5_escape_early_under_its_own_name() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let key: Vec<u8> = (0..KEY.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY[i..i + 2], 16).expect("hex"))
        .collect();
    // HMAC-MD5 by hand (RFC 2104), independent of the gate's hmac crate.
    let fields = format!(
        "ip=127.0.0.1~exp={}~acl=/ea5/a/*~id=viewer%2042",
        now() + 600
    );
    let mut ipad = [0x36u8; 64];
    let mut opad = [0x5cu8; 64];
    for (i, k) in key.iter().enumerate() {
        ipad[i] ^= k;
        opad[i] ^= k;
    }
    let inner = Md5::new()
        .chain_update(ipad)
        .chain_update(fields.as_bytes())
        .finalize();
    let mac = Md5::new().chain_update(opad).chain_update(inner).finalize();
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("{fields}~hmac={hex}");
    let got = get(gate.plain(), &format!("/ea5/a/x.ts?__token__={token}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let got = get(gate.plain(), &format!("/ea5/a/x.ts?hdnts={token}"), &[]).await;
    assert_refused(
        &got,
        401,
        "missing",
        "this route's format is named __token__",
    );
}

#[tokio::test]
async fn i1_a_format_not_listed_on_the_route_is_not_accepted_there() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let token = edgeauth(&format!("exp={}~acl=/*", now() + 600), "");
    // EdgeAuth on the secure_link route, secure_link on the native route, a native
    // token on the secure_link route: each is no credential there.
    let got = get(addr, &format!("/sl/a/x.ts?hdnts={token}"), &[]).await;
    assert_refused(&got, 401, "missing", "edgeauth on a secure_link route");
    let sl = link("/vod/a/x.ts", now() + 600, "127.0.0.1");
    assert_refused(
        &get(addr, &sl, &[]).await,
        401,
        "missing",
        "secure_link on native",
    );
    let native = gate.token_for("a");
    let got = get(addr, &format!("/sl/a/x.ts?token={native}"), &[]).await;
    assert_refused(&got, 401, "missing", "native on a route without native");
    // The native token still works where it is listed beside a format.
    let got = get(addr, &format!("/ea/a/x.ts?token={native}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn i3_foreign_threats_duplicated_missing_overlong_and_two_formats() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let at = |token: &str| format!("/ea/a/seg.ts?hdnts={token}");
    let exp = now() + 600;
    let duplicated = edgeauth(&format!("exp={exp}~exp={exp}~acl=/ea/a/*"), "");
    assert_refused(
        &get(addr, &at(&duplicated), &[]).await,
        401,
        "malformed",
        "dup",
    );
    let no_exp = edgeauth("acl=/ea/a/*", "");
    assert_refused(
        &get(addr, &at(&no_exp), &[]).await,
        401,
        "malformed",
        "no exp",
    );
    let no_hmac = format!("exp={exp}~acl=/ea/a/*");
    assert_refused(
        &get(addr, &at(&no_hmac), &[]).await,
        401,
        "malformed",
        "no hmac",
    );
    let overlong = edgeauth(
        &format!("exp={exp}~acl=/ea/a/*~data={}", "x".repeat(5000)),
        "",
    );
    assert_refused(
        &get(addr, &at(&overlong), &[]).await,
        431,
        "too_long",
        "overlong",
    );
    let good = edgeauth(&format!("exp={exp}~acl=/ea/a/*"), "");
    let other = edgeauth(&format!("exp={}~acl=/ea/a/*", exp + 1), "");
    let cookie = format!("hdnts={other}");
    let got = get(addr, &at(&good), &[("cookie", &cookie)]).await;
    assert_refused(&got, 400, "conflict", "two tokens");
    let native = gate.token_for("a");
    let got = get(addr, &format!("{}&token={native}", at(&good)), &[]).await;
    assert_refused(&got, 400, "conflict", "a native token beside");
    let sl = link("/sl/a/x.ts", exp, "127.0.0.1");
    let got = get(addr, &format!("{sl}&md5=AAAAAAAAAAAAAAAAAAAAAA"), &[]).await;
    assert_refused(&got, 400, "conflict", "two digests");
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn foreign_requests_are_counted_by_format_and_result() {
    let origin = TestOrigin::start().await;
    let gate = start(setup(&origin)).await;
    let addr = gate.plain();
    let good = link("/sl/a/seg-1.ts", now() + 600, "127.0.0.1");
    assert_eq!(get(addr, &good, &[]).await.status, 200);
    let expired = edgeauth(&format!("exp={}~acl=/ea/a/*", now() - 3600), "");
    let got = get(addr, &format!("/ea/a/x.ts?hdnts={expired}"), &[]).await;
    assert_refused(&got, 403, "expired", "expired");
    let text = String::from_utf8(get(gate.admin(), "/metrics", &[]).await.body.to_vec())
        .expect("utf-8 exposition");
    let value = |series: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .map(str::trim)
            .unwrap_or("absent")
            .to_string()
    };
    let nginx_ok = r#"tollgate_foreign_requests_total{format="nginx",result="ok"}"#;
    let akamai_expired = r#"tollgate_foreign_requests_total{format="akamai",result="expired"}"#;
    let unused = r#"tollgate_foreign_requests_total{format="akamai_md5",result="ok"}"#;
    assert_eq!(value(nginx_ok), "1", "{text}");
    assert_eq!(value(akamai_expired), "1");
    assert_eq!(
        value(unused),
        "0",
        "every format's series exists before traffic"
    );
}
