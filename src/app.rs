//! Wiring: turn a validated [`Config`] into running listeners.
//!
//! [`Gate::start`] makes the quick start's development material if the config asks for
//! it, loads keys and certificates, builds the edge, binds every listener (so a bad
//! config or a busy port fails before anything serves), and spawns the accept loops.
//! Tests start a whole gate this way on `127.0.0.1:0`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::admin::issuer::{Issuer, Lifetimes};
use crate::admin::{AdminService, Settings};
use crate::config::Config;
use crate::edge::EdgeService;
use crate::metrics::Metrics;
use crate::server::{self, Limits};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;
use crate::tls::{CertSet, CertStore};
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
    #[error("metrics: {0}")]
    Metrics(String),
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

/// Follow the store: when its version moves (or a reload swapped in a new edge), reload
/// resources and revocations (so a change made by any node, or the CLI, is enforced
/// here within one poll interval). Also prunes the rate limiters once a minute.
async fn refresh_loop(
    store: Arc<dyn Store>,
    live: Arc<LiveCell>,
    revocations: Arc<Revocations>,
    mut seen: (u64, u64),
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
        let current = live.get();
        since_prune += poll;
        if since_prune >= Duration::from_secs(60) {
            since_prune = Duration::ZERO;
            current.edge.limits().prune();
            current.admin.prune_limits();
        }
        let generation = current.generation;
        let (s, e, r) = (store.clone(), current.edge.clone(), revocations.clone());
        let last = seen;
        let result = tokio::task::spawn_blocking(move || {
            let v = s.version()?;
            if (v, generation) == last {
                return Ok(v);
            }
            sync_from_store(s.as_ref(), &e, &r)
        })
        .await;
        match result {
            Ok(Ok(v)) => seen = (v, generation),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "store refresh failed; keeping the last state")
            }
            Err(e) => tracing::warn!(error = %e, "store refresh task failed"),
        }
    }
}

/// The parts a reload rebuilds, swapped whole: requests already running finish on the
/// generation they started with.
pub struct Live {
    pub generation: u64,
    pub config: Arc<Config>,
    pub edge: Arc<EdgeService>,
    pub admin: Arc<AdminService>,
}

/// The current [`Live`]: read per request (a read lock held for one `Arc` clone).
pub struct LiveCell(RwLock<Arc<Live>>);

impl LiveCell {
    pub fn get(&self) -> Arc<Live> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc.
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, live: Arc<Live>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = live;
    }
}

/// What lives as long as the process, across reloads.
struct Core {
    metrics: Arc<Metrics>,
    verifier: Arc<Verifier>,
    revocations: Arc<Revocations>,
    store: Arc<dyn Store>,
    ready: Arc<AtomicBool>,
    certs: Option<Arc<CertStore>>,
    reloader: Reloader,
    /// The configuration the process started with: settings that only a restart applies
    /// are compared with it, so a reload keeps naming them until the restart.
    started: Arc<Config>,
    /// The listen addresses the file named at start (before any command-line override).
    file_listen: Option<Listen>,
}

/// Edge TLS, edge plain and admin listen addresses.
type Listen = [Option<SocketAddr>; 3];

fn listen_of(cfg: &Config) -> Listen {
    [cfg.edge.tls_listen, cfg.edge.plain_listen, cfg.admin_listen]
}

impl Core {
    /// Build the reloadable parts for `cfg`.
    fn build(&self, cfg: &Config, generation: u64) -> Result<Live, StartError> {
        let admin_token = ensure_admin_token(cfg)?;
        let edge = Arc::new(EdgeService::new(
            cfg,
            self.verifier.clone(),
            self.revocations.clone(),
            self.metrics.clone(),
        )?);
        let issuer = Arc::new(Issuer::new(
            self.store.clone(),
            self.verifier.clone(),
            cfg.token.issuer.clone(),
            cfg.token.audience.first().cloned(),
            Lifetimes {
                max: cfg.token.max_lifetime,
                allow_never: cfg.token.allow_never_expiring,
            },
        ));
        let admin = Arc::new(AdminService::new(
            self.ready.clone(),
            issuer,
            self.verifier.clone(),
            self.revocations.clone(),
            Settings {
                access_ttl: cfg.admin.access_ttl,
                refresh_ttl: cfg.admin.refresh_ttl,
                body_timeout: cfg.admin.body_timeout,
                admin_token_sha256: admin_token,
                login_per_ip: cfg.admin.login_per_ip,
                login_per_account: cfg.admin.login_per_account,
                issue_per_api_token: cfg.limits.issue_per_api_token,
            },
            self.metrics.clone(),
            Some(self.reloader.clone()),
        ));
        Ok(Live {
            generation,
            config: Arc::new(cfg.clone()),
            edge,
            admin,
        })
    }
}

