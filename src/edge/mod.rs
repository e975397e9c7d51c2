//! The edge request path: every manifest and segment request goes through
//! [`EdgeService::handle`] (DESIGN.md §2).
//!
//! Per request, in order: CORS preflight; method (GET/HEAD without a body, POST with a
//! capped streaming body); normalise the
//! path once ([`path`]); match the route ([`route`]); find and remove the token
//! ([`extract`]); verify it (cache first) and authorise it against the route's resource;
//! forward to the origin with the token stripped and `X-Forwarded-*` set; stream the
//! answer back. Every refusal goes through the one mapping in [`error`].
//!
//! State this path touches: the immutable [`EdgeService`] (routes, origins, names;
//! shared by `Arc`, no lock), the resource [`Registry`] (a read lock held for one `Arc`
//! clone; swapped whole when the store changes), the [`Verifier`]'s cache (one `DashMap` shard lock
//! per lookup) and key set (a read lock, only on a cache miss), the [`Revocations`] (one
//! atomic load while empty), the origin client's connection pool. No config parsing, no
//! disk access except a `file://` origin's own reads, no lock held across `.await`.

pub mod error;
pub mod extract;
pub mod limit;
pub mod path;
pub mod rewrite;
pub mod route;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use ipnet::IpNet;

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use prometheus::{Histogram, IntCounter};

use crate::body::{self, Body};
use crate::config;
use crate::metrics::Metrics;
use crate::origin::{Origin, OriginError, Origins};
use crate::resource::{Resource, ResourceType};
use crate::token::{self, Revocations, TokenError, Verifier};
pub use error::EdgeError;
use extract::TokenNames;
use limit::EdgeLimits;
use rewrite::{ManifestPolicy, Plan};
use route::RouteTable;

/// How the request reached us.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// True on the TLS listener (sets `X-Forwarded-Proto: https`).
    pub tls: bool,
}

/// Everything the edge needs per request, built once from a [`config::Config`].
pub struct EdgeService {
    routes: RouteTable,
    origins: Origins,
    /// The resource registry: the config's resources plus the store's, swapped whole
    /// when the store changes. Read per request: a read lock held for an `Arc` clone.
    registry: RwLock<Arc<Registry>>,
    /// Resources declared in the config file, kept to merge with each store reload.
    declared: Vec<Resource>,
    names: TokenNames,
    trusted_proxies: Vec<IpNet>,
    cors: Cors,
    leeway: u64,
    max_token_len: usize,
    head_limits: HeadLimits,
    max_body_bytes: u64,
    manifest: ManifestPolicy,
    verifier: Arc<Verifier>,
    revocations: Arc<Revocations>,
    limits: EdgeLimits,
    metrics: Arc<Metrics>,
    /// Per-route metric handles, by route index; the last one is for "no route".
    route_labels: Vec<RouteLabels>,
    /// Per-origin metric handles, by origin index.
    origin_labels: Vec<OriginLabels>,
    clock: fn() -> u64,
}

/// A route's metric handles, resolved once (no label lookup per request).
struct RouteLabels {
    name: Arc<str>,
    duration: Histogram,
    sent: IntCounter,
}

/// An origin's metric handles.
struct OriginLabels {
    duration: Histogram,
    refused: IntCounter,
    timeout: IntCounter,
    reset: IntCounter,
}

/// Why the edge could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Origin(#[from] crate::origin::BuildError),
}

