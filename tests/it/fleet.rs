//! Gates sharing one PostgreSQL store (`[store] url`): started from the configuration
//! like any gate, they see each other's writes. Runs on the database named by
//! `TOLLGATE_TEST_PG_URL` (`scripts/pg-cluster.sh start`), in a schema or a database
//! of its own; without it, says it is skipped. Also the change feed seen from a node
//! (notifications, reconnects, `/readyz`), on PostgreSQL and on the SQLite default.

use std::io::Write as _;
use std::time::{Duration, Instant};

use tokio_postgres_rustls::MakeRustlsConnect;
use tollgate::app::Gate;
use tollgate::store::postgres::PgOptions;
use tollgate::store::{Location, Revocation, RevocationKind};

use crate::common::*;

const SEGMENT: &str = "/vod/a/seg-1.ts";

/// The test database's settings, or `None` after saying the test is skipped.
fn database(test: &str) -> Option<PgOptions> {
    test_database(&format!("fleet::{test}"))
}

/// The test database's settings, or `None` after saying that `test` (its path from the
/// test binary's root) is skipped.
pub(crate) fn test_database(test: &str) -> Option<PgOptions> {
    let Some(url) = std::env::var("TOLLGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: TOLLGATE_TEST_PG_URL not set"
        );
        return None;
    };
    Some(PgOptions {
        url,
        password_file: None,
        ca_file: std::env::var_os("TOLLGATE_TEST_PG_CA")
            .filter(|v| !v.is_empty())
            .map(Into::into),
        pool_size: 4,
    })
}

