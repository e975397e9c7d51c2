//! DASH MPD rewriting (ISO/IEC 23009-1).
//!
//! The MPD is parsed with quick-xml's borrowed pull parser, only to find *where* the
//! URLs are: the output is the input with those byte ranges replaced, so everything
//! else (declaration, comments, CDATA, processing instructions, DOCTYPE, whitespace,
//! quoting style, namespace prefixes) is byte-identical.
//!
//! What is rewritten (element names matched by local name, any prefix; attribute names
//! exactly, unprefixed):
//! - the text of `BaseURL`, `Location`, `PatchLocation` (only when it is plain text:
//!   content with CDATA, comments or child elements is left alone; surrounding
//!   whitespace is kept, the URL between it is rewritten);
//! - `SegmentTemplate@media`, `@initialization`, `@index`, `@bitstreamSwitching`;
//!   `SegmentURL@media`, `@index`; `@sourceURL` of `Initialization`,
//!   `RepresentationIndex`, `BitstreamSwitching`.
//!
//! Each value is unescaped, given to [`Rewrite::uri`], and written back escaped for its
//! place (`&`, `<`, `>`, the enclosing quote, and `\t`/`\n`/`\r` in attributes). A value
//! `uri` leaves unchanged keeps its original spelling (so rewriting is idempotent). A
//! value with an entity quick-xml cannot resolve (one declared in a DOCTYPE) is left
//! alone. Template identifiers (`$Number$`, `$Time$`, ...) are kept: the token is only
//! appended as a query parameter.
//!
//! `BaseURL` chains: a relative URL resolves against the `BaseURL`s of its ancestors
//! (MPD > Period > AdaptationSet > Representation). A level whose `BaseURL`s include a
//! foreign one (an absolute URL [`Rewrite::is_foreign`] rejects, a relative one under a
//! foreign level, or one that cannot be read) is *foreign*; several sibling `BaseURL`s
//! are CDN alternatives, so one foreign sibling makes the level foreign. A relative URL
//! never gets the token when it may resolve against a foreign base:
//! - a segment URL (template, list, index) when its level (the nearest ancestor that is
//!   not a segment-information element) is foreign, or any level *below* it is (a
//!   template on an AdaptationSet is resolved per Representation);
//! - a relative `BaseURL` when its parent level is foreign;
//! - a relative `Location`/`PatchLocation` when its own level is foreign.
//!
//! Absolute URLs always follow [`Rewrite::uri`]. Decisions are taken after the whole
//! document is read, so a `BaseURL` after its `SegmentTemplate` sibling still counts.
//!
//! Anything that is not UTF-8 is [`Unparsed::NotUtf8`]; anything that is not a
//! well-formed document with a single `MPD` root (quick-xml error, mismatched or
//! missing end tag, text or a second element outside the root, nesting deeper than
//! [`MAX_DEPTH`]) is [`Unparsed::NotMpd`].

use std::borrow::Cow;

use quick_xml::escape::unescape;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::{Rewrite, Unparsed};

/// Deepest element nesting accepted (a real MPD is about 8 levels deep).
pub const MAX_DEPTH: usize = 64;

/// Rewrite every URL-bearing element and attribute of an MPD.
pub fn rewrite(input: &[u8], rw: &Rewrite<'_>) -> Result<Vec<u8>, Unparsed> {
    let text = std::str::from_utf8(input).map_err(|_| Unparsed::NotUtf8)?;
    let scan = Scan::run(text, rw)?;
    let edits = scan.decide(rw);
    splice(input, &edits)
}

/// An element that can hold `BaseURL`s (or any other element: the tree is generic).
struct Node {
    parent: Option<usize>,
    /// A segment-information element: not a level of its own for URL resolution.
    seg: bool,
    has_base: bool,
    /// One of its `BaseURL`s is relative (foreign iff the parent level is).
    base_relative: bool,
    /// One of its `BaseURL`s is foreign by itself (absolute and not allowed, unreadable).
    base_foreign: bool,
}

