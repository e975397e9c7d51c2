//! The per-request token cost: a cache-hit authorisation (the common case: every segment
//! after the first) beside a full verification per algorithm (the cache miss, and the
//! no-cache baseline a gate without a cache would pay on every request).
//!
//! The foreign formats' hits (nginx secure_link, Akamai EdgeAuth, the Common Access
//! Token) are measured the same way: the foreign cache's lookup, then the rules every
//! request re-checks (for a CAT, `VerifiedCat::authorize` over its `catu`, `catm`,
//! `catnip` and times).
//!
//! Run: `cargo bench --bench verify`. Each group reports time per request; compare the
//! `hit` line with the `miss/*` lines measured in the same run.

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::config;
use tollgate::resource::{Resource, ResourceType};
use tollgate::token::foreign::{Foreign, Format};
use tollgate::token::issue::random_id;
use tollgate::token::keys::Algorithm;
use tollgate::token::keys::{generate_pem, SigningKey, VerifyKey};
use tollgate::token::{authorize, mint, KeySet, MintRequest, Revocations, Scope, Target, Verifier};

const NOW: u64 = 1_800_000_000;

fn token_cfg() -> config::Token {
    config::Token {
        issuer: "bench".into(),
        audience: vec![],
        leeway: Duration::from_secs(30),
        max_len: 4096,
        cache_capacity: 100_000,
        cache_max_ttl: Duration::from_secs(300),
        path_prefix: "t".into(),
        query: "token".into(),
        cookie: "tollgate_token".into(),
        allow_never_expiring: false,
        max_lifetime: None,
    }
}

fn setup(alg: Algorithm) -> (Verifier, String) {
    let (private, public) = match alg {
        Algorithm::Hs256 => {
            let s = "bench-secret-bench-secret-bench-secret!!".to_string();
            (s.clone(), s)
        }
        _ => generate_pem(alg).expect("generate"),
    };
    let keys = KeySet::from_keys(
        vec![VerifyKey::from_material("k", alg, public.as_bytes()).expect("verify key")],
        Some(SigningKey::from_material("k", alg, private.as_bytes()).expect("signing key")),
    );
    let req = MintRequest {
        scope: Scope::Resource,
        rid: Some("demo".into()),
        rty: Some(ResourceType::Vod),
        sub: Some("viewer-42".into()),
        ttl: Some(Duration::from_secs(3600)),
        ..MintRequest::default()
    };
    let (token, _) = mint(&keys, "bench", &req, NOW).expect("mint");
    (Verifier::new(keys, &token_cfg()), token)
}

fn bench(c: &mut Criterion) {
    let resource = Resource {
        id: "demo".into(),
        resource_type: ResourceType::Vod,
        org: "org".into(),
        project: Some("p".into()),
        public: false,
        published: true,
    };
    let client: IpAddr = "192.0.2.7".parse().expect("ip");
    let revocations = Revocations::default();
    let target = Target {
        resource_type: ResourceType::Vod,
        rid: "demo",
        resource: Some(&resource),
        path: "/vod/demo/v0/seg_001.ts",
        client,
    };

    let mut g = c.benchmark_group("authorise");
    let (verifier, token) = setup(Algorithm::EdDsa);
    verifier.verify(&token, NOW).expect("prime the cache");
    g.bench_function("hit/eddsa", |b| {
        b.iter(|| {
            let grant = verifier.verify(black_box(&token), NOW).expect("valid");
            authorize(&grant, black_box(&target), NOW, 30, &revocations).expect("allowed")
        })
    });
    // The same hit with a million other tokens revoked by jti: the revocation lookup
    // is a hash probe, whatever the set holds.
    let crowded = Revocations::default();
    for _ in 0..1_000_000 {
        crowded.revoke_jti(&random_id().expect("random id"), None);
    }
    g.bench_function("hit/eddsa/1m-jti-revoked", |b| {
        b.iter(|| {
            let grant = verifier.verify(black_box(&token), NOW).expect("valid");
            authorize(&grant, black_box(&target), NOW, 30, &crowded).expect("allowed")
        })
    });
    drop(crowded);
    foreign_hits(&mut g, client, &revocations);
    cat_hit(&mut g, client, &revocations);
    for (name, alg) in [
        ("miss/eddsa", Algorithm::EdDsa),
        ("miss/es256", Algorithm::Es256),
        ("miss/rs256", Algorithm::Rs256),
        ("miss/hs256", Algorithm::Hs256),
    ] {
        let (verifier, token) = setup(alg);
        g.bench_function(name, |b| {
            b.iter(|| {
                let grant = verifier.verify_uncached(black_box(&token)).expect("valid");
                authorize(&grant, black_box(&target), NOW, 30, &revocations).expect("allowed")
            })
        });
    }
    g.finish();
}

