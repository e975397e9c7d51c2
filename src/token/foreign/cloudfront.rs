//! CloudFront signed URLs and signed cookies, verified as CloudFront verifies what
//! botocore's `CloudFrontSigner` (or the AWS CLI's `cloudfront sign`, or any signer
//! following AWS's documented steps) makes, from plain values.
//!
//! A credential is `Expires` (a *canned* policy) or `Policy` (a *custom* one), then
//! `Signature` and `Key-Pair-Id`, and optionally `Hash-Algorithm=SHA256`: query
//! parameters of a signed URL, or the cookies `CloudFront-Expires`/`CloudFront-Policy`,
//! `CloudFront-Signature`, `CloudFront-Key-Pair-Id`, `CloudFront-Hash-Algorithm`.
//! `Policy` and `Signature` are base64 with CloudFront's URL-safe alphabet (`+` → `-`,
//! `=` → `_`, `/` → `~`).
//!
//! The signature covers the policy: for a canned policy, the one JSON text the signer
//! built, `{"Statement":[{"Resource":"<URL>","Condition":{"DateLessThan":
//! {"AWS:EpochTime":<Expires>}}}]}`, rebuilt here from the request's URL; for a custom
//! policy, the decoded `Policy` bytes, then parsed (one statement; `Resource`, optional,
//! with `*` for any run of characters and `?` for exactly one; `DateLessThan`
//! required, `DateGreaterThan` and `IpAddress` `AWS:SourceIp` optional; any other key,
//! a key given twice or a time that is not a non-negative integer is `malformed`).
//! The hash is SHA-1 unless `Hash-Algorithm` is `SHA256`; the key decides the
//! signature scheme: each `Key-Pair-Id` is pinned to one public key, RSA (PKCS#1 v1.5)
//! or ECDSA P-256 (an ASN.1 DER signature, as `openssl sha1 -sign` writes it), so a
//! signature made with the other key type never verifies.
//!
//! The URL a policy names is the URL the viewer requested: the configured
//! `url_prefix` (scheme and host as the viewer sees them: behind a CDN, the gate's
//! own scheme and Host are not the viewer's), or else the scheme the client used and
//! its `Host` as sent, then the normalised path, then the query without CloudFront's
//! parameters (the others in their order, `?` only when one is left).
//!
//! It never touches HTTP types, configuration or the clock: the caller hands in plain
//! values and PEM text.

use std::sync::Arc;

use aws_lc_rs::signature::{self, ParsedPublicKey};
use base64::alphabet::Alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::Deserialize;

use super::{parse_seconds, push_len_prefixed, Carriers, Credential, ForeignGrant, Inputs};
use crate::token::TokenError;

/// The credential's fields, by index: query parameter and cookie names.
const QUERY: [&str; 5] = [
    "Policy",
    "Expires",
    "Signature",
    "Key-Pair-Id",
    "Hash-Algorithm",
];
const COOKIES: [&str; 5] = [
    "CloudFront-Policy",
    "CloudFront-Expires",
    "CloudFront-Signature",
    "CloudFront-Key-Pair-Id",
    "CloudFront-Hash-Algorithm",
];
const POLICY: usize = 0;
const EXPIRES: usize = 1;
const SIGNATURE: usize = 2;
const KEY_PAIR_ID: usize = 3;
const HASH: usize = 4;

/// CloudFront's base64: the standard alphabet with `-` and `~` for `+` and `/`; its
/// padding (`_` for `=`) is removed before decoding.
const CLOUDFRONT_B64: GeneralPurpose = GeneralPurpose::new(
    &match Alphabet::new("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-~") {
        Ok(a) => a,
        Err(_) => panic!("a valid alphabet"),
    },
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// What kind of public key a `Key-Pair-Id` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Rsa,
    EcdsaP256,
}

/// One public key, parsed for both hashes a credential may ask for.
#[derive(Clone)]
struct PublicKey {
    id: String,
    key_type: KeyType,
    sha1: ParsedPublicKey,
    sha256: ParsedPublicKey,
}

