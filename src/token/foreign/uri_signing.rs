//! RFC 9246 URI Signing: a JWT in the `URISigningPackage` query parameter or cookie,
//! verified as Apache Traffic Server's `uri_signing` plugin verifies it, from plain
//! values; and the minting of its renewed token (`cdniets`/`cdnistt`).
//!
//! **Keys.** Issuers are configured by name, each with a JWK set (the plugin's config
//! file, transcribed: every key has a `kid` and an `alg`, and the `alg` pins it). The
//! token's `iss` picks the issuer, the header's `kid` the key; a header `alg` other than
//! the key's is `bad_signature` (so `alg: none` and an HMAC keyed with a public key
//! never verify). A token without a `kid` is tried against the issuer's keys of the
//! header's algorithm, as the plugin does (bounded by the configuration).
//!
//! **Claims** (each at most once: a JSON object naming a claim twice is `malformed`):
//! `iss` required; `aud` must name the configured `id` when present (and is refused
//! when no `id` is configured); `exp` required unless `require_exp` is off (the plugin
//! accepts a token without one), `nbf`, `iat` numbers (the plugin writes reals when it
//! renews); `cdniv` absent or 1; `cdnicrit` may list only the claims below; `jti` is
//! the revocation handle; `cdniip` an address or CIDR prefix the client must be in;
//! `cdniuc` `regex:<POSIX ERE>` (matched from the start of the URI, as the plugin's
//! `re_match` does; compiled under a size limit and matched in linear time) or
//! `hash:sha-256;<base64url>` (RFC 6920's segment form, which the plugin does not
//! support); `cdnistt` 0 or 1, `cdnistd` ≥ 0, `cdniets` ≥ 0. A claim of the wrong type
//! is `malformed`. `sub` is carried into a renewal, otherwise ignored.
//!
//! **The URI** `cdniuc` is matched against is `http[s]://<host><path>[?<query>]`: the
//! request's scheme, its host in lower case without a port, tollgate's normalised path
//! and the query as sent without the package parameter (the plugin matches its
//! normalised pristine URL with the token stripped). Building it on a cache hit reuses
//! one buffer per thread, so a hit does not allocate.
//!
//! **Renewal** ([`UriSigning::renew`]): a verified token with `cdnistt` 1 and a
//! non-zero `cdniets` is re-signed with the configured renewal key: the same claims,
//! `iss` the renewal key's issuer, `iat` now and `exp` now + `cdniets`, never more.
//!
//! It never touches HTTP types, the configuration or the clock.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use ipnet::IpNet;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{Carriers, Credential, ForeignGrant, Inputs};
use crate::token::claims::MAX_TIME;
use crate::token::TokenError;

/// The plugin's package name: the query parameter and cookie.
pub const DEFAULT_PACKAGE: &str = "URISigningPackage";

/// Upper bound on a compiled `cdniuc` pattern (the CAT's bound).
const REGEX_SIZE_LIMIT: usize = crate::token::cat::uri::REGEX_SIZE_LIMIT;

/// Claims a `cdnicrit` list may name: the ones checked here.
const UNDERSTOOD: [&str; 14] = [
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "cdniv", "cdnicrit", "cdniip", "cdniuc",
    "cdniets", "cdnistt", "cdnistd",
];

/// One verification key: its material and the one algorithm it verifies.
#[derive(Clone)]
struct Key {
    alg: Algorithm,
    decoding: DecodingKey,
    validation: Validation,
}

/// The key renewed tokens are signed with, and the issuer they then name.
#[derive(Clone)]
struct RenewalKey {
    issuer: String,
    kid: String,
    alg: Algorithm,
    encoding: EncodingKey,
}

/// A configured URI Signing format.
#[derive(Clone)]
pub struct UriSigning {
    inner: Arc<Inner>,
}

struct Inner {
    package: String,
    audience: Option<String>,
    require_exp: bool,
    /// Issuer → kid → key.
    issuers: HashMap<String, HashMap<String, Key>>,
    renewal: Option<RenewalKey>,
}

