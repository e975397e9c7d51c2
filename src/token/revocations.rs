//! The revocation sets the edge checks on every request (cached grant or not): token ids
//! (`jti`), subjects, organisations and refresh families, and how long a `jti`
//! revocation is worth keeping.
//!
//! **Bounded memory.** A token revoked by its `jti` can only be presented until its
//! `exp` plus the leeway (or its `sxp` plus the leeway: renewed copies of a live token
//! share its `jti`). After that the edge refuses it as `expired` anyway, so the entry
//! protects nothing and [`Revocations::prune`] drops it. Each `jti` entry therefore
//! records until when it matters ([`JtiRetention::until`]): the token's own end when
//! the revoker gives it, else the longest lifetime any token of this gate may have
//! (`token.max_lifetime`) from now, else for ever (a gate that may issue tokens without
//! `exp`, or without a cap, cannot know when such a token stops working).
//!
//! Subject, organisation and family revocations are kept for ever: they stop every
//! token of a viewer, a customer or a login, including tokens issued *after* the
//! revocation (an organisation revoked today must not come back once today's tokens
//! have expired), so no token lifetime bounds them; and there are few of them.
//!
//! **The request path** ([`Revocations::is_revoked`]) is one atomic load when nothing
//! is revoked, else a hash lookup per set: no allocation, no clock. A `jti` made by
//! this gate (32 lowercase hex digits, [`super::issue::random_id`]) is kept as its 16
//! bytes rather than as a `String` (less than half the memory: README, Revocation), and
//! a verified grant carries that key ([`Grant::jti_key`]), so for such a token the
//! request path neither parses the `jti` nor hashes more than 16 bytes. Any other
//! `jti` (a token signed elsewhere) is kept as text. The two forms never meet, so no
//! two different `jti` values can share an entry.
//!
//! This module knows no store and no configuration: callers pass expiry times and `now`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::{DashMap, DashSet};

use super::claims::Grant;

/// An entry's expiry for a revocation kept for ever. Entries keep their expiry in 32
/// bits (a sixth of an entry less than 64): a time past 2106 counts as for ever.
const FOREVER: u32 = u32::MAX;

/// How long a `jti` revocation must be kept: the rule the admin's revoke operation
/// applies to every `jti` revocation it records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JtiRetention {
    /// The longest lifetime (from `iat` to `exp`, and to `sxp`) any token this gate
    /// issues may have (`token.max_lifetime`). None: unbounded (tokens may never
    /// expire, or have any lifetime), so a revocation without `exp` is kept for ever.
    pub longest_lifetime: Option<Duration>,
    /// `token.leeway`: the edge accepts a token until `exp` plus this.
    pub leeway: Duration,
}

impl JtiRetention {
    /// Until when (Unix seconds, inclusive) a `jti` revocation made at `now` matters:
    /// `exp` plus the leeway when the revoker gives the token's end; else `now` plus
    /// the longest lifetime plus the leeway (the token was issued at or before `now`);
    /// None (for ever) when lifetimes are unbounded.
    pub fn until(&self, now: u64, exp: Option<u64>) -> Option<u64> {
        let leeway = self.leeway.as_secs();
        match (exp, self.longest_lifetime) {
            (Some(exp), _) => Some(exp.saturating_add(leeway)),
            (None, Some(longest)) => {
                Some(now.saturating_add(longest.as_secs()).saturating_add(leeway))
            }
            (None, None) => None,
        }
    }
}

/// Each byte's value as a lowercase hex digit, or 0xff: a table lookup per digit keeps
/// the conversion branch-free on the request path.
static HEX_DIGIT: [u8; 256] = hex_digits();

const fn hex_digits() -> [u8; 256] {
    let mut table = [0xff; 256];
    let mut d = 0;
    while d < 16 {
        let c = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        table[c as usize] = d;
        d += 1;
    }
    table
}

