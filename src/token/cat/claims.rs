//! The CAT's claims: parsing the CWT claims map into [`CatClaims`] and checking them.
//! Owns the claim keys and their types; never touches the envelope or the keys.
//!
//! Parsing is strict: a claim of the wrong type, or any map (the claims, or one nested in
//! `catu`, `cath`, `catr`, `catif`) holding a key twice, is `malformed`; an unknown
//! claim is ignored unless `crit` lists it. Times are non-negative integers (NumericDate
//! without fractions).

use std::net::IpAddr;

use ciborium::value::{Integer, Value};
use ipnet::IpNet;

use super::renewal::{IfRules, Renewal};
use super::uri::{Matcher, UriRule};
use super::{CatPolicy, CatReason, Request};

pub const ISS: i64 = 1;
pub const SUB: i64 = 2;
pub const AUD: i64 = 3;
pub const EXP: i64 = 4;
pub const NBF: i64 = 5;
pub const IAT: i64 = 6;
pub const CTI: i64 = 7;
pub const CATREPLAY: i64 = 308;
pub const CATV: i64 = 310;
pub const CATNIP: i64 = 311;
pub const CATU: i64 = 312;
pub const CATM: i64 = 313;
pub const CATH: i64 = 315;
pub const CATGEOISO3166: i64 = 316;
pub const CATIF: i64 = 322;
pub const CATR: i64 = 323;
/// `cattprint` (TLS fingerprint): not checked; listed so that `crit` naming it refuses.
pub const CATTPRINT: i64 = 324;

/// Claims this module checks: the only ones `crit` may list.
const UNDERSTOOD: [i64; 16] = [
    ISS,
    SUB,
    AUD,
    EXP,
    NBF,
    IAT,
    CTI,
    CATREPLAY,
    CATV,
    CATNIP,
    CATU,
    CATM,
    CATH,
    CATGEOISO3166,
    CATIF,
    CATR,
];
/// The only CAT version there is.
const CAT_VERSION: u64 = 1;
/// The largest map or array accepted anywhere in the claims.
pub(super) const MAX_ENTRIES: usize = 64;
/// CBOR tags for IP addresses and prefixes (RFC 9164).
const TAG_IPV4: u64 = 52;
const TAG_IPV6: u64 = 54;

/// `catreplay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    Permitted,
    Prohibited,
    Detect,
}

/// One `catnip` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEntry {
    Asn(u32),
    Net(IpNet),
}

/// The claims of a verified CAT, typed.
#[derive(Debug, Clone, Default)]
pub struct CatClaims {
    pub iss: Option<String>,
    pub sub: Option<String>,
    pub aud: Vec<String>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub iat: Option<u64>,
    pub cti: Option<Vec<u8>>,
    pub catv: Option<u64>,
    pub catreplay: Option<Replay>,
    pub catnip: Option<Vec<NetEntry>>,
    pub catu: Option<UriRule>,
    pub catm: Option<Vec<String>>,
    pub cath: Option<Vec<(String, Vec<Matcher>)>>,
    pub catgeoiso3166: Option<Vec<String>>,
    pub catif: Option<IfRules>,
    pub catr: Option<Renewal>,
    pub crit: Vec<i64>,
}

type Refused = (CatReason, i64);

impl CatClaims {
    /// Parses the CWT claims map (the envelope's payload). `crit_claim` is the key of the
    /// claim listing the critical claims ([`CatPolicy::crit_claim`]).
    pub fn parse(payload: &[u8], crit_claim: Option<i64>) -> Result<Self, CatReason> {
        let value = super::cose::decode_one(payload)?;
        let mut claims = Self::default();
        for (key, value) in unique_map(&value)? {
            match key {
                Value::Integer(k) => {
                    let k = i64::try_from(*k).map_err(|_| CatReason::Malformed)?;
                    if Some(k) == crit_claim {
                        claims.crit = array(value)?.iter().map(int).collect::<Result<_, _>>()?;
                    } else {
                        claims.set(k, value)?;
                    }
                }
                // Text-keyed claims are private; none is understood, so ignored.
                Value::Text(_) => {}
                _ => return Err(CatReason::Malformed),
            }
        }
        Ok(claims)
    }

    fn set(&mut self, key: i64, v: &Value) -> Result<(), CatReason> {
        match key {
            ISS => self.iss = Some(text(v)?.to_owned()),
            SUB => self.sub = Some(text(v)?.to_owned()),
            AUD => self.aud = one_or_many_text(v)?,
            EXP => self.exp = Some(uint(v)?),
            NBF => self.nbf = Some(uint(v)?),
            IAT => self.iat = Some(uint(v)?),
            CTI => self.cti = Some(bytes(v)?.to_vec()),
            CATV => self.catv = Some(uint(v)?),
            CATREPLAY => self.catreplay = Some(replay(v)?),
            CATNIP => {
                self.catnip = Some(array(v)?.iter().map(net_entry).collect::<Result<_, _>>()?)
            }
            CATU => self.catu = Some(UriRule::parse(v)?),
            CATM => self.catm = Some(one_or_many_text(v)?),
            CATH => self.cath = Some(header_rules(v)?),
            CATGEOISO3166 => self.catgeoiso3166 = Some(one_or_many_text(v)?),
            CATIF => self.catif = Some(IfRules::parse(v)?),
            CATR => self.catr = Some(Renewal::parse(v)?),
            // Unknown claims are ignored unless critical (checked once all are read).
            _ => {}
        }
        Ok(())
    }

