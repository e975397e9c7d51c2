//! The shield cache through the whole gate (docs/threat-model.md, G1–G6): real
//! HTTP/1.1 connections to the edge, a real origin on loopback that counts what reaches
//! it and whose answers the test holds, streams or breaks, and a distinct token per
//! viewer.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::channel::Channel;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tollgate::resource::ResourceType;

use crate::common::{self, resource, Seen, Setup, TestGate};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An origin whose answer depends on the path:
/// - `held` anywhere in the target (or an LL-HLS `_HLS_msn`): the head waits for
///   [`ScriptedOrigin::release`];
/// - `stream`: head and a first chunk at once, the rest after the release;
/// - `reset`: head (`Content-Length: 100`) and 4 bytes, then the connection breaks;
/// - `vary`, `cookie`, `private`: `Vary: Cookie`, a `Set-Cookie` naming the request's
///   number, `Cache-Control: private`;
/// - `.m3u8`: a live LL-HLS playlist; anything else: a segment naming its target.
struct ScriptedOrigin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    release: watch::Sender<bool>,
}

const PLAYLIST: &str = "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXT-X-PART-INF:PART-TARGET=1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:4,\nseg0.ts\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"seg1.part0.ts\"\n";

impl ScriptedOrigin {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let (release, _) = watch::channel(false);
        let origin = ScriptedOrigin {
            addr,
            seen: seen.clone(),
            release,
        };
        let released = origin.release.subscribe();
        let counter = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (seen, released, counter) = (seen.clone(), released.clone(), counter.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let s = Seen {
                            method: req.method().clone(),
                            target: req.uri().to_string(),
                            headers: req.headers().clone(),
                        };
                        seen.lock().expect("lock").push(s.clone());
                        let n = counter.fetch_add(1, Ordering::SeqCst);
                        answer(s, n, released.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        origin
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    fn release(&self) {
        self.release.send_replace(true);
    }
}

async fn answer(
    s: Seen,
    n: usize,
    mut released: watch::Receiver<bool>,
) -> Result<Response<BoxBody<Bytes, BoxError>>, Infallible> {
    let t = s.target.as_str();
    if t.contains("held") || t.contains("_HLS_msn") {
        let _ = released.wait_for(|r| *r).await;
    }
    let mut resp = Response::builder().status(200);
    let body: BoxBody<Bytes, BoxError> = if t.contains("stream") || t.contains("reset") {
        let (mut tx, body) = Channel::<Bytes, BoxError>::new(4);
        let reset = t.contains("reset");
        if reset {
            resp = resp.header("content-length", "100");
        }
        tokio::spawn(async move {
            let _ = tx.send_data(Bytes::from_static(b"first")).await;
            if reset {
                tx.abort("origin reset".into());
                return;
            }
            let _ = released.wait_for(|r| *r).await;
            let _ = tx.send_data(Bytes::from_static(b"-rest")).await;
        });
        body.boxed()
    } else if t.contains(".m3u8") {
        resp = resp.header("content-type", "application/vnd.apple.mpegurl");
        full(PLAYLIST.to_string())
    } else {
        resp = resp
            .header("content-type", "video/mp2t")
            .header("etag", "\"e1\"")
            .header("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT");
        full(format!("origin:{t}"))
    };
    if t.contains("vary") {
        resp = resp.header("vary", "Cookie");
    }
    if t.contains("cookie") {
        resp = resp.header("set-cookie", format!("n={n}"));
    }
    if t.contains("private") {
        resp = resp.header("cache-control", "private, max-age=60");
    }
    Ok(resp.body(body).expect("response"))
}

fn full(s: String) -> BoxBody<Bytes, BoxError> {
    http_body_util::Full::new(Bytes::from(s))
        .map_err(|never| match never {})
        .boxed()
}

/// The standard gate with its routes cached.
async fn gate(origin: &ScriptedOrigin) -> TestGate {
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.extra += "\n[cache]\nenabled = true\n";
    common::start(setup).await
}

/// A distinct token per viewer for the live resource `la`.
fn token(gate: &TestGate, viewer: usize) -> String {
    let mut req = resource("la", ResourceType::Live);
    req.sub = Some(format!("viewer-{viewer}"));
    gate.mint_with("ed", &req, common::now())
}

/// Send a request on a new connection; Err if the connection broke before the head.
async fn try_open(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<Response<Incoming>, hyper::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = Request::builder().uri(target).header("host", "localhost");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Empty::<Bytes>::new()).expect("request");
    sender.send_request(req).await
}

/// Open a request and return its head with the body unread (a player mid-download).
async fn open(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response<Incoming> {
    try_open(addr, target, headers)
        .await
        .expect("response head")
}

/// A whole response; the body is an error if the connection ended it short.
async fn fetch(
    addr: SocketAddr,
    target: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Result<Bytes, ()>) {
    let resp = open(addr, target, headers).await;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).map_err(|_| ());
    (parts.status, parts.headers, body)
}

fn cache_count(gate: &TestGate, result: &str) -> u64 {
    gate.gate
        .metrics
        .cache
        .requests
        .with_label_values(&[result])
        .get()
}

/// Wait (bounded) until `n` requests have joined fills: the condition, not a time.
async fn until_coalesced(gate: &TestGate, n: u64) {
    for _ in 0..2000 {
        if cache_count(gate, "coalesced") >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!(
        "only {} of {n} requests joined the fill",
        cache_count(gate, "coalesced")
    );
}

const VIEWERS: usize = 50;

#[tokio::test]
async fn g1_g2_fifty_viewers_with_their_own_tokens_make_one_origin_request() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let addr = gate.plain();
    let mut viewers = Vec::new();
    for v in 0..VIEWERS {
        let target = format!("/live/la/held-seg1.ts?token={}", token(&gate, v));
        viewers.push(tokio::spawn(async move {
            fetch(addr, &target, &[("cookie", "player=1")]).await
        }));
    }
    until_coalesced(&gate, VIEWERS as u64 - 1).await;
    // G2: a refused request meanwhile touches neither the cache nor the origin.
    let lookups = ["hit", "miss", "coalesced", "pass"].map(|r| cache_count(&gate, r));
    let refused = fetch(addr, "/live/la/held-seg1.ts?token=not.a.token", &[]).await;
    assert_eq!(refused.0, StatusCode::UNAUTHORIZED);
    let other_scope = common::get(
        addr,
        &format!("/live/la/held-seg1.ts?token={}", gate.token_for("a")),
        &[],
    )
    .await;
    assert_eq!(other_scope.status, StatusCode::FORBIDDEN);
    assert_eq!(
        ["hit", "miss", "coalesced", "pass"].map(|r| cache_count(&gate, r)),
        lookups
    );
    origin.release();
    for v in viewers {
        let (status, _, body) = v.await.expect("viewer");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.expect("whole body"), "origin:/live/la/held-seg1.ts");
    }
    assert_eq!(
        origin.count(),
        1,
        "one origin request for {VIEWERS} viewers"
    );
    let seen = &origin.requests()[0];
    assert_eq!(
        seen.target, "/live/la/held-seg1.ts",
        "no token reaches the origin"
    );
    for h in ["cookie", "authorization", "x-forwarded-for"] {
        assert!(
            !seen.headers.contains_key(h),
            "a fill carries no viewer's {h}"
        );
    }
    // The next viewer is a hit, with its Age.
    let (status, headers, _) = fetch(
        addr,
        &format!("/live/la/held-seg1.ts?token={}", token(&gate, 99)),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.contains_key("age"));
    assert_eq!((origin.count(), cache_count(&gate, "hit")), (1, 1));
}

