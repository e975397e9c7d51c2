//! Manifest rewriting (docs/architecture.md, "Manifests"): pure functions over bytes,
//! no I/O.
//!
//! Players resolve relative URLs by RFC 3986, which drops the query: a master playlist
//! fetched as `master.m3u8?token=T` is followed by variant and segment requests without
//! `T`. The edge therefore rewrites every child URL of an HLS playlist ([`hls`]) or a
//! DASH MPD ([`dash`]) so that it carries the token as a query parameter.
//!
//! One rule decides which URL gets the token ([`Rewrite::uri`]):
//! - a relative reference (`seg1.ts`, `../a/b.m4s`, `/vod/x/y.ts`) always does: it
//!   resolves against the manifest's own URL, which is ours;
//! - an absolute `http(s)://` URL or a network-path reference (`//host/...`) only when
//!   its host is in the configured allow-list (`manifest.allow_hosts`);
//! - any other scheme (`skd://`, `data:`, `urn:`, ...) never.
//!
//! Existing query parameters (LL-HLS `_HLS_msn`, `_HLS_part`, `_HLS_skip`, anything the
//! origin put there) and the fragment are kept, in order. A parameter an origin or the
//! edge could read as the token (`token=`, `Token=`, `%74oken=`) is dropped first, so a
//! child URL never carries two tokens. The token is appended last: `a.ts?x=1&token=T#f`.

pub mod dash;
pub mod hls;

use crate::url::is_token_name_lookalike;

/// The two manifest formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Hls,
    Dash,
}

impl Kind {
    /// The manifest kind a response is, from its `Content-Type` (parameters ignored) and,
    /// when that is absent or generic, the request path's extension (`by_path`, from
    /// [`Kind::from_path`]). None = not a manifest (a segment, a key, an image).
    pub fn detect(content_type: Option<&str>, by_path: Option<Kind>) -> Option<Kind> {
        let by_type = content_type.map(|ct| {
            let mime = ct.split(';').next().unwrap_or("").trim();
            if HLS_TYPES.iter().any(|t| mime.eq_ignore_ascii_case(t)) {
                Some(Kind::Hls)
            } else if mime.eq_ignore_ascii_case("application/dash+xml") {
                Some(Kind::Dash)
            } else {
                None
            }
        });
        match by_type {
            Some(Some(kind)) => Some(kind),
            // A specific, non-manifest type (video/mp2t, ...) is believed.
            Some(None) if !content_type.is_some_and(is_generic_type) => None,
            _ => by_path,
        }
    }

    /// The manifest kind a path names by its extension (`.m3u8`, `.mpd`, any case).
    pub fn from_path(path: &str) -> Option<Kind> {
        let file = path.rsplit('/').next().unwrap_or("");
        let ext = file.rsplit_once('.').map(|(_, e)| e)?;
        if ext.eq_ignore_ascii_case("m3u8") {
            Some(Kind::Hls)
        } else if ext.eq_ignore_ascii_case("mpd") {
            Some(Kind::Dash)
        } else {
            None
        }
    }

    /// The label used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Hls => "hls",
            Kind::Dash => "dash",
        }
    }
}

const HLS_TYPES: [&str; 4] = [
    "application/vnd.apple.mpegurl",
    "application/x-mpegurl",
    "audio/mpegurl",
    "audio/x-mpegurl",
];

/// Content types that say nothing about the body: the extension decides.
fn is_generic_type(ct: &str) -> bool {
    let mime = ct.split(';').next().unwrap_or("").trim();
    [
        "application/octet-stream",
        "binary/octet-stream",
        "text/plain",
        "",
    ]
    .iter()
    .any(|t| mime.eq_ignore_ascii_case(t))
}

/// Why a manifest was passed through untouched: a stable code for the log line and a
/// metric label (bounded set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unparsed {
    /// An HLS body that does not start with `#EXTM3U`.
    #[error("not_hls")]
    NotHls,
    /// A DASH body that is not well-formed XML, or whose root is not `MPD`.
    #[error("not_mpd")]
    NotMpd,
    /// Not UTF-8 (both formats are UTF-8 by specification).
    #[error("not_utf8")]
    NotUtf8,
}

impl Unparsed {
    pub fn as_str(self) -> &'static str {
        match self {
            Unparsed::NotHls => "not_hls",
            Unparsed::NotMpd => "not_mpd",
            Unparsed::NotUtf8 => "not_utf8",
        }
    }
}

