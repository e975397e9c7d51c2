//! Following the store: the loop that applies the store's change feed to the running
//! gate (revocations one by one, resources whole), and the one-shot sync used at start
//! and on reload (docs/architecture.md, "The change feed").
//!
//! The loop wakes on the store's notification listener (PostgreSQL) or on the
//! `store.poll` tick (the safety net, and SQLite's only way to see another process's
//! writes), asks for the changes after the last sequence number applied here, applies
//! them and records the new number. It reports this node's contact with the store in
//! [`FeedStatus`] (for `/readyz`), two gauges and one log line per transition; a store
//! that is away changes nothing already in memory: the edge serves on.
//!
//! Owns the store-to-memory conversion (store records into the edge registry and the
//! token module's [`Revocations`]), so `token` never sees a store type. Never serves a
//! request and never touches a listener.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::LiveCell;
use crate::edge::EdgeService;
use crate::metrics::Metrics;
use crate::store::feed::{FeedStatus, Transition};
use crate::store::{Changes, Revocation, Store, Subscription};
use crate::token::Revocations;

/// Load the store's resources into the edge registry and its revocations into the
/// in-memory set, from one snapshot. Returns that snapshot's sequence number: it is
/// read with the state, never after it, so a change committed meanwhile is newer than
/// the number and the next catch-up brings it.
pub fn sync_from_store(
    store: &dyn Store,
    edge: &EdgeService,
    revocations: &Revocations,
) -> crate::store::Result<u64> {
    let changes = store.changes_since(0)?;
    edge.set_stored_resources(changes.resources.unwrap_or_default());
    apply_all(revocations, &changes.revocations);
    Ok(changes.seq)
}

/// What the loop follows the store with, and what it reports to.
pub(super) struct Follower {
    pub store: Arc<dyn Store>,
    pub live: Arc<LiveCell>,
    pub revocations: Arc<Revocations>,
    pub status: Arc<FeedStatus>,
    pub metrics: Arc<Metrics>,
    pub poll: Duration,
}

/// Where this node is in the feed: the last sequence number applied, and the edge
/// generation the stored resources were last put into (a reload makes a new edge).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Applied {
    pub seq: u64,
    pub generation: u64,
}

/// Follow the store until `shutdown`: subscribe to its notifications (when it has
/// them), then catch up on every wake-up and every poll tick. Also prunes the rate
/// limiters once a minute.
pub(super) async fn refresh_loop(f: Follower, mut applied: Applied, shutdown: CancellationToken) {
    let wake = Arc::new(Notify::new());
    let subscription = f.store.subscribe(wake.clone());
    let mut tick = tokio::time::interval(f.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pruned = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = wake.notified() => {}
        }
        if pruned.elapsed() >= Duration::from_secs(60) {
            pruned = Instant::now();
            let current = f.live.get();
            current.edge.limits().prune();
            current.admin.prune_limits();
            f.revocations.prune(crate::clock::now());
        }
        applied = catch_up(&f, applied, subscription.as_ref()).await;
    }
}

/// One catch-up: apply what changed after `applied`, then record and report the
/// store's state. Returns where this node is now.
async fn catch_up(f: &Follower, applied: Applied, subscription: Option<&Subscription>) -> Applied {
    let current = f.live.get();
    let generation = current.generation;
    let (store, edge, revs) = (f.store.clone(), current.edge.clone(), f.revocations.clone());
    let new_edge = generation != applied.generation;
    let result = tokio::task::spawn_blocking(move || {
        let changes = changes_after(store.as_ref(), applied.seq, new_edge)?;
        apply(&changes, &edge, &revs);
        Ok::<_, crate::store::StoreError>(changes.seq)
    })
    .await;
    let (next, problem) = match result {
        Ok(Ok(seq)) => (Applied { seq, generation }, None),
        Ok(Err(e)) => (applied, Some(e.to_string())),
        Err(e) => (applied, Some(format!("the catch-up task failed: {e}"))),
    };
    let problem = problem.or_else(|| {
        subscription
            .and_then(Subscription::problem)
            .map(|p| format!("change feed: {p}"))
    });
    report(f, next.seq, problem);
    next
}

/// The changes after `after`. When the store's number is below it (a database restored
/// from a backup, or a failover that lost writes) everything is read again: numbers
/// above it will be reused by other changes. With `whole_registry` (a reload made a
/// new edge) the resources come along whether they changed or not.
fn changes_after(
    store: &dyn Store,
    after: u64,
    whole_registry: bool,
) -> crate::store::Result<Changes> {
    let mut changes = store.changes_since(after)?;
    if changes.seq < after {
        tracing::warn!(
            applied = after,
            store = changes.seq,
            "store: its sequence number went back; reading everything again"
        );
        changes = store.changes_since(0)?;
        changes.resources.get_or_insert_with(Vec::new);
    }
    if whole_registry && changes.resources.is_none() {
        changes.resources = Some(store.resources()?);
    }
    Ok(changes)
}

