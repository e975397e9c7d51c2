//! Unit tests: tokens built here with coset and aws-lc-rs (the interop fixtures minted by
//! Python `cwt` are checked in tests/it/cat_fixtures.rs).

use std::net::IpAddr;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use aws_lc_rs::{digest, hmac};
use ciborium::value::Value;
use coset::{
    iana, CborSerializable, CoseMac0Builder, CoseSign1Builder, HeaderBuilder,
    TaggedCborSerializable,
};

use super::claims::*;
use super::*;

const NOW: u64 = 1_800_000_000;
const SECRET: &[u8] = b"tollgate-cat-unit-test-hs256-key";
/// The key these tests configure for the issuer's list of critical claims.
const CRIT: i64 = 325;

fn int(i: i64) -> Value {
    Value::Integer(i.into())
}
fn txt(s: &str) -> Value {
    Value::Text(s.into())
}
fn map(entries: Vec<(i64, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (int(k), v)).collect())
}
fn cbor(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).expect("encode");
    out
}
fn base_claims() -> Vec<(i64, Value)> {
    vec![
        (ISS, txt("issuer")),
        (EXP, int(NOW as i64 + 60)),
        (CTI, Value::Bytes(b"id-1".to_vec())),
    ]
}
fn with(extra: Vec<(i64, Value)>) -> Vec<u8> {
    let mut c = base_claims();
    c.extend(extra);
    cbor(&map(c))
}
fn cwt_tag(cose: Vec<u8>) -> Vec<u8> {
    let v: Value = ciborium::de::from_reader(cose.as_slice()).expect("decode");
    cbor(&Value::Tag(61, Box::new(v)))
}

/// COSE_Mac0, tagged 17 and 61, `alg` as given, `kid` unprotected.
fn mac0_alg(kid: &str, secret: &[u8], payload: Vec<u8>, alg: iana::Algorithm) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let msg = CoseMac0Builder::new()
        .protected(HeaderBuilder::new().algorithm(alg).build())
        .unprotected(HeaderBuilder::new().key_id(kid.as_bytes().to_vec()).build())
        .payload(payload)
        .create_tag(b"", |data| hmac::sign(&key, data).as_ref().to_vec())
        .build();
    cwt_tag(msg.to_tagged_vec().expect("encode"))
}
fn mac0(payload: Vec<u8>) -> Vec<u8> {
    mac0_alg("hs", SECRET, payload, iana::Algorithm::HMAC_256_256)
}
fn sign1(
    kid: &str,
    alg: iana::Algorithm,
    payload: Vec<u8>,
    sign: impl FnOnce(&[u8]) -> Vec<u8>,
) -> Vec<u8> {
    let msg = CoseSign1Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(alg)
                .key_id(kid.as_bytes().to_vec())
                .build(),
        )
        .payload(payload)
        .create_signature(b"", sign)
        .build();
    msg.to_tagged_vec().expect("encode")
}

struct Keys {
    keys: CatKeys,
    ec: EcdsaKeyPair,
    ed: Ed25519KeyPair,
}
fn keys() -> Keys {
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("ec");
    let ed = Ed25519KeyPair::generate().expect("ed");
    let mut keys = CatKeys::new();
    keys.insert("hs", CatKey::hs256(SECRET));
    keys.insert("es", CatKey::es256(ec.public_key().as_ref()));
    keys.insert("ed", CatKey::ed25519(ed.public_key().as_ref()));
    Keys { keys, ec, ed }
}
fn policy() -> CatPolicy {
    CatPolicy {
        issuers: vec!["issuer".into()],
        crit_claim: Some(CRIT),
        ..CatPolicy::default()
    }
}
fn req<'a>(path: &'a str, headers: &'a [(&'a str, &'a str)]) -> Request<'a> {
    Request {
        scheme: "https",
        host: "media.example.com",
        port: 443,
        path,
        query: "a=1",
        method: "GET",
        client_ip: Some(IpAddr::from([192, 0, 2, 7])),
        headers,
        country: None,
        asn: None,
    }
}
const PATH: &str = "/vod/movie/v0/seg_001.m4s";

