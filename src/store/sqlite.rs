//! The embedded store: one SQLite file (WAL, `synchronous = FULL`), nothing to install.
//!
//! One connection behind a mutex per handle; every write is one `IMMEDIATE` transaction
//! that also bumps the `meta.version` counter, so [`Store::version`] grows with every
//! committed write, whichever handle or process made it. Several handles (or processes)
//! may open the same file: SQLite's write lock plus a 5 s busy timeout serialise them,
//! which is what makes [`Store::rotate_refresh`] have exactly one winner (THREATS B2).
//!
//! The schema is versioned with `PRAGMA user_version`: [`MIGRATIONS`] are applied in
//! order, each inside the same transaction as the version bump, when a file is opened.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{
    ffi, params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use super::{
    ApiToken, Org, Project, RefreshToken, Result, Revocation, RevocationKind, Rotation, Store,
    StoreError, User,
};
use crate::resource::{Resource, ResourceType};

/// How long a call waits for another connection's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Schema migrations; entry `i` takes the file from `user_version` `i` to `i + 1`.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[SCHEMA_V1];

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
            create_private_dirs(parent).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        create_private_file(path)
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

#[cfg(unix)]
fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dirs(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)
}

/// Create the file owner-only when it does not exist (it holds password hashes); SQLite
/// gives its `-wal` and `-shm` files the same permissions.
#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map(drop)
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

fn corrupt(what: &str) -> StoreError {
    tracing::error!("store: damaged row: {what}");
    StoreError::Backend(format!("damaged row in the database: {what}"))
}

/// Bump the change counter; call in every transaction that changed something.
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

fn bump(tx: &Connection) -> Result<()> {
    tx.execute("UPDATE meta SET version = version + 1 WHERE id = 1", [])
        .db()?;
    Ok(())
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

fn non_empty(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        Err(StoreError::Invalid(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

/// Secrets are stored as SHA-256 digests in lowercase hex, never as themselves.
fn sha256_hex(what: &str, value: &str) -> Result<()> {
    let ok = value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} is not a SHA-256 digest in lowercase hex"
        )))
    }
}

fn time_to_sql(what: &str, t: u64) -> Result<i64> {
    i64::try_from(t).map_err(|_| StoreError::Invalid(format!("{what} is out of range")))
}

