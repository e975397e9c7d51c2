//! Following the store: the loop that reloads stored resources and revocations into
//! the running gate when the store's version moves, and the one-shot sync used at start
//! and on reload.
//!
//! Owns the store-to-memory conversion (store records into the edge registry and the
//! token module's [`Revocations`]), so `token` never sees a store type. Never serves a
//! request and never touches a listener.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::LiveCell;
use crate::edge::EdgeService;
use crate::store::{Revocation, Store};
use crate::token::Revocations;

/// Load the store's resources into the edge registry and its revocations into the
/// in-memory set. Returns the store version that was read.
pub fn sync_from_store(
    store: &dyn Store,
    edge: &EdgeService,
    revocations: &Revocations,
) -> crate::store::Result<u64> {
    let version = store.version()?;
    let resources = store.resources()?;
    edge.set_stored_resources(resources);
    load_revocations(store, revocations)?;
    Ok(version)
}

/// Follow the store: when its version moves (or a reload swapped in a new edge), reload
/// resources and revocations (so a change made by any node, or the CLI, is enforced
/// here within one poll interval). Also prunes the rate limiters once a minute.
pub(super) async fn refresh_loop(
    store: Arc<dyn Store>,
    live: Arc<LiveCell>,
    revocations: Arc<Revocations>,
    mut seen: (u64, u64),
    poll: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(poll);
    let mut since_prune = Duration::ZERO;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let current = live.get();
        since_prune += poll;
        if since_prune >= Duration::from_secs(60) {
            since_prune = Duration::ZERO;
            current.edge.limits().prune();
            current.admin.prune_limits();
            revocations.prune(crate::clock::now());
        }
        let generation = current.generation;
        let (s, e, r) = (store.clone(), current.edge.clone(), revocations.clone());
        let last = seen;
        let result = tokio::task::spawn_blocking(move || {
            let v = s.version()?;
            if (v, generation) == last {
                return Ok(v);
            }
            sync_from_store(s.as_ref(), &e, &r)
        })
        .await;
        match result {
            Ok(Ok(v)) => seen = (v, generation),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "store refresh failed; keeping the last state")
            }
            Err(e) => tracing::warn!(error = %e, "store refresh task failed"),
        }
    }
}

/// Load every stored revocation into the in-memory set. Returns how many were read.
pub fn load_revocations(store: &dyn Store, revs: &Revocations) -> crate::store::Result<usize> {
    let all = store.revocations()?;
    for r in &all {
        apply(revs, r);
    }
    Ok(all.len())
}

/// Add one stored revocation to the in-memory set the edge checks.
fn apply(revs: &Revocations, r: &Revocation) {
    revs.revoke(r.kind.as_str(), &r.value, r.expires);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use crate::store::RevocationKind;

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