/// Run `sql` on the database `db` names.
pub(crate) async fn admin_sql(db: &PgOptions, sql: &str) {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(ca) = &db.ca_file {
        use rustls_pki_types::pem::PemObject;
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("the CA") {
            roots.add(cert.expect("a certificate")).expect("a root");
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(tollgate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut config = db
        .url
        .parse::<tokio_postgres::Config>()
        .expect("the test URL");
    if let Ok(password) = std::env::var("PGPASSWORD") {
        config.password(password);
    }
    let (client, connection) = config
        .connect(MakeRustlsConnect::new(tls))
        .await
        .expect("connect");
    let driver = tokio::spawn(connection);
    client.batch_execute(sql).await.expect("admin SQL");
    drop(client);
    let _ = driver.await;
}

/// GET `target` on `addr` until it answers `status` (the store is polled every 250 ms).
async fn until(addr: std::net::SocketAddr, target: &str, status: u16) -> Got {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = get(addr, target, &[]).await;
        if got.status == status || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Two gates started from one configuration naming a PostgreSQL store: a revocation
/// another writer records in the database is enforced by both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gates_on_one_postgresql_store_both_enforce_a_revocation_written_elsewhere() {
    let Some(db) =
        database("two_gates_on_one_postgresql_store_both_enforce_a_revocation_written_elsewhere")
    else {
        return;
    };
    let schema = format!("tollgate_fleet_{}", std::process::id());
    admin_sql(
        &db,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )
    .await;
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let shared = PgOptions {
        url: format!("{}{sep}options=-c%20search_path%3D{schema}", db.url),
        ..db.clone()
    };

    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let mut cfg = tg.config.clone();
    cfg.store.location = Location::Postgres(shared.clone());
    let gates = [
        Gate::start(&cfg)
            .await
            .expect("gate 1 starts on PostgreSQL"),
        Gate::start(&cfg)
            .await
            .expect("gate 2 starts on PostgreSQL"),
    ];
    let edges: Vec<_> = gates
        .iter()
        .map(|g| g.edge_plain.expect("plain listener"))
        .collect();
    let target = format!("{SEGMENT}?token={}", tg.token_for("a"));
    for edge in &edges {
        assert_eq!(
            get(*edge, &target, &[]).await.status,
            200,
            "plays on {edge}"
        );
    }

    let location = Location::Postgres(shared);
    tokio::task::spawn_blocking(move || {
        tollgate::store::open(&location)
            .expect("another writer opens the store")
            .revoke(&Revocation {
                kind: RevocationKind::Subject,
                value: "viewer-1".into(),
                at: now(),
                expires: None,
            })
            .expect("revoke");
    })
    .await
    .expect("the other writer");
    for edge in &edges {
        let got = until(*edge, &target, 403).await;
        assert_eq!(
            (got.status.as_u16(), got.reason()),
            (403, "revoked"),
            "on {edge}: {got:?}"
        );
    }
    drop(gates);
    admin_sql(&db, &format!("DROP SCHEMA {schema} CASCADE")).await;
}

/// A SQLite store with a row of every kind: an org (with an Azure placement), a
/// project, a resource, a user, an API token, a rotated refresh family, a revocation.
fn sqlite_source(dir: &std::path::Path) -> std::path::PathBuf {
    use tollgate::resource::{Resource, ResourceType};
    use tollgate::store::{ApiToken, AzurePlacement, Org, Project, RefreshToken, User};
    let path = dir.join("old.db");
    let store = tollgate::store::open(&Location::Sqlite(path.clone())).expect("source");
    let digest = |n: u32| format!("{n:064x}");
    store
        .put_org(&Org {
            id: "o1".into(),
            name: "Org 1".into(),
            azure: Some(AzurePlacement {
                subscription: "sub".into(),
                resource_group: "rg".into(),
            }),
        })
        .expect("org");
    store
        .put_project(&Project {
            id: "p1".into(),
            org: "o1".into(),
            name: "Project 1".into(),
        })
        .expect("project");
    store
        .put_resource(&Resource {
            id: "a".into(),
            resource_type: ResourceType::Vod,
            org: "o1".into(),
            project: Some("p1".into()),
            public: false,
            published: true,
        })
        .expect("resource");
    store
        .put_user(&User {
            id: "u1".into(),
            username: "alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            orgs: vec!["o1".into()],
        })
        .expect("user");
    store
        .put_api_token(&ApiToken {
            id: "t1".into(),
            org: "o1".into(),
            label: "ci".into(),
            hash: digest(100),
        })
        .expect("api token");
    store
        .insert_refresh(&RefreshToken {
            hash: digest(1),
            family: "f1".into(),
            user: "u1".into(),
            org: "o1".into(),
            expires_at: now() + 3600,
        })
        .expect("login");
    store
        .rotate_refresh(&digest(1), &digest(2), "o1", now() + 3600, now(), 0)
        .expect("rotate");
    store
        .revoke(&Revocation {
            kind: RevocationKind::Jti,
            value: "jti-1".into(),
            at: now(),
            expires: None,
        })
        .expect("revoke");
    path
}

/// Run `tollgate store copy --from <from> --to <to> <extra…>`.
fn store_copy(from: &std::path::Path, to: &str, extra: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["store", "copy", "--from"])
        .arg(from)
        .args(["--to", to])
        .args(extra)
        .output()
        .expect("run tollgate store copy")
}

/// Every listing of the two stores is the same.
fn assert_same_stores(a: &dyn tollgate::store::Store, b: &dyn tollgate::store::Store) {
    assert_eq!(a.orgs().expect("orgs"), b.orgs().expect("orgs"));
    assert_eq!(
        a.projects().expect("projects"),
        b.projects().expect("projects")
    );
    assert_eq!(
        a.resources().expect("resources"),
        b.resources().expect("resources")
    );
    assert_eq!(a.users().expect("users"), b.users().expect("users"));
    assert_eq!(
        a.api_tokens().expect("api tokens"),
        b.api_tokens().expect("api tokens")
    );
    assert_eq!(
        a.revocations().expect("revocations"),
        b.revocations().expect("revocations")
    );
    let families = a.refresh_families().expect("families");
    assert_eq!(families.len(), 1);
    assert_eq!(families, b.refresh_families().expect("families"));
}

/// Copy a SQLite store through the command into `to`, check everything arrived, then
/// check a second copy into the same target is refused.
fn copy_and_refuse_twice(to: &str, target: &Location, extra: &[&str]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let from = sqlite_source(dir.path());
    let out = store_copy(&from, to, extra);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"refresh_tokens\": 2"), "{stdout}");
    let source = tollgate::store::open(&Location::Sqlite(from.clone())).expect("source");
    let copied = tollgate::store::open(target).expect("target");
    assert_same_stores(source.as_ref(), copied.as_ref());
    let again = store_copy(&from, to, extra);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(!again.status.success(), "a second copy is refused");
    assert!(stderr.contains("not empty"), "{stderr}");
}