fn time_from_sql(t: i64) -> Result<u64> {
    u64::try_from(t).map_err(|_| corrupt("negative time"))
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
            tx.execute(
                "INSERT INTO orgs (id, name) VALUES (?1, ?2)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                params![org.id, org.name],
            )
            .db()?;
            bump(tx)
        })
    }

    fn orgs(&self) -> Result<Vec<Org>> {
        self.read(|c| {
            let mut stmt = c.prepare("SELECT id, name FROM orgs ORDER BY id").db()?;
            let rows = stmt
                .query_map([], |r| {
                    Ok(Org {
                        id: r.get(0)?,
                        name: r.get(1)?,
                    })
                })
                .db()?;
            rows.collect::<rusqlite::Result<_>>().db()
        })
    }

    fn org(&self, id: &str) -> Result<Option<Org>> {
        self.read(|c| {
            c.query_row("SELECT id, name FROM orgs WHERE id = ?1", [id], |r| {
                Ok(Org {
                    id: r.get(0)?,
                    name: r.get(1)?,
                })
            })
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
            let users: Vec<String> = ["projects", "resources", "users", "API tokens"]
                .iter()
                .zip(counts)
                .filter(|(_, n)| *n > 0)
                .map(|(what, n)| format!("{n} {what}"))
                .collect();
            if !users.is_empty() {
                return Err(StoreError::Conflict(format!(
                    "organisation {id} is still used by {}",
                    users.join(", ")
                )));
            }
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
            bump(tx)
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
        let rows = self.read(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT id, type, org, project, privacy, published FROM resources
                     ORDER BY id, type",
                )
                .db()?;
            let rows = stmt.query_map([], resource_row).db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })?;
        rows.into_iter()
            .map(|(id, ty, org, project, privacy, published)| {
                resource_from_row(id, ty, org, project, privacy, published)
            })
            .collect()
    }

    fn delete_resource(&self, id: &str, resource_type: ResourceType) -> Result<()> {
        self.write(|tx| {
            delete_one(
                tx,
                "DELETE FROM resources WHERE id = ?1 AND type = ?2",
                [id, resource_type.as_str()],
                format!("resource {id} ({})", resource_type.as_str()),
            )
        })
    }

    fn put_user(&self, user: &User) -> Result<()> {
        non_empty("user id", &user.id)?;
        non_empty("username", &user.username)?;
        non_empty("password hash", &user.password_hash)?;
        let mut seen = HashSet::new();
        if let Some(twice) = user.orgs.iter().find(|o| !seen.insert(o.as_str())) {
            return Err(StoreError::Invalid(format!(
                "organisation {twice} is listed twice"
            )));
        }
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
    ) -> Result<Rotation> {
        let now_sql = time_to_sql("now", now)?;
        self.write(|tx| {
            let row = tx
                .query_row(
                    "SELECT t.family, f.user, t.org, t.expires_at, t.state,
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
                            r.get::<_, bool>(5)?,
                        ))
                    },
                )
                .optional()
                .db()?;
            let Some((family, user, org, expires_at, state, revoked)) = row else {
                return Ok(Rotation::Unknown);
            };
            let old = RefreshToken {
                hash: hash.to_owned(),
                family,
                user,
                org,
                expires_at: time_from_sql(expires_at)?,
            };
            if revoked || old.expires_at <= now {
                return Ok(Rotation::Dead);
            }
            match state.as_str() {
                "spent" => {
                    tx.execute(
                        "UPDATE refresh_families SET revoked = 1 WHERE id = ?1",
                        [&old.family],
                    )
                    .db()?;
                    tx.execute(
                        "INSERT OR IGNORE INTO revocations (kind, value, at)
                         VALUES (?1, ?2, ?3)",
                        params![RevocationKind::Family.as_str(), old.family, now_sql],
                    )
                    .db()?;
                    bump(tx)?;
                    Ok(Rotation::Reused(old.family))
                }
                "current" => {
                    sha256_hex("new refresh token hash", new_hash)?;
                    let new_expires_at = time_to_sql("expiry", new_expires_at)?;
                    require_org(tx, new_org)?;
                    if exists(
                        tx,
                        "SELECT 1 FROM refresh_tokens WHERE hash = ?1",
                        [new_hash],
                    )? {
                        return Err(StoreError::Conflict("refresh token already exists".into()));
                    }
                    tx.execute(
                        "UPDATE refresh_tokens SET state = 'spent' WHERE hash = ?1",
                        [hash],
                    )
                    .db()?;
                    tx.execute(
                        "INSERT INTO refresh_tokens (hash, family, org, expires_at, state, created)
                         VALUES (?1, ?2, ?3, ?4, 'current', ?5)",
                        params![new_hash, old.family, new_org, new_expires_at, now_sql],
                    )
                    .db()?;
                    bump(tx)?;
                    Ok(Rotation::Rotated(old))
                }
                _ => Err(corrupt("unknown refresh token state")),
            }
        })
    }

    fn revoke(&self, revocation: &Revocation) -> Result<()> {
        non_empty("revocation value", &revocation.value)?;
        let at = time_to_sql("revocation time", revocation.at)?;
        self.write(|tx| {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO revocations (kind, value, at) VALUES (?1, ?2, ?3)",
                    params![revocation.kind.as_str(), revocation.value, at],
                )
                .db()?;
            if inserted == 0 {
                return Ok(());
            }
            revoke_families(tx, revocation)?;
            bump(tx)
        })
    }

    fn revocations(&self) -> Result<Vec<Revocation>> {
        let rows = self.read(|c| {
            let mut stmt = c
                .prepare("SELECT kind, value, at FROM revocations ORDER BY id")
                .db()?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .db()?;
            rows.collect::<rusqlite::Result<Vec<_>>>().db()
        })?;
        rows.into_iter()
            .map(|(kind, value, at)| {
                Ok(Revocation {
                    kind: RevocationKind::parse(&kind)
                        .ok_or_else(|| corrupt("unknown revocation kind"))?,
                    value,
                    at: time_from_sql(at)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    fn temp() -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary directory")
    }

    fn open(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&dir.path().join("data").join("tollgate.db")).expect("open the store")
    }

    /// A stand-in SHA-256 digest, distinct per `n`.
    fn h(n: u32) -> String {
        format!("{n:064x}")
    }

    fn org(id: &str) -> Org {
        Org {
            id: id.into(),
            name: format!("Org {id}"),
        }
    }

    fn project(id: &str, org: &str) -> Project {
        Project {
            id: id.into(),
            org: org.into(),
            name: format!("Project {id}"),
        }
    }

    fn resource(id: &str, org: &str, project: Option<&str>) -> Resource {
        Resource {
            id: id.into(),
            resource_type: ResourceType::Vod,
            org: org.into(),
            project: project.map(Into::into),
            public: false,
            published: true,
        }
    }

    fn user(id: &str, username: &str, orgs: &[&str]) -> User {
        User {
            id: id.into(),
            username: username.into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            orgs: orgs.iter().map(|o| (*o).to_owned()).collect(),
        }
    }

    fn api_token(id: &str, org: &str, n: u32) -> ApiToken {
        ApiToken {
            id: id.into(),
            org: org.into(),
            label: format!("token {id}"),
            hash: h(n),
        }
    }

    fn refresh(n: u32, family: &str, user: &str, org: &str, expires_at: u64) -> RefreshToken {
        RefreshToken {
            hash: h(n),
            family: family.into(),
            user: user.into(),
            org: org.into(),
            expires_at,
        }
    }

    /// A store with org `o1`, user `u1` in it, and a refresh family `f1` whose current
    /// token is `h(1)`, expiring at 1000.
    fn with_family(dir: &tempfile::TempDir) -> SqliteStore {
        let store = open(dir);
        store.put_org(&org("o1")).expect("put org");
        store
            .put_user(&user("u1", "alice", &["o1"]))
            .expect("put user");
        store
            .insert_refresh(&refresh(1, "f1", "u1", "o1", 1000))
            .expect("insert refresh");
        store
    }

    fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(StoreError::Invalid(_)))
    }

    fn is_conflict<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(StoreError::Conflict(_)))
    }

    fn is_not_found<T: std::fmt::Debug>(r: Result<T>) -> bool {
        matches!(r, Err(StoreError::NotFound(_)))
    }

    #[test]
    fn orgs_round_trip_are_listed_by_id_and_put_replaces_the_name() {
        let dir = temp();
        let store = open(&dir);
        assert_eq!(store.orgs().expect("orgs"), vec![]);
        store.put_org(&org("b")).expect("put b");
        store.put_org(&org("a")).expect("put a");
        assert_eq!(store.orgs().expect("orgs"), vec![org("a"), org("b")]);
        assert_eq!(store.org("a").expect("org a"), Some(org("a")));
        assert_eq!(store.org("zzz").expect("org zzz"), None);
        let renamed = Org {
            id: "a".into(),
            name: "Renamed".into(),
        };
        store.put_org(&renamed).expect("rename a");
        assert_eq!(store.org("a").expect("org a"), Some(renamed));
        assert_eq!(store.orgs().expect("orgs").len(), 2);
        store.delete_org("a").expect("delete a");
        assert_eq!(store.orgs().expect("orgs"), vec![org("b")]);
    }

    #[test]
    fn projects_round_trip_and_need_an_existing_org() {
        let dir = temp();
        let store = open(&dir);
        assert!(is_invalid(store.put_project(&project("p1", "o1"))));
        store.put_org(&org("o1")).expect("put org");
        store.put_org(&org("o2")).expect("put org");
        store
            .put_project(&project("p2", "o1"))
            .expect("put project");
        store
            .put_project(&project("p1", "o1"))
            .expect("put project");
        assert_eq!(
            store.projects().expect("projects"),
            vec![project("p1", "o1"), project("p2", "o1")]
        );
        store
            .put_project(&project("p1", "o2"))
            .expect("move an empty project to another org");
        assert_eq!(store.projects().expect("projects")[0], project("p1", "o2"));
        store.delete_project("p1").expect("delete project");
        assert_eq!(
            store.projects().expect("projects"),
            vec![project("p2", "o1")]
        );
    }

    #[test]
    fn resources_round_trip_with_and_without_a_project() {
        let dir = temp();
        let store = open(&dir);
        store.put_org(&org("o1")).expect("put org");
        store
            .put_project(&project("p1", "o1"))
            .expect("put project");
        let plain = Resource {
            public: true,
            published: false,
            ..resource("r1", "o1", None)
        };
        let in_project = Resource {
            resource_type: ResourceType::LiveEventRecording,
            ..resource("r2", "o1", Some("p1"))
        };
        store.put_resource(&plain).expect("put r1");
        store.put_resource(&in_project).expect("put r2");
        assert_eq!(
            store.resource("r1", ResourceType::Vod).expect("r1"),
            Some(plain.clone())
        );
        assert_eq!(
            store
                .resource("r2", ResourceType::LiveEventRecording)
                .expect("r2"),
            Some(in_project.clone())
        );
        assert_eq!(
            store.resources().expect("resources"),
            vec![plain.clone(), in_project]
        );
        let flipped = Resource {
            public: false,
            published: true,
            project: Some("p1".into()),
            ..plain
        };
        store.put_resource(&flipped).expect("replace r1");
        assert_eq!(
            store.resource("r1", ResourceType::Vod).expect("r1"),
            Some(flipped)
        );
        store
            .delete_resource("r1", ResourceType::Vod)
            .expect("delete r1");
        assert_eq!(store.resource("r1", ResourceType::Vod).expect("r1"), None);
        assert_eq!(store.resources().expect("resources").len(), 1);
    }

    #[test]
    fn a_resource_is_keyed_by_id_and_type() {
        let dir = temp();
        let store = open(&dir);
        store.put_org(&org("o1")).expect("put org");
        let vod = resource("same", "o1", None);
        let live = Resource {
            resource_type: ResourceType::Live,
            public: true,
            ..resource("same", "o1", None)
        };
        store.put_resource(&vod).expect("put vod");
        store.put_resource(&live).expect("put live");
        assert_eq!(
            store.resource("same", ResourceType::Vod).expect("vod"),
            Some(vod.clone())
        );
        assert_eq!(
            store.resource("same", ResourceType::Live).expect("live"),
            Some(live)
        );
        assert_eq!(
            store
                .resource("same", ResourceType::AudioEvent)
                .expect("audio"),
            None
        );
        store
            .delete_resource("same", ResourceType::Live)
            .expect("delete live");
        assert_eq!(store.resources().expect("resources"), vec![vod]);
    }

    #[test]
    fn put_resource_rejects_an_unknown_org_an_unknown_project_and_a_project_of_another_org() {
        let dir = temp();
        let store = open(&dir);
        assert!(is_invalid(store.put_resource(&resource("r", "o1", None))));
        store.put_org(&org("o1")).expect("put org");
        store.put_org(&org("o2")).expect("put org");
        store
            .put_project(&project("p2", "o2"))
            .expect("put project");
        assert!(is_invalid(store.put_resource(&resource(
            "r",
            "o1",
            Some("nope")
        ))));
        assert!(is_invalid(store.put_resource(&resource(
            "r",
            "o1",
            Some("p2")
        ))));
        assert_eq!(store.resources().expect("resources"), vec![]);
    }

    #[test]
    fn users_round_trip_with_their_orgs_in_grant_order() {
        let dir = temp();
        let store = open(&dir);
        for id in ["o1", "o2", "o3"] {
            store.put_org(&org(id)).expect("put org");
        }
        let alice = user("u1", "alice", &["o3", "o1", "o2"]);
        let bob = user("u2", "bob", &[]);
        store.put_user(&bob).expect("put bob");
        store.put_user(&alice).expect("put alice");
        assert_eq!(store.user("u1").expect("user"), Some(alice.clone()));
        assert_eq!(
            store.user_by_name("alice").expect("by name"),
            Some(alice.clone())
        );
        assert_eq!(store.user_by_name("Alice").expect("by name"), None);
        assert_eq!(store.user("u9").expect("user"), None);
        assert_eq!(store.users().expect("users"), vec![alice, bob.clone()]);
        store.delete_user("u1").expect("delete alice");
        assert_eq!(store.users().expect("users"), vec![bob]);
        assert_eq!(store.user_by_name("alice").expect("by name"), None);
    }

    #[test]
    fn put_user_replaces_by_id_and_rewrites_the_org_list() {
        let dir = temp();
        let store = open(&dir);
        store.put_org(&org("o1")).expect("put org");
        store.put_org(&org("o2")).expect("put org");
        store
            .put_user(&user("u1", "alice", &["o1", "o2"]))
            .expect("put");
        let changed = User {
            password_hash: "$argon2id$other".into(),
            ..user("u1", "alicia", &["o2"])
        };
        store.put_user(&changed).expect("replace");
        assert_eq!(store.users().expect("users"), vec![changed.clone()]);
        assert_eq!(store.user_by_name("alice").expect("old name"), None);
        assert_eq!(
            store.user_by_name("alicia").expect("new name"),
            Some(changed)
        );
        // o1 is no longer granted to anyone, so it can go.
        store.delete_org("o1").expect("delete o1");
    }

    #[test]
    fn a_duplicate_username_is_a_conflict_and_changes_nothing() {
        let dir = temp();
        let store = open(&dir);
        store
            .put_user(&user("u1", "alice", &[]))
            .expect("put alice");
        store.put_user(&user("u2", "bob", &[])).expect("put bob");
        let before = store.version().expect("version");
        assert!(is_conflict(store.put_user(&user("u3", "alice", &[]))));
        assert!(is_conflict(store.put_user(&user("u2", "alice", &[]))));
        assert_eq!(store.version().expect("version"), before);
        assert_eq!(
            store.users().expect("users"),
            vec![user("u1", "alice", &[]), user("u2", "bob", &[])]
        );
    }

    #[test]
    fn put_user_rejects_an_unknown_org_and_an_org_listed_twice() {
        let dir = temp();
        let store = open(&dir);
        store.put_org(&org("o1")).expect("put org");
        assert!(is_invalid(store.put_user(&user(
            "u1",
            "alice",
            &["o1", "o9"]
        ))));
        assert!(is_invalid(store.put_user(&user(
            "u1",
            "alice",
            &["o1", "o1"]
        ))));
        assert!(is_invalid(store.put_user(&user("", "alice", &[]))));
        assert_eq!(store.users().expect("users"), vec![]);
    }

    #[test]
    fn api_tokens_round_trip_and_are_found_by_hash() {
        let dir = temp();
        let store = open(&dir);
        store.put_org(&org("o1")).expect("put org");
        store.put_org(&org("o2")).expect("put org");
        let t1 = api_token("t1", "o1", 1);
        let t2 = api_token("t2", "o2", 2);
        store.put_api_token(&t2).expect("put t2");
        store.put_api_token(&t1).expect("put t1");
        assert_eq!(store.api_tokens().expect("tokens"), vec![t1.clone(), t2]);
        assert_eq!(store.api_token_by_hash(&h(1)).expect("by hash"), Some(t1));
        assert_eq!(store.api_token_by_hash(&h(3)).expect("by hash"), None);
        let relabelled = ApiToken {
            label: "renamed".into(),
            ..api_token("t1", "o1", 4)
        };
        store.put_api_token(&relabelled).expect("replace t1");
        assert_eq!(store.api_token_by_hash(&h(1)).expect("old hash"), None);
        assert_eq!(
            store.api_token_by_hash(&h(4)).expect("new hash"),
            Some(relabelled)
        );
        store.delete_api_token("t2").expect("delete t2");
        assert_eq!(store.api_tokens().expect("tokens").len(), 1);
    }

    #[test]
    fn put_api_token_rejects_an_unknown_org_a_hash_in_use_and_a_plaintext_secret() {
        let dir = temp();
        let store = open(&dir);
        assert!(is_invalid(store.put_api_token(&api_token("t1", "o1", 1))));
        store.put_org(&org("o1")).expect("put org");
        store
            .put_api_token(&api_token("t1", "o1", 1))
            .expect("put t1");
        assert!(is_conflict(store.put_api_token(&api_token("t2", "o1", 1))));
        for not_a_digest in ["secret", &h(0xabcdef).to_uppercase(), &h(1)[1..], ""] {
            let t = ApiToken {
                hash: not_a_digest.to_owned(),
                ..api_token("t3", "o1", 0)
            };
            assert!(is_invalid(store.put_api_token(&t)), "{not_a_digest:?}");
        }
        assert_eq!(store.api_tokens().expect("tokens").len(), 1);
    }

    #[test]
    fn delete_org_is_a_conflict_while_anything_refers_to_it() {
        let dir = temp();
        let store = open(&dir);
        store.put_org(&org("o1")).expect("put org");
        store.put_org(&org("o2")).expect("put org");

        store.put_project(&project("p", "o1")).expect("project");
        assert!(is_conflict(store.delete_org("o1")));
        store.delete_project("p").expect("delete project");

        store
            .put_resource(&resource("r", "o1", None))
            .expect("resource");
        assert!(is_conflict(store.delete_org("o1")));
        store
            .delete_resource("r", ResourceType::Vod)
            .expect("delete resource");

        store
            .put_user(&user("u", "alice", &["o2", "o1"]))
            .expect("user");
        assert!(is_conflict(store.delete_org("o1")));
        store.delete_user("u").expect("delete user");

        store
            .put_api_token(&api_token("t", "o1", 1))
            .expect("api token");
        assert!(is_conflict(store.delete_org("o1")));
        store.delete_api_token("t").expect("delete api token");

        store.delete_org("o1").expect("delete the unused org");
        assert_eq!(store.org("o1").expect("org"), None);
    }

    #[test]
    fn refresh_tokens_do_not_pin_their_org() {
        let dir = temp();
        let store = with_family(&dir);
        store
            .put_user(&user("u1", "alice", &[]))
            .expect("take o1 away from alice");
        store.delete_org("o1").expect("delete o1");
        assert!(store.refresh_token(&h(1)).expect("lookup").is_some());
    }

    #[test]
    fn deleting_a_missing_thing_is_not_found() {
        let dir = temp();
        let store = open(&dir);
        assert!(is_not_found(store.delete_org("x")));
        assert!(is_not_found(store.delete_project("x")));
        assert!(is_not_found(store.delete_resource("x", ResourceType::Vod)));
        assert!(is_not_found(store.delete_user("x")));
        assert!(is_not_found(store.delete_api_token("x")));
        assert_eq!(store.version().expect("version"), 0);
    }

    #[test]
    fn a_project_with_resources_cannot_be_deleted_or_moved_to_another_org() {
        let dir = temp();
        let store = open(&dir);
        store.put_org(&org("o1")).expect("put org");
        store.put_org(&org("o2")).expect("put org");
        store.put_project(&project("p", "o1")).expect("project");
        store
            .put_resource(&resource("r", "o1", Some("p")))
            .expect("resource");
        assert!(is_conflict(store.delete_project("p")));
        assert!(is_conflict(store.put_project(&project("p", "o2"))));
        assert_eq!(
            store.projects().expect("projects"),
            vec![project("p", "o1")]
        );
        let renamed = Project {
            name: "renamed".into(),
            ..project("p", "o1")
        };
        store.put_project(&renamed).expect("rename in place");
        assert_eq!(store.projects().expect("projects"), vec![renamed]);
    }

    #[test]
    fn refresh_tokens_round_trip() {
        let dir = temp();
        let store = with_family(&dir);
        assert_eq!(
            store.refresh_token(&h(1)).expect("lookup"),
            Some((refresh(1, "f1", "u1", "o1", 1000), true))
        );
        assert_eq!(store.refresh_token(&h(2)).expect("lookup"), None);
    }

    #[test]
    fn insert_refresh_rejects_an_unknown_user_or_org_and_an_existing_family_or_hash() {
        let dir = temp();
        let store = with_family(&dir);
        assert!(is_invalid(
            store.insert_refresh(&refresh(2, "f2", "nobody", "o1", 1000))
        ));
        assert!(is_invalid(
            store.insert_refresh(&refresh(2, "f2", "u1", "nowhere", 1000))
        ));
        assert!(is_conflict(
            store.insert_refresh(&refresh(2, "f1", "u1", "o1", 1000))
        ));
        assert!(is_conflict(
            store.insert_refresh(&refresh(1, "f2", "u1", "o1", 1000))
        ));
        let plaintext = RefreshToken {
            hash: "opaque-token".into(),
            ..refresh(0, "f2", "u1", "o1", 1000)
        };
        assert!(is_invalid(store.insert_refresh(&plaintext)));
        assert!(is_invalid(store.insert_refresh(&refresh(
            2,
            "f2",
            "u1",
            "o1",
            u64::MAX
        ))));
        assert_eq!(store.refresh_token(&h(2)).expect("lookup"), None);
    }

    #[test]
    fn rotating_the_current_token_spends_it_and_makes_the_new_one_current() {
        let dir = temp();
        let store = with_family(&dir);
        store.put_org(&org("o2")).expect("put org");
        let rotated = store
            .rotate_refresh(&h(1), &h(2), "o2", 2000, 500)
            .expect("rotate");
        assert_eq!(
            rotated,
            Rotation::Rotated(refresh(1, "f1", "u1", "o1", 1000))
        );
        assert_eq!(
            store.refresh_token(&h(2)).expect("lookup"),
            Some((refresh(2, "f1", "u1", "o2", 2000), true))
        );
        assert_eq!(
            store
                .refresh_token(&h(1))
                .expect("lookup")
                .map(|(_, current)| current),
            Some(false),
            "a spent token is not current"
        );
        let again = store
            .rotate_refresh(&h(2), &h(3), "o1", 3000, 600)
            .expect("rotate again");
        assert_eq!(again, Rotation::Rotated(refresh(2, "f1", "u1", "o2", 2000)));
        assert_eq!(store.revocations().expect("revocations"), vec![]);
    }

    #[test]
    fn a_rotation_that_cannot_complete_changes_nothing() {
        let dir = temp();
        let store = with_family(&dir);
        store
            .insert_refresh(&refresh(7, "f7", "u1", "o1", 1000))
            .expect("another family");
        let before = store.version().expect("version");
        assert!(is_conflict(store.rotate_refresh(
            &h(1),
            &h(7),
            "o1",
            2000,
            500
        )));
        assert!(is_invalid(store.rotate_refresh(
            &h(1),
            &h(2),
            "nowhere",
            2000,
            500
        )));
        assert!(is_invalid(store.rotate_refresh(
            &h(1),
            "plain",
            "o1",
            2000,
            500
        )));
        assert_eq!(store.version().expect("version"), before);
        assert!(matches!(
            store.rotate_refresh(&h(1), &h(2), "o1", 2000, 500),
            Ok(Rotation::Rotated(_))
        ));
    }

    #[test]
    fn b2_reuse_of_a_rotated_refresh_token_revokes_the_family() {
        let dir = temp();
        let store = with_family(&dir);
        assert!(matches!(
            store.rotate_refresh(&h(1), &h(2), "o1", 2000, 500),
            Ok(Rotation::Rotated(_))
        ));
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(3), "o1", 2000, 501)
                .expect("present A again"),
            Rotation::Reused("f1".into())
        );
        assert_eq!(
            store
                .rotate_refresh(&h(2), &h(4), "o1", 2000, 502)
                .expect("present B"),
            Rotation::Dead
        );
        assert_eq!(store.refresh_token(&h(3)).expect("lookup"), None);
        assert_eq!(store.refresh_token(&h(4)).expect("lookup"), None);
        assert_eq!(
            store.revocations().expect("revocations"),
            vec![Revocation {
                kind: RevocationKind::Family,
                value: "f1".into(),
                at: 501,
            }]
        );
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(5), "o1", 2000, 503)
                .expect("present A a third time"),
            Rotation::Dead
        );
    }

    #[test]
    fn b2_two_concurrent_refreshes_have_exactly_one_winner() {
        const ROUNDS: u32 = 50;
        let dir = temp();
        let path = dir.path().join("data").join("tollgate.db");
        let setup = with_family(&dir);
        for round in 0..ROUNDS {
            setup
                .insert_refresh(&refresh(
                    1000 + round,
                    &format!("race{round}"),
                    "u1",
                    "o1",
                    1000,
                ))
                .expect("insert a family per round");
        }
        drop(setup);
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2_u32)
            .map(|racer| {
                let store = SqliteStore::open(&path).expect("open a second handle");
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    (0..ROUNDS)
                        .map(|round| {
                            barrier.wait();
                            store
                                .rotate_refresh(
                                    &h(1000 + round),
                                    &h(10_000 + 100 * round + racer),
                                    "o1",
                                    2000,
                                    500,
                                )
                                .expect("rotate")
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let results: Vec<Vec<Rotation>> = racers
            .into_iter()
            .map(|t| t.join().expect("racer thread"))
            .collect();
        let [first, second] = &results[..] else {
            panic!("two racers, got {}", results.len());
        };
        assert_eq!(first.len(), ROUNDS as usize);
        for (round, pair) in first.iter().zip(second).enumerate() {
            let pair = [pair.0, pair.1];
            let rotated = pair
                .iter()
                .filter(|r| matches!(r, Rotation::Rotated(_)))
                .count();
            let reused = pair
                .iter()
                .filter(|r| **r == &Rotation::Reused(format!("race{round}")))
                .count();
            assert_eq!((rotated, reused), (1, 1), "round {round}: {pair:?}");
        }
        let store = SqliteStore::open(&path).expect("reopen");
        let families = store
            .revocations()
            .expect("revocations")
            .into_iter()
            .filter(|r| r.kind == RevocationKind::Family)
            .count();
        assert_eq!(families, ROUNDS as usize);
    }

    #[test]
    fn an_expired_refresh_token_is_dead() {
        let dir = temp();
        let store = with_family(&dir);
        let before = store.version().expect("version");
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(2), "o1", 5000, 1001)
                .expect("rotate"),
            Rotation::Dead
        );
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(2), "o1", 5000, 1000)
                .expect("rotate at the expiry second"),
            Rotation::Dead
        );
        assert_eq!(store.refresh_token(&h(2)).expect("lookup"), None);
        assert_eq!(store.version().expect("version"), before);
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(2), "o1", 5000, 999)
                .expect("rotate just before expiry"),
            Rotation::Rotated(refresh(1, "f1", "u1", "o1", 1000))
        );
    }

    #[test]
    fn an_unknown_refresh_token_is_unknown() {
        let dir = temp();
        let store = with_family(&dir);
        assert_eq!(
            store
                .rotate_refresh(&h(9), &h(2), "o1", 5000, 500)
                .expect("rotate"),
            Rotation::Unknown
        );
        assert_eq!(store.refresh_token(&h(2)).expect("lookup"), None);
    }

    #[test]
    fn a_family_revoked_by_an_admin_or_by_subject_is_dead() {
        let dir = temp();
        let store = with_family(&dir);
        store
            .insert_refresh(&refresh(2, "f2", "u1", "o1", 1000))
            .expect("a second family");
        store
            .revoke(&Revocation {
                kind: RevocationKind::Family,
                value: "f1".into(),
                at: 100,
            })
            .expect("revoke f1");
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(3), "o1", 5000, 500)
                .expect("rotate f1"),
            Rotation::Dead
        );
        store
            .revoke(&Revocation {
                kind: RevocationKind::Subject,
                value: "u1".into(),
                at: 100,
            })
            .expect("revoke u1");
        assert_eq!(
            store
                .rotate_refresh(&h(2), &h(3), "o1", 5000, 500)
                .expect("rotate f2"),
            Rotation::Dead
        );
    }

    #[test]
    fn deleting_a_user_deletes_their_refresh_tokens() {
        let dir = temp();
        let store = with_family(&dir);
        store.delete_user("u1").expect("delete user");
        assert_eq!(store.refresh_token(&h(1)).expect("lookup"), None);
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(2), "o1", 5000, 500)
                .expect("rotate"),
            Rotation::Unknown
        );
    }

    #[test]
    fn revocations_round_trip_in_order_and_revoke_is_idempotent() {
        let dir = temp();
        let store = open(&dir);
        let all = [
            (RevocationKind::Jti, "j1", 10),
            (RevocationKind::Subject, "s1", 20),
            (RevocationKind::Org, "o1", 30),
            (RevocationKind::Family, "f1", 40),
        ]
        .map(|(kind, value, at)| Revocation {
            kind,
            value: value.into(),
            at,
        });
        for r in &all {
            store.revoke(r).expect("revoke");
        }
        let v = store.version().expect("version");
        assert_eq!(v, 4);
        let again = Revocation {
            at: 99,
            ..all[0].clone()
        };
        store.revoke(&again).expect("revoke again");
        store.revoke(&all[0]).expect("revoke again");
        assert_eq!(store.version().expect("version"), v);
        assert_eq!(store.revocations().expect("revocations"), all.to_vec());
        assert!(is_invalid(store.revoke(&Revocation {
            kind: RevocationKind::Jti,
            value: String::new(),
            at: 1,
        })));
    }

    #[test]
    fn version_grows_with_every_write_and_not_with_reads() {
        let dir = temp();
        let store = open(&dir);
        let mut last = store.version().expect("version");
        assert_eq!(last, 0);
        let mut grew = |what: &str| {
            let now = store.version().expect("version");
            assert!(now > last, "{what}: {now} after {last}");
            last = now;
        };
        store.put_org(&org("o1")).expect("put org");
        grew("put_org");
        store.put_project(&project("p", "o1")).expect("project");
        grew("put_project");
        store
            .put_resource(&resource("r", "o1", Some("p")))
            .expect("resource");
        grew("put_resource");
        store.put_user(&user("u1", "alice", &["o1"])).expect("user");
        grew("put_user");
        store
            .put_api_token(&api_token("t", "o1", 1))
            .expect("api token");
        grew("put_api_token");
        store
            .insert_refresh(&refresh(1, "f1", "u1", "o1", 1000))
            .expect("insert refresh");
        grew("insert_refresh");
        store
            .rotate_refresh(&h(1), &h(2), "o1", 1000, 500)
            .expect("rotate");
        grew("rotate_refresh (rotated)");
        store
            .rotate_refresh(&h(1), &h(3), "o1", 1000, 500)
            .expect("reuse");
        grew("rotate_refresh (reused)");
        store
            .revoke(&Revocation {
                kind: RevocationKind::Jti,
                value: "j".into(),
                at: 1,
            })
            .expect("revoke");
        grew("revoke");

        let before = store.version().expect("version");
        store.orgs().expect("orgs");
        store.org("o1").expect("org");
        store.projects().expect("projects");
        store.resources().expect("resources");
        store.resource("r", ResourceType::Vod).expect("resource");
        store.users().expect("users");
        store.user("u1").expect("user");
        store.user_by_name("alice").expect("user by name");
        store.api_tokens().expect("api tokens");
        store.api_token_by_hash(&h(1)).expect("api token by hash");
        store.refresh_token(&h(2)).expect("refresh token");
        store.revocations().expect("revocations");
        store
            .rotate_refresh(&h(99), &h(98), "o1", 1000, 500)
            .expect("unknown rotation");
        store
            .rotate_refresh(&h(2), &h(98), "o1", 1000, 500)
            .expect("dead rotation");
        assert_eq!(store.version().expect("version"), before);

        let mut grew = |what: &str| {
            let now = store.version().expect("version");
            assert!(now > last, "{what}: {now} after {last}");
            last = now;
        };
        store.delete_api_token("t").expect("delete api token");
        grew("delete_api_token");
        store.delete_user("u1").expect("delete user");
        grew("delete_user");
        store
            .delete_resource("r", ResourceType::Vod)
            .expect("delete resource");
        grew("delete_resource");
        store.delete_project("p").expect("delete project");
        grew("delete_project");
        store.delete_org("o1").expect("delete org");
        grew("delete_org");
    }

    #[test]
    fn a_write_by_another_handle_shows_in_version() {
        let dir = temp();
        let a = open(&dir);
        let b = open(&dir);
        let before = a.version().expect("version");
        b.put_org(&org("o1")).expect("put org through b");
        assert!(a.version().expect("version") > before);
        assert_eq!(a.org("o1").expect("org"), Some(org("o1")));
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
            store.rotate_refresh(&h(1), &h(2), "o1", 2000, 500),
            Ok(Rotation::Rotated(_))
        ));
        assert!(matches!(
            store.rotate_refresh(&h(60), &h(61), "o1", 2000, 500),
            Ok(Rotation::Rotated(_))
        ));
        assert!(matches!(
            store.rotate_refresh(&h(60), &h(62), "o1", 2000, 501),
            Ok(Rotation::Reused(_))
        ));
        store
            .revoke(&Revocation {
                kind: RevocationKind::Jti,
                value: "j1".into(),
                at: 7,
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
                .rotate_refresh(&h(61), &h(63), "o1", 2000, 502)
                .expect("revoked family"),
            Rotation::Dead
        );
        assert_eq!(
            store
                .rotate_refresh(&h(2), &h(3), "o1", 2000, 502)
                .expect("current token"),
            Rotation::Rotated(refresh(2, "f1", "u1", "o1", 2000))
        );
        assert_eq!(
            store
                .rotate_refresh(&h(1), &h(4), "o1", 2000, 503)
                .expect("spent token"),
            Rotation::Reused("f1".into())
        );
    }

    #[test]
    fn opening_a_file_again_keeps_schema_version_1() {
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
        assert_eq!(version, 1);
        assert_eq!(MIGRATIONS.len(), 1);
    }

    #[test]
    fn a_file_from_a_newer_build_is_refused() {
        let dir = temp();
        let path = dir.path().join("tollgate.db");
        drop(SqliteStore::open(&path).expect("create"));
        let conn = Connection::open(&path).expect("plain connection");
        conn.pragma_update(None, "user_version", 2)
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
