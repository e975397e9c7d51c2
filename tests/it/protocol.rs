//! Threats C1, C4, C5, C6 and C8 (docs/threat-model.md): slowloris, request smuggling,
//! HTTP/2 stream limits, TLS, and one agreed host.
//!
//! Everything runs on loopback against a real gate (`common::start`, header timeout 1 s).
//! Every loop is bounded and every wait is under a `tokio::time::timeout`.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;

// ---------------------------------------------------------------------------------------
// helpers

/// What came back on a raw connection.
struct RawReply {
    bytes: Vec<u8>,
    /// The server closed (EOF or reset) within the wait.
    closed: bool,
}

impl RawReply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    fn status(&self) -> Option<u16> {
        let t = self.text();
        let line = t.lines().next()?;
        let mut parts = line.split(' ');
        if !parts.next()?.starts_with("HTTP/1.") {
            return None;
        }
        parts.next()?.parse().ok()
    }
}

/// Write `bytes` on a new connection, then read until the server closes or `wait` passes.
async fn send_raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> RawReply {
    let mut tcp = TcpStream::connect(addr).await.expect("connect to the gate");
    tcp.write_all(bytes).await.expect("write request bytes");
    read_until_close(&mut tcp, wait).await
}

async fn read_until_close(tcp: &mut TcpStream, wait: Duration) -> RawReply {
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    // Bounded: every iteration either reads bytes, ends, or hits the deadline.
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => {
                return RawReply {
                    bytes: out,
                    closed: false,
                }
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return RawReply {
                    bytes: out,
                    closed: true,
                }
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A TLS client trusting `ca`, limited to `versions`, offering `alpn`.
fn tls_connector(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).expect("read the test CA") {
        roots.add(c.expect("CA certificate")).expect("add the CA");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(tollgate::tls::provider())
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

async fn tls_connect(
    addr: SocketAddr,
    connector: &tokio_rustls::TlsConnector,
    name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(name.to_string()).expect("server name");
    timeout(Duration::from_secs(5), connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))?
}

/// One HTTP/1.1 GET over an established stream; returns (status, body).
async fn h1_get_over<S>(stream: S, target: &str) -> (u16, Bytes)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(target)
        .header("host", "localhost")
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    let resp = timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("answer within 10 s")
        .expect("response");
    let status = resp.status().as_u16();
    let body = timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("body within 10 s")
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, body)
}

// ---------------------------------------------------------------------------------------
// C1 slowloris

struct SlowOutcome {
    closed_after: Option<Duration>,
    reply: Vec<u8>,
}

/// Send `first` at once, then `trickle` one byte every 200 ms, until the server closes
/// or `give_up` passes.
async fn slow_client(
    addr: SocketAddr,
    first: &'static [u8],
    trickle: &'static [u8],
    give_up: Duration,
) -> SlowOutcome {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    if !first.is_empty() && tcp.write_all(first).await.is_err() {
        return SlowOutcome {
            closed_after: Some(started.elapsed()),
            reply: Vec::new(),
        };
    }
    let mut reply = Vec::new();
    let mut buf = [0u8; 1024];
    let mut next = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.tick().await; // the first tick is immediate
    let deadline = tokio::time::Instant::now() + give_up;
    // Bounded by `deadline`.
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {
                return SlowOutcome { closed_after: None, reply };
            }
            r = tcp.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    return SlowOutcome { closed_after: Some(started.elapsed()), reply };
                }
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick() => {
                let byte = trickle[next % trickle.len()];
                next += 1;
                if tcp.write_all(&[byte]).await.is_err() {
                    return SlowOutcome { closed_after: Some(started.elapsed()), reply };
                }
            }
        }
    }
}

fn assert_closed_by_header_timeout(what: &str, o: &SlowOutcome) {
    let after = o.closed_after.unwrap_or_else(|| {
        panic!("{what}: still open 5 s after connecting (header timeout is 1 s)")
    });
    assert!(
        after <= Duration::from_secs(3),
        "{what}: closed only after {after:?}, want within 3 s of a 1 s header timeout"
    );
    assert!(
        after >= Duration::from_millis(800),
        "{what}: closed after {after:?}, before the 1 s header timeout"
    );
    let text = String::from_utf8_lossy(&o.reply);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 400"),
        "{what}: the only acceptable answer is none, 408 or 400; got {text:?}"
    );
    assert!(
        !text.contains(" 200 "),
        "{what}: an unfinished request was answered 200"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c1_slowloris_sockets_are_closed_after_the_header_timeout_and_others_are_served() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let addr = tg.plain();
    let tok = tg.token_for("a");

    let mut attack = JoinSet::new();
    for _ in 0..100 {
        attack.spawn(slow_client(
            addr,
            b"GET /vod/a/slow.ts HTTP/1.1\r\nHost: localhost\r\n",
            b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            Duration::from_secs(5),
        ));
    }
    // While all 100 are dribbling their headers, a normal viewer is served.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let t0 = Instant::now();
    let got = timeout(
        Duration::from_secs(3),
        get(addr, &format!("/vod/a/seg.ts?token={tok}"), &[]),
    )
    .await
    .expect("a normal request during the attack is answered within 3 s");
    assert_eq!(got.status, 200, "normal request during slowloris: {got:?}");
    assert_eq!(&got.body[..], b"origin:/vod/a/seg.ts");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "served slowly: {:?}",
        t0.elapsed()
    );

    let mut n = 0;
    for _ in 0..100 {
        let o = timeout(Duration::from_secs(10), attack.join_next())
            .await
            .expect("every slow client finishes within its own 5 s bound")
            .expect("a slow client")
            .expect("slow client task");
        assert_closed_by_header_timeout("slowloris socket", &o);
        n += 1;
    }
    assert_eq!(n, 100);
    assert_eq!(
        origin.count(),
        1,
        "only the normal request reaches the origin: {:?}",
        origin.requests()
    );
}

