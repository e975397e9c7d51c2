//! Gates sharing one PostgreSQL store (`[store] url`): started from the configuration
//! like any gate, they see each other's writes. Runs on the database named by
//! `TOLLGATE_TEST_PG_URL` (`scripts/pg-cluster.sh start`), in a schema of its own;
//! without it, says it is skipped.

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
    let Some(url) = std::env::var("TOLLGATE_TEST_PG_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        let _ = writeln!(
            std::io::stderr(),
            "fleet::{test}: skipped: TOLLGATE_TEST_PG_URL not set"
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
async fn admin_sql(db: &PgOptions, sql: &str) {
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