/// The settings of a URI Signing format, as the configuration states them.
pub struct Settings<'a> {
    /// The query parameter and cookie name (default `URISigningPackage`).
    pub package: &'a str,
    /// The plugin's `id`: the `aud` this gate answers to.
    pub id: Option<&'a str>,
    /// The kid renewed tokens are signed with (one of an issuer's keys; HMAC only).
    pub renewal_kid: Option<&'a str>,
    pub require_exp: bool,
    /// Issuer name → its JWKs (JSON objects).
    pub issuers: Vec<(&'a str, &'a [serde_json::Map<String, serde_json::Value>])>,
}

/// What `cdniuc` requires of the URI.
#[derive(Debug, Clone)]
pub enum Container {
    /// `regex:`: matched from the start of the URI.
    Regex(regex::Regex),
    /// `hash:sha-256;…`: the URI's SHA-256.
    Sha256([u8; 32]),
}

impl PartialEq for Container {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Regex(a), Self::Regex(b)) => a.as_str() == b.as_str(),
            (Self::Sha256(a), Self::Sha256(b)) => a == b,
            _ => false,
        }
    }
}
impl Eq for Container {}

/// What a verified URI Signing token binds besides time and `jti`: checked on every
/// request ([`Bound::authorize`]), and what a renewal carries over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The package parameter, left out of the URI `cdniuc` is matched against.
    package: String,
    /// `cdniip`.
    net: Option<IpNet>,
    /// `cdniuc`.
    container: Option<Container>,
    /// The claims a renewal copies, when the token asks for renewal.
    pub renewal: Option<Renewable>,
}

/// The claims a renewed token copies from the one it renews (`cdnistt` 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renewable {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cdnicrit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cdniip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cdniuc: Option<String>,
    cdniv: u8,
    cdniets: u64,
    cdnistt: u8,
    cdnistd: u32,
}

/// A renewed token and the cookie path `cdnistd` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    pub token: String,
    pub exp: u64,
    pub cookie_path: String,
}

/// `aud`: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The payload. serde refuses a known claim given twice; a claim of the wrong type
/// fails to parse.
#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<f64>,
    nbf: Option<f64>,
    iat: Option<f64>,
    jti: Option<String>,
    cdniv: Option<i64>,
    cdnicrit: Option<String>,
    cdniip: Option<String>,
    cdniuc: Option<String>,
    cdniets: Option<u64>,
    cdnistt: Option<i64>,
    cdnistd: Option<i64>,
}

/// The payload of a renewed token: the copied claims plus the new ones.
#[derive(Serialize)]
struct RenewedClaims<'a> {
    iss: &'a str,
    iat: u64,
    exp: u64,
    #[serde(flatten)]
    kept: &'a Renewable,
}

impl UriSigning {
    /// The error says what is wrong, for the config.
    pub fn new(s: &Settings<'_>) -> Result<Self, String> {
        let name_ok = !s.package.is_empty()
            && s.package
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !name_ok {
            return Err(format!(
                "package: {:?} must be letters, digits, _ or -",
                s.package
            ));
        }
        if s.issuers.is_empty() {
            return Err("issuers: at least one".into());
        }
        let mut issuers = HashMap::new();
        let mut renewal = None;
        for (issuer, jwks) in &s.issuers {
            let mut keys = HashMap::new();
            for jwk in jwks.iter() {
                let (kid, key) = verify_key(jwk).map_err(|e| format!("issuer {issuer:?}: {e}"))?;
                if s.renewal_kid == Some(kid.as_str()) {
                    renewal = Some(renewal_key(issuer, &kid, jwk)?);
                }
                if keys.insert(kid.clone(), key).is_some() {
                    return Err(format!("issuer {issuer:?}: kid {kid:?} twice"));
                }
            }
            if keys.is_empty() || issuers.insert(issuer.to_string(), keys).is_some() {
                return Err(format!("issuer {issuer:?}: no keys, or named twice"));
            }
        }
        if let (Some(kid), None) = (s.renewal_kid, &renewal) {
            return Err(format!("renewal_kid {kid:?}: no issuer has that key"));
        }
        Ok(UriSigning {
            inner: Arc::new(Inner {
                package: s.package.into(),
                audience: s.id.map(str::to_owned),
                require_exp: s.require_exp,
                issuers,
                renewal,
            }),
        })
    }

