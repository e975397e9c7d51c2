//! The CAT's envelope: CBOR decoding of the CWT and its COSE_Mac0 or COSE_Sign1, the
//! `kid` lookup and the MAC or signature check. Owns the CAT keys; never reads claims.
//!
//! A key is configured with its `kid` and exactly one algorithm (HS256 = COSE "HMAC
//! 256/256", ES256, EdDSA with Ed25519). The algorithm and the COSE structure come from
//! the key: a token whose header names another algorithm, or whose COSE tag is the other
//! structure (a MAC for a signature key, or the reverse), is refused as `algorithm`, so
//! the classic confusion (an HMAC computed with a public key as its secret) fails.
//! The CWT tag (61) and the COSE tag (17/18) are both optional, as RFC 8392 allows.

use std::collections::HashMap;

use ciborium::value::Value;
use coset::iana::{self, EnumI64};
use coset::{AsCborValue, CoseMac0, CoseSign1, Header, RegisteredLabelWithPrivate};

use super::{CatPolicy, CatReason};
use crate::token::keys::Algorithm;

/// The CWT tag (RFC 8392).
const TAG_CWT: u64 = 61;
/// COSE_Mac0 and COSE_Sign1 tags (RFC 9052).
const TAG_MAC0: u64 = 17;
const TAG_SIGN1: u64 = 18;
/// Deepest CBOR nesting decoded: a CAT's deepest claim (`catif` holding a token's
/// claims) is well inside; a deeper one is an attack on the decoder, not a token.
const MAX_DEPTH: usize = 16;
/// COSE header labels tollgate processes, the only ones a `crit` header may list.
const UNDERSTOOD_HEADERS: [iana::HeaderParameter; 3] = [
    iana::HeaderParameter::Alg,
    iana::HeaderParameter::Crit,
    iana::HeaderParameter::Kid,
];

/// One verification key, pinned to its algorithm.
#[derive(Debug, Clone)]
pub struct CatKey {
    alg: Algorithm,
    material: Vec<u8>,
}

impl CatKey {
    /// An HS256 (HMAC 256/256) secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            alg: Algorithm::Hs256,
            material: secret.to_vec(),
        }
    }

    /// An ES256 public key: the uncompressed SEC1 point (65 bytes, `04‖x‖y`).
    pub fn es256(public_point: &[u8]) -> Self {
        Self {
            alg: Algorithm::Es256,
            material: public_point.to_vec(),
        }
    }

    /// An Ed25519 public key (32 bytes).
    pub fn ed25519(public: &[u8]) -> Self {
        Self {
            alg: Algorithm::EdDsa,
            material: public.to_vec(),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn cose_alg(&self) -> iana::Algorithm {
        match self.alg {
            Algorithm::Hs256 => iana::Algorithm::HMAC_256_256,
            Algorithm::Es256 => iana::Algorithm::ES256,
            // Rs256 keys cannot be built here; EdDSA is the remaining case.
            Algorithm::EdDsa | Algorithm::Rs256 => iana::Algorithm::EdDSA,
        }
    }

    fn is_mac(&self) -> bool {
        self.alg == Algorithm::Hs256
    }

    fn verify(&self, data: &[u8], tag: &[u8]) -> Result<(), CatReason> {
        use aws_lc_rs::{hmac, signature};
        let ok = match self.alg {
            // hmac::verify compares in constant time.
            Algorithm::Hs256 => hmac::verify(
                &hmac::Key::new(hmac::HMAC_SHA256, &self.material),
                data,
                tag,
            )
            .is_ok(),
            Algorithm::Es256 => signature::UnparsedPublicKey::new(
                &signature::ECDSA_P256_SHA256_FIXED,
                &self.material,
            )
            .verify(data, tag)
            .is_ok(),
            Algorithm::EdDsa => {
                signature::UnparsedPublicKey::new(&signature::ED25519, &self.material)
                    .verify(data, tag)
                    .is_ok()
            }
            Algorithm::Rs256 => false,
        };
        if ok {
            Ok(())
        } else {
            Err(CatReason::BadSignature)
        }
    }
}

/// The configured CAT keys by `kid` (the `kid` bytes as the token carries them).
#[derive(Debug, Clone, Default)]
pub struct CatKeys {
    keys: HashMap<Vec<u8>, CatKey>,
}

impl CatKeys {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key; a second key under the same `kid` replaces the first.
    pub fn insert(&mut self, kid: impl Into<Vec<u8>>, key: CatKey) {
        self.keys.insert(kid.into(), key);
    }

    fn get(&self, kid: &[u8]) -> Option<&CatKey> {
        self.keys.get(kid)
    }
}

/// A verified envelope: the `kid` that verified it and the claims' bytes.
pub(super) struct Opened {
    pub kid: Vec<u8>,
    pub payload: Vec<u8>,
}

/// Decodes, finds the key, checks the algorithm and the MAC or signature.
pub(super) fn open(token: &[u8], keys: &CatKeys, policy: &CatPolicy) -> Result<Opened, CatReason> {
    if token.len() > policy.max_len {
        return Err(CatReason::TooLong);
    }
    let value = decode_one(token)?;
    let (cwt_tagged, value) = peel_tag(value, TAG_CWT);
    if policy.require_cwt_tag && !cwt_tagged {
        return Err(CatReason::Malformed);
    }
    let (cose_tag, value) = match value {
        Value::Tag(tag, inner) => (Some(tag), *inner),
        other => (None, other),
    };
    let (value, hex_text) = hex_text_payload(value, policy)?;
    let message = Message::parse(value, cose_tag, keys)?;
    let (kid, key) = message.key(keys)?;
    check_algorithm(message.protected(), message.unprotected(), key)?;
    check_critical(message.protected(), message.unprotected())?;
    match &hex_text {
        Some(text) => message.verify_over_text(key, text)?,
        None => message.verify(key)?,
    }
    Ok(Opened {
        kid,
        payload: message.into_payload()?,
    })
}

/// Exactly one CBOR item, no trailing bytes, bounded nesting.
pub(super) fn decode_one(bytes: &[u8]) -> Result<Value, CatReason> {
    let mut rest = bytes;
    let value: Value = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|_| CatReason::Malformed)?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(CatReason::Malformed)
    }
}