/// How to tell whether a relative URL may resolve against a foreign base.
#[derive(Clone, Copy)]
enum Rule {
    /// A segment URL: its level, or any level below it, is foreign.
    Subtree(usize),
    /// A `Location`/`PatchLocation`: its level is foreign.
    Level(usize),
    /// A `BaseURL` of a level: the parent level (None = the MPD's own URL) is foreign.
    Parent(Option<usize>),
}

/// A URL value found in the document, decided after the pass.
struct Pending<'a> {
    start: usize,
    end: usize,
    value: Cow<'a, str>,
    /// The enclosing quote of an attribute value; None for element text.
    quote: Option<u8>,
    rule: Rule,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum TextKind {
    BaseUrl,
    Location,
}

/// The content of an open `BaseURL`/`Location`/`PatchLocation`.
struct Capture {
    kind: TextKind,
    /// Byte offset just after the start tag.
    start: usize,
    /// Only text and entity references so far: the raw range can be rewritten.
    simple: bool,
    /// No child element: `acc` holds the value (for the chain decision).
    known: bool,
    /// The content, escaped (text and references as written, CDATA escaped).
    acc: String,
}

struct Frame {
    node: usize,
    capture: Option<Capture>,
}

#[derive(PartialEq, Eq)]
enum RootState {
    Before,
    Open,
    Closed,
}

struct Scan<'a> {
    text: &'a str,
    nodes: Vec<Node>,
    stack: Vec<Frame>,
    pending: Vec<Pending<'a>>,
    root: RootState,
}

const NOT_MPD: Unparsed = Unparsed::NotMpd;

impl<'a> Scan<'a> {
    fn run(text: &'a str, rw: &Rewrite<'_>) -> Result<Self, Unparsed> {
        let mut scan = Scan {
            text,
            nodes: Vec::new(),
            stack: Vec::new(),
            pending: Vec::new(),
            root: RootState::Before,
        };
        let mut reader = Reader::from_str(text);
        // Defaults, stated: mismatched end tags and lone `&` are errors.
        let config = reader.config_mut();
        config.check_end_names = true;
        config.allow_unmatched_ends = false;
        config.allow_dangling_amp = false;
        config.expand_empty_elements = false;
        config.trim_text(false);
        loop {
            let event = reader.read_event().map_err(|_| NOT_MPD)?;
            match event {
                Event::Start(e) => {
                    scan.element(&e, true)?;
                    scan.open(&e)?;
                }
                Event::Empty(e) => scan.element(&e, false)?,
                Event::End(e) => {
                    // `</` precedes the name quick-xml hands out, borrowed from the input.
                    let name = offset_in(text.as_bytes(), &e).ok_or(NOT_MPD)?;
                    scan.close(name.checked_sub(2).ok_or(NOT_MPD)?, rw)?;
                }
                Event::Text(t) => {
                    let raw = std::str::from_utf8(&t).map_err(|_| NOT_MPD)?;
                    if scan.stack.is_empty() {
                        if !raw.bytes().all(is_xml_space) {
                            return Err(NOT_MPD);
                        }
                    } else if let Some(c) = scan.capture() {
                        c.acc.push_str(raw);
                    }
                }
                Event::GeneralRef(r) => {
                    let name = std::str::from_utf8(&r).map_err(|_| NOT_MPD)?;
                    if scan.stack.is_empty() {
                        return Err(NOT_MPD);
                    }
                    if let Some(c) = scan.capture() {
                        c.acc.push('&');
                        c.acc.push_str(name);
                        c.acc.push(';');
                    }
                }
                Event::CData(d) => {
                    let raw = std::str::from_utf8(&d).map_err(|_| NOT_MPD)?;
                    if scan.stack.is_empty() {
                        return Err(NOT_MPD);
                    }
                    if let Some(c) = scan.capture() {
                        c.simple = false;
                        c.acc.push_str(&escape(raw, None));
                    }
                }
                Event::Comment(_) | Event::PI(_) => {
                    if let Some(c) = scan.capture() {
                        c.simple = false;
                    }
                }
                Event::DocType(_) => {
                    if scan.root != RootState::Before {
                        return Err(NOT_MPD);
                    }
                }
                Event::Decl(_) => {}
                Event::Eof => break,
            }
        }
        if scan.root != RootState::Closed || !scan.stack.is_empty() {
            return Err(NOT_MPD);
        }
        Ok(scan)
    }

