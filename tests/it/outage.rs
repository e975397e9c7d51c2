//! The store unreachable: the admin listener answers every call that needs the store
//! with 503 and `Retry-After`, in the error shape of the dialect the request came in
//! (BlendVision's google.rpc.Status UNAVAILABLE, ARM's `ServiceUnavailable`,
//! movingimage's `{"code":503}`, management's `{"error"}`), never a 401 or 404 that
//! would tell a client its credentials are bad; the edge keeps playing tokens issued
//! before; and everything works again once the store is back.
//!
//! Three kinds of outage, each real where one can be made here:
//! - [`Unreachable`], a test double for a database that cannot be reached, in front of
//!   the gate's SQLite store: SQLite reads cannot be made to fail from outside (WAL
//!   readers never wait for a writer, and no other connection can lock the file
//!   exclusively while the gate has it open), so the read paths are driven through it.
//!   It fails calls as a lost database does (`StoreError::Backend`), optionally sparing
//!   some, so that each store call of a request can be the one that fails.
//! - A real SQLite write lock, held by another connection: the gate's writes wait out
//!   the store's 5 s busy timeout and fail with SQLITE_BUSY.
//! - A real PostgreSQL database that refuses connections (`ALLOW_CONNECTIONS false`,
//!   its backends terminated), on the database named by `TOLLGATE_TEST_PG_URL`;
//!   without it, that case says it is skipped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{json, Value};
use tollgate::admin::manage::{NewApiToken, NewOrg, NewProject, NewResource, NewUser, Ops};
use tollgate::app::Gate;
use tollgate::resource::{Resource, ResourceType};
use tollgate::store::{
    ApiToken, Changes, Org, Project, RefreshFamily, RefreshToken, Result, Revocation, Rotation,
    Store, StoreError, User,
};

use crate::azure::{aad_key, aad_token, issuer, target, TENANT};
use crate::common::*;

const BV: &str = "/bv/cms/v1/resources/tokens";
const BV_ADMIN: &str = "/bv/cms/v1/resources/tokens:admin";
const SUB: &str = "b04775c3-63fa-40f3-9430-139d2e5522d3";
const GROUP: &str = "Media-RG";
const ALICE: (&str, &str) = ("alice", "alice-secret-1");
/// What a driver might say; no answer may carry it (it is logged, never sent).
const DRIVER_TEXT: &str = "could not connect to server at 10.9.8.7:5432: Connection refused";

/// A test double for a database that cannot be reached: forwards to a real store while
/// up; while down, every call but the `spared` ones fails with `StoreError::Backend`.
struct Unreachable {
    inner: Arc<dyn Store>,
    down: AtomicBool,
    spared: Mutex<Vec<&'static str>>,
    /// The calls refused while down, by name, in order.
    refused: Mutex<Vec<&'static str>>,
}

impl Unreachable {
    fn new(inner: Arc<dyn Store>) -> Self {
        Unreachable {
            inner,
            down: AtomicBool::new(false),
            spared: Mutex::new(Vec::new()),
            refused: Mutex::new(Vec::new()),
        }
    }

    /// Go down, but for the calls named in `spared`.
    fn go_down(&self, spared: &[&'static str]) {
        *self.spared.lock().expect("lock") = spared.to_vec();
        self.refused.lock().expect("lock").clear();
        self.down.store(true, Ordering::SeqCst);
    }

    fn come_back(&self) {
        self.down.store(false, Ordering::SeqCst);
    }

    fn refused(&self) -> Vec<&'static str> {
        self.refused.lock().expect("lock").clone()
    }

    fn reach(&self, call: &'static str) -> Result<()> {
        if !self.down.load(Ordering::SeqCst) || self.spared.lock().expect("lock").contains(&call) {
            return Ok(());
        }
        self.refused.lock().expect("lock").push(call);
        Err(StoreError::Backend(DRIVER_TEXT.into()))
    }
}

/// Each call: reach the database, then forward.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
            self.reach(stringify!($name))?;
            self.inner.$name($($arg),*)
        })*
    };
}

