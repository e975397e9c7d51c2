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
    /// True the first time `id` is presented; false after. The record may be dropped
    /// once `until` (the token's `exp`) has passed, when the token is refused anyway.
    fn first_use(&self, id: &[u8], until: u64, now: u64) -> bool;
}

/// An in-memory guard holding at most `capacity` live records. When full, expired
/// records are dropped first; if none has expired, a new token is refused (fail closed:
/// forgetting a live record would let that token be replayed).
pub struct MemoryReplayGuard {
    seen: Mutex<HashMap<Vec<u8>, u64>>,
    capacity: usize,
}

impl MemoryReplayGuard {
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }
}

impl ReplayGuard for MemoryReplayGuard {
    fn first_use(&self, id: &[u8], until: u64, now: u64) -> bool {
        let Ok(mut seen) = self.seen.lock() else {
            return false;
        };
        if seen.contains_key(id) {
            return false;
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until > now);
            if seen.len() >= self.capacity {
                return false;
            }
        }
        seen.insert(id.to_vec(), until);
        true
    }
}