fn verdict(token: &[u8], r: &Request<'_>, now: u64) -> Result<(), CatReason> {
    let k = keys();
    verify_and_authorize(token, &k.keys, &policy(), r, now, None)
        .map(|_| ())
        .map_err(|e| e.reason)
}
fn claim_verdict(extra: Vec<(i64, Value)>, r: &Request<'_>) -> Result<(), CatReason> {
    verdict(&mac0(with(extra)), r, NOW)
}

#[test]
fn cat_accepts_hs256_mac0_with_and_without_the_cwt_tag() {
    let tagged = mac0(with(vec![]));
    assert_eq!(verdict(&tagged, &req(PATH, &[]), NOW), Ok(()));
    let untagged: Value = ciborium::de::from_reader(tagged.as_slice()).expect("decode");
    let Value::Tag(61, inner) = untagged else {
        panic!("not tagged 61")
    };
    assert_eq!(verdict(&cbor(&inner), &req(PATH, &[]), NOW), Ok(()));
    // Without the COSE tag too: the kid's key says it is a MAC.
    let Value::Tag(17, bare) = *inner else {
        panic!("not tagged 17")
    };
    assert_eq!(verdict(&cbor(&bare), &req(PATH, &[]), NOW), Ok(()));
}

#[test]
fn cat_accepts_es256_and_eddsa_sign1_and_reports_exp_and_cti() {
    let k = keys();
    let rng = SystemRandom::new();
    let es = sign1("es", iana::Algorithm::ES256, with(vec![]), |d| {
        k.ec.sign(&rng, d).expect("sign").as_ref().to_vec()
    });
    let ed = sign1("ed", iana::Algorithm::EdDSA, with(vec![]), |d| {
        k.ed.sign(d).as_ref().to_vec()
    });
    for token in [es, ed] {
        let cat = verify(&token, &k.keys, &policy()).expect("verifies");
        let grant = cat
            .authorize(&req(PATH, &[]), &policy(), NOW, None)
            .expect("authorised");
        assert_eq!(grant.exp, Some(NOW + 60));
        assert_eq!(grant.cti, Some(&b"id-1"[..]));
    }
}

#[test]
fn j1_cat_refuses_a_header_alg_other_than_the_keys() {
    let token = mac0_alg("hs", SECRET, with(vec![]), iana::Algorithm::HMAC_256_64);
    assert_eq!(
        verdict(&token, &req(PATH, &[]), NOW),
        Err(CatReason::Algorithm)
    );
}

#[test]
fn j1_cat_refuses_an_hmac_keyed_with_a_signature_kids_public_key() {
    // Algorithm confusion: MAC the claims with the ES256 public key as the secret and
    // name the ES256 key's kid; the key's algorithm, not the token, decides.
    let k = keys();
    let public = k.ec.public_key().as_ref().to_vec();
    let token = mac0_alg("es", &public, with(vec![]), iana::Algorithm::HMAC_256_256);
    let r = verify_and_authorize(&token, &k.keys, &policy(), &req(PATH, &[]), NOW, None);
    assert_eq!(
        r.map(|_| ()).map_err(|e| e.reason),
        Err(CatReason::Algorithm)
    );
}

#[test]
fn cat_refuses_tampered_claims_and_a_wrong_key_and_an_unknown_kid() {
    let mut token = mac0(with(vec![]));
    let at = token
        .windows(6)
        .position(|w| w == b"issuer")
        .expect("iss in token");
    token[at] = b'j';
    assert_eq!(
        verdict(&token, &req(PATH, &[]), NOW),
        Err(CatReason::BadSignature)
    );
    let wrong = mac0_alg(
        "hs",
        b"another-secret-another-secret!!!",
        with(vec![]),
        iana::Algorithm::HMAC_256_256,
    );
    assert_eq!(
        verdict(&wrong, &req(PATH, &[]), NOW),
        Err(CatReason::BadSignature)
    );
    let unknown = mac0_alg(
        "nobody",
        SECRET,
        with(vec![]),
        iana::Algorithm::HMAC_256_256,
    );
    assert_eq!(
        verdict(&unknown, &req(PATH, &[]), NOW),
        Err(CatReason::UnknownKid)
    );
}

