//! Black-box tests of the token-issuing admin APIs: the BlendVision, Azure Video
//! Indexer and movingimage dialects, management, revocation and the JWKS, against a real
//! gate on 127.0.0.1:0 with a real SQLite store. State is set up through the management
//! API only; every issued token is then played at the edge, whose recording origin must
//! never see a refused request. Threats A19, B1–B5 and B7 of docs/threat-model.md are named
//! in the tests.
//!
//! The standard config already declares resources a, b, c, d, la, pub (orgs org1/org2);
//! the store gets its own: orgs `acme`, `beta`, `gamma`; projects `p9`, `p8` (acme), `q1`
//! (beta); vod `v1`, `v4` (acme/p9), `v2` (acme/p8), `v3` (acme/p9, unpublished), `w1`
//! (beta/q1), `open1` (acme/p9, public), live `l1` (acme/p9); users alice (acme, beta) and
//! bob (beta); one API token each for acme and beta.

use crate::common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::Method;
use serde_json::{json, Value};

use common::*;

const BV: &str = "/bv/cms/v1/resources/tokens";
const BV_ADMIN: &str = "/bv/cms/v1/resources/tokens:admin";
const SUBSCRIPTION: &str = "b04775c3-63fa-40f3-9430-139d2e5522d3";
const GROUP: &str = "contoso-rg";
const API_VERSION: &str = "api-version=2024-01-01";

const ALICE: (&str, &str) = ("alice", "alice-secret-1");
const BOB: (&str, &str) = ("bob", "bob-secret-12");

/// The other client address used to show that limits are per address.
const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

/// `[admin]` with strict refresh-token reuse detection (no reuse interval).
const STRICT_REUSE: &str = "refresh_reuse_interval = \"0s\"";

/// How long a store change may take to reach the edge (`store.poll` is 250 ms).
const STORE_DEADLINE: Duration = Duration::from_secs(2);
/// How long a revocation may take to be enforced at the edge: within 1 s.
const REVOCATION_DEADLINE: Duration = Duration::from_secs(1);
const POLL_STEP: Duration = Duration::from_millis(50);

/// Extra request headers, as `send` takes them.
type Headers<'a> = Vec<(&'a str, &'a str)>;

// ---------------------------------------------------------------------------------------
// The world: a gate, its store filled through the management API
// ---------------------------------------------------------------------------------------

struct World {
    origin: TestOrigin,
    tg: TestGate,
    admin_token: String,
    acme_key: String,
    beta_key: String,
}

async fn world() -> World {
    world_with(|_| {}).await
}

/// A gate with the standard routes, `tweak`ed, and the store filled (see the file doc).
/// Returns once the edge has picked the stored resources up.
async fn world_with(tweak: impl FnOnce(&mut Setup)) -> World {
    let origin = TestOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    tweak(&mut setup);
    let tg = start(setup).await;
    let admin_token = std::fs::read_to_string(tg.dir.path().join("admin-token"))
        .expect("the gate writes its admin token file")
        .trim()
        .to_string();
    let mut w = World {
        origin,
        tg,
        admin_token,
        acme_key: String::new(),
        beta_key: String::new(),
    };
    for (id, name) in [
        ("acme", "Acme Media"),
        ("beta", "Beta Studio"),
        ("gamma", "Gamma"),
    ] {
        w.created("/v1/orgs", json!({ "id": id, "name": name }))
            .await;
    }
    for (id, org) in [("p9", "acme"), ("p8", "acme"), ("q1", "beta")] {
        w.created("/v1/projects", json!({ "id": id, "org": org, "name": id }))
            .await;
    }
    for r in [
        json!({"id": "v1", "type": "vod", "org": "acme", "project": "p9"}),
        json!({"id": "v4", "type": "vod", "org": "acme", "project": "p9"}),
        json!({"id": "v2", "type": "vod", "org": "acme", "project": "p8", "privacy": "token"}),
        json!({"id": "v3", "type": "vod", "org": "acme", "project": "p9", "published": false}),
        json!({"id": "l1", "type": "live", "org": "acme", "project": "p9"}),
        json!({"id": "w1", "type": "vod", "org": "beta", "project": "q1"}),
        json!({"id": "open1", "type": "vod", "org": "acme", "project": "p9", "privacy": "public"}),
    ] {
        w.created("/v1/resources", r).await;
    }
    w.created(
        "/v1/users",
        json!({ "username": ALICE.0, "password": ALICE.1, "orgs": ["acme", "beta"] }),
    )
    .await;
    w.created(
        "/v1/users",
        json!({ "username": BOB.0, "password": BOB.1, "orgs": ["beta"] }),
    )
    .await;
    w.acme_key = w.api_token("acme").await;
    w.beta_key = w.api_token("beta").await;
    // The registry is replaced whole from one store read, so once the last resource
    // written is visible at the edge, every earlier one is too.
    w.created(
        "/v1/resources",
        json!({"id": "ready", "type": "vod", "org": "gamma", "privacy": "public"}),
    )
    .await;
    let got = edge_until(&w.tg, "/vod/ready/probe.ts", 200, STORE_DEADLINE).await;
    assert_eq!(
        got.status, 200,
        "the edge must pick stored resources up within 2 s: {got:?}"
    );
    w
}

impl World {
    fn admin_auth(&self) -> String {
        format!("Bearer {}", self.admin_token)
    }

