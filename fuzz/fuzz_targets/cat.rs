//! The Common Access Token on arbitrary bytes: as a whole token (envelope, `kid`, MAC),
//! and as a claims map (every claim parser and check, which a MAC would otherwise keep
//! the fuzzer from reaching). No panic, whatever the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::token::cat::{self, CatClaims, CatKey, CatKeys, CatPolicy, Request};

fuzz_target!(|data: &[u8]| {
    let mut keys = CatKeys::new();
    keys.insert("hs", CatKey::hs256(b"fuzz-hs256-secret-fuzz-hs256-!!!"));
    keys.insert("ed", CatKey::ed25519(&[7; 32]));
    let policy = CatPolicy { crit_claim: Some(325), ..CatPolicy::default() };
    let _ = cat::verify(data, &keys, &policy);
    if let Ok(claims) = CatClaims::parse(data, policy.crit_claim) {
        let headers = [("x-device", "tv-42"), ("Cookie", "a=b")];
        let req = Request {
            scheme: "https",
            host: "media.example.com",
            port: 443,
            path: "/vod/movie/v0/seg_001.m4s",
            query: "b=2&a=1",
            method: "GET",
            client_ip: Some([192, 0, 2, 7].into()),
            headers: &headers,
            country: Some("SE"),
            asn: Some(64500),
        };
        let _ = claims.check_static(&policy);
        let _ = claims.check_request(&req, &policy, 1_800_000_000, 0);
        if let Some(rule) = &claims.catu {
            let _ = rule.path_prefix();
        }
    }
});
