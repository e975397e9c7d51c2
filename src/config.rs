//! Configuration: the file format, its defaults, and validation into typed structs.
//!
//! Two stages (STYLE.md §2). [`File`] and its children mirror the TOML file one to one
//! (`deny_unknown_fields`, a doc comment on every key); [`Config::load`] validates that
//! once into [`Config`]: durations, socket addresses, resolved paths, non-empty key
//! lists, routes that name existing origins. Everything after start-up reads only the
//! validated form, kept in an `Arc`. This module never opens a socket and never reads a
//! certificate's or key's contents; it only resolves their paths.
//!
//! Relative paths in the file are resolved against the directory holding the file, so
//! `tollgate serve --config config/tollgate.toml` works from any working directory.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use crate::logging::{AccessDest, AccessFormat};
use crate::ratelimit::Rate;
use crate::resource::{Resource, ResourceType};
use crate::token::claims::parse_net;
use crate::token::keys::{Algorithm, KeySpec};
use crate::token::verify::VerifyPolicy;

/// Why a configuration file was refused. Each message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {error}")]
    Parse {
        path: PathBuf,
        error: Box<toml::de::Error>,
    },
    #[error("{0}")]
    Invalid(String),
}

fn invalid(msg: impl Into<String>) -> ConfigError {
    ConfigError::Invalid(msg.into())
}

// ---------------------------------------------------------------------------
// Stage one: the file as written.
// ---------------------------------------------------------------------------

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Edge listeners: where media is served.
    #[serde(default)]
    pub edge: EdgeFile,
    /// Certificates for the TLS edge listener.
    #[serde(default)]
    pub tls: TlsFile,
    /// The admin listener: token APIs, management, reload, metrics, health.
    #[serde(default)]
    pub admin: AdminFile,
    /// How tokens are found and verified.
    #[serde(default)]
    pub token: TokenFile,
    /// Signing and verification keys, each pinned to one algorithm.
    #[serde(default)]
    pub keys: Vec<KeyFile>,
    /// Named origin pools.
    #[serde(default)]
    pub origins: Vec<OriginFile>,
    /// Path templates mapped to a resource type and an origin pool.
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    /// Resources declared in the file (the store holds the rest; both are merged).
    #[serde(default)]
    pub resources: Vec<ResourceFile>,
    /// Where state lives.
    #[serde(default)]
    pub store: StoreFile,
    /// HLS/DASH manifest rewriting and live token renewal.
    #[serde(default)]
    pub manifest: ManifestFile,
    /// Rate limits (answered 429 with `Retry-After`).
    #[serde(default)]
    pub limits: LimitsFile,
    /// The access log.
    #[serde(default)]
    pub log: LogFile,
}

/// `[limits]`: each a rate like `"200/s burst 400"` (`/s`, `/m` or `/h`; the burst
/// defaults to the count), or `"off"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Edge requests per client address (after `trusted_proxies`), any route. A route may
    /// set its own. Default `"200/s burst 400"`. Behind a CDN without `trusted_proxies`,
    /// every viewer shares the CDN's address: set them, or raise or turn this off.
    pub per_ip: Option<String>,
    /// Edge requests per token subject (`sub`). A route may set its own. Default
    /// `"100/s burst 200"`.
    pub per_subject: Option<String>,
    /// Failed token verifications per client address. The failure that finds the budget
    /// spent blocks the address: its requests with tokens not already verified are then
    /// refused with 429 before any signature work, until a failure's worth has refilled.
    /// Tokens the gate has verified before still pass. Default `"30/m burst 30"`.
    pub bad_tokens_per_ip: Option<String>,
    /// Token-issuing requests per API token (BlendVision, Azure). Default `"50/s burst 100"`.
    pub issue_per_api_token: Option<String>,
}

/// `[log]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFile {
    /// Access log format, one line per edge request: `"logfmt"` (default), `"json"` or
    /// `"off"`. Read at start-up only.
    pub access: Option<String>,
    /// Where access lines go: `"stderr"` (default), `"stdout"`, or a file path (appended).
    /// Read at start-up only.
    pub access_to: Option<String>,
}

