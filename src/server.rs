//! Listeners: accept, TLS handshake, one hyper connection per socket, limits, drain.
//!
//! Owns sockets, connection-level protection and [`ConnInfo`]; knows nothing of tokens or
//! routes, and imports no request-path module: each listener runs [`serve`] with a
//! handler the wiring gives it. Protections applied here (the IDs are the threat
//! model's, docs/threat-model.md):
//! a connection limit (a semaphore taken *before* `accept`, so excess clients wait in
//! the kernel backlog instead of costing memory), a TLS handshake timeout, hyper's
//! header-read timeout (slowloris, C1) — which needs a timer, so one is set on
//! both protocols — header size and count limits (431), and HTTP/2 stream limits
//! (rapid reset, C5). A panicking handler costs its own request a 500 and
//! nothing else (E4). Each listener counts its open connections in a gauge. Shutdown
//! stops accepting at once — the listening socket is closed, so new connections are
//! refused — and lets open connections finish their in-flight requests within the
//! grace period (`edge.shutdown_grace`, E1); HTTP/1.1 connections are closed
//! after their current response, HTTP/2 ones get a GOAWAY.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either;
use futures_util::FutureExt;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::IntGauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::body::{self, Body};
use crate::config;

/// How a request reached us: handed to the request handler with every request.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// True on the TLS listener (sets `X-Forwarded-Proto: https`).
    pub tls: bool,
}

/// A request's future, boxed (see [`serve`]).
type RequestFuture =
    std::pin::Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// Connection-level limits for one listener.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub max_connections: usize,
    pub h2_max_concurrent_streams: u32,
    /// How long open connections may take to finish once shutdown starts.
    pub grace: Duration,
}

impl Limits {
    pub fn from_edge(e: &config::Edge) -> Self {
        Limits {
            header_timeout: e.header_timeout,
            tls_handshake_timeout: e.tls_handshake_timeout,
            max_header_bytes: e.max_header_bytes,
            max_headers: e.max_headers,
            max_connections: e.max_connections,
            h2_max_concurrent_streams: e.h2_max_concurrent_streams,
            grace: e.shutdown_grace,
        }
    }

    fn builders(&self) -> Builders {
        let mut h1 = http1::Builder::new();
        h1.timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            // Above the configured limits (twice the bytes, four times the count): hyper's
            // own bare 431 beyond these bounds memory; between the configured limit and
            // these, the edge answers its own uncacheable 431 with a reason code.
            .max_buf_size(self.max_header_bytes * 2)
            .max_headers(self.max_headers * 4);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(self.h2_max_concurrent_streams)
            .max_header_list_size(u32::try_from(self.max_header_bytes * 2).unwrap_or(u32::MAX))
            .max_pending_accept_reset_streams(Some(50))
            .max_local_error_reset_streams(Some(256))
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(10));
        Builders { h1, h2 }
    }
}

/// The two protocol builders. A connection's protocol is known before hyper sees it:
/// from ALPN on TLS, from a peek at the first bytes on plain TCP ([`is_h2c`]). Not
/// hyper-util's `auto` builder: it sniffs by reading into a small buffer of its own and
/// replaying it, after which hyper's first read buffer grows to 16 KiB, which every idle
/// keep-alive connection then holds.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

/// Accept connections on `listener` until `shutdown`, serving each with the service
/// `handler` makes for it; then drain open connections for up to `limits.grace`.
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    handler: H,
    open: IntGauge,
    shutdown: CancellationToken,
) where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let builders = Arc::new(limits.builders());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let info = ConnInfo {
            peer,
            tls: tls.is_some(),
        };
        let handler = handler.clone();
        let first_request = Arc::new(AtomicBool::new(false));
        let seen = first_request.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            seen.store(true, Ordering::Relaxed);
            // A panic in a handler fails that one request with a 500 (threat model E4); the
            // connection and every other request go on.
            // Boxed: hyper keeps room for one request future on every connection, idle or
            // not, so unboxed, each idle keep-alive connection would hold the whole
            // handler future (2.8 KiB); boxed, it holds a pointer and the request pays one
            // allocation. `map`, not an `async` block, which would hold it twice.
            let fut: RequestFuture = Box::pin(
                AssertUnwindSafe(handler(req, info))
                    .catch_unwind()
                    .map(or_500(peer)),
            );
            fut
        });
        let conn = Conn {
            builders: builders.clone(),
            watcher: graceful.watcher(),
            first_request,
            header_timeout: limits.header_timeout,
            peer,
        };
        let hs_timeout = limits.tls_handshake_timeout;
        let open = OpenConnection::count(&open);
        // Two task types, not one with a branch: a task is as large as its largest state,
        // and a plain connection should not carry room for a TLS session.
        match tls.clone() {
            None => tokio::spawn(async move {
                match tokio::time::timeout(conn.header_timeout, is_h2c(&tcp)).await {
                    Ok(h2) => conn.serve(tcp, svc, h2).await,
                    Err(_) => {
                        tracing::debug!(%peer, "no request within the header timeout; closing")
                    }
                }
                drop(open);
                drop(permit);
            }),
            Some(acceptor) => tokio::spawn(async move {
                match tokio::time::timeout(hs_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        conn.serve(stream, svc, h2).await
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
                drop(open);
                drop(permit);
            }),
        };
    }
    drop(listener);
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over; closing remaining connections");
    }
}

