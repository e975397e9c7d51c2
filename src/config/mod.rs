//! Configuration: the file format, its defaults, and validation into typed structs.
//!
//! Two stages (`docs/architecture.md`, "Module rules"). [`file::File`] and its children mirror
//! the TOML file one to one (`deny_unknown_fields`, a doc comment on every key);
//! [`Config::load`] validates that once, section by section ([`validate`]), into
//! [`Config`]: socket addresses, resolved paths, non-empty key lists, routes that name
//! existing origins. Everything after start-up reads only the validated form, kept in an
//! `Arc`. This module never opens a socket and never reads a certificate's or key's
//! contents; it only resolves their paths. It may use the lower modules' types (`token`,
//! `resource`, `ratelimit`, `logging`, `store`); none of them imports it: where they need settings,
//! this module converts into their own plain types (e.g. [`VerifyPolicy`]).
//!
//! Relative paths in the file are resolved against the directory holding the file, so
//! `tollgate serve --config config/tollgate.toml` works from any working directory.

pub mod file;
mod formats;
mod validate;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::logging::{AccessDest, AccessFormat};
use crate::ratelimit::Rate;
use crate::resource::{Resource, ResourceType};
use crate::token::keys::KeySpec;
use crate::token::verify::VerifyPolicy;

/// Why a configuration file was refused. Each message names the key at fault (a value
/// the parser refuses, such as a malformed duration, is reported with its line quoted).
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

/// `[azure]`: Azure AD bearer authentication for the Azure Video Indexer API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Azure {
    pub authorization_uri: String,
    pub tenants: Vec<AzureTenant>,
}

/// `[[azure.tenants]]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureTenant {
    pub tenant_id: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: JwksSource,
    pub jwks_refresh: Duration,
    pub accounts: Vec<String>,
    pub object_ids: Vec<String>,
    pub authorization_uri: String,
}

/// Where a tenant's JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    /// `https://`, or `http://` to a loopback host.
    Url(String),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from.
    pub source: PathBuf,
    pub edge: Edge,
    pub tls: Tls,
    pub admin_listen: Option<SocketAddr>,
    /// The admin TLS listener (`admin.tls_listen`); off unless set.
    pub admin_tls_listen: Option<SocketAddr>,
    pub token: Token,
    pub admin: Admin,
    pub store: Store,
    pub keys: Vec<KeySpec>,
    pub origins: Vec<Origin>,
    pub routes: Vec<Route>,
    /// `[[formats]]`, in file order (routes refer to them by index).
    pub formats: Vec<crate::token::foreign::Format>,
    pub resources: Vec<Resource>,
    pub manifest: Manifest,
    pub limits: Limits,
    pub log: Log,
    pub cache: Cache,
    pub azure: Azure,
}

/// Validated `[cache]` (the shield cache's shape and default freshness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    /// The default of every route's own switch.
    pub enabled: bool,
    pub max_bytes: u64,
    pub max_object_bytes: u64,
    pub segment_ttl: Duration,
    pub vod_playlist_ttl: Duration,
    pub live_playlist_ttl: Duration,
    pub not_found_ttl: Duration,
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
    pub refresh_reuse_interval: Duration,
    pub login_per_ip: u32,
    pub login_per_account: u32,
    pub body_timeout: Duration,
    /// `[admin.tls]`: the admin TLS listener's certificates.
    pub tls: Tls,
}

#[derive(Debug, Clone)]
pub struct Store {
    /// The SQLite file or the PostgreSQL database.
    pub location: crate::store::Location,
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
    /// Goes through the shield cache (only ever true on an `http(s)://` origin).
    pub cache: bool,
    /// Accepts the native token (`"native"` in `formats`; the default).
    pub native: bool,
    /// Indices into [`Config::formats`] of the foreign formats accepted here.
    pub formats: Vec<usize>,
}

