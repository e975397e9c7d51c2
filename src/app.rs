//! Wiring: turn a validated [`Config`] into running listeners.
//!
//! [`Gate::start`] makes the quick start's development material if the config asks for
//! it, loads keys and certificates, builds the edge, binds every listener (so a bad
//! config or a busy port fails before anything serves), and spawns the accept loops.
//! Tests start a whole gate this way on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::admin::issuer::{Issuer, Lifetimes};
use crate::admin::{AdminService, Settings};
use crate::config::Config;
use crate::edge::EdgeService;
use crate::server::{self, Limits};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::token::{keys, KeySet, Revocations, Verifier};

/// Why the gate could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("keys: {0}")]
    Keys(#[from] keys::KeyError),
    #[error("tls: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("edge: {0}")]
    Edge(#[from] crate::edge::BuildError),
    #[error("store: {0}")]
    Store(String),
    #[error("admin token: {0}")]
    AdminToken(String),
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// What [`Gate::start`] made on first run.
#[derive(Debug, Default, Clone)]
pub struct DevMaterial {
    pub keys: Vec<String>,
    pub cert: bool,
}

/// Create the development keys and certificate the config asks for, if missing.
pub fn ensure_dev_material(cfg: &Config) -> Result<DevMaterial, StartError> {
    let keys = keys::ensure_dev_keys(&cfg.keys)?;
    let cert = match (cfg.tls.dev_generate, cfg.tls.certs.first()) {
        (true, Some(c)) => crate::tls::ensure_dev_cert(c)?,
        _ => false,
    };
    Ok(DevMaterial { keys, cert })
}

/// The quick start's printed lines: `playback` (TLS), `playback-plain`, `playback-dash`
/// and `ca`, for the first configured resource that a `{rid}` route serves, with a fresh
/// one-hour resource token. Empty when no resource is configured.
pub fn playback_urls(
    cfg: &Config,
    gate: &Gate,
    now: u64,
) -> Result<Vec<(&'static str, String)>, crate::token::TokenError> {
    let Some((route, res)) = cfg.resources.iter().find_map(|r| {
        cfg.routes
            .iter()
            .find(|rt| rt.has_rid && rt.resource_type == r.resource_type)
            .map(|rt| (rt, r))
    }) else {
        return Ok(Vec::new());
    };
    let req = crate::token::MintRequest {
        scope: crate::token::Scope::Resource,
        rid: Some(res.id.clone()),
        rty: Some(res.resource_type),
        org: Some(res.org.clone()),
        prj: res.project.clone(),
        sub: Some("quickstart".into()),
        ttl: Some(Duration::from_secs(3600)),
        aud: cfg.token.audience.first().cloned(),
        ..crate::token::MintRequest::default()
    };
    let (token, _) = crate::token::mint(&gate.verifier.keys(), &cfg.token.issuer, &req, now)?;
    let base = format!("/t/{token}{}{}/", route.prefix, res.id);
    let mut lines = Vec::new();
    if let Some(a) = gate.edge_tls {
        lines.push(("playback", format!("https://{a}{base}master.m3u8")));
    }
    if let Some(a) = gate.edge_plain {
        lines.push(("playback-plain", format!("http://{a}{base}master.m3u8")));
    }
    if let Some(a) = gate.edge_tls {
        lines.push((
            "playback-dash",
            format!("https://{a}{base}dash/manifest.mpd"),
        ));
    } else if let Some(a) = gate.edge_plain {
        lines.push((
            "playback-dash",
            format!("http://{a}{base}dash/manifest.mpd"),
        ));
    }
    // The same, with the token in the query: the gate rewrites the manifests so that
    // every variant and segment request carries it (DESIGN.md §6).
    let path = format!("{}{}/", route.prefix, res.id);
    let query = format!("?{}={token}", cfg.token.query);
    if let Some(a) = gate.edge_tls {
        lines.push((
            "playback-query",
            format!("https://{a}{path}master.m3u8{query}"),
        ));
    }
    if let Some(a) = gate.edge_plain {
        lines.push((
            "playback-query-plain",
            format!("http://{a}{path}master.m3u8{query}"),
        ));
    }
    if let (true, Some(c)) = (cfg.tls.dev_generate, cfg.tls.certs.first()) {
        lines.push(("ca", crate::tls::dev_ca_path(c).display().to_string()));
    }
    Ok(lines)
}

fn revocations_handle(g: &Gate) -> Arc<Revocations> {
    g.revocations.clone()
}

/// Load the store's resources into the edge registry and its revocations into the
/// in-memory set. Returns the store version that was read.
pub fn sync_from_store(
    store: &dyn Store,
    edge: &EdgeService,
    revocations: &Revocations,
) -> crate::store::Result<u64> {
    let version = store.version()?;
    let resources = store.resources()?;
    edge.set_stored_resources(resources);
    crate::admin::manage::load_revocations(store, revocations)?;
    Ok(version)
}

/// Follow the store: when its version moves, reload resources and revocations (so a
/// change made by any node, or the CLI, is enforced here within one poll interval).
/// Also prunes the login limiter once a minute.
async fn refresh_loop(
    store: Arc<dyn Store>,
    edge: Arc<EdgeService>,
    revocations: Arc<Revocations>,
    limiter: Arc<crate::ratelimit::LoginLimiter>,
    mut seen: u64,
    poll: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(poll);
    let mut since_prune = Duration::ZERO;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        since_prune += poll;
        if since_prune >= Duration::from_secs(60) {
            since_prune = Duration::ZERO;
            limiter.prune();
        }
        let (s, e, r) = (store.clone(), edge.clone(), revocations.clone());
        let result = tokio::task::spawn_blocking(move || {
            let v = s.version()?;
            if v == seen {
                return Ok(v);
            }
            sync_from_store(s.as_ref(), &e, &r)
        })
        .await;
        match result {
            Ok(Ok(v)) => seen = v,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "store refresh failed; keeping the last state")
            }
            Err(e) => tracing::warn!(error = %e, "store refresh task failed"),
        }
    }
}