    /// A management call with the admin token.
    async fn manage(&self, method: Method, path: &str, body: &[u8]) -> Got {
        let auth = self.admin_auth();
        send(
            self.tg.admin(),
            method,
            path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// POST a management object that must be created (201); returns the answer.
    async fn created(&self, path: &str, body: Value) -> Value {
        let got = self
            .manage(Method::POST, path, body.to_string().as_bytes())
            .await;
        assert_eq!(got.status, 201, "POST {path} {body}: {got:?}");
        json_of(&got)
    }

    async fn api_token(&self, org: &str) -> String {
        let v = self
            .created("/v1/api-tokens", json!({ "org": org, "label": "backend" }))
            .await;
        v["token"]
            .as_str()
            .expect("the API token is returned once")
            .to_string()
    }

    async fn revoke(&self, kind: &str, value: &str) {
        self.created("/v1/revocations", json!({ "kind": kind, "value": value }))
            .await;
    }

    /// A BlendVision request with the acme API token for organisation acme.
    async fn bv(&self, path: &str, body: Value) -> Got {
        bv_post(
            &self.tg,
            path,
            Some(&self.acme_key),
            Some("acme"),
            body.to_string().as_bytes(),
        )
        .await
    }

    /// An Azure request for account `account` with API token `key`.
    async fn azure(&self, key: &str, account: &str, body: Value) -> Got {
        azure_post(
            &self.tg,
            Some(key),
            &azure_target(SUBSCRIPTION, GROUP, account, Some(API_VERSION)),
            body.to_string().as_bytes(),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------
// Clients and checks
// ---------------------------------------------------------------------------------------

fn json_of(got: &Got) -> Value {
    serde_json::from_slice(&got.body).unwrap_or_else(|e| {
        panic!(
            "a JSON body was expected ({e}): {} {:?}",
            got.status,
            String::from_utf8_lossy(&got.body)
        )
    })
}

fn content_type(got: &Got) -> &str {
    got.headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// The claims of a JWT, read without verification (the edge checks the signature).
fn payload(token: &str) -> Value {
    let middle = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = URL_SAFE_NO_PAD.decode(middle).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

fn header_of(token: &str) -> Value {
    let first = token.split('.').next().expect("a JWT has a header");
    let bytes = URL_SAFE_NO_PAD.decode(first).expect("base64url header");
    serde_json::from_slice(&bytes).expect("JSON header")
}

/// `s` with its last character replaced by another one.
fn last_char_changed(s: &str) -> String {
    let mut out: String = s.chars().take(s.chars().count() - 1).collect();
    let last = s.chars().last().expect("not empty");
    out.push(if last == 'A' { 'B' } else { 'A' });
    assert_ne!(out, s);
    assert_eq!(out.len(), s.len());
    out
}

async fn bv_post(
    tg: &TestGate,
    path: &str,
    key: Option<&str>,
    org: Option<&str>,
    body: &[u8],
) -> Got {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    if let Some(o) = org {
        headers.push(("x-bv-org-id", o));
    }
    send(tg.admin(), Method::POST, path, &headers, body).await
}

fn azure_target(sub: &str, group: &str, account: &str, query: Option<&str>) -> String {
    let mut t = format!(
        "/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.VideoIndexer/accounts/{account}/generateRestrictedViewerAccessToken"
    );
    if let Some(q) = query {
        t.push('?');
        t.push_str(q);
    }
    t
}

async fn azure_post(tg: &TestGate, key: Option<&str>, target: &str, body: &[u8]) -> Got {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    send(tg.admin(), Method::POST, target, &headers, body).await
}

async fn mi_login(tg: &TestGate, user: &str, password: &str) -> Got {
    mi_login_from(IpAddr::V4(Ipv4Addr::LOCALHOST), tg, user, password).await
}

async fn mi_login_from(from: IpAddr, tg: &TestGate, user: &str, password: &str) -> Got {
    let body = json!({ "username": user, "password": password }).to_string();
    send_from(
        from,
        tg.admin(),
        Method::POST,
        "/v1/vms/auth/login",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

async fn mi_refresh(tg: &TestGate, vm: &str, refresh: &str) -> Got {
    let body = json!({ "refreshToken": refresh }).to_string();
    send(
        tg.admin(),
        Method::POST,
        &format!("/v1/vms/auth/refresh/{vm}"),
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await
}

async fn mi_video_managers(tg: &TestGate, access: Option<&str>) -> Got {
    let auth = access.map(|a| format!("Bearer {a}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    get(tg.admin(), "/v1/vms/video-managers", &headers).await
}

/// A successful movingimage login or refresh answer.
#[derive(Debug)]
struct MiTokens {
    access: String,
    refresh: String,
    list: Vec<(String, String)>,
    valid_for: String,
}

#[track_caller]
fn mi_tokens(got: &Got) -> MiTokens {
    assert_eq!(got.status, 200, "login/refresh must succeed: {got:?}");
    assert!(content_type(got).starts_with("application/json"), "{got:?}");
    let v = json_of(got);
    let obj = v.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "accessToken",
            "refreshToken",
            "validForVideoManager",
            "videoManagerList"
        ],
        "{v}"
    );
    let list = v["videoManagerList"]
        .as_array()
        .expect("videoManagerList is an array")
        .iter()
        .map(|e| {
            (
                e["id"].as_str().expect("id").to_string(),
                e["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    MiTokens {
        access: v["accessToken"].as_str().expect("accessToken").to_string(),
        refresh: v["refreshToken"]
            .as_str()
            .expect("refreshToken")
            .to_string(),
        list,
        valid_for: v["validForVideoManager"]
            .as_str()
            .expect("validForVideoManager")
            .to_string(),
    }
}

/// A BlendVision 200: `{"token", "expired_at"?}`. Returns the token and the answer.
#[track_caller]
fn bv_issued(got: &Got) -> (String, Value) {
    assert_eq!(got.status, 200, "a token must be issued: {got:?}");
    assert!(content_type(got).starts_with("application/json"), "{got:?}");
    let v = json_of(got);
    let obj = v.as_object().expect("an object");
    assert!(
        obj.keys().all(|k| k == "token" || k == "expired_at"),
        "only token and expired_at: {v}"
    );
    let token = v["token"].as_str().expect("token").to_string();
    (token, v)
}

#[track_caller]
fn azure_issued(got: &Got) -> String {
    assert_eq!(got.status, 200, "a token must be issued: {got:?}");
    let v = json_of(got);
    assert_eq!(
        v.as_object().map(|o| o.len()),
        Some(1),
        "only accessToken: {v}"
    );
    v["accessToken"].as_str().expect("accessToken").to_string()
}

/// Words and paths that must never appear in an error body (threat model B4).
fn assert_no_internals(got: &Got, what: &str) {
    let body = String::from_utf8_lossy(&got.body).to_lowercase();
    for word in [
        "sqlite",
        "sql",
        "database",
        "constraint",
        "tollgate.db",
        ".db",
        ".pem",
        ".secret",
        "keys/",
        "state/",
        "/tmp",
        "src/",
        ".rs:",
        "panicked",
        "backtrace",
        "stack",
        "thread '",
        "kid",
        "argon2",
        "\"ed\"",
        "\"es\"",
        "\"rs\"",
        "\"hs\"",
    ] {
        assert!(
            !body.contains(word),
            "{what}: the error body reveals {word:?}: {body}"
        );
    }
}

#[track_caller]
fn assert_gate_dir_not_in(got: &Got, tg: &TestGate, what: &str) {
    let body = String::from_utf8_lossy(&got.body);
    let dir = tg.dir.path().display().to_string();
    assert!(
        !body.contains(&dir),
        "{what}: the body names the gate's directory: {body}"
    );
}

/// A google.rpc.Status error: `{"code","message","details":[]}` with this status and code.
#[track_caller]
fn bv_error(got: &Got, status: u16, code: u64, what: &str) -> String {
    assert_eq!(got.status.as_u16(), status, "{what}: {got:?}");
    assert!(
        content_type(got).starts_with("application/json"),
        "{what}: {got:?}"
    );
    let v = json_of(got);
    let obj = v.as_object().expect("an object");
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["code", "details", "message"], "{what}: {v}");
    assert_eq!(v["code"].as_u64(), Some(code), "{what}: {v}");
    if code == 3 {
        bv_violations(&v, what);
    } else {
        assert_eq!(v["details"], json!([]), "{what}: {v}");
    }
    let message = v["message"].as_str().expect("message is a string");
    assert!(!message.is_empty(), "{what}: {v}");
    assert_no_internals(got, what);
    message.to_string()
}

/// The fields a 400's one google.rpc.BadRequest detail names.
#[track_caller]
fn bv_violations(v: &Value, what: &str) -> Vec<String> {
    let details = v["details"].as_array().expect("details is an array");
    assert_eq!(details.len(), 1, "{what}: one BadRequest: {v}");
    assert_eq!(
        details[0]["@type"], "type.googleapis.com/google.rpc.BadRequest",
        "{what}: {v}"
    );
    details[0]["fieldViolations"]
        .as_array()
        .expect("fieldViolations is an array")
        .iter()
        .map(|f| {
            assert!(
                f["description"].as_str().is_some_and(|d| !d.is_empty()),
                "{what}: {v}"
            );
            f["field"].as_str().expect("field").to_string()
        })
        .collect()
}

/// An Azure error: `{"error":{"code","message","details"}}`.
#[track_caller]
fn azure_error(got: &Got, status: u16, code: &str, what: &str) -> String {
    assert_eq!(got.status.as_u16(), status, "{what}: {got:?}");
    assert!(
        content_type(got).starts_with("application/json"),
        "{what}: {got:?}"
    );
    let v = json_of(got);
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{what}: {v}");
    let e = &v["error"];
    assert_eq!(e["code"].as_str(), Some(code), "{what}: {v}");
    assert!(e["details"].is_array(), "{what}: {v}");
    let message = e["message"].as_str().expect("message is a string");
    assert!(!message.is_empty(), "{what}: {v}");
    assert_no_internals(got, what);
    message.to_string()
}

/// A movingimage error: `{"code": <HTTP status>, "message"}`.
#[track_caller]
fn mi_error(got: &Got, status: u16, what: &str) {
    assert_eq!(got.status.as_u16(), status, "{what}: {got:?}");
    assert!(
        content_type(got).starts_with("application/json"),
        "{what}: {got:?}"
    );
    let v = json_of(got);
    assert_eq!(v["code"].as_u64(), Some(u64::from(status)), "{what}: {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    assert!(
        v.get("accessToken").is_none() && v.get("refreshToken").is_none(),
        "{what}: {v}"
    );
    assert_no_internals(got, what);
}

/// A management error: `{"error": "..."}`.
#[track_caller]
fn manage_error(got: &Got, status: u16, what: &str) {
    assert_eq!(got.status.as_u16(), status, "{what}: {got:?}");
    let v = json_of(got);
    assert!(
        v["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
    assert_no_internals(got, what);
}

/// GET `target` on the edge until it answers `status` or `deadline` passes (50 ms steps).
async fn edge_until(tg: &TestGate, target: &str, status: u16, deadline: Duration) -> Got {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let got = get(tg.plain(), target, &[]).await;
        if got.status.as_u16() == status || tokio::time::Instant::now() >= end {
            return got;
        }
        tokio::time::sleep(POLL_STEP).await;
    }
}

fn segment(prefix: &str, token: &str) -> String {
    format!("{prefix}seg-1.ts?token={token}")
}

/// The token plays exactly `plays` (200, reaching the origin) and gets 403 `scope` on
/// every one of `refused` (never reaching the origin).
async fn assert_coverage(w: &World, token: &str, plays: &[&str], refused: &[&str], what: &str) {
    for prefix in plays {
        let before = w.origin.count();
        let got = get(w.tg.plain(), &segment(prefix, token), &[]).await;
        assert_eq!(got.status, 200, "{what}: must play {prefix}: {got:?}");
        assert_eq!(w.origin.count(), before + 1, "{what}: {prefix}");
    }
    for prefix in refused {
        let before = w.origin.count();
        let got = get(w.tg.plain(), &segment(prefix, token), &[]).await;
        assert_eq!(got.status, 403, "{what}: must not play {prefix}: {got:?}");
        assert_eq!(got.reason(), "scope", "{what}: {prefix}: {got:?}");
        assert_eq!(
            w.origin.count(),
            before,
            "{what}: {prefix}: a refused request reached the origin"
        );
    }
}

fn rfc3339_secs(s: &str) -> i64 {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{s:?} is not RFC 3339: {e}"))
        .unix_timestamp()
}

fn rfc3339(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).expect("secs"))
        .expect("a time");
    t.format(&time::format_description::well_known::Rfc3339)
        .expect("format")
}

fn now_i64() -> i64 {
    i64::try_from(now()).expect("now fits")
}

// ---------------------------------------------------------------------------------------
// 1. Each dialect, each scope: plays exactly what its scope covers
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn blendvision_resource_token_plays_only_its_resource_and_type() {
    let w = world().await;
    let got = w
        .bv(
            BV,
            json!({
                "resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD",
                "customer_id": "cust-7", "customer_name": "Seven", "expires_in": "3600s"
            }),
        )
        .await;
    let (token, answer) = bv_issued(&got);
    let expired_at = rfc3339_secs(answer["expired_at"].as_str().expect("expired_at"));
    let t = now_i64();
    assert!(
        (t + 3600 - 5..=t + 3600 + 1).contains(&expired_at),
        "expired_at {expired_at} must be about now+3600 ({t})"
    );
    let c = payload(&token);
    assert_eq!(c["scope"], "resource", "{c}");
    assert_eq!((&c["rid"], &c["rty"]), (&json!("v1"), &json!("vod")), "{c}");
    assert_eq!(
        (&c["org"], &c["sub"]),
        (&json!("acme"), &json!("cust-7")),
        "{c}"
    );
    assert_eq!(c["name"], "Seven", "{c}");
    assert_eq!(c["exp"].as_i64(), Some(expired_at), "{c}");
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "{c}");
    assert_coverage(
        &w,
        &token,
        &["/vod/v1/"],
        &[
            "/vod/v4/",
            "/vod/v2/",
            "/vod/w1/",
            "/live/v1/",
            "/vod/a/",
            "/live/l1/",
        ],
        "BlendVision vod v1",
    )
    .await;

    // A live resource, with an absolute expiry that the answer echoes.
    let at = now() + 600;
    let got = w
        .bv(
            BV,
            json!({
                "resource_id": "l1", "resource_type": "RESOURCE_TYPE_LIVE",
                "customer_id": "cust-7", "expired_at": rfc3339(at)
            }),
        )
        .await;
    let (token, answer) = bv_issued(&got);
    assert_eq!(
        rfc3339_secs(answer["expired_at"].as_str().expect("expired_at")),
        i64::try_from(at).expect("at"),
        "{answer}"
    );
    assert_eq!(payload(&token)["rty"], "live");
    assert_coverage(
        &w,
        &token,
        &["/live/l1/"],
        &["/vod/l1/", "/vod/v1/", "/live/la/"],
        "BlendVision live l1",
    )
    .await;
}

#[tokio::test]
async fn blendvision_token_privacy_needs_a_customer_id_and_public_privacy_does_not() {
    let w = world().await;
    let got = w
        .bv(
            BV,
            json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "expires_in": "60s"}),
        )
        .await;
    let m = bv_error(&got, 400, 3, "token privacy without customer_id");
    assert!(m.contains("customer_id"), "{m}");
    let got = w
        .bv(
            BV,
            json!({"resource_id": "open1", "resource_type": "RESOURCE_TYPE_VOD", "expires_in": "60s"}),
        )
        .await;
    let (token, _) = bv_issued(&got);
    assert_eq!(payload(&token)["rid"], "open1");
}

#[tokio::test]
async fn blendvision_admin_variant_issues_for_an_unpublished_resource_the_plain_one_refuses() {
    let w = world().await;
    let body =
        json!({"resource_id": "v3", "resource_type": "RESOURCE_TYPE_VOD", "expires_in": "600s"});
    let mut with_customer = body.clone();
    with_customer["customer_id"] = json!("cust-1");
    let got = w.bv(BV, with_customer.clone()).await;
    bv_error(&got, 403, 7, "unpublished resource on the plain endpoint");

    let got = w.bv(BV_ADMIN, body).await;
    let (token, answer) = bv_issued(&got);
    assert!(answer["expired_at"].is_string(), "{answer}");
    assert_coverage(
        &w,
        &token,
        &["/vod/v3/"],
        &["/vod/v1/", "/vod/v4/"],
        "BlendVision admin v3",
    )
    .await;

    // The admin variant takes no customer fields.
    let got = w.bv(BV_ADMIN, with_customer).await;
    bv_error(&got, 400, 3, "customer_id on the admin endpoint");
}

#[tokio::test]
async fn blendvision_without_an_expiry_is_400_when_never_expiring_tokens_are_disabled() {
    // The operator turned tokens without `exp` off: a request without expiry must be
    // refused and say why.
    let w = world_with(|s| s.token = "allow_never_expiring = false".into()).await;
    let got = w
        .bv(
            BV,
            json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c"}),
        )
        .await;
    let m = bv_error(&got, 400, 3, "no expiry");
    assert!(m.contains("never expire"), "the error must say why: {m}");
}

#[tokio::test]
async fn bv_without_an_expiry_issues_a_never_expiring_token_by_default_revocable_by_jti() {
    // The test config sets neither `allow_never_expiring` nor `max_lifetime`.
    let w = world().await;
    let got = w
        .bv(
            BV,
            json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c"}),
        )
        .await;
    let (token, answer) = bv_issued(&got);
    assert!(
        answer.get("expired_at").is_none(),
        "a never-expiring token has no expired_at: {answer}"
    );
    assert!(payload(&token).get("exp").is_none(), "no exp claim");
    assert_coverage(&w, &token, &["/vod/v1/"], &["/vod/v2/"], "never expiring").await;
    // Revocation by jti is the control over a token that never expires, and without
    // token.max_lifetime it is kept for ever.
    let jti = payload(&token)["jti"].as_str().expect("jti").to_string();
    let answer = w
        .created("/v1/revocations", json!({ "kind": "jti", "value": jti }))
        .await;
    assert!(answer["expires"].is_null(), "kept for ever: {answer}");
    let got = edge_until(
        &w.tg,
        &segment("/vod/v1/", &token),
        403,
        REVOCATION_DEADLINE,
    )
    .await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (403, "revoked"),
        "{got:?}"
    );
}

/// A jti revocation over HTTP records until when it matters: the token's `exp` plus the
/// leeway when given, else `token.max_lifetime` from now plus the leeway; the edge
/// refuses the token at once either way, and an `exp` already past is refused.
#[tokio::test]
async fn a_jti_revocation_is_kept_until_exp_plus_leeway_or_max_lifetime_from_now() {
    let week = 7 * 86_400;
    let w = world_with(|s| s.token = "max_lifetime = \"7d\"".into()).await;
    let issue = || async {
        let body = json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD",
                          "customer_id": "c", "expires_in": "600s"});
        let (token, _) = bv_issued(&w.bv(BV, body).await);
        let claims = payload(&token);
        let jti = claims["jti"].as_str().expect("jti").to_string();
        let exp = claims["exp"].as_u64().expect("exp");
        (token, jti, exp)
    };
    let (token, jti, exp) = issue().await;
    let target = segment("/vod/v1/", &token);
    assert_eq!(get(w.tg.plain(), &target, &[]).await.status, 200);
    let answer = w
        .created(
            "/v1/revocations",
            json!({ "kind": "jti", "value": jti, "exp": exp }),
        )
        .await;
    assert_eq!(answer["expires"], exp + LEEWAY, "{answer}");
    let got = edge_until(&w.tg, &target, 403, REVOCATION_DEADLINE).await;
    assert_eq!((got.status.as_u16(), got.reason()), (403, "revoked"));

    let (token, jti, _) = issue().await;
    let before = now();
    let answer = w
        .created("/v1/revocations", json!({ "kind": "jti", "value": jti }))
        .await;
    let after = now();
    let expires = answer["expires"]
        .as_u64()
        .expect("a bound under max_lifetime");
    assert!(
        (before + week + LEEWAY..=after + week + LEEWAY).contains(&expires),
        "{answer}"
    );
    let got = edge_until(
        &w.tg,
        &segment("/vod/v1/", &token),
        403,
        REVOCATION_DEADLINE,
    )
    .await;
    assert_eq!((got.status.as_u16(), got.reason()), (403, "revoked"));
    let listed = json_of(&w.manage(Method::GET, "/v1/revocations", b"").await);
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .any(|r| r["value"] == jti && r["expires"] == expires),
        "{listed}"
    );

    let past = json!({ "kind": "jti", "value": "late", "exp": now() - 3_600 });
    let got = w
        .manage(Method::POST, "/v1/revocations", past.to_string().as_bytes())
        .await;
    manage_error(&got, 400, "an exp already past");
}

#[tokio::test]
async fn blendvision_lifetimes_beyond_max_lifetime_are_400_and_the_error_names_the_cap() {
    let w = world_with(|s| s.token = "max_lifetime = \"7d\"".into()).await;
    let base =
        json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c"});
    let got = w.bv(BV, base.clone()).await;
    let m = bv_error(&got, 400, 3, "never expiring under a cap");
    assert!(m.contains("604800"), "the error must name the cap: {m}");

    let mut too_long = base.clone();
    too_long["expires_in"] = json!("604801s");
    let got = w.bv(BV, too_long).await;
    let m = bv_error(&got, 400, 3, "beyond the cap");
    assert!(m.contains("604800"), "{m}");

    let mut too_late = base.clone();
    too_late["expired_at"] = json!(rfc3339(now() + 8 * 86_400));
    let got = w.bv(BV, too_late).await;
    bv_error(&got, 400, 3, "expired_at beyond the cap");

    let mut at_cap = base;
    at_cap["expires_in"] = json!("604800s");
    let got = w.bv(BV, at_cap).await;
    let (_, answer) = bv_issued(&got);
    let at = rfc3339_secs(answer["expired_at"].as_str().expect("expired_at"));
    let t = now_i64();
    assert!(
        (t + 604_800 - 5..=t + 604_800 + 1).contains(&at),
        "{at} vs {t}"
    );
}

#[tokio::test]
async fn azure_account_token_plays_every_resource_of_its_account_and_none_of_another() {
    let w = world().await;
    let token = azure_issued(
        &w.azure(&w.acme_key, "acme", json!({"scope": "Account"}))
            .await,
    );
    let c = payload(&token);
    assert_eq!(
        (&c["scope"], &c["org"]),
        (&json!("account"), &json!("acme")),
        "{c}"
    );
    let exp = c["exp"].as_i64().expect("exp");
    let t = now_i64();
    assert!((t + 3600 - 5..=t + 3600 + 1).contains(&exp), "an hour: {c}");
    assert_coverage(
        &w,
        &token,
        &["/vod/v1/", "/vod/v4/", "/vod/v2/", "/live/l1/"],
        &[
            "/vod/w1/",
            "/vod/a/",
            "/vod/d/",
            "/live/la/",
            "/vod/nosuch/",
        ],
        "Azure Account acme",
    )
    .await;

    let token = azure_issued(
        &w.azure(&w.beta_key, "beta", json!({"scope": "Account"}))
            .await,
    );
    assert_coverage(
        &w,
        &token,
        &["/vod/w1/"],
        &["/vod/v1/", "/live/l1/"],
        "Azure Account beta",
    )
    .await;
}

#[tokio::test]
async fn azure_project_token_plays_only_that_projects_resources() {
    let w = world().await;
    let got = w
        .azure(
            &w.acme_key,
            "acme",
            json!({"scope": "Project", "projectId": "p9"}),
        )
        .await;
    let token = azure_issued(&got);
    let c = payload(&token);
    assert_eq!(
        (&c["scope"], &c["prj"]),
        (&json!("project"), &json!("p9")),
        "{c}"
    );
    assert_coverage(
        &w,
        &token,
        &["/vod/v1/", "/vod/v4/", "/live/l1/"],
        &["/vod/v2/", "/vod/w1/", "/vod/a/", "/live/la/"],
        "Azure Project p9",
    )
    .await;
}

#[tokio::test]
async fn azure_video_token_plays_only_that_video() {
    let w = world().await;
    let got = w
        .azure(
            &w.acme_key,
            "acme",
            json!({"scope": "Video", "videoId": "v1"}),
        )
        .await;
    let token = azure_issued(&got);
    let c = payload(&token);
    assert_eq!(
        (&c["scope"], &c["rid"]),
        (&json!("resource"), &json!("v1")),
        "{c}"
    );
    assert_coverage(
        &w,
        &token,
        &["/vod/v1/"],
        &["/vod/v4/", "/vod/v2/", "/live/v1/", "/vod/w1/"],
        "Azure Video v1",
    )
    .await;
}

#[tokio::test]
async fn movingimage_login_gives_an_access_token_for_the_first_video_manager_only() {
    let w = world().await;
    let t = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await);
    assert_eq!(t.valid_for, "acme");
    assert_eq!(
        t.list,
        [
            ("acme".to_string(), "Acme Media".to_string()),
            ("beta".to_string(), "Beta Studio".to_string())
        ]
    );
    assert!(
        !t.refresh.is_empty() && !t.refresh.contains('.'),
        "opaque: {t:?}"
    );
    let c = payload(&t.access);
    assert_eq!(
        (&c["scope"], &c["org"]),
        (&json!("account"), &json!("acme")),
        "{c}"
    );
    let exp = c["exp"].as_i64().expect("access tokens expire");
    let n = now_i64();
    assert!(
        (n + 600 - 5..=n + 600 + 1).contains(&exp),
        "default access_ttl is 10 min: {c}"
    );
    assert_coverage(
        &w,
        &t.access,
        &["/vod/v1/", "/vod/v2/", "/live/l1/"],
        &["/vod/w1/", "/vod/a/"],
        "movingimage login (acme)",
    )
    .await;
}

#[tokio::test]
async fn movingimage_refresh_into_another_video_manager_gives_a_token_for_that_one() {
    let w = world().await;
    let first = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await);
    let second = mi_tokens(&mi_refresh(&w.tg, "beta", &first.refresh).await);
    assert_eq!(second.valid_for, "beta");
    assert_eq!(second.list, first.list);
    assert_ne!(second.refresh, first.refresh, "refresh tokens rotate");
    assert_eq!(
        payload(&second.access)["fam"],
        payload(&first.access)["fam"],
        "one family"
    );
    assert_coverage(
        &w,
        &second.access,
        &["/vod/w1/"],
        &["/vod/v1/", "/live/l1/"],
        "movingimage refresh into beta",
    )
    .await;
    // And back into acme with the rotated token.
    let third = mi_tokens(&mi_refresh(&w.tg, "acme", &second.refresh).await);
    assert_eq!(third.valid_for, "acme");
    assert_coverage(
        &w,
        &third.access,
        &["/vod/v1/"],
        &["/vod/w1/"],
        "back into acme",
    )
    .await;
}

#[tokio::test]
async fn movingimage_video_managers_lists_the_users_video_managers_for_its_access_token() {
    let w = world().await;
    let alice = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await);
    let got = mi_video_managers(&w.tg, Some(&alice.access)).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(
        json_of(&got),
        json!([{"id": "acme", "name": "Acme Media"}, {"id": "beta", "name": "Beta Studio"}])
    );
    let bob = mi_tokens(&mi_login(&w.tg, BOB.0, BOB.1).await);
    assert_eq!(bob.valid_for, "beta");
    let got = mi_video_managers(&w.tg, Some(&bob.access)).await;
    assert_eq!(
        json_of(&got),
        json!([{"id": "beta", "name": "Beta Studio"}])
    );

    // Only the user's own access tokens: not an API token, not an Azure token.
    let got = mi_video_managers(&w.tg, Some(&w.acme_key)).await;
    mi_error(&got, 401, "an API token as access token");
    let azure = azure_issued(
        &w.azure(&w.acme_key, "acme", json!({"scope": "Account"}))
            .await,
    );
    let got = mi_video_managers(&w.tg, Some(&azure)).await;
    mi_error(&got, 401, "an Azure token has no user");
}

// ---------------------------------------------------------------------------------------
// 2. Every error path, in each dialect's shape
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn blendvision_every_error_path_is_a_google_rpc_status_with_the_right_code() {
    let w = world().await;
    let ok = |extra: Value| {
        let mut b =
            json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c"});
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    let later = rfc3339(now() + 3600);
    let cases: Vec<(&str, Value, u16, u64)> = vec![
        (
            "expired_at with expires_in",
            ok(json!({"expired_at": later, "expires_in": "60s"})),
            400,
            3,
        ),
        ("bad enum", ok(json!({"resource_type": "VOD"})), 400, 3),
        (
            "lowercase enum",
            ok(json!({"resource_type": "resource_type_vod"})),
            400,
            3,
        ),
        (
            "bad RFC 3339",
            ok(json!({"expired_at": "2030-01-01 00:00:00"})),
            400,
            3,
        ),
        ("not a time", ok(json!({"expired_at": "tomorrow"})), 400, 3),
        (
            "expired_at in the past",
            ok(json!({"expired_at": rfc3339(now() - 60)})),
            400,
            3,
        ),
        ("bad duration", ok(json!({"expires_in": "1h"})), 400, 3),
        (
            "duration without unit",
            ok(json!({"expires_in": "3600"})),
            400,
            3,
        ),
        (
            "negative duration",
            ok(json!({"expires_in": "-5s"})),
            400,
            3,
        ),
        ("zero duration", ok(json!({"expires_in": "0s"})), 400, 3),
        (
            "duration as number",
            ok(json!({"expires_in": 3600})),
            400,
            3,
        ),
        (
            "missing resource_id",
            json!({"resource_type": "RESOURCE_TYPE_VOD", "expires_in": "60s"}),
            400,
            3,
        ),
        (
            "missing resource_type",
            json!({"resource_id": "v1", "expires_in": "60s"}),
            400,
            3,
        ),
        (
            "unknown resource",
            ok(json!({"resource_id": "nosuch", "expires_in": "60s"})),
            404,
            5,
        ),
        (
            "resource of another org",
            ok(json!({"resource_id": "w1", "expires_in": "60s"})),
            404,
            5,
        ),
        (
            "right id, wrong type",
            ok(json!({"resource_type": "RESOURCE_TYPE_LIVE", "expires_in": "60s"})),
            404,
            5,
        ),
        (
            "config resource, not in the store",
            ok(json!({"resource_id": "a", "expires_in": "60s"})),
            404,
            5,
        ),
    ];
    for (what, body, status, code) in cases {
        let got = w.bv(BV, body).await;
        bv_error(&got, status, code, what);
    }
    // Another organisation's resource reads exactly like a missing one.
    let missing = bv_error(
        &w.bv(BV, ok(json!({"resource_id": "zz", "expires_in": "60s"})))
            .await,
        404,
        5,
        "missing",
    );
    let foreign = bv_error(
        &w.bv(BV, ok(json!({"resource_id": "w1", "expires_in": "60s"})))
            .await,
        404,
        5,
        "foreign",
    );
    assert_eq!(missing.replace("zz", "w1"), foreign);

    let body = ok(json!({"expires_in": "60s"})).to_string();
    let body = body.as_bytes();
    let tg = &w.tg;
    let wrong = last_char_changed(&w.acme_key);
    for (what, got, status, code) in [
        (
            "not JSON",
            bv_post(tg, BV, Some(&w.acme_key), Some("acme"), b"{not json").await,
            400,
            3,
        ),
        (
            "empty body",
            bv_post(tg, BV, Some(&w.acme_key), Some("acme"), b"").await,
            400,
            3,
        ),
        (
            "missing authorization",
            bv_post(tg, BV, None, Some("acme"), body).await,
            401,
            16,
        ),
        (
            "wrong API token",
            bv_post(tg, BV, Some("not-a-token"), Some("acme"), body).await,
            401,
            16,
        ),
        (
            "near-miss API token",
            bv_post(tg, BV, Some(&wrong), Some("acme"), body).await,
            401,
            16,
        ),
        (
            "the admin token is no API token",
            bv_post(tg, BV, Some(&w.admin_token), Some("acme"), body).await,
            401,
            16,
        ),
        (
            "x-bv-org-id of another org",
            bv_post(tg, BV, Some(&w.acme_key), Some("beta"), body).await,
            403,
            7,
        ),
        (
            "x-bv-org-id of an unknown org",
            bv_post(tg, BV, Some(&w.acme_key), Some("nosuch"), body).await,
            403,
            7,
        ),
        (
            "beta's token for acme",
            bv_post(tg, BV, Some(&w.beta_key), Some("acme"), body).await,
            403,
            7,
        ),
        (
            "missing x-bv-org-id",
            bv_post(tg, BV, Some(&w.acme_key), None, body).await,
            400,
            3,
        ),
        (
            "admin variant, missing authorization",
            bv_post(tg, BV_ADMIN, None, Some("acme"), body).await,
            401,
            16,
        ),
    ] {
        bv_error(&got, status, code, what);
    }
    let got = send(
        tg.admin(),
        Method::POST,
        BV,
        &[
            ("authorization", "Basic YWxpY2U6c2VjcmV0"),
            ("x-bv-org-id", "acme"),
        ],
        body,
    )
    .await;
    bv_error(&got, 401, 16, "a Basic authorization");
}

#[tokio::test]
async fn azure_every_error_path_is_an_azure_error_with_the_right_code() {
    let w = world().await;
    let tg = &w.tg;
    let key = Some(w.acme_key.as_str());
    let body = json!({"scope": "Account"}).to_string();
    let body = body.as_bytes();
    let q = Some(API_VERSION);
    let long_group = "g".repeat(91);
    let max_group = "g".repeat(90);
    let long_account = "a".repeat(51);
    let bad_paths = [
        (
            "accountName too short",
            azure_target(SUBSCRIPTION, GROUP, "ab", q),
        ),
        (
            "accountName too long",
            azure_target(SUBSCRIPTION, GROUP, &long_account, q),
        ),
        (
            "accountName with _",
            azure_target(SUBSCRIPTION, GROUP, "ac_me", q),
        ),
        (
            "accountName with .",
            azure_target(SUBSCRIPTION, GROUP, "ac.me", q),
        ),
        (
            "accountName percent-encoded",
            azure_target(SUBSCRIPTION, GROUP, "ac%20me", q),
        ),
        (
            "resourceGroupName over 90",
            azure_target(SUBSCRIPTION, &long_group, "acme", q),
        ),
        (
            "resourceGroupName empty",
            azure_target(SUBSCRIPTION, "", "acme", q),
        ),
        ("subscriptionId empty", azure_target("", GROUP, "acme", q)),
    ];
    for (what, target) in &bad_paths {
        let got = azure_post(tg, key, target, body).await;
        azure_error(&got, 400, "InvalidParameter", what);
    }
    // The longest valid resource group passes path validation (and then succeeds).
    let got = azure_post(
        tg,
        key,
        &azure_target(SUBSCRIPTION, &max_group, "acme", q),
        body,
    )
    .await;
    azure_issued(&got);

    for (what, query) in [
        ("no query", None),
        ("api-version empty", Some("api-version=")),
        ("another parameter only", Some("apiversion=2024-01-01")),
    ] {
        let got = azure_post(
            tg,
            key,
            &azure_target(SUBSCRIPTION, GROUP, "acme", query),
            body,
        )
        .await;
        azure_error(&got, 400, "MissingApiVersionParameter", what);
    }

    let target = azure_target(SUBSCRIPTION, GROUP, "acme", q);
    let wrong = last_char_changed(&w.acme_key);
    for (what, key) in [
        ("missing authorization", None),
        ("wrong API token", Some("not-a-token")),
        ("near-miss API token", Some(wrong.as_str())),
    ] {
        let got = azure_post(tg, key, &target, body).await;
        azure_error(&got, 401, "AuthenticationFailed", what);
    }
    let got = azure_post(tg, Some(&w.beta_key), &target, body).await;
    azure_error(
        &got,
        403,
        "AuthorizationFailed",
        "a token of another account",
    );
    let got = azure_post(
        tg,
        Some(&w.acme_key),
        &azure_target(SUBSCRIPTION, GROUP, "gamma", q),
        body,
    )
    .await;
    azure_error(
        &got,
        403,
        "AuthorizationFailed",
        "acme's token for account gamma",
    );

    for (what, body, status, code) in [
        (
            "bad scope",
            json!({"scope": "Everything"}),
            400,
            "InvalidParameter",
        ),
        (
            "lowercase scope",
            json!({"scope": "account"}),
            400,
            "InvalidParameter",
        ),
        ("missing scope", json!({}), 400, "InvalidParameter"),
        (
            "Project without projectId",
            json!({"scope": "Project"}),
            400,
            "InvalidParameter",
        ),
        (
            "Video without videoId",
            json!({"scope": "Video"}),
            400,
            "InvalidParameter",
        ),
        (
            "Video with empty videoId",
            json!({"scope": "Video", "videoId": ""}),
            400,
            "InvalidParameter",
        ),
        (
            "unknown field",
            json!({"scope": "Account", "x": 1}),
            400,
            "InvalidParameter",
        ),
        (
            "unknown video",
            json!({"scope": "Video", "videoId": "nosuch"}),
            404,
            "ResourceNotFound",
        ),
        (
            "video of another account",
            json!({"scope": "Video", "videoId": "w1"}),
            404,
            "ResourceNotFound",
        ),
        (
            "a live resource is no Video",
            json!({"scope": "Video", "videoId": "l1"}),
            404,
            "ResourceNotFound",
        ),
        (
            "unknown project",
            json!({"scope": "Project", "projectId": "nosuch"}),
            404,
            "ResourceNotFound",
        ),
        (
            "project of another account",
            json!({"scope": "Project", "projectId": "q1"}),
            404,
            "ResourceNotFound",
        ),
        (
            "unpublished video",
            json!({"scope": "Video", "videoId": "v3"}),
            403,
            "AuthorizationFailed",
        ),
    ] {
        let got = w.azure(&w.acme_key, "acme", body).await;
        azure_error(&got, status, code, what);
    }
    let got = azure_post(tg, key, &target, b"{not json").await;
    azure_error(&got, 400, "InvalidParameter", "not JSON");
    let got = get(tg.admin(), &target, &[("authorization", "Bearer x")]).await;
    assert_eq!(got.status, 405, "GET on the action: {got:?}");
}

#[tokio::test]
async fn movingimage_every_error_path_has_the_status_and_the_movingimage_shape() {
    let w = world().await;
    let tg = &w.tg;
    for (what, body) in [
        ("not JSON", &b"{not json"[..]),
        ("empty", b""),
        ("no password", br#"{"username":"alice"}"#),
        ("empty password", br#"{"username":"alice","password":""}"#),
        (
            "unknown field",
            br#"{"username":"alice","password":"x","otp":1}"#,
        ),
        (
            "password as number",
            br#"{"username":"alice","password":1}"#,
        ),
    ] {
        let got = send(
            tg.admin(),
            Method::POST,
            "/v1/vms/auth/login",
            &[("content-type", "application/json")],
            body,
        )
        .await;
        mi_error(&got, 400, what);
    }
    mi_error(
        &mi_login(tg, ALICE.0, "wrong-password").await,
        401,
        "wrong password",
    );
    mi_error(
        &mi_login(tg, "mallory", "whatever-1").await,
        401,
        "unknown user",
    );

    // A user without any VideoManager cannot log in to one.
    w.created(
        "/v1/users",
        json!({"username": "carol", "password": "carol-secret-1", "orgs": []}),
    )
    .await;
    mi_error(
        &mi_login(tg, "carol", "carol-secret-1").await,
        403,
        "no VideoManager",
    );

    let alice = mi_tokens(&mi_login(tg, ALICE.0, ALICE.1).await);
    mi_error(
        &mi_refresh(tg, "acme", "garbage").await,
        401,
        "refresh with garbage",
    );
    mi_error(
        &mi_refresh(tg, "acme", &alice.access).await,
        401,
        "an access token as refresh token",
    );
    for (what, body) in [
        ("refresh, not JSON", &b"nope"[..]),
        ("refresh, empty token", br#"{"refreshToken":""}"#),
        ("refresh, wrong field name", br#"{"refresh_token":"x"}"#),
    ] {
        let got = send(
            tg.admin(),
            Method::POST,
            "/v1/vms/auth/refresh/acme",
            &[("content-type", "application/json")],
            body,
        )
        .await;
        mi_error(&got, 400, what);
    }
    mi_error(
        &mi_refresh(tg, "gamma", &alice.refresh).await,
        403,
        "a VideoManager the user may not use",
    );
    mi_error(
        &mi_refresh(tg, "nosuch", &alice.refresh).await,
        403,
        "an unknown VideoManager",
    );
    // A refused VideoManager does not spend the refresh token.
    let next = mi_tokens(&mi_refresh(tg, "beta", &alice.refresh).await);
    assert_eq!(next.valid_for, "beta");

    mi_error(
        &mi_video_managers(tg, None).await,
        401,
        "video-managers without a token",
    );
    mi_error(
        &mi_video_managers(tg, Some("garbage")).await,
        401,
        "video-managers with garbage",
    );
    let forged = format!(
        "{}.{}.{}",
        alice.access.split('.').next().expect("header"),
        URL_SAFE_NO_PAD.encode(
            json!({"iss": ISSUER, "sub": "x", "scope": "account", "org": "gamma"}).to_string()
        ),
        alice.access.rsplit('.').next().expect("signature"),
    );
    mi_error(
        &mi_video_managers(tg, Some(&forged)).await,
        401,
        "video-managers with a forged token",
    );
}

// ---------------------------------------------------------------------------------------
// B1 – B5, B7, A19
// ---------------------------------------------------------------------------------------

#[track_caller]
fn assert_429_with_retry_after(got: &Got, what: &str) {
    mi_error(got, 429, what);
    let retry = got
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{what}: 429 needs Retry-After: {got:?}"));
    let secs: u64 = retry
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After {retry:?} is not seconds"));
    assert!((1..=60).contains(&secs), "{what}: Retry-After {secs}");
}

#[tokio::test]
async fn b1_login_attempts_beyond_the_account_budget_are_429_with_retry_after_and_other_users_still_log_in(
) {
    let w = world().await;
    let tg = &w.tg;
    // `login_per_account` defaults to 5 a minute.
    for i in 0..5 {
        mi_error(
            &mi_login(tg, ALICE.0, "guess-guess").await,
            401,
            &format!("attempt {i}"),
        );
    }
    assert_429_with_retry_after(&mi_login(tg, ALICE.0, "guess-guess").await, "sixth guess");
    // The budget is the account's: the right password, another address and another
    // spelling of the name are all refused too.
    assert_429_with_retry_after(&mi_login(tg, ALICE.0, ALICE.1).await, "right password");
    assert_429_with_retry_after(
        &mi_login_from(OTHER_IP, tg, ALICE.0, ALICE.1).await,
        "from another address",
    );
    assert_429_with_retry_after(&mi_login(tg, "ALICE", ALICE.1).await, "ALICE");
    // Another user, from the same address, is unaffected.
    let bob = mi_tokens(&mi_login(tg, BOB.0, BOB.1).await);
    assert_eq!(bob.valid_for, "beta");
}

#[tokio::test]
async fn b1_login_attempts_beyond_the_address_budget_are_429_and_other_addresses_still_log_in() {
    // A small per-address budget keeps the test short (each attempt is an argon2 verify);
    // the account budget is set high so that only the address limit can trip.
    let w = world_with(|s| s.admin = "login_per_ip = 4\nlogin_per_account = 100".into()).await;
    let tg = &w.tg;
    for i in 0..4 {
        let user = format!("nobody-{i}");
        mi_error(&mi_login(tg, &user, "guess-guess").await, 401, &user);
    }
    assert_429_with_retry_after(&mi_login(tg, "nobody-9", "guess").await, "fifth attempt");
    assert_429_with_retry_after(
        &mi_login(tg, ALICE.0, ALICE.1).await,
        "the right password from the same address",
    );
    let alice = mi_tokens(&mi_login_from(OTHER_IP, tg, ALICE.0, ALICE.1).await);
    assert_eq!(alice.valid_for, "acme");
}

#[tokio::test]
async fn b2_reusing_a_rotated_refresh_token_is_401_and_revokes_the_whole_family_at_the_edge() {
    // Strict reuse detection: the token is presented again after its (zero) interval.
    let w = world_with(|s| s.admin = STRICT_REUSE.into()).await;
    let tg = &w.tg;
    let r0 = mi_tokens(&mi_login(tg, ALICE.0, ALICE.1).await);
    let r1 = mi_tokens(&mi_refresh(tg, "acme", &r0.refresh).await);
    let r2 = mi_tokens(&mi_refresh(tg, "acme", &r1.refresh).await);
    // A separate login is a separate family.
    let other = mi_tokens(&mi_login(tg, ALICE.0, ALICE.1).await);
    let seg = segment("/vod/v1/", &r2.access);
    let got = get(tg.plain(), &seg, &[]).await;
    assert_eq!(
        got.status, 200,
        "the latest access token plays (and is cached): {got:?}"
    );

    mi_error(
        &mi_refresh(tg, "acme", &r0.refresh).await,
        401,
        "reuse of a rotated token",
    );

    let got = edge_until(tg, &seg, 403, REVOCATION_DEADLINE).await;
    assert_eq!(
        got.status, 403,
        "the family's latest access token is refused: {got:?}"
    );
    assert_eq!(got.reason(), "revoked", "{got:?}");
    for (what, t) in [("r0", &r0.access), ("r1", &r1.access)] {
        let got = get(tg.plain(), &segment("/vod/v1/", t), &[]).await;
        assert_eq!(
            (got.status.as_u16(), got.reason()),
            (403, "revoked"),
            "{what}: {got:?}"
        );
    }
    mi_error(
        &mi_refresh(tg, "acme", &r2.refresh).await,
        401,
        "the family's current refresh token is dead too",
    );
    mi_error(
        &mi_video_managers(tg, Some(&r2.access)).await,
        401,
        "a revoked access token at video-managers",
    );
    // The other family is untouched.
    let got = get(tg.plain(), &segment("/vod/v1/", &other.access), &[]).await;
    assert_eq!(got.status, 200, "another family still plays: {got:?}");
    mi_tokens(&mi_refresh(tg, "acme", &other.refresh).await);
    // The family revocation is recorded in the store.
    let revs = json_of(&w.manage(Method::GET, "/v1/revocations", b"").await);
    let fam = payload(&r2.access)["fam"].clone();
    assert!(
        revs.as_array()
            .expect("a list")
            .iter()
            .any(|r| r["kind"] == "family" && r["value"] == fam),
        "{revs}"
    );
}

#[tokio::test]
async fn b2_concurrent_refreshes_with_one_token_have_exactly_one_winner() {
    let w = world_with(|s| s.admin = STRICT_REUSE.into()).await;
    let tg = &w.tg;
    for round in 0..3 {
        let login = mi_tokens(&mi_login(tg, BOB.0, BOB.1).await);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let admin = tg.admin();
            let body = json!({ "refreshToken": login.refresh }).to_string();
            tasks.spawn(async move {
                send(
                    admin,
                    Method::POST,
                    "/v1/vms/auth/refresh/beta",
                    &[("content-type", "application/json")],
                    body.as_bytes(),
                )
                .await
            });
        }
        let mut statuses = Vec::new();
        while let Some(got) = tasks.join_next().await {
            let got = got.expect("refresh task");
            if got.status != 200 {
                mi_error(&got, 401, "a losing concurrent refresh");
            }
            statuses.push(got.status.as_u16());
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "round {round}: exactly one winner: {statuses:?}"
        );
    }
}

#[tokio::test]
async fn b3_unknown_user_and_wrong_password_get_the_same_status_and_identical_body() {
    // Timing is not measured here: `AdminService::mi_login` verifies an unknown user
    // against a dummy argon2 hash, so both paths run exactly one argon2 verification.
    let w = world().await;
    let wrong = mi_login(&w.tg, ALICE.0, "not-her-password").await;
    let unknown = mi_login(&w.tg, "mallory", "not-her-password").await;
    mi_error(&wrong, 401, "wrong password");
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body, "byte-identical bodies");
    let mut a = wrong.headers.clone();
    let mut b = unknown.headers.clone();
    a.remove("date");
    b.remove("date");
    assert_eq!(a, b, "identical headers (but the date)");
}

#[tokio::test]
async fn b4_no_error_body_of_any_dialect_or_the_management_api_reveals_internals() {
    let w = world().await;
    let tg = &w.tg;
    let mut errors: Vec<(&str, Got)> = Vec::new();
    errors.push((
        "bv unknown resource",
        w.bv(BV, json!({"resource_id": "nosuch", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c", "expires_in": "1s"}))
            .await,
    ));
    errors.push((
        "bv bad json",
        bv_post(tg, BV, Some(&w.acme_key), Some("acme"), b"\xff\xfe").await,
    ));
    errors.push((
        "bv huge body",
        bv_post(tg, BV, Some(&w.acme_key), Some("acme"), &vec![b'x'; 70_000]).await,
    ));
    errors.push(("bv no auth", bv_post(tg, BV, None, None, b"{}").await));
    errors.push((
        "azure unknown video",
        w.azure(
            &w.acme_key,
            "acme",
            json!({"scope": "Video", "videoId": "nosuch"}),
        )
        .await,
    ));
    errors.push((
        "azure bad path",
        azure_post(
            tg,
            Some(&w.acme_key),
            &azure_target(SUBSCRIPTION, GROUP, "ac!me", Some(API_VERSION)),
            b"{}",
        )
        .await,
    ));
    errors.push((
        "mi unknown user",
        mi_login(tg, "mallory", "x-x-x-x-x").await,
    ));
    errors.push((
        "mi refresh garbage",
        mi_refresh(tg, "acme", "garbage").await,
    ));
    errors.push((
        "mi video-managers garbage",
        mi_video_managers(tg, Some("a.b.c")).await,
    ));
    // Management errors, including the ones a store constraint decides.
    let mut manage_errors: Vec<(&str, Got)> = Vec::new();
    // (what, method, path, body, expected status)
    let cases: [(&str, Method, &str, &str, u16); 11] = [
        (
            "duplicate username",
            Method::POST,
            "/v1/users",
            r#"{"username":"alice","password":"another-pw-1","orgs":["acme"]}"#,
            409,
        ),
        (
            "user in an unknown org",
            Method::POST,
            "/v1/users",
            r#"{"username":"zed","password":"another-pw-1","orgs":["nosuch"]}"#,
            400,
        ),
        (
            "project in an unknown org",
            Method::POST,
            "/v1/projects",
            r#"{"id":"px","org":"nosuch"}"#,
            400,
        ),
        (
            "resource in another org's project",
            Method::POST,
            "/v1/resources",
            r#"{"id":"vx","type":"vod","org":"acme","project":"q1"}"#,
            400,
        ),
        (
            "resource of unknown type",
            Method::POST,
            "/v1/resources",
            r#"{"id":"vx","type":"tv","org":"acme"}"#,
            400,
        ),
        (
            "api token for an unknown org",
            Method::POST,
            "/v1/api-tokens",
            r#"{"org":"nosuch"}"#,
            400,
        ),
        (
            "org still referred to",
            Method::DELETE,
            "/v1/orgs/acme",
            "",
            409,
        ),
        (
            "unknown user deleted",
            Method::DELETE,
            "/v1/users/nosuch",
            "",
            404,
        ),
        (
            "bad revocation kind",
            Method::POST,
            "/v1/revocations",
            r#"{"kind":"everything","value":"x"}"#,
            400,
        ),
        (
            "management bad json",
            Method::POST,
            "/v1/orgs",
            r#"{"id":"#,
            400,
        ),
        (
            "short password",
            Method::POST,
            "/v1/users",
            r#"{"username":"zed","password":"short"}"#,
            400,
        ),
    ];
    for (what, method, path, body, status) in cases {
        let got = w.manage(method, path, body.as_bytes()).await;
        manage_error(&got, status, what);
        manage_errors.push((what, got));
    }
    manage_errors.push((
        "wrong admin token",
        send(
            tg.admin(),
            Method::GET,
            "/v1/users",
            &[("authorization", "Bearer nope")],
            b"",
        )
        .await,
    ));
    manage_error(
        &manage_errors[manage_errors.len() - 1].1,
        401,
        "wrong admin token",
    );
    for (what, got) in errors.iter().chain(&manage_errors) {
        assert!(
            got.status.is_client_error() || got.status.is_server_error(),
            "{what}: an error was expected: {got:?}"
        );
        assert!(
            content_type(got).starts_with("application/json"),
            "{what}: errors are JSON: {got:?}"
        );
        assert_no_internals(got, what);
        assert_gate_dir_not_in(got, tg, what);
        let body = String::from_utf8_lossy(&got.body);
        for secret in [&w.admin_token, &w.acme_key, &w.beta_key] {
            assert!(
                !body.contains(secret.as_str()),
                "{what}: a secret in an error: {body}"
            );
        }
        assert_eq!(
            got.headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "{what}: errors are uncacheable"
        );
    }
}

#[tokio::test]
async fn b5_a_video_token_used_for_another_video_project_or_account_is_403_at_the_edge() {
    let w = world().await;
    let token = azure_issued(
        &w.azure(
            &w.acme_key,
            "acme",
            json!({"scope": "Video", "videoId": "v1"}),
        )
        .await,
    );
    assert_coverage(
        &w,
        &token,
        &["/vod/v1/"],
        &[
            // Another video of the same project, one of another project, one of another
            // account, one of the config's orgs, another type with the same id.
            "/vod/v4/",
            "/vod/v2/",
            "/vod/w1/",
            "/vod/a/",
            "/vod/d/",
            "/live/v1/",
            "/live/l1/",
        ],
        "B5",
    )
    .await;
    // The same in the path and header carriers.
    let before = w.origin.count();
    let got = get(w.tg.plain(), &format!("/t/{token}/vod/v4/seg-1.ts"), &[]).await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (403, "scope"),
        "{got:?}"
    );
    let bearer = format!("Bearer {token}");
    let got = get(
        w.tg.plain(),
        "/vod/w1/seg-1.ts",
        &[("authorization", bearer.as_str())],
    )
    .await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (403, "scope"),
        "{got:?}"
    );
    assert_eq!(w.origin.count(), before);
}

#[tokio::test]
async fn b7_issuing_and_management_paths_on_the_edge_listener_are_404_and_never_reach_the_origin() {
    let w = world().await;
    let edge = w.tg.plain();
    let before = w.origin.count();
    let api = format!("Bearer {}", w.acme_key);
    let admin = w.admin_auth();
    let bv_body = json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c", "expires_in": "60s"}).to_string();
    let cases: Vec<(Method, String, Headers<'_>, Vec<u8>)> = vec![
        (
            Method::POST,
            BV.into(),
            vec![("authorization", api.as_str()), ("x-bv-org-id", "acme")],
            bv_body.clone().into_bytes(),
        ),
        (
            Method::POST,
            BV_ADMIN.into(),
            vec![("authorization", api.as_str()), ("x-bv-org-id", "acme")],
            bv_body.into_bytes(),
        ),
        (Method::GET, BV.into(), vec![], vec![]),
        (
            Method::POST,
            "/v1/orgs".into(),
            vec![("authorization", admin.as_str())],
            br#"{"id":"evil"}"#.to_vec(),
        ),
        (
            Method::GET,
            "/v1/orgs".into(),
            vec![("authorization", admin.as_str())],
            vec![],
        ),
        (
            Method::GET,
            "/v1/users".into(),
            vec![("authorization", admin.as_str())],
            vec![],
        ),
        (Method::GET, "/.well-known/jwks.json".into(), vec![], vec![]),
        (
            Method::POST,
            azure_target(SUBSCRIPTION, GROUP, "acme", Some(API_VERSION)),
            vec![("authorization", api.as_str())],
            br#"{"scope":"Account"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/v1/vms/auth/login".into(),
            vec![],
            br#"{"username":"alice","password":"alice-secret-1"}"#.to_vec(),
        ),
        (
            Method::POST,
            "/v1/vms/auth/refresh/acme".into(),
            vec![],
            br#"{"refreshToken":"x"}"#.to_vec(),
        ),
        (Method::GET, "/v1/vms/video-managers".into(), vec![], vec![]),
    ];
    for (method, target, headers, body) in &cases {
        let got = send(edge, method.clone(), target, headers, body).await;
        assert_eq!(got.status, 404, "{method} {target} on the edge: {got:?}");
        assert_eq!(got.reason(), "no_route", "{method} {target}: {got:?}");
        assert!(
            !String::from_utf8_lossy(&got.body).contains("token"),
            "{method} {target}: {got:?}"
        );
    }
    assert_eq!(w.origin.count(), before, "the origin saw nothing");
    // Nothing was created through the edge.
    let orgs = json_of(&w.manage(Method::GET, "/v1/orgs", b"").await);
    assert!(
        !orgs
            .as_array()
            .expect("list")
            .iter()
            .any(|o| o["id"] == "evil"),
        "{orgs}"
    );
}

#[tokio::test]
async fn a19_an_api_token_differing_only_in_its_last_character_is_401_in_both_dialects() {
    let w = world().await;
    let body = json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c", "expires_in": "60s"}).to_string();
    for key in [&w.acme_key, &w.beta_key] {
        let near = last_char_changed(key);
        let org = if key == &w.acme_key { "acme" } else { "beta" };
        let got = bv_post(&w.tg, BV, Some(&near), Some(org), body.as_bytes()).await;
        bv_error(&got, 401, 16, "near-miss API token (BlendVision)");
        let got = azure_post(
            &w.tg,
            Some(&near),
            &azure_target(SUBSCRIPTION, GROUP, org, Some(API_VERSION)),
            br#"{"scope":"Account"}"#,
        )
        .await;
        azure_error(
            &got,
            401,
            "AuthenticationFailed",
            "near-miss API token (Azure)",
        );
        // A prefix or an extension of the token is no better.
        let longer = format!("{key}A");
        for other in [&key[..key.len() - 1], longer.as_str()] {
            let got = bv_post(&w.tg, BV, Some(other), Some(org), body.as_bytes()).await;
            bv_error(&got, 401, 16, "prefix/extension of an API token");
        }
    }
    // The real one works.
    let got = bv_post(&w.tg, BV, Some(&w.acme_key), Some("acme"), body.as_bytes()).await;
    bv_issued(&got);
}

#[tokio::test]
async fn a19_a_refresh_token_differing_only_in_its_last_character_is_401_and_spends_nothing() {
    let w = world().await;
    let login = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await);
    let near = last_char_changed(&login.refresh);
    mi_error(
        &mi_refresh(&w.tg, "acme", &near).await,
        401,
        "near-miss refresh token",
    );
    // Nothing was spent or revoked: the real token still rotates and its access plays.
    let got = get(w.tg.plain(), &segment("/vod/v1/", &login.access), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let next = mi_tokens(&mi_refresh(&w.tg, "acme", &login.refresh).await);
    // A near miss of a spent token is unknown, not a reuse: the family lives on.
    let near_spent = last_char_changed(&login.refresh);
    mi_error(
        &mi_refresh(&w.tg, "acme", &near_spent).await,
        401,
        "near-miss of the spent token",
    );
    let got = get(w.tg.plain(), &segment("/vod/v1/", &next.access), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    mi_tokens(&mi_refresh(&w.tg, "acme", &next.refresh).await);
}

#[tokio::test]
async fn a19_the_management_api_refuses_a_wrong_admin_token_with_401_and_reveals_nothing() {
    let w = world().await;
    let tg = &w.tg;
    let near = format!("Bearer {}", last_char_changed(&w.admin_token));
    let prefix = format!("Bearer {}", &w.admin_token[..w.admin_token.len() - 1]);
    let api = format!("Bearer {}", w.acme_key);
    let lower = format!("bearer {}", w.admin_token);
    for (what, auth) in [
        ("no authorization", None),
        ("near-miss admin token", Some(near.as_str())),
        ("prefix of the admin token", Some(prefix.as_str())),
        ("an API token", Some(api.as_str())),
        ("empty bearer", Some("Bearer ")),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
        for (method, path, body) in [
            (Method::GET, "/v1/users", &b""[..]),
            (Method::GET, "/v1/api-tokens", b""),
            (Method::POST, "/v1/orgs", br#"{"id":"intruder"}"#),
            (Method::POST, "/v1/api-tokens", br#"{"org":"acme"}"#),
            (
                Method::POST,
                "/v1/revocations",
                br#"{"kind":"org","value":"acme"}"#,
            ),
            (Method::DELETE, "/v1/users/x", b""),
        ] {
            let got = send(tg.admin(), method.clone(), path, &headers, body).await;
            let what = format!("{what}: {method} {path}");
            manage_error(&got, 401, &what);
            assert_eq!(
                got.headers
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok()),
                Some("Bearer"),
                "{what}"
            );
            let text = String::from_utf8_lossy(&got.body);
            assert!(!text.contains(&w.admin_token[..8]), "{what}: {text}");
            assert!(
                !text.contains("alice") && !text.contains("acme"),
                "{what}: {text}"
            );
        }
    }
    // Nothing happened: no org, no revocation; the scheme is case-insensitive.
    let got = send(
        tg.admin(),
        Method::GET,
        "/v1/orgs",
        &[("authorization", lower.as_str())],
        b"",
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(!json_of(&got).to_string().contains("intruder"));
    let revs = json_of(&w.manage(Method::GET, "/v1/revocations", b"").await);
    assert_eq!(revs, json!([]));
    let tokens = json_of(&w.manage(Method::GET, "/v1/api-tokens", b"").await);
    assert_eq!(tokens.as_array().map(Vec::len), Some(2), "{tokens}");
    assert!(
        tokens
            .as_array()
            .expect("list")
            .iter()
            .all(|t| t.get("token").is_none()),
        "listed API tokens never show the secret: {tokens}"
    );
}

// ---------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------

/// Play `token` (caching its verification), revoke, and see the edge refuse it within 1 s
/// while `unaffected` still plays.
async fn revocation_case(w: &World, token: &str, unaffected: &str, kind: &str, value: &str) {
    let target = segment("/vod/v1/", token);
    let got = get(w.tg.plain(), &target, &[]).await;
    assert_eq!(got.status, 200, "{kind}: plays before: {got:?}");
    let got = get(w.tg.plain(), &target, &[]).await;
    assert_eq!(
        got.status, 200,
        "{kind}: plays again (a cache hit): {got:?}"
    );
    w.revoke(kind, value).await;
    let before = w.origin.count();
    let got = edge_until(&w.tg, &target, 403, REVOCATION_DEADLINE).await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (403, "revoked"),
        "{kind} {value}: refused within 1 s: {got:?}"
    );
    assert_eq!(w.origin.count(), before, "{kind}: the origin saw nothing");
    let got = get(w.tg.plain(), &segment("/vod/v1/", unaffected), &[]).await;
    assert_eq!(
        got.status, 200,
        "{kind}: another token still plays: {got:?}"
    );
    let revs = json_of(&w.manage(Method::GET, "/v1/revocations", b"").await);
    assert!(
        revs.as_array()
            .expect("list")
            .iter()
            .any(|r| r["kind"] == kind && r["value"] == value),
        "{revs}"
    );
}

async fn bv_token(w: &World, customer: &str) -> String {
    let got = w
        .bv(
            BV,
            json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": customer, "expires_in": "600s"}),
        )
        .await;
    bv_issued(&got).0
}

#[tokio::test]
async fn revoking_a_jti_refuses_that_cached_token_at_the_edge_within_a_second() {
    let w = world().await;
    let token = bv_token(&w, "cust-1").await;
    let other = bv_token(&w, "cust-1").await;
    let jti = payload(&token)["jti"].as_str().expect("jti").to_string();
    assert_ne!(
        payload(&other)["jti"],
        json!(jti),
        "every token has its own jti"
    );
    revocation_case(&w, &token, &other, "jti", &jti).await;
}

#[tokio::test]
async fn revoking_a_subject_refuses_its_cached_tokens_at_the_edge_within_a_second() {
    let w = world().await;
    let token = bv_token(&w, "cust-1").await;
    let second = bv_token(&w, "cust-1").await;
    let other = bv_token(&w, "cust-2").await;
    revocation_case(&w, &token, &other, "subject", "cust-1").await;
    let got = get(w.tg.plain(), &segment("/vod/v1/", &second), &[]).await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (403, "revoked"),
        "{got:?}"
    );
}

#[tokio::test]
async fn revoking_an_org_refuses_its_cached_tokens_at_the_edge_within_a_second() {
    let w = world().await;
    let token = azure_issued(
        &w.azure(&w.acme_key, "acme", json!({"scope": "Account"}))
            .await,
    );
    let login = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await);
    let beta = azure_issued(
        &w.azure(&w.beta_key, "beta", json!({"scope": "Account"}))
            .await,
    );
    // All three play (and are cached) before the revocation.
    for (t, prefix) in [
        (&token, "/vod/v1/"),
        (&login.access, "/vod/v2/"),
        (&beta, "/vod/w1/"),
    ] {
        let got = get(w.tg.plain(), &segment(prefix, t), &[]).await;
        assert_eq!(got.status, 200, "{prefix}: {got:?}");
    }
    w.revoke("org", "acme").await;
    for (what, t, prefix) in [
        ("Azure account token", &token, "/vod/v1/"),
        ("movingimage access token", &login.access, "/vod/v2/"),
    ] {
        let got = edge_until(&w.tg, &segment(prefix, t), 403, REVOCATION_DEADLINE).await;
        assert_eq!(
            (got.status.as_u16(), got.reason()),
            (403, "revoked"),
            "{what}: {got:?}"
        );
    }
    let got = get(w.tg.plain(), &segment("/vod/w1/", &beta), &[]).await;
    assert_eq!(got.status, 200, "another org still plays: {got:?}");
}

#[tokio::test]
async fn revoking_a_refresh_family_refuses_its_cached_access_tokens_at_the_edge_within_a_second() {
    let w = world().await;
    let login = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await);
    let other = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await);
    let fam = payload(&login.access)["fam"]
        .as_str()
        .expect("movingimage access tokens name their family")
        .to_string();
    assert_ne!(
        payload(&other.access)["fam"],
        json!(fam),
        "one family per login"
    );
    revocation_case(&w, &login.access, &other.access, "family", &fam).await;
    mi_error(
        &mi_refresh(&w.tg, "acme", &login.refresh).await,
        401,
        "a revoked family's refresh token",
    );
}

// ---------------------------------------------------------------------------------------
// JWKS
// ---------------------------------------------------------------------------------------

async fn jwks(tg: &TestGate) -> Value {
    let got = get(tg.admin(), "/.well-known/jwks.json", &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(
        content_type(&got).starts_with("application/json"),
        "{got:?}"
    );
    json_of(&got)
}

/// One token of each dialect.
async fn one_token_per_dialect(w: &World) -> Vec<(&'static str, String)> {
    let bv = bv_token(w, "cust-1").await;
    let az = azure_issued(
        &w.azure(
            &w.acme_key,
            "acme",
            json!({"scope": "Project", "projectId": "p9"}),
        )
        .await,
    );
    let mi = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await).access;
    vec![("BlendVision", bv), ("Azure", az), ("movingimage", mi)]
}

fn jwk_for<'a>(set: &'a Value, kid: &str) -> &'a Value {
    set["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("the JWKS lists kid {kid}: {set}"))
}

#[tokio::test]
async fn jwks_lists_the_active_eddsa_key_and_issued_tokens_verify_from_it_alone() {
    let w = world().await;
    let set = jwks(&w.tg).await;
    let keys = set["keys"].as_array().expect("keys");
    for k in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(
                k.get(private).is_none(),
                "no private or secret material: {k}"
            );
        }
    }
    assert!(
        keys.iter().all(|k| k["kid"] != "hs"),
        "no HMAC secret: {set}"
    );
    let ed = jwk_for(&set, "ed");
    assert_eq!(
        (&ed["kty"], &ed["crv"], &ed["alg"], &ed["use"]),
        (
            &json!("OKP"),
            &json!("Ed25519"),
            &json!("EdDSA"),
            &json!("sig")
        ),
        "{ed}"
    );
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(ed.clone()).expect("a JWK");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("a key from the JWK");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_issuer(&[ISSUER]);
    for (dialect, token) in one_token_per_dialect(&w).await {
        let header = header_of(&token);
        assert_eq!(
            (&header["alg"], &header["kid"]),
            (&json!("EdDSA"), &json!("ed")),
            "{dialect}: signed with the active key"
        );
        let data = jsonwebtoken::decode::<Value>(&token, &key, &validation)
            .unwrap_or_else(|e| panic!("{dialect}: verifies from the JWKS: {e}"));
        assert_eq!(data.claims["org"], "acme", "{dialect}");
        // A changed payload does not verify.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        let mut claims = payload(&token);
        claims["org"] = json!("beta");
        parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
        assert!(
            jsonwebtoken::decode::<Value>(&parts.join("."), &key, &validation).is_err(),
            "{dialect}: a forged payload must not verify"
        );
    }
}

