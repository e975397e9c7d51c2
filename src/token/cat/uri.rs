//! `catu` (the URI a CAT is good for) and the match objects `catu` and `cath` share.
//! Owns splitting a request's URI into the CAT's components and matching them; never
//! touches keys or other claims.
//!
//! Components (their `catu` keys): scheme 0, host 1, port 2, path 3, query 4,
//! parent-path 5, filename 6, stem 7, extension 8. As `@eyevinn/cat` reads them: the
//! host without port, the port in decimal, the parent path up to (not including) the
//! last `/`, the filename after it, the stem up to the filename's first `.`, the
//! extension from that `.` on (`.m3u8`, or `.tar.gz`), empty when there is none; the
//! query without `?` (the CAT's own parameter already removed by the edge), its
//! parameters sorted by name, and an exact query match sorted the same way (so order
//! does not matter). Scheme and host are compared in lower case.
//!
//! Match types (their keys): exact 0, prefix 1, suffix 2, contains 3, regex 4, sha-256
//! -1, sha-512/256 -2. A component lists one or more; all must hold. A regex is
//! searched for (not anchored), as JavaScript's `RegExp.test` does; its value is an
//! array whose first element is the pattern (an optional second, a flags string: `i`,
//! `m`, `s` are honoured, `g`, `u`, `y`, `d` change nothing for a test, any other flag is
//! malformed). A hash match compares the component's SHA-256 or SHA-512/256 (the FIPS
//! 180-4 truncated variant, not SHA-512) with a byte string, or with its lowercase hex.

use ciborium::value::Value;

use super::claims::{array, bytes, int, text, unique_map};
use super::{CatReason, Request};

/// Upper bound on a compiled pattern: a token's regex cannot make matching expensive.
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

/// A URI component, by its `catu` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Scheme,
    Host,
    Port,
    Path,
    Query,
    ParentPath,
    Filename,
    Stem,
    Extension,
}

impl Component {
    fn from_key(key: i64) -> Result<Self, CatReason> {
        Ok(match key {
            0 => Self::Scheme,
            1 => Self::Host,
            2 => Self::Port,
            3 => Self::Path,
            4 => Self::Query,
            5 => Self::ParentPath,
            6 => Self::Filename,
            7 => Self::Stem,
            8 => Self::Extension,
            // An unknown component cannot be checked: fail closed.
            _ => return Err(CatReason::Malformed),
        })
    }

    /// This component of the request, handed to `f`: borrowed from the request where it
    /// can be (the path's parts, scheme and host already in lower case), the port in a
    /// stack buffer, so a cached token's `catu` check allocates nothing in the common case.
    fn with<R>(self, req: &Request<'_>, f: impl FnOnce(&str) -> R) -> R {
        let (parent, filename) = req.path.rsplit_once('/').unwrap_or(("", req.path));
        let dot = filename.find('.').unwrap_or(filename.len());
        match self {
            // Scheme and host are case-insensitive (RFC 3986): compared in lower case.
            Self::Scheme => f(&lower(req.scheme)),
            Self::Host => f(&lower(req.host)),
            Self::Port => {
                let mut buf = [0u8; 5];
                f(decimal(req.port, &mut buf))
            }
            Self::Path => f(req.path),
            Self::Query => f(&sorted_query(req.query)),
            Self::ParentPath => f(parent),
            Self::Filename => f(filename),
            Self::Stem => f(&filename[..dot]),
            Self::Extension => f(&filename[dot..]),
        }
    }
}

/// `s` in ASCII lower case, copied only when it has an upper-case letter.
fn lower(s: &str) -> std::borrow::Cow<'_, str> {
    match s.bytes().any(|b| b.is_ascii_uppercase()) {
        true => std::borrow::Cow::Owned(s.to_ascii_lowercase()),
        false => std::borrow::Cow::Borrowed(s),
    }
}

/// `n` in decimal, written into `buf`.
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or("")
}

/// One match object entry.
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Regex(regex::Regex),
    Sha256(Vec<u8>),
    Sha512_256(Vec<u8>),
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        use Matcher::*;
        match (self, other) {
            (Exact(a), Exact(b))
            | (Prefix(a), Prefix(b))
            | (Suffix(a), Suffix(b))
            | (Contains(a), Contains(b)) => a == b,
            (Regex(a), Regex(b)) => a.as_str() == b.as_str(),
            (Sha256(a), Sha256(b)) | (Sha512_256(a), Sha512_256(b)) => a == b,
            _ => false,
        }
    }
}

impl Matcher {
    /// A match object: a map of match type to value, at least one entry.
    pub(super) fn parse_map(v: &Value) -> Result<Vec<Self>, CatReason> {
        let entries = unique_map(v)?;
        if entries.is_empty() {
            return Err(CatReason::Malformed);
        }
        entries
            .iter()
            .map(|(k, v)| Self::parse(int(k)?, v))
            .collect()
    }

