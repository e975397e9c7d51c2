//! A cached hit allocates nothing: for the native token and every foreign format, the
//! verification cache's lookup and the rules re-checked on every request run without
//! touching the heap (docs/architecture.md, "The request path"). Counted by dhat's
//! allocator in testing mode; the cases are the ones `benches/verify.rs` times
//! (`tests/support/hits.rs`).
//!
//! Its own test binary, without the test harness: a global allocator applies to the
//! whole binary, and dhat counts every thread's allocations, so nothing may run beside
//! the check (libtest's main thread allocates while it waits on a slow test).

#[path = "support/hits.rs"]
mod hits;

use tollgate::token::keys::Algorithm;
use tollgate::token::Revocations;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocations while `f` runs 100 times, after one warm-up run (which may fill a
/// thread-local buffer once).
fn allocations(f: impl Fn()) -> u64 {
    f();
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..100 {
        f();
    }
    dhat::HeapStats::get().total_blocks - before
}

fn main() {
    a_cached_hit_does_not_allocate_for_the_native_token_or_any_foreign_format();
    println!("a_cached_hit_does_not_allocate_for_the_native_token_or_any_foreign_format ... ok");
}

fn a_cached_hit_does_not_allocate_for_the_native_token_or_any_foreign_format() {
    let (verifier, token) = hits::native(Algorithm::EdDsa);
    let (resource, revocations) = (hits::resource(), Revocations::default());
    let foreign = hits::ForeignHits::new();
    let cat = hits::CatHit::new();
    assert!(!foreign.cases.is_empty());
    let _profiler = dhat::Profiler::builder().testing().build();
    let n = allocations(|| hits::native_hit(&verifier, &token, &resource, &revocations));
    assert_eq!(n, 0, "native hit: {n} allocations in 100 hits");
    for case in &foreign.cases {
        let n = allocations(|| foreign.hit(case, &revocations));
        assert_eq!(n, 0, "{}: {n} allocations in 100 hits", case.name);
    }
    let n = allocations(|| cat.hit(&revocations));
    assert_eq!(n, 0, "hit/cat: {n} allocations in 100 hits");
}
