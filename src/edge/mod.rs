//! The edge request path: every manifest and segment request goes through
//! [`EdgeService::handle`] (docs/architecture.md, "The request path").
//!
//! [`EdgeService::handle_inner`] is the pipeline, one named phase per line, each in its
//! own file: [`admit`] (framing, authority, header limits, method) → [`path`]
//! (normalise) → [`extract`] (the whole token-carrier rule) → [`route`] → [`client`]
//! (who is asking, resolved once) → [`limit`] (per client) → [`access`] (verify and
//! authorise, the live-session and fresher-wins rules) → for a Common Access Token,
//! [`catr`] (its `catif` answer, a redirect renewal) → [`shield`] (the cache: a hit,
//! or one shared fill per key) → [`forward`] (what the origin sees; ask it) → respond:
//! [`cache_control`] (every answer's cacheability), then [`rewrite`] (manifests,
//! rewritten per viewer over cached or fresh bytes alike; a CAT's renewal header or
//! cookie). A refusal
//! anywhere is an [`EdgeError`], turned into its response by the one mapping in
//! [`error`]; [`handle`](EdgeService::handle) adds CORS ([`cors`]) and the request's
//! record ([`log`]).
//!
//! State this path touches: the immutable [`EdgeService`] (routes, origins, names;
//! shared by `Arc`, no lock), a snapshot of the resource [`registry`] (one lock-free
//! load), the verifier's cache (one `DashMap` shard lock per lookup) and key set (only
//! on a cache miss or a session renewal), the revocations, the rate limiters, the
//! shield cache (a moka lookup; the fills map's lock on a miss, never across `.await`),
//! the origin client's connection pool, and pre-resolved metric handles. No config parsing,
//! no disk access except a `file://` origin's own reads, no lock held across `.await`.

pub mod access;
pub mod admit;
pub mod cache_control;
pub mod catr;
pub mod client;
pub mod cors;
pub mod error;
pub mod extract;
pub mod forward;
pub mod limit;
pub mod log;
pub mod path;
pub mod registry;
pub mod rewrite;
pub mod route;
pub mod shield;

use std::sync::Arc;
use std::time::Instant;

use http::header;
use http::header::HeaderMap;
use http::{Request, Response};

use crate::body::{self, Body};
use crate::config;
use crate::metrics::Metrics;
use crate::resource::Resource;
use crate::server::ConnInfo;
use crate::token::foreign::Foreign;
use crate::token::{Revocations, Verifier};
use access::{Access, Asking, CatFacts, Granted};
use admit::{Admission, Admitted};
use cache_control::Cacheability;
use catr::{Delivery, Renewed};
use client::Clients;
use cors::Cors;
pub use error::EdgeError;
use extract::{FormatCarriers, TokenNames};
use extract::{Source, Stripped};
use forward::{Forwarder, Outbound};
use limit::EdgeLimits;
use log::{AccessLog, Meters};
use registry::Resources;
use rewrite::{ManifestPolicy, Plan};
use route::{Match, RouteTable};
use shield::{Shield, Shielded};

