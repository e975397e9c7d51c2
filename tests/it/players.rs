//! What browser players trip over at the edge (README "Browser players"): the cookie a
//! cross-site page keeps (`Partitioned`), a page that appends its own token beside a
//! renewed one, the cacheability every answer states, and `HEAD` on a rewritten
//! manifest. Time is injected through the tokens' own `iat`/`exp`/`sxp`.

use crate::common;
use crate::manifests::{gate_with as gate, live};

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response};
use http_body_util::Full;
use tollgate::resource::ResourceType;
use tollgate::token::issue::{sign, verified_claims};
use tollgate::token::keys::{SigningKey, VerifyKey};
use tollgate::token::KeySet;

use common::*;

const MEDIA: &str = "#EXTM3U\n\
#EXT-X-TARGETDURATION:2\n\
#EXT-X-MEDIA-SEQUENCE:7\n\
#EXTINF:2.0,\n\
seg7.ts\n\
#EXTINF:2.0,\n\
seg8.ts\n";

/// An origin that sends no `Cache-Control` (as many packagers and `file://` do), except
/// under `/vod/b/`, where it sends its own.
async fn origin() -> TestOrigin {
    TestOrigin::start_with(Arc::new(|s: &Seen| {
        let path = s.target.split('?').next().unwrap_or("");
        let mut b = Response::builder().status(200);
        if path.starts_with("/vod/b/") {
            b = b.header("cache-control", "public, max-age=60, s-maxage=600");
        }
        let (ctype, body) = if path.ends_with(".m3u8") {
            ("application/vnd.apple.mpegurl", MEDIA.to_string())
        } else if path.ends_with("gone.ts") {
            b = b.status(404);
            ("text/plain", "not here".to_string())
        } else {
            ("video/mp2t", format!("origin:{}", s.target))
        };
        b.header("content-type", ctype)
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    }))
    .await
}

/// The first `token=` value of a rewritten playlist.
fn child_token(body: &Bytes) -> String {
    let body = std::str::from_utf8(body).expect("utf-8");
    let rest = body.split("token=").nth(1).expect("a rewritten child");
    rest.split(['&', '\n']).next().unwrap_or("").to_string()
}

/// `token` with its claims changed by `edit`, signed again with the gate's key `ed`.
fn resigned(g: &TestGate, token: &str, edit: impl FnOnce(&mut tollgate::token::Claims)) -> String {
    let mut claims = verified_claims(token).expect("claims");
    edit(&mut claims);
    let (_, alg, material) = g
        .keys
        .signing
        .iter()
        .find(|(k, _, _)| k == "ed")
        .expect("ed");
    let key = SigningKey::from_material("ed", *alg, material).expect("key");
    sign(
        &KeySet::from_keys(Vec::<VerifyKey>::new(), Some(key)),
        &claims,
    )
    .expect("sign")
}

/// A request target, its extra headers, and the `Cache-Control` its answer must carry.
type Case<'a> = (String, Vec<(&'a str, &'a str)>, &'a str);

