//! Key material by `kid`, each key pinned to one algorithm.
//!
//! A [`KeySet`] is loaded once from [`KeySpec`]s (and again on reload) and then only
//! read: looking a `kid` up is a hash-map probe, never a file, store or network access,
//! whatever the `kid` says (`docs/threat-model.md`, A8). The [`Algorithm`] a token is
//! checked with comes from the key, never from the token's header (threat model A1, A2).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jsonwebtoken::{DecodingKey, EncodingKey, Validation};

use crate::private_file::{self, Access};

/// A signature algorithm a key is pinned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    EdDsa,
    Es256,
    Rs256,
    Hs256,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "HS256" => Some(Self::Hs256),
            _ => None,
        }
    }

    /// The JOSE name (`alg` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::Hs256 => "HS256",
        }
    }
}

/// Where one key's material lives and what it is for: what [`KeySet::load`] and
/// [`ensure_dev_keys`] read. The configuration's `[[keys]]` entries validate into these.
#[derive(Debug, Clone)]
pub struct KeySpec {
    pub kid: String,
    pub alg: Algorithm,
    pub public: Option<PathBuf>,
    pub private: Option<PathBuf>,
    pub secret: Option<PathBuf>,
    /// The key that signs new tokens (at most one per set).
    pub active: bool,
    /// Generate an Ed25519 pair at `private`/`public` when they do not exist.
    pub dev_generate: bool,
}

/// Why keys could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key {kid}: cannot read {path}: {error}")]
    Read {
        kid: String,
        path: String,
        error: std::io::Error,
    },
    #[error("key {kid}: {what}")]
    Invalid { kid: String, what: String },
    #[error("cannot write {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("key generation failed: {0}")]
    Generate(String),
}

/// One verification key.
pub struct VerifyKey {
    pub kid: String,
    pub alg: Algorithm,
    pub decoding: DecodingKey,
    /// Signature-only validation for this key's algorithm: time and audience checks are
    /// done by [`super::Grant`] and [`super::authorize`] with an injected clock.
    pub validation: Validation,
    /// The public key PEM, kept for publishing (JWKS); None for HS256.
    pub public_pem: Option<String>,
}

/// The key new tokens are signed with.
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
}

/// Every key this gate knows, by `kid`.
#[derive(Default)]
pub struct KeySet {
    verify: HashMap<String, Arc<VerifyKey>>,
    signing: Option<SigningKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<_> = self.verify.keys().collect();
        kids.sort();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("signing", &self.signing.as_ref().map(|s| &s.kid))
            .finish()
    }
}

pub(crate) fn jwt_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::EdDsa => jsonwebtoken::Algorithm::EdDSA,
        Algorithm::Es256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::Rs256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::Hs256 => jsonwebtoken::Algorithm::HS256,
    }
}

fn signature_only(alg: Algorithm) -> Validation {
    let mut v = Validation::new(jwt_alg(alg));
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

fn read(kid: &str, path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|error| KeyError::Read {
        kid: kid.to_string(),
        path: path.display().to_string(),
        error,
    })
}

impl KeySet {
    /// Load every configured key. A key that cannot be read or parsed fails the whole
    /// set, so a broken file never half-replaces a working one.
    pub fn load(keys: &[KeySpec]) -> Result<Self, KeyError> {
        let mut set = KeySet::default();
        let signer =
            keys.iter()
                .find(|k| k.active)
                .map(|k| k.kid.as_str())
                .or(if keys.len() == 1 {
                    keys.first().map(|k| k.kid.as_str())
                } else {
                    None
                });
        for k in keys {
            let invalid = |what: String| KeyError::Invalid {
                kid: k.kid.clone(),
                what,
            };
            let (decoding, public_pem) = match k.alg {
                Algorithm::Hs256 => {
                    let path = k
                        .secret
                        .as_deref()
                        .ok_or_else(|| invalid("no secret".into()))?;
                    let secret = read(&k.kid, path)?;
                    if secret.len() < 32 {
                        return Err(invalid("an HS256 secret must be at least 32 bytes".into()));
                    }
                    if Some(k.kid.as_str()) == signer {
                        set.signing = Some(SigningKey {
                            kid: k.kid.clone(),
                            alg: k.alg,
                            encoding: EncodingKey::from_secret(&secret),
                        });
                    }
                    (DecodingKey::from_secret(&secret), None)
                }
                alg => {
                    let path = k
                        .public
                        .as_deref()
                        .ok_or_else(|| invalid("no public key".into()))?;
                    let pem = read(&k.kid, path)?;
                    let decoding = match alg {
                        Algorithm::EdDsa => DecodingKey::from_ed_pem(&pem),
                        Algorithm::Es256 => DecodingKey::from_ec_pem(&pem),
                        _ => DecodingKey::from_rsa_pem(&pem),
                    }
                    .map_err(|e| invalid(format!("public key: {e}")))?;
                    if let (Some(path), true) = (&k.private, Some(k.kid.as_str()) == signer) {
                        let pem = read(&k.kid, path)?;
                        let encoding = match alg {
                            Algorithm::EdDsa => EncodingKey::from_ed_pem(&pem),
                            Algorithm::Es256 => EncodingKey::from_ec_pem(&pem),
                            _ => EncodingKey::from_rsa_pem(&pem),
                        }
                        .map_err(|e| invalid(format!("private key: {e}")))?;
                        set.signing = Some(SigningKey {
                            kid: k.kid.clone(),
                            alg,
                            encoding,
                        });
                    }
                    let text = String::from_utf8(pem)
                        .map_err(|_| invalid("public key is not PEM text".into()))?;
                    (decoding, Some(text))
                }
            };
            set.insert(VerifyKey {
                kid: k.kid.clone(),
                alg: k.alg,
                decoding,
                validation: signature_only(k.alg),
                public_pem,
            });
        }
        Ok(set)
    }

