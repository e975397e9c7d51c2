//! Minting a CAT: the signing half of a key ([`CatSigner`]) and the one thing the edge
//! mints, a renewal ([`renew`]) for `catr` (and a `catif` header's token). Owns the COSE
//! envelope a minted token gets; never decides *when* to renew (the edge does, from
//! `catr`), never reads the clock (`now` is handed in) and never sees HTTP.
//!
//! A renewal copies the presented token's claims map byte for byte as the issuer encoded
//! it and changes exactly two claims: `exp` = `now` + `expadd` and `iat` = `now` (threat
//! model I4). Everything else (`cti`, `catu`, `catnip`, `catr` itself, unknown and
//! critical claims) is the issuer's: a renewal can never widen what the token allows.
//! `@eyevinn/cat` draws a new `cti` and rewrites `iss`; tollgate keeps both, so a
//! revocation of the `cti` reaches every renewal of the token.
//!
//! The envelope: COSE_Mac0 (HS256, "HMAC 256/256") or COSE_Sign1 (ES256, EdDSA) with
//! `alg` and `kid` in the protected header, COSE-tagged and wrapped in the CWT tag (61),
//! the form every CAT implementation reads.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::Engine as _;
use ciborium::value::Value;
use coset::{iana, CoseMac0Builder, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};

use super::claims::{unique_map, EXP, IAT};
use super::cose::{decode_one, CatKey};
use super::{CatReason, VerifiedCat};

/// The CWT tag (RFC 8392).
const TAG_CWT: u64 = 61;

/// A key that can mint: the HS256 secret or the private half of an ES256/EdDSA key.
pub enum CatSigner {
    Hs256 { secret: Vec<u8> },
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

/// Names the algorithm only: key material stays out of logs and panics.
impl std::fmt::Debug for CatSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = match self {
            Self::Hs256 { .. } => "HS256",
            Self::Es256(_) => "ES256",
            Self::EdDsa(_) => "EdDSA",
        };
        write!(f, "CatSigner({alg})")
    }
}

impl CatSigner {
    pub fn hs256(secret: &[u8]) -> Self {
        Self::Hs256 {
            secret: secret.to_vec(),
        }
    }

    /// An ES256 private key, PKCS#8 DER.
    pub fn es256_pkcs8(der: &[u8]) -> Result<Self, String> {
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map(Self::Es256)
            .map_err(|e| format!("not a P-256 PKCS#8 private key: {e}"))
    }

    /// An Ed25519 private key, PKCS#8 DER (v1 or v2).
    pub fn ed25519_pkcs8(der: &[u8]) -> Result<Self, String> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(Self::EdDsa)
            .map_err(|e| format!("not an Ed25519 PKCS#8 private key: {e}"))
    }

    /// The verification key for what this signer mints.
    pub fn verify_key(&self) -> CatKey {
        match self {
            Self::Hs256 { secret } => CatKey::hs256(secret),
            Self::Es256(k) => CatKey::es256(k.public_key().as_ref()),
            Self::EdDsa(k) => CatKey::ed25519(k.public_key().as_ref()),
        }
    }

    /// A token over `payload` (a CBOR claims map) under `kid`, as bytes.
    pub fn mint(&self, payload: Vec<u8>, kid: &[u8]) -> Result<Vec<u8>, CatReason> {
        let sealed = match self {
            Self::Hs256 { secret } => {
                let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
                CoseMac0Builder::new()
                    .protected(protected(iana::Algorithm::HMAC_256_256, kid))
                    .payload(payload)
                    .create_tag(b"", |data| hmac::sign(&key, data).as_ref().to_vec())
                    .build()
                    .to_tagged_vec()
            }
            Self::Es256(k) => {
                let mut failed = false;
                let rng = SystemRandom::new();
                let signed = CoseSign1Builder::new()
                    .protected(protected(iana::Algorithm::ES256, kid))
                    .payload(payload)
                    .create_signature(b"", |data| match k.sign(&rng, data) {
                        Ok(sig) => sig.as_ref().to_vec(),
                        Err(_) => {
                            failed = true;
                            Vec::new()
                        }
                    })
                    .build();
                if failed {
                    return Err(CatReason::Malformed);
                }
                signed.to_tagged_vec()
            }
            Self::EdDsa(k) => CoseSign1Builder::new()
                .protected(protected(iana::Algorithm::EdDSA, kid))
                .payload(payload)
                .create_signature(b"", |data| k.sign(data).as_ref().to_vec())
                .build()
                .to_tagged_vec(),
        }
        .map_err(|_| CatReason::Malformed)?;
        cwt_tagged(&sealed)
    }
}

fn protected(alg: iana::Algorithm, kid: &[u8]) -> coset::Header {
    HeaderBuilder::new()
        .algorithm(alg)
        .key_id(kid.to_vec())
        .build()
}