#[tokio::test]
async fn c1_request_line_dribbled_from_the_first_byte_is_closed_after_the_header_timeout() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let o = slow_client(
        tg.plain(),
        b"",
        b"GET /vod/a/slow.ts HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaa",
        Duration::from_secs(5),
    )
    .await;
    assert_closed_by_header_timeout("byte-at-a-time request line", &o);
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn c1_silent_connection_is_closed_after_the_header_timeout() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(tg.plain()).await.expect("connect");
    let reply = read_until_close(&mut tcp, Duration::from_secs(5)).await;
    assert!(
        reply.closed,
        "a connection that sent nothing is still open after {:?} (header timeout 1 s)",
        started.elapsed()
    );
    assert!(started.elapsed() <= Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c1_silent_connections_cannot_exhaust_the_connection_limit() {
    let origin = TestOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.edge = "max_connections = 4".into();
    let tg = start(setup).await;
    let tok = tg.token_for("a");
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(tg.plain()).await.expect("connect"));
    }
    // Well past the 1 s header timeout, the idle sockets must have been let go.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = timeout(
        Duration::from_secs(3),
        get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]),
    )
    .await
    .expect("a viewer is served once the idle sockets passed the header timeout");
    assert_eq!(got.status, 200);
    drop(idle);
}

#[tokio::test]
async fn c1_h2_preface_dribbled_byte_at_a_time_is_closed_after_the_header_timeout() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    // 24 bytes of preface at 200 ms each would take 4.8 s; the gate must not wait that long.
    let o = slow_client(
        tg.plain(),
        b"",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        Duration::from_secs(4),
    )
    .await;
    let after = o
        .closed_after
        .expect("a dribbled h2 preface is still open after 4 s (header timeout 1 s)");
    assert!(after <= Duration::from_secs(3), "closed after {after:?}");
}

#[tokio::test]
async fn c1_tls_handshake_never_started_is_closed_after_the_handshake_timeout() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let started = Instant::now();
    let mut tcp = TcpStream::connect(tg.tls()).await.expect("connect");
    let reply = read_until_close(&mut tcp, Duration::from_secs(6)).await;
    let after = started.elapsed();
    assert!(
        reply.closed,
        "silent TLS socket still open after {after:?} (handshake timeout 2 s)"
    );
    assert!(
        after >= Duration::from_millis(1800) && after <= Duration::from_secs(4),
        "closed after {after:?}, want about the 2 s handshake timeout"
    );
}

#[tokio::test]
async fn c1_silent_tls_connection_after_the_handshake_is_closed_after_the_header_timeout() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let c = tls_connector(&tg.ca, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let mut tls = tls_connect(tg.tls(), &c, "localhost")
        .await
        .expect("handshake");
    let started = Instant::now();
    let mut buf = [0u8; 256];
    let r = timeout(Duration::from_secs(5), tls.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "a TLS connection that sent no request is still open after {:?}: {r:?}",
        started.elapsed()
    );
    assert!(started.elapsed() <= Duration::from_secs(3));
}

// ---------------------------------------------------------------------------------------
// C4 smuggling