    /// The capture of the innermost open element, if it is a URL text element.
    fn capture(&mut self) -> Option<&mut Capture> {
        self.stack.last_mut().and_then(|f| f.capture.as_mut())
    }

    /// A start or empty tag: root checks, attributes, `<BaseURL/>`.
    fn element(&mut self, e: &BytesStart<'_>, is_start: bool) -> Result<(), Unparsed> {
        let local = e.local_name();
        let local = local.as_ref();
        match self.root {
            RootState::Closed => return Err(NOT_MPD),
            RootState::Before => {
                if local != b"MPD" {
                    return Err(NOT_MPD);
                }
                self.root = if is_start {
                    RootState::Open
                } else {
                    RootState::Closed
                };
            }
            RootState::Open => {}
        }
        // Whatever URL text element is open now has a child element: not plain text.
        if let Some(c) = self.capture() {
            c.simple = false;
            c.known = false;
        }
        let url_attrs = url_attributes(local);
        let scope = if url_attrs.is_empty() {
            None
        } else {
            self.stack
                .iter()
                .rev()
                .map(|f| f.node)
                .find(|&n| self.nodes.get(n).is_some_and(|node| !node.seg))
        };
        for attr in e.attributes() {
            let attr = attr.map_err(|_| NOT_MPD)?;
            let Some(scope) = scope else { continue };
            if !url_attrs.contains(&attr.key.as_ref()) {
                continue;
            }
            let Cow::Borrowed(raw) = attr.value else {
                return Err(NOT_MPD);
            };
            let start = offset_in(self.text.as_bytes(), raw).ok_or(NOT_MPD)?;
            let end = start + raw.len();
            let bytes = self.text.as_bytes();
            let quote = match (
                start.checked_sub(1).and_then(|i| bytes.get(i)),
                bytes.get(end),
            ) {
                (Some(&q), Some(&q2)) if q == q2 && (q == b'"' || q == b'\'') => q,
                _ => return Err(NOT_MPD),
            };
            self.found(start, end, Some(quote), Rule::Subtree(scope));
        }
        if !is_start && local == b"BaseURL" {
            // `<BaseURL/>`: the parent's base itself.
            if let Some(level) = self.stack.last().map(|f| f.node) {
                if let Some(node) = self.nodes.get_mut(level) {
                    node.has_base = true;
                    node.base_relative = true;
                }
            }
        }
        Ok(())
    }

