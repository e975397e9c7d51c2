//! Foreign token formats: the credentials other gates verify (nginx `secure_link`,
//! Akamai EdgeAuth 2.0, CloudFront signed URLs and cookies, RFC 9246 URI Signing, the
//! CTA-5007 Common Access Token), accepted on the routes that list them beside or
//! instead of the native JWT (docs/architecture.md, "Foreign token formats").
//!
//! This module owns what every format shares: the format list ([`Foreign`]), where a
//! format's credential travels ([`Carriers`]), the request values a signature may bind
//! ([`Inputs`]), the grant a verified credential becomes ([`ForeignGrant`]), the
//! verification cache (the native [`VerifyCache`], keyed by the credential *and* the
//! bound inputs) and the rules re-checked on every request ([`authorize`]). Each format
//! is one file ([`secure_link`], [`edgeauth`], [`cloudfront`], [`uri_signing`], [`cat`])
//! that parses and verifies from plain values. A CAT binds no request input, so its cache
//! ([`Foreign::cat_cached`]) is keyed by the token alone and holds the verified token,
//! whose claims `VerifiedCat::authorize` re-checks on every request. It never touches
//! hyper, http, the edge or the configuration, and never reads the clock: `now` comes
//! from the caller.

pub mod cat;
pub mod cloudfront;
pub mod edgeauth;
pub mod secure_link;
pub mod uri_signing;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use cat::CatFormat;
pub use cloudfront::CloudFront;
pub use edgeauth::EdgeAuth;
pub use secure_link::SecureLink;
pub use uri_signing::UriSigning;

use super::authorize::{acl_matches, may_play_unpublished};
use super::cat::{CatReason, MemoryReplayGuard, VerifiedCat};
use super::revocations::Revocations;
use super::verify::{Expiring, VerifyCache};
use super::TokenError;
use crate::resource::Resource;

/// Most fields a credential has (CloudFront: `Policy`, `Expires`, `Signature`,
/// `Key-Pair-Id`, `Hash-Algorithm`).
pub const MAX_FIELDS: usize = 5;

/// What a format's credential is made of, by kind.
#[derive(Clone)]
pub enum Kind {
    SecureLink(SecureLink),
    EdgeAuth(EdgeAuth),
    UriSigning(UriSigning),
    Cat(Box<CatFormat>),
    CloudFront(CloudFront),
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
            Kind::UriSigning(_) => "uri_signing",
            Kind::Cat(_) => "cat",
            Kind::CloudFront(_) => "cloudfront",
        };
        write!(f, "Format({:?}, {kind})", self.name)
    }
}

/// Where a format's credential travels. `query[i]` and `cookies[i]` carry field `i`
/// (a cookie name "" or missing: that field has no cookie); the header (when named;
/// "" is off) carries field 0, the whole credential of a one-field format; so does the
/// path parameter (when named: `;<name>=<value>` in any path segment, RFC 9246's
/// path-style carrier).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carriers {
    pub query: Vec<String>,
    pub cookies: Vec<String>,
    pub header: String,
    pub path_param: String,
    /// A credential in the query makes the format's cookies ignored (they are still
    /// removed): CloudFront decides by a signed URL alone when signed cookies came too.
    /// Otherwise a field in both with two values is a conflict.
    pub url_over_cookies: bool,
}

/// A credential as the edge found it: one value per field, byte for byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Credential<'a> {
    pub fields: [Option<&'a str>; MAX_FIELDS],
}

impl<'a> Credential<'a> {
    /// The first fields given, the rest absent (more than [`MAX_FIELDS`] are dropped).
    pub fn of(given: &[Option<&'a str>]) -> Self {
        let mut fields = [None; MAX_FIELDS];
        for (slot, value) in fields.iter_mut().zip(given) {
            *slot = *value;
        }
        Credential { fields }
    }
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
    /// The scheme the client used: TLS to the gate (CloudFront's URL).
    pub https: bool,
    /// The request's authority (`Host`) as the client sent it, port included.
    pub authority: &'a str,
}

#[cfg(test)]
impl<'a> Inputs<'a> {
    /// The unit tests' request: `https://media.example<path>[?query]` from 192.0.2.7.
    pub(crate) fn https_example(path: &'a str, query: Option<&'a str>) -> Self {
        Inputs {
            path,
            client: "192.0.2.7".parse().expect("ip"),
            host: "media.example",
            query,
            https: true,
            authority: "media.example",
        }
    }
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
    /// What an RFC 9246 token binds: `cdniip`, `cdniuc`, its renewal.
    pub uri_signing: Option<Box<uri_signing::Bound>>,
    /// The client network allowed (CloudFront `AWS:SourceIp`).
    pub net: Option<ipnet::IpNet>,
    /// The URL pattern the request's URL must match (a CloudFront custom policy's
    /// `Resource`).
    pub resource: Option<cloudfront::UrlScope>,
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
            Kind::UriSigning(f) => f.carriers(),
            Kind::Cat(f) => f.carriers(),
            Kind::CloudFront(f) => f.carriers(),
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
            Kind::UriSigning(f) => f.verify(cred),
            // A CAT is verified through `Foreign::cat_verify_and_cache`, never here.
            Kind::Cat(_) => Err(TokenError::Malformed),
            Kind::CloudFront(f) => f.verify(cred, inputs),
        }
    }

    /// The request inputs the signature covers, appended to the cache key.
    fn binding(&self, cred: &Credential<'_>, inputs: &Inputs<'_>, out: &mut Vec<u8>) {
        match self {
            Kind::SecureLink(f) => f.binding(inputs, out),
            Kind::EdgeAuth(f) => f.binding(cred, inputs, out),
            // The signature covers no request value: cdniip and cdniuc are checked
            // on every request instead.
            Kind::UriSigning(_) => {}
            Kind::Cat(_) => {}
            Kind::CloudFront(f) => f.binding(cred, inputs, out),
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
        with_material(format, kind, cred, inputs, |key| self.cache.get(key, now))
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
        with_material(format, kind, cred, inputs, |key| {
            self.cache.insert(key, &grant, now)
        });
        Ok(grant)
    }
}

