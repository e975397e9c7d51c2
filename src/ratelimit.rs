//! Rate limiters (governor, keyed) and their pruning: the gate's limiter toolkit.
//!
//! Owns every limiter and nothing about HTTP: callers ask `check` and turn a refusal into
//! their own 429 with `Retry-After`. [`Rate`] is the configured "n per period, with a
//! burst"; [`Keyed`] is one budget per key (address, hashed subject from [`SubjectKeys`],
//! account); [`LoginLimiter`] and [`FailureBudget`] are built from it. Keyed limiters remember
//! every key they saw, so a timer calls `prune` to forget keys whose budget is full again
//! (a forgotten key and a recovered key behave the same): memory is bounded by the keys
//! active within one recovery period, not by every address or username ever seen under a
//! flood (`docs/threat-model.md`, B1). [`FailureBudget`] exists so a flood of bad tokens is refused before
//! any signature work: its `check` only reads a small map of blocked addresses and never
//! spends, so honest traffic costs one lookup and successful verifications never touch
//! it; only `failed` spends, and a refused spend blocks the address until governor says a
//! cell is back. Time comes from the limiter's governor clock, which tests replace with
//! `FakeRelativeClock`.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{NotUntil, Quota, RateLimiter};

/// The shortest wait we report: a refusal must never say "retry now".
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Account names are bounded before they become keys, so a huge username cannot bloat
/// the map.
const ACCOUNT_KEY_CHARS: usize = 128;

/// `count` per `period`, with a burst of `burst`: e.g. `100/s burst 200`, `30/m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Rate {
    /// Parses `"<n>/s"`, `"<n>/m"` or `"<n>/h"`, optionally followed by `burst <b>`
    /// (the burst defaults to `n`). Both numbers must be at least 1. Whitespace between
    /// the parts is free. `"off"` is not a rate: the config decides what "no limit" means.
    pub fn parse(s: &str) -> Option<Rate> {
        let (count, rest) = s.split_once('/')?;
        let count = positive(count.trim())?;
        let mut words = rest.split_whitespace();
        let period = match words.next()? {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return None,
        };
        let burst = match words.next() {
            None => count,
            Some("burst") => positive(words.next()?)?,
            Some(_) => return None,
        };
        if words.next().is_some() {
            return None;
        }
        Some(Rate {
            count,
            period,
            burst,
        })
    }

    /// The governor quota: one cell every `period / count`, at most `burst` at once.
    /// Zero fields (they are public) are treated as 1 and a zero interval as 1 ns, so this
    /// cannot panic or build an unlimited limiter by accident.
    pub fn quota(&self) -> Quota {
        let interval = (self.period / self.count.max(1)).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        Quota::with_period(interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst)
    }
}

/// A decimal number ≥ 1, digits only (no sign, no spaces inside).
fn positive(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|&n| n >= 1)
}

/// The canonical form `Rate::parse` reads back (`burst` only when it differs from the
/// count). A period other than a second, minute or hour (only possible by building the
/// struct by hand) is printed as `<n>/<period>` for logs and does not parse.
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period.as_secs() {
            _ if self.period.subsec_nanos() != 0 => write!(f, "{}/{:?}", self.count, self.period),
            1 => write!(f, "{}/s", self.count),
            60 => write!(f, "{}/m", self.count),
            3600 => write!(f, "{}/h", self.count),
            _ => write!(f, "{}/{:?}", self.count, self.period),
        }?;
        if self.burst != self.count {
            write!(f, " burst {}", self.burst)?;
        }
        Ok(())
    }
}

type KeyedLimiter<K, C> =
    RateLimiter<K, DefaultKeyedStateStore<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// One budget per key, over governor's dashmap keyed state.
pub struct Keyed<K, C = DefaultClock>
where
    K: Hash + Eq + Clone,
    C: Clock,
{
    limiter: KeyedLimiter<K, C>,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    /// A limiter on the default (monotonic) clock.
    pub fn new(rate: &Rate) -> Keyed<K> {
        Keyed::with_clock(rate, DefaultClock::default())
    }
}

impl<K: Hash + Eq + Clone, C: Clock> Keyed<K, C> {
    /// A limiter on `clock` (tests pass a `FakeRelativeClock`).
    pub fn with_clock(rate: &Rate, clock: C) -> Self {
        Keyed {
            limiter: RateLimiter::dashmap_with_clock(rate.quota(), clock),
        }
    }