#[test]
fn j4_cat_refuses_a_duplicated_claim_key_even_when_correctly_maced() {
    let mut c = base_claims();
    c.push((ISS, txt("issuer")));
    assert_eq!(
        verdict(&mac0(cbor(&map(c))), &req(PATH, &[]), NOW),
        Err(CatReason::Malformed)
    );
    let catu = Value::Map(vec![
        (int(3), map(vec![(1, txt("/vod/"))])),
        (int(3), map(vec![(1, txt("/"))])),
    ]);
    assert_eq!(
        claim_verdict(vec![(CATU, catu)], &req(PATH, &[])),
        Err(CatReason::Malformed)
    );
}

#[test]
fn j3_cat_refuses_overlong_tokens_trailing_bytes_and_deep_nesting() {
    let long = mac0(with(vec![(999, Value::Bytes(vec![0; 5000]))]));
    assert_eq!(
        verdict(&long, &req(PATH, &[]), NOW),
        Err(CatReason::TooLong)
    );
    let mut trailing = mac0(with(vec![]));
    trailing.push(0);
    assert_eq!(
        verdict(&trailing, &req(PATH, &[]), NOW),
        Err(CatReason::Malformed)
    );
    let mut deep = int(0);
    for _ in 0..40 {
        deep = Value::Array(vec![deep]);
    }
    assert_eq!(
        claim_verdict(vec![(999, deep)], &req(PATH, &[])),
        Err(CatReason::Malformed)
    );
}

#[test]
fn j2_cat_refuses_an_unknown_critical_claim_and_ignores_an_unknown_other_one() {
    let crit = Value::Array(vec![int(999)]);
    assert_eq!(
        claim_verdict(vec![(999, int(1)), (CRIT, crit)], &req(PATH, &[])),
        Err(CatReason::Critical)
    );
    assert_eq!(
        claim_verdict(
            vec![(999, int(1)), (CRIT, Value::Array(vec![int(CATU)]))],
            &req(PATH, &[])
        ),
        Ok(())
    );
    assert_eq!(claim_verdict(vec![(999, int(1))], &req(PATH, &[])), Ok(()));
}

#[test]
fn j2_cat_refuses_a_critical_cose_header_it_does_not_process() {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);
    let private = coset::RegisteredLabelWithPrivate::PrivateUse(-70000);
    let build = |protected: coset::Header, unprotected: coset::Header| {
        CoseMac0Builder::new()
            .protected(protected)
            .unprotected(unprotected)
            .payload(with(vec![]))
            .create_tag(b"", |data| hmac::sign(&key, data).as_ref().to_vec())
            .build()
            .to_vec()
            .expect("encode")
    };
    let kid = || HeaderBuilder::new().key_id(b"hs".to_vec());
    let alg = || HeaderBuilder::new().algorithm(iana::Algorithm::HMAC_256_256);
    let unknown = build(
        alg()
            .add_critical_label(private.clone())
            .value(-70000, int(1))
            .build(),
        kid().build(),
    );
    assert_eq!(
        verdict(&unknown, &req(PATH, &[]), NOW),
        Err(CatReason::Critical)
    );
    // `crit` listing only what tollgate processes is fine; `crit` unprotected is not.
    let known = build(
        alg().add_critical(iana::HeaderParameter::Alg).build(),
        kid().build(),
    );
    assert_eq!(verdict(&known, &req(PATH, &[]), NOW), Ok(()));
    let unprotected = build(
        alg().build(),
        kid().add_critical(iana::HeaderParameter::Alg).build(),
    );
    assert_eq!(
        verdict(&unprotected, &req(PATH, &[]), NOW),
        Err(CatReason::Critical)
    );
}

