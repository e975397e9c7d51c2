//! Azure AD (OIDC) bearer tokens for the Azure Video Indexer API: what an Azure SDK
//! client sends to Azure Resource Manager.
//!
//! This file owns the configured tenants' signing keys and the check of an AAD-shaped
//! access token: RS256 only (pinned per key, never taken from the token), signed by a
//! key of the tenant whose `iss` the token names, `iss`, `tid` and `aud` equal to what
//! that tenant configures, `exp`/`nbf` against the injected clock with [`LEEWAY`], `scp`
//! holding `user_impersonation`, and an `oid` (which may use the tenant's accounts only
//! if it is among the tenant's `object_ids`, when the tenant lists any). A tenant's JWKS
//! (a file, or a URL fetched with hyper + rustls) is read on first use, cached, read
//! again once `jwks_refresh` has passed and when a token names an unknown `kid` — at
//! most once per [`MIN_REFETCH`] either way — and a failed read keeps the keys already
//! held. With no key ever read, every token is refused (fail closed).
//! It never touches the store, tollgate's own signing keys, or the dialect's wire format
//! beyond naming ARM's error for each refusal.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::dialect::azure;
use crate::config::{Azure, AzureTenant, JwksSource};

/// Clock skew allowed on `exp` and `nbf`: Microsoft's token validators default to five
/// minutes, so a token ARM accepts is accepted here.
pub const LEEWAY: u64 = 300;
/// The shortest time between two reads of one tenant's JWKS, whatever asks for them: a
/// stream of tokens with made-up `kid`s costs one read per interval, not one per token.
pub const MIN_REFETCH: u64 = 30;
/// A JWKS read (connect, answer and body) that takes longer has failed.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS accepted (Azure AD's is a few kilobytes).
const MAX_JWKS_BYTES: usize = 1 << 20;
/// The delegated permission ARM requires.
const SCOPE: &str = "user_impersonation";

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Who a valid token names, and the accounts its tenant may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub object_id: String,
    accounts: Vec<String>,
}

impl Principal {
    /// The account as the configuration spells it, if this principal may use it (ARM
    /// compares account names ignoring case).
    pub fn account(&self, asked: &str) -> Option<&str> {
        self.accounts
            .iter()
            .find(|a| a.eq_ignore_ascii_case(asked))
            .map(String::as_str)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Malformed, not RS256, no key of the tenant signed it (or none could be read),
    /// a claim missing or of the wrong type, or not valid yet.
    Invalid,
    Expired {
        exp: u64,
        now: u64,
    },
    /// `iss` names no configured tenant, or `tid` is not that tenant's.
    Tenant {
        iss: String,
    },
    Audience {
        aud: String,
        allowed: Vec<String>,
    },
    /// `scp` lacks `user_impersonation`.
    Scope,
}

impl Rejection {
    /// ARM's answer for this refusal (every one is a 401).
    pub fn arm_error(&self) -> azure::Error {
        match self {
            Rejection::Invalid => azure::Error::bad_token(
                "InvalidAuthenticationToken",
                "The access token is invalid.",
            ),
            Rejection::Expired { exp, now } => azure::Error::bad_token(
                "ExpiredAuthenticationToken",
                format!(
                    "The access token expiry UTC time '{}' is earlier than current UTC time '{}'.",
                    arm_time(*exp),
                    arm_time(*now)
                ),
            ),
            Rejection::Tenant { iss } => azure::Error::bad_token(
                "InvalidAuthenticationTokenTenant",
                format!(
                    "The access token is from the wrong issuer '{iss}'. It must match the \
                     tenant associated with this account."
                ),
            ),
            Rejection::Audience { aud, allowed } => azure::Error::bad_token(
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has been obtained for wrong audience or resource \
                     '{aud}'. It should exactly match with one of the allowed audiences '{}'.",
                    allowed.join("','")
                ),
            ),
            Rejection::Scope => azure::Error::bad_token(
                "InvalidAuthenticationToken",
                format!("The access token does not grant the '{SCOPE}' scope."),
            ),
        }
    }
}

/// `M/D/YYYY h:mm:ss AM`, as ARM writes times in its messages.
fn arm_time(secs: u64) -> String {
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[month padding:none]/[day padding:none]/[year] [hour repr:12 padding:none]:[minute]:[second] [period]"
    );
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| t.format(FORMAT).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// The keys read from one tenant's JWKS, and when.
#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, DecodingKey>,
    /// When the keys held were read.
    fetched_at: Option<u64>,
    /// When a read was last tried, whether or not it worked.
    tried_at: Option<u64>,
}

