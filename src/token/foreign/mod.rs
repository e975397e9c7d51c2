//! Foreign token formats: the credentials other gates verify (nginx `secure_link`,
//! Akamai EdgeAuth 2.0, the CTA-5007 Common Access Token), accepted on the routes that list them beside or instead of the
//! native JWT (docs/architecture.md, "Foreign token formats").
//!
//! This module owns what every format shares: the format list ([`Foreign`]), where a
//! format's credential travels ([`Carriers`]), the request values a signature may bind
//! ([`Inputs`]), the grant a verified credential becomes ([`ForeignGrant`]), the
//! verification cache (the native [`VerifyCache`], keyed by the credential *and* the
//! bound inputs) and the rules re-checked on every request ([`authorize`]). Each format
//! is one file ([`secure_link`], [`edgeauth`], [`cat`]) that parses and verifies from
//! plain values. A CAT binds no request input, so its cache ([`Foreign::cat_cached`]) is
//! keyed by the token alone and holds the verified token, whose claims
//! `VerifiedCat::authorize` re-checks on every request. It never touches hyper, http, the edge or the configuration, and never reads
//! the clock: `now` comes from the caller.

pub mod cat;
pub mod edgeauth;
pub mod secure_link;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use cat::CatFormat;
pub use edgeauth::EdgeAuth;
pub use secure_link::SecureLink;

use super::authorize::acl_matches;
use super::cat::{CatReason, MemoryReplayGuard, VerifiedCat};
use super::revocations::Revocations;
use super::verify::{Expiring, VerifyCache};
use super::TokenError;

/// Most fields a credential has (secure_link: the digest and the expiry).
pub const MAX_FIELDS: usize = 2;

/// What a format's credential is made of, by kind.
#[derive(Clone)]
pub enum Kind {
    SecureLink(SecureLink),
    EdgeAuth(EdgeAuth),
    Cat(Box<CatFormat>),
}

/// One configured format: the name routes list it by (also its metric label).
#[derive(Clone)]
pub struct Format {
    pub name: String,
    pub kind: Kind,
}

/// Names the format and its kind only: the secret stays out of logs and panics.
impl std::fmt::Debug for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            Kind::SecureLink(_) => "secure_link",
            Kind::EdgeAuth(_) => "edgeauth",
            Kind::Cat(_) => "cat",
        };
        write!(f, "Format({:?}, {kind})", self.name)
    }
}

/// Where a format's credential travels. `query[i]` carries field `i`; the cookie and
/// the header (when named; "" is off) carry field 0, the whole credential of a
/// one-field format.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carriers {
    pub query: Vec<String>,
    pub cookie: String,
    pub header: String,
}

/// A credential as the edge found it: one value per field, byte for byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Credential<'a> {
    pub fields: [Option<&'a str>; MAX_FIELDS],
}

/// The request values a format's signature may cover, as plain values.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The normalised path (what is authorised and forwarded).
    pub path: &'a str,
    /// The client address (after trusted-proxy resolution).
    pub client: IpAddr,
    /// The request's host, lower case, without a port.
    pub host: &'a str,
    /// The query as the client sent it (credential included), without the `?`.
    pub query: Option<&'a str>,
}

/// A verified foreign credential: what authorisation checks on every request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignGrant {
    pub exp: Option<u64>,
    /// Not before (EdgeAuth `st`).
    pub nbf: Option<u64>,
    /// The revocation handle, revoked as a `jti` (EdgeAuth `id`).
    pub id: Option<String>,
    /// The only client address allowed (EdgeAuth `ip`).
    pub ip: Option<IpAddr>,
    /// Path patterns (EdgeAuth `acl`: `*` matches any run, otherwise exact); empty when
    /// the signature itself binds the path (or nothing narrows it below the route).
    pub acl: Vec<String>,
}

impl Expiring for ForeignGrant {
    fn exp(&self) -> Option<u64> {
        self.exp
    }
}

impl Kind {
    pub fn carriers(&self) -> Carriers {
        match self {
            Kind::SecureLink(f) => f.carriers(),
            Kind::EdgeAuth(f) => f.carriers(),
            Kind::Cat(f) => f.carriers(),
        }
    }

    fn verify(
        &self,
        cred: &Credential<'_>,
        inputs: &Inputs<'_>,
    ) -> Result<ForeignGrant, TokenError> {
        match self {
            Kind::SecureLink(f) => f.verify(cred, inputs),
            Kind::EdgeAuth(f) => f.verify(cred, inputs),
            // A CAT is verified through `Foreign::cat_verify_and_cache`, never here.
            Kind::Cat(_) => Err(TokenError::Malformed),
        }
    }

    /// The request inputs the signature covers, appended to the cache key.
    fn binding(&self, cred: &Credential<'_>, inputs: &Inputs<'_>, out: &mut Vec<u8>) {
        match self {
            Kind::SecureLink(f) => f.binding(inputs, out),
            Kind::EdgeAuth(f) => f.binding(cred, inputs, out),
            Kind::Cat(_) => {}
        }
    }
}

