//! The CTA-5007 (-B) Common Access Token: a CWT (RFC 8392) in a COSE envelope, verified
//! and authorised without ever seeing HTTP.
//!
//! This module owns decoding a CAT, checking its MAC or signature with a key pinned per
//! `kid` and every claim tollgate understands, and answering with a [`VerifiedCat`] or a
//! [`Refusal`] that carries a stable reason. It never touches hyper, http, sockets, the
//! configuration or the wall clock: the edge hands it the token bytes, the request's
//! facts as plain values ([`Request`]), the keys ([`CatKeys`]), the settings
//! ([`CatPolicy`]) and `now`. Carriers, stripping, caching and renewal headers are the
//! edge's.
//!
//! Two steps, like the native token (`docs/architecture.md`, "Common Access Token"):
//!
//! - [`verify`] (cacheable: depends only on the token, the keys and the policy): the
//!   envelope and its MAC/signature ([`cose`]), then the claims that do not depend on the
//!   request ([`claims`]): types, no duplicated map key, `crit`, `catv`, `iss`, `aud`,
//!   and the parsed `catu`, `cath`, `catnip`, `catr`, `catif`.
//! - [`VerifiedCat::authorize`] (every request, cache hit or not): `exp`/`nbf` with the
//!   leeway, `catu` against the URI ([`uri`]), `catm`, `catnip`, `cath`,
//!   `catgeoiso3166`, `catreplay` ([`replay`]).
//!
//! Decisions where the specification leaves room follow Eyevinn's `@eyevinn/cat`, the
//! most used open implementation, unless it fails open; each is named where it is made.

pub mod claims;
pub mod cose;
pub mod mint;
pub mod renewal;
pub mod replay;
pub mod uri;

use std::net::IpAddr;

pub use claims::CatClaims;
pub use cose::{CatKey, CatKeys};
pub use mint::{encode_text, renew, CatSigner};
pub use renewal::{IfAction, Renewal, RenewalKind};
pub use replay::{MemoryReplayGuard, ReplayGuard};

use base64::Engine as _;

/// Why a CAT was refused. [`CatReason::code`] is the stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CatReason {
    /// Not a CWT in a COSE_Mac0/COSE_Sign1, wrong types, a duplicated map key, trailing bytes.
    Malformed,
    /// More bytes than [`CatPolicy::max_len`].
    TooLong,
    /// No `kid`, or one not configured.
    UnknownKid,
    /// The MAC or signature does not verify.
    BadSignature,
    /// The token names another algorithm or COSE structure than its key's.
    Algorithm,
    /// A critical claim or header parameter tollgate does not implement.
    Critical,
    /// `catv` is not a version tollgate implements (1).
    Version,
    Issuer,
    Audience,
    Expired,
    NotYetValid,
    /// `catu` does not match the request's URI.
    Uri,
    /// `catm` does not list the request's method.
    Method,
    /// `catnip` does not cover the client.
    Ip,
    /// `cath` does not match the request's headers.
    Header,
    /// `catgeoiso3166` does not list the client's country.
    Geo,
    /// `catgeoiso3166` is present and no geolocation source is configured.
    GeoUnavailable,
    /// `catreplay` prohibits reuse and this token was already used.
    Replay,
    /// `catreplay` prohibits reuse and no replay store is configured.
    ReplayUnenforced,
}

impl CatReason {
    /// The stable reason code (header, access log, metric label).
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLong => "too_long",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::Algorithm => "algorithm",
            Self::Critical => "critical",
            Self::Version => "version",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Uri => "scope",
            Self::Method => "method",
            Self::Ip => "ip",
            Self::Header => "header",
            Self::Geo => "geo",
            Self::GeoUnavailable => "geo_unavailable",
            Self::Replay => "replay",
            Self::ReplayUnenforced => "replay_unenforced",
        }
    }
}

/// A refusal: the reason, and the token's `catif` instruction for the claim that failed,
/// if it has one (the edge answers with its status and headers instead of the default).
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub reason: CatReason,
    pub catif: Option<IfAction>,
}

