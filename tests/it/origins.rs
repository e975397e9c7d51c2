//! Threats D1–D7 (docs/threat-model.md) and the proxy headers: what the client sees when
//! an origin misbehaves, and which headers cross the gate.
//!
//! The harness gives every origin connect_timeout 500 ms and read_timeout 1 s. Origins
//! that must misbehave at the byte level are raw TCP listeners written here.

use crate::common;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::timeout;
use tollgate::resource::ResourceType;
use tollgate::token::MintRequest;

// ---------------------------------------------------------------------------------------
// helpers

/// A raw TCP origin: `serve` gets every accepted connection. Returns its address and a
/// counter of accepted connections.
async fn raw_origin<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let a2 = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            a2.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(tcp));
        }
    });
    (addr, accepted)
}

/// Read a request head (up to the blank line), bounded in size and time.
async fn read_head(tcp: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while head.len() < 65536 {
        let n = match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return None,
        };
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(String::from_utf8_lossy(&head).into_owned());
        }
    }
    None
}

/// Send `bytes` on a new connection to `addr` and read until close or `wait`.
/// Returns (bytes, closed by the server).
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], wait: Duration) -> (Vec<u8>, bool) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let deadline = tokio::time::Instant::now() + wait;
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Split a raw HTTP/1.1 response into (status, lowercased header lines, body bytes).
fn split_response(raw: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no complete response head in {:?}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[end + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A port with nothing listening on it.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// A listener whose accept queue is full, so that a new connect to it hangs (its SYNs
/// are dropped). Linux: backlog 0 admits one queued connection; the rest are dropped.
/// Returns the address and what must stay alive (the listener and the fillers).
async fn hanging_connect_target() -> (SocketAddr, (TcpListener, Vec<TcpStream>)) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let listener = socket.listen(0).expect("listen with backlog 0");
    let addr = listener.local_addr().expect("addr");
    let mut fillers = Vec::new();
    // Fill the accept queue: bounded attempts, each bounded in time.
    for _ in 0..8 {
        match timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    // Precondition: a fresh connect now hangs.
    let probe = timeout(Duration::from_millis(300), TcpStream::connect(addr)).await;
    assert!(
        probe.is_err(),
        "precondition: a connect to a listener with a full accept queue should hang, got {probe:?}"
    );
    (addr, (listener, fillers))
}

fn assert_error_shape(got: &Got, status: u16, reason: &str) {
    assert_eq!(got.status, status, "{got:?}");
    assert_eq!(got.reason(), reason, "{got:?}");
    assert_eq!(
        got.headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("private, no-store"),
        "{got:?}"
    );
}

// ---------------------------------------------------------------------------------------
// D1 refused

#[tokio::test]
async fn d1_origin_refusing_connections_gives_502_fast() {
    let port = dead_port();
    let tg = start(Setup::standard(vec![format!("http://127.0.0.1:{port}")])).await;
    let tok = tg.token_for("a");
    let t0 = Instant::now();
    let got = get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]).await;
    let took = t0.elapsed();
    assert_error_shape(&got, 502, "origin_refused");
    assert!(took < Duration::from_secs(1), "502 took {took:?}");
}

// ---------------------------------------------------------------------------------------
// D2 connect hangs

#[tokio::test]
async fn d2_origin_connect_hanging_gives_504_after_the_connect_timeout() {
    let (addr, _keep) = hanging_connect_target().await;
    let tg = start(Setup::standard(vec![format!("http://{addr}")])).await;
    let tok = tg.token_for("a");
    let t0 = Instant::now();
    let got = timeout(
        Duration::from_secs(5),
        get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]),
    )
    .await
    .expect("answered within 5 s");
    let took = t0.elapsed();
    assert_error_shape(&got, 504, "origin_timeout");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "504 after {took:?}, want about the 500 ms connect timeout"
    );
}

// ---------------------------------------------------------------------------------------
// D3 no response headers