/// The configured formats and their verification cache.
pub struct Foreign {
    formats: Vec<Format>,
    cache: VerifyCache<ForeignGrant>,
    cats: VerifyCache<CachedCat>,
    /// `catreplay` 1: this gate's memory of single-use tokens (a fleet shares nothing).
    replay: MemoryReplayGuard,
    max_len: usize,
}

/// A verified CAT in the cache, with the format that verified it: a hit under another
/// format (other keys, other policy) is a miss.
pub struct CachedCat {
    pub format: usize,
    pub cat: VerifiedCat,
}

impl Expiring for CachedCat {
    fn exp(&self) -> Option<u64> {
        self.cat.claims.exp
    }
}

impl Foreign {
    /// `max_len` bounds every field (`token.max_len`); the cache is sized like the
    /// native one.
    pub fn new(
        formats: Vec<Format>,
        max_len: usize,
        cache_capacity: usize,
        cache_max_ttl: Duration,
        leeway: Duration,
    ) -> Self {
        Foreign {
            formats,
            cache: VerifyCache::new(cache_capacity, cache_max_ttl, leeway),
            cats: VerifyCache::new(cache_capacity, cache_max_ttl, leeway),
            replay: MemoryReplayGuard::new(cache_capacity.max(1024)),
            max_len,
        }
    }

    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    pub fn cache(&self) -> &VerifyCache<ForeignGrant> {
        &self.cache
    }

    /// The `cat` format at `format`, if it is one.
    pub fn cat(&self, format: usize) -> Option<&CatFormat> {
        match &self.formats.get(format)?.kind {
            Kind::Cat(f) => Some(f),
            _ => None,
        }
    }

    pub fn replay_guard(&self) -> &MemoryReplayGuard {
        &self.replay
    }

    /// The verified CAT for this token text under `format`, if it verified before: one
    /// keyed hash, one shard lock, a constant-time compare, no allocation.
    pub fn cat_cached(&self, format: usize, text: &str, now: u64) -> Option<Arc<CachedCat>> {
        self.cats
            .get(text.as_bytes(), now)
            .filter(|c| c.format == format)
    }

    /// The miss path for a CAT: verify under `format`'s keys and policy, and cache only
    /// what verified.
    pub fn cat_verify_and_cache(
        &self,
        format: usize,
        text: &str,
        now: u64,
    ) -> Result<Arc<CachedCat>, CatReason> {
        let cat = self.cat(format).ok_or(CatReason::Malformed)?.verify(text)?;
        let cached = Arc::new(CachedCat { format, cat });
        self.cats.insert(text.as_bytes(), &cached, now);
        Ok(cached)
    }

    /// The cached grant for this credential and these inputs, if it verified before.
    pub fn cached(
        &self,
        format: usize,
        cred: &Credential<'_>,
        inputs: &Inputs<'_>,
        now: u64,
    ) -> Option<Arc<ForeignGrant>> {
        let kind = &self.formats.get(format)?.kind;
        self.cache.get(&material(format, kind, cred, inputs), now)
    }

    /// The miss path: bound the fields, verify, and cache only what verified.
    pub fn verify_and_cache(
        &self,
        format: usize,
        cred: &Credential<'_>,
        inputs: &Inputs<'_>,
        now: u64,
    ) -> Result<Arc<ForeignGrant>, TokenError> {
        let kind = &self.formats.get(format).ok_or(TokenError::Malformed)?.kind;
        if cred.fields.iter().flatten().any(|f| f.len() > self.max_len) {
            return Err(TokenError::Malformed);
        }
        let grant = Arc::new(kind.verify(cred, inputs)?);
        self.cache
            .insert(&material(format, kind, cred, inputs), &grant, now);
        Ok(grant)
    }
}

/// The cache key's bytes: the format, every field (length-prefixed, so no two
/// credentials share a spelling), then the inputs the signature binds.
fn material(format: usize, kind: &Kind, cred: &Credential<'_>, inputs: &Inputs<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&(format as u32).to_be_bytes());
    for field in cred.fields {
        push_len_prefixed(&mut out, field.unwrap_or("").as_bytes());
    }
    kind.binding(cred, inputs, &mut out);
    out
}

/// Append `bytes` after its length, so concatenated values cannot run into each other.
pub(crate) fn push_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Does `grant` allow a request for `inputs` at `now`? Checked on every request, cache
/// hit or not: `nbf`/`exp` with `leeway`, revocation of the id, the address, the path.
pub fn authorize(
    grant: &ForeignGrant,
    inputs: &Inputs<'_>,
    now: u64,
    leeway: u64,
    revocations: &Revocations,
) -> Result<(), TokenError> {
    if grant
        .nbf
        .is_some_and(|nbf| nbf > now.saturating_add(leeway))
    {
        return Err(TokenError::NotYetValid);
    }
    if grant
        .exp
        .is_some_and(|exp| exp.saturating_add(leeway) < now)
    {
        return Err(TokenError::Expired);
    }
    if grant
        .id
        .as_deref()
        .is_some_and(|id| revocations.is_jti_revoked(id))
    {
        return Err(TokenError::Revoked);
    }
    if grant.ip.is_some_and(|ip| ip != inputs.client) {
        return Err(TokenError::Ip);
    }
    if !grant.acl.is_empty() && !grant.acl.iter().any(|p| path_matches(p, inputs.path)) {
        return Err(TokenError::Acl);
    }
    Ok(())
}