struct Tenant {
    cfg: AzureTenant,
    /// Held across a read, so concurrent requests share one read.
    cache: tokio::sync::Mutex<KeyCache>,
}

/// The configured tenants.
pub struct Oidc {
    tenants: Vec<Tenant>,
    /// The challenge's `authorization_uri` for an account no tenant lists.
    fallback_authority: String,
    /// Built only when a tenant's JWKS is a URL.
    client: Option<HttpClient>,
}

impl Oidc {
    pub fn new(cfg: &Azure) -> Self {
        let needs_client = cfg
            .tenants
            .iter()
            .any(|t| matches!(t.jwks, JwksSource::Url(_)));
        Oidc {
            tenants: cfg
                .tenants
                .iter()
                .map(|t| Tenant {
                    cfg: t.clone(),
                    cache: tokio::sync::Mutex::new(KeyCache::default()),
                })
                .collect(),
            fallback_authority: cfg.authorization_uri.clone(),
            client: needs_client.then(https_client).flatten(),
        }
    }

    /// Whether any tenant is configured (otherwise bearer tokens are API tokens only).
    pub fn enabled(&self) -> bool {
        !self.tenants.is_empty()
    }

    /// The `authorization_uri` a 401 for `account` points the client to: the first
    /// tenant listing it, else the configured default.
    pub fn authority_for(&self, account: &str) -> &str {
        self.tenants
            .iter()
            .find(|t| {
                t.cfg
                    .accounts
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(account))
            })
            .map(|t| t.cfg.authorization_uri.as_str())
            .unwrap_or(&self.fallback_authority)
    }

    /// Check `token` at `now` (Unix seconds).
    pub async fn authenticate(&self, token: &str, now: u64) -> Result<Principal, Rejection> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Invalid)?;
        if header.alg != Algorithm::RS256 {
            return Err(Rejection::Invalid);
        }
        let kid = header.kid.ok_or(Rejection::Invalid)?;
        // The unverified issuer only picks the key set; the signature decides.
        let iss = unverified_issuer(token).ok_or(Rejection::Invalid)?;
        let tenant = self
            .tenants
            .iter()
            .find(|t| t.cfg.issuer == iss)
            .ok_or(Rejection::Tenant { iss })?;
        let key = self
            .key(tenant, &kid, now)
            .await
            .ok_or(Rejection::Invalid)?;
        let claims = jsonwebtoken::decode::<AadClaims>(token, &key, &signature_only())
            .map_err(|_| Rejection::Invalid)?
            .claims;
        check_claims(&tenant.cfg, &claims, now)?;
        // A principal the tenant does not list is authenticated but may use no account.
        let listed =
            tenant.cfg.object_ids.is_empty() || tenant.cfg.object_ids.contains(&claims.oid);
        Ok(Principal {
            tenant_id: claims.tid,
            object_id: claims.oid,
            accounts: if listed {
                tenant.cfg.accounts.clone()
            } else {
                Vec::new()
            },
        })
    }

    /// The tenant's key `kid`, reading the JWKS first when it is due.
    async fn key(&self, tenant: &Tenant, kid: &str, now: u64) -> Option<DecodingKey> {
        let mut cache = tenant.cache.lock().await;
        let refresh = tenant.cfg.jwks_refresh.as_secs();
        let stale = cache
            .fetched_at
            .is_none_or(|t| now >= t.saturating_add(refresh));
        let unknown = !cache.keys.contains_key(kid);
        let may_try = cache
            .tried_at
            .is_none_or(|t| now >= t.saturating_add(MIN_REFETCH));
        if (stale || unknown) && may_try {
            cache.tried_at = Some(now);
            match self.read_jwks(&tenant.cfg.jwks).await {
                Ok(keys) => {
                    cache.keys = keys;
                    cache.fetched_at = Some(now);
                }
                Err(error) => tracing::warn!(
                    tenant = %tenant.cfg.tenant_id,
                    %error,
                    "cannot read the tenant's JWKS; keeping the keys already held"
                ),
            }
        }
        cache.keys.get(kid).cloned()
    }

    async fn read_jwks(&self, source: &JwksSource) -> Result<HashMap<String, DecodingKey>, String> {
        let bytes = match source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map(Bytes::from)
                .map_err(|e| format!("{}: {e}", path.display()))?,
            JwksSource::Url(url) => {
                let client = self.client.as_ref().ok_or("no HTTPS client")?;
                tokio::time::timeout(FETCH_TIMEOUT, get(client, url))
                    .await
                    .map_err(|_| format!("{url}: no answer within {FETCH_TIMEOUT:?}"))??
            }
        };
        parse_jwks(&bytes)
    }
}

