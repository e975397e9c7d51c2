//! A fill: the one origin fetch that every concurrent miss on a key shares, and its
//! waiters.
//!
//! The fill's task (see [`super::Cache::spawn_fill`]) owns the origin response and
//! belongs to no viewer: a viewer who disconnects only drops its [`Waiter`]. What the
//! task receives is appended to the fill's state — first the head, then each body chunk
//! as it arrives — and every waiter is woken to read it from its own cursor. So a waiter
//! that joins late still gets the whole body from the first byte, and none waits for the
//! body to complete. The end is one of: complete (a clean end of body), failed (before
//! the head: each waiter answers 502/504; after it: each waiter's body errors, which
//! makes hyper abort that viewer's connection instead of ending it cleanly short), or
//! released (the answer was uncacheable: waiters fetch for themselves).
//!
//! Memory: chunks are `Bytes` shared by every waiter, held until the fill ends. A fill
//! whose body outgrows `cache.max_object_bytes` (possible only without a
//! `Content-Length`) stops taking joiners, drops chunks every waiter has read, and from
//! then on reads from the origin only as fast as its slowest waiter (see
//! [`Fill::wait_drained`]): a long chunked response costs a window, not its length.
//!
//! The lock is a `std::sync::Mutex` held for a few field updates, never across `.await`;
//! wakers are called after it is released.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Key;
use crate::origin::OriginError;

/// A response head as the origin sent it (hop-by-hop headers already gone).
#[derive(Debug, Clone)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

/// How a fill ended, when it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The body ended cleanly.
    Complete,
    /// The origin gave no head.
    NoHead(OriginError),
    /// The body failed after the head (a reset, a stall, the fill outgrowing its window).
    Aborted,
    /// The answer was uncacheable; waiters fetch for themselves.
    Released,
}

/// One origin fetch and the requests waiting on it.
pub struct Fill {
    pub(super) key: Key,
    state: Mutex<State>,
    /// Signalled when a waiter reads or leaves, for a fill past its window.
    drained: Notify,
    /// A purge matched the key while this fill ran: what it fetches is not stored.
    purged: AtomicBool,
}

#[derive(Default)]
struct State {
    head: Option<Head>,
    /// The head's `Content-Length`: a reader that has read this much is done, whether
    /// or not the fill has finished (storing) yet.
    expected: Option<u64>,
    /// Body chunks from index `dropped` on (earlier ones were read by every waiter).
    chunks: Vec<Bytes>,
    dropped: usize,
    bytes: u64,
    end: Option<End>,
    /// No new waiters: the fill has ended or outgrown its window.
    closed: bool,
    /// Past `max_object_bytes`: chunks are dropped once read, and reads pace the origin.
    windowed: bool,
    readers: Vec<Reader>,
}

/// One waiter's place: the next chunk it reads, the bytes it has read, and its waker
/// while it waits.
#[derive(Default)]
struct Reader {
    live: bool,
    cursor: usize,
    read: u64,
    waker: Option<Waker>,
}

impl State {
    /// Take every waiting reader's waker, to be woken once the lock is released.
    fn wakers(&mut self) -> Vec<Waker> {
        self.readers
            .iter_mut()
            .filter_map(|r| r.waker.take())
            .collect()
    }

    /// The chunk index below which every live reader has read.
    fn read_by_all(&self) -> usize {
        let end = self.dropped + self.chunks.len();
        self.readers
            .iter()
            .filter(|r| r.live)
            .map(|r| r.cursor)
            .min()
            .unwrap_or(end)
    }

    fn live_readers(&self) -> usize {
        self.readers.iter().filter(|r| r.live).count()
    }
}

fn wake(wakers: Vec<Waker>) {
    for w in wakers {
        w.wake();
    }
}