/// Framing attacks; `{TOKEN}` stands for a valid token for resource a.
fn smuggling_cases(method: &str, path: &str) -> Vec<(&'static str, String)> {
    let hidden = "GET /vod/b/secret HTTP/1.1\r\nHost: x\r\n\r\n";
    let target = format!("{path}?token={{TOKEN}}");
    let chunked_hidden = format!("0\r\n\r\n{hidden}");
    vec![
        (
            "CL then TE",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_hidden}",
                chunked_hidden.len()
            ),
        ),
        (
            "TE then CL",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunked_hidden}"
            ),
        ),
        (
            "TE chunked, identity",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n{chunked_hidden}"
            ),
        ),
        (
            "TE xchunked",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n{chunked_hidden}"
            ),
        ),
        (
            "TE with space before colon",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n{chunked_hidden}"
            ),
        ),
        (
            "two TE headers, chunked then identity",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n{chunked_hidden}"
            ),
        ),
        (
            "two TE chunked headers",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_hidden}"
            ),
        ),
        (
            "TE on HTTP/1.0",
            format!(
                "{method} {target} HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{chunked_hidden}"
            ),
        ),
        (
            "two different Content-Lengths",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{hidden}",
                hidden.len()
            ),
        ),
        (
            "Content-Length list",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0, {}\r\n\r\n{hidden}",
                hidden.len()
            ),
        ),
        (
            "bad chunk size",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{hidden}"
            ),
        ),
        (
            "chunk size overflow",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff1\r\n{hidden}"
            ),
        ),
        (
            "GET with a body hiding a second request",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{hidden}",
                hidden.len()
            ),
        ),
        (
            "negative Content-Length",
            format!("{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{hidden}"),
        ),
        (
            "Content-Length with plus sign",
            format!(
                "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: +{}\r\n\r\n{hidden}",
                hidden.len()
            ),
        ),
    ]
}

