//! The Common Access Token's per-request cost without a cache: decoding the CWT, the
//! MAC or signature per algorithm and every claim check (`verify/*`), beside the part
//! that runs on every request once a verified token is cached (`authorize`). The
//! cached hit the edge pays (cache lookup included) is `hit/cat` in benches/verify.rs.
//!
//! Run: `cargo bench --bench cat`. The token carries what a real one does: `iss`, `exp`,
//! `cti`, `catu` (host suffix, path prefix), `catm`, `catr`.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use ciborium::value::Value;
use coset::{iana, CoseMac0Builder, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable};
use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::token::cat::{self, CatKey, CatKeys, CatPolicy, Request};

const NOW: u64 = 1_800_000_000;
const PATH: &str = "/vod/movie/v0/seg_001.m4s";

fn claims() -> Vec<u8> {
    let i = |n: i64| Value::Integer(n.into());
    let t = |s: &str| Value::Text(s.into());
    let m = |e: Vec<(i64, Value)>| Value::Map(e.into_iter().map(|(k, v)| (i(k), v)).collect());
    let claims = m(vec![
        (1, t("bench")),
        (4, i(NOW as i64 + 120)),
        (7, Value::Bytes(b"bench-cti".to_vec())),
        (
            312,
            m(vec![
                (1, m(vec![(2, t("example.com"))])),
                (3, m(vec![(1, t("/vod/movie/"))])),
            ]),
        ),
        (313, Value::Array(vec![t("GET"), t("HEAD")])),
        (323, m(vec![(0, i(2)), (1, i(120)), (2, i(30))])),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&claims, &mut out).expect("encode");
    out
}

fn header(alg: iana::Algorithm, kid: &str) -> coset::Header {
    HeaderBuilder::new()
        .algorithm(alg)
        .key_id(kid.as_bytes().to_vec())
        .build()
}

/// (name, token) per algorithm, all verifiable with the returned keys.
fn tokens() -> (CatKeys, Vec<(&'static str, Vec<u8>)>) {
    let mut keys = CatKeys::new();
    let secret = b"bench-hs256-secret-bench-hs256-!";
    keys.insert("hs", CatKey::hs256(secret));
    let hkey = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let hs = CoseMac0Builder::new()
        .protected(header(iana::Algorithm::HMAC_256_256, "hs"))
        .payload(claims())
        .create_tag(b"", |d| hmac::sign(&hkey, d).as_ref().to_vec())
        .build();
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
    keys.insert("es", CatKey::es256(ec.public_key().as_ref()));
    let rng = SystemRandom::new();
    let es = CoseSign1Builder::new()
        .protected(header(iana::Algorithm::ES256, "es"))
        .payload(claims())
        .create_signature(b"", |d| ec.sign(&rng, d).expect("sign").as_ref().to_vec())
        .build();
    let ed = Ed25519KeyPair::generate().expect("ed");
    keys.insert("ed", CatKey::ed25519(ed.public_key().as_ref()));
    let eds = CoseSign1Builder::new()
        .protected(header(iana::Algorithm::EdDSA, "ed"))
        .payload(claims())
        .create_signature(b"", |d| ed.sign(d).as_ref().to_vec())
        .build();
    let tokens = vec![
        ("verify/hs256", hs.to_tagged_vec().expect("encode")),
        ("verify/es256", es.to_tagged_vec().expect("encode")),
        ("verify/eddsa", eds.to_tagged_vec().expect("encode")),
    ];
    (keys, tokens)
}

fn bench(c: &mut Criterion) {
    let (keys, tokens) = tokens();
    let policy = CatPolicy {
        issuers: vec!["bench".into()],
        ..CatPolicy::default()
    };
    let req = Request {
        scheme: "https",
        host: "media.example.com",
        port: 443,
        path: PATH,
        query: "",
        method: "GET",
        client_ip: Some(IpAddr::from([192, 0, 2, 7])),
        headers: &[],
        country: None,
        asn: None,
    };
    let mut g = c.benchmark_group("cat");
    for (name, token) in &tokens {
        g.bench_function(*name, |b| {
            b.iter(|| {
                cat::verify_and_authorize(
                    black_box(token),
                    &keys,
                    &policy,
                    black_box(&req),
                    NOW,
                    None,
                )
                .expect("valid")
            })
        });
    }
    let verified = cat::verify(&tokens[0].1, &keys, &policy).expect("valid");
    g.bench_function("authorize", |b| {
        b.iter(|| {
            verified
                .authorize(black_box(&req), &policy, NOW, None)
                .expect("allowed")
                .exp
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