    fn parse(kind: i64, v: &Value) -> Result<Self, CatReason> {
        Ok(match kind {
            0 => Self::Exact(text(v)?.to_owned()),
            1 => Self::Prefix(text(v)?.to_owned()),
            2 => Self::Suffix(text(v)?.to_owned()),
            3 => Self::Contains(text(v)?.to_owned()),
            4 => Self::Regex(regex(v)?),
            -1 => Self::Sha256(digest_value(v)?),
            -2 => Self::Sha512_256(digest_value(v)?),
            _ => return Err(CatReason::Malformed),
        })
    }

    pub fn matches(&self, value: &str) -> bool {
        use aws_lc_rs::digest;
        match self {
            Self::Exact(m) => value == m,
            Self::Prefix(m) => value.starts_with(m.as_str()),
            Self::Suffix(m) => value.ends_with(m.as_str()),
            Self::Contains(m) => value.contains(m.as_str()),
            Self::Regex(r) => r.is_match(value),
            Self::Sha256(d) => {
                digest::digest(&digest::SHA256, value.as_bytes()).as_ref() == d.as_slice()
            }
            Self::Sha512_256(d) => {
                digest::digest(&digest::SHA512_256, value.as_bytes()).as_ref() == d.as_slice()
            }
        }
    }
}

/// `[pattern]` or `[pattern, flags]` (a bare text pattern is accepted too).
fn regex(v: &Value) -> Result<regex::Regex, CatReason> {
    let (pattern, flags) = match v {
        Value::Text(p) => (p.as_str(), ""),
        Value::Array(_) => match array(v)? {
            [p] => (text(p)?, ""),
            [p, f, ..] => (text(p)?, text(f)?),
            [] => return Err(CatReason::Malformed),
        },
        _ => return Err(CatReason::Malformed),
    };
    let mut builder = regex::RegexBuilder::new(pattern);
    builder.size_limit(REGEX_SIZE_LIMIT);
    for flag in flags.chars() {
        match flag {
            'i' => builder.case_insensitive(true),
            'm' => builder.multi_line(true),
            's' => builder.dot_matches_new_line(true),
            'g' | 'u' | 'y' | 'd' => &mut builder,
            _ => return Err(CatReason::Malformed),
        };
    }
    builder.build().map_err(|_| CatReason::Malformed)
}

/// A 32-byte digest as bytes, or as 64 hex digits.
fn digest_value(v: &Value) -> Result<Vec<u8>, CatReason> {
    let digest = match v {
        Value::Bytes(_) => bytes(v)?.to_vec(),
        Value::Text(hex) => decode_hex(hex)?,
        _ => return Err(CatReason::Malformed),
    };
    if digest.len() == 32 {
        Ok(digest)
    } else {
        Err(CatReason::Malformed)
    }
}

pub(super) fn decode_hex(hex: &str) -> Result<Vec<u8>, CatReason> {
    if hex.len() % 2 != 0 {
        return Err(CatReason::Malformed);
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(CatReason::Malformed)
        })
        .collect()
}

/// A query with its parameters in name order (equal names keep their order) and no
/// leading `?`, as `@eyevinn/cat` compares queries: parameter order does not matter.
fn sorted_query(query: &str) -> String {
    let mut pairs: Vec<&str> = query
        .strip_prefix('?')
        .unwrap_or(query)
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    pairs.sort_by_key(|p| p.split_once('=').map_or(*p, |(name, _)| name));
    pairs.join("&")
}

/// A parsed `catu`: each component with its matchers.
#[derive(Debug, Clone, PartialEq)]
pub struct UriRule(pub Vec<(Component, Vec<Matcher>)>);

impl UriRule {
    pub(super) fn parse(v: &Value) -> Result<Self, CatReason> {
        let parts = unique_map(v)?
            .iter()
            .map(|(k, m)| {
                let component = Component::from_key(int(k)?)?;
                let mut matchers = Matcher::parse_map(m)?;
                if component == Component::Query {
                    // An exact query is compared in parameter order, like the request's.
                    for m in &mut matchers {
                        if let Matcher::Exact(q) = m {
                            *q = sorted_query(q);
                        }
                    }
                }
                Ok((component, matchers))
            })
            .collect::<Result<Vec<_>, CatReason>>()?;
        Ok(Self(parts))
    }

    /// Every component's matchers hold for the request.
    pub fn matches(&self, req: &Request<'_>) -> bool {
        self.0.iter().all(|(component, matchers)| {
            component.with(req, |value| matchers.iter().all(|m| m.matches(value)))
        })
    }

    /// The path prefix this rule confines a token to, when it names one (exact or
    /// prefix match on the path): how a CAT maps onto a route and resource.
    pub fn path_prefix(&self) -> Option<&str> {
        self.0.iter().find_map(|(c, ms)| {
            (*c == Component::Path).then(|| {
                ms.iter().find_map(|m| match m {
                    Matcher::Exact(p) | Matcher::Prefix(p) => Some(p.as_str()),
                    _ => None,
                })
            })?
        })
    }
}