impl EdgeService {
    pub fn new(
        cfg: &config::Config,
        verifier: Arc<Verifier>,
        revocations: Arc<Revocations>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BuildError> {
        let origins = cfg
            .origins
            .iter()
            .map(|o| Origin::build(o).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let registry = Registry::new(cfg.resources.iter().cloned());
        metrics.prepare(
            cfg.routes.iter().map(|r| r.name.as_str()),
            cfg.origins.iter().map(|o| o.name.as_str()),
        );
        let route_labels = cfg
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .chain([crate::metrics::NO_ROUTE])
            .map(|name| RouteLabels {
                name: Arc::from(name),
                duration: metrics.request_duration.with_label_values(&[name]),
                sent: metrics.sent_bytes.with_label_values(&[name]),
            })
            .collect();
        let origin_labels = cfg
            .origins
            .iter()
            .map(|o| {
                let err = |kind: &str| metrics.upstream_errors.with_label_values(&[&o.name, kind]);
                OriginLabels {
                    duration: metrics.upstream_duration.with_label_values(&[&o.name]),
                    refused: err("refused"),
                    timeout: err("timeout"),
                    reset: err("reset"),
                }
            })
            .collect();
        Ok(EdgeService {
            routes: RouteTable::new(&cfg.routes),
            origins,
            registry: RwLock::new(Arc::new(registry)),
            declared: cfg.resources.clone(),
            names: TokenNames {
                path_prefix: cfg.token.path_prefix.clone(),
                query: cfg.token.query.clone(),
                cookie: cfg.token.cookie.clone(),
            },
            trusted_proxies: cfg.edge.trusted_proxies.clone(),
            cors: Cors {
                origins: cfg.edge.cors_origins.clone(),
            },
            leeway: cfg.token.leeway.as_secs(),
            max_token_len: cfg.token.max_len,
            head_limits: HeadLimits {
                max_bytes: cfg.edge.max_header_bytes,
                max_count: cfg.edge.max_headers,
            },
            max_body_bytes: cfg.edge.max_body_bytes,
            manifest: ManifestPolicy::new(cfg),
            verifier,
            revocations,
            limits: EdgeLimits::new(cfg),
            metrics,
            route_labels,
            origin_labels,
            clock: crate::clock::now,
        })
    }

    /// The edge's rate limiters (pruned on a timer by the caller).
    pub fn limits(&self) -> &EdgeLimits {
        &self.limits
    }

    fn route_labels(&self, route: Option<usize>) -> &RouteLabels {
        let none = self.route_labels.len() - 1;
        &self.route_labels[route.unwrap_or(none).min(none)]
    }

    /// Replace the clock (tests inject time this way).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// Answer one request. Never fails: refusals become their responses here.
    pub async fn handle<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<body::BoxError>,
    {
        let started = Instant::now();
        let origin_hdr = req.headers().get(header::ORIGIN).cloned();
        let method = req.method().clone();
        let mut log = AccessLog::default();
        let mut resp = match self.handle_inner(req, conn, &mut log).await {
            Ok(r) => r,
            Err(e) => {
                log.reason = e.reason();
                if let EdgeError::RateLimited { limiter, .. } = e {
                    self.metrics
                        .rate_limited
                        .with_label_values(&[limiter])
                        .inc();
                }
                e.into_response()
            }
        };
        self.cors.decorate(origin_hdr.as_ref(), resp.headers_mut());
        let status = resp.status();
        let labels = self.route_labels(log.route);
        let outcome = if !log.reason.is_empty() {
            log.reason
        } else if status.is_server_error() {
            "origin_5xx"
        } else if status.is_client_error() {
            "origin_4xx"
        } else {
            "ok"
        };
        self.metrics
            .requests
            .with_label_values(&[&labels.name, outcome])
            .inc();
        let head = started.elapsed();
        labels.duration.observe(head.as_secs_f64());
        if !log.manifest.is_empty() {
            self.metrics
                .manifests
                .with_label_values(&[log.manifest])
                .inc();
        }
        let record = Finished {
            started,
            head,
            method,
            route: labels.name.clone(),
            status: status.as_u16(),
            reason: log.reason,
            manifest: log.manifest,
            client: log.client,
            token: log.token,
            upstream: log.upstream,
            sent: labels.sent.clone(),
            upstream_reset: log.upstream_reset,
        };
        resp.map(|inner| {
            Metered {
                inner,
                bytes: 0,
                record: Some(record),
            }
            .boxed_unsync()
        })
    }

    async fn handle_inner<B>(
        &self,
        req: Request<B>,
        conn: ConnInfo,
        log: &mut AccessLog,
    ) -> Result<Response<Body>, EdgeError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<body::BoxError>,
    {
        let (mut head, req_body) = req.into_parts();
        let body_len = declared_body(&head.headers)?;
        // Two `Host` lines make the viewer's host ambiguous (RFC 9112 §3.2: 400); a
        // cache in front and the origin's `X-Forwarded-Host` could each pick another.
        let mut hosts = head.headers.get_all(header::HOST).iter();
        if hosts.next().is_some() && hosts.next().is_some() {
            return Err(EdgeError::MalformedHeader);
        }
        let forward_body = match head.method {
            Method::OPTIONS => return self.cors.preflight(&head.headers),
            // Segment and manifest requests carry no body: one on a GET/HEAD is refused,
            // so no smuggled bytes can ride along (THREATS C4).
            Method::GET | Method::HEAD if body_len == BodyLen::None => None,
            Method::GET | Method::HEAD => return Err(EdgeError::BodyNotAllowed),
            // POST (DRM licence requests, player beacons): the body streams to the
            // origin, capped at `edge.max_body_bytes`.
            Method::POST => {
                if let BodyLen::Length(n) = body_len {
                    if n > self.max_body_bytes {
                        return Err(EdgeError::BodyTooLarge);
                    }
                }
                let cap = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
                let limited = http_body_util::Limited::new(req_body, cap);
                Some(limited.map_err(|e| e as body::BoxError).boxed_unsync())
            }
            _ => return Err(EdgeError::Method),
        };

        let normal = path::normalise(head.uri.path()).map_err(|_| EdgeError::MalformedPath)?;
        let cookies = header_strs(&head.headers, header::COOKIE)?;
        let authorizations = header_strs(&head.headers, header::AUTHORIZATION)?;
        let extract::Extracted {
            token: found_token,
            source,
            path: found_path,
            query: found_query,
            strip_authorization,
            strip_cookie,
        } = extract::extract(
            &self.names,
            &normal,
            head.uri.query(),
            &cookies,
            &authorizations,
        )
        .map_err(EdgeError::from)?;
        let path: &str = &found_path;
        // What is left must not look like a token to any origin: not in the query (split on
        // `&` and `;`, names decoded, any case), not in a path segment's `;` parameters.
        let names = &self.names.query;
        let in_query = found_query.as_deref().is_some_and(|q| {
            q.split(['&', ';'])
                .any(|p| extract::is_token_name_lookalike(p, names))
        });
        let in_path = path.contains(';')
            && path
                .split('/')
                .flat_map(|seg| seg.split(';').skip(1))
                .any(|p| extract::is_token_name_lookalike(p, names));
        if in_query || in_path {
            return Err(EdgeError::Extract(extract::ExtractError::Malformed));
        }
        if found_token.is_some_and(|t| t.len() > self.max_token_len) {
            return Err(EdgeError::Extract(extract::ExtractError::TooLong));
        }
        if let Some(e) = self.head_limits.check(&head.headers) {
            return Err(e);
        }

        let route = self.routes.find(path).ok_or(EdgeError::NoRoute)?;
        log.route = Some(route.index);
        let rid = route.rid;
        let client = self.client_ip(conn.peer.ip(), &head.headers);
        log.client = Some(client);
        self.limits.ip(route.index, client)?;
        let registry = self.registry();
        let resource = rid.and_then(|rid| registry.get(route.resource_type, rid));

        let public = route.public || resource.is_some_and(|r| r.public);
        let now = (self.clock)();
        let mut plan = None;
        if !public {
            let token = found_token.ok_or(EdgeError::Missing)?;
            let source = source.ok_or(EdgeError::Missing)?;
            let grant = match self.verifier.cached(token, now) {
                Some(grant) => grant,
                // Signature work only for an address with failed-verification budget
                // left: a flood of bad tokens turns into 429s, cheaply.
                None => {
                    self.limits.may_verify(client)?;
                    self.verifier.verify_and_cache(token, now).map_err(|e| {
                        self.limits.verify_failed(client);
                        EdgeError::Token(e)
                    })?
                }
            };
            log.token = Some(match &grant.jti {
                Some(_) => TokenId::Jti(grant.clone()),
                None => TokenId::Hash(token_hash(token)),
            });
            let target = token::Target {
                resource_type: route.resource_type,
                rid: rid.unwrap_or(""),
                resource,
                path,
                client,
            };
            let session =
                match token::authorize(&grant, &target, now, self.leeway, &self.revocations) {
                    Ok(()) => false,
                    // A live player reloading its playlist with the master's token: accepted on
                    // `sxp` alone, answered only with a renewed token (edge::rewrite).
                    Err(TokenError::Expired)
                        if self
                            .manifest
                            .session_allowed(path, source, &self.verifier.keys()) =>
                    {
                        token::authorize_session(
                            &grant,
                            &target,
                            now,
                            self.leeway,
                            &self.revocations,
                        )
                        .map_err(EdgeError::Token)?;
                        true
                    }
                    Err(e) => return Err(EdgeError::Token(e)),
                };
            if let Some(sub) = grant.sub.as_deref() {
                self.limits.subject(route.index, sub)?;
            }
            // Only a request that may be for a manifest pays for the plan's copies.
            if self.manifest.delivers(source) && rewrite::may_be_manifest(path) {
                plan = Some(Plan {
                    token: token.to_string(),
                    source,
                    grant,
                    session,
                    scope_path: match rid {
                        Some(rid) => format!("{}{rid}/", route.prefix),
                        None => route.prefix.to_string(),
                    },
                    secure: conn.tls || self.forwarded_https(conn.peer.ip(), &head.headers),
                    path_kind: crate::manifest::Kind::from_path(path),
                });
            } else if session {
                return Err(EdgeError::Token(TokenError::Expired));
            }
        }

        // Build what the origin sees: the same normalised path, the token gone.
        strip_hop_by_hop(&mut head.headers);
        if strip_authorization {
            strip_bearer(&mut head.headers);
        }
        if strip_cookie {
            strip_token_cookie(&mut head.headers, &self.names.cookie);
        }
        set_forwarded(
            &mut head.headers,
            head.uri.authority(),
            client,
            conn,
            &self.trusted_proxies,
            conn.peer.ip(),
        );

        self.manifest
            .prepare_request(path, plan.as_ref().map(|p| p.source), &mut head.headers);

        let origin = self.origins.get(route.origin).ok_or(EdgeError::NoRoute)?;
        let labels = self
            .origin_labels
            .get(route.origin)
            .ok_or(EdgeError::NoRoute)?;
        let asked = Instant::now();
        let mut resp = match origin.as_ref() {
            Origin::File(f) => {
                let resp = f.serve(&head.method, path, &head.headers).await;
                log.upstream = Some(asked.elapsed());
                labels.duration.observe(asked.elapsed().as_secs_f64());
                resp
            }
            Origin::Http(pool) => {
                let target = match &found_query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.to_string(),
                };
                let answered = pool.forward(&mut head, target, forward_body).await;
                log.upstream = Some(asked.elapsed());
                let resp = match answered {
                    Ok(r) => {
                        labels.duration.observe(asked.elapsed().as_secs_f64());
                        log.upstream_reset = Some(labels.reset.clone());
                        r
                    }
                    Err(e) => {
                        match e {
                            OriginError::Refused => &labels.refused,
                            OriginError::Timeout => &labels.timeout,
                            OriginError::Failed => &labels.reset,
                        }
                        .inc();
                        return Err(EdgeError::Origin(e));
                    }
                };
                // A mid-body origin failure surfaces as a body error, which makes hyper
                // abort the client connection instead of ending it cleanly (THREATS D4).
                resp.map(|b| b.map_err(|e| Box::new(e) as body::BoxError).boxed_unsync())
            }
        };
        strip_hop_by_hop(resp.headers_mut());
        match &plan {
            Some(plan) => {
                let keys = self.verifier.keys();
                self.manifest
                    .finish(resp, plan, &head.method, now, &keys, &mut log.manifest)
                    .await
            }
            None => Ok(resp),
        }
    }

    /// A trusted proxy in front says the client used HTTPS.
    fn forwarded_https(&self, peer: IpAddr, headers: &HeaderMap) -> bool {
        self.is_trusted(token::claims::canonical_ip(peer))
            && headers
                .get(HeaderName::from_static("x-forwarded-proto"))
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
    }

    /// The client address: the peer, or — when the peer is a trusted proxy — the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = token::claims::canonical_ip(peer);
        if self.trusted_proxies.is_empty() || !self.is_trusted(peer) {
            return peer;
        }
        let mut client = peer;
        let entries = headers
            .get_all(HeaderName::from_static("x-forwarded-for"))
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.rsplit(','))
            .take(32);
        for entry in entries {
            let Ok(ip) = entry.trim().parse::<IpAddr>() else {
                break; // garbage: stop believing the chain here
            };
            client = token::claims::canonical_ip(ip);
            if !self.is_trusted(client) {
                break;
            }
        }
        client
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    fn registry(&self) -> Arc<Registry> {
        // A poisoned lock only means a writer panicked mid-swap of an Arc.
        self.registry
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replace the registry with the config's resources plus `stored` (the store wins
    /// on a clash, since it is what operators change at run time).
    pub fn set_stored_resources(&self, stored: impl IntoIterator<Item = Resource>) {
        let all = self.declared.iter().cloned().chain(stored);
        let next = Arc::new(Registry::new(all));
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = next;
    }
}

/// Resources by type, then id: looked up with the borrowed `{rid}`, no allocation.
#[derive(Default)]
pub struct Registry(HashMap<ResourceType, HashMap<String, Resource>>);

impl Registry {
    pub fn new(resources: impl IntoIterator<Item = Resource>) -> Self {
        let mut map: HashMap<ResourceType, HashMap<String, Resource>> = HashMap::new();
        for r in resources {
            map.entry(r.resource_type)
                .or_default()
                .insert(r.id.clone(), r);
        }
        Registry(map)
    }