/// Everything the edge needs per request, built once from a [`config::Config`].
pub struct EdgeService {
    admission: Admission,
    names: TokenNames,
    /// By route index: the foreign formats the route accepts and their carriers.
    carriers: Vec<Vec<FormatCarriers>>,
    /// The configured foreign formats' names, by index (metric labels).
    format_names: Vec<String>,
    routes: RouteTable,
    clients: Clients,
    limits: EdgeLimits,
    access: Access,
    shield: Shield,
    forwarder: Forwarder,
    manifest: ManifestPolicy,
    cacheability: Cacheability,
    cors: Cors,
    meters: Meters,
    clock: fn() -> u64,
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
        cache: Arc<crate::cache::Cache>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, BuildError> {
        metrics.prepare(
            cfg.routes.iter().map(|r| r.name.as_str()),
            cfg.origins.iter().map(|o| o.name.as_str()),
        );
        metrics.prepare_formats(cfg.formats.iter().map(|f| f.name.as_str()));
        // Rebuilt with the edge on every reload: new formats, keys and an empty cache.
        let foreign = Arc::new(Foreign::new(
            cfg.formats.clone(),
            cfg.token.max_len,
            cfg.token.cache_capacity,
            cfg.token.cache_max_ttl,
            cfg.token.leeway,
        ));
        let credential_headers: Vec<String> = cfg
            .formats
            .iter()
            .map(|f| f.kind.carriers().header)
            .collect();
        Ok(EdgeService {
            admission: Admission::new(&cfg.edge),
            names: TokenNames {
                path_prefix: cfg.token.path_prefix.clone(),
                query: cfg.token.query.clone(),
                cookie: cfg.token.cookie.clone(),
                max_len: cfg.token.max_len,
            },
            carriers: route_carriers(cfg),
            format_names: cfg.formats.iter().map(|f| f.name.clone()).collect(),
            routes: RouteTable::new(&cfg.routes),
            clients: Clients::new(cfg.edge.trusted_proxies.clone()),
            limits: EdgeLimits::new(cfg),
            access: Access::new(
                verifier,
                foreign,
                revocations,
                Resources::new(cfg.resources.clone()),
                cfg.token.leeway.as_secs(),
            ),
            shield: Shield::new(cfg, cache),
            forwarder: Forwarder::new(cfg, &metrics)?,
            manifest: ManifestPolicy::new(cfg),
            cacheability: Cacheability::new(cfg),
            cors: Cors::new(
                &cfg.edge.cors_origins,
                credential_headers.iter().map(String::as_str),
            ),
            meters: Meters::new(metrics, cfg.routes.iter().map(|r| r.name.as_str())),
            clock: crate::clock::now,
        })
    }

    /// The edge's rate limiters (pruned on a timer by the caller).
    pub fn limits(&self) -> &EdgeLimits {
        &self.limits
    }

    pub fn verifier(&self) -> &Arc<Verifier> {
        self.access.verifier()
    }

    /// Replace the clock (tests inject time this way).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    /// Replace the registry with the config's resources plus `stored` (the store wins
    /// on a clash).
    pub fn set_stored_resources(&self, stored: impl IntoIterator<Item = Resource>) {
        self.access.resources().set_stored(stored);
    }

    /// Answer one request. Never fails: refusals become their responses here.
    pub async fn handle<B>(&self, req: Request<B>, conn: ConnInfo) -> Response<Body>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<body::BoxError>,
    {
        let started = Instant::now();
        let origin = req.headers().get(header::ORIGIN).cloned();
        let method = req.method().clone();
        let mut log = AccessLog::default();
        let mut resp = match self.handle_inner(req, conn, &mut log).await {
            Ok(r) => r,
            Err(e) => {
                log.reason = e.reason();
                if let EdgeError::RateLimited { limiter, .. } = e {
                    self.meters.rate_limited(limiter);
                }
                e.into_response()
            }
        };
        self.cors.decorate(origin.as_ref(), resp.headers_mut());
        let route = self.meters.route(log.route);
        route.outcome(log.outcome(resp.status()), &self.meters);
        if !log.manifest.is_empty() {
            self.meters.manifest(log.manifest);
        }
        let record = log.finish(started, method, route, resp.status().as_u16());
        route.head_time(record.head);
        resp.map(|body| record.meter(body))
    }

