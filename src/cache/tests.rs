//! The cache with a scripted origin: a fetch whose head and body chunks the test sends.

use std::sync::atomic::{AtomicUsize, Ordering};

use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;

use super::*;

fn cache(edit: impl FnOnce(&mut config::Cache)) -> Arc<Cache> {
    let mut cfg = config::example(|t| t).cache;
    edit(&mut cfg);
    let metrics = crate::metrics::Metrics::new().expect("metrics");
    Cache::new(&cfg, metrics.cache.clone())
}

/// An origin whose answers the test scripts: each fetch counts, then gets a response
/// with `headers` and a body fed by the returned sender.
struct Origin {
    fetches: Arc<AtomicUsize>,
}

type Fetch = std::pin::Pin<Box<dyn Future<Output = Result<Response<Body>, OriginError>> + Send>>;

impl Origin {
    fn new() -> Self {
        Origin {
            fetches: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A fetch answering 200 with `headers`; its body comes from the sender.
    fn answer(
        &self,
        headers: &[(&'static str, &'static str)],
    ) -> (
        impl FnOnce(&Key) -> Fetch,
        Sender<Bytes, crate::body::BoxError>,
    ) {
        let (tx, body) = Channel::<Bytes, crate::body::BoxError>::new(16);
        let mut resp = Response::new(body.boxed_unsync());
        for (k, v) in headers {
            resp.headers_mut()
                .insert(*k, http::HeaderValue::from_static(v));
        }
        let fetches = self.fetches.clone();
        let fetch = move |_: &Key| -> Fetch {
            fetches.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move { Ok(resp) })
        };
        (fetch, tx)
    }

    fn count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

/// A header map from name–value pairs (repeated names append).
pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            http::HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn key(path: &str) -> Key {
    Key::new("o", path, None)
}

fn waiter(l: Lookup) -> Waiter {
    match l {
        Lookup::Wait(w) => w,
        Lookup::Hit(_) => panic!("expected a fill, got a hit"),
        Lookup::Pass => panic!("expected a fill, got a pass"),
    }
}

const IDLE: Duration = Duration::from_secs(5);

#[test]
fn keys_ignore_parameter_order_and_keep_origin_and_path_apart() {
    let a = Key::new("o", "/l/p.m3u8", Some("_HLS_part=1&_HLS_msn=5"));
    let b = Key::new("o", "/l/p.m3u8", Some("_HLS_msn=5&_HLS_part=1"));
    assert_eq!(a, b);
    assert_eq!(a.target(), "/l/p.m3u8?_HLS_msn=5&_HLS_part=1");
    assert_eq!(a.path(), "/l/p.m3u8");
    assert_eq!(a.origin(), "o");
    assert_ne!(
        a,
        Key::new("p", "/l/p.m3u8", Some("_HLS_msn=5&_HLS_part=1"))
    );
    assert_ne!(
        a,
        Key::new("o", "/l/p.m3u8", Some("_HLS_msn=6&_HLS_part=1"))
    );
    assert_eq!(canonical_query("b=2&&a=1&b=1"), "a=1&b=2&b=1");
    assert_eq!(Key::new("o", "/a", Some("")).target(), "/a");
}

#[tokio::test]
async fn concurrent_misses_share_one_fetch_and_stream_before_the_body_ends() {
    let c = cache(|_| {});
    let origin = Origin::new();
    let (fetch, mut tx) = origin.answer(&[("content-type", "video/mp2t")]);
    let first = waiter(c.lookup(key("/s/1.ts"), fetch, IDLE));
    assert!(first.leader);
    let mut others = Vec::new();
    for _ in 0..49 {
        let (f, _) = origin.answer(&[]);
        let w = waiter(c.lookup(key("/s/1.ts"), f, IDLE));
        assert!(!w.leader);
        others.push(w);
    }
    tx.send_data(Bytes::from_static(b"first"))
        .await
        .expect("send");
    // Every waiter has its head and the first chunk while the body is still open.
    let mut bodies = Vec::new();
    for w in std::iter::once(first).chain(others) {
        assert_eq!(c.head(&w).await.expect("head").status, StatusCode::OK);
        let mut body = w.into_body();
        let chunk = body
            .frame()
            .await
            .expect("frame")
            .expect("ok")
            .into_data()
            .expect("data");
        assert_eq!(&chunk[..], b"first");
        bodies.push(body);
    }
    tx.send_data(Bytes::from_static(b"-rest"))
        .await
        .expect("send");
    drop(tx);
    for body in bodies {
        assert_eq!(
            &body.collect().await.expect("clean").to_bytes()[..],
            b"-rest"
        );
    }
    assert_eq!(origin.count(), 1, "one origin fetch for 50 requests");
    // And the next request is a hit with the whole body.
    tokio::task::yield_now().await;
    let Lookup::Hit(hit) = c.lookup(
        key("/s/1.ts"),
        |_: &Key| -> Fetch { panic!("no fetch on a hit") },
        IDLE,
    ) else {
        panic!("expected a hit");
    };
    let asked = serve::Asked {
        method: &http::Method::GET,
        headers: &HeaderMap::new(),
        whole: false,
    };
    let body = hit
        .respond(&asked)
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(&body[..], b"first-rest");
}

#[tokio::test]
async fn a_waiter_leaving_never_cancels_the_fill() {
    let c = cache(|_| {});
    let origin = Origin::new();
    let (fetch, mut tx) = origin.answer(&[]);
    let leader = waiter(c.lookup(key("/s/2.ts"), fetch, IDLE));
    let (f, _) = origin.answer(&[]);
    let other = waiter(c.lookup(key("/s/2.ts"), f, IDLE));
    drop(leader);
    tx.send_data(Bytes::from_static(b"abc"))
        .await
        .expect("the fill still reads");
    drop(tx);
    let body = other.into_body().collect().await.expect("clean").to_bytes();
    assert_eq!(&body[..], b"abc");
    tokio::task::yield_now().await;
    assert!(
        c.hit(&key("/s/2.ts")).is_some(),
        "the fill completed and stored"
    );
}

#[tokio::test]
async fn a_failed_body_aborts_every_waiter_and_stores_nothing() {
    let c = cache(|_| {});
    let origin = Origin::new();
    let (fetch, mut tx) = origin.answer(&[]);
    let waiters: Vec<Waiter> = std::iter::once(waiter(c.lookup(key("/s/3.ts"), fetch, IDLE)))
        .chain((0..3).map(|_| {
            waiter(c.lookup(
                key("/s/3.ts"),
                |_: &Key| -> Fetch { panic!("joined") },
                IDLE,
            ))
        }))
        .collect();
    tx.send_data(Bytes::from_static(b"part"))
        .await
        .expect("send");
    tx.abort("origin reset".into());
    for w in waiters {
        assert!(
            w.into_body().collect().await.is_err(),
            "never a clean short body"
        );
    }
    tokio::task::yield_now().await;
    assert!(c.hit(&key("/s/3.ts")).is_none());
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn an_uncacheable_answer_releases_its_waiters_and_later_requests_pass() {
    let c = cache(|_| {});
    let origin = Origin::new();
    let (fetch, _tx) = origin.answer(&[("set-cookie", "session=1")]);
    let w = waiter(c.lookup(key("/s/4.ts"), fetch, IDLE));
    assert_eq!(c.head(&w).await.expect_err("released"), End::Released);
    assert!(matches!(
        c.lookup(key("/s/4.ts"), |_: &Key| -> Fetch { panic!("pass") }, IDLE),
        Lookup::Pass
    ));
}

#[tokio::test]
async fn an_origin_failure_before_the_head_reaches_every_waiter() {
    let c = cache(|_| {});
    let fail = |_: &Key| -> Fetch { Box::pin(async { Err(OriginError::Timeout) }) };
    let w = waiter(c.lookup(key("/s/5.ts"), fail, IDLE));
    assert_eq!(
        c.head(&w).await.expect_err("no head"),
        End::NoHead(OriginError::Timeout)
    );
    tokio::task::yield_now().await;
    let origin = Origin::new();
    let (fetch, _tx) = origin.answer(&[]);
    assert!(
        waiter(c.lookup(key("/s/5.ts"), fetch, IDLE)).leader,
        "the next request tries again"
    );
}

#[tokio::test(start_paused = true)]
async fn objects_go_stale_after_their_lifetime() {
    let c = cache(|_| {});
    let origin = Origin::new();
    let (fetch, tx) = origin.answer(&[("cache-control", "max-age=2")]);
    let w = waiter(c.lookup(key("/s/6.ts"), fetch, IDLE));
    drop(tx);
    w.into_body().collect().await.expect("clean");
    tokio::task::yield_now().await;
    assert!(c.hit(&key("/s/6.ts")).is_some());
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(c.hit(&key("/s/6.ts")).is_none(), "stale after max-age");
}

#[tokio::test]
async fn an_object_over_the_limit_streams_through_uncached() {
    let c = cache(|cfg| cfg.max_object_bytes = 4);
    let origin = Origin::new();
    let (fetch, _tx) = origin.answer(&[("content-length", "10")]);
    let w = waiter(c.lookup(key("/s/7.mp4"), fetch, IDLE));
    assert_eq!(c.head(&w).await.expect_err("released"), End::Released);
}

#[tokio::test]
async fn the_budget_holds_under_a_flood_of_distinct_objects() {
    let c = cache(|cfg| {
        cfg.max_bytes = 64 * 1024;
        cfg.max_object_bytes = 4096;
    });
    let origin = Origin::new();
    for i in 0..100 {
        let (fetch, mut tx) = origin.answer(&[]);
        let w = waiter(c.lookup(key(&format!("/s/{i}.ts")), fetch, IDLE));
        tx.send_data(Bytes::from(vec![7u8; 2048]))
            .await
            .expect("send");
        drop(tx);
        w.into_body().collect().await.expect("clean");
        tokio::task::yield_now().await;
    }
    assert!(c.held_bytes() <= 64 * 1024, "held {}", c.held_bytes());
    assert!(c.hit(&key("/s/99.ts")).is_some(), "the newest stays");
    assert!(c.hit(&key("/s/0.ts")).is_none(), "the oldest went");
}

#[tokio::test]
async fn purge_removes_by_predicate_and_stops_running_fills_storing() {
    let c = cache(|_| {});
    let origin = Origin::new();
    for p in ["/a/1.ts", "/a/2.ts", "/b/1.ts"] {
        let (fetch, tx) = origin.answer(&[]);
        let w = waiter(c.lookup(key(p), fetch, IDLE));
        drop(tx);
        w.into_body().collect().await.expect("clean");
        tokio::task::yield_now().await;
    }
    let (fetch, tx) = origin.answer(&[]);
    let running = waiter(c.lookup(key("/a/3.ts"), fetch, IDLE));
    assert_eq!(c.purge(|k| k.path().starts_with("/a/")), 2);
    drop(tx);
    running.into_body().collect().await.expect("clean");
    tokio::task::yield_now().await;
    assert!(c.hit(&key("/a/1.ts")).is_none());
    assert!(
        c.hit(&key("/a/3.ts")).is_none(),
        "a fill running at the purge stores nothing"
    );
    assert!(c.hit(&key("/b/1.ts")).is_some());
}
