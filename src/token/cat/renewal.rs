//! `catr` (how a CAT is to be renewed) and `catif` (what to answer when a claim fails):
//! parsed, validated and handed to the edge, which sets the headers, cookies and
//! redirects. Owns these two claims' shapes; never mints, never sees HTTP.
//!
//! `catr` keys: type 0 (automatic 0, cookie 1, header 2, redirect 3), expadd 1, deadline
//! 2, cookie-name 3, header-name 4, cookie-params 5, header-params 6, code 7. `type` and
//! `expadd` are required (as `@eyevinn/cat` requires); a redirect's code must be a
//! redirect status (301, 302, 303, 307, 308; 302 when absent); names must be HTTP tokens.
//!
//! `catif`: a map of claim key to `[status, {header: value}, kid?]`, where a value is
//! text or `[url prefix, claims map]` (a token for the edge to mint and append).

use ciborium::value::Value;

use super::claims::{array, bytes, int, text, uint, unique_map};
use super::CatReason;

/// How the renewed token travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalKind {
    /// The edge picks (the carrier the token came in).
    Automatic,
    Cookie,
    Header,
    Redirect,
}

/// A validated `catr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewal {
    pub kind: RenewalKind,
    /// Seconds added to the renewal time for the new token's `exp`.
    pub expadd: u64,
    /// Seconds before `exp` at which renewal starts, when given.
    pub deadline: Option<u64>,
    pub cookie_name: Option<String>,
    pub header_name: Option<String>,
    pub cookie_params: Vec<String>,
    pub header_params: Vec<String>,
    /// The redirect status (redirect renewal only).
    pub code: Option<u16>,
}

impl Renewal {
    pub(super) fn parse(v: &Value) -> Result<Self, CatReason> {
        let mut kind = None;
        let mut r = Self {
            kind: RenewalKind::Automatic,
            expadd: 0,
            deadline: None,
            cookie_name: None,
            header_name: None,
            cookie_params: Vec::new(),
            header_params: Vec::new(),
            code: None,
        };
        let mut expadd = None;
        for (k, v) in unique_map(v)? {
            match int(k)? {
                0 => kind = Some(renewal_kind(uint(v)?)?),
                1 => expadd = Some(uint(v)?),
                2 => r.deadline = Some(uint(v)?),
                3 => r.cookie_name = Some(http_token(text(v)?)?),
                4 => r.header_name = Some(http_token(text(v)?)?),
                5 => r.cookie_params = params(v)?,
                6 => r.header_params = params(v)?,
                7 => r.code = Some(u16::try_from(uint(v)?).map_err(|_| CatReason::Malformed)?),
                // An unknown renewal parameter could change what the issuer meant.
                _ => return Err(CatReason::Malformed),
            }
        }
        r.kind = kind.ok_or(CatReason::Malformed)?;
        r.expadd = expadd.ok_or(CatReason::Malformed)?;
        r.check_code()?;
        Ok(r)
    }

    fn check_code(&mut self) -> Result<(), CatReason> {
        match (self.kind, self.code) {
            (RenewalKind::Redirect, None) => self.code = Some(302),
            (RenewalKind::Redirect, Some(301 | 302 | 303 | 307 | 308)) => {}
            (RenewalKind::Redirect, Some(_)) => return Err(CatReason::Malformed),
            (_, Some(_)) => return Err(CatReason::Malformed),
            (_, None) => {}
        }
        Ok(())
    }
}

fn renewal_kind(n: u64) -> Result<RenewalKind, CatReason> {
    Ok(match n {
        0 => RenewalKind::Automatic,
        1 => RenewalKind::Cookie,
        2 => RenewalKind::Header,
        3 => RenewalKind::Redirect,
        _ => return Err(CatReason::Malformed),
    })
}

/// Cookie and header parameters: text with no control characters (they are written
/// into a response header by the edge).
fn params(v: &Value) -> Result<Vec<String>, CatReason> {
    array(v)?.iter().map(|p| header_safe(text(p)?)).collect()
}

/// An RFC 9110 token (header and cookie names).
fn http_token(s: &str) -> Result<String, CatReason> {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !s.is_empty() && s.chars().all(tchar) {
        Ok(s.to_owned())
    } else {
        Err(CatReason::Malformed)
    }
}

fn header_safe(s: &str) -> Result<String, CatReason> {
    if s.chars().any(|c| c.is_control()) {
        Err(CatReason::Malformed)
    } else {
        Ok(s.to_owned())
    }
}

/// One header of a `catif` answer.
#[derive(Debug, Clone, PartialEq)]
pub enum IfHeader {
    Text(String),
    /// A URL prefix and the claims of a token the edge mints and appends to it.
    Token {
        url_prefix: String,
        claims: Value,
    },
}

/// What to answer when the claim it is keyed by fails.
#[derive(Debug, Clone, PartialEq)]
pub struct IfAction {
    pub status: u16,
    pub headers: Vec<(String, IfHeader)>,
    /// The `kid` to mint a token header's token with.
    pub kid: Option<Vec<u8>>,
}

/// A validated `catif`.
#[derive(Debug, Clone, PartialEq)]
pub struct IfRules(pub Vec<(i64, IfAction)>);

impl IfRules {
    pub(super) fn parse(v: &Value) -> Result<Self, CatReason> {
        unique_map(v)?
            .iter()
            .map(|(k, a)| Ok((int(k)?, if_action(a)?)))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn for_claim(&self, claim: i64) -> Option<&IfAction> {
        self.0.iter().find(|(c, _)| *c == claim).map(|(_, a)| a)
    }
}

fn if_action(v: &Value) -> Result<IfAction, CatReason> {
    let (status, headers, kid) = match array(v)? {
        [s, h] => (s, h, None),
        [s, h, k] => (s, h, Some(k)),
        _ => return Err(CatReason::Malformed),
    };
    let status = u16::try_from(uint(status)?).map_err(|_| CatReason::Malformed)?;
    if !(100..=599).contains(&status) {
        return Err(CatReason::Malformed);
    }
    let headers = unique_map(headers)?
        .iter()
        .map(|(name, value)| Ok((http_token(text(name)?)?, if_header(value)?)))
        .collect::<Result<_, CatReason>>()?;
    let kid = kid
        .map(|k| {
            bytes(k)
                .map(<[u8]>::to_vec)
                .or_else(|_| text(k).map(|t| t.as_bytes().to_vec()))
        })
        .transpose()?;
    Ok(IfAction {
        status,
        headers,
        kid,
    })
}

fn if_header(v: &Value) -> Result<IfHeader, CatReason> {
    match v {
        Value::Text(t) => Ok(IfHeader::Text(header_safe(t)?)),
        Value::Array(_) => match array(v)? {
            [url, claims] => {
                unique_map(claims)?;
                Ok(IfHeader::Token {
                    url_prefix: header_safe(text(url)?)?,
                    claims: claims.clone(),
                })
            }
            _ => Err(CatReason::Malformed),
        },
        _ => Err(CatReason::Malformed),
    }
}