impl Store for Unreachable {
    forward! {
        version() -> u64;
        put_org(org: &Org) -> ();
        orgs() -> Vec<Org>;
        org(id: &str) -> Option<Org>;
        delete_org(id: &str) -> ();
        put_project(project: &Project) -> ();
        projects() -> Vec<Project>;
        delete_project(id: &str) -> ();
        put_resource(resource: &Resource) -> ();
        resource(id: &str, resource_type: ResourceType) -> Option<Resource>;
        resources() -> Vec<Resource>;
        delete_resource(id: &str, resource_type: ResourceType) -> ();
        put_user(user: &User) -> ();
        user_by_name(username: &str) -> Option<User>;
        user(id: &str) -> Option<User>;
        users() -> Vec<User>;
        delete_user(id: &str) -> ();
        put_api_token(token: &ApiToken) -> ();
        api_token_by_hash(hash: &str) -> Option<ApiToken>;
        api_tokens() -> Vec<ApiToken>;
        delete_api_token(id: &str) -> ();
        insert_refresh(token: &RefreshToken) -> ();
        refresh_token(hash: &str) -> Option<(RefreshToken, bool)>;
        rotate_refresh(
            hash: &str,
            new_hash: &str,
            new_org: &str,
            new_expires_at: u64,
            now: u64,
            reuse_interval: u64
        ) -> Rotation;
        refresh_families() -> Vec<RefreshFamily>;
        import_refresh_family(family: &RefreshFamily) -> ();
        revoke(revocation: &Revocation) -> ();
        revocations() -> Vec<Revocation>;
        changes_since(after: u64) -> Changes;
        prune_revocations(now: u64, limit: usize) -> usize;
    }
}

/// Org `acme` with project `p9` and vod `v1`, user alice (acme), and an API token for
/// acme, written straight into `store`; returns the API token.
fn seed(store: Arc<dyn Store>) -> String {
    // The seed revokes nothing, so how long a revocation is kept does not matter here.
    let retention = tollgate::token::JtiRetention {
        longest_lifetime: None,
        leeway: std::time::Duration::ZERO,
    };
    let ops = Ops::new(store, retention);
    ops.add_org(NewOrg {
        id: "acme".into(),
        name: Some("Acme".into()),
        azure_subscription: None,
        azure_resource_group: None,
    })
    .expect("org");
    ops.add_project(NewProject {
        id: "p9".into(),
        org: "acme".into(),
        name: None,
    })
    .expect("project");
    ops.add_resource(NewResource {
        id: "v1".into(),
        resource_type: "vod".into(),
        org: "acme".into(),
        project: Some("p9".into()),
        privacy: None,
        published: None,
    })
    .expect("resource");
    ops.add_user(NewUser {
        username: ALICE.0.into(),
        password: ALICE.1.into(),
        orgs: vec!["acme".into()],
    })
    .expect("user");
    let token = ops
        .add_api_token(NewApiToken {
            org: "acme".into(),
            label: None,
        })
        .expect("api token");
    token["token"].as_str().expect("the new token").to_string()
}

/// A gate whose store is [`Unreachable`] in front of its own SQLite file (seeded, up),
/// with one Azure AD tenant whose RS256 key signs `aad` tokens for account acme.
struct World {
    tg: TestGate,
    store: Arc<Unreachable>,
    api_key: String,
    admin_token: String,
    aad_private: String,
    _origin: TestOrigin,
    _jwks: tempfile::TempDir,
}

