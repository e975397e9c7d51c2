//! The shared store: PostgreSQL, for a fleet of gates on one database
//! (`[store] url = "postgres://…"`). Same tables, constraints and rules as the embedded
//! SQLite store ([`super::sqlite`]); the conformance suite pins both to one behaviour.
//! It never sees HTTP or the configuration: its settings arrive as [`PgOptions`].
//!
//! **Driver.** `tokio-postgres` with a `deadpool-postgres` pool and TLS through rustls
//! (`tokio-postgres-rustls`, the gate's aws-lc-rs provider). rustls always verifies the
//! database's certificate (against `ca_file`, else the system roots), so `sslmode=require`
//! means verified TLS; `prefer` (libpq's default, which quietly falls back to cleartext)
//! is refused for any host but loopback and Unix sockets.
//!
//! **Sync over async.** [`Store`] is synchronous and called from `spawn_blocking` threads
//! and the CLI. A [`PgStore`] owns a small tokio runtime of its own (its connections'
//! I/O tasks live there); each call is one future run to completion with
//! [`tokio::runtime::Handle::block_on`] on the calling thread. That never blocks a tokio
//! worker: tokio refuses (panics) if a store call is made on one, so a misplaced call
//! fails loudly in tests instead of stalling a runtime. The runtime is shut down in the
//! background when the store is dropped, so dropping it anywhere is safe.
//!
//! **Transactions.** Every write is one transaction (READ COMMITTED) that ends by bumping
//! `meta.version`, so [`Store::version`] grows with every committed write of any node;
//! that number is the change feed's sequence number, in commit order because the `meta`
//! row stays locked until commit ([`super::feed`]). A write that changed a revocation
//! or a resource also notifies `tollgate_changes` (delivered at commit), which each
//! gate's listener (`listen.rs`) turns into a catch-up. Every call has a time limit
//! ([`CALL_TIMEOUT`]; the migration at open a longer one).
//! The check-then-write steps are covered by the schema's constraints (foreign keys,
//! unique keys), which turn a concurrent change into `Conflict`/`Invalid`, never into a
//! broken invariant. Refresh rotation takes `SELECT … FOR UPDATE` on the token's family
//! row before reading the token: racers on one family queue on that row lock and each
//! re-reads the token after the one before it committed, so exactly one sees it current
//! (`Rotated`) and the other sees it spent (`Reissued` or `Reused`) — one answer per
//! call, no aborts to retry (SERIALIZABLE would abort the loser and need a retry loop to
//! reach the same answer). Lock order is family rows, then `meta`, and `meta` is taken
//! last and only released by commit, so rotations and revocations cannot deadlock each
//! other; should PostgreSQL still abort a write as a deadlock (two admin writes over one
//! user's families at once), the call fails as "busy" and changes nothing.
//!
//! **Schema.** [`MIGRATIONS`] are applied in order at open, in one transaction that
//! records each in `tollgate_schema`, under an advisory lock (per schema) so gates
//! starting together migrate once. Never edit a migration that has shipped; append.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, Row, Transaction};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::feed::{self, ListenerState};
use super::rules::{
    self, corrupt, limit_to_sql, non_empty, revocation_row, sha256_hex, time_from_sql, time_to_sql,
    Verdict,
};
use super::{
    ApiToken, AzurePlacement, Changes, Org, Project, RefreshFamily, RefreshToken, Result,
    Revocation, RevocationKind, Rotation, Store, StoreError, StoredRefreshToken, Subscription,
    User,
};
use crate::resource::{Resource, ResourceType};

mod listen;

/// How long connecting to the database (TCP, TLS and start-up: the pool's create
/// timeout covers the whole, not only the TCP connect), or waiting for a pooled
/// connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one store call may take in all, connection included: a database that
/// accepts connections but stops answering (a hung server, a partition) fails the call
/// here instead of holding its thread, and the change-feed loop, forever.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long bringing the schema up to date at open may take: a migration rewrites whole
/// tables (version 4 dates every revocation), which can outlast one call's limit.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(600);

/// The store's time limits ([`CONNECT_TIMEOUT`], [`CALL_TIMEOUT`]; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) call: Duration,
}

impl Timeouts {
    const DEFAULT: Self = Self {
        connect: CONNECT_TIMEOUT,
        call: CALL_TIMEOUT,
    };
}

/// Schema migrations; entry `i` takes the database from version `i` to `i + 1`.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    SCHEMA_V2_V3_IN_V1,
    SCHEMA_V2_V3_IN_V1,
    SCHEMA_V4_CHANGE_FEED,
    SCHEMA_V5_REVOCATION_EXPIRY,
];

/// Versions 2 and 3: nothing. They are SQLite's `spent_at` and Azure placement, which
/// this schema had from version 1; kept as steps so that both backends number their
/// schema alike from version 4 on.
const SCHEMA_V2_V3_IN_V1: &str = "";

/// Version 4: the change feed ([`super::feed`]). Each revocation carries the sequence
/// number (`meta.version`) of the write that recorded it, and `meta` the number of the
/// last write that changed a resource. What exists already is dated at the current
/// number: a node that applied less reads it again (harmless), none skips it.
const SCHEMA_V4_CHANGE_FEED: &str = "
ALTER TABLE meta ADD COLUMN resources_seq BIGINT NOT NULL DEFAULT 0 CHECK (resources_seq >= 0);
UPDATE meta SET resources_seq = version;
ALTER TABLE revocations ADD COLUMN seq BIGINT NOT NULL DEFAULT 0 CHECK (seq >= 0);
UPDATE revocations SET seq = (SELECT version FROM meta WHERE id = 1);
CREATE INDEX revocations_by_seq ON revocations (seq);
";

/// Version 1: the SQLite store's schema at its version 3 (refresh tokens' `spent_at`,
/// organisations' Azure placement), in PostgreSQL's types. `user` is a reserved word
/// here, so the columns naming a user are `user_id`.
const SCHEMA_V1: &str = "
CREATE TABLE meta (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL CHECK (version >= 0)
);
INSERT INTO meta (id, version) VALUES (1, 0);

CREATE TABLE orgs (
    id                   TEXT NOT NULL PRIMARY KEY,
    name                 TEXT NOT NULL,
    azure_subscription   TEXT,
    azure_resource_group TEXT,
    CHECK ((azure_subscription IS NULL) = (azure_resource_group IS NULL))
);

CREATE TABLE projects (
    id   TEXT NOT NULL PRIMARY KEY,
    org  TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    UNIQUE (id, org)
);
CREATE INDEX projects_by_org ON projects (org);

CREATE TABLE resources (
    id        TEXT NOT NULL,
    type      TEXT NOT NULL,
    org       TEXT NOT NULL REFERENCES orgs (id),
    project   TEXT,
    privacy   TEXT NOT NULL CHECK (privacy IN ('public', 'token')),
    published BOOLEAN NOT NULL,
    PRIMARY KEY (id, type),
    -- A resource's project belongs to the resource's org (not checked when NULL).
    FOREIGN KEY (project, org) REFERENCES projects (id, org)
);
CREATE INDEX resources_by_org ON resources (org);
CREATE INDEX resources_by_project ON resources (project, org);

CREATE TABLE users (
    id            TEXT NOT NULL PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL
);

CREATE TABLE user_orgs (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org      TEXT NOT NULL REFERENCES orgs (id),
    position INTEGER NOT NULL,
    PRIMARY KEY (user_id, org),
    UNIQUE (user_id, position)
);
CREATE INDEX user_orgs_by_org ON user_orgs (org);

CREATE TABLE api_tokens (
    id    TEXT NOT NULL PRIMARY KEY,
    org   TEXT NOT NULL REFERENCES orgs (id),
    label TEXT NOT NULL,
    hash  TEXT NOT NULL UNIQUE
);
CREATE INDEX api_tokens_by_org ON api_tokens (org);

