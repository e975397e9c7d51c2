//! The `Cache-Control` of every answer the edge passes on (README, "Caching and live
//! fan-out": what players and CDNs may keep). Without it a browser or a CDN applies
//! heuristic freshness, and a live playlist kept that way stalls the player.
//!
//! - **Who may keep it**: an answer that needed a token is `private` (a shared cache in
//!   front would otherwise hand one viewer's answer to anyone asking for the URL); an
//!   answer on a public route or resource is `public`.
//! - **For how long**: the origin's own directives when it sent any (its freshness is
//!   what the shield cache judges too), with `public` and `s-maxage` dropped from a gated
//!   answer; otherwise segments and VOD playlists `cache.segment_ttl` /
//!   `cache.vod_playlist_ttl` (1 h), live playlists (on a live route) `cache.live_playlist_ttl`
//!   (1 s), and errors `no-cache`.
//! - Rewritten and cookie-carrying manifests (`rewrite.rs`) and refusals (`error.rs`)
//!   state their own, per viewer: `private, no-cache` and `private, no-store`.
//!
//! This module only writes that header; it never reads a body or decides access.

use http::header::{self, HeaderMap, HeaderValue};
use http::StatusCode;

use crate::config;
use crate::manifest::Kind;
use crate::resource::ResourceType;

/// The values stated when the origin named no lifetime, made once: `[public, private]`
/// for each lifetime, so the common answer costs no allocation.
pub struct Cacheability {
    segment: [HeaderValue; 2],
    vod_playlist: [HeaderValue; 2],
    live_playlist: [HeaderValue; 2],
    error: [HeaderValue; 2],
}

/// One answer, as this phase sees it.
pub struct Answer {
    /// A token was needed for it.
    pub gated: bool,
    /// The route's resource type (live routes have live playlists).
    pub resource_type: ResourceType,
    /// The manifest kind the path names, if any (else the `Content-Type` decides).
    pub path_kind: Option<Kind>,
}

impl Cacheability {
    pub fn new(cfg: &config::Config) -> Self {
        let max_age = |d: std::time::Duration| format!("max-age={}", d.as_secs());
        Cacheability {
            segment: both(&max_age(cfg.cache.segment_ttl)),
            vod_playlist: both(&max_age(cfg.cache.vod_playlist_ttl)),
            live_playlist: both(&max_age(cfg.cache.live_playlist_ttl)),
            error: both("no-cache"),
        }
    }

    /// Set the answer's `Cache-Control`.
    pub fn state(&self, status: StatusCode, headers: &mut HeaderMap, answer: &Answer) {
        let value = match (origin_directives(headers), answer.gated) {
            (None, _) => self.lifetime(status, headers, answer)[usize::from(answer.gated)].clone(),
            (Some(_), false) => return,
            (Some(origin), true) => match gated_directives(&origin) {
                Some(v) => match HeaderValue::from_str(&v) {
                    Ok(v) => v,
                    Err(_) => return,
                },
                None => self.lifetime(status, headers, answer)[1].clone(),
            },
        };
        headers.insert(header::CACHE_CONTROL, value);
    }

    /// The lifetime for an answer whose origin named none.
    fn lifetime(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        answer: &Answer,
    ) -> &[HeaderValue; 2] {
        let keeps = status.is_success() || status == StatusCode::NOT_MODIFIED;
        if !keeps {
            return &self.error;
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match Kind::detect(content_type, answer.path_kind) {
            None => &self.segment,
            Some(_) if answer.resource_type.is_live() => &self.live_playlist,
            Some(_) => &self.vod_playlist,
        }
    }
}

/// `public, {lifetime}` and `private, {lifetime}`.
fn both(lifetime: &str) -> [HeaderValue; 2] {
    let value = |scope: &str| {
        HeaderValue::from_str(&format!("{scope}, {lifetime}"))
            .unwrap_or(HeaderValue::from_static("private, no-cache"))
    };
    [value("public"), value("private")]
}

/// The origin's `Cache-Control` lines as one list; None when it sent none (or only
/// blank or non-text ones).
fn origin_directives(headers: &HeaderMap) -> Option<String> {
    let joined = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    (!joined.trim().is_empty()).then_some(joined)
}

/// The origin's directives made per viewer: `private` first, without `public`, any
/// `private`, `s-maxage` and `proxy-revalidate` (they address shared caches, which get
/// nothing). None when no directive about freshness is left.
fn gated_directives(origin: &str) -> Option<String> {
    let shared = ["public", "private", "s-maxage", "proxy-revalidate"];
    let kept: Vec<&str> = origin
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !shared.contains(&directive_name(d).as_str()))
        .collect();
    let lifetimes = ["max-age", "no-cache", "no-store"];
    let fresh = kept
        .iter()
        .any(|d| lifetimes.contains(&directive_name(d).as_str()));
    fresh.then(|| format!("private, {}", kept.join(", ")))
}

/// A directive's name, lower case (`Max-Age=5` → `max-age`).
fn directive_name(directive: &str) -> String {
    let name = directive.split('=').next().unwrap_or("");
    name.trim().to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g7_a_gated_answer_keeps_the_origins_lifetime_but_never_its_shared_directives() {
        assert_eq!(
            gated_directives("public, max-age=60, s-maxage=600").as_deref(),
            Some("private, max-age=60")
        );
        assert_eq!(
            gated_directives("no-store").as_deref(),
            Some("private, no-store")
        );
        assert_eq!(
            gated_directives("Private=\"set-cookie\", must-revalidate, max-age=5").as_deref(),
            Some("private, must-revalidate, max-age=5")
        );
        // Nothing about freshness left: the edge's own lifetime applies.
        assert_eq!(gated_directives("public, s-maxage=600"), None);
    }

    #[test]
    fn without_origin_directives_live_playlists_are_short_and_segments_long() {
        let cfg = crate::config::example(|t| t);
        let f = Cacheability::new(&cfg);
        let answer = |resource_type, path_kind| Answer {
            gated: true,
            resource_type,
            path_kind,
        };
        let state = |status, ctype: &str, a: &Answer| {
            let mut h = HeaderMap::new();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_str(ctype).expect("ascii"),
            );
            f.state(status, &mut h, a);
            h[header::CACHE_CONTROL].to_str().expect("ascii").to_owned()
        };
        let ok = StatusCode::OK;
        let hls = "application/vnd.apple.mpegurl";
        let live = answer(ResourceType::Live, Some(Kind::Hls));
        assert_eq!(state(ok, hls, &live), "private, max-age=1");
        let vod = answer(ResourceType::Vod, None);
        assert_eq!(state(ok, hls, &vod), "private, max-age=3600");
        assert_eq!(state(ok, "video/mp2t", &vod), "private, max-age=3600");
        assert_eq!(
            state(StatusCode::NOT_FOUND, "text/plain", &vod),
            "private, no-cache"
        );
        let public = Answer {
            gated: false,
            ..vod
        };
        assert_eq!(state(ok, "video/mp4", &public), "public, max-age=3600");
    }
}