    /// A start tag (after [`Scan::element`]): push it.
    fn open(&mut self, e: &BytesStart<'_>) -> Result<(), Unparsed> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(NOT_MPD);
        }
        let local = e.local_name();
        let local = local.as_ref();
        let parent = self.stack.last().map(|f| f.node);
        let node = self.nodes.len();
        self.nodes.push(Node {
            parent,
            seg: is_segment_info(local),
            has_base: false,
            base_relative: false,
            base_foreign: false,
        });
        let kind = match local {
            b"BaseURL" => Some(TextKind::BaseUrl),
            b"Location" | b"PatchLocation" => Some(TextKind::Location),
            _ => None,
        };
        let capture = match kind {
            Some(kind) => {
                // The tag's content (name and attributes) is borrowed from the input;
                // its `>` follows.
                let tag = offset_in(self.text.as_bytes(), e).ok_or(NOT_MPD)?;
                let close = tag + e.len();
                if self.text.as_bytes().get(close) != Some(&b'>') {
                    return Err(NOT_MPD);
                }
                let start = close + 1;
                if kind == TextKind::BaseUrl {
                    if let Some(level) = parent.and_then(|p| self.nodes.get_mut(p)) {
                        level.has_base = true;
                    }
                }
                Some(Capture {
                    kind,
                    start,
                    simple: true,
                    known: true,
                    acc: String::new(),
                })
            }
            None => None,
        };
        self.stack.push(Frame { node, capture });
        Ok(())
    }

    /// An end tag starting at byte `end` (quick-xml checked that its name matches).
    fn close(&mut self, end: usize, rw: &Rewrite<'_>) -> Result<(), Unparsed> {
        let frame = self.stack.pop().ok_or(NOT_MPD)?;
        if self.stack.is_empty() {
            self.root = RootState::Closed;
        }
        let Some(capture) = frame.capture else {
            return Ok(());
        };
        let bytes = self.text.as_bytes();
        if end < capture.start || bytes.get(end..end.saturating_add(2)) != Some(b"</") {
            return Err(NOT_MPD);
        }
        let level = self.nodes.get(frame.node).and_then(|n| n.parent);
        // The value as written, and its trimmed range when it can be rewritten in place.
        let (value, range): (Option<Cow<'a, str>>, Option<(usize, usize)>) = if capture.simple {
            let raw = self.text.get(capture.start..end).ok_or(NOT_MPD)?;
            let lead = raw.len() - raw.trim_start_matches(is_xml_space_char).len();
            let trimmed = raw.trim_matches(is_xml_space_char);
            let s = capture.start + lead;
            let e = s + trimmed.len();
            let text: &'a str = self.text;
            let trimmed = text.get(s..e).ok_or(NOT_MPD)?;
            (unescape(trimmed).ok(), Some((s, e)))
        } else if capture.known {
            let v = unescape(capture.acc.trim_matches(is_xml_space_char))
                .ok()
                .map(|v| Cow::Owned(v.into_owned()));
            (v, None)
        } else {
            (None, None)
        };
        match capture.kind {
            TextKind::BaseUrl => {
                let Some(level) = level else {
                    return Err(NOT_MPD);
                };
                let parent = self.nodes.get(level).and_then(|n| n.parent);
                if let Some(node) = self.nodes.get_mut(level) {
                    match value.as_deref() {
                        None => node.base_foreign = true,
                        Some(v) if is_relative(v) => node.base_relative = true,
                        Some(v) if rw.is_foreign(v) => node.base_foreign = true,
                        Some(_) => {}
                    }
                }
                if let (Some(value), Some((s, e))) = (value, range) {
                    self.push(s, e, value, None, Rule::Parent(parent));
                }
            }
            TextKind::Location => {
                if let (Some(level), Some(value), Some((s, e))) = (level, value, range) {
                    self.push(s, e, value, None, Rule::Level(level));
                }
            }
        }
        Ok(())
    }

    /// An attribute value at `start..end` (raw, escaped): trim, unescape, remember.
    fn found(&mut self, start: usize, end: usize, quote: Option<u8>, rule: Rule) {
        let text: &'a str = self.text;
        let Some(raw) = text.get(start..end) else {
            return;
        };
        let lead = raw.len() - raw.trim_start_matches(is_xml_space_char).len();
        let trimmed = raw.trim_matches(is_xml_space_char);
        let s = start + lead;
        let e = s + trimmed.len();
        let Some(trimmed) = text.get(s..e) else {
            return;
        };
        if let Ok(value) = unescape(trimmed) {
            self.push(s, e, value, quote, rule);
        }
    }

    fn push(
        &mut self,
        start: usize,
        end: usize,
        value: Cow<'a, str>,
        quote: Option<u8>,
        rule: Rule,
    ) {
        if value.is_empty() {
            return;
        }
        self.pending.push(Pending {
            start,
            end,
            value,
            quote,
            rule,
        });
    }

    /// The replacements, in document order.
    fn decide(&self, rw: &Rewrite<'_>) -> Vec<(usize, usize, String)> {
        // foreign[i]: relative URLs resolved at level i may reach a foreign host.
        let mut foreign: Vec<bool> = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let inherited = node
                .parent
                .and_then(|p| foreign.get(p).copied())
                .unwrap_or(false);
            foreign.push(if node.has_base {
                node.base_foreign || (node.base_relative && inherited)
            } else {
                inherited
            });
        }
        // below[i]: level i or a level under it (with BaseURLs of its own) is foreign.
        let mut below: Vec<bool> = self
            .nodes
            .iter()
            .zip(&foreign)
            .map(|(n, &f)| n.has_base && f)
            .collect();
        for i in (0..self.nodes.len()).rev() {
            if below.get(i).copied().unwrap_or(false) {
                if let Some(p) = self.nodes.get(i).and_then(|n| n.parent) {
                    if let Some(b) = below.get_mut(p) {
                        *b = true;
                    }
                }
            }
        }
        let at = |v: &Vec<bool>, i: usize| v.get(i).copied().unwrap_or(true);
        let mut edits = Vec::with_capacity(self.pending.len());
        for p in &self.pending {
            let tainted = match p.rule {
                Rule::Subtree(i) => at(&foreign, i) || at(&below, i),
                Rule::Level(i) => at(&foreign, i),
                Rule::Parent(Some(i)) => at(&foreign, i),
                Rule::Parent(None) => false,
            };
            let new = if tainted && is_relative(&p.value) {
                None
            } else {
                rw.uri(&p.value)
            };
            if let Some(new) = new {
                if new != p.value {
                    let text = match escape(&new, p.quote) {
                        Cow::Owned(escaped) => escaped,
                        Cow::Borrowed(_) => new,
                    };
                    edits.push((p.start, p.end, text));
                }
            }
        }
        edits.sort_by_key(|e| e.0);
        edits
    }
}

