//! Stage one of the configuration: the file as written.
//!
//! These structs mirror the TOML file one to one: `deny_unknown_fields` everywhere, so a
//! misspelt key is an error rather than a silently ignored setting, and a doc comment on
//! every key (the reference for `config/tollgate.toml`). Nothing here checks ranges or
//! cross-references; `super::validate` does that once, section by section. Durations
//! are read by `humantime-serde`: `"500ms"`, `"30s"`, `"10m"`, `"2h"`, `"7d"`, `"1h 30m"`;
//! a bad one is refused by the parser with the offending line (and so its key) quoted.

use std::time::Duration;

use serde::Deserialize;

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
    /// Foreign token formats routes may accept beside the native token.
    #[serde(default)]
    pub formats: Vec<FormatFile>,
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
    /// The shield cache in front of `http(s)://` origins.
    #[serde(default)]
    pub cache: CacheFile,
    /// Azure AD (OIDC) bearer tokens for the Azure Video Indexer API.
    #[serde(default)]
    pub azure: AzureFile,
}

/// `[azure]`: who may call the Azure Video Indexer API with an Azure AD access token
/// (the API tokens of `tollgate api-token create` keep working beside it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureFile {
    /// The `authorization_uri` of the 401 challenge for an account no tenant lists.
    /// Default `"https://login.windows.net/"`, as Azure Resource Manager answers.
    pub authorization_uri: Option<String>,
    /// Azure AD tenants whose access tokens are accepted. Default none.
    #[serde(default)]
    pub tenants: Vec<AzureTenantFile>,
}

/// `[[azure.tenants]]`: one Azure AD tenant and the accounts its principals may use.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureTenantFile {
    /// The tenant id: a token's `tid` must equal it.
    pub tenant_id: String,
    /// A token's `iss` must equal it, e.g. `"https://sts.windows.net/<tenant id>/"`.
    pub issuer: String,
    /// A token's `aud` must be one of these. Default `["https://management.azure.com/"]`.
    pub audiences: Option<Vec<String>>,
    /// The tenant's signing keys: a JWKS file path, or an `https://` URL (`http://` only
    /// for a loopback host), e.g. `"https://login.microsoftonline.com/<tenant id>/discovery/keys"`.
    pub jwks: String,
    /// How long a fetched JWKS is used before it is fetched again. Default `"1h"`.
    #[serde(default, with = "humantime_serde")]
    pub jwks_refresh: Option<Duration>,
    /// The Azure accounts (organisation ids) this tenant's principals may issue for.
    pub accounts: Vec<String>,
    /// Only these principals (`oid`) of the tenant; empty (default): any of them.
    #[serde(default)]
    pub object_ids: Vec<String>,
    /// The challenge's `authorization_uri` for this tenant's accounts. Default
    /// `"https://login.windows.net/<tenant id>"`.
    pub authorization_uri: Option<String>,
}

/// `[cache]`: the shield cache. Sizes in bytes; durations as elsewhere.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// Whether routes on `http(s)://` origins go through the cache unless they say
    /// `cache = false`. Default false; the shipped example config turns it on.
    pub enabled: Option<bool>,
    /// Bytes held in all (bodies, headers and a per-object overhead). Default 256 MiB.
    pub max_bytes: Option<u64>,
    /// Largest object stored; larger ones stream through uncached. Default 16 MiB.
    pub max_object_bytes: Option<u64>,
    /// Freshness of media segments (and anything that is not a playlist) when the
    /// origin's headers give none. Default `"1h"`.
    #[serde(default, with = "humantime_serde")]
    pub segment_ttl: Option<Duration>,
    /// Freshness of finished playlists (HLS with `EXT-X-ENDLIST`, static MPDs) when the
    /// origin's headers give none. Default `"1h"`.
    #[serde(default, with = "humantime_serde")]
    pub vod_playlist_ttl: Option<Duration>,
    /// Freshness of a live playlist when the origin's headers give none and it names no
    /// target duration (otherwise half its part or target duration). Default `"1s"`.
    #[serde(default, with = "humantime_serde")]
    pub live_playlist_ttl: Option<Duration>,
    /// Freshness of a 404 answer when the origin's headers give none. Default `"1s"`;
    /// `"0s"` stores none.
    #[serde(default, with = "humantime_serde")]
    pub not_found_ttl: Option<Duration>,
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
    #[serde(default, with = "humantime_serde")]
    pub renew_before: Option<Duration>,
    /// Lifetime of a renewed token (never beyond the token's `sxp`). Default `"300s"`.
    #[serde(default, with = "humantime_serde")]
    pub renew_ttl: Option<Duration>,
}

