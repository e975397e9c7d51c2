//! Every metric family, registered once, and the `/metrics` exposition.
//!
//! [`Metrics::new`] builds one registry at start-up; the edge, the admin listener, the
//! listeners and the reload path hold an `Arc<Metrics>` and only increment. Every label
//! is a bounded enum: a configured route or origin name, an outcome or reason code, an
//! algorithm, a listener, a dialect — never a token, a path, an address or a user
//! (docs/threat-model.md F2). So that the series count does not move with traffic either, every
//! label combination is created up front ([`Metrics::prepare`]): a scrape before and
//! after ten thousand random tokens lists the same series.
//!
//! Counters the token module keeps as plain atomics (verifications, cache hits, misses,
//! evictions) and state that is cheaper to read than to track (cache entries,
//! revocations in force) are copied in at scrape time ([`Metrics::render`]).

use std::sync::Mutex;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

use crate::token::{verify, Revocations, Verifier};

/// Outcomes of an edge request besides the refusal reasons: what the origin answered.
pub const FORWARDED_OUTCOMES: [&str; 3] = ["ok", "origin_4xx", "origin_5xx"];

/// Every refusal reason an edge request can end with (the `x-tollgate-reason` codes).
pub const EDGE_REASONS: [&str; 35] = [
    "missing",
    "malformed",
    "bad_signature",
    "unknown_kid",
    "issuer",
    "audience",
    "expired",
    "not_yet_valid",
    "revoked",
    "scope",
    "acl",
    "ip",
    "sign",
    "too_long",
    "conflict",
    "bad_path",
    "bad_header",
    "no_route",
    "method",
    "body",
    "body_too_large",
    "headers_too_large",
    "cors",
    "rate_limited",
    "origin_refused",
    "origin_timeout",
    "internal",
    // The Common Access Token's own reasons (`token::cat::CatReason::code`).
    "algorithm",
    "critical",
    "version",
    "header",
    "geo",
    "geo_unavailable",
    "replay",
    "replay_unenforced",
];

/// The one reason not in [`EDGE_REASONS`] because it reads better last.
pub const ORIGIN_ERROR: &str = "origin_error";

/// Listener labels.
pub const LISTENERS: [&str; 4] = ["edge_tls", "edge_plain", "admin", "admin_tls"];
/// Upstream error kinds.
pub const UPSTREAM_ERRORS: [&str; 3] = ["refused", "timeout", "reset"];
/// Issuing dialects.
pub const DIALECTS: [&str; 3] = ["blendvision", "azure", "movingimage"];
/// Refresh results.
pub const REFRESH_RESULTS: [&str; 5] = ["ok", "reused", "invalid", "forbidden", "error"];
/// Rate limiters.
pub const LIMITERS: [&str; 6] = [
    "edge_ip",
    "edge_subject",
    "bad_token",
    "login_ip",
    "login_account",
    "issue",
];
/// Revocation kinds.
pub const REVOCATION_KINDS: [&str; 4] = ["jti", "subject", "org", "family"];
/// Manifest outcomes (see `edge::rewrite`).
pub const MANIFEST_OUTCOMES: [&str; 8] = [
    "rewritten",
    "renewed",
    "cookie",
    "not_hls",
    "not_mpd",
    "not_utf8",
    "encoded",
    "too_large",
];
/// What the shield cache did with a request (`tollgate_cache_requests_total`).
pub const CACHE_RESULTS: [&str; 4] = ["hit", "miss", "coalesced", "pass"];
/// How a shield-cache fill ended (`tollgate_cache_fills_total`).
pub const FILL_RESULTS: [&str; 5] = ["stored", "shared", "released", "no_head", "aborted"];
/// The route label of a request that matched no route.
pub const NO_ROUTE: &str = "none";

/// Request latencies: 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0,
];

/// The shield cache's families (`src/cache`), cloned into the cache at start-up.
#[derive(Clone)]
pub struct CacheMetrics {
    pub requests: IntCounterVec,
    pub fills: IntCounterVec,
    pub bytes: IntGauge,
    pub objects: IntGauge,
    pub evictions: IntCounter,
    pub wait: prometheus::Histogram,
}

