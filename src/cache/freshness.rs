//! What an origin's answer allows a shared cache to do with it, and for how long.
//!
//! The origin's headers decide first (RFC 9111): `no-store`, `private`, a `Set-Cookie`,
//! a `Vary` on anything but `Accept-Encoding` or `Origin` (neither of which a fill
//! sends), or a `Content-Encoding` the fill did not ask for make the answer
//! [`Verdict::Uncacheable`]: it belongs to one requester, so every waiter fetches for
//! itself. Otherwise the answer is shared with the requests waiting for it, and stored
//! when it is a 200 (or a 404, briefly) with a freshness lifetime left: `s-maxage`, else
//! `max-age`, else `Expires` − `Date`, less the origin's `Age`; with none of them, the
//! configured default for its kind ([`Kind`]), where a live playlist's default is half
//! of how often players reload it.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap};
use http::StatusCode;

use crate::config;
use crate::manifest::{self, Liveness};

/// What a fill may do with the origin's answer, decided from its head alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Personal or unstorable by the origin's word: waiters fetch for themselves.
    Uncacheable(&'static str),
    /// Shared with every waiter; stored if [`Lifetime`] says so once the body is whole.
    Shared(Lifetime),
}

/// How long a shared answer is fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// Not stored (a status other than 200 or 404, or nothing left of its lifetime).
    None,
    /// Fresh this long, counted from when it was received (the origin's `Age` taken off).
    Explicit(Duration),
    /// The origin said nothing: the kind's default, decided once the body is whole.
    Default,
}

/// Judge an origin's answer head.
pub fn judge(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Verdict {
    if let Some(why) = personal(headers) {
        return Verdict::Uncacheable(why);
    }
    let directives = CacheControl::parse(headers);
    if directives.no_store {
        return Verdict::Uncacheable("no_store");
    }
    if directives.private {
        return Verdict::Uncacheable("private");
    }
    if status != StatusCode::OK && status != StatusCode::NOT_FOUND {
        return Verdict::Shared(Lifetime::None);
    }
    let lifetime = match explicit_lifetime(&directives, headers, now) {
        Some(fresh) => match fresh.checked_sub(age(headers)) {
            Some(left) if !left.is_zero() => Lifetime::Explicit(left),
            _ => Lifetime::None,
        },
        None => Lifetime::Default,
    };
    Verdict::Shared(lifetime)
}

/// The reason an answer belongs to one requester, if it does.
fn personal(headers: &HeaderMap) -> Option<&'static str> {
    if headers.contains_key(header::SET_COOKIE) {
        return Some("set_cookie");
    }
    let varies = headers
        .get_all(header::VARY)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("*").split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .any(|f| !f.eq_ignore_ascii_case("accept-encoding") && !f.eq_ignore_ascii_case("origin"));
    if varies {
        return Some("vary");
    }
    let encoded = headers
        .get_all(header::CONTENT_ENCODING)
        .iter()
        .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    encoded.then_some("encoded")
}

/// The directives of `Cache-Control` a shared cache acts on.
#[derive(Debug, Default)]
struct CacheControl {
    no_store: bool,
    private: bool,
    no_cache: bool,
    max_age: Option<u64>,
    s_maxage: Option<u64>,
}

impl CacheControl {
    fn parse(headers: &HeaderMap) -> Self {
        let mut cc = CacheControl::default();
        let values = headers.get_all(header::CACHE_CONTROL);
        for d in values
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("").split(','))
        {
            let (name, value) = match d.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (d.trim(), None),
            };
            // A number that does not parse is the most cautious reading: stale now.
            let secs = || Some(value.and_then(|v| v.parse().ok()).unwrap_or(0));
            match name.to_ascii_lowercase().as_str() {
                "no-store" => cc.no_store = true,
                "private" => cc.private = true,
                "no-cache" => cc.no_cache = true,
                "max-age" => cc.max_age = secs(),
                "s-maxage" => cc.s_maxage = secs(),
                _ => {}
            }
        }
        cc
    }
}

/// The lifetime the origin stated, if it stated one.
fn explicit_lifetime(cc: &CacheControl, headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if cc.no_cache {
        // Must be revalidated before every reuse: shared with the waiters, not stored.
        return Some(Duration::ZERO);
    }
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(s));
    }
    let expires = headers.get(header::EXPIRES)?;
    // An invalid Expires (often "0") means already expired (RFC 9111 §5.3).
    let Some(expires) = http_date(Some(expires)) else {
        return Some(Duration::ZERO);
    };
    let date = http_date(headers.get(header::DATE)).unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

/// The origin's `Age`, or zero.
fn age(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::ZERO)
}

pub(super) fn http_date(v: Option<&http::HeaderValue>) -> Option<SystemTime> {
    httpdate::parse_http_date(v?.to_str().ok()?).ok()
}

/// What a stored object is, for its default freshness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Segment,
    FinishedPlaylist,
    LivePlaylist(Option<Duration>),
    NotFound,
}

