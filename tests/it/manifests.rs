//! Manifest rewriting through the edge (docs/architecture.md, "Manifests"): query tokens
//! reach every child URL, live tokens are renewed up to `sxp`, cookie mode, and the
//! fail-closed corners. Time is injected through the tokens' own `iat`/`exp`/`sxp`: a
//! token minted "100 s ago" with a 30 s lifetime is expired now, without sleeping.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::Response;
use http_body_util::Full;
use serde_json::Value;
use tollgate::resource::ResourceType;
use tollgate::token::MintRequest;

use common::*;

const MASTER: &str = "#EXTM3U\n\
#EXT-X-VERSION:6\n\
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",DEFAULT=YES,URI=\"audio/en.m3u8\"\n\
#EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"aud\"\n\
v0/index.m3u8\n\
#EXT-X-STREAM-INF:BANDWIDTH=2000000,AUDIO=\"aud\"\n\
https://other.example.net/v1/index.m3u8\n";

const MEDIA: &str = "#EXTM3U\n\
#EXT-X-TARGETDURATION:2\n\
#EXT-X-MEDIA-SEQUENCE:7\n\
#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/k1.key\"\n\
#EXTINF:2.0,\n\
seg7.ts\n\
#EXTINF:2.0,\n\
seg8.ts?_HLS_msn=8\n";

const MPD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT6S">
  <Period>
    <AdaptationSet mimeType="video/mp4">
      <SegmentTemplate media="v$RepresentationID$-$Number$.m4s" initialization="v$RepresentationID$-init.mp4" startNumber="1" duration="2"/>
      <Representation id="0" bandwidth="800000"/>
    </AdaptationSet>
  </Period>
</MPD>
"#;

fn reply(status: u16, ctype: &str, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", ctype)
        .header("etag", "\"origin-etag\"")
        .header("last-modified", "Sun, 22 Nov 2026 10:00:00 GMT")
        .header("cache-control", "public, max-age=60")
        .body(Full::new(body.into()))
        .expect("response")
}

/// An origin with a small HLS and DASH catalogue under every resource.
async fn media_origin() -> TestOrigin {
    TestOrigin::start_with(Arc::new(|s: &Seen| {
        let path = s.target.split('?').next().unwrap_or("");
        let file = path.rsplit('/').next().unwrap_or("");
        match file {
            "master.m3u8" => reply(200, "application/vnd.apple.mpegurl", MASTER),
            "index.m3u8" | "en.m3u8" => reply(200, "application/vnd.apple.mpegurl", MEDIA),
            // No extension: the content type says what it is.
            "playlist" => reply(200, "application/x-mpegURL", MEDIA),
            "manifest.mpd" => reply(200, "application/dash+xml", MPD),
            "broken.m3u8" => reply(200, "application/vnd.apple.mpegurl", "<html>oops</html>"),
            "big.m3u8" => reply(
                200,
                "application/vnd.apple.mpegurl",
                format!("#EXTM3U\n{}", "#EXTINF:2.0,\nseg.ts\n".repeat(200)),
            ),
            "gone.m3u8" => reply(404, "text/plain", "not here"),
            _ => reply(200, "video/mp2t", format!("origin:{}", s.target)),
        }
    }))
    .await
}

pub(crate) async fn gate_with(origin: &TestOrigin, manifest: &str) -> TestGate {
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.extra = format!("{STANDARD_ROUTES}\n[manifest]\n{manifest}\n");
    start(setup).await
}

