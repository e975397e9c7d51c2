//! The embedded store: one SQLite file (WAL, `synchronous = FULL`), nothing to install.
//!
//! One connection behind a mutex per handle; every write is one `IMMEDIATE` transaction
//! that also bumps the `meta.version` counter, so [`Store::version`] grows with every
//! committed write, whichever handle or process made it. That counter is the change
//! feed's sequence number ([`super::feed`]): SQLite's one writer at a time makes it
//! commit-ordered by construction. There are no notifications: nodes poll. Several handles (or processes)
//! may open the same file: SQLite's write lock plus a 5 s busy timeout serialise them,
//! which is what makes [`Store::rotate_refresh`] have exactly one winner
//! (docs/threat-model.md, B2).
//!
//! The schema is versioned with `PRAGMA user_version`: [`MIGRATIONS`] are applied in
//! order, each inside the same transaction as the version bump, when a file is opened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{
    ffi, params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use super::rules::{
    self, corrupt, limit_to_sql, non_empty, revocation_row, sha256_hex, time_from_sql, time_to_sql,
    Verdict,
};
use super::{
    ApiToken, AzurePlacement, Changes, Org, Project, RefreshFamily, RefreshToken, Result,
    Revocation, RevocationKind, Rotation, Store, StoreError, StoredRefreshToken, User,
};
use crate::private_file;
use crate::resource::{Resource, ResourceType};

/// How long a call waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations; entry `i` takes the file from `user_version` `i` to `i + 1`.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    SCHEMA_V2_SPENT_AT,
    SCHEMA_V3_AZURE_PLACEMENT,
    SCHEMA_V4_CHANGE_FEED,
    SCHEMA_V5_REVOCATION_EXPIRY,
];

/// Version 1: the whole initial schema.
const SCHEMA_V1: &str = "
CREATE TABLE meta (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL CHECK (version >= 0)
) STRICT;
INSERT INTO meta (id, version) VALUES (1, 0);

CREATE TABLE orgs (
    id   TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL
) STRICT;

CREATE TABLE projects (
    id   TEXT NOT NULL PRIMARY KEY,
    org  TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    UNIQUE (id, org)
) STRICT;
CREATE INDEX projects_by_org ON projects (org);

CREATE TABLE resources (
    id        TEXT NOT NULL,
    type      TEXT NOT NULL,
    org       TEXT NOT NULL REFERENCES orgs (id),
    project   TEXT,
    privacy   TEXT NOT NULL CHECK (privacy IN ('public', 'token')),
    published INTEGER NOT NULL CHECK (published IN (0, 1)),
    PRIMARY KEY (id, type),
    -- A resource's project belongs to the resource's org (not checked when NULL).
    FOREIGN KEY (project, org) REFERENCES projects (id, org)
) STRICT;
CREATE INDEX resources_by_org ON resources (org);
CREATE INDEX resources_by_project ON resources (project, org);

CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
) STRICT;

CREATE TABLE user_orgs (
    user     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org      TEXT NOT NULL REFERENCES orgs (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (user, org),
    UNIQUE (user, position)
) STRICT;
CREATE INDEX user_orgs_by_org ON user_orgs (org);

CREATE TABLE api_tokens (
    id    TEXT NOT NULL PRIMARY KEY,
    org   TEXT NOT NULL REFERENCES orgs (id),
    label TEXT NOT NULL,
    hash  TEXT NOT NULL UNIQUE
) STRICT;
CREATE INDEX api_tokens_by_org ON api_tokens (org);

CREATE TABLE refresh_families (
    id      TEXT NOT NULL PRIMARY KEY,
    user    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    revoked INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT;
CREATE INDEX refresh_families_by_user ON refresh_families (user);

-- The org is not a foreign key: old tokens must not pin an organisation forever.
CREATE TABLE refresh_tokens (
    hash       TEXT NOT NULL PRIMARY KEY,
    family     TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    org        TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('current', 'spent')),
    created    INTEGER NOT NULL DEFAULT (unixepoch())
) STRICT;
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);
CREATE UNIQUE INDEX refresh_tokens_one_current_per_family
    ON refresh_tokens (family) WHERE state = 'current';

CREATE TABLE revocations (
    id    INTEGER PRIMARY KEY,
    kind  TEXT NOT NULL CHECK (kind IN ('jti', 'subject', 'org', 'family')),
    value TEXT NOT NULL,
    at    INTEGER NOT NULL,
    UNIQUE (kind, value)
) STRICT;
";

/// Version 2: when a refresh token stopped being its family's current one, for the
/// reuse interval of [`Store::rotate_refresh`]. NULL: current, or spent before this
/// column existed (outside any interval).
const SCHEMA_V2_SPENT_AT: &str = "
ALTER TABLE refresh_tokens ADD COLUMN spent_at INTEGER;
";

/// Version 3: an organisation's optional Azure subscription and resource group (both or
/// neither; the store's code keeps them paired).
const SCHEMA_V3_AZURE_PLACEMENT: &str = "
ALTER TABLE orgs ADD COLUMN azure_subscription TEXT;
ALTER TABLE orgs ADD COLUMN azure_resource_group TEXT;
";

/// Version 4: the change feed ([`super::feed`]). Each revocation carries the sequence
/// number (`meta.version`) of the write that recorded it, and `meta` the number of the
/// last write that changed a resource. What exists already is dated at the current
/// number: a node that applied less reads it again (harmless), none skips it.
const SCHEMA_V4_CHANGE_FEED: &str = "
ALTER TABLE meta ADD COLUMN resources_seq INTEGER NOT NULL DEFAULT 0 CHECK (resources_seq >= 0);
UPDATE meta SET resources_seq = version;
ALTER TABLE revocations ADD COLUMN seq INTEGER NOT NULL DEFAULT 0 CHECK (seq >= 0);
UPDATE revocations SET seq = (SELECT version FROM meta WHERE id = 1);
CREATE INDEX revocations_by_seq ON revocations (seq);
";

