//! Memory of the edge's revocation set per million `jti` revocations.
//!
//! Makes `REVOCATION_MEMORY_N` (default 1,000,000) jti values exactly as the issuer
//! does (`token::issue::random_id`), then revokes each in a fresh
//! [`tollgate::token::Revocations`] and reports how much the process's resident set
//! grew, in bytes per entry and MiB per million. The ids are made before the first
//! reading, so only the set's own memory (its tables and whatever it copies of the
//! ids) is counted. Linux only (`/proc/self/status`).
//!
//! Run: `cargo bench --bench revocation-memory`.

use std::time::Instant;

use tollgate::token::issue::random_id;
use tollgate::token::Revocations;

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

fn main() {
    let n: usize = std::env::var("REVOCATION_MEMORY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let ids: Vec<String> = (0..n).map(|_| random_id().expect("random id")).collect();
    let before = rss_kib();
    let started = Instant::now();
    let revocations = Revocations::default();
    for id in &ids {
        revocations.revoke_jti(id, None);
    }
    let took = started.elapsed();
    let after = rss_kib();
    let grew = (after.saturating_sub(before) * 1024) as f64;
    println!(
        "revocation-memory: {n} jti revocations: RSS +{:.1} MiB, {:.0} bytes per entry, {:.1} MiB per million (filled in {:.2} s)",
        grew / (1024.0 * 1024.0),
        grew / n as f64,
        grew / n as f64 * 1e6 / (1024.0 * 1024.0),
        took.as_secs_f64()
    );
    // Keep both alive until after the reading.
    assert_eq!(revocations.counts()[0].1, ids.len());
}