/// What a reload put in force.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReloadReport {
    pub generation: u64,
    /// Key ids that verify, and the one that signs.
    pub kids: Vec<String>,
    pub active_kid: Option<String>,
    pub certificates: usize,
    pub routes: usize,
    pub origins: usize,
    /// Settings that changed in the file but take effect only after a restart.
    pub restart_needed: Vec<&'static str>,
}

type ReloadReply = oneshot::Sender<Result<ReloadReport, String>>;

/// Asks the running gate to reload its configuration file, keys and certificates (what
/// SIGHUP and `POST /v1/reload` do). Reloads run one at a time.
#[derive(Clone)]
pub struct Reloader(mpsc::Sender<ReloadReply>);

impl Reloader {
    /// Reload, and say what is now in force — or why the running state was kept.
    pub async fn reload(&self) -> Result<ReloadReport, String> {
        let (tx, rx) = oneshot::channel();
        self.0
            .send(tx)
            .await
            .map_err(|_| "the gate is shutting down".to_string())?;
        rx.await
            .map_err(|_| "the reload was abandoned".to_string())?
    }
}

/// Settings a reload cannot apply (they belong to sockets, files opened at start or the
/// cache's shape): named in the report and the log while they differ from what the
/// process started with.
fn restart_needed(old: &Config, file_listen: Option<Listen>, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |changed: bool, name: &'static str| {
        if changed {
            out.push(name);
        }
    };
    if let Some(was) = file_listen {
        let now = listen_of(new);
        check(was[0] != now[0], "edge.tls_listen");
        check(was[1] != now[1], "edge.plain_listen");
        check(was[2] != now[2], "admin.listen");
    }
    check(
        old.edge.header_timeout != new.edge.header_timeout,
        "edge.header_timeout",
    );
    check(
        old.edge.tls_handshake_timeout != new.edge.tls_handshake_timeout,
        "edge.tls_handshake_timeout",
    );
    check(
        old.edge.max_header_bytes != new.edge.max_header_bytes,
        "edge.max_header_bytes",
    );
    check(
        old.edge.max_headers != new.edge.max_headers,
        "edge.max_headers",
    );
    check(
        old.edge.max_connections != new.edge.max_connections,
        "edge.max_connections",
    );
    check(
        old.edge.h2_max_concurrent_streams != new.edge.h2_max_concurrent_streams,
        "edge.h2_max_concurrent_streams",
    );
    check(
        old.edge.shutdown_grace != new.edge.shutdown_grace,
        "edge.shutdown_grace",
    );
    check(old.store.path != new.store.path, "store.path");
    check(old.store.poll != new.store.poll, "store.poll");
    check(
        old.token.cache_capacity != new.token.cache_capacity,
        "token.cache_capacity",
    );
    check(
        old.token.cache_max_ttl != new.token.cache_max_ttl,
        "token.cache_max_ttl",
    );
    check(
        old.token.leeway != new.token.leeway,
        "token.leeway (verification cache)",
    );
    check(old.log != new.log, "log");
    out
}

/// Serve reload requests one at a time until shutdown.
async fn reload_loop(
    core: Arc<Core>,
    live: Arc<LiveCell>,
    mut requests: mpsc::Receiver<ReloadReply>,
    shutdown: CancellationToken,
) {
    loop {
        let reply = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = requests.recv() => match r {
                Some(r) => r,
                None => return,
            },
        };
        let outcome = reload(&core, &live).await;
        core.metrics.reloaded(outcome.is_ok());
        match &outcome {
            Ok(r) => tracing::info!(
                generation = r.generation,
                active_kid = r.active_kid.as_deref().unwrap_or("none"),
                kids = ?r.kids,
                restart_needed = ?r.restart_needed,
                "configuration reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration")
            }
        }
        let _ = reply.send(outcome);
    }
}