async fn world() -> World {
    let origin = TestOrigin::start().await;
    let (aad_private, jwks) = aad_key("aad-1");
    let jwks_dir = tempfile::tempdir().expect("dir");
    let jwks_path = jwks_dir.path().join("aad.json");
    std::fs::write(&jwks_path, jwks.to_string()).expect("jwks");
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.extra.push_str(&format!(
        "\n[[azure.tenants]]\ntenant_id = \"{TENANT}\"\nissuer = \"{}\"\njwks = \"{}\"\naccounts = [\"acme\"]\n",
        issuer(),
        jwks_path.display()
    ));
    let TestGate {
        gate,
        dir,
        config,
        keys,
        ca,
    } = start(setup).await;
    drop(gate);
    let location = config.store.location.clone();
    let (real, api_key) = tokio::task::spawn_blocking(move || {
        let real = tollgate::store::open(&location).expect("the gate's SQLite store");
        let key = seed(real.clone());
        (real, key)
    })
    .await
    .expect("seed");
    let store = Arc::new(Unreachable::new(real));
    let gate = Gate::start_with_store(&config, store.clone())
        .await
        .expect("the gate starts on the double");
    let admin_token = std::fs::read_to_string(dir.path().join("admin-token"))
        .expect("admin token")
        .trim()
        .to_string();
    World {
        tg: TestGate {
            gate,
            dir,
            config,
            keys,
            ca,
        },
        store,
        api_key,
        admin_token,
        aad_private,
        _origin: origin,
        _jwks: jwks_dir,
    }
}

/// POST a JSON `body` to the admin listener with `Authorization: Bearer <bearer>`.
async fn post(
    addr: std::net::SocketAddr,
    path: &str,
    bearer: &str,
    extra: &[(&str, &str)],
    body: &Value,
) -> Got {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
    ];
    headers.extend_from_slice(extra);
    send(
        addr,
        Method::POST,
        path,
        &headers,
        body.to_string().as_bytes(),
    )
    .await
}

impl World {
    async fn bv(&self, path: &str, body: Value) -> Got {
        let org = [("x-bv-org-id", "acme")];
        post(self.tg.admin(), path, &self.api_key, &org, &body).await
    }

    async fn azure(&self, bearer: &str, body: Value) -> Got {
        let path = target(SUB, GROUP, "acme");
        post(self.tg.admin(), &path, bearer, &[], &body).await
    }

    fn aad(&self) -> String {
        aad_token(&self.aad_private, "aad-1", TENANT, |_| {})
    }