impl CacheMetrics {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| -> prometheus::Result<IntGauge> {
            let g = IntGauge::new(name, help)?;
            r.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let wait = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_cache_wait_seconds",
                "Time a request waited for a fill's response headers (the latency coalescing adds).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        r.register(Box::new(wait.clone()))?;
        let m = CacheMetrics {
            requests: counter_vec(
                r,
                "tollgate_cache_requests_total",
                "Shield cache lookups by result (hit, miss = started a fill, coalesced = joined one, pass).",
                &["result"],
            )?,
            fills: counter_vec(
                r,
                "tollgate_cache_fills_total",
                "Origin fetches made for the shield cache, by how they ended (stored, shared = not storable, released = uncacheable, no_head, aborted).",
                &["result"],
            )?,
            bytes: gauge("tollgate_cache_bytes", "Bytes the shield cache holds (bodies, headers, overhead).")?,
            objects: gauge("tollgate_cache_objects", "Objects the shield cache holds.")?,
            evictions: counter(
                r,
                "tollgate_cache_evictions_total",
                "Objects evicted from the shield cache to stay within cache.max_bytes.",
            )?,
            wait,
        };
        for x in CACHE_RESULTS {
            m.requests.with_label_values(&[x]);
        }
        for x in FILL_RESULTS {
            m.fills.with_label_values(&[x]);
        }
        Ok(m)
    }
}

/// Every family tollgate exports.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_duration: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub sent_bytes: IntCounterVec,
    pub open_connections: IntGaugeVec,
    verifications: IntCounterVec,
    cache_hits: IntCounter,
    cache_misses: IntCounter,
    cache_evictions: IntCounter,
    cache_entries: IntGauge,
    pub issued: IntCounterVec,
    pub refreshes: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub revocations_made: IntCounterVec,
    revocations_in_force: IntGaugeVec,
    pub reloads: IntCounterVec,
    pub last_reload_ok: IntGauge,
    pub last_reload_success: Gauge,
    pub manifests: IntCounterVec,
    /// Foreign credentials checked, by configured format name and result (`ok` or a
    /// reason code).
    pub foreign: IntCounterVec,
    pub cache: CacheMetrics,
    /// 1 when this node's last contact with the store succeeded (catch-up and listener).
    pub store_up: IntGauge,
    /// The last change-feed sequence number applied at this node.
    pub store_applied_seq: IntGauge,
    /// Serialises the copy of the verifier's counters, so two scrapes never add twice.
    sync: Mutex<()>,
}