#[tokio::test]
async fn waiters_get_bytes_as_the_origin_sends_them() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let mut bodies = Vec::new();
    for v in 0..5 {
        let target = format!("/live/la/stream-seg2.m4s?token={}", token(&gate, v));
        let resp = open(gate.plain(), &target, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let mut body = resp.into_body();
        // The first chunk arrives while the origin still holds the rest.
        let first = body.frame().await.expect("frame").expect("data");
        assert_eq!(first.into_data().expect("data"), "first");
        bodies.push(body);
    }
    origin.release();
    for body in bodies {
        let rest = body.collect().await.expect("clean end").to_bytes();
        assert_eq!(rest, "-rest");
    }
    assert_eq!(origin.count(), 1);
}

/// A whole body, or Err if the connection broke before the head or mid-body.
async fn whole_body(addr: SocketAddr, target: &str) -> Result<Bytes, ()> {
    let resp = try_open(addr, target, &[]).await.map_err(|_| ())?;
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|_| ())
}

#[tokio::test]
async fn g4_an_origin_reset_mid_body_aborts_every_waiter_and_is_not_stored() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let viewers = (0..5).map(|v| {
        let target = format!("/live/la/reset-seg3.ts?token={}", token(&gate, v));
        let addr = gate.plain();
        async move { whole_body(addr, &target).await }
    });
    for body in futures_util::future::join_all(viewers).await {
        // The connection breaks (before or after the head is flushed): never a clean
        // end that a player would take for the whole segment.
        assert!(body.is_err(), "never a clean short body: {body:?}");
    }
    let before = origin.count();
    let target = format!("/live/la/reset-seg3.ts?token={}", token(&gate, 9));
    assert!(whole_body(gate.plain(), &target).await.is_err());
    assert_eq!(
        origin.count(),
        before + 1,
        "nothing half-written was stored"
    );
}

