//! Verification: signature and registered claims, behind a bounded cache.
//!
//! [`Verifier::verify`] is on every edge request. A cache hit is one keyed hash of the
//! token bytes, one shard read lock in a `DashMap`, a constant-time compare of the
//! stored token and an `Arc` clone: no allocation, no JSON, no crypto. A miss decodes
//! the header, looks the `kid` up in memory, checks the signature with the key's own
//! algorithm and turns the claims into a [`Grant`]; only then is it cached.
//!
//! What the cache never decides: expiry, `nbf`, revocation, scope, `acl` and `ip` are
//! checked by [`super::authorize`] on every request, hit or miss. An entry lives no
//! longer than its token's `exp` (plus leeway) and `cache_max_ttl`.
//!
//! A reload ([`Verifier::reload`]) swaps the keys and the claim policy (issuer,
//! audience, …) in one step and empties the cache; the verifier itself, and so its
//! counters, live as long as the process. The counters are plain atomics that the
//! `metrics` module reads at scrape time: this module knows nothing of Prometheus.
//!
//! State touched per request: the key set and policy in an `ArcSwap` (a lock-free
//! snapshot, taken only on a miss), the cache map (one shard lock, held
//! for a lookup or an insert), and relaxed atomic counters.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;

use super::claims::{Claims, Grant};
use super::keys::{Algorithm, KeySet};
use super::TokenError;

/// The algorithms a verification is counted under (`none`: no key was found).
pub const VERIFY_ALGS: [&str; 5] = ["EdDSA", "ES256", "RS256", "HS256", "none"];
/// The results a verification is counted under.
pub const VERIFY_RESULTS: [&str; 7] = [
    "ok",
    "malformed",
    "bad_signature",
    "unknown_kid",
    "issuer",
    "audience",
    "other",
];

fn alg_index(alg: Option<Algorithm>) -> usize {
    match alg {
        Some(Algorithm::EdDsa) => 0,
        Some(Algorithm::Es256) => 1,
        Some(Algorithm::Rs256) => 2,
        Some(Algorithm::Hs256) => 3,
        None => 4,
    }
}

fn result_index(r: &Result<Grant, TokenError>) -> usize {
    match r {
        Ok(_) => 0,
        Err(TokenError::Malformed) => 1,
        Err(TokenError::BadSignature) => 2,
        Err(TokenError::UnknownKid) => 3,
        Err(TokenError::Issuer) => 4,
        Err(TokenError::Audience) => 5,
        Err(_) => 6,
    }
}

/// How a [`Verifier`] checks tokens and sizes its cache: the token settings it needs,
/// as plain values (the caller converts its configuration into these).
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Expected `iss`.
    pub issuer: String,
    /// Accepted `aud` values; empty: any.
    pub audience: Vec<String>,
    /// Accept tokens without `exp`.
    pub allow_never_expiring: bool,
    /// Longest token accepted, in bytes.
    pub max_len: usize,
    /// Clock skew allowed on `exp` (bounds how long a grant stays cached).
    pub leeway: Duration,
    /// Entries in the verified-token cache; 0 disables it.
    pub cache_capacity: usize,
    /// Longest a verified token stays cached.
    pub cache_max_ttl: Duration,
}

/// What a token must satisfy besides its signature; swapped whole on reload.
struct Policy {
    keys: Arc<KeySet>,
    issuer: String,
    audience: Vec<String>,
    allow_never_expiring: bool,
}

/// Verifies tokens, caching what verified.
pub struct Verifier {
    policy: ArcSwap<Policy>,
    cache: VerifyCache,
    max_len: AtomicUsize,
    /// Signature verifications by [`VERIFY_ALGS`] × [`VERIFY_RESULTS`].
    verifications: [[AtomicU64; VERIFY_RESULTS.len()]; VERIFY_ALGS.len()],
}

impl Verifier {
    pub fn new(keys: KeySet, cfg: impl Into<VerifyPolicy>) -> Self {
        let cfg = cfg.into();
        Verifier {
            policy: ArcSwap::from_pointee(Policy::new(keys, &cfg)),
            cache: VerifyCache::new(cfg.cache_capacity, cfg.cache_max_ttl, cfg.leeway),
            max_len: AtomicUsize::new(cfg.max_len),
            verifications: Default::default(),
        }
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy.load_full()
    }

    /// The current key set.
    pub fn keys(&self) -> Arc<KeySet> {
        self.policy().keys.clone()
    }