/// A foreign path pattern: with `*` (any run of characters, `/` included) the whole
/// path must match; without, the path must equal it (EdgeAuth's ACL rule).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    match pattern.contains('*') {
        true => acl_matches(pattern, path),
        false => pattern == path,
    }
}

/// Unsigned decimal seconds as the formats write them: digits only, no sign, no
/// overflow.
pub(crate) fn parse_seconds(s: &str) -> Result<u64, TokenError> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TokenError::Malformed);
    }
    s.parse().map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(path: &str) -> Inputs<'_> {
        Inputs {
            path,
            client: "192.0.2.1".parse().expect("ip"),
            host: "media.example",
            query: None,
        }
    }

    #[test]
    fn foreign_grants_are_authorised_on_time_id_ip_and_path() {
        let revocations = Revocations::default();
        let grant = ForeignGrant {
            exp: Some(1_000),
            nbf: Some(500),
            id: Some("session-1".into()),
            ip: Some("192.0.2.1".parse().expect("ip")),
            acl: vec!["/vod/a/*".into(), "/exact.m3u8".into()],
        };
        let ok = |path, now| authorize(&grant, &inputs(path), now, 5, &revocations);
        assert_eq!(ok("/vod/a/x.ts", 800), Ok(()));
        assert_eq!(ok("/exact.m3u8", 800), Ok(()));
        assert_eq!(ok("/exact.m3u8x", 800), Err(TokenError::Acl));
        assert_eq!(ok("/vod/b/x.ts", 800), Err(TokenError::Acl));
        assert_eq!(ok("/vod/a/x.ts", 1_006), Err(TokenError::Expired));
        assert_eq!(ok("/vod/a/x.ts", 494), Err(TokenError::NotYetValid));
        let other = Inputs {
            client: "192.0.2.2".parse().expect("ip"),
            ..inputs("/vod/a/x.ts")
        };
        assert_eq!(
            authorize(&grant, &other, 800, 5, &revocations),
            Err(TokenError::Ip)
        );
        revocations.revoke_jti("session-1", None);
        assert_eq!(ok("/vod/a/x.ts", 800), Err(TokenError::Revoked));
    }

    /// A secure_link format over `$secure_link_expires$uri$remote_addr`, and a link for
    /// `/p` from 192.0.2.1 expiring at 1000.
    fn secure_link() -> (Foreign, String) {
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use base64::Engine as _;
        use md5::Digest as _;
        let kind = SecureLink::new(
            "$secure_link_expires$uri$remote_addr secret",
            "md5",
            "expires",
        )
        .map(Kind::SecureLink)
        .expect("valid");
        let format = Format {
            name: "nginx".into(),
            kind,
        };
        let ttl = Duration::from_secs(3600);
        let foreign = Foreign::new(vec![format], 4096, 16, ttl, Duration::ZERO);
        let md5 = URL_SAFE_NO_PAD.encode(md5::Md5::digest(b"1000/p192.0.2.1 secret"));
        (foreign, md5)
    }

    #[test]
    fn the_foreign_cache_is_keyed_by_the_credential_and_the_inputs_its_signature_binds() {
        let (foreign, md5) = secure_link();
        let cred = Credential {
            fields: [Some(md5.as_str()), Some("1000")],
        };
        let here = inputs("/p");
        let elsewhere = Inputs {
            client: "192.0.2.2".parse().expect("ip"),
            ..here
        };
        assert!(foreign.cached(0, &cred, &here, 500).is_none());
        foreign
            .verify_and_cache(0, &cred, &here, 500)
            .expect("verified");
        assert!(foreign.cached(0, &cred, &here, 500).is_some(), "a hit");
        assert!(
            foreign.cached(0, &cred, &elsewhere, 500).is_none(),
            "another address is another key: the signature binds it"
        );
        assert!(foreign.cached(0, &cred, &inputs("/q"), 500).is_none());
        assert_eq!(
            foreign.verify_and_cache(0, &cred, &elsewhere, 500),
            Err(TokenError::BadSignature)
        );
        // Only what verified is cached; a hit is still authorised on every request.
        assert!(foreign.cached(0, &cred, &elsewhere, 500).is_none());
        let grant = foreign.cached(0, &cred, &here, 900).expect("hit");
        let revocations = Revocations::default();
        assert_eq!(
            authorize(&grant, &here, 1_001, 0, &revocations),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn seconds_are_plain_digits() {
        assert_eq!(parse_seconds("1700000000"), Ok(1_700_000_000));
        for bad in ["", "-1", "+1", "1e9", " 1", "99999999999999999999"] {
            assert_eq!(parse_seconds(bad), Err(TokenError::Malformed), "{bad:?}");
        }
    }
}