impl Fill {
    pub(super) fn new(key: Key) -> Arc<Fill> {
        Arc::new(Fill {
            key,
            state: Mutex::default(),
            drained: Notify::new(),
            purged: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain data behind; carry on with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new waiter, unless the fill no longer takes any.
    pub(super) fn join(self: &Arc<Self>, leader: bool) -> Option<Waiter> {
        let mut st = self.lock();
        if st.closed {
            return None;
        }
        let reader = Reader {
            live: true,
            ..Reader::default()
        };
        let slot = match st.readers.iter().position(|r| !r.live) {
            Some(free) => {
                st.readers[free] = reader;
                free
            }
            None => {
                st.readers.push(reader);
                st.readers.len() - 1
            }
        };
        Some(Waiter {
            fill: self.clone(),
            slot,
            leader,
            joined: Instant::now(),
        })
    }

    /// The origin's head arrived (and is to be shared).
    pub(super) fn set_head(&self, head: Head) {
        let wakers = {
            let mut st = self.lock();
            st.expected = head
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            st.head = Some(head);
            st.wakers()
        };
        wake(wakers);
    }

    /// A body chunk arrived. Returns the body's length so far.
    pub(super) fn push(&self, chunk: Bytes, window: u64) -> u64 {
        let (wakers, bytes) = {
            let mut st = self.lock();
            st.bytes += chunk.len() as u64;
            st.chunks.push(chunk);
            if st.bytes > window && !st.windowed {
                st.windowed = true;
                st.closed = true;
            }
            (st.wakers(), st.bytes)
        };
        wake(wakers);
        bytes
    }

    /// Every chunk of the body, unless some were dropped past the window.
    pub(super) fn whole(&self) -> Option<Vec<Bytes>> {
        let st = self.lock();
        (!st.windowed).then(|| st.chunks.clone())
    }

    /// End the fill and wake every waiter.
    pub(super) fn finish(&self, end: End) {
        let wakers = {
            let mut st = self.lock();
            st.end = Some(end);
            st.closed = true;
            st.wakers()
        };
        wake(wakers);
    }

    pub(super) fn purge(&self) {
        self.purged.store(true, Ordering::Relaxed);
    }

    pub(super) fn purged(&self) -> bool {
        self.purged.load(Ordering::Relaxed)
    }

    /// For a fill past its window: wait until every waiter has read all that is held
    /// (dropping it), at most `limit`. False when that took too long, or nobody is left
    /// to read.
    pub(super) async fn wait_drained(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let notified = self.drained.notified();
            {
                let mut st = self.lock();
                if !st.windowed {
                    return true;
                }
                if st.live_readers() == 0 {
                    return false;
                }
                let read = st.read_by_all();
                let drop = read - st.dropped;
                st.chunks.drain(..drop);
                st.dropped = read;
                if st.chunks.is_empty() {
                    return true;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    fn poll_head(&self, slot: usize, cx: &mut Context<'_>) -> Poll<Result<Head, End>> {
        let mut st = self.lock();
        if let Some(head) = &st.head {
            return Poll::Ready(Ok(head.clone()));
        }
        if let Some(end) = st.end {
            return Poll::Ready(Err(end));
        }
        st.readers[slot].waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn poll_chunk(&self, slot: usize, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, End>>> {
        let mut st = self.lock();
        let cursor = st.readers[slot].cursor;
        if let Some(chunk) = st.chunks.get(cursor - st.dropped).cloned() {
            let reader = &mut st.readers[slot];
            reader.cursor += 1;
            reader.read += chunk.len() as u64;
            let windowed = st.windowed;
            drop(st);
            if windowed {
                self.drained.notify_one();
            }
            return Poll::Ready(Some(Ok(chunk)));
        }
        if st.expected.is_some_and(|n| n == st.readers[slot].read) {
            return Poll::Ready(None);
        }
        match st.end {
            Some(End::Complete) => Poll::Ready(None),
            Some(end) => Poll::Ready(Some(Err(end))),
            None => {
                st.readers[slot].waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Has this reader had the whole body (by `Content-Length`, or the fill's clean end)?
    fn read_all(&self, slot: usize) -> bool {
        let st = self.lock();
        let reader = &st.readers[slot];
        let caught_up = reader.cursor == st.dropped + st.chunks.len();
        caught_up && (st.end == Some(End::Complete) || st.expected == Some(reader.read))
    }

    /// The bytes this reader has still to read, when the head gave a length.
    fn remaining(&self, slot: usize) -> Option<u64> {
        let st = self.lock();
        st.expected.map(|n| n.saturating_sub(st.readers[slot].read))
    }

    fn leave(&self, slot: usize) {
        let windowed = {
            let mut st = self.lock();
            st.readers[slot] = Reader::default();
            st.windowed
        };
        if windowed {
            self.drained.notify_one();
        }
    }
}

/// One request waiting on a fill: first for the head, then (as [`FillBody`]) for the
/// body. Dropping it (the viewer went away) leaves the fill running for the others.
pub struct Waiter {
    fill: Arc<Fill>,
    slot: usize,
    /// This request started the fill (a miss, not a coalesced one).
    pub leader: bool,
    joined: Instant,
}

impl Waiter {
    /// The shared head, or how the fill ended without one.
    pub async fn head(&self) -> Result<Head, End> {
        std::future::poll_fn(|cx| self.fill.poll_head(self.slot, cx)).await
    }

    /// How long this waiter has waited so far.
    pub fn waited(&self) -> Duration {
        self.joined.elapsed()
    }

    /// The body, streamed as the fill receives it.
    pub fn into_body(self) -> FillBody {
        FillBody { waiter: self }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.fill.leave(self.slot);
    }
}

/// A waiter's view of the fill's body, from the first byte, as it arrives.
pub struct FillBody {
    waiter: Waiter,
}

/// The error a waiter's body ends with when the fill's body failed.
#[derive(Debug, thiserror::Error)]
#[error("the origin's answer failed while it was being shared")]
pub struct FillAborted;

impl http_body::Body for FillBody {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let w = &self.waiter;
        w.fill
            .poll_chunk(w.slot, cx)
            .map(|next| next.map(|r| r.map(Frame::data).map_err(|_| Box::new(FillAborted) as _)))
    }

    fn is_end_stream(&self) -> bool {
        self.waiter.fill.read_all(self.waiter.slot)
    }

    fn size_hint(&self) -> SizeHint {
        match self.waiter.fill.remaining(self.waiter.slot) {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn fill() -> Arc<Fill> {
        Fill::new(Key::new("o", "/a.ts", None))
    }

    fn head() -> Head {
        Head {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
        }
    }

    #[tokio::test]
    async fn a_late_waiter_reads_from_the_first_byte_and_all_see_the_end() {
        let f = fill();
        let early = f.join(true).expect("open");
        f.set_head(head());
        f.push(Bytes::from_static(b"ab"), 100);
        let late = f.join(false).expect("still open");
        f.push(Bytes::from_static(b"cd"), 100);
        assert_eq!(f.whole().expect("whole body held").concat(), b"abcd");
        f.finish(End::Complete);
        assert!(f.join(false).is_none(), "an ended fill takes no joiners");
        for w in [early, late] {
            assert_eq!(w.head().await.expect("head").status, StatusCode::OK);
            let body = w.into_body().collect().await.expect("clean end").to_bytes();
            assert_eq!(&body[..], b"abcd");
        }
    }

    #[tokio::test]
    async fn an_abort_after_the_head_errors_every_body() {
        let f = fill();
        let w = f.join(true).expect("open");
        f.set_head(head());
        f.push(Bytes::from_static(b"ab"), 100);
        f.finish(End::Aborted);
        assert!(
            w.into_body().collect().await.is_err(),
            "never a clean short end"
        );
    }

    #[tokio::test]
    async fn no_head_and_released_reach_the_waiters() {
        for end in [End::NoHead(OriginError::Timeout), End::Released] {
            let f = fill();
            let w = f.join(true).expect("open");
            f.finish(end);
            assert_eq!(w.head().await.expect_err("no head"), end);
        }
    }

    #[tokio::test]
    async fn past_its_window_a_fill_drops_what_all_have_read() {
        let f = fill();
        let w = f.join(true).expect("open");
        f.set_head(head());
        f.push(Bytes::from_static(b"abc"), 2);
        assert!(f.join(false).is_none(), "a windowed fill takes no joiners");
        let mut body = w.into_body();
        let first = body.frame().await.expect("frame").expect("ok");
        assert_eq!(first.into_data().expect("data"), "abc");
        assert!(f.wait_drained(Duration::from_secs(1)).await);
        f.push(Bytes::from_static(b"d"), 2);
        assert!(f.whole().is_none(), "a dropped prefix is never stored");
        f.finish(End::Complete);
        let rest = body.collect().await.expect("clean").to_bytes();
        assert_eq!(&rest[..], b"d");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_waiter_stops_a_windowed_fill_after_the_limit() {
        let f = fill();
        let _stalled = f.join(true).expect("open");
        f.set_head(head());
        f.push(Bytes::from_static(b"abc"), 2);
        assert!(!f.wait_drained(Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn a_body_of_known_length_ends_when_read_even_before_the_fill_finishes() {
        use http_body::Body as _;
        let f = fill();
        let w = f.join(true).expect("open");
        let mut h = head();
        h.headers.insert(
            http::header::CONTENT_LENGTH,
            http::HeaderValue::from_static("4"),
        );
        f.set_head(h);
        f.push(Bytes::from_static(b"abcd"), 100);
        let mut body = w.into_body();
        assert_eq!(body.size_hint().exact(), Some(4));
        assert!(!body.is_end_stream());
        body.frame().await.expect("frame").expect("ok");
        assert!(
            body.is_end_stream(),
            "hyper may drop it now: that is a complete body"
        );
        assert!(body.frame().await.is_none());
    }
}
