//! Forward: what the origin sees, and asking it.
//!
//! The origin gets the same normalised path that was authorised, the query without the
//! token, and the request's headers less: hop-by-hop headers (RFC 9110 §7.6.1), the
//! `Authorization: Bearer` and token cookie that carried the token, and any
//! `X-Forwarded-*` the client sent. It gets `X-Forwarded-For` (see `client.rs`),
//! `X-Forwarded-Proto` (this hop's scheme) and `X-Forwarded-Host` (the authority
//! admission agreed on). Then the route's origin answers: a `file://` directory or an
//! HTTP pool (502/504 on failure; a mid-body failure aborts the client connection,
//! threat model D4). This module owns these rules and the per-origin metrics; it never
//! decides whether a request may pass.

use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http::Response;
use http_body_util::BodyExt;
use prometheus::{Histogram, IntCounter};

use super::client::Client;
use super::extract::{self, Stripped};
use super::log::AccessLog;
use super::EdgeError;
use crate::body::{self, Body};
use crate::config;
use crate::metrics::Metrics;
use crate::origin::{Origin, OriginError, Origins};

/// The origins and their metric handles, by origin index.
pub struct Forwarder {
    origins: Origins,
    meters: Vec<OriginMeters>,
    cookie_name: String,
}

/// An origin's metric handles, resolved once.
#[derive(Clone)]
struct OriginMeters {
    duration: Histogram,
    refused: IntCounter,
    timeout: IntCounter,
    reset: IntCounter,
}

/// One request on its way to the origin.
pub struct Outbound<'r> {
    /// The normalised path and the query, token removed (what was authorised), and
    /// which header carriers held the token.
    pub stripped: &'r Stripped<'r>,
    pub body: Option<Body>,
    pub client: Client,
    /// The authority admission agreed on.
    pub authority: Option<HeaderValue>,
}

