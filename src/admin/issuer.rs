//! The one issuer behind the three dialects (docs/architecture.md, "The admin listener").
//!
//! Each dialect parses its own request into an [`IssueRequest`] and renders the
//! [`Issued`] result or the [`IssueError`] in its own shape; this file decides what may
//! be issued: the resource, project or account exists and belongs to the caller's
//! organisation, unpublished resources only through an admin call, a customer id where
//! the resource's privacy asks for one, and lifetimes within the configured bounds.
//! It reads the store (blocking: call it from `spawn_blocking`) and never sees HTTP. A
//! store that cannot be reached is [`IssueError::Unavailable`] (every dialect answers
//! 503 with `Retry-After`); a signing failure stays [`IssueError::Internal`].

use std::sync::Arc;
use std::time::Duration;

use crate::resource::ResourceType;
use crate::store::{Store, StoreError};
use crate::token::{self, MintRequest, Scope, Verifier};

/// When the token should stop working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The caller asked for a token that never expires.
    Never,
    /// At this Unix second.
    At(u64),
    /// After this long.
    In(Duration),
}

/// What a token should cover.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Account,
    Project(String),
    Resource { id: String, rty: ResourceType },
}

/// A dialect-neutral request for a token.
#[derive(Debug, Clone)]
pub struct IssueRequest {
    /// The caller's organisation (from its credentials).
    pub org: String,
    pub target: Target,
    pub subject: Option<String>,
    pub name: Option<String>,
    pub expiry: Expiry,
    /// Admin call: unpublished resources allowed, no customer required.
    pub admin: bool,
    /// The dialect requires a customer id for resources with token privacy (BlendVision).
    pub require_customer: bool,
    /// Refresh family (movingimage access tokens), for family-wide revocation.
    pub family: Option<String>,
}

/// A freshly signed token.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub jti: String,
    /// None: never expires.
    pub expires_at: Option<u64>,
}

/// Why nothing was issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    #[error("{0}")]
    Invalid(Refusal),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// The store could not be reached (a storage failure, not a refusal): the caller
    /// should try again later — a 503 with `Retry-After` in every dialect, never an
    /// answer about its credentials or the thing it asked for. Details are logged.
    #[error("the token service is temporarily unavailable")]
    Unavailable,
    /// Details are logged, never sent.
    #[error("internal error")]
    Internal,
}

/// A store call that failed, as an issuing error: a storage failure is
/// [`IssueError::Unavailable`], anything else (a row the store itself refuses) internal.
/// Logged here, once: the store's message names what failed, never the driver's text.
impl From<StoreError> for IssueError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Backend(what) => {
                tracing::warn!(error = %what, "store unreachable: answering 503");
                IssueError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "store refused a call while issuing");
                IssueError::Internal
            }
        }
    }
}

/// A request the issuer refuses as invalid: the message, and which part of the request
/// it is about, so that a dialect can name the field (BlendVision's `fieldViolations`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub about: About,
}

/// The part of an [`IssueRequest`] a [`Refusal`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum About {
    /// `subject`: a customer is required.
    Subject,
    /// `expiry`: beyond the cap, in the past, never-expiring where not allowed.
    Expiry,
}