/// A configured CloudFront format: its public keys by `Key-Pair-Id`.
#[derive(Clone)]
pub struct CloudFront {
    keys: Arc<[PublicKey]>,
    /// `scheme://host[:port]` of the signed URLs, or None for the request's own.
    url_prefix: Option<Arc<str>>,
}

/// The custom policy's URL pattern and how to rebuild the request's URL: checked on
/// every request, cache hit or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlScope {
    pattern: Box<str>,
    url_prefix: Option<Arc<str>>,
}

impl UrlScope {
    /// Does the request's URL match the policy's `Resource`?
    pub fn matches(&self, inputs: &Inputs<'_>) -> bool {
        let url = RequestUrl::new(self.url_prefix.as_deref(), inputs);
        let len = url.len();
        // The URL copied to the stack (walking the pieces in place was 1.8 µs a hit);
        // only a URL longer than the buffer is copied to the heap.
        let mut stack = [0u8; URL_ON_STACK];
        let mut heap = Vec::new();
        let buf: &mut [u8] = if len <= URL_ON_STACK {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap
        };
        let mut at = 0;
        url.pieces(|p| {
            buf[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        });
        wildcard_matches(self.pattern.as_bytes(), buf)
    }
}

impl CloudFront {
    /// `keys`: (`Key-Pair-Id`, public key PEM). The error says what is wrong, for the
    /// config.
    pub fn new(url_prefix: Option<&str>, keys: &[(String, Vec<u8>)]) -> Result<Self, String> {
        if let Some(prefix) = url_prefix {
            check_url_prefix(prefix)?;
        }
        if keys.is_empty() {
            return Err("keys: at least one [[formats.keys]] entry".into());
        }
        let mut parsed: Vec<PublicKey> = Vec::with_capacity(keys.len());
        for (id, pem) in keys {
            let id_ok =
                !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric());
            if !id_ok {
                return Err(format!("keys: id {id:?} must be 1 to 64 letters or digits"));
            }
            if parsed.iter().any(|k| k.id == *id) {
                return Err(format!("keys: id {id:?} is given twice"));
            }
            parsed.push(public_key(id, pem).map_err(|e| format!("keys[{id}]: {e}"))?);
        }
        Ok(CloudFront {
            keys: parsed.into(),
            url_prefix: url_prefix.map(Arc::from),
        })
    }

    /// The type of the key named `id`, if there is one.
    pub fn key_type(&self, id: &str) -> Option<KeyType> {
        self.key(id).map(|k| k.key_type)
    }

    /// Five fields, each a query parameter and a cookie; no header.
    pub fn carriers(&self) -> Carriers {
        Carriers {
            query: QUERY.map(str::to_owned).to_vec(),
            cookies: COOKIES.map(str::to_owned).to_vec(),
            header: String::new(),
            url_over_cookies: true,
            ..Carriers::default()
        }
    }

    pub(super) fn verify(
        &self,
        cred: &Credential<'_>,
        inputs: &Inputs<'_>,
    ) -> Result<ForeignGrant, TokenError> {
        let field = |i: usize| cred.fields[i];
        let signature = decode(field(SIGNATURE).ok_or(TokenError::Malformed)?)?;
        let id = field(KEY_PAIR_ID).ok_or(TokenError::Malformed)?;
        let sha256 = match field(HASH) {
            None => false,
            Some("SHA256") => true,
            Some(_) => return Err(TokenError::Malformed),
        };
        let key = self.key(id).ok_or(TokenError::UnknownKid)?;
        let verify = |policy: &[u8]| {
            let parsed = if sha256 { &key.sha256 } else { &key.sha1 };
            parsed
                .verify_sig(policy, &signature)
                .map_err(|_| TokenError::BadSignature)
        };
        match (field(POLICY), field(EXPIRES)) {
            (None, Some(expires)) => {
                let exp = parse_seconds(expires)?;
                let url = RequestUrl::new(self.url_prefix.as_deref(), inputs);
                verify(&canned_policy(&url, exp))?;
                Ok(ForeignGrant {
                    exp: Some(exp),
                    ..ForeignGrant::default()
                })
            }
            (Some(policy), None) => {
                let policy = decode(policy)?;
                verify(&policy)?;
                self.custom_grant(&policy)
            }
            _ => Err(TokenError::Malformed),
        }
    }