thread_local! {
    /// The buffer cache keys are built in, reused so that a cached hit does not
    /// allocate (it grows to the longest key this thread has seen, bounded by
    /// `token.max_len` per field).
    static MATERIAL: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Run `f` on the cache key's bytes: the format, every field (length-prefixed, so no
/// two credentials share a spelling), then the inputs the signature binds.
fn with_material<R>(
    format: usize,
    kind: &Kind,
    cred: &Credential<'_>,
    inputs: &Inputs<'_>,
    f: impl FnOnce(&[u8]) -> R,
) -> R {
    let build = |out: &mut Vec<u8>| {
        out.clear();
        out.extend_from_slice(&(format as u32).to_be_bytes());
        for field in cred.fields {
            push_len_prefixed(out, field.unwrap_or("").as_bytes());
        }
        kind.binding(cred, inputs, out);
    };
    MATERIAL.with(|cell| match cell.try_borrow_mut() {
        Ok(mut out) => {
            build(&mut out);
            f(&out)
        }
        // Re-entered (nothing does today): a fresh buffer rather than a panic.
        Err(_) => {
            let mut out = Vec::new();
            build(&mut out);
            f(&out)
        }
    })
}

/// Append `bytes` after its length, so concatenated values cannot run into each other.
pub(crate) fn push_len_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Does `grant` allow a request for `inputs` (on `resource`, when the route names a
/// registered one) at `now`? Checked on every request, cache hit or not: `nbf`/`exp`
/// with `leeway`, revocation of the id, the address, the path, and the unpublished rule
/// (a foreign credential is never an admin's).
pub fn authorize(
    grant: &ForeignGrant,
    inputs: &Inputs<'_>,
    resource: Option<&Resource>,
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
    if grant.net.is_some_and(|net| !net.contains(&inputs.client)) {
        return Err(TokenError::Ip);
    }
    if !grant.acl.is_empty() && !grant.acl.iter().any(|p| path_matches(p, inputs.path)) {
        return Err(TokenError::Acl);
    }
    if grant.resource.as_ref().is_some_and(|r| !r.matches(inputs)) {
        return Err(TokenError::Acl);
    }
    if !may_play_unpublished(false, resource) {
        return Err(TokenError::Scope);
    }
    match &grant.uri_signing {
        Some(bound) => bound.authorize(inputs),
        None => Ok(()),
    }
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
            https: false,
            authority: "media.example",
        }
    }

    #[test]
    fn foreign_grants_are_authorised_on_time_id_ip_path_and_published_state() {
        let revocations = Revocations::default();
        let grant = ForeignGrant {
            exp: Some(1_000),
            nbf: Some(500),
            id: Some("session-1".into()),
            ip: Some("192.0.2.1".parse().expect("ip")),
            acl: vec!["/vod/a/*".into(), "/exact.m3u8".into()],
            ..ForeignGrant::default()
        };
        let ok = |path, now| authorize(&grant, &inputs(path), None, now, 5, &revocations);
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
            authorize(&grant, &other, None, 800, 5, &revocations),
            Err(TokenError::Ip)
        );
        let mut resource = crate::resource::Resource {
            id: "a".into(),
            resource_type: crate::resource::ResourceType::Vod,
            org: "org".into(),
            project: None,
            public: false,
            published: true,
        };
        let on = |r: &crate::resource::Resource| {
            authorize(
                &grant,
                &inputs("/vod/a/x.ts"),
                Some(r),
                800,
                5,
                &revocations,
            )
        };
        assert_eq!(on(&resource), Ok(()));
        resource.published = false;
        assert_eq!(on(&resource), Err(TokenError::Scope), "unpublished");
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
        let cred = Credential::of(&[Some(md5.as_str()), Some("1000")]);
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
            authorize(&grant, &here, None, 1_001, 0, &revocations),
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
