//! Stage two of the configuration: each section of the file checked into its typed form.
//!
//! One function per section, each refusing with a message that names the key at fault.
//! Defaults live here, beside the checks. Sections that refer to others (routes name
//! origins, the TLS listener needs certificates) take what they refer to as an argument,
//! so the order of the calls in [`super::Config::validate`] is the order of dependence.
//! Durations arrive already parsed (`humantime-serde` in [`super::file`]).

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{
    AdminFile, AzureFile, AzureTenantFile, CacheFile, EdgeFile, KeyFile, LimitsFile, LogFile,
    ManifestFile, OriginFile, ResourceFile, RouteFile, StoreFile, TlsFile, TokenFile,
};
use super::{
    invalid, Admin, Azure, AzureTenant, Cache, Cert, ConfigError, Edge, JwksSource, Limit, Limits,
    Log, Manifest, ManifestMode, Origin, Route, Store, Tls, Token, Upstream,
};
use crate::logging::{AccessDest, AccessFormat};
use crate::ratelimit::Rate;
use crate::resource::{parse_privacy, Resource, ResourceType};
use crate::store::postgres::PgOptions;
use crate::store::Location;
use crate::token::claims::parse_net;
use crate::token::keys::{Algorithm, KeySpec};

/// Resolves the file's relative paths against the directory holding it.
pub(super) struct Paths<'a> {
    pub base: &'a Path,
}

impl Paths<'_> {
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// `[edge]`.
pub(super) fn edge(e: &EdgeFile) -> Result<Edge, ConfigError> {
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
        header_timeout: e.header_timeout.unwrap_or(Duration::from_secs(10)),
        tls_handshake_timeout: e.tls_handshake_timeout.unwrap_or(Duration::from_secs(10)),
        max_header_bytes: e.max_header_bytes.unwrap_or(16 * 1024),
        max_headers: e.max_headers.unwrap_or(100),
        max_connections: e.max_connections.unwrap_or(10_000),
        h2_max_concurrent_streams: e.h2_max_concurrent_streams.unwrap_or(100),
        trusted_proxies,
        cors_origins: e.cors_origins.clone(),
        max_body_bytes: e.max_body_bytes.unwrap_or(1024 * 1024),
        shutdown_grace: e.shutdown_grace.unwrap_or(Duration::from_secs(30)),
    };
    check_edge_bounds(&edge)?;
    Ok(edge)
}

fn check_edge_bounds(edge: &Edge) -> Result<(), ConfigError> {
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
    Ok(())
}

/// `[tls]`: the TLS edge listener, when on, needs a certificate.
pub(super) fn tls(t: &TlsFile, edge: &Edge, paths: &Paths<'_>) -> Result<Tls, ConfigError> {
    let tls = certificates(t, paths);
    if edge.tls_listen.is_some() && tls.certs.is_empty() {
        return Err(invalid(
            "tls.certs: the TLS edge listener needs at least one [[tls.certs]] entry",
        ));
    }
    Ok(tls)
}

/// A `[tls]`-shaped section with its paths resolved.
fn certificates(t: &TlsFile, paths: &Paths<'_>) -> Tls {
    Tls {
        certs: t
            .certs
            .iter()
            .map(|c| Cert {
                cert: paths.resolve(&c.cert),
                key: paths.resolve(&c.key),
                server_names: c.server_names.clone(),
            })
            .collect(),
        dev_generate: t.dev_generate,
    }
}

/// `[admin]`: the plain and TLS listener addresses and the admin settings. The TLS
/// listener, when on, needs its own certificate and a port no other listener has.
pub(super) fn admin(
    a: &AdminFile,
    edge: &Edge,
    paths: &Paths<'_>,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>, Admin), ConfigError> {
    let listen = addr(
        "admin.listen",
        Some(a.listen.as_deref().unwrap_or("127.0.0.1:9090")),
    )?;
    let tls_listen = addr("admin.tls_listen", a.tls_listen.as_deref())?;
    let tls = certificates(&a.tls, paths);
    if let Some(t) = tls_listen {
        if tls.certs.is_empty() {
            return Err(invalid(
                "admin.tls.certs: the admin TLS listener needs at least one [[admin.tls.certs]] entry",
            ));
        }
        let taken = [listen, edge.tls_listen, edge.plain_listen];
        if t.port() != 0 && taken.contains(&Some(t)) {
            return Err(invalid(format!(
                "admin.tls_listen: {t} is another listener's address"
            )));
        }
    }
    let admin = Admin {
        token_file: a.token_file.as_deref().map(|p| paths.resolve(p)),
        access_ttl: a.access_ttl.unwrap_or(Duration::from_secs(600)),
        refresh_ttl: a.refresh_ttl.unwrap_or(Duration::from_secs(30 * 86_400)),
        refresh_reuse_interval: a.refresh_reuse_interval.unwrap_or(Duration::from_secs(30)),
        login_per_ip: a.login_per_ip.unwrap_or(30),
        login_per_account: a.login_per_account.unwrap_or(5),
        body_timeout: a.body_timeout.unwrap_or(Duration::from_secs(10)),
        tls,
    };
    reuse_interval(&admin)?;
    Ok((listen, tls_listen, admin))
}