CREATE TABLE refresh_families (
    id      TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_families_by_user ON refresh_families (user_id);

-- The org is not a foreign key: old tokens must not pin an organisation forever.
CREATE TABLE refresh_tokens (
    hash       TEXT NOT NULL PRIMARY KEY,
    family     TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
    org        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    state      TEXT NOT NULL CHECK (state IN ('current', 'spent')),
    created    BIGINT NOT NULL DEFAULT (extract(epoch FROM now())::BIGINT),
    -- When it stopped being current (NULL while current).
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family);
CREATE UNIQUE INDEX refresh_tokens_one_current_per_family
    ON refresh_tokens (family) WHERE state = 'current';

CREATE TABLE revocations (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind  TEXT NOT NULL CHECK (kind IN ('jti', 'subject', 'org', 'family')),
    value TEXT NOT NULL,
    at    BIGINT NOT NULL,
    UNIQUE (kind, value)
);
";

/// Version 5: revocations record the last second they matter (`jti` revocations only; NULL: for
/// ever), and [`Store::prune_revocations`] finds the expired ones by index. The same
/// step as the SQLite store's.
const SCHEMA_V5_REVOCATION_EXPIRY: &str = "
ALTER TABLE revocations ADD COLUMN expires BIGINT;
CREATE INDEX revocations_by_expiry ON revocations (expires) WHERE expires IS NOT NULL;
";

/// Where and how to reach the database: plain values from `[store]` (this module never
/// reads the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// `postgres://user@host:port/dbname?sslmode=require` (libpq's URL form).
    pub url: String,
    /// A file holding the password (its first line). None: `PGPASSWORD`, else none.
    pub password_file: Option<PathBuf>,
    /// PEM roots for the database's certificate. None: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Connections in the pool, at most.
    pub pool_size: usize,
}

/// The PostgreSQL [`Store`].
pub struct PgStore {
    pool: Pool,
    /// The change-feed listener's connection settings.
    listen: listen::Listen,
    /// The longest a store call may take.
    call_timeout: Duration,
    /// Runs the connections' I/O; `Option` only so that `Drop` can take it.
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // A runtime dropped the ordinary way blocks, which tokio forbids inside async code.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl PgStore {
    /// Connect to the database `options` names (the password from its file or
    /// `PGPASSWORD`) and bring its schema up to date. Call from a thread that may block.
    pub fn open(options: &PgOptions) -> Result<Self> {
        Self::open_with(options, Timeouts::DEFAULT)
    }

    /// [`open`](Self::open) with these time limits.
    pub(crate) fn open_with(options: &PgOptions, timeouts: Timeouts) -> Result<Self> {
        let mut config = connect_config(options)?;
        config.connect_timeout(timeouts.connect);
        let tls = MakeRustlsConnect::new(tls_config(options.ca_file.as_deref())?);
        let listen = listen::Listen::new(config.clone(), tls.clone(), timeouts.connect);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tollgate-store")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot start the store's runtime: {e}")))?;
        let handle = runtime.handle().clone();
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeouts.connect))
            .create_timeout(Some(timeouts.connect))
            .recycle_timeout(Some(timeouts.connect))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build the connection pool: {e}")))?;
        let store = Self {
            pool,
            listen,
            call_timeout: timeouts.call,
            runtime: Some(runtime),
            handle,
        };
        store.run_within(MIGRATION_TIMEOUT.max(timeouts.call), migrate(&store.pool))?;
        Ok(store)
    }

    /// Run one store call to completion on the calling (blocking) thread, within the
    /// call timeout. A call cut short drops its connection's transaction (rolled back).
    fn run<T>(&self, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.run_within(self.call_timeout, call)
    }

    /// [`run`](Self::run) with the time limit `limit`.
    fn run_within<T>(&self, limit: Duration, call: impl Future<Output = Result<T>>) -> Result<T> {
        self.handle.block_on(async {
            tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
                tracing::error!(
                    seconds = limit.as_secs_f64(),
                    "store: the database did not answer in time"
                );
                Err(StoreError::Backend(
                    "the database did not answer in time".into(),
                ))
            })
        })
    }

    /// Run `f` in a write transaction, committing what it did; an error rolls it back.
    /// `f` calls [`bump`] when it changed something.
    fn write<T>(&self, f: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.run(async {
            let mut conn = connection(&self.pool).await?;
            let tx = conn.transaction().await.db()?;
            let out = f(&tx).await?;
            tx.commit().await.db()?;
            Ok(out)
        })
    }

    /// Run `f` on one consistent snapshot (a read-only REPEATABLE READ transaction).
    fn read<T>(&self, f: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.run(async {
            let mut conn = connection(&self.pool).await?;
            let tx = conn
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .db()?;
            let out = f(&tx).await?;
            tx.commit().await.db()?;
            Ok(out)
        })
    }

    /// Run one read-only query outside any transaction (one statement is one snapshot).
    fn query(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>> {
        self.run(async {
            let conn = connection(&self.pool).await?;
            conn.query(sql, params).await.db()
        })
    }
}

/// A pooled connection; the pool's failure as a store error.
async fn connection(pool: &Pool) -> Result<Object> {
    pool.get().await.map_err(|e| {
        tracing::error!(error = %e, "store: cannot get a database connection");
        StoreError::Backend("the database is unreachable".into())
    })
}

/// The driver's connection settings from `options`: the URL, the password from its
/// file or the environment, a connect timeout, and the TLS rule.
fn connect_config(options: &PgOptions) -> Result<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|_| StoreError::Invalid("the database URL cannot be parsed".into()))?;
    require_tls_off_this_machine(&config)?;
    if let Some(password) = password(options.password_file.as_deref())? {
        config.password(password);
    }
    config.connect_timeout(CONNECT_TIMEOUT);
    config.application_name("tollgate");
    Ok(config)
}

/// `prefer` falls back to cleartext when the server offers no TLS: acceptable on this
/// machine (loopback, Unix sockets), refused for any other host. `require` (verified
/// TLS) or an explicit `disable` are the operator's choices.
fn require_tls_off_this_machine(config: &tokio_postgres::Config) -> Result<()> {
    if config.get_ssl_mode() != SslMode::Prefer {
        return Ok(());
    }
    let remote = config.get_hosts().iter().find(|h| match h {
        Host::Tcp(name) => !is_loopback(name),
        #[cfg(unix)]
        Host::Unix(_) => false,
    });
    match remote {
        Some(Host::Tcp(name)) => Err(StoreError::Invalid(format!(
            "the database host {name} is not on this machine: add sslmode=require \
             (verified TLS) to the URL, or sslmode=disable to send it in cleartext"
        ))),
        _ => Ok(()),
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The password: the first line of `file` when given, else `PGPASSWORD`, else none (the
/// URL's own, or a method without one).
fn password(file: Option<&std::path::Path>) -> Result<Option<String>> {
    let Some(file) = file else {
        return Ok(std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()));
    };
    let text = std::fs::read_to_string(file).map_err(|e| {
        StoreError::Invalid(format!(
            "cannot read the database password file {}: {e}",
            file.display()
        ))
    })?;
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(StoreError::Invalid(format!(
            "the database password file {} is empty",
            file.display()
        )));
    }
    Ok(Some(first.to_owned()))
}

/// rustls client settings: the gate's provider, roots from `ca_file` or the system.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
                .map_err(|e| {
                    StoreError::Invalid(format!("cannot read ca_file {}: {e}", path.display()))
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StoreError::Invalid(format!(
                    "ca_file {} holds no usable certificate",
                    path.display()
                )));
            }
        }
        None => {
            // A missing or partly unreadable system store only means fewer roots.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("TLS settings: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Apply the migrations this database lacks, one transaction each, under an advisory
/// lock (per schema) so that gates starting together migrate once.
async fn migrate(pool: &Pool) -> Result<()> {
    let mut conn = connection(pool).await?;
    let tx = conn.transaction().await.db()?;
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         SELECT pg_advisory_xact_lock(hashtext('tollgate schema ' || current_schema()));
         CREATE TABLE IF NOT EXISTS tollgate_schema (
             version    INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );",
    )
    .await
    .db()?;
    let current: i32 = tx
        .query_one("SELECT COALESCE(max(version), 0) FROM tollgate_schema", &[])
        .await
        .db()?
        .try_get(0)
        .db()?;
    let known = MIGRATIONS.len();
    let current = usize::try_from(current)
        .ok()
        .filter(|&v| v <= known)
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "the database has schema version {current}; this build knows up to {known}"
            ))
        })?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.batch_execute(sql).await.db()?;
        let version =
            i32::try_from(i + 1).map_err(|_| StoreError::Backend("schema version".into()))?;
        tx.execute(
            "INSERT INTO tollgate_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .db()?;
    }
    tx.commit().await.db()
}