    pub fn get(&self, rty: ResourceType, id: &str) -> Option<&Resource> {
        self.0.get(&rty)?.get(id)
    }
}

/// What the request path learns for the access log and the metrics.
#[derive(Default)]
struct AccessLog {
    /// The matched route's index.
    route: Option<usize>,
    reason: &'static str,
    client: Option<IpAddr>,
    token: Option<TokenId>,
    /// What happened to a manifest answer (empty for everything else).
    manifest: rewrite::Outcome,
    /// Time until the origin's response headers.
    upstream: Option<Duration>,
    /// Counts a failure of the origin's body after the headers (an HTTP origin only).
    upstream_reset: Option<IntCounter>,
}

/// Everything the access line needs once the body is done.
struct Finished {
    started: Instant,
    head: Duration,
    method: Method,
    route: Arc<str>,
    status: u16,
    reason: &'static str,
    manifest: rewrite::Outcome,
    client: Option<IpAddr>,
    token: Option<TokenId>,
    upstream: Option<Duration>,
    sent: IntCounter,
    upstream_reset: Option<IntCounter>,
}

impl Finished {
    /// Count the bytes and write the one access line (target `tollgate::access`).
    fn emit(self, bytes: u64, complete: bool) {
        self.sent.inc_by(bytes);
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        tracing::info!(
            target: "tollgate::access",
            method = %self.method,
            route = &*self.route,
            status = self.status,
            reason = (!self.reason.is_empty()).then_some(self.reason),
            manifest = (!self.manifest.is_empty()).then_some(self.manifest),
            bytes,
            micros = micros(self.started.elapsed()),
            ttfb_micros = micros(self.head),
            upstream_micros = self.upstream.map(micros),
            client = self.client.map(tracing::field::display),
            token = self.token.as_ref().map(tracing::field::display),
            complete,
            "request"
        );
    }
}

/// The response body as sent: counts bytes, and writes the access line when the body
/// ends, fails or is dropped (a client that goes away mid-segment is `complete=false`).
struct Metered {
    inner: Body,
    bytes: u64,
    record: Option<Finished>,
}

impl Metered {
    fn finish(&mut self, complete: bool) {
        if let Some(r) = self.record.take() {
            r.emit(self.bytes, complete);
        }
    }
}

impl http_body::Body for Metered {
    type Data = Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, body::BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(reset) = self.record.as_ref().and_then(|r| r.upstream_reset.as_ref()) {
                    reset.inc();
                }
                self.finish(false);
            }
            Poll::Ready(None) => self.finish(true),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        http_body::Body::is_end_stream(&self.inner)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::Body::size_hint(&self.inner)
    }
}