#[test]
fn cat_checks_catv_iss_aud_exp_and_nbf_with_leeway() {
    assert_eq!(
        claim_verdict(vec![(CATV, int(2))], &req(PATH, &[])),
        Err(CatReason::Version)
    );
    assert_eq!(claim_verdict(vec![(CATV, int(1))], &req(PATH, &[])), Ok(()));
    let other_iss = cbor(&map(vec![
        (ISS, txt("someone")),
        (EXP, int(NOW as i64 + 60)),
    ]));
    assert_eq!(
        verdict(&mac0(other_iss), &req(PATH, &[]), NOW),
        Err(CatReason::Issuer)
    );
    let k = keys();
    let aud_policy = CatPolicy {
        audiences: vec!["cdn".into()],
        ..policy()
    };
    let aud = |a: Value| verify(&mac0(with(vec![(AUD, a)])), &k.keys, &aud_policy).map(|_| ());
    assert_eq!(aud(txt("cdn")), Ok(()));
    assert_eq!(aud(Value::Array(vec![txt("x"), txt("cdn")])), Ok(()));
    assert_eq!(aud(txt("other")), Err(CatReason::Audience));
    let token = mac0(with(vec![(NBF, int(NOW as i64 + 100))]));
    assert_eq!(
        verdict(&token, &req(PATH, &[]), NOW),
        Err(CatReason::NotYetValid)
    );
    assert_eq!(verdict(&token, &req(PATH, &[]), NOW + 70), Ok(()));
    assert_eq!(
        verdict(&token, &req(PATH, &[]), NOW + 69),
        Err(CatReason::NotYetValid)
    );
    assert_eq!(verdict(&token, &req(PATH, &[]), NOW + 60 + 30), Ok(()));
    assert_eq!(
        verdict(&token, &req(PATH, &[]), NOW + 60 + 31),
        Err(CatReason::Expired)
    );
    let no_exp = cbor(&map(vec![(ISS, txt("issuer"))]));
    assert_eq!(
        verdict(&mac0(no_exp), &req(PATH, &[]), NOW),
        Err(CatReason::Malformed)
    );
}

fn catu(component: i64, kind: i64, value: Value) -> Vec<(i64, Value)> {
    vec![(CATU, map(vec![(component, map(vec![(kind, value)]))]))]
}

#[test]
fn catu_matches_every_component_as_the_reference_splits_it() {
    // (component, exact value for PATH), from @eyevinn/cat's reading of a URL.
    let cases = [
        (0, "https"),
        (1, "media.example.com"),
        (2, "443"),
        (3, PATH),
        (4, "a=1"),
        (5, "/vod/movie/v0"),
        (6, "seg_001.m4s"),
        (7, "seg_001"),
        (8, ".m4s"),
    ];
    for (component, value) in cases {
        assert_eq!(
            claim_verdict(catu(component, 0, txt(value)), &req(PATH, &[])),
            Ok(()),
            "component {component}"
        );
        let wrong = format!("{value}x");
        assert_eq!(
            claim_verdict(catu(component, 0, txt(&wrong)), &req(PATH, &[])),
            Err(CatReason::Uri),
            "component {component}"
        );
    }
    assert_eq!(
        claim_verdict(catu(99, 0, txt("x")), &req(PATH, &[])),
        Err(CatReason::Malformed)
    );
}

#[test]
fn catu_query_ignores_parameter_order_and_host_ignores_case() {
    let r = Request {
        query: "b=2&a=1&a=0",
        host: "Media.Example.COM",
        ..req(PATH, &[])
    };
    assert_eq!(claim_verdict(catu(4, 0, txt("a=1&a=0&b=2")), &r), Ok(()));
    assert_eq!(claim_verdict(catu(4, 0, txt("?b=2&a=1&a=0")), &r), Ok(()));
    assert_eq!(
        claim_verdict(catu(4, 0, txt("a=0&a=1&b=2")), &r),
        Err(CatReason::Uri)
    );
    assert_eq!(claim_verdict(catu(4, 1, txt("a=1&a=0&")), &r), Ok(()));
    assert_eq!(
        claim_verdict(catu(1, 0, txt("media.example.com")), &r),
        Ok(())
    );
}