    /// A canned policy's signature covers the request's URL: it joins the cache key.
    /// A custom policy's covers only the policy (a field); its `Resource` is checked on
    /// every request instead.
    pub(super) fn binding(&self, cred: &Credential<'_>, inputs: &Inputs<'_>, out: &mut Vec<u8>) {
        if cred.fields[POLICY].is_none() {
            let url = RequestUrl::new(self.url_prefix.as_deref(), inputs);
            out.extend_from_slice(&(url.len() as u32).to_be_bytes());
            url.pieces(|p| out.extend_from_slice(p));
        } else {
            push_len_prefixed(out, b"");
        }
    }

    fn key(&self, id: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The grant a verified custom policy makes.
    fn custom_grant(&self, policy: &[u8]) -> Result<ForeignGrant, TokenError> {
        let policy: Policy = serde_json::from_slice(policy).map_err(|_| TokenError::Malformed)?;
        let [statement] = policy.statement;
        let condition = statement.condition;
        let net = condition
            .ip_address
            .map(|ip| parse_source_ip(&ip.source_ip))
            .transpose()?;
        Ok(ForeignGrant {
            exp: Some(condition.date_less_than.epoch_time),
            nbf: condition.date_greater_than.map(|t| t.epoch_time),
            net,
            resource: statement.resource.map(|pattern| UrlScope {
                pattern: pattern.into(),
                url_prefix: self.url_prefix.clone(),
            }),
            ..ForeignGrant::default()
        })
    }
}

/// A custom policy, as CloudFront reads one: exactly one statement, no unknown keys
/// (serde refuses a key given twice).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Policy {
    #[serde(rename = "Statement")]
    statement: [Statement; 1],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Statement {
    #[serde(rename = "Resource")]
    resource: Option<String>,
    #[serde(rename = "Condition")]
    condition: Condition,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Condition {
    #[serde(rename = "DateLessThan")]
    date_less_than: EpochTime,
    #[serde(rename = "DateGreaterThan")]
    date_greater_than: Option<EpochTime>,
    #[serde(rename = "IpAddress")]
    ip_address: Option<SourceIp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EpochTime {
    #[serde(rename = "AWS:EpochTime")]
    epoch_time: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceIp {
    #[serde(rename = "AWS:SourceIp")]
    source_ip: String,
}

/// `AWS:SourceIp`: a CIDR block, or one address (botocore always adds `/32`).
fn parse_source_ip(text: &str) -> Result<ipnet::IpNet, TokenError> {
    match text.contains('/') {
        true => text.parse().map_err(|_| TokenError::Malformed),
        false => text
            .parse::<std::net::IpAddr>()
            .map(ipnet::IpNet::from)
            .map_err(|_| TokenError::Malformed),
    }
}

/// The canned policy text botocore's `build_policy` writes (`json.dumps` with
/// `(',', ':')` separators): the URL as a JSON string, the expiry as an integer.
fn canned_policy(url: &RequestUrl<'_>, exp: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(url.len() + 96);
    out.extend_from_slice(br#"{"Statement":[{"Resource":""#);
    url.pieces(|piece| {
        for &b in piece {
            match b {
                b'"' | b'\\' => out.extend_from_slice(&[b'\\', b]),
                _ => out.push(b),
            }
        }
    });
    out.extend_from_slice(br#"","Condition":{"DateLessThan":{"AWS:EpochTime":"#);
    out.extend_from_slice(exp.to_string().as_bytes());
    out.extend_from_slice(b"}}}]}");
    out
}

/// CloudFront base64 (`-~`, padding `_`) → bytes.
fn decode(text: &str) -> Result<Vec<u8>, TokenError> {
    let body = text.trim_end_matches('_');
    if text.len() - body.len() > 2 {
        return Err(TokenError::Malformed);
    }
    CLOUDFRONT_B64
        .decode(body)
        .map_err(|_| TokenError::Malformed)
}

/// One PEM public key (SubjectPublicKeyInfo): RSA of 2048 bits or more, or ECDSA P-256.
fn public_key(id: &str, pem: &[u8]) -> Result<PublicKey, String> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::SubjectPublicKeyInfoDer;
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
        .map_err(|e| format!("not a PEM public key (\"BEGIN PUBLIC KEY\"): {e}"))?;
    let der = der.as_ref();
    let pair = |sha1, sha256| -> Option<(ParsedPublicKey, ParsedPublicKey)> {
        Some((
            ParsedPublicKey::new(sha1, der).ok()?,
            ParsedPublicKey::new(sha256, der).ok()?,
        ))
    };
    let (key_type, (sha1, sha256)) = if let Some(p) = pair(
        &signature::ECDSA_P256_SHA1_ASN1,
        &signature::ECDSA_P256_SHA256_ASN1,
    ) {
        (KeyType::EcdsaP256, p)
    } else if let Some(p) = pair(
        &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        &signature::RSA_PKCS1_2048_8192_SHA256,
    ) {
        (KeyType::Rsa, p)
    } else {
        return Err("an RSA (2048 bits or more) or ECDSA P-256 public key is expected".into());
    };
    Ok(PublicKey {
        id: id.to_owned(),
        key_type,
        sha1,
        sha256,
    })
}

/// `http://` or `https://`, a host, optionally a port; no path, query or fragment.
fn check_url_prefix(prefix: &str) -> Result<(), String> {
    let rest = prefix
        .strip_prefix("https://")
        .or_else(|| prefix.strip_prefix("http://"));
    let ok = rest.is_some_and(|host| {
        !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
    });
    match ok {
        true => Ok(()),
        false => Err(format!(
            "url_prefix: {prefix:?} must be http(s)://host[:port], without a path"
        )),
    }
}

/// Is `name=…` one of CloudFront's query parameters (left out of the signed URL)?
fn is_cloudfront_param(param: &str) -> bool {
    let name = param.split_once('=').map_or(param, |(n, _)| n);
    QUERY.contains(&name)
}

/// The URL the viewer requested, read in pieces from the inputs (never allocated).
struct RequestUrl<'a> {
    /// `scheme://host[:port]`: the configured prefix, or the request's own.
    scheme: &'a str,
    host: &'a str,
    path: &'a str,
    query: Option<&'a str>,
}

impl<'a> RequestUrl<'a> {
    fn new(url_prefix: Option<&'a str>, inputs: &Inputs<'a>) -> Self {
        let (scheme, host) = match url_prefix {
            Some(prefix) => (prefix, ""),
            None if inputs.https => ("https://", inputs.authority),
            None => ("http://", inputs.authority),
        };
        RequestUrl {
            scheme,
            host,
            path: inputs.path,
            query: inputs.query,
        }
    }

    /// The URL in pieces, each whole: prefix, path, then `?` and the parameters that
    /// are not CloudFront's, `&`-joined in their order.
    fn pieces(&self, mut piece: impl FnMut(&[u8])) {
        piece(self.scheme.as_bytes());
        piece(self.host.as_bytes());
        piece(self.path.as_bytes());
        let params = self.query.into_iter().flat_map(|q| q.split('&'));
        for (i, param) in params.filter(|p| !is_cloudfront_param(p)).enumerate() {
            piece(if i == 0 { b"?" } else { b"&" });
            piece(param.as_bytes());
        }
    }

    fn len(&self) -> usize {
        let mut len = 0;
        self.pieces(|p| len += p.len());
        len
    }
}

/// Longest URL [`UrlScope::matches`] copies to the stack.
const URL_ON_STACK: usize = 2048;

/// CloudFront's `Resource` wildcards over the whole URL: `*` matches any run of
/// characters (none included), `?` exactly one; everything else matches itself.
/// Backtracking to the last `*` only: O(pattern × URL) at worst, both bounded.
fn wildcard_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&b) if b == b'?' || b == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match &mut star {
                Some((star_p, resume)) => {
                    *resume += 1;
                    t = *resume;
                    p = *star_p + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, RsaKeyPair};

    const NOW: u64 = 1_800_000_000;

    /// A signing key made here. aws-lc-rs signs with SHA-256 only, so these credentials
    /// carry `Hash-Algorithm=SHA256`; SHA-1 (the default) is checked on the fixtures
    /// botocore signed (`scripts/cloudfront-fixtures.py`).
    pub(crate) enum Signer {
        Rsa(RsaKeyPair),
        Ec(EcdsaKeyPair),
    }

    impl Signer {
        pub(crate) fn rsa() -> Self {
            Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"))
        }

        pub(crate) fn ec() -> Self {
            let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
            Signer::Ec(EcdsaKeyPair::generate(alg).expect("ec"))
        }

        pub(crate) fn public_pem(&self) -> Vec<u8> {
            use aws_lc_rs::encoding::AsDer as _;
            let der = match self {
                Signer::Rsa(k) => k.public_key().as_der().expect("der").as_ref().to_vec(),
                Signer::Ec(k) => k.public_key().as_der().expect("der").as_ref().to_vec(),
            };
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n").into_bytes()
        }

        /// `openssl sha256 -sign`, CloudFront base64.
        pub(crate) fn sign(&self, msg: &[u8]) -> String {
            let rng = SystemRandom::new();
            let sig = match self {
                Signer::Rsa(k) => {
                    let mut out = vec![0; k.public_modulus_len()];
                    k.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut out)
                        .expect("sign");
                    out
                }
                Signer::Ec(k) => k.sign(&rng, msg).expect("sign").as_ref().to_vec(),
            };
            cf_b64(&sig)
        }
    }

    /// botocore's `_url_b64encode`.
    pub(crate) fn cf_b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(bytes)
            .replace('+', "-")
            .replace('=', "_")
            .replace('/', "~")
    }

    fn format(keys: &[(&str, &[u8])], url_prefix: Option<&str>) -> CloudFront {
        let keys: Vec<(String, Vec<u8>)> = keys
            .iter()
            .map(|(id, pem)| (id.to_string(), pem.to_vec()))
            .collect();
        CloudFront::new(url_prefix, &keys).expect("valid")
    }

    fn inputs<'a>(path: &'a str, query: Option<&'a str>) -> Inputs<'a> {
        Inputs::https_example(path, query)
    }

    fn canned(signer: &Signer, url: &str, exp: u64) -> String {
        let policy = format!(
            r#"{{"Statement":[{{"Resource":"{url}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{exp}}}}}}}]}}"#
        );
        signer.sign(policy.as_bytes())
    }

    fn verify(
        f: &CloudFront,
        fields: &[Option<&str>],
        inputs: &Inputs<'_>,
    ) -> Result<ForeignGrant, TokenError> {
        f.verify(&Credential::of(fields), inputs)
    }

    /// Canned fields: `Expires`, `Signature`, `Key-Pair-Id`, SHA-256.
    fn canned_fields<'a>(exp: &'a str, sig: &'a str, id: &'a str) -> [Option<&'a str>; 5] {
        [None, Some(exp), Some(sig), Some(id), Some("SHA256")]
    }