/// The 16 bytes of a `jti` this gate made: exactly 32 lowercase hex digits (uppercase
/// is another string, so it stays text).
pub(super) fn own_jti(jti: &str) -> Option<[u8; 16]> {
    let hex = jti.as_bytes();
    if hex.len() != 32 {
        return None;
    }
    let mut value = 0u128;
    let mut seen = 0u8;
    for &c in hex {
        let digit = HEX_DIGIT[usize::from(c)];
        seen |= digit;
        value = value << 4 | u128::from(digit & 0xf);
    }
    (seen < 16).then_some(value.to_be_bytes())
}

/// An own `jti`'s bytes as a map key: hashed in one 16-byte write (an array's own
/// `Hash` adds a length), and byte-aligned, so an entry with its 4-byte expiry takes
/// 20 bytes (a `u128` key would be padded to 32).
#[derive(PartialEq, Eq)]
struct OwnJti([u8; 16]);

impl std::hash::Hash for OwnJti {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.0);
    }
}

/// Record `key` until `until`, or extend its entry to `until` when that is later.
/// True when it was new.
fn insert_or_extend<K: Eq + std::hash::Hash>(map: &DashMap<K, u32>, key: K, until: u32) -> bool {
    let mut new = false;
    map.entry(key)
        .and_modify(|old| *old = (*old).max(until))
        .or_insert_with(|| {
            new = true;
            until
        });
    new
}

/// Revoked token ids, each with the last second it matters (see the module doc).
#[derive(Default)]
struct JtiSet {
    /// Ids this gate made, as their 16 bytes.
    own: DashMap<OwnJti, u32>,
    /// Any other id, as text.
    other: DashMap<Box<str>, u32>,
}

impl JtiSet {
    /// Record `jti` until `until`, keeping the later expiry when it is already there
    /// (a second revocation never shortens the first). True when it was new.
    fn insert(&self, jti: &str, until: u32) -> bool {
        match own_jti(jti) {
            Some(key) => insert_or_extend(&self.own, OwnJti(key), until),
            None => insert_or_extend(&self.other, jti.into(), until),
        }
    }

    /// Is `jti` revoked? `key` is its [`own_jti`] when the caller has it already.
    fn contains(&self, jti: &str, key: Option<[u8; 16]>) -> bool {
        match key.or_else(|| own_jti(jti)) {
            Some(key) => self.own.contains_key(&OwnJti(key)),
            None => self.other.contains_key(jti),
        }
    }

    /// Drop every entry that stopped mattering before `now`; returns how many.
    fn prune(&self, now: u64) -> usize {
        let mut dropped = 0;
        let mut keep = |until: &u32| {
            let live = *until == FOREVER || u64::from(*until) >= now;
            dropped += usize::from(!live);
            live
        };
        self.own.retain(|_, until| keep(until));
        self.other.retain(|_, until| keep(until));
        dropped
    }

    fn len(&self) -> usize {
        self.own.len() + self.other.len()
    }
}

/// Revoked token ids, subjects, organisations and refresh families, checked on every
/// request (cached or not).
#[derive(Default)]
pub struct Revocations {
    jti: JtiSet,
    sub: DashSet<String>,
    org: DashSet<String>,
    family: DashSet<String>,
    /// Entries in all sets: with none, the check is one atomic load.
    count: AtomicUsize,
}

impl Revocations {
    fn counted(&self, new: bool) {
        if new {
            self.count.fetch_add(1, Ordering::Release);
        }
    }

    fn add(&self, set: &DashSet<String>, value: &str) {
        self.counted(set.insert(value.to_string()));
    }

    /// Revoke the token with this `jti` until `until` (Unix seconds, inclusive; None:
    /// for ever). Revoking it again keeps the later of the two.
    pub fn revoke_jti(&self, jti: &str, until: Option<u64>) {
        let until = until.map_or(FOREVER, |t| u32::try_from(t).unwrap_or(FOREVER));
        self.counted(self.jti.insert(jti, until));
    }

    pub fn revoke_subject(&self, sub: &str) {
        self.add(&self.sub, sub);
    }

    pub fn revoke_org(&self, org: &str) {
        self.add(&self.org, org);
    }

    pub fn revoke_family(&self, family: &str) {
        self.add(&self.family, family);
    }