/// Version 5: revocations record the last second they matter (`jti` revocations only; NULL: for
/// ever), and [`Store::prune_revocations`] finds the expired ones by index.
const SCHEMA_V5_REVOCATION_EXPIRY: &str = "
ALTER TABLE revocations ADD COLUMN expires INTEGER;
CREATE INDEX revocations_by_expiry ON revocations (expires) WHERE expires IS NOT NULL;
";

/// The embedded SQLite [`Store`].
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Open (creating it, and its parent directories, when missing) the store file at
    /// `path`, and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            private_file::create_dirs(parent).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        private_file::create(path)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
        // No SQLITE_OPEN_URI: the path is a path, whatever it starts with.
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(path, flags).db()?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    /// The file this store was opened on.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        self.conn
            .lock()
            .map_err(|_| StoreError::Backend("the store connection lock is poisoned".into()))
    }

    /// Run `f` in a read transaction (one consistent snapshot).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Deferred)
            .db()?;
        let out = f(&tx)?;
        tx.commit().db()?;
        Ok(out)
    }

    /// Run `f` in a write transaction, taking the write lock up front (so two writers
    /// never both read and then race to upgrade). An error rolls everything back.
    /// `f` calls [`bump`] when it changed something.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .db()?;
        let out = f(&tx)?;
        tx.commit().db()?;
        Ok(out)
    }
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .db()?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "the database refused WAL mode (journal mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    conn.pragma_update(None, "foreign_keys", "ON").db()?;
    let fk: bool = conn
        .pragma_query_value(None, "foreign_keys", |r| r.get(0))
        .db()?;
    if !fk {
        return Err(StoreError::Backend(
            "the database refused foreign keys".into(),
        ));
    }
    Ok(())
}

/// The token that replaces a family's current one.
struct NextRefresh<'a> {
    hash: &'a str,
    org: &'a str,
    expires_at: u64,
    now: i64,
}

/// The presented token, with what decides the answer (`spent_at` is NULL for tokens
/// spent before schema 2: outside any reuse interval).
fn presented_refresh(
    tx: &Transaction<'_>,
    hash: &str,
) -> Result<Option<(RefreshToken, rules::Presented)>> {
    let row = tx
        .query_row(
            "SELECT t.family, f.user, t.org, t.expires_at, t.state, t.spent_at,
                    f.revoked OR EXISTS (SELECT 1 FROM revocations r
                                         WHERE r.kind = 'family' AND r.value = t.family)
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family
             WHERE t.hash = ?1",
            [hash],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                    r.get::<_, bool>(6)?,
                ))
            },
        )
        .optional()
        .db()?;
    let Some((family, user, org, expires_at, state, spent_at, revoked)) = row else {
        return Ok(None);
    };
    let token = RefreshToken {
        hash: hash.to_owned(),
        family,
        user,
        org,
        expires_at: time_from_sql(expires_at)?,
    };
    let presented = rules::Presented {
        current: rules::is_current(&state)?,
        spent_at: spent_at.map(time_from_sql).transpose()?,
        revoked,
        expires_at: token.expires_at,
    };
    Ok(Some((token, presented)))
}

/// Spend `family`'s current token (at `next.now`) and make `next` the current one.
/// Validates `next` first, so a refusal changes nothing.
fn replace_current(tx: &Transaction<'_>, family: &str, next: &NextRefresh<'_>) -> Result<()> {
    sha256_hex("new refresh token hash", next.hash)?;
    let expires_at = time_to_sql("expiry", next.expires_at)?;
    require_org(tx, next.org)?;
    if exists(
        tx,
        "SELECT 1 FROM refresh_tokens WHERE hash = ?1",
        [next.hash],
    )? {
        return Err(StoreError::Conflict("refresh token already exists".into()));
    }
    tx.execute(
        "UPDATE refresh_tokens SET state = 'spent', spent_at = ?2
         WHERE family = ?1 AND state = 'current'",
        params![family, next.now],
    )
    .db()?;
    tx.execute(
        "INSERT INTO refresh_tokens (hash, family, org, expires_at, state, created)
         VALUES (?1, ?2, ?3, ?4, 'current', ?5)",
        params![next.hash, family, next.org, expires_at, next.now],
    )
    .db()?;
    bump(tx)
}

/// Every refresh family without its tokens, by id.
fn family_rows(c: &Connection) -> Result<Vec<RefreshFamily>> {
    let mut stmt = c
        .prepare("SELECT id, user, revoked FROM refresh_families ORDER BY id")
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok(RefreshFamily {
                id: r.get(0)?,
                user: r.get(1)?,
                revoked: r.get(2)?,
                tokens: Vec::new(),
            })
        })
        .db()?;
    rows.collect::<rusqlite::Result<Vec<_>>>().db()
}

/// Every refresh token with its family's id, oldest first (ties by hash).
fn refresh_token_rows(c: &Connection) -> Result<Vec<(String, StoredRefreshToken)>> {
    let mut stmt = c
        .prepare(
            "SELECT family, hash, org, expires_at, state, spent_at, created
             FROM refresh_tokens ORDER BY created, hash",
        )
        .db()?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<i64>>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })
        .db()?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>().db()?;
    rows.into_iter()
        .map(
            |(family, hash, org, expires_at, state, spent_at, created)| {
                Ok((
                    family,
                    StoredRefreshToken {
                        hash,
                        org,
                        expires_at: time_from_sql(expires_at)?,
                        current: rules::is_current(&state)?,
                        spent_at: spent_at.map(time_from_sql).transpose()?,
                        created: time_from_sql(created)?,
                    },
                ))
            },
        )
        .collect()
}

/// Insert one token of an imported family as it was (checked by
/// [`rules::importable_family`]); a hash in use is a `Conflict`.
fn import_refresh_token(
    tx: &Transaction<'_>,
    family: &str,
    token: &StoredRefreshToken,
) -> Result<()> {
    if exists(
        tx,
        "SELECT 1 FROM refresh_tokens WHERE hash = ?1",
        [&token.hash],
    )? {
        return Err(StoreError::Conflict("refresh token already exists".into()));
    }
    tx.execute(
        "INSERT INTO refresh_tokens (hash, family, org, expires_at, state, spent_at, created)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token.hash,
            family,
            token.org,
            time_to_sql("expiry", token.expires_at)?,
            rules::state(token.current),
            token
                .spent_at
                .map(|t| time_to_sql("spent time", t))
                .transpose()?,
            time_to_sql("creation time", token.created)?,
        ],
    )
    .db()?;
    Ok(())
}

