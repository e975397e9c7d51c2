//! The admin listener (`127.0.0.1:9090` by default): the three token-issuing dialects,
//! management, JWKS, health and readiness. It never shares a listener with the edge, and
//! the edge never answers these paths (docs/threat-model.md, B7).
//!
//! This file owns routing and caller authentication (API tokens for BlendVision and
//! Azure, Azure AD bearer tokens for Azure through [`oidc`], username/password and
//! refresh tokens for movingimage, the admin token for management) and the glue to the
//! [`issuer::Issuer`]; the dialects own their wire formats. Store calls run on `spawn_blocking`. Request bodies are capped in size and
//! in time (threat model C2). A store that cannot be reached is never read as "no such
//! token, user or resource": every call that needs it answers 503 with `Retry-After`
//! in its dialect's shape (threat model B11).

pub mod dialect;
pub mod issuer;
pub mod keys;
pub mod manage;
pub mod mint;
pub mod oidc;
pub mod purge;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, Body};
use crate::metrics::Metrics;
use crate::ratelimit::{Keyed, LoginLimiter, SubjectKeys};
use crate::store::feed::FeedStatus;
use crate::store::{RefreshToken, Rotation, Store};
use crate::token::{Revocations, Scope, Verifier};
use dialect::{azure, blendvision, movingimage};
use issuer::{Expiry, IssueError, IssueRequest, Issuer, Target};

/// Largest admin request body.
const MAX_BODY: usize = 64 * 1024;

/// `Retry-After` (seconds) on a 503 while the store cannot be reached. Long enough that
/// a fleet of clients does not hammer a database that is restarting or failing over (a
/// pool reconnect or a restart takes seconds), short enough that a player waiting for
/// its token is served soon after the database is back; the store refresher polls far
/// more often, so nothing here needs a longer wait.
pub const RETRY_AFTER_UNAVAILABLE: u64 = 5;

/// Settings the admin listener needs beyond the shared parts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// movingimage access-token lifetime.
    pub access_ttl: Duration,
    /// movingimage refresh-token lifetime.
    pub refresh_ttl: Duration,
    /// How long a refresh token that has just stopped being current may be presented
    /// again (to pick another VideoManager, or to retry); zero: strict reuse detection.
    pub refresh_reuse_interval: Duration,
    /// Time allowed to receive a request body.
    pub body_timeout: Duration,
    /// SHA-256 of the admin token (management API); None disables management over HTTP.
    pub admin_token_sha256: Option<[u8; 32]>,
    /// Login attempts per minute per client address and per account.
    pub login_per_ip: u32,
    pub login_per_account: u32,
    /// Issuing requests per API token.
    pub issue_per_api_token: crate::config::Limit,
    /// Azure AD tenants whose bearer tokens the Azure API accepts.
    pub azure: crate::config::Azure,
    /// How long a `jti` revocation made here is kept ([`manage::jti_retention`]).
    pub jti_retention: crate::token::JtiRetention,
}

/// Admin routes and their state.
pub struct AdminService {
    ready: Arc<AtomicBool>,
    issuer: Arc<Issuer>,
    verifier: Arc<Verifier>,
    revocations: Arc<Revocations>,
    limiter: Arc<LoginLimiter>,
    /// Issuing requests per API token, keyed by a keyed hash of the token's stored hash.
    issue_limiter: Option<Keyed<u64>>,
    api_token_keys: SubjectKeys,
    metrics: Arc<Metrics>,
    reloader: Option<crate::reload::Reloader>,
    /// The shield cache, for purges (None where there is no edge, as in some tests).
    cache: Option<Arc<crate::cache::Cache>>,
    /// This node's contact with the store, for `/readyz` (None in tests without one).
    feed: Option<Arc<FeedStatus>>,
    settings: Settings,
    /// An argon2 hash of a random password: unknown usernames are checked against it so
    /// that they cost the same as known ones (threat model B3, A19).
    dummy_hash: Arc<String>,
    /// Azure AD bearer authentication for the Azure API.
    oidc: oidc::Oidc,
    clock: fn() -> u64,
}