#[tokio::test]
async fn an_independent_jose_implementation_verifies_issued_tokens_from_the_jwks_alone() {
    use jwt_compact::alg::Ed25519;
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{AlgorithmExt as _, UntrustedToken};

    let w = world().await;
    let set = jwks(&w.tg).await;
    for (dialect, token) in one_token_per_dialect(&w).await {
        let untrusted = UntrustedToken::new(&token).expect("a JWT");
        assert_eq!(untrusted.algorithm(), "EdDSA", "{dialect}");
        let kid = untrusted.header().key_id.clone().expect("a kid");
        let jwk: JsonWebKey<'_> =
            serde_json::from_value(jwk_for(&set, &kid).clone()).expect("jwt-compact reads the JWK");
        let key = <Ed25519 as jwt_compact::Algorithm>::VerifyingKey::try_from(&jwk)
            .expect("an Ed25519 key from the JWK's x");
        let verified = Ed25519
            .validator::<Value>(&key)
            .validate(&untrusted)
            .unwrap_or_else(|e| panic!("{dialect}: jwt-compact verifies the token: {e}"));
        let claims = verified.claims();
        assert_eq!(claims.custom["iss"], ISSUER, "{dialect}");
        assert_eq!(claims.custom["org"], "acme", "{dialect}");
        assert!(claims.expiration.is_some(), "{dialect}: exp");
        // And it refuses a signature from another key: flip one byte of the signature.
        let (head, sig) = token.rsplit_once('.').expect("three parts");
        let mut raw = URL_SAFE_NO_PAD.decode(sig).expect("signature");
        raw[0] ^= 1;
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw));
        let forged = UntrustedToken::new(&forged).expect("still a JWT");
        assert!(
            Ed25519.validator::<Value>(&key).validate(&forged).is_err(),
            "{dialect}: a changed signature must not verify"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Found while testing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn blendvision_an_expiry_beyond_what_the_edge_accepts_is_400_not_an_unusable_token() {
    let w = world().await;
    for (what, field, value) in [
        ("expires_in of 10^13 s", "expires_in", "10000000000000s"),
        (
            "expires_in of u64::MAX s",
            "expires_in",
            "18446744073709551615s",
        ),
        (
            "expired_at rounded up past 9999",
            "expired_at",
            "9999-12-31T23:59:59.5Z",
        ),
    ] {
        let mut body =
            json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c"});
        body[field] = json!(value);
        let got = w.bv(BV, body).await;
        if got.status != 200 {
            bv_error(&got, 400, 3, what);
            continue;
        }
        // Issued: then the answer must tell the truth and the token must play.
        let (token, answer) = bv_issued(&got);
        let exp = payload(&token)["exp"].as_u64().expect("exp");
        let said = rfc3339_secs(answer["expired_at"].as_str().expect("expired_at"));
        assert_eq!(
            u64::try_from(said).ok(),
            Some(exp),
            "{what}: expired_at {answer} must be the token's exp {exp}"
        );
        let got = get(w.tg.plain(), &segment("/vod/v1/", &token), &[]).await;
        assert_eq!(
            got.status, 200,
            "{what}: a token answered with 200 must play: {got:?}"
        );
    }
}

#[tokio::test]
async fn b2_reusing_a_rotated_refresh_token_for_a_video_manager_the_user_may_not_use_still_revokes_the_family(
) {
    let w = world().await;
    let tg = &w.tg;
    let r0 = mi_tokens(&mi_login(tg, ALICE.0, ALICE.1).await);
    let r1 = mi_tokens(&mi_refresh(tg, "acme", &r0.refresh).await);
    let seg = segment("/vod/v1/", &r1.access);
    let got = get(tg.plain(), &seg, &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    // r0 is spent: presenting it again is a reuse, whatever VideoManager it asks for.
    mi_error(
        &mi_refresh(tg, "gamma", &r0.refresh).await,
        401,
        "reuse of a rotated token for a foreign VideoManager",
    );
    let got = edge_until(tg, &seg, 403, REVOCATION_DEADLINE).await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (403, "revoked"),
        "the family is revoked: {got:?}"
    );
    mi_error(
        &mi_refresh(tg, "acme", &r1.refresh).await,
        401,
        "the family's current token",
    );
    // A dead token is 401 whatever VideoManager it asks for: no 403 oracle.
    mi_error(
        &mi_refresh(tg, "gamma", &r1.refresh).await,
        401,
        "a dead token for a foreign VideoManager",
    );
}

#[tokio::test]
async fn api_tokens_refresh_tokens_and_passwords_are_never_stored_in_clear() {
    let w = world().await;
    let login = mi_tokens(&mi_login(&w.tg, ALICE.0, ALICE.1).await);
    let rotated = mi_tokens(&mi_refresh(&w.tg, "beta", &login.refresh).await);
    let state = w.tg.dir.path().join("state");
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&state).expect("the store's directory") {
        let path = entry.expect("entry").path();
        bytes.extend(std::fs::read(&path).expect("read a store file"));
    }
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    // The files are the store: what was written is there.
    assert!(
        has("Beta Studio") && has(ALICE.0),
        "the store files hold the state"
    );
    for (what, secret) in [
        ("acme API token", w.acme_key.as_str()),
        ("beta API token", w.beta_key.as_str()),
        ("login refresh token", login.refresh.as_str()),
        ("rotated refresh token", rotated.refresh.as_str()),
        ("alice's password", ALICE.1),
        ("bob's password", BOB.1),
    ] {
        assert!(!has(secret), "{what} is stored in clear");
    }
}