/// A live-resource token: `ttl` seconds from `iat`, session until `sxp`.
pub(crate) fn live(ttl: u64, sxp: Option<u64>) -> MintRequest {
    MintRequest {
        ttl: Some(Duration::from_secs(ttl)),
        sxp,
        ..resource("la", ResourceType::Live)
    }
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

/// Every token value in a rewritten body's `token=` parameters.
fn tokens_in(body: &str) -> Vec<String> {
    body.split("token=")
        .skip(1)
        .map(|rest| {
            rest.split(['"', '&', '#', '\n', '\r', '<'])
                .next()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

/// The URI lines and `URI="..."` values of a playlist.
fn child_uris(body: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in body.lines() {
        if let Some(i) = line.find("URI=\"") {
            let rest = &line[i + 5..];
            out.push(rest[..rest.find('"').expect("closing quote")].to_string());
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            out.push(line.to_string());
        }
    }
    out
}

/// Resolve a relative reference against a base path (enough of RFC 3986 for these tests).
fn resolve(base: &str, reference: &str) -> String {
    if reference.starts_with('/') {
        return reference.to_string();
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for seg in reference.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[tokio::test]
async fn a13_query_token_reaches_every_child_and_never_the_origin() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "").await;
    let token = g.mint_with("ed", &resource("la", ResourceType::Live), now());
    let got = get(
        g.plain(),
        &format!("/live/la/master.m3u8?token={token}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    let body = std::str::from_utf8(&got.body).expect("utf-8");
    assert_eq!(
        got.headers["content-length"].to_str().expect("ascii"),
        got.body.len().to_string()
    );
    assert_eq!(got.headers["cache-control"], "private, no-cache");
    assert!(
        got.headers.get("etag").is_none(),
        "origin ETag describes other bytes"
    );
    assert!(got.headers.get("last-modified").is_none());
    assert!(
        body.contains(&format!("v0/index.m3u8?token={token}\n")),
        "{body}"
    );
    assert!(
        body.contains(&format!("URI=\"audio/en.m3u8?token={token}\"")),
        "{body}"
    );
    // A foreign host never gets the token.
    assert!(
        body.contains("\nhttps://other.example.net/v1/index.m3u8\n"),
        "{body}"
    );

    // A player follows every child on our host, with no token of its own: all 200, and
    // the media playlist's children (key, segments, LL-HLS query kept) carry it too.
    let mut fetched = 0;
    for child in child_uris(body)
        .into_iter()
        .filter(|u| !u.starts_with("http"))
    {
        let target = resolve("/live/la/master.m3u8", &child);
        let got = get(g.plain(), &target, &[]).await;
        assert_eq!(got.status, 200, "{target}: {got:?}");
        let media = std::str::from_utf8(&got.body).expect("utf-8");
        let grandchildren = child_uris(media);
        assert_eq!(grandchildren.len(), 3, "{media}");
        assert!(
            media.contains(&format!("seg8.ts?_HLS_msn=8&token={token}\n")),
            "{media}"
        );
        for gc in grandchildren {
            let t = resolve(&target, &gc);
            assert_eq!(get(g.plain(), &t, &[]).await.status, 200, "{t}");
            fetched += 1;
        }
    }
    assert_eq!(fetched, 6);
    // A13: the origin never saw the token; manifest requests went out whole and plain.
    for seen in origin.requests() {
        assert!(!seen.target.contains("token"), "{}", seen.target);
        if seen.target.ends_with(".m3u8") {
            assert_eq!(seen.headers["accept-encoding"], "identity");
        }
    }
}

#[tokio::test]
async fn manifest_requests_go_to_the_origin_without_range_or_conditionals() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "").await;
    let token = g.token_for("a");
    let got = get(
        g.plain(),
        &format!("/vod/a/index.m3u8?token={token}"),
        &[
            ("range", "bytes=0-10"),
            ("if-none-match", "\"origin-etag\""),
            ("accept-encoding", "gzip"),
        ],
    )
    .await;
    assert_eq!(got.status, 200);
    let seen = origin.requests().pop().expect("one request");
    assert!(seen.headers.get("range").is_none());
    assert!(seen.headers.get("if-none-match").is_none());
    assert_eq!(seen.headers["accept-encoding"], "identity");
    // A segment request keeps its Range (players seek with it).
    get(
        g.plain(),
        &format!("/vod/a/seg7.ts?token={token}"),
        &[("range", "bytes=0-10")],
    )
    .await;
    let seen = origin.requests().pop().expect("segment request");
    assert_eq!(seen.headers["range"], "bytes=0-10");
}

#[tokio::test]
async fn dash_mpd_templates_carry_the_query_token() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "").await;
    let token = g.token_for("a");
    let got = get(
        g.plain(),
        &format!("/vod/a/manifest.mpd?token={token}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    let body = std::str::from_utf8(&got.body).expect("utf-8");
    assert!(
        body.contains(&format!(
            "media=\"v$RepresentationID$-$Number$.m4s?token={token}\""
        )),
        "{body}"
    );
    assert!(body.contains(&format!(
        "initialization=\"v$RepresentationID$-init.mp4?token={token}\""
    )));
    assert_eq!(
        body.replace(&format!("?token={token}"), ""),
        MPD,
        "the rest of the XML is byte-identical"
    );
}

#[tokio::test]
async fn extensionless_playlist_is_recognised_by_content_type() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "").await;
    let token = g.token_for("a");
    let got = get(g.plain(), &format!("/vod/a/playlist?token={token}"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        tokens_in(std::str::from_utf8(&got.body).expect("utf-8")).len(),
        3
    );
}

#[tokio::test]
async fn unparsable_too_large_and_error_answers_pass_through_untouched() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "max_bytes = 1024").await;
    let token = g.token_for("a");
    let broken = get(g.plain(), &format!("/vod/a/broken.m3u8?token={token}"), &[]).await;
    assert_eq!(broken.status, 200);
    assert_eq!(&broken.body[..], b"<html>oops</html>");
    let big = get(g.plain(), &format!("/vod/a/big.m3u8?token={token}"), &[]).await;
    assert_eq!(big.status, 200);
    assert_eq!(
        big.body.len(),
        "#EXTM3U\n".len() + 200 * "#EXTINF:2.0,\nseg.ts\n".len()
    );
    assert!(tokens_in(std::str::from_utf8(&big.body).expect("utf-8")).is_empty());
    let gone = get(g.plain(), &format!("/vod/a/gone.m3u8?token={token}"), &[]).await;
    assert_eq!(gone.status, 404, "D7: origin errors pass through");
    assert_eq!(&gone.body[..], b"not here");
}

#[tokio::test]
async fn path_and_header_tokens_need_no_rewrite() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "").await;
    let token = g.token_for("a");
    let by_path = get(g.plain(), &format!("/t/{token}/vod/a/index.m3u8"), &[]).await;
    assert_eq!(by_path.status, 200);
    assert_eq!(&by_path.body[..], MEDIA.as_bytes());
    let bearer = format!("Bearer {token}");
    let by_header = get(
        g.plain(),
        "/vod/a/index.m3u8",
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(&by_header.body[..], MEDIA.as_bytes());
}