/// The 401 of a management call without the admin token.
fn not_admin() -> Response<Body> {
    let mut r = json(
        StatusCode::UNAUTHORIZED,
        br#"{"error":"the admin token is missing or wrong"}"#.to_vec(),
    );
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

/// A finished response with a JSON body. A 503 says when to try again: the admin
/// listener sends 503 when the store cannot be reached (and for a reload where no
/// reload task runs, which a started gate always has).
fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(body::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(RETRY_AFTER_UNAVAILABLE),
        );
    }
    r
}

fn text(status: StatusCode, s: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(body::full(s));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// SHA-256, lowercase hex: how API tokens and refresh tokens are stored.
pub fn sha256_hex(data: &[u8]) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A random opaque secret: 32 bytes, base64url.
pub fn random_secret() -> Option<String> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The credentials of `Authorization: Bearer <credentials>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Why a request body could not be read.
enum BodyError {
    TooLarge,
    Timeout,
    Broken,
}

async fn read_body<B>(body: B, timeout: Duration) -> Result<Bytes, BodyError>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<body::BoxError>,
{
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(BodyError::TooLarge)
        }
        Ok(Err(_)) => Err(BodyError::Broken),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// Run blocking store work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(f).await.ok()
}

/// Run store calls off the async threads: a storage failure is
/// [`IssueError::Unavailable`] (503 in every dialect), a task that died internal.
async fn stored<T: Send + 'static>(
    f: impl FnOnce() -> crate::store::Result<T> + Send + 'static,
) -> Result<T, IssueError> {
    match blocking(f).await {
        Some(r) => r.map_err(IssueError::from),
        None => Err(IssueError::Internal),
    }
}

impl AdminService {
    pub fn new(
        ready: Arc<AtomicBool>,
        issuer: Arc<Issuer>,
        verifier: Arc<Verifier>,
        revocations: Arc<Revocations>,
        settings: Settings,
        metrics: Arc<Metrics>,
        reloader: Option<crate::reload::Reloader>,
    ) -> Self {
        let limiter = Arc::new(LoginLimiter::new(
            settings.login_per_ip,
            settings.login_per_account,
        ));
        let oidc = oidc::Oidc::new(&settings.azure);
        let dummy_hash = random_secret()
            .and_then(|pw| hash_password(&pw))
            .unwrap_or_default();
        AdminService {
            ready,
            issuer,
            verifier,
            revocations,
            limiter,
            issue_limiter: settings.issue_per_api_token.as_ref().map(Keyed::new),
            api_token_keys: SubjectKeys::new(),
            metrics,
            reloader,
            cache: None,
            feed: None,
            settings,
            dummy_hash: Arc::new(dummy_hash),
            oidc,
            clock: crate::clock::now,
        }
    }

    /// Give purges the shield cache.
    pub fn with_cache(mut self, cache: Arc<crate::cache::Cache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Give `/readyz` this node's view of the store (its second line).
    pub fn with_feed_status(mut self, status: Arc<FeedStatus>) -> Self {
        self.feed = Some(status);
        self
    }

    /// 200 once started, even while the store is away (the edge serves from memory):
    /// `ready`, then the store's line when this service knows it.
    fn readyz(&self) -> Response<Body> {
        match &self.feed {
            Some(status) => text(StatusCode::OK, format!("ready\n{}\n", status.line())),
            None => text(StatusCode::OK, "ready\n"),
        }
    }

    /// The login limiter (pruned on a timer by the caller).
    pub fn limiter(&self) -> &Arc<LoginLimiter> {
        &self.limiter
    }

    /// Forget rate-limit keys whose budgets are full again.
    pub fn prune_limits(&self) {
        self.limiter.prune();
        if let Some(l) = &self.issue_limiter {
            l.prune();
        }
    }

    /// One issuing request with the API token whose stored hash is `hash`: Ok, or the
    /// whole seconds to wait.
    fn issue_allowed(&self, hash: &str) -> Result<(), u64> {
        let Some(l) = &self.issue_limiter else {
            return Ok(());
        };
        l.check(&self.api_token_keys.key(hash)).map_err(|wait| {
            self.metrics
                .rate_limited
                .with_label_values(&["issue"])
                .inc();
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    fn store(&self) -> Arc<dyn Store> {
        self.issuer.store().clone()
    }

    pub async fn handle<B>(&self, req: Request<B>, peer: IpAddr) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send,
        B::Error: Into<body::BoxError>,
    {
        let (head, body) = req.into_parts();
        let path = head.uri.path().to_string();
        let get = head.method == Method::GET || head.method == Method::HEAD;
        let post = head.method == Method::POST;
        match path.as_str() {
            "/healthz" if get => return text(StatusCode::OK, "ok\n"),
            "/readyz" if get && self.ready.load(Ordering::Acquire) => return self.readyz(),
            "/readyz" if get => return text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            "/metrics" if get => {
                let text = self.metrics.render(&self.verifier, &self.revocations);
                let mut r = Response::new(body::full(text));
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
                );
                return r;
            }
            "/v1/reload" if post => return self.reload(&head.headers).await,
            "/v1/cache/purge" if post => {
                if !self.is_admin(&head.headers) {
                    return not_admin();
                }
                return purge::purge(self.cache.as_deref(), self.body(body).await);
            }
            "/.well-known/jwks.json" if get => {
                let jwks = self.verifier.keys().jwks();
                return json(StatusCode::OK, jwks.to_string().into_bytes());
            }
            "/v1/vms/video-managers" if get => return self.mi_video_managers(&head.headers).await,
            _ => {}
        }
        if let Some(m) = azure::match_path(&path) {
            if !post {
                return azure_method_not_allowed(head.method.as_str(), &path);
            }
            let body = self.body(body).await;
            return self.azure(m, head.uri.query(), &head.headers, body).await;
        }
        if path.starts_with(blendvision::PREFIX) {
            return self.blendvision_route(&head, &path, post, body).await;
        }
        if path.starts_with("/v1/") && !path.starts_with("/v1/vms/") {
            let body = if post {
                Some(self.body(body).await)
            } else {
                None
            };
            return manage::handle(self, &head, &path, body).await;
        }
        if !post {
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
        let body = self.body(body).await;
        match path.as_str() {
            "/v1/vms/auth/login" => self.mi_login(body, peer).await,
            p => match p.strip_prefix("/v1/vms/auth/refresh/") {
                Some(vm) if !vm.is_empty() && !vm.contains('/') => {
                    self.mi_refresh(vm.to_string(), body).await
                }
                _ => text(StatusCode::NOT_FOUND, "not found\n"),
            },
        }
    }

    async fn body<B>(&self, body: B) -> Result<Bytes, BodyError>
    where
        B: http_body::Body<Data = Bytes> + Send,
        B::Error: Into<body::BoxError>,
    {
        read_body(body, self.settings.body_timeout).await
    }

    /// The organisation of the API token in `Authorization: Bearer`, if it is one, and
    /// the token's hash (its rate-limit key). A store that cannot be reached is an
    /// error, never "no such token": the caller must learn to retry, not that its
    /// credentials are bad.
    async fn api_token_org(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(String, String)>, IssueError> {
        let Some(token) = bearer(headers) else {
            return Ok(None);
        };
        let hash = sha256_hex(token.as_bytes());
        let store = self.store();
        let h = hash.clone();
        let found = stored(move || store.api_token_by_hash(&h)).await?;
        Ok(found.map(|t| (t.org, hash)))
    }

    /// `POST /v1/reload` (admin token): the same reload as SIGHUP; answers what is now in
    /// force, or — with 422 — why the new configuration was refused and the old one kept,
    /// or — with 503 and `Retry-After` — that the store (which a reload reads) could not
    /// be reached, the old configuration kept.
    async fn reload(&self, headers: &HeaderMap) -> Response<Body> {
        if !self.is_admin(headers) {
            return not_admin();
        }
        let Some(reloader) = &self.reloader else {
            return json(
                StatusCode::SERVICE_UNAVAILABLE,
                br#"{"result":"error","error":"reload is not available"}"#.to_vec(),
            );
        };
        match reloader.reload().await {
            Ok(report) => json(
                StatusCode::OK,
                serde_json::json!({ "result": "ok", "report": report })
                    .to_string()
                    .into_bytes(),
            ),
            Err(e) if e.store_unavailable => {
                // Nothing is wrong with the files: the same reload can succeed later.
                // (The reload task has logged why, once.)
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({ "result": "error", "error": "the store is temporarily unavailable; retry later", "kept": "the running configuration" })
                        .to_string()
                        .into_bytes(),
                )
            }
            Err(e) => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                serde_json::json!({ "result": "error", "error": e.message, "kept": "the running configuration" })
                    .to_string()
                    .into_bytes(),
            ),
        }
    }

    async fn issue(&self, req: IssueRequest) -> Result<issuer::Issued, issuer::IssueError> {
        let issuer = self.issuer.clone();
        let now = (self.clock)();
        blocking(move || issuer.issue(&req, now))
            .await
            .unwrap_or(Err(IssueError::Internal))
    }

    /// Everything under `/bv/` answers in BlendVision's own error shape, as a
    /// gRPC-gateway does: an unknown path is NotFound, a wrong method Unimplemented.
    async fn blendvision_route<B>(
        &self,
        head: &http::request::Parts,
        path: &str,
        post: bool,
        body: B,
    ) -> Response<Body>
    where
        B: http_body::Body<Data = Bytes> + Send,
        B::Error: Into<body::BoxError>,
    {
        let fail = |s: blendvision::Status| json(s.http, s.body());
        let Some(endpoint) = blendvision::endpoint(path) else {
            return fail(blendvision::Status::no_such_path());
        };
        if !post {
            let mut r = fail(blendvision::Status::wrong_method());
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return r;
        }
        let body = self.body(body).await;
        self.blendvision(&head.headers, body, endpoint).await
    }

    async fn blendvision(
        &self,
        headers: &HeaderMap,
        body: Result<Bytes, BodyError>,
        endpoint: blendvision::Endpoint,
    ) -> Response<Body> {
        let admin = endpoint == blendvision::Endpoint::TokensAdmin;
        let fail = |s: blendvision::Status| json(s.http, s.body());
        let org = match self.api_token_org(headers).await {
            Ok(Some((org, hash))) => match self.issue_allowed(&hash) {
                Ok(()) => org,
                Err(secs) => return retry_after(fail(blendvision::Status::exhausted()), secs),
            },
            Ok(None) => return fail(blendvision::Status::unauthenticated()),
            Err(e) => return fail(blendvision::Status::failure(&e)),
        };
        let Some(asked) = headers.get("x-bv-org-id").and_then(|v| v.to_str().ok()) else {
            return fail(blendvision::Status::invalid(
                "the x-bv-org-id header is required",
            ));
        };
        if asked != org {
            return fail(blendvision::Status::permission_denied(
                "the API token is not valid for this organization",
            ));
        }
        let body = match body {
            Ok(b) => b,
            Err(e) => return fail(blendvision::Status::invalid(body_message(&e))),
        };
        let parsed = match blendvision::parse(&body, endpoint) {
            Ok(p) => p,
            Err(s) => return fail(s),
        };
        let req = IssueRequest {
            org,
            target: parsed.target.clone(),
            subject: parsed.customer_id.clone(),
            name: parsed.customer_name.clone(),
            expiry: parsed.expiry,
            admin,
            require_customer: true,
            family: None,
        };
        match self.issue(req).await {
            Ok(issued) => {
                self.metrics
                    .issued
                    .with_label_values(&["blendvision"])
                    .inc();
                json(StatusCode::OK, blendvision::render(&issued))
            }
            Err(e) => fail(blendvision::Status::from_issue(e, &parsed)),
        }
    }

    async fn azure(
        &self,
        matched: Result<azure::PathParams, azure::Error>,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Result<Bytes, BodyError>,
    ) -> Response<Body> {
        // As ARM: who the caller is first, then the request, then what it may do.
        let account = matched.as_ref().ok().map(|p| p.account.as_str());
        let caller = match self.azure_authenticate(headers).await {
            Ok(c) => c,
            Err(AzureRefusal::Error(e)) => return self.azure_fail(e, account),
            Err(AzureRefusal::Throttled(secs)) => {
                let e = azure::Error::too_many();
                return retry_after(self.azure_fail(e, account), secs);
            }
        };
        let params = match matched {
            Ok(p) => p,
            Err(e) => return self.azure_fail(e, None),
        };
        let fail = |e: azure::Error| self.azure_fail(e, Some(&params.account));
        if let Err(e) = azure::check_api_version(query) {
            return fail(e);
        }
        let org = match caller.org_for(&params) {
            Ok(org) => org,
            Err(e) => return fail(e),
        };
        if let Err(e) = self.azure_placement_matches(&org, &params).await {
            return fail(e);
        }
        let body = match body {
            Ok(b) => b,
            Err(e) => return fail(azure::Error::invalid(body_message(&e))),
        };
        let (target, expiry) = match azure::parse(&body) {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        let req = IssueRequest {
            org,
            target,
            subject: None,
            name: None,
            expiry,
            // Restricted viewer tokens name no customer; published state still applies.
            admin: false,
            require_customer: false,
            family: None,
        };
        match self.issue(req).await {
            Ok(issued) => {
                self.metrics.issued.with_label_values(&["azure"]).inc();
                json(StatusCode::OK, azure::render(&issued))
            }
            Err(e) => fail(e.into()),
        }
    }

    /// Who the caller is: an API token's organisation, or an Azure AD principal (a
    /// bearer token that is a JWT, when tenants are configured); its issuing budget is
    /// spent here.
    async fn azure_authenticate(&self, headers: &HeaderMap) -> Result<AzureCaller, AzureRefusal> {
        let Some(token) = bearer(headers) else {
            return Err(azure::Error::unauthenticated().into());
        };
        if self.oidc.enabled() && token.contains('.') {
            let principal = self
                .oidc
                .authenticate(token, (self.clock)())
                .await
                .map_err(|r| r.arm_error())?;
            let key = format!("aad:{}:{}", principal.tenant_id, principal.object_id);
            self.issue_allowed(&key).map_err(AzureRefusal::Throttled)?;
            return Ok(AzureCaller::Aad(principal));
        }
        let (org, hash) = match self.api_token_org(headers).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(azure::Error::unauthenticated().into()),
            Err(e) => return Err(azure::Error::from(e).into()),
        };
        self.issue_allowed(&hash).map_err(AzureRefusal::Throttled)?;
        Ok(AzureCaller::ApiToken(org))
    }

    /// An Azure error answer; a 401 carries ARM's challenge, naming the authority of
    /// the tenant that serves `account` (when the path could be read).
    fn azure_fail(&self, e: azure::Error, account: Option<&str>) -> Response<Body> {
        let mut r = json(e.http, e.body());
        if e.http == StatusCode::UNAUTHORIZED {
            let authority = self.oidc.authority_for(account.unwrap_or(""));
            let challenge = format!(
                "Bearer authorization_uri=\"{authority}\", error=\"invalid_token\", error_description=\"{}\"",
                e.message.replace('"', "'")
            );
            let value = HeaderValue::from_str(&challenge)
                .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
            r.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        r
    }

    /// An account bound to a subscription and resource group is found only under them
    /// (ignoring case, as ARM does); an unbound one under any.
    async fn azure_placement_matches(
        &self,
        org: &str,
        params: &azure::PathParams,
    ) -> Result<(), azure::Error> {
        let store = self.store();
        let id = org.to_string();
        let record = stored(move || store.org(&id)).await?;
        match record.and_then(|o| o.azure) {
            Some(a)
                if !a.subscription.eq_ignore_ascii_case(&params.subscription)
                    || !a
                        .resource_group
                        .eq_ignore_ascii_case(&params.resource_group) =>
            {
                Err(azure::Error::account_not_found(params))
            }
            _ => Ok(()),
        }
    }

    async fn mi_login(&self, body: Result<Bytes, BodyError>, peer: IpAddr) -> Response<Body> {
        let fail = |e: movingimage::Error| json(e.http, e.body());
        let Ok(body) = body else {
            return fail(movingimage::Error::BAD_REQUEST);
        };
        let (username, password) = match movingimage::parse_login(&body) {
            Ok(x) => x,
            Err(e) => return fail(e),
        };
        if let Err(refused) = self.limiter.check(peer, &username) {
            self.metrics
                .rate_limited
                .with_label_values(&[refused.limiter])
                .inc();
            let secs = crate::ratelimit::retry_after_secs(refused.wait);
            return retry_after(fail(movingimage::Error::TOO_MANY), secs);
        }
        let store = self.store();
        let dummy = self.dummy_hash.clone();
        // Look up and verify in one blocking call; an unknown user is verified against
        // the dummy hash so both paths cost one argon2 verification.
        let checked = stored(move || {
            let user = store.user_by_name(&username)?;
            let hash = user
                .as_ref()
                .map(|u| u.password_hash.as_str())
                .unwrap_or(&dummy);
            let ok = verify_password(&password, hash);
            Ok(user.filter(|_| ok))
        })
        .await;
        let user = match checked {
            Ok(Some(u)) => u,
            Ok(None) => return fail(movingimage::Error::BAD_CREDENTIALS),
            Err(e) => return fail(movingimage::Error::failure(&e)),
        };
        let Some(vm) = user.orgs.first().cloned() else {
            return fail(movingimage::Error::FORBIDDEN_VM);
        };
        let now = (self.clock)();
        let (Some(refresh), Some(family)) =
            (random_secret(), crate::token::issue::random_id().ok())
        else {
            return fail(movingimage::Error::INTERNAL);
        };
        let record = RefreshToken {
            hash: sha256_hex(refresh.as_bytes()),
            family: family.clone(),
            user: user.id.clone(),
            org: vm.clone(),
            expires_at: now + self.settings.refresh_ttl.as_secs(),
        };
        let store = self.store();
        if let Err(e) = stored(move || store.insert_refresh(&record)).await {
            return fail(movingimage::Error::failure(&e));
        }
        self.mi_tokens(&user, vm, refresh, family).await
    }

    /// Issue the access token for `vm` and render the login/refresh answer.
    async fn mi_tokens(
        &self,
        user: &crate::store::User,
        vm: String,
        refresh: String,
        family: String,
    ) -> Response<Body> {
        let fail = |e: movingimage::Error| json(e.http, e.body());
        let req = IssueRequest {
            org: vm.clone(),
            target: Target::Account,
            subject: Some(user.id.clone()),
            name: Some(user.username.clone()),
            expiry: Expiry::In(self.settings.access_ttl),
            admin: false,
            require_customer: false,
            family: Some(family),
        };
        let issued = match self.issue(req).await {
            Ok(i) => i,
            Err(e) => return fail(movingimage::Error::failure(&e)),
        };
        self.metrics
            .issued
            .with_label_values(&["movingimage"])
            .inc();
        let list = match self.video_managers(&user.orgs).await {
            Ok(l) => l,
            Err(e) => return fail(movingimage::Error::failure(&e)),
        };
        let tokens = movingimage::Tokens {
            access_token: issued.token,
            refresh_token: refresh,
            video_manager_list: list,
            valid_for_video_manager: vm,
        };
        json(StatusCode::OK, movingimage::render(&tokens))
    }

    async fn video_managers(
        &self,
        ids: &[String],
    ) -> Result<Vec<movingimage::VideoManager>, IssueError> {
        let store = self.store();
        let ids = ids.to_vec();
        let orgs = stored(move || store.orgs()).await?;
        Ok(ids
            .iter()
            .map(|id| movingimage::VideoManager {
                id: id.clone(),
                name: orgs
                    .iter()
                    .find(|o| &o.id == id)
                    .map(|o| o.name.clone())
                    .unwrap_or_else(|| id.clone()),
            })
            .collect())
    }

    /// A refresh, counted by result.
    async fn mi_refresh(&self, vm: String, body: Result<Bytes, BodyError>) -> Response<Body> {
        let r = self.mi_refresh_inner(vm, body).await;
        let result = if r.extensions().get::<ReusedFamily>().is_some() {
            "reused"
        } else if r.status().is_success() {
            "ok"
        } else if r.status() == StatusCode::FORBIDDEN {
            "forbidden"
        } else if r.status().is_server_error() {
            "error"
        } else {
            "invalid"
        };
        self.metrics.refreshes.with_label_values(&[result]).inc();
        r
    }

    async fn mi_refresh_inner(&self, vm: String, body: Result<Bytes, BodyError>) -> Response<Body> {
        let fail = |e: movingimage::Error| json(e.http, e.body());
        let Ok(body) = body else {
            return fail(movingimage::Error::BAD_REQUEST);
        };
        let presented = match movingimage::parse_refresh(&body) {
            Ok(t) => t,
            Err(e) => return fail(e),
        };
        let hash = sha256_hex(presented.as_bytes());
        let store = self.store();
        let h = hash.clone();
        let record = match stored(move || {
            let rec = store.refresh_token(&h)?;
            let user = match &rec {
                Some((r, _)) => store.user(&r.user)?,
                None => None,
            };
            Ok(rec.zip(user))
        })
        .await
        {
            Ok(Some(x)) => x,
            Ok(None) => return fail(movingimage::Error::BAD_REFRESH),
            Err(e) => return fail(movingimage::Error::failure(&e)),
        };
        let ((_, current), user) = record;
        let allowed = user.orgs.contains(&vm);
        // Checked before rotating, so a refused VideoManager does not spend a current
        // token. A spent one asking for a VideoManager its user may not use is not a
        // client picking among the list it was given: it goes on to `rotate_refresh`
        // with no reuse interval, so that it revokes its family (threat model B2) and
        // looks like any bad token.
        if current && !allowed {
            return fail(movingimage::Error::FORBIDDEN_VM);
        }
        let reuse_interval = if allowed {
            self.settings.refresh_reuse_interval.as_secs()
        } else {
            0
        };
        let Some(new) = random_secret() else {
            return fail(movingimage::Error::INTERNAL);
        };
        let now = (self.clock)();
        let new_hash = sha256_hex(new.as_bytes());
        let expires = now + self.settings.refresh_ttl.as_secs();
        let store = self.store();
        let vm2 = vm.clone();
        let rotated = stored(move || {
            store.rotate_refresh(&hash, &new_hash, &vm2, expires, now, reuse_interval)
        })
        .await;
        match rotated {
            Ok(Rotation::Rotated(old) | Rotation::Reissued(old)) => {
                self.mi_tokens(&user, vm, new, old.family).await
            }
            Ok(Rotation::Reused(family)) => {
                // Effective at this node at once; other nodes follow the store.
                self.revocations.revoke_family(&family);
                self.metrics
                    .revocations_made
                    .with_label_values(&["family"])
                    .inc();
                tracing::warn!(family, "refresh token reused: family revoked");
                let mut r = fail(movingimage::Error::BAD_REFRESH);
                r.extensions_mut().insert(ReusedFamily);
                r
            }
            Ok(Rotation::Dead | Rotation::Unknown) => fail(movingimage::Error::BAD_REFRESH),
            Err(e) => fail(movingimage::Error::failure(&e)),
        }
    }

    async fn mi_video_managers(&self, headers: &HeaderMap) -> Response<Body> {
        let fail = |e: movingimage::Error| json(e.http, e.body());
        let Some(token) = bearer(headers) else {
            return fail(movingimage::Error::BAD_ACCESS);
        };
        let now = (self.clock)();
        let grant = match self.verifier.verify(token, now) {
            Ok(g) => g,
            Err(_) => return fail(movingimage::Error::BAD_ACCESS),
        };
        let expired = grant.exp.is_some_and(|e| e < now);
        if expired || grant.scope != Scope::Account || self.revocations.is_revoked(&grant) {
            return fail(movingimage::Error::BAD_ACCESS);
        }
        let Some(uid) = grant.sub.clone() else {
            return fail(movingimage::Error::BAD_ACCESS);
        };
        let store = self.store();
        let user = match stored(move || store.user(&uid)).await {
            Ok(Some(u)) => u,
            Ok(None) => return fail(movingimage::Error::BAD_ACCESS),
            Err(e) => return fail(movingimage::Error::failure(&e)),
        };
        match self.video_managers(&user.orgs).await {
            Ok(list) => json(StatusCode::OK, movingimage::render_list(&list)),
            Err(e) => fail(movingimage::Error::failure(&e)),
        }
    }

    /// Does `headers` carry the admin token? Constant-time on the hash.
    fn is_admin(&self, headers: &HeaderMap) -> bool {
        let (Some(expected), Some(given)) = (self.settings.admin_token_sha256, bearer(headers))
        else {
            return false;
        };
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, given.as_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(d.as_ref(), &expected).is_ok()
    }

    fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// An authenticated Azure caller.
enum AzureCaller {
    /// An API token, of this organisation.
    ApiToken(String),
    Aad(oidc::Principal),
}

impl AzureCaller {
    /// The organisation to issue for under `params`, as the caller's side spells it (ARM
    /// compares account names ignoring case), or ARM's 403.
    fn org_for(&self, params: &azure::PathParams) -> Result<String, azure::Error> {
        match self {
            AzureCaller::ApiToken(org) if org.eq_ignore_ascii_case(&params.account) => {
                Ok(org.clone())
            }
            AzureCaller::ApiToken(_) => Err(azure::Error::forbidden(
                "The client does not have authorization over this account.",
            )),
            AzureCaller::Aad(p) => p
                .account(&params.account)
                .map(str::to_string)
                .ok_or_else(|| azure::Error::not_authorized(&p.object_id, params)),
        }
    }
}

/// Why an Azure caller was refused: an ARM error, or the issuing budget (seconds to wait).
enum AzureRefusal {
    Error(azure::Error),
    Throttled(u64),
}

impl From<azure::Error> for AzureRefusal {
    fn from(e: azure::Error) -> Self {
        AzureRefusal::Error(e)
    }
}

/// Marks a refresh answer as a detected reuse (for the refresh metric).
#[derive(Clone, Copy)]
struct ReusedFamily;

/// The Azure route with another method than POST: ARM's 405 `ErrorResponse`.
fn azure_method_not_allowed(method: &str, path: &str) -> Response<Body> {
    let e = azure::Error::method_not_allowed(method, path);
    let mut r = json(e.http, e.body());
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

/// Add `Retry-After: secs` (at least 1) to a 429.
fn retry_after(mut r: Response<Body>, secs: u64) -> Response<Body> {
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    r
}

fn body_message(e: &BodyError) -> &'static str {
    match e {
        BodyError::TooLarge => "the request body is too large",
        BodyError::Timeout => "the request body did not arrive in time",
        BodyError::Broken => "the request body could not be read",
    }
}

/// An argon2id PHC string for `password`.
pub fn hash_password(password: &str) -> Option<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).ok()?;
    let salt = SaltString::encode_b64(&salt).ok()?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .ok()
        .map(|h| h.to_string())
}

/// Check `password` against a PHC string (constant-time inside argon2).
pub fn verify_password(password: &str, hash: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}