fn counter_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn counter(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounter> {
    let c = IntCounter::new(name, help)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn int_gauge(r: &Registry, name: &str, help: &str) -> prometheus::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn gauge_vec(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

fn histogram_vec(
    r: &Registry,
    name: &str,
    help: &str,
    label: &str,
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        &[label],
    )?;
    r.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    /// Register every family. Fails only on a programming error (a bad or duplicate name).
    pub fn new() -> prometheus::Result<Metrics> {
        let r = Registry::new();
        let build = gauge_vec(
            &r,
            "tollgate_build_info",
            "The running build (value 1).",
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        #[cfg(target_os = "linux")]
        r.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let m = Metrics {
            requests: counter_vec(
                &r,
                "tollgate_requests_total",
                "Edge requests by route and outcome (ok, origin_4xx, origin_5xx or the refusal reason).",
                &["route", "outcome"],
            )?,
            request_duration: histogram_vec(
                &r,
                "tollgate_request_duration_seconds",
                "Edge request time until the response headers, by route.",
                "route",
            )?,
            upstream_duration: histogram_vec(
                &r,
                "tollgate_upstream_duration_seconds",
                "Time until the origin's response headers, by origin.",
                "origin",
            )?,
            upstream_errors: counter_vec(
                &r,
                "tollgate_upstream_errors_total",
                "Origin failures by origin and kind (refused, timeout, reset).",
                &["origin", "kind"],
            )?,
            sent_bytes: counter_vec(
                &r,
                "tollgate_sent_bytes_total",
                "Response body bytes sent to edge clients, by route.",
                &["route"],
            )?,
            open_connections: gauge_vec(
                &r,
                "tollgate_open_connections",
                "Open client connections by listener.",
                &["listener"],
            )?,
            verifications: counter_vec(
                &r,
                "tollgate_token_verifications_total",
                "Token signature verifications (verification cache misses) by key algorithm and result.",
                &["alg", "result"],
            )?,
            cache_hits: counter(&r, "tollgate_verify_cache_hits_total", "Verification cache hits.")?,
            cache_misses: counter(
                &r,
                "tollgate_verify_cache_misses_total",
                "Verification cache misses.",
            )?,
            cache_evictions: counter(
                &r,
                "tollgate_verify_cache_evictions_total",
                "Verification cache entries evicted to make room.",
            )?,
            cache_entries: {
                let g = IntGauge::new("tollgate_verify_cache_entries", "Verification cache entries.")?;
                r.register(Box::new(g.clone()))?;
                g
            },
            issued: counter_vec(
                &r,
                "tollgate_tokens_issued_total",
                "Tokens issued through the admin APIs, by dialect.",
                &["dialect"],
            )?,
            refreshes: counter_vec(
                &r,
                "tollgate_refreshes_total",
                "movingimage refresh-token exchanges by result.",
                &["result"],
            )?,
            rate_limited: counter_vec(
                &r,
                "tollgate_rate_limited_total",
                "Requests refused with 429 by limiter.",
                &["limiter"],
            )?,
            revocations_made: counter_vec(
                &r,
                "tollgate_revocations_total",
                "Revocations made through this node, by kind.",
                &["kind"],
            )?,
            revocations_in_force: gauge_vec(
                &r,
                "tollgate_revocations",
                "Revocations in force, by kind.",
                &["kind"],
            )?,
            reloads: counter_vec(
                &r,
                "tollgate_config_reloads_total",
                "Configuration reloads (SIGHUP or POST /v1/reload) by result.",
                &["result"],
            )?,
            last_reload_ok: {
                let g = IntGauge::new(
                    "tollgate_config_last_reload_successful",
                    "Whether the last configuration reload succeeded (1) or kept the old state (0).",
                )?;
                r.register(Box::new(g.clone()))?;
                g.set(1);
                g
            },
            last_reload_success: {
                let g = Gauge::new(
                    "tollgate_config_last_reload_success_timestamp_seconds",
                    "When the configuration was last loaded successfully (start-up or reload).",
                )?;
                r.register(Box::new(g.clone()))?;
                g.set(crate::clock::now() as f64);
                g
            },
            manifests: counter_vec(
                &r,
                "tollgate_manifests_total",
                "Manifest answers by outcome (rewritten, renewed, cookie, or why one passed through).",
                &["outcome"],
            )?,
            foreign: counter_vec(
                &r,
                "tollgate_foreign_requests_total",
                "Requests carrying a foreign token format, by format and result (ok or the refusal reason).",
                &["format", "result"],
            )?,
            cache: CacheMetrics::register(&r)?,
            store_up: int_gauge(
                &r,
                "tollgate_store_up",
                "Whether this node's last contact with the store (catch-up, change-feed listener) succeeded (1) or not (0): it serves from memory meanwhile.",
            )?,
            store_applied_seq: int_gauge(
                &r,
                "tollgate_store_applied_seq",
                "The last change-feed sequence number applied at this node.",
            )?,
            sync: Mutex::new(()),
            registry: r,
        };
        for l in LISTENERS {
            m.open_connections.with_label_values(&[l]);
        }
        for (a, res) in verify::VERIFY_ALGS
            .iter()
            .flat_map(|a| verify::VERIFY_RESULTS.iter().map(move |r| (a, r)))
        {
            m.verifications.with_label_values(&[a, res]);
        }
        for d in DIALECTS {
            m.issued.with_label_values(&[d]);
        }
        for x in REFRESH_RESULTS {
            m.refreshes.with_label_values(&[x]);
        }
        for x in LIMITERS {
            m.rate_limited.with_label_values(&[x]);
        }
        for k in REVOCATION_KINDS {
            m.revocations_made.with_label_values(&[k]);
            m.revocations_in_force.with_label_values(&[k]);
        }
        for x in ["ok", "error"] {
            m.reloads.with_label_values(&[x]);
        }
        for x in MANIFEST_OUTCOMES {
            m.manifests.with_label_values(&[x]);
        }
        Ok(m)
    }

    /// Create every series for these route and origin names (at start and on reload),
    /// so that traffic never adds one.
    pub fn prepare<'a>(
        &self,
        routes: impl IntoIterator<Item = &'a str>,
        origins: impl IntoIterator<Item = &'a str>,
    ) {
        for route in routes.into_iter().chain([NO_ROUTE]) {
            for outcome in FORWARDED_OUTCOMES
                .iter()
                .chain(&EDGE_REASONS)
                .chain([&ORIGIN_ERROR])
            {
                self.requests.with_label_values(&[route, outcome]);
            }
            self.request_duration.with_label_values(&[route]);
            self.sent_bytes.with_label_values(&[route]);
        }
        for origin in origins {
            self.upstream_duration.with_label_values(&[origin]);
            for kind in UPSTREAM_ERRORS {
                self.upstream_errors.with_label_values(&[origin, kind]);
            }
        }
    }

    /// Create the foreign-format series for these format names (at start), so that
    /// traffic never adds one.
    pub fn prepare_formats<'a>(&self, formats: impl IntoIterator<Item = &'a str>) {
        for format in formats {
            for result in ["ok"].iter().chain(&EDGE_REASONS) {
                self.foreign.with_label_values(&[format, result]);
            }
        }
    }

    /// Record the outcome of a configuration reload.
    pub fn reloaded(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "error" }])
            .inc();
        self.last_reload_ok.set(i64::from(ok));
        if ok {
            self.last_reload_success.set(crate::clock::now() as f64);
        }
    }

    /// The text exposition, with the verifier's counters and the current state copied in.
    pub fn render(&self, verifier: &Verifier, revocations: &Revocations) -> Vec<u8> {
        {
            let _one_at_a_time = self.sync.lock().unwrap_or_else(|p| p.into_inner());
            let cache = verifier.cache();
            catch_up(&self.cache_hits, cache.hits());
            catch_up(&self.cache_misses, cache.misses());
            catch_up(&self.cache_evictions, cache.evictions());
            for (alg, result, n) in verifier.verification_counts() {
                catch_up(&self.verifications.with_label_values(&[alg, result]), n);
            }
        }
        self.cache_entries
            .set(i64::try_from(verifier.cache().len()).unwrap_or(i64::MAX));
        for (kind, n) in revocations.counts() {
            self.revocations_in_force
                .with_label_values(&[kind])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let mut out = Vec::with_capacity(16 * 1024);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        out
    }
}

