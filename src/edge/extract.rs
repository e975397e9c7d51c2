//! Token extraction: finds the access token a request carries (path prefix, query, cookie,
//! `Authorization: Bearer`) and tells the caller how to forward the request without it
//! (threat model A3, A10, A12, A13, A16). This module owns the whole carrier rule:
//!
//! - each carrier has exactly one parser, used both to find the token and to remove it,
//!   so the gate and the origin cannot read a request differently;
//! - a token is 1 to `max_len` bytes of the JWT alphabet (the one length check of the
//!   request path); a second, different token is handed on as the *rival* (a page that
//!   appends its own token beside the renewed one a manifest gave the player), and a
//!   third is a conflict — whether the two may stand together is `access.rs`'s rule,
//!   which needs them verified;
//! - what is left after removal must not look like a token to any origin: a parameter
//!   whose name decodes, in any case, with `[]` or spaces, to the token parameter's name
//!   (split on `&` *or* `;`, and in a path segment's `;` parameters) refuses the request.
//!
//! The same rule holds for the credentials of the foreign formats the route accepts
//! ([`FormatCarriers`]: a query parameter and a cookie per field, a header and a path
//! parameter for the first): the parser that finds a field removes it (every carrier
//! of every field), a lookalike of a field's query, path-parameter or cookie name is
//! refused, a field is 1 to `max_len`
//! bytes of visible ASCII, and a second value for a field, a second format, or a
//! native token beside a foreign credential is a conflict.
//!
//! It must not verify, decode, log or store the token, touch hyper types, or
//! re-normalise the path (that is `path.rs`).

use std::borrow::Cow;

use crate::token::foreign::{Carriers, Credential, MAX_FIELDS};
use crate::url::{hex_value, is_token_name_lookalike};

/// Longest token any configuration accepts, in bytes: the ceiling of `token.max_len`.
/// Real JWTs are a few hundred bytes; the bound keeps hostile input from reaching the
/// verifier (threat model A10).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Names of the token carriers and the token's length limit, from configuration. An
/// empty name turns that carrier off rather than matching empty names, which no client
/// could mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenNames {
    /// Path prefix segment: `"t"` means `/t/<token>/…`.
    pub path_prefix: String,
    /// Query parameter name.
    pub query: String,
    /// Cookie name.
    pub cookie: String,
    /// Longest token accepted, in bytes (`token.max_len`, at most [`MAX_TOKEN_LEN`]).
    pub max_len: usize,
}

impl Default for TokenNames {
    fn default() -> Self {
        TokenNames {
            path_prefix: "t".to_owned(),
            query: "token".to_owned(),
            cookie: "tollgate_token".to_owned(),
            max_len: MAX_TOKEN_LEN,
        }
    }
}

/// A foreign format a route accepts, and where its credential travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatCarriers {
    /// Its index among the configured formats.
    pub format: usize,
    pub carriers: Carriers,
}

/// A foreign credential as presented: its format, its fields, where it was found first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForeignPresented<'h> {
    pub format: usize,
    pub credential: Credential<'h>,
    pub source: Source,
}

/// Where a token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Path,
    Query,
    Cookie,
    Header,
}

#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    #[error("different tokens in one request")]
    Conflict,
    #[error("malformed token carrier")]
    Malformed,
    /// Longer than `max_len`: refused before any decoding (threat model A10).
    #[error("token too long")]
    TooLong,
}

/// What `extract` found, and what to forward instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted<'a, 'h> {
    /// The token, if any (None = no token anywhere). It may borrow from the headers,
    /// which live shorter than the path and query the request is forwarded with.
    pub token: Option<&'h str>,
    /// Where it was found first (None when no token).
    pub source: Option<Source>,
    /// A second, different token and where it was first found (see [`Presented::rival`]).
    pub rival: Option<(&'h str, Source)>,
    /// The path with the `/t/<tok>` prefix removed (a sub-slice) and a foreign format's
    /// path parameter removed (a copy, only then). Always starts with '/'.
    pub path: Cow<'a, str>,
    /// The query with every token parameter removed, None when nothing is left or there was
    /// none. Borrowed unless a token parameter sat between two kept ones.
    pub query: Option<Cow<'a, str>>,
    /// True when a Bearer Authorization header carried the token (so the caller drops that
    /// header before forwarding; `is_bearer` tells which headers those are). Also true for
    /// an empty `Bearer` header, which carries no token but is ours, not the origin's.
    pub strip_authorization: bool,
    /// True when a token cookie was present (the caller rewrites Cookie headers with
    /// `strip_cookie`).
    pub strip_cookie: bool,
    /// The foreign credential, if any (never beside a native token).
    pub foreign: Option<ForeignPresented<'h>>,
    /// Foreign cookie and header carriers that were present, for the caller to remove.
    pub strip_foreign: ForeignStrip<'a>,
}

/// Which foreign carriers of the request the origin must not see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignStrip<'a> {
    /// Cookie names (remove with [`strip_cookie`]).
    pub cookies: Vec<&'a str>,
    /// Header names (remove every value).
    pub headers: Vec<&'a str>,
}

/// A token as presented: the part of [`Extracted`] that borrows from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Presented<'h> {
    pub token: &'h str,
    pub source: Source,
    /// A second, different token in the same request. It is never used unverified:
    /// `access.rs` lets the two stand only as two copies of one session (same `jti`,
    /// both verified and in scope), and then uses the fresher; otherwise `conflict`.
    pub rival: Option<(&'h str, Source)>,
}

/// What the origin may see of the target, and which header carriers to remove: the
/// part of [`Extracted`] that outlives the headers' borrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripped<'a> {
    pub path: Cow<'a, str>,
    pub query: Option<Cow<'a, str>>,
    pub strip_authorization: bool,
    pub strip_cookie: bool,
    pub strip_foreign: ForeignStrip<'a>,
}

impl<'a, 'h> Extracted<'a, 'h> {
    /// Split into the token (borrowing the headers) and the rest, so the headers can be
    /// rewritten for the origin once the token has been checked.
    pub fn split(
        self,
    ) -> (
        Option<Presented<'h>>,
        Option<ForeignPresented<'h>>,
        Stripped<'a>,
    ) {
        let presented = self
            .token
            .zip(self.source)
            .map(|(token, source)| Presented {
                token,
                source,
                rival: self.rival,
            });
        let stripped = Stripped {
            path: self.path,
            query: self.query,
            strip_authorization: self.strip_authorization,
            strip_cookie: self.strip_cookie,
            strip_foreign: self.strip_foreign,
        };
        (presented, self.foreign, stripped)
    }
}

/// The path the route is found by: `path` without a `/<prefix>/<token>` segment pair.
/// The caller needs the route before [`extract`] (whose carriers depend on it); the
/// route is then found again on [`Stripped::path`], which is the same text.
pub fn routing_path<'p>(names: &TokenNames, path: &'p str) -> &'p str {
    strip_prefix_segment(path, &names.path_prefix)
        .and_then(|after| after.find('/').map(|end| &after[end..]))
        .unwrap_or(path)
}

/// What the route accepts besides the native token, and the values of its formats'
/// header carriers (`headers[i]`: every value of `formats[i]`'s header).
#[derive(Debug, Clone, Copy, Default)]
pub struct ForeignIn<'n, 'h> {
    pub formats: &'n [FormatCarriers],
    pub headers: &'h [Vec<&'h str>],
}