/// Read (or, on first run, create) the admin token file; returns its SHA-256.
pub fn ensure_admin_token(cfg: &Config) -> Result<Option<[u8; 32]>, StartError> {
    let Some(path) = &cfg.admin.token_file else {
        return Ok(None);
    };
    let err = |e: std::io::Error| StartError::AdminToken(format!("{}: {e}", path.display()));
    if !path.exists() {
        let token = crate::admin::random_secret()
            .ok_or_else(|| StartError::AdminToken("no randomness".into()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        crate::token::keys::write_file(path, format!("{token}\n").as_bytes(), true).map_err(err)?;
        tracing::info!(path = %path.display(), "made an admin token for the management API");
    }
    let text = std::fs::read_to_string(path).map_err(err)?;
    let token = text.trim();
    if token.len() < 16 {
        return Err(StartError::AdminToken(format!(
            "{}: the admin token must be at least 16 characters",
            path.display()
        )));
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Ok(Some(out))
}

/// A running gate.
pub struct Gate {
    pub edge_tls: Option<SocketAddr>,
    pub edge_plain: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub verifier: Arc<Verifier>,
    pub revocations: Arc<Revocations>,
    pub dev_material: DevMaterial,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    server::bind(addr)
        .await
        .map_err(|error| StartError::Bind { addr, error })
}

fn local(l: &tokio::net::TcpListener, fallback: SocketAddr) -> SocketAddr {
    l.local_addr().unwrap_or(fallback)
}

impl Gate {
    /// Start every configured listener. Returns once all are bound and accepting.
    pub async fn start(cfg: &Config) -> Result<Gate, StartError> {
        let dev_material = ensure_dev_material(cfg)?;
        let admin_token = ensure_admin_token(cfg)?;
        let keyset = KeySet::load(&cfg.keys)?;
        let verifier = Arc::new(Verifier::new(keyset, &cfg.token));
        let revocations = Arc::new(Revocations::default());
        let edge = Arc::new(EdgeService::new(
            cfg,
            verifier.clone(),
            revocations.clone(),
        )?);
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&cfg.store.path).map_err(|e| StartError::Store(e.to_string()))?,
        );
        // Revocations and resources are loaded before anything listens (THREATS E3).
        let version = sync_from_store(store.as_ref(), &edge, &revocations)
            .map_err(|e| StartError::Store(e.to_string()))?;
        let tls = match cfg.edge.tls_listen {
            Some(_) => Some(TlsAcceptor::from(crate::tls::server_config(
                &cfg.tls.certs,
            )?)),
            None => None,
        };

        let shutdown = CancellationToken::new();
        let ready = Arc::new(AtomicBool::new(false));
        let issuer = Arc::new(Issuer::new(
            store.clone(),
            verifier.clone(),
            cfg.token.issuer.clone(),
            cfg.token.audience.first().cloned(),
            Lifetimes {
                max: cfg.token.max_lifetime,
                allow_never: cfg.token.allow_never_expiring,
            },
        ));
        let admin_service = Arc::new(AdminService::new(
            ready.clone(),
            issuer,
            verifier.clone(),
            revocations.clone(),
            Settings {
                access_ttl: cfg.admin.access_ttl,
                refresh_ttl: cfg.admin.refresh_ttl,
                body_timeout: cfg.admin.body_timeout,
                admin_token_sha256: admin_token,
                login_per_ip: cfg.admin.login_per_ip,
                login_per_account: cfg.admin.login_per_account,
            },
        ));
        let limits = Limits::from_edge(&cfg.edge);
        let mut tasks = JoinSet::new();
        let mut gate = Gate {
            edge_tls: None,
            edge_plain: None,
            admin: None,
            verifier,
            revocations,
            dev_material,
            shutdown: shutdown.clone(),
            tasks: JoinSet::new(),
        };

        let edge_handler = {
            let edge = edge.clone();
            move |req, info| {
                let edge = edge.clone();
                async move { edge.handle(req, info).await }
            }
        };
        if let (Some(addr), Some(acceptor)) = (cfg.edge.tls_listen, tls) {
            let l = bind(addr).await?;
            gate.edge_tls = Some(local(&l, addr));
            tasks.spawn(server::serve(
                l,
                Some(acceptor),
                limits.clone(),
                edge_handler.clone(),
                shutdown.clone(),
            ));
        }
        if let Some(addr) = cfg.edge.plain_listen {
            let l = bind(addr).await?;
            gate.edge_plain = Some(local(&l, addr));
            tasks.spawn(server::serve(
                l,
                None,
                limits.clone(),
                edge_handler,
                shutdown.clone(),
            ));
        }
        if let Some(addr) = cfg.admin_listen {
            let l = bind(addr).await?;
            gate.admin = Some(local(&l, addr));
            let admin = admin_service.clone();
            let handler = move |req, info: crate::edge::ConnInfo| {
                let admin = admin.clone();
                async move { admin.handle(req, info.peer.ip()).await }
            };
            let admin_limits = Limits {
                max_connections: 256,
                ..limits
            };
            tasks.spawn(server::serve(
                l,
                None,
                admin_limits,
                handler,
                shutdown.clone(),
            ));
        }
        tasks.spawn(refresh_loop(
            store,
            edge.clone(),
            revocations_handle(&gate),
            admin_service.limiter().clone(),
            version,
            cfg.store.poll,
            shutdown.clone(),
        ));
        ready.store(true, Ordering::Release);
        gate.tasks = tasks;
        Ok(gate)
    }

    /// A handle that stops the gate when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stop accepting, drain, and wait (at most `limit`) for every listener to finish.
    pub async fn stop(mut self, limit: Duration) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(limit, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
    }

    /// Wait until every listener has finished (after the shutdown token is cancelled).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}