    /// Spends one cell of `key`'s budget: Ok, or how long until the next request would be
    /// allowed (at least 1 ms).
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.spend(key).map_err(|refused| self.wait_for(&refused))
    }

    /// Forgets keys whose budget is full again, and gives the memory back.
    pub fn prune(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    fn spend(&self, key: &K) -> Result<(), NotUntil<C::Instant>> {
        self.limiter.check_key(key)
    }

    fn now(&self) -> C::Instant {
        self.limiter.clock().now()
    }

    fn wait_for(&self, refused: &NotUntil<C::Instant>) -> Duration {
        refused.wait_time_from(self.now()).max(MIN_WAIT)
    }
}

/// A failed-verification budget per client address, so a flood of bad tokens is refused
/// before any signature work. [`check`](Self::check) never spends; [`failed`](Self::failed)
/// spends one cell, and a refused spend blocks the address until a cell is back.
pub struct FailureBudget<C = DefaultClock>
where
    C: Clock,
{
    spent: Keyed<IpAddr, C>,
    /// Blocked addresses and the instant their block ends.
    blocked: DashMap<IpAddr, C::Instant>,
}

impl FailureBudget {
    /// A budget on the default (monotonic) clock.
    pub fn new(rate: &Rate) -> Self {
        FailureBudget::with_clock(rate, DefaultClock::default())
    }
}

impl<C: Clock> FailureBudget<C> {
    /// A budget on `clock` (tests pass a `FakeRelativeClock`).
    pub fn with_clock(rate: &Rate, clock: C) -> Self {
        FailureBudget {
            spent: Keyed::with_clock(rate, clock),
            blocked: DashMap::new(),
        }
    }

    /// Ok unless `ip` is blocked; then how long the block still lasts (at least 1 ms).
    /// Spends nothing: one read of the blocked map.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let ip = ip.to_canonical();
        let Some(until) = self.blocked.get(&ip).map(|entry| *entry.value()) else {
            return Ok(());
        };
        let now = self.spent.now();
        if now < until {
            Err(Duration::from(until.duration_since(now)).max(MIN_WAIT))
        } else {
            // Expired: `prune` removes it; taking a write lock here would slow the hot path.
            Ok(())
        }
    }

    /// Records one failed verification from `ip`. When its budget is spent the address is
    /// blocked until governor says a cell is available again.
    pub fn failed(&self, ip: IpAddr) {
        let ip = ip.to_canonical();
        if let Err(refused) = self.spent.spend(&ip) {
            let until = refused.earliest_possible();
            self.blocked
                .entry(ip)
                .and_modify(|current| *current = (*current).max(until))
                .or_insert(until);
        }
    }

    /// Drops expired blocks and addresses whose budget is full again.
    pub fn prune(&self) {
        let now = self.spent.now();
        self.blocked.retain(|_, until| now < *until);
        self.blocked.shrink_to_fit();
        self.spent.prune();
    }

    /// Addresses currently remembered (budgets and blocks).
    pub fn len(&self) -> usize {
        self.spent.len() + self.blocked.len()
    }
}

/// Turns token subjects into limiter keys with a per-process random keyed hash (SipHash
/// with random keys): a `u64` key means no allocation per request, and as the keys are
/// secret an attacker cannot choose subjects that collide with a victim's budget.
#[derive(Default)]
pub struct SubjectKeys {
    hasher: RandomState,
}

impl SubjectKeys {
    pub fn new() -> Self {
        SubjectKeys::default()
    }

    /// The limiter key for `subject` (stable for this process only).
    pub fn key(&self, subject: &str) -> u64 {
        self.hasher.hash_one(subject)
    }
}

/// The `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A login attempt refused: by which limiter (`login_ip` or `login_account`, a metric
/// label) and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub limiter: &'static str,
    pub wait: Duration,
}

/// Login attempts, per client address and per account.
pub struct LoginLimiter<C = DefaultClock>
where
    C: Clock,
{
    per_ip: Keyed<IpAddr, C>,
    per_account: Keyed<String, C>,
}

impl LoginLimiter {
    /// `per_ip` and `per_account` attempts per minute, each with that many in a burst.
    pub fn new(per_ip: u32, per_account: u32) -> Self {
        LoginLimiter::with_clock(per_ip, per_account, DefaultClock::default())
    }
}

impl<C: Clock + Clone> LoginLimiter<C> {
    /// As [`LoginLimiter::new`], on `clock` (tests pass a `FakeRelativeClock`).
    pub fn with_clock(per_ip: u32, per_account: u32, clock: C) -> Self {
        let per_minute = |n: u32| Rate {
            count: n.max(1),
            period: Duration::from_secs(60),
            burst: n.max(1),
        };
        LoginLimiter {
            per_ip: Keyed::with_clock(&per_minute(per_ip), clock.clone()),
            per_account: Keyed::with_clock(&per_minute(per_account), clock),
        }
    }
}

