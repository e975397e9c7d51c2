//! Black-box tests of the Azure Video Indexer dialect as Azure Resource Manager (ARM)
//! clients see it: case-insensitive routing, decoded path parameters, an account bound
//! to its subscription and resource group, the supported `api-version`, ARM's error
//! shapes, and Azure AD (OIDC) bearer tokens from a locally generated issuer whose JWKS
//! is a file or is served by an in-process server on 127.0.0.1:0.

use crate::common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::Method;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tollgate::token::keys::{generate_pem, Algorithm, VerifyKey};
use tollgate::token::KeySet;

use common::*;

const SUB: &str = "b04775c3-63fa-40f3-9430-139d2e5522d3";
const GROUP: &str = "Media-RG";
const API_VERSION: &str = "api-version=2024-01-01";
pub(crate) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const ARM: &str = "https://management.azure.com/";

pub(crate) fn issuer() -> String {
    format!("https://sts.windows.net/{TENANT}/")
}

/// A gate with org `acme` (unbound), a vod resource `v1` of it and an API token for it.
struct World {
    tg: TestGate,
    admin: String,
    acme_key: String,
}

async fn world(extra: &str) -> World {
    let origin = TestOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.extra.push_str(extra);
    let tg = start(setup).await;
    let admin = std::fs::read_to_string(tg.dir.path().join("admin-token"))
        .expect("admin token")
        .trim()
        .to_string();
    let mut w = World {
        tg,
        admin,
        acme_key: String::new(),
    };
    w.created("/v1/orgs", json!({"id": "acme", "name": "Acme"}))
        .await;
    w.created(
        "/v1/resources",
        json!({"id": "v1", "type": "vod", "org": "acme"}),
    )
    .await;
    w.acme_key = w.api_token("acme").await;
    w
}

impl World {
    /// POST a management object that must be created (201).
    async fn created(&self, path: &str, body: Value) -> Value {
        let auth = format!("Bearer {}", self.admin);
        let got = send(
            self.tg.admin(),
            Method::POST,
            path,
            &[("authorization", auth.as_str())],
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(got.status, 201, "POST {path} {body}: {got:?}");
        json_of(&got)
    }

    async fn api_token(&self, org: &str) -> String {
        let v = self.created("/v1/api-tokens", json!({"org": org})).await;
        v["token"].as_str().expect("token").to_string()
    }

    /// Org `bound`, bound to [`SUB`] / [`GROUP`]; returns an API token for it.
    async fn bound(&self) -> String {
        self.created(
            "/v1/orgs",
            json!({"id": "bound", "azure_subscription": SUB, "azure_resource_group": GROUP}),
        )
        .await;
        self.api_token("bound").await
    }
}

fn json_of(got: &Got) -> Value {
    serde_json::from_slice(&got.body).unwrap_or_else(|e| panic!("JSON expected ({e}): {got:?}"))
}

pub(crate) fn target(sub: &str, group: &str, account: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.VideoIndexer/accounts/{account}/generateRestrictedViewerAccessToken?{API_VERSION}"
    )
}

async fn post(tg: &TestGate, bearer: Option<&str>, target: &str) -> Got {
    let auth = bearer.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    send(
        tg.admin(),
        Method::POST,
        target,
        &headers,
        br#"{"scope":"Account"}"#,
    )
    .await
}

/// The issued token's claims (read without verification; the edge checks it).
fn issued_claims(got: &Got) -> Value {
    assert_eq!(got.status, 200, "{got:?}");
    let token = json_of(got)["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_string();
    let middle = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(middle).expect("b64")).expect("json")
}

/// An ARM `ErrorResponse` with this status and code; returns the message.
fn arm_error(got: &Got, status: u16, code: &str) -> String {
    assert_eq!(got.status, status, "{got:?}");
    let ct = got
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    assert_eq!(ct, Some("application/json"), "{got:?}");
    let v = json_of(got);
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["details"].is_array(), "{v}");
    v["error"]["message"].as_str().expect("message").to_string()
}

#[tokio::test]
async fn azure_arm_segments_group_and_account_match_in_any_case() {
    let w = world("").await;
    let lower = format!(
        "/subscriptions/{SUB}/resourcegroups/{}/PROVIDERS/microsoft.videoindexer/ACCOUNTS/ACME/generaterestrictedvieweraccesstoken?{API_VERSION}",
        GROUP.to_lowercase()
    );
    let claims = issued_claims(&post(&w.tg, Some(&w.acme_key), &lower).await);
    assert_eq!(
        claims["org"], "acme",
        "issued for the account's own spelling"
    );
}

#[tokio::test]
async fn azure_resource_group_length_counts_the_decoded_name() {
    let w = world("").await;
    // 89 characters: valid, though its percent-encoded form is 91.
    let group = format!("{}%28", "g".repeat(88));
    let got = post(&w.tg, Some(&w.acme_key), &target(SUB, &group, "acme")).await;
    issued_claims(&got);
    let group = format!("{}%28%29", "g".repeat(89));
    let got = post(&w.tg, Some(&w.acme_key), &target(SUB, &group, "acme")).await;
    arm_error(&got, 400, "InvalidParameter");
}