    /// Build a set from in-memory keys (tests, benchmarks).
    pub fn from_keys(verify: Vec<VerifyKey>, signing: Option<SigningKey>) -> Self {
        let mut set = KeySet {
            verify: HashMap::new(),
            signing,
        };
        for v in verify {
            set.insert(v);
        }
        set
    }

    fn insert(&mut self, key: VerifyKey) {
        self.verify.insert(key.kid.clone(), Arc::new(key));
    }

    /// The verification key for `kid`, if this gate holds it.
    pub fn get(&self, kid: &str) -> Option<&Arc<VerifyKey>> {
        self.verify.get(kid)
    }

    /// Every kid, sorted.
    pub fn kids(&self) -> Vec<&str> {
        let mut kids: Vec<&str> = self.verify.keys().map(String::as_str).collect();
        kids.sort_unstable();
        kids
    }

    pub fn signing(&self) -> Option<&SigningKey> {
        self.signing.as_ref()
    }
}

impl VerifyKey {
    /// A verification key from PEM text (EdDSA/ES256/RS256) or secret bytes (HS256).
    pub fn from_material(kid: &str, alg: Algorithm, material: &[u8]) -> Result<Self, KeyError> {
        let decoding = match alg {
            Algorithm::EdDsa => DecodingKey::from_ed_pem(material),
            Algorithm::Es256 => DecodingKey::from_ec_pem(material),
            Algorithm::Rs256 => DecodingKey::from_rsa_pem(material),
            Algorithm::Hs256 => Ok(DecodingKey::from_secret(material)),
        }
        .map_err(|e| KeyError::Invalid {
            kid: kid.to_string(),
            what: e.to_string(),
        })?;
        Ok(VerifyKey {
            kid: kid.to_string(),
            alg,
            decoding,
            validation: signature_only(alg),
            public_pem: (alg != Algorithm::Hs256)
                .then(|| String::from_utf8_lossy(material).into_owned()),
        })
    }
}

impl SigningKey {
    /// A signing key from PKCS#8 PEM text (EdDSA/ES256/RS256) or secret bytes (HS256).
    pub fn from_material(kid: &str, alg: Algorithm, material: &[u8]) -> Result<Self, KeyError> {
        let encoding = match alg {
            Algorithm::EdDsa => EncodingKey::from_ed_pem(material),
            Algorithm::Es256 => EncodingKey::from_ec_pem(material),
            Algorithm::Rs256 => EncodingKey::from_rsa_pem(material),
            Algorithm::Hs256 => Ok(EncodingKey::from_secret(material)),
        }
        .map_err(|e| KeyError::Invalid {
            kid: kid.to_string(),
            what: e.to_string(),
        })?;
        Ok(SigningKey {
            kid: kid.to_string(),
            alg,
            encoding,
        })
    }
}

impl KeySet {
    /// The public keys as a JWKS (`{"keys":[…]}`), for `/.well-known/jwks.json`. HS256
    /// secrets are never published.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .kids()
            .into_iter()
            .filter_map(|kid| self.get(kid))
            .filter_map(|k| jwk(k))
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// One public key as a JWK, from its SPKI PEM.
fn jwk(k: &VerifyKey) -> Option<serde_json::Value> {
    use rustls_pki_types::pem::PemObject;
    let pem = k.public_pem.as_deref()?;
    let spki = rustls_pki_types::SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes()).ok()?;
    let key = spki_key_bits(spki.as_ref())?;
    let common = |mut v: serde_json::Value| {
        v["kid"] = k.kid.clone().into();
        v["alg"] = k.alg.as_str().into();
        v["use"] = "sig".into();
        v
    };
    match k.alg {
        Algorithm::EdDsa if key.len() == 32 => Some(common(
            serde_json::json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(key) }),
        )),
        Algorithm::Es256 if key.len() == 65 && key[0] == 4 => Some(common(serde_json::json!({
            "kty": "EC", "crv": "P-256", "x": b64(&key[1..33]), "y": b64(&key[33..65])
        }))),
        Algorithm::Rs256 => {
            let (n, e) = rsa_components(key)?;
            Some(common(
                serde_json::json!({ "kty": "RSA", "n": b64(n), "e": b64(e) }),
            ))
        }
        _ => None,
    }
}