/// Move a Prometheus counter up to `total`, a monotonic count kept elsewhere.
fn catch_up(c: &IntCounter, total: u64) {
    let now = c.get();
    if total > now {
        c.inc_by(total - now);
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str) -> Vec<String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_string()))
            .collect()
    }

    #[test]
    fn f2_prepared_series_do_not_grow_with_traffic() {
        let m = Metrics::new().expect("metrics");
        m.prepare(["vod", "live"], ["origin"]);
        let keys = crate::token::KeySet::from_keys(vec![], None);
        let token_cfg = crate::config::Token {
            issuer: "test".into(),
            audience: vec![],
            leeway: std::time::Duration::from_secs(5),
            max_len: 4096,
            cache_capacity: 10,
            cache_max_ttl: std::time::Duration::from_secs(300),
            path_prefix: "t".into(),
            query: "token".into(),
            cookie: "tollgate_token".into(),
            allow_never_expiring: false,
            max_lifetime: None,
        };
        let v = Verifier::new(keys, &token_cfg);
        let r = Revocations::default();
        let before = series(&String::from_utf8_lossy(&m.render(&v, &r)));
        for i in 0..500 {
            let _ = v.verify(&format!("garbage.{i}"), 1);
            m.requests.with_label_values(&["vod", "malformed"]).inc();
        }
        let after = series(&String::from_utf8_lossy(&m.render(&v, &r)));
        assert_eq!(before, after);
        let text = String::from_utf8_lossy(&m.render(&v, &r)).into_owned();
        assert!(
            text.contains(
                "tollgate_token_verifications_total{alg=\"none\",result=\"malformed\"} 500"
            ),
            "{text}"
        );
    }

    #[test]
    fn catch_up_never_counts_twice() {
        let c = IntCounter::new("x_total", "x").expect("counter");
        catch_up(&c, 5);
        catch_up(&c, 5);
        catch_up(&c, 3);
        assert_eq!(c.get(), 5);
    }
}