/// A spent token came back after its reuse interval: revoke its whole family.
fn revoke_reused_family(tx: &Transaction<'_>, family: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE refresh_families SET revoked = 1 WHERE id = ?1",
        [family],
    )
    .db()?;
    tx.execute(
        "INSERT OR IGNORE INTO revocations (kind, value, at) VALUES (?1, ?2, ?3)",
        params![RevocationKind::Family.as_str(), family, now],
    )
    .db()?;
    bump_revocation(tx, family_revocation(tx, family)?)
}

/// The row id of the `family` revocation of `family`.
fn family_revocation(tx: &Connection, family: &str) -> Result<i64> {
    tx.query_row(
        "SELECT id FROM revocations WHERE kind = 'family' AND value = ?1",
        [family],
        |r| r.get(0),
    )
    .db()
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .db()?;
    let current: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .db()?;
    let known = MIGRATIONS.len();
    let current = usize::try_from(current)
        .ok()
        .filter(|&v| v <= known)
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "the database file has schema version {current}; this build knows up to {known}"
            ))
        })?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql).db()?;
        let version =
            i64::try_from(i + 1).map_err(|_| StoreError::Backend("schema version".into()))?;
        tx.pragma_update(None, "user_version", version).db()?;
    }
    tx.commit().db()
}

/// `rusqlite` results into store results, with messages fit for API users: a short
/// description, never SQL. The full error goes to the log.
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(db_err)
    }
}

fn db_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode as C;
    if let Some(err) = e.sqlite_error() {
        match err.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                return StoreError::Conflict("already exists".into())
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => {
                return StoreError::Invalid("refers to something that does not exist".into())
            }
            ffi::SQLITE_CONSTRAINT_CHECK | ffi::SQLITE_CONSTRAINT_NOTNULL => {
                return StoreError::Invalid("a value is out of range".into())
            }
            _ => {}
        }
    }
    let what = match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => "the database is busy",
        Some(C::DiskFull) => "the disk is full",
        Some(C::SystemIoFailure) => "input/output error",
        Some(C::DatabaseCorrupt | C::NotADatabase) => "the database file is damaged",
        Some(C::ReadOnly | C::CannotOpen | C::PermissionDenied) => {
            "the database file cannot be opened for writing"
        }
        Some(C::OutOfMemory) => "out of memory",
        _ => "database error",
    };
    tracing::error!(error = %e, "store: {what}");
    StoreError::Backend(what.into())
}

/// A foreign-key failure while deleting means something still refers to the row.
fn delete_err(e: rusqlite::Error) -> StoreError {
    if e.sqlite_error()
        .is_some_and(|err| err.extended_code == ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
    {
        return StoreError::Conflict("still referred to".into());
    }
    db_err(e)
}

/// Delete the rows `sql` selects by `params`, bumping the version; `NotFound(what)` when
/// nothing matched, `Conflict` while something still refers to them.
fn delete_one<P: rusqlite::Params>(
    tx: &Connection,
    sql: &str,
    params: P,
    what: String,
) -> Result<()> {
    if tx.execute(sql, params).map_err(delete_err)? == 0 {
        return Err(StoreError::NotFound(what));
    }
    bump(tx)
}

/// Take the next sequence number ([`super::feed`]); call last in every transaction that
/// changed something.
fn bump(tx: &Connection) -> Result<()> {
    next_seq(tx).map(|_| ())
}

/// [`bump`], returning the number taken.
fn next_seq(tx: &Connection) -> Result<i64> {
    tx.query_row(
        "UPDATE meta SET version = version + 1 WHERE id = 1 RETURNING version",
        [],
        |r| r.get(0),
    )
    .db()
}

/// [`bump`] for a write that changed a resource: edges reload their resources.
fn bump_resources(tx: &Connection) -> Result<()> {
    tx.execute(
        "UPDATE meta SET version = version + 1, resources_seq = version + 1 WHERE id = 1",
        [],
    )
    .db()?;
    Ok(())
}

/// [`bump`] for a write that recorded the revocation in row `id`: it carries the number.
fn bump_revocation(tx: &Connection, id: i64) -> Result<()> {
    let seq = next_seq(tx)?;
    tx.execute(
        "UPDATE revocations SET seq = ?1 WHERE id = ?2",
        params![seq, id],
    )
    .db()?;
    Ok(())
}

/// Every stored resource, by id and type.
fn resource_list(c: &Connection) -> Result<Vec<Resource>> {
    let mut stmt = c
        .prepare(
            "SELECT id, type, org, project, privacy, published FROM resources
             ORDER BY id, type",
        )
        .db()?;
    let rows = stmt.query_map([], resource_row).db()?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .db()?
        .into_iter()
        .map(|(id, ty, org, project, privacy, published)| {
            resource_from_row(id, ty, org, project, privacy, published)
        })
        .collect()
}

/// The revocations `sql` selects (kind, value, at, expires) with `params`.
fn revocation_list(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Revocation>> {
    let mut stmt = c.prepare(sql).db()?;
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .db()?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .db()?
        .into_iter()
        .map(|(kind, value, at, expires)| {
            Ok(Revocation {
                kind: RevocationKind::parse(&kind)
                    .ok_or_else(|| corrupt("unknown revocation kind"))?,
                value,
                at: time_from_sql(at)?,
                expires: expires.map(time_from_sql).transpose()?,
            })
        })
        .collect()
}

/// A sequence number as SQLite keeps it.
fn seq_from_sql(v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt("negative sequence number"))
}

fn exists(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<bool> {
    conn.query_row(sql, params, |_| Ok(()))
        .optional()
        .db()
        .map(|r| r.is_some())
}

fn org_exists(conn: &Connection, id: &str) -> Result<bool> {
    exists(conn, "SELECT 1 FROM orgs WHERE id = ?1", [id])
}

fn require_org(conn: &Connection, id: &str) -> Result<()> {
    if org_exists(conn, id)? {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("unknown organisation {id}")))
    }
}

