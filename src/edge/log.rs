//! What a request leaves behind: its metrics and its one access line.
//!
//! The metric handles are resolved once, when the edge is built (a handle per route and
//! outcome, per limiter, per manifest outcome), so a request counts with an atomic add
//! and never a label lookup. The access line is written when the response body ends,
//! fails or is dropped ([`Metered`]), with the bytes actually sent. A token appears in
//! it only as its `jti` or a hash prefix ([`TokenId`]), never itself (threat model A13).
//! This module never decides anything about the request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use prometheus::{Histogram, IntCounter};

use super::rewrite;
use crate::body::{self, Body};
use crate::metrics::{self, Metrics};
use crate::token;

/// Every metric handle the request path uses, by route.
pub struct Meters {
    /// By route index; the last one is for "no route".
    routes: Vec<RouteMeters>,
    rate_limited: HashMap<&'static str, IntCounter>,
    manifests: HashMap<&'static str, IntCounter>,
    metrics: Arc<Metrics>,
}

/// A route's metric handles.
pub struct RouteMeters {
    pub name: Arc<str>,
    duration: Histogram,
    sent: IntCounter,
    /// `tollgate_requests_total` by outcome (`ok`, `origin_4xx`, a reason code, …).
    outcomes: HashMap<&'static str, IntCounter>,
}

impl Meters {
    pub fn new<'a>(metrics: Arc<Metrics>, routes: impl IntoIterator<Item = &'a str>) -> Self {
        let routes = routes
            .into_iter()
            .chain([metrics::NO_ROUTE])
            .map(|name| RouteMeters {
                name: Arc::from(name),
                duration: metrics.request_duration.with_label_values(&[name]),
                sent: metrics.sent_bytes.with_label_values(&[name]),
                outcomes: metrics::FORWARDED_OUTCOMES
                    .iter()
                    .chain(&metrics::EDGE_REASONS)
                    .chain([&metrics::ORIGIN_ERROR])
                    .map(|o| (*o, metrics.requests.with_label_values(&[name, o])))
                    .collect(),
            })
            .collect();
        let by = |vec: &prometheus::IntCounterVec, labels: &[&'static str]| {
            labels
                .iter()
                .map(|l| (*l, vec.with_label_values(&[l])))
                .collect()
        };
        Meters {
            routes,
            rate_limited: by(&metrics.rate_limited, &metrics::LIMITERS),
            manifests: by(&metrics.manifests, &metrics::MANIFEST_OUTCOMES),
            metrics,
        }
    }

    /// The handles of route `route` (None: no route matched).
    pub fn route(&self, route: Option<usize>) -> &RouteMeters {
        let none = self.routes.len() - 1;
        &self.routes[route.unwrap_or(none).min(none)]
    }

    pub fn rate_limited(&self, limiter: &'static str) {
        count(&self.rate_limited, limiter, || {
            self.metrics.rate_limited.with_label_values(&[limiter])
        });
    }

    /// One foreign credential checked: its format's name and `ok` or the reason.
    pub fn foreign(&self, format: &str, result: &'static str) {
        self.metrics
            .foreign
            .with_label_values(&[format, result])
            .inc();
    }

    pub fn manifest(&self, outcome: rewrite::Outcome) {
        count(&self.manifests, outcome, || {
            self.metrics.manifests.with_label_values(&[outcome])
        });
    }
}

impl RouteMeters {
    pub fn outcome(&self, outcome: &'static str, metrics: &Meters) {
        count(&self.outcomes, outcome, || {
            metrics
                .metrics
                .requests
                .with_label_values(&[&self.name, outcome])
        });
    }

    pub fn head_time(&self, d: Duration) {
        self.duration.observe(d.as_secs_f64());
    }
}

/// Count one `label`: by its handle, or (a label outside the prepared set, which a test
/// of the metrics module guards against) by a lookup.
fn count(
    handles: &HashMap<&'static str, IntCounter>,
    label: &str,
    slow: impl FnOnce() -> IntCounter,
) {
    match handles.get(label) {
        Some(c) => c.inc(),
        None => slow().inc(),
    }
}

