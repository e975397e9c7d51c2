//! The per-request token cost: a cache-hit authorisation (the common case: every segment
//! after the first) beside a full verification per algorithm (the cache miss, and the
//! no-cache baseline a gate without a cache would pay on every request).
//!
//! Every foreign format's hit is measured the same way: the foreign cache's lookup, then
//! the rules every request re-checks. The hits are built in `tests/support/hits.rs`,
//! which `tests/hot_path_alloc.rs` also runs to count their allocations (none).
//!
//! Run: `cargo bench --bench verify`. Each group reports time per request; compare the
//! `hit` line with the `miss/*` lines measured in the same run.

#[path = "../tests/support/hits.rs"]
mod hits;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use hits::{client, native, native_hit, resource, CatHit, ForeignHits, NOW, PATH};
use tollgate::resource::ResourceType;
use tollgate::token::issue::random_id;
use tollgate::token::keys::Algorithm;
use tollgate::token::{authorize, Revocations, Target};

fn bench(c: &mut Criterion) {
    let resource = resource();
    let revocations = Revocations::default();
    let target = Target {
        resource_type: ResourceType::Vod,
        rid: "demo",
        resource: Some(&resource),
        path: PATH,
        client: client(),
    };

    let mut g = c.benchmark_group("authorise");
    let (verifier, token) = native(Algorithm::EdDsa);
    verifier.verify(&token, NOW).expect("prime the cache");
    g.bench_function("hit/eddsa", |b| {
        b.iter(|| native_hit(&verifier, &token, &resource, &revocations))
    });
    // The same hit with a million other tokens revoked by jti: the revocation lookup
    // is a hash probe, whatever the set holds.
    let crowded = Revocations::default();
    for _ in 0..1_000_000 {
        crowded.revoke_jti(&random_id().expect("random id"), None);
    }
    g.bench_function("hit/eddsa/1m-jti-revoked", |b| {
        b.iter(|| native_hit(&verifier, &token, &resource, &crowded))
    });
    drop(crowded);
    let foreign = ForeignHits::new();
    for case in &foreign.cases {
        g.bench_function(case.name, |b| b.iter(|| foreign.hit(case, &revocations)));
    }
    let cat = CatHit::new();
    g.bench_function("hit/cat", |b| b.iter(|| cat.hit(&revocations)));
    for (name, alg) in [
        ("miss/eddsa", Algorithm::EdDsa),
        ("miss/es256", Algorithm::Es256),
        ("miss/rs256", Algorithm::Rs256),
        ("miss/hs256", Algorithm::Hs256),
    ] {
        let (verifier, token) = native(alg);
        g.bench_function(name, |b| {
            b.iter(|| {
                let grant = verifier.verify_uncached(black_box(&token)).expect("valid");
                authorize(&grant, black_box(&target), NOW, 30, &revocations).expect("allowed")
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