    /// Revoke by kind name (`jti`, `subject`, `org` or `family`, the names [`counts`]
    /// reports and the store records); `until` bounds a `jti` revocation only (the
    /// other kinds are kept for ever: see the module doc). Returns false, changing
    /// nothing, for any other kind: callers hold stored or submitted revocations, and
    /// this module knows no store.
    ///
    /// [`counts`]: Revocations::counts
    pub fn revoke(&self, kind: &str, value: &str, until: Option<u64>) -> bool {
        match kind {
            "jti" => self.revoke_jti(value, until),
            "subject" => self.revoke_subject(value),
            "org" => self.revoke_org(value),
            "family" => self.revoke_family(value),
            _ => return false,
        }
        true
    }

    /// Forget the `jti` revocations that stopped mattering before `now` (their tokens
    /// are refused as expired). Returns how many were dropped. Called once a minute by
    /// the store refresh loop; the request path never waits for more than one shard.
    pub fn prune(&self, now: u64) -> usize {
        let dropped = self.jti.prune(now);
        self.count.fetch_sub(dropped, Ordering::Release);
        dropped
    }

    /// Entries in force by kind (`jti`, `subject`, `org`, `family`).
    pub fn counts(&self) -> [(&'static str, usize); 4] {
        [
            ("jti", self.jti.len()),
            ("subject", self.sub.len()),
            ("org", self.org.len()),
            ("family", self.family.len()),
        ]
    }

    /// Is this `jti` revoked? For credentials that carry an id but are no native
    /// token (a foreign format's session id: `token::foreign`).
    pub fn is_jti_revoked(&self, jti: &str) -> bool {
        self.count.load(Ordering::Acquire) != 0 && self.jti.contains(jti, None)
    }

    pub fn is_revoked(&self, grant: &Grant) -> bool {
        if self.count.load(Ordering::Acquire) == 0 {
            return false;
        }
        let hit = |set: &DashSet<String>, v: &Option<String>| {
            v.as_deref().is_some_and(|v| set.contains(v))
        };
        grant
            .jti
            .as_deref()
            .is_some_and(|j| self.jti.contains(j, grant.jti_key))
            || hit(&self.sub, &grant.sub)
            || hit(&self.org, &grant.org)
            || hit(&self.family, &grant.fam)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::claims::Scope;
    use crate::token::issue::random_id;

    fn grant(jti: &str, sub: &str) -> Grant {
        Grant {
            kid: "k".into(),
            sub: Some(sub.into()),
            jti: Some(jti.into()),
            jti_key: None,
            nbf: None,
            exp: Some(1_000),
            sxp: None,
            org: Some("o".into()),
            scope: Scope::Account,
            prj: None,
            rid: None,
            rty: None,
            acl: vec![],
            ip: None,
            fam: None,
            admin: false,
        }
    }

    #[test]
    fn revocations_match_jti_and_subject() {
        let id = random_id().expect("id");
        let g = grant(&id, "u1");
        let r = Revocations::default();
        assert!(!r.is_revoked(&g));
        r.revoke_subject("u1");
        assert!(r.is_revoked(&g));
        let r = Revocations::default();
        r.revoke_jti(&id, None);
        assert!(r.is_revoked(&g));
        assert!(!r.is_revoked(&grant(&random_id().expect("id"), "u1")));
    }

    #[test]
    fn revoke_by_kind_name_fills_the_set_of_that_kind_and_ignores_other_names() {
        let r = Revocations::default();
        for kind in ["jti", "subject", "org", "family"] {
            assert!(r.revoke(kind, "v", None), "{kind}");
        }
        assert!(!r.revoke("user", "v", None));
        assert_eq!(
            r.counts(),
            [("jti", 1), ("subject", 1), ("org", 1), ("family", 1)]
        );
    }

    /// Our own ids are kept as bytes, others as text: an id that differs only in case,
    /// or a non-hex id of the same length, is another token.
    #[test]
    fn a_jti_matches_only_itself_in_either_form() {
        let own = random_id().expect("id");
        let upper = own.to_uppercase();
        let foreign = "z".repeat(32);
        let r = Revocations::default();
        r.revoke_jti(&own, None);
        r.revoke_jti(&foreign, None);
        assert!(r.is_revoked(&grant(&own, "a")));
        assert!(r.is_revoked(&grant(&foreign, "a")));
        assert!(!r.is_revoked(&grant(&upper, "a")));
        assert!(!r.is_revoked(&grant(&own[..31], "a")));
        r.revoke_jti(&upper, None);
        assert!(r.is_revoked(&grant(&upper, "a")));
        assert_eq!(r.counts()[0], ("jti", 3));
    }

    /// The memory bound: a jti revocation whose token can no longer be presented
    /// leaves the set at the next prune; one that still matters stays, and one made
    /// without a bound stays for ever. Both forms of jti, and the other kinds untouched.
    #[test]
    fn pruning_drops_expired_jti_revocations_and_keeps_the_rest() {
        let (soon, later, never) = (
            random_id().expect("id"),
            "external-id-1".to_string(),
            random_id().expect("id"),
        );
        let r = Revocations::default();
        r.revoke_jti(&soon, Some(1_000));
        r.revoke_jti(&later, Some(2_000));
        r.revoke_jti(&never, None);
        r.revoke_subject("s");
        assert_eq!(r.prune(1_000), 0, "still matters at its last second");
        assert_eq!(r.prune(1_001), 1);
        assert!(!r.is_revoked(&grant(&soon, "a")));
        assert!(r.is_revoked(&grant(&later, "a")));
        assert_eq!(r.prune(2_001), 1);
        assert!(!r.is_revoked(&grant(&later, "a")));
        assert_eq!(r.prune(u64::MAX), 0);
        assert!(r.is_revoked(&grant(&never, "a")));
        assert!(r.is_revoked(&grant("other", "s")));
        assert_eq!(
            r.counts(),
            [("jti", 1), ("subject", 1), ("org", 0), ("family", 0)]
        );
    }

    #[test]
    fn revoking_again_keeps_the_later_expiry() {
        let id = random_id().expect("id");
        let r = Revocations::default();
        r.revoke_jti(&id, Some(2_000));
        r.revoke_jti(&id, Some(1_000));
        assert_eq!(r.prune(1_500), 0);
        r.revoke_jti(&id, None);
        r.revoke_jti(&id, Some(3_000));
        assert_eq!(r.prune(5_000), 0, "once unbounded, always unbounded");
        assert!(r.is_revoked(&grant(&id, "a")));
        assert_eq!(r.counts()[0], ("jti", 1));
    }

    #[test]
    fn an_expiry_beyond_32_bits_is_kept_for_ever() {
        let id = random_id().expect("id");
        let r = Revocations::default();
        r.revoke_jti(&id, Some(u64::from(u32::MAX) + 1));
        assert_eq!(r.prune(u64::MAX), 0);
        assert!(r.is_revoked(&grant(&id, "a")));
    }

    #[test]
    fn once_pruned_to_empty_the_check_is_the_fast_path_again() {
        let id = random_id().expect("id");
        let r = Revocations::default();
        r.revoke_jti(&id, Some(10));
        assert_eq!(r.prune(11), 1);
        assert_eq!(r.count.load(Ordering::Acquire), 0);
        assert!(!r.is_revoked(&grant(&id, "a")));
    }

    #[test]
    fn a_jti_revocation_lasts_until_the_tokens_end_or_the_longest_lifetime() {
        let capped = JtiRetention {
            longest_lifetime: Some(Duration::from_secs(3_600)),
            leeway: Duration::from_secs(30),
        };
        assert_eq!(capped.until(1_000, None), Some(1_000 + 3_600 + 30));
        assert_eq!(capped.until(1_000, Some(1_500)), Some(1_530));
        let open = JtiRetention {
            longest_lifetime: None,
            ..capped
        };
        assert_eq!(open.until(1_000, None), None);
        assert_eq!(open.until(1_000, Some(1_500)), Some(1_530));
        assert_eq!(open.until(1_000, Some(u64::MAX)), Some(u64::MAX));
    }
}