/// Longest `admin.refresh_reuse_interval`: a grace for a client's own quick second use,
/// not a second lifetime for spent tokens.
const MAX_REUSE_INTERVAL: Duration = Duration::from_secs(3600);

/// `admin.refresh_reuse_interval`: whole seconds (the store counts in seconds), at most
/// an hour, and shorter than a refresh token lives.
fn reuse_interval(a: &Admin) -> Result<(), ConfigError> {
    let d = a.refresh_reuse_interval;
    if d.subsec_nanos() != 0 {
        return Err(invalid(
            "admin.refresh_reuse_interval: must be whole seconds, e.g. \"30s\"",
        ));
    }
    if d > MAX_REUSE_INTERVAL || d >= a.refresh_ttl {
        return Err(invalid(
            "admin.refresh_reuse_interval: must be at most 1h and shorter than admin.refresh_ttl",
        ));
    }
    Ok(())
}

/// `[azure]`.
pub(super) fn azure(a: &AzureFile, paths: &Paths<'_>) -> Result<Azure, ConfigError> {
    let tenants = a
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| azure_tenant(i, t, paths))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Azure {
        authorization_uri: a
            .authorization_uri
            .clone()
            .unwrap_or_else(|| "https://login.windows.net/".into()),
        tenants,
    })
}

fn azure_tenant(
    i: usize,
    t: &AzureTenantFile,
    paths: &Paths<'_>,
) -> Result<AzureTenant, ConfigError> {
    let key = |k: &str| format!("azure.tenants[{i}].{k}");
    for (k, v) in [("tenant_id", &t.tenant_id), ("issuer", &t.issuer)] {
        if v.is_empty() {
            return Err(invalid(format!("{} must not be empty", key(k))));
        }
    }
    if t.accounts.is_empty() || t.accounts.iter().any(String::is_empty) {
        return Err(invalid(format!(
            "{} must name at least one account, none empty",
            key("accounts")
        )));
    }
    let audiences = t
        .audiences
        .clone()
        .unwrap_or_else(|| vec!["https://management.azure.com/".into()]);
    if audiences.is_empty() || audiences.iter().any(String::is_empty) {
        return Err(invalid(format!("{} must not be empty", key("audiences"))));
    }
    let jwks_refresh = t.jwks_refresh.unwrap_or(Duration::from_secs(3600));
    if jwks_refresh < Duration::from_secs(1) {
        return Err(invalid(format!(
            "{} must be at least 1s",
            key("jwks_refresh")
        )));
    }
    Ok(AzureTenant {
        tenant_id: t.tenant_id.clone(),
        issuer: t.issuer.clone(),
        audiences,
        jwks: jwks_source(&key("jwks"), &t.jwks, paths)?,
        jwks_refresh,
        accounts: t.accounts.clone(),
        object_ids: t.object_ids.clone(),
        authorization_uri: t
            .authorization_uri
            .clone()
            .unwrap_or_else(|| format!("https://login.windows.net/{}", t.tenant_id)),
    })
}

/// A JWKS URL (`https://`, or `http://` to a loopback host: keys fetched in the clear
/// from elsewhere could be swapped on the way) or a file path.
fn jwks_source(key: &str, v: &str, paths: &Paths<'_>) -> Result<JwksSource, ConfigError> {
    if v.is_empty() {
        return Err(invalid(format!("{key} must not be empty")));
    }
    if v.starts_with("https://") {
        return v
            .parse::<http::Uri>()
            .map(|_| JwksSource::Url(v.to_string()))
            .map_err(|e| invalid(format!("{key}: {v:?} is not a URL: {e}")));
    }
    if let Some(rest) = v.strip_prefix("http://") {
        let host = v
            .parse::<http::Uri>()
            .ok()
            .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()));
        let loopback = host.is_some_and(|h| {
            h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
        });
        if !loopback || rest.is_empty() {
            return Err(invalid(format!(
                "{key}: {v:?}: a JWKS URL must be https:// (http:// only to a loopback host)"
            )));
        }
        return Ok(JwksSource::Url(v.to_string()));
    }
    if v.contains("://") {
        return Err(invalid(format!(
            "{key}: {v:?}: a JWKS is an https:// URL or a file path"
        )));
    }
    Ok(JwksSource::File(paths.resolve(v)))
}