/// One DER TLV at the start of `der`: (tag, contents, rest).
fn der_tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// SubjectPublicKeyInfo → the BIT STRING's key bytes.
fn spki_key_bits(spki: &[u8]) -> Option<&[u8]> {
    let (0x30, seq, _) = der_tlv(spki)? else {
        return None;
    };
    let (0x30, _alg, rest) = der_tlv(seq)? else {
        return None;
    };
    let (0x03, bits, _) = der_tlv(rest)? else {
        return None;
    };
    let (&unused, key) = bits.split_first()?;
    (unused == 0).then_some(key)
}

/// RSAPublicKey DER → (modulus, exponent), leading zero bytes removed.
fn rsa_components(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let (0x30, seq, _) = der_tlv(der)? else {
        return None;
    };
    let (0x02, n, rest) = der_tlv(seq)? else {
        return None;
    };
    let (0x02, e, _) = der_tlv(rest)? else {
        return None;
    };
    let trim = |x: &[u8]| -> usize { x.iter().take_while(|b| **b == 0).count() };
    Some((&n[trim(n)..], &e[trim(e)..]))
}

/// A fresh key pair as PEM text: (PKCS#8 private key, SPKI public key).
pub fn generate_pem(alg: Algorithm) -> Result<(String, String), KeyError> {
    let rc_alg = match alg {
        Algorithm::EdDsa => &rcgen::PKCS_ED25519,
        Algorithm::Es256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Algorithm::Rs256 => &rcgen::PKCS_RSA_SHA256,
        Algorithm::Hs256 => {
            return Err(KeyError::Generate(
                "HS256 uses a shared secret, not a key pair: write 32+ random bytes to a file"
                    .into(),
            ))
        }
    };
    let generate = |e: &dyn std::fmt::Display| KeyError::Generate(e.to_string());
    let pair = if alg == Algorithm::EdDsa {
        ed25519_pkcs8_v1().map_err(|e| generate(&e))?
    } else {
        rcgen::KeyPair::generate_for(rc_alg).map_err(|e| generate(&e))?
    };
    Ok((pair.serialize_pem(), pair.public_key_pem()))
}

/// A fresh Ed25519 key as PKCS#8 v1 (RFC 5208: version 0, no public key). rcgen and
/// aws-lc-rs write v2 (RFC 5958, with the public key), which OpenSSL 3.0 and Python's
/// `cryptography` refuse to read, so external signers could not use the key; every
/// reader, tollgate included, takes v1.
fn ed25519_pkcs8_v1() -> Result<rcgen::KeyPair, String> {
    use aws_lc_rs::signature::Ed25519KeyPair;
    let v1 = Ed25519KeyPair::generate()
        .and_then(|k| k.to_pkcs8v1())
        .map_err(|e| e.to_string())?;
    // rcgen keeps the DER it is given, so its PEM is this v1 document.
    rcgen::KeyPair::try_from(v1.as_ref()).map_err(|e| e.to_string())
}

/// Write a key pair to `private` (owner-only) and `public`, creating parent directories.
pub fn write_pair(private: &Path, public: &Path, pair: &(String, String)) -> Result<(), KeyError> {
    let write = |path: &Path, text: &str, access| -> Result<(), KeyError> {
        private_file::write(path, text.as_bytes(), access).map_err(|error| KeyError::Write {
            path: path.display().to_string(),
            error,
        })
    };
    write(private, &pair.0, Access::Owner)?;
    write(public, &pair.1, Access::Public)
}

