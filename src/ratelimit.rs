//! Rate limiters (governor, keyed) and their pruning.
//!
//! Owns the limiters and nothing about HTTP: callers ask `check` and turn a refusal into
//! their own 429 with `Retry-After`. Keyed limiters remember every key they saw, so a
//! timer calls [`LoginLimiter::prune`] to forget keys whose budget is full again —
//! memory stays bounded under a flood of distinct IPs or usernames (THREATS B1).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Login attempts, per client address and per account.
pub struct LoginLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl LoginLimiter {
    /// `per_ip` and `per_account` attempts per minute, each with that many in a burst.
    pub fn new(per_ip: u32, per_account: u32) -> Self {
        let quota =
            |n: u32| Quota::per_minute(NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN));
        LoginLimiter {
            per_ip: RateLimiter::dashmap(quota(per_ip)),
            per_account: RateLimiter::dashmap(quota(per_account)),
            clock: DefaultClock::default(),
        }
    }

    /// One attempt from `ip` on `account`: Ok, or how long to wait. An attempt refused
    /// for the address does not spend the account's budget, and the reverse, so one
    /// attacker cannot lock a victim out from elsewhere for longer than the account quota.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        self.per_ip
            .check_key(&ip)
            .map_err(|nu| nu.wait_time_from(now))?;
        // Usernames are compared case-insensitively for the budget: `Alice` and `alice`
        // share one. Bounded so a huge username cannot bloat the map.
        let key: String = account.chars().take(128).collect::<String>().to_lowercase();
        self.per_account
            .check_key(&key)
            .map_err(|nu| nu.wait_time_from(now))
    }

    /// Forget keys whose budget has fully recovered.
    pub fn prune(&self) {
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_account.shrink_to_fit();
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

    #[test]
    fn b1_an_account_is_limited_without_affecting_another() {
        let l = LoginLimiter::new(1000, 3);
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 0..3 {
            assert!(l.check(ip, "alice").is_ok());
        }
        let wait = l
            .check(ip, "Alice")
            .expect_err("fourth attempt on the account");
        assert!(wait > Duration::ZERO);
        assert!(l.check(ip, "bob").is_ok(), "another account is unaffected");
    }

    #[test]
    fn b1_an_address_is_limited_across_accounts() {
        let l = LoginLimiter::new(5, 1000);
        let ip: IpAddr = "192.0.2.9".parse().expect("ip");
        for i in 0..5 {
            assert!(l.check(ip, &format!("user{i}")).is_ok());
        }
        assert!(l.check(ip, "user99").is_err());
        let other: IpAddr = "192.0.2.10".parse().expect("ip");
        assert!(
            l.check(other, "user99").is_ok(),
            "another address is unaffected"
        );
    }
}