impl From<CatReason> for Refusal {
    fn from(reason: CatReason) -> Self {
        Self {
            reason,
            catif: None,
        }
    }
}

/// The settings a CAT is checked against, handed over as plain values by the caller.
#[derive(Debug, Clone)]
pub struct CatPolicy {
    /// Accepted `iss` values; empty: `iss` is not checked (as `@eyevinn/cat` does when
    /// no issuer is given).
    pub issuers: Vec<String>,
    /// Accepted audiences; empty: `aud` is not checked. Otherwise one of the token's
    /// `aud` values must be listed, and a token without `aud` is refused.
    pub audiences: Vec<String>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway: u64,
    /// Longest token accepted, in bytes (after base64url decoding).
    pub max_len: usize,
    /// Refuse a token without `exp` (the default: a CAT that never expires is unusual,
    /// and fail closed).
    pub require_exp: bool,
    /// Refuse a token without the CWT tag (61); the specification allows both forms.
    pub require_cwt_tag: bool,
    /// Accept `@eyevinn/cat`'s untagged form, whose claims are hex text where COSE has a
    /// byte string (its generator's default without `expectCwtTag`). Off by default:
    /// not COSE; on for operators whose issuer makes such tokens.
    pub hex_text_payload: bool,
    /// The claim key under which the issuer lists its critical claims (CTA-5007-B's
    /// `crit`), refused when it names a claim tollgate does not check. No default: the
    /// key is the issuer's registry key, set with the issuer's other settings; `None`,
    /// no claim is read as that list (a COSE `crit` header is always checked).
    pub crit_claim: Option<i64>,
}

impl Default for CatPolicy {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: 30,
            max_len: 4096,
            require_exp: true,
            require_cwt_tag: false,
            hex_text_payload: false,
            crit_claim: None,
        }
    }
}

/// The request's facts, as the edge has already established them.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// `http` or `https` (lower case).
    pub scheme: &'a str,
    /// The agreed host, without port.
    pub host: &'a str,
    /// The port the client used (the scheme's default when none was given).
    pub port: u16,
    /// The normalised path, starting with `/`.
    pub path: &'a str,
    /// The query without `?` and with the CAT's own parameter already removed.
    pub query: &'a str,
    pub method: &'a str,
    /// The client's address (the peer, or a trusted proxy's `X-Forwarded-For`).
    pub client_ip: Option<IpAddr>,
    /// The request's headers (name, value); names compared without case.
    pub headers: &'a [(&'a str, &'a str)],
    /// The client's ISO 3166 country, when a geolocation source is configured.
    pub country: Option<&'a str>,
    /// The client's autonomous system, when a source for it is configured.
    pub asn: Option<u32>,
}

/// A token whose MAC or signature verified and whose request-independent claims hold.
#[derive(Debug, Clone)]
pub struct VerifiedCat {
    /// The `kid` of the key that verified it.
    pub kid: Vec<u8>,
    pub claims: CatClaims,
    /// SHA-256 of the token's bytes: the replay handle of a token without `cti`, and the
    /// log handle (never the token itself).
    pub digest: [u8; 32],
    /// The claims map as the issuer encoded it: what a renewal copies ([`mint::renew`]).
    pub payload: Vec<u8>,
}

/// What a granted request gets: what the edge needs to answer and to renew (named apart
/// from the native token's `Grant`, which the edge holds beside it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatGrant<'a> {
    /// `exp`, when the token has one.
    pub exp: Option<u64>,
    /// `cti`, the token's identifier (the revocation handle), when it has one.
    pub cti: Option<&'a [u8]>,
    /// `catr`: the renewal instructions for the edge.
    pub renewal: Option<&'a Renewal>,
    /// `catreplay` 2: reuse is to be detected and reported, not refused.
    pub report_reuse: bool,
}

/// Decodes the text form of a CAT (base64url without padding, as carriers use).
pub fn decode_text(text: &str) -> Result<Vec<u8>, CatReason> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| CatReason::Malformed)
}

