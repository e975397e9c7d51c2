//! Management over HTTP, under `/v1/` on the admin listener, for the admin token
//! (`Authorization: Bearer <admin token>`): organisations, projects, resources, users,
//! API tokens and revocations. The same operations are CLI subcommands
//! (`tollgate org|project|resource|user|api-token|revoke`), both through [`Ops`], so an
//! operator never needs SQL. Errors are `{"error": "..."}` with 400/401/404/409/500, and
//! 503 with `Retry-After` while the store cannot be reached.
//!
//! Revoking a `jti` records until when the revocation matters ([`JtiRetention`]), and
//! each revoke then deletes up to [`PRUNE_PER_REVOKE`] expired revocations from the
//! store: the table stays bounded without a timer on any node (a fleet's edges never
//! write), and a gate that revokes nothing has nothing to prune.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;

use super::{blocking, json, AdminService, BodyError};
use crate::body::Body;
use crate::resource::{parse_privacy, Resource, ResourceType};
use crate::store::{
    ApiToken, AzurePlacement, Org, Project, Revocation, RevocationKind, Store, StoreError, User,
};
use crate::token::claims::MAX_TIME;
use crate::token::JtiRetention;

/// Expired revocations deleted from the store after each revoke, at most: one short
/// transaction, and far more than the one row the revoke added, so a backlog (a burst
/// of revocations expiring together) is cleared by the revokes that follow it.
pub const PRUNE_PER_REVOKE: usize = 1_000;

/// Management operations on a store, shared by the HTTP API and the CLI.
pub struct Ops {
    pub store: Arc<dyn Store>,
    /// How long a `jti` revocation is kept.
    pub retention: JtiRetention,
    /// The wall clock (tests inject one).
    pub clock: fn() -> u64,
}