#[tokio::test]
async fn azure_bound_account_elsewhere_is_404_resource_not_found_and_unbound_is_found_anywhere() {
    let w = world("").await;
    let bound_key = w.bound().await;
    for (sub, group) in [
        ("00000000-0000-0000-0000-000000000000", GROUP),
        (SUB, "other-rg"),
    ] {
        let got = post(&w.tg, Some(&bound_key), &target(sub, group, "bound")).await;
        let message = arm_error(&got, 404, "ResourceNotFound");
        assert_eq!(
            message,
            format!(
                "The Resource 'Microsoft.VideoIndexer/accounts/bound' under resource group '{group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            )
        );
    }
    issued_claims(&post(&w.tg, Some(&bound_key), &target(SUB, GROUP, "bound")).await);
    // The bound subscription and resource group match ignoring case, as ARM's do.
    let t = target(&SUB.to_uppercase(), &GROUP.to_uppercase(), "Bound");
    let claims = issued_claims(&post(&w.tg, Some(&bound_key), &t).await);
    assert_eq!(claims["org"], "bound");
    // A subscription without a resource group (or the reverse) binds nothing: refused.
    let auth = format!("Bearer {}", w.admin);
    for half in [
        json!({"id": "half", "azure_subscription": SUB}),
        json!({"id": "half", "azure_resource_group": GROUP}),
        json!({"id": "half", "azure_subscription": "", "azure_resource_group": GROUP}),
    ] {
        let got = send(
            w.tg.admin(),
            Method::POST,
            "/v1/orgs",
            &[("authorization", auth.as_str())],
            half.to_string().as_bytes(),
        )
        .await;
        assert_eq!(got.status, 400, "{half}: {got:?}");
    }
    let got = send(
        w.tg.admin(),
        Method::GET,
        "/v1/orgs",
        &[("authorization", auth.as_str())],
        b"",
    )
    .await;
    let listed = json_of(&got);
    let bound = listed
        .as_array()
        .and_then(|a| a.iter().find(|o| o["id"] == "bound"))
        .unwrap_or_else(|| panic!("bound is listed: {listed}"));
    assert_eq!(
        (&bound["azure_subscription"], &bound["azure_resource_group"]),
        (&json!(SUB), &json!(GROUP))
    );
    // An unbound account keeps answering under any subscription and resource group.
    issued_claims(&post(&w.tg, Some(&w.acme_key), &target("any", "any-rg", "acme")).await);
}

#[tokio::test]
async fn azure_undocumented_api_version_is_400_invalid_api_version_parameter() {
    let w = world("").await;
    let t = target(SUB, GROUP, "acme").replace("2024-01-01", "2021-11-10-preview");
    let got = post(&w.tg, Some(&w.acme_key), &t).await;
    let message = arm_error(&got, 400, "InvalidApiVersionParameter");
    assert_eq!(
        message,
        "The api-version '2021-11-10-preview' is invalid. The supported versions are '2024-01-01'."
    );
}

#[tokio::test]
async fn azure_get_is_405_in_arm_error_response_shape() {
    let w = world("").await;
    let got = send(
        w.tg.admin(),
        Method::GET,
        &target(SUB, GROUP, "acme"),
        &[("authorization", &format!("Bearer {}", w.acme_key))],
        b"",
    )
    .await;
    let message = arm_error(&got, 405, "MethodNotAllowed");
    assert!(message.contains("'GET'"), "{message}");
    assert_eq!(
        got.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
}

/// An RSA key: (private PEM, the JWKS publishing its public half as `kid`).
pub(crate) fn aad_key(kid: &str) -> (String, Value) {
    let (private, public) = generate_pem(Algorithm::Rs256).expect("rsa");
    let vk = VerifyKey::from_material(kid, Algorithm::Rs256, public.as_bytes()).expect("pub");
    (private, KeySet::from_keys(vec![vk], None).jwks())
}

/// An AAD-shaped access token for ARM, `edit`ed, signed with `private` as `kid`.
pub(crate) fn aad_token(
    private: &str,
    kid: &str,
    tenant: &str,
    edit: impl FnOnce(&mut Value),
) -> String {
    let now = now();
    let mut claims = json!({
        "iss": format!("https://sts.windows.net/{tenant}/"), "aud": ARM, "tid": tenant,
        "oid": "5c9d1b2a-0000-4000-8000-000000000001", "scp": "user_impersonation",
        "iat": now, "nbf": now, "exp": now + 3600, "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46",
    });
    edit(&mut claims);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.into());
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes()).expect("key");
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

/// Serve `jwks` on 127.0.0.1:0; returns its URL.
async fn serve_jwks(jwks: Value) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let body = Arc::new(Mutex::new(jwks.to_string()));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let body = body.clone();
            let svc = service_fn(move |_req| {
                let text = body.lock().map(|b| b.clone()).unwrap_or_default();
                async move { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(text)))) }
            });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    format!("http://{addr}/common/discovery/keys")
}