/// Finds the token in every carrier, in the order path, query, cookie, header.
///
/// `path` is already normalised (see path.rs). `query` is the raw query (no '?').
/// `cookies` are the values of every Cookie header; `authorizations` the values of every
/// Authorization header. Every carrier is read even after a token is found, because a
/// second, different token anywhere must be judged (the rival), and a third is a
/// `Conflict` (threat model A12), never a silent pick. Last, what would be forwarded is
/// checked for token look-alikes.
pub fn extract<'a: 'h, 'h, 'n: 'a>(
    names: &TokenNames,
    foreign: ForeignIn<'n, 'h>,
    path: &'a str,
    query: Option<&'a str>,
    cookies: &[&'h str],
    authorizations: &[&'h str],
) -> Result<Extracted<'a, 'h>, ExtractError> {
    let mut found = Found::new(names.max_len);
    let mut other = ForeignFound::new(names.max_len);

    let path = take_path(&names.path_prefix, path, &mut found)?;
    let path = take_path_params(foreign.formats, path, &mut other)?;
    if let Cow::Owned(kept) = &path {
        // What a removed package uncovers must not be a `/t/<token>/` the gate did not
        // read (`/t;URISigningPackage=…/<token>/x`) nor a bare `/` (a guess).
        if kept == "/" || strip_prefix_segment(kept, &names.path_prefix).is_some() {
            return Err(ExtractError::Malformed);
        }
    }
    let query = match query {
        Some(query) => take_query(names, foreign.formats, query, &mut found, &mut other)?,
        None => None,
    };

    let mut strip_cookie = false;
    let mut strip_foreign = ForeignStrip::default();
    for header in cookies {
        strip_cookie |= take_cookie(names, foreign.formats, header, &mut found, &mut other)?;
    }
    for (i, f) in foreign.formats.iter().enumerate() {
        for (field, cookie) in f.carriers.cookies.iter().enumerate() {
            let seen = other.format == Some(i) && other.cookie_fields & (1 << field) != 0;
            if !cookie.is_empty() && seen {
                strip_foreign.cookies.push(cookie.as_str());
            }
        }
        take_foreign_headers(i, f, foreign.headers.get(i), &mut other, &mut strip_foreign)?;
    }

    let mut strip_authorization = false;
    for header in authorizations {
        if let Some(credentials) = bearer_credentials(header) {
            strip_authorization = true;
            // `Bearer` alone or with only spaces carries no token: the caller answers 401
            // `missing` (threat model A3), not `malformed`.
            if !credentials.is_empty() {
                found.add(credentials, Source::Header)?;
            }
        }
    }

    let mut query_names = foreign
        .formats
        .iter()
        .flat_map(|f| f.carriers.query.iter().chain([&f.carriers.path_param]))
        .map(String::as_str)
        .filter(|name| !name.is_empty())
        .chain([names.query.as_str()]);
    if query_names.any(|name| leaves_a_lookalike(&path, query.as_deref(), name)) {
        return Err(ExtractError::Malformed);
    }
    if found.token.is_some() && other.format.is_some() {
        return Err(ExtractError::Conflict);
    }
    Ok(Extracted {
        token: found.token,
        source: found.source,
        rival: found.rival,
        path,
        query,
        strip_authorization,
        strip_cookie,
        foreign: other.presented(foreign.formats),
        strip_foreign,
    })
}

/// Every value of the header carrier of the route's `i`th format; a header that was
/// there is removed.
fn take_foreign_headers<'a, 'h>(
    i: usize,
    f: &'a FormatCarriers,
    values: Option<&Vec<&'h str>>,
    other: &mut ForeignFound<'h>,
    strip: &mut ForeignStrip<'a>,
) -> Result<(), ExtractError> {
    let Some(values) = values.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    strip.headers.push(f.carriers.header.as_str());
    for value in values {
        other.add(i, 0, value.trim_matches([' ', '\t']), Source::Header)?;
    }
    Ok(())
}

/// The foreign credential seen so far: one format, one value per field.
struct ForeignFound<'h> {
    format: Option<usize>,
    fields: [Option<&'h str>; MAX_FIELDS],
    source: Option<Source>,
    /// Bit `field`: that field's cookie was in the request (of `format`: only one
    /// format can be, `add` refuses a second as a conflict; fields < MAX_FIELDS).
    cookie_fields: u8,
    max_len: usize,
}

impl<'h> ForeignFound<'h> {
    fn new(max_len: usize) -> Self {
        ForeignFound {
            format: None,
            fields: [None; MAX_FIELDS],
            source: None,
            cookie_fields: 0,
            max_len: max_len.min(MAX_TOKEN_LEN),
        }
    }

    /// Take `value` as field `field` of `format`: the first format seen, and the first
    /// value of the field or an equal one.
    fn add(
        &mut self,
        format: usize,
        field: usize,
        value: &'h str,
        source: Source,
    ) -> Result<(), ExtractError> {
        let value = foreign_field(value, self.max_len)?;
        if self.format.is_some_and(|f| f != format) {
            return Err(ExtractError::Conflict);
        }
        let slot = self.fields.get_mut(field).ok_or(ExtractError::Malformed)?;
        match slot {
            Some(seen) if *seen != value => return Err(ExtractError::Conflict),
            _ => *slot = Some(value),
        }
        self.format = Some(format);
        self.source.get_or_insert(source);
        Ok(())
    }

    /// Has the query already given a credential of route format `i`, one whose signed
    /// URL decides alone ([`Carriers::url_over_cookies`])? Its cookies are then removed
    /// but not read.
    fn url_decides(&self, formats: &[FormatCarriers], i: usize) -> bool {
        self.format == Some(i)
            && self.source == Some(Source::Query)
            && formats.get(i).is_some_and(|f| f.carriers.url_over_cookies)
    }

    fn presented(&self, formats: &[FormatCarriers]) -> Option<ForeignPresented<'h>> {
        let format = self.format?;
        Some(ForeignPresented {
            format: formats.get(format)?.format,
            credential: Credential {
                fields: self.fields,
            },
            source: self.source?,
        })
    }
}

/// The route's format (position in its list) and field a cookie name carries.
fn cookie_field(formats: &[FormatCarriers], name: &str) -> Option<(usize, usize)> {
    formats.iter().enumerate().find_map(|(i, f)| {
        let field = f
            .carriers
            .cookies
            .iter()
            .position(|c| !c.is_empty() && c == name)?;
        Some((i, field))
    })
}

/// A foreign field is 1..=`max_len` bytes of visible ASCII: no space, control or
/// non-ASCII byte reaches a format's parser (`431 too_long` beyond the length).
fn foreign_field(value: &str, max_len: usize) -> Result<&str, ExtractError> {
    if value.len() > max_len {
        return Err(ExtractError::TooLong);
    }
    match !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic()) {
        true => Ok(value),
        false => Err(ExtractError::Malformed),
    }
}

/// The route's format (position in its list) and field a query parameter name carries.
fn query_field(formats: &[FormatCarriers], name: &str) -> Option<(usize, usize)> {
    formats.iter().enumerate().find_map(|(i, f)| {
        let field = f.carriers.query.iter().position(|q| q == name)?;
        Some((i, field))
    })
}

/// One Cookie header value with every `name=...` pair removed; None when no pair is left.
///
/// Uses the same splitting and trimming as `extract`, so whatever the gate read as the
/// token cookie is exactly what is removed. Kept pairs are rejoined with `"; "`.
pub fn strip_cookie(header: &str, name: &str) -> Option<String> {
    let mut out = String::with_capacity(header.len());
    for piece in cookie_pieces(header) {
        if cookie_name_value(piece).0 == name {
            continue;
        }
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(piece);
    }
    (!out.is_empty()).then_some(out)
}

/// True when an Authorization header value uses the Bearer scheme, that is, when it is the
/// gate's to consume and must not reach the origin. Other schemes belong to the origin.
pub fn is_bearer(header: &str) -> bool {
    bearer_credentials(header).is_some()
}

/// Would an origin read something the gate forwards as the token parameter? The query
/// split on `&` and `;`, and every path segment's `;` parameters, are checked with
/// [`is_token_name_lookalike`]: a token the gate did not read must not reach the origin.
fn leaves_a_lookalike(path: &str, query: Option<&str>, name: &str) -> bool {
    let in_query = query.is_some_and(|q| {
        q.split(['&', ';'])
            .any(|p| is_token_name_lookalike(p, name))
    });
    let in_path = path.contains(';')
        && path
            .split('/')
            .flat_map(|seg| seg.split(';').skip(1))
            .any(|p| is_token_name_lookalike(p, name));
    in_query || in_path
}

/// The first token seen and where, and at most one other (the rival); every later token
/// must equal one of them.
struct Found<'a> {
    token: Option<&'a str>,
    source: Option<Source>,
    rival: Option<(&'a str, Source)>,
    max_len: usize,
}

impl<'a> Found<'a> {
    fn new(max_len: usize) -> Self {
        Found {
            token: None,
            source: None,
            rival: None,
            max_len: max_len.min(MAX_TOKEN_LEN),
        }
    }