/// What to put into child URLs, and where.
#[derive(Debug, Clone, Copy)]
pub struct Rewrite<'a> {
    /// The query parameter name (`token.query`, default `token`).
    pub param: &'a str,
    /// The token, as it goes into a URL: [`Rewrite::new`] percent-encodes anything that
    /// is not an RFC 3986 unreserved character (a JWT never has any).
    pub token: &'a str,
    /// Hosts (`host` or `host:port`, lower case; `*.example.com` for subdomains) whose
    /// absolute URLs get the token.
    pub allow_hosts: &'a [String],
}

impl<'a> Rewrite<'a> {
    /// The token made safe for a query value.
    pub fn encode_token(token: &str) -> std::borrow::Cow<'_, str> {
        if token.bytes().all(is_unreserved) {
            return std::borrow::Cow::Borrowed(token);
        }
        let mut out = String::with_capacity(token.len() * 3);
        for b in token.bytes() {
            if is_unreserved(b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        std::borrow::Cow::Owned(out)
    }

    /// True when a URL reference points away from us: an absolute or network-path URL
    /// whose host is not allowed, or any non-HTTP scheme. Relative references are ours.
    pub fn is_foreign(&self, uri: &str) -> bool {
        match classify(uri) {
            Target::Relative => false,
            Target::Host(host) => !self.host_allowed(host),
            Target::Other => true,
        }
    }

    /// `uri` with the token added, or None when it must stay as it is (foreign, empty).
    pub fn uri(&self, uri: &str) -> Option<String> {
        if uri.is_empty() || self.is_foreign(uri) {
            return None;
        }
        Some(self.append(uri))
    }

    /// `uri` with the token added, whatever it points at (the caller decided).
    pub fn append(&self, uri: &str) -> String {
        let (before_frag, frag) = match uri.find('#') {
            Some(i) => (&uri[..i], Some(&uri[i..])),
            None => (uri, None),
        };
        let (base, query) = match before_frag.find('?') {
            Some(i) => (&before_frag[..i], Some(&before_frag[i + 1..])),
            None => (before_frag, None),
        };
        let mut out = String::with_capacity(uri.len() + self.param.len() + self.token.len() + 2);
        out.push_str(base);
        out.push('?');
        if let Some(q) = query {
            for piece in q.split('&') {
                if piece.is_empty() || is_token_name_lookalike(piece, self.param) {
                    continue;
                }
                out.push_str(piece);
                out.push('&');
            }
        }
        out.push_str(self.param);
        out.push('=');
        out.push_str(self.token);
        if let Some(f) = frag {
            out.push_str(f);
        }
        out
    }

    fn host_allowed(&self, authority: &str) -> bool {
        // Drop userinfo; keep host[:port]. IPv6 literals keep their brackets.
        let hostport = authority.rsplit('@').next().unwrap_or("");
        let host = match hostport.strip_prefix('[') {
            Some(rest) => match rest.find(']') {
                Some(i) => &hostport[..i + 2],
                None => return false,
            },
            None => hostport.split(':').next().unwrap_or(""),
        };
        if host.is_empty() {
            return false;
        }
        self.allow_hosts.iter().any(|allowed| {
            if let Some(suffix) = allowed.strip_prefix("*.") {
                let h = host.to_ascii_lowercase();
                h.len() > suffix.len() + 1
                    && h.ends_with(suffix)
                    && h.as_bytes()[h.len() - suffix.len() - 1] == b'.'
            } else {
                allowed.eq_ignore_ascii_case(host) || allowed.eq_ignore_ascii_case(hostport)
            }
        })
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

enum Target<'u> {
    Relative,
    /// An `http`/`https`/network-path reference, with its authority.
    Host(&'u str),
    Other,
}

fn authority_of(rest: &str) -> &str {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

fn classify(uri: &str) -> Target<'_> {
    if let Some(rest) = uri.strip_prefix("//") {
        return Target::Host(authority_of(rest));
    }
    // A scheme is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) followed by ':', before any
    // '/', '?' or '#'.
    let head_end = uri.find(['/', '?', '#']).unwrap_or(uri.len());
    let Some(colon) = uri[..head_end].find(':') else {
        return Target::Relative;
    };
    let scheme = &uri[..colon];
    let valid_scheme = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !valid_scheme {
        // `a:b` with an invalid scheme is still not a safe relative path; leave it.
        return Target::Other;
    }
    let rest = &uri[colon + 1..];
    if (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && rest.starts_with("//")
    {
        return Target::Host(authority_of(&rest[2..]));
    }
    Target::Other
}

/// Rewrite a manifest of `kind`; a body that cannot be parsed is an [`Unparsed`] reason
/// (the caller passes it through untouched, never a 500).
pub fn rewrite(kind: Kind, input: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, Unparsed> {
    match kind {
        Kind::Hls => hls::rewrite(input, rw),
        Kind::Dash => dash::rewrite(input, rw),
    }
}

/// Whether a manifest will still change, for a cache deciding how long its copy is
/// fresh: a finished one (VOD) does not; a live one is re-fetched by players about once
/// per (part) target duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// An HLS multivariant playlist, a media playlist with `EXT-X-ENDLIST` or
    /// `EXT-X-PLAYLIST-TYPE:VOD`, or a static MPD.
    Finished,
    /// A live media playlist or dynamic MPD, with how often players reload it when it
    /// says (the LL-HLS part target, else the target duration, else the MPD's
    /// `minimumUpdatePeriod`).
    Live(Option<std::time::Duration>),
}

/// How live the manifest `body` of `kind` is. Bytes that are not text read as finished
/// (the caller's default applies).
pub fn liveness(kind: Kind, body: &[u8]) -> Liveness {
    let Ok(text) = std::str::from_utf8(body) else {
        return Liveness::Finished;
    };
    match kind {
        Kind::Hls => hls_liveness(text),
        Kind::Dash => dash_liveness(text),
    }
}

fn hls_liveness(text: &str) -> Liveness {
    let mut target = None;
    let mut part = None;
    for line in text.lines().map(str::trim) {
        if line == "#EXT-X-ENDLIST" || line == "#EXT-X-PLAYLIST-TYPE:VOD" {
            return Liveness::Finished;
        }
        if let Some(v) = line.strip_prefix("#EXT-X-TARGETDURATION:") {
            target = v.trim().parse::<f64>().ok();
        } else if let Some(attrs) = line.strip_prefix("#EXT-X-PART-INF:") {
            part = attrs
                .split(',')
                .find_map(|a| a.trim().strip_prefix("PART-TARGET="))
                .and_then(|v| v.parse::<f64>().ok());
        }
    }
    // Without a target duration it is a multivariant playlist, which does not change.
    match target {
        None => Liveness::Finished,
        Some(t) => Liveness::Live(seconds(part.unwrap_or(t))),
    }
}

fn dash_liveness(text: &str) -> Liveness {
    let Some(start) = text.find("<MPD") else {
        return Liveness::Finished;
    };
    let tag = &text[start..];
    let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
    let attr = |name: &str| {
        let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        tag[at..].split('"').next()
    };
    match attr("type") {
        Some("dynamic") => Liveness::Live(attr("minimumUpdatePeriod").and_then(iso_seconds)),
        _ => Liveness::Finished,
    }
}

/// A positive, finite number of seconds as a duration.
fn seconds(s: f64) -> Option<std::time::Duration> {
    (s.is_finite() && s > 0.0 && s < 1e9).then(|| std::time::Duration::from_secs_f64(s))
}

/// An ISO 8601 duration of the form MPDs use (`PT2S`, `PT1M30.5S`, `PT1H`).
fn iso_seconds(v: &str) -> Option<std::time::Duration> {
    let mut rest = v.strip_prefix("PT")?;
    let mut total = 0.0;
    for (unit, factor) in [('H', 3600.0), ('M', 60.0), ('S', 1.0)] {
        if let Some((n, tail)) = rest.split_once(unit) {
            total += n.parse::<f64>().ok()? * factor;
            rest = tail;
        }
    }
    if !rest.is_empty() {
        return None;
    }
    seconds(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(allow: &[String]) -> Rewrite<'_> {
        Rewrite {
            param: "token",
            token: "T",
            allow_hosts: allow,
        }
    }

    #[test]
    fn relative_uris_get_the_token_and_keep_query_and_fragment() {
        let r = rw(&[]);
        assert_eq!(r.uri("seg1.ts").as_deref(), Some("seg1.ts?token=T"));
        assert_eq!(
            r.uri("part.m4s?_HLS_msn=3&_HLS_part=1#t=2").as_deref(),
            Some("part.m4s?_HLS_msn=3&_HLS_part=1&token=T#t=2")
        );
        assert_eq!(r.uri("/vod/a/x.ts").as_deref(), Some("/vod/a/x.ts?token=T"));
        assert_eq!(r.uri("../b/x.ts?").as_deref(), Some("../b/x.ts?token=T"));
        assert_eq!(r.uri(""), None);
    }

    #[test]
    fn a16_existing_token_lookalikes_are_replaced_not_doubled() {
        let r = rw(&[]);
        assert_eq!(
            r.uri("x.ts?Token=old&a=1&%74oken=z").as_deref(),
            Some("x.ts?a=1&token=T")
        );
    }

    #[test]
    fn foreign_hosts_and_other_schemes_stay_untouched() {
        let allow = vec!["cdn.example.com".to_string(), "*.media.test".to_string()];
        let r = rw(&allow);
        assert_eq!(r.uri("https://evil.example/x.ts"), None);
        assert_eq!(r.uri("//evil.example/x.ts"), None);
        assert_eq!(r.uri("skd://key-id"), None);
        assert_eq!(r.uri("data:text/plain,hello"), None);
        assert_eq!(r.uri("HTTPS://cdn.example.com.evil/x"), None);
        assert_eq!(
            r.uri("https://CDN.example.com:8443/x.ts").as_deref(),
            Some("https://CDN.example.com:8443/x.ts?token=T")
        );
        assert_eq!(
            r.uri("http://user@a.media.test/x").as_deref(),
            Some("http://user@a.media.test/x?token=T")
        );
        assert_eq!(r.uri("https://media.test/x"), None);
        assert_eq!(r.uri("https://xmedia.test/x"), None);
    }

    #[test]
    fn detection_by_type_then_extension() {
        let detect = |ct, path| Kind::detect(ct, Kind::from_path(path));
        assert_eq!(
            detect(Some("application/vnd.apple.mpegurl"), "/a/x"),
            Some(Kind::Hls)
        );
        assert_eq!(
            detect(Some("application/dash+xml; charset=utf-8"), "/a/x"),
            Some(Kind::Dash)
        );
        assert_eq!(
            detect(Some("application/octet-stream"), "/a/x.M3U8"),
            Some(Kind::Hls)
        );
        assert_eq!(detect(None, "/a/manifest.mpd"), Some(Kind::Dash));
        assert_eq!(detect(Some("video/mp2t"), "/a/x.m3u8"), None);
        assert_eq!(detect(None, "/a/seg.ts"), None);
    }

    #[test]
    fn token_encoding_is_a_no_op_for_jwts() {
        assert_eq!(Rewrite::encode_token("eyJ.a-b_c.d"), "eyJ.a-b_c.d");
        assert_eq!(Rewrite::encode_token("a b&c"), "a%20b%26c");
    }

    #[test]
    fn liveness_reads_endlist_part_target_and_dynamic_mpds() {
        use std::time::Duration;
        let live = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\na.ts\n";
        assert_eq!(
            liveness(Kind::Hls, live.as_bytes()),
            Liveness::Live(Some(Duration::from_secs(4)))
        );
        let ll = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=0.5\n";
        assert_eq!(
            liveness(Kind::Hls, ll.as_bytes()),
            Liveness::Live(Some(Duration::from_millis(500)))
        );
        let vod = format!("{live}#EXT-X-ENDLIST\n");
        assert_eq!(liveness(Kind::Hls, vod.as_bytes()), Liveness::Finished);
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n";
        assert_eq!(liveness(Kind::Hls, master.as_bytes()), Liveness::Finished);
        let mpd = r#"<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" minimumUpdatePeriod="PT1M2.5S"><Period/></MPD>"#;
        assert_eq!(
            liveness(Kind::Dash, mpd.as_bytes()),
            Liveness::Live(Some(Duration::from_millis(62_500)))
        );
        let dynamic = r#"<MPD type="dynamic">"#;
        assert_eq!(
            liveness(Kind::Dash, dynamic.as_bytes()),
            Liveness::Live(None)
        );
        let fixed = r#"<MPD type="static" mediaPresentationDuration="PT10S">"#;
        assert_eq!(liveness(Kind::Dash, fixed.as_bytes()), Liveness::Finished);
        assert_eq!(liveness(Kind::Hls, &[0xff, 0xfe]), Liveness::Finished);
    }
}