#[test]
fn catu_match_types_prefix_suffix_contains_regex_and_hashes() {
    let ok = |kind, v| claim_verdict(catu(3, kind, v), &req(PATH, &[]));
    assert_eq!(ok(1, txt("/vod/movie/")), Ok(()));
    assert_eq!(ok(1, txt("/vod/other/")), Err(CatReason::Uri));
    assert_eq!(ok(2, txt(".m4s")), Ok(()));
    assert_eq!(ok(2, txt(".ts")), Err(CatReason::Uri));
    assert_eq!(ok(3, txt("/movie/")), Ok(()));
    assert_eq!(ok(3, txt("/film/")), Err(CatReason::Uri));
    assert_eq!(ok(4, Value::Array(vec![txt(r"^/vod/[a-z]+/v\d/")])), Ok(()));
    assert_eq!(ok(4, Value::Array(vec![txt("^/VOD/"), txt("i")])), Ok(()));
    assert_eq!(
        ok(4, Value::Array(vec![txt("^/VOD/")])),
        Err(CatReason::Uri)
    );
    assert_eq!(
        ok(4, Value::Array(vec![txt("^/vod/"), txt("x")])),
        Err(CatReason::Malformed)
    );
    let sha256 = digest::digest(&digest::SHA256, PATH.as_bytes())
        .as_ref()
        .to_vec();
    assert_eq!(ok(-1, Value::Bytes(sha256.clone())), Ok(()));
    let hex: String = sha256.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ok(-1, txt(&hex)), Ok(()));
    assert_eq!(ok(-1, Value::Bytes(vec![0; 32])), Err(CatReason::Uri));
    let sha512_256 = digest::digest(&digest::SHA512_256, PATH.as_bytes())
        .as_ref()
        .to_vec();
    assert_eq!(ok(-2, Value::Bytes(sha512_256)), Ok(()));
    // SHA-512 cut to 32 bytes is not SHA-512/256 (different initial values).
    let sha512_cut = digest::digest(&digest::SHA512, PATH.as_bytes()).as_ref()[..32].to_vec();
    assert_eq!(ok(-2, Value::Bytes(sha512_cut)), Err(CatReason::Uri));
}

#[test]
fn catm_catnip_and_cath_check_the_request() {
    let r = req(PATH, &[("X-Device", "tv-42"), ("x-device", "b")]);
    let methods = |m: Vec<&str>| vec![(CATM, Value::Array(m.into_iter().map(txt).collect()))];
    assert_eq!(claim_verdict(methods(vec!["GET", "HEAD"]), &r), Ok(()));
    assert_eq!(
        claim_verdict(methods(vec!["POST"]), &r),
        Err(CatReason::Method)
    );
    assert_eq!(
        claim_verdict(methods(vec!["get"]), &r),
        Err(CatReason::Method)
    );

    let v4net = Value::Tag(
        52,
        Box::new(Value::Array(vec![int(24), Value::Bytes(vec![192, 0, 2])])),
    );
    let other = Value::Tag(52, Box::new(Value::Bytes(vec![198, 51, 100, 1])));
    let v6 = Value::Tag(
        54,
        Box::new(Value::Array(vec![
            int(32),
            Value::Bytes(vec![0x20, 0x01, 0x0d, 0xb8]),
        ])),
    );
    assert_eq!(
        claim_verdict(vec![(CATNIP, Value::Array(vec![other.clone(), v4net]))], &r),
        Ok(())
    );
    assert_eq!(
        claim_verdict(vec![(CATNIP, Value::Array(vec![other, v6]))], &r),
        Err(CatReason::Ip)
    );
    assert_eq!(
        claim_verdict(vec![(CATNIP, Value::Array(vec![int(64500)]))], &r),
        Err(CatReason::Ip)
    );
    let mapped = Request {
        client_ip: Some("::ffff:192.0.2.7".parse().expect("ip")),
        ..r
    };
    let v4net = Value::Tag(
        52,
        Box::new(Value::Array(vec![int(24), Value::Bytes(vec![192, 0, 2])])),
    );
    assert_eq!(
        claim_verdict(vec![(CATNIP, Value::Array(vec![v4net]))], &mapped),
        Ok(())
    );
    let with_asn = Request {
        asn: Some(64500),
        ..r
    };
    assert_eq!(
        claim_verdict(vec![(CATNIP, Value::Array(vec![int(64500)]))], &with_asn),
        Ok(())
    );

    let cath = |name: &str, kind: i64, v: &str| {
        vec![(
            CATH,
            Value::Map(vec![(txt(name), map(vec![(kind, txt(v))]))]),
        )]
    };
    assert_eq!(claim_verdict(cath("x-device", 1, "tv-"), &r), Ok(()));
    assert_eq!(claim_verdict(cath("x-device", 0, "tv-42, b"), &r), Ok(()));
    assert_eq!(
        claim_verdict(cath("x-device", 0, "tv-42"), &r),
        Err(CatReason::Header)
    );
    assert_eq!(
        claim_verdict(cath("x-missing", 3, ""), &r),
        Err(CatReason::Header)
    );
}