/// `[store]`: the SQLite file, or (with `url`) a PostgreSQL database.
pub(super) fn store(s: &StoreFile, paths: &Paths<'_>) -> Result<Store, ConfigError> {
    let location = match &s.url {
        None => {
            let postgres_only = [
                ("password_file", s.password_file.is_some()),
                ("ca_file", s.ca_file.is_some()),
                ("pool_size", s.pool_size.is_some()),
            ];
            if let Some((key, _)) = postgres_only.iter().find(|(_, set)| *set) {
                return Err(invalid(format!("store.{key}: only with store.url")));
            }
            Location::Sqlite(paths.resolve(s.path.as_deref().unwrap_or("../data/tollgate.db")))
        }
        Some(url) => Location::Postgres(postgres_store(s, url, paths)?),
    };
    // SQLite has no notifications: polling is how a node sees the CLI's writes. On
    // PostgreSQL notifications carry changes and the poll is only a safety net.
    let poll = match location {
        Location::Sqlite(_) => Duration::from_millis(250),
        Location::Postgres(_) => Duration::from_secs(10),
    };
    Ok(Store {
        location,
        poll: s.poll.unwrap_or(poll),
    })
}

/// `[store] url` and its companions.
fn postgres_store(s: &StoreFile, url: &str, paths: &Paths<'_>) -> Result<PgOptions, ConfigError> {
    if s.path.is_some() {
        return Err(invalid(
            "store.url and store.path name two stores: keep one (url: PostgreSQL, path: SQLite)",
        ));
    }
    let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    else {
        return Err(invalid(
            "store.url: a PostgreSQL URL starts with postgres:// or postgresql://",
        ));
    };
    // The user-info part ends at the last '@' before the path.
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((userinfo, _)) = authority.rsplit_once('@') {
        if userinfo.contains(':') {
            return Err(invalid(
                "store.url: holds a password; put it in store.password_file or PGPASSWORD",
            ));
        }
    }
    let pool_size = s.pool_size.unwrap_or(8);
    if !(1..=1000).contains(&pool_size) {
        return Err(invalid("store.pool_size: must be between 1 and 1000"));
    }
    Ok(PgOptions {
        url: url.to_owned(),
        password_file: s.password_file.as_deref().map(|p| paths.resolve(p)),
        ca_file: s.ca_file.as_deref().map(|p| paths.resolve(p)),
        pool_size,
    })
}

/// `[token]`.
pub(super) fn token(t: &TokenFile) -> Result<Token, ConfigError> {
    let token = Token {
        issuer: t.issuer.clone().unwrap_or_else(|| "tollgate".to_string()),
        audience: t.audience.clone(),
        leeway: t.leeway.unwrap_or(Duration::from_secs(30)),
        max_len: t.max_len.unwrap_or(4096),
        cache_capacity: t.cache_capacity.unwrap_or(100_000),
        cache_max_ttl: t.cache_max_ttl.unwrap_or(Duration::from_secs(300)),
        path_prefix: carrier_name("path_prefix", &t.path_prefix, "t")?,
        query: carrier_name("query", &t.query, "token")?,
        cookie: carrier_name("cookie", &t.cookie, "tollgate_token")?,
        // BlendVision's document: with neither expiry field, the token never expires.
        // Revocation by `jti` is the control over such tokens.
        allow_never_expiring: t.allow_never_expiring.unwrap_or(true),
        max_lifetime: t.max_lifetime,
    };
    if token.max_len == 0 || token.max_len > 16 * 1024 {
        return Err(invalid("token.max_len: must be between 1 and 16384"));
    }
    Ok(token)
}

/// A name for tokens' carriers: one path segment / query name / cookie name.
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

/// `[[keys]]`: unique kids, material each algorithm needs, at most one active key.
pub(super) fn keys(file: &[KeyFile], paths: &Paths<'_>) -> Result<Vec<KeySpec>, ConfigError> {
    let mut kids = HashSet::new();
    let mut keys = Vec::with_capacity(file.len());
    for k in file {
        if k.kid.is_empty() || k.kid.len() > 128 {
            return Err(invalid("keys.kid: must be 1 to 128 characters"));
        }
        if !kids.insert(k.kid.clone()) {
            return Err(invalid(format!("keys: kid {:?} appears twice", k.kid)));
        }
        keys.push(key(k, paths)?);
    }
    if keys.is_empty() {
        return Err(invalid("keys: at least one [[keys]] entry is needed"));
    }
    if keys.iter().filter(|k| k.active).count() > 1 {
        return Err(invalid("keys: at most one key may be `active`"));
    }
    Ok(keys)
}