    #[test]
    fn a_canned_policy_signs_the_requested_url_with_its_query_but_not_cloudfronts_parameters() {
        let rsa = Signer::rsa();
        let f = format(&[("KRSA", &rsa.public_pem())], None);
        let exp = (NOW + 600).to_string();
        let sig = canned(&rsa, "https://media.example/v/a.ts?size=large", NOW + 600);
        let query = format!(
            "size=large&Expires={exp}&Signature={sig}&Key-Pair-Id=KRSA&Hash-Algorithm=SHA256"
        );
        let here = inputs("/v/a.ts", Some(&query));
        let fields = canned_fields(&exp, &sig, "KRSA");
        let grant = verify(&f, &fields, &here).expect("verified");
        assert_eq!(grant.exp, Some(NOW + 600));
        assert_eq!(
            verify(&f, &fields, &inputs("/v/b.ts", Some(&query))),
            Err(TokenError::BadSignature),
            "another path"
        );
        let plain = Inputs {
            https: false,
            ..here
        };
        assert_eq!(
            verify(&f, &fields, &plain),
            Err(TokenError::BadSignature),
            "http"
        );
        let later = (NOW + 601).to_string();
        let tampered = canned_fields(&later, &sig, "KRSA");
        assert_eq!(verify(&f, &tampered, &here), Err(TokenError::BadSignature));
    }