    /// The pipeline (docs/architecture.md, "The request path").
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
        let (mut head, body) = req.into_parts();
        let admitted = match self.admission.admit(&head, body)? {
            Admitted::Preflight => return self.cors.preflight(&head.headers),
            Admitted::Request(admitted) => admitted,
        };
        // From here the target is read from `uri`; `head` keeps what the origin gets.
        let uri = std::mem::take(&mut head.uri);
        let normal = path::normalise(uri.path()).map_err(|_| EdgeError::MalformedPath)?;
        let cookies = header_strs(&head.headers, header::COOKIE)?;
        let authorizations = header_strs(&head.headers, header::AUTHORIZATION)?;
        let read_for = self
            .routes
            .find(extract::routing_path(&self.names, &normal))
            .map(|r| r.index);
        let carriers = read_for.map_or(&[][..], |r| self.carriers[r].as_slice());
        let foreign_headers = carriers
            .iter()
            .map(|f| named_header_strs(&head.headers, &f.carriers.header))
            .collect::<Result<Vec<_>, _>>()?;
        let foreign_in = extract::ForeignIn {
            formats: carriers,
            headers: &foreign_headers,
        };
        let (presented, foreign, stripped) = extract::extract(
            &self.names,
            foreign_in,
            &normal,
            uri.query(),
            &cookies,
            &authorizations,
        )?
        .split();
        let route = self.routes.find(&stripped.path).ok_or(EdgeError::NoRoute)?;
        log.route = Some(route.index);
        // The carriers read were this route's: a path parameter taken out of the path
        // must not move the request to a route whose formats were not the ones read.
        if read_for != Some(route.index) {
            return Err(EdgeError::MalformedPath);
        }
        let client = self.clients.resolve(conn, &head.headers);
        log.client = Some(client.ip);
        self.limits.ip(route.index, client.ip)?;
        let now = (self.clock)();
        let manifest = self
            .manifest
            .ask(&stripped.path, presented.map(|p| p.source));
        let host = request_host(admitted.authority.as_ref());
        let cat_facts = CatFacts {
            https: client.https,
            port: request_port(admitted.authority.as_ref(), client.https),
            method: head.method.as_str(),
            query: stripped.query.as_deref().unwrap_or(""),
            headers: Some(&head.headers),
        };
        // A shared-bytes clone (no copy): the original moves on to the forwarder.
        let authority = admitted.authority.clone();
        let asking = Asking {
            route: &route,
            presented,
            foreign,
            host: &host,
            raw_query: uri.query(),
            authority: authority
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .unwrap_or(""),
            https: client.https,
            path: &stripped.path,
            client: client.ip,
            manifest,
            cat: cat_facts,
            now,
        };
        let granted = self.access.check(&asking, &self.limits, log);
        if let Some(f) = foreign {
            let result = match &granted {
                Ok(Granted::CatRefused { reason, .. }) => reason.code(),
                Ok(_) => "ok",
                Err(e) => e.reason(),
            };
            self.meters.foreign(&self.format_names[f.format], result);
        }
        let granted = granted?;
        let renewal = self.access.foreign_renewal(&granted, &stripped.path, now);
        let cat = match self.cat_step(&granted, &stripped, manifest, client.https, now, log) {
            Ok(cat) => cat,
            Err(answer) => return Ok(*answer),
        };
        let answer = cache_control::Answer {
            gated: !matches!(granted, Granted::Public),
            resource_type: route.resource_type,
            path_kind: manifest.kind,
        };
        // The token leaves the headers' borrow here: the plan keeps its own copy.
        let plan = self.plan(granted, &route, manifest, client.https)?;
        let cat_rewrites = cat.as_ref().is_some_and(CatPlan::rewrites_whole);
        let head_only = self
            .manifest
            .head_as_get(plan.as_ref(), cat_rewrites, &mut head.method);
        let answer = Answered {
            cacheability: answer,
            head_only,
            now,
            renewal,
        };
        let out = Outbound {
            stripped: &stripped,
            body: admitted.body,
            client,
            authority: admitted.authority,
        };
        let cache_req = shield::Request {
            route: &route,
            head: &head,
            stripped: &stripped,
            has_body: out.body.is_some(),
            whole: plan.is_some() || cat.as_ref().is_some_and(|c| c.rewrite.is_some()),
        };
        let shielded = self.shield.serve(cache_req, &self.forwarder, log).await?;
        if let Shielded::Answer(resp) = shielded {
            return self.respond(resp, plan, cat, &answer, log).await;
        }
        self.forwarder.prepare(&mut head.headers, &out);
        self.manifest
            .prepare_request(plan.as_ref(), &mut head.headers);
        if cat.as_ref().is_some_and(CatPlan::rewrites_whole) {
            self.manifest.prepare_cat_request(&mut head.headers);
        }
        let resp = self
            .forwarder
            .send(route.origin, &mut head, out, log)
            .await?;
        self.respond(resp, plan, cat, &answer, log).await
    }

    /// A Common Access Token's part of the request step: a refusal its `catif` answers
    /// is answered here, as is a redirect renewal (the origin is not asked); otherwise
    /// what the respond phase adds (a renewal header or cookie, a playlist rewrite for
    /// a token that came in the query).
    fn cat_step(
        &self,
        granted: &Granted<'_>,
        stripped: &Stripped<'_>,
        manifest: rewrite::Ask,
        secure: bool,
        now: u64,
        log: &mut AccessLog,
    ) -> Result<Option<CatPlan>, Box<Response<Body>>> {
        let foreign = self.access.foreign();
        let (cached, text, source, session) = match granted {
            Granted::CatRefused {
                format,
                reason,
                action,
            } => {
                log.reason = reason.code();
                let format = foreign.cat(*format);
                return Err(Box::new(catr::if_answer(action, reason.code(), format)));
            }
            Granted::Cat {
                cached,
                text,
                source,
                session,
            } => (cached, *text, *source, *session),
            _ => return Ok(None),
        };
        let expired = EdgeError::Token(crate::token::TokenError::Expired);
        let Some(format) = foreign.cat(cached.format) else {
            // A session is answered only with a renewal; without its format, none.
            if session {
                log.reason = expired.reason();
                return Err(Box::new(expired.into_response()));
            }
            return Ok(None);
        };
        let renewed = catr::renew(format, cached, source, now, session);
        if let Some(r) = renewed
            .as_ref()
            .filter(|r| r.delivery == Delivery::Redirect)
        {
            let answer = catr::redirect(r, &stripped.path, stripped.query.as_deref());
            return Err(Box::new(answer));
        }
        // A token in the query reaches a playlist's children only in their URIs: they
        // get the renewed token when there is one, else the request's own.
        let rewrite =
            (source == Source::Query && manifest.candidate && !format.query_name().is_empty())
                .then(|| match &renewed {
                    Some(r) => (r.token.clone(), true),
                    None => (text.to_string(), false),
                });
        Ok(Some(CatPlan {
            renewed: renewed.filter(|r| r.delivery != Delivery::Manifest),
            rewrite,
            session,
            param: format.query_name().to_string(),
            path_kind: manifest.kind,
            secure,
        }))
    }

    /// What the respond phase needs for a token-carrying request whose answer may be a
    /// manifest; None for everything else (segments pay for no copies).
    fn plan(
        &self,
        granted: Granted<'_>,
        route: &Match<'_, '_>,
        manifest: rewrite::Ask,
        https: bool,
    ) -> Result<Option<Plan>, EdgeError> {
        let Granted::Token {
            presented,
            grant,
            session,
        } = granted
        else {
            return Ok(None);
        };
        if !(manifest.delivers && manifest.candidate) {
            // A session is only ever admitted for a manifest that delivers (access.rs);
            // should that ever not hold, it is refused rather than served unrenewed.
            return match session {
                true => Err(EdgeError::Token(crate::token::TokenError::Expired)),
                false => Ok(None),
            };
        }
        Ok(Some(Plan {
            token: presented.token.to_string(),
            source: presented.source,
            grant,
            session,
            scope_path: match route.rid {
                Some(rid) => format!("{}{rid}/", route.prefix),
                None => route.prefix.to_string(),
            },
            secure: https,
            path_kind: manifest.kind,
        }))
    }

    /// The respond phase: the answer states its cacheability ([`cache_control`]); a manifest
    /// answer is rewritten (or gets its cookie); a `HEAD` fetched as a `GET` loses the body.
    async fn respond(
        &self,
        mut resp: Response<Body>,
        plan: Option<Plan>,
        cat: Option<CatPlan>,
        answered: &Answered,
        log: &mut AccessLog,
    ) -> Result<Response<Body>, EdgeError> {
        let status = resp.status();
        self.cacheability
            .state(status, resp.headers_mut(), &answered.cacheability);
        if let Some(cookie) = answered.renewal.as_deref() {
            if let Ok(value) = http::HeaderValue::from_str(cookie) {
                resp.headers_mut().append(header::SET_COOKIE, value);
            }
        }
        let resp = match (cat, plan) {
            (Some(cat), _) => self.respond_cat(resp, cat, log).await?,
            (None, Some(plan)) => {
                let keys = self.access.verifier().keys();
                self.manifest
                    .finish(resp, &plan, answered.now, &keys, &mut log.manifest)
                    .await?
            }
            (None, None) => return Ok(resp),
        };
        Ok(match answered.head_only {
            true => resp.map(|_| body::empty()),
            false => resp,
        })
    }
}