impl Refusal {
    fn error(about: About, message: impl Into<String>) -> IssueError {
        IssueError::Invalid(Refusal {
            message: message.into(),
            about,
        })
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Dialects that only need the words.
impl From<Refusal> for String {
    fn from(r: Refusal) -> String {
        r.message
    }
}

/// Lifetime rules from configuration.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Longest lifetime any token may get; None: no cap.
    pub max: Option<Duration>,
    /// Whether `Expiry::Never` is honoured (only without a cap).
    pub allow_never: bool,
}

pub struct Issuer {
    store: Arc<dyn Store>,
    verifier: Arc<Verifier>,
    issuer_name: String,
    audience: Option<String>,
    lifetimes: Lifetimes,
}

impl Issuer {
    pub fn new(
        store: Arc<dyn Store>,
        verifier: Arc<Verifier>,
        issuer_name: String,
        audience: Option<String>,
        lifetimes: Lifetimes,
    ) -> Self {
        Issuer {
            store,
            verifier,
            issuer_name,
            audience,
            lifetimes,
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Check `req` against the store and sign it at `now`.
    pub fn issue(&self, req: &IssueRequest, now: u64) -> Result<Issued, IssueError> {
        let (scope, prj, rid, rty) = match &req.target {
            Target::Account => {
                if self.store.org(&req.org)?.is_none() {
                    return Err(IssueError::NotFound("organization not found".into()));
                }
                (Scope::Account, None, None, None)
            }
            Target::Project(p) => {
                let found = self
                    .store
                    .projects()?
                    .into_iter()
                    .any(|x| x.id == *p && x.org == req.org);
                if !found {
                    return Err(IssueError::NotFound(format!("project {p:?} not found")));
                }
                (Scope::Project, Some(p.clone()), None, None)
            }
            Target::Resource { id, rty } => {
                // Another organisation's resource is reported exactly like a missing one.
                let r = self
                    .store
                    .resource(id, *rty)?
                    .filter(|r| r.org == req.org)
                    .ok_or_else(|| IssueError::NotFound(format!("resource {id:?} not found")))?;
                if !r.published && !req.admin {
                    return Err(IssueError::Forbidden(
                        "resource is not published; use the admin endpoint".into(),
                    ));
                }
                if req.require_customer && !r.public && !req.admin && req.subject.is_none() {
                    return Err(Refusal::error(
                        About::Subject,
                        "customer_id is required for a resource with token privacy",
                    ));
                }
                (
                    Scope::Resource,
                    r.project.clone(),
                    Some(r.id.clone()),
                    Some(r.resource_type),
                )
            }
        };
        let ttl = self.lifetime(req.expiry, now)?;
        let mint = MintRequest {
            scope,
            org: Some(req.org.clone()),
            prj,
            rid,
            rty,
            sub: req.subject.clone(),
            name: req.name.clone(),
            ttl,
            ip: None,
            acl: Vec::new(),
            sxp: None,
            aud: self.audience.clone(),
            family: req.family.clone(),
            admin: req.admin,
        };
        let keys = self.verifier.keys();
        let (token, claims) = token::mint(&keys, &self.issuer_name, &mint, now).map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            IssueError::Internal
        })?;
        Ok(Issued {
            token,
            jti: claims.jti.unwrap_or_default(),
            expires_at: claims.exp,
        })
    }