impl Kind {
    /// The kind of a complete answer: by status, then by whether it is a manifest (its
    /// `Content-Type`, else the path's extension) and how live that manifest is.
    pub fn of(status: StatusCode, headers: &HeaderMap, path: &str, body: &[u8]) -> Kind {
        if status == StatusCode::NOT_FOUND {
            return Kind::NotFound;
        }
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        match manifest::Kind::detect(content_type, manifest::Kind::from_path(path)) {
            None => Kind::Segment,
            Some(m) => match manifest::liveness(m, body) {
                Liveness::Finished => Kind::FinishedPlaylist,
                Liveness::Live(reload) => Kind::LivePlaylist(reload),
            },
        }
    }

    /// The configured freshness of this kind when the origin stated none.
    pub fn default_lifetime(self, cfg: &config::Cache) -> Duration {
        match self {
            Kind::Segment => cfg.segment_ttl,
            Kind::FinishedPlaylist => cfg.vod_playlist_ttl,
            // Half the reload interval: a player never sees a copy more than half a
            // (part) target behind, and the origin sees at most two fetches per interval.
            Kind::LivePlaylist(Some(reload)) => reload / 2,
            Kind::LivePlaylist(None) => cfg.live_playlist_ttl,
            Kind::NotFound => cfg.not_found_ttl,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::headers;
    use super::*;

    fn verdict(pairs: &[(&str, &str)]) -> Verdict {
        judge(StatusCode::OK, &headers(pairs), SystemTime::UNIX_EPOCH)
    }

    #[test]
    fn personal_answers_are_uncacheable() {
        assert_eq!(
            verdict(&[("set-cookie", "a=1")]),
            Verdict::Uncacheable("set_cookie")
        );
        assert_eq!(verdict(&[("vary", "Cookie")]), Verdict::Uncacheable("vary"));
        assert_eq!(
            verdict(&[("vary", "accept-encoding, *")]),
            Verdict::Uncacheable("vary")
        );
        assert_eq!(
            verdict(&[("cache-control", "private, max-age=60")]),
            Verdict::Uncacheable("private")
        );
        assert_eq!(
            verdict(&[
                ("cache-control", "max-age=60"),
                ("cache-control", "no-store")
            ]),
            Verdict::Uncacheable("no_store")
        );
        assert_eq!(
            verdict(&[("content-encoding", "gzip")]),
            Verdict::Uncacheable("encoded")
        );
        assert_eq!(
            verdict(&[("vary", "Accept-Encoding, Origin")]),
            Verdict::Shared(Lifetime::Default)
        );
    }

    #[test]
    fn lifetime_comes_from_s_maxage_then_max_age_then_expires_less_age() {
        let secs = |s| Verdict::Shared(Lifetime::Explicit(Duration::from_secs(s)));
        assert_eq!(
            verdict(&[("cache-control", "max-age=60, s-maxage=10")]),
            secs(10)
        );
        assert_eq!(
            verdict(&[("cache-control", "max-age=60"), ("age", "15")]),
            secs(45)
        );
        assert_eq!(
            verdict(&[("cache-control", "max-age=60"), ("age", "60")]),
            Verdict::Shared(Lifetime::None)
        );
        assert_eq!(
            verdict(&[("cache-control", "no-cache")]),
            Verdict::Shared(Lifetime::None)
        );
        assert_eq!(
            verdict(&[("cache-control", "max-age=junk")]),
            Verdict::Shared(Lifetime::None)
        );
        let dated = [
            ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("expires", "Sun, 06 Nov 1994 08:50:07 GMT"),
        ];
        assert_eq!(verdict(&dated), secs(30));
        assert_eq!(
            verdict(&[("expires", "0")]),
            Verdict::Shared(Lifetime::None)
        );
        assert_eq!(verdict(&[]), Verdict::Shared(Lifetime::Default));
    }

    #[test]
    fn only_200_and_404_are_stored() {
        let h = headers(&[("cache-control", "max-age=60")]);
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            judge(StatusCode::BAD_GATEWAY, &h, now),
            Verdict::Shared(Lifetime::None)
        );
        assert_eq!(
            judge(StatusCode::PARTIAL_CONTENT, &h, now),
            Verdict::Shared(Lifetime::None)
        );
        assert!(matches!(
            judge(StatusCode::NOT_FOUND, &h, now),
            Verdict::Shared(Lifetime::Explicit(_))
        ));
    }

    #[test]
    fn default_lifetimes_follow_the_kind() {
        let cfg = crate::config::example(|t| t).cache;
        let none = HeaderMap::new();
        let kind = |path, body: &str| Kind::of(StatusCode::OK, &none, path, body.as_bytes());
        assert_eq!(kind("/l/a.ts", "").default_lifetime(&cfg), cfg.segment_ttl);
        let live = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6,\na.ts\n";
        assert_eq!(
            kind("/l/p.m3u8", live).default_lifetime(&cfg),
            Duration::from_secs(3)
        );
        let vod = format!("{live}#EXT-X-ENDLIST\n");
        assert_eq!(
            kind("/l/p.m3u8", &vod).default_lifetime(&cfg),
            cfg.vod_playlist_ttl
        );
        let nf = Kind::of(StatusCode::NOT_FOUND, &none, "/l/a.ts", b"");
        assert_eq!(nf.default_lifetime(&cfg), cfg.not_found_ttl);
    }
}