/// GET `url`: the body of a 200, at most [`MAX_JWKS_BYTES`].
async fn get(client: &HttpClient, url: &str) -> Result<Bytes, String> {
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let resp = client
        .request(req)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if resp.status() != http::StatusCode::OK {
        return Err(format!("{url}: status {}", resp.status()));
    }
    Limited::new(resp.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("{url}: {e}"))
}

/// An HTTPS (and loopback HTTP) client verifying servers against the system roots.
fn https_client() -> Option<HttpClient> {
    let mut roots = rustls::RootCertStore::empty();
    // A missing or partly unreadable system store only means fewer roots.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(FETCH_TIMEOUT));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Some(Client::builder(TokioExecutor::new()).build(connector))
}

/// One JWK as Azure AD publishes it (other members, such as `x5c`, are ignored).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

/// The RSA signing keys of a JWKS, by `kid`; keys of other types or uses are skipped.
fn parse_jwks(bytes: &[u8]) -> Result<HashMap<String, DecodingKey>, String> {
    #[derive(Deserialize)]
    struct Set {
        keys: Vec<Jwk>,
    }
    let set: Set = serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys: HashMap<String, DecodingKey> = set.keys.into_iter().filter_map(rsa_key).collect();
    if keys.is_empty() {
        return Err("the JWKS holds no RSA signing key".into());
    }
    Ok(keys)
}

fn rsa_key(k: Jwk) -> Option<(String, DecodingKey)> {
    let signing = k.usage.as_deref().is_none_or(|u| u == "sig");
    let rs256 = k.alg.as_deref().is_none_or(|a| a == "RS256");
    if k.kty != "RSA" || !signing || !rs256 {
        return None;
    }
    let key = DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
    Some((k.kid?, key))
}

/// The claims of an AAD access token that ARM reads.
#[derive(Deserialize)]
struct AadClaims {
    iss: String,
    aud: String,
    tid: String,
    oid: String,
    scp: Option<String>,
    exp: u64,
    nbf: Option<u64>,
}