#[tokio::test]
async fn a_deleted_api_token_is_refused_at_once_in_both_dialects() {
    let w = world().await;
    let list = json_of(&w.manage(Method::GET, "/v1/api-tokens", b"").await);
    let id = list
        .as_array()
        .expect("a list")
        .iter()
        .find(|t| t["org"] == "acme")
        .and_then(|t| t["id"].as_str())
        .expect("acme's token is listed")
        .to_string();
    let got = w
        .manage(Method::DELETE, &format!("/v1/api-tokens/{id}"), b"")
        .await;
    assert_eq!(got.status, 200, "{got:?}");
    let body = json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c", "expires_in": "60s"});
    bv_error(&w.bv(BV, body).await, 401, 16, "deleted API token");
    azure_error(
        &w.azure(&w.acme_key, "acme", json!({"scope": "Account"}))
            .await,
        401,
        "AuthenticationFailed",
        "deleted API token",
    );
    azure_issued(
        &w.azure(&w.beta_key, "beta", json!({"scope": "Account"}))
            .await,
    );
}

#[tokio::test]
async fn a_revocation_written_to_the_store_by_another_writer_reaches_the_cached_edge() {
    // Another node or the CLI writes to the same SQLite file (here: a second connection);
    // this gate learns of it only through its store refresher (`store.poll`, 250 ms), not
    // through its own admin API.
    use tollgate::store::{Revocation, RevocationKind};
    let w = world().await;
    let token = bv_token(&w, "cust-9").await;
    let target = segment("/vod/v1/", &token);
    for _ in 0..2 {
        let got = get(w.tg.plain(), &target, &[]).await;
        assert_eq!(got.status, 200, "plays (and is cached): {got:?}");
    }
    let location = w.tg.config.store.location.clone();
    tokio::task::spawn_blocking(move || {
        let other = tollgate::store::open(&location).expect("open the store");
        other
            .revoke(&Revocation {
                kind: RevocationKind::Subject,
                value: "cust-9".into(),
                at: now(),
                expires: None,
            })
            .expect("revoke");
    })
    .await
    .expect("the other writer");
    let got = edge_until(&w.tg, &target, 403, STORE_DEADLINE).await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (403, "revoked"),
        "{got:?}"
    );
}

