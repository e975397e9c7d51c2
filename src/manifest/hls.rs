//! HLS playlist rewriting (RFC 8216 and its LL-HLS extensions).
//!
//! The body must be UTF-8 ([`Unparsed::NotUtf8`]) and start with `#EXTM3U`, optionally
//! after a UTF-8 byte order mark ([`Unparsed::NotHls`]). The output is byte-identical to
//! the input except for the child URIs that [`Rewrite::uri`] gives the token to: line
//! endings (`\n`, `\r\n`, mixed, none on the last line), blank lines, comments, tag order,
//! whitespace and the BOM are all kept.
//!
//! Two places hold child URIs:
//! - **URI lines**: a line that is neither blank nor (after leading whitespace) starts
//!   with `#` is a URI (a variant playlist after `EXT-X-STREAM-INF`, a segment after
//!   `EXTINF`). Whitespace around it is kept; only the URI text is replaced.
//! - **`URI="..."` attributes** of `EXT-X-KEY`, `EXT-X-SESSION-KEY`, `EXT-X-MAP`,
//!   `EXT-X-MEDIA`, `EXT-X-I-FRAME-STREAM-INF`, `EXT-X-PART`, `EXT-X-PRELOAD-HINT`,
//!   `EXT-X-RENDITION-REPORT` and `EXT-X-SESSION-DATA`, and the `SERVER-URI="..."`
//!   attribute of `EXT-X-CONTENT-STEERING`. Tag and attribute names match exactly
//!   (`#EXT-X-MAPX:` is not `#EXT-X-MAP:`, `SERVER-URI` is not `URI`). The attribute list
//!   is parsed as RFC 8216 §4.2 says (`NAME=VALUE` pairs separated by commas, names
//!   `[A-Z0-9-]+`, quoted strings may hold commas and `=`), tolerating blanks around the
//!   commas; only quoted values are URIs. A list that does not parse (an unterminated
//!   quote, a lower-case name, junk after a quoted string) leaves its line untouched.
//!
//! Every other tag and every comment is copied as it is. Which URI gets the token (ours
//! or an allowed host: yes; a foreign host, `skd://`, `data:`: no) is decided by
//! [`Rewrite::uri`] alone. The work is linear in the input (a counting pass to size the
//! output, then one pass over the lines; an attribute list is read twice, once to check
//! it and once to rewrite it), allocates only the rewritten URIs besides the output, and
//! never panics whatever the bytes.

use super::{Rewrite, Unparsed};

/// The UTF-8 byte order mark, kept in front of the output when the input has one.
const BOM: &str = "\u{FEFF}";

/// Tags whose attribute list carries a child URI, and the attribute that holds it.
const URI_TAGS: [(&str, &str); 10] = [
    ("EXT-X-KEY", "URI"),
    ("EXT-X-SESSION-KEY", "URI"),
    ("EXT-X-MAP", "URI"),
    ("EXT-X-MEDIA", "URI"),
    ("EXT-X-I-FRAME-STREAM-INF", "URI"),
    ("EXT-X-PART", "URI"),
    ("EXT-X-PRELOAD-HINT", "URI"),
    ("EXT-X-RENDITION-REPORT", "URI"),
    ("EXT-X-SESSION-DATA", "URI"),
    ("EXT-X-CONTENT-STEERING", "SERVER-URI"),
];

