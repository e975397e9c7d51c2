//! The change feed: how every node learns, in order and without loss, what other nodes
//! wrote that edges must enforce (docs/architecture.md, "The change feed").
//!
//! **Sequence numbers.** Every committed write takes the next number from the store's
//! one `meta` row (`UPDATE meta SET version = version + 1 … RETURNING`), as the last
//! step of its transaction. That row lock is held until commit, so writers take their
//! numbers one after the other and each commits before the next can take one: numbers
//! are in commit order, and a snapshot that shows number N shows every write up to N
//! (a `bigserial` would not do: two transactions draw 7 and 8 and may commit 8 first,
//! so a reader at 8 could skip 7 for good). A revocation row carries the number of the
//! write that recorded it; the `meta` row keeps the number of the last write that
//! changed any resource (resources are few: an edge that missed one reloads them all).
//! Writes that edges do not see (users, API tokens, refresh rotations) take a number
//! too; they simply bring no change with it.
//!
//! **Notifications.** On PostgreSQL a write that changed a revocation or a resource
//! calls `pg_notify('tollgate_changes', seq)`, which the database delivers at commit.
//! A notification is only a wake-up: the caller then asks [`Store::changes_since`] for
//! everything after the last number it applied, which is the truth. [`Subscription`] is
//! the running listener ([`Store::subscribe`]); SQLite has none and its nodes poll.
//!
//! This module owns the feed's types and the record of this node's contact with the
//! store ([`FeedStatus`]); it never applies anything (the app does) and sees no HTTP.
//!
//! [`Store::changes_since`]: super::Store::changes_since
//! [`Store::subscribe`]: super::Store::subscribe

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::Revocation;
use crate::resource::Resource;

/// The NOTIFY channel every write that edges must see is announced on (the payload is
/// the write's sequence number as text).
pub const CHANNEL: &str = "tollgate_changes";

/// What [`Store::changes_since`](super::Store::changes_since) found after a sequence
/// number, on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The snapshot's sequence number: everything up to it is included.
    pub seq: u64,
    /// Revocations recorded after the asked-for number, in sequence order.
    pub revocations: Vec<Revocation>,
    /// Every stored resource, when any resource changed after the asked-for number.
    pub resources: Option<Vec<Resource>>,
}

/// A running change-feed listener (PostgreSQL). Dropping it stops the listener.
pub struct Subscription {
    state: Arc<ListenerState>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("problem", &self.problem())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Wrap the listener task that reports into `state`.
    pub(crate) fn new(state: Arc<ListenerState>, task: tokio::task::JoinHandle<()>) -> Self {
        Self { state, task }
    }

    /// Why the listener is not listening, when its last attempt to connect failed;
    /// None while it listens (or reconnects after a connection was cut, before an
    /// attempt has failed).
    pub fn problem(&self) -> Option<String> {
        self.state.problem()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the listener task reports: its last failure, cleared once it listens again.
#[derive(Debug, Default)]
pub(crate) struct ListenerState(Mutex<Option<String>>);

impl ListenerState {
    fn lock(&self) -> MutexGuard<'_, Option<String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn listening(&self) {
        *self.lock() = None;
    }

    /// Record a failed attempt; true when it is the first since the listener last listened.
    pub(crate) fn failed(&self, why: String) -> bool {
        self.lock().replace(why).is_none()
    }

    fn problem(&self) -> Option<String> {
        self.lock().clone()
    }
}

/// How long the listener waits before reconnecting: a ceiling of 100 ms, doubling up to
/// 5 s, and a wait drawn between half the ceiling and the ceiling. The draw spreads a
/// fleet whose connections all broke at the same moment (a database restart or
/// failover): without it every gate would knock at the same instants.
#[derive(Debug)]
pub(crate) struct Backoff(Duration);

impl Backoff {
    pub(crate) const FIRST: Duration = Duration::from_millis(100);
    pub(crate) const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new() -> Self {
        Self(Self::FIRST)
    }

