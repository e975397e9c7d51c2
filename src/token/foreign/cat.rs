//! The CTA-5007 Common Access Token as a route format: its carriers (a header, a query
//! parameter, a cookie, each holding the token's base64url text), its keys (pinned per
//! `kid` with their algorithm, the signing half where one is configured) and its
//! policy. Verification and authorisation are [`crate::token::cat`]'s; minting a renewal
//! is [`cat::renew`]. It never touches HTTP types, files or the clock: the caller hands
//! in key material and `now`.
//!
//! Renewal keys: a renewal is minted with the key named by `renew_kid`, else with the
//! key that verified the presented token. A key configured without its private half
//! (an SPKI public key) cannot mint: a configuration whose `renew_kid` names such a key
//! is refused; a token verified by one is served without renewal, with one log line.

use std::collections::HashMap;
use std::sync::Arc;

use super::Carriers;
use crate::token::cat::{self, CatKey, CatKeys, CatPolicy, CatReason, CatSigner, VerifiedCat};

/// The default header and cookie name (CTA-5007), and the default query parameter.
pub const DEFAULT_HEADER: &str = "CTA-Common-Access-Token";
pub const DEFAULT_COOKIE: &str = "CTA-Common-Access-Token";
pub const DEFAULT_QUERY: &str = "CAT";

/// One configured key, as plain values.
pub enum KeyMaterial<'a> {
    /// An HS256 secret.
    Hs256(&'a [u8]),
    /// ES256 or EdDSA: PKCS#8 private key DER (can sign) or SPKI public key DER.
    Pkcs8 {
        alg: &'a str,
        der: &'a [u8],
    },
    Spki {
        alg: &'a str,
        der: &'a [u8],
    },
}

/// The settings of one `cat` format, as plain values.
pub struct Settings<'a> {
    pub header: &'a str,
    pub query: &'a str,
    pub cookie: &'a str,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
    pub renew_kid: Option<&'a [u8]>,
    pub keys: Vec<(Vec<u8>, KeyMaterial<'a>)>,
    /// Clock skew on `exp`/`nbf`, seconds (`token.leeway`).
    pub leeway: u64,
    /// Longest token, bytes (`token.max_len`).
    pub max_len: usize,
    /// Seconds past `exp` a renewable token from the query may still load a manifest
    /// that carries its renewal on (the live-session allowance); 0: off.
    pub live_session: u64,
}

/// A configured `cat` format.
#[derive(Clone)]
pub struct CatFormat {
    keys: CatKeys,
    signers: HashMap<Vec<u8>, Arc<CatSigner>>,
    renew_kid: Option<Vec<u8>>,
    policy: CatPolicy,
    header: String,
    query: String,
    cookie: String,
    live_session: u64,
}

/// The DER prefixes of an SPKI holding a P-256 point or an Ed25519 key: the key is what
/// follows (RFC 5480, RFC 8410).
const SPKI_P256: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const SPKI_ED25519: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

impl CatFormat {
    /// Build the format; the error says what is wrong, for the configuration.
    pub fn new(s: Settings<'_>) -> Result<Self, String> {
        if s.keys.is_empty() {
            return Err("keys: at least one [[formats.keys]]".into());
        }
        let mut keys = CatKeys::new();
        let mut signers = HashMap::new();
        let mut kids = std::collections::HashSet::new();
        for (kid, material) in s.keys {
            if kid.is_empty() || !kids.insert(kid.clone()) {
                return Err("keys: a kid is empty or used twice".into());
            }
            let (verify, signer) = key(material).map_err(|e| format!("keys: {e}"))?;
            keys.insert(kid.clone(), verify);
            if let Some(signer) = signer {
                signers.insert(kid, Arc::new(signer));
            }
        }
        if let Some(kid) = s.renew_kid {
            if !signers.contains_key(kid) {
                return Err("renew_kid: names no key with a private half (HS256 secret or PKCS#8 private key)".into());
            }
        }
        if s.live_session > 0 && signers.is_empty() {
            return Err("live_session: a session is served only with a renewed token, and no key has a private half to mint one".into());
        }
        Ok(CatFormat {
            keys,
            signers,
            renew_kid: s.renew_kid.map(<[u8]>::to_vec),
            policy: CatPolicy {
                issuers: s.issuer.map(str::to_owned).into_iter().collect(),
                audiences: s.audience.map(str::to_owned).into_iter().collect(),
                leeway: s.leeway,
                max_len: s.max_len,
                ..CatPolicy::default()
            },
            header: s.header.into(),
            query: s.query.into(),
            cookie: s.cookie.into(),
            live_session: s.live_session,
        })
    }