#[test]
fn j5_catgeoiso3166_without_a_geo_source_is_refused_with_its_own_reason() {
    let r = req(PATH, &[]);
    let geo = vec![(CATGEOISO3166, Value::Array(vec![txt("SE"), txt("NO")]))];
    assert_eq!(
        claim_verdict(geo.clone(), &r),
        Err(CatReason::GeoUnavailable)
    );
    assert_eq!(
        claim_verdict(
            geo.clone(),
            &Request {
                country: Some("se"),
                ..r
            }
        ),
        Ok(())
    );
    assert_eq!(
        claim_verdict(
            geo,
            &Request {
                country: Some("US"),
                ..r
            }
        ),
        Err(CatReason::Geo)
    );
}

#[test]
fn j6_a_single_use_token_stays_single_use_through_the_leeway_in_a_full_guard() {
    let k = keys();
    let policy = CatPolicy {
        leeway: 30,
        ..policy()
    };
    let single_use = |cti: &[u8]| {
        let claims = vec![
            (ISS, txt("issuer")),
            (EXP, int(NOW as i64 + 60)),
            (CTI, Value::Bytes(cti.to_vec())),
            (CATREPLAY, int(1)),
        ];
        verify(&mac0(cbor(&map(claims))), &k.keys, &policy).expect("verifies")
    };
    let (a, b) = (single_use(b"id-1"), single_use(b"id-2"));
    let guard = MemoryReplayGuard::new(1);
    let r = req(PATH, &[]);
    let at = |cat: &VerifiedCat, now| {
        cat.authorize(&r, &policy, now, Some(&guard))
            .map(|_| ())
            .map_err(|e| e.reason)
    };
    assert_eq!(at(&a, NOW), Ok(()));
    // Past `exp` but inside the leeway `a` is still accepted, so its record stays.
    let late = NOW + 60 + 20;
    assert_eq!(at(&b, late), Err(CatReason::Replay), "the guard is full");
    assert_eq!(
        at(&a, late),
        Err(CatReason::Replay),
        "a replayed in the leeway"
    );
}

#[test]
fn j6_catreplay_prohibited_is_refused_on_reuse_and_without_a_store() {
    let k = keys();
    let token = mac0(with(vec![(CATREPLAY, int(1))]));
    let cat = verify(&token, &k.keys, &policy()).expect("verifies");
    let r = req(PATH, &[]);
    let no_store = cat
        .authorize(&r, &policy(), NOW, None)
        .map(|_| ())
        .map_err(|e| e.reason);
    assert_eq!(no_store, Err(CatReason::ReplayUnenforced));
    let guard = MemoryReplayGuard::new(16);
    assert!(cat.authorize(&r, &policy(), NOW, Some(&guard)).is_ok());
    let again = cat
        .authorize(&r, &policy(), NOW, Some(&guard))
        .map(|_| ())
        .map_err(|e| e.reason);
    assert_eq!(again, Err(CatReason::Replay));
    let detect =
        verify(&mac0(with(vec![(CATREPLAY, int(2))])), &k.keys, &policy()).expect("verifies");
    assert!(
        detect
            .authorize(&r, &policy(), NOW, None)
            .expect("granted")
            .report_reuse
    );
    assert_eq!(
        claim_verdict(vec![(CATREPLAY, int(3))], &r),
        Err(CatReason::Malformed)
    );
}

#[test]
fn catr_is_validated_and_returned_for_the_edge() {
    let k = keys();
    let catr = map(vec![
        (0, int(2)),
        (1, int(120)),
        (2, int(30)),
        (4, txt("CTA-Common-Access-Token")),
    ]);
    let cat = verify(&mac0(with(vec![(CATR, catr)])), &k.keys, &policy()).expect("verifies");
    let grant = cat
        .authorize(&req(PATH, &[]), &policy(), NOW, None)
        .expect("granted");
    let renewal = grant.renewal.expect("catr returned");
    assert_eq!(
        (renewal.kind, renewal.expadd, renewal.deadline),
        (RenewalKind::Header, 120, Some(30))
    );
    assert_eq!(
        renewal.header_name.as_deref(),
        Some("CTA-Common-Access-Token")
    );
    let redirect = verify(
        &mac0(with(vec![(CATR, map(vec![(0, int(3)), (1, int(60))]))])),
        &k.keys,
        &policy(),
    );
    assert_eq!(
        redirect.expect("verifies").claims.catr.and_then(|r| r.code),
        Some(302)
    );
    for bad in [
        map(vec![(1, int(60))]),                               // no type
        map(vec![(0, int(1))]),                                // no expadd
        map(vec![(0, int(9)), (1, int(60))]),                  // unknown type
        map(vec![(0, int(3)), (1, int(60)), (7, int(200))]),   // not a redirect status
        map(vec![(0, int(1)), (1, int(60)), (3, txt("a b"))]), // not a cookie name
        map(vec![(0, int(1)), (1, int(60)), (42, int(1))]),    // unknown parameter
    ] {
        assert_eq!(
            claim_verdict(vec![(CATR, bad)], &req(PATH, &[])),
            Err(CatReason::Malformed)
        );
    }
}