    #[test]
    fn url_prefix_replaces_the_requests_scheme_and_host() {
        let rsa = Signer::rsa();
        let f = format(
            &[("KRSA", &rsa.public_pem())],
            Some("https://cdn.example.com"),
        );
        let sig = canned(&rsa, "https://cdn.example.com/v/a.ts", NOW + 60);
        let exp = (NOW + 60).to_string();
        let behind_a_cdn = Inputs {
            https: false,
            authority: "origin.internal:8080",
            ..inputs("/v/a.ts", None)
        };
        assert!(verify(&f, &canned_fields(&exp, &sig, "KRSA"), &behind_a_cdn).is_ok());
    }

    /// The fixtures botocore signed with SHA-1 (no `Hash-Algorithm`), RSA and ECDSA.
    #[test]
    fn botocore_sha1_fixtures_verify_for_rsa_and_ecdsa_canned_and_custom() {
        let text = include_str!("../../../tests/fixtures/cloudfront/fixtures.json");
        let fixtures: serde_json::Value = serde_json::from_str(text).expect("json");
        let get = |k: &str| fixtures[k].as_str().expect(k).to_string();
        let f = format(
            &[
                ("KRSA", get("rsa_public_pem").as_bytes()),
                ("KEC", get("ec_public_pem").as_bytes()),
            ],
            None,
        );
        assert_eq!(f.key_type("KRSA"), Some(KeyType::Rsa));
        assert_eq!(f.key_type("KEC"), Some(KeyType::EcdsaP256));
        for case in [
            "canned_rsa_sha1",
            "canned_ec_sha1",
            "custom_rsa_sha1",
            "custom_ec_sha1",
        ] {
            let query = get(case);
            let field = |name: &str| {
                query
                    .split('&')
                    .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            };
            let fields = [
                field("Policy"),
                field("Expires"),
                field("Signature"),
                field("Key-Pair-Id"),
            ];
            let here = inputs("/cf/a/seg.ts", Some(&query));
            let grant = verify(&f, &fields, &here).unwrap_or_else(|e| panic!("{case}: {e}"));
            assert_eq!(grant.exp, Some(4_102_444_800), "{case}");
            // Asking for SHA-256 over a SHA-1 signature fails.
            let mut sha256 = fields.to_vec();
            sha256.push(Some("SHA256"));
            assert_eq!(
                verify(&f, &sha256, &here),
                Err(TokenError::BadSignature),
                "{case}"
            );
        }
    }