/// Opens the envelope with the `kid`'s own key and algorithm and checks the claims that
/// do not depend on the request. Only a token returned from here may be cached.
pub fn verify(token: &[u8], keys: &CatKeys, policy: &CatPolicy) -> Result<VerifiedCat, CatReason> {
    let opened = cose::open(token, keys, policy)?;
    let claims = CatClaims::parse(&opened.payload, policy.crit_claim)?;
    claims.check_static(policy)?;
    Ok(VerifiedCat {
        kid: opened.kid,
        claims,
        digest: sha256(token),
        payload: opened.payload,
    })
}

impl VerifiedCat {
    /// Checks everything that depends on the request or the time, on every request.
    /// `replay` is the store for `catreplay`; `None` when none is configured.
    pub fn authorize(
        &self,
        req: &Request<'_>,
        policy: &CatPolicy,
        now: u64,
        replay: Option<&dyn ReplayGuard>,
    ) -> Result<CatGrant<'_>, Refusal> {
        self.authorize_within(req, policy, now, 0, replay)
    }

    /// [`Self::authorize`] for a token that may have expired up to `grace` seconds ago
    /// (past its `exp` and the leeway): every other claim holds as always. The edge's
    /// live-session allowance for a manifest reload is its one caller with a `grace`.
    /// A single-use token (`catreplay` 1) gets no grace: its use is remembered only
    /// until `exp` and the leeway.
    pub fn authorize_within(
        &self,
        req: &Request<'_>,
        policy: &CatPolicy,
        now: u64,
        grace: u64,
        replay: Option<&dyn ReplayGuard>,
    ) -> Result<CatGrant<'_>, Refusal> {
        let single_use = self.claims.catreplay == Some(claims::Replay::Prohibited);
        let grace = if single_use { 0 } else { grace };
        self.claims
            .check_request(req, policy, now, grace)
            .map_err(|(reason, claim)| self.refusal(reason, claim))?;
        let report_reuse = self
            .check_replay(replay, policy, now)
            .map_err(|r| self.refusal(r, claims::CATREPLAY))?;
        Ok(CatGrant {
            exp: self.claims.exp,
            cti: self.claims.cti.as_deref(),
            renewal: self.claims.catr.as_ref(),
            report_reuse,
        })
    }

    /// The replay handle: `cti` when present, else the token's digest.
    fn replay_id(&self) -> &[u8] {
        self.claims.cti.as_deref().unwrap_or(&self.digest)
    }

    fn check_replay(
        &self,
        guard: Option<&dyn ReplayGuard>,
        policy: &CatPolicy,
        now: u64,
    ) -> Result<bool, CatReason> {
        match self.claims.catreplay {
            None | Some(claims::Replay::Permitted) => Ok(false),
            Some(claims::Replay::Detect) => Ok(true),
            Some(claims::Replay::Prohibited) => {
                let guard = guard.ok_or(CatReason::ReplayUnenforced)?;
                // The last second the token is accepted: `exp` plus the leeway.
                let until = self
                    .claims
                    .exp
                    .map_or(u64::MAX, |exp| exp.saturating_add(policy.leeway));
                if guard.first_use(self.replay_id(), until, now) {
                    Ok(false)
                } else {
                    Err(CatReason::Replay)
                }
            }
        }
    }

    fn refusal(&self, reason: CatReason, claim: i64) -> Refusal {
        Refusal {
            reason,
            catif: self
                .claims
                .catif
                .as_ref()
                .and_then(|rules| rules.for_claim(claim))
                .cloned(),
        }
    }
}

/// Both steps at once, for callers without a cache.
pub fn verify_and_authorize(
    token: &[u8],
    keys: &CatKeys,
    policy: &CatPolicy,
    req: &Request<'_>,
    now: u64,
    replay: Option<&dyn ReplayGuard>,
) -> Result<VerifiedCat, Refusal> {
    let cat = verify(token, keys, policy)?;
    cat.authorize(req, policy, now, replay)?;
    Ok(cat)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests;