    /// One field (the token's text) in each carrier that is on.
    pub fn carriers(&self) -> Carriers {
        Carriers {
            query: match self.query.is_empty() {
                true => Vec::new(),
                false => vec![self.query.clone()],
            },
            cookies: vec![self.cookie.clone()],
            header: self.header.clone(),
            ..Carriers::default()
        }
    }

    pub fn policy(&self) -> &CatPolicy {
        &self.policy
    }

    /// The query parameter ("" when off): where a redirect or a rewritten manifest puts
    /// a renewed token.
    pub fn query_name(&self) -> &str {
        &self.query
    }

    pub fn header_name(&self) -> &str {
        &self.header
    }

    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }

    /// Seconds past `exp` the live-session allowance reaches (0: off).
    pub fn live_session(&self) -> u64 {
        self.live_session
    }

    /// The envelope and the request-independent claims (the cacheable step).
    pub fn verify(&self, text: &str) -> Result<VerifiedCat, CatReason> {
        // Base64url grows 4/3: a text past that bound is refused before decoding.
        if text.len() > self.policy.max_len.saturating_mul(4) / 3 + 4 {
            return Err(CatReason::TooLong);
        }
        cat::verify(&cat::decode_text(text)?, &self.keys, &self.policy)
    }

    /// The `kid` and key a renewal of a token verified by `kid` is minted with.
    pub fn renewal_signer<'s>(&'s self, kid: &'s [u8]) -> Option<(&'s [u8], &'s CatSigner)> {
        let kid = self.renew_kid.as_deref().unwrap_or(kid);
        self.signers.get(kid).map(|s| (kid, s.as_ref()))
    }
}

/// The verification key and, when the material has its private half, the signer.
fn key(material: KeyMaterial<'_>) -> Result<(CatKey, Option<CatSigner>), String> {
    let signer = match material {
        KeyMaterial::Hs256(secret) if secret.len() < 32 => {
            return Err("an HS256 key is at least 32 bytes (64 hex digits)".into())
        }
        KeyMaterial::Hs256(secret) => CatSigner::hs256(secret),
        KeyMaterial::Pkcs8 { alg: "ES256", der } => CatSigner::es256_pkcs8(der)?,
        KeyMaterial::Pkcs8 { alg: "EdDSA", der } => CatSigner::ed25519_pkcs8(der)?,
        KeyMaterial::Spki { alg: "ES256", der } => {
            let point = der
                .strip_prefix(&SPKI_P256[..])
                .filter(|p| p.len() == 65)
                .ok_or("not a P-256 public key (SPKI)")?;
            return Ok((CatKey::es256(point), None));
        }
        KeyMaterial::Spki { alg: "EdDSA", der } => {
            let public = der
                .strip_prefix(&SPKI_ED25519[..])
                .filter(|p| p.len() == 32)
                .ok_or("not an Ed25519 public key (SPKI)")?;
            return Ok((CatKey::ed25519(public), None));
        }
        KeyMaterial::Pkcs8 { alg, .. } | KeyMaterial::Spki { alg, .. } => {
            return Err(format!("alg {alg:?}: HS256, ES256 or EdDSA"))
        }
    };
    Ok((signer.verify_key(), Some(signer)))
}