    /// What does not depend on the request: `crit`, `catv`, `iss`, `aud`, `exp` present.
    pub fn check_static(&self, policy: &CatPolicy) -> Result<(), CatReason> {
        if self.crit.iter().any(|c| !UNDERSTOOD.contains(c)) {
            return Err(CatReason::Critical);
        }
        if self.catv.is_some_and(|v| v != CAT_VERSION) {
            return Err(CatReason::Version);
        }
        if !policy.issuers.is_empty()
            && !self
                .iss
                .as_ref()
                .is_some_and(|i| policy.issuers.contains(i))
        {
            return Err(CatReason::Issuer);
        }
        if !policy.audiences.is_empty() && !self.aud.iter().any(|a| policy.audiences.contains(a)) {
            return Err(CatReason::Audience);
        }
        if policy.require_exp && self.exp.is_none() {
            return Err(CatReason::Malformed);
        }
        Ok(())
    }

    /// Everything that depends on the request and the time. On refusal, also the claim
    /// that failed (for `catif`). `grace` seconds past `exp` (and the leeway) are still
    /// accepted: 0 except for the edge's live-session allowance ([`VerifiedCat::authorize_within`]).
    ///
    /// [`VerifiedCat::authorize_within`]: super::VerifiedCat::authorize_within
    pub fn check_request(
        &self,
        req: &Request<'_>,
        policy: &CatPolicy,
        now: u64,
        grace: u64,
    ) -> Result<(), Refused> {
        self.check_time(policy, now, grace)?;
        if self.catu.as_ref().is_some_and(|u| !u.matches(req)) {
            return Err((CatReason::Uri, CATU));
        }
        if self
            .catm
            .as_ref()
            // Methods are case-sensitive (RFC 9110), as `@eyevinn/cat` compares them.
            .is_some_and(|m| !m.iter().any(|x| x == req.method))
        {
            return Err((CatReason::Method, CATM));
        }
        if self
            .catnip
            .as_ref()
            .is_some_and(|n| !net_allows(n, req.client_ip, req.asn))
        {
            return Err((CatReason::Ip, CATNIP));
        }
        if self
            .cath
            .as_ref()
            .is_some_and(|h| !headers_match(h, req.headers))
        {
            return Err((CatReason::Header, CATH));
        }
        self.check_geo(req)
    }

    /// Inclusive to the second at both ends, as the native token's (`token/authorize.rs`).
    fn check_time(&self, policy: &CatPolicy, now: u64, grace: u64) -> Result<(), Refused> {
        if self
            .exp
            .is_some_and(|exp| exp.saturating_add(policy.leeway).saturating_add(grace) < now)
        {
            return Err((CatReason::Expired, EXP));
        }
        if self
            .nbf
            .is_some_and(|nbf| now.saturating_add(policy.leeway) < nbf)
        {
            return Err((CatReason::NotYetValid, NBF));
        }
        Ok(())
    }

    fn check_geo(&self, req: &Request<'_>) -> Result<(), Refused> {
        let Some(allowed) = &self.catgeoiso3166 else {
            return Ok(());
        };
        let country = req
            .country
            .ok_or((CatReason::GeoUnavailable, CATGEOISO3166))?;
        if allowed.iter().any(|c| c.eq_ignore_ascii_case(country)) {
            Ok(())
        } else {
            Err((CatReason::Geo, CATGEOISO3166))
        }
    }
}

/// A client passes `catnip` when its address is in one of the networks, or its ASN (when
/// a source for it is configured) is listed. No address and no ASN: refused.
fn net_allows(entries: &[NetEntry], ip: Option<IpAddr>, asn: Option<u32>) -> bool {
    entries.iter().any(|e| match e {
        NetEntry::Asn(a) => asn == Some(*a),
        // An IPv4 client seen on a dual-stack socket (::ffff:a.b.c.d) is that IPv4 address.
        NetEntry::Net(net) => ip.is_some_and(|ip| net.contains(&ip.to_canonical())),
    })
}

