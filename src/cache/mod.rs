//! The shield cache (docs/architecture.md, "The shield cache"): keys, the byte-bounded
//! object store, and fills with their waiters.
//!
//! The edge asks only after a request is authorised; the cache never sees a token, a
//! route or a viewer. A [`Key`] is the origin's name and the target the origin is asked
//! for: the normalised path and the query without the token, parameters in a canonical
//! order ([`canonical_query`]), so that `?_HLS_part=1&_HLS_msn=5` and
//! `?_HLS_msn=5&_HLS_part=1` are one object and one origin request.
//!
//! [`Cache::lookup`] answers from the store (a hit), joins the fill already running for
//! the key (coalesced), or starts one (a miss): a detached task that asks the origin
//! once and streams what it receives to every waiter ([`fill`]). What may be shared and
//! for how long is [`freshness`]'s; answering from a stored object (`Age`, `HEAD`,
//! ranges, 304s) is [`serve`]'s.
//!
//! The store is `moka`'s concurrent cache, bounded in bytes by a weigher (body, headers,
//! key and a fixed overhead per object) with LRU eviction: for live media the newest
//! object is the one in demand, so recency is the right signal and a frequency filter
//! would turn the next segment away. Each entry expires at its own freshness lifetime.
//! An answer found uncacheable leaves a marker for [`UNCACHEABLE_FOR`], so that the
//! requests after it go straight to the origin instead of queueing on a fill that will
//! release them (Varnish calls this hit-for-miss).

pub mod fill;
pub mod freshness;
pub mod serve;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{Response, StatusCode};
use http_body_util::BodyExt;
use moka::notification::RemovalCause;
use tokio::time::Instant;

use crate::body::Body;
use crate::config;
use crate::metrics::CacheMetrics;
use crate::origin::OriginError;
use fill::{End, Fill, Head, Waiter};
use freshness::{Lifetime, Verdict};
use prometheus::IntCounter;

/// How long an uncacheable answer sends the requests for its key straight to the origin.
pub const UNCACHEABLE_FOR: Duration = Duration::from_secs(5);

/// Bytes an object is charged beyond its body and headers (the entry, its map slots).
const OVERHEAD: u64 = 256;

/// What a stored object is looked up by: an origin and the target it is asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// `origin` + '\n' + target (a name never holds a newline). Boxed, not shared: a
    /// key is built once per request and cloned only on a miss.
    text: Box<str>,
    split: usize,
}

impl Key {
    /// The key of `path?query` on `origin`; the query (already without the token) is put
    /// in canonical order.
    pub fn new(origin: &str, path: &str, query: Option<&str>) -> Key {
        let mut text =
            String::with_capacity(origin.len() + path.len() + 2 + query.map_or(0, str::len));
        text.push_str(origin);
        text.push('\n');
        text.push_str(path);
        if let Some(q) = query.map(canonical_query).filter(|q| !q.is_empty()) {
            text.push('?');
            text.push_str(&q);
        }
        Key {
            split: origin.len(),
            text: text.into_boxed_str(),
        }
    }

    pub fn origin(&self) -> &str {
        &self.text[..self.split]
    }

    /// The origin-form target the fill asks for: `path?query`.
    pub fn target(&self) -> &str {
        &self.text[self.split + 1..]
    }

    pub fn path(&self) -> &str {
        let t = self.target();
        t.split_once('?').map_or(t, |(p, _)| p)
    }
}

/// `query`'s parameters sorted by name (a stable sort: repeated names keep their order),
/// empty ones dropped. The values are left as they came.
pub fn canonical_query(query: &str) -> String {
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_by_key(|p| p.split_once('=').map_or(*p, |(name, _)| name));
    params.join("&")
}

/// A stored answer.
#[derive(Debug)]
pub struct Object {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The origin's `Age` when it was received.
    pub age: Duration,
}