impl EdgeService {
    /// The respond phase of a CAT request: the renewal header or cookie, the playlist
    /// rewrite for a token from the query.
    async fn respond_cat(
        &self,
        mut resp: Response<Body>,
        cat: CatPlan,
        log: &mut AccessLog,
    ) -> Result<Response<Body>, EdgeError> {
        if let Some(renewed) = &cat.renewed {
            catr::decorate(resp.headers_mut(), renewed, cat.secure);
        }
        let Some((token, renewed)) = &cat.rewrite else {
            return match cat.session {
                true => Err(EdgeError::Token(crate::token::TokenError::Expired)),
                false => Ok(resp),
            };
        };
        let child = rewrite::CatChild {
            param: &cat.param,
            token,
            renewed: *renewed,
            session: cat.session,
        };
        self.manifest
            .finish_cat(resp, cat.path_kind, child, &mut log.manifest)
            .await
    }
}

/// What the respond phase does for a Common Access Token that authorised the request.
struct CatPlan {
    /// A renewal delivered in a header or a cookie.
    renewed: Option<Renewed>,
    /// For a token from the query on a possible playlist: the token its children get,
    /// and whether it is a renewal.
    rewrite: Option<(String, bool)>,
    /// Admitted on the live-session allowance (access.rs): only a playlist rewritten
    /// with a renewed token may answer.
    session: bool,
    /// The format's query parameter.
    param: String,
    path_kind: Option<crate::manifest::Kind>,
    secure: bool,
}