fn challenge(got: &Got) -> String {
    got.headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("a 401 carries a challenge: {got:?}"))
        .to_string()
}

#[tokio::test]
async fn azure_aad_bearer_from_a_configured_tenant_issues_for_its_account() {
    const OTHER: &str = "0d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let (file_key, file_jwks) = aad_key("file-1");
    let (url_key, url_jwks) = aad_key("url-1");
    let keys = tempfile::tempdir().expect("dir");
    let jwks_path = keys.path().join("aad.json");
    std::fs::write(&jwks_path, file_jwks.to_string()).expect("write jwks");
    let url = serve_jwks(url_jwks).await;
    let w = world(&format!(
        r#"
[[azure.tenants]]
tenant_id = "{TENANT}"
issuer = "{iss}"
jwks = "{path}"
accounts = ["acme"]

[[azure.tenants]]
tenant_id = "{OTHER}"
issuer = "https://sts.windows.net/{OTHER}/"
jwks = "{url}"
accounts = ["bound"]
"#,
        iss = issuer(),
        path = jwks_path.display(),
    ))
    .await;
    w.bound().await;
    let tg = &w.tg;

    // From the file tenant, for its account (in any case).
    let token = aad_token(&file_key, "file-1", TENANT, |_| {});
    let claims = issued_claims(&post(tg, Some(&token), &target(SUB, GROUP, "ACME")).await);
    assert_eq!(claims["org"], "acme");
    // Not for another tenant's account: ARM's 403.
    let got = post(tg, Some(&token), &target(SUB, GROUP, "bound")).await;
    let message = arm_error(&got, 403, "AuthorizationFailed");
    assert!(
        message.contains("5c9d1b2a-0000-4000-8000-000000000001"),
        "{message}"
    );
    // From the URL tenant, for its bound account under its subscription and group.
    let token = aad_token(&url_key, "url-1", OTHER, |_| {});
    let claims = issued_claims(&post(tg, Some(&token), &target(SUB, GROUP, "bound")).await);
    assert_eq!(claims["org"], "bound");
    // The API token is still the other way in.
    issued_claims(&post(tg, Some(&w.acme_key), &target(SUB, GROUP, "acme")).await);

    // Every 401 carries ARM's challenge with the account's tenant authority.
    let authority = format!("authorization_uri=\"https://login.windows.net/{TENANT}\"");
    let refusals = [
        ("no Authorization", None, "AuthenticationFailed"),
        (
            "expired",
            Some(aad_token(&file_key, "file-1", TENANT, |c| {
                c["exp"] = (now() - 3600).into();
            })),
            "ExpiredAuthenticationToken",
        ),
        (
            "for Microsoft Graph",
            Some(aad_token(&file_key, "file-1", TENANT, |c| {
                c["aud"] = "https://graph.microsoft.com".into();
            })),
            "InvalidAuthenticationTokenAudience",
        ),
        (
            "signed by the other tenant's key",
            Some(aad_token(&url_key, "file-1", TENANT, |_| {})),
            "InvalidAuthenticationToken",
        ),
        (
            "without user_impersonation",
            Some(aad_token(&file_key, "file-1", TENANT, |c| {
                c["scp"] = "openid".into();
            })),
            "InvalidAuthenticationToken",
        ),
        (
            "from an unknown issuer",
            Some(aad_token(&file_key, "file-1", "nobody", |_| {})),
            "InvalidAuthenticationTokenTenant",
        ),
    ];
    for (what, token, code) in refusals {
        let got = post(tg, token.as_deref(), &target(SUB, GROUP, "acme")).await;
        arm_error(&got, 401, code);
        let c = challenge(&got);
        assert!(c.starts_with("Bearer "), "{what}: {c}");
        assert!(c.contains(&authority), "{what}: {c}");
        assert!(c.contains("error=\"invalid_token\""), "{what}: {c}");
    }
    // An account no tenant lists points to ARM's default authority.
    let got = post(tg, None, &target(SUB, GROUP, "gamma")).await;
    assert!(
        challenge(&got).contains("authorization_uri=\"https://login.windows.net/\""),
        "{got:?}"
    );
}

#[tokio::test]
async fn azure_a_caller_without_credentials_is_401_before_any_path_or_api_version_error() {
    let w = world("").await;
    let bad_account = target(SUB, GROUP, "ab");
    let bad_version = target(SUB, GROUP, "acme").replace("2024-01-01", "1999-01-01");
    for t in [&bad_account, &bad_version] {
        let got = post(&w.tg, None, t).await;
        arm_error(&got, 401, "AuthenticationFailed");
        assert!(
            challenge(&got).starts_with("Bearer authorization_uri="),
            "{t}"
        );
        let got = post(&w.tg, Some("not-a-token"), t).await;
        arm_error(&got, 401, "AuthenticationFailed");
    }
    // With credentials, the request's own errors follow.
    let got = post(&w.tg, Some(&w.acme_key), &bad_account).await;
    arm_error(&got, 400, "InvalidParameter");
    let got = post(&w.tg, Some(&w.acme_key), &bad_version).await;
    arm_error(&got, 400, "InvalidApiVersionParameter");
}