/// A store named on the command line (`tollgate store copy --to`), checked as `[store]`
/// checks its keys: a `postgres://` URL (with its password file and CA file, never a
/// password in the URL) or else a SQLite file. Relative paths are taken from the
/// current directory.
pub fn store_location(
    target: &str,
    password_file: Option<&str>,
    ca_file: Option<&str>,
) -> Result<crate::store::Location, ConfigError> {
    let is_url = target.contains("://");
    let file = file::StoreFile {
        url: is_url.then(|| target.to_owned()),
        path: (!is_url).then(|| target.to_owned()),
        password_file: password_file.map(str::to_owned),
        ca_file: ca_file.map(str::to_owned),
        ..Default::default()
    };
    let paths = validate::Paths {
        base: Path::new(""),
    };
    Ok(validate::store(&file, &paths)?.location)
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
        let file: file::File = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: path.to_path_buf(),
            error: Box::new(error),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::validate(&file, &validate::Paths { base }, path)
    }

    /// Each section in turn; a section that refers to another comes after it.
    fn validate(
        file: &file::File,
        paths: &validate::Paths<'_>,
        source: &Path,
    ) -> Result<Self, ConfigError> {
        let edge = validate::edge(&file.edge)?;
        let tls = validate::tls(&file.tls, &edge, paths)?;
        let (admin_listen, admin_tls_listen, admin) = validate::admin(&file.admin, &edge, paths)?;
        let token = validate::token(&file.token)?;
        let store = validate::store(&file.store, paths)?;
        let keys = validate::keys(&file.keys, paths)?;
        let (origins, origin_index) = validate::origins(&file.origins, paths)?;
        let cache = validate::cache(&file.cache)?;
        let formats = formats::formats(&file.formats, paths, &token)?;
        let mut routes = validate::routes(&file.routes, &origins, &origin_index, &cache)?;
        formats::assign(&mut routes, &file.routes, &formats, &token)?;
        let resources = validate::resources(&file.resources)?;
        let manifest = validate::manifest(&file.manifest)?;
        formats::check_live_sessions(&formats, manifest.rewrite)?;
        let limits = validate::limits(&file.limits)?;
        let log = validate::log(&file.log, paths)?;
        let azure = validate::azure(&file.azure, paths)?;
        Ok(Config {
            source: source.to_path_buf(),
            edge,
            tls,
            admin_listen,
            admin_tls_listen,
            token,
            admin,
            store,
            keys,
            origins,
            routes,
            formats,
            resources,
            manifest,
            limits,
            log,
            cache,
            azure,
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

/// Parse a duration such as `"250ms"`, `"30s"`, `"5m"`, `"2h"`, `"1d"`: one number and
/// one unit. The CLI's `--ttl` and `--session` read durations with this; the
/// configuration file's durations go through `humantime-serde` instead (see [`file`]),
/// which accepts these forms and more (`"1h 30m"`).
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

/// The example config (`config/tollgate.toml`: routes, resources `demo` and `trailer`,
/// limits), with `edit` applied to its text: unit tests elsewhere start from it.
#[cfg(test)]
pub(crate) fn example(edit: impl FnOnce(String) -> String) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.toml");
    let text = std::fs::read_to_string(&path).expect("example config");
    Config::parse(&edit(text), &path).expect("example config parses")
}

#[cfg(test)]
mod tests {
    use super::validate::parse_template;
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

    const TENANT: &str = "\n[[azure.tenants]]\ntenant_id = \"t1\"\nissuer = \"https://sts.windows.net/t1/\"\naccounts = [\"acme\"]\n";

    #[test]
    fn azure_tenants_default_their_audience_refresh_and_challenge() {
        assert_eq!(example(|t| t).azure.tenants, vec![]);
        let c = example(|t| format!("{t}{TENANT}jwks = \"aad/keys.json\"\n"));
        let t = &c.azure.tenants[0];
        assert_eq!(
            t.audiences,
            vec!["https://management.azure.com/".to_string()]
        );
        assert_eq!(t.jwks_refresh, Duration::from_secs(3600));
        assert_eq!(t.authorization_uri, "https://login.windows.net/t1");
        assert_eq!(c.azure.authorization_uri, "https://login.windows.net/");
        let JwksSource::File(path) = &t.jwks else {
            panic!("a file path: {:?}", t.jwks);
        };
        assert!(path.ends_with("config/aad/keys.json"), "{}", path.display());
    }

    #[test]
    fn azure_jwks_must_be_https_loopback_http_or_a_file() {
        let with = |jwks: &str, more: &str| {
            let path = repo_config();
            let text = std::fs::read_to_string(&path).expect("example");
            Config::parse(&format!("{text}{TENANT}jwks = \"{jwks}\"\n{more}"), &path)
        };
        for ok in [
            "https://login.microsoftonline.com/t1/discovery/keys",
            "http://127.0.0.1:8080/keys",
            "http://localhost/keys",
        ] {
            let c = with(ok, "").expect(ok);
            assert_eq!(c.azure.tenants[0].jwks, JwksSource::Url(ok.into()));
        }
        for bad in ["http://login.example/keys", "ftp://x/keys", ""] {
            let err = with(bad, "").expect_err(bad);
            assert!(err.to_string().contains("azure.tenants[0].jwks"), "{err}");
        }
        let err = with("k.json", "jwks_refresh = \"0s\"").expect_err("0s");
        assert!(err.to_string().contains("jwks_refresh"), "{err}");
        let err = with("k.json", "audiences = []").expect_err("no audience");
        assert!(err.to_string().contains("audiences"), "{err}");
    }

    #[test]
    fn the_example_config_routes_every_resource_type_by_rid() {
        let c = Config::load(&repo_config()).expect("config/tollgate.toml must stay valid");
        for t in crate::resource::ResourceType::ALL {
            let routes: Vec<&Route> = c
                .routes
                .iter()
                .filter(|r| r.resource_type == t && r.has_rid && !r.public)
                .collect();
            assert_eq!(routes.len(), 1, "one token-checked {{rid}} route for {t:?}");
        }
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

    const MINIMAL: &str = r#"
        [edge]
        tls_listen = ""
        plain_listen = "127.0.0.1:0"
        [[keys]]
        kid = "k"
        alg = "HS256"
        secret = "s"
    "#;

    #[test]
    fn admin_tls_is_off_by_default_and_needs_its_own_certificates_and_port() {
        let c = Config::parse(MINIMAL, Path::new("/etc/t.toml")).expect("valid");
        assert_eq!(c.admin_tls_listen, None);
        assert!(c.admin.tls.certs.is_empty());
        let on = format!("{MINIMAL}\n[admin]\ntls_listen = \"127.0.0.1:9443\"\n");
        let err = Config::parse(&on, Path::new("t.toml")).expect_err("no certificate");
        assert!(err.to_string().contains("admin.tls.certs"), "{err}");
        let with_cert = format!(
            "{on}[admin.tls]\ndev_generate = true\n[[admin.tls.certs]]\ncert = \"a/cert.pem\"\nkey = \"a/key.pem\"\nserver_names = [\"admin.test\"]\n"
        );
        let c = Config::parse(&with_cert, Path::new("/etc/t.toml")).expect("valid");
        assert_eq!(c.admin_tls_listen, "127.0.0.1:9443".parse().ok());
        assert_eq!(c.admin.tls.certs[0].cert, Path::new("/etc/a/cert.pem"));
        assert_eq!(c.admin.tls.certs[0].server_names, ["admin.test"]);
        assert!(c.admin.tls.dev_generate);
        let clash = with_cert.replace("127.0.0.1:9443", "127.0.0.1:9090");
        let err = Config::parse(&clash, Path::new("t.toml")).expect_err("admin.listen's port");
        assert!(err.to_string().contains("admin.tls_listen"), "{err}");
    }

    #[test]
    fn the_example_configs_commented_admin_tls_works_uncommented() {
        let c = example(|text| {
            let mut out = text.replace("# tls_listen = ", "tls_listen = ");
            for table in [
                "[admin.tls]",
                "dev_generate = true\n#\n",
                "[[admin.tls.certs]]",
            ] {
                out = out.replacen(&format!("# {table}"), table, 1);
            }
            for key in ["cert = \"../certs/admin", "key = \"../certs/admin"] {
                out = out.replacen(&format!("# {key}"), key, 1);
            }
            out.replacen(
                "# server_names = [\"localhost\"",
                "server_names = [\"localhost\"",
                1,
            )
        });
        assert_eq!(c.admin_tls_listen, "127.0.0.1:9443".parse().ok());
        assert!(c.admin.tls.dev_generate);
        assert!(c.admin.tls.certs[0].cert.ends_with("certs/admin/cert.pem"));
        // Off as shipped.
        assert_eq!(example(|t| t).admin_tls_listen, None);
    }

    #[test]
    fn file_durations_take_humantime_forms() {
        let text = format!(
            "{MINIMAL}\n[token]\nleeway = \"1m 30s\"\ncache_max_ttl = \"500ms\"\nmax_lifetime = \"7d\"\n"
        );
        let c = Config::parse(&text, Path::new("t.toml")).expect("valid");
        assert_eq!(c.token.leeway, Duration::from_secs(90));
        assert_eq!(c.token.cache_max_ttl, Duration::from_millis(500));
        assert_eq!(c.token.max_lifetime, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(c.store.poll, Duration::from_millis(250), "default");
    }

    #[test]
    fn never_expiring_tokens_are_allowed_by_default_with_no_lifetime_cap() {
        let c = Config::parse(MINIMAL, Path::new("t.toml")).expect("valid");
        assert!(c.token.allow_never_expiring);
        assert_eq!(c.token.max_lifetime, None);
        let text = format!("{MINIMAL}\n[token]\nallow_never_expiring = false\n");
        let c = Config::parse(&text, Path::new("t.toml")).expect("valid");
        assert!(!c.token.allow_never_expiring);
        let shipped = Config::load(&repo_config()).expect("shipped config");
        assert!(shipped.token.allow_never_expiring);
        assert_eq!(shipped.token.max_lifetime, None);
    }

    #[test]
    fn refresh_reuse_interval_defaults_to_30s_takes_0s_and_refuses_what_makes_no_sense() {
        let c = Config::parse(MINIMAL, Path::new("t.toml")).expect("valid");
        assert_eq!(c.admin.refresh_reuse_interval, Duration::from_secs(30));
        let with = |v: &str| format!("{MINIMAL}\n[admin]\nrefresh_ttl = \"1h\"\n{v}\n");
        let strict = Config::parse(&with("refresh_reuse_interval = \"0s\""), Path::new("t"))
            .expect("0s is strict reuse detection");
        assert_eq!(strict.admin.refresh_reuse_interval, Duration::ZERO);
        for bad in ["\"1500ms\"", "\"2h\"", "\"1h\""] {
            let err = Config::parse(
                &with(&format!("refresh_reuse_interval = {bad}")),
                Path::new("t"),
            )
            .expect_err(bad);
            assert!(
                err.to_string().contains("refresh_reuse_interval"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_bad_duration_is_refused_and_the_error_names_its_key() {
        let text = MINIMAL.replace(
            "plain_listen = \"127.0.0.1:0\"",
            "plain_listen = \"127.0.0.1:0\"\nheader_timeout = \"10\"",
        );
        let err = Config::parse(&text, Path::new("t.toml")).expect_err("no unit");
        let msg = err.to_string();
        assert!(msg.contains("header_timeout"), "{msg}");
        assert!(msg.contains("\"10\""), "{msg}");
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

    #[test]
    fn routes_are_cached_on_http_origins_by_default_and_never_on_file_ones() {
        let http = |route_extra: &str| {
            let route = format!("origin = \"sample\"\n{route_extra}");
            Config::parse(
                &std::fs::read_to_string(repo_config())
                    .expect("example")
                    .replace(
                        "upstreams = [\"file://../sample\"]",
                        "upstreams = [\"http://127.0.0.1:9\"]",
                    )
                    .replacen("origin = \"sample\"\n", &route, 1),
                &repo_config(),
            )
        };
        assert!(
            http("").expect("valid").routes[0].cache,
            "on by default in the example"
        );
        assert!(!http("cache = false").expect("valid").routes[0].cache);
        let file = example(|t| t);
        assert!(
            file.cache.enabled && !file.routes[0].cache,
            "a file:// origin is not cached"
        );
        let err = Config::parse(
            &std::fs::read_to_string(repo_config())
                .expect("example")
                .replacen(
                    "origin = \"sample\"\n",
                    "origin = \"sample\"\ncache = true\n",
                    1,
                ),
            &repo_config(),
        )
        .expect_err("cache = true on a file:// origin");
        assert!(err.to_string().contains("never cached"), "{err}");
        let text = std::fs::read_to_string(repo_config()).expect("example");
        let small = text.replace("\nmax_bytes = 268435456", "\nmax_bytes = 1024");
        let err = Config::parse(&small, &repo_config()).expect_err("budget under one object");
        assert!(err.to_string().contains("cache.max_bytes"), "{err}");
    }

    /// `[store]` with `text` appended to [`MINIMAL`], from `/etc/tollgate/t.toml`.
    fn with_store(text: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("{MINIMAL}\n[store]\n{text}\n"),
            Path::new("/etc/tollgate/t.toml"),
        )
    }

    #[test]
    fn store_url_picks_postgres_with_its_password_file_ca_file_and_pool_size() {
        use crate::store::{postgres::PgOptions, Location};
        let c = with_store("").expect("valid");
        assert_eq!(
            c.store.location,
            Location::Sqlite(PathBuf::from("/etc/tollgate/../data/tollgate.db")),
            "SQLite by default"
        );
        let c = with_store(r#"url = "postgres://tollgate@db.internal:5432/gate?sslmode=require""#)
            .expect("valid");
        assert_eq!(
            c.store.location,
            Location::Postgres(PgOptions {
                url: "postgres://tollgate@db.internal:5432/gate?sslmode=require".into(),
                password_file: None,
                ca_file: None,
                pool_size: 8,
            })
        );
        let c = with_store(
            "url = \"postgresql://tollgate@db/gate\"\npassword_file = \"pg.pass\"\n\
             ca_file = \"/etc/ssl/db-ca.pem\"\npool_size = 32",
        )
        .expect("valid");
        assert_eq!(
            c.store.location,
            Location::Postgres(PgOptions {
                url: "postgresql://tollgate@db/gate".into(),
                password_file: Some(PathBuf::from("/etc/tollgate/pg.pass")),
                ca_file: Some(PathBuf::from("/etc/ssl/db-ca.pem")),
                pool_size: 32,
            })
        );
    }

    #[test]
    fn store_poll_defaults_to_250_ms_on_sqlite_and_to_a_10_s_safety_net_on_postgresql() {
        let sqlite = with_store("").expect("valid");
        assert_eq!(sqlite.store.poll, Duration::from_millis(250));
        let pg = with_store(r#"url = "postgres://tollgate@127.0.0.1/gate""#).expect("valid");
        assert_eq!(pg.store.poll, Duration::from_secs(10));
        let set = with_store("url = \"postgres://tollgate@127.0.0.1/gate\"\npoll = \"2s\"")
            .expect("valid");
        assert_eq!(
            set.store.poll,
            Duration::from_secs(2),
            "an explicit poll wins"
        );
    }

    #[test]
    fn a_store_named_on_the_command_line_is_checked_like_the_store_section() {
        use crate::store::{postgres::PgOptions, Location};
        assert_eq!(
            store_location("old/tollgate.db", None, None).expect("a file"),
            Location::Sqlite(PathBuf::from("old/tollgate.db"))
        );
        assert_eq!(
            store_location(
                "postgres://tollgate@db/gate?sslmode=require",
                Some("pg.pass"),
                Some("/etc/ssl/db-ca.pem")
            )
            .expect("a URL"),
            Location::Postgres(PgOptions {
                url: "postgres://tollgate@db/gate?sslmode=require".into(),
                password_file: Some(PathBuf::from("pg.pass")),
                ca_file: Some(PathBuf::from("/etc/ssl/db-ca.pem")),
                pool_size: 8,
            })
        );
        for (target, password_file, why) in [
            ("postgres://tollgate:secret@db/gate", None, "password_file"),
            ("mysql://tollgate@db/gate", None, "postgres://"),
            ("old/tollgate.db", Some("pg.pass"), "only with store.url"),
        ] {
            let err = store_location(target, password_file, None).expect_err(target);
            assert!(err.to_string().contains(why), "{target}: {err}");
        }
    }

    #[test]
    fn store_url_refuses_a_password_another_scheme_a_path_beside_it_and_a_bad_pool_size() {
        for (text, key) in [
            (
                r#"url = "postgres://tollgate:secret@db/gate""#,
                "password_file",
            ),
            (r#"url = "mysql://tollgate@db/gate""#, "postgres://"),
            (
                "url = \"postgres://tollgate@db/gate\"\npath = \"x.db\"",
                "store.path",
            ),
            (
                "url = \"postgres://t@db/g\"\npool_size = 0",
                "store.pool_size",
            ),
            (
                "url = \"postgres://t@db/g\"\npool_size = 1001",
                "store.pool_size",
            ),
            (r#"password_file = "pg.pass""#, "only with store.url"),
            (r#"ca_file = "ca.pem""#, "only with store.url"),
            ("pool_size = 4", "only with store.url"),
        ] {
            let err = with_store(text).expect_err(text);
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
        // An '@' in the path or query is not a password.
        with_store(r#"url = "postgres://tollgate@db/gate?application_name=a:b@c""#)
            .expect("no password in the user-info part");
    }
}