    /// The wait before this attempt; the next one's ceiling is twice as high (at most MAX).
    pub(crate) fn next_wait(&mut self) -> Duration {
        let ceiling = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        ceiling / 2 + ceiling.mul_f64(random_fraction() / 2.0)
    }
}

/// A number in [0, 1): from the standard library's per-process random hash keys, which
/// is random enough to spread reconnects and needs no generator of its own.
fn random_fraction() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// This node's contact with the store, as the app's catch-up loop records it: what
/// `/readyz`, the metrics and the log say about it.
#[derive(Debug, Default)]
pub struct FeedStatus(Mutex<Contact>);

#[derive(Debug, Default)]
struct Contact {
    /// The last sequence number applied at this node.
    applied: u64,
    /// Since when, and why, the store has been unreachable from here; None: reachable.
    down: Option<(Instant, String)>,
}

/// What a recorded contact changed, so the caller logs once per transition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Nothing to say: as before.
    Same,
    /// The store just became unreachable.
    Lost,
    /// It is back, after being unreachable this long.
    Back(Duration),
}

impl FeedStatus {
    fn lock(&self) -> MutexGuard<'_, Contact> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Everything up to `seq` is applied (whether or not the store is reachable now).
    pub fn applied_to(&self, seq: u64) {
        self.lock().applied = seq;
    }

    /// A catch-up succeeded (and the listener, if any, listens): everything up to `seq`
    /// is applied and the store is reachable.
    pub fn reached(&self, seq: u64) -> Transition {
        let mut c = self.lock();
        c.applied = seq;
        match c.down.take() {
            Some((since, _)) => Transition::Back(since.elapsed()),
            None => Transition::Same,
        }
    }

    /// The store could not be reached (a catch-up or the listener failed): keep the
    /// first failure's time, and the latest reason.
    pub fn unreachable(&self, why: String) -> Transition {
        let mut c = self.lock();
        match &mut c.down {
            Some((_, reason)) => {
                *reason = why;
                Transition::Same
            }
            None => {
                c.down = Some((Instant::now(), why));
                Transition::Lost
            }
        }
    }

    /// Whether the last contact succeeded.
    pub fn is_up(&self) -> bool {
        self.lock().down.is_none()
    }

    /// The last sequence number applied here.
    pub fn applied(&self) -> u64 {
        self.lock().applied
    }

    /// The `/readyz` line: `store: ok, seq N`, or `store: unreachable for S s, serving
    /// state as of seq N (<error>)`.
    pub fn line(&self) -> String {
        let c = self.lock();
        match &c.down {
            None => format!("store: ok, seq {}", c.applied),
            Some((since, why)) => format!(
                "store: unreachable for {} s, serving state as of seq {} ({why})",
                since.elapsed().as_secs(),
                c.applied
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reconnect_backoff_doubles_from_100_ms_to_at_most_5_s_and_spreads_each_wait() {
        let ceilings = [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000];
        let mut spread = std::collections::HashSet::new();
        for _ in 0..20 {
            let mut b = Backoff::new();
            for (attempt, ceiling) in ceilings.iter().enumerate() {
                let wait = b.next_wait().as_millis();
                assert!(
                    (ceiling / 2..=*ceiling).contains(&wait),
                    "attempt {attempt}: {wait} ms outside [{}, {ceiling}]",
                    ceiling / 2
                );
                spread.insert((attempt, wait));
            }
        }
        assert!(
            spread.len() > ceilings.len() * 5,
            "waits are not spread: {spread:?}"
        );
    }

    #[test]
    fn the_status_reports_one_loss_and_one_return_and_keeps_the_applied_seq() {
        let s = FeedStatus::default();
        assert_eq!(s.reached(7), Transition::Same);
        assert_eq!(s.line(), "store: ok, seq 7");
        assert_eq!(s.unreachable("refused".into()), Transition::Lost);
        assert_eq!(s.unreachable("timed out".into()), Transition::Same);
        assert!(!s.is_up());
        assert_eq!(
            s.line(),
            "store: unreachable for 0 s, serving state as of seq 7 (timed out)"
        );
        assert!(matches!(s.reached(9), Transition::Back(_)));
        assert_eq!(s.reached(9), Transition::Same);
        assert!(s.is_up());
        assert_eq!((s.applied(), s.line()), (9, "store: ok, seq 9".to_owned()));
    }
}