#[tokio::test]
async fn a_session_token_near_expiry_is_renewed_up_to_sxp() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "renew_before = \"30s\"\nrenew_ttl = \"60s\"").await;
    let t0 = now();
    // 25 s left: inside the 30 s window. Session ends in 20 min.
    let token = g.mint_with("ed", &live(30, Some(t0 + 1200)), t0 - 5);
    let got = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={token}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    let found = tokens_in(std::str::from_utf8(&got.body).expect("utf-8"));
    assert_eq!(found.len(), 3);
    let renewed = &found[0];
    assert!(
        found.iter().all(|t| t == renewed),
        "one token for every child"
    );
    assert_ne!(renewed, &token);
    let (old, new) = (claims(&token), claims(renewed));
    assert_eq!(
        new["jti"], old["jti"],
        "one revocation still ends the session"
    );
    assert_eq!(new["sxp"], old["sxp"]);
    assert_eq!(new["rid"], old["rid"]);
    let exp = new["exp"].as_u64().expect("exp");
    assert!(
        exp > old["exp"].as_u64().expect("exp") && exp <= now() + 60,
        "{new}"
    );
    // The renewed token plays a segment.
    let seg = get(g.plain(), &format!("/live/la/seg7.ts?token={renewed}"), &[]).await;
    assert_eq!(seg.status, 200);

    // Without `sxp` a token is never renewed: the children get it as it is.
    let plain = g.mint_with("ed", &live(30, None), t0 - 5);
    let got = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={plain}"),
        &[],
    )
    .await;
    assert!(tokens_in(std::str::from_utf8(&got.body).expect("utf-8"))
        .iter()
        .all(|t| *t == plain));
}

#[tokio::test]
async fn renewal_is_bounded_by_sxp() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "renew_before = \"60s\"\nrenew_ttl = \"300s\"").await;
    let t0 = now();
    let sxp = t0 + 40;
    let token = g.mint_with("ed", &live(30, Some(sxp)), t0 - 10);
    let got = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={token}"),
        &[],
    )
    .await;
    let found = tokens_in(std::str::from_utf8(&got.body).expect("utf-8"));
    assert_eq!(claims(&found[0])["exp"].as_u64(), Some(sxp));
}

#[tokio::test]
async fn an_expired_session_token_reloads_playlists_until_sxp_but_never_fetches_segments() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "renew_ttl = \"120s\"").await;
    let t0 = now();
    // Minted 100 s ago for 30 s: expired 70 s ago (beyond the 5 s leeway); session open.
    let token = g.mint_with("ed", &live(30, Some(t0 + 600)), t0 - 100);

    let seg = get(g.plain(), &format!("/live/la/seg7.ts?token={token}"), &[]).await;
    assert_eq!((seg.status.as_u16(), seg.reason()), (403, "expired"));

    let before = origin.count();
    let reload = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={token}"),
        &[],
    )
    .await;
    assert_eq!(reload.status, 200, "{reload:?}");
    assert_eq!(origin.count(), before + 1);
    let found = tokens_in(std::str::from_utf8(&reload.body).expect("utf-8"));
    assert_eq!(found.len(), 3);
    assert!(
        found.iter().all(|t| *t != token),
        "children never get the expired token"
    );
    let fresh = get(
        g.plain(),
        &format!("/live/la/seg7.ts?token={}", found[1]),
        &[],
    )
    .await;
    assert_eq!(fresh.status, 200);

    // After the session ends: the playlist too is refused, and the origin is not asked.
    let ended = g.mint_with("ed", &live(30, Some(t0 - 60)), t0 - 100);
    let before = origin.count();
    let got = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={ended}"),
        &[],
    )
    .await;
    assert_eq!((got.status.as_u16(), got.reason()), (403, "expired"));
    assert_eq!(origin.count(), before);

    // An expired token without a session is refused on playlists as well.
    let no_session = g.mint_with("ed", &live(30, None), t0 - 100);
    let got = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={no_session}"),
        &[],
    )
    .await;
    assert_eq!((got.status.as_u16(), got.reason()), (403, "expired"));
}