impl Object {
    /// An object whose headers also say what every whole answer from it says (its
    /// length and, for a 200, that ranges are served), set once rather than per hit.
    pub fn new(status: StatusCode, mut headers: HeaderMap, body: Bytes, age: Duration) -> Self {
        headers.insert(header::CONTENT_LENGTH, body.len().into());
        if status == StatusCode::OK {
            headers.insert(
                header::ACCEPT_RANGES,
                http::HeaderValue::from_static("bytes"),
            );
        }
        Object {
            status,
            headers,
            body,
            age,
        }
    }
}

/// A store entry: an object, or the marker of an uncacheable answer.
#[derive(Debug)]
pub struct Entry {
    object: Option<Object>,
    stored: Instant,
    fresh_for: Duration,
}

impl Entry {
    fn weight(&self, key: &Key) -> u32 {
        let headers: usize = self.object.as_ref().map_or(0, |o| {
            o.headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 32)
                .sum::<usize>()
        });
        let body = self.object.as_ref().map_or(0, |o| o.body.len());
        let total = OVERHEAD + (key.text.len() + headers + body) as u64;
        u32::try_from(total).unwrap_or(u32::MAX)
    }
}

/// A fresh stored object, and when it was found.
pub struct Hit(Arc<Entry>, Instant);

impl Hit {
    /// The answer to `asked` from this object.
    pub fn respond(&self, asked: &serve::Asked<'_>) -> Response<Body> {
        let obj = self.0.object.as_ref().expect("a hit holds an object");
        serve::respond(obj, asked, self.1.saturating_duration_since(self.0.stored))
    }
}

/// What a lookup found.
pub enum Lookup {
    Hit(Hit),
    /// A fill is running for this request (started by it or joined).
    Wait(Waiter),
    /// Go to the origin directly: the key's last answer was uncacheable.
    Pass,
}

/// Per-entry expiry for moka: an entry leaves the store when it goes stale.
struct Expire;

impl moka::Expiry<Key, Arc<Entry>> for Expire {
    fn expire_after_create(
        &self,
        _key: &Key,
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.fresh_for)
    }
}

/// The shield cache: one per process, kept across reloads.
pub struct Cache {
    entries: moka::sync::Cache<Key, Arc<Entry>>,
    fills: Mutex<HashMap<Key, Arc<Fill>>>,
    cfg: config::Cache,
    meters: CacheMetrics,
    /// `tollgate_cache_requests_total` by result, resolved once.
    counts: Counts,
}

/// The lookup counters, one handle per result.
struct Counts {
    hit: IntCounter,
    miss: IntCounter,
    coalesced: IntCounter,
    pass: IntCounter,
}

impl Cache {
    pub fn new(cfg: &config::Cache, meters: CacheMetrics) -> Arc<Cache> {
        let evictions = meters.evictions.clone();
        let entries = moka::sync::Cache::builder()
            .max_capacity(cfg.max_bytes)
            .weigher(|k: &Key, v: &Arc<Entry>| v.weight(k))
            .expire_after(Expire)
            .eviction_policy(moka::policy::EvictionPolicy::lru())
            .eviction_listener(move |_k, _v, cause| {
                if cause == RemovalCause::Size {
                    evictions.inc();
                }
            })
            .build();
        let count = |result: &str| meters.requests.with_label_values(&[result]);
        let counts = Counts {
            hit: count("hit"),
            miss: count("miss"),
            coalesced: count("coalesced"),
            pass: count("pass"),
        };
        Arc::new(Cache {
            entries,
            fills: Mutex::default(),
            cfg: cfg.clone(),
            meters,
            counts,
        })
    }

    fn fills(&self) -> MutexGuard<'_, HashMap<Key, Arc<Fill>>> {
        self.fills.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a request that did not consult the cache (a range or `HEAD` miss, a body).
    pub fn passed(&self) {
        self.counts.pass.inc();
    }

    /// The fresh entry for `key` at `now`, if one is stored (a stale one is dropped).
    fn fresh(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let entry = self.entries.get(key)?;
        if now.saturating_duration_since(entry.stored) < entry.fresh_for {
            return Some(entry);
        }
        self.entries.invalidate(key);
        None
    }