impl Drop for Metered {
    fn drop(&mut self) {
        let complete = http_body::Body::is_end_stream(&self.inner);
        self.finish(complete);
    }
}

/// How the access log names a token: its `jti`, or a hash prefix — never the token.
/// Formatted only if the log line is written.
enum TokenId {
    Jti(Arc<token::Grant>),
    Hash(String),
}

impl std::fmt::Display for TokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenId::Jti(g) => write!(f, "jti:{}", g.jti.as_deref().unwrap_or("")),
            TokenId::Hash(h) => f.write_str(h),
        }
    }
}

/// A short, non-reversible id for a token without `jti`, for logs.
fn token_hash(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let hex: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The configured header limits. hyper enforces twice these (bounding memory) and answers
/// with a bare 431 beyond them; within them, this check answers the gate's own
/// uncacheable 431 with a reason code.
struct HeadLimits {
    max_bytes: usize,
    max_count: usize,
}

impl HeadLimits {
    fn check(&self, headers: &HeaderMap) -> Option<EdgeError> {
        if headers.len() > self.max_count {
            return Some(EdgeError::HeadersTooLarge);
        }
        // Name, ": ", value, CRLF — the size of the block as it was sent (for HTTP/1.1).
        let bytes: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        (bytes > self.max_bytes).then_some(EdgeError::HeadersTooLarge)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLen {
    /// No body declared (HTTP/2 may still stream DATA frames: capped the same way).
    None,
    Length(u64),
}

/// What the request's framing headers promise. Conflicting framing is refused outright.
fn declared_body(headers: &HeaderMap) -> Result<BodyLen, EdgeError> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(EdgeError::MalformedHeader)?,
        ),
        (Some(_), Some(_)) => return Err(EdgeError::MalformedHeader),
    };
    // A request body must say its length. `Transfer-Encoding` is refused outright: hyper
    // drops a `Content-Length` sent beside it, so CL+TE would otherwise look like plain
    // chunking here, and no player sends chunked requests (THREATS C4).
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(EdgeError::MalformedHeader);
    }
    Ok(match length {
        None | Some(0) => BodyLen::None,
        Some(n) => BodyLen::Length(n),
    })
}