/// Replace each `(start, end)` range of `input` by its text; ranges must not overlap.
fn splice(input: &[u8], edits: &[(usize, usize, String)]) -> Result<Vec<u8>, Unparsed> {
    let extra: usize = edits.iter().map(|e| e.2.len()).sum();
    let mut out = Vec::with_capacity(input.len() + extra);
    let mut pos = 0;
    for (start, end, text) in edits {
        out.extend_from_slice(input.get(pos..*start).ok_or(NOT_MPD)?);
        out.extend_from_slice(text.as_bytes());
        pos = *end;
    }
    out.extend_from_slice(input.get(pos..).ok_or(NOT_MPD)?);
    Ok(out)
}

/// The unprefixed attributes of element `local` that hold a URL.
fn url_attributes(local: &[u8]) -> &'static [&'static [u8]] {
    match local {
        b"SegmentTemplate" => &[b"media", b"initialization", b"index", b"bitstreamSwitching"],
        b"SegmentURL" => &[b"media", b"index"],
        b"Initialization" | b"RepresentationIndex" | b"BitstreamSwitching" => &[b"sourceURL"],
        _ => &[],
    }
}

/// Segment-information elements: their URLs resolve at the enclosing level.
fn is_segment_info(local: &[u8]) -> bool {
    matches!(
        local,
        b"SegmentTemplate"
            | b"SegmentList"
            | b"SegmentBase"
            | b"SegmentURL"
            | b"SegmentTimeline"
            | b"Initialization"
            | b"RepresentationIndex"
            | b"BitstreamSwitching"
    )
}

