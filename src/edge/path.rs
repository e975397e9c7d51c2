//! Request path normalisation: turns the path of a request target into the one canonical
//! value that the edge both authorises and forwards, so the gate and the origin can never
//! disagree about which resource was asked for (threat model A15). This module owns the
//! decoding, rejection and dot-segment rules and nothing else; it must not look at the
//! query, tokens, routes, configuration or any I/O, and it allocates only when the path
//! actually changes.

use std::borrow::Cow;

use crate::url::hex_value;

/// Longest path accepted, in bytes. Media paths are short; anything longer is an attack or a
/// bug, and a bound keeps the work per request flat.
pub const MAX_PATH_LEN: usize = 4096;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("malformed request path")]
    Malformed,
}

/// Normalise the path part of a request target (no query; hyper's `uri.path()`).
///
/// Returns `Cow::Borrowed` (the input or a prefix of it) whenever the canonical form is
/// already spelled out in `raw`, which is the common case for real players.
pub fn normalise(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH_LEN || !raw.starts_with('/') {
        return Err(PathError::Malformed);
    }
    let mut out = Output::new(raw);
    // Whether the canonical path ends in '/': decided by the last raw segment only.
    let mut trailing_slash = false;
    // Encoded slashes are rejected, so the raw '/' bytes are the only separators and
    // splitting before decoding is safe.
    for seg in raw[1..].split('/') {
        trailing_slash = false;
        match seg {
            // `//` collapses; an empty last segment is a trailing slash.
            "" | "." => trailing_slash = true,
            ".." => {
                out.pop_segment()?;
                trailing_slash = true;
            }
            _ => {
                reject_dot_like(seg)?;
                out.push("/");
                push_segment(&mut out, seg)?;
            }
        }
    }
    if trailing_slash || out.current().is_empty() {
        out.push("/");
    }
    out.finish()
}

/// Rejects segments that some origin would read as a dot segment even though they are not
/// literally `.` or `..`:
///
/// - `..;x` and `.;x`: Tomcat/Jetty drop path parameters before resolving dots (`%3B`
///   too, because some decode first);
/// - dots with extra dots or padding (`...`, `..%20`, `..%09`, `%0A..`, `.%E3%80%80`,
///   `..%E2%80%8B`): origins that trim each segment (Java `trim()`, Go `TrimSpace`,
///   Python `strip()`, Windows) cut it down to `..`. Padding is any whitespace, control
///   or invisible character, raw or percent-encoded (UTF-8 included).
///
/// None of these is a plausible media file name, so refusing them costs nothing. A
/// segment with any other character is a name; bad escapes and invalid UTF-8 are left
/// to [`push_segment`], which refuses them.
fn reject_dot_like(seg: &str) -> Result<(), PathError> {
    let bytes = seg.as_bytes();
    let mut dots = 0usize;
    let mut i = 0;
    // Bounded: every branch advances `i` by at least one byte.
    while i < bytes.len() {
        let (b, width) = match bytes[i] {
            b'%' => match escape_at(bytes, i) {
                Ok(v) => (v, 3),
                Err(_) => return Ok(()),
            },
            b => (b, 1),
        };
        if b == b';' {
            break;
        }
        if b == b'.' {
            dots += 1;
            i += width;
        } else if b.is_ascii() {
            if !is_padding(char::from(b)) {
                return Ok(());
            }
            i += width;
        } else {
            match decode_char(bytes, i) {
                Some((c, next)) if is_padding(c) => i = next,
                _ => return Ok(()),
            }
        }
    }
    if dots > 0 {
        Err(PathError::Malformed)
    } else {
        Ok(())
    }
}