fn header_strs(headers: &HeaderMap, name: HeaderName) -> Result<Vec<&str>, EdgeError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().map_err(|_| EdgeError::MalformedHeader))
        .collect()
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and `Proxy-Authorization` (meant for this hop).
/// Parsed names, so that removing them hashes but never parses.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// Remove hop-by-hop headers, including those a `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // The `Connection` values leave the map first (shared bytes, not copies), so the
    // names they list can be removed by `&str` without allocating a `HeaderName`.
    let connection: Vec<HeaderValue> = match headers.entry(header::CONNECTION) {
        header::Entry::Occupied(e) => e.remove_entry_mult().1.collect(),
        header::Entry::Vacant(_) => Vec::new(),
    };
    for name in connection
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        headers.remove(name.trim());
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

fn strip_bearer(headers: &mut HeaderMap) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter(|v| !v.to_str().map(extract::is_bearer).unwrap_or(false))
        .cloned()
        .collect();
    headers.remove(header::AUTHORIZATION);
    for v in kept {
        headers.append(header::AUTHORIZATION, v);
    }
}

fn strip_token_cookie(headers: &mut HeaderMap, name: &str) {
    let kept: Vec<HeaderValue> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| extract::strip_cookie(v, name))
        .filter_map(|v| HeaderValue::from_str(&v).ok())
        .collect();
    headers.remove(header::COOKIE);
    for v in kept {
        headers.append(header::COOKIE, v);
    }
}