/// How long this configuration's `jti` revocations are kept: `token.max_lifetime` is
/// the longest lifetime any token of the gate may have (the admin APIs refuse longer
/// ones, and `token mint` too), `token.leeway` how long past `exp` the edge accepts.
/// With foreign formats configured, a `jti` may name a session of another issuer's
/// tokens (EdgeAuth `id`), whose lifetimes this gate does not cap: a revocation without
/// `exp` is then kept for ever.
pub fn jti_retention(cfg: &crate::config::Config) -> JtiRetention {
    let capped = cfg.formats.is_empty();
    JtiRetention {
        longest_lifetime: cfg.token.max_lifetime.filter(|_| capped),
        leeway: cfg.token.leeway,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrg {
    pub id: String,
    pub name: Option<String>,
    /// Bind the Azure account to this subscription and resource group (both or neither;
    /// see [`crate::store::Org::azure`]).
    pub azure_subscription: Option<String>,
    pub azure_resource_group: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProject {
    pub id: String,
    pub org: String,
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewResource {
    pub id: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub org: String,
    pub project: Option<String>,
    /// `token` (default) or `public`.
    pub privacy: Option<String>,
    /// Default true.
    pub published: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    #[serde(default)]
    pub orgs: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    pub org: String,
    pub label: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRevocation {
    /// `jti`, `subject`, `org` or `family`.
    pub kind: String,
    pub value: String,
    /// `jti` only: the token's end (Unix seconds), its `exp`, or its `sxp` when it has
    /// one (renewed copies of a live token share its `jti` and live until `sxp`).
    #[serde(default)]
    pub exp: Option<u64>,
}

/// Why a management operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Both or neither, each non-empty.
fn azure_placement(
    subscription: Option<String>,
    resource_group: Option<String>,
) -> Result<Option<AzurePlacement>, OpError> {
    match (subscription, resource_group) {
        (None, None) => Ok(None),
        (Some(s), Some(rg)) if !s.is_empty() && !rg.is_empty() => Ok(Some(AzurePlacement {
            subscription: s,
            resource_group: rg,
        })),
        _ => Err(OpError::Invalid(
            "azure_subscription and azure_resource_group go together, both non-empty".into(),
        )),
    }
}

fn org_json(o: &Org) -> serde_json::Value {
    let mut v = serde_json::json!({ "id": o.id, "name": o.name });
    if let Some(a) = &o.azure {
        v["azure_subscription"] = a.subscription.clone().into();
        v["azure_resource_group"] = a.resource_group.clone().into();
    }
    v
}

impl Ops {
    /// Operations on `store` with the wall clock.
    pub fn new(store: Arc<dyn Store>, retention: JtiRetention) -> Self {
        Ops {
            store,
            retention,
            clock: crate::clock::now,
        }
    }

    pub fn add_org(&self, o: NewOrg) -> Result<serde_json::Value, OpError> {
        let azure = azure_placement(o.azure_subscription, o.azure_resource_group)?;
        let org = Org {
            name: o.name.unwrap_or_else(|| o.id.clone()),
            id: o.id,
            azure,
        };
        if org.id.is_empty() {
            return Err(OpError::Invalid("id must not be empty".into()));
        }
        self.store.put_org(&org)?;
        Ok(org_json(&org))
    }

    pub fn add_project(&self, p: NewProject) -> Result<serde_json::Value, OpError> {
        let project = Project {
            name: p.name.unwrap_or_else(|| p.id.clone()),
            id: p.id,
            org: p.org,
        };
        self.store.put_project(&project)?;
        Ok(serde_json::json!({ "id": project.id, "org": project.org, "name": project.name }))
    }

    pub fn add_resource(&self, r: NewResource) -> Result<serde_json::Value, OpError> {
        let rty = ResourceType::parse(&r.resource_type)
            .ok_or_else(|| OpError::Invalid(format!("unknown type {:?}", r.resource_type)))?;
        let privacy = r.privacy.as_deref().unwrap_or("token");
        let public = parse_privacy(privacy)
            .ok_or_else(|| OpError::Invalid(format!("privacy {privacy:?}: token or public")))?;
        if r.id.is_empty() || r.id.contains('/') {
            return Err(OpError::Invalid("id must be one path segment".into()));
        }
        let res = Resource {
            id: r.id,
            resource_type: rty,
            org: r.org,
            project: r.project,
            public,
            published: r.published.unwrap_or(true),
        };
        self.store.put_resource(&res)?;
        Ok(resource_json(&res))
    }

    pub fn add_user(&self, u: NewUser) -> Result<serde_json::Value, OpError> {
        if u.username.is_empty() || u.password.len() < 8 {
            return Err(OpError::Invalid(
                "a username and a password of at least 8 characters are required".into(),
            ));
        }
        let hash = super::hash_password(&u.password)
            .ok_or_else(|| OpError::Invalid("could not hash the password".into()))?;
        let id = crate::token::issue::random_id()
            .map_err(|_| OpError::Invalid("no randomness".into()))?;
        let user = User {
            id,
            username: u.username,
            password_hash: hash,
            orgs: u.orgs,
        };
        self.store.put_user(&user)?;
        Ok(serde_json::json!({ "id": user.id, "username": user.username, "orgs": user.orgs }))
    }

    /// Returns the new token once; only its hash is kept.
    pub fn add_api_token(&self, t: NewApiToken) -> Result<serde_json::Value, OpError> {
        let token =
            super::random_secret().ok_or_else(|| OpError::Invalid("no randomness".into()))?;
        let id = crate::token::issue::random_id()
            .map_err(|_| OpError::Invalid("no randomness".into()))?;
        let rec = ApiToken {
            id,
            org: t.org,
            label: t.label.unwrap_or_default(),
            hash: super::sha256_hex(token.as_bytes()),
        };
        self.store.put_api_token(&rec)?;
        Ok(serde_json::json!({ "id": rec.id, "org": rec.org, "label": rec.label, "token": token }))
    }

    pub fn revoke(&self, r: NewRevocation) -> Result<serde_json::Value, OpError> {
        let kind = RevocationKind::parse(&r.kind).ok_or_else(|| {
            OpError::Invalid(format!("kind {:?}: jti, subject, org or family", r.kind))
        })?;
        if r.value.is_empty() {
            return Err(OpError::Invalid("value must not be empty".into()));
        }
        let now = (self.clock)();
        let rev = Revocation {
            kind,
            expires: self.revocation_expiry(kind, r.exp, now)?,
            value: r.value,
            at: now,
        };
        self.store.revoke(&rev)?;
        self.prune_revocations(now);
        Ok(revocation_json(&rev))
    }

    /// Until when a new revocation of `kind` matters (see [`JtiRetention`]). An `exp`
    /// on another kind is refused (they also stop tokens issued later, so they never
    /// expire), and so is one already past with its leeway: that token is refused
    /// everywhere as expired, so the revocation would protect nothing, and the likelier
    /// mistake is a wrong time (the `exp` of a live token whose `sxp` is later).
    fn revocation_expiry(
        &self,
        kind: RevocationKind,
        exp: Option<u64>,
        now: u64,
    ) -> Result<Option<u64>, OpError> {
        match (kind, exp) {
            (RevocationKind::Jti, _) => {}
            (_, None) => return Ok(None),
            (_, Some(_)) => {
                return Err(OpError::Invalid(format!(
                    "exp applies to jti revocations only; a {} revocation is kept for ever",
                    kind.as_str()
                )))
            }
        }
        if exp.is_some_and(|e| e > MAX_TIME) {
            return Err(OpError::Invalid(
                "exp is beyond 9999-12-31T23:59:59Z (Unix seconds expected)".into(),
            ));
        }
        let until = self.retention.until(now, exp);
        if until.is_some_and(|u| u < now) {
            return Err(OpError::Invalid(
                "exp has passed (with token.leeway): that token is already refused as expired; \
                 give sxp instead for a live token"
                    .into(),
            ));
        }
        Ok(until)
    }

    /// Delete a batch of expired revocations. The revocation just made is recorded
    /// whatever happens here, so a failure is logged, not reported to the caller.
    fn prune_revocations(&self, now: u64) {
        match self.store.prune_revocations(now, PRUNE_PER_REVOKE) {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "expired revocations deleted from the store"),
            Err(e) => tracing::warn!(error = %e, "pruning expired revocations failed"),
        }
    }

    pub fn list(&self, what: &str) -> Result<serde_json::Value, OpError> {
        Ok(match what {
            "orgs" => self.store.orgs()?.iter().map(org_json).collect(),
            "projects" => self
                .store
                .projects()?
                .iter()
                .map(|p| serde_json::json!({ "id": p.id, "org": p.org, "name": p.name }))
                .collect(),
            "resources" => self.store.resources()?.iter().map(resource_json).collect(),
            "users" => self
                .store
                .users()?
                .iter()
                .map(|u| serde_json::json!({ "id": u.id, "username": u.username, "orgs": u.orgs }))
                .collect(),
            "api-tokens" => self
                .store
                .api_tokens()?
                .iter()
                .map(|t| serde_json::json!({ "id": t.id, "org": t.org, "label": t.label }))
                .collect(),
            "revocations" => self
                .store
                .revocations()?
                .iter()
                .map(revocation_json)
                .collect(),
            other => return Err(OpError::Invalid(format!("nothing called {other:?}"))),
        })
    }

    pub fn delete(&self, what: &str, id: &str) -> Result<serde_json::Value, OpError> {
        match what {
            "orgs" => self.store.delete_org(id)?,
            "projects" => self.store.delete_project(id)?,
            "users" => self.store.delete_user(id)?,
            "api-tokens" => self.store.delete_api_token(id)?,
            "resources" => {
                let (t, rid) = id
                    .split_once('/')
                    .ok_or_else(|| OpError::Invalid("resources are deleted as TYPE/ID".into()))?;
                let rty = ResourceType::parse(t)
                    .ok_or_else(|| OpError::Invalid(format!("unknown type {t:?}")))?;
                self.store.delete_resource(rid, rty)?
            }
            other => return Err(OpError::Invalid(format!("nothing called {other:?}"))),
        }
        Ok(serde_json::json!({ "deleted": id }))
    }
}

/// A revocation as the API shows it; `expires` is null when it is kept for ever.
fn revocation_json(r: &Revocation) -> serde_json::Value {
    serde_json::json!({
        "kind": r.kind.as_str(), "value": r.value, "at": r.at, "expires": r.expires,
    })
}

fn resource_json(r: &Resource) -> serde_json::Value {
    serde_json::json!({
        "id": r.id, "type": r.resource_type.as_str(), "org": r.org, "project": r.project,
        "privacy": if r.public { "public" } else { "token" }, "published": r.published,
    })
}

fn error(status: StatusCode, msg: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({ "error": msg }).to_string().into_bytes(),
    )
}

fn op_response(r: Option<Result<serde_json::Value, OpError>>, created: bool) -> Response<Body> {
    match r {
        Some(Ok(v)) => json(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            v.to_string().into_bytes(),
        ),
        Some(Err(OpError::Invalid(m))) => error(StatusCode::BAD_REQUEST, &m),
        Some(Err(OpError::Store(StoreError::Invalid(m)))) => error(StatusCode::BAD_REQUEST, &m),
        Some(Err(OpError::Store(StoreError::NotFound(m)))) => error(StatusCode::NOT_FOUND, &m),
        Some(Err(OpError::Store(StoreError::Conflict(m)))) => error(StatusCode::CONFLICT, &m),
        Some(Err(OpError::Store(StoreError::Backend(what)))) => {
            // A storage failure, logged once; the client is told to retry, never why.
            tracing::warn!(error = %what, "store unreachable: answering 503");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is temporarily unavailable; retry later",
            )
        }
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, OpError> {
    serde_json::from_slice(body).map_err(|e| OpError::Invalid(format!("invalid body: {e}")))
}

/// Route a `/v1/...` management request.
pub(super) async fn handle(
    svc: &AdminService,
    head: &http::request::Parts,
    path: &str,
    body: Option<Result<Bytes, BodyError>>,
) -> Response<Body> {
    if !svc.is_admin(&head.headers) {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "the admin token is missing or wrong",
        );
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer"),
        );
        return r;
    }
    let rest = path.trim_start_matches("/v1/");
    let (what, id) = match rest.split_once('/') {
        Some((w, id)) => (w.to_string(), Some(id.to_string())),
        None => (rest.to_string(), None),
    };
    let ops = Ops {
        store: svc.store(),
        retention: svc.settings.jti_retention,
        clock: svc.clock,
    };
    match (&head.method, id) {
        (&Method::GET, None) => op_response(blocking(move || ops.list(&what)).await, false),
        (&Method::DELETE, Some(id)) => {
            op_response(blocking(move || ops.delete(&what, &id)).await, false)
        }
        (&Method::POST, None) => {
            let body = match body {
                Some(Ok(b)) => b,
                Some(Err(e)) => return error(StatusCode::BAD_REQUEST, super::body_message(&e)),
                None => Bytes::new(),
            };
            let revs = what == "revocations";
            let result = blocking(move || match what.as_str() {
                "orgs" => ops.add_org(parse(&body)?),
                "projects" => ops.add_project(parse(&body)?),
                "resources" => ops.add_resource(parse(&body)?),
                "users" => ops.add_user(parse(&body)?),
                "api-tokens" => ops.add_api_token(parse(&body)?),
                "revocations" => ops.revoke(parse(&body)?),
                other => Err(OpError::Invalid(format!("nothing called {other:?}"))),
            })
            .await;
            if revs {
                // Apply at this node at once; the store refresher brings it everywhere.
                if let Some(Ok(v)) = &result {
                    apply_revocation(svc.revocations(), v);
                    if let Some(kind) = v["kind"].as_str().and_then(RevocationKind::parse) {
                        svc.metrics()
                            .revocations_made
                            .with_label_values(&[kind.as_str()])
                            .inc();
                    }
                }
            }
            op_response(result, true)
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// Apply a revocation just recorded (its JSON answer) at this node at once.
fn apply_revocation(revs: &crate::token::Revocations, v: &serde_json::Value) {
    if let (Some(kind), Some(value)) = (v["kind"].as_str(), v["value"].as_str()) {
        revs.revoke(kind, value, v["expires"].as_u64());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::sqlite::SqliteStore;

    const NOW: u64 = 1_900_000_000;

    fn at_now() -> u64 {
        NOW
    }

    /// The example config with `token.max_lifetime = "1h"`, the vod route's `formats`
    /// line, and `extra` appended.
    fn config(formats: &str, extra: &str) -> crate::config::Config {
        let text = include_str!("../../config/tollgate.toml")
            .replacen("# max_lifetime = \"7d\"", "max_lifetime = \"1h\"", 1)
            .replacen(
                "path = \"/vod/{rid}/\"\n",
                &format!("path = \"/vod/{{rid}}/\"\n{formats}\n"),
                1,
            );
        let path = std::path::Path::new("config/tollgate.toml");
        crate::config::Config::parse(&format!("{text}\n{extra}"), path).expect("valid")
    }

    #[test]
    fn jti_revocations_are_kept_for_ever_once_foreign_formats_may_carry_ids() {
        let native = jti_retention(&config("", ""));
        assert_eq!(native.until(NOW, None), Some(NOW + 3600 + 30));
        let foreign = config(
            "formats = [\"native\", \"akamai\"]",
            "[[formats]]\nname = \"akamai\"\nkind = \"edgeauth\"\n\
             key = \"0a1b2c3d4e5f60718293a4b5c6d7e8f9\"\n",
        );
        let retention = jti_retention(&foreign);
        assert_eq!(
            retention.until(NOW, None),
            None,
            "another issuer's lifetimes"
        );
        assert_eq!(retention.until(NOW, Some(NOW + 60)), Some(NOW + 60 + 30));
    }

    fn ops(dir: &tempfile::TempDir, longest: Option<Duration>) -> Ops {
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("open");
        Ops {
            store: Arc::new(store),
            retention: JtiRetention {
                longest_lifetime: longest,
                leeway: Duration::from_secs(30),
            },
            clock: at_now,
        }
    }

    fn revoke(
        ops: &Ops,
        kind: &str,
        value: &str,
        exp: Option<u64>,
    ) -> Result<serde_json::Value, OpError> {
        ops.revoke(NewRevocation {
            kind: kind.into(),
            value: value.into(),
            exp,
        })
    }

    fn expiry(ops: &Ops, value: &str) -> Option<u64> {
        ops.store
            .revocations()
            .expect("revocations")
            .into_iter()
            .find(|r| r.value == value)
            .expect("recorded")
            .expires
    }

    #[test]
    fn a_jti_revocation_is_kept_until_exp_plus_leeway_or_the_longest_lifetime() {
        let dir = tempfile::tempdir().expect("tempdir");
        let capped = ops(&dir, Some(Duration::from_secs(7 * 86_400)));
        let answer = revoke(&capped, "jti", "given", Some(NOW + 600)).expect("revoke");
        assert_eq!(answer["expires"], NOW + 630);
        assert_eq!(expiry(&capped, "given"), Some(NOW + 630));
        revoke(&capped, "jti", "capped", None).expect("revoke");
        assert_eq!(expiry(&capped, "capped"), Some(NOW + 7 * 86_400 + 30));
        revoke(&capped, "subject", "s", None).expect("revoke");
        assert_eq!(
            expiry(&capped, "s"),
            None,
            "a subject revocation never expires"
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let open = ops(&dir, None);
        let answer = revoke(&open, "jti", "forever", None).expect("revoke");
        assert!(answer["expires"].is_null(), "{answer}");
        assert_eq!(expiry(&open, "forever"), None);
    }

    #[test]
    fn an_exp_already_past_beyond_year_9999_or_on_another_kind_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ops = ops(&dir, None);
        assert!(revoke(&ops, "jti", "leeway", Some(NOW - 30)).is_ok());
        for (kind, exp) in [
            ("jti", NOW - 31),
            ("jti", MAX_TIME + 1),
            ("subject", NOW + 600),
            ("org", NOW + 600),
            ("family", NOW + 600),
        ] {
            assert!(
                matches!(revoke(&ops, kind, "v", Some(exp)), Err(OpError::Invalid(_))),
                "{kind} {exp}"
            );
        }
        assert_eq!(ops.store.revocations().expect("revocations").len(), 1);
    }

    /// Who prunes the store: every revoke deletes the revocations that stopped
    /// mattering, and keeps those that still matter or have no bound.
    #[test]
    fn revoking_deletes_expired_revocations_from_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ops = ops(&dir, None);
        for (value, expires) in [
            ("old", Some(NOW - 1)),
            ("live", Some(NOW)),
            ("forever", None),
        ] {
            ops.store
                .revoke(&Revocation {
                    kind: RevocationKind::Jti,
                    value: value.into(),
                    at: NOW - 100,
                    expires,
                })
                .expect("revoke");
        }
        revoke(&ops, "jti", "new", Some(NOW + 60)).expect("revoke");
        let left: Vec<String> = ops
            .store
            .revocations()
            .expect("revocations")
            .into_iter()
            .map(|r| r.value)
            .collect();
        assert_eq!(left, ["live", "forever", "new"]);
    }
}