/// Driver results into store results, with messages fit for API users: a short
/// description, never SQL. The full error goes to the log.
trait Db<T> {
    fn db(self) -> Result<T>;
}

impl<T> Db<T> for std::result::Result<T, tokio_postgres::Error> {
    fn db(self) -> Result<T> {
        self.map_err(db_err)
    }
}

fn db_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        if *code == SqlState::UNIQUE_VIOLATION {
            return StoreError::Conflict("already exists".into());
        }
        if *code == SqlState::FOREIGN_KEY_VIOLATION {
            return StoreError::Invalid("refers to something that does not exist".into());
        }
        if *code == SqlState::CHECK_VIOLATION || *code == SqlState::NOT_NULL_VIOLATION {
            return StoreError::Invalid("a value is out of range".into());
        }
    }
    let what = match e.code() {
        None if e.is_closed() => "the database connection was lost",
        None => "the database is unreachable",
        Some(c) if *c == SqlState::DISK_FULL => "the database's disk is full",
        Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED => "the database is busy",
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE => "the database is busy",
        Some(c) if *c == SqlState::READ_ONLY_SQL_TRANSACTION => {
            "the database is read-only (a standby?)"
        }
        _ => "database error",
    };
    tracing::error!(error = %e, "store: {what}");
    StoreError::Backend(what.into())
}

/// A foreign-key failure while deleting means something still refers to the row.
fn delete_err(e: tokio_postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
        return StoreError::Conflict("still referred to".into());
    }
    db_err(e)
}

type Params<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

/// Take the next sequence number ([`super::feed`]); call last in every transaction that
/// changed something. The `meta` row stays locked until commit, which is what puts the
/// numbers in commit order.
async fn bump(tx: &Transaction<'_>) -> Result<()> {
    next_seq(
        tx,
        "UPDATE meta SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .await
    .map(|_| ())
}

/// Run `sql`, an `UPDATE meta … RETURNING version`, and return the number.
async fn next_seq(tx: &Transaction<'_>, sql: &str) -> Result<i64> {
    get(&tx.query_one(sql, &[]).await.db()?, 0)
}

/// [`bump`] for a write that changed a resource: edges reload their resources.
async fn bump_resources(tx: &Transaction<'_>) -> Result<()> {
    let seq = next_seq(
        tx,
        "UPDATE meta SET version = version + 1, resources_seq = version + 1 WHERE id = 1
         RETURNING version",
    )
    .await?;
    notify(tx, seq).await
}

/// [`bump`] for a write that recorded the revocation in row `id`: it carries the number.
async fn bump_revocation(tx: &Transaction<'_>, id: i64) -> Result<()> {
    let seq = next_seq(
        tx,
        "UPDATE meta SET version = version + 1 WHERE id = 1 RETURNING version",
    )
    .await?;
    tx.execute(
        "UPDATE revocations SET seq = $1 WHERE id = $2",
        &[&seq, &id],
    )
    .await
    .db()?;
    notify(tx, seq).await
}

/// Announce sequence number `seq` on the feed's channel; PostgreSQL delivers it when
/// (and only if) this transaction commits.
async fn notify(tx: &Transaction<'_>, seq: i64) -> Result<()> {
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&feed::CHANNEL, &seq.to_string()],
    )
    .await
    .db()?;
    Ok(())
}

/// Delete the rows `sql` selects by `params`, bumping the version; `NotFound(what)` when
/// nothing matched, `Conflict` while something still refers to them.
async fn delete_one(
    tx: &Transaction<'_>,
    sql: &str,
    params: Params<'_>,
    what: String,
) -> Result<()> {
    if tx.execute(sql, params).await.map_err(delete_err)? == 0 {
        return Err(StoreError::NotFound(what));
    }
    bump(tx).await
}

async fn exists(tx: &Transaction<'_>, sql: &str, params: Params<'_>) -> Result<bool> {
    Ok(tx.query_opt(sql, params).await.db()?.is_some())
}

async fn require_org(tx: &Transaction<'_>, id: &str) -> Result<()> {
    if exists(tx, "SELECT 1 FROM orgs WHERE id = $1", &[&id]).await? {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("unknown organisation {id}")))
    }
}

/// Column `i` of `row`, or a damaged-row error.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, i: usize) -> Result<T> {
    row.try_get(i)
        .map_err(|_| corrupt("unexpected column type"))
}

/// The columns [`org_row`] reads, in its order.
const ORG_COLUMNS: &str = "id, name, azure_subscription, azure_resource_group";

fn org_row(r: &Row) -> Result<Org> {
    let sub: Option<String> = get(r, 2)?;
    let rg: Option<String> = get(r, 3)?;
    Ok(Org {
        id: get(r, 0)?,
        name: get(r, 1)?,
        azure: sub
            .zip(rg)
            .map(|(subscription, resource_group)| AzurePlacement {
                subscription,
                resource_group,
            }),
    })
}

/// The columns [`resource_row`] reads, in its order.
const RESOURCE_COLUMNS: &str = "id, type, org, project, privacy, published";

fn resource_row(r: &Row) -> Result<Resource> {
    let resource_type: String = get(r, 1)?;
    let privacy: String = get(r, 4)?;
    let public = match privacy.as_str() {
        "public" => true,
        "token" => false,
        _ => return Err(corrupt("unknown privacy")),
    };
    Ok(Resource {
        id: get(r, 0)?,
        resource_type: ResourceType::parse(&resource_type)
            .ok_or_else(|| corrupt("unknown resource type"))?,
        org: get(r, 2)?,
        project: get(r, 3)?,
        public,
        published: get(r, 5)?,
    })
}

fn api_token_row(r: &Row) -> Result<ApiToken> {
    Ok(ApiToken {
        id: get(r, 0)?,
        org: get(r, 1)?,
        label: get(r, 2)?,
        hash: get(r, 3)?,
    })
}

/// Look one user up; `sql` selects `id, username, password_hash` by one parameter.
async fn user_where(tx: &Transaction<'_>, sql: &str, value: &str) -> Result<Option<User>> {
    let Some(row) = tx.query_opt(sql, &[&value]).await.db()? else {
        return Ok(None);
    };
    let id: String = get(&row, 0)?;
    let orgs = tx
        .query(
            "SELECT org FROM user_orgs WHERE user_id = $1 ORDER BY position",
            &[&id],
        )
        .await
        .db()?
        .iter()
        .map(|r| get(r, 0))
        .collect::<Result<Vec<String>>>()?;
    Ok(Some(User {
        id,
        username: get(&row, 1)?,
        password_hash: get(&row, 2)?,
        orgs,
    }))
}

/// The token that replaces a family's current one.
struct NextRefresh<'a> {
    hash: &'a str,
    org: &'a str,
    expires_at: u64,
    now: i64,
}

/// Find the presented token and lock its family's row: a concurrent rotation (or
/// revocation) of the same family waits here until this transaction ends, and the
/// token is read after the lock, so it shows what the previous holder committed.
async fn presented_refresh(
    tx: &Transaction<'_>,
    hash: &str,
) -> Result<Option<(RefreshToken, rules::Presented)>> {
    let Some(family) = tx
        .query_opt(
            "SELECT family FROM refresh_tokens WHERE hash = $1",
            &[&hash],
        )
        .await
        .db()?
    else {
        return Ok(None);
    };
    let family: String = get(&family, 0)?;
    let Some(locked) = tx
        .query_opt(
            "SELECT user_id, revoked FROM refresh_families WHERE id = $1 FOR UPDATE",
            &[&family],
        )
        .await
        .db()?
    else {
        // Deleted (with its user) while this call waited.
        return Ok(None);
    };
    let Some(row) = tx
        .query_opt(
            "SELECT org, expires_at, state, spent_at,
                    EXISTS (SELECT 1 FROM revocations r
                            WHERE r.kind = 'family' AND r.value = $2)
             FROM refresh_tokens WHERE hash = $1",
            &[&hash, &family],
        )
        .await
        .db()?
    else {
        return Ok(None);
    };
    let state: String = get(&row, 2)?;
    let revoked: bool = get(&locked, 1)?;
    let revoked_by_record: bool = get(&row, 4)?;
    let token = RefreshToken {
        hash: hash.to_owned(),
        family,
        user: get(&locked, 0)?,
        org: get(&row, 0)?,
        expires_at: time_from_sql(get(&row, 1)?)?,
    };
    let presented = rules::Presented {
        current: rules::is_current(&state)?,
        spent_at: get::<Option<i64>>(&row, 3)?
            .map(time_from_sql)
            .transpose()?,
        revoked: revoked || revoked_by_record,
        expires_at: token.expires_at,
    };
    Ok(Some((token, presented)))
}