#[test]
fn catif_instruction_rides_on_the_refusal_of_its_claim() {
    let action = Value::Array(vec![
        int(302),
        Value::Map(vec![(txt("Location"), txt("https://login.example/"))]),
    ]);
    let catif = Value::Map(vec![(int(EXP), action)]);
    let k = keys();
    let token = mac0(with(vec![(CATIF, catif)]));
    let refusal = verify_and_authorize(
        &token,
        &k.keys,
        &policy(),
        &req(PATH, &[]),
        NOW + 3600,
        None,
    )
    .expect_err("expired");
    assert_eq!(refusal.reason, CatReason::Expired);
    let action = refusal.catif.expect("catif for exp");
    assert_eq!(action.status, 302);
    assert_eq!(
        action.headers,
        vec![(
            "Location".to_owned(),
            renewal::IfHeader::Text("https://login.example/".into())
        )]
    );
    // Another claim failing carries no instruction.
    let refusal = verify_and_authorize(
        &mac0(with(vec![
            (
                CATIF,
                Value::Map(vec![(
                    int(EXP),
                    Value::Array(vec![int(302), Value::Map(vec![])]),
                )]),
            ),
            (CATM, txt("POST")),
        ])),
        &k.keys,
        &policy(),
        &req(PATH, &[]),
        NOW,
        None,
    )
    .expect_err("method");
    assert_eq!((refusal.reason, refusal.catif), (CatReason::Method, None));
}

#[test]
fn cat_text_form_is_base64url_without_padding() {
    let token = mac0(with(vec![]));
    use base64::Engine as _;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token);
    assert_eq!(decode_text(&text), Ok(token));
    assert_eq!(decode_text("not+base64url/"), Err(CatReason::Malformed));
}

#[test]
fn j12_authorize_within_extends_exp_alone_and_never_for_a_single_use_token() {
    let k = keys();
    let p = policy();
    let r = req(PATH, &[]);
    let at = |token: &[u8], now, grace| {
        let cat = verify(token, &k.keys, &p).expect("verifies");
        cat.authorize_within(&r, &p, now, grace, None)
            .map(|_| ())
            .map_err(|e| e.reason)
    };
    let plain = mac0(with(vec![]));
    // `exp` is NOW + 60: an hour past it and the leeway, a grace of an hour reaches
    // and not a second further.
    let late = NOW + 60 + p.leeway + 3600;
    assert_eq!(at(&plain, late, 0), Err(CatReason::Expired));
    assert_eq!(at(&plain, late, 3600), Ok(()));
    assert_eq!(at(&plain, late + 1, 3600), Err(CatReason::Expired));
    // Every other claim still holds: another path is refused for its path.
    let elsewhere = mac0(with(vec![(
        CATU,
        map(vec![(3, map(vec![(1, txt("/elsewhere/"))]))]),
    )]));
    assert_eq!(at(&elsewhere, late, 3600), Err(CatReason::Uri));
    // A single-use token's use is remembered only until exp: no grace for it.
    let single_use = mac0(with(vec![(CATREPLAY, int(1))]));
    let guard = MemoryReplayGuard::new(16);
    let cat = verify(&single_use, &k.keys, &p).expect("verifies");
    let refused = cat
        .authorize_within(&r, &p, late, 3600, Some(&guard))
        .map(|_| ())
        .map_err(|e| e.reason);
    assert_eq!(refused, Err(CatReason::Expired));
}