/// Create the development key pairs the configuration asks for (`dev_generate`) when
/// they do not exist yet. Returns the kids that were created.
pub fn ensure_dev_keys(keys: &[KeySpec]) -> Result<Vec<String>, KeyError> {
    let mut made = Vec::new();
    for k in keys.iter().filter(|k| k.dev_generate) {
        let (Some(private), Some(public)) = (&k.private, &k.public) else {
            continue;
        };
        if private.exists() && public.exists() {
            continue;
        }
        write_pair(private, public, &generate_pem(k.alg)?)?;
        made.push(k.kid.clone());
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ed25519_pems_load_as_keys() {
        let (private, public) = generate_pem(Algorithm::EdDsa).expect("generate");
        assert!(private.contains("BEGIN PRIVATE KEY"));
        assert!(public.contains("BEGIN PUBLIC KEY"));
        SigningKey::from_material("k", Algorithm::EdDsa, private.as_bytes()).expect("signing");
        VerifyKey::from_material("k", Algorithm::EdDsa, public.as_bytes()).expect("verify");
    }

    /// The DER inside a PEM text's one block.
    fn pem_der(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .expect("a private key PEM")
            .secret_der()
            .to_vec()
    }

    #[test]
    fn generated_ed25519_keys_are_pkcs8_v1_that_openssl_3_0_and_python_read() {
        let (private, _) = generate_pem(Algorithm::EdDsa).expect("generate");
        let der = pem_der(&private);
        let (0x30, info, rest) = der_tlv(&der).expect("PrivateKeyInfo") else {
            panic!("not a SEQUENCE: {der:02x?}");
        };
        assert!(rest.is_empty());
        let (0x02, version, info) = der_tlv(info).expect("version") else {
            panic!("no version INTEGER: {der:02x?}");
        };
        assert_eq!(version, [0], "PKCS#8 v1 has version 0 (v2 has 1)");
        let (0x30, _alg, info) = der_tlv(info).expect("algorithm") else {
            panic!("no AlgorithmIdentifier");
        };
        let (0x04, key, info) = der_tlv(info).expect("privateKey") else {
            panic!("no privateKey OCTET STRING");
        };
        assert_eq!(key.len(), 34, "an OCTET STRING of the 32-byte seed");
        assert!(
            info.is_empty(),
            "no attributes and no [1] publicKey: {info:02x?}"
        );
    }

    #[test]
    fn an_ed25519_key_in_pkcs8_v2_still_loads() {
        // rcgen (over aws-lc-rs) writes v2, with the public key: what tollgate wrote before.
        let v2 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("generate");
        let der = pem_der(&v2.serialize_pem());
        let (_, info, _) = der_tlv(&der).expect("PrivateKeyInfo");
        assert_eq!(der_tlv(info).expect("version").1, [1], "a v2 document");
        SigningKey::from_material("k", Algorithm::EdDsa, v2.serialize_pem().as_bytes())
            .expect("v2 still signs");
    }

    #[test]
    fn generated_es256_and_rs256_pems_load_as_keys() {
        for alg in [Algorithm::Es256, Algorithm::Rs256] {
            let (private, public) = generate_pem(alg).expect("generate");
            SigningKey::from_material("k", alg, private.as_bytes()).expect("signing");
            VerifyKey::from_material("k", alg, public.as_bytes()).expect("verify");
        }
    }

    #[test]
    fn jwks_publishes_public_keys_and_never_secrets() {
        let mut verify = Vec::new();
        for (kid, alg) in [
            ("e", Algorithm::EdDsa),
            ("p", Algorithm::Es256),
            ("r", Algorithm::Rs256),
        ] {
            let (_, public) = generate_pem(alg).expect("generate");
            verify.push(VerifyKey::from_material(kid, alg, public.as_bytes()).expect("key"));
        }
        verify.push(
            VerifyKey::from_material("h", Algorithm::Hs256, b"0123456789abcdef0123456789abcdef")
                .expect("key"),
        );
        let set = KeySet::from_keys(verify, None);
        let jwks = set.jwks();
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 3, "{jwks}");
        let kinds: Vec<&str> = keys.iter().filter_map(|k| k["kty"].as_str()).collect();
        assert_eq!(kinds, ["OKP", "EC", "RSA"]);
        // Each JWK rebuilds a key that verifies what the matching private key signed.
        for k in keys {
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(k.clone()).expect("a JWK");
            DecodingKey::from_jwk(&jwk).expect("decodable");
        }
        assert!(!jwks.to_string().contains("0123456789abcdef"));
    }

    #[test]
    fn a_public_key_of_another_algorithm_is_refused() {
        let (_, public) = generate_pem(Algorithm::Es256).expect("generate");
        assert!(VerifyKey::from_material("k", Algorithm::EdDsa, public.as_bytes()).is_err());
    }

    #[test]
    fn short_hs256_secrets_are_refused_at_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s");
        std::fs::write(&path, b"too short").expect("write");
        let key = KeySpec {
            kid: "h".into(),
            alg: Algorithm::Hs256,
            public: None,
            private: None,
            secret: Some(path),
            active: true,
            dev_generate: false,
        };
        let err = KeySet::load(&[key]).expect_err("short secret");
        assert!(err.to_string().contains("32 bytes"), "{err}");
    }
}