/// `X-Forwarded-For` (appended when the peer is a trusted proxy, else replaced),
/// `X-Forwarded-Proto`, and `X-Forwarded-Host`: the client's `Host`, or on HTTP/2 its
/// `:authority` (`authority`); a client's own `X-Forwarded-Host` never passes through.
fn set_forwarded(
    headers: &mut HeaderMap,
    authority: Option<&http::uri::Authority>,
    client: IpAddr,
    conn: ConnInfo,
    trusted: &[IpNet],
    peer: IpAddr,
) {
    let xff = HeaderName::from_static("x-forwarded-for");
    let peer_trusted = trusted
        .iter()
        .any(|n| n.contains(&token::claims::canonical_ip(peer)));
    let prior: Vec<&str> = if peer_trusted {
        headers
            .get_all(&xff)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
    } else {
        Vec::new()
    };
    let value = if prior.is_empty() {
        ip_value(client)
    } else {
        let chain = format!(
            "{}, {}",
            prior.join(", "),
            token::claims::canonical_ip(peer)
        );
        HeaderValue::from_str(&chain).ok()
    };
    if let Some(v) = value {
        headers.insert(xff, v);
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    let xfh = HeaderName::from_static("x-forwarded-host");
    let host = match headers.get(header::HOST) {
        Some(h) => Some(h.clone()),
        None => authority.and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
    };
    match host {
        Some(h) => headers.insert(xfh, h),
        None => headers.remove(xfh),
    };
}

/// An address as a header value. Formatted on the stack, so the value's own copy is the
/// one allocation (a `String` would be a second).
fn ip_value(ip: IpAddr) -> Option<HeaderValue> {
    use std::io::Write;
    let mut buf = [0u8; 64];
    let mut rest = &mut buf[..];
    write!(rest, "{ip}").ok()?;
    let unused = rest.len();
    let len = buf.len() - unused;
    HeaderValue::from_bytes(&buf[..len]).ok()
}

/// CORS for browser players (THREATS C7).
struct Cors {
    origins: Vec<String>,
}

impl Cors {
    fn allowed<'a>(&self, origin: Option<&'a HeaderValue>) -> Option<&'a HeaderValue> {
        let origin = origin?;
        let s = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(s))
            .then_some(origin)
    }

    /// Add CORS response headers when the request's `Origin` is allowed.
    fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if self.origins.is_empty() {
            return;
        }
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        if let Some(o) = self.allowed(origin) {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(
                    "Content-Length, Content-Range, Content-Type, ETag, x-tollgate-reason",
                ),
            );
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// Answer an OPTIONS request; preflights need no token.
    fn preflight(&self, headers: &HeaderMap) -> Result<Response<Body>, EdgeError> {
        let origin = headers.get(header::ORIGIN);
        if origin.is_some() && self.allowed(origin).is_none() {
            return Err(EdgeError::CorsOrigin);
        }
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, OPTIONS"),
        );
        if origin.is_some() {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, POST, OPTIONS"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(
                    "Authorization, Range, If-None-Match, If-Modified-Since, If-Range",
                ),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        Ok(resp)
    }
}

impl From<TokenError> for EdgeError {
    fn from(e: TokenError) -> Self {
        EdgeError::Token(e)
    }
}