/// Rewrite every URI line and `URI=` attribute of an HLS playlist.
pub fn rewrite(input: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, Unparsed> {
    let text = std::str::from_utf8(input).map_err(|_| Unparsed::NotUtf8)?;
    let (bom, body) = match text.strip_prefix(BOM) {
        Some(rest) => (BOM, rest),
        None => ("", text),
    };
    if !body.starts_with("#EXTM3U") {
        return Err(Unparsed::NotHls);
    }
    let mut out = Vec::with_capacity(capacity(input, rw));
    out.extend_from_slice(bom.as_bytes());
    // Split the bytes (a plain byte loop beats `str::split_inclusive` on short lines) and
    // take each line back as a `str`: it starts after a `\n`, so on a char boundary.
    let mut at = 0usize;
    for raw in body.as_bytes().split_inclusive(|&b| b == b'\n') {
        let end = at.saturating_add(raw.len());
        match body.get(at..end) {
            Some(raw) => {
                let (line, ending) = split_ending(raw);
                rewrite_line(line, rw, &mut out);
                out.extend_from_slice(ending.as_bytes());
            }
            None => out.extend_from_slice(raw),
        }
        at = end;
    }
    Ok(out)
}

/// The output size, near enough that the buffer rarely grows: the input plus one token
/// parameter per URI line (lines that do not start with `#`, taking one `#` per tag
/// line) and per quoted string (at most one per tag line). The extra is capped at four
/// times the input, so a body of blank lines cannot make a huge allocation (a playlist of
/// very short URIs and a long token may grow the buffer once or twice; that is all).
fn capacity(input: &[u8], rw: &Rewrite<'_>) -> usize {
    let per_uri = rw
        .param
        .len()
        .saturating_add(rw.token.len())
        .saturating_add(2);
    let (mut newlines, mut hashes, mut quotes) = (0usize, 0usize, 0usize);
    // Byte counters over chunks of at most 255 bytes cannot overflow, and vectorise.
    for chunk in input.chunks(255) {
        let (mut n, mut h, mut q) = (0u8, 0u8, 0u8);
        for &b in chunk {
            n = n.wrapping_add(u8::from(b == b'\n'));
            h = h.wrapping_add(u8::from(b == b'#'));
            q = q.wrapping_add(u8::from(b == b'"'));
        }
        newlines += usize::from(n);
        hashes += usize::from(h);
        quotes += usize::from(q);
    }
    let lines = newlines.saturating_add(1);
    let uris = lines
        .saturating_sub(hashes)
        .saturating_add((quotes / 2).min(hashes));
    let extra = uris
        .saturating_mul(per_uri)
        .min(input.len().saturating_mul(4));
    input.len().saturating_add(extra)
}

/// A line without its terminator, and the terminator (`\r\n`, `\n` or nothing).
fn split_ending(raw: &str) -> (&str, &'static str) {
    if let Some(line) = raw.strip_suffix("\r\n") {
        (line, "\r\n")
    } else if let Some(line) = raw.strip_suffix('\n') {
        (line, "\n")
    } else {
        (raw, "")
    }
}

fn is_blank(c: char) -> bool {
    c.is_ascii_whitespace()
}

/// For a tag (the line after its `#`) that carries a URI attribute: the attribute's name
/// and the tag's attribute list.
fn uri_attribute(tag: &str) -> Option<(&'static str, &str)> {
    // Every such tag is an `EXT-X-` tag: `EXTINF` and comments are done without a search.
    if !tag.starts_with("EXT-X-") {
        return None;
    }
    let (name, attrs) = tag.split_once(':')?;
    URI_TAGS
        .iter()
        .find(|(tag_name, _)| *tag_name == name)
        .map(|&(_, attr)| (attr, attrs))
}

/// Append one line (without its terminator), rewritten.
fn rewrite_line(line: &str, rw: &Rewrite<'_>, out: &mut Vec<u8>) {
    let body = line.trim_start_matches(is_blank);
    if body.is_empty() {
        out.extend_from_slice(line.as_bytes());
    } else if let Some(tag) = body.strip_prefix('#') {
        rewrite_tag(line, tag, rw, out);
    } else {
        let uri = body.trim_end_matches(is_blank);
        let lead = line.get(..line.len().saturating_sub(body.len()));
        let trail = body.get(uri.len()..);
        match (rw.uri(uri), lead, trail) {
            (Some(new), Some(lead), Some(trail)) => {
                out.extend_from_slice(lead.as_bytes());
                out.extend_from_slice(new.as_bytes());
                out.extend_from_slice(trail.as_bytes());
            }
            _ => out.extend_from_slice(line.as_bytes()),
        }
    }
}

/// Append a tag or comment line; `tag` is the line after its `#`.
fn rewrite_tag(line: &str, tag: &str, rw: &Rewrite<'_>, out: &mut Vec<u8>) {
    let Some((target, attrs)) = uri_attribute(tag) else {
        out.extend_from_slice(line.as_bytes());
        return;
    };
    // The whole list must parse before anything in it is touched.
    if AttrList::new(attrs).any(|a| a.is_err()) {
        out.extend_from_slice(line.as_bytes());
        return;
    }
    let mark = out.len();
    if !write_attrs(line, attrs, target, rw, out) {
        // Unreachable (offsets come from the same string), but never worth a panic.
        out.truncate(mark);
        out.extend_from_slice(line.as_bytes());
    }
}

/// Append `line`, whose suffix is the attribute list `attrs`, with the quoted values of
/// the attributes named `target` rewritten. False when an offset is not in `line`.
fn write_attrs(line: &str, attrs: &str, target: &str, rw: &Rewrite<'_>, out: &mut Vec<u8>) -> bool {
    let Some(head) = line.get(..line.len().saturating_sub(attrs.len())) else {
        return false;
    };
    out.extend_from_slice(head.as_bytes());
    let mut copied = 0;
    for attr in AttrList::new(attrs).flatten() {
        if !attr.quoted || attr.name != target {
            continue;
        }
        let Some(new) = rw.uri(attr.value) else {
            continue;
        };
        let Some(between) = attrs.get(copied..attr.start) else {
            return false;
        };
        out.extend_from_slice(between.as_bytes());
        out.extend_from_slice(new.as_bytes());
        copied = attr.end;
    }
    match attrs.get(copied..) {
        Some(rest) => {
            out.extend_from_slice(rest.as_bytes());
            true
        }
        None => false,
    }
}

/// One `NAME=VALUE` pair of an attribute list.
#[derive(Debug)]
struct Attr<'a> {
    name: &'a str,
    /// The value, without its quotes when it is a quoted string.
    value: &'a str,
    quoted: bool,
    /// Byte offsets of `value` in the attribute list.
    start: usize,
    end: usize,
}