/// A relative reference (resolves against a base), as [`Rewrite`] classifies it.
fn is_relative(uri: &str) -> bool {
    matches!(super::classify(uri), super::Target::Relative)
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn is_xml_space_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Where `part` (a sub-slice borrowed from `whole`) starts in `whole`.
fn offset_in(whole: &[u8], part: &[u8]) -> Option<usize> {
    let off = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (off.checked_add(part.len())? <= whole.len()).then_some(off)
}

/// `s` escaped for element text (`quote` None) or an attribute value in `quote`s.
fn escape(s: &str, quote: Option<u8>) -> Cow<'_, str> {
    let needs = |c: char| match c {
        '&' | '<' | '>' => true,
        '\t' | '\n' => quote.is_some(),
        '\r' => true,
        '"' => quote == Some(b'"'),
        '\'' => quote == Some(b'\''),
        _ => false,
    };
    if !s.contains(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if !needs(c) {
            out.push(c);
            continue;
        }
        out.push_str(match c {
            '&' => "&amp;",
            '<' => "&lt;",
            '>' => "&gt;",
            '"' => "&quot;",
            '\'' => "&apos;",
            '\t' => "&#9;",
            '\n' => "&#10;",
            _ => "&#13;",
        });
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: &[&str] = &["cdn.example.com"];

    fn go(input: &str) -> Result<String, Unparsed> {
        let allow: Vec<String> = ALLOW.iter().map(|s| s.to_string()).collect();
        let rw = Rewrite {
            param: "token",
            token: "T",
            allow_hosts: &allow,
        };
        rewrite(input.as_bytes(), &rw).map(|v| String::from_utf8(v).expect("utf-8 output"))
    }

    fn ok(input: &str) -> String {
        go(input).expect("rewrites")
    }

    #[test]
    fn ampersand_in_existing_query_is_kept_escaped() {
        let out = ok(
            r#"<MPD><Period><SegmentTemplate media="$Time$.m4s?a=1&amp;b=2" initialization='i.mp4?x=&apos;y&apos;'/></Period></MPD>"#,
        );
        assert_eq!(
            out,
            r#"<MPD><Period><SegmentTemplate media="$Time$.m4s?a=1&amp;b=2&amp;token=T" initialization='i.mp4?x=&apos;y&apos;&amp;token=T'/></Period></MPD>"#
        );
    }

    #[test]
    fn text_content_is_escaped_and_trimmed_whitespace_kept() {
        let out = ok("<MPD><BaseURL>\n  a/b.mp4?x=1&amp;y=&lt;2  </BaseURL><Location>https://cdn.example.com/live.mpd</Location></MPD>");
        assert_eq!(
            out,
            "<MPD><BaseURL>\n  a/b.mp4?x=1&amp;y=&lt;2&amp;token=T  </BaseURL><Location>https://cdn.example.com/live.mpd?token=T</Location></MPD>"
        );
    }

    #[test]
    fn foreign_base_url_suppresses_relative_children() {
        let input = r#"<MPD><Period><BaseURL>https://other.example.net/v/</BaseURL><AdaptationSet><BaseURL>sub/</BaseURL><Representation><SegmentTemplate media="$Number$.m4s" initialization="https://cdn.example.com/init.mp4"/></Representation></AdaptationSet></Period><Period><SegmentTemplate media="$Number$.m4s"/></Period></MPD>"#;
        let out = ok(input);
        assert_eq!(
            out,
            r#"<MPD><Period><BaseURL>https://other.example.net/v/</BaseURL><AdaptationSet><BaseURL>sub/</BaseURL><Representation><SegmentTemplate media="$Number$.m4s" initialization="https://cdn.example.com/init.mp4?token=T"/></Representation></AdaptationSet></Period><Period><SegmentTemplate media="$Number$.m4s?token=T"/></Period></MPD>"#
        );
    }

    #[test]
    fn base_url_after_template_and_in_a_child_level_still_counts() {
        // The BaseURL follows its sibling SegmentTemplate.
        let out = ok(
            r#"<MPD><Period><SegmentTemplate media="s.m4s"/><BaseURL>//other.example.net/</BaseURL></Period></MPD>"#,
        );
        assert!(out.contains(r#"media="s.m4s""#), "{out}");
        // A template on the AdaptationSet is used by a Representation with a foreign base.
        let out = ok(
            r#"<MPD><Period><AdaptationSet><SegmentTemplate media="s.m4s"/><Representation id="a"><BaseURL>http://other.example.net/</BaseURL></Representation><Representation id="b"/></AdaptationSet></Period></MPD>"#,
        );
        assert!(out.contains(r#"media="s.m4s""#), "{out}");
    }

    #[test]
    fn one_foreign_sibling_base_url_makes_the_level_foreign() {
        let out = ok(
            r#"<MPD><BaseURL>https://cdn.example.com/a/</BaseURL><BaseURL>https://other.example.net/a/</BaseURL><Period><SegmentTemplate media="s.m4s"/></Period></MPD>"#,
        );
        assert_eq!(
            out,
            r#"<MPD><BaseURL>https://cdn.example.com/a/?token=T</BaseURL><BaseURL>https://other.example.net/a/</BaseURL><Period><SegmentTemplate media="s.m4s"/></Period></MPD>"#
        );
    }

    #[test]
    fn allowed_absolute_base_url_gets_the_token_and_keeps_children_clean() {
        let out = ok(
            r#"<MPD><BaseURL>https://other.example.net/</BaseURL><Period><BaseURL>https://cdn.example.com/v/</BaseURL><SegmentList><SegmentURL media="1.m4s" mediaRange="0-99"/></SegmentList></Period></MPD>"#,
        );
        assert_eq!(
            out,
            r#"<MPD><BaseURL>https://other.example.net/</BaseURL><Period><BaseURL>https://cdn.example.com/v/?token=T</BaseURL><SegmentList><SegmentURL media="1.m4s?token=T" mediaRange="0-99"/></SegmentList></Period></MPD>"#
        );
    }

    #[test]
    fn relative_base_url_under_a_foreign_one_is_untouched() {
        let out = ok(
            r#"<MPD><BaseURL>https://other.example.net/</BaseURL><Period><BaseURL>p1/</BaseURL></Period></MPD>"#,
        );
        assert!(out.contains("<BaseURL>p1/</BaseURL>"), "{out}");
    }

    #[test]
    fn namespace_prefixed_elements_are_matched_by_local_name() {
        let out = ok(
            r#"<mpd:MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011"><mpd:BaseURL>v/</mpd:BaseURL><mpd:Period><mpd:SegmentTemplate media="$Number$.m4s" foo:media="x" xmlns:foo="urn:x"/></mpd:Period></mpd:MPD>"#,
        );
        assert_eq!(
            out,
            r#"<mpd:MPD xmlns:mpd="urn:mpeg:dash:schema:mpd:2011"><mpd:BaseURL>v/?token=T</mpd:BaseURL><mpd:Period><mpd:SegmentTemplate media="$Number$.m4s?token=T" foo:media="x" xmlns:foo="urn:x"/></mpd:Period></mpd:MPD>"#
        );
    }

    #[test]
    fn comments_cdata_and_pis_are_untouched() {
        let input = "<?xml version=\"1.0\"?>\n<!-- <BaseURL>x/</BaseURL> --><MPD><?pi <BaseURL>y/</BaseURL>?><BaseURL><![CDATA[z/]]></BaseURL><BaseURL>a<!-- c -->b/</BaseURL><Period><BaseURL></BaseURL><BaseURL/></Period></MPD>\n";
        assert_eq!(ok(input), input);
    }

    #[test]
    fn cdata_base_url_value_still_decides_the_chain() {
        let out = ok(
            r#"<MPD><BaseURL><![CDATA[https://other.example.net/]]></BaseURL><Period><SegmentTemplate media="s.m4s"/></Period></MPD>"#,
        );
        assert!(out.contains(r#"media="s.m4s""#), "{out}");
        let out = ok(
            r#"<MPD><BaseURL><![CDATA[https://cdn.example.com/]]></BaseURL><Period><SegmentTemplate media="s.m4s"/></Period></MPD>"#,
        );
        assert!(out.contains(r#"media="s.m4s?token=T""#), "{out}");
    }

    #[test]
    fn existing_token_param_is_replaced() {
        let out = ok(
            r#"<MPD><Period><SegmentList><Initialization sourceURL="init.mp4?token=old&amp;v=1"/><SegmentURL media="1.m4s?Token=old" index="1.sidx"/></SegmentList></Period></MPD>"#,
        );
        assert_eq!(
            out,
            r#"<MPD><Period><SegmentList><Initialization sourceURL="init.mp4?v=1&amp;token=T"/><SegmentURL media="1.m4s?token=T" index="1.sidx?token=T"/></SegmentList></Period></MPD>"#
        );
    }

    #[test]
    fn only_the_listed_places_are_rewritten() {
        let input = r#"<MPD profiles="urn:x" xmlns:xlink="http://www.w3.org/1999/xlink"><UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="/time"/><Period xlink:href="p.xml"><AssetIdentifier value="a.m4s"/><AdaptationSet><ContentProtection value="k.m4s"/><Representation id="r" media="x.m4s"/></AdaptationSet></Period></MPD>"#;
        assert_eq!(ok(input), input);
    }

    #[test]
    fn non_http_and_foreign_values_are_untouched() {
        let input = r#"<MPD><Period><SegmentTemplate media="urn:foo" initialization="https://other.example.net/i.mp4"/></Period></MPD>"#;
        assert_eq!(ok(input), input);
    }

    #[test]
    fn rewriting_is_idempotent_even_with_unusual_escaping() {
        let once = ok(
            r#"<MPD><Period><SegmentTemplate media="s.m4s?a=1&#38;b=&quot;2&quot;" index='i?q="x"'/></Period></MPD>"#,
        );
        assert_eq!(
            once,
            r#"<MPD><Period><SegmentTemplate media="s.m4s?a=1&amp;b=&quot;2&quot;&amp;token=T" index='i?q="x"&amp;token=T'/></Period></MPD>"#
        );
        assert_eq!(ok(&once), once);
    }

    #[test]
    fn malformed_xml_is_not_mpd() {
        for bad in [
            "",
            "   ",
            "<MPD>",
            "<MPD><Period></MPD>",
            "<MPD></Period></MPD>",
            "<MPD a=b/>",
            "<MPD a=\"1\" a=\"2\"/>",
            "<MPD>&bogus</MPD>",
            "<MPD><BaseURL>x</BaseURL",
            "<MPD/><MPD/>",
            "<MPD/>trailing",
            "text<MPD/>",
            "<MPD><!DOCTYPE x></MPD>",
        ] {
            assert_eq!(go(bad), Err(Unparsed::NotMpd), "{bad:?}");
        }
    }

    #[test]
    fn mismatched_end_tag_is_not_mpd() {
        assert_eq!(
            go("<MPD><Period><BaseURL>a/</Period></BaseURL></MPD>"),
            Err(Unparsed::NotMpd)
        );
        assert_eq!(go("<MPD></mpd>"), Err(Unparsed::NotMpd));
        assert_eq!(go("<a:MPD></b:MPD>"), Err(Unparsed::NotMpd));
    }

    #[test]
    fn non_mpd_root_is_not_mpd() {
        assert_eq!(
            go("<html><BaseURL>a</BaseURL></html>"),
            Err(Unparsed::NotMpd)
        );
        assert_eq!(go("<?xml version=\"1.0\"?><mpd/>"), Err(Unparsed::NotMpd));
        assert!(go("<?xml version=\"1.0\"?><!DOCTYPE MPD><x:MPD xmlns:x=\"u\"/>").is_ok());
    }

    #[test]
    fn not_utf8() {
        let allow: Vec<String> = Vec::new();
        let rw = Rewrite {
            param: "token",
            token: "T",
            allow_hosts: &allow,
        };
        assert_eq!(rewrite(b"<MPD>\xff</MPD>", &rw), Err(Unparsed::NotUtf8));
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |n: usize| format!("<MPD>{}{}</MPD>", "<a>".repeat(n), "</a>".repeat(n));
        assert!(go(&deep(MAX_DEPTH - 1)).is_ok());
        assert_eq!(go(&deep(MAX_DEPTH)), Err(Unparsed::NotMpd));
        assert_eq!(go(&deep(100_000)), Err(Unparsed::NotMpd));
    }

    #[test]
    fn bom_and_crlf_are_preserved() {
        let input =
            "\u{feff}<?xml version=\"1.0\"?>\r\n<MPD>\r\n<BaseURL>v/</BaseURL>\r\n</MPD>\r\n";
        assert_eq!(
            ok(input),
            "\u{feff}<?xml version=\"1.0\"?>\r\n<MPD>\r\n<BaseURL>v/?token=T</BaseURL>\r\n</MPD>\r\n"
        );
    }

    #[test]
    fn never_panics_on_truncations_of_a_real_mpd() {
        let input = r#"<?xml version="1.0"?><MPD><BaseURL>https://cdn.example.com/a&amp;b/</BaseURL><Period><AdaptationSet><SegmentTemplate media="$Number$.m4s" initialization='i.mp4'/><Representation id="1"><BaseURL><![CDATA[x/]]></BaseURL></Representation></AdaptationSet></Period></MPD>"#;
        let bytes = input.as_bytes();
        for i in 0..bytes.len() {
            let _ = go(std::str::from_utf8(&bytes[..i]).unwrap_or(""));
            let mut cut = bytes.to_vec();
            cut.remove(i);
            if let Ok(s) = std::str::from_utf8(&cut) {
                let _ = go(s);
            }
        }
        assert!(go(input).is_ok());
    }
}