fn cache_control(got: &Got) -> &str {
    got.headers
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn cookie_over_tls_is_partitioned_so_a_cross_site_player_keeps_it() {
    let origin = origin().await;
    let g = gate(&origin, "mode = \"cookie\"").await;
    let token = g.token_for("a");
    let got = get_h2_tls(&g, &format!("/vod/a/index.m3u8?token={token}")).await;
    assert_eq!(got.status, 200, "{got:?}");
    let cookie = got.headers["set-cookie"].to_str().expect("ascii");
    assert!(
        cookie.ends_with("; HttpOnly; Secure; SameSite=None; Partitioned"),
        "{cookie}"
    );
    // Partitioned needs Secure: a plain-HTTP cookie carries neither.
    let got = get(g.plain(), &format!("/vod/a/index.m3u8?token={token}"), &[]).await;
    let cookie = got.headers["set-cookie"].to_str().expect("ascii");
    assert!(!cookie.contains("Partitioned"), "{cookie}");
}

#[tokio::test]
async fn a20_a_page_appended_original_token_beside_its_renewed_copy_plays_the_fresher() {
    let origin = origin().await;
    let g = gate(&origin, "renew_before = \"30s\"\nrenew_ttl = \"60s\"").await;
    let t0 = now();
    // The page's token: minted 100 s ago for 30 s, so expired; its session is open.
    let original = g.mint_with("ed", &live(30, Some(t0 + 600)), t0 - 100);
    let got = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={original}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    let renewed = child_token(&got.body);
    assert_ne!(renewed, original);
    // The player asks for the child it was given; the page appends its own token.
    for target in [
        format!("/live/la/seg7.ts?token={renewed}&token={original}"),
        format!("/live/la/seg7.ts?token={original}&token={renewed}"),
        format!("/t/{original}/live/la/seg7.ts?token={renewed}"),
    ] {
        let seg = get(g.plain(), &target, &[]).await;
        assert_eq!(seg.status, 200, "{}: {seg:?}", seg.reason());
    }
    let bearer = format!("Bearer {original}");
    let seg = get(
        g.plain(),
        &format!("/live/la/seg7.ts?token={renewed}"),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(seg.status, 200, "{seg:?}");
    // A playlist reload with both is answered with the fresher one's renewal.
    let reload = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={renewed}&token={original}"),
        &[],
    )
    .await;
    assert_eq!(reload.status, 200, "{reload:?}");
    assert_ne!(child_token(&reload.body), original);
    assert!(origin
        .requests()
        .iter()
        .all(|s| !s.target.contains("token")));
}

#[tokio::test]
async fn a20_two_tokens_of_different_sessions_or_unverified_stay_a_conflict() {
    let origin = origin().await;
    let g = gate(&origin, "").await;
    let t0 = now();
    let one = g.mint_with("ed", &live(300, Some(t0 + 600)), t0);
    let other = g.mint_with("ed", &live(300, Some(t0 + 600)), t0);
    let conflict = |got: &Got| (got.status.as_u16(), got.reason().to_string());
    let want = (400, "conflict".to_string());
    let got = get(
        g.plain(),
        &format!("/live/la/seg7.ts?token={one}&token={other}"),
        &[],
    )
    .await;
    assert_eq!(conflict(&got), want, "two sessions");
    // Same jti, but the fresher copy is for another resource: not this path's session.
    let elsewhere = resigned(&g, &one, |c| {
        c.rid = Some("a".into());
        c.rty = Some(ResourceType::Vod);
        c.exp = Some(t0 + 900);
    });
    let got = get(
        g.plain(),
        &format!("/live/la/seg7.ts?token={one}&token={elsewhere}"),
        &[],
    )
    .await;
    assert_eq!(conflict(&got), want, "out of scope");
    // Same jti, fresher, but its signature does not verify.
    let fresher = resigned(&g, &one, |c| c.exp = Some(t0 + 900));
    let (head, _) = fresher.rsplit_once('.').expect("jws");
    let forged = format!("{head}.AAAA");
    let got = get(
        g.plain(),
        &format!("/live/la/seg7.ts?token={one}&token={forged}"),
        &[],
    )
    .await;
    assert_eq!(conflict(&got), want, "bad signature");
    // Same jti, fresher, revoked session: refused as revoked, never served.
    let jti = verified_claims(&one).expect("claims").jti.expect("jti");
    g.gate.revocations.revoke_jti(&jti, None);
    let got = get(
        g.plain(),
        &format!("/live/la/seg7.ts?token={one}&token={fresher}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 400, "{got:?}");
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn g7_every_answer_states_its_cacheability() {
    let origin = origin().await;
    let g = gate(&origin, "").await;
    let vod = g.token_for("a");
    let vod_b = g.token_for("b");
    let t0 = now();
    let live_token = g.mint_with("ed", &live(300, Some(t0 + 600)), t0);
    let bearer = format!("Bearer {vod}");
    let cases: Vec<Case<'_>> = vec![
        // Path-mode manifests and segments: per viewer, VOD long, live short.
        (
            format!("/t/{vod}/vod/a/index.m3u8"),
            vec![],
            "private, max-age=3600",
        ),
        (
            format!("/t/{vod}/vod/a/seg7.ts"),
            vec![],
            "private, max-age=3600",
        ),
        (
            format!("/t/{live_token}/live/la/index.m3u8"),
            vec![],
            "private, max-age=1",
        ),
        (
            format!("/t/{live_token}/live/la/seg7.ts"),
            vec![],
            "private, max-age=3600",
        ),
        // Header mode: the same.
        (
            "/vod/a/index.m3u8".into(),
            vec![("authorization", &bearer)],
            "private, max-age=3600",
        ),
        // Query-token segments.
        (
            format!("/vod/a/seg7.ts?token={vod}"),
            vec![],
            "private, max-age=3600",
        ),
        // A rewritten manifest carries a token: revalidate every time.
        (
            format!("/vod/a/index.m3u8?token={vod}"),
            vec![],
            "private, no-cache",
        ),
        // The origin's own lifetime is kept; a shared cache never gets a gated answer.
        (
            format!("/t/{vod_b}/vod/b/seg7.ts"),
            vec![],
            "private, max-age=60",
        ),
        // An origin error is not kept.
        (
            format!("/t/{vod}/vod/a/gone.ts"),
            vec![],
            "private, no-cache",
        ),
        // A public route needs no token: any cache may keep it.
        ("/public/seg7.ts".into(), vec![], "public, max-age=3600"),
    ];
    for (target, headers, want) in cases {
        let got = get(g.plain(), &target, &headers).await;
        assert!(got.status == 200 || got.status == 404, "{got:?}");
        assert_eq!(
            cache_control(&got),
            want,
            "{}",
            &target[..target.len().min(40)]
        );
    }
}

#[tokio::test]
async fn head_of_a_query_mode_manifest_has_the_length_of_its_get() {
    let origin = origin().await;
    let g = gate(&origin, "").await;
    let token = g.token_for("a");
    let target = format!("/vod/a/index.m3u8?token={token}");
    let got = get(g.plain(), &target, &[]).await;
    let head = request(g.plain(), Method::HEAD, &target, &[]).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty());
    assert_eq!(
        head.headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(got.body.len().to_string().as_str())
    );
    assert_eq!(cache_control(&head), "private, no-cache");
}