fn resource_from_row(
    id: String,
    resource_type: String,
    org: String,
    project: Option<String>,
    privacy: String,
    published: bool,
) -> Result<Resource> {
    let resource_type =
        ResourceType::parse(&resource_type).ok_or_else(|| corrupt("unknown resource type"))?;
    let public = match privacy.as_str() {
        "public" => true,
        "token" => false,
        _ => return Err(corrupt("unknown privacy")),
    };
    Ok(Resource {
        id,
        resource_type,
        org,
        project,
        public,
        published,
    })
}

type ResourceRow = (String, String, String, Option<String>, String, bool);

fn resource_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ResourceRow> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
    ))
}

fn user_orgs(conn: &Connection, user: &str) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT org FROM user_orgs WHERE user = ?1 ORDER BY position")
        .db()?;
    let rows = stmt.query_map([user], |r| r.get(0)).db()?;
    rows.collect::<rusqlite::Result<Vec<String>>>().db()
}

/// Look one user up; `sql` selects `id, username, password_hash` by one parameter.
fn user_where(conn: &Connection, sql: &str, value: &str) -> Result<Option<User>> {
    let row = conn
        .query_row(sql, [value], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })
        .optional()
        .db()?;
    let Some((id, username, password_hash)) = row else {
        return Ok(None);
    };
    let orgs = user_orgs(conn, &id)?;
    Ok(Some(User {
        id,
        username,
        password_hash,
        orgs,
    }))
}

fn api_token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    Ok(ApiToken {
        id: r.get(0)?,
        org: r.get(1)?,
        label: r.get(2)?,
        hash: r.get(3)?,
    })
}

/// Mark refresh families revoked because of a revocation just recorded: a `family`
/// revocation kills that family, a `subject` one every family of that user.
fn revoke_families(tx: &Connection, revocation: &Revocation) -> Result<()> {
    let sql = match revocation.kind {
        RevocationKind::Family => "UPDATE refresh_families SET revoked = 1 WHERE id = ?1",
        RevocationKind::Subject => "UPDATE refresh_families SET revoked = 1 WHERE user = ?1",
        RevocationKind::Jti | RevocationKind::Org => return Ok(()),
    };
    tx.execute(sql, [&revocation.value]).db()?;
    Ok(())
}

/// The columns [`org_row`] reads, in its order.
const ORG_COLUMNS: &str = "id, name, azure_subscription, azure_resource_group";

fn org_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Org> {
    let sub: Option<String> = r.get(2)?;
    let rg: Option<String> = r.get(3)?;
    Ok(Org {
        id: r.get(0)?,
        name: r.get(1)?,
        azure: sub
            .zip(rg)
            .map(|(subscription, resource_group)| AzurePlacement {
                subscription,
                resource_group,
            }),
    })
}

impl Store for SqliteStore {
    fn version(&self) -> Result<u64> {
        self.read(|c| {
            let v: i64 = c
                .query_row("SELECT version FROM meta WHERE id = 1", [], |r| r.get(0))
                .db()?;
            u64::try_from(v).map_err(|_| corrupt("negative version"))
        })
    }

    fn put_org(&self, org: &Org) -> Result<()> {
        non_empty("organisation id", &org.id)?;
        self.write(|tx| {
            let (sub, rg) = match &org.azure {
                Some(a) => (Some(&a.subscription), Some(&a.resource_group)),
                None => (None, None),
            };
            tx.execute(
                "INSERT INTO orgs (id, name, azure_subscription, azure_resource_group)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                     azure_subscription = excluded.azure_subscription,
                     azure_resource_group = excluded.azure_resource_group",
                params![org.id, org.name, sub, rg],
            )
            .db()?;
            bump(tx)
        })
    }