#[tokio::test]
async fn g4_the_first_viewer_leaving_never_cancels_the_fill() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let first = open(
        gate.plain(),
        &format!("/live/la/stream-seg4.m4s?token={}", token(&gate, 0)),
        &[],
    )
    .await;
    let second = open(
        gate.plain(),
        &format!("/live/la/stream-seg4.m4s?token={}", token(&gate, 1)),
        &[],
    )
    .await;
    drop(first);
    origin.release();
    let body = second
        .into_body()
        .collect()
        .await
        .expect("clean end")
        .to_bytes();
    assert_eq!(body, "first-rest");
    let (_, _, body) = fetch(
        gate.plain(),
        &format!("/live/la/stream-seg4.m4s?token={}", token(&gate, 2)),
        &[],
    )
    .await;
    assert_eq!(body.expect("hit"), "first-rest");
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn g6_one_held_blocking_reload_for_every_viewer_each_rewritten_with_its_own_token() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let addr = gate.plain();
    let mut viewers = Vec::new();
    for v in 0..20 {
        let t = token(&gate, v);
        // Half ask with the parameters the other way round: one key all the same.
        let query = if v % 2 == 0 {
            "_HLS_msn=5&_HLS_part=1"
        } else {
            "_HLS_part=1&_HLS_msn=5"
        };
        let target = format!("/live/la/index.m3u8?{query}&token={t}");
        viewers.push(tokio::spawn(
            async move { (t, fetch(addr, &target, &[]).await) },
        ));
    }
    until_coalesced(&gate, 19).await;
    origin.release();
    for v in viewers {
        let (t, (status, _, body)) = v.await.expect("viewer");
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(body.expect("body").to_vec()).expect("utf-8");
        assert!(text.contains(&format!("seg0.ts?token={t}")), "{text}");
        assert!(text.contains(&format!("seg1.part0.ts?token={t}")), "{text}");
    }
    assert_eq!(origin.count(), 1);
    assert_eq!(
        origin.requests()[0].target,
        "/live/la/index.m3u8?_HLS_msn=5&_HLS_part=1"
    );
}

#[tokio::test]
async fn g3_personal_answers_are_never_shared() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    for (path, header) in [
        ("cookie-seg5.ts", "set-cookie"),
        ("vary-seg5.ts", "vary"),
        ("private-seg5.ts", "cache-control"),
    ] {
        let before = origin.count();
        let mut cookies = Vec::new();
        for v in 0..3 {
            let (status, h, _) = fetch(
                gate.plain(),
                &format!("/live/la/{path}?token={}", token(&gate, v)),
                &[],
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            assert!(h.contains_key(header), "{path}: the viewer's own answer");
            cookies.push(h.get("set-cookie").cloned());
        }
        // The first viewer's fill found the answer personal and released it to ask
        // again with its own request; the others went straight to the origin.
        assert_eq!(
            origin.count(),
            before + 4,
            "{path}: every viewer asked the origin itself"
        );
        if path.starts_with("cookie") {
            cookies.dedup();
            assert_eq!(cookies.len(), 3, "no viewer got another's cookie");
        }
    }
}

#[tokio::test]
async fn g3_token_spellings_a_naive_key_would_keep_are_refused_before_the_cache() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let t = token(&gate, 0);
    for query in [
        format!("Token={t}"),
        format!("tok%65n={t}"),
        format!("token={t}&token=x{t}"),
    ] {
        let (status, _, _) = fetch(gate.plain(), &format!("/live/la/seg6.ts?{query}"), &[]).await;
        assert!(status.is_client_error(), "{query}: {status}");
    }
    assert_eq!(origin.count(), 0);
    assert_eq!(cache_count(&gate, "miss"), 0);
    // The same token twice is one token: accepted, and gone from the key and the fill.
    let twice = format!("/live/la/seg6.ts?a=1&token={t}&token={t}");
    assert_eq!(fetch(gate.plain(), &twice, &[]).await.0, StatusCode::OK);
    assert_eq!(origin.requests()[0].target, "/live/la/seg6.ts?a=1");
}

