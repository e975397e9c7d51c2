//! The Common Access Token interop fixtures: tokens minted by other implementations
//! (Python `cwt`, and `@eyevinn/cat` when it installed), written by
//! scripts/cat-fixtures.py into tests/fixtures/cat/ with the verdict tollgate must reach.
//! `TOLLGATE_CAT_FIXTURES=<dir>` points at a freshly minted set instead (the CI check).

use std::net::IpAddr;
use std::path::PathBuf;

use serde_json::Value;
use tollgate::token::cat::{self, CatKey, CatKeys, CatPolicy, Refusal, Request};

fn fixtures_dir() -> PathBuf {
    std::env::var_os("TOLLGATE_CAT_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cat"))
}

fn read_json(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("fixture json")
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn keys() -> CatKeys {
    let mut keys = CatKeys::new();
    let json = read_json("keys.json");
    for (kid, k) in json.as_object().expect("keys object") {
        let Some(alg) = k.get("alg").and_then(Value::as_str) else {
            continue;
        };
        let material = hex(k["key_hex"].as_str().expect("key_hex"));
        let key = match alg {
            "HS256" => CatKey::hs256(&material),
            "ES256" => CatKey::es256(&material),
            "EdDSA" => CatKey::ed25519(&material),
            other => panic!("fixture key alg {other}"),
        };
        keys.insert(kid.as_bytes().to_vec(), key);
    }
    keys
}

/// The fixtures' policy; a case may turn on `hex_text_payload` or name `crit_claim`.
fn policy(case: &Value) -> CatPolicy {
    CatPolicy {
        hex_text_payload: case["policy"]["hex_text_payload"]
            .as_bool()
            .unwrap_or(false),
        crit_claim: case["policy"]["crit_claim"].as_i64(),
        issuers: vec!["fixture-issuer".into()],
        leeway: 30,
        max_len: 4096,
        ..CatPolicy::default()
    }
}

/// Presents one case's token with its request at its time.
fn run(case: &Value, keys: &CatKeys) -> Result<cat::VerifiedCat, Refusal> {
    let r = &case["request"];
    let s = |k: &str| r[k].as_str().unwrap_or("");
    let headers: Vec<(&str, &str)> = r["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| (h[0].as_str().expect("name"), h[1].as_str().expect("value")))
        .collect();
    let req = Request {
        scheme: s("scheme"),
        host: s("host"),
        port: r["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .expect("port"),
        path: s("path"),
        query: s("query"),
        method: s("method"),
        client_ip: r["client_ip"]
            .as_str()
            .map(|ip| ip.parse::<IpAddr>().expect("ip")),
        headers: &headers,
        country: r["country"].as_str(),
        asn: r["asn"].as_u64().and_then(|a| u32::try_from(a).ok()),
    };
    let token = cat::decode_text(case["token"].as_str().expect("token")).map_err(Refusal::from)?;
    cat::verify_and_authorize(
        &token,
        keys,
        &policy(case),
        &req,
        case["now"].as_u64().expect("now"),
        None,
    )
}

/// Python `cwt`'s cases, and `@eyevinn/cat`'s when that generator ran.
fn cases() -> Vec<Value> {
    let mut cases = read_json("cases.json")
        .as_array()
        .expect("cases array")
        .clone();
    if fixtures_dir().join("cases-eyevinn.json").exists() {
        cases.extend(
            read_json("cases-eyevinn.json")
                .as_array()
                .expect("cases array")
                .iter()
                .cloned(),
        );
    }
    cases
}

#[test]
fn cat_fixtures_every_generated_token_gets_its_expected_verdict() {
    let keys = keys();
    let cases = cases();
    assert!(cases.len() >= 60, "only {} fixture cases", cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            let got = run(case, &keys)
                .map(|_| "ok")
                .unwrap_or_else(|r| r.reason.code());
            let want = case["expect"].as_str().expect("expect");
            (got != want).then(|| {
                format!(
                    "{} ({}): got {got}, want {want}",
                    case["name"], case["generator"]
                )
            })
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} verdicts wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn cat_fixtures_cover_each_signature_algorithm_and_refusal_family() {
    let cases = cases();
    let expects: std::collections::HashSet<&str> =
        cases.iter().filter_map(|c| c["expect"].as_str()).collect();
    for reason in [
        "ok",
        "expired",
        "bad_signature",
        "unknown_kid",
        "algorithm",
        "critical",
        "malformed",
        "too_long",
        "scope",
        "method",
        "ip",
        "header",
        "geo_unavailable",
    ] {
        assert!(expects.contains(reason), "no fixture expects {reason}");
    }
    let generators: std::collections::HashSet<&str> = cases
        .iter()
        .filter_map(|c| c["generator"].as_str()?.split(' ').next())
        .collect();
    assert!(generators.contains("python"), "no Python cwt cases");
    let keys = keys();
    for name in ["hs256_valid_tagged", "es256_valid", "eddsa_valid"] {
        let case = cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"));
        assert!(run(case, &keys).is_ok(), "{name}");
    }
}

#[test]
fn cat_fixtures_catif_instruction_and_catr_come_back_from_cwt_tokens() {
    let keys = keys();
    let cases = cases();
    let find = |name: &str| {
        cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name}"))
    };
    let refusal = run(find("catif_on_expired"), &keys).expect_err("expired");
    assert_eq!(refusal.catif.map(|a| a.status), Some(302));
    let verified = run(find("catr_redirect"), &keys).expect("ok");
    let renewal = verified.claims.catr.expect("catr");
    assert_eq!(
        (renewal.kind, renewal.expadd, renewal.code),
        (cat::RenewalKind::Redirect, 120, Some(307))
    );
}
