//! `catreplay`: remembering which single-use tokens were already presented. Owns the
//! [`ReplayGuard`] interface and an in-memory implementation; never decides which tokens
//! are single-use (the claim does) and never reads the clock (callers pass `now`).
//!
//! A single gate's memory sees only its own requests: a fleet needs a shared store
//! behind the same trait, which the edge integration provides.

use std::collections::HashMap;
use std::sync::Mutex;

/// Records a token's first use.
pub trait ReplayGuard: Send + Sync {
    /// True the first time `id` is presented; false after. `until` is the last second
    /// the token is accepted (`exp` plus the leeway): the record may be dropped only
    /// after it, when the token is refused as expired anyway.
    fn first_use(&self, id: &[u8], until: u64, now: u64) -> bool;
}

/// An in-memory guard holding at most `capacity` live records. When full, expired
/// records are dropped first; if none has expired, a new token is refused (fail closed:
/// forgetting a live record would let that token be replayed).
pub struct MemoryReplayGuard {
    inner: Mutex<Seen>,
    capacity: usize,
}

struct Seen {
    until: HashMap<Vec<u8>, u64>,
    /// The earliest `until` held: a full guard with nothing expired refuses without
    /// scanning (one scan per expiry, not per refused token).
    earliest: u64,
}

impl MemoryReplayGuard {
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Seen {
                until: HashMap::new(),
                earliest: u64::MAX,
            }),
            capacity,
        }
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn first_use(&self, id: &[u8], until: u64, now: u64) -> bool {
        let Ok(mut seen) = self.inner.lock() else {
            return false;
        };
        if seen.until.contains_key(id) {
            return false;
        }
        if seen.until.len() >= self.capacity {
            if seen.earliest >= now {
                return false;
            }
            seen.until.retain(|_, until| *until >= now);
            seen.earliest = seen.until.values().copied().min().unwrap_or(u64::MAX);
            if seen.until.len() >= self.capacity {
                return false;
            }
        }
        seen.earliest = seen.earliest.min(until);
        seen.until.insert(id.to_vec(), until);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_outlives_exp_by_the_leeway_even_in_a_full_guard() {
        let guard = MemoryReplayGuard::new(1);
        // A single-use token with exp 100, accepted until 130 (30 s leeway).
        assert!(guard.first_use(b"a", 130, 90));
        // Full: another token cannot evict it while it may still be accepted.
        assert!(!guard.first_use(b"b", 200, 100), "a is live until 130");
        assert!(!guard.first_use(b"b", 200, 130), "a is live at 130");
        assert!(
            !guard.first_use(b"a", 130, 130),
            "a replayed at its last second"
        );
        // After it, its record makes room.
        assert!(guard.first_use(b"b", 200, 131));
        assert!(!guard.first_use(b"b", 200, 150));
    }
}