fn key(k: &KeyFile, paths: &Paths<'_>) -> Result<KeySpec, ConfigError> {
    let alg = Algorithm::parse(&k.alg).ok_or_else(|| {
        invalid(format!(
            "keys[{}].alg: {:?} is not one of EdDSA, ES256, RS256, HS256",
            k.kid, k.alg
        ))
    })?;
    let key = KeySpec {
        kid: k.kid.clone(),
        alg,
        public: k.public.as_deref().map(|p| paths.resolve(p)),
        private: k.private.as_deref().map(|p| paths.resolve(p)),
        secret: k.secret.as_deref().map(|p| paths.resolve(p)),
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
    Ok(key)
}

/// `[[origins]]`, and each origin's index by name (routes refer to origins by name).
pub(super) fn origins(
    file: &[OriginFile],
    paths: &Paths<'_>,
) -> Result<(Vec<Origin>, BTreeMap<String, usize>), ConfigError> {
    let mut origins = Vec::with_capacity(file.len());
    let mut index = BTreeMap::new();
    for o in file {
        if index.insert(o.name.clone(), origins.len()).is_some() {
            return Err(invalid(format!("origins: name {:?} appears twice", o.name)));
        }
        if o.upstreams.is_empty() {
            return Err(invalid(format!("origins[{}].upstreams: empty", o.name)));
        }
        let upstreams = o
            .upstreams
            .iter()
            .map(|u| upstream(o, u, paths))
            .collect::<Result<Vec<_>, _>>()?;
        origins.push(Origin {
            name: o.name.clone(),
            upstreams,
            connect_timeout: o.connect_timeout.unwrap_or(Duration::from_secs(2)),
            read_timeout: o.read_timeout.unwrap_or(Duration::from_secs(10)),
            ca_file: o.ca_file.as_deref().map(|p| paths.resolve(p)),
            pool_max_idle: o.pool_max_idle.unwrap_or(64),
        });
    }
    Ok((origins, index))
}

/// One upstream: `http(s)://host[:port]` without a path, or the only `file://DIR`.
fn upstream(o: &OriginFile, u: &str, paths: &Paths<'_>) -> Result<Upstream, ConfigError> {
    if let Some(dir) = u.strip_prefix("file://") {
        if o.upstreams.len() != 1 {
            return Err(invalid(format!(
                "origins[{}]: a file:// upstream must be the only one",
                o.name
            )));
        }
        return Ok(Upstream::File(paths.resolve(dir)));
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
    Ok(Upstream::Http(uri))
}

/// `[[routes]]`: unique prefixes, known types and origins, a `{rid}` unless public.
pub(super) fn routes(
    file: &[RouteFile],
    origins: &[Origin],
    origin_index: &BTreeMap<String, usize>,
    cache: &Cache,
) -> Result<Vec<Route>, ConfigError> {
    let mut routes = Vec::with_capacity(file.len());
    let mut prefixes = HashSet::new();
    for r in file {
        let mut route = route(r, origin_index, &mut prefixes)?;
        route.cache = route_cache(r, &origins[route.origin], cache)?;
        routes.push(route);
    }
    Ok(routes)
}

/// A route is cached when it (or `cache.enabled`) says so and its origin is HTTP: a
/// `file://` origin is a local read, which a memory copy would not make cheaper.
fn route_cache(r: &RouteFile, origin: &Origin, cache: &Cache) -> Result<bool, ConfigError> {
    let http = !matches!(origin.upstreams.as_slice(), [Upstream::File(_)]);
    match r.cache {
        Some(true) if !http => Err(invalid(format!(
            "routes[{}].cache: origin {:?} is a file:// directory, which is never cached",
            r.name, origin.name
        ))),
        Some(on) => Ok(on),
        None => Ok(cache.enabled && http),
    }
}

fn route(
    r: &RouteFile,
    origin_index: &BTreeMap<String, usize>,
    prefixes: &mut HashSet<String>,
) -> Result<Route, ConfigError> {
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
    let route_limit = |key: &str, v: &Option<String>| -> Result<Option<Limit>, ConfigError> {
        v.as_ref()
            .map(|s| limit(&format!("routes[{}].{key}", r.name), s))
            .transpose()
    };
    Ok(Route {
        name: r.name.clone(),
        prefix,
        has_rid,
        resource_type,
        origin,
        public: r.public,
        per_ip: route_limit("per_ip", &r.per_ip)?,
        per_subject: route_limit("per_subject", &r.per_subject)?,
        cache: false,
        // `formats.rs` assigns what the route accepts once the formats are known.
        native: true,
        formats: Vec::new(),
    })
}

/// `/vod/{rid}/` → (`/vod/`, true); `/static/` → (`/static/`, false).
pub(super) fn parse_template(t: &str) -> Option<(String, bool)> {
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

/// `[[resources]]`: each (id, type) once, the id one path segment.
pub(super) fn resources(file: &[ResourceFile]) -> Result<Vec<Resource>, ConfigError> {
    let mut ids = HashSet::new();
    let mut resources = Vec::with_capacity(file.len());
    for r in file {
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
        let public = parse_privacy(&r.privacy).ok_or_else(|| {
            invalid(format!(
                "resources[{}].privacy: {:?} is not `public` or `token`",
                r.id, r.privacy
            ))
        })?;
        resources.push(Resource {
            id: r.id.clone(),
            resource_type,
            org: r.org.clone(),
            project: r.project.clone(),
            public,
            published: true,
        });
    }
    Ok(resources)
}

/// `[manifest]`.
pub(super) fn manifest(m: &ManifestFile) -> Result<Manifest, ConfigError> {
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
            .map(|h| allow_host(h))
            .collect::<Result<Vec<_>, _>>()?,
        renew_before: m.renew_before.unwrap_or(Duration::from_secs(60)),
        renew_ttl: m.renew_ttl.unwrap_or(Duration::from_secs(300)),
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
    Ok(manifest)
}

/// `[cache]`: an object must fit the budget, and a weight must fit moka's `u32`.
pub(super) fn cache(c: &CacheFile) -> Result<Cache, ConfigError> {
    const MIB: u64 = 1024 * 1024;
    let cache = Cache {
        enabled: c.enabled.unwrap_or(false),
        max_bytes: c.max_bytes.unwrap_or(256 * MIB),
        max_object_bytes: c.max_object_bytes.unwrap_or(16 * MIB),
        segment_ttl: c.segment_ttl.unwrap_or(Duration::from_secs(3600)),
        vod_playlist_ttl: c.vod_playlist_ttl.unwrap_or(Duration::from_secs(3600)),
        live_playlist_ttl: c.live_playlist_ttl.unwrap_or(Duration::from_secs(1)),
        not_found_ttl: c.not_found_ttl.unwrap_or(Duration::from_secs(1)),
    };
    if cache.max_object_bytes == 0 || cache.max_object_bytes > 1024 * MIB {
        return Err(invalid(
            "cache.max_object_bytes: must be between 1 and 1073741824",
        ));
    }
    if cache.max_bytes < cache.max_object_bytes {
        return Err(invalid(
            "cache.max_bytes: must be at least cache.max_object_bytes",
        ));
    }
    Ok(cache)
}

/// A host whose absolute URLs get the token: `host`, `host:port` or `*.domain`, lowercased.
fn allow_host(h: &str) -> Result<String, ConfigError> {
    let ok = !h.is_empty()
        && h.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']' | b'*')
        })
        && !h.get(1..).is_some_and(|rest| rest.contains('*'));
    if ok {
        Ok(h.to_ascii_lowercase())
    } else {
        Err(invalid(format!(
            "manifest.allow_hosts: {h:?} is not a host, host:port or *.domain"
        )))
    }
}

/// `[limits]`.
pub(super) fn limits(l: &LimitsFile) -> Result<Limits, ConfigError> {
    Ok(Limits {
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
    })
}

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

/// `[log]`.
pub(super) fn log(l: &LogFile, paths: &Paths<'_>) -> Result<Log, ConfigError> {
    let format = l.access.as_deref().unwrap_or("logfmt");
    let access = AccessFormat::parse(format).ok_or_else(|| {
        invalid(format!(
            "log.access: {format:?} is not \"logfmt\", \"json\" or \"off\""
        ))
    })?;
    let access_to = match l.access_to.as_deref().unwrap_or("stderr") {
        "stderr" => AccessDest::Stderr,
        "stdout" => AccessDest::Stdout,
        "" => return Err(invalid("log.access_to: empty")),
        path => AccessDest::File(paths.resolve(path)),
    };
    Ok(Log { access, access_to })
}

/// An address like `127.0.0.1:8443`; absent or `""` is `None` (listener off).
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