#[tokio::test]
async fn head_ranges_and_conditionals_are_answered_from_a_stored_object() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let url = |v| format!("/live/la/seg7.ts?token={}", token(&gate, v));
    // Before anything is stored, a range and a HEAD go to the origin as they are.
    let (status, _, _) = fetch(gate.plain(), &url(0), &[("range", "bytes=0-3")]).await;
    assert_eq!(status, StatusCode::OK, "the scripted origin ignores ranges");
    assert_eq!(origin.requests()[0].headers["range"], "bytes=0-3");
    let (status, _, body) = fetch(gate.plain(), &url(1), &[]).await;
    assert_eq!(
        (status, body.expect("body")),
        (StatusCode::OK, Bytes::from("origin:/live/la/seg7.ts"))
    );
    let stored = origin.count();
    let (status, h, body) = fetch(gate.plain(), &url(2), &[("range", "bytes=0-5")]).await;
    assert_eq!(
        (status, body.expect("part")),
        (StatusCode::PARTIAL_CONTENT, Bytes::from("origin"))
    );
    assert_eq!(h["content-range"], "bytes 0-5/23");
    let resp = open(gate.plain(), &url(3), &[("if-none-match", "\"e1\"")]).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    let (status, h, _) = {
        let tcp = common::request(gate.plain(), Method::HEAD, &url(4), &[]).await;
        (tcp.status, tcp.headers, ())
    };
    assert_eq!(
        (status, &h["content-length"]),
        (
            StatusCode::OK,
            &"23".parse::<http::HeaderValue>().expect("value")
        )
    );
    assert_eq!(
        origin.count(),
        stored,
        "all answered from the stored object"
    );
}

#[tokio::test]
async fn a_purge_through_the_admin_api_makes_the_next_request_a_miss() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let url = |v| format!("/live/la/seg8.ts?token={}", token(&gate, v));
    assert_eq!(fetch(gate.plain(), &url(0), &[]).await.0, StatusCode::OK);
    assert_eq!(fetch(gate.plain(), &url(1), &[]).await.0, StatusCode::OK);
    assert_eq!(origin.count(), 1);
    let admin_token =
        std::fs::read_to_string(gate.dir.path().join("admin-token")).expect("admin token");
    let auth = format!("Bearer {}", admin_token.trim());
    let refused = common::send(
        gate.admin(),
        Method::POST,
        "/v1/cache/purge",
        &[],
        br#"{"prefix":"/live/"}"#,
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let purged = common::send(
        gate.admin(),
        Method::POST,
        "/v1/cache/purge",
        &[("authorization", &auth)],
        br#"{"prefix":"/live/la/"}"#,
    )
    .await;
    assert_eq!(purged.status, StatusCode::OK);
    assert_eq!(purged.body, r#"{"purged":1}"#);
    assert_eq!(fetch(gate.plain(), &url(2), &[]).await.0, StatusCode::OK);
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn g6_waiters_on_a_fill_the_origin_never_answers_get_504_after_the_read_timeout() {
    let origin = ScriptedOrigin::start().await;
    let gate = gate(&origin).await;
    let addr = gate.plain();
    let started = std::time::Instant::now();
    let viewers = (0..10).map(|v| {
        let target = format!("/live/la/held-forever.ts?token={}", token(&gate, v));
        async move { fetch(addr, &target, &[]).await.0 }
    });
    for status in futures_util::future::join_all(viewers).await {
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    }
    // The test origin's read_timeout is 1 s: every waiter was let go with the fill.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn posts_and_uncached_routes_always_reach_the_origin() {
    let origin = ScriptedOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    // The live route is cached by [cache] enabled; the vod route opts out.
    setup.extra = setup.extra.replacen(
        "type = \"vod\"\norigin = \"o\"\n",
        "type = \"vod\"\norigin = \"o\"\ncache = false\n",
        1,
    );
    setup.extra += "\n[cache]\nenabled = true\n";
    let gate = common::start(setup).await;
    let t = token(&gate, 0);
    for _ in 0..2 {
        let licence = format!("/live/la/licence?token={t}");
        let r = common::send(gate.plain(), Method::POST, &licence, &[], b"challenge").await;
        assert_eq!(r.status, StatusCode::OK);
        let vod = format!("/vod/a/seg.ts?token={}", gate.token_for("a"));
        assert_eq!(
            common::get(gate.plain(), &vod, &[]).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(
        origin.count(),
        4,
        "two POSTs and two requests on an uncached route"
    );
    assert_eq!(
        cache_count(&gate, "pass"),
        2,
        "the POSTs passed; the vod route never asked"
    );
}