    #[test]
    fn k2_the_key_type_decides_an_ecdsa_signature_under_an_rsa_id_and_the_reverse_fail() {
        let rsa = Signer::rsa();
        let ec = Signer::ec();
        let f = format(
            &[("KRSA", &rsa.public_pem()), ("KEC", &ec.public_pem())],
            None,
        );
        let exp = (NOW + 60).to_string();
        let url = "https://media.example/v/a.ts";
        let here = inputs("/v/a.ts", None);
        let by_ec = canned(&ec, url, NOW + 60);
        let by_rsa = canned(&rsa, url, NOW + 60);
        assert!(verify(&f, &canned_fields(&exp, &by_ec, "KEC"), &here).is_ok());
        assert!(verify(&f, &canned_fields(&exp, &by_rsa, "KRSA"), &here).is_ok());
        for (sig, id) in [(&by_ec, "KRSA"), (&by_rsa, "KEC")] {
            let fields = canned_fields(&exp, sig, id);
            assert_eq!(
                verify(&f, &fields, &here),
                Err(TokenError::BadSignature),
                "{id}"
            );
        }
        let unknown = canned_fields(&exp, &by_rsa, "KOTHER");
        assert_eq!(verify(&f, &unknown, &here), Err(TokenError::UnknownKid));
        let bad_hash = [
            None,
            Some(exp.as_str()),
            Some(by_rsa.as_str()),
            Some("KRSA"),
            Some("MD5"),
        ];
        assert_eq!(verify(&f, &bad_hash, &here), Err(TokenError::Malformed));
    }