fn peel_tag(value: Value, tag: u64) -> (bool, Value) {
    match value {
        Value::Tag(t, inner) if t == tag => (true, *inner),
        other => (false, other),
    }
}

enum Message {
    Mac0(CoseMac0),
    Sign1(CoseSign1),
}

impl Message {
    /// A COSE tag decides the structure; untagged, the `kid`'s key does (a MAC key
    /// expects COSE_Mac0, a signature key COSE_Sign1): both arrays have the same shape.
    fn parse(value: Value, cose_tag: Option<u64>, keys: &CatKeys) -> Result<Self, CatReason> {
        let is_mac = match cose_tag {
            Some(TAG_MAC0) => true,
            Some(TAG_SIGN1) => false,
            Some(_) => return Err(CatReason::Malformed),
            None => untagged_is_mac(&value, keys)?,
        };
        if is_mac {
            CoseMac0::from_cbor_value(value).map(Self::Mac0)
        } else {
            CoseSign1::from_cbor_value(value).map(Self::Sign1)
        }
        .map_err(|_| CatReason::Malformed)
    }

    fn protected(&self) -> &Header {
        match self {
            Self::Mac0(m) => &m.protected.header,
            Self::Sign1(s) => &s.protected.header,
        }
    }

    fn unprotected(&self) -> &Header {
        match self {
            Self::Mac0(m) => &m.unprotected,
            Self::Sign1(s) => &s.unprotected,
        }
    }

    fn is_mac(&self) -> bool {
        matches!(self, Self::Mac0(_))
    }