/// The character whose UTF-8 bytes start at `bytes[i]`, raw or as `%XX` escapes (mixed
/// spellings included), and the index after it; None when they are not valid UTF-8.
fn decode_char(bytes: &[u8], mut i: usize) -> Option<(char, usize)> {
    let mut buf = [0u8; 4];
    let mut len = 0;
    // At most four bytes make a character.
    while len < 4 && i < bytes.len() {
        let (b, width) = match bytes[i] {
            b'%' => (escape_at(bytes, i).ok()?, 3),
            b => (b, 1),
        };
        buf[len] = b;
        len += 1;
        i += width;
        if let Ok(s) = std::str::from_utf8(&buf[..len]) {
            return s.chars().next().map(|c| (c, i));
        }
    }
    None
}

/// Characters an origin may trim from a segment or never show: whitespace, controls,
/// and the invisible format characters (zero-width spaces and joiners, direction marks,
/// the byte-order mark, soft hyphen, variation selectors, tags).
fn is_padding(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFF8}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E0FFF}'
        )
}

/// Appends the canonical spelling of one non-dot segment.
fn push_segment(out: &mut Output<'_>, seg: &str) -> Result<(), PathError> {
    let bytes = seg.as_bytes();
    let mut run_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            // A raw backslash is a separator on Windows-style origins; anything outside
            // visible ASCII (controls, space, raw UTF-8) means the client did not encode.
            if b == b'\\' || !(0x21..=0x7e).contains(&b) {
                return Err(PathError::Malformed);
            }
            i += 1;
            continue;
        }
        // Plain bytes before the escape go out as one slice, so they stay borrowed.
        out.push(&seg[run_start..i]);
        let v = escape_at(bytes, i)?;
        if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'_' | b'~') {
            // RFC 3986 §6.2.2.2: unreserved characters are equivalent decoded; decoding
            // gives one spelling per resource.
            out.push(char::from(v).encode_utf8(&mut [0; 4]));
            i += 3;
        } else if matches!(v, b'.' | b'/' | b'\\' | 0 | b'%') {
            // Encoded dot, slash, backslash and NUL only exist to smuggle traversal or
            // truncation past a gate; no legitimate player sends them. An encoded `%`
            // (`%252e`) is refused too: an origin that decodes twice would see a dot.
            return Err(PathError::Malformed);
        } else if v < 0x80 {
            // Reserved or otherwise significant characters (`%23`, `%3F`, `%25`, ...) must
            // stay encoded or the forwarded path would mean something else.
            out.push_escape(v)?;
            i += 3;
        } else {
            i = push_utf8_escapes(out, bytes, i, v)?;
        }
        run_start = i;
    }
    out.push(&seg[run_start..]);
    Ok(())
}

/// One encoded non-ASCII character, starting with lead byte `lead` at `bytes[i]`. It must be
/// valid, shortest-form UTF-8 (so `%C0%AE` and `%E0%80%AE`, overlong dots, are refused);
/// it stays encoded. Returns the index after its last escape.
fn push_utf8_escapes(
    out: &mut Output<'_>,
    bytes: &[u8],
    i: usize,
    lead: u8,
) -> Result<usize, PathError> {
    let width = match lead {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        // Continuation bytes alone, C0/C1 (always overlong) and F5.. (beyond U+10FFFF).
        _ => return Err(PathError::Malformed),
    };
    let mut buf = [lead, 0, 0, 0];
    for (k, slot) in buf.iter_mut().enumerate().take(width).skip(1) {
        let at = i + 3 * k;
        if bytes.get(at) != Some(&b'%') {
            return Err(PathError::Malformed);
        }
        *slot = escape_at(bytes, at)?;
    }
    // std's validator rejects overlong forms, surrogates and out-of-range code points.
    let decoded = std::str::from_utf8(&buf[..width]).map_err(|_| PathError::Malformed)?;
    if decoded.chars().any(is_separator_lookalike) {
        return Err(PathError::Malformed);
    }
    for &b in &buf[..width] {
        out.push_escape(b)?;
    }
    Ok(i + 3 * width)
}