    /// Replace the key set (reload). Every cached grant is dropped, so a removed key
    /// stops verifying on the very next request (`docs/threat-model.md`, A18).
    pub fn replace_keys(&self, keys: KeySet) {
        let keys = Arc::new(keys);
        // rcu: a concurrent `reload` is not lost (it retries on the newer policy).
        self.policy.rcu(|current| Policy {
            keys: keys.clone(),
            issuer: current.issuer.clone(),
            audience: current.audience.clone(),
            allow_never_expiring: current.allow_never_expiring,
        });
        self.cache.clear();
    }

    /// Apply a reloaded configuration: keys, issuer, audience, `max_len` and the
    /// never-expiring rule change at once, and the cache is emptied. The cache's
    /// capacity, TTL and leeway are fixed at start-up.
    pub fn reload(&self, keys: KeySet, cfg: impl Into<VerifyPolicy>) {
        let cfg = cfg.into();
        self.policy.store(Arc::new(Policy::new(keys, &cfg)));
        self.max_len.store(cfg.max_len, Ordering::Relaxed);
        self.cache.clear();
    }

    pub fn cache(&self) -> &VerifyCache {
        &self.cache
    }

    /// Signature verifications so far, as (algorithm, result, count).
    pub fn verification_counts(
        &self,
    ) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        VERIFY_ALGS.iter().enumerate().flat_map(move |(a, alg)| {
            VERIFY_RESULTS.iter().enumerate().map(move |(r, result)| {
                (
                    *alg,
                    *result,
                    self.verifications[a][r].load(Ordering::Relaxed),
                )
            })
        })
    }

    /// Verify `token` at time `now` (Unix seconds), using the cache.
    pub fn verify(&self, token: &str, now: u64) -> Result<Arc<Grant>, TokenError> {
        match self.cached(token, now) {
            Some(grant) => Ok(grant),
            None => self.verify_and_cache(token, now),
        }
    }

    /// The cached grant for `token`, if it verified before and is still fresh.
    pub fn cached(&self, token: &str, now: u64) -> Option<Arc<Grant>> {
        if token.len() > self.max_len.load(Ordering::Relaxed) {
            return None;
        }
        self.cache.get(token.as_bytes(), now)
    }

    /// The miss path: check the signature and claims, and cache the grant if it verified.
    pub fn verify_and_cache(&self, token: &str, now: u64) -> Result<Arc<Grant>, TokenError> {
        let grant = Arc::new(self.verify_uncached(token)?);
        self.cache.insert(token.as_bytes(), &grant, now);
        Ok(grant)
    }

    /// Signature and claims, without the cache (the miss path; also the benchmark's baseline).
    pub fn verify_uncached(&self, token: &str) -> Result<Grant, TokenError> {
        let (alg, result) = self.check(token);
        self.verifications[alg_index(alg)][result_index(&result)].fetch_add(1, Ordering::Relaxed);
        result
    }

    fn check(&self, token: &str) -> (Option<Algorithm>, Result<Grant, TokenError>) {
        if token.len() > self.max_len.load(Ordering::Relaxed) {
            return (None, Err(TokenError::Malformed));
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return (None, Err(TokenError::Malformed));
        };
        // Every key has a kid and tokens must name one: no "try each key" fallback (threat model A8).
        let Some(kid) = header.kid.as_deref() else {
            return (None, Err(TokenError::UnknownKid));
        };
        let policy = self.policy();
        let Some(key) = policy.keys.get(kid).cloned() else {
            return (None, Err(TokenError::UnknownKid));
        };
        let alg = Some(key.alg);
        if header.alg != super::keys::jwt_alg(key.alg) {
            return (alg, Err(TokenError::BadSignature));
        }
        let data = match jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation) {
            Ok(d) => d,
            Err(e) => return (alg, Err(map_jwt_error(&e))),
        };
        let grant = Grant::from_claims(
            kid,
            data.claims,
            &policy.issuer,
            &policy.audience,
            policy.allow_never_expiring,
        );
        (alg, grant)
    }
}

impl Policy {
    fn new(keys: KeySet, cfg: &VerifyPolicy) -> Self {
        Policy {
            keys: Arc::new(keys),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            allow_never_expiring: cfg.allow_never_expiring,
        }
    }
}

fn map_jwt_error(e: &jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
        _ => TokenError::Malformed,
    }
}

/// What a cached grant must tell the cache: when it ends (an entry never outlives it).
pub trait Expiring {
    fn exp(&self) -> Option<u64>;
}