    fn orgs(&self) -> Result<Vec<Org>> {
        self.read(|c| {
            let mut stmt = c
                .prepare(&format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY id"))
                .db()?;
            let rows = stmt.query_map([], org_row).db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
    }

    fn org(&self, id: &str) -> Result<Option<Org>> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = ?1"),
                [id],
                org_row,
            )
            .optional()
            .db()
        })
    }

    fn delete_org(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            let counts: [i64; 4] = tx
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM projects WHERE org = ?1),
                            (SELECT COUNT(*) FROM resources WHERE org = ?1),
                            (SELECT COUNT(*) FROM user_orgs WHERE org = ?1),
                            (SELECT COUNT(*) FROM api_tokens WHERE org = ?1)",
                    [id],
                    |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
                )
                .db()?;
            rules::org_unused(id, counts)?;
            delete_one(
                tx,
                "DELETE FROM orgs WHERE id = ?1",
                [id],
                format!("organisation {id}"),
            )
        })
    }

    fn put_project(&self, project: &Project) -> Result<()> {
        non_empty("project id", &project.id)?;
        self.write(|tx| {
            require_org(tx, &project.org)?;
            if exists(
                tx,
                "SELECT 1 FROM resources WHERE project = ?1 AND org <> ?2",
                [&project.id, &project.org],
            )? {
                return Err(StoreError::Conflict(format!(
                    "project {} has resources in another organisation",
                    project.id
                )));
            }
            tx.execute(
                "INSERT INTO projects (id, org, name) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET org = excluded.org, name = excluded.name",
                params![project.id, project.org, project.name],
            )
            .db()?;
            bump(tx)
        })
    }

    fn projects(&self) -> Result<Vec<Project>> {
        self.read(|c| {
            let mut stmt = c
                .prepare("SELECT id, org, name FROM projects ORDER BY id")
                .db()?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Project {
                        id: r.get(0)?,
                        org: r.get(1)?,
                        name: r.get(2)?,
                    })
                })
                .db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
    }

    fn delete_project(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            if exists(tx, "SELECT 1 FROM resources WHERE project = ?1", [id])? {
                return Err(StoreError::Conflict(format!(
                    "project {id} still has resources"
                )));
            }
            delete_one(
                tx,
                "DELETE FROM projects WHERE id = ?1",
                [id],
                format!("project {id}"),
            )
        })
    }

    fn put_resource(&self, resource: &Resource) -> Result<()> {
        non_empty("resource id", &resource.id)?;
        self.write(|tx| {
            require_org(tx, &resource.org)?;
            if let Some(project) = &resource.project {
                let owner: Option<String> = tx
                    .query_row("SELECT org FROM projects WHERE id = ?1", [project], |r| {
                        r.get(0)
                    })
                    .optional()
                    .db()?;
                match owner {
                    None => return Err(StoreError::Invalid(format!("unknown project {project}"))),
                    Some(owner) if owner != resource.org => {
                        return Err(StoreError::Invalid(format!(
                            "project {project} belongs to another organisation"
                        )))
                    }
                    Some(_) => {}
                }
            }
            tx.execute(
                "INSERT INTO resources (id, type, org, project, privacy, published)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id, type) DO UPDATE SET org = excluded.org,
                     project = excluded.project, privacy = excluded.privacy,
                     published = excluded.published",
                params![
                    resource.id,
                    resource.resource_type.as_str(),
                    resource.org,
                    resource.project,
                    if resource.public { "public" } else { "token" },
                    resource.published,
                ],
            )
            .db()?;
            bump_resources(tx)
        })
    }

    fn resource(&self, id: &str, resource_type: ResourceType) -> Result<Option<Resource>> {
        let row = self.read(|c| {
            c.query_row(
                "SELECT id, type, org, project, privacy, published FROM resources
                 WHERE id = ?1 AND type = ?2",
                [id, resource_type.as_str()],
                resource_row,
            )
            .optional()
            .db()
        })?;
        row.map(|(id, ty, org, project, privacy, published)| {
            resource_from_row(id, ty, org, project, privacy, published)
        })
        .transpose()
    }

    fn resources(&self) -> Result<Vec<Resource>> {
        self.read(resource_list)
    }

    fn delete_resource(&self, id: &str, resource_type: ResourceType) -> Result<()> {
        self.write(|tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM resources WHERE id = ?1 AND type = ?2",
                    [id, resource_type.as_str()],
                )
                .map_err(delete_err)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!(
                    "resource {id} ({})",
                    resource_type.as_str()
                )));
            }
            bump_resources(tx)
        })
    }

    fn put_user(&self, user: &User) -> Result<()> {
        non_empty("user id", &user.id)?;
        non_empty("username", &user.username)?;
        non_empty("password hash", &user.password_hash)?;
        rules::orgs_listed_once(&user.orgs)?;
        self.write(|tx| {
            for org in &user.orgs {
                require_org(tx, org)?;
            }
            if exists(
                tx,
                "SELECT 1 FROM users WHERE username = ?1 AND id <> ?2",
                [&user.username, &user.id],
            )? {
                return Err(StoreError::Conflict(format!(
                    "username {} is taken",
                    user.username
                )));
            }
            tx.execute(
                "INSERT INTO users (id, username, password_hash) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET username = excluded.username,
                     password_hash = excluded.password_hash",
                params![user.id, user.username, user.password_hash],
            )
            .db()?;
            tx.execute("DELETE FROM user_orgs WHERE user = ?1", [&user.id])
                .db()?;
            let mut insert = tx
                .prepare_cached("INSERT INTO user_orgs (user, org, position) VALUES (?1, ?2, ?3)")
                .db()?;
            for (position, org) in (0_i64..).zip(&user.orgs) {
                insert.execute(params![user.id, org, position]).db()?;
            }
            bump(tx)
        })
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.read(|c| {
            user_where(
                c,
                "SELECT id, username, password_hash FROM users WHERE username = ?1",
                username,
            )
        })
    }

    fn user(&self, id: &str) -> Result<Option<User>> {
        self.read(|c| {
            user_where(
                c,
                "SELECT id, username, password_hash FROM users WHERE id = ?1",
                id,
            )
        })
    }

    fn users(&self) -> Result<Vec<User>> {
        self.read(|c| {
            let mut orgs: HashMap<String, Vec<String>> = HashMap::new();
            let mut stmt = c
                .prepare("SELECT user, org FROM user_orgs ORDER BY user, position")
                .db()?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .db()?;
            for row in rows {
                let (user, org) = row.db()?;
                orgs.entry(user).or_default().push(org);
            }
            let mut stmt = c
                .prepare("SELECT id, username, password_hash FROM users ORDER BY id")
                .db()?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .db()?;
            rows.map(|row| {
                let (id, username, password_hash) = row.db()?;
                let orgs = orgs.remove(&id).unwrap_or_default();
                Ok(User {
                    id,
                    username,
                    password_hash,
                    orgs,
                })
            })
            .collect()
        })
    }

    fn delete_user(&self, id: &str) -> Result<()> {
        // Cascades to the user's org grants and refresh families (and their tokens).
        self.write(|tx| {
            delete_one(
                tx,
                "DELETE FROM users WHERE id = ?1",
                [id],
                format!("user {id}"),
            )
        })
    }

    fn put_api_token(&self, token: &ApiToken) -> Result<()> {
        non_empty("API token id", &token.id)?;
        sha256_hex("API token hash", &token.hash)?;
        self.write(|tx| {
            require_org(tx, &token.org)?;
            if exists(
                tx,
                "SELECT 1 FROM api_tokens WHERE hash = ?1 AND id <> ?2",
                [&token.hash, &token.id],
            )? {
                return Err(StoreError::Conflict(
                    "another API token has the same hash".into(),
                ));
            }
            tx.execute(
                "INSERT INTO api_tokens (id, org, label, hash) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET org = excluded.org, label = excluded.label,
                     hash = excluded.hash",
                params![token.id, token.org, token.label, token.hash],
            )
            .db()?;
            bump(tx)
        })
    }

    fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        self.read(|c| {
            c.query_row(
                "SELECT id, org, label, hash FROM api_tokens WHERE hash = ?1",
                [hash],
                api_token_row,
            )
            .optional()
            .db()
        })
    }

    fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        self.read(|c| {
            let mut stmt = c
                .prepare("SELECT id, org, label, hash FROM api_tokens ORDER BY id")
                .db()?;
            let rows = stmt.query_map([], api_token_row).db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
    }

    fn delete_api_token(&self, id: &str) -> Result<()> {
        self.write(|tx| {
            delete_one(
                tx,
                "DELETE FROM api_tokens WHERE id = ?1",
                [id],
                format!("API token {id}"),
            )
        })
    }

    fn insert_refresh(&self, token: &RefreshToken) -> Result<()> {
        sha256_hex("refresh token hash", &token.hash)?;
        non_empty("refresh family", &token.family)?;
        let expires_at = time_to_sql("expiry", token.expires_at)?;
        self.write(|tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = ?1", [&token.user])? {
                return Err(StoreError::Invalid(format!("unknown user {}", token.user)));
            }
            require_org(tx, &token.org)?;
            if exists(
                tx,
                "SELECT 1 FROM refresh_families WHERE id = ?1",
                [&token.family],
            )? {
                return Err(StoreError::Conflict(format!(
                    "refresh family {} already exists",
                    token.family
                )));
            }
            if exists(
                tx,
                "SELECT 1 FROM refresh_tokens WHERE hash = ?1",
                [&token.hash],
            )? {
                return Err(StoreError::Conflict("refresh token already exists".into()));
            }
            tx.execute(
                "INSERT INTO refresh_families (id, user) VALUES (?1, ?2)",
                [&token.family, &token.user],
            )
            .db()?;
            tx.execute(
                "INSERT INTO refresh_tokens (hash, family, org, expires_at, state)
                 VALUES (?1, ?2, ?3, ?4, 'current')",
                params![token.hash, token.family, token.org, expires_at],
            )
            .db()?;
            bump(tx)
        })
    }

    fn refresh_token(&self, hash: &str) -> Result<Option<(RefreshToken, bool)>> {
        let row = self.read(|c| {
            c.query_row(
                "SELECT t.family, f.user, t.org, t.expires_at,
                        t.state = 'current' AND f.revoked = 0
                 FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family
                 WHERE t.hash = ?1",
                [hash],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, bool>(4)?,
                    ))
                },
            )
            .optional()
            .db()
        })?;
        row.map(|(family, user, org, expires_at, current)| {
            Ok((
                RefreshToken {
                    hash: hash.to_owned(),
                    family,
                    user,
                    org,
                    expires_at: time_from_sql(expires_at)?,
                },
                current,
            ))
        })
        .transpose()
    }

    fn rotate_refresh(
        &self,
        hash: &str,
        new_hash: &str,
        new_org: &str,
        new_expires_at: u64,
        now: u64,
        reuse_interval: u64,
    ) -> Result<Rotation> {
        let now_sql = time_to_sql("now", now)?;
        self.write(|tx| {
            let Some((old, presented)) = presented_refresh(tx, hash)? else {
                return Ok(Rotation::Unknown);
            };
            let next = NextRefresh {
                hash: new_hash,
                org: new_org,
                expires_at: new_expires_at,
                now: now_sql,
            };
            match rules::verdict(&presented, now, reuse_interval) {
                Verdict::Dead => Ok(Rotation::Dead),
                Verdict::Rotate => {
                    replace_current(tx, &old.family, &next)?;
                    Ok(Rotation::Rotated(old))
                }
                Verdict::Reissue => {
                    replace_current(tx, &old.family, &next)?;
                    Ok(Rotation::Reissued(old))
                }
                Verdict::Reuse => {
                    revoke_reused_family(tx, &old.family, now_sql)?;
                    Ok(Rotation::Reused(old.family))
                }
            }
        })
    }

    fn refresh_families(&self) -> Result<Vec<RefreshFamily>> {
        let (families, tokens) = self.read(|c| Ok((family_rows(c)?, refresh_token_rows(c)?)))?;
        rules::with_tokens(families, tokens)
    }

    fn import_refresh_family(&self, family: &RefreshFamily) -> Result<()> {
        rules::importable_family(family)?;
        self.write(|tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = ?1", [&family.user])? {
                return Err(StoreError::Invalid(format!("unknown user {}", family.user)));
            }
            if exists(
                tx,
                "SELECT 1 FROM refresh_families WHERE id = ?1",
                [&family.id],
            )? {
                return Err(StoreError::Conflict(format!(
                    "refresh family {} already exists",
                    family.id
                )));
            }
            tx.execute(
                "INSERT INTO refresh_families (id, user, revoked) VALUES (?1, ?2, ?3)",
                params![family.id, family.user, family.revoked],
            )
            .db()?;
            for token in &family.tokens {
                import_refresh_token(tx, &family.id, token)?;
            }
            bump(tx)
        })
    }

    fn revoke(&self, revocation: &Revocation) -> Result<()> {
        let (at, expires) = revocation_row(revocation)?;
        self.write(|tx| {
            // A new row, or a later expiry for an existing one (NULL is the latest). The
            // row's id comes from RETURNING: `last_insert_rowid` does not see the update.
            let Some(id) = tx
                .query_row(
                    "INSERT INTO revocations (kind, value, at, expires) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (kind, value) DO UPDATE SET expires = excluded.expires
                     WHERE revocations.expires IS NOT NULL
                       AND (excluded.expires IS NULL OR excluded.expires > revocations.expires)
                     RETURNING id",
                    params![revocation.kind.as_str(), revocation.value, at, expires],
                    |r| r.get::<_, i64>(0),
                )
                .optional()
                .db()?
            else {
                return Ok(());
            };
            revoke_families(tx, revocation)?;
            bump_revocation(tx, id)
        })
    }

    fn revocations(&self) -> Result<Vec<Revocation>> {
        self.read(|c| {
            revocation_list(
                c,
                "SELECT kind, value, at, expires FROM revocations ORDER BY id",
                [],
            )
        })
    }

    fn changes_since(&self, after: u64) -> Result<Changes> {
        // Past i64::MAX nothing is newer; SQLite integers are signed.
        let after_sql = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(|c| {
            let (seq, resources_seq): (i64, i64) = c
                .query_row(
                    "SELECT version, resources_seq FROM meta WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .db()?;
            let revocations = revocation_list(
                c,
                "SELECT kind, value, at, expires FROM revocations WHERE seq > ?1 ORDER BY seq, id",
                [after_sql],
            )?;
            let resources = if resources_seq > after_sql {
                Some(resource_list(c)?)
            } else {
                None
            };
            Ok(Changes {
                seq: seq_from_sql(seq)?,
                revocations,
                resources,
            })
        })
    }

    fn prune_revocations(&self, now: u64, limit: usize) -> Result<usize> {
        let now = time_to_sql("now", now)?;
        // No version bump: see the trait.
        self.write(|tx| {
            tx.execute(
                "DELETE FROM revocations WHERE id IN (
                     SELECT id FROM revocations WHERE expires < ?1 ORDER BY expires LIMIT ?2)",
                params![now, limit_to_sql(limit)],
            )
            .db()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, api_token, h, org, project, refresh, resource, Backend};

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary directory")
    }

    fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("data").join("tollgate.db")).expect("open the store")
    }

    /// [`conformance::with_family`] in a store of its own.
    fn with_family(dir: &tempfile::TempDir) -> SqliteStore {
        let store = open(dir);
        conformance::with_family(&store);
        store
    }

    /// A store file in a temporary directory, for the conformance suite.
    pub(super) struct Fresh {
        dir: tempfile::TempDir,
        store: SqliteStore,
    }

    pub(super) fn fresh() -> std::result::Result<Fresh, conformance::Unavailable> {
        let dir = temp();
        let store = open(&dir);
        Ok(Fresh { dir, store })
    }

    impl Backend for Fresh {
        fn store(&self) -> &dyn Store {
            &self.store
        }

        fn another_handle(&self) -> Box<dyn Store> {
            Box::new(open(&self.dir))
        }
    }

    /// Every conformance case, each its own test, on a fresh SQLite file.
    mod conformance_cases {
        crate::store::conformance::conformance_suite!(super::fresh);
    }

    #[test]
    fn everything_survives_closing_and_reopening_the_file() {
        let dir = temp();
        let store = with_family(&dir);
        store.put_project(&project("p", "o1")).expect("project");
        store
            .put_resource(&resource("r", "o1", Some("p")))
            .expect("resource");
        store
            .put_api_token(&api_token("t", "o1", 50))
            .expect("api token");
        store
            .insert_refresh(&refresh(60, "f2", "u1", "o1", 1000))
            .expect("second family");
        assert!(matches!(
            store.rotate_refresh(&h(1), &h(2), "o1", 2000, 500, 0),
            Ok(Rotation::Rotated(_))
        ));
        assert!(matches!(
            store.rotate_refresh(&h(60), &h(61), "o1", 2000, 500, 0),
            Ok(Rotation::Rotated(_))
        ));
        assert!(matches!(
            store.rotate_refresh(&h(60), &h(62), "o1", 2000, 501, 0),
            Ok(Rotation::Reused(_))
        ));
        store
            .revoke(&Revocation {
                kind: RevocationKind::Jti,
                value: "j1".into(),
                at: 7,
                expires: Some(9),
            })
            .expect("revoke");
        let snapshot = (
            store.version().expect("version"),
            store.orgs().expect("orgs"),
            store.projects().expect("projects"),
            store.resources().expect("resources"),
            store.users().expect("users"),
            store.api_tokens().expect("api tokens"),
            store.revocations().expect("revocations"),
        );
        drop(store);

        let store = open(&dir);
        let reopened = (
            store.version().expect("version"),
            store.orgs().expect("orgs"),
            store.projects().expect("projects"),
            store.resources().expect("resources"),
            store.users().expect("users"),
            store.api_tokens().expect("api tokens"),
            store.revocations().expect("revocations"),
        );
        assert_eq!(reopened, snapshot);
        // A rotated token stays spent, a revoked family stays dead, the current one lives.
        assert_eq!(
            store
                .rotate_refresh(&h(61), &h(63), "o1", 2000, 502, 0)
                .expect("revoked family"),
            Rotation::Dead
        );
        assert_eq!(
            store
                .rotate_refresh(&h(2), &h(3), "o1", 2000, 502, 0)
                .expect("current token"),
            Rotation::Rotated(refresh(2, "f1", "u1", "o1", 2000))
        );
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(4), "o1", 2000, 503, 0)
                .expect("spent token"),
            Rotation::Reused("f1".into())
        );
    }

    #[test]
    fn opening_a_file_again_keeps_its_schema_version() {
        let dir = temp();
        let path = dir.path().join("data").join("tollgate.db");
        drop(SqliteStore::open(&path).expect("first open"));
        let store = SqliteStore::open(&path).expect("second open");
        store.put_org(&org("o1")).expect("the schema works");
        drop(store);
        drop(SqliteStore::open(&path).expect("third open"));
        let conn = Connection::open(&path).expect("plain connection");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(usize::try_from(version).ok(), Some(MIGRATIONS.len()));
    }

    /// A file written by a schema-1 build, with a token spent there: schema 2 is applied
    /// on open, and the old spent token (no `spent_at`) is reuse whatever the interval.
    #[test]
    fn a_schema_1_file_is_migrated_and_its_spent_tokens_are_outside_any_reuse_interval() {
        let dir = temp();
        let path = dir.path().join("tollgate.db");
        {
            let conn = Connection::open(&path).expect("plain connection");
            conn.execute_batch(SCHEMA_V1).expect("schema 1");
            conn.pragma_update(None, "user_version", 1)
                .expect("user_version");
            conn.execute_batch(&format!(
                "INSERT INTO orgs (id, name) VALUES ('o1', 'O');
                 INSERT INTO users (id, username, password_hash) VALUES ('u1', 'alice', 'x');
                 INSERT INTO refresh_families (id, user) VALUES ('f1', 'u1');
                 INSERT INTO refresh_tokens (hash, family, org, expires_at, state)
                     VALUES ('{}', 'f1', 'o1', 1000, 'spent'), ('{}', 'f1', 'o1', 1000, 'current');",
                h(1),
                h(2)
            ))
            .expect("schema 1 rows");
        }
        let store = SqliteStore::open(&path).expect("open migrates");
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(3), "o1", 2000, 500, 3600)
                .expect("rotate"),
            Rotation::Reused("f1".into())
        );
        let conn = Connection::open(&path).expect("plain connection");
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("user_version");
        assert_eq!(usize::try_from(version).ok(), Some(MIGRATIONS.len()));
    }

    /// Schema 3 to 4: what was there is in the feed from 0 (a node that applied less
    /// reads it again), not after the current number (no node reads it twice forever).
    #[test]
    fn a_version_3_file_is_upgraded_with_its_revocations_and_resources_in_the_feed() {
        let dir = temp();
        let path = dir.path().join("tollgate.db");
        let mut conn = Connection::open(&path).expect("plain connection");
        let tx = conn.transaction().expect("tx");
        for sql in &MIGRATIONS[..3] {
            tx.execute_batch(sql).expect("schema 1 to 3");
        }
        tx.execute_batch(
            "INSERT INTO orgs (id, name) VALUES ('o1', 'Org o1');
             INSERT INTO resources (id, type, org, project, privacy, published)
                 VALUES ('r', 'vod', 'o1', NULL, 'token', 1);
             INSERT INTO revocations (kind, value, at) VALUES ('jti', 'j1', 5);
             UPDATE meta SET version = 3;
             PRAGMA user_version = 3;",
        )
        .expect("a schema 3 store");
        tx.commit().expect("commit");
        drop(conn);
        let store = SqliteStore::open(&path).expect("upgrade");
        let all = store.changes_since(0).expect("changes");
        assert_eq!(all.seq, 3);
        assert_eq!(
            all.revocations,
            vec![Revocation {
                kind: RevocationKind::Jti,
                value: "j1".into(),
                at: 5,
                expires: None,
            }]
        );
        assert_eq!(all.resources, Some(vec![resource("r", "o1", None)]));
        let none = store.changes_since(3).expect("changes");
        assert_eq!((none.revocations.len(), none.resources), (0, None));
    }

    #[test]
    fn a_version_1_file_is_upgraded_and_keeps_its_orgs() {
        let dir = temp();
        let path = dir.path().join("tollgate.db");
        let conn = Connection::open(&path).expect("plain connection");
        conn.execute_batch(SCHEMA_V1).expect("v1 schema");
        conn.pragma_update(None, "user_version", 1)
            .expect("set user_version");
        conn.execute("INSERT INTO orgs (id, name) VALUES ('o1', 'Org o1')", [])
            .expect("v1 org");
        drop(conn);
        let store = SqliteStore::open(&path).expect("upgrade");
        assert_eq!(store.org("o1").expect("org"), Some(org("o1")));
        let bound = Org {
            azure: Some(AzurePlacement {
                subscription: "s".into(),
                resource_group: "rg".into(),
            }),
            ..org("o1")
        };
        store.put_org(&bound).expect("bind");
        assert_eq!(store.org("o1").expect("org"), Some(bound));
    }

    #[test]
    fn a_file_from_a_newer_build_is_refused() {
        let dir = temp();
        let path = dir.path().join("tollgate.db");
        drop(SqliteStore::open(&path).expect("create"));
        let conn = Connection::open(&path).expect("plain connection");
        let newer = i64::try_from(MIGRATIONS.len() + 1).expect("small");
        conn.pragma_update(None, "user_version", newer)
            .expect("set user_version");
        drop(conn);
        let err = SqliteStore::open(&path).expect_err("a newer schema");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_backend_error_without_sql_in_it() {
        let dir = temp();
        let path = dir.path().join("tollgate.db");
        std::fs::write(&path, vec![b'x'; 8192]).expect("write junk");
        let err = SqliteStore::open(&path).expect_err("junk is not a database");
        let StoreError::Backend(message) = &err else {
            panic!("expected Backend, got {err:?}");
        };
        for sql in ["PRAGMA", "SELECT", "CREATE", "INSERT"] {
            assert!(!message.contains(sql), "{message}");
        }
    }

    #[test]
    fn open_creates_parent_directories_and_sets_wal_full_sync_and_foreign_keys() {
        let dir = temp();
        let path = dir.path().join("a").join("b").join("tollgate.db");
        let store = SqliteStore::open(&path).expect("open");
        assert!(path.is_file());
        assert_eq!(store.path(), path);
        let conn = store.lock().expect("lock");
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("journal_mode");
        let synchronous: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("synchronous");
        let foreign_keys: bool = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .expect("foreign_keys");
        let busy: i64 = conn
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .expect("busy_timeout");
        assert_eq!(mode, "wal");
        assert_eq!(synchronous, 2, "FULL");
        assert!(foreign_keys);
        assert_eq!(busy, 5000);
    }

    #[cfg(unix)]
    #[test]
    fn a_new_store_file_and_its_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp();
        let path = dir.path().join("data").join("tollgate.db");
        drop(SqliteStore::open(&path).expect("open"));
        let mode = |p: &Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("data")), 0o700);
    }

    #[test]
    fn a_poisoned_lock_is_a_backend_error() {
        let dir = temp();
        let store = open(&dir);
        let panicked = std::thread::scope(|s| {
            s.spawn(|| {
                let _held = store.lock().expect("lock");
                panic!("poison the store lock on purpose");
            })
            .join()
        });
        assert!(panicked.is_err());
        assert!(matches!(store.version(), Err(StoreError::Backend(_))));
    }
}