    async fn login(&self) -> Got {
        let body = json!({ "username": ALICE.0, "password": ALICE.1 });
        send(
            self.tg.admin(),
            Method::POST,
            "/v1/vms/auth/login",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> Got {
        let body = json!({ "refreshToken": refresh_token });
        send(
            self.tg.admin(),
            Method::POST,
            "/v1/vms/auth/refresh/acme",
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
        .await
    }

    async fn video_managers(&self, access_token: &str) -> Got {
        let auth = format!("Bearer {access_token}");
        let headers = [("authorization", auth.as_str())];
        get(self.tg.admin(), "/v1/vms/video-managers", &headers).await
    }
}

fn json_of(got: &Got) -> Value {
    serde_json::from_slice(&got.body).unwrap_or_else(|e| panic!("JSON expected ({e}): {got:?}"))
}

/// A 503 with `Retry-After: 5` and a JSON body that says nothing of the driver's error;
/// returns the body.
fn unavailable(got: &Got, what: &str) -> Value {
    assert_eq!(got.status, 503, "{what}: {got:?}");
    let header = |name: &str| got.headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(header("retry-after"), Some("5"), "{what}: {got:?}");
    assert_eq!(header("content-type"), Some("application/json"), "{what}");
    let text = String::from_utf8_lossy(&got.body);
    assert!(
        !text.contains("10.9.8.7"),
        "{what}: the driver's text leaked: {text}"
    );
    json_of(got)
}

/// BlendVision's google.rpc.Status for UNAVAILABLE.
fn bv_unavailable(got: &Got, what: &str) {
    let v = unavailable(got, what);
    assert_eq!(v["code"], 14, "{what}: {v}");
    assert_eq!(v["details"], json!([]), "{what}: {v}");
    assert!(
        v["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {v}"
    );
}

/// ARM's `ErrorResponse` with `ServiceUnavailable`.
fn arm_unavailable(got: &Got, what: &str) {
    let v = unavailable(got, what);
    assert_eq!(v["error"]["code"], "ServiceUnavailable", "{what}: {v}");
    assert!(v["error"]["message"].is_string(), "{what}: {v}");
    assert_eq!(v["error"]["details"], json!([]), "{what}: {v}");
}

/// movingimage's `{"code":503,"message"}`.
fn mi_unavailable(got: &Got, what: &str) {
    let v = unavailable(got, what);
    assert_eq!(v["code"], 503, "{what}: {v}");
    assert!(v["message"].is_string(), "{what}: {v}");
}

fn bv_body() -> Value {
    json!({ "resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD", "customer_id": "c1" })
}

/// `tokens:admin` takes no customer fields.
fn bv_admin_body() -> Value {
    json!({ "resource_id": "v1", "resource_type": "RESOURCE_TYPE_VOD" })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_blendvision_tokens_and_admin_tokens_answer_503_unavailable_while_the_store_is_down() {
    let w = world().await;
    assert_eq!(w.bv(BV, bv_body()).await.status, 200, "issues while up");

    // The API token cannot be looked up: not 401, UNAVAILABLE.
    w.store.go_down(&[]);
    bv_unavailable(&w.bv(BV, bv_body()).await, "tokens, authentication");
    bv_unavailable(
        &w.bv(BV_ADMIN, bv_admin_body()).await,
        "tokens:admin, authentication",
    );
    assert!(w.store.refused().contains(&"api_token_by_hash"));
    // Authenticated, but the resource cannot be looked up: not 404, UNAVAILABLE.
    w.store.go_down(&["api_token_by_hash"]);
    bv_unavailable(&w.bv(BV, bv_body()).await, "tokens, the resource");
    bv_unavailable(
        &w.bv(BV_ADMIN, bv_admin_body()).await,
        "tokens:admin, the resource",
    );
    assert!(w.store.refused().contains(&"resource"));

    w.store.come_back();
    let got = w.bv(BV_ADMIN, bv_admin_body()).await;
    assert_eq!(
        got.status, 200,
        "issues again once the store is back: {got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_azure_access_token_answers_503_service_unavailable_while_the_store_is_down() {
    let w = world().await;
    let account = json!({ "scope": "Account" });
    let video = json!({ "scope": "Video", "videoId": "v1" });
    assert_eq!(w.azure(&w.api_key, account.clone()).await.status, 200);
    assert_eq!(w.azure(&w.aad(), account.clone()).await.status, 200);

    w.store.go_down(&[]);
    // API token: its lookup fails.
    arm_unavailable(&w.azure(&w.api_key, account.clone()).await, "API token");
    // Azure AD: authenticated without the store, then the account's placement.
    arm_unavailable(&w.azure(&w.aad(), account.clone()).await, "Azure AD");
    assert!(w.store.refused().contains(&"org"));
    // Both authenticated and placed; the issuer's resource lookup fails.
    w.store.go_down(&["api_token_by_hash", "org"]);
    arm_unavailable(
        &w.azure(&w.api_key, video.clone()).await,
        "API token, video",
    );
    arm_unavailable(&w.azure(&w.aad(), video.clone()).await, "Azure AD, video");
    assert!(w.store.refused().contains(&"resource"));

    w.store.come_back();
    assert_eq!(w.azure(&w.aad(), video).await.status, 200, "back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_movingimage_login_refresh_and_video_managers_answer_503_while_the_store_is_down() {
    let w = world().await;
    let got = w.login().await;
    assert_eq!(got.status, 200, "{got:?}");
    let tokens = json_of(&got);
    let refresh = tokens["refreshToken"]
        .as_str()
        .expect("refresh")
        .to_string();
    let access = tokens["accessToken"].as_str().expect("access").to_string();

    w.store.go_down(&[]);
    mi_unavailable(&w.login().await, "login: the user lookup");
    mi_unavailable(&w.refresh(&refresh).await, "refresh: the token lookup");
    mi_unavailable(&w.video_managers(&access).await, "video managers");
    // Each later step of a login and a refresh failing on its own.
    w.store.go_down(&["user_by_name"]);
    mi_unavailable(&w.login().await, "login: starting the family");
    assert!(w.store.refused().contains(&"insert_refresh"));
    w.store.go_down(&["refresh_token", "user"]);
    mi_unavailable(&w.refresh(&refresh).await, "refresh: the rotation");
    assert!(w.store.refused().contains(&"rotate_refresh"));
    w.store
        .go_down(&["refresh_token", "user", "rotate_refresh", "org"]);
    mi_unavailable(&w.refresh(&refresh).await, "refresh: the VideoManager list");
    assert!(w.store.refused().contains(&"orgs"));

    w.store.come_back();
    let got = w.refresh(&refresh).await;
    // The rotation that completed just before the list failed is within the reuse
    // interval: the client's retry with the same token is served.
    assert_eq!(got.status, 200, "refresh works again: {got:?}");
    assert_eq!(w.video_managers(&access).await.status, 200);
    assert_eq!(w.login().await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_management_calls_answer_503_with_retry_after_while_the_store_is_down() {
    let w = world().await;
    let admin = w.tg.admin();
    let auth = format!("Bearer {}", w.admin_token);
    let headers = [("authorization", auth.as_str())];
    let revocation = json!({ "kind": "subject", "value": "viewer-9" });

    w.store.go_down(&[]);
    let v = unavailable(&get(admin, "/v1/orgs", &headers).await, "list");
    assert!(v["error"].is_string(), "{v}");
    let got = post(admin, "/v1/revocations", &w.admin_token, &[], &revocation).await;
    assert!(unavailable(&got, "revoke")["error"].is_string());
    let got = send(admin, Method::DELETE, "/v1/orgs/acme", &headers, b"").await;
    assert!(unavailable(&got, "delete")["error"].is_string());

    w.store.come_back();
    assert_eq!(get(admin, "/v1/orgs", &headers).await.status, 200);
    let got = post(admin, "/v1/revocations", &w.admin_token, &[], &revocation).await;
    assert_eq!(got.status, 201, "{got:?}");
}

/// A reload reads the store (stored resources and revocations go into the new edge):
/// while it cannot be reached, `POST /v1/reload` answers 503 with `Retry-After` and
/// keeps the running configuration — not the 422 of a broken file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_reload_answers_503_while_the_store_is_down_and_keeps_the_running_configuration() {
    let w = world().await;
    let admin = w.tg.admin();
    let empty = json!({});
    let reload = || post(admin, "/v1/reload", &w.admin_token, &[], &empty);
    let generation = |got: &Got| json_of(got)["report"]["generation"].as_u64();
    let got = reload().await;
    assert_eq!(
        (got.status.as_u16(), generation(&got)),
        (200, Some(1)),
        "{got:?}"
    );

    w.store.go_down(&[]);
    let v = unavailable(&reload().await, "reload");
    assert_eq!(v["result"], "error", "{v}");
    assert_eq!(v["kept"], "the running configuration", "{v}");

    w.store.come_back();
    let got = reload().await;
    assert_eq!(
        (got.status.as_u16(), generation(&got)),
        (200, Some(2)),
        "{got:?}"
    );
}

/// Already-issued tokens keep playing while the store is down, and no media request
/// calls the store at all: the only calls refused are the refresher's catch-ups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_media_with_tokens_issued_before_the_outage_plays_without_calling_the_store() {
    let w = world().await;
    let got = w.bv(BV, bv_body()).await;
    let issued = json_of(&got)["token"].as_str().expect("token").to_string();
    let targets = [
        format!("/vod/v1/seg-1.ts?token={issued}"),
        format!("/vod/a/seg-1.ts?token={}", w.tg.token_for("a")),
    ];
    w.store.go_down(&[]);
    for round in 0..10 {
        for t in &targets {
            let got = get(w.tg.plain(), t, &[]).await;
            assert_eq!(got.status, 200, "round {round}, {t}: {got:?}");
        }
    }
    let refused = w.store.refused();
    assert!(
        refused.iter().all(|c| *c == "changes_since"),
        "the request path called the store: {refused:?}"
    );
}

/// A real SQLite failure: another connection holds the write lock, so the gate's
/// writes wait out the 5 s busy timeout and fail with SQLITE_BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_a_sqlite_write_lock_held_elsewhere_makes_login_and_revoking_answer_503() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tollgate::store::Location::Sqlite(path) = tg.config.store.location.clone() else {
        panic!("the test gate runs on SQLite");
    };
    let location = tg.config.store.location.clone();
    tokio::task::spawn_blocking(move || seed(tollgate::store::open(&location).expect("store")))
        .await
        .expect("seed");
    let admin_token = std::fs::read_to_string(tg.dir.path().join("admin-token")).expect("token");
    let admin_token = admin_token.trim();
    let login = json!({ "username": ALICE.0, "password": ALICE.1 });
    let revocation = json!({ "kind": "subject", "value": "viewer-9" });
    let json_header = [("content-type", "application/json")];

    let (locked, release) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let mut conn = rusqlite::Connection::open(path).expect("another connection");
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .expect("the write lock");
        locked.send(()).expect("say locked");
        let _ = release_rx.recv_timeout(Duration::from_secs(60));
        tx.rollback().expect("release");
    });
    release
        .recv_timeout(Duration::from_secs(10))
        .expect("locked");

    let started = Instant::now();
    let got = send(
        tg.admin(),
        Method::POST,
        "/v1/vms/auth/login",
        &json_header,
        login.to_string().as_bytes(),
    )
    .await;
    mi_unavailable(&got, "login while the file is locked");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "waited for the busy timeout"
    );
    let got = post(tg.admin(), "/v1/revocations", admin_token, &[], &revocation).await;
    assert!(unavailable(&got, "revoke while locked")["error"].is_string());

    release_tx.send(()).expect("release");
    holder.join().expect("the lock holder");
    let got = send(
        tg.admin(),
        Method::POST,
        "/v1/vms/auth/login",
        &json_header,
        login.to_string().as_bytes(),
    )
    .await;
    assert_eq!(got.status, 200, "logs in once the lock is gone: {got:?}");
    let got = post(tg.admin(), "/v1/revocations", admin_token, &[], &revocation).await;
    assert_eq!(got.status, 201, "{got:?}");
}

/// A real PostgreSQL outage: the gate's database refuses connections and its sessions
/// are terminated; BlendVision issuing answers 503 UNAVAILABLE, and works again once
/// the database accepts connections, with no restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b11_issuing_answers_503_while_postgresql_refuses_connections_and_recovers_after() {
    let test = "b11_issuing_answers_503_while_postgresql_refuses_connections_and_recovers_after";
    let Some(admin) = crate::fleet::test_database(&format!("outage::{test}")) else {
        return;
    };
    let database = crate::fleet::Database::create(&admin, "outage").await;
    let db = database.name().to_owned();
    let dedicated = tollgate::store::postgres::PgOptions {
        pool_size: 2,
        ..database.options()
    };

    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let mut cfg = tg.config.clone();
    cfg.store.location = tollgate::store::Location::Postgres(dedicated);
    let location = cfg.store.location.clone();
    let api_key = tokio::task::spawn_blocking(move || {
        seed(tollgate::store::open(&location).expect("the dedicated database"))
    })
    .await
    .expect("seed");
    let gate = Gate::start(&cfg)
        .await
        .expect("a gate on the dedicated database");
    let admin_addr = gate.admin.expect("admin listener");
    let body = bv_body();
    let bv = || post(admin_addr, BV, &api_key, &[("x-bv-org-id", "acme")], &body);
    assert_eq!(bv().await.status, 200, "issues while the database is up");

    crate::fleet::admin_sql(
        &admin,
        &format!(
            "ALTER DATABASE {db} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = '{db}' AND pid <> pg_backend_pid()"
        ),
    )
    .await;
    let asked = Instant::now();
    bv_unavailable(&bv().await, "PostgreSQL refusing connections");
    let waited = asked.elapsed();
    // A refused connection is answered at once; the pool's 5 s timeouts bound the rest.
    assert!(waited < Duration::from_secs(6), "the 503 took {waited:?}");

    crate::fleet::admin_sql(
        &admin,
        &format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"),
    )
    .await;
    let back = Instant::now();
    let deadline = back + Duration::from_secs(10);
    let mut got = bv().await;
    while got.status != 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        got = bv().await;
    }
    assert_eq!(
        got.status, 200,
        "issues again once the database is back: {got:?}"
    );
    drop(gate);
    drop(tg);
    database.drop_now().await;
}