#[tokio::test]
async fn d3_origin_that_never_answers_gives_504_after_the_read_timeout() {
    let (addr, accepted) = raw_origin(|mut tcp| async move {
        let _ = read_head(&mut tcp).await;
        // Hold the connection open, say nothing.
        tokio::time::sleep(Duration::from_secs(10)).await;
        drop(tcp);
    })
    .await;
    let tg = start(Setup::standard(vec![format!("http://{addr}")])).await;
    let tok = tg.token_for("a");
    let t0 = Instant::now();
    let got = timeout(
        Duration::from_secs(5),
        get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]),
    )
    .await
    .expect("answered within 5 s");
    let took = t0.elapsed();
    assert_error_shape(&got, 504, "origin_timeout");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "504 after {took:?}, want about the 1 s read timeout"
    );
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "connected once, not retried"
    );
}

// ---------------------------------------------------------------------------------------
// D4 reset mid-body

/// An origin that announces `Content-Length: 100000`, sends 1000 bytes and then closes
/// (`reset`: with an RST).
async fn short_body_origin(reset: bool) -> SocketAddr {
    raw_origin(move |mut tcp| async move {
        if read_head(&mut tcp).await.is_none() {
            return;
        }
        let mut resp =
            b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: 100000\r\n\r\n"
                .to_vec();
        resp.extend_from_slice(&[b'x'; 1000]);
        let _ = tcp.write_all(&resp).await;
        let _ = tcp.flush().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        if reset {
            let _ = tcp.set_zero_linger();
        }
        drop(tcp);
    })
    .await
    .0
}

/// A chunked origin that sends two chunks and closes without the last-chunk.
async fn unterminated_chunked_origin() -> SocketAddr {
    raw_origin(|mut tcp| async move {
        if read_head(&mut tcp).await.is_none() {
            return;
        }
        let resp = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n"
            .to_vec();
        let mut resp = resp;
        resp.extend_from_slice(&[b'y'; 1024]);
        resp.extend_from_slice(b"\r\n10\r\n0123456789abcdef\r\n");
        let _ = tcp.write_all(&resp).await;
        let _ = tcp.flush().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(tcp);
    })
    .await
    .0
}

/// The client must not see a clean, complete response.
fn assert_not_a_clean_end(label: &str, raw: &[u8], closed: bool) {
    let (status, headers, body) = split_response(raw);
    assert_eq!(status, 200, "{label}: headers were already sent");
    assert!(
        closed,
        "{label}: the client connection must be aborted, it is still open"
    );
    if let Some(cl) = header(&headers, "content-length") {
        let cl: usize = cl.parse().expect("content-length");
        assert!(
            body.len() < cl,
            "{label}: received the full {cl} bytes of a body the origin cut at 1000"
        );
    } else {
        assert_eq!(
            header(&headers, "transfer-encoding"),
            Some("chunked"),
            "{label}: a response with neither length nor chunking ends cleanly at close: {headers:?}"
        );
        assert!(
            !body.ends_with(b"0\r\n\r\n"),
            "{label}: the chunked body was terminated cleanly (last-chunk sent)"
        );
    }
}