#[tokio::test]
async fn issuing_beyond_an_api_tokens_budget_is_429_with_retry_after_in_its_dialect_and_counted() {
    let w = world_with(|s| {
        s.limits = format!("{NO_LIMITS}issue_per_api_token = \"2/m burst 2\"\n")
            .replace("issue_per_api_token = \"off\"\n", "");
    })
    .await;
    let body = json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c-1", "expires_in": "600s"});
    for _ in 0..2 {
        let got = w.bv(BV, body.clone()).await;
        assert_eq!(got.status, 200, "{got:?}");
    }
    let got = w.bv(BV, body.clone()).await;
    bv_error(&got, 429, 8, "third request on a 2/m budget");
    let secs: u64 = got.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    // Another API token (another organisation) has its own budget, in Azure's dialect too.
    let got = w
        .azure(&w.beta_key, "beta", json!({"scope": "Account"}))
        .await;
    assert_eq!(got.status, 200, "{got:?}");
    let got = w
        .azure(&w.acme_key, "acme", json!({"scope": "Account"}))
        .await;
    azure_error(&got, 429, "TooManyRequests", "acme's budget is spent");
    let metrics = send(w.tg.admin(), Method::GET, "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        r#"tollgate_tokens_issued_total{dialect="blendvision"} 2"#,
        r#"tollgate_tokens_issued_total{dialect="azure"} 1"#,
        r#"tollgate_rate_limited_total{limiter="issue"} 2"#,
    ] {
        assert!(text.contains(line), "{line} in:\n{text}");
    }
}