/// `[store]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    /// The SQLite file (created with its directory on first run). Default `data/tollgate.db`
    /// beside the config's parent directory, i.e. `"../data/tollgate.db"` from `config/`.
    pub path: Option<String>,
    /// A PostgreSQL database instead of the SQLite file, shared by a fleet of gates:
    /// `postgres://user@host:port/dbname?sslmode=require`. Never with `path`, never with a
    /// password in it (see `password_file`). Default: none (SQLite).
    pub url: Option<String>,
    /// With `url`: a file whose first line is the database password. Default: the
    /// `PGPASSWORD` environment variable, else no password.
    pub password_file: Option<String>,
    /// With `url`: PEM certificates to verify the database's TLS certificate against.
    /// Default: the system's roots.
    pub ca_file: Option<String>,
    /// With `url`: connections to the database, at most (1 to 1000). Default 8.
    pub pool_size: Option<usize>,
    /// How often the edge looks for changes in the store (resources, revocations) besides
    /// notifications. Default 250 ms with SQLite (no notifications), 10 s with PostgreSQL.
    #[serde(default, with = "humantime_serde")]
    pub poll: Option<Duration>,
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
    #[serde(default, with = "humantime_serde")]
    pub header_timeout: Option<Duration>,
    /// Time allowed for a TLS handshake. Default 10 s.
    #[serde(default, with = "humantime_serde")]
    pub tls_handshake_timeout: Option<Duration>,
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
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
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
    #[serde(default, with = "humantime_serde")]
    pub access_ttl: Option<Duration>,
    /// movingimage refresh-token lifetime. Default `"30d"`.
    #[serde(default, with = "humantime_serde")]
    pub refresh_ttl: Option<Duration>,
    /// How long a refresh token that has just been used may be used again (to pick
    /// another VideoManager, or to retry) before it counts as reuse. Default `"30s"`;
    /// `"0s"`: strict reuse detection.
    #[serde(default, with = "humantime_serde")]
    pub refresh_reuse_interval: Option<Duration>,
    /// Login attempts per minute per client address. Default 30.
    pub login_per_ip: Option<u32>,
    /// Login attempts per minute per account. Default 5.
    pub login_per_account: Option<u32>,
    /// Time allowed to receive a request body. Default `"10s"`.
    #[serde(default, with = "humantime_serde")]
    pub body_timeout: Option<Duration>,
    /// Admin TLS listener address: the same admin service over HTTPS (HTTP/1.1 and
    /// HTTP/2 by ALPN), with the certificates of `[admin.tls]`. Absent or `""`: off.
    pub tls_listen: Option<String>,
    /// `[admin.tls]`: the admin TLS listener's own certificates, in the shape of
    /// `[tls]` (`[[admin.tls.certs]]`, `dev_generate`).
    #[serde(default)]
    pub tls: TlsFile,
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
    #[serde(default, with = "humantime_serde")]
    pub leeway: Option<Duration>,
    /// Longest token accepted, in bytes; longer is refused before any decoding. Default 4096.
    pub max_len: Option<usize>,
    /// Entries in the verified-token cache. Default 100000. 0 disables caching.
    pub cache_capacity: Option<usize>,
    /// Longest a verified token stays cached (never beyond its `exp`). Default `"300s"`.
    #[serde(default, with = "humantime_serde")]
    pub cache_max_ttl: Option<Duration>,
    /// Path prefix segment carrying a token: `/t/<token>/…`. Default `t`.
    pub path_prefix: Option<String>,
    /// Query parameter carrying a token. Default `token`.
    pub query: Option<String>,
    /// Cookie carrying a token. Default `tollgate_token`.
    pub cookie: Option<String>,
    /// Allow tokens without `exp` (`tollgate token mint --ttl never`, BlendVision
    /// requests without an expiry, which its document says never expire). Default true.
    pub allow_never_expiring: Option<bool>,
    /// Longest lifetime the admin APIs and `token mint` issue, e.g. `"7d"`; absent: no
    /// cap. Also how long a `jti` revocation without `exp` is kept (absent: for ever).
    #[serde(default, with = "humantime_serde")]
    pub max_lifetime: Option<Duration>,
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
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Time to the response headers once connected. Default 10 s.
    #[serde(default, with = "humantime_serde")]
    pub read_timeout: Option<Duration>,
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
    /// Whether this route goes through the shield cache; default `cache.enabled`. Only
    /// `http(s)://` origins are cached (`true` on a `file://` origin is an error).
    pub cache: Option<bool>,
    /// Token formats accepted here: `"native"` and `[[formats]]` names; default
    /// `["native"]`.
    pub formats: Option<Vec<String>>,
}

/// `[[formats]]`: one foreign token format (README, "Foreign tokens"), by its `kind`.
/// Each kind has its own keys, so a key of another kind is refused by name.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FormatFile {
    /// nginx `secure_link` / `secure_link_md5`.
    SecureLink(SecureLinkFile),
    /// Akamai EdgeAuth 2.0.
    Edgeauth(EdgeAuthFile),
    /// RFC 9246 URI Signing JWTs (Apache Traffic Server's `uri_signing`).
    UriSigning(UriSigningFile),
    /// The CTA-5007 Common Access Token.
    Cat(CatFile),
    /// CloudFront signed URLs and signed cookies.
    Cloudfront(CloudFrontFile),
}

impl FormatFile {
    /// The name routes list it by (and its metric label).
    pub fn name(&self) -> &str {
        match self {
            FormatFile::SecureLink(f) => &f.name,
            FormatFile::Edgeauth(f) => &f.name,
            FormatFile::UriSigning(f) => &f.name,
            FormatFile::Cat(f) => &f.name,
            FormatFile::Cloudfront(f) => &f.name,
        }
    }
}