/// The signature only: every claim is checked by [`check_claims`] against the injected
/// clock and the tenant's settings, so each refusal gets ARM's own error.
fn signature_only() -> Validation {
    let mut v = Validation::new(Algorithm::RS256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.leeway = 0;
    v
}

fn check_claims(t: &AzureTenant, c: &AadClaims, now: u64) -> Result<(), Rejection> {
    if c.iss != t.issuer || c.tid != t.tenant_id {
        return Err(Rejection::Tenant { iss: c.iss.clone() });
    }
    if !t.audiences.contains(&c.aud) {
        return Err(Rejection::Audience {
            aud: c.aud.clone(),
            allowed: t.audiences.clone(),
        });
    }
    if now > c.exp.saturating_add(LEEWAY) {
        return Err(Rejection::Expired { exp: c.exp, now });
    }
    if c.nbf.is_some_and(|nbf| now.saturating_add(LEEWAY) < nbf) {
        return Err(Rejection::Invalid);
    }
    let scoped = c
        .scp
        .as_deref()
        .is_some_and(|s| s.split_whitespace().any(|x| x == SCOPE));
    if !scoped {
        return Err(Rejection::Scope);
    }
    if c.oid.is_empty() {
        return Err(Rejection::Invalid);
    }
    Ok(())
}

/// The `iss` of a JWT's payload, read without verification.
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Iss {
        iss: String,
    }
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    serde_json::from_slice::<Iss>(&bytes).ok().map(|i| i.iss)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    use jsonwebtoken::{EncodingKey, Header};

    use super::*;
    use crate::token::keys::{generate_pem, Algorithm as KeyAlg, VerifyKey};
    use crate::token::KeySet;

    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    /// A change to a token's claims.
    type Edit = dyn Fn(&mut serde_json::Value);
    const NOW: u64 = 1_800_000_000;

    fn iss() -> String {
        format!("https://sts.windows.net/{TID}/")
    }

    /// An RSA key pair: (private PEM, the JWKS publishing its public half as `kid`).
    fn rsa(kid: &str) -> (String, serde_json::Value) {
        let (private, public) = generate_pem(KeyAlg::Rs256).expect("rsa");
        let vk = VerifyKey::from_material(kid, KeyAlg::Rs256, public.as_bytes()).expect("pub");
        (private, KeySet::from_keys(vec![vk], None).jwks())
    }

    fn tenant(jwks: JwksSource) -> AzureTenant {
        AzureTenant {
            tenant_id: TID.into(),
            issuer: iss(),
            audiences: vec!["https://management.azure.com/".into()],
            jwks,
            jwks_refresh: Duration::from_secs(3600),
            accounts: vec!["acme".into()],
            object_ids: vec![],
            authorization_uri: format!("https://login.windows.net/{TID}"),
        }
    }

    fn oidc(t: AzureTenant) -> Oidc {
        Oidc::new(&Azure {
            authorization_uri: "https://login.windows.net/".into(),
            tenants: vec![t],
        })
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "iss": iss(), "aud": "https://management.azure.com/", "tid": TID,
            "oid": "0f1e2d3c", "scp": "user_impersonation", "iat": NOW - 60,
            "nbf": NOW - 60, "exp": NOW + 3600,
        })
    }

    fn sign(private: &str, kid: &str, claims: &serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let key = EncodingKey::from_rsa_pem(private.as_bytes()).expect("key");
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    fn with_file_jwks(jwks: &serde_json::Value) -> (tempfile::TempDir, Oidc) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys.json");
        std::fs::write(&path, jwks.to_string()).expect("write");
        let o = oidc(tenant(JwksSource::File(path)));
        (dir, o)
    }

    #[tokio::test]
    async fn aad_token_signed_by_the_tenant_jwks_maps_to_its_accounts() {
        let (private, jwks) = rsa("k1");
        let (_dir, o) = with_file_jwks(&jwks);
        let p = o
            .authenticate(&sign(&private, "k1", &claims()), NOW)
            .await
            .expect("valid");
        assert_eq!(
            (p.tenant_id.as_str(), p.object_id.as_str()),
            (TID, "0f1e2d3c")
        );
        assert_eq!(p.account("ACME"), Some("acme"));
        assert_eq!(p.account("beta"), None);
    }

    #[tokio::test]
    async fn every_aad_claim_is_checked_with_the_injected_clock() {
        let (private, jwks) = rsa("k1");
        let (other, _) = rsa("k1");
        let (_dir, o) = with_file_jwks(&jwks);
        let check = |edit: &dyn Fn(&mut serde_json::Value), key: &str, now: u64| {
            let mut c = claims();
            edit(&mut c);
            let token = sign(key, "k1", &c);
            let o = &o;
            async move { o.authenticate(&token, now).await }
        };
        let within_leeway = NOW + 3600 + LEEWAY;
        assert!(check(&|_| {}, &private, within_leeway).await.is_ok());
        assert_eq!(
            check(&|_| {}, &private, within_leeway + 1).await,
            Err(Rejection::Expired {
                exp: NOW + 3600,
                now: within_leeway + 1
            })
        );
        let cases: Vec<(&str, Box<Edit>, Rejection)> = vec![
            (
                "another issuer",
                Box::new(|c| c["iss"] = "https://sts.windows.net/other/".into()),
                Rejection::Tenant {
                    iss: "https://sts.windows.net/other/".into(),
                },
            ),
            (
                "another tid",
                Box::new(|c| c["tid"] = "other".into()),
                Rejection::Tenant { iss: iss() },
            ),
            (
                "another audience",
                Box::new(|c| c["aud"] = "https://graph.microsoft.com".into()),
                Rejection::Audience {
                    aud: "https://graph.microsoft.com".into(),
                    allowed: vec!["https://management.azure.com/".into()],
                },
            ),
            (
                "no scp",
                Box::new(|c| {
                    c.as_object_mut().map(|m| m.remove("scp"));
                }),
                Rejection::Scope,
            ),
            (
                "other scopes",
                Box::new(|c| c["scp"] = "user_impersonation_x read".into()),
                Rejection::Scope,
            ),
            (
                "not yet valid",
                Box::new(|c| c["nbf"] = (NOW + LEEWAY + 1).into()),
                Rejection::Invalid,
            ),
            (
                "exp as a string",
                Box::new(|c| c["exp"] = "soon".into()),
                Rejection::Invalid,
            ),
            (
                "no oid",
                Box::new(|c| {
                    c.as_object_mut().map(|m| m.remove("oid"));
                }),
                Rejection::Invalid,
            ),
        ];
        for (what, edit, want) in &cases {
            assert_eq!(
                check(edit, &private, NOW).await,
                Err(want.clone()),
                "{what}"
            );
        }
        // The right kid, but another key's signature.
        assert_eq!(check(&|_| {}, &other, NOW).await, Err(Rejection::Invalid));
        // A token naming a kid the JWKS does not hold.
        let stranger = sign(&private, "k9", &claims());
        assert_eq!(
            o.authenticate(&stranger, NOW).await,
            Err(Rejection::Invalid)
        );
        // HS256 with the public modulus as a secret is not RS256.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k1".into());
        let hs =
            jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(b"s")).expect("hs");
        assert_eq!(o.authenticate(&hs, NOW).await, Err(Rejection::Invalid));
    }

    #[tokio::test]
    async fn a_tenant_listing_object_ids_admits_only_those() {
        let (private, jwks) = rsa("k1");
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("keys.json");
        std::fs::write(&path, jwks.to_string()).expect("write");
        let mut t = tenant(JwksSource::File(path));
        t.object_ids = vec!["someone-else".into()];
        let o = oidc(t);
        let p = o
            .authenticate(&sign(&private, "k1", &claims()), NOW)
            .await
            .expect("authenticated");
        assert_eq!(
            p.account("acme"),
            None,
            "but not authorised for any account"
        );
    }

    /// A JWKS server on 127.0.0.1:0 answering `body`'s current value; counts requests.
    async fn jwks_server(body: Arc<Mutex<String>>, hits: Arc<AtomicUsize>) -> String {
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (body, hits) = (body.clone(), hits.clone());
                let svc = service_fn(move |_req| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let text = body.lock().map(|b| b.clone()).unwrap_or_default();
                    async move {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(Bytes::from(text)),
                        ))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc),
                );
            }
        });
        format!("http://{addr}/discovery/keys")
    }

    #[tokio::test]
    async fn jwks_url_is_cached_refreshed_and_refetched_for_a_new_kid_at_most_every_30s() {
        let (k1, jwks1) = rsa("k1");
        let (k2, jwks2) = rsa("k2");
        let body = Arc::new(Mutex::new(jwks1.to_string()));
        let hits = Arc::new(AtomicUsize::new(0));
        let url = jwks_server(body.clone(), hits.clone()).await;
        let mut t = tenant(JwksSource::Url(url));
        t.jwks_refresh = Duration::from_secs(600);
        let o = oidc(t);
        let t1 = sign(&k1, "k1", &claims());
        let t2 = sign(&k2, "k2", &claims());
        assert!(o.authenticate(&t1, NOW).await.is_ok());
        assert!(o.authenticate(&t1, NOW + 1).await.is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "cached");

        // The tenant rotates to k2: a k2 token within 30 s of the last read is refused
        // without a read; after that, one read picks k2 up.
        *body.lock().expect("lock") = jwks2.to_string();
        assert_eq!(o.authenticate(&t2, NOW + 10).await, Err(Rejection::Invalid));
        assert_eq!(hits.load(Ordering::SeqCst), 1, "rate-limited");
        assert!(o.authenticate(&t2, NOW + MIN_REFETCH).await.is_ok());
        assert_eq!(
            hits.load(Ordering::SeqCst),
            2,
            "refetched for the unknown kid"
        );
        assert_eq!(o.authenticate(&t1, NOW + 40).await, Err(Rejection::Invalid));

        // Past jwks_refresh, a known kid reads the set again too.
        *body.lock().expect("lock") = jwks1.to_string();
        let later = NOW + MIN_REFETCH + 600;
        assert!(o.authenticate(&t1, later).await.is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 3, "refreshed on the interval");
    }

    #[tokio::test]
    async fn a_jwks_never_read_refuses_every_token() {
        let (private, _) = rsa("k1");
        // A port nothing listens on: bind, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let o = oidc(tenant(JwksSource::Url(format!(
            "http://127.0.0.1:{port}/keys"
        ))));
        let token = sign(&private, "k1", &claims());
        assert_eq!(o.authenticate(&token, NOW).await, Err(Rejection::Invalid));
        let (_dir, bad) = with_file_jwks(&serde_json::json!({"keys": []}));
        assert_eq!(bad.authenticate(&token, NOW).await, Err(Rejection::Invalid));
    }
}