/// `tollgate store copy` into a new SQLite file (no database needed): everything
/// arrives, a second copy is refused, and a missing source is refused without
/// creating it.
#[test]
fn store_copy_command_copies_a_sqlite_store_and_refuses_a_target_that_is_not_empty() {
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("new.db");
    let to = target.to_str().expect("a UTF-8 path");
    copy_and_refuse_twice(to, &Location::Sqlite(target.clone()), &[]);
    let missing = dir.path().join("missing.db");
    let out = store_copy(&missing, to, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such SQLite file"));
    assert!(!missing.exists(), "the missing source was not created");
}

/// `tollgate store copy --to postgres://…` (password from PGPASSWORD, CA from
/// `--to-ca-file`) moves a SQLite store into PostgreSQL; a second copy is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_copy_command_moves_a_sqlite_store_into_postgresql() {
    let Some(db) = database("store_copy_command_moves_a_sqlite_store_into_postgresql") else {
        return;
    };
    let schema = format!("tollgate_copy_{}", std::process::id());
    admin_sql(
        &db,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}"),
    )
    .await;
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let target = PgOptions {
        url: format!("{}{sep}options=-c%20search_path%3D{schema}", db.url),
        ..db.clone()
    };
    let ca = db
        .ca_file
        .as_ref()
        .map(|p| p.to_str().expect("a UTF-8 path").to_owned());
    let to = target.url.clone();
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = match &ca {
            Some(ca) => vec!["--to-ca-file", ca],
            None => vec![],
        };
        copy_and_refuse_twice(&to, &Location::Postgres(target), &extra);
    })
    .await
    .expect("the copy");
    admin_sql(&db, &format!("DROP SCHEMA {schema} CASCADE")).await;
}

/// `db` with its database name replaced by `name`.
fn on_database(db: &PgOptions, name: &str) -> PgOptions {
    let (head, query) = db.url.split_once('?').unwrap_or((&db.url, ""));
    let base = head.rsplit_once('/').map_or(head, |(base, _)| base);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    PgOptions {
        url: format!("{base}/{name}{query}"),
        ..db.clone()
    }
}

/// A database of its own (dropped at the end, connections and all), so that a test
/// can cut it off from everyone but the writer without touching other tests.
pub(crate) struct Database {
    admin: PgOptions,
    name: String,
}

impl Database {
    pub(crate) async fn create(admin: &PgOptions, tag: &str) -> Self {
        let name = format!("tollgate_{tag}_{}", std::process::id());
        admin_sql(
            admin,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await;
        admin_sql(admin, &format!("CREATE DATABASE {name}")).await;
        Self {
            admin: admin.clone(),
            name,
        }
    }

    pub(crate) fn options(&self) -> PgOptions {
        on_database(&self.admin, &self.name)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) async fn drop_now(self) {
        admin_sql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        )
        .await;
    }
}

/// A gate on `db`'s store, following it with `poll` (an hour: notifications only).
async fn gate_on(tg: &TestGate, db: &PgOptions, poll: Duration) -> Gate {
    let mut cfg = tg.config.clone();
    cfg.store.location = Location::Postgres(db.clone());
    cfg.store.poll = poll;
    Gate::start(&cfg)
        .await
        .expect("a gate starts on PostgreSQL")
}

/// Open another writer (another node's store) on `db`, on a blocking thread.
async fn writer(db: &PgOptions) -> std::sync::Arc<dyn tollgate::store::Store> {
    let location = Location::Postgres(PgOptions {
        pool_size: 1,
        ..db.clone()
    });
    tokio::task::spawn_blocking(move || tollgate::store::open(&location).expect("the writer"))
        .await
        .expect("the writer opens")
}

/// Revoke subject `sub` through `store`, on a blocking thread; returns when committed.
async fn revoke_subject(store: &std::sync::Arc<dyn tollgate::store::Store>, sub: String) {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        store
            .revoke(&Revocation {
                kind: RevocationKind::Subject,
                value: sub,
                at: now(),
                expires: None,
            })
            .expect("revoke")
    })
    .await
    .expect("the writer");
}