impl<C: Clock> LoginLimiter<C> {
    /// One attempt from `ip` on `account`: Ok, or how long to wait. An attempt refused
    /// for the address does not spend the account's budget, so an attacker spraying
    /// accounts from one address cannot lock their owners out.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), Refused> {
        self.per_ip
            .check(&ip.to_canonical())
            .map_err(|wait| Refused {
                limiter: "login_ip",
                wait,
            })?;
        // Usernames are compared case-insensitively for the budget: `Alice` and `alice`
        // share one.
        let key: String = account
            .chars()
            .take(ACCOUNT_KEY_CHARS)
            .collect::<String>()
            .to_lowercase();
        self.per_account.check(&key).map_err(|wait| Refused {
            limiter: "login_account",
            wait,
        })
    }

    /// Forget keys whose budget has fully recovered.
    pub fn prune(&self) {
        self.per_ip.prune();
        self.per_account.prune();
    }

    /// Keys currently remembered (both maps).
    pub fn len(&self) -> usize {
        self.per_ip.len() + self.per_account.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use std::collections::HashSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn rate(s: &str) -> Rate {
        Rate::parse(s).expect("rate")
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_never_zero() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(3)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn b1_an_account_is_limited_without_affecting_another() {
        let l = LoginLimiter::new(1000, 3);
        let ip = ip("192.0.2.1");
        for _ in 0..3 {
            assert!(l.check(ip, "alice").is_ok());
        }
        let refused = l
            .check(ip, "Alice")
            .expect_err("fourth attempt on the account");
        assert_eq!(refused.limiter, "login_account");
        assert!(refused.wait > Duration::ZERO);
        assert!(l.check(ip, "bob").is_ok(), "another account is unaffected");
    }

    #[test]
    fn b1_an_address_is_limited_across_accounts() {
        let l = LoginLimiter::new(5, 1000);
        let ip1 = ip("192.0.2.9");
        for i in 0..5 {
            assert!(l.check(ip1, &format!("user{i}")).is_ok());
        }
        assert!(l.check(ip1, "user99").is_err());
        let other = ip("192.0.2.10");
        assert!(
            l.check(other, "user99").is_ok(),
            "another address is unaffected"
        );
    }

    #[test]
    fn b1_an_attempt_refused_for_the_address_does_not_spend_the_account() {
        let clock = FakeRelativeClock::default();
        let l = LoginLimiter::with_clock(1, 2, clock);
        let attacker = ip("198.51.100.1");
        assert!(l.check(attacker, "victim").is_ok());
        for _ in 0..10 {
            assert!(l.check(attacker, "victim").is_err());
        }
        let victim = ip("192.0.2.77");
        assert!(l.check(victim, "victim").is_ok(), "account budget left");
    }

    #[test]
    fn b1_pruning_forgets_recovered_keys_so_memory_stays_bounded() {
        let clock = FakeRelativeClock::default();
        let l = LoginLimiter::with_clock(5, 5, clock.clone());
        for i in 0..10_000u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert!(l.check(addr, &format!("user{i}")).is_ok());
        }
        assert_eq!(l.len(), 20_000);
        // A key still limited when the others have recovered: spend its whole burst late.
        clock.advance(Duration::from_secs(100));
        let busy = ip("192.0.2.200");
        for _ in 0..5 {
            assert!(l.check(busy, "busy").is_ok());
        }
        assert!(l.check(busy, "busy").is_err());
        l.prune();
        assert_eq!(l.len(), 2, "only the limited address and account remain");
        assert!(l.check(busy, "busy").is_err(), "pruning did not reset it");
        clock.advance(Duration::from_secs(200));
        l.prune();
        assert!(l.is_empty());
    }

    #[test]
    fn rates_parse_in_each_unit_with_an_optional_burst() {
        assert_eq!(
            rate("100/s burst 200"),
            Rate {
                count: 100,
                period: Duration::from_secs(1),
                burst: 200
            }
        );
        assert_eq!(
            rate("30/m"),
            Rate {
                count: 30,
                period: Duration::from_secs(60),
                burst: 30
            }
        );
        assert_eq!(
            rate("  7 /  h   burst   1 ").period,
            Duration::from_secs(3600)
        );
        assert_eq!(rate("  7 /  h   burst   1 ").burst, 1);
    }

    #[test]
    fn zero_and_garbage_are_not_rates() {
        for bad in [
            "",
            "off",
            "0/s",
            "10/s burst 0",
            "10",
            "10/",
            "/s",
            "10/d",
            "10/sec",
            "-1/s",
            "+1/s",
            "1.5/s",
            "10/s burst",
            "10/s burst 5 extra",
            "10/s bursts 5",
            "10/s burst200",
            "10/s/m",
            "99999999999/s",
            "ten/m",
        ] {
            assert_eq!(Rate::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_rate_displays_in_the_form_it_parses_from() {
        for s in ["100/s burst 200", "30/m", "1/h", "5/m burst 1"] {
            assert_eq!(rate(s).to_string(), s);
            assert_eq!(rate(&rate(s).to_string()), rate(s));
        }
        assert_eq!(rate("30/m burst 30").to_string(), "30/m");
    }

    #[test]
    fn a_quota_replenishes_one_cell_per_period_over_count_and_never_zero() {
        let q = rate("30/m burst 5").quota();
        assert_eq!(q.replenish_interval(), Duration::from_secs(2));
        assert_eq!(q.burst_size().get(), 5);
        let silly = Rate {
            count: 0,
            period: Duration::ZERO,
            burst: 0,
        };
        assert!(silly.quota().replenish_interval() > Duration::ZERO);
        assert_eq!(silly.quota().burst_size().get(), 1);
    }

    #[test]
    fn a_keyed_limiter_refuses_after_the_burst_then_allows_once_time_passes() {
        let clock = FakeRelativeClock::default();
        let l: Keyed<&str, _> = Keyed::with_clock(&rate("1/s burst 3"), clock.clone());
        for _ in 0..3 {
            assert!(l.check(&"a").is_ok());
        }
        let wait = l.check(&"a").expect_err("burst spent");
        assert_eq!(wait, Duration::from_secs(1));
        assert!(l.check(&"b").is_ok(), "another key has its own budget");
        clock.advance(Duration::from_millis(999));
        let wait = l.check(&"a").expect_err("not quite yet");
        assert_eq!(wait, Duration::from_millis(1));
        clock.advance(Duration::from_millis(1));
        assert!(l.check(&"a").is_ok());
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn a_failure_budget_check_never_spends() {
        let fb = FailureBudget::with_clock(&rate("1/h burst 1"), FakeRelativeClock::default());
        let addr = ip("192.0.2.1");
        for _ in 0..1_000_000 {
            assert!(fb.check(addr).is_ok());
        }
        assert!(fb.len() == 0, "checks remember nothing");
        fb.failed(addr);
        assert!(fb.check(addr).is_ok(), "the one failure was within budget");
    }

    #[test]
    fn a_failure_budget_blocks_an_address_after_its_failures_and_only_it() {
        let clock = FakeRelativeClock::default();
        let fb = FailureBudget::with_clock(&rate("30/m burst 30"), clock.clone());
        let bad = ip("198.51.100.7");
        for i in 0..30 {
            fb.failed(bad);
            assert!(fb.check(bad).is_ok(), "failure {} still allowed", i + 1);
        }
        fb.failed(bad);
        let wait = fb.check(bad).expect_err("31st failure blocks");
        assert_eq!(wait, Duration::from_secs(2), "one cell at 30/m");
        assert!(
            fb.check(ip("198.51.100.8")).is_ok(),
            "neighbours unaffected"
        );
        // An IPv4-mapped IPv6 peer is the same client.
        let mapped = IpAddr::V6(Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped());
        assert!(fb.check(mapped).is_err());
        assert!(fb.check(IpAddr::V6(Ipv6Addr::LOCALHOST)).is_ok());

        clock.advance(wait - Duration::from_millis(1));
        assert_eq!(fb.check(bad), Err(Duration::from_millis(1)));
        clock.advance(Duration::from_millis(1));
        assert!(fb.check(bad).is_ok(), "unblocked once a cell is back");
        assert_eq!(fb.len(), 2, "budget and expired block until pruned");
        fb.prune();
        assert_eq!(fb.len(), 1, "the block is gone, the spent budget is not");

        // One more failure is allowed, the next blocks again.
        fb.failed(bad);
        assert!(fb.check(bad).is_ok());
        fb.failed(bad);
        assert!(fb.check(bad).is_err());

        clock.advance(Duration::from_secs(600));
        fb.prune();
        assert!(fb.len() == 0);
        assert!(fb.check(bad).is_ok());
    }

    #[test]
    fn subject_keys_are_stable_per_subject_and_distinct_across_subjects() {
        let keys = SubjectKeys::new();
        assert_eq!(keys.key("alice"), keys.key("alice"));
        assert_ne!(keys.key("alice"), keys.key("Alice"));
        let distinct: HashSet<u64> = (0..10_000).map(|i| keys.key(&format!("sub-{i}"))).collect();
        assert_eq!(distinct.len(), 10_000);
    }
}