    /// One field, in the query parameter or the cookie (the plugin's carriers; a path
    /// parameter is not read).
    pub fn carriers(&self) -> Carriers {
        Carriers {
            query: vec![self.inner.package.clone()],
            cookies: vec![self.inner.package.clone()],
            header: String::new(),
            path_param: self.inner.package.clone(),
            url_over_cookies: false,
        }
    }

    /// Signature and claims; what the request must match is [`Bound::authorize`]'s.
    pub(super) fn verify(&self, cred: &Credential<'_>) -> Result<ForeignGrant, TokenError> {
        let token = cred.fields[0].ok_or(TokenError::Malformed)?;
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        let unverified = unverified_claims(token)?;
        let issuer = unverified.iss.as_deref().ok_or(TokenError::Malformed)?;
        let keys = self.inner.issuers.get(issuer).ok_or(TokenError::Issuer)?;
        let claims = verify_signature(token, &header, keys)?;
        self.grant(claims)
    }

    /// Check the verified claims and keep what every request needs.
    fn grant(&self, c: Claims) -> Result<ForeignGrant, TokenError> {
        let exp = c.exp.map(|t| time(t, f64::floor)).transpose()?;
        let nbf = c.nbf.map(|t| time(t, f64::ceil)).transpose()?;
        c.iat.map(|t| time(t, f64::floor)).transpose()?;
        if exp.is_none() && self.inner.require_exp {
            return Err(TokenError::Malformed);
        }
        if c.cdniv.unwrap_or(1) != 1 {
            return Err(TokenError::Malformed);
        }
        check_critical(c.cdnicrit.as_deref())?;
        self.check_audience(c.aud.as_ref())?;
        let cdnistt = u8::try_from(c.cdnistt.unwrap_or(0)).map_err(|_| TokenError::Malformed)?;
        let cdnistd = u32::try_from(c.cdnistd.unwrap_or(0)).map_err(|_| TokenError::Malformed)?;
        if cdnistt > 1 {
            return Err(TokenError::Malformed);
        }
        let net = c.cdniip.as_deref().map(parse_net).transpose()?;
        let container = match c.cdniuc.as_deref() {
            None | Some("") => None,
            Some(uc) => Some(parse_container(uc)?),
        };
        let cdniets = c.cdniets.unwrap_or(0);
        let renewal = (cdnistt == 1 && cdniets > 0).then(|| Renewable {
            sub: c.sub,
            aud: c.aud,
            nbf,
            jti: c.jti.clone(),
            cdnicrit: c.cdnicrit,
            cdniip: c.cdniip,
            cdniuc: c.cdniuc,
            cdniv: 1,
            cdniets,
            cdnistt,
            cdnistd,
        });
        Ok(ForeignGrant {
            exp,
            nbf,
            id: c.jti,
            uri_signing: Some(Box::new(Bound {
                package: self.inner.package.clone(),
                net,
                container,
                renewal,
            })),
            ..ForeignGrant::default()
        })
    }

    /// The plugin's rule: with an `id`, `aud` (a string or any of a list) must name it
    /// when present; without one, a token addressed to anyone is refused.
    fn check_audience(&self, aud: Option<&Audience>) -> Result<(), TokenError> {
        let ok = match (aud, self.inner.audience.as_deref()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(Audience::One(a)), Some(id)) => a == id,
            (Some(Audience::Many(list)), Some(id)) => list.iter().any(|a| a == id),
        };
        ok.then_some(()).ok_or(TokenError::Audience)
    }

    /// Mint the renewal of a verified token that asked for one, at `now`: its claims,
    /// `iss` the renewal key's issuer, `iat` now, `exp` now + `cdniets`; the cookie path
    /// holds `cdnistd` segments of `path` (`/` for 0). None when no renewal key is
    /// configured, or `path` has fewer segments than `cdnistd` (the plugin then does
    /// not renew either).
    pub fn renew(&self, kept: &Renewable, path: &str, now: u64) -> Option<Renewed> {
        let key = self.inner.renewal.as_ref()?;
        let cookie_path = cookie_path(path, kept.cdnistd)?;
        let exp = now.checked_add(kept.cdniets)?;
        let claims = RenewedClaims {
            iss: &key.issuer,
            iat: now,
            exp,
            kept,
        };
        let mut header = Header::new(key.alg);
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &key.encoding).ok()?;
        Some(Renewed {
            token,
            exp,
            cookie_path,
        })
    }

    /// The `Set-Cookie` value the plugin answers a renewal with: a session cookie under
    /// the package name, with the path `cdnistd` chose.
    pub fn cookie(&self, renewed: &Renewed) -> String {
        format!(
            "{}={}; Path={}",
            self.inner.package, renewed.token, renewed.cookie_path
        )
    }
}