/// Characters that Unicode compatibility normalisation (NFKC), or a lenient origin,
/// turns into `.`, `/` or `\`: full-width and small forms, leaders, and slash-like
/// operators. Refused so that no origin can fold them into a dot segment.
fn is_separator_lookalike(c: char) -> bool {
    matches!(
        c,
        '\u{2024}' // ONE DOT LEADER
            | '\u{2025}' // TWO DOT LEADER
            | '\u{2026}' // HORIZONTAL ELLIPSIS
            | '\u{FE52}' // SMALL FULL STOP
            | '\u{FF0E}' // FULLWIDTH FULL STOP
            | '\u{FF0F}' // FULLWIDTH SOLIDUS
            | '\u{FF3C}' // FULLWIDTH REVERSE SOLIDUS
            | '\u{FE68}' // SMALL REVERSE SOLIDUS
            | '\u{2215}' // DIVISION SLASH
            | '\u{2044}' // FRACTION SLASH
            | '\u{29F5}' // REVERSE SOLIDUS OPERATOR
            | '\u{29F8}' // BIG SOLIDUS
            | '\u{29F9}' // BIG REVERSE SOLIDUS
            | '\u{3002}' // IDEOGRAPHIC FULL STOP
            | '\u{FF61}' // HALFWIDTH IDEOGRAPHIC FULL STOP
    )
}

/// The byte encoded by the `%XX` at `bytes[i]`; a truncated or non-hex escape is malformed
/// because origins disagree on what it means.
fn escape_at(bytes: &[u8], i: usize) -> Result<u8, PathError> {
    match (
        bytes.get(i + 1).copied().and_then(hex_value),
        bytes.get(i + 2).copied().and_then(hex_value),
    ) {
        (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
        _ => Err(PathError::Malformed),
    }
}

const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The output under construction. While everything pushed so far is exactly a prefix of
/// the input, it is only a length into `raw`; the first push that differs copies that
/// prefix into a `String`. This keeps canonical paths allocation-free without a separate
/// "is it already canonical?" pass that could drift from the real rules.
struct Output<'a> {
    raw: &'a str,
    owned: Option<String>,
    /// Length of the borrowed prefix of `raw` while `owned` is `None`.
    len: usize,
}

impl<'a> Output<'a> {
    fn new(raw: &'a str) -> Self {
        Output {
            raw,
            owned: None,
            len: 0,
        }
    }

    fn push(&mut self, s: &str) {
        match &mut self.owned {
            Some(owned) => owned.push_str(s),
            None => {
                let rest = self.raw.as_bytes().get(self.len..).unwrap_or_default();
                if rest.starts_with(s.as_bytes()) {
                    self.len += s.len();
                } else {
                    let mut owned = String::with_capacity(self.raw.len());
                    owned.push_str(self.current());
                    owned.push_str(s);
                    self.owned = Some(owned);
                }
            }
        }
    }

    fn push_escape(&mut self, v: u8) -> Result<(), PathError> {
        let buf = [
            b'%',
            UPPER_HEX[usize::from(v >> 4)],
            UPPER_HEX[usize::from(v & 0xf)],
        ];
        let s = std::str::from_utf8(&buf).map_err(|_| PathError::Malformed)?;
        self.push(s);
        Ok(())
    }

    fn current(&self) -> &str {
        match &self.owned {
            Some(owned) => owned,
            // Only whole str pieces are ever matched, so `len` is a char boundary.
            None => self.raw.get(..self.len).unwrap_or_default(),
        }
    }

    /// Resolves `..`: drops the last segment, or refuses to climb above the root.
    fn pop_segment(&mut self) -> Result<(), PathError> {
        let current = self.current();
        if current.is_empty() {
            return Err(PathError::Malformed);
        }
        // Non-empty output always starts with '/', so the fallback is never used.
        let cut = current.rfind('/').unwrap_or(0);
        match &mut self.owned {
            Some(owned) => owned.truncate(cut),
            None => self.len = cut,
        }
        Ok(())
    }