/// Wraps a tagged COSE message in the CWT tag.
fn cwt_tagged(cose: &[u8]) -> Result<Vec<u8>, CatReason> {
    let inner = decode_one(cose)?;
    encode(&Value::Tag(TAG_CWT, Box::new(inner)))
}

fn encode(v: &Value) -> Result<Vec<u8>, CatReason> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|_| CatReason::Malformed)?;
    Ok(out)
}

/// A renewed token: `cat`'s claims with `exp` = `now` + `expadd` and `iat` = `now`,
/// minted by `signer` under `kid`. Returns the token and its `exp`. Only a token that
/// verified can be handed in (a [`VerifiedCat`] exists only through `verify`); the edge
/// renews only one that also authorised the request.
pub fn renew(
    cat: &VerifiedCat,
    now: u64,
    expadd: u64,
    kid: &[u8],
    signer: &CatSigner,
) -> Result<(Vec<u8>, u64), CatReason> {
    let exp = now.checked_add(expadd).ok_or(CatReason::Malformed)?;
    let payload = with_times(&cat.payload, exp, now)?;
    Ok((signer.mint(payload, kid)?, exp))
}

/// The claims map of `payload` with `exp` and `iat` set (replaced in place, or added at
/// the end); every other entry is kept as it was, in its order.
fn with_times(payload: &[u8], exp: u64, iat: u64) -> Result<Vec<u8>, CatReason> {
    let value = decode_one(payload)?;
    let mut entries = unique_map(&value)?.to_vec();
    for (claim, at) in [(EXP, exp), (IAT, iat)] {
        let key = Value::Integer(claim.into());
        let at = Value::Integer(at.into());
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = at,
            None => entries.push((key, at)),
        }
    }
    encode(&Value::Map(entries))
}

/// The text form carriers use: base64url without padding.
pub fn encode_text(token: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::cat::{verify, CatKeys, CatPolicy};

    const NOW: u64 = 1_800_000_000;

    fn claims() -> Vec<u8> {
        let i = |n: i64| Value::Integer(n.into());
        let m = Value::Map(vec![
            (i(1), Value::Text("issuer".into())),
            (i(4), i(NOW as i64 + 30)),
            (i(7), Value::Bytes(b"cti".to_vec())),
            (i(9999), Value::Text("private".into())),
        ]);
        encode(&m).expect("cbor")
    }

    fn signers() -> Vec<CatSigner> {
        let es = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("es");
        let es = es.to_pkcs8v1().expect("pkcs8");
        let ed = Ed25519KeyPair::generate()
            .expect("ed")
            .to_pkcs8v1()
            .expect("pkcs8");
        vec![
            CatSigner::hs256(&[9u8; 32]),
            CatSigner::es256_pkcs8(es.as_ref()).expect("es256"),
            CatSigner::ed25519_pkcs8(ed.as_ref()).expect("ed25519"),
        ]
    }

    #[test]
    fn minted_tokens_verify_with_the_signers_own_key_in_each_algorithm() {
        for signer in signers() {
            let mut keys = CatKeys::new();
            keys.insert(b"k".to_vec(), signer.verify_key());
            let token = signer.mint(claims(), b"k").expect("mint");
            let cat = verify(&token, &keys, &CatPolicy::default()).expect("verifies");
            assert_eq!(cat.claims.exp, Some(NOW + 30), "{signer:?}");
        }
    }

    #[test]
    fn i4_renew_changes_exp_and_iat_only() {
        for signer in signers() {
            let mut keys = CatKeys::new();
            keys.insert(b"k".to_vec(), signer.verify_key());
            let original = signer.mint(claims(), b"k").expect("mint");
            let cat = verify(&original, &keys, &CatPolicy::default()).expect("verifies");
            let (renewed, exp) = renew(&cat, NOW + 10, 120, b"k", &signer).expect("renew");
            assert_eq!(exp, NOW + 130);
            let again = verify(&renewed, &keys, &CatPolicy::default()).expect("verifies");
            assert_eq!(
                (again.claims.exp, again.claims.iat),
                (Some(NOW + 130), Some(NOW + 10))
            );
            let strip = |payload: &[u8]| -> Vec<(Value, Value)> {
                let v = decode_one(payload).expect("cbor");
                unique_map(&v)
                    .expect("map")
                    .iter()
                    .filter(|(k, _)| {
                        *k != Value::Integer(EXP.into()) && *k != Value::Integer(IAT.into())
                    })
                    .cloned()
                    .collect()
            };
            assert_eq!(strip(&again.payload), strip(&cat.payload), "{signer:?}");
            assert_eq!(strip(&cat.payload).len(), 3);
        }
    }
}