/// The attribute list does not parse.
#[derive(Debug)]
struct Malformed;

/// The pairs of an attribute list (RFC 8216 §4.2), in order; after an error, nothing.
struct AttrList<'a> {
    list: &'a str,
    pos: usize,
    done: bool,
}

impl<'a> AttrList<'a> {
    fn new(list: &'a str) -> Self {
        AttrList {
            list,
            pos: 0,
            done: false,
        }
    }

    fn fail(&mut self) -> Option<Result<Attr<'a>, Malformed>> {
        self.done = true;
        Some(Err(Malformed))
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-'
}

fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

impl<'a> Iterator for AttrList<'a> {
    type Item = Result<Attr<'a>, Malformed>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let bytes = self.list.as_bytes();
        let mut i = skip_blanks(bytes, self.pos);
        if i >= bytes.len() {
            // The end: an empty list, or a trailing comma.
            self.done = true;
            return None;
        }
        let name_start = i;
        while bytes.get(i).copied().is_some_and(is_name_byte) {
            i += 1;
        }
        if i == name_start || bytes.get(i) != Some(&b'=') {
            return self.fail();
        }
        let Some(name) = self.list.get(name_start..i) else {
            return self.fail();
        };
        i += 1;
        let (start, end, quoted);
        if bytes.get(i) == Some(&b'"') {
            start = i + 1;
            let Some(len) = bytes
                .get(start..)
                .and_then(|rest| rest.iter().position(|&b| b == b'"'))
            else {
                return self.fail();
            };
            end = start + len;
            i = end + 1;
            quoted = true;
        } else {
            start = i;
            while let Some(&b) = bytes.get(i) {
                if b == b',' {
                    break;
                }
                if b == b'"' {
                    return self.fail();
                }
                i += 1;
            }
            end = i;
            quoted = false;
        }
        let Some(value) = self.list.get(start..end) else {
            return self.fail();
        };
        i = skip_blanks(bytes, i);
        match bytes.get(i) {
            None => self.done = true,
            Some(b',') => i += 1,
            Some(_) => return self.fail(),
        }
        self.pos = i;
        Some(Ok(Attr {
            name,
            value,
            quoted,
            start,
            end,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: &[&str] = &["cdn.example.com"];

    fn run_bytes(input: &[u8]) -> Result<Vec<u8>, Unparsed> {
        let allow: Vec<String> = ALLOW.iter().map(|s| s.to_string()).collect();
        let rw = Rewrite {
            param: "token",
            token: "T",
            allow_hosts: &allow,
        };
        rewrite(input, &rw)
    }

    fn run(input: &str) -> String {
        let out = run_bytes(input.as_bytes()).expect("parses");
        String::from_utf8(out).expect("utf-8 out")
    }

    #[test]
    fn segment_lines_get_the_token_and_tags_stay() {
        let input = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nseg1.ts\n#EXTINF:6.0,title\n/abs/seg2.ts\n#EXT-X-ENDLIST\n";
        let want = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nseg1.ts?token=T\n#EXTINF:6.0,title\n/abs/seg2.ts?token=T\n#EXT-X-ENDLIST\n";
        assert_eq!(run(input), want);
    }

    #[test]
    fn crlf_and_mixed_line_endings_are_preserved() {
        let input = "#EXTM3U\r\n#EXTINF:4,\r\na.ts\r\n\r\n#EXTINF:4,\nb.ts\n#EXTINF:4,\r\nc.ts\r\n";
        let want = "#EXTM3U\r\n#EXTINF:4,\r\na.ts?token=T\r\n\r\n#EXTINF:4,\nb.ts?token=T\n#EXTINF:4,\r\nc.ts?token=T\r\n";
        assert_eq!(run(input), want);
    }

    #[test]
    fn last_line_without_newline_is_rewritten_without_adding_one() {
        assert_eq!(
            run("#EXTM3U\n#EXTINF:4,\na.ts"),
            "#EXTM3U\n#EXTINF:4,\na.ts?token=T"
        );
        assert_eq!(run("#EXTM3U\r\na.ts\r"), "#EXTM3U\r\na.ts?token=T\r");
        assert_eq!(run("#EXTM3U"), "#EXTM3U");
    }

    #[test]
    fn whitespace_around_a_uri_line_is_kept() {
        assert_eq!(
            run("#EXTM3U\n  a.ts \t\n\t\n   \n"),
            "#EXTM3U\n  a.ts?token=T \t\n\t\n   \n"
        );
    }

    #[test]
    fn bom_is_kept_and_the_header_still_recognised() {
        let input = "\u{FEFF}#EXTM3U\n#EXTINF:4,\na.ts\n";
        assert_eq!(run(input), "\u{FEFF}#EXTM3U\n#EXTINF:4,\na.ts?token=T\n");
    }

    #[test]
    fn not_utf8_and_not_extm3u_are_errors() {
        assert_eq!(run_bytes(b"#EXTM3U\n\xff\xfe.ts\n"), Err(Unparsed::NotUtf8));
        assert_eq!(run_bytes(b"<MPD/>"), Err(Unparsed::NotHls));
        assert_eq!(run_bytes(b""), Err(Unparsed::NotHls));
        assert_eq!(run_bytes(b" #EXTM3U\n"), Err(Unparsed::NotHls));
        assert_eq!(run_bytes(b"\xEF\xBB\xBF\n#EXTM3U\n"), Err(Unparsed::NotHls));
    }

    #[test]
    fn key_and_map_uri_attributes_are_rewritten_in_place() {
        let input = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\",IV=0x0123456789ABCDEF0123456789ABCDEF\n#EXT-X-MAP:URI=\"init.mp4\",BYTERANGE=\"720@0\"\n";
        let want = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin?token=T\",IV=0x0123456789ABCDEF0123456789ABCDEF\n#EXT-X-MAP:URI=\"init.mp4?token=T\",BYTERANGE=\"720@0\"\n";
        assert_eq!(run(input), want);
    }

    #[test]
    fn content_steering_rewrites_server_uri_only() {
        let input =
            "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"steer.json\",PATHWAY-ID=\"CDN-A\"\n";
        let want = "#EXTM3U\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"steer.json?token=T\",PATHWAY-ID=\"CDN-A\"\n";
        assert_eq!(run(input), want);
        // A URI attribute there is not the steering server: untouched.
        let odd = "#EXTM3U\n#EXT-X-CONTENT-STEERING:URI=\"x.json\",SERVER-URI=\"s.json\"\n";
        assert_eq!(
            run(odd),
            "#EXTM3U\n#EXT-X-CONTENT-STEERING:URI=\"x.json\",SERVER-URI=\"s.json?token=T\"\n"
        );
    }

    #[test]
    fn uri_is_matched_as_a_whole_attribute_name_only() {
        let input = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,X-FOO-URI=\"a.m3u8\",SERVER-URI=\"b\",GROUP-ID=\"aud\",URI=\"c.m3u8\"\n";
        let want = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,X-FOO-URI=\"a.m3u8\",SERVER-URI=\"b\",GROUP-ID=\"aud\",URI=\"c.m3u8?token=T\"\n";
        assert_eq!(run(input), want);
    }

    #[test]
    fn tag_names_match_exactly() {
        let input = "#EXTM3U\n#EXT-X-MAPX:URI=\"init.mp4\"\n#ext-x-map:URI=\"init.mp4\"\n#EXT-X-MAP URI=\"init.mp4\"\n#EXT-X-DATERANGE:ID=\"a\",X-URI=\"b\",URI=\"c\"\n";
        assert_eq!(run(input), input);
    }

    #[test]
    fn quoted_values_may_hold_commas_and_equals() {
        let input = "#EXTM3U\n#EXT-X-MEDIA:TYPE=SUBTITLES,NAME=\"English, SDH=yes\",CHARACTERISTICS=\"public.accessibility.describes-music-and-sound,public.x\",URI=\"subs/en,sdh.m3u8\"\n";
        let want = "#EXTM3U\n#EXT-X-MEDIA:TYPE=SUBTITLES,NAME=\"English, SDH=yes\",CHARACTERISTICS=\"public.accessibility.describes-music-and-sound,public.x\",URI=\"subs/en,sdh.m3u8?token=T\"\n";
        assert_eq!(run(input), want);
    }

    #[test]
    fn a_quoted_name_value_that_looks_like_uri_is_not_an_attribute() {
        let input = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"x,URI=\\\"evil\",URI=\"a.m3u8\"\n";
        // There is no escaping in a quoted string: NAME is `x,URI=\` and the `evil"`
        // after it makes the list malformed, so nothing on the line is touched.
        assert_eq!(run(input), input);
        let ok = "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"x,URI=y\",URI=\"a.m3u8\"\n";
        assert_eq!(
            run(ok),
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,NAME=\"x,URI=y\",URI=\"a.m3u8?token=T\"\n"
        );
    }

    #[test]
    fn malformed_attribute_lists_leave_the_line_untouched() {
        for line in [
            "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin",
            "#EXT-X-KEY:METHOD=AES-128,URI=\"key.bin\"junk",
            "#EXT-X-KEY:METHOD=AES-128,uri=\"key.bin\"",
            "#EXT-X-KEY:METHOD=AES-128,=\"key.bin\"",
            "#EXT-X-KEY:METHOD=AES-128,URI",
            "#EXT-X-KEY:METHOD=AES\"128,URI=\"key.bin\"",
            "#EXT-X-MAP:URI=init.mp4",
            "#EXT-X-MAP:",
            "#EXT-X-MAP:URI=\"\"",
        ] {
            let input = format!("#EXTM3U\n{line}\nseg.ts\n");
            assert_eq!(
                run(&input),
                format!("#EXTM3U\n{line}\nseg.ts?token=T\n"),
                "{line}"
            );
        }
    }

    #[test]
    fn blanks_around_commas_are_tolerated() {
        let input = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128, URI=\"k.bin\" ,IV=0x1 \r\n";
        let want = "#EXTM3U\n#EXT-X-KEY:METHOD=AES-128, URI=\"k.bin?token=T\" ,IV=0x1 \r\n";
        assert_eq!(run(input), want);
    }

    #[test]
    fn fairplay_skd_and_data_keys_stay_untouched() {
        let input = "#EXTM3U\n#EXT-X-KEY:METHOD=SAMPLE-AES,URI=\"skd://twelve\",KEYFORMAT=\"com.apple.streamingkeydelivery\",KEYFORMATVERSIONS=\"1\"\n#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI=\"data:text/plain;base64,AAAA,BBB\",KEYFORMAT=\"urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed\"\n#EXT-X-KEY:METHOD=NONE\n";
        assert_eq!(run(input), input);
    }

    #[test]
    fn foreign_absolute_urls_stay_and_allowed_ones_get_the_token() {
        let input = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttps://other.example.net/v/a.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nhttps://cdn.example.com/v/b.m3u8\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=3,URI=\"//other.example.net/i.m3u8\"\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=4,URI=\"//cdn.example.com/i.m3u8\"\n";
        let want = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nhttps://other.example.net/v/a.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nhttps://cdn.example.com/v/b.m3u8?token=T\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=3,URI=\"//other.example.net/i.m3u8\"\n#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=4,URI=\"//cdn.example.com/i.m3u8?token=T\"\n";
        assert_eq!(run(input), want);
    }

    #[test]
    fn llhls_query_parameters_are_kept_and_the_token_goes_last() {
        let input = "#EXTM3U\n#EXT-X-PART:DURATION=0.33334,URI=\"seg10.part0.m4s?_HLS_x=1\",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg10.part1.m4s\"\n#EXT-X-RENDITION-REPORT:URI=\"../b/live.m3u8?_HLS_msn=10&_HLS_part=1\",LAST-MSN=10,LAST-PART=1\nlive.m3u8?_HLS_msn=10&_HLS_skip=YES\n";
        let want = "#EXTM3U\n#EXT-X-PART:DURATION=0.33334,URI=\"seg10.part0.m4s?_HLS_x=1&token=T\",INDEPENDENT=YES\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg10.part1.m4s?token=T\"\n#EXT-X-RENDITION-REPORT:URI=\"../b/live.m3u8?_HLS_msn=10&_HLS_part=1&token=T\",LAST-MSN=10,LAST-PART=1\nlive.m3u8?_HLS_msn=10&_HLS_skip=YES&token=T\n";
        assert_eq!(run(input), want);
    }

    #[test]
    fn existing_token_parameters_are_replaced_not_doubled() {
        assert_eq!(
            run("#EXTM3U\nseg.ts?token=old&a=1\n#EXT-X-MAP:URI=\"i.mp4?token=old\"\n"),
            "#EXTM3U\nseg.ts?a=1&token=T\n#EXT-X-MAP:URI=\"i.mp4?token=T\"\n"
        );
    }

    #[test]
    fn comments_and_unknown_tags_are_copied() {
        let input = "#EXTM3U\n# a comment with URI=\"x.ts\"\n#EXT-X-FOO:URI=\"x.ts\"\n#EXTINF:4,a.ts\n  # indented comment\n";
        assert_eq!(run(input), input);
    }

    #[test]
    fn indented_tags_are_still_tags() {
        let input = "#EXTM3U\n  #EXT-X-MAP:URI=\"init.mp4\"\n";
        assert_eq!(
            run(input),
            "#EXTM3U\n  #EXT-X-MAP:URI=\"init.mp4?token=T\"\n"
        );
    }

    #[test]
    fn a_uri_line_with_a_fragment_keeps_it_after_the_token() {
        assert_eq!(
            run("#EXTM3U\na.mp4#t=10\n"),
            "#EXTM3U\na.mp4?token=T#t=10\n"
        );
    }

    #[test]
    fn rewriting_is_idempotent() {
        let input =
            "#EXTM3U\r\n#EXT-X-MAP:URI=\"i.mp4\"\r\na.ts?x=1\r\nhttps://cdn.example.com/b.ts#f\n";
        let once = run(input);
        assert_ne!(once, input);
        assert_eq!(run(&once), once);
    }

    #[test]
    fn output_capacity_covers_a_typical_media_playlist_without_much_waste() {
        let allow: Vec<String> = Vec::new();
        let rw = Rewrite {
            param: "token",
            token: "T",
            allow_hosts: &allow,
        };
        let per_uri = "?token=T".len();
        let mut input = String::from("#EXTM3U\n#EXT-X-MAP:URI=\"init.mp4\"\n");
        for i in 0..100 {
            input.push_str(&format!("#EXTINF:4,\nseg{i}.m4s\n"));
        }
        let out = rewrite(input.as_bytes(), &rw).expect("parses");
        assert_eq!(out.len(), input.len() + 101 * per_uri);
        let estimate = capacity(input.as_bytes(), &rw);
        assert!(estimate >= out.len(), "{estimate} < {}", out.len());
        assert!(
            estimate <= out.len() + 2 * per_uri,
            "{estimate} wastes too much"
        );
    }

    #[test]
    fn output_capacity_is_capped_for_bodies_of_blank_lines() {
        let allow: Vec<String> = Vec::new();
        let long_token = "x".repeat(4096);
        let rw = Rewrite {
            param: "token",
            token: &long_token,
            allow_hosts: &allow,
        };
        let input = format!("#EXTM3U{}", "\n".repeat(10_000));
        assert!(capacity(input.as_bytes(), &rw) <= 5 * input.len());
        let out = rewrite(input.as_bytes(), &rw).expect("parses");
        assert_eq!(out, input.as_bytes());
    }

    /// A small deterministic fuzz: mutated playlists never panic, stay UTF-8 when the
    /// input is, and never change the number of line terminators.
    #[test]
    fn mutated_inputs_never_panic_and_keep_their_lines() {
        let seed = "\u{FEFF}#EXTM3U\r\n#EXT-X-KEY:METHOD=AES-128,URI=\"k.bin\",IV=0x01\n#EXT-X-MAP:URI=\"i.mp4\",BYTERANGE=\"1@0\"\n#EXT-X-CONTENT-STEERING:SERVER-URI=\"s.json\"\n#EXTINF:4,\na.ts?x=1#f\n  b.ts  \r\n#EXT-X-PART:URI=\"p,\\\"q\",X=\"\n";
        let alphabet: &[u8] = b"#\",=:?&\r\n URI-AX\xff\xc3\xa9/";
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..(next() % 6) {
                let at = (next() as usize) % (bytes.len() + 1);
                let b = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => bytes.insert(at, b),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ if at < bytes.len() => bytes[at] = b,
                    _ => {}
                }
            }
            if let Ok(out) = run_bytes(&bytes) {
                let count = |v: &[u8]| v.iter().filter(|&&b| b == b'\n').count();
                assert_eq!(count(&out), count(&bytes));
                assert!(std::str::from_utf8(&out).is_ok());
                assert!(out.len() >= bytes.len());
            }
        }
    }
}