    /// A hit for `key`, or None (nothing is started): for requests that may be answered
    /// from a stored object but would not be stored themselves (`HEAD`, ranges).
    pub fn hit(&self, key: &Key) -> Option<Hit> {
        let now = Instant::now();
        let hit = self
            .fresh(key, now)
            .filter(|e| e.object.is_some())
            .map(|e| Hit(e, now));
        match hit {
            Some(_) => self.counts.hit.inc(),
            None => self.counts.pass.inc(),
        }
        hit
    }

    /// Answer from the store, join the running fill, or start one with `fetch` (called
    /// only then, and driven by a detached task whose body reads give up after `idle`
    /// without a byte).
    pub fn lookup<F>(
        self: &Arc<Self>,
        key: Key,
        fetch: impl FnOnce(&Key) -> F,
        idle: Duration,
    ) -> Lookup
    where
        F: Future<Output = Result<Response<Body>, OriginError>> + Send + 'static,
    {
        let (lookup, started) = self.find_or_start(key);
        match &lookup {
            Lookup::Hit(_) => &self.counts.hit,
            Lookup::Pass => &self.counts.pass,
            Lookup::Wait(w) if w.leader => &self.counts.miss,
            Lookup::Wait(_) => &self.counts.coalesced,
        }
        .inc();
        if let Some(fill) = started {
            let fetch = fetch(&fill.key);
            tokio::spawn(self.clone().run_fill(fill, fetch, idle));
        }
        lookup
    }

    /// The lookup proper, under the fills lock; returns a fill this request must start.
    fn find_or_start(&self, key: Key) -> (Lookup, Option<Arc<Fill>>) {
        let now = Instant::now();
        let stored = |this: &Self| match this.fresh(&key, now) {
            Some(e) if e.object.is_some() => Some(Lookup::Hit(Hit(e, now))),
            Some(_) => Some(Lookup::Pass),
            None => None,
        };
        if let Some(found) = stored(self) {
            return (found, None);
        }
        let mut fills = self.fills();
        // Again under the lock: a fill stores its object before it leaves the map.
        if let Some(found) = stored(self) {
            return (found, None);
        }
        if let Some(waiter) = fills.get(&key).and_then(|f| f.join(false)) {
            return (Lookup::Wait(waiter), None);
        }
        // None running, or one that takes no more waiters (ended unstored, or past its
        // window): this request starts the next.
        let fill = Fill::new(key.clone());
        let waiter = fill.join(true).expect("a new fill takes waiters");
        fills.insert(key, fill.clone());
        (Lookup::Wait(waiter), Some(fill))
    }

    /// The fill's task: fetch, share, store, and leave the map.
    async fn run_fill<F>(self: Arc<Self>, fill: Arc<Fill>, fetch: F, idle: Duration)
    where
        F: Future<Output = Result<Response<Body>, OriginError>> + Send + 'static,
    {
        let result = self.fill_from(&fill, fetch, idle).await;
        self.meters.fills.with_label_values(&[result]).inc();
        let mut fills = self.fills();
        if fills.get(&fill.key).is_some_and(|f| Arc::ptr_eq(f, &fill)) {
            fills.remove(&fill.key);
        }
    }