/// A handler's answer, or a 500 if it panicked (threat model E4). A named function rather
/// than an inline closure, so that the closure's signature is fully `'static`.
fn or_500(
    peer: SocketAddr,
) -> impl FnOnce(std::thread::Result<Response<Body>>) -> Result<Response<Body>, Infallible> {
    move |answer| {
        Ok(answer.unwrap_or_else(|_| {
            tracing::error!(%peer, "request handler panicked; answered 500");
            body::refusal(http::StatusCode::INTERNAL_SERVER_ERROR, "internal")
        }))
    }
}

/// One open connection in the listener's gauge, for as long as this lives (a
/// connection task that panics still drops it).
struct OpenConnection(IntGauge);

impl OpenConnection {
    fn count(gauge: &IntGauge) -> Self {
        gauge.inc();
        OpenConnection(gauge.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One accepted connection, ready to be served over a plain or TLS stream.
struct Conn {
    builders: Arc<Builders>,
    watcher: hyper_util::server::graceful::Watcher,
    first_request: Arc<AtomicBool>,
    header_timeout: Duration,
    peer: SocketAddr,
}

impl Conn {
    async fn serve<IO, S>(self, io: IO, svc: S, h2: bool)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        S: hyper::service::HttpService<Incoming, ResBody = Body> + Send + 'static,
        S::Future: Send + 'static,
    {
        let io = TokioIo::new(io);
        let conn = if h2 {
            Either::Left(
                self.watcher
                    .watch(self.builders.h2.serve_connection(io, svc)),
            )
        } else {
            Either::Right(
                self.watcher
                    .watch(self.builders.h1.serve_connection(io, svc)),
            )
        };
        first_request_deadline(conn, &self.first_request, self.header_timeout, self.peer).await;
    }
}

/// Does this plain connection start with the HTTP/2 preface (`PRI * HTTP/2.0`, h2c with
/// prior knowledge)? Peeks, so nothing is consumed. No HTTP/1 request starts with `PRI `,
/// so four bytes decide, and a first byte other than `P` decides at once. A client that
/// stops within those four bytes is polled every few milliseconds, at most 200 times;
/// the caller's header timeout bounds it too. A closed or failed socket is "no": hyper's
/// HTTP/1 side then ends it.
async fn is_h2c(tcp: &tokio::net::TcpStream) -> bool {
    const PREFACE: &[u8] = b"PRI ";
    let mut buf = [0u8; 4];
    for _ in 0..200 {
        match tcp.peek(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if !PREFACE.starts_with(&buf[..n]) => return false,
            Ok(n) if n == PREFACE.len() => return true,
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    false
}

/// Serve one connection, closing it if no request has arrived `header_timeout` after it
/// was accepted (or after its TLS handshake, or after the peek that tells HTTP/1 from
/// h2c, which has a timeout of its own). hyper's header timer starts only once a byte
/// has arrived, and HTTP/2 has none for its preface: without this, a silent socket — or
/// an HTTP/2 preface dribbled a byte at a time — would hold a connection slot forever
/// (threat model C1). HTTP/2 over TLS needs ALPN `h2` (RFC 9113, 3.2): a TLS client that
/// negotiated no protocol is served HTTP/1.1. After the first request, hyper's own header
/// timeout covers idle HTTP/1.1 keep-alive connections.
async fn first_request_deadline<F, E>(
    conn: F,
    first_request: &AtomicBool,
    header_timeout: Duration,
    peer: SocketAddr,
) where
    F: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let result = tokio::select! {
        r = &mut conn => r,
        _ = tokio::time::sleep(header_timeout) => {
            if !first_request.load(Ordering::Relaxed) {
                tracing::debug!(%peer, "no request within the header timeout; closing");
                return;
            }
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Bind a TCP listener (with `SO_REUSEADDR`, as std does on Unix).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