/// Spend `family`'s current token (at `next.now`) and make `next` the current one.
/// Validates `next` first, so a refusal changes nothing.
async fn replace_current(tx: &Transaction<'_>, family: &str, next: &NextRefresh<'_>) -> Result<()> {
    sha256_hex("new refresh token hash", next.hash)?;
    let expires_at = time_to_sql("expiry", next.expires_at)?;
    require_org(tx, next.org).await?;
    if exists(
        tx,
        "SELECT 1 FROM refresh_tokens WHERE hash = $1",
        &[&next.hash],
    )
    .await?
    {
        return Err(StoreError::Conflict("refresh token already exists".into()));
    }
    tx.execute(
        "UPDATE refresh_tokens SET state = 'spent', spent_at = $2
         WHERE family = $1 AND state = 'current'",
        &[&family, &next.now],
    )
    .await
    .db()?;
    tx.execute(
        "INSERT INTO refresh_tokens (hash, family, org, expires_at, state, created)
         VALUES ($1, $2, $3, $4, 'current', $5)",
        &[&next.hash, &family, &next.org, &expires_at, &next.now],
    )
    .await
    .db()?;
    bump(tx).await
}

/// A refresh token row as `refresh_families` reads it: columns 1 to 6 (hash, org,
/// expires_at, state, spent_at, created).
fn stored_refresh_row(r: &Row) -> Result<StoredRefreshToken> {
    let state: String = get(r, 4)?;
    Ok(StoredRefreshToken {
        hash: get(r, 1)?,
        org: get(r, 2)?,
        expires_at: time_from_sql(get(r, 3)?)?,
        current: rules::is_current(&state)?,
        spent_at: get::<Option<i64>>(r, 5)?.map(time_from_sql).transpose()?,
        created: time_from_sql(get(r, 6)?)?,
    })
}

/// Insert one token of an imported family as it was (checked by
/// [`rules::importable_family`]); a hash in use is a `Conflict`.
async fn import_refresh_token(
    tx: &Transaction<'_>,
    family: &str,
    token: &StoredRefreshToken,
) -> Result<()> {
    if exists(
        tx,
        "SELECT 1 FROM refresh_tokens WHERE hash = $1",
        &[&token.hash],
    )
    .await?
    {
        return Err(StoreError::Conflict("refresh token already exists".into()));
    }
    let spent_at = token
        .spent_at
        .map(|t| time_to_sql("spent time", t))
        .transpose()?;
    tx.execute(
        "INSERT INTO refresh_tokens (hash, family, org, expires_at, state, spent_at, created)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &token.hash,
            &family,
            &token.org,
            &time_to_sql("expiry", token.expires_at)?,
            &rules::state(token.current),
            &spent_at,
            &time_to_sql("creation time", token.created)?,
        ],
    )
    .await
    .db()?;
    Ok(())
}

/// A spent token came back after its reuse interval: revoke its whole family.
async fn revoke_reused_family(tx: &Transaction<'_>, family: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE refresh_families SET revoked = TRUE WHERE id = $1",
        &[&family],
    )
    .await
    .db()?;
    let inserted = tx
        .query_opt(
            "INSERT INTO revocations (kind, value, at) VALUES ($1, $2, $3)
             ON CONFLICT (kind, value) DO NOTHING RETURNING id",
            &[&RevocationKind::Family.as_str(), &family, &now],
        )
        .await
        .db()?;
    match inserted {
        Some(row) => bump_revocation(tx, get(&row, 0)?).await,
        None => bump(tx).await,
    }
}

/// Mark refresh families revoked because of a revocation just recorded: a `family`
/// revocation kills that family, a `subject` one every family of that user (locked in
/// id order, so two such writes cannot deadlock each other).
async fn revoke_families(tx: &Transaction<'_>, revocation: &Revocation) -> Result<()> {
    let sql = match revocation.kind {
        RevocationKind::Family => "UPDATE refresh_families SET revoked = TRUE WHERE id = $1",
        RevocationKind::Subject => {
            "UPDATE refresh_families SET revoked = TRUE WHERE id IN (
                 SELECT id FROM refresh_families WHERE user_id = $1 ORDER BY id FOR UPDATE)"
        }
        RevocationKind::Jti | RevocationKind::Org => return Ok(()),
    };
    tx.execute(sql, &[&revocation.value]).await.db()?;
    Ok(())
}

impl Store for PgStore {
    fn version(&self) -> Result<u64> {
        let rows = self.query("SELECT version FROM meta WHERE id = 1", &[])?;
        let row = rows.first().ok_or_else(|| corrupt("no version row"))?;
        u64::try_from(get::<i64>(row, 0)?).map_err(|_| corrupt("negative version"))
    }

    fn put_org(&self, org: &Org) -> Result<()> {
        non_empty("organisation id", &org.id)?;
        let (sub, rg) = match &org.azure {
            Some(a) => (Some(&a.subscription), Some(&a.resource_group)),
            None => (None, None),
        };
        self.write(async |tx| {
            tx.execute(
                "INSERT INTO orgs (id, name, azure_subscription, azure_resource_group)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                     azure_subscription = excluded.azure_subscription,
                     azure_resource_group = excluded.azure_resource_group",
                &[&org.id, &org.name, &sub, &rg],
            )
            .await
            .db()?;
            bump(tx).await
        })
    }

    fn orgs(&self) -> Result<Vec<Org>> {
        self.query(&format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY id"), &[])?
            .iter()
            .map(org_row)
            .collect()
    }

    fn org(&self, id: &str) -> Result<Option<Org>> {
        self.query(
            &format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1"),
            &[&id],
        )?
        .first()
        .map(org_row)
        .transpose()
    }

    fn delete_org(&self, id: &str) -> Result<()> {
        self.write(async |tx| {
            let row = tx
                .query_one(
                    "SELECT (SELECT COUNT(*) FROM projects WHERE org = $1),
                            (SELECT COUNT(*) FROM resources WHERE org = $1),
                            (SELECT COUNT(*) FROM user_orgs WHERE org = $1),
                            (SELECT COUNT(*) FROM api_tokens WHERE org = $1)",
                    &[&id],
                )
                .await
                .db()?;
            let counts = [get(&row, 0)?, get(&row, 1)?, get(&row, 2)?, get(&row, 3)?];
            rules::org_unused(id, counts)?;
            delete_one(
                tx,
                "DELETE FROM orgs WHERE id = $1",
                &[&id],
                format!("organisation {id}"),
            )
            .await
        })
    }

    fn put_project(&self, project: &Project) -> Result<()> {
        non_empty("project id", &project.id)?;
        self.write(async |tx| {
            require_org(tx, &project.org).await?;
            if exists(
                tx,
                "SELECT 1 FROM resources WHERE project = $1 AND org <> $2",
                &[&project.id, &project.org],
            )
            .await?
            {
                return Err(StoreError::Conflict(format!(
                    "project {} has resources in another organisation",
                    project.id
                )));
            }
            tx.execute(
                "INSERT INTO projects (id, org, name) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET org = excluded.org, name = excluded.name",
                &[&project.id, &project.org, &project.name],
            )
            .await
            .db()?;
            bump(tx).await
        })
    }

    fn projects(&self) -> Result<Vec<Project>> {
        self.query("SELECT id, org, name FROM projects ORDER BY id", &[])?
            .iter()
            .map(|r| {
                Ok(Project {
                    id: get(r, 0)?,
                    org: get(r, 1)?,
                    name: get(r, 2)?,
                })
            })
            .collect()
    }

    fn delete_project(&self, id: &str) -> Result<()> {
        self.write(async |tx| {
            if exists(tx, "SELECT 1 FROM resources WHERE project = $1", &[&id]).await? {
                return Err(StoreError::Conflict(format!(
                    "project {id} still has resources"
                )));
            }
            delete_one(
                tx,
                "DELETE FROM projects WHERE id = $1",
                &[&id],
                format!("project {id}"),
            )
            .await
        })
    }

    fn put_resource(&self, resource: &Resource) -> Result<()> {
        non_empty("resource id", &resource.id)?;
        let privacy = if resource.public { "public" } else { "token" };
        self.write(async |tx| {
            require_org(tx, &resource.org).await?;
            if let Some(project) = &resource.project {
                let owner = tx
                    .query_opt("SELECT org FROM projects WHERE id = $1", &[project])
                    .await
                    .db()?;
                let owner: Option<String> = owner.map(|r| get(&r, 0)).transpose()?;
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
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id, type) DO UPDATE SET org = excluded.org,
                     project = excluded.project, privacy = excluded.privacy,
                     published = excluded.published",
                &[
                    &resource.id,
                    &resource.resource_type.as_str(),
                    &resource.org,
                    &resource.project,
                    &privacy,
                    &resource.published,
                ],
            )
            .await
            .db()?;
            bump_resources(tx).await
        })
    }

