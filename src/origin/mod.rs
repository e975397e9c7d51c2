//! Origins: where the edge fetches what it serves.
//!
//! An [`Origin`] is either a pool of `http://`/`https://` upstreams sharing one pooled
//! keep-alive client ([`HttpPool`]) or a local directory ([`file::FileOrigin`]). This
//! module owns connecting, timeouts, upstream TLS verification and failover; it never
//! sees tokens or routes: the edge hands it a finished request (token already removed).
//!
//! Protocol: HTTP/1.1 to every upstream; `https://` ones are offered ALPN `http/1.1`
//! only, as nginx and HAProxy do: h2 to the origin cost more CPU per request on the load
//! harness (the README's Performance section has the numbers). The origin
//! is addressed by the upstream's authority (hyper-util's client sets `Host` from the
//! URI), never by the viewer's `Host`, which travels as `X-Forwarded-Host`.
//!
//! Failover: a request without a body (GET, HEAD) that could not connect to an upstream
//! (nothing was sent) goes to the next upstream, at most once each. Once connected, an
//! upstream's failure is final for that request; a request with a body is never retried.

pub mod file;

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::body::Body;
use crate::config;

/// Why an origin gave no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    /// Connection refused or failed before anything was sent (every upstream).
    #[error("origin refused the connection")]
    Refused,
    /// Connect timeout, or no response headers within the read timeout.
    #[error("origin timed out")]
    Timeout,
    /// The connection broke before response headers arrived.
    #[error("origin failed before responding")]
    Failed,
}

impl OriginError {
    /// Stable reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Refused => "origin_refused",
            Self::Timeout => "origin_timeout",
            Self::Failed => "origin_error",
        }
    }
}

/// Why an origin could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("origin {origin}: {what}")]
    Invalid { origin: String, what: String },
}

/// A configured origin.
pub enum Origin {
    Http(Box<HttpPool>),
    File(file::FileOrigin),
}

impl Origin {
    pub fn build(cfg: &config::Origin) -> Result<Self, BuildError> {
        let invalid = |what: String| BuildError::Invalid {
            origin: cfg.name.clone(),
            what,
        };
        if let [config::Upstream::File(dir)] = cfg.upstreams.as_slice() {
            let f = file::FileOrigin::new(dir)
                .map_err(|e| invalid(format!("{}: {e}", dir.display())))?;
            return Ok(Origin::File(f));
        }
        HttpPool::build(cfg).map(|p| Origin::Http(Box::new(p)))
    }
}

/// One upstream's scheme and authority.
#[derive(Debug, Clone)]
struct Upstream {
    scheme: Scheme,
    authority: Authority,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Body>;

/// `http(s)://` upstreams in failover order, one keep-alive pool.
pub struct HttpPool {
    upstreams: Vec<Upstream>,
    client: HttpClient,
    read_timeout: Duration,
}

impl HttpPool {
    fn build(cfg: &config::Origin) -> Result<Self, BuildError> {
        let invalid = |what: String| BuildError::Invalid {
            origin: cfg.name.clone(),
            what,
        };
        let mut upstreams = Vec::with_capacity(cfg.upstreams.len());
        for u in &cfg.upstreams {
            let config::Upstream::Http(uri) = u else {
                return Err(invalid(
                    "file:// cannot be mixed with http upstreams".into(),
                ));
            };
            let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
                return Err(invalid(format!("{uri} needs a scheme and a host")));
            };
            upstreams.push(Upstream {
                scheme: scheme.clone(),
                authority: authority.clone(),
            });
        }

        let mut roots = rustls::RootCertStore::empty();
        // System roots: a missing or partly unreadable store only means fewer roots.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(ca) = &cfg.ca_file {
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| invalid(format!("ca_file {}: {e}", ca.display())))?;
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| invalid(format!("ca_file {}: {e}", ca.display())))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| invalid(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(cfg.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        // The pool's idle timeout needs a timer, or it never fires.
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(cfg.pool_max_idle)
            .set_host(true)
            .build(connector);
        Ok(HttpPool {
            upstreams,
            client,
            read_timeout: cfg.read_timeout,
        })
    }

    /// Send a request (`path_and_query` is the origin-form target; `head` supplies method
    /// and headers) to the first upstream that accepts a connection. A request with a
    /// `body` streams it to the origin and is never retried: once handed to the client,
    /// the body cannot be replayed.
    pub async fn forward(
        &self,
        head: &mut http::request::Parts,
        path_and_query: String,
        mut body: Option<Body>,
    ) -> Result<Response<Incoming>, OriginError> {
        // The string's buffer becomes the target's bytes; each upstream's URI shares them.
        let path_and_query = PathAndQuery::from_maybe_shared(bytes::Bytes::from(path_and_query))
            .map_err(|_| OriginError::Failed)?;
        let mut last = OriginError::Refused;
        let final_try = if body.is_some() {
            0
        } else {
            self.upstreams.len().saturating_sub(1)
        };
        for (i, up) in self.upstreams.iter().enumerate() {
            let uri = http::Uri::builder()
                .scheme(up.scheme.clone())
                .authority(up.authority.clone())
                .path_and_query(path_and_query.clone())
                .build()
                .map_err(|_| OriginError::Failed)?;
            let retry = body.is_none();
            let mut req = Request::new(body.take().unwrap_or_else(crate::body::empty));
            *req.method_mut() = head.method.clone();
            *req.uri_mut() = uri;
            // Headers are copied only when another upstream may still need them.
            *req.headers_mut() = if i == final_try {
                std::mem::take(&mut head.headers)
            } else {
                head.headers.clone()
            };
            // The client sets `Host` from the URI's authority (the upstream's).
            req.headers_mut().remove(http::header::HOST);
            match tokio::time::timeout(self.read_timeout, self.client.request(req)).await {
                Err(_) => return Err(OriginError::Timeout),
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(e)) if e.is_connect() => {
                    last = if is_timeout(&e) {
                        OriginError::Timeout
                    } else {
                        OriginError::Refused
                    };
                    tracing::debug!(upstream = %up.authority, error = %e, "upstream connect failed");
                    if !retry {
                        return Err(last);
                    }
                }
                Ok(Err(e)) => {
                    tracing::debug!(upstream = %up.authority, error = %e, "upstream failed before headers");
                    return Err(OriginError::Failed);
                }
            }
        }
        Err(last)
    }
}

fn is_timeout(e: &hyper_util::client::legacy::Error) -> bool {
    let mut source = e.source();
    for _ in 0..8 {
        let Some(s) = source else { break };
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        if s.to_string().contains("timed out") {
            return true;
        }
        source = s.source();
    }
    false
}

/// Origins by index, as the route table refers to them.
pub type Origins = Vec<Arc<Origin>>;