/// `[manifest]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestFile {
    /// Rewrite HLS playlists and DASH MPDs so that child requests carry the token. Default true.
    pub rewrite: Option<bool>,
    /// How child requests get the token: `"query"` (every child URL gets `?token=`, for a
    /// manifest requested with a query token) or `"cookie"` (a `Set-Cookie` scoped to the
    /// resource's path, for players that keep cookies). Default `"query"`.
    pub mode: Option<String>,
    /// Largest manifest buffered for rewriting, in bytes; a larger one passes through
    /// untouched. Default 8 MiB.
    pub max_bytes: Option<usize>,
    /// Hosts whose absolute URLs get the token (`cdn.example.com`, `host:port`,
    /// `*.example.com`). Relative URLs always do; other hosts never. Default empty.
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Renew a token that expires within this window, for tokens carrying `sxp`. Default `"60s"`.
    pub renew_before: Option<String>,
    /// Lifetime of a renewed token (never beyond the token's `sxp`). Default `"300s"`.
    pub renew_ttl: Option<String>,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// The SQLite file (created with its directory on first run). Default `data/tollgate.db`
    /// beside the config's parent directory, i.e. `"../data/tollgate.db"` from `config/`.
    pub path: Option<String>,
    /// How often the edge looks for changes in the store (resources, revocations). Default 250 ms.
    pub poll: Option<String>,
}

/// `[edge]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    /// TLS listener address (HTTP/1.1 and HTTP/2 by ALPN). Default `0.0.0.0:8443`; `""` disables it.
    pub tls_listen: Option<String>,
    /// Plain listener address (HTTP/1.1 and h2c prior knowledge), for use behind a TLS-terminating
    /// load balancer or CDN. Absent or `""`: disabled.
    pub plain_listen: Option<String>,
    /// Time allowed to receive a request's headers, e.g. `"10s"`. Default 10 s.
    pub header_timeout: Option<String>,
    /// Time allowed for a TLS handshake. Default 10 s.
    pub tls_handshake_timeout: Option<String>,
    /// Maximum size of a request's header block in bytes (larger → 431). Default 16384.
    pub max_header_bytes: Option<usize>,
    /// Maximum number of request headers (more → 431). Default 100.
    pub max_headers: Option<usize>,
    /// Maximum open client connections per listener; further connections wait in the
    /// kernel backlog. Default 10000.
    pub max_connections: Option<usize>,
    /// HTTP/2: maximum concurrent streams per connection. Default 100.
    pub h2_max_concurrent_streams: Option<u32>,
    /// Addresses or CIDRs of proxies (CDN, load balancer) whose `X-Forwarded-For` is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Origins (`https://player.example`) allowed by CORS; `["*"]` allows any. Empty: no CORS headers.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Largest request body the edge forwards, in bytes (larger → 413). Default 1 MiB.
    pub max_body_bytes: Option<u64>,
    /// On SIGTERM/SIGINT: how long in-flight requests (a segment download, say) may take
    /// to finish once the listeners have stopped accepting. Default `"30s"`.
    pub shutdown_grace: Option<String>,
}

/// `[tls]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// Certificates; the first is the default when SNI matches none.
    #[serde(default)]
    pub certs: Vec<CertFile>,
    /// Create a development CA and certificate at the first `certs` entry's paths when
    /// they do not exist (quick start only; never for production).
    #[serde(default)]
    pub dev_generate: bool,
}

/// `[[tls.certs]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFile {
    /// PEM certificate chain, leaf first.
    pub cert: String,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: String,
    /// SNI names this certificate answers (exact or `*.example.com`). Empty: names from the certificate are not read; it is used as the default only.
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// `[admin]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Admin listener address. Default `127.0.0.1:9090`; `""` disables it.
    pub listen: Option<String>,
    /// File holding the admin token for the management API (`/v1/…`); a random one is
    /// written there (mode 0600) on first run. Absent: management over HTTP is off.
    pub token_file: Option<String>,
    /// movingimage access-token lifetime. Default `"10m"`.
    pub access_ttl: Option<String>,
    /// movingimage refresh-token lifetime. Default `"30d"`.
    pub refresh_ttl: Option<String>,
    /// Login attempts per minute per client address. Default 30.
    pub login_per_ip: Option<u32>,
    /// Login attempts per minute per account. Default 5.
    pub login_per_account: Option<u32>,
    /// Time allowed to receive a request body. Default `"10s"`.
    pub body_timeout: Option<String>,
}