impl Bound {
    /// `cdniip` against the client, `cdniuc` against the request's URI: on every
    /// request, without allocating.
    pub fn authorize(&self, inputs: &Inputs<'_>) -> Result<(), TokenError> {
        if let Some(net) = self.net {
            if !net.contains(&inputs.client.to_canonical()) {
                return Err(TokenError::Ip);
            }
        }
        let Some(container) = &self.container else {
            return Ok(());
        };
        let matches = with_uri(inputs, &self.package, |uri| match container {
            Container::Regex(r) => r.find(uri).is_some_and(|m| m.start() == 0),
            Container::Sha256(d) => {
                let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, uri.as_bytes());
                digest.as_ref() == d
            }
        });
        matches.then_some(()).ok_or(TokenError::Acl)
    }
}

thread_local! {
    /// The URI `cdniuc` is matched against, rebuilt in place for every request.
    static URI: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Call `f` with `http[s]://host/path[?query]`, the package parameter left out.
fn with_uri<R>(inputs: &Inputs<'_>, package: &str, f: impl FnOnce(&str) -> R) -> R {
    URI.with(|buf| {
        let mut uri = buf.borrow_mut();
        uri.clear();
        uri.push_str(if inputs.https { "https://" } else { "http://" });
        uri.push_str(inputs.host);
        uri.push_str(inputs.path);
        let kept = inputs
            .query
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty() && p.split('=').next() != Some(package));
        for (i, pair) in kept.enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(pair);
        }
        f(&uri)
    })
}

/// The first `segments` segments of `path` (`/` for none), as the plugin sets its
/// cookie's `Path`; None when the path is shorter.
pub fn cookie_path(path: &str, segments: u32) -> Option<String> {
    if segments == 0 {
        return Some("/".into());
    }
    let mut slashes = path.match_indices('/').map(|(i, _)| i).skip(1);
    let end = slashes.nth(segments as usize - 1)?;
    Some(path[..end].to_owned())
}

/// The signature, by the issuer's key the header's `kid` names (or, without a `kid`,
/// any of the issuer's keys of the header's algorithm); the key's algorithm decides.
fn verify_signature(
    token: &str,
    header: &Header,
    keys: &HashMap<String, Key>,
) -> Result<Claims, TokenError> {
    let candidates: Vec<&Key> = match header.kid.as_deref() {
        Some(kid) => vec![keys.get(kid).ok_or(TokenError::UnknownKid)?],
        None => keys.values().filter(|k| k.alg == header.alg).collect(),
    };
    let mut outcome = Err(TokenError::BadSignature);
    for key in candidates {
        if key.alg != header.alg {
            return Err(TokenError::BadSignature);
        }
        outcome = match jsonwebtoken::decode::<Claims>(token, &key.decoding, &key.validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => Err(jwt_error(&e)),
        };
    }
    outcome
}

/// The payload before its signature is checked: only to find the issuer's keys.
fn unverified_claims(token: &str) -> Result<Claims, TokenError> {
    let payload = token.split('.').nth(1).ok_or(TokenError::Malformed)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

fn jwt_error(e: &jsonwebtoken::errors::Error) -> TokenError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => TokenError::BadSignature,
        _ => TokenError::Malformed,
    }
}

/// A NumericDate: a finite, non-negative number no later than [`MAX_TIME`], rounded
/// the way that never widens (`exp` down, `nbf` up).
fn time(t: f64, round: fn(f64) -> f64) -> Result<u64, TokenError> {
    if !t.is_finite() || t < 0.0 || t > MAX_TIME as f64 {
        return Err(TokenError::Malformed);
    }
    Ok(round(t) as u64)
}