#[tokio::test]
async fn d4_origin_closing_mid_body_aborts_the_client_connection() {
    for (label, addr) in [
        ("close after 1000 of 100000", short_body_origin(false).await),
        ("reset after 1000 of 100000", short_body_origin(true).await),
        (
            "chunked without last-chunk",
            unterminated_chunked_origin().await,
        ),
    ] {
        let tg = start(Setup::standard(vec![format!("http://{addr}")])).await;
        let tok = tg.token_for("a");
        let req = format!("GET /vod/a/x.ts?token={tok} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (raw, closed) = raw_exchange(tg.plain(), req.as_bytes(), Duration::from_secs(5)).await;
        assert_not_a_clean_end(label, &raw, closed);

        // The same through an HTTP client: the body read must fail.
        let tcp = TcpStream::connect(tg.plain()).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let req = Request::builder()
            .uri(format!("/vod/a/x.ts?token={tok}"))
            .header("host", "x")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        let resp = timeout(Duration::from_secs(5), sender.send_request(req))
            .await
            .expect("headers within 5 s")
            .expect("response");
        assert_eq!(resp.status(), 200, "{label}");
        let body = timeout(Duration::from_secs(5), resp.into_body().collect())
            .await
            .expect("the body ends (with an error) within 5 s");
        assert!(
            body.is_err(),
            "{label}: the client read a clean body of {} bytes",
            body.map(|c| c.to_bytes().len()).unwrap_or(0)
        );
    }
}

// ---------------------------------------------------------------------------------------
// D5 client aborts mid-segment

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn d5_client_abort_mid_body_closes_the_upstream_connection() {
    // The origin streams a 1 GiB body and records when its writes start failing.
    let ended: Arc<Mutex<Option<Instant>>> = Arc::default();
    let sent = Arc::new(AtomicUsize::new(0));
    let (e2, s2) = (ended.clone(), sent.clone());
    let (addr, _) = raw_origin(move |mut tcp| {
        let ended = e2.clone();
        let sent = s2.clone();
        async move {
            if read_head(&mut tcp).await.is_none() {
                return;
            }
            let head = b"HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: 1073741824\r\n\r\n";
            if tcp.write_all(head).await.is_err() {
                return;
            }
            let chunk = vec![b'z'; 64 * 1024];
            // Bounded: at most 16384 chunks (1 GiB) and 30 s.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            for _ in 0..16384 {
                match tokio::time::timeout_at(deadline, tcp.write_all(&chunk)).await {
                    Ok(Ok(())) => {
                        sent.fetch_add(chunk.len(), Ordering::SeqCst);
                    }
                    Ok(Err(_)) => {
                        *ended.lock().expect("lock") = Some(Instant::now());
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    })
    .await;
    let tg = start(Setup::standard(vec![format!("http://{addr}")])).await;
    let tok = tg.token_for("a");

    let mut tcp = TcpStream::connect(tg.plain()).await.expect("connect");
    let req = format!("GET /vod/a/big.ts?token={tok} HTTP/1.1\r\nHost: x\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while got < 512 * 1024 {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got += n,
            other => panic!("streaming stopped early after {got} bytes: {other:?}"),
        }
    }
    let aborted_at = Instant::now();
    drop(tcp);

    // Within a bound, the origin's writes fail: the gate closed the upstream connection.
    let mut waited = 0;
    while ended.lock().expect("lock").is_none() && waited < 50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    let ended_at = ended.lock().expect("lock").unwrap_or_else(|| {
        panic!(
            "5 s after the client went away the origin is still being read ({} bytes sent)",
            sent.load(Ordering::SeqCst)
        )
    });
    assert!(
        ended_at.saturating_duration_since(aborted_at) < Duration::from_secs(5),
        "upstream closed {:?} after the client abort",
        ended_at.saturating_duration_since(aborted_at)
    );
    assert!(
        sent.load(Ordering::SeqCst) < 256 * 1024 * 1024,
        "the gate kept pulling the body long after the client left"
    );

    // And the gate serves on.
    let ok_origin = TestOrigin::start().await;
    let tg2 = start(Setup::standard(vec![ok_origin.url()])).await;
    let got = get(
        tg2.plain(),
        &format!("/vod/a/x.ts?token={}", tg2.token_for("a")),
        &[],
    )
    .await;
    assert_eq!(got.status, 200);
}

// ---------------------------------------------------------------------------------------
// D6 failover

#[tokio::test]
async fn d6_first_origin_refusing_fails_over_to_the_second_for_get_and_head() {
    let alive = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![
        format!("http://127.0.0.1:{}", dead_port()),
        alive.url(),
    ]))
    .await;
    let tok = tg.token_for("a");

    let t0 = Instant::now();
    let got = get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body[..], b"origin:/vod/a/x.ts");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "failover took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        alive.count(),
        1,
        "the alive origin saw the GET exactly once"
    );

    let got = request(
        tg.plain(),
        Method::HEAD,
        &format!("/vod/a/y.ts?token={tok}"),
        &[],
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    assert!(got.body.is_empty());
    let seen = alive.requests();
    assert_eq!(
        seen.len(),
        2,
        "the HEAD reached the alive origin exactly once"
    );
    assert_eq!(seen[1].method, Method::HEAD);
    assert_eq!(seen[1].target, "/vod/a/y.ts");
}