/// `[token]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFile {
    /// Expected `iss` claim; tokens are minted with it. Default `tollgate`.
    pub issuer: Option<String>,
    /// Accepted `aud` values; when set, tokens must carry one of them.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`, e.g. `"30s"`. Default 30 s.
    pub leeway: Option<String>,
    /// Longest token accepted, in bytes; longer is refused before any decoding. Default 4096.
    pub max_len: Option<usize>,
    /// Entries in the verified-token cache. Default 100000. 0 disables caching.
    pub cache_capacity: Option<usize>,
    /// Longest a verified token stays cached (never beyond its `exp`). Default `"300s"`.
    pub cache_max_ttl: Option<String>,
    /// Path prefix segment carrying a token: `/t/<token>/…`. Default `t`.
    pub path_prefix: Option<String>,
    /// Query parameter carrying a token. Default `token`.
    pub query: Option<String>,
    /// Cookie carrying a token. Default `tollgate_token`.
    pub cookie: Option<String>,
    /// Allow tokens without `exp` (`tollgate token mint --ttl never`, BlendVision
    /// requests without an expiry). Default false.
    #[serde(default)]
    pub allow_never_expiring: bool,
    /// Longest lifetime the admin APIs issue, e.g. `"7d"`; absent: no cap.
    pub max_lifetime: Option<String>,
}

/// `[[keys]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    /// Key id, carried in the token header's `kid`.
    pub kid: String,
    /// `EdDSA` (Ed25519), `ES256`, `RS256` or `HS256`. The token's own `alg` is never trusted.
    #[serde(default = "default_alg")]
    pub alg: String,
    /// Public key PEM (EdDSA, ES256, RS256). Verification uses it.
    pub public: Option<String>,
    /// Private key PEM (PKCS#8) for signing; only the issuing node needs it.
    pub private: Option<String>,
    /// Shared secret file for HS256 (raw bytes, at least 32).
    pub secret: Option<String>,
    /// The key that signs new tokens (exactly one key may say so).
    #[serde(default)]
    pub active: bool,
    /// Generate an Ed25519 key pair at `private`/`public` when they do not exist
    /// (quick start only).
    #[serde(default)]
    pub dev_generate: bool,
}

fn default_alg() -> String {
    "EdDSA".to_string()
}

/// `[[origins]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginFile {
    /// Name routes refer to.
    pub name: String,
    /// `http://host:port`, `https://host:port` (tried in order, failover for GET/HEAD), or
    /// a single `file://DIR` serving a local directory.
    pub upstreams: Vec<String>,
    /// TCP (and TLS) connect timeout. Default 2 s.
    pub connect_timeout: Option<String>,
    /// Time to the response headers once connected. Default 10 s.
    pub read_timeout: Option<String>,
    /// Extra CA certificates (PEM) trusted for `https://` upstreams, beside the system roots.
    pub ca_file: Option<String>,
    /// Idle keep-alive connections kept per upstream host. Default 64.
    pub pool_max_idle: Option<usize>,
}

/// `[[routes]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Short name (log and metric label).
    pub name: String,
    /// Path template: a literal prefix, optionally with one `{rid}` segment, ending in `/`.
    pub path: String,
    /// Resource type served here: `live`, `vod`, `live_event`, `live_event_recording`,
    /// `vod_event`, `audio_event`, `vod_encoding`.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Origin pool name.
    pub origin: String,
    /// Serve without a token (for public content); default false.
    #[serde(default)]
    pub public: bool,
    /// This route's own per-address limit (a rate or `"off"`); default `limits.per_ip`.
    pub per_ip: Option<String>,
    /// This route's own per-subject limit (a rate or `"off"`); default `limits.per_subject`.
    pub per_subject: Option<String>,
}

/// `[[resources]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceFile {
    /// Resource id, as it appears in the route's `{rid}`.
    pub id: String,
    /// Resource type, as routes name it.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Organisation (account / VideoManager) id.
    pub org: String,
    /// Project id, if any.
    pub project: Option<String>,
    /// `token` (default) or `public`.
    #[serde(default = "default_privacy")]
    pub privacy: String,
}

fn default_privacy() -> String {
    "token".to_string()
}

// ---------------------------------------------------------------------------
// Stage two: validated.
// ---------------------------------------------------------------------------

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from.
    pub source: PathBuf,
    pub edge: Edge,
    pub tls: Tls,
    pub admin_listen: Option<SocketAddr>,
    pub token: Token,
    pub admin: Admin,
    pub store: Store,
    pub keys: Vec<KeySpec>,
    pub origins: Vec<Origin>,
    pub routes: Vec<Route>,
    pub resources: Vec<Resource>,
    pub manifest: Manifest,
    pub limits: Limits,
    pub log: Log,
}