    /// Take `candidate` from `source`: a valid token ([`token`]) that is the first, the
    /// rival, or equal to one of them.
    fn add(&mut self, candidate: &'a str, source: Source) -> Result<(), ExtractError> {
        let token = token(candidate, self.max_len)?;
        let Some(first) = self.token else {
            self.token = Some(token);
            self.source = Some(source);
            return Ok(());
        };
        match self.rival {
            _ if first == token => Ok(()),
            Some((rival, _)) if rival == token => Ok(()),
            None => {
                self.rival = Some((token, source));
                Ok(())
            }
            Some(_) => Err(ExtractError::Conflict),
        }
    }
}

/// A token is 1..=`max_len` bytes of the JWT alphabet (base64url without padding, and the
/// dots). Anything else in a token position is refused rather than guessed at, so no
/// second spelling of the same token (`+`, `/`, `=`, `%XX`) can exist. This is the one
/// length check of the request path: it runs before any decoding.
fn token(candidate: &str, max_len: usize) -> Result<&str, ExtractError> {
    if candidate.len() > max_len {
        return Err(ExtractError::TooLong);
    }
    let valid = !candidate.is_empty()
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(candidate)
    } else {
        Err(ExtractError::Malformed)
    }
}

/// `/<prefix>/<token>/rest` → token and `/rest`. The path is normalised, so the prefix has
/// one spelling and no dot segments can hide in the token segment.
fn take_path<'a: 'h, 'h>(
    prefix: &str,
    path: &'a str,
    found: &mut Found<'h>,
) -> Result<&'a str, ExtractError> {
    let Some(after) = strip_prefix_segment(path, prefix) else {
        return Ok(path);
    };
    // A bare `/t/<tok>` has no resource after it; forwarding `/` would be a guess.
    let Some(end) = after.find('/') else {
        return Err(ExtractError::Malformed);
    };
    found.add(&after[..end], Source::Path)?;
    let rest = &after[end..];
    // `/t/a/t/b/x` would forward a second token-shaped segment to the origin, and the
    // prefix is reserved for the gate anyway; refuse rather than leak it (threat model A13).
    if strip_prefix_segment(rest, prefix).is_some() {
        return Err(ExtractError::Malformed);
    }
    Ok(rest)
}

/// A foreign format's package in the path, as Apache Traffic Server's `uri_signing`
/// plugin reads RFC 9246's: a path parameter (`seg.ts;URISigningPackage=<jwt>`, in any
/// segment), removed with its `;`, or a whole segment (`/a/URISigningPackage=<jwt>/b`),
/// removed with its `/`. It is the format's field 0, and the path that is authorised
/// and forwarded is the path without it. A parameter of that name without `=` is a
/// broken carrier; so is a segment package with a `;` in it. Borrowed unless one was
/// taken. Any other spelling of the name stays, and `leaves_a_lookalike` refuses it.
fn take_path_params<'a: 'h, 'h>(
    formats: &[FormatCarriers],
    path: &'a str,
    other: &mut ForeignFound<'h>,
) -> Result<Cow<'a, str>, ExtractError> {
    let named = |name: &str| {
        formats
            .iter()
            .position(|f| !f.carriers.path_param.is_empty() && f.carriers.path_param == name)
    };
    if !path.contains([';', '=']) || !formats.iter().any(|f| !f.carriers.path_param.is_empty()) {
        return Ok(Cow::Borrowed(path));
    }
    let mut kept = String::with_capacity(path.len());
    let mut took = false;
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            let package = segment
                .split_once('=')
                .and_then(|(n, v)| Some((named(n)?, v)));
            if let Some((format, value)) = package {
                if value.contains(';') {
                    return Err(ExtractError::Malformed);
                }
                other.add(format, 0, value, Source::Path)?;
                took = true;
                continue;
            }
            if segment_looks_like_a_package(segment, formats) {
                return Err(ExtractError::Malformed);
            }
            kept.push('/');
        }
        took |= take_segment_params(segment, &named, &mut kept, other)?;
    }
    match (took, kept.is_empty()) {
        (false, _) => Ok(Cow::Borrowed(path)),
        // `/URISigningPackage=…` alone names no resource; forwarding `/` would be a guess.
        (true, true) => Err(ExtractError::Malformed),
        (true, false) => Ok(Cow::Owned(kept)),
    }
}

/// A whole segment `<name>=…` whose name is another spelling of a format's package name
/// (`urisigningpackage=`, `URISigning%50ackage=`): an origin reading packages after a
/// `/` could take it for one the gate did not read.
fn segment_looks_like_a_package(segment: &str, formats: &[FormatCarriers]) -> bool {
    let head = segment.split(';').next().unwrap_or("");
    head.contains('=')
        && formats.iter().any(|f| {
            !f.carriers.path_param.is_empty()
                && is_token_name_lookalike(head, &f.carriers.path_param)
        })
}

/// One segment's `;` parameters: a package is taken, the rest is appended to `kept`.
/// True when one was taken.
fn take_segment_params<'h>(
    segment: &'h str,
    named: &dyn Fn(&str) -> Option<usize>,
    kept: &mut String,
    other: &mut ForeignFound<'h>,
) -> Result<bool, ExtractError> {
    let start = kept.len();
    let mut params = segment.split(';');
    kept.push_str(params.next().unwrap_or(""));
    let mut took = false;
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (param, None),
        };
        match named(name) {
            Some(format) => {
                let value = value.ok_or(ExtractError::Malformed)?;
                other.add(format, 0, value, Source::Path)?;
                took = true;
            }
            None => {
                kept.push(';');
                kept.push_str(param);
            }
        }
    }
    // `a/..;URISigningPackage=…/b` was normalised with `..;…` as a name; without the
    // parameter it would be a dot segment the origin resolves (threat model L7), and an
    // empty one a `//`. Refused, not re-normalised.
    if took && matches!(&kept[start..], "" | "." | "..") {
        return Err(ExtractError::Malformed);
    }
    Ok(took)
}

/// `path` without a leading `/<prefix>/`, if it has one. No allocation: the check is done
/// piecewise instead of building `"/t/"`.
fn strip_prefix_segment<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return None;
    }
    path.strip_prefix('/')?
        .strip_prefix(prefix)?
        .strip_prefix('/')
}

/// Finds and removes token parameters in one pass of one parser (threat model A16).
///
/// Parameters are split on `&` only. `;` is not a separator: treating it as one here but
/// not at the origin (or the reverse) is exactly the confusion A16 is about, so a value
/// with `;` is forwarded byte for byte.
fn take_query<'a: 'h, 'h>(
    names: &TokenNames,
    formats: &[FormatCarriers],
    query: &'a str,
    found: &mut Found<'h>,
    other: &mut ForeignFound<'h>,
) -> Result<Option<Cow<'a, str>>, ExtractError> {
    let name = names.query.as_str();
    let mut kept = Kept::new(query);
    let mut offset = 0;
    for param in query.split('&') {
        let start = offset;
        offset += param.len() + 1;
        let (param_name, value) = match param.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (param, None),
        };
        if !name.is_empty() && param_name == name {
            // `token` or `token=` is a broken carrier, not an absent one.
            let value = value.ok_or(ExtractError::Malformed)?;
            found.add(value, Source::Query)?;
            kept.skip();
        } else if let Some((format, field)) = query_field(formats, param_name) {
            let value = value.ok_or(ExtractError::Malformed)?;
            other.add(format, field, value, Source::Query)?;
            kept.skip();
        } else {
            // Other spellings of the name (`%74oken=`, `Token=`) are kept here and refused
            // by `leaves_a_lookalike`, the one rule for them.
            kept.keep(start, start + param.len());
        }
    }
    Ok(kept.finish())
}

/// The query being rebuilt. Kept parameters that are contiguous in the original stay a
/// borrowed range; only a token parameter between two kept ones forces a copy.
struct Kept<'a> {
    src: &'a str,
    range: Option<(usize, usize)>,
    owned: Option<String>,
    /// A parameter was removed since the last kept one.
    gap: bool,
}

impl<'a> Kept<'a> {
    fn new(src: &'a str) -> Self {
        Kept {
            src,
            range: None,
            owned: None,
            gap: false,
        }
    }