/// Apply one batch of changes: revocations one by one, resources whole.
fn apply(changes: &Changes, edge: &EdgeService, revocations: &Revocations) {
    apply_all(revocations, &changes.revocations);
    if let Some(resources) = &changes.resources {
        edge.set_stored_resources(resources.iter().cloned());
    }
}

/// Record a catch-up's outcome in the status and the gauges, logging once when the
/// store becomes unreachable and once when it is back.
fn report(f: &Follower, seq: u64, problem: Option<String>) {
    let transition = match problem {
        None => f.status.reached(seq),
        Some(why) => {
            f.status.applied_to(seq);
            f.status.unreachable(why)
        }
    };
    f.metrics.store_up.set(i64::from(f.status.is_up()));
    f.metrics
        .store_applied_seq
        .set(i64::try_from(seq).unwrap_or(i64::MAX));
    match transition {
        Transition::Same => {}
        Transition::Lost => tracing::warn!(
            seq,
            status = %f.status.line(),
            "store: unreachable; serving from memory, will catch up when it is back"
        ),
        Transition::Back(after) => tracing::info!(
            seq,
            down_seconds = after.as_secs(),
            "store: reachable again; caught up"
        ),
    }
}

/// Load every stored revocation into the in-memory set. Returns how many were read.
pub fn load_revocations(store: &dyn Store, revs: &Revocations) -> crate::store::Result<usize> {
    let all = store.revocations()?;
    apply_all(revs, &all);
    Ok(all.len())
}

/// Add stored revocations to the in-memory set the edge checks, each with how long it
/// matters.
fn apply_all(revs: &Revocations, all: &[Revocation]) {
    for r in all {
        revs.revoke(r.kind.as_str(), &r.value, r.expires);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::RevocationKind;

    /// A store whose number is below what this node applied (restored from a backup,
    /// or a failover that lost writes) will hand its next numbers to other changes:
    /// everything is read again instead of trusting the number.
    #[test]
    fn a_store_whose_sequence_went_back_is_read_again_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("open");
        for value in ["a", "b"] {
            store
                .revoke(&Revocation {
                    kind: RevocationKind::Jti,
                    value: value.into(),
                    at: 1,
                    expires: None,
                })
                .expect("revoke");
        }
        let behind = changes_after(&store, 10, false).expect("changes");
        assert_eq!(behind.seq, 2);
        assert_eq!(
            behind.revocations.len(),
            2,
            "all of them, not those after 10"
        );
        assert_eq!(
            behind.resources,
            Some(Vec::new()),
            "the registry is replaced too"
        );
        let current = changes_after(&store, 2, false).expect("changes");
        assert_eq!((current.revocations.len(), current.resources), (0, None));
        let reloaded = changes_after(&store, 2, true).expect("changes");
        assert_eq!(
            reloaded.resources,
            Some(Vec::new()),
            "a new edge gets the registry"
        );
    }

    #[test]
    fn every_stored_revocation_is_loaded_into_the_set_of_its_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("open");
        let kinds = [
            RevocationKind::Jti,
            RevocationKind::Subject,
            RevocationKind::Org,
            RevocationKind::Family,
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            store
                .revoke(&Revocation {
                    kind,
                    value: format!("v{i}"),
                    at: 1,
                    expires: None,
                })
                .expect("revoke");
        }
        let revs = Revocations::default();
        assert_eq!(load_revocations(&store, &revs).expect("load"), 4);
        assert_eq!(
            revs.counts(),
            [("jti", 1), ("subject", 1), ("org", 1), ("family", 1)]
        );
    }

    /// A jti revocation loaded from the store keeps its expiry in memory, so the
    /// once-a-minute prune drops it there too.
    #[test]
    fn a_stored_jti_revocation_keeps_its_expiry_in_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("t.db")).expect("open");
        for (value, expires) in [("j1", Some(100)), ("j2", None)] {
            store
                .revoke(&Revocation {
                    kind: RevocationKind::Jti,
                    value: value.into(),
                    at: 1,
                    expires,
                })
                .expect("revoke");
        }
        let revs = Revocations::default();
        load_revocations(&store, &revs).expect("load");
        assert_eq!(revs.prune(101), 1);
        assert_eq!(revs.counts()[0], ("jti", 1));
    }
}