    fn lifetime(&self, expiry: Expiry, now: u64) -> Result<Option<Duration>, IssueError> {
        let ttl = match expiry {
            Expiry::Never => {
                return match (self.lifetimes.max, self.lifetimes.allow_never) {
                    (Some(max), _) => Err(Refusal::error(
                        About::Expiry,
                        format!(
                            "tokens that never expire are not allowed here; the longest lifetime is {}s",
                            max.as_secs()
                        ),
                    )),
                    (None, false) => Err(Refusal::error(
                        About::Expiry,
                        "tokens that never expire are disabled; set an expiry",
                    )),
                    (None, true) => Ok(None),
                };
            }
            Expiry::At(t) if t <= now => {
                return Err(Refusal::error(
                    About::Expiry,
                    "the expiry time is in the past",
                ))
            }
            Expiry::At(t) => Duration::from_secs(t - now),
            Expiry::In(d) if d.is_zero() => {
                return Err(Refusal::error(
                    About::Expiry,
                    "the lifetime must be positive",
                ))
            }
            Expiry::In(d) => d,
        };
        if now.saturating_add(ttl.as_secs()) > crate::token::claims::MAX_TIME {
            return Err(Refusal::error(
                About::Expiry,
                "the expiry is beyond 9999-12-31T23:59:59Z",
            ));
        }
        if let Some(max) = self.lifetimes.max {
            if ttl > max {
                return Err(Refusal::error(
                    About::Expiry,
                    format!(
                        "the lifetime exceeds the configured maximum of {}s",
                        max.as_secs()
                    ),
                ));
            }
        }
        Ok(Some(ttl))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Resource;
    use crate::store::sqlite::SqliteStore;
    use crate::store::{Org, Project};
    use crate::token::keys::Algorithm;
    use crate::token::keys::{generate_pem, SigningKey, VerifyKey};
    use crate::token::KeySet;

    const NOW: u64 = 1_800_000_000;

    fn issuer(dir: &tempfile::TempDir, lifetimes: Lifetimes) -> Issuer {
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("store");
        for org in ["acme", "other"] {
            store
                .put_org(&Org {
                    id: org.into(),
                    name: org.into(),
                    azure: None,
                })
                .expect("org");
        }
        store
            .put_project(&Project {
                id: "p1".into(),
                org: "acme".into(),
                name: "p1".into(),
            })
            .expect("project");
        for (id, org, public, published) in [
            ("v1", "acme", false, true),
            ("v2", "acme", false, false),
            ("pub", "acme", true, true),
            ("x1", "other", false, true),
        ] {
            store
                .put_resource(&Resource {
                    id: id.into(),
                    resource_type: ResourceType::Vod,
                    org: org.into(),
                    project: (org == "acme").then(|| "p1".to_string()),
                    public,
                    published,
                })
                .expect("resource");
        }
        let (private, public) = generate_pem(Algorithm::EdDsa).expect("keys");
        let keys = KeySet::from_keys(
            vec![VerifyKey::from_material("k", Algorithm::EdDsa, public.as_bytes()).expect("vk")],
            Some(SigningKey::from_material("k", Algorithm::EdDsa, private.as_bytes()).expect("sk")),
        );
        Issuer::new(
            Arc::new(store),
            Arc::new(Verifier::new(keys, &token_cfg())),
            "t".into(),
            None,
            lifetimes,
        )
    }

    fn token_cfg() -> crate::config::Token {
        crate::config::Token {
            issuer: "t".into(),
            audience: vec![],
            leeway: Duration::from_secs(5),
            max_len: 4096,
            cache_capacity: 10,
            cache_max_ttl: Duration::from_secs(60),
            path_prefix: "t".into(),
            query: "token".into(),
            cookie: "c".into(),
            allow_never_expiring: true,
            max_lifetime: None,
        }
    }

    /// A storage failure is "try again" (503 in every dialect); a store that refuses a
    /// row, and a key that cannot sign, are internal errors (500).
    #[test]
    fn b11_a_storage_failure_is_unavailable_and_a_signing_failure_stays_internal() {
        let lost = StoreError::Backend("the database is unreachable".into());
        assert_eq!(IssueError::from(lost), IssueError::Unavailable);
        let refused = StoreError::Invalid("a value is out of range".into());
        assert_eq!(IssueError::from(refused), IssueError::Internal);

        let dir = tempfile::tempdir().expect("dir");
        let i = issuer(&dir, OPEN);
        i.verifier
            .reload(KeySet::from_keys(vec![], None), &token_cfg());
        let req = IssueRequest {
            org: "acme".into(),
            target: Target::Account,
            subject: None,
            name: None,
            expiry: Expiry::In(Duration::from_secs(60)),
            admin: false,
            require_customer: false,
            family: None,
        };
        assert_eq!(i.issue(&req, NOW).map(|_| ()), Err(IssueError::Internal));
    }

    fn req(id: &str) -> IssueRequest {
        IssueRequest {
            org: "acme".into(),
            target: Target::Resource {
                id: id.into(),
                rty: ResourceType::Vod,
            },
            subject: Some("c1".into()),
            name: None,
            expiry: Expiry::In(Duration::from_secs(60)),
            admin: false,
            require_customer: true,
            family: None,
        }
    }

    const OPEN: Lifetimes = Lifetimes {
        max: None,
        allow_never: true,
    };

    #[test]
    fn a_published_resource_of_the_callers_org_gets_a_token_that_verifies() {
        let dir = tempfile::tempdir().expect("tmp");
        let i = issuer(&dir, OPEN);
        let issued = i.issue(&req("v1"), NOW).expect("issued");
        assert_eq!(issued.expires_at, Some(NOW + 60));
        let grant = i.verifier.verify(&issued.token, NOW).expect("verifies");
        assert_eq!(
            (grant.rid.as_deref(), grant.org.as_deref()),
            (Some("v1"), Some("acme"))
        );
        assert_eq!(grant.prj.as_deref(), Some("p1"));
    }

    #[test]
    fn another_orgs_resource_looks_exactly_like_a_missing_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let i = issuer(&dir, OPEN);
        let other = i.issue(&req("x1"), NOW).expect_err("other org");
        let missing = i.issue(&req("nope"), NOW).expect_err("missing");
        assert!(matches!(other, IssueError::NotFound(_)));
        assert!(matches!(missing, IssueError::NotFound(_)));
    }