// ---------------------------------------------------------------------------------------
// Vendor fidelity: BlendVision as a gRPC-gateway service, movingimage's VideoManager pick
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn bv_accepts_lower_camel_case_fields_enum_numbers_and_ignores_unknown_fields() {
    let w = world().await;
    let got = w
        .bv(
            BV,
            json!({
                "resourceId": "v1", "resourceType": 2, "customerId": "cust-9",
                "customerName": "Nine", "expiresIn": "600s", "notAField": {"x": [1]}
            }),
        )
        .await;
    let (token, answer) = bv_issued(&got);
    let c = payload(&token);
    assert_eq!((&c["rid"], &c["rty"]), (&json!("v1"), &json!("vod")), "{c}");
    assert_eq!(
        (&c["sub"], &c["name"]),
        (&json!("cust-9"), &json!("Nine")),
        "{c}"
    );
    assert_eq!(
        c["exp"].as_i64(),
        Some(rfc3339_secs(
            answer["expired_at"].as_str().expect("expired_at")
        ))
    );
    let got = w
        .bv(
            BV,
            json!({"resource_id": "l1", "resourceType": "RESOURCE_TYPE_LIVE", "customer_id": "c", "expiredAt": rfc3339(now() + 600)}),
        )
        .await;
    let (token, _) = bv_issued(&got);
    assert_eq!(payload(&token)["rty"], "live");
    // The same field in both spellings is a field given twice.
    let got = w
        .bv(
            BV,
            json!({"resource_id": "v1", "resourceId": "v4", "resource_type": 2, "customer_id": "c"}),
        )
        .await;
    let m = bv_error(&got, 400, 3, "resource_id given twice");
    assert!(m.contains("resource_id"), "{m}");
    assert_eq!(bv_violations(&json_of(&got), "twice"), ["resource_id"]);
}