/// A cached hit per foreign format: the cache lookup (keyed by the credential and the
/// inputs its signature binds) and `foreign::authorize`.
fn foreign_hits(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    client: IpAddr,
    revocations: &Revocations,
) {
    use base64::Engine as _;
    use md5::Digest as _;
    use tollgate::token::foreign::edgeauth::{self, EdgeAuth, Settings};
    use tollgate::token::foreign::{self, Credential, Inputs, Kind, SecureLink};

    const KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
    let path = "/vod/demo/v0/seg_001.ts";
    let expression = "$secure_link_expires$uri$remote_addr bench-secret";
    let formats = vec![
        Format {
            name: "nginx".into(),
            kind: Kind::SecureLink(SecureLink::new(expression, "md5", "expires").expect("valid")),
        },
        Format {
            name: "akamai".into(),
            kind: Kind::EdgeAuth(
                EdgeAuth::new(&Settings {
                    name: "hdnts",
                    algorithm: edgeauth::Algorithm::Sha256,
                    key_hex: KEY,
                    field_delimiter: "~",
                    acl_delimiter: "!",
                    escape_early: false,
                    salt: None,
                })
                .expect("valid"),
            ),
        },
    ];
    let foreign = foreign_cache(formats);
    let inputs = Inputs {
        path,
        client,
        host: "media.example",
        query: None,
    };
    let expires = (NOW + 3600).to_string();
    let digest = md5::Md5::digest(format!("{expires}{path}{client} bench-secret").as_bytes());
    let md5 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest);
    let key: Vec<u8> = (0..KEY.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&KEY[i..i + 2], 16).expect("hex"))
        .collect();
    let fields = format!("exp={}~acl=/vod/demo/*~id=viewer-42", NOW + 3600);
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
        fields.as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let token = format!("{fields}~hmac={hex}");
    for (name, format, cred) in [
        (
            "hit/secure_link",
            0,
            [Some(md5.as_str()), Some(expires.as_str())],
        ),
        ("hit/edgeauth", 1, [Some(token.as_str()), None]),
    ] {
        let cred = Credential { fields: cred };
        foreign
            .verify_and_cache(format, &cred, &inputs, NOW)
            .expect("prime the cache");
        g.bench_function(name, |b| {
            b.iter(|| {
                let grant = foreign
                    .cached(format, black_box(&cred), black_box(&inputs), NOW)
                    .expect("cached");
                foreign::authorize(&grant, &inputs, NOW, 30, revocations).expect("allowed")
            })
        });
    }
}

/// A cached CAT hit: the lookup keyed by the token's text, then `authorize` with the
/// request's facts (a token with `iss`, `exp`, `cti`, `catu` host suffix and path
/// prefix, `catm`, `catnip` and `catr`, HS256), and its text `cti` against the `jti`
/// revocations, as the edge does.
fn cat_hit(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    client: IpAddr,
    revocations: &Revocations,
) {
    use aws_lc_rs::hmac;
    use ciborium::value::Value;
    use coset::{iana, CoseMac0Builder, HeaderBuilder, TaggedCborSerializable};
    use tollgate::token::cat::{self, Request};
    use tollgate::token::foreign::cat::{KeyMaterial, Settings};
    use tollgate::token::foreign::{CatFormat, Kind};

    let secret = [7u8; 32];
    let i = |n: i64| Value::Integer(n.into());
    let t = |s: &str| Value::Text(s.into());
    let m = |e: Vec<(i64, Value)>| Value::Map(e.into_iter().map(|(k, v)| (i(k), v)).collect());
    let claims = m(vec![
        (1, t("bench")),
        (4, i(NOW as i64 + 3600)),
        (7, Value::Bytes(b"bench-cti".to_vec())),
        (
            312,
            m(vec![
                (1, m(vec![(2, t("example.com"))])),
                (3, m(vec![(1, t("/vod/demo/"))])),
            ]),
        ),
        (313, Value::Array(vec![t("GET"), t("HEAD")])),
        (
            311,
            Value::Array(vec![Value::Tag(
                52,
                Box::new(Value::Array(vec![i(24), Value::Bytes(vec![192, 0, 2])])),
            )]),
        ),
        (323, m(vec![(0, i(2)), (1, i(120)), (2, i(60))])),
    ]);
    let mut payload = Vec::new();
    ciborium::ser::into_writer(&claims, &mut payload).expect("cbor");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &secret);
    let token = CoseMac0Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::HMAC_256_256)
                .key_id(b"k1".to_vec())
                .build(),
        )
        .payload(payload)
        .create_tag(b"", |d| hmac::sign(&key, d).as_ref().to_vec())
        .build()
        .to_tagged_vec()
        .expect("cose");
    let text = cat::encode_text(&token);
    let format = CatFormat::new(Settings {
        header: "CTA-Common-Access-Token",
        query: "CAT",
        cookie: "CTA-Common-Access-Token",
        issuer: Some("bench"),
        audience: None,
        renew_kid: None,
        keys: vec![(b"k1".to_vec(), KeyMaterial::Hs256(&secret))],
        leeway: 30,
        max_len: 4096,
    })
    .expect("format");
    let formats = vec![Format {
        name: "cat".into(),
        kind: Kind::Cat(Box::new(format)),
    }];
    let foreign = foreign_cache(formats);
    foreign
        .cat_verify_and_cache(0, &text, NOW)
        .expect("prime the cache");
    let policy = foreign.cat(0).expect("cat").policy().clone();
    let req = Request {
        scheme: "https",
        host: "media.example.com",
        port: 443,
        path: "/vod/demo/v0/seg_001.ts",
        query: "",
        method: "GET",
        client_ip: Some(client),
        headers: &[],
        country: None,
        asn: None,
    };
    g.bench_function("hit/cat", |b| {
        b.iter(|| {
            let cached = foreign
                .cat_cached(0, black_box(&text), NOW)
                .expect("cached");
            let grant = cached
                .cat
                .authorize(black_box(&req), &policy, NOW, None)
                .expect("allowed");
            let cti = grant.cti.and_then(|c| std::str::from_utf8(c).ok());
            assert!(!cti.is_some_and(|c| revocations.is_jti_revoked(c)));
            grant.exp
        })
    });
}

/// The foreign formats' verifier, sized as the native cache.
fn foreign_cache(formats: Vec<Format>) -> Foreign {
    let cfg = token_cfg();
    Foreign::new(
        formats,
        cfg.max_len,
        cfg.cache_capacity,
        cfg.cache_max_ttl,
        cfg.leeway,
    )
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