    fn finish(self) -> Result<Cow<'a, str>, PathError> {
        match self.owned {
            Some(owned) => Ok(Cow::Owned(owned)),
            None => self
                .raw
                .get(..self.len)
                .map(Cow::Borrowed)
                .ok_or(PathError::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        match normalise(raw) {
            Ok(p) => p.into_owned(),
            Err(e) => panic!("{raw:?} was rejected: {e}"),
        }
    }

    fn assert_malformed(raw: &str) {
        assert_eq!(normalise(raw), Err(PathError::Malformed), "input {raw:?}");
    }

    #[test]
    fn canonical_path_is_returned_borrowed_and_unchanged() {
        let raw = "/vod/a/x";
        match normalise(raw) {
            Ok(Cow::Borrowed(p)) => assert_eq!(p, raw),
            other => panic!("expected borrowed, got {other:?}"),
        }
    }

    #[test]
    fn root_and_trailing_slash_paths_stay_borrowed() {
        for raw in ["/", "/vod/a/", "/vod/a/index.m3u8", "/a;b=c/x", "/%23x"] {
            match normalise(raw) {
                Ok(Cow::Borrowed(p)) => assert_eq!(p, raw),
                other => panic!("{raw:?}: expected borrowed, got {other:?}"),
            }
        }
    }

    #[test]
    fn trailing_dot_resolves_to_a_borrowed_prefix() {
        // `/vod/a/.` canonicalises to `/vod/a/`, which is a prefix of the input.
        assert!(matches!(
            normalise("/vod/a/."),
            Ok(Cow::Borrowed("/vod/a/"))
        ));
    }

    #[test]
    fn a15_literal_dotdot_resolves_within_the_path() {
        assert_eq!(ok("/vod/a/../b/x"), "/vod/b/x");
        assert_eq!(ok("/vod/a/b/../../c"), "/vod/c");
    }

    #[test]
    fn a15_dotdot_above_root_is_rejected() {
        for raw in ["/..", "/../", "/../vod/a", "/vod/../../x", "/a/./../.."] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn a15_single_dot_segments_are_removed() {
        assert_eq!(ok("/vod/./a/x"), "/vod/a/x");
        assert_eq!(ok("/./vod/a"), "/vod/a");
    }

    #[test]
    fn a15_trailing_dot_segments_end_in_a_slash() {
        let table = [
            ("/vod/a/.", "/vod/a/"),
            ("/vod/a/..", "/vod/"),
            ("/vod/a/b/..", "/vod/a/"),
            ("/vod/..", "/"),
            ("/.", "/"),
            ("/vod/a/./", "/vod/a/"),
            ("/vod/a/../", "/vod/"),
        ];
        for (raw, want) in table {
            assert_eq!(ok(raw), want, "input {raw:?}");
        }
    }

    #[test]
    fn a15_double_slashes_collapse() {
        let table = [
            ("//vod/a/x", "/vod/a/x"),
            ("/vod//a///x", "/vod/a/x"),
            ("/vod/a//", "/vod/a/"),
            ("//", "/"),
            ("/vod/a//..", "/vod/"),
        ];
        for (raw, want) in table {
            assert_eq!(ok(raw), want, "input {raw:?}");
        }
    }

    #[test]
    fn a15_encoded_dotdot_is_rejected() {
        for raw in [
            "/vod/a/%2e%2e/b/x",
            "/vod/a/%2E%2E%2Fb/x",
            "/vod/a/%2E%2E/b",
            "/vod/a/.%2e/b/x",
            "/vod/a/%2e./b/x",
            "/vod/a/%2e/x",
            "/vod/a/x%2ets",
        ] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn a15_encoded_slash_and_backslash_are_rejected() {
        for raw in [
            "/vod/a/..%2fb/x",
            "/vod/a/..%2Fb/x",
            "/vod/a/x%2fy",
            "/vod/a/..%5cb/x",
            "/vod/a/..%5Cb/x",
        ] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn a15_raw_backslash_is_rejected() {
        assert_malformed("/vod/a/..\\b/x");
        assert_malformed("/vod/a\\x");
    }

    #[test]
    fn a15_double_encoded_dotdot_is_rejected() {
        // An origin that decodes twice would read `%252e` as a dot: refuse any `%25`.
        assert_malformed("/vod/a/%252e%252e%252f");
        assert_malformed("/vod/a/%252e%252e%252fb/x");
        assert_malformed("/vod/a/%25%32%65%25%32%65/b/x");
        assert_malformed("/vod/a/100%25.ts");
    }

    #[test]
    fn a15_unicode_lookalikes_of_dot_and_slash_are_rejected() {
        for raw in [
            "/vod/a/%EF%BC%8E%EF%BC%8E/b/x",
            "/vod/a/..%EF%BC%8Fb/x",
            "/vod/a/..%EF%BC%BCb/x",
            "/vod/a/%E2%80%A4%E2%80%A4/b/x",
            "/vod/a/x%E2%88%95y",
        ] {
            assert_malformed(raw);
        }
        // Other non-ASCII names stay encoded and pass.
        assert_eq!(ok("/vod/a/%C3%A9t%C3%A9.ts"), "/vod/a/%C3%A9t%C3%A9.ts");
    }

    #[test]
    fn a15_overlong_utf8_dots_are_rejected() {
        for raw in [
            "/vod/a/%C0%AE%C0%AE/b",
            "/vod/a/%c0%ae/b",
            "/vod/a/%E0%80%AE%E0%80%AE/b",
            "/vod/a/%F0%80%80%AE/b",
            "/vod/a/%C1%9C/b",
            "/vod/a/%C0%AF/b",
        ] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn a15_invalid_utf8_escapes_are_rejected() {
        for raw in [
            "/x/%80",          // lone continuation byte
            "/x/%C3",          // truncated sequence at end
            "/x/%C3a",         // truncated sequence before a plain byte
            "/x/%E2%82",       // truncated three-byte sequence
            "/x/%ED%A0%80",    // UTF-16 surrogate
            "/x/%F4%90%80%80", // beyond U+10FFFF
            "/x/%FF",
        ] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn valid_utf8_escapes_stay_encoded_with_uppercase_hex() {
        assert_eq!(ok("/x/caf%c3%a9.ts"), "/x/caf%C3%A9.ts");
        assert_eq!(ok("/x/%E2%82%AC"), "/x/%E2%82%AC");
        assert_eq!(ok("/x/%f0%9f%8e%ac"), "/x/%F0%9F%8E%AC");
    }

    #[test]
    fn a15_params_that_hide_a_dot_segment_are_rejected() {
        for raw in [
            "/vod/a/..;/b/x",
            "/vod/a/..;x/b",
            "/vod/a/.;x/y",
            "/vod/a/.;/y",
            "/vod/a/..%3B/b",
            "/vod/a/..%3bjsessionid=1/b",
        ] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn a15_dot_runs_an_origin_could_trim_to_dotdot_are_rejected() {
        for raw in [
            "/vod/a/.../b",
            "/vod/a/..%20/b",
            "/vod/a/%20../b",
            "/vod/a/.%20/b",
        ] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn a15_dots_padded_with_any_whitespace_control_or_invisible_character_are_rejected() {
        for pad in [
            "%09",
            "%0A",
            "%0D",
            "%0B",
            "%0C",
            "%1F",
            "%7F",
            "%00",
            "%C2%A0",
            "%C2%85",
            "%E3%80%80",
            "%E2%80%8B",
            "%E2%80%8F",
            "%E2%81%A0",
            "%EF%BB%BF",
            "%C2%AD",
            "%e2%80%a8",
            "%E1%9A%80",
            "%09%20%0A",
        ] {
            for seg in [
                format!("..{pad}"),
                format!("{pad}.."),
                format!(".{pad}"),
                format!("{pad}."),
                format!(".{pad}."),
                format!("..{pad};x"),
            ] {
                assert_malformed(&format!("/vod/a/{seg}/b/secret.txt"));
            }
        }
    }

    #[test]
    fn a15_padding_beside_a_real_name_is_not_a_dot_segment() {
        // Names with padding are still names; they keep their escapes.
        assert_eq!(ok("/vod/a/x%09y/z"), "/vod/a/x%09y/z");
        assert_eq!(ok("/vod/a/..x%C2%A0/z"), "/vod/a/..x%C2%A0/z");
        assert_eq!(ok("/vod/a/%E2%80%8Bx/z"), "/vod/a/%E2%80%8Bx/z");
        // A non-padding character after the dots makes a name: `..%C3%A9` is `..é`.
        assert_eq!(ok("/vod/a/..%C3%A9/z"), "/vod/a/..%C3%A9/z");
    }

    #[test]
    fn a15_other_params_are_kept_as_they_are() {
        let table = [
            "/vod/a/x.ts;jsessionid=1",
            "/vod/a;v=2/x",
            "/vod/a/;x/y",
            "/vod/a/.hidden;x",
            "/vod/a/..foo",
            "/vod/a/x..",
        ];
        for raw in table {
            assert_eq!(ok(raw), raw);
        }
    }

    #[test]
    fn a15_encoded_nul_is_rejected() {
        assert_malformed("/vod/a/x.ts%00.m3u8");
        assert_malformed("/vod/a/%00");
    }

    #[test]
    fn a15_encoded_hash_stays_encoded() {
        assert_eq!(ok("/vod/a/x%23y"), "/vod/a/x%23y");
        assert_eq!(ok("/vod/a/%3f%23"), "/vod/a/%3F%23");
    }

    #[test]
    fn a15_case_is_kept() {
        assert_eq!(ok("/VOD/A/Index.M3U8"), "/VOD/A/Index.M3U8");
        assert_ne!(ok("/vod/A/x"), ok("/vod/a/x"));
    }

    #[test]
    fn unreserved_escapes_are_decoded() {
        let table = [
            ("/vod/%61/x", "/vod/a/x"),
            ("/%76%6F%64/a", "/vod/a"),
            ("/x/%2D%5f%7E%30", "/x/-_~0"),
            ("/x/%41b", "/x/Ab"),
        ];
        for (raw, want) in table {
            assert_eq!(ok(raw), want, "input {raw:?}");
        }
    }

    #[test]
    fn other_escapes_keep_their_encoding_with_uppercase_hex() {
        let table = [
            ("/x/%2a", "/x/%2A"),
            ("/x/a%20b", "/x/a%20b"),
            ("/x/%3b", "/x/%3B"),
            ("/x/%7f%0a", "/x/%7F%0A"),
            ("/x/%2b%3d", "/x/%2B%3D"),
        ];
        for (raw, want) in table {
            assert_eq!(ok(raw), want, "input {raw:?}");
        }
    }

    #[test]
    fn invalid_escapes_are_rejected() {
        for raw in ["/x/%", "/x/%2", "/x/%zz", "/x/%2g", "/x/%%41", "/x/a%"] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn raw_bytes_outside_visible_ascii_are_rejected() {
        for raw in [
            "/x/a b",
            "/x/a\tb",
            "/x/a\nb",
            "/x/\u{7f}",
            "/x/café",
            "/x/\0",
        ] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn a15_absolute_form_and_relative_paths_are_rejected() {
        // The caller passes `uri.path()`; anything not starting with '/' is not a path.
        for raw in ["", "x", "http://origin/vod/a", "*", "../vod"] {
            assert_malformed(raw);
        }
    }

    #[test]
    fn paths_longer_than_the_limit_are_rejected() {
        let at_limit = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
        assert_eq!(ok(&at_limit), at_limit);
        let over = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert_malformed(&over);
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for raw in [
            "/vod/a/../b/x",
            "/x/%2a%61",
            "//a/./b//",
            "/x/caf%c3%a9",
            "/x/%3f%20",
        ] {
            let once = ok(raw);
            assert!(
                matches!(normalise(&once), Ok(Cow::Borrowed(p)) if p == once),
                "{raw:?} -> {once:?} is not a fixed point"
            );
        }
    }

    #[test]
    fn every_short_input_normalises_to_a_canonical_fixed_point() {
        // Exhaustive over a small alphabet of the characters traversal tricks are made of:
        // whatever is accepted must be canonical, so the gate and the origin cannot read
        // it differently.
        const ALPHABET: &[u8] = b"/.%2eEfa;c0\\";
        let mut checked = 0;
        let mut accepted = 0;
        let mut buf = Vec::with_capacity(8);
        for len in 0..=5u32 {
            for mut n in 0..ALPHABET.len().pow(len) {
                buf.clear();
                buf.push(b'/');
                for _ in 0..len {
                    buf.push(ALPHABET[n % ALPHABET.len()]);
                    n /= ALPHABET.len();
                }
                let raw = String::from_utf8_lossy(&buf);
                checked += 1;
                let Ok(p) = normalise(&raw) else { continue };
                accepted += 1;
                assert!(p.starts_with('/'), "{raw:?} -> {p:?}");
                assert!(!p.contains("//"), "{raw:?} -> {p:?}");
                assert!(!p.contains('\\'), "{raw:?} -> {p:?}");
                for seg in p.split('/') {
                    assert!(seg != "." && seg != "..", "{raw:?} -> {p:?}");
                    assert!(
                        !seg.starts_with(".;") && !seg.starts_with("..;"),
                        "{raw:?} -> {p:?}"
                    );
                }
                assert!(!p.to_ascii_uppercase().contains("%2E"), "{raw:?} -> {p:?}");
                assert!(!p.to_ascii_uppercase().contains("%2F"), "{raw:?} -> {p:?}");
                assert!(
                    matches!(normalise(&p), Ok(Cow::Borrowed(q)) if q == p),
                    "{raw:?} -> {p:?} is not a fixed point"
                );
            }
        }
        // The alphabet must exercise both outcomes, or the loop proved nothing.
        assert!(
            accepted > 1000 && checked - accepted > 1000,
            "{accepted}/{checked}"
        );
    }

    #[test]
    fn a15_no_trick_leaves_vod_a_unless_its_dot_segments_say_so() {
        // Every input starts under /vod/a/ and tries to reach /vod/b/ by some spelling an
        // origin might resolve. Each must be rejected or stay under /vod/a/.
        let tricks = [
            "/vod/a/%2e%2e/b/x",
            "/vod/a/%2E%2E%2Fb/x",
            "/vod/a/.%2e/b/x",
            "/vod/a/..%2fb/x",
            "/vod/a/%252e%252e%252fb/x",
            "/vod/a/..%5cb/x",
            "/vod/a/..\\b/x",
            "/vod/a/%C0%AE%C0%AE/b/x",
            "/vod/a/%E0%80%AE%E0%80%AE/b/x",
            "/vod/a/%c0%ae%c0%ae%c0%afb/x",
            "/vod/a/..;/b/x",
            "/vod/a/..%3b/b/x",
            "/vod/a/.../b/x",
            "/vod/a/..%20/b/x",
            "/vod/a/..%00/b/x",
            "/vod/a/x%00/../../b/x",
            "/vod/a/x%23/../b/x",
            "/vod/a/%2e%2e%2f%2e%2e%2fb/x",
            "/vod/a//%2e%2e//b/x",
            "/vod/a/.%2E/b/x",
            "/vod/a/%u002e%u002e/b/x",
            "/vod/a/..%c0%afb/x",
            "/vod/a/..%ef%bc%8fb/x",
            "/vod/a/;/../b/x",
        ];
        for raw in tricks {
            if let Ok(p) = normalise(raw) {
                assert!(p.starts_with("/vod/a/"), "{raw:?} escaped to {p:?}");
                assert!(!p.starts_with("/vod/b/"), "{raw:?} escaped to {p:?}");
            }
        }
        // The same table does contain literal dot segments where they are honest about it.
        assert_eq!(ok("/vod/a/;x/../../b/x"), "/vod/b/x");
    }
}