    #[test]
    fn a_custom_policy_becomes_times_a_network_and_a_url_pattern() {
        let rsa = Signer::rsa();
        let f = format(&[("KRSA", &rsa.public_pem())], None);
        let policy = format!(
            r#"{{"Statement":[{{"Resource":"https://media.example/v/*","Condition":{{"DateLessThan":{{"AWS:EpochTime":{}}},"IpAddress":{{"AWS:SourceIp":"192.0.2.0/24"}},"DateGreaterThan":{{"AWS:EpochTime":{}}}}}}}]}}"#,
            NOW + 600,
            NOW - 10
        );
        let sig = rsa.sign(policy.as_bytes());
        let encoded = cf_b64(policy.as_bytes());
        let fields = [
            Some(encoded.as_str()),
            None,
            Some(sig.as_str()),
            Some("KRSA"),
            Some("SHA256"),
        ];
        let grant = verify(&f, &fields, &inputs("/anything", None)).expect("verified");
        assert_eq!((grant.exp, grant.nbf), (Some(NOW + 600), Some(NOW - 10)));
        assert_eq!(grant.net, Some("192.0.2.0/24".parse().expect("net")));
        let scope = grant.resource.expect("a resource");
        assert!(scope.matches(&inputs("/v/a/b.ts", Some("x=1"))));
        assert!(!scope.matches(&inputs("/w/a.ts", None)));
        let plain = Inputs {
            https: false,
            ..inputs("/v/a.ts", None)
        };
        assert!(!scope.matches(&plain), "the scheme is part of the resource");
    }