/// Every claim `cdnicrit` names must be one checked here.
fn check_critical(crit: Option<&str>) -> Result<(), TokenError> {
    let Some(list) = crit else { return Ok(()) };
    let known = list
        .split(',')
        .map(str::trim)
        .all(|name| UNDERSTOOD.contains(&name));
    known.then_some(()).ok_or(TokenError::Malformed)
}

/// `cdniip`: an address, or a prefix in CIDR notation.
fn parse_net(s: &str) -> Result<IpNet, TokenError> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .map_err(|_| TokenError::Malformed)
}

/// `cdniuc`: `regex:<pattern>` or `hash:sha-256;<base64url digest>`.
fn parse_container(uc: &str) -> Result<Container, TokenError> {
    if let Some(pattern) = uc.strip_prefix("regex:") {
        return regex::RegexBuilder::new(pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map(Container::Regex)
            .map_err(|_| TokenError::Malformed);
    }
    let b64 = uc
        .strip_prefix("hash:")
        .and_then(|h| h.strip_prefix("sha-256;"))
        .ok_or(TokenError::Malformed)?;
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| TokenError::Malformed)?;
    digest
        .try_into()
        .map(Container::Sha256)
        .map_err(|_| TokenError::Malformed)
}

/// A JWK's family must be its `alg`'s: an RSA key cannot be used as an HMAC secret.
fn verify_key(jwk: &serde_json::Map<String, serde_json::Value>) -> Result<(String, Key), String> {
    let (kid, alg, parsed) = parse_jwk(jwk)?;
    let family_ok = matches!(
        (&parsed.algorithm, alg),
        (
            AlgorithmParameters::OctetKey(_),
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        ) | (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (
            AlgorithmParameters::EllipticCurve(_),
            Algorithm::ES256 | Algorithm::ES384
        ) | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
    );
    if !family_ok {
        return Err(format!("key {kid:?}: its kty does not fit alg {alg:?}"));
    }
    if let AlgorithmParameters::OctetKey(k) = &parsed.algorithm {
        if secret(&k.value).is_none_or(|s| s.len() < 16) {
            return Err(format!(
                "key {kid:?}: k must be base64url, at least 16 bytes"
            ));
        }
    }
    let decoding = DecodingKey::from_jwk(&parsed).map_err(|e| format!("key {kid:?}: {e}"))?;
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    Ok((
        kid,
        Key {
            alg,
            decoding,
            validation,
        },
    ))
}

/// `kid` and `alg` are required, as the plugin requires them.
fn parse_jwk(
    jwk: &serde_json::Map<String, serde_json::Value>,
) -> Result<(String, Algorithm, Jwk), String> {
    let text = |name: &str| jwk.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let kid = text("kid").ok_or("a key without a kid")?;
    let alg = text("alg")
        .and_then(|a| a.parse::<Algorithm>().ok())
        .ok_or(format!("key {kid:?}: alg missing or unknown"))?;
    let parsed: Jwk = serde_json::from_value(serde_json::Value::Object(jwk.clone()))
        .map_err(|e| format!("key {kid:?}: {e}"))?;
    Ok((kid, alg, parsed))
}

/// The renewal key: an HMAC key (`kty` `oct`), as the plugin's examples sign.
fn renewal_key(
    issuer: &str,
    kid: &str,
    jwk: &serde_json::Map<String, serde_json::Value>,
) -> Result<RenewalKey, String> {
    let (_, alg, parsed) = parse_jwk(jwk)?;
    let AlgorithmParameters::OctetKey(k) = &parsed.algorithm else {
        return Err(format!("renewal_kid {kid:?}: must be an HMAC (oct) key"));
    };
    let key = secret(&k.value).ok_or(format!("renewal_kid {kid:?}: k is not base64url"))?;
    Ok(RenewalKey {
        issuer: issuer.into(),
        kid: kid.into(),
        alg,
        encoding: EncodingKey::from_secret(&key),
    })
}

fn secret(k: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(k.trim_end_matches('='))
        .ok()
}

#[cfg(test)]
mod tests;