    /// The `kid` (protected or unprotected; both present must agree) and its key, which
    /// must be of this message's kind.
    fn key<'k>(&self, keys: &'k CatKeys) -> Result<(Vec<u8>, &'k CatKey), CatReason> {
        let kid = header_kid(self.protected(), self.unprotected())?;
        let key = keys.get(&kid).ok_or(CatReason::UnknownKid)?;
        if key.is_mac() != self.is_mac() {
            return Err(CatReason::Algorithm);
        }
        Ok((kid, key))
    }

    /// A detached payload (none in the message) is not a CWT: malformed, before any crypto.
    fn verify(&self, key: &CatKey) -> Result<(), CatReason> {
        match self {
            Self::Mac0(m) => m.verify_payload_tag(
                b"",
                || CatReason::Malformed,
                |tag, data| key.verify(data, tag),
            ),
            Self::Sign1(s) if s.payload.is_some() => {
                s.verify_signature(b"", |sig, data| key.verify(data, sig))
            }
            Self::Sign1(_) => Err(CatReason::Malformed),
        }
    }

    /// The MAC or signature over the structure as `@eyevinn/cat`'s untagged mode built
    /// it: the payload in the MAC_structure/Sig_structure is the hex text itself.
    fn verify_over_text(&self, key: &CatKey, text: &str) -> Result<(), CatReason> {
        let (context, protected, tag) = match self {
            Self::Mac0(m) => ("MAC0", &m.protected, &m.tag),
            Self::Sign1(s) => ("Signature1", &s.protected, &s.signature),
        };
        let structure = Value::Array(vec![
            Value::Text(context.into()),
            Value::Bytes(protected.original_data.clone().unwrap_or_default()),
            Value::Bytes(Vec::new()),
            Value::Text(text.into()),
        ]);
        let mut data = Vec::new();
        ciborium::ser::into_writer(&structure, &mut data).map_err(|_| CatReason::Malformed)?;
        key.verify(&data, tag)
    }

    fn into_payload(self) -> Result<Vec<u8>, CatReason> {
        match self {
            Self::Mac0(m) => m.payload,
            Self::Sign1(s) => s.payload,
        }
        .ok_or(CatReason::Malformed)
    }
}

/// `@eyevinn/cat`'s untagged mode writes the claims as a text string of hex digits where
/// COSE has a byte string, and MACs that text. Only with
/// [`CatPolicy::hex_text_payload`]: the message with the claims' bytes in place, and the
/// text to verify over. Otherwise a text payload stays text and is malformed.
fn hex_text_payload(
    value: Value,
    policy: &CatPolicy,
) -> Result<(Value, Option<String>), CatReason> {
    match value {
        Value::Array(mut parts)
            if policy.hex_text_payload && parts.len() == 4 && parts[2].is_text() =>
        {
            let Value::Text(text) = std::mem::replace(&mut parts[2], Value::Null) else {
                return Err(CatReason::Malformed);
            };
            parts[2] = Value::Bytes(super::uri::decode_hex(&text)?);
            Ok((Value::Array(parts), Some(text)))
        }
        other => Ok((other, None)),
    }
}

/// For an untagged message: look into the headers for the `kid` and ask its key.
fn untagged_is_mac(value: &Value, keys: &CatKeys) -> Result<bool, CatReason> {
    // Parse as the structurally identical Sign1 just to read the headers.
    let probe = CoseSign1::from_cbor_value(value.clone()).map_err(|_| CatReason::Malformed)?;
    let kid = header_kid(&probe.protected.header, &probe.unprotected)?;
    keys.get(&kid)
        .map(CatKey::is_mac)
        .ok_or(CatReason::UnknownKid)
}

fn header_kid(protected: &Header, unprotected: &Header) -> Result<Vec<u8>, CatReason> {
    match (protected.key_id.is_empty(), unprotected.key_id.is_empty()) {
        (true, true) => Err(CatReason::UnknownKid),
        (false, false) if protected.key_id != unprotected.key_id => Err(CatReason::Malformed),
        (false, _) => Ok(protected.key_id.clone()),
        (true, false) => Ok(unprotected.key_id.clone()),
    }
}

/// An `alg` in either header must be the key's own; none at all is allowed (the key
/// decides), a different one is algorithm confusion.
fn check_algorithm(
    protected: &Header,
    unprotected: &Header,
    key: &CatKey,
) -> Result<(), CatReason> {
    let want = RegisteredLabelWithPrivate::Assigned(key.cose_alg());
    for alg in [&protected.alg, &unprotected.alg].into_iter().flatten() {
        if *alg != want {
            return Err(CatReason::Algorithm);
        }
    }
    Ok(())
}

/// RFC 9052 `crit`: every listed header parameter must be one tollgate processes; and
/// `crit` belongs in the protected header (one in the unprotected header is refused).
fn check_critical(protected: &Header, unprotected: &Header) -> Result<(), CatReason> {
    if !unprotected.crit.is_empty() {
        return Err(CatReason::Critical);
    }
    let understood = |label: &RegisteredLabelWithPrivate<iana::HeaderParameter>| match label {
        RegisteredLabelWithPrivate::Assigned(p) => {
            UNDERSTOOD_HEADERS.iter().any(|u| u.to_i64() == p.to_i64())
        }
        _ => false,
    };
    if protected.crit.iter().all(understood) {
        Ok(())
    } else {
        Err(CatReason::Critical)
    }
}
