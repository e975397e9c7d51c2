//! Tokens: the claims, the keys, verification with its cache, authorisation and minting.
//!
//! This module owns everything about the native token (a JWT, `docs/architecture.md`,
//! "Tokens") and touches no hyper, http or socket type, imports no `config` (callers
//! convert their settings into [`keys::KeySpec`] and [`verify::VerifyPolicy`]) and never
//! reads the wall clock: every function that needs the time takes `now` (Unix seconds)
//! from its caller, so tests inject time.
//!
//! - [`claims`]: the wire claims and the typed [`Grant`] a verified token becomes;
//! - [`keys`]: key material by `kid`, each pinned to one algorithm; key generation;
//! - [`verify`]: [`Verifier`], signature + registered claims, behind a bounded cache;
//! - [`revocations`]: the revocation sets checked on every request, and how long a
//!   `jti` revocation is kept ([`JtiRetention`]);
//! - [`authorize`]: does a grant cover this resource, path and client at `now`;
//! - [`issue`]: minting new tokens with the active signing key;
//! - [`foreign`]: the other formats a route may accept (nginx secure_link, Akamai
//!   EdgeAuth), verified into a [`foreign::ForeignGrant`] behind the same cache;
//! - [`cat`]: the CTA-5007 Common Access Token, a foreign format verified beside the
//!   native token (its own keys, claims and reasons; shares nothing with the JWT path).

pub mod authorize;
pub mod cat;
pub mod claims;
pub mod foreign;
pub mod issue;
pub mod keys;
pub mod revocations;
pub mod verify;

pub use authorize::{authorize, authorize_until, Target};
pub use claims::{Claims, Grant, Scope};
pub use issue::{mint, MintRequest};
pub use keys::KeySet;
pub use revocations::{JtiRetention, Revocations};
pub use verify::Verifier;

/// Why a token was refused. Each variant has a stable reason code (the
/// `x-tollgate-reason` header, the access log and the metric label all use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a well-formed JWT, claims of the wrong type, duplicate claims, too long.
    #[error("malformed token")]
    Malformed,
    /// The signature does not verify, or the header names another algorithm than the key's.
    #[error("bad signature")]
    BadSignature,
    /// No `kid`, or a `kid` this gate does not hold.
    #[error("unknown key id")]
    UnknownKid,
    /// `iss` is not this gate's issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not name this gate.
    #[error("wrong audience")]
    Audience,
    /// `exp` passed (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// Revoked by `jti` or subject.
    #[error("token revoked")]
    Revoked,
    /// Valid, but its scope does not cover this resource.
    #[error("token not for this resource")]
    Scope,
    /// Valid, but its `acl` does not cover this path.
    #[error("path not in the token's acl")]
    Acl,
    /// Valid, but bound to another client address.
    #[error("token bound to another address")]
    Ip,
    /// Minting only: no active signing key, or the request cannot be signed.
    #[error("cannot sign: {0}")]
    Sign(&'static str),
}

impl TokenError {
    /// The stable reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::BadSignature => "bad_signature",
            Self::UnknownKid => "unknown_kid",
            Self::Issuer => "issuer",
            Self::Audience => "audience",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::Revoked => "revoked",
            Self::Scope => "scope",
            Self::Acl => "acl",
            Self::Ip => "ip",
            Self::Sign(_) => "sign",
        }
    }

    /// True when the token itself is fine but does not allow this request (HTTP 403);
    /// false when the token could not be trusted at all (HTTP 401).
    pub fn is_forbidden(self) -> bool {
        matches!(
            self,
            Self::Expired | Self::NotYetValid | Self::Revoked | Self::Scope | Self::Acl | Self::Ip
        )
    }
}