/// Read the configuration file again and apply it — all or nothing. Everything is
/// loaded and built before anything is swapped, so a broken file, key or certificate
/// leaves the running state exactly as it was.
async fn reload(core: &Core, live: &LiveCell) -> Result<ReloadReport, String> {
    let old = live.get();
    let source = old.config.source.clone();
    let file = tokio::task::spawn_blocking(move || Config::load(&source))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let restart = restart_needed(&core.started, core.file_listen, &file);
    // Listeners stay where they are bound (an override on the command line included).
    let mut cfg = file;
    cfg.edge.tls_listen = old.config.edge.tls_listen;
    cfg.edge.plain_listen = old.config.edge.plain_listen;
    cfg.admin_listen = old.config.admin_listen;
    let keys = KeySet::load(&cfg.keys).map_err(|e| format!("keys: {e}"))?;
    let certs = match core.certs {
        Some(_) => Some(CertSet::load(&cfg.tls.certs).map_err(|e| format!("tls: {e}"))?),
        None => None,
    };
    let next = core
        .build(&cfg, old.generation + 1)
        .map_err(|e| e.to_string())?;
    // Stored resources go into the new edge before it serves a request.
    let (store, edge, revocations) = (
        core.store.clone(),
        next.edge.clone(),
        core.revocations.clone(),
    );
    tokio::task::spawn_blocking(move || sync_from_store(store.as_ref(), &edge, &revocations))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("store: {e}"))?;

    let report = ReloadReport {
        generation: next.generation,
        kids: keys.kids().into_iter().map(str::to_string).collect(),
        active_kid: keys.signing().map(|k| k.kid.clone()),
        certificates: cfg.tls.certs.len(),
        routes: cfg.routes.len(),
        origins: cfg.origins.len(),
        restart_needed: restart,
    };
    core.verifier.reload(keys, &cfg.token);
    if let (Some(store), Some(set)) = (&core.certs, certs) {
        store.replace(set);
    }
    live.set(Arc::new(next));
    Ok(report)
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
    pub metrics: Arc<Metrics>,
    pub dev_material: DevMaterial,
    live: Arc<LiveCell>,
    reloader: Reloader,
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
        let metrics = Arc::new(Metrics::new().map_err(|e| StartError::Metrics(e.to_string()))?);
        let keyset = KeySet::load(&cfg.keys)?;
        let verifier = Arc::new(Verifier::new(keyset, &cfg.token));
        let revocations = Arc::new(Revocations::default());
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&cfg.store.path).map_err(|e| StartError::Store(e.to_string()))?,
        );
        let certs = match cfg.edge.tls_listen {
            Some(_) => Some(Arc::new(CertStore::new(CertSet::load(&cfg.tls.certs)?))),
            None => None,
        };
        let tls = match &certs {
            Some(c) => Some(TlsAcceptor::from(crate::tls::server_config_for(c.clone())?)),
            None => None,
        };
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let reloader = Reloader(reload_tx);
        let core = Arc::new(Core {
            metrics: metrics.clone(),
            verifier: verifier.clone(),
            revocations: revocations.clone(),
            store: store.clone(),
            ready: Arc::new(AtomicBool::new(false)),
            certs,
            reloader: reloader.clone(),
            started: Arc::new(cfg.clone()),
            file_listen: Config::load(&cfg.source).ok().map(|f| listen_of(&f)),
        });
        let first = core.build(cfg, 0)?;
        // Revocations and resources are loaded before anything listens (THREATS E3).
        let version = sync_from_store(store.as_ref(), &first.edge, &revocations)
            .map_err(|e| StartError::Store(e.to_string()))?;
        let live = Arc::new(LiveCell(RwLock::new(Arc::new(first))));

        let shutdown = CancellationToken::new();
        let limits = Limits::from_edge(&cfg.edge);
        let mut tasks = JoinSet::new();
        let mut gate = Gate {
            edge_tls: None,
            edge_plain: None,
            admin: None,
            verifier,
            revocations: revocations.clone(),
            metrics: metrics.clone(),
            dev_material,
            live: live.clone(),
            reloader,
            shutdown: shutdown.clone(),
            tasks: JoinSet::new(),
        };

        let edge_handler = {
            let live = live.clone();
            move |req, info| {
                let live = live.get();
                async move { live.edge.handle(req, info).await }
            }
        };
        let open = |listener: &str| metrics.open_connections.with_label_values(&[listener]);
        if let (Some(addr), Some(acceptor)) = (cfg.edge.tls_listen, tls) {
            let l = bind(addr).await?;
            gate.edge_tls = Some(local(&l, addr));
            tasks.spawn(server::serve(
                l,
                Some(acceptor),
                limits.clone(),
                edge_handler.clone(),
                open("edge_tls"),
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
                open("edge_plain"),
                shutdown.clone(),
            ));
        }
        if let Some(addr) = cfg.admin_listen {
            let l = bind(addr).await?;
            gate.admin = Some(local(&l, addr));
            let live = live.clone();
            let handler = move |req, info: crate::server::ConnInfo| {
                let live = live.get();
                async move { live.admin.handle(req, info.peer.ip()).await }
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
                open("admin"),
                shutdown.clone(),
            ));
        }
        tasks.spawn(refresh_loop(
            store,
            live.clone(),
            revocations,
            (version, 0),
            cfg.store.poll,
            shutdown.clone(),
        ));
        tasks.spawn(reload_loop(core.clone(), live, reload_rx, shutdown.clone()));
        core.ready.store(true, Ordering::Release);
        gate.tasks = tasks;
        Ok(gate)
    }

    /// A handle that stops the gate when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// A handle that reloads the configuration (SIGHUP).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// What is serving now.
    pub fn live(&self) -> Arc<Live> {
        self.live.get()
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