#[tokio::test]
async fn bv_a_token_never_outlives_the_time_asked_and_the_answer_states_its_real_expiry() {
    let w = world().await;
    let base =
        json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c"});
    let whole = now() + 600;
    let asked = format!("{}.071Z", rfc3339(whole).trim_end_matches('Z'));
    let mut at = base.clone();
    at["expired_at"] = json!(asked);
    let (token, answer) = bv_issued(&w.bv(BV, at).await);
    let exp = payload(&token)["exp"].as_u64().expect("exp");
    assert_eq!(exp, whole, "rounded down from {asked}");
    let stated = answer["expired_at"].as_str().expect("expired_at");
    assert_eq!(
        rfc3339_secs(stated),
        i64::try_from(exp).expect("exp"),
        "{stated}"
    );
    assert!(stated.ends_with(".000Z"), "{stated}");

    let mut fraction = base.clone();
    fraction["expires_in"] = json!("90.9s");
    let (token, _) = bv_issued(&w.bv(BV, fraction).await);
    let c = payload(&token);
    assert_eq!(
        c["exp"].as_u64().expect("exp") - c["iat"].as_u64().expect("iat"),
        90,
        "{c}"
    );

    for tiny in ["0.000000001s", "0.5s"] {
        let mut short = base.clone();
        short["expires_in"] = json!(tiny);
        let got = w.bv(BV, short).await;
        bv_error(&got, 400, 3, tiny);
        assert_eq!(bv_violations(&json_of(&got), tiny), ["expires_in"]);
    }
}