    fn skip(&mut self) {
        self.gap = self.range.is_some();
    }

    fn keep(&mut self, start: usize, end: usize) {
        let param = &self.src[start..end];
        match (&mut self.owned, self.range) {
            (Some(owned), _) => {
                owned.push('&');
                owned.push_str(param);
            }
            (None, None) => self.range = Some((start, end)),
            (None, Some((first, _))) if !self.gap => self.range = Some((first, end)),
            (None, Some((first, last))) => {
                let mut owned = String::with_capacity(self.src.len());
                owned.push_str(&self.src[first..last]);
                owned.push('&');
                owned.push_str(param);
                self.owned = Some(owned);
            }
        }
        self.gap = false;
    }

    fn finish(self) -> Option<Cow<'a, str>> {
        match (self.owned, self.range) {
            (Some(owned), _) => Some(Cow::Owned(owned)),
            (None, Some((first, last))) if first < last => {
                Some(Cow::Borrowed(&self.src[first..last]))
            }
            // Nothing kept, or only one empty parameter: nothing worth a '?'.
            (None, _) => None,
        }
    }
}

/// True when `raw` is spelled differently from `name` but percent-decodes (with `+` as
/// space, as form decoders do) to it. Allocation-free: decodes and compares byte by byte.
fn decodes_to(raw: &str, name: &str) -> bool {
    if !raw.bytes().any(|b| b == b'%' || b == b'+') {
        // Same bytes were handled as the real name; different bytes cannot decode to it.
        return false;
    }
    let (raw, name) = (raw.as_bytes(), name.as_bytes());
    let mut i = 0;
    let mut j = 0;
    while i < raw.len() {
        let decoded = match raw[i] {
            b'%' => {
                match (
                    raw.get(i + 1).copied().and_then(hex_value),
                    raw.get(i + 2).copied().and_then(hex_value),
                ) {
                    (Some(hi), Some(lo)) => {
                        i += 3;
                        hi << 4 | lo
                    }
                    // Decoders keep a broken escape literally, and a literal '%' cannot
                    // match a configured name, so this is not the name.
                    _ => return false,
                }
            }
            b'+' => {
                i += 1;
                b' '
            }
            b => {
                i += 1;
                b
            }
        };
        if name.get(j) != Some(&decoded) {
            return false;
        }
        j += 1;
    }
    j == name.len()
}

/// Cookie-header pieces: split on `;`, optional whitespace trimmed, empty pieces dropped.
/// Shared by `take_cookie` and `strip_cookie` so they cannot disagree on what a pair is.
fn cookie_pieces(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(';')
        .map(|piece| piece.trim_matches([' ', '\t']))
        .filter(|piece| !piece.is_empty())
}

/// Name and value of one cookie piece, trimmed the way user agents do (RFC 6265 §5.2);
/// a piece without `=` is all name.
fn cookie_name_value(piece: &str) -> (&str, Option<&str>) {
    match piece.split_once('=') {
        Some((name, value)) => (
            name.trim_matches([' ', '\t']),
            Some(value.trim_matches([' ', '\t'])),
        ),
        None => (piece, None),
    }
}

/// Reads the token cookie(s) of one Cookie header. Returns whether a token cookie was there.
fn take_cookie<'a>(
    names: &TokenNames,
    formats: &[FormatCarriers],
    header: &'a str,
    found: &mut Found<'a>,
    other: &mut ForeignFound<'a>,
) -> Result<bool, ExtractError> {
    let name = names.cookie.as_str();
    let mut present = false;
    for piece in cookie_pieces(header) {
        let (cookie_name, value) = cookie_name_value(piece);
        if let Some((i, field)) = cookie_field(formats, cookie_name) {
            let value = value.ok_or(ExtractError::Malformed)?;
            if !other.url_decides(formats, i) {
                other.add(i, field, unquote(value), Source::Cookie)?;
            }
            other.cookie_fields |= 1 << field;
        } else if formats
            .iter()
            .flat_map(|f| f.carriers.cookies.iter())
            .any(|c| !c.is_empty() && decodes_to(cookie_name, c))
        {
            return Err(ExtractError::Malformed);
        } else if name.is_empty() {
            continue;
        } else if cookie_name == name {
            present = true;
            let value = value.ok_or(ExtractError::Malformed)?;
            found.add(unquote(value), Source::Cookie)?;
        } else if decodes_to(cookie_name, name) {
            // Some frameworks decode cookie names; `strip_cookie` would not remove this
            // spelling, so refuse it rather than forward a token (threat model A13, A16).
            return Err(ExtractError::Malformed);
        }
    }
    Ok(present)
}

