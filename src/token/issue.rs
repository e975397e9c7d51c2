//! Minting native tokens with the active signing key.
//!
//! Used by `tollgate token mint`, the quick start's printed URL and (later) the admin
//! dialects. Every token gets a random `jti` (its revocation handle), `iat`, and `exp`
//! unless the request asked for a never-expiring token.

use std::time::Duration;

use jsonwebtoken::{encode, Header};

use super::claims::{Claims, Scope};
use super::keys::{jwt_alg, KeySet};
use super::TokenError;
use crate::resource::ResourceType;

/// What a new token should say.
#[derive(Debug, Clone)]
pub struct MintRequest {
    pub scope: Scope,
    pub org: Option<String>,
    pub prj: Option<String>,
    pub rid: Option<String>,
    pub rty: Option<ResourceType>,
    pub sub: Option<String>,
    pub name: Option<String>,
    /// Lifetime; None = never expires.
    pub ttl: Option<Duration>,
    pub ip: Option<String>,
    pub acl: Vec<String>,
    /// Latest time a renewed token may reach (live sessions).
    pub sxp: Option<u64>,
    pub aud: Option<String>,
    /// Refresh family the token descends from (revoking the family revokes it).
    pub family: Option<String>,
    /// An admin token (`adm`): it also plays unpublished resources.
    pub admin: bool,
}

impl Default for MintRequest {
    fn default() -> Self {
        MintRequest {
            scope: Scope::Resource,
            org: None,
            prj: None,
            rid: None,
            rty: None,
            sub: None,
            name: None,
            ttl: Some(Duration::from_secs(3600)),
            ip: None,
            acl: Vec::new(),
            sxp: None,
            aud: None,
            family: None,
            admin: false,
        }
    }
}

/// A random 128-bit id, hex.
pub fn random_id() -> Result<String, TokenError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| TokenError::Sign("no randomness"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Sign a token for `req` at time `now`. Returns the token and its claims.
pub fn mint(
    keys: &KeySet,
    issuer: &str,
    req: &MintRequest,
    now: u64,
) -> Result<(String, Claims), TokenError> {
    let claims = Claims {
        iss: issuer.to_string(),
        sub: req.sub.clone(),
        name: req.name.clone(),
        aud: req.aud.clone().map(super::claims::Audience::One),
        jti: Some(random_id()?),
        iat: Some(now),
        nbf: None,
        exp: req.ttl.map(|t| now.saturating_add(t.as_secs())),
        org: req.org.clone(),
        scope: req.scope,
        prj: req.prj.clone(),
        rid: req.rid.clone(),
        rty: req.rty,
        acl: (!req.acl.is_empty()).then(|| req.acl.clone()),
        ip: req.ip.clone(),
        sxp: req.sxp,
        fam: req.family.clone(),
        adm: req.admin.then_some(true),
    };
    Ok((sign(keys, &claims)?, claims))
}

/// Sign `claims` as they are, with the active signing key.
pub fn sign(keys: &KeySet, claims: &Claims) -> Result<String, TokenError> {
    let key = keys.signing().ok_or(TokenError::Sign(
        "no active signing key with a private part",
    ))?;
    let mut header = Header::new(jwt_alg(key.alg));
    header.kid = Some(key.kid.clone());
    encode(&header, claims, &key.encoding).map_err(|_| TokenError::Sign("encoding failed"))
}

/// The claims of a token **whose signature has already been verified** (no check here:
/// never call this on a token the verifier has not accepted).
pub fn verified_claims(token: &str) -> Result<Claims, TokenError> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

/// A renewed copy of a verified token for a live session: the same claims (the same
/// `jti`, so one revocation still ends the whole session; the same `sxp`), `iat = now`
/// and `exp = min(now + ttl, sxp)`. None when the token has no `sxp` (it is not a
/// session and is never renewed) or when renewal would not extend it.
pub fn renew(
    keys: &KeySet,
    token: &str,
    now: u64,
    ttl: Duration,
) -> Result<Option<(String, u64)>, TokenError> {
    let mut claims = verified_claims(token)?;
    let Some(sxp) = claims.sxp else {
        return Ok(None);
    };
    let exp = now.saturating_add(ttl.as_secs()).min(sxp);
    if claims.exp.is_some_and(|old| old >= exp) || exp <= now {
        return Ok(None);
    }
    claims.iat = Some(now);
    claims.exp = Some(exp);
    Ok(Some((sign(keys, &claims)?, exp)))
}