#[tokio::test]
async fn bv_400_errors_carry_a_bad_request_naming_the_field() {
    let w = world().await;
    for (what, body, field) in [
        (
            "missing resource_id",
            json!({"resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c"}),
            "resource_id",
        ),
        (
            "bad resource_type",
            json!({"resource_id": "v1", "resourceType": "VOD", "customer_id": "c"}),
            "resource_type",
        ),
        (
            "bad expiresIn",
            json!({"resource_id": "v1", "resource_type": 2, "customer_id": "c", "expiresIn": "1h"}),
            "expires_in",
        ),
        (
            "expired_at in the past (the issuer's refusal)",
            json!({"resource_id": "v1", "resource_type": 2, "customer_id": "c", "expired_at": rfc3339(now() - 60)}),
            "expired_at",
        ),
        (
            "token privacy without a customer (the issuer's refusal)",
            json!({"resource_id": "v1", "resource_type": 2, "expires_in": "60s"}),
            "customer_id",
        ),
    ] {
        let got = w.bv(BV, body).await;
        bv_error(&got, 400, 3, what);
        assert_eq!(bv_violations(&json_of(&got), what), [field], "{what}");
    }
}

#[tokio::test]
async fn bv_unknown_paths_and_wrong_methods_under_bv_answer_not_found_and_unimplemented_as_json() {
    let w = world().await;
    let tg = &w.tg;
    let auth = format!("Bearer {}", w.acme_key);
    let headers = [("authorization", auth.as_str()), ("x-bv-org-id", "acme")];
    for path in [
        "/bv/cms/v1/resources/nope",
        "/bv/",
        "/bv/cms/v1/resources/tokens/extra",
        "/bv/cms/v2/resources/tokens",
    ] {
        let got = send(tg.admin(), Method::POST, path, &headers, b"{}").await;
        let m = bv_error(&got, 404, 5, path);
        assert_eq!(m, "Not Found", "{path}");
        let got = get(tg.admin(), path, &headers).await;
        bv_error(&got, 404, 5, path);
    }
    for (method, path) in [
        (Method::GET, BV),
        (Method::PUT, BV),
        (Method::DELETE, BV_ADMIN),
        (Method::GET, BV_ADMIN),
    ] {
        let what = format!("{method} {path}");
        let got = send(tg.admin(), method, path, &headers, b"").await;
        bv_error(&got, 501, 12, &what);
        assert_eq!(
            got.headers.get("allow").and_then(|v| v.to_str().ok()),
            Some("POST"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn bv_the_answer_lists_token_before_expired_at() {
    let w = world().await;
    let got = w
        .bv(
            BV,
            json!({"resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c", "expires_in": "60s"}),
        )
        .await;
    let (token, _) = bv_issued(&got);
    let body = String::from_utf8(got.body.to_vec()).expect("utf-8");
    assert!(
        body.starts_with(&format!("{{\"token\":\"{token}\",\"expired_at\":\"")),
        "{body}"
    );
}

#[tokio::test]
async fn movingimage_the_documents_flow_one_refresh_token_for_video_manager_a_then_b_works_by_default(
) {
    let w = world().await;
    let tg = &w.tg;
    let login = mi_tokens(&mi_login(tg, ALICE.0, ALICE.1).await);
    let a = mi_tokens(&mi_refresh(tg, "acme", &login.refresh).await);
    let b = mi_tokens(&mi_refresh(tg, "beta", &login.refresh).await);
    assert_eq!(
        (a.valid_for.as_str(), b.valid_for.as_str()),
        ("acme", "beta")
    );
    assert_eq!(
        payload(&a.access)["fam"],
        payload(&b.access)["fam"],
        "one login"
    );
    // Nothing was revoked: every access token of the login still plays.
    for (what, token, seg) in [
        ("login", &login.access, "/vod/v1/"),
        ("acme", &a.access, "/vod/v1/"),
        ("beta", &b.access, "/vod/w1/"),
    ] {
        let got = get(tg.plain(), &segment(seg, token), &[]).await;
        assert_eq!(got.status, 200, "{what}: {got:?}");
    }
    mi_video_managers(tg, Some(&b.access)).await;
    // The login goes on with the token handed out last.
    let next = mi_tokens(&mi_refresh(tg, "acme", &b.refresh).await);
    assert_eq!(next.valid_for, "acme");
    let revs = json_of(&w.manage(Method::GET, "/v1/revocations", b"").await);
    assert_eq!(revs, json!([]), "no revocation");
}

#[tokio::test]
async fn movingimage_a_used_refresh_token_replayed_after_the_reuse_interval_is_401_and_revokes_the_login(
) {
    let w = world_with(|s| s.admin = STRICT_REUSE.into()).await;
    let tg = &w.tg;
    let login = mi_tokens(&mi_login(tg, ALICE.0, ALICE.1).await);
    let a = mi_tokens(&mi_refresh(tg, "acme", &login.refresh).await);
    let seg = segment("/vod/v1/", &a.access);
    assert_eq!(get(tg.plain(), &seg, &[]).await.status, 200);
    mi_error(
        &mi_refresh(tg, "beta", &login.refresh).await,
        401,
        "the used token, after a zero interval",
    );
    let got = edge_until(tg, &seg, 403, REVOCATION_DEADLINE).await;
    assert_eq!(
        (got.status.as_u16(), got.reason()),
        (403, "revoked"),
        "{got:?}"
    );
    mi_error(
        &mi_refresh(tg, "acme", &a.refresh).await,
        401,
        "the login's current token is dead too",
    );
}