#[tokio::test]
async fn a_session_answer_that_is_no_manifest_is_refused() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "").await;
    let t0 = now();
    let token = g.mint_with("ed", &live(30, Some(t0 + 600)), t0 - 100);
    // The origin answers HTML for this .m3u8: the expired token gets nothing out of it.
    let got = get(
        g.plain(),
        &format!("/live/la/broken.m3u8?token={token}"),
        &[],
    )
    .await;
    assert_eq!((got.status.as_u16(), got.reason()), (403, "expired"));
    assert!(!got.body.windows(4).any(|w| w == b"oops"));
}

#[tokio::test]
async fn a_revoked_session_is_not_renewed() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "").await;
    let t0 = now();
    let token = g.mint_with("ed", &live(30, Some(t0 + 600)), t0 - 100);
    let jti = claims(&token)["jti"].as_str().expect("jti").to_string();
    g.gate.revocations.revoke_jti(&jti, None);
    let got = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={token}"),
        &[],
    )
    .await;
    assert_eq!((got.status.as_u16(), got.reason()), (403, "revoked"));
}

#[tokio::test]
async fn cookie_mode_sets_a_path_scoped_cookie_and_leaves_the_manifest_alone() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "mode = \"cookie\"").await;
    let token = g.token_for("a");
    let got = get(g.plain(), &format!("/vod/a/master.m3u8?token={token}"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(&got.body[..], MASTER.as_bytes());
    let cookie = got.headers["set-cookie"].to_str().expect("ascii");
    assert!(
        cookie.starts_with(&format!("tollgate_token={token}; Path=/vod/a/; Max-Age=")),
        "{cookie}"
    );
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    // The player's next request carries the cookie and no query: it plays.
    let jar = format!("tollgate_token={token}");
    let seg = get(g.plain(), "/vod/a/v0/seg7.ts", &[("cookie", &jar)]).await;
    assert_eq!(seg.status, 200);
    assert!(origin.requests().iter().all(|s| !s
        .headers
        .get("cookie")
        .is_some_and(|c| c.to_str().unwrap_or("").contains("tollgate_token"))));
}

#[tokio::test]
async fn cookie_mode_over_tls_is_secure_and_renews_the_cookie() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "mode = \"cookie\"").await;
    let t0 = now();
    let token = g.mint_with("ed", &live(30, Some(t0 + 600)), t0 - 100);
    let got = get_h2_tls(&g, &format!("/live/la/index.m3u8?token={token}")).await;
    assert_eq!(got.status, 200, "{got:?}");
    let cookie = got.headers["set-cookie"].to_str().expect("ascii");
    assert!(
        cookie.contains("; Path=/live/la/;") && cookie.contains("Secure; SameSite=None"),
        "{cookie}"
    );
    let value = cookie
        .strip_prefix("tollgate_token=")
        .and_then(|c| c.split(';').next())
        .expect("cookie value");
    assert_ne!(
        value, token,
        "an expired session token is renewed in the cookie"
    );
    assert!(claims(value)["exp"].as_u64().expect("exp") > now());
}

#[tokio::test]
async fn head_of_a_manifest_never_states_the_origins_stale_length() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "").await;
    let token = g.token_for("a");
    let got = request(
        g.plain(),
        http::Method::HEAD,
        &format!("/vod/a/index.m3u8?token={token}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(got
        .headers
        .get("content-length")
        .is_none_or(|v| v != MEDIA.len().to_string().as_str()));
    assert_eq!(got.headers["cache-control"], "private, no-cache");
}

#[tokio::test]
async fn rewriting_can_be_turned_off() {
    let origin = media_origin().await;
    let g = gate_with(&origin, "rewrite = false").await;
    let token = g.token_for("a");
    let got = get(g.plain(), &format!("/vod/a/index.m3u8?token={token}"), &[]).await;
    assert_eq!(&got.body[..], MEDIA.as_bytes());
    let t0 = now();
    let expired = g.mint_with("ed", &live(30, Some(t0 + 600)), t0 - 100);
    let got = get(
        g.plain(),
        &format!("/live/la/index.m3u8?token={expired}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 403, "no rewriting, no renewal, no session");
}
