//! State that outlives a request: organisations, projects, resources, users, API tokens,
//! refresh-token families and revocations (docs/architecture.md, "State").
//!
//! [`Store`] is the trait; [`sqlite::SqliteStore`] the embedded default (one file under
//! `data/`, nothing to install), [`postgres::PgStore`] the shared one for a fleet of
//! gates on one PostgreSQL database; [`open`] picks one from a [`Location`]. The trait is
//! synchronous: async callers run it on `tokio::task::spawn_blocking`. This module never sees HTTP. Secrets are never stored:
//! API tokens and refresh tokens are kept as SHA-256 hashes (hex), passwords as argon2
//! PHC strings made by the caller. Every write is durable when the call returns
//! (`synchronous = FULL` in WAL mode): nothing acknowledged is lost on `kill -9`.
//!
//! What every backend must do is pinned by the conformance suite (`conformance`, test
//! builds only): cases over `&dyn Store` that each backend runs unchanged.

pub mod copy;
pub mod feed;
pub mod postgres;
mod rules;
pub mod sqlite;

/// The backend-independent test suite; see the module doc.
#[cfg(test)]
pub(crate) mod conformance;

use std::path::PathBuf;
use std::sync::Arc;

use crate::resource::{Resource, ResourceType};
pub use feed::{Changes, Subscription};

/// Which backend holds the state, with its settings as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// The embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by a fleet.
    Postgres(postgres::PgOptions),
}

impl Location {
    /// What to call it in messages: the file's path, or the database URL (which never
    /// holds a password: that comes from a file or the environment).
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(path) => path.display().to_string(),
            Self::Postgres(pg) => pg.url.clone(),
        }
    }
}

/// Open the store at `location`, bringing its schema up to date. Blocks (PostgreSQL:
/// connects): call it from a thread that may block, not from async code.
pub fn open(location: &Location) -> Result<Arc<dyn Store>> {
    Ok(match location {
        Location::Sqlite(path) => Arc::new(sqlite::SqliteStore::open(path)?),
        Location::Postgres(options) => Arc::new(postgres::PgStore::open(options)?),
    })
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid: {0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Backend(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// An organisation: a BlendVision organisation, an Azure Video Indexer account, a
/// movingimage VideoManager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    /// Where the Azure account sits in Azure Resource Manager, when it is bound: then
    /// the Azure API answers only under this subscription and resource group. None: any.
    pub azure: Option<AzurePlacement>,
}

/// An Azure subscription and resource group (ARM compares both ignoring case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzurePlacement {
    pub subscription: String,
    pub resource_group: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub org: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    /// argon2 PHC string.
    pub password_hash: String,
    /// Organisations (VideoManagers) this user may use, in the order they were granted.
    pub orgs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: String,
    pub org: String,
    pub label: String,
    /// SHA-256 of the token, lowercase hex.
    pub hash: String,
}

/// One refresh token of a family (a login and every rotation after it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the opaque token, lowercase hex.
    pub hash: String,
    pub family: String,
    pub user: String,
    /// The organisation (VideoManager) the access tokens minted with it are valid for.
    pub org: String,
    pub expires_at: u64,
}

/// A refresh family as stored, whole: what [`Store::refresh_families`] exports and
/// [`Store::import_refresh_family`] writes back unchanged (copying a store to another).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamily {
    pub id: String,
    pub user: String,
    /// Revoked (reuse detected, or a family/subject/org revocation reached it).
    pub revoked: bool,
    /// Its tokens, oldest first; at most one is current.
    pub tokens: Vec<StoredRefreshToken>,
}

/// One token of a [`RefreshFamily`], with the state rotation reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRefreshToken {
    /// SHA-256 of the opaque token, lowercase hex.
    pub hash: String,
    pub org: String,
    pub expires_at: u64,
    /// The family's current token (else spent).
    pub current: bool,
    /// When it stopped being current; None when current, or spent before this was kept
    /// (outside any reuse interval).
    pub spent_at: Option<u64>,
    /// When it was made (Unix seconds).
    pub created: u64,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was the family's current token and not expired: it is now spent and `new` is
    /// the family's current token. Carries the spent record.
    Rotated(RefreshToken),
    /// It had stopped being current less than `reuse_interval` seconds before `now` (a
    /// client retrying, or picking another VideoManager with the token it has just
    /// used): the family's current token is now spent in its turn and `new` is the
    /// family's current token. Carries the presented record.
    Reissued(RefreshToken),
    /// It had stopped being current `reuse_interval` seconds or more before `now`: the
    /// whole family is now revoked (a `family` revocation was recorded). Carries the
    /// family id.
    Reused(String),
    /// Expired, or its family was revoked earlier.
    Dead,
    /// No such token.
    Unknown,
}

/// What a revocation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    Jti,
    Subject,
    Org,
    Family,
}

impl RevocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jti => "jti",
            Self::Subject => "subject",
            Self::Org => "org",
            Self::Family => "family",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "jti" => Self::Jti,
            "subject" => Self::Subject,
            "org" => Self::Org,
            "family" => Self::Family,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: RevocationKind,
    pub value: String,
    /// Unix seconds.
    pub at: u64,
    /// The last second (Unix, inclusive) this revocation matters: after it, no token it
    /// names can still be presented, and [`Store::prune_revocations`] deletes it.
    /// `jti` revocations only; None: for ever (always, for the other kinds, which also
    /// stop tokens issued after them).
    pub expires: Option<u64>,
}