impl CatPlan {
    /// A likely playlist (by extension) whose children get the token: its whole body is
    /// fetched, and rewritten.
    fn rewrites_whole(&self) -> bool {
        self.rewrite.is_some() && self.path_kind.is_some()
    }
}

/// What the respond phase needs to know about the request besides its plan.
struct Answered {
    cacheability: cache_control::Answer,
    /// A `HEAD` asked for as a `GET` ([`ManifestPolicy::head_as_get`]).
    head_only: bool,
    now: u64,
    /// A renewed foreign credential's `Set-Cookie` (RFC 9246 `cdnistt` 1).
    renewal: Option<String>,
}

/// By route index, the carriers of the foreign formats each route accepts.
fn route_carriers(cfg: &config::Config) -> Vec<Vec<FormatCarriers>> {
    cfg.routes
        .iter()
        .map(|r| {
            r.formats
                .iter()
                .map(|&format| FormatCarriers {
                    format,
                    carriers: cfg.formats[format].kind.carriers(),
                })
                .collect()
        })
        .collect()
}

/// The request's host as nginx's `$host` is: lower case, without a port ("" when the
/// request named none).
fn request_host(authority: Option<&http::HeaderValue>) -> std::borrow::Cow<'_, str> {
    let text = authority.and_then(|a| a.to_str().ok()).unwrap_or("");
    let host = match text.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => text,
    };
    // Borrowed when already lower case (nearly always): this runs on every request.
    match host.bytes().any(|b| b.is_ascii_uppercase()) {
        true => host.to_ascii_lowercase().into(),
        false => host.into(),
    }
}

/// The port the client asked for: the authority's, else the scheme's default.
fn request_port(authority: Option<&http::HeaderValue>, https: bool) -> u16 {
    let text = authority.and_then(|a| a.to_str().ok()).unwrap_or("");
    text.rsplit_once(':')
        .filter(|(h, _)| !h.ends_with(':'))
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(if https { 443 } else { 80 })
}

/// Every value of the header called `name` ("": none) as text.
fn named_header_strs<'h>(headers: &'h HeaderMap, name: &str) -> Result<Vec<&'h str>, EdgeError> {
    match header::HeaderName::from_bytes(name.as_bytes()) {
        Ok(name) if !name.as_str().is_empty() => header_strs(headers, name),
        _ => Ok(Vec::new()),
    }
}

/// Every value of header `name` as text; a non-text value is a malformed request.
fn header_strs(headers: &HeaderMap, name: header::HeaderName) -> Result<Vec<&str>, EdgeError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().map_err(|_| EdgeError::MalformedHeader))
        .collect()
}

impl From<crate::token::TokenError> for EdgeError {
    fn from(e: crate::token::TokenError) -> Self {
        EdgeError::Token(e)
    }
}