/// RFC 6265 allows a DQUOTE-wrapped cookie-value; the quotes are not the token.
fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// The credentials of a Bearer Authorization header (possibly empty), or None for any
/// other scheme. The scheme is case-insensitive (RFC 7235 §2.1) and is followed by one or
/// more spaces. A tab after the scheme is left in the credentials, where `token` refuses
/// it, rather than making the header look like some other scheme the origin would get.
fn bearer_credentials(header: &str) -> Option<&str> {
    let header = header.trim_start_matches([' ', '\t']);
    let scheme_end = header.find([' ', '\t']).unwrap_or(header.len());
    let (scheme, rest) = header.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case("Bearer") {
        return None;
    }
    Some(rest.trim_start_matches(' ').trim_end_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl-_A";
    const B: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJiIn0.b3RoZXI";
    const C: &str = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJjIn0.dGhpcmQ";

    /// Path, query, cookie headers, authorization headers.
    type Request<'a> = (&'a str, Option<&'a str>, &'a [&'a str], &'a [&'a str]);

    fn run<'a>(
        path: &'a str,
        query: Option<&'a str>,
        cookies: &[&'a str],
        auths: &[&'a str],
    ) -> Result<Extracted<'a, 'a>, ExtractError> {
        extract(
            &TokenNames::default(),
            ForeignIn::default(),
            path,
            query,
            cookies,
            auths,
        )
    }

    fn ok<'a>(
        path: &'a str,
        query: Option<&'a str>,
        cookies: &[&'a str],
        auths: &[&'a str],
    ) -> Extracted<'a, 'a> {
        match run(path, query, cookies, auths) {
            Ok(e) => e,
            Err(err) => panic!("{path:?} {query:?} {cookies:?} {auths:?} failed: {err}"),
        }
    }

    fn query_only(query: &str) -> Result<Extracted<'_, '_>, ExtractError> {
        run("/vod/a/x.ts", Some(query), &[], &[])
    }

    #[test]
    fn no_carrier_means_no_token_and_everything_borrowed() {
        let e = ok(
            "/vod/a/x.ts",
            Some("a=1&b=2"),
            &["x=1"],
            &["Basic dXNlcjpwYXNz"],
        );
        assert_eq!(e.token, None);
        assert_eq!(e.source, None);
        assert!(matches!(e.path, Cow::Borrowed("/vod/a/x.ts")));
        assert!(matches!(e.query, Some(Cow::Borrowed("a=1&b=2"))));
        assert!(!e.strip_authorization);
        assert!(!e.strip_cookie);
    }

    #[test]
    fn token_alphabet_is_enforced_in_every_position() {
        let bad = [
            "a+b", "a/b", "abc=", "a%2Db", "a b", "a\"b", "a;b", "é", "a,b", "a\tb",
        ];
        for t in bad {
            let q = format!("token={t}");
            assert_eq!(query_only(&q), Err(ExtractError::Malformed), "query {t:?}");
            // ';' separates cookies, so in a Cookie header "a;b" is the token "a" and a
            // cookie named "b": covered by cookie_token_is_found_among_other_cookies.
            if !t.contains(';') {
                let c = format!("tollgate_token={t}");
                assert_eq!(
                    run("/x", None, &[c.as_str()], &[]),
                    Err(ExtractError::Malformed),
                    "cookie {t:?}"
                );
            }
            let h = format!("Bearer {t}");
            assert_eq!(
                run("/x", None, &[], &[h.as_str()]),
                Err(ExtractError::Malformed),
                "header {t:?}"
            );
        }
        // '/' cannot be tested in the path carrier: it ends the segment.
        for t in ["a+b", "abc=", "a%2Db", "a;b", "a,b"] {
            let p = format!("/t/{t}/x");
            assert_eq!(
                run(&p, None, &[], &[]),
                Err(ExtractError::Malformed),
                "path {t:?}"
            );
        }
    }

    #[test]
    fn token_length_is_bounded() {
        let longest = "a".repeat(MAX_TOKEN_LEN);
        let q = format!("token={longest}");
        assert_eq!(
            query_only(&q).map(|e| e.token.map(str::len)),
            Ok(Some(MAX_TOKEN_LEN))
        );
        let too_long = format!("token={}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(query_only(&too_long), Err(ExtractError::TooLong));
    }

    #[test]
    fn a10_the_configured_max_len_bounds_every_carrier() {
        let names = TokenNames {
            max_len: 8,
            ..TokenNames::default()
        };
        // The token `t` in each carrier in turn: (path, query, cookies, authorizations).
        type Carried = (String, Option<String>, Vec<String>, Vec<String>);
        let in_each = |t: &str| -> Vec<Carried> {
            vec![
                (format!("/t/{t}/x"), None, vec![], vec![]),
                ("/x".into(), Some(format!("token={t}")), vec![], vec![]),
                (
                    "/x".into(),
                    None,
                    vec![format!("tollgate_token={t}")],
                    vec![],
                ),
                ("/x".into(), None, vec![], vec![format!("Bearer {t}")]),
            ]
        };
        for (t, want) in [
            ("abcdefgh", Ok(Some("abcdefgh"))),
            ("abcdefghi", Err(ExtractError::TooLong)),
        ] {
            for (path, query, cookies, auths) in in_each(t) {
                let cookies: Vec<&str> = cookies.iter().map(String::as_str).collect();
                let auths: Vec<&str> = auths.iter().map(String::as_str).collect();
                let got = extract(
                    &names,
                    ForeignIn::default(),
                    &path,
                    query.as_deref(),
                    &cookies,
                    &auths,
                );
                assert_eq!(
                    got.map(|e| e.token),
                    want,
                    "{path} {query:?} {cookies:?} {auths:?}"
                );
            }
        }
    }

    #[test]
    fn path_prefix_token_is_found_and_removed() {
        let p = format!("/t/{A}/vod/a/x.ts");
        let e = ok(&p, None, &[], &[]);
        assert_eq!(e.token, Some(A));
        assert_eq!(e.source, Some(Source::Path));
        assert!(matches!(e.path, Cow::Borrowed("/vod/a/x.ts")));
        let root = format!("/t/{A}/");
        assert_eq!(ok(&root, None, &[], &[]).path, "/");
    }

    #[test]
    fn path_prefix_without_a_rest_or_token_is_malformed() {
        let bare = format!("/t/{A}");
        for p in [bare.as_str(), "/t//x", "/t/"] {
            assert_eq!(
                run(p, None, &[], &[]),
                Err(ExtractError::Malformed),
                "{p:?}"
            );
        }
    }

    #[test]
    fn a13_nested_path_prefix_is_malformed_so_no_second_token_reaches_the_origin() {
        let p = format!("/t/{A}/t/{B}/x");
        assert_eq!(run(&p, None, &[], &[]), Err(ExtractError::Malformed));
    }

    #[test]
    fn paths_that_only_resemble_the_prefix_are_left_alone() {
        for p in ["/t", "/tt/abc/x", "/vod/t/abc/x", "/T/abc/x"] {
            let e = ok(p, None, &[], &[]);
            assert_eq!(e.token, None, "{p:?}");
            assert_eq!(e.path, p);
        }
    }

    #[test]
    fn configured_names_are_used() {
        let names = TokenNames {
            path_prefix: "auth".into(),
            query: "jwt".into(),
            cookie: "sess".into(),
            max_len: MAX_TOKEN_LEN,
        };
        let p = format!("/auth/{A}/x");
        let q = format!("token=zzz&jwt={A}");
        let e = extract(&names, ForeignIn::default(), &p, Some(&q), &[], &[]);
        // `token=zzz` is just another parameter under these names.
        let e = e.map(|e| (e.token, e.path.into_owned(), e.query.map(Cow::into_owned)));
        assert_eq!(
            e,
            Ok((Some(A), "/x".to_owned(), Some("token=zzz".to_owned())))
        );
        let c = format!("sess={A}");
        let e = extract(&names, ForeignIn::default(), "/x", None, &[c.as_str()], &[]);
        assert_eq!(e.map(|e| e.source), Ok(Some(Source::Cookie)));
    }

    #[test]
    fn empty_names_turn_a_carrier_off() {
        let names = TokenNames {
            path_prefix: String::new(),
            query: String::new(),
            cookie: String::new(),
            max_len: MAX_TOKEN_LEN,
        };
        let e = extract(
            &names,
            ForeignIn::default(),
            "//x",
            Some("=abc"),
            &["=abc"],
            &[],
        );
        let e = e.map(|e| (e.token, e.query.map(Cow::into_owned), e.strip_cookie));
        assert_eq!(e, Ok((None, Some("=abc".to_owned()), false)));
    }

    #[test]
    fn query_token_is_removed_with_its_separator() {
        let table: [(String, Option<&str>); 9] = [
            (format!("token={A}"), None),
            (format!("token={A}&a=1"), Some("a=1")),
            (format!("a=1&token={A}"), Some("a=1")),
            (format!("a=1&token={A}&b=2"), Some("a=1&b=2")),
            (format!("a=1&&token={A}&b=2"), Some("a=1&&b=2")),
            (
                format!("token={A}&a=1&token={A}&b=2&token={A}"),
                Some("a=1&b=2"),
            ),
            (format!("a=1&token={A}&"), Some("a=1&")),
            (format!("token={A}&"), None),
            (format!("&token={A}&a"), Some("&a")),
        ];
        for (query, want) in &table {
            let e = query_only(query);
            let got = e.map(|e| (e.token, e.source, e.query.map(Cow::into_owned)));
            assert_eq!(
                got,
                Ok((Some(A), Some(Source::Query), want.map(str::to_owned))),
                "query {query:?}"
            );
        }
    }

    #[test]
    fn query_without_a_token_is_forwarded_byte_for_byte_and_borrowed() {
        for q in ["a=1&&b=2", "&", "a=%41&b=c;d", "x", "a=1&"] {
            let e = ok("/x", Some(q), &[], &[]);
            assert!(
                matches!(e.query, Some(Cow::Borrowed(got)) if got == q),
                "{q:?}"
            );
        }
        assert_eq!(ok("/x", Some(""), &[], &[]).query, None);
        assert_eq!(ok("/x", None, &[], &[]).query, None);
    }

    #[test]
    fn query_token_at_either_end_leaves_a_borrowed_query() {
        let q = format!("token={A}&a=1&b=2");
        assert!(matches!(
            query_only(&q).map(|e| e.query),
            Ok(Some(Cow::Borrowed("a=1&b=2")))
        ));
        let q = format!("a=1&b=2&token={A}");
        assert!(matches!(
            query_only(&q).map(|e| e.query),
            Ok(Some(Cow::Borrowed("a=1&b=2")))
        ));
    }

    #[test]
    fn query_token_without_value_is_malformed() {
        for q in ["token", "token=", "a=1&token", "a=1&token=&b=2"] {
            assert_eq!(query_only(q), Err(ExtractError::Malformed), "{q:?}");
        }
    }

    #[test]
    fn a12_query_tokens_must_agree() {
        let same = format!("token={A}&token={A}");
        assert_eq!(query_only(&same).map(|e| e.token), Ok(Some(A)));
        let different = format!("token={A}&token={B}");
        assert_eq!(
            query_only(&different).map(|e| (e.token, e.rival, e.query)),
            Ok((Some(A), Some((B, Source::Query)), None))
        );
        let third = format!("token={A}&token={B}&token={A}&token={C}");
        assert_eq!(query_only(&third), Err(ExtractError::Conflict));
    }

    #[test]
    fn a16_spellings_an_origin_reads_as_the_name_are_malformed_and_other_names_pass() {
        // Another case, `[]`, or spaces: a lenient origin reads these as `token`, so the
        // request is refused, never forwarded with a token the gate did not read.
        for q in [
            "Token=abc",
            "token[]=abc",
            "TOKEN=abc",
            " token=abc",
            "a=1;token=abc",
            "a=1&TOKEN=abc&b=2",
        ] {
            assert_eq!(query_only(q), Err(ExtractError::Malformed), "{q:?}");
        }
        // In a path segment's `;` parameters too (Tomcat-style origins read them).
        assert_eq!(
            run("/vod/a;token=abc/x.ts", None, &[], &[]),
            Err(ExtractError::Malformed)
        );
        // Names that only contain or extend it are other parameters, forwarded as sent.
        for q in ["tokens=abc", "xtoken=abc", "a=token", "token_type=abc"] {
            let e = ok("/x", Some(q), &[], &[]);
            assert_eq!(e.token, None, "{q:?}");
            assert_eq!(e.query.as_deref(), Some(q), "{q:?}");
        }
    }

    #[test]
    fn a16_encoded_spellings_of_the_name_are_malformed() {
        for q in [
            "%74oken=abc",
            "%74%6F%6B%65%6E=abc",
            "tok%65n=abc",
            "a=1&toke%6e=abc",
            "%74oken",
        ] {
            assert_eq!(query_only(q), Err(ExtractError::Malformed), "{q:?}");
        }
        // '+' decodes to a space, and an origin trimming names reads `+token` as `token`.
        assert_eq!(query_only("+token=abc"), Err(ExtractError::Malformed));
    }

    #[test]
    fn a16_semicolon_separates_nothing_and_a_token_behind_it_is_refused() {
        // `;` does not split parameters for the gate, so `a=1;token=…` carries no token
        // here — but an origin that splits on `;` would find one: refused, not forwarded.
        let q = format!("a=1;token={A}");
        assert_eq!(query_only(&q), Err(ExtractError::Malformed));
        // Inside the token parameter's value, `;` is outside the token alphabet.
        let q = format!("token={A};a=1");
        assert_eq!(query_only(&q), Err(ExtractError::Malformed));
        // A `;` that hides no token name is forwarded byte for byte.
        let e = ok("/x", Some("a=1;b=2"), &[], &[]);
        assert_eq!(e.query.as_deref(), Some("a=1;b=2"));
    }

    #[test]
    fn a16_encoded_ampersand_is_not_a_separator() {
        let q = format!("a=1%26token={B}&token={A}");
        let e = ok("/x", Some(&q), &[], &[]);
        assert_eq!(e.token, Some(A));
        assert_eq!(
            e.query.as_deref(),
            Some(format!("a=1%26token={B}").as_str())
        );
    }

    #[test]
    fn a13_returned_query_never_contains_the_accepted_token() {
        let queries = [
            format!("token={A}"),
            format!("token={A}&token={A}"),
            format!("a=1&token={A}&b=2&token={A}&c=3"),
            format!("&&token={A}&&"),
            format!("a={B}&token={A}"),
            format!("x=%26&token={A}&y=;"),
        ];
        for q in &queries {
            let e = ok("/x", Some(q), &[], &[]);
            assert_eq!(e.token, Some(A), "{q:?}");
            let left = e.query.as_deref().unwrap_or("");
            assert!(!left.contains(A), "{q:?} leaked the token: {left:?}");
            // No parameter the gate would read as the token survives.
            for param in left.split('&') {
                let name = param.split_once('=').map_or(param, |(n, _)| n);
                assert_ne!(name, "token", "{q:?} -> {left:?}");
                assert!(!decodes_to(name, "token"), "{q:?} -> {left:?}");
            }
        }
        // The accepted token beside other spellings of its name: refused whole.
        let q = format!("token={A}&Token=x&token[]=y");
        assert_eq!(query_only(&q), Err(ExtractError::Malformed));
    }

    #[test]
    fn cookie_token_is_found_among_other_cookies() {
        let c = format!("a=1;  tollgate_token={A} ; b=2");
        let e = ok("/x", None, &["x=y", c.as_str()], &[]);
        assert_eq!(e.token, Some(A));
        assert_eq!(e.source, Some(Source::Cookie));
        assert!(e.strip_cookie);
    }

    #[test]
    fn cookie_token_may_be_quoted() {
        let c = format!("tollgate_token=\"{A}\"");
        assert_eq!(ok("/x", None, &[c.as_str()], &[]).token, Some(A));
    }

    #[test]
    fn cookie_with_other_names_is_ignored() {
        let e = ok(
            "/x",
            None,
            &["Tollgate_Token=abc; tollgate_tokens=abc; a=tollgate_token"],
            &[],
        );
        assert_eq!(e.token, None);
        assert!(!e.strip_cookie);
    }

    #[test]
    fn cookie_token_without_value_or_with_encoded_name_is_malformed() {
        for c in [
            "tollgate_token",
            "tollgate_token=",
            "a=1; tollgate_token=;",
            "tollgate%5Ftoken=abc",
        ] {
            assert_eq!(
                run("/x", None, &[c], &[]),
                Err(ExtractError::Malformed),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a12_cookie_tokens_must_agree() {
        let one = format!("tollgate_token={A}");
        let two = format!("tollgate_token={B}");
        let both = format!("tollgate_token={A}; tollgate_token={B}");
        let three = format!("tollgate_token={C}");
        assert_eq!(
            run("/x", None, &[one.as_str(), one.as_str()], &[]).map(|e| e.token),
            Ok(Some(A))
        );
        let rival = Ok(Some((B, Source::Cookie)));
        assert_eq!(
            run("/x", None, &[one.as_str(), two.as_str()], &[]).map(|e| e.rival),
            rival
        );
        assert_eq!(
            run("/x", None, &[both.as_str()], &[]).map(|e| e.rival),
            rival
        );
        assert_eq!(
            run("/x", None, &[both.as_str(), three.as_str()], &[]),
            Err(ExtractError::Conflict)
        );
    }

    #[test]
    fn a3_bearer_scheme_is_case_insensitive_with_one_or_more_spaces() {
        let table = [
            format!("Bearer {A}"),
            format!("bearer {A}"),
            format!("BEARER {A}"),
            format!("Bearer  {A}"),
            format!("Bearer    {A}  "),
        ];
        for h in &table {
            let e = ok("/x", None, &[], &[h.as_str()]);
            assert_eq!(e.token, Some(A), "{h:?}");
            assert_eq!(e.source, Some(Source::Header), "{h:?}");
            assert!(e.strip_authorization, "{h:?}");
        }
    }

    #[test]
    fn a3_empty_bearer_is_missing_but_still_stripped() {
        for h in ["Bearer", "Bearer ", "bearer    "] {
            let e = ok("/x", None, &[], &[h]);
            assert_eq!(e.token, None, "{h:?}");
            assert!(e.strip_authorization, "{h:?}");
        }
    }

    #[test]
    fn a3_bearer_with_a_tab_is_malformed() {
        let h = format!("Bearer\t{A}");
        assert_eq!(
            run("/x", None, &[], &[h.as_str()]),
            Err(ExtractError::Malformed)
        );
    }

    #[test]
    fn other_authorization_schemes_are_left_for_the_origin() {
        for h in [
            "Basic dXNlcjpwYXNz",
            "Bearerx abc",
            "Digest username=\"a\"",
            "",
        ] {
            let e = ok("/x", None, &[], &[h]);
            assert_eq!(e.token, None, "{h:?}");
            assert!(!e.strip_authorization, "{h:?}");
            assert!(!is_bearer(h), "{h:?}");
        }
        assert!(is_bearer("bearer abc"));
        assert!(is_bearer("Bearer"));
    }

    #[test]
    fn a12_bearer_headers_must_agree() {
        let a = format!("Bearer {A}");
        let b = format!("Bearer {B}");
        assert_eq!(
            run("/x", None, &[], &[a.as_str(), a.as_str()]).map(|e| e.token),
            Ok(Some(A))
        );
        let c = format!("Bearer {C}");
        assert_eq!(
            run("/x", None, &[], &[a.as_str(), b.as_str()]).map(|e| e.rival),
            Ok(Some((B, Source::Header)))
        );
        assert_eq!(
            run("/x", None, &[], &[a.as_str(), b.as_str(), c.as_str()]),
            Err(ExtractError::Conflict)
        );
    }

    /// Token `t` in each carrier: path, query, cookie header, Authorization header.
    fn carriers(t: &str) -> [String; 4] {
        [
            format!("/t/{t}/x"),
            format!("token={t}"),
            format!("tollgate_token={t}"),
            format!("Bearer {t}"),
        ]
    }

    #[test]
    fn a12_same_token_everywhere_reports_the_first_place() {
        let [p, q, c, h] = carriers(A);
        let e = ok(&p, Some(&q), &[c.as_str()], &[h.as_str()]);
        assert_eq!(e.token, Some(A));
        assert_eq!(e.source, Some(Source::Path));
        assert_eq!(e.path, "/x");
        assert_eq!(e.query, None);
        assert!(e.strip_cookie && e.strip_authorization);

        let e = ok("/x", None, &[c.as_str()], &[h.as_str()]);
        assert_eq!(e.source, Some(Source::Cookie));
    }

    #[test]
    fn a12_a_second_token_across_places_is_the_rival_and_a_third_conflicts() {
        let [pa, _, ca, _] = carriers(A);
        let [_, qb, cb, hb] = carriers(B);
        let [_, _, cc, hc] = carriers(C);
        // The first found (path, query, cookie, header) is the token; the other the rival.
        let cases: [(Request<'_>, (&str, Source)); 4] = [
            ((&pa, Some(&qb), &[], &[]), (B, Source::Query)),
            ((&pa, None, &[cb.as_str()], &[]), (B, Source::Cookie)),
            (("/x", Some(&qb), &[ca.as_str()], &[]), (A, Source::Cookie)),
            (
                ("/x", None, &[ca.as_str()], &[hb.as_str()]),
                (B, Source::Header),
            ),
        ];
        for ((p, q, c, h), second) in cases {
            let e = run(p, q, c, h).map(|e| (e.token.is_some(), e.rival));
            assert_eq!(e, Ok((true, Some(second))), "{p:?} {q:?} {c:?} {h:?}");
        }
        let thirds: [Request<'_>; 2] = [
            (&pa, Some(&qb), &[cc.as_str()], &[]),
            ("/x", Some(&qb), &[ca.as_str()], &[hc.as_str()]),
        ];
        for (p, q, c, h) in thirds {
            assert_eq!(run(p, q, c, h), Err(ExtractError::Conflict), "{p:?} {q:?}");
        }
    }

    #[test]
    fn a13_strip_cookie_removes_every_token_pair() {
        let table = [
            ("a=1; tollgate_token=x; b=2", Some("a=1; b=2")),
            ("tollgate_token=x", None),
            ("tollgate_token=x; tollgate_token=x", None),
            (
                "tollgate_token=x;a=1;;  tollgate_token = y ;b=2",
                Some("a=1; b=2"),
            ),
            ("a=1; tollgate_token", Some("a=1")),
            ("a=1; Tollgate_Token=x", Some("a=1; Tollgate_Token=x")),
            ("", None),
        ];
        for (header, want) in table {
            assert_eq!(
                strip_cookie(header, "tollgate_token").as_deref(),
                want,
                "{header:?}"
            );
        }
    }

    #[test]
    fn a13_stripped_cookie_never_carries_a_token_the_gate_read() {
        let headers = [
            format!("a=1; tollgate_token={A}; b={B}"),
            format!("tollgate_token=\"{A}\"; x=1"),
            format!(" tollgate_token ={A} ;tollgate_token={A}"),
        ];
        for h in &headers {
            let e = ok("/x", None, &[h.as_str()], &[]);
            assert_eq!(e.token, Some(A), "{h:?}");
            let left = strip_cookie(h, "tollgate_token").unwrap_or_default();
            assert!(!left.contains(A), "{h:?} -> {left:?}");
            let again = ok("/x", None, &[left.as_str()], &[]);
            assert_eq!(again.token, None, "{h:?} -> {left:?}");
        }
    }

    /// Two formats on a route: secure_link (query `md5`, `expires`) and EdgeAuth
    /// (`hdnts` in query, cookie and header), formats 3 and 5 of the configuration.
    fn formats() -> Vec<FormatCarriers> {
        let carriers = |query: &[&str], other: &str| Carriers {
            query: query.iter().map(|q| q.to_string()).collect(),
            cookies: vec![other.into()],
            header: other.into(),
            ..Carriers::default()
        };
        vec![
            FormatCarriers {
                format: 3,
                carriers: carriers(&["md5", "expires"], ""),
            },
            FormatCarriers {
                format: 5,
                carriers: carriers(&["hdnts"], "hdnts"),
            },
        ]
    }

    fn foreign<'a>(
        query: Option<&'a str>,
        cookies: &[&'a str],
        headers: &'a [Vec<&'a str>],
        formats: &'a [FormatCarriers],
    ) -> Result<Extracted<'a, 'a>, ExtractError> {
        let names = TokenNames::default();
        let foreign = ForeignIn { formats, headers };
        extract(&names, foreign, "/vod/a/x.ts", query, cookies, &[])
    }

    #[test]
    fn i5_foreign_fields_are_found_and_removed_from_every_carrier() {
        let formats = formats();
        let none: Vec<Vec<&str>> = vec![vec![], vec![]];
        let e = foreign(Some("a=1&md5=AbC_-&b=2&expires=99"), &[], &none, &formats).expect("ok");
        let f = e.foreign.expect("credential");
        assert_eq!((f.format, f.source), (3, Source::Query));
        assert_eq!(f.credential, Credential::of(&[Some("AbC_-"), Some("99")]));
        assert_eq!(e.query.as_deref(), Some("a=1&b=2"));
        let e = foreign(None, &["x=1; hdnts=exp=9~acl=/*~hmac=ab"], &none, &formats).expect("ok");
        let f = e.foreign.expect("credential");
        assert_eq!((f.format, f.source), (5, Source::Cookie));
        assert_eq!(f.credential.fields[0], Some("exp=9~acl=/*~hmac=ab"));
        assert_eq!(e.strip_foreign.cookies, vec!["hdnts"]);
        let headers = vec![vec![], vec!["exp=9~acl=/*~hmac=ab"]];
        let e = foreign(None, &[], &headers, &formats).expect("ok");
        assert_eq!(e.foreign.map(|f| f.source), Some(Source::Header));
        assert_eq!(e.strip_foreign.headers, vec!["hdnts"]);
    }

    #[test]
    fn i5_the_cookie_of_a_routes_70th_format_is_still_stripped() {
        let formats: Vec<FormatCarriers> = (0..70)
            .map(|i| FormatCarriers {
                format: i,
                carriers: Carriers {
                    query: vec![format!("q{i}")],
                    cookies: vec![format!("c{i}")],
                    header: String::new(),
                    ..Carriers::default()
                },
            })
            .collect();
        let none: Vec<Vec<&str>> = vec![vec![]; 70];
        let e = foreign(None, &["x=1; c69=exp=9~hmac=ab"], &none, &formats).expect("ok");
        assert_eq!(e.foreign.map(|f| f.format), Some(69));
        assert_eq!(e.strip_foreign.cookies, vec!["c69"]);
    }

    #[test]
    fn i6_foreign_credentials_conflict_with_each_other_and_with_a_native_token() {
        let formats = formats();
        let none: Vec<Vec<&str>> = vec![vec![], vec![]];
        let conflict = Err(ExtractError::Conflict);
        let two_formats = foreign(
            Some("md5=a&expires=1&hdnts=exp=1~hmac=ab"),
            &[],
            &none,
            &formats,
        );
        assert_eq!(two_formats.map(|e| e.foreign), conflict);
        let two_values = foreign(Some("md5=a&md5=b"), &[], &none, &formats);
        assert_eq!(two_values.map(|e| e.foreign), conflict);
        let same_twice = foreign(Some("md5=a&md5=a"), &[], &none, &formats);
        assert!(same_twice.is_ok());
        let with_native = foreign(Some("md5=a&token=abc"), &[], &none, &formats);
        assert_eq!(with_native.map(|e| e.foreign), conflict);
        let headers = vec![vec![], vec!["exp=2~hmac=ab"]];
        let cookie_and_header = foreign(None, &["hdnts=exp=1~hmac=ab"], &headers, &formats);
        assert_eq!(cookie_and_header.map(|e| e.foreign), conflict);
    }

    #[test]
    fn i3_i5_foreign_fields_are_bounded_and_their_lookalikes_refused() {
        let formats = formats();
        let none: Vec<Vec<&str>> = vec![vec![], vec![]];
        let long = format!("hdnts={}", "a".repeat(MAX_TOKEN_LEN + 1));
        assert_eq!(
            foreign(Some(&long), &[], &none, &formats).map(|e| e.foreign),
            Err(ExtractError::TooLong)
        );
        for bad in [
            "md5=",
            "md5",
            "MD5=a",
            "%6d%64%35=a",
            "expires[]=1",
            "hdnts=a%20b c",
        ] {
            assert_eq!(
                foreign(Some(bad), &[], &none, &formats).map(|e| e.foreign),
                Err(ExtractError::Malformed),
                "{bad}"
            );
        }
        let encoded_cookie = foreign(None, &["%68dnts=x"], &none, &formats);
        assert_eq!(
            encoded_cookie.map(|e| e.foreign),
            Err(ExtractError::Malformed)
        );
        // A route without formats reads none of these: they are the origin's.
        let plain = foreign(Some("md5=a&hdnts=b"), &[], &[], &[]).expect("ok");
        assert_eq!(
            (plain.foreign, plain.query.as_deref()),
            (None, Some("md5=a&hdnts=b"))
        );
    }

    /// RFC 9246 URI Signing's carriers: `URISigningPackage` in the query, a cookie and
    /// a path parameter.
    fn uri_signing() -> Vec<FormatCarriers> {
        let package = "URISigningPackage".to_string();
        vec![FormatCarriers {
            format: 9,
            carriers: Carriers {
                query: vec![package.clone()],
                cookies: vec![package.clone()],
                header: String::new(),
                path_param: package,
                url_over_cookies: false,
            },
        }]
    }

    fn at_path<'a>(
        path: &'a str,
        query: Option<&'a str>,
        formats: &'a [FormatCarriers],
    ) -> Result<Extracted<'a, 'a>, ExtractError> {
        let foreign = ForeignIn {
            formats,
            headers: &[],
        };
        extract(&TokenNames::default(), foreign, path, query, &[], &[])
    }

    #[test]
    fn l7_a_package_in_the_path_is_taken_and_removed_from_the_path() {
        let formats = uri_signing();
        for (path, left) in [
            ("/us/a/seg.ts;URISigningPackage=h.p.s", "/us/a/seg.ts"),
            ("/us/a;URISigningPackage=h.p.s/seg.ts", "/us/a/seg.ts"),
            (
                "/us/a/seg.ts;x=1;URISigningPackage=h.p.s;y=2",
                "/us/a/seg.ts;x=1;y=2",
            ),
            ("/us/a/URISigningPackage=h.p.s/seg.ts", "/us/a/seg.ts"),
            ("/us/a/seg.ts/URISigningPackage=h.p.s", "/us/a/seg.ts"),
        ] {
            let e = at_path(path, None, &formats).expect(path);
            let f = e.foreign.expect(path);
            assert_eq!((f.format, f.source), (9, Source::Path), "{path}");
            assert_eq!(f.credential.fields[0], Some("h.p.s"), "{path}");
            assert_eq!(e.path, left, "{path}");
        }
        // The same package in the query too is one credential; another is a conflict.
        let both = at_path(
            "/us/a/seg.ts;URISigningPackage=h.p.s",
            Some("URISigningPackage=h.p.s"),
            &formats,
        );
        assert_eq!(both.map(|e| e.query), Ok(None));
        let other = at_path(
            "/us/a/seg.ts;URISigningPackage=h.p.s",
            Some("URISigningPackage=h.p.t"),
            &formats,
        );
        assert_eq!(other.map(|e| e.foreign), Err(ExtractError::Conflict));
        // A broken carrier, or another spelling of the name, is refused.
        for bad in [
            "/us/a/seg.ts;URISigningPackage",
            "/us/a/seg.ts;URISigningPackage=",
            "/us/a/seg.ts;urisigningpackage=h.p.s",
            "/us/a/..;URISigningPackage=h.p.s/seg.ts",
            "/us/a/.;URISigningPackage=h.p.s/seg.ts",
            "/us/a/;URISigningPackage=h.p.s/seg.ts",
            "/us/a/seg.ts;URISigning%50ackage=h.p.s",
            "/us/a/URISigningPackage=h.p.s;x=1/seg.ts",
            "/URISigningPackage=h.p.s",
            "/us/a/urisigningpackage=h.p.s/seg.ts",
            "/us/a/URISigning%50ackage=h.p.s/seg.ts",
            "/t;URISigningPackage=h.p.s/abc/x.ts",
            "/t/URISigningPackage=h.p.s/abc/x.ts",
            "/URISigningPackage=h.p.s/",
        ] {
            assert_eq!(
                at_path(bad, None, &formats).map(|e| e.foreign),
                Err(ExtractError::Malformed),
                "{bad}"
            );
        }
        // A route without the format reads no path parameter: it is the origin's.
        let plain = at_path("/us/a/seg.ts;URISigningPackage=h.p.s", None, &[]).expect("ok");
        assert_eq!(plain.foreign, None);
        assert_eq!(plain.path, "/us/a/seg.ts;URISigningPackage=h.p.s");
    }

    /// A five-field format with a cookie per field (CloudFront's carriers).
    fn cloudfront() -> Vec<FormatCarriers> {
        let names = |prefix: &str| -> Vec<String> {
            [
                "Policy",
                "Expires",
                "Signature",
                "Key-Pair-Id",
                "Hash-Algorithm",
            ]
            .iter()
            .map(|n| format!("{prefix}{n}"))
            .collect()
        };
        vec![FormatCarriers {
            format: 7,
            carriers: Carriers {
                query: names(""),
                cookies: names("CloudFront-"),
                header: String::new(),
                url_over_cookies: true,
                ..Carriers::default()
            },
        }]
    }

    #[test]
    fn k1_every_field_travels_in_its_own_cookie_and_every_one_is_stripped() {
        let formats = cloudfront();
        let none: Vec<Vec<&str>> = vec![vec![]];
        let cookie =
            "a=1; CloudFront-Expires=9; CloudFront-Signature=s~_; CloudFront-Key-Pair-Id=K";
        let e = foreign(None, &[cookie], &none, &formats).expect("ok");
        let f = e.foreign.expect("credential");
        assert_eq!((f.format, f.source), (7, Source::Cookie));
        let want = [None, Some("9"), Some("s~_"), Some("K")];
        assert_eq!(f.credential, Credential::of(&want));
        assert_eq!(
            e.strip_foreign.cookies,
            vec![
                "CloudFront-Expires",
                "CloudFront-Signature",
                "CloudFront-Key-Pair-Id"
            ]
        );
        // A signed URL beside signed cookies: the URL decides alone, as CloudFront
        // does, and the cookies are still removed.
        let q = Some("Expires=8&Key-Pair-Id=L");
        let e = foreign(q, &[cookie], &none, &formats).expect("the URL decides");
        assert_eq!(e.query, None);
        let f = e.foreign.expect("credential");
        assert_eq!(
            (f.source, f.credential),
            (
                Source::Query,
                Credential::of(&[None, Some("8"), None, Some("L")])
            )
        );
        assert_eq!(e.strip_foreign.cookies.len(), 3, "{:?}", e.strip_foreign);
        // Without that rule a field in the URL and its cookie with two values conflict.
        let mut strict = cloudfront();
        strict[0].carriers.url_over_cookies = false;
        let other = foreign(Some("Key-Pair-Id=L"), &[cookie], &none, &strict);
        assert_eq!(other.map(|e| e.foreign), Err(ExtractError::Conflict));
        // A cookie name spelt another way is refused, not forwarded.
        let encoded = foreign(None, &["CloudFront%2DPolicy=x"], &none, &formats);
        assert_eq!(encoded.map(|e| e.foreign), Err(ExtractError::Malformed));
    }

    #[test]
    fn the_routing_path_drops_only_a_path_token() {
        let names = TokenNames::default();
        assert_eq!(routing_path(&names, "/t/abc/vod/a/x"), "/vod/a/x");
        assert_eq!(routing_path(&names, "/vod/a/x"), "/vod/a/x");
        assert_eq!(routing_path(&names, "/t/abc"), "/t/abc");
    }
}