/// What the request path learns for the access log and the metrics.
#[derive(Default)]
pub struct AccessLog {
    /// The matched route's index.
    pub route: Option<usize>,
    pub reason: &'static str,
    pub client: Option<IpAddr>,
    pub token: Option<TokenId>,
    /// What happened to a manifest answer (empty for everything else).
    pub manifest: rewrite::Outcome,
    /// Time until the origin's response headers.
    pub upstream: Option<Duration>,
    /// Counts a failure of the origin's body after the headers (an HTTP origin only).
    pub upstream_reset: Option<IntCounter>,
    /// What the shield cache did (`hit`, `miss`, `coalesced`, `pass`); empty on a route
    /// that is not cached.
    pub cache: &'static str,
}

impl AccessLog {
    /// The outcome label: the refusal's reason, or what the origin's status says.
    pub fn outcome(&self, status: http::StatusCode) -> &'static str {
        if !self.reason.is_empty() {
            self.reason
        } else if status.is_server_error() {
            "origin_5xx"
        } else if status.is_client_error() {
            "origin_4xx"
        } else {
            "ok"
        }
    }

    /// The access line's fields, to be written when the body is done.
    pub fn finish(
        self,
        started: Instant,
        method: Method,
        route: &RouteMeters,
        status: u16,
    ) -> Finished {
        Finished {
            started,
            head: started.elapsed(),
            method,
            route: route.name.clone(),
            status,
            reason: self.reason,
            manifest: self.manifest,
            cache: self.cache,
            client: self.client,
            token: self.token,
            upstream: self.upstream,
            sent: route.sent.clone(),
            upstream_reset: self.upstream_reset,
        }
    }
}

/// Everything the access line needs once the body is done.
pub struct Finished {
    started: Instant,
    pub head: Duration,
    method: Method,
    route: Arc<str>,
    status: u16,
    reason: &'static str,
    manifest: rewrite::Outcome,
    cache: &'static str,
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
            cache = (!self.cache.is_empty()).then_some(self.cache),
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

    /// The response body, metered: counts bytes and writes the line at its end.
    pub fn meter(self, inner: Body) -> Body {
        use http_body_util::BodyExt;
        Metered {
            inner,
            bytes: 0,
            record: Some(self),
        }
        .boxed_unsync()
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
pub enum TokenId {
    Jti(Arc<token::Grant>),
    Hash(String),
}

impl TokenId {
    pub fn of(token: &str, grant: &Arc<token::Grant>) -> Self {
        match &grant.jti {
            Some(_) => TokenId::Jti(grant.clone()),
            None => TokenId::Hash(token_hash(token)),
        }
    }
}

impl TokenId {
    /// A foreign credential: a hash prefix of its fields (the first carries the
    /// credential of every format; secure_link's expiry adds nothing to tell links apart).
    pub fn of_foreign(credential: &crate::token::foreign::Credential<'_>) -> Self {
        TokenId::Hash(token_hash(credential.fields[0].unwrap_or("")))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a13_a_token_without_jti_is_logged_as_a_hash_prefix_only() {
        let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJhIn0.c2ln";
        let shown = token_hash(token);
        assert!(
            shown.starts_with("sha256:") && shown.len() == 7 + 16,
            "{shown}"
        );
        assert!(!shown.contains(token) && !token.contains(&shown[7..]));
    }

    #[test]
    fn f2_every_prepared_outcome_has_a_handle_and_counts_once() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let meters = Meters::new(metrics.clone(), ["vod"]);
        let route = meters.route(Some(0));
        assert_eq!(&*route.name, "vod");
        assert_eq!(&*meters.route(None).name, metrics::NO_ROUTE);
        assert_eq!(&*meters.route(Some(99)).name, metrics::NO_ROUTE);
        route.outcome("scope", &meters);
        route.outcome("ok", &meters);
        route.outcome("ok", &meters);
        let get = |o: &str| metrics.requests.with_label_values(&["vod", o]).get();
        assert_eq!((get("scope"), get("ok"), get("expired")), (1, 2, 0));
        meters.manifest("renewed");
        assert_eq!(metrics.manifests.with_label_values(&["renewed"]).get(), 1);
    }
}