    #[test]
    fn unpublished_needs_admin_and_token_privacy_needs_a_customer() {
        let dir = tempfile::tempdir().expect("tmp");
        let i = issuer(&dir, OPEN);
        assert!(matches!(
            i.issue(&req("v2"), NOW),
            Err(IssueError::Forbidden(_))
        ));
        assert!(i
            .issue(
                &IssueRequest {
                    admin: true,
                    subject: None,
                    ..req("v2")
                },
                NOW
            )
            .is_ok());
        let anonymous = IssueRequest {
            subject: None,
            ..req("v1")
        };
        assert!(matches!(
            i.issue(&anonymous, NOW),
            Err(IssueError::Invalid(_))
        ));
        assert!(i
            .issue(
                &IssueRequest {
                    subject: None,
                    ..req("pub")
                },
                NOW
            )
            .is_ok());
        assert!(i
            .issue(
                &IssueRequest {
                    require_customer: false,
                    ..anonymous
                },
                NOW
            )
            .is_ok());
    }

    #[test]
    fn lifetimes_respect_the_cap_the_past_and_never() {
        let dir = tempfile::tempdir().expect("tmp");
        let capped = issuer(
            &dir,
            Lifetimes {
                max: Some(Duration::from_secs(3600)),
                allow_never: true,
            },
        );
        let long = IssueRequest {
            expiry: Expiry::In(Duration::from_secs(7200)),
            ..req("v1")
        };
        assert!(
            matches!(capped.issue(&long, NOW), Err(IssueError::Invalid(m)) if m.message.contains("3600"))
        );
        let never = IssueRequest {
            expiry: Expiry::Never,
            ..req("v1")
        };
        assert!(
            matches!(capped.issue(&never, NOW), Err(IssueError::Invalid(m)) if m.message.contains("never expire"))
        );
        let past = IssueRequest {
            expiry: Expiry::At(NOW - 1),
            ..req("v1")
        };
        assert!(matches!(
            capped.issue(&past, NOW),
            Err(IssueError::Invalid(_))
        ));
        let dir2 = tempfile::tempdir().expect("tmp");
        let open = issuer(&dir2, OPEN);
        assert_eq!(open.issue(&never, NOW).expect("never").expires_at, None);
    }

    #[test]
    fn project_and_account_targets_must_belong_to_the_org() {
        let dir = tempfile::tempdir().expect("tmp");
        let i = issuer(&dir, OPEN);
        let p = IssueRequest {
            target: Target::Project("p1".into()),
            ..req("v1")
        };
        assert!(i.issue(&p, NOW).is_ok());
        let foreign = IssueRequest {
            org: "other".into(),
            ..p
        };
        assert!(matches!(
            i.issue(&foreign, NOW),
            Err(IssueError::NotFound(_))
        ));
        let a = IssueRequest {
            target: Target::Account,
            org: "ghost".into(),
            ..req("v1")
        };
        assert!(matches!(i.issue(&a, NOW), Err(IssueError::NotFound(_))));
    }
}