#[tokio::test]
async fn d6_first_origin_with_a_hanging_connect_fails_over_after_the_connect_timeout() {
    let (hang, _keep) = hanging_connect_target().await;
    let alive = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![format!("http://{hang}"), alive.url()])).await;
    let tok = tg.token_for("a");
    let t0 = Instant::now();
    let got = timeout(
        Duration::from_secs(5),
        get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]),
    )
    .await
    .expect("answered within 5 s");
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(alive.count(), 1);
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn d6_every_origin_down_is_one_bounded_502() {
    let tg = start(Setup::standard(vec![
        format!("http://127.0.0.1:{}", dead_port()),
        format!("http://127.0.0.1:{}", dead_port()),
        format!("http://127.0.0.1:{}", dead_port()),
    ]))
    .await;
    let tok = tg.token_for("a");
    let t0 = Instant::now();
    let got = get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]).await;
    assert_error_shape(&got, 502, "origin_refused");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "took {:?}",
        t0.elapsed()
    );
}

// ---------------------------------------------------------------------------------------
// D7 origin errors pass through

#[tokio::test]
async fn d7_origin_404_and_503_pass_through_unchanged() {
    let origin = TestOrigin::start_with(Arc::new(|s: &Seen| {
        let (status, body) = if s.target.contains("missing") {
            (404, "no such segment here")
        } else {
            (503, "origin overloaded, try later")
        };
        Response::builder()
            .status(status)
            .header("x-origin-custom", "kept-as-is")
            .header("retry-after", "7")
            .header("content-type", "text/x-origin")
            .body(Full::new(Bytes::from(body)))
            .expect("response")
    }))
    .await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    for (path, status, body) in [
        ("/vod/a/missing.ts", 404, "no such segment here"),
        ("/vod/a/busy.ts", 503, "origin overloaded, try later"),
    ] {
        let got = get(tg.plain(), &format!("{path}?token={tok}"), &[]).await;
        assert_eq!(got.status, status, "{got:?}");
        assert_eq!(&got.body[..], body.as_bytes(), "{path}");
        assert_eq!(got.headers["x-origin-custom"], "kept-as-is", "{path}");
        assert_eq!(got.headers["retry-after"], "7", "{path}");
        assert_eq!(got.headers["content-type"], "text/x-origin", "{path}");
        assert!(
            got.headers.get("x-tollgate-reason").is_none(),
            "{path}: an origin answer is not a gate refusal: {got:?}"
        );
    }
    assert_eq!(origin.count(), 2, "no retry of an origin's own 5xx");
}

// ---------------------------------------------------------------------------------------
// hop-by-hop and X-Forwarded-For

#[tokio::test]
async fn hop_by_hop_response_headers_do_not_reach_the_client() {
    let (addr, _) = raw_origin(|mut tcp| async move {
        if read_head(&mut tcp).await.is_none() {
            return;
        }
        let resp = b"HTTP/1.1 200 OK\r\n\
Connection: x-foo, close\r\n\
X-Foo: 1\r\n\
Keep-Alive: timeout=5, max=100\r\n\
Proxy-Connection: keep-alive\r\n\
Proxy-Authenticate: Basic\r\n\
Trailer: x-trail\r\n\
X-Keep: yes\r\n\
Content-Type: video/mp2t\r\n\
Transfer-Encoding: chunked\r\n\
\r\n\
5\r\nhello\r\n6\r\n world\r\n0\r\nx-trail: t\r\n\r\n";
        let _ = tcp.write_all(resp).await;
        let _ = tcp.flush().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    let tg = start(Setup::standard(vec![format!("http://{addr}")])).await;
    let tok = tg.token_for("a");

    let req =
        format!("GET /vod/a/x.ts?token={tok} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let (raw, _) = raw_exchange(tg.plain(), req.as_bytes(), Duration::from_secs(5)).await;
    let (status, headers, _) = split_response(&raw);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&raw));
    for name in ["x-foo", "keep-alive", "proxy-connection", "trailer"] {
        assert!(
            header(&headers, name).is_none(),
            "{name} reached the client: {headers:?}"
        );
    }
    if let Some(c) = header(&headers, "connection") {
        assert!(
            !c.to_ascii_lowercase().contains("x-foo"),
            "the origin's Connection header reached the client: {c}"
        );
    }
    if let Some(te) = header(&headers, "transfer-encoding") {
        assert_eq!(te, "chunked", "only the gate's own framing: {headers:?}");
    }
    assert_eq!(header(&headers, "x-keep"), Some("yes"));

    let got = get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        &got.body[..],
        b"hello world",
        "the body survives re-framing"
    );
}