    fn resource(&self, id: &str, resource_type: ResourceType) -> Result<Option<Resource>> {
        self.query(
            &format!("SELECT {RESOURCE_COLUMNS} FROM resources WHERE id = $1 AND type = $2"),
            &[&id, &resource_type.as_str()],
        )?
        .first()
        .map(resource_row)
        .transpose()
    }

    fn resources(&self) -> Result<Vec<Resource>> {
        self.query(
            &format!("SELECT {RESOURCE_COLUMNS} FROM resources ORDER BY id, type"),
            &[],
        )?
        .iter()
        .map(resource_row)
        .collect()
    }

    fn delete_resource(&self, id: &str, resource_type: ResourceType) -> Result<()> {
        self.write(async |tx| {
            let deleted = tx
                .execute(
                    "DELETE FROM resources WHERE id = $1 AND type = $2",
                    &[&id, &resource_type.as_str()],
                )
                .await
                .map_err(delete_err)?;
            if deleted == 0 {
                return Err(StoreError::NotFound(format!(
                    "resource {id} ({})",
                    resource_type.as_str()
                )));
            }
            bump_resources(tx).await
        })
    }

    fn put_user(&self, user: &User) -> Result<()> {
        non_empty("user id", &user.id)?;
        non_empty("username", &user.username)?;
        non_empty("password hash", &user.password_hash)?;
        rules::orgs_listed_once(&user.orgs)?;
        self.write(async |tx| {
            for org in &user.orgs {
                require_org(tx, org).await?;
            }
            if exists(
                tx,
                "SELECT 1 FROM users WHERE username = $1 AND id <> $2",
                &[&user.username, &user.id],
            )
            .await?
            {
                return Err(StoreError::Conflict(format!(
                    "username {} is taken",
                    user.username
                )));
            }
            tx.execute(
                "INSERT INTO users (id, username, password_hash) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET username = excluded.username,
                     password_hash = excluded.password_hash",
                &[&user.id, &user.username, &user.password_hash],
            )
            .await
            .db()?;
            tx.execute("DELETE FROM user_orgs WHERE user_id = $1", &[&user.id])
                .await
                .db()?;
            let insert = tx
                .prepare("INSERT INTO user_orgs (user_id, org, position) VALUES ($1, $2, $3)")
                .await
                .db()?;
            for (position, org) in (0_i32..).zip(&user.orgs) {
                tx.execute(&insert, &[&user.id, org, &position])
                    .await
                    .db()?;
            }
            bump(tx).await
        })
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.read(async |tx| {
            user_where(
                tx,
                "SELECT id, username, password_hash FROM users WHERE username = $1",
                username,
            )
            .await
        })
    }

    fn user(&self, id: &str) -> Result<Option<User>> {
        self.read(async |tx| {
            user_where(
                tx,
                "SELECT id, username, password_hash FROM users WHERE id = $1",
                id,
            )
            .await
        })
    }

    fn users(&self) -> Result<Vec<User>> {
        self.read(async |tx| {
            let mut orgs: HashMap<String, Vec<String>> = HashMap::new();
            for row in tx
                .query(
                    "SELECT user_id, org FROM user_orgs ORDER BY user_id, position",
                    &[],
                )
                .await
                .db()?
            {
                orgs.entry(get(&row, 0)?).or_default().push(get(&row, 1)?);
            }
            tx.query(
                "SELECT id, username, password_hash FROM users ORDER BY id",
                &[],
            )
            .await
            .db()?
            .iter()
            .map(|row| {
                let id: String = get(row, 0)?;
                let orgs = orgs.remove(&id).unwrap_or_default();
                Ok(User {
                    id,
                    username: get(row, 1)?,
                    password_hash: get(row, 2)?,
                    orgs,
                })
            })
            .collect()
        })
    }

    fn delete_user(&self, id: &str) -> Result<()> {
        // Cascades to the user's org grants and refresh families (and their tokens).
        self.write(async |tx| {
            delete_one(
                tx,
                "DELETE FROM users WHERE id = $1",
                &[&id],
                format!("user {id}"),
            )
            .await
        })
    }

    fn put_api_token(&self, token: &ApiToken) -> Result<()> {
        non_empty("API token id", &token.id)?;
        sha256_hex("API token hash", &token.hash)?;
        self.write(async |tx| {
            require_org(tx, &token.org).await?;
            if exists(
                tx,
                "SELECT 1 FROM api_tokens WHERE hash = $1 AND id <> $2",
                &[&token.hash, &token.id],
            )
            .await?
            {
                return Err(StoreError::Conflict(
                    "another API token has the same hash".into(),
                ));
            }
            tx.execute(
                "INSERT INTO api_tokens (id, org, label, hash) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (id) DO UPDATE SET org = excluded.org, label = excluded.label,
                     hash = excluded.hash",
                &[&token.id, &token.org, &token.label, &token.hash],
            )
            .await
            .db()?;
            bump(tx).await
        })
    }

    fn api_token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>> {
        self.query(
            "SELECT id, org, label, hash FROM api_tokens WHERE hash = $1",
            &[&hash],
        )?
        .first()
        .map(api_token_row)
        .transpose()
    }

    fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        self.query(
            "SELECT id, org, label, hash FROM api_tokens ORDER BY id",
            &[],
        )?
        .iter()
        .map(api_token_row)
        .collect()
    }

    fn delete_api_token(&self, id: &str) -> Result<()> {
        self.write(async |tx| {
            delete_one(
                tx,
                "DELETE FROM api_tokens WHERE id = $1",
                &[&id],
                format!("API token {id}"),
            )
            .await
        })
    }

    fn insert_refresh(&self, token: &RefreshToken) -> Result<()> {
        sha256_hex("refresh token hash", &token.hash)?;
        non_empty("refresh family", &token.family)?;
        let expires_at = time_to_sql("expiry", token.expires_at)?;
        self.write(async |tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = $1", &[&token.user]).await? {
                return Err(StoreError::Invalid(format!("unknown user {}", token.user)));
            }
            require_org(tx, &token.org).await?;
            if exists(
                tx,
                "SELECT 1 FROM refresh_families WHERE id = $1",
                &[&token.family],
            )
            .await?
            {
                return Err(StoreError::Conflict(format!(
                    "refresh family {} already exists",
                    token.family
                )));
            }
            if exists(
                tx,
                "SELECT 1 FROM refresh_tokens WHERE hash = $1",
                &[&token.hash],
            )
            .await?
            {
                return Err(StoreError::Conflict("refresh token already exists".into()));
            }
            tx.execute(
                "INSERT INTO refresh_families (id, user_id) VALUES ($1, $2)",
                &[&token.family, &token.user],
            )
            .await
            .db()?;
            tx.execute(
                "INSERT INTO refresh_tokens (hash, family, org, expires_at, state)
                 VALUES ($1, $2, $3, $4, 'current')",
                &[&token.hash, &token.family, &token.org, &expires_at],
            )
            .await
            .db()?;
            bump(tx).await
        })
    }

    fn refresh_token(&self, hash: &str) -> Result<Option<(RefreshToken, bool)>> {
        let rows = self.query(
            "SELECT t.family, f.user_id, t.org, t.expires_at,
                    t.state = 'current' AND NOT f.revoked
             FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family
             WHERE t.hash = $1",
            &[&hash],
        )?;
        rows.first()
            .map(|r| {
                Ok((
                    RefreshToken {
                        hash: hash.to_owned(),
                        family: get(r, 0)?,
                        user: get(r, 1)?,
                        org: get(r, 2)?,
                        expires_at: time_from_sql(get(r, 3)?)?,
                    },
                    get(r, 4)?,
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
        self.write(async |tx| {
            let Some((old, presented)) = presented_refresh(tx, hash).await? else {
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
                    replace_current(tx, &old.family, &next).await?;
                    Ok(Rotation::Rotated(old))
                }
                Verdict::Reissue => {
                    replace_current(tx, &old.family, &next).await?;
                    Ok(Rotation::Reissued(old))
                }
                Verdict::Reuse => {
                    revoke_reused_family(tx, &old.family, now_sql).await?;
                    Ok(Rotation::Reused(old.family))
                }
            }
        })
    }

    fn refresh_families(&self) -> Result<Vec<RefreshFamily>> {
        let (families, tokens) = self.read(async |tx| {
            let families = tx
                .query(
                    "SELECT id, user_id, revoked FROM refresh_families ORDER BY id",
                    &[],
                )
                .await
                .db()?;
            let tokens = tx
                .query(
                    "SELECT family, hash, org, expires_at, state, spent_at, created
                     FROM refresh_tokens ORDER BY created, hash",
                    &[],
                )
                .await
                .db()?;
            Ok((families, tokens))
        })?;
        let families = families
            .iter()
            .map(|r| {
                Ok(RefreshFamily {
                    id: get(r, 0)?,
                    user: get(r, 1)?,
                    revoked: get(r, 2)?,
                    tokens: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let tokens = tokens
            .iter()
            .map(|r| Ok((get(r, 0)?, stored_refresh_row(r)?)))
            .collect::<Result<Vec<_>>>()?;
        rules::with_tokens(families, tokens)
    }

    fn import_refresh_family(&self, family: &RefreshFamily) -> Result<()> {
        rules::importable_family(family)?;
        self.write(async |tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = $1", &[&family.user]).await? {
                return Err(StoreError::Invalid(format!("unknown user {}", family.user)));
            }
            if exists(
                tx,
                "SELECT 1 FROM refresh_families WHERE id = $1",
                &[&family.id],
            )
            .await?
            {
                return Err(StoreError::Conflict(format!(
                    "refresh family {} already exists",
                    family.id
                )));
            }
            tx.execute(
                "INSERT INTO refresh_families (id, user_id, revoked) VALUES ($1, $2, $3)",
                &[&family.id, &family.user, &family.revoked],
            )
            .await
            .db()?;
            for token in &family.tokens {
                import_refresh_token(tx, &family.id, token).await?;
            }
            bump(tx).await
        })
    }

    fn revoke(&self, revocation: &Revocation) -> Result<()> {
        let (at, expires) = revocation_row(revocation)?;
        self.write(async |tx| {
            // A new row, or a later expiry for an existing one (NULL is the latest).
            let changed = tx
                .query_opt(
                    "INSERT INTO revocations (kind, value, at, expires) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (kind, value) DO UPDATE SET expires = EXCLUDED.expires
                     WHERE revocations.expires IS NOT NULL
                       AND (EXCLUDED.expires IS NULL OR EXCLUDED.expires > revocations.expires)
                     RETURNING id",
                    &[&revocation.kind.as_str(), &revocation.value, &at, &expires],
                )
                .await
                .db()?;
            let Some(row) = changed else {
                return Ok(());
            };
            revoke_families(tx, revocation).await?;
            bump_revocation(tx, get(&row, 0)?).await
        })
    }

    fn revocations(&self) -> Result<Vec<Revocation>> {
        self.query(
            "SELECT kind, value, at, expires FROM revocations ORDER BY id",
            &[],
        )?
        .iter()
        .map(revocation_from_row)
        .collect()
    }

    fn prune_revocations(&self, now: u64, limit: usize) -> Result<usize> {
        let now = time_to_sql("now", now)?;
        // No version bump: see the trait.
        let deleted = self.write(async |tx| {
            tx.execute(
                "DELETE FROM revocations WHERE id IN (
                     SELECT id FROM revocations WHERE expires < $1 ORDER BY expires LIMIT $2)",
                &[&now, &limit_to_sql(limit)],
            )
            .await
            .db()
        })?;
        usize::try_from(deleted).map_err(|_| StoreError::Backend("row count".into()))
    }

    fn changes_since(&self, after: u64) -> Result<Changes> {
        // Past i64::MAX nothing is newer; PostgreSQL's BIGINT is signed.
        let after_sql = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(async |tx| {
            let meta = tx
                .query_one("SELECT version, resources_seq FROM meta WHERE id = 1", &[])
                .await
                .db()?;
            let (seq, resources_seq): (i64, i64) = (get(&meta, 0)?, get(&meta, 1)?);
            let revocations = tx
                .query(
                    "SELECT kind, value, at, expires FROM revocations
                     WHERE seq > $1 ORDER BY seq, id",
                    &[&after_sql],
                )
                .await
                .db()?
                .iter()
                .map(revocation_from_row)
                .collect::<Result<Vec<_>>>()?;
            let resources = if resources_seq > after_sql {
                let rows = tx
                    .query(
                        &format!("SELECT {RESOURCE_COLUMNS} FROM resources ORDER BY id, type"),
                        &[],
                    )
                    .await
                    .db()?;
                Some(rows.iter().map(resource_row).collect::<Result<Vec<_>>>()?)
            } else {
                None
            };
            Ok(Changes {
                seq: u64::try_from(seq).map_err(|_| corrupt("negative sequence number"))?,
                revocations,
                resources,
            })
        })
    }

    fn subscribe(&self, wake: Arc<tokio::sync::Notify>) -> Option<Subscription> {
        let state = Arc::new(ListenerState::default());
        let listener = listen::run(self.listen.clone(), wake, state.clone());
        Some(Subscription::new(state, self.handle.spawn(listener)))
    }
}

/// A revocation row: kind, value, at, expires.
fn revocation_from_row(r: &Row) -> Result<Revocation> {
    let kind: String = get(r, 0)?;
    let expires: Option<i64> = get(r, 3)?;
    Ok(Revocation {
        kind: RevocationKind::parse(&kind).ok_or_else(|| corrupt("unknown revocation kind"))?,
        value: get(r, 1)?,
        at: time_from_sql(get(r, 2)?)?,
        expires: expires.map(time_from_sql).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::store::conformance::{self, Backend, Unavailable};

    /// The database the PostgreSQL cases run on (`scripts/pg-cluster.sh start` makes
    /// one); unset, they are skipped and say so.
    const URL_VAR: &str = "TOLLGATE_TEST_PG_URL";
    const NOT_SET: Unavailable = Unavailable("TOLLGATE_TEST_PG_URL not set");

    fn test_url() -> Option<String> {
        std::env::var(URL_VAR).ok().filter(|u| !u.is_empty())
    }

    /// The roots for the test database's certificate, when it offers TLS
    /// (`scripts/pg-cluster.sh` makes a CA, and its URL asks for `sslmode=require`).
    const CA_VAR: &str = "TOLLGATE_TEST_PG_CA";

    fn test_ca() -> Option<PathBuf> {
        std::env::var_os(CA_VAR)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }

    fn options(url: String) -> PgOptions {
        PgOptions {
            url,
            password_file: None,
            ca_file: None,
            pool_size: 4,
        }
    }

    /// [`options`] for the test database: its URL and CA.
    fn test_options(url: String) -> PgOptions {
        PgOptions {
            ca_file: test_ca(),
            ..options(url)
        }
    }

    /// Run `sql` on the test database in a connection of its own.
    fn admin_sql(url: &str, sql: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let options = test_options(url.to_owned());
            let config = connect_config(&options).expect("the test URL");
            let tls = MakeRustlsConnect::new(
                tls_config(options.ca_file.as_deref()).expect("TLS settings"),
            );
            let (client, connection) = config.connect(tls).await.expect("connect");
            let driver = tokio::spawn(connection);
            client.batch_execute(sql).await.expect("admin SQL");
            drop(client);
            let _ = driver.await;
        });
    }

    /// A schema of its own in the test database, dropped (with everything in it) at the
    /// end of the case, passing or failing.
    struct Schema {
        url: String,
        name: String,
    }

    impl Schema {
        fn create(url: &str) -> Self {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!(
                "tollgate_test_{}_{}_{nanos}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            admin_sql(url, &format!("CREATE SCHEMA {name}"));
            Self {
                url: url.to_owned(),
                name,
            }
        }

        /// Settings whose connections use only this schema.
        fn options(&self) -> PgOptions {
            let sep = if self.url.contains('?') { '&' } else { '?' };
            test_options(format!(
                "{}{sep}options=-c%20search_path%3D{}",
                self.url, self.name
            ))
        }

        fn open(&self) -> PgStore {
            PgStore::open(&self.options()).expect("open the PostgreSQL store")
        }
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            admin_sql(&self.url, &format!("DROP SCHEMA {} CASCADE", self.name));
        }
    }

    /// A store on a fresh schema, for the conformance suite. Fields drop in order: the
    /// store's connections close before the schema goes.
    pub(super) struct Fresh {
        store: PgStore,
        schema: Schema,
    }

    pub(super) fn fresh() -> std::result::Result<Fresh, Unavailable> {
        let url = test_url().ok_or(NOT_SET)?;
        let schema = Schema::create(&url);
        Ok(Fresh {
            store: schema.open(),
            schema,
        })
    }

    impl Backend for Fresh {
        fn store(&self) -> &dyn Store {
            &self.store
        }

        /// Another pool of connections: to the database, another gate.
        fn another_handle(&self) -> Box<dyn Store> {
            Box::new(self.schema.open())
        }
    }

    /// Every conformance case, each its own test, on a fresh PostgreSQL schema.
    mod conformance_cases {
        crate::store::conformance::conformance_suite!(super::fresh);
    }

    /// [`fresh`], or `None` after saying that `case` is skipped.
    fn fresh_or_skip(case: &str) -> Option<Fresh> {
        conformance::available(fresh(), module_path!(), case)
    }

    /// Two gates (two stores, two pools) presented one refresh token at the same moment,
    /// 100 times over: exactly one `Rotated` each time, and the loser's `Reused` revokes
    /// the family fleet-wide.
    #[test]
    fn two_pools_presented_one_refresh_token_at_once_have_exactly_one_winner_in_100_trials() {
        let Some(fresh) = fresh_or_skip(
            "two_pools_presented_one_refresh_token_at_once_have_exactly_one_winner_in_100_trials",
        ) else {
            return;
        };
        let other = fresh.another_handle();
        conformance::race_on_refresh_tokens(fresh.store(), other.as_ref(), 100);
    }

    #[test]
    fn opening_again_keeps_the_schema_version_and_the_data() {
        let Some(fresh) = fresh_or_skip("opening_again_keeps_the_schema_version_and_the_data")
        else {
            return;
        };
        fresh
            .store
            .put_org(&conformance::org("o1"))
            .expect("put org");
        let again = fresh.schema.open();
        assert_eq!(again.orgs().expect("orgs"), vec![conformance::org("o1")]);
        let rows = again
            .query("SELECT version FROM tollgate_schema ORDER BY version", &[])
            .expect("schema versions");
        let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        let expected: Vec<i32> = (1..=MIGRATIONS.len())
            .map(|v| i32::try_from(v).expect("small"))
            .collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn gates_opening_one_new_database_together_migrate_it_once() {
        let Some(url) = test_url() else {
            conformance::say_skipped(
                module_path!(),
                "gates_opening_one_new_database_together_migrate_it_once",
                NOT_SET.0,
            );
            return;
        };
        let schema = Schema::create(&url);
        let options = schema.options();
        let stores: Vec<PgStore> = std::thread::scope(|s| {
            let opening: Vec<_> = (0..4)
                .map(|_| s.spawn(|| PgStore::open(&options)))
                .collect();
            opening
                .into_iter()
                .map(|t| t.join().expect("opener thread").expect("open"))
                .collect()
        });
        stores[0]
            .put_org(&conformance::org("o1"))
            .expect("the schema works");
        assert_eq!(stores[3].version().expect("version"), 1);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let Some(fresh) = fresh_or_skip("a_database_from_a_newer_build_is_refused") else {
            return;
        };
        let newer = i32::try_from(MIGRATIONS.len() + 1).expect("small");
        admin_sql(
            &fresh.schema.url,
            &format!(
                "INSERT INTO {}.tollgate_schema (version) VALUES ({newer})",
                fresh.schema.name
            ),
        );
        let err = PgStore::open(&fresh.schema.options()).expect_err("a newer schema");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    }

    /// tokio forbids dropping a runtime the ordinary way inside async code; the store
    /// shuts its own down in the background, so the last handle may go anywhere.
    #[test]
    fn a_store_dropped_inside_async_code_does_not_panic() {
        let Some(fresh) = fresh_or_skip("a_store_dropped_inside_async_code_does_not_panic") else {
            return;
        };
        let store = fresh.schema.open();
        store.version().expect("version");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        runtime.block_on(async move { drop(store) });
    }

    /// A subscriber is woken once the listener listens (its cue to catch up), then by a
    /// revocation and by a resource change committed through another handle. (The
    /// channel is per database and other cases write beside this one, so that other
    /// writes notify nobody is not checked here; tests/it/fleet.rs runs on databases of
    /// its own.)
    #[test]
    fn a_subscriber_is_woken_after_listen_and_by_another_handles_revocation_and_resource_change() {
        let Some(fresh) = fresh_or_skip(
            "a_subscriber_is_woken_after_listen_and_by_another_handles_revocation_and_resource_change",
        ) else {
            return;
        };
        let other = fresh.another_handle();
        let wake = Arc::new(tokio::sync::Notify::new());
        let subscription = fresh
            .store
            .subscribe(wake.clone())
            .expect("PostgreSQL listens");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let woken = |limit: Duration| {
            runtime.block_on(async { tokio::time::timeout(limit, wake.notified()).await.is_ok() })
        };
        assert!(woken(Duration::from_secs(10)), "woken once listening");
        assert_eq!(subscription.problem(), None);
        other.put_org(&conformance::org("o1")).expect("org");
        other
            .revoke(&Revocation {
                kind: RevocationKind::Jti,
                value: "j".into(),
                at: 1,
                expires: None,
            })
            .expect("revoke");
        assert!(woken(Duration::from_secs(1)), "woken by the revocation");
        other
            .put_resource(&conformance::resource("r", "o1", None))
            .expect("resource");
        assert!(woken(Duration::from_secs(1)), "woken by the resource");
    }

    /// Short limits, so that the timeout cases end quickly.
    const SHORT: Timeouts = Timeouts {
        connect: Duration::from_millis(300),
        call: Duration::from_millis(800),
    };

    /// A one-thread runtime for a test server, and a listener it serves on loopback.
    fn loopback_listener() -> (
        tokio::runtime::Runtime,
        tokio::net::TcpListener,
        std::net::SocketAddr,
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        (runtime, listener, addr)
    }

    /// A server that accepts TCP connections and never says a word (a hung database,
    /// a half-open load balancer). Lives until the returned runtime is dropped.
    fn silent_server() -> (std::net::SocketAddr, tokio::runtime::Runtime) {
        let (runtime, listener, addr) = loopback_listener();
        runtime.spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (addr, runtime)
    }

    /// Connecting covers TLS and start-up, not only TCP: a database that accepts the
    /// connection and never answers fails the open within the connect timeout.
    #[test]
    fn a_database_that_accepts_tcp_but_never_answers_fails_within_the_connect_timeout() {
        let (addr, _server) = silent_server();
        let started = std::time::Instant::now();
        let err = PgStore::open_with(&options(format!("postgres://u@{addr}/db")), SHORT)
            .expect_err("nothing answers");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    /// The listener against a silent database: its attempt times out, it reports why and
    /// wakes the subscriber (who reports the store unreachable), and tries again.
    #[test]
    fn a_listener_that_cannot_connect_reports_why_and_wakes_the_subscriber() {
        let (addr, server) = silent_server();
        let config = connect_config(&options(format!("postgres://u@{addr}/db"))).expect("config");
        let tls = MakeRustlsConnect::new(tls_config(None).expect("TLS"));
        let listen = listen::Listen::new(config, tls, SHORT.connect);
        let wake = Arc::new(tokio::sync::Notify::new());
        let state = Arc::new(ListenerState::default());
        let task = server.spawn(listen::run(listen, wake.clone(), state.clone()));
        let subscription = Subscription::new(state, task);
        server.block_on(async {
            tokio::time::timeout(Duration::from_secs(3), wake.notified())
                .await
                .expect("woken after the failed attempt");
        });
        let problem = subscription.problem().expect("a problem is reported");
        assert!(problem.contains("did not answer in time"), "{problem}");
    }

    /// A relay between the store and the test database that can stop passing bytes
    /// while keeping both connections open: a database that hangs mid-session.
    struct Relay {
        addr: std::net::SocketAddr,
        frozen: Arc<std::sync::atomic::AtomicBool>,
        _runtime: tokio::runtime::Runtime,
    }

    impl Relay {
        fn to(target: std::net::SocketAddr) -> Self {
            let (runtime, listener, addr) = loopback_listener();
            let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = frozen.clone();
            runtime.spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                        continue;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(Self::pass(cr, sw, flag.clone()));
                    tokio::spawn(Self::pass(sr, cw, flag.clone()));
                }
            });
            Self {
                addr,
                frozen,
                _runtime: runtime,
            }
        }

        /// Copy `from` to `to`, holding every chunk while frozen.
        async fn pass(
            mut from: tokio::net::tcp::OwnedReadHalf,
            mut to: tokio::net::tcp::OwnedWriteHalf,
            frozen: Arc<std::sync::atomic::AtomicBool>,
        ) {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = vec![0; 16 * 1024];
            for _ in 0..1_000_000 {
                let Ok(n @ 1..) = from.read(&mut buf).await else {
                    return;
                };
                while frozen.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }

    /// A database that stops answering in the middle of a session: every call fails
    /// within the call timeout (it never holds its thread, or the change-feed loop,
    /// forever), and calls work again once it answers.
    #[test]
    fn a_database_that_stops_answering_fails_each_call_within_the_call_timeout() {
        let Some(fresh) = fresh_or_skip(
            "a_database_that_stops_answering_fails_each_call_within_the_call_timeout",
        ) else {
            return;
        };
        let options = fresh.schema.options();
        let config = connect_config(&options).expect("config");
        let Some(Host::Tcp(host)) = config.get_hosts().first().cloned() else {
            panic!("the test database is reached over TCP");
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let target = format!("{host}:{port}").parse().expect("an address");
        let relay = Relay::to(target);
        let relayed = PgOptions {
            url: options
                .url
                .replace(&format!("{host}:{port}"), &relay.addr.to_string()),
            ..options
        };
        // Connecting is given time (TLS and SCRAM on a busy machine); calls are not.
        let limits = Timeouts {
            connect: CONNECT_TIMEOUT,
            call: Duration::from_secs(2),
        };
        let store = PgStore::open_with(&relayed, limits).expect("open through the relay");
        store.changes_since(0).expect("works before");
        relay.frozen.store(true, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let err = store.changes_since(0).expect_err("the database hangs");
        assert!(
            matches!(&err, StoreError::Backend(m) if m.contains("did not answer in time")),
            "{err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        relay.frozen.store(false, Ordering::SeqCst);
        let mut recovered = false;
        for _ in 0..20 {
            if store.changes_since(0).is_ok() {
                recovered = true;
                break;
            }
        }
        assert!(recovered, "calls work again once the database answers");
    }

    #[test]
    fn an_unreachable_database_is_a_backend_error_without_the_password() {
        // A port nothing listens on: bind one, then free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let options = options(format!("postgres://u:hunter2@127.0.0.1:{port}/db"));
        let err = PgStore::open(&options).expect_err("nothing listens there");
        let StoreError::Backend(message) = &err else {
            panic!("expected Backend, got {err:?}");
        };
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn a_database_off_this_machine_needs_sslmode_require_or_an_explicit_disable() {
        for url in [
            "postgres://u@db.example.net/tollgate",
            "postgres://u@db.example.net/tollgate?sslmode=prefer",
            "postgres://u@127.0.0.1,10.0.0.5/tollgate",
        ] {
            let err = connect_config(&options(url.into())).expect_err(url);
            assert!(
                matches!(&err, StoreError::Invalid(m) if m.contains("sslmode=require")),
                "{url}: {err:?}"
            );
        }
        for url in [
            "postgres://u@db.example.net/tollgate?sslmode=require",
            "postgres://u@db.example.net/tollgate?sslmode=disable",
            "postgres://u@127.0.0.1:5432/tollgate",
            "postgres://u@localhost/tollgate",
            "postgres://u@[::1]:5432/tollgate",
            "postgres://u@%2Frun%2Fpostgresql/tollgate",
        ] {
            connect_config(&options(url.into())).expect(url);
        }
    }

    #[test]
    fn the_password_is_the_first_line_of_its_file_and_an_empty_file_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\nignored\n").expect("write");
        let with_file = PgOptions {
            password_file: Some(file.clone()),
            ..options("postgres://u@127.0.0.1/db".into())
        };
        let config = connect_config(&with_file).expect("config");
        assert_eq!(config.get_password(), Some(&b"s3cret"[..]));
        std::fs::write(&file, "\n").expect("write");
        assert!(matches!(
            connect_config(&with_file),
            Err(StoreError::Invalid(_))
        ));
        let missing = PgOptions {
            password_file: Some(dir.path().join("nope")),
            ..with_file
        };
        assert!(matches!(
            connect_config(&missing),
            Err(StoreError::Invalid(_))
        ));
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").expect("write");
        assert!(matches!(
            tls_config(Some(&file)),
            Err(StoreError::Invalid(_))
        ));
        let cert = rcgen::generate_simple_self_signed(vec!["db.example.net".into()])
            .expect("a certificate");
        std::fs::write(&file, cert.cert.pem()).expect("write");
        tls_config(Some(&file)).expect("a PEM certificate is a root");
    }

    /// Over TLS (the test cluster offers it, with a certificate from its own CA): the
    /// connection is encrypted when the CA is given, and refused when only the system's
    /// roots are there to verify it: rustls never connects unverified.
    #[test]
    fn tls_to_the_database_is_verified_against_ca_file() {
        let case = "tls_to_the_database_is_verified_against_ca_file";
        let (Some(url), Some(_)) = (test_url(), test_ca()) else {
            conformance::say_skipped(
                module_path!(),
                case,
                "TOLLGATE_TEST_PG_URL or TOLLGATE_TEST_PG_CA not set",
            );
            return;
        };
        assert!(
            url.contains("sslmode=require"),
            "the test URL asks for TLS: {url}"
        );
        let fresh = fresh().unwrap_or_else(|_| panic!("{URL_VAR} is set"));
        let rows = fresh
            .store
            .query(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .expect("pg_stat_ssl");
        let encrypted: bool = rows.first().map(|r| r.get(0)).expect("this connection");
        assert!(encrypted, "the store's connection is TLS");
        let system_roots = PgOptions {
            ca_file: None,
            ..fresh.schema.options()
        };
        let err = PgStore::open(&system_roots).expect_err("an unknown CA");
        assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    }
}