/// The persistent state. Implementations are safe to share between threads.
pub trait Store: Send + Sync {
    /// The sequence number of the last committed write (it grows with every write, in
    /// commit order; see [`feed`]).
    fn version(&self) -> Result<u64>;

    /// What edges must apply after sequence number `after`, read on one snapshot: the
    /// revocations recorded after it (in sequence order), and the whole resource list
    /// when any resource changed after it. `seq` is the snapshot's sequence number:
    /// calling again with it returns only what was committed since.
    fn changes_since(&self, after: u64) -> Result<Changes>;

    /// Wake `wake` whenever a change may have been committed (by any node): after the
    /// listener (re)connects and after each notification. None when this backend has
    /// no notifications (SQLite): the caller polls. Dropping the subscription stops it.
    fn subscribe(&self, wake: Arc<tokio::sync::Notify>) -> Option<Subscription> {
        let _ = wake;
        None
    }

    fn put_org(&self, org: &Org) -> Result<()>;
    fn orgs(&self) -> Result<Vec<Org>>;
    fn org(&self, id: &str) -> Result<Option<Org>>;
    /// Fails with `Conflict` while projects, resources, users or API tokens refer to it.
    fn delete_org(&self, id: &str) -> Result<()>;

    /// `Invalid` when the org does not exist.
    fn put_project(&self, project: &Project) -> Result<()>;
    fn projects(&self) -> Result<Vec<Project>>;
    fn delete_project(&self, id: &str) -> Result<()>;

    /// Insert or replace (by id and type). `Invalid` when org or project is unknown, or
    /// the project belongs to another org.
    fn put_resource(&self, resource: &Resource) -> Result<()>;
    fn resource(&self, id: &str, resource_type: ResourceType) -> Result<Option<Resource>>;
    fn resources(&self) -> Result<Vec<Resource>>;
    fn delete_resource(&self, id: &str, resource_type: ResourceType) -> Result<()>;

    /// Insert or replace by id; usernames are unique (`Conflict`). Orgs must exist.
    fn put_user(&self, user: &User) -> Result<()>;
    fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    fn user(&self, id: &str) -> Result<Option<User>>;
    fn users(&self) -> Result<Vec<User>>;
    fn delete_user(&self, id: &str) -> Result<()>;

    fn put_api_token(&self, token: &ApiToken) -> Result<()>;
    fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>>;
    fn api_tokens(&self) -> Result<Vec<ApiToken>>;
    fn delete_api_token(&self, id: &str) -> Result<()>;

    /// Start a family with its first token (login).
    fn insert_refresh(&self, token: &RefreshToken) -> Result<()>;
    /// Look a refresh token up without changing anything (to check, before rotating,
    /// that its user may use the organisation asked for). The flag says whether it is
    /// its family's current token (not spent, family not revoked).
    fn refresh_token(&self, hash: &str) -> Result<Option<(RefreshToken, bool)>>;
    /// Present `hash` at `now`, atomically (see [`Rotation`]): on success (`Rotated` or
    /// `Reissued`) the family's new current token is `new_hash`, for `new_org`,
    /// expiring at `new_expires_at`, and every other token of the family is spent. A
    /// token stops being current when it is rotated or replaced; for `reuse_interval`
    /// seconds after that it may be presented again (`Reissued`), later it is `Reused`.
    /// `reuse_interval` 0 is strict reuse detection. A family never has more than one
    /// current token. Two concurrent calls with the same current `hash`: exactly one
    /// gets `Rotated`; the other gets `Reissued` inside the interval, `Reused` (and the
    /// family is revoked) outside it.
    fn rotate_refresh(
        &self,
        hash: &str,
        new_hash: &str,
        new_org: &str,
        new_expires_at: u64,
        now: u64,
        reuse_interval: u64,
    ) -> Result<Rotation>;

    /// Every refresh family with all its tokens, families by id, tokens oldest first.
    fn refresh_families(&self) -> Result<Vec<RefreshFamily>>;
    /// Write `family` exactly as given (a copy of another store's): one transaction.
    /// `Invalid` for an unknown user, a hash that is not a SHA-256 digest, more than one
    /// current token, or a current token with `spent_at`; `Conflict` when the family or
    /// one of its hashes exists. Its tokens' organisations need not exist (tokens do not
    /// pin their org), and no revocation is consulted or recorded: `revoked` is kept.
    fn import_refresh_family(&self, family: &RefreshFamily) -> Result<()>;

    /// Record a revocation (idempotent). Recording one that exists keeps the later
    /// `expires` of the two (None is the latest), so a revocation is never shortened.
    /// `Invalid` for an empty value, or `expires` on a kind other than `jti`.
    fn revoke(&self, revocation: &Revocation) -> Result<()>;
    /// Every revocation, oldest first, with its `expires`.
    fn revocations(&self) -> Result<Vec<Revocation>>;
    /// Delete at most `limit` revocations whose `expires` is before `now` (soonest
    /// first); returns how many. Not a change edges must see, so the version does not
    /// move: each edge drops the same entries from memory by its own clock.
    fn prune_revocations(&self, now: u64, limit: usize) -> Result<usize>;
}
