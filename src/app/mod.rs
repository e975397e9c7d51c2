//! Wiring: turn a validated [`Config`] into running listeners.
//!
//! [`Gate::start`] makes the quick start's development material if the config asks for
//! it, loads keys and certificates, builds the edge, binds every listener (so a bad
//! config or a busy port fails before anything serves), and spawns the accept loops,
//! the store refresher ([`refresh`]) and the reload task. Tests start a whole gate this
//! way on `127.0.0.1:0`. Owns no request handling: the edge and the admin service do.

pub mod refresh;
mod reload;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::admin::issuer::{Issuer, Lifetimes};
use crate::admin::{AdminService, Settings};
use crate::cache::Cache;
use crate::config::Config;
use crate::edge::EdgeService;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::server::{self, Limits};
use crate::store::feed::FeedStatus;
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
    /// The edge's development certificate.
    pub cert: bool,
    /// The admin TLS listener's development certificate.
    pub admin_cert: bool,
}

/// Create the development keys and certificates the config asks for, if missing.
pub fn ensure_dev_material(cfg: &Config) -> Result<DevMaterial, StartError> {
    let keys = keys::ensure_dev_keys(&cfg.keys)?;
    Ok(DevMaterial {
        keys,
        cert: ensure_dev_cert(&cfg.tls)?,
        admin_cert: ensure_dev_cert(&cfg.admin.tls)?,
    })
}

/// A `[tls]`-shaped section's development certificate, when it asks for one.
fn ensure_dev_cert(tls: &crate::config::Tls) -> Result<bool, StartError> {
    match (tls.dev_generate, tls.certs.first()) {
        (true, Some(c)) => Ok(crate::tls::ensure_dev_cert(c)?),
        _ => Ok(false),
    }
}

/// The certificate store and acceptor of a TLS listener, when it is on. The store is
/// kept so that a reload can swap its certificates.
fn tls_listener(
    listen: Option<SocketAddr>,
    tls: &crate::config::Tls,
) -> Result<Option<(Arc<CertStore>, TlsAcceptor)>, StartError> {
    if listen.is_none() {
        return Ok(None);
    }
    let store = Arc::new(CertStore::new(CertSet::load(&tls.certs)?));
    let acceptor = TlsAcceptor::from(crate::tls::server_config_for(store.clone())?);
    Ok(Some((store, acceptor)))
}

/// The quick start token's lifetime.
const QUICKSTART_TTL: Duration = Duration::from_secs(3600);

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
        // An hour, or token.max_lifetime when shorter (no token outlives it).
        ttl: Some(
            cfg.token
                .max_lifetime
                .map_or(QUICKSTART_TTL, |max| max.min(QUICKSTART_TTL)),
        ),
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
    // every variant and segment request carries it (docs/architecture.md, "Manifests").
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

/// The parts a reload rebuilds, swapped whole: requests already running finish on the
/// generation they started with.
pub struct Live {
    pub generation: u64,
    pub config: Arc<Config>,
    pub edge: Arc<EdgeService>,
    pub admin: Arc<AdminService>,
}

/// The current [`Live`]: read per request (one lock-free load of an `Arc`).
pub struct LiveCell(ArcSwap<Live>);

impl LiveCell {
    fn new(live: Live) -> Self {
        LiveCell(ArcSwap::from_pointee(live))
    }

    pub fn get(&self) -> Arc<Live> {
        self.0.load_full()
    }

    fn set(&self, live: Arc<Live>) {
        self.0.store(live);
    }
}

/// What lives as long as the process, across reloads.
struct Core {
    metrics: Arc<Metrics>,
    verifier: Arc<Verifier>,
    revocations: Arc<Revocations>,
    /// The shield cache: its objects outlive a reload (its shape needs a restart).
    cache: Arc<Cache>,
    store: Arc<dyn Store>,
    /// This node's contact with the store (the change-feed loop writes it, `/readyz` reads).
    feed: Arc<FeedStatus>,
    ready: Arc<AtomicBool>,
    certs: Option<Arc<CertStore>>,
    /// The admin TLS listener's certificates, swapped by a reload like the edge's.
    admin_certs: Option<Arc<CertStore>>,
    reloader: Reloader,
    /// The configuration the process started with: settings that only a restart applies
    /// are compared with it, so a reload keeps naming them until the restart.
    started: Arc<Config>,
    /// The listen addresses the file named at start (before any command-line override).
    file_listen: Option<Listen>,
}

/// Edge TLS, edge plain, admin and admin TLS listen addresses.
type Listen = [Option<SocketAddr>; 4];

fn listen_of(cfg: &Config) -> Listen {
    [
        cfg.edge.tls_listen,
        cfg.edge.plain_listen,
        cfg.admin_listen,
        cfg.admin_tls_listen,
    ]
}