    async fn fill_from<F>(&self, fill: &Fill, fetch: F, idle: Duration) -> &'static str
    where
        F: Future<Output = Result<Response<Body>, OriginError>>,
    {
        let (parts, mut body) = match fetch.await {
            Ok(resp) => resp.into_parts(),
            Err(e) => {
                fill.finish(End::NoHead(e));
                return "no_head";
            }
        };
        let received = Instant::now();
        let lifetime = match freshness::judge(parts.status, &parts.headers, SystemTime::now()) {
            Verdict::Shared(_)
                if content_length(&parts.headers) > Some(self.cfg.max_object_bytes) =>
            {
                // Too big to hold while it is shared: each waiter streams its own.
                return self.release(fill);
            }
            Verdict::Shared(lifetime) => lifetime,
            Verdict::Uncacheable(_) => return self.release(fill),
        };
        let head = Head {
            status: parts.status,
            headers: parts.headers,
        };
        fill.set_head(head.clone());
        let window = self.cfg.max_object_bytes;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => break,
                Ok(Some(Err(_))) | Err(_) => {
                    fill.finish(End::Aborted);
                    return "aborted";
                }
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not kept
            };
            if fill.push(data, window) > window && !fill.wait_drained(idle).await {
                fill.finish(End::Aborted);
                return "aborted";
            }
        }
        let stored = match fill.whole() {
            Some(chunks) if !fill.purged() => {
                self.store(&fill.key, head, &chunks, lifetime, received)
            }
            _ => false,
        };
        fill.finish(End::Complete);
        if stored {
            "stored"
        } else {
            "shared"
        }
    }

    /// Mark `fill`'s key uncacheable for a while and send its waiters to the origin.
    fn release(&self, fill: &Fill) -> &'static str {
        let marker = Entry {
            object: None,
            stored: Instant::now(),
            fresh_for: UNCACHEABLE_FOR,
        };
        self.entries.insert(fill.key.clone(), Arc::new(marker));
        fill.finish(End::Released);
        "released"
    }

    /// Store a complete answer if it has freshness left. True if stored.
    fn store(
        &self,
        key: &Key,
        head: Head,
        chunks: &[Bytes],
        lifetime: Lifetime,
        received: Instant,
    ) -> bool {
        // One contiguous copy: the chunks may share larger buffers that would stay
        // alive, uncounted, behind them.
        let mut body = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
        for c in chunks {
            body.extend_from_slice(c);
        }
        let body = body.freeze();
        let fresh_for = match lifetime {
            Lifetime::None => return false,
            Lifetime::Explicit(d) => d,
            Lifetime::Default => freshness::Kind::of(head.status, &head.headers, key.path(), &body)
                .default_lifetime(&self.cfg),
        };
        let Some(fresh_for) = fresh_for
            .checked_sub(received.elapsed())
            .filter(|d| !d.is_zero())
        else {
            return false;
        };
        let age = head
            .headers
            .get(header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .map(Duration::from_secs)
            .unwrap_or_default();
        let entry = Entry {
            object: Some(Object::new(head.status, detached(&head.headers), body, age)),
            stored: received,
            fresh_for,
        };
        self.entries.insert(key.clone(), Arc::new(entry));
        self.settle();
        true
    }

    /// Apply moka's pending evictions now (so the budget holds at once) and publish
    /// the totals.
    fn settle(&self) {
        self.entries.run_pending_tasks();
        self.meters
            .bytes
            .set(i64::try_from(self.entries.weighted_size()).unwrap_or(i64::MAX));
        self.meters
            .objects
            .set(i64::try_from(self.entries.entry_count()).unwrap_or(i64::MAX));
    }

    /// Remove every stored object whose key `matches`, and keep fills running for such
    /// keys from storing what they fetch. Returns how many objects were removed.
    pub fn purge(&self, matches: impl Fn(&Key) -> bool) -> usize {
        let keys: Vec<Key> = self
            .entries
            .iter()
            .filter(|(k, e)| e.object.is_some() && matches(k))
            .map(|(k, _)| (*k).clone())
            .collect();
        for k in &keys {
            self.entries.invalidate(k);
        }
        for fill in self.fills().values().filter(|f| matches(&f.key)) {
            fill.purge();
        }
        self.settle();
        keys.len()
    }

    /// Wait for `waiter`'s head, and record how long that took.
    pub async fn head(&self, waiter: &Waiter) -> Result<Head, End> {
        let head = waiter.head().await;
        self.meters.wait.observe(waiter.waited().as_secs_f64());
        head
    }

    /// Bytes held (as weighed), for tests and the purge answer.
    pub fn held_bytes(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.weighted_size()
    }
}

/// `headers` with every value copied out. hyper's values share its connection read
/// buffer (up to ~400 KiB): a stored object holding them would pin that buffer too
/// (measured by `benches/cache-memory.py`: 1.33 MiB of RSS per 1 MiB object before).
fn detached(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut copy =
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        out.append(name.clone(), copy);
    }
    out
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