/// Every `cath` header must be present and match; a header sent several times is
/// matched on its values joined with ", " (RFC 9110's field combination).
fn headers_match(rules: &[(String, Vec<Matcher>)], headers: &[(&str, &str)]) -> bool {
    rules.iter().all(|(name, matchers)| {
        let mut values = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v);
        let Some(first) = values.next() else {
            return false;
        };
        // One value (the usual case) is matched as it is, without a copy.
        let joined = match values.next() {
            None => std::borrow::Cow::Borrowed(first),
            Some(second) => std::borrow::Cow::Owned(
                [first, second]
                    .into_iter()
                    .chain(values)
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
        };
        matchers.iter().all(|m| m.matches(&joined))
    })
}

fn header_rules(v: &Value) -> Result<Vec<(String, Vec<Matcher>)>, CatReason> {
    unique_map(v)?
        .iter()
        .map(|(name, m)| Ok((text(name)?.to_owned(), Matcher::parse_map(m)?)))
        .collect()
}

fn replay(v: &Value) -> Result<Replay, CatReason> {
    match uint(v)? {
        0 => Ok(Replay::Permitted),
        1 => Ok(Replay::Prohibited),
        2 => Ok(Replay::Detect),
        _ => Err(CatReason::Malformed),
    }
}

/// An ASN (integer), or an RFC 9164 address (tag 52/54 over a byte string) or prefix
/// (tag over `[length, bytes]`, trailing zero bytes omitted).
fn net_entry(v: &Value) -> Result<NetEntry, CatReason> {
    match v {
        Value::Integer(_) => Ok(NetEntry::Asn(
            u32::try_from(uint(v)?).map_err(|_| CatReason::Malformed)?,
        )),
        Value::Tag(tag @ (TAG_IPV4 | TAG_IPV6), inner) => {
            let width = if *tag == TAG_IPV4 { 4 } else { 16 };
            let (len, addr) = match inner.as_ref() {
                Value::Bytes(b) if b.len() == width => (width * 8, b.as_slice()),
                Value::Array(parts) if parts.len() == 2 => (
                    usize::try_from(uint(&parts[0])?).map_err(|_| CatReason::Malformed)?,
                    bytes(&parts[1])?,
                ),
                _ => return Err(CatReason::Malformed),
            };
            prefix(width, len, addr).map(NetEntry::Net)
        }
        _ => Err(CatReason::Malformed),
    }
}

fn prefix(width: usize, len: usize, addr: &[u8]) -> Result<IpNet, CatReason> {
    if addr.len() > width || len > width * 8 {
        return Err(CatReason::Malformed);
    }
    let mut full = [0u8; 16];
    full[..addr.len()].copy_from_slice(addr);
    let ip: IpAddr = if width == 4 {
        IpAddr::from([full[0], full[1], full[2], full[3]])
    } else {
        IpAddr::from(full)
    };
    let len = u8::try_from(len).map_err(|_| CatReason::Malformed)?;
    IpNet::new(ip, len)
        .map(|n| n.trunc())
        .map_err(|_| CatReason::Malformed)
}

/// A map whose keys are all different, of at most [`MAX_ENTRIES`] entries.
pub(super) fn unique_map(v: &Value) -> Result<&[(Value, Value)], CatReason> {
    let Value::Map(entries) = v else {
        return Err(CatReason::Malformed);
    };
    if entries.len() > MAX_ENTRIES {
        return Err(CatReason::Malformed);
    }
    for (i, (key, _)) in entries.iter().enumerate() {
        if entries[..i].iter().any(|(k, _)| k == key) {
            return Err(CatReason::Malformed);
        }
    }
    Ok(entries)
}

pub(super) fn array(v: &Value) -> Result<&[Value], CatReason> {
    match v {
        Value::Array(a) if a.len() <= MAX_ENTRIES => Ok(a),
        _ => Err(CatReason::Malformed),
    }
}

pub(super) fn text(v: &Value) -> Result<&str, CatReason> {
    v.as_text().ok_or(CatReason::Malformed)
}

pub(super) fn bytes(v: &Value) -> Result<&[u8], CatReason> {
    v.as_bytes().map(Vec::as_slice).ok_or(CatReason::Malformed)
}

pub(super) fn int(v: &Value) -> Result<i64, CatReason> {
    v.as_integer()
        .and_then(|i: Integer| i64::try_from(i).ok())
        .ok_or(CatReason::Malformed)
}

pub(super) fn uint(v: &Value) -> Result<u64, CatReason> {
    v.as_integer()
        .and_then(|i: Integer| u64::try_from(i).ok())
        .ok_or(CatReason::Malformed)
}

/// A text string or an array of them (`aud`, `catm`, `catgeoiso3166` appear both ways).
pub(super) fn one_or_many_text(v: &Value) -> Result<Vec<String>, CatReason> {
    match v {
        Value::Text(t) => Ok(vec![t.clone()]),
        Value::Array(_) => array(v)?
            .iter()
            .map(|x| text(x).map(str::to_owned))
            .collect(),
        _ => Err(CatReason::Malformed),
    }
}