/// Send each case on its own connection; every one must get a single 400, a closed
/// connection, and reach the origin at most once and never as `/vod/b/…`.
async fn smuggling_failures(cases: Vec<(&'static str, String)>) -> Vec<String> {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    let mut failures = Vec::new();
    for (name, req) in cases {
        let req = req.replace("{TOKEN}", &tok);
        let before = origin.count();
        let reply = send_raw(tg.plain(), req.as_bytes(), Duration::from_secs(3)).await;
        let seen = origin.requests();
        let text = reply.text();
        if reply.status() != Some(400) {
            failures.push(format!("{name}: want 400, got {text:?}"));
        }
        if !reply.closed {
            failures.push(format!("{name}: connection still open 3 s after {text:?}"));
        }
        if text.matches("HTTP/1.").count() > 1 {
            failures.push(format!("{name}: more than one response: {text:?}"));
        }
        if seen.len() > before + 1 {
            failures.push(format!(
                "{name}: the origin saw {} requests",
                seen.len() - before
            ));
        }
        if let Some(s) = seen.iter().find(|s| s.target.contains("/vod/b/")) {
            failures.push(format!(
                "{name}: the hidden request reached the origin: {s:?}"
            ));
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_get_smuggling_attempts_get_400_and_close_and_never_reach_a_second_resource() {
    let failures = smuggling_failures(smuggling_cases("GET", "/vod/a/x.ts")).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_post_conflicting_lengths_and_bad_te_get_400_and_close() {
    let cases = smuggling_cases("POST", "/vod/a/licence")
        .into_iter()
        .filter(|(name, _)| {
            !name.starts_with("CL then TE")
                && !name.starts_with("TE then CL")
                && !name.starts_with("two TE chunked")
                && !name.contains("chunk size")
                && !name.starts_with("GET with a body")
        })
        .collect();
    let failures = smuggling_failures(cases).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_post_with_content_length_and_chunked_or_duplicate_te_gets_400_and_close() {
    let cases = smuggling_cases("POST", "/vod/a/licence")
        .into_iter()
        .filter(|(name, _)| {
            name.starts_with("CL then TE")
                || name.starts_with("TE then CL")
                || name.starts_with("two TE chunked")
        })
        .collect();
    let failures = smuggling_failures(cases).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn c4_post_with_bad_chunking_gets_400_and_close() {
    let cases = smuggling_cases("POST", "/vod/a/licence")
        .into_iter()
        .filter(|(name, _)| name.contains("chunk size"))
        .collect();
    let failures = smuggling_failures(cases).await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn c4_a_keep_alive_pipeline_after_a_clean_get_is_not_confused() {
    // Control: the same connection may carry two clean GETs; both are answered in
    // order and the origin sees exactly these two targets.
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    let req = format!(
        "GET /vod/a/1.ts?token={tok} HTTP/1.1\r\nHost: x\r\n\r\nGET /vod/a/2.ts?token={tok} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let reply = send_raw(tg.plain(), req.as_bytes(), Duration::from_secs(3)).await;
    let text = reply.text();
    assert!(reply.closed, "Connection: close honoured: {text:?}");
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    let first = text.find("origin:/vod/a/1.ts").expect("first body");
    let second = text.find("origin:/vod/a/2.ts").expect("second body");
    assert!(first < second);
    let targets: Vec<String> = origin.requests().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, vec!["/vod/a/1.ts", "/vod/a/2.ts"]);
}

// ---------------------------------------------------------------------------------------
// C5 HTTP/2: more streams than allowed

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame length");
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(kind);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK integer with an `n`-bit prefix whose high bits are `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | u8::try_from(v).expect("small"));
        return;
    }
    out.push(first | u8::try_from(max).expect("max"));
    v -= max;
    while v >= 128 {
        out.push(u8::try_from(v % 128).expect("7 bits") | 0x80);
        v /= 128;
    }
    out.push(u8::try_from(v).expect("7 bits"));
}

/// Literal header field without indexing, name from the static table.
fn hpack_literal(out: &mut Vec<u8>, name_index: usize, value: &str) {
    hpack_int(out, 0x00, 4, name_index);
    hpack_int(out, 0x00, 7, value.len());
    out.extend_from_slice(value.as_bytes());
}

fn h2_get_headers(path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http
    hpack_literal(&mut block, 4, path); // :path
    hpack_literal(&mut block, 1, "localhost"); // :authority
    block
}

/// A raw origin: `/slow` requests are answered after `delay`, others at once.
async fn delaying_origin(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let count = c2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    count.fetch_add(1, Ordering::SeqCst);
                    let slow = req.uri().path().contains("/slow");
                    async move {
                        if slow {
                            tokio::time::sleep(delay).await;
                        }
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c5_h2_more_streams_than_allowed_are_refused_and_others_are_served() {
    let (oaddr, _count) = delaying_origin(Duration::from_millis(600)).await;
    let tg = start(Setup::standard(vec![format!("http://{oaddr}")])).await;
    let tok = tg.token_for("a");
    let addr = tg.plain();

    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(4, 0, 0, &[])); // SETTINGS
    hello.extend(h2_frame(4, 1, 0, &[])); // SETTINGS ACK (the server's come in parallel)
    tcp.write_all(&hello).await.expect("preface");

    const STREAMS: u32 = 250;
    let mut burst = Vec::new();
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        // END_HEADERS only: every stream stays open from our side.
        let block = h2_get_headers(&format!("/vod/a/slow{i}.ts?token={tok}"));
        burst.extend(h2_frame(1, 0x4, id, &block));
    }
    tcp.write_all(&burst).await.expect("burst of HEADERS");

    // Meanwhile another client is served promptly.
    let other = timeout(
        Duration::from_secs(3),
        get(addr, &format!("/vod/a/fast.ts?token={tok}"), &[]),
    )
    .await
    .expect("another client is answered during the stream flood");
    assert_eq!(other.status, 200, "{other:?}");

    // Read the flood connection's frames for a while.
    let mut answered = std::collections::HashSet::new();
    let mut refused = std::collections::HashSet::new();
    let mut goaway = false;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut chunk)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
        // Bounded: each pass consumes one whole frame.
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let kind = buf[3];
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match kind {
                1 => {
                    answered.insert(stream);
                }
                3 if payload.len() == 4 => {
                    let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
                    if code == 7 {
                        refused.insert(stream); // REFUSED_STREAM
                    }
                }
                7 => goaway = true,
                _ => {}
            }
        }
        if answered.len() + refused.len() >= STREAMS as usize {
            break;
        }
    }
    let limit = tg.config.edge.h2_max_concurrent_streams as usize;
    eprintln!(
        "DEBUG answered={} refused={} goaway={goaway}",
        answered.len(),
        refused.len()
    );
    assert!(
        refused.len() + usize::from(goaway) > 0,
        "{STREAMS} concurrent streams over a limit of {limit}: none refused, no GOAWAY; answered {}",
        answered.len()
    );
    assert!(
        answered.iter().all(|s| !refused.contains(s)),
        "a stream was both answered and refused"
    );
    assert!(
        answered.len() <= limit,
        "{} streams answered on one connection, over the limit of {limit}",
        answered.len()
    );
    assert!(
        goaway || answered.len() + refused.len() == STREAMS as usize,
        "every stream is either answered or refused: answered {}, refused {}",
        answered.len(),
        refused.len()
    );

    // And the server is still healthy afterwards.
    let after = timeout(
        Duration::from_secs(3),
        get(addr, &format!("/vod/a/after.ts?token={tok}"), &[]),
    )
    .await
    .expect("served after the flood");
    assert_eq!(after.status, 200);
    drop(tcp);
}

// ---------------------------------------------------------------------------------------
// C6 TLS

#[tokio::test]
async fn c6_tls13_and_tls12_handshakes_succeed_and_serve() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    for (label, version, want) in [
        (
            "1.3",
            &rustls::version::TLS13,
            rustls::ProtocolVersion::TLSv1_3,
        ),
        (
            "1.2",
            &rustls::version::TLS12,
            rustls::ProtocolVersion::TLSv1_2,
        ),
    ] {
        let c = tls_connector(&tg.ca, &[version], &[b"http/1.1"]);
        let tls = tls_connect(tg.tls(), &c, "localhost")
            .await
            .unwrap_or_else(|e| panic!("TLS {label} handshake: {e}"));
        assert_eq!(
            tls.get_ref().1.protocol_version(),
            Some(want),
            "TLS {label}"
        );
        let (status, body) = h1_get_over(tls, &format!("/vod/a/tls{label}.ts?token={tok}")).await;
        assert_eq!(status, 200, "TLS {label}");
        assert_eq!(&body[..], format!("origin:/vod/a/tls{label}.ts").as_bytes());
    }
}

#[tokio::test]
async fn c6_alpn_h2_and_http11_alone_and_h2_preferred_when_both() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let all = [&rustls::version::TLS13, &rustls::version::TLS12];
    for (offer, want) in [
        (vec![&b"h2"[..]], Some(&b"h2"[..])),
        (vec![&b"http/1.1"[..]], Some(&b"http/1.1"[..])),
        (vec![&b"http/1.1"[..], &b"h2"[..]], Some(&b"h2"[..])),
        (vec![&b"h2"[..], &b"http/1.1"[..]], Some(&b"h2"[..])),
        (vec![], None),
    ] {
        for v in all {
            let c = tls_connector(&tg.ca, &[v], &offer);
            let tls = tls_connect(tg.tls(), &c, "localhost")
                .await
                .unwrap_or_else(|e| panic!("handshake offering {offer:?} on {v:?}: {e}"));
            assert_eq!(
                tls.get_ref().1.alpn_protocol(),
                want,
                "offered {offer:?} with {v:?}"
            );
        }
    }
    // An ALPN the gate does not speak is refused (RFC 7301 no_application_protocol).
    let c = tls_connector(&tg.ca, &all, &[b"spdy/3"]);
    assert!(
        tls_connect(tg.tls(), &c, "localhost").await.is_err(),
        "offering only an unknown ALPN protocol must fail the handshake"
    );
    // http/1.1 over TLS serves; h2 is covered by the smoke test.
    let tok = tg.token_for("a");
    let c = tls_connector(&tg.ca, &all, &[b"http/1.1"]);
    let tls = tls_connect(tg.tls(), &c, "localhost")
        .await
        .expect("handshake");
    let (status, _) = h1_get_over(tls, &format!("/vod/a/x.ts?token={tok}")).await;
    assert_eq!(status, 200);
}

/// A ClientHello as raw bytes: `version` in both the record and the hello, no
/// `supported_versions` extension (so the version is exactly `version`).
fn raw_client_hello(version: [u8; 2], sni: &str) -> Vec<u8> {
    let mut ext = Vec::new();
    // server_name
    let name = sni.as_bytes();
    let mut sn = Vec::new();
    sn.extend_from_slice(&u16::try_from(name.len() + 3).expect("len").to_be_bytes());
    sn.push(0);
    sn.extend_from_slice(&u16::try_from(name.len()).expect("len").to_be_bytes());
    sn.extend_from_slice(name);
    ext.extend_from_slice(&[0x00, 0x00]);
    ext.extend_from_slice(&u16::try_from(sn.len()).expect("len").to_be_bytes());
    ext.extend(sn);
    // supported_groups: x25519, secp256r1, secp384r1
    ext.extend_from_slice(&[
        0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18,
    ]);
    // ec_point_formats: uncompressed
    ext.extend_from_slice(&[0x00, 0x0b, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256, ed25519
    ext.extend_from_slice(&[
        0x00, 0x0d, 0x00, 0x0a, 0x00, 0x08, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x08, 0x07,
    ]);
    // extended_master_secret, renegotiation_info
    ext.extend_from_slice(&[0x00, 0x17, 0x00, 0x00, 0xff, 0x01, 0x00, 0x01, 0x00]);

    let suites: [u16; 10] = [
        0xc02b, 0xc02c, 0xcca9, 0xc02f, 0xc030, 0xcca8, 0xc009, 0xc013, 0x002f, 0x0035,
    ];
    let mut hello = Vec::new();
    hello.extend_from_slice(&version);
    hello.extend_from_slice(&[0x5a; 32]); // random
    hello.push(0); // session id
    hello.extend_from_slice(&u16::try_from(suites.len() * 2).expect("len").to_be_bytes());
    for s in suites {
        hello.extend_from_slice(&s.to_be_bytes());
    }
    hello.extend_from_slice(&[0x01, 0x00]); // compression: null
    hello.extend_from_slice(&u16::try_from(ext.len()).expect("len").to_be_bytes());
    hello.extend(ext);

    let mut hs = vec![0x01];
    hs.extend_from_slice(&u32::try_from(hello.len()).expect("len").to_be_bytes()[1..]);
    hs.extend(hello);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&u16::try_from(hs.len()).expect("len").to_be_bytes());
    rec.extend(hs);
    rec
}

#[tokio::test]
async fn c6_tls10_and_tls11_client_hellos_are_refused_while_the_same_hello_at_12_is_accepted() {
    // rustls cannot offer anything below TLS 1.2, so the hellos are written by hand. The
    // 1.2 hello is the positive control: same bytes, only the version differs.
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    for (label, version, must_accept) in [
        ("TLS 1.2", [0x03, 0x03], true),
        ("TLS 1.1", [0x03, 0x02], false),
        ("TLS 1.0", [0x03, 0x01], false),
    ] {
        let reply = send_raw(
            tg.tls(),
            &raw_client_hello(version, "localhost"),
            Duration::from_secs(2),
        )
        .await;
        let b = &reply.bytes;
        let server_hello = b.len() >= 11 && b[0] == 0x16 && b[5] == 0x02;
        if must_accept {
            assert!(server_hello, "{label}: want a ServerHello, got {b:02x?}");
            assert_eq!(
                &b[9..11],
                &[0x03, 0x03],
                "{label}: server picked {:02x?}",
                &b[9..11]
            );
        } else {
            assert!(
                !server_hello,
                "{label}: the server answered with a ServerHello: {b:02x?}"
            );
            // Either a fatal protocol_version (70) alert or an immediate close.
            if !b.is_empty() {
                assert_eq!(
                    b[0], 0x15,
                    "{label}: expected an alert record, got {b:02x?}"
                );
                assert!(b.len() >= 7, "{label}: short alert {b:02x?}");
                assert_eq!(b[5], 2, "{label}: alert must be fatal: {b:02x?}");
                assert_eq!(b[6], 70, "{label}: want protocol_version, got {b:02x?}");
            }
            assert!(reply.closed, "{label}: connection left open after refusal");
        }
    }
}

#[tokio::test]
async fn c6_sni_localhost_and_ip_verify_against_the_test_ca_and_a_wrong_name_does_not() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let all = [&rustls::version::TLS13, &rustls::version::TLS12];
    let c = tls_connector(&tg.ca, &all, &[b"http/1.1"]);
    for name in ["localhost", "LOCALHOST", "127.0.0.1"] {
        let tls = tls_connect(tg.tls(), &c, name)
            .await
            .unwrap_or_else(|e| panic!("server name {name}: {e}"));
        let certs = tls
            .get_ref()
            .1
            .peer_certificates()
            .expect("server sent certificates");
        assert!(!certs.is_empty());
    }
    let err = tls_connect(tg.tls(), &c, "not-this-host.example")
        .await
        .expect_err("a name the certificate does not cover must fail verification");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "failure is the certificate check: {err}"
    );
    // A client trusting some other CA refuses the gate.
    let other = tempfile::tempdir().expect("tempdir");
    let (_, other_ca) = make_ca_and_leaf(other.path());
    let c = tls_connector(&other_ca, &all, &[b"http/1.1"]);
    assert!(tls_connect(tg.tls(), &c, "localhost").await.is_err());
}

// ---------------------------------------------------------------------------------------
// C6 HTTPS origins are verified

/// A private CA and a leaf for localhost/127.0.0.1; returns (server config, CA PEM path).
fn make_ca_and_leaf(dir: &Path) -> (Arc<rustls::ServerConfig>, PathBuf) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test origin CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("self-signed CA");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("leaf params");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf = params.signed_by(&key, &ca).expect("sign leaf");
    let ca_path = dir.join("origin-ca.pem");
    std::fs::write(&ca_path, ca.pem()).expect("write origin CA");
    let chain = vec![leaf.der().clone(), ca.der().clone()];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let cfg = rustls::ServerConfig::builder_with_provider(tollgate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("origin server config");
    (Arc::new(cfg), ca_path)
}

/// What an HTTPS origin saw of one request.
#[derive(Debug, Clone)]
struct TlsSeen {
    version: http::Version,
    /// The URI's authority (HTTP/2 `:authority`; none for an HTTP/1.1 origin-form target).
    authority: Option<String>,
    /// Every `Host` header.
    hosts: Vec<String>,
    forwarded_host: Option<String>,
}

type TlsLog = Arc<std::sync::Mutex<Vec<TlsSeen>>>;

/// An HTTPS origin with its own private CA; answers 200 `tls-origin:<path>`. With `h2`
/// it offers ALPN `h2` before `http/1.1` and speaks HTTP/2 to a client that picks it.
async fn tls_origin(dir: &Path, h2: bool) -> (SocketAddr, PathBuf, TlsLog) {
    let (cfg, ca) = make_ca_and_leaf(dir);
    let mut cfg = (*cfg).clone();
    if h2 {
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = TlsLog::default();
    let s2 = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let served = s2.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) = timeout(Duration::from_secs(5), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let speaks_h2 = tls.get_ref().1.alpn_protocol() == Some(&b"h2"[..]);
                let svc = service_fn(move |req: Request<Incoming>| {
                    let text =
                        |v: &http::HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
                    served.lock().expect("lock").push(TlsSeen {
                        version: req.version(),
                        authority: req.uri().authority().map(|a| a.to_string()),
                        hosts: req
                            .headers()
                            .get_all(http::header::HOST)
                            .iter()
                            .map(text)
                            .collect(),
                        forwarded_host: req.headers().get("x-forwarded-host").map(text),
                    });
                    let body = format!("tls-origin:{}", req.uri().path());
                    async move {
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(
                            body,
                        ))))
                    }
                });
                let io = TokioIo::new(tls);
                let _ = if speaks_h2 {
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(io, svc)
                        .await
                } else {
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await
                };
            });
        }
    });
    (addr, ca, served)
}

/// `[[origins]]` "tlsorigin" at `upstream`, trusted through `ca`, behind route "vod".
fn tls_origin_setup(upstream: &str, ca: &Path) -> Setup {
    let extra = format!(
        r#"
[[origins]]
name = "tlsorigin"
upstreams = ["{upstream}"]
connect_timeout = "500ms"
read_timeout = "1s"
ca_file = {ca:?}

[[routes]]
name = "vod"
path = "/vod/{{rid}}/"
type = "vod"
origin = "tlsorigin"

[[resources]]
id = "a"
type = "vod"
org = "org1"
project = "p1"
"#,
        ca = ca.to_str().expect("utf-8 path"),
    );
    Setup {
        origins: vec![],
        extra,
        edge: String::new(),
        token: String::new(),
        admin: String::new(),
        limits: common::NO_LIMITS.into(),
    }
}

#[tokio::test]
async fn c6_https_origin_with_an_untrusted_certificate_gets_502_never_200() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (oaddr, _ca, served) = tls_origin(dir.path(), false).await;
    let tg = start(Setup::standard(vec![format!(
        "https://127.0.0.1:{}",
        oaddr.port()
    )]))
    .await;
    let tok = tg.token_for("a");
    for _ in 0..3 {
        let got = get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]).await;
        assert_eq!(got.status, 502, "{got:?}");
        assert!(got.reason().starts_with("origin_"), "{got:?}");
        assert!(!got.body.starts_with(b"tls-origin:"));
    }
    assert_eq!(
        served.lock().expect("lock").len(),
        0,
        "no request may reach an origin whose certificate failed verification"
    );
}

#[tokio::test]
async fn c6_https_origin_trusted_through_ca_file_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (oaddr, ca, served) = tls_origin(dir.path(), false).await;
    for host in ["127.0.0.1", "localhost"] {
        let upstream = format!("https://{host}:{}", oaddr.port());
        let tg = start(tls_origin_setup(&upstream, &ca)).await;
        let tok = tg.token_for("a");
        let before = served.lock().expect("lock").len();
        let got = get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]).await;
        assert_eq!(got.status, 200, "upstream {upstream}: {got:?}");
        assert_eq!(
            &got.body[..],
            b"tls-origin:/vod/a/x.ts",
            "upstream {upstream}"
        );
        assert_eq!(served.lock().expect("lock").len(), before + 1);
    }
}

/// Every upstream gets HTTP/1.1, also an HTTPS origin that offers h2 by ALPN (like an
/// nginx origin with `listen 443 ssl http2`), and is addressed by its own authority as the
/// one `Host`. The viewer's host travels as `X-Forwarded-Host`, from `Host` or, for an
/// HTTP/2 viewer, from `:authority`.
#[tokio::test]
async fn https_origin_offering_h2_gets_http11_and_its_authority_as_the_one_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    for offers_h2 in [false, true] {
        let (oaddr, ca, served) = tls_origin(dir.path(), offers_h2).await;
        let authority = format!("localhost:{}", oaddr.port());
        let tg = start(tls_origin_setup(&format!("https://{authority}"), &ca)).await;
        let tok = tg.token_for("a");
        let target = format!("/vod/a/x.ts?token={tok}");

        let got = get(tg.plain(), &target, &[]).await;
        assert_eq!(got.status, 200, "origin offers h2: {offers_h2}: {got:?}");
        let viewer_h2 = get_h2_tls(&tg, &target).await;
        assert_eq!(
            viewer_h2.status, 200,
            "origin offers h2: {offers_h2}: {viewer_h2:?}"
        );

        let seen = served.lock().expect("lock").clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        for s in &seen {
            assert_eq!(s.version, http::Version::HTTP_11, "{s:?}");
            assert_eq!(s.hosts, vec![authority.clone()], "{s:?}");
            assert_eq!(s.authority, None, "an origin-form target: {s:?}");
        }
        let viewer_host = tg.plain().to_string();
        assert_eq!(
            seen[0].forwarded_host.as_deref(),
            Some(viewer_host.as_str())
        );
        assert_eq!(seen[1].forwarded_host.as_deref(), Some("localhost"));
    }
}

/// Two `Host` lines are refused before anything reaches the origin (RFC 9112 §3.2).
#[tokio::test]
async fn c4_two_host_headers_get_400_and_never_reach_the_origin() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    let target = format!("/vod/a/x.ts?token={tok}");
    let got = get(tg.plain(), &target, &[("host", "cdn.example")]).await;
    assert_eq!(got.status, 400, "{got:?}");
    assert_eq!(got.reason(), "bad_header", "{got:?}");
    assert_eq!(origin.count(), 0);
    let got = get(tg.plain(), &target, &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(origin.count(), 1);
}

/// The plain listener tells h2c from HTTP/1 by peeking at the first bytes: an HTTP/1
/// request that starts like the HTTP/2 preface (`P`…) and arrives a byte at a time is
/// still HTTP/1, and a prior-knowledge HTTP/2 client is still HTTP/2.
#[tokio::test]
async fn plain_listener_tells_h2c_from_an_http1_request_that_starts_with_p() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");

    let mut tcp = TcpStream::connect(tg.plain()).await.expect("connect");
    tcp.write_all(b"P").await.expect("first byte");
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(b"R").await.expect("second byte");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let rest = format!(
        "OPFIND /vod/a/seg.ts?token={tok} HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(rest.as_bytes()).await.expect("rest");
    let mut answer = Vec::new();
    timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer))
        .await
        .expect("an answer within 5 s")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    // PROPFIND is no method the edge serves: an HTTP/1.1 405 proves it was parsed as HTTP/1.
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");

    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(tg.plain()).await.expect("connect"));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://gate/vod/a/seg.ts?token={tok}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("h2c answer");
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
}

/// One HTTP/2 (h2c, prior knowledge) GET on the plain listener: `uri` becomes
/// `:scheme`/`:authority`/`:path`, `headers` are sent as they are.
async fn h2c_get(tg: &TestGate, uri: &str, headers: &[(&str, &str)]) -> Result<u16, String> {
    let io = TokioIo::new(TcpStream::connect(tg.plain()).await.expect("connect"));
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let mut req = http::Request::get(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let reason = resp
        .headers()
        .get("x-tollgate-reason")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    match resp.status().as_u16() {
        400 if reason.as_deref() != Some("bad_header") => Err(format!("400 {reason:?}")),
        s => Ok(s),
    }
}

/// C8: the request names one host. `Host`, HTTP/2 `:authority` and an absolute-form
/// target must agree and carry no userinfo; HTTP/1.1 must send `Host` (RFC 9110 §7.2,
/// RFC 9112 §3.2, RFC 9113 §8.3.1). Anything else is 400 `bad_header` and reaches no
/// origin; the origin's `X-Forwarded-Host` is the agreed host.
#[tokio::test]
async fn c8_host_authority_and_absolute_form_must_agree_or_400() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    let path = format!("/vod/a/x.ts?token={tok}");
    let addr = tg.plain();

    // HTTP/1.1 without Host; absolute-form naming another host than Host; userinfo.
    for req in [
        format!("GET {path} HTTP/1.1\r\nConnection: close\r\n\r\n"),
        format!(
            "GET http://other.example{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        ),
        format!("GET http://u@{addr}{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        format!("GET {path} HTTP/1.1\r\nHost: u@{addr}\r\nConnection: close\r\n\r\n"),
    ] {
        let reply = send_raw(addr, req.as_bytes(), Duration::from_secs(5)).await;
        let shown = req.replace(&tok, "<tok>");
        assert_eq!(reply.status(), Some(400), "{shown}: {}", reply.text());
        assert!(
            reply.text().contains("x-tollgate-reason: bad_header"),
            "{shown}"
        );
    }
    // HTTP/2 whose :authority differs from Host, or carries userinfo.
    let got = h2c_get(
        &tg,
        &format!("http://gate{path}"),
        &[("host", "other.example")],
    )
    .await;
    assert_eq!(got, Ok(400), ":authority gate, Host other.example");
    let got = h2c_get(&tg, &format!("http://user@gate{path}"), &[]).await;
    assert_eq!(got, Ok(400), "userinfo in :authority");
    assert_eq!(origin.count(), 0, "a refused request reached the origin");

    // Agreeing forms are served, and the origin is told the one host.
    let same =
        format!("GET http://{addr}{path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let reply = send_raw(addr, same.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(
        reply.status(),
        Some(200),
        "{}",
        reply.text().replace(&tok, "<tok>")
    );
    let got = h2c_get(&tg, &format!("http://Gate{path}"), &[("host", "gate")]).await;
    assert_eq!(got, Ok(200), "the same host in another case agrees");
    let got = h2c_get(&tg, &format!("http://gate{path}"), &[]).await;
    assert_eq!(got, Ok(200));
    let http10 = format!("GET {path} HTTP/1.0\r\n\r\n");
    let reply = send_raw(addr, http10.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(reply.status(), Some(200), "HTTP/1.0 has no Host to require");
    let hosts: Vec<Option<String>> = origin
        .requests()
        .iter()
        .map(|s| {
            s.headers
                .get("x-forwarded-host")
                .map(|v| v.to_str().expect("ascii").to_owned())
        })
        .collect();
    let want = [
        Some(addr.to_string()),
        Some("gate".into()),
        Some("gate".into()),
        None,
    ];
    assert_eq!(hosts, want);
}