    #[test]
    fn k3_custom_policies_with_unknown_repeated_or_mistyped_keys_are_malformed() {
        let rsa = Signer::rsa();
        let f = format(&[("KRSA", &rsa.public_pem())], None);
        let bad = [
            r#"{"Statement":[]}"#.to_string(),
            r#"{"Statement":[{"Condition":{"DateLessThan":{"AWS:EpochTime":1}}},{"Condition":{"DateLessThan":{"AWS:EpochTime":1}}}]}"#.into(),
            r#"{"Statement":[{"Resource":"*","Condition":{}}]}"#.into(),
            r#"{"Statement":[{"Resource":"*","Condition":{"DateLessThan":{"AWS:EpochTime":"1"}}}]}"#.into(),
            r#"{"Statement":[{"Resource":"*","Condition":{"DateLessThan":{"AWS:EpochTime":-1}}}]}"#.into(),
            r#"{"Statement":[{"Resource":"*","Condition":{"DateLessThan":{"AWS:EpochTime":1.5}}}]}"#.into(),
            r#"{"Statement":[{"Resource":"*","Resource":"x","Condition":{"DateLessThan":{"AWS:EpochTime":1}}}]}"#.into(),
            r#"{"Statement":[{"Resource":"*","Condition":{"DateLessThan":{"AWS:EpochTime":1},"StringEquals":{}}}]}"#.into(),
            r#"{"Statement":[{"Resource":"*","Condition":{"DateLessThan":{"AWS:EpochTime":1},"IpAddress":{"AWS:SourceIp":"nope"}}}]}"#.into(),
        ];
        for policy in bad {
            let sig = rsa.sign(policy.as_bytes());
            let encoded = cf_b64(policy.as_bytes());
            let fields = [
                Some(encoded.as_str()),
                None,
                Some(sig.as_str()),
                Some("KRSA"),
                Some("SHA256"),
            ];
            assert_eq!(
                verify(&f, &fields, &inputs("/v", None)),
                Err(TokenError::Malformed),
                "{policy}"
            );
        }
        // Both policies, neither, no signature, no key id, a broken encoding.
        let p = cf_b64(b"{}");
        let sig = rsa.sign(b"{}");
        for fields in [
            [
                Some(p.as_str()),
                Some("1"),
                Some(sig.as_str()),
                Some("KRSA"),
            ],
            [None, None, Some(sig.as_str()), Some("KRSA")],
            [Some(p.as_str()), None, None, Some("KRSA")],
            [Some(p.as_str()), None, Some(sig.as_str()), None],
            [Some(p.as_str()), None, Some("a=b"), Some("KRSA")],
            [Some(p.as_str()), None, Some("AAAA____"), Some("KRSA")],
        ] {
            assert_eq!(
                verify(&f, &fields, &inputs("/v", None)),
                Err(TokenError::Malformed),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn wildcards_are_cloudfronts_star_and_question_mark() {
        let m = |pattern: &str, text: &str| wildcard_matches(pattern.as_bytes(), text.as_bytes());
        assert!(m("https://a/*", "https://a/x/y?z=1"));
        assert!(m("http*://a/*.ts", "https://a/v/1.ts"));
        assert!(m("https://a/?.ts", "https://a/1.ts"));
        assert!(!m("https://a/?.ts", "https://a/12.ts"));
        assert!(m("*", ""));
        assert!(m("https://a/x", "https://a/x"));
        assert!(!m("https://a/x", "https://a/xy"));
        assert!(!m("https://a/*.ts", "https://a/x.tsx"));
        assert!(m("*a*b*c", "xxaxxbxxc"));
        assert!(!m("*a*b*c", "xxaxxcxxb"));
    }

    #[test]
    fn the_request_url_leaves_out_cloudfronts_parameters_only() {
        let cases = [
            (None, "https://media.example/p"),
            (
                Some("Expires=1&Signature=x&Key-Pair-Id=K"),
                "https://media.example/p",
            ),
            (
                Some("a=1&Policy=x&b=2&expires=3"),
                "https://media.example/p?a=1&b=2&expires=3",
            ),
            (Some(""), "https://media.example/p?"),
        ];
        for (query, want) in cases {
            let inputs = inputs("/p", query);
            let url = RequestUrl::new(None, &inputs);
            let mut pieces = Vec::new();
            url.pieces(|p| pieces.extend_from_slice(p));
            assert_eq!(pieces, want.as_bytes(), "{query:?}");
            assert_eq!(url.len(), want.len());
        }
    }

    #[test]
    fn cloudfront_config_is_validated() {
        let pem = Signer::rsa().public_pem();
        let one = |id: &str| vec![(id.to_string(), pem.clone())];
        assert!(CloudFront::new(None, &one("K2JCJMDEHXQW5F")).is_ok());
        assert!(CloudFront::new(None, &[]).is_err());
        assert!(CloudFront::new(None, &one("K 1")).is_err());
        let twice = [one("K1"), one("K1")].concat();
        assert!(CloudFront::new(None, &twice).is_err());
        let not_a_key = vec![(
            "K1".to_string(),
            b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".to_vec(),
        )];
        assert!(CloudFront::new(None, &not_a_key).is_err());
        for prefix in [
            "cdn.example",
            "https://cdn.example/path",
            "ftp://x",
            "https://",
        ] {
            assert!(
                CloudFront::new(Some(prefix), &one("K1")).is_err(),
                "{prefix}"
            );
        }
        assert!(CloudFront::new(Some("http://cdn.example:8080"), &one("K1")).is_ok());
    }
}