impl Expiring for Grant {
    fn exp(&self) -> Option<u64> {
        self.exp
    }
}

/// A bounded map from a keyed hash of the token bytes to the verified grant. Generic so
/// that the foreign formats (`token::foreign`) cache their grants by the same rules.
pub struct VerifyCache<G = Grant> {
    map: DashMap<u64, Entry<G>>,
    hasher: RandomState,
    capacity: usize,
    max_ttl: u64,
    leeway: u64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
}

struct Entry<G> {
    /// The whole token: a hash collision can never hand out another token's grant.
    token: Box<[u8]>,
    grant: Arc<G>,
    /// Unix second after which the entry is stale.
    until: u64,
}

impl<G: Expiring> VerifyCache<G> {
    pub fn new(capacity: usize, max_ttl: Duration, leeway: Duration) -> Self {
        VerifyCache {
            map: DashMap::with_capacity(capacity.min(1 << 16)),
            hasher: RandomState::new(),
            capacity,
            max_ttl: max_ttl.as_secs(),
            leeway: leeway.as_secs(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        }
    }

    fn key(&self, token: &[u8]) -> u64 {
        self.hasher.hash_one(token)
    }

    pub(crate) fn get(&self, token: &[u8], now: u64) -> Option<Arc<G>> {
        if self.capacity == 0 {
            return None;
        }
        let found = self.map.get(&self.key(token)).and_then(|e| {
            let same = aws_lc_rs::constant_time::verify_slices_are_equal(&e.token, token).is_ok();
            (same && now <= e.until).then(|| e.grant.clone())
        });
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    pub(crate) fn insert(&self, token: &[u8], grant: &Arc<G>, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut until = now.saturating_add(self.max_ttl);
        if let Some(exp) = grant.exp() {
            until = until.min(exp.saturating_add(self.leeway));
        }
        if until < now {
            return; // already expired: nothing to gain from caching it
        }
        if self.map.len() >= self.capacity {
            self.evict(now);
        }
        self.map.insert(
            self.key(token),
            Entry {
                token: token.into(),
                grant: grant.clone(),
                until,
            },
        );
    }

    /// Make room: drop stale entries, then, if still full, an arbitrary eighth of the map.
    /// Amortised over the inserts that filled it, this keeps memory flat under a flood
    /// of distinct valid tokens.
    fn evict(&self, now: u64) {
        let before = self.map.len();
        self.map.retain(|_, e| e.until >= now);
        if self.map.len() >= self.capacity {
            let drop_n = (self.capacity / 8).max(1);
            let victims: Vec<u64> = self.map.iter().take(drop_n).map(|e| *e.key()).collect();
            for k in victims {
                self.map.remove(&k);
            }
        }
        let evicted = before.saturating_sub(self.map.len());
        self.evictions.fetch_add(evicted as u64, Ordering::Relaxed);
    }

    pub fn clear(&self) {
        self.map.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::ResourceType;
    use crate::token::claims::Scope;
    use crate::token::issue::{mint, MintRequest};
    use crate::token::keys::Algorithm;
    use crate::token::keys::{generate_pem, SigningKey, VerifyKey};

    fn token_cfg(capacity: usize) -> VerifyPolicy {
        VerifyPolicy {
            issuer: "test".into(),
            audience: vec![],
            leeway: Duration::from_secs(5),
            max_len: 4096,
            cache_capacity: capacity,
            cache_max_ttl: Duration::from_secs(300),
            allow_never_expiring: false,
        }
    }

    fn ed_keys(kid: &str) -> KeySet {
        let (private, public) = generate_pem(Algorithm::EdDsa).expect("generate");
        KeySet::from_keys(
            vec![
                VerifyKey::from_material(kid, Algorithm::EdDsa, public.as_bytes())
                    .expect("verify key"),
            ],
            Some(
                SigningKey::from_material(kid, Algorithm::EdDsa, private.as_bytes())
                    .expect("signing key"),
            ),
        )
    }

    fn request(rid: &str) -> MintRequest {
        MintRequest {
            scope: Scope::Resource,
            rid: Some(rid.into()),
            rty: Some(ResourceType::Vod),
            ttl: Some(Duration::from_secs(60)),
            ..MintRequest::default()
        }
    }

    #[test]
    fn a_real_token_decodes_and_then_hits_the_cache() {
        let keys = ed_keys("k1");
        let (token, _) = mint(&keys, "test", &request("demo"), 1_000).expect("mint");
        let v = Verifier::new(keys, token_cfg(10));
        let g = v.verify(&token, 1_000).expect("verifies");
        assert_eq!(g.rid.as_deref(), Some("demo"));
        assert_eq!(v.cache().misses(), 1);
        v.verify(&token, 1_001).expect("verifies again");
        assert_eq!(v.cache().hits(), 1);
    }

    /// The revocation check reads the key worked out at verification, and finds the
    /// token revoked by its `jti` text.
    #[test]
    fn a_verified_grant_carries_the_revocation_key_of_its_jti() {
        let keys = ed_keys("k1");
        let (token, _) = mint(&keys, "test", &request("demo"), 1_000).expect("mint");
        let g = Verifier::new(keys, token_cfg(10))
            .verify(&token, 1_000)
            .expect("verifies");
        let jti = g.jti.as_deref().expect("minted tokens carry a jti");
        assert_eq!(g.jti_key, super::super::revocations::own_jti(jti));
        assert!(g.jti_key.is_some());
        let r = super::super::Revocations::default();
        let other = u128::from_be_bytes(g.jti_key.expect("key")) ^ 1;
        r.revoke_jti(&format!("{other:032x}"), None);
        assert!(!r.is_revoked(&g));
        r.revoke_jti(jti, None);
        assert!(r.is_revoked(&g));
    }

    /// RFC 8037 appendix A.4: an Ed25519 JWS made by someone else, checked by the one
    /// crypto backend jsonwebtoken is built with (aws-lc-rs).
    #[test]
    fn the_crypto_backend_verifies_the_rfc_8037_ed25519_example() {
        let key = jsonwebtoken::DecodingKey::from_ed_components(
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
        )
        .expect("RFC 8037 public key");
        let msg = b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let sig = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let ok = jsonwebtoken::crypto::verify(sig, msg, &key, jsonwebtoken::Algorithm::EdDSA)
            .expect("verify runs");
        assert!(ok, "the RFC's signature must verify");
        let tampered = jsonwebtoken::crypto::verify(
            sig,
            b"eyJhbGciOiJFZERTQSJ9.X",
            &key,
            jsonwebtoken::Algorithm::EdDSA,
        )
        .expect("verify runs");
        assert!(!tampered, "another message must not verify");
    }

    #[test]
    fn a8_an_unknown_kid_fails_without_falling_back_to_another_key() {
        let keys = ed_keys("k1");
        let (token, _) = mint(&keys, "test", &request("demo"), 1_000).expect("mint");
        let other = Verifier::new(ed_keys("k2"), token_cfg(10));
        assert_eq!(other.verify(&token, 1_000), Err(TokenError::UnknownKid));
    }

    #[test]
    fn a17_only_verified_tokens_are_cached_and_capacity_bounds_the_map() {
        let keys = ed_keys("k1");
        let mut tokens = Vec::new();
        for i in 0..40 {
            tokens.push(
                mint(&keys, "test", &request(&format!("r{i}")), 1_000)
                    .expect("mint")
                    .0,
            );
        }
        let v = Verifier::new(keys, token_cfg(16));
        for i in 0..1000 {
            let _ = v.verify(&format!("garbage.{i}.x"), 1_000);
        }
        assert_eq!(v.cache().len(), 0, "unverified tokens must not be cached");
        for t in &tokens {
            v.verify(t, 1_000).expect("valid");
            assert!(v.cache().len() <= 16, "cache grew past its capacity");
        }
        assert!(v.cache().evictions() > 0);
    }

    #[test]
    fn a18_replacing_keys_drops_cached_grants_of_the_old_key() {
        let keys = ed_keys("k1");
        let (token, _) = mint(&keys, "test", &request("demo"), 1_000).expect("mint");
        let v = Verifier::new(keys, token_cfg(10));
        v.verify(&token, 1_000).expect("valid");
        v.replace_keys(ed_keys("k2"));
        assert_eq!(v.verify(&token, 1_000), Err(TokenError::UnknownKid));
    }

    #[test]
    fn cache_entries_do_not_outlive_the_token() {
        let keys = ed_keys("k1");
        let (token, _) = mint(&keys, "test", &request("demo"), 1_000).expect("mint");
        let v = Verifier::new(keys, token_cfg(10));
        v.verify(&token, 1_000).expect("valid");
        // exp = 1060, leeway 5: a lookup at 1066 must miss (and verify again).
        let misses = v.cache().misses();
        let _ = v.verify(&token, 1_066);
        assert_eq!(v.cache().misses(), misses + 1);
    }
}