#[tokio::test]
async fn hop_by_hop_request_headers_do_not_reach_the_origin() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    let got = get(
        tg.plain(),
        &format!("/vod/a/x.ts?token={tok}"),
        &[
            ("connection", "x-bar"),
            ("x-bar", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    let h = &seen[0].headers;
    for name in ["x-bar", "keep-alive", "te", "proxy-connection"] {
        assert!(h.get(name).is_none(), "{name} reached the origin: {h:?}");
    }
    if let Some(c) = h.get("connection") {
        assert!(
            !c.to_str().unwrap_or("").contains("x-bar"),
            "client Connection reached the origin: {c:?}"
        );
    }
    assert_eq!(h["x-end-to-end"], "kept");
}

fn ip_bound(tg: &TestGate, ip: &str) -> String {
    let req = MintRequest {
        ip: Some(ip.into()),
        ..resource("a", ResourceType::Vod)
    };
    tg.mint_with("ed", &req, now())
}

#[tokio::test]
async fn xff_from_an_untrusted_peer_is_replaced_and_not_believed() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    let got = get(
        tg.plain(),
        &format!("/vod/a/x.ts?token={tok}"),
        &[("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    assert_eq!(got.status, 200);
    let seen = origin.requests();
    let xff: Vec<_> = seen[0].headers.get_all("x-forwarded-for").iter().collect();
    assert_eq!(xff, vec!["127.0.0.1"], "replaced, not appended");

    // A token bound to the spoofed address is refused for this peer.
    let bound = ip_bound(&tg, "203.0.113.7");
    let got = get(
        tg.plain(),
        &format!("/vod/a/x.ts?token={bound}"),
        &[("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    assert_error_shape(&got, 403, "ip");
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn xff_from_the_trusted_proxy_is_appended_and_names_the_client() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let proxy: IpAddr = "127.0.0.2".parse().expect("ip");

    // The client IP comes from the trusted proxy's X-Forwarded-For.
    let bound = ip_bound(&tg, "203.0.113.7");
    let got = request_from(
        proxy,
        tg.plain(),
        Method::GET,
        &format!("/vod/a/x.ts?token={bound}"),
        &[("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    let xff: Vec<_> = seen[0]
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_string())
        .collect();
    assert_eq!(
        xff,
        vec!["203.0.113.7, 127.0.0.2"],
        "appended with the proxy"
    );

    // The proxy's own address is not the client.
    let proxy_bound = ip_bound(&tg, "127.0.0.2");
    let got = request_from(
        proxy,
        tg.plain(),
        Method::GET,
        &format!("/vod/a/x.ts?token={proxy_bound}"),
        &[("x-forwarded-for", "203.0.113.7")],
    )
    .await;
    assert_error_shape(&got, 403, "ip");

    // A spoofed left-most entry is not believed: the right-most untrusted one is the client.
    let spoof_bound = ip_bound(&tg, "198.51.100.9");
    let got = request_from(
        proxy,
        tg.plain(),
        Method::GET,
        &format!("/vod/a/x.ts?token={spoof_bound}"),
        &[("x-forwarded-for", "198.51.100.9, 203.0.113.7")],
    )
    .await;
    assert_error_shape(&got, 403, "ip");
    let got = request_from(
        proxy,
        tg.plain(),
        Method::GET,
        &format!("/vod/a/x.ts?token={bound}"),
        &[("x-forwarded-for", "198.51.100.9, 203.0.113.7")],
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(origin.count(), 2);
}