/// A limit: a rate, or `None` for no limit.
pub type Limit = Option<Rate>;

/// Validated `[limits]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub per_ip: Limit,
    pub per_subject: Limit,
    pub bad_tokens_per_ip: Limit,
    pub issue_per_api_token: Limit,
}

/// Validated `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub access: AccessFormat,
    pub access_to: AccessDest,
}

/// How child requests of a manifest get the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestMode {
    Query,
    Cookie,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub rewrite: bool,
    pub mode: ManifestMode,
    pub max_bytes: usize,
    pub allow_hosts: Vec<String>,
    pub renew_before: Duration,
    pub renew_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub tls_listen: Option<SocketAddr>,
    pub plain_listen: Option<SocketAddr>,
    pub header_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
    pub h2_max_concurrent_streams: u32,
    pub trusted_proxies: Vec<IpNet>,
    pub cors_origins: Vec<String>,
    pub max_body_bytes: u64,
    pub shutdown_grace: Duration,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub token_file: Option<PathBuf>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub login_per_ip: u32,
    pub login_per_account: u32,
    pub body_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub path: PathBuf,
    pub poll: Duration,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub certs: Vec<Cert>,
    pub dev_generate: bool,
}

#[derive(Debug, Clone)]
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub server_names: Vec<String>,
}

