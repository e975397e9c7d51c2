//! The edge's rate limits (docs/architecture.md, "The request path"): per client
//! address, per token subject,
//! and the failed-verification budget per address.
//!
//! Built from the configuration with the rest of the [`super::EdgeService`], so a reload
//! starts every budget afresh. Per-route limits: a route that sets its own `per_ip` or
//! `per_subject` gets its own limiter; the others share the `[limits]` one. Subjects are
//! keyed by a keyed hash (no allocation per request). Pruned by the store-refresh timer.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::EdgeError;
use crate::config::{Config, Limit};
use crate::ratelimit::{retry_after_secs, FailureBudget, Keyed, SubjectKeys};

/// Every limiter of one edge configuration.
pub struct EdgeLimits {
    /// By route index; `None`: no limit on that route.
    per_ip: Vec<Option<Arc<Keyed<IpAddr>>>>,
    per_subject: Vec<Option<Arc<Keyed<u64>>>>,
    subjects: SubjectKeys,
    bad_tokens: Option<FailureBudget>,
    /// Each distinct limiter once, for pruning.
    ip_limiters: Vec<Arc<Keyed<IpAddr>>>,
    subject_limiters: Vec<Arc<Keyed<u64>>>,
}

fn limited(limiter: &'static str, wait: Duration) -> EdgeError {
    EdgeError::RateLimited {
        limiter,
        retry_after: u32::try_from(retry_after_secs(wait)).unwrap_or(u32::MAX),
    }
}

/// One limiter per distinct rate: routes with the global rate share its limiter.
fn per_route<K: std::hash::Hash + Eq + Clone>(
    global: &Limit,
    routes: impl Iterator<Item = Option<Limit>>,
    all: &mut Vec<Arc<Keyed<K>>>,
) -> Vec<Option<Arc<Keyed<K>>>> {
    let shared = global.as_ref().map(|r| Arc::new(Keyed::new(r)));
    if let Some(s) = &shared {
        all.push(s.clone());
    }
    routes
        .map(|own| match own {
            None => shared.clone(),
            Some(None) => None,
            Some(Some(rate)) => {
                let l = Arc::new(Keyed::new(&rate));
                all.push(l.clone());
                Some(l)
            }
        })
        .collect()
}

impl EdgeLimits {
    pub fn new(cfg: &Config) -> Self {
        let mut ip_limiters = Vec::new();
        let mut subject_limiters = Vec::new();
        let per_ip = per_route(
            &cfg.limits.per_ip,
            cfg.routes.iter().map(|r| r.per_ip),
            &mut ip_limiters,
        );
        let per_subject = per_route(
            &cfg.limits.per_subject,
            cfg.routes.iter().map(|r| r.per_subject),
            &mut subject_limiters,
        );
        EdgeLimits {
            per_ip,
            per_subject,
            subjects: SubjectKeys::new(),
            bad_tokens: cfg
                .limits
                .bad_tokens_per_ip
                .as_ref()
                .map(FailureBudget::new),
            ip_limiters,
            subject_limiters,
        }
    }

    /// One request from `ip` on route `route`.
    pub fn ip(&self, route: usize, ip: IpAddr) -> Result<(), EdgeError> {
        match self.per_ip.get(route) {
            Some(Some(l)) => l.check(&ip).map_err(|w| limited("edge_ip", w)),
            _ => Ok(()),
        }
    }

    /// One request by subject `sub` on route `route`.
    pub fn subject(&self, route: usize, sub: &str) -> Result<(), EdgeError> {
        match self.per_subject.get(route) {
            Some(Some(l)) => l
                .check(&self.subjects.key(sub))
                .map_err(|w| limited("edge_subject", w)),
            _ => Ok(()),
        }
    }

    /// A verification-cache miss for `ip`: `verify` (signature work) runs only while
    /// the client has failed-verification budget left, and its failure spends some.
    /// The one place this rule is applied, for the native token and every foreign format.
    pub fn verify_within_budget<T>(
        &self,
        ip: IpAddr,
        verify: impl FnOnce() -> Result<T, EdgeError>,
    ) -> Result<T, EdgeError> {
        self.may_verify(ip)?;
        verify().inspect_err(|_| self.verify_failed(ip))
    }

    /// May `ip` have a token verified (signature work)? Spends nothing.
    pub fn may_verify(&self, ip: IpAddr) -> Result<(), EdgeError> {
        match &self.bad_tokens {
            Some(b) => b.check(ip).map_err(|w| limited("bad_token", w)),
            None => Ok(()),
        }
    }

    /// A token from `ip` failed verification.
    pub fn verify_failed(&self, ip: IpAddr) {
        if let Some(b) = &self.bad_tokens {
            b.failed(ip);
        }
    }

    /// Forget keys whose budgets are full again.
    pub fn prune(&self) {
        for l in &self.ip_limiters {
            l.prune();
        }
        for l in &self.subject_limiters {
            l.prune();
        }
        if let Some(b) = &self.bad_tokens {
            b.prune();
        }
    }

    /// Keys remembered across every limiter.
    pub fn len(&self) -> usize {
        self.ip_limiters.iter().map(|l| l.len()).sum::<usize>()
            + self.subject_limiters.iter().map(|l| l.len()).sum::<usize>()
            + self.bad_tokens.as_ref().map_or(0, |b| b.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example config with its limits replaced by small ones.
    fn limits() -> EdgeLimits {
        let cfg = crate::config::example(|t| {
            t.replace("\"200/s burst 400\"", "\"1/h burst 3\"")
                .replace("\"100/s burst 200\"", "\"1/h burst 2\"")
                .replace("\"30/m burst 30\"", "\"1/h burst 2\"")
        });
        EdgeLimits::new(&cfg)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn each_address_and_subject_has_its_own_budget_and_429_says_when_to_retry() {
        let l = limits();
        for _ in 0..3 {
            assert_eq!(l.ip(0, ip("192.0.2.1")), Ok(()));
        }
        match l.ip(0, ip("192.0.2.1")) {
            Err(EdgeError::RateLimited {
                limiter,
                retry_after,
            }) => assert_eq!((limiter, retry_after >= 1), ("edge_ip", true)),
            other => panic!("the fourth request passed: {other:?}"),
        }
        assert_eq!(
            l.ip(0, ip("192.0.2.2")),
            Ok(()),
            "another address is not limited"
        );
        assert_eq!(l.subject(0, "alice"), Ok(()));
        assert_eq!(l.subject(0, "alice"), Ok(()));
        assert!(matches!(
            l.subject(0, "alice"),
            Err(EdgeError::RateLimited {
                limiter: "edge_subject",
                ..
            })
        ));
        assert_eq!(l.subject(0, "bob"), Ok(()));
    }

    #[test]
    fn a17_failed_verifications_spend_the_budget_that_lets_an_address_verify() {
        let l = limits();
        let bad = ip("198.51.100.7");
        assert_eq!(l.may_verify(bad), Ok(()), "asking spends nothing");
        assert_eq!(l.may_verify(bad), Ok(()));
        // The budget (burst 2) is spent by two failures; the third is refused and blocks.
        for _ in 0..2 {
            l.verify_failed(bad);
        }
        assert_eq!(l.may_verify(bad), Ok(()));
        l.verify_failed(bad);
        assert!(matches!(
            l.may_verify(bad),
            Err(EdgeError::RateLimited {
                limiter: "bad_token",
                ..
            })
        ));
        assert_eq!(l.may_verify(ip("198.51.100.8")), Ok(()));
        assert!(!l.is_empty());
    }
}