impl Core {
    /// Build the reloadable parts for `cfg`.
    fn build(&self, cfg: &Config, generation: u64) -> Result<Live, StartError> {
        let admin_token = ensure_admin_token(cfg)?;
        let edge = Arc::new(EdgeService::new(
            cfg,
            self.verifier.clone(),
            self.revocations.clone(),
            self.cache.clone(),
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
        let admin = Arc::new(
            AdminService::new(
                self.ready.clone(),
                issuer,
                self.verifier.clone(),
                self.revocations.clone(),
                Settings {
                    access_ttl: cfg.admin.access_ttl,
                    refresh_ttl: cfg.admin.refresh_ttl,
                    refresh_reuse_interval: cfg.admin.refresh_reuse_interval,
                    body_timeout: cfg.admin.body_timeout,
                    admin_token_sha256: admin_token,
                    login_per_ip: cfg.admin.login_per_ip,
                    login_per_account: cfg.admin.login_per_account,
                    issue_per_api_token: cfg.limits.issue_per_api_token,
                    azure: cfg.azure.clone(),
                    jti_retention: crate::admin::manage::jti_retention(cfg),
                },
                self.metrics.clone(),
                Some(self.reloader.clone()),
            )
            .with_cache(self.cache.clone())
            .with_feed_status(self.feed.clone()),
        );
        Ok(Live {
            generation,
            config: Arc::new(cfg.clone()),
            edge,
            admin,
        })
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
        crate::private_file::write_secret(path, format!("{token}\n").as_bytes()).map_err(err)?;
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
    pub admin_tls: Option<SocketAddr>,
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

/// Run a store call at start-up on a blocking thread (a PostgreSQL store connects and
/// waits for the database; that must not happen on an async worker).
async fn store_call<T: Send + 'static>(
    call: impl FnOnce() -> crate::store::Result<T> + Send + 'static,
) -> Result<T, StartError> {
    match tokio::task::spawn_blocking(call).await {
        Ok(result) => result.map_err(|e| StartError::Store(e.to_string())),
        Err(e) => Err(StartError::Store(format!("the store task failed: {e}"))),
    }
}

fn local(l: &tokio::net::TcpListener, fallback: SocketAddr) -> SocketAddr {
    l.local_addr().unwrap_or(fallback)
}

impl Gate {
    /// Start every configured listener. Returns once all are bound and accepting.
    pub async fn start(cfg: &Config) -> Result<Gate, StartError> {
        let location = cfg.store.location.clone();
        let store = store_call(move || crate::store::open(&location)).await?;
        Self::start_with_store(cfg, store).await
    }

    /// [`Gate::start`] on a store already open (`cfg.store.location` is not read):
    /// how tests put a store in front of the gate that they can make fail.
    pub async fn start_with_store(cfg: &Config, store: Arc<dyn Store>) -> Result<Gate, StartError> {
        let dev_material = ensure_dev_material(cfg)?;
        let metrics = Arc::new(Metrics::new().map_err(|e| StartError::Metrics(e.to_string()))?);
        let keyset = KeySet::load(&cfg.keys)?;
        let verifier = Arc::new(Verifier::new(keyset, &cfg.token));
        let revocations = Arc::new(Revocations::default());
        let (certs, tls) = tls_listener(cfg.edge.tls_listen, &cfg.tls)?.unzip();
        let (admin_certs, admin_tls) = tls_listener(cfg.admin_tls_listen, &cfg.admin.tls)?.unzip();
        let (reloader, reload_requests) = Reloader::channel(4);
        let core = Arc::new(Core {
            metrics: metrics.clone(),
            verifier: verifier.clone(),
            revocations: revocations.clone(),
            cache: Cache::new(&cfg.cache, metrics.cache.clone()),
            store: store.clone(),
            feed: Arc::new(FeedStatus::default()),
            ready: Arc::new(AtomicBool::new(false)),
            certs,
            admin_certs,
            reloader: reloader.clone(),
            started: Arc::new(cfg.clone()),
            file_listen: Config::load(&cfg.source).ok().map(|f| listen_of(&f)),
        });
        let first = core.build(cfg, 0)?;
        // Revocations and resources are loaded before anything listens (docs/threat-model.md, E3).
        let seq = {
            let (s, e, r) = (store.clone(), first.edge.clone(), revocations.clone());
            store_call(move || refresh::sync_from_store(s.as_ref(), &e, &r)).await?
        };
        core.feed.reached(seq);
        metrics.store_up.set(1);
        metrics
            .store_applied_seq
            .set(i64::try_from(seq).unwrap_or(i64::MAX));
        let live = Arc::new(LiveCell::new(first));

        let shutdown = CancellationToken::new();
        let limits = Limits::from_edge(&cfg.edge);
        let mut tasks = JoinSet::new();
        let mut gate = Gate {
            edge_tls: None,
            edge_plain: None,
            admin: None,
            admin_tls: None,
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
        let admin_handler = {
            let live = live.clone();
            move |req, info: crate::server::ConnInfo| {
                let live = live.get();
                async move { live.admin.handle(req, info.peer.ip()).await }
            }
        };
        let admin_limits = Limits {
            max_connections: 256,
            ..limits
        };
        // The same admin service on both admin listeners: plain and TLS.
        for (listen, acceptor, label) in [
            (cfg.admin_listen, None, "admin"),
            (cfg.admin_tls_listen, admin_tls, "admin_tls"),
        ] {
            let Some(addr) = listen else { continue };
            let l = bind(addr).await?;
            let bound = Some(local(&l, addr));
            if acceptor.is_some() {
                gate.admin_tls = bound;
            } else {
                gate.admin = bound;
            }
            tasks.spawn(server::serve(
                l,
                acceptor,
                admin_limits.clone(),
                admin_handler.clone(),
                open(label),
                shutdown.clone(),
            ));
        }
        tasks.spawn(refresh::refresh_loop(
            refresh::Follower {
                store,
                live: live.clone(),
                revocations,
                status: core.feed.clone(),
                metrics: metrics.clone(),
                poll: cfg.store.poll,
            },
            refresh::Applied { seq, generation: 0 },
            shutdown.clone(),
        ));
        tasks.spawn(reload::reload_loop(
            core.clone(),
            live,
            reload_requests,
            shutdown.clone(),
        ));
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