/// Subject revocations in force at `gate`.
fn subjects_revoked(gate: &Gate) -> usize {
    gate.revocations.counts()[1].1
}

/// Wait (at most `limit`) until `gate` holds `n` subject revocations; how long it took.
async fn until_subjects(gate: &Gate, n: usize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if subjects_revoked(gate) >= n {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}

/// The admin listener's `/readyz` status and body.
async fn readyz(gate: &Gate) -> (u16, String) {
    let got = get(gate.admin.expect("admin listener"), "/readyz", &[]).await;
    (
        got.status.as_u16(),
        String::from_utf8_lossy(&got.body).into_owned(),
    )
}

/// The value of the metric series `name` (no labels) at `gate`.
async fn metric(gate: &Gate, name: &str) -> Option<i64> {
    let got = get(gate.admin.expect("admin listener"), "/metrics", &[]).await;
    String::from_utf8_lossy(&got.body)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Wait (at most 15 s) until `/readyz`'s second line starts with `prefix`.
async fn until_readyz(gate: &Gate, prefix: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = readyz(gate).await;
        if body.lines().nth(1).is_some_and(|l| l.starts_with(prefix)) || Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Say `what` on the terminal (past the harness's capture): measurements for the notes.
fn say(what: &str) {
    let _ = writeln!(std::io::stderr(), "fleet: {what}");
}

/// Polling set to an hour: a revocation committed through another node's store reaches
/// this node through the notification alone, each of 200 in well under a second
/// (p50/p99/max are printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_reaches_a_subscribed_node_without_polling_well_under_a_second() {
    let test = "a_revocation_reaches_a_subscribed_node_without_polling_well_under_a_second";
    let Some(admin) = database(test) else {
        return;
    };
    let database = Database::create(&admin, "feed_latency").await;
    let db = database.options();
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let store = writer(&db).await;
    let gate = gate_on(&tg, &db, Duration::from_secs(3600)).await;
    // The listener connects after start: the first revocation may wait for it.
    revoke_subject(&store, "warm-up".into()).await;
    assert!(until_subjects(&gate, 1, Duration::from_secs(10))
        .await
        .is_some());

    let mut delays = Vec::new();
    for i in 0..200 {
        revoke_subject(&store, format!("s{i}")).await;
        let took = until_subjects(&gate, i + 2, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("revocation {i} never arrived without polling"));
        delays.push(took);
    }
    delays.sort();
    let at = |q: f64| delays[((delays.len() - 1) as f64 * q).round() as usize];
    say(&format!(
        "commit to application at a second node, {} samples: p50 {:?}, p99 {:?}, max {:?}",
        delays.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    ));
    assert!(at(1.0) < Duration::from_secs(1), "max {:?}", at(1.0));
    let (_, body) = readyz(&gate).await;
    let seq = tokio::task::spawn_blocking(move || store.version().expect("version"))
        .await
        .expect("version");
    assert_eq!(body, format!("ready\nstore: ok, seq {seq}\n"));
    assert_eq!(
        metric(&gate, "tollgate_store_applied_seq").await,
        Some(seq as i64)
    );
    drop(gate);
    database.drop_now().await;
}

/// The lost-notification case, with polling off (an hour): the node's listener and
/// every connection but the writer's are killed (`pg_terminate_backend`) and the
/// database refuses new ones, so nothing can reach this node; revocations are written
/// meanwhile (their notifications go to nobody). The node serves on from memory, and
/// `/readyz` (200) and `tollgate_store_up` say the store is unreachable. When the
/// database takes connections again, the listener reconnects, LISTENs and catches up
/// by itself: every revocation is enforced and the status is back to ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_written_while_the_listener_is_cut_off_are_applied_after_it_reconnects_without_polling(
) {
    let test = "revocations_written_while_the_listener_is_cut_off_are_applied_after_it_reconnects_without_polling";
    let Some(admin) = database(test) else {
        return;
    };
    let database = Database::create(&admin, "feed_reconnect").await;
    let db = database.options();
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    // The writer's one connection (opened by its migration check) is the one kept.
    let store = writer(&db).await;
    let keep = format!("tollgate_keep_{}", std::process::id());
    admin_sql(
        &admin,
        &format!(
            "DROP TABLE IF EXISTS {keep};
             CREATE TABLE {keep} AS SELECT pid FROM pg_stat_activity
                 WHERE datname = '{}' AND application_name = 'tollgate'",
            database.name
        ),
    )
    .await;
    let gate = gate_on(&tg, &db, Duration::from_secs(3600)).await;
    let edge = gate.edge_plain.expect("plain listener");
    revoke_subject(&store, "warm-up".into()).await;
    assert!(until_subjects(&gate, 1, Duration::from_secs(10))
        .await
        .is_some());
    assert!(readyz(&gate).await.1.contains("\nstore: ok, seq "));
    assert_eq!(metric(&gate, "tollgate_store_up").await, Some(1));

    admin_sql(
        &admin,
        &format!(
            "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE application_name = 'tollgate-listen' AND datname = '{name}';
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = '{name}' AND pid NOT IN (SELECT pid FROM {keep});",
            name = database.name
        ),
    )
    .await;
    let (status, body) = until_readyz(&gate, "store: unreachable for ").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("ready\nstore: unreachable for ")
            && body.contains(" s, serving state as of seq "),
        "{body}"
    );
    assert_eq!(metric(&gate, "tollgate_store_up").await, Some(0));

    let tokens: Vec<String> = (0..20)
        .map(|i| {
            let req = tollgate::token::MintRequest {
                sub: Some(format!("cut-{i}")),
                ..resource("a", tollgate::resource::ResourceType::Vod)
            };
            tg.mint_with("ed", &req, now())
        })
        .collect();
    for i in 0..20 {
        revoke_subject(&store, format!("cut-{i}")).await;
    }
    for token in &tokens {
        let got = get(edge, &format!("{SEGMENT}?token={token}"), &[]).await;
        assert_eq!(
            got.status, 200,
            "served from memory while the store is away"
        );
    }
    assert_eq!(
        subjects_revoked(&gate),
        1,
        "nothing reached the node meanwhile"
    );

    admin_sql(
        &admin,
        &format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true; DROP TABLE {keep}",
            database.name
        ),
    )
    .await;
    assert!(
        until_subjects(&gate, 21, Duration::from_secs(15))
            .await
            .is_some(),
        "every revocation written while cut off arrives, without polling"
    );
    for token in &tokens {
        let got = get(edge, &format!("{SEGMENT}?token={token}"), &[]).await;
        assert_eq!((got.status.as_u16(), got.reason()), (403, "revoked"));
    }
    let seq = tokio::task::spawn_blocking(move || store.version().expect("version"))
        .await
        .expect("version");
    let (status, body) = until_readyz(&gate, "store: ok").await;
    assert_eq!(
        (status, body),
        (200, format!("ready\nstore: ok, seq {seq}\n"))
    );
    assert_eq!(metric(&gate, "tollgate_store_up").await, Some(1));
    assert_eq!(
        metric(&gate, "tollgate_store_applied_seq").await,
        Some(seq as i64)
    );
    drop(gate);
    database.drop_now().await;
}

/// On the default SQLite store (no notifications): `/readyz` says `store: ok, seq N`,
/// and N follows another writer of the file (the CLI) within the 250 ms poll, as do the
/// gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_and_the_gauges_follow_the_sequence_another_writer_of_the_sqlite_file_moves() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let location = tg.config.store.location.clone();
    assert!(matches!(location, Location::Sqlite(_)), "{location:?}");
    let seq = tokio::task::spawn_blocking(move || {
        let store = tollgate::store::open(&location).expect("the CLI opens the file");
        store
            .revoke(&Revocation {
                kind: RevocationKind::Jti,
                value: "from-the-cli".into(),
                at: now(),
                expires: None,
            })
            .expect("revoke");
        store.version().expect("version")
    })
    .await
    .expect("the other writer");
    assert!(seq > 0);
    let (status, body) = until_readyz(&tg.gate, &format!("store: ok, seq {seq}")).await;
    assert_eq!(
        (status, body),
        (200, format!("ready\nstore: ok, seq {seq}\n"))
    );
    assert_eq!(metric(&tg.gate, "tollgate_store_up").await, Some(1));
    assert_eq!(
        metric(&tg.gate, "tollgate_store_applied_seq").await,
        Some(seq as i64)
    );
}