/// The verifier's share of `[token]`.
impl From<&Token> for VerifyPolicy {
    fn from(t: &Token) -> Self {
        VerifyPolicy {
            issuer: t.issuer.clone(),
            audience: t.audience.clone(),
            allow_never_expiring: t.allow_never_expiring,
            max_len: t.max_len,
            leeway: t.leeway,
            cache_capacity: t.cache_capacity,
            cache_max_ttl: t.cache_max_ttl,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Token {
    pub issuer: String,
    pub audience: Vec<String>,
    pub leeway: Duration,
    pub max_len: usize,
    pub cache_capacity: usize,
    pub cache_max_ttl: Duration,
    pub path_prefix: String,
    pub query: String,
    pub cookie: String,
    pub allow_never_expiring: bool,
    pub max_lifetime: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum Upstream {
    Http(http::Uri),
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Origin {
    pub name: String,
    pub upstreams: Vec<Upstream>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub ca_file: Option<PathBuf>,
    pub pool_max_idle: usize,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// Literal text before `{rid}` (or the whole prefix when there is none), starting and ending with `/`.
    pub prefix: String,
    /// Whether a `{rid}` segment follows the prefix.
    pub has_rid: bool,
    pub resource_type: ResourceType,
    /// Index into [`Config::origins`].
    pub origin: usize,
    pub public: bool,
    /// This route's own limits; `None` uses `[limits]`.
    pub per_ip: Option<Limit>,
    pub per_subject: Option<Limit>,
}

/// Parse a duration such as `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let secs = |m: u64| n.checked_mul(m).map(Duration::from_secs);
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        _ => None,
    }
}

fn duration(key: &str, v: &Option<String>, default: Duration) -> Result<Duration, ConfigError> {
    match v {
        None => Ok(default),
        Some(s) => parse_duration(s)
            .ok_or_else(|| invalid(format!("{key}: {s:?} is not a duration like \"30s\""))),
    }
}

fn addr(key: &str, v: Option<&str>) -> Result<Option<SocketAddr>, ConfigError> {
    match v {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            invalid(format!(
                "{key}: {s:?} is not an address like 127.0.0.1:8443"
            ))
        }),
    }
}

/// A name for tokens' carriers: one path segment / query name / cookie name.
/// A rate like `"100/s burst 200"`, or `"off"`.
fn limit(key: &str, s: &str) -> Result<Limit, ConfigError> {
    if s.trim() == "off" {
        return Ok(None);
    }
    Rate::parse(s).map(Some).ok_or_else(|| {
        invalid(format!(
            "{key}: {s:?} is not a rate like \"100/s\", \"30/m burst 60\" or \"off\""
        ))
    })
}

fn limit_or(key: &str, v: &Option<String>, default: &str) -> Result<Limit, ConfigError> {
    limit(key, v.as_deref().unwrap_or(default))
}

fn carrier_name(key: &str, v: &Option<String>, default: &str) -> Result<String, ConfigError> {
    let s = v.clone().unwrap_or_else(|| default.to_string());
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid(format!(
            "token.{key}: {s:?} must be letters, digits, '_' or '-'"
        )));
    }
    Ok(s)
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Validate configuration text; relative paths resolve against `path`'s directory.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            error: Box::new(error),
        })?;
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Self::validate(file, &base, path)
    }

    fn validate(file: File, base: &Path, source: &Path) -> Result<Self, ConfigError> {
        let resolve = |p: &str| -> PathBuf {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };

        let e = &file.edge;
        let trusted_proxies = e
            .trusted_proxies
            .iter()
            .map(|s| {
                parse_net(s).ok_or_else(|| {
                    invalid(format!(
                        "edge.trusted_proxies: {s:?} is not an address or CIDR"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let edge = Edge {
            tls_listen: addr(
                "edge.tls_listen",
                Some(e.tls_listen.as_deref().unwrap_or("0.0.0.0:8443")),
            )?,
            plain_listen: addr("edge.plain_listen", e.plain_listen.as_deref())?,
            header_timeout: duration(
                "edge.header_timeout",
                &e.header_timeout,
                Duration::from_secs(10),
            )?,
            tls_handshake_timeout: duration(
                "edge.tls_handshake_timeout",
                &e.tls_handshake_timeout,
                Duration::from_secs(10),
            )?,
            max_header_bytes: e.max_header_bytes.unwrap_or(16 * 1024),
            max_headers: e.max_headers.unwrap_or(100),
            max_connections: e.max_connections.unwrap_or(10_000),
            h2_max_concurrent_streams: e.h2_max_concurrent_streams.unwrap_or(100),
            trusted_proxies,
            cors_origins: e.cors_origins.clone(),
            max_body_bytes: e.max_body_bytes.unwrap_or(1024 * 1024),
            shutdown_grace: duration(
                "edge.shutdown_grace",
                &e.shutdown_grace,
                Duration::from_secs(30),
            )?,
        };
        if !(8192..=32768).contains(&edge.max_header_bytes) {
            // hyper reads at least 8 KiB; above 32 KiB the doubled hyper limit would let
            // a long request line meet hyper's own (cacheable) 414.
            return Err(invalid(
                "edge.max_header_bytes: must be between 8192 and 32768",
            ));
        }
        if !(1..=1000).contains(&edge.max_headers) {
            return Err(invalid("edge.max_headers: must be between 1 and 1000"));
        }
        if edge.max_connections == 0 {
            return Err(invalid("edge.max_connections: must be at least 1"));
        }
        if edge.tls_listen.is_none() && edge.plain_listen.is_none() {
            return Err(invalid(
                "edge: at least one of tls_listen and plain_listen is needed",
            ));
        }

        let tls = Tls {
            certs: file
                .tls
                .certs
                .iter()
                .map(|c| Cert {
                    cert: resolve(&c.cert),
                    key: resolve(&c.key),
                    server_names: c.server_names.clone(),
                })
                .collect(),
            dev_generate: file.tls.dev_generate,
        };
        if edge.tls_listen.is_some() && tls.certs.is_empty() {
            return Err(invalid(
                "tls.certs: the TLS edge listener needs at least one [[tls.certs]] entry",
            ));
        }

        let admin_listen = addr(
            "admin.listen",
            Some(file.admin.listen.as_deref().unwrap_or("127.0.0.1:9090")),
        )?;

        let t = &file.token;
        let token = Token {
            issuer: t.issuer.clone().unwrap_or_else(|| "tollgate".to_string()),
            audience: t.audience.clone(),
            leeway: duration("token.leeway", &t.leeway, Duration::from_secs(30))?,
            max_len: t.max_len.unwrap_or(4096),
            cache_capacity: t.cache_capacity.unwrap_or(100_000),
            cache_max_ttl: duration(
                "token.cache_max_ttl",
                &t.cache_max_ttl,
                Duration::from_secs(300),
            )?,
            path_prefix: carrier_name("path_prefix", &t.path_prefix, "t")?,
            query: carrier_name("query", &t.query, "token")?,
            cookie: carrier_name("cookie", &t.cookie, "tollgate_token")?,
            allow_never_expiring: t.allow_never_expiring,
            max_lifetime: match &t.max_lifetime {
                None => None,
                Some(_) => Some(duration(
                    "token.max_lifetime",
                    &t.max_lifetime,
                    Duration::ZERO,
                )?),
            },
        };
        let a = &file.admin;
        let admin = Admin {
            token_file: a.token_file.as_deref().map(resolve),
            access_ttl: duration("admin.access_ttl", &a.access_ttl, Duration::from_secs(600))?,
            refresh_ttl: duration(
                "admin.refresh_ttl",
                &a.refresh_ttl,
                Duration::from_secs(30 * 86_400),
            )?,
            login_per_ip: a.login_per_ip.unwrap_or(30),
            login_per_account: a.login_per_account.unwrap_or(5),
            body_timeout: duration(
                "admin.body_timeout",
                &a.body_timeout,
                Duration::from_secs(10),
            )?,
        };
        let store = Store {
            path: resolve(file.store.path.as_deref().unwrap_or("../data/tollgate.db")),
            poll: duration("store.poll", &file.store.poll, Duration::from_millis(250))?,
        };
        if token.max_len == 0 || token.max_len > 16 * 1024 {
            return Err(invalid("token.max_len: must be between 1 and 16384"));
        }

        let mut kids = HashSet::new();
        let mut keys = Vec::with_capacity(file.keys.len());
        for k in &file.keys {
            if k.kid.is_empty() || k.kid.len() > 128 {
                return Err(invalid("keys.kid: must be 1 to 128 characters"));
            }
            if !kids.insert(k.kid.clone()) {
                return Err(invalid(format!("keys: kid {:?} appears twice", k.kid)));
            }
            let alg = Algorithm::parse(&k.alg).ok_or_else(|| {
                invalid(format!(
                    "keys[{}].alg: {:?} is not one of EdDSA, ES256, RS256, HS256",
                    k.kid, k.alg
                ))
            })?;
            let key = KeySpec {
                kid: k.kid.clone(),
                alg,
                public: k.public.as_deref().map(resolve),
                private: k.private.as_deref().map(resolve),
                secret: k.secret.as_deref().map(resolve),
                active: k.active,
                dev_generate: k.dev_generate,
            };
            match alg {
                Algorithm::Hs256 if key.secret.is_none() => {
                    return Err(invalid(format!("keys[{}]: HS256 needs `secret`", k.kid)))
                }
                Algorithm::Hs256 => {}
                _ if key.public.is_none() => {
                    return Err(invalid(format!(
                        "keys[{}]: {} needs `public`",
                        k.kid, k.alg
                    )))
                }
                _ => {}
            }
            if key.dev_generate && (alg != Algorithm::EdDsa || key.private.is_none()) {
                return Err(invalid(format!(
                    "keys[{}]: dev_generate makes Ed25519 keys and needs `private` and `public`",
                    k.kid
                )));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(invalid("keys: at least one [[keys]] entry is needed"));
        }
        if keys.iter().filter(|k| k.active).count() > 1 {
            return Err(invalid("keys: at most one key may be `active`"));
        }

        let mut origins = Vec::with_capacity(file.origins.len());
        let mut origin_index = BTreeMap::new();
        for o in &file.origins {
            if origin_index.insert(o.name.clone(), origins.len()).is_some() {
                return Err(invalid(format!("origins: name {:?} appears twice", o.name)));
            }
            if o.upstreams.is_empty() {
                return Err(invalid(format!("origins[{}].upstreams: empty", o.name)));
            }
            let mut upstreams = Vec::with_capacity(o.upstreams.len());
            for u in &o.upstreams {
                if let Some(dir) = u.strip_prefix("file://") {
                    if o.upstreams.len() != 1 {
                        return Err(invalid(format!(
                            "origins[{}]: a file:// upstream must be the only one",
                            o.name
                        )));
                    }
                    upstreams.push(Upstream::File(resolve(dir)));
                    continue;
                }
                let uri: http::Uri = u
                    .parse()
                    .map_err(|_| invalid(format!("origins[{}]: {u:?} is not a URL", o.name)))?;
                let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
                let path_ok = matches!(uri.path(), "" | "/");
                if !scheme_ok || uri.authority().is_none() || !path_ok || uri.query().is_some() {
                    return Err(invalid(format!(
                        "origins[{}]: {u:?} must be http://host[:port] or https://host[:port] (no path)",
                        o.name
                    )));
                }
                upstreams.push(Upstream::Http(uri));
            }
            origins.push(Origin {
                name: o.name.clone(),
                upstreams,
                connect_timeout: duration(
                    &format!("origins[{}].connect_timeout", o.name),
                    &o.connect_timeout,
                    Duration::from_secs(2),
                )?,
                read_timeout: duration(
                    &format!("origins[{}].read_timeout", o.name),
                    &o.read_timeout,
                    Duration::from_secs(10),
                )?,
                ca_file: o.ca_file.as_deref().map(resolve),
                pool_max_idle: o.pool_max_idle.unwrap_or(64),
            });
        }

        let mut routes = Vec::with_capacity(file.routes.len());
        let mut prefixes = HashSet::new();
        for r in &file.routes {
            let (prefix, has_rid) = parse_template(&r.path).ok_or_else(|| {
                invalid(format!(
                    "routes[{}].path: {:?} must look like \"/vod/\" or \"/vod/{{rid}}/\"",
                    r.name, r.path
                ))
            })?;
            if !prefixes.insert(prefix.clone()) {
                return Err(invalid(format!("routes: prefix {prefix:?} appears twice")));
            }
            let resource_type = ResourceType::parse(&r.resource_type).ok_or_else(|| {
                invalid(format!(
                    "routes[{}].type: unknown type {:?}",
                    r.name, r.resource_type
                ))
            })?;
            let origin = *origin_index.get(&r.origin).ok_or_else(|| {
                invalid(format!(
                    "routes[{}].origin: no origin named {:?}",
                    r.name, r.origin
                ))
            })?;
            if !has_rid && !r.public {
                // Without a resource id the scope check has nothing to compare against;
                // only account-wide tokens could pass, which is rarely what was meant.
                return Err(invalid(format!(
                    "routes[{}].path: a token-checked route needs a {{rid}} segment",
                    r.name
                )));
            }
            let route_limit =
                |key: &str, v: &Option<String>| -> Result<Option<Limit>, ConfigError> {
                    v.as_ref()
                        .map(|s| limit(&format!("routes[{}].{key}", r.name), s))
                        .transpose()
                };
            routes.push(Route {
                name: r.name.clone(),
                prefix,
                has_rid,
                resource_type,
                origin,
                public: r.public,
                per_ip: route_limit("per_ip", &r.per_ip)?,
                per_subject: route_limit("per_subject", &r.per_subject)?,
            });
        }

        let mut ids = HashSet::new();
        let mut resources = Vec::with_capacity(file.resources.len());
        for r in &file.resources {
            let resource_type = ResourceType::parse(&r.resource_type).ok_or_else(|| {
                invalid(format!(
                    "resources[{}].type: unknown type {:?}",
                    r.id, r.resource_type
                ))
            })?;
            if !ids.insert((r.id.clone(), resource_type)) {
                return Err(invalid(format!("resources: {:?} appears twice", r.id)));
            }
            if r.id.is_empty() || r.id.contains('/') {
                return Err(invalid(format!(
                    "resources: id {:?} must be one path segment",
                    r.id
                )));
            }
            let public = match r.privacy.as_str() {
                "public" => true,
                "token" => false,
                other => {
                    return Err(invalid(format!(
                        "resources[{}].privacy: {other:?} is not `public` or `token`",
                        r.id
                    )))
                }
            };
            resources.push(Resource {
                id: r.id.clone(),
                resource_type,
                org: r.org.clone(),
                project: r.project.clone(),
                public,
                published: true,
            });
        }

        let m = &file.manifest;
        let manifest = Manifest {
            rewrite: m.rewrite.unwrap_or(true),
            mode: match m.mode.as_deref().unwrap_or("query") {
                "query" => ManifestMode::Query,
                "cookie" => ManifestMode::Cookie,
                other => {
                    return Err(invalid(format!(
                        "manifest.mode: {other:?} is not \"query\" or \"cookie\""
                    )))
                }
            },
            max_bytes: m.max_bytes.unwrap_or(8 * 1024 * 1024),
            allow_hosts: m
                .allow_hosts
                .iter()
                .map(|h| {
                    let ok = !h.is_empty()
                        && h.bytes().all(|b| {
                            b.is_ascii_alphanumeric()
                                || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'*')
                        })
                        && !h.get(1..).is_some_and(|rest| rest.contains('*'));
                    if ok {
                        Ok(h.to_ascii_lowercase())
                    } else {
                        Err(invalid(format!(
                            "manifest.allow_hosts: {h:?} is not a host, host:port or *.domain"
                        )))
                    }
                })
                .collect::<Result<Vec<_>, _>>()?,
            renew_before: duration(
                "manifest.renew_before",
                &m.renew_before,
                Duration::from_secs(60),
            )?,
            renew_ttl: duration("manifest.renew_ttl", &m.renew_ttl, Duration::from_secs(300))?,
        };
        if manifest.max_bytes == 0 || manifest.max_bytes > 256 * 1024 * 1024 {
            return Err(invalid(
                "manifest.max_bytes: must be between 1 and 268435456",
            ));
        }
        if manifest.renew_ttl <= manifest.renew_before {
            return Err(invalid(
                "manifest.renew_ttl: must be longer than manifest.renew_before (else every renewed token is due again at once)",
            ));
        }

        let l = &file.limits;
        let limits = Limits {
            per_ip: limit_or("limits.per_ip", &l.per_ip, "200/s burst 400")?,
            per_subject: limit_or("limits.per_subject", &l.per_subject, "100/s burst 200")?,
            bad_tokens_per_ip: limit_or(
                "limits.bad_tokens_per_ip",
                &l.bad_tokens_per_ip,
                "30/m burst 30",
            )?,
            issue_per_api_token: limit_or(
                "limits.issue_per_api_token",
                &l.issue_per_api_token,
                "50/s burst 100",
            )?,
        };
        let log = Log {
            access: {
                let f = file.log.access.as_deref().unwrap_or("logfmt");
                AccessFormat::parse(f).ok_or_else(|| {
                    invalid(format!(
                        "log.access: {f:?} is not \"logfmt\", \"json\" or \"off\""
                    ))
                })?
            },
            access_to: match file.log.access_to.as_deref().unwrap_or("stderr") {
                "stderr" => AccessDest::Stderr,
                "stdout" => AccessDest::Stdout,
                "" => return Err(invalid("log.access_to: empty")),
                path => AccessDest::File(resolve(path)),
            },
        };

        Ok(Config {
            source: source.to_path_buf(),
            edge,
            tls,
            admin_listen,
            token,
            admin,
            store,
            keys,
            origins,
            routes,
            resources,
            manifest,
            limits,
            log,
        })
    }

    /// The key that signs new tokens: the one marked `active`, else the only key.
    pub fn signing_key(&self) -> Option<&KeySpec> {
        self.keys
            .iter()
            .find(|k| k.active)
            .or(if self.keys.len() == 1 {
                self.keys.first()
            } else {
                None
            })
    }
}

/// `/vod/{rid}/` → (`/vod/`, true); `/static/` → (`/static/`, false).
fn parse_template(t: &str) -> Option<(String, bool)> {
    if !t.starts_with('/') || !t.ends_with('/') {
        return None;
    }
    let (prefix, has_rid) = match t.strip_suffix("{rid}/") {
        Some(p) => (p, true),
        None => (t, false),
    };
    if !prefix.ends_with('/')
        || prefix.contains('{')
        || prefix.contains('}')
        || prefix.contains("//")
    {
        return None;
    }
    Some((prefix.to_string(), has_rid))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_config() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.toml")
    }

    #[test]
    fn the_example_config_parses_and_validates() {
        let c = Config::load(&repo_config()).expect("config/tollgate.toml must stay valid");
        assert!(!c.routes.is_empty());
        assert!(c.signing_key().is_some());
        assert!(c.tls.dev_generate);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Config::parse("[edge]\nlisten = \"x\"\n", Path::new("t.toml"))
            .expect_err("unknown key must fail");
        assert!(err.to_string().contains("unknown field"), "{err}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("-1s"), None);
    }

    #[test]
    fn templates_need_a_slash_on_both_ends() {
        assert_eq!(parse_template("/vod/{rid}/"), Some(("/vod/".into(), true)));
        assert_eq!(parse_template("/static/"), Some(("/static/".into(), false)));
        assert_eq!(parse_template("/vod/{rid}"), None);
        assert_eq!(parse_template("vod/"), None);
        assert_eq!(parse_template("/a/{rid}/b/"), None);
    }

    #[test]
    fn a_route_to_a_missing_origin_is_refused() {
        let text = r#"
            [edge]
            tls_listen = ""
            plain_listen = "127.0.0.1:0"
            [[keys]]
            kid = "k"
            alg = "HS256"
            secret = "s"
            [[routes]]
            name = "vod"
            path = "/vod/{rid}/"
            type = "vod"
            origin = "nowhere"
        "#;
        let err = Config::parse(text, Path::new("t.toml")).expect_err("must fail");
        assert!(err.to_string().contains("nowhere"), "{err}");
    }
}