/// `[[formats]]` with `kind = "secure_link"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecureLinkFile {
    pub name: String,
    /// The `secure_link_md5` expression.
    pub expression: String,
    /// The digest's query parameter (default `md5`).
    pub md5: Option<String>,
    /// The expiry's query parameter (default `expires`; "" for none).
    pub expires: Option<String>,
}

/// `[[formats]]` with `kind = "edgeauth"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeAuthFile {
    pub name: String,
    /// The key, hex.
    pub key: String,
    /// `sha256` (default), `sha1` or `md5`.
    pub algorithm: Option<String>,
    /// The token's query parameter, cookie and header name (default `hdnts`).
    pub token_name: Option<String>,
    /// Default `~`.
    pub field_delimiter: Option<String>,
    /// Default `!`.
    pub acl_delimiter: Option<String>,
    /// The issuer escapes `ip`, `id`, `data` and the URL (default false).
    pub escape_early: Option<bool>,
    /// The issuer's salt, if it uses one.
    pub salt: Option<String>,
}

/// `[[formats]]` with `kind = "uri_signing"`: the `uri_signing` plugin's config file,
/// transcribed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UriSigningFile {
    pub name: String,
    /// The plugin's `id`: the `aud` this gate answers to (default none: a token with
    /// an `aud` is refused).
    pub id: Option<String>,
    /// The query parameter and cookie (default `URISigningPackage`).
    pub package: Option<String>,
    /// The kid renewed tokens are signed with (an HMAC key of one of the issuers).
    pub renewal_kid: Option<String>,
    /// Refuse a token without `exp` (default true; the plugin accepts one).
    pub require_exp: Option<bool>,
    /// `[[formats.issuers]]`: each issuer (`iss`) and its keys.
    pub issuers: Vec<UriSigningIssuerFile>,
}

/// One issuer of URI Signing tokens.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UriSigningIssuerFile {
    /// The `iss` its tokens carry.
    pub name: String,
    /// Its JWKs, each with `kid` and `alg` (`{ kid = "…", alg = "HS256", kty = "oct",
    /// k = "…" }`).
    pub keys: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// `[[formats]]` with `kind = "cat"`: the CTA-5007 Common Access Token (README,
/// "Common Access Token").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatFile {
    pub name: String,
    /// The request header carrying the token. Default `CTA-Common-Access-Token`; "" off.
    pub header: Option<String>,
    /// The query parameter carrying the token. Default `CAT`; "" off.
    pub query: Option<String>,
    /// The cookie carrying the token. Default `CTA-Common-Access-Token`; "" off.
    pub cookie: Option<String>,
    /// When set, `iss` must equal it.
    pub issuer: Option<String>,
    /// When set, `aud` must name it.
    pub audience: Option<String>,
    /// The `kid` renewed tokens (`catr`) are minted with. Default: the presented
    /// token's own `kid`.
    pub renew_kid: Option<String>,
    /// How long past its `exp` a renewable token (`catr` automatic) that came in the
    /// query may still load a manifest, answered only with the manifest rewritten to
    /// carry a renewed token: a live player that reloads its playlist at its first URL
    /// (hls.js) keeps playing. Segments never get it. Default off.
    #[serde(default, with = "humantime_serde")]
    pub live_session: Option<Duration>,
    /// The keys, each pinned to its algorithm (at least one).
    #[serde(default)]
    pub keys: Vec<CatKeyFile>,
}

/// `[[formats.keys]]` of a `cat` format.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatKeyFile {
    /// The COSE `kid` as UTF-8 text.
    pub kid: Option<String>,
    /// The COSE `kid` as hex, for a binary `kid` (instead of `kid`).
    pub kid_hex: Option<String>,
    /// `HS256`, `ES256` or `EdDSA`: pinned, the token cannot choose.
    pub alg: String,
    /// HS256: the secret, hex.
    pub key: Option<String>,
    /// ES256/EdDSA: a PEM file, a PKCS#8 private key (verifies and signs renewals) or an
    /// SPKI public key (verifies only).
    pub key_file: Option<String>,
}

/// `[[formats]]` with `kind = "cloudfront"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudFrontFile {
    pub name: String,
    /// `scheme://host[:port]` of the URLs you sign (what viewers see, e.g. behind a
    /// CDN); default: the scheme the client used to reach the gate and its `Host`.
    pub url_prefix: Option<String>,
    /// The key group's public keys.
    #[serde(default)]
    pub keys: Vec<CloudFrontKeyFile>,
}

/// `[[formats.keys]]` of a CloudFront format: one public key of the key group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudFrontKeyFile {
    /// The `Key-Pair-Id` URLs and cookies name it by (CloudFront's public key ID).
    pub id: String,
    /// Its public key, PEM (`BEGIN PUBLIC KEY`): RSA 2048 or ECDSA P-256; the key
    /// type decides the signature algorithm.
    pub public_key_file: String,
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