impl Forwarder {
    pub fn new(cfg: &config::Config, metrics: &Metrics) -> Result<Self, crate::origin::BuildError> {
        let origins = cfg
            .origins
            .iter()
            .map(|o| Origin::build(o).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let meters = cfg
            .origins
            .iter()
            .map(|o| {
                let err = |kind: &str| metrics.upstream_errors.with_label_values(&[&o.name, kind]);
                OriginMeters {
                    duration: metrics.upstream_duration.with_label_values(&[&o.name]),
                    refused: err("refused"),
                    timeout: err("timeout"),
                    reset: err("reset"),
                }
            })
            .collect();
        Ok(Forwarder {
            origins,
            meters,
            cookie_name: cfg.token.cookie.clone(),
        })
    }

    /// Rewrite `head`'s headers into what the origin may see.
    pub fn prepare(&self, headers: &mut HeaderMap, out: &Outbound<'_>) {
        strip_hop_by_hop(headers);
        if out.stripped.strip_authorization {
            strip_bearer(headers);
        }
        if out.stripped.strip_cookie {
            strip_token_cookie(headers, &self.cookie_name);
        }
        // A foreign credential's cookie and header, as extraction found them.
        for name in &out.stripped.strip_foreign.cookies {
            strip_token_cookie(headers, name);
        }
        for name in &out.stripped.strip_foreign.headers {
            headers.remove(*name);
        }
        out.client.set_forwarded_for(headers);
        headers.insert(
            HeaderName::from_static("x-forwarded-proto"),
            HeaderValue::from_static(if out.client.tls { "https" } else { "http" }),
        );
        let xfh = HeaderName::from_static("x-forwarded-host");
        match &out.authority {
            Some(h) => headers.insert(xfh, h.clone()),
            None => headers.remove(xfh),
        };
    }

    /// Ask origin `origin` for the request (`head` already prepared). The answer's
    /// hop-by-hop headers are gone.
    pub async fn send(
        &self,
        origin: usize,
        head: &mut Parts,
        out: Outbound<'_>,
        log: &mut AccessLog,
    ) -> Result<Response<Body>, EdgeError> {
        let pool = self.origins.get(origin).ok_or(EdgeError::NoRoute)?;
        let meters = self.meters.get(origin).ok_or(EdgeError::NoRoute)?;
        let asked = Instant::now();
        let answered = match pool.as_ref() {
            Origin::File(f) => Ok(f
                .serve(&head.method, &out.stripped.path, &head.headers)
                .await),
            Origin::Http(pool) => {
                let target = match &out.stripped.query {
                    Some(q) => format!("{}?{q}", out.stripped.path),
                    None => out.stripped.path.to_string(),
                };
                pool.forward(head, target, out.body).await.map(|r| {
                    log.upstream_reset = Some(meters.reset.clone());
                    // A mid-body origin failure surfaces as a body error, which makes
                    // hyper abort the client connection instead of ending it cleanly.
                    r.map(|b| b.map_err(|e| Box::new(e) as body::BoxError).boxed_unsync())
                })
            }
        };
        log.upstream = Some(asked.elapsed());
        meters.answered(answered, asked).map_err(EdgeError::Origin)
    }

    /// The shield cache's fetch of `target` from HTTP origin `origin`: what the origin
    /// sees is the key alone (no viewer's headers, cookies or address: the answer is
    /// for every viewer), asking for the plain body. Owned, so that the fill's task can
    /// run it apart from any request.
    pub fn fill(
        &self,
        origin: usize,
        target: &str,
    ) -> impl std::future::Future<Output = Result<Response<Body>, OriginError>> + Send + 'static
    {
        let pool = self.origins.get(origin).cloned();
        let meters = self.meters.get(origin).cloned();
        let target = target.to_string();
        async move {
            let (Some(pool), Some(meters)) = (pool, meters) else {
                return Err(OriginError::Refused);
            };
            let Origin::Http(http) = pool.as_ref() else {
                return Err(OriginError::Refused);
            };
            let (mut head, ()) = http::Request::new(()).into_parts();
            head.headers.insert(
                header::ACCEPT_ENCODING,
                HeaderValue::from_static("identity"),
            );
            let asked = Instant::now();
            let answered = http
                .forward(&mut head, target, None)
                .await
                .map(|r| r.map(|b| b.map_err(|e| Box::new(e) as body::BoxError).boxed_unsync()));
            meters.answered(answered, asked)
        }
    }
}

impl OriginMeters {
    /// Count the origin's answer (or failure) and take the hop-by-hop headers off it.
    fn answered(
        &self,
        answered: Result<Response<Body>, OriginError>,
        asked: Instant,
    ) -> Result<Response<Body>, OriginError> {
        let mut resp = answered.inspect_err(|e| {
            match e {
                OriginError::Refused => &self.refused,
                OriginError::Timeout => &self.timeout,
                OriginError::Failed => &self.reset,
            }
            .inc();
        })?;
        self.duration.observe(asked.elapsed().as_secs_f64());
        strip_hop_by_hop(resp.headers_mut());
        Ok(resp)
    }
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

/// Remove every `Authorization` that [`extract::is_bearer`] calls the gate's.
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

/// Remove the token cookie with [`extract::strip_cookie`], the parser that found it.
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

#[cfg(test)]
mod tests {
    use super::super::client::tests::headers;
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic abc"),
            ("range", "bytes=0-1"),
        ]);
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["range"], "bytes=0-1");
    }

    #[test]
    fn a13_the_token_carriers_are_removed_and_other_credentials_kept() {
        let mut h = headers(&[
            ("authorization", "Bearer abc.def.ghi"),
            ("authorization", "Basic dXNlcjpwYXNz"),
            ("cookie", "a=1; tollgate_token=abc.def.ghi; b=2"),
            ("cookie", "tollgate_token=abc.def.ghi"),
        ]);
        strip_bearer(&mut h);
        strip_token_cookie(&mut h, "tollgate_token");
        let auth: Vec<_> = h.get_all("authorization").iter().collect();
        assert_eq!(auth, ["Basic dXNlcjpwYXNz"]);
        let cookies: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(cookies, ["a=1; b=2"]);
    }
}
