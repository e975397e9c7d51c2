//! RFC 9246 tokens as the `uri_signing` plugin accepts them. Tokens are signed here
//! with aws-lc-rs HMAC over hand-written JSON (so a claim can be written twice) or
//! with jsonwebtoken's encoder; PyJWT's are checked by scripts/interop-uri-signing.py.

use std::time::Duration;

use super::*;
use crate::token::foreign::{authorize, Foreign, Format, Kind};
use crate::token::keys::{self, generate_pem, KeySet, VerifyKey};
use crate::token::Revocations;

const ISS: &str = "Kabletown URI Authority";
/// 32 bytes, base64url: the plugin's documented example key.
const K1: &str = "Kh_RkUMj-fzbD37qBnDf_3e_RvQ3RP9PaSmVEpE24AM";
const K2: &str = "fZBpDBNbk2GqhwoB_DGBAsBxqQZVix04rIoLJ7p_RlE";
const NOW: u64 = 1_800_000_000;

fn jwk(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    value.as_object().expect("object").clone()
}

fn hs_keys() -> Vec<serde_json::Map<String, serde_json::Value>> {
    vec![
        jwk(serde_json::json!({"alg": "HS256", "kid": "First Key", "kty": "oct", "k": K1})),
        jwk(serde_json::json!({"alg": "HS256", "kid": "Second Key", "kty": "oct", "k": K2})),
    ]
}

fn format_with(
    keys: &[serde_json::Map<String, serde_json::Value>],
    id: Option<&str>,
) -> UriSigning {
    UriSigning::new(&Settings {
        package: DEFAULT_PACKAGE,
        id,
        renewal_kid: Some("Second Key"),
        require_exp: true,
        issuers: vec![(ISS, keys)],
    })
    .expect("valid")
}

fn format() -> UriSigning {
    format_with(&hs_keys(), Some("mycdn"))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS over exactly this header and payload text, HMAC-SHA256 with `k`.
fn hs256(header: &str, payload: &str, k: &str) -> String {
    let secret = secret(k).expect("key");
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// A token under "First Key" with `extra` claims beside `iss` and `exp`.
fn token(extra: &str) -> String {
    let payload = format!(r#"{{"iss":"{ISS}","exp":{}{extra}}}"#, NOW + 600);
    hs256(r#"{"alg":"HS256","kid":"First Key"}"#, &payload, K1)
}

fn inputs<'a>(path: &'a str, query: Option<&'a str>) -> Inputs<'a> {
    Inputs::https_example(path, query)
}

fn verify(f: &UriSigning, token: &str) -> Result<ForeignGrant, TokenError> {
    f.verify(&Credential::of(&[Some(token)]))
}

/// Verify, then authorise `path` at `now` as the edge does on every request.
fn check(f: &UriSigning, token: &str, req: &Inputs<'_>, now: u64) -> Result<(), TokenError> {
    let grant = verify(f, token)?;
    authorize(&grant, req, None, now, 0, &Revocations::default())
}

#[test]
fn uri_signing_token_is_accepted_on_its_resource_and_refused_elsewhere() {
    let f = format();
    let tok = token(
        r#","sub":"viewer","aud":"mycdn","jti":"s-1","cdniv":1,"cdniuc":"regex:https://media\\.example/vod/demo/.*""#,
    );
    let here = inputs("/vod/demo/seg1.ts", Some("URISigningPackage=x"));
    assert_eq!(check(&f, &tok, &here, NOW), Ok(()));
    let grant = verify(&f, &tok).expect("verified");
    assert_eq!(
        (grant.exp, grant.id.as_deref()),
        (Some(NOW + 600), Some("s-1"))
    );
    // Another path, another scheme, another host: the URI container decides.
    let other = inputs("/vod/other/seg1.ts", None);
    assert_eq!(check(&f, &tok, &other, NOW), Err(TokenError::Acl));
    let http = Inputs {
        https: false,
        ..here
    };
    assert_eq!(check(&f, &tok, &http, NOW), Err(TokenError::Acl));
    // Expired (with leeway 0) and not yet valid.
    assert_eq!(check(&f, &tok, &here, NOW + 601), Err(TokenError::Expired));
    let later = token(&format!(r#","nbf":{}"#, NOW + 60));
    assert_eq!(check(&f, &later, &here, NOW), Err(TokenError::NotYetValid));
    // Revoked by jti.
    let revocations = Revocations::default();
    revocations.revoke_jti("s-1", None);
    assert_eq!(
        authorize(&grant, &here, None, NOW, 0, &revocations),
        Err(TokenError::Revoked)
    );
}

#[test]
fn uri_signing_regex_is_matched_from_the_start_of_the_uri_without_the_package() {
    let f = format();
    let tok = token(r#","cdniuc":"regex:https://media.example/a/[^/]*\\.ts\\?q=1$""#);
    let with_package = inputs("/a/x.ts", Some("URISigningPackage=abc&q=1"));
    assert_eq!(check(&f, &tok, &with_package, NOW), Ok(()));
    let extra = inputs("/a/x.ts", Some("q=1&r=2"));
    assert_eq!(check(&f, &tok, &extra, NOW), Err(TokenError::Acl));
    // Not searched: a pattern matching later in the URI does not match.
    let tail = token(r#","cdniuc":"regex:/a/x\\.ts""#);
    assert_eq!(
        check(&f, &tail, &inputs("/a/x.ts", None), NOW),
        Err(TokenError::Acl)
    );
}

#[test]
fn uri_signing_hash_container_is_the_sha256_of_the_uri() {
    let f = format();
    let uri = "https://media.example/a/x.ts?q=1";
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, uri.as_bytes());
    let tok = token(&format!(
        r#","cdniuc":"hash:sha-256;{}""#,
        b64(digest.as_ref())
    ));
    let req = inputs("/a/x.ts", Some("q=1&URISigningPackage=t"));
    assert_eq!(check(&f, &tok, &req, NOW), Ok(()));
    assert_eq!(
        check(&f, &tok, &inputs("/a/y.ts", Some("q=1")), NOW),
        Err(TokenError::Acl)
    );
    for bad in ["hash:sha-256;short", "hash:md5;AAAA", "glob:/a/*"] {
        let tok = token(&format!(r#","cdniuc":"{bad}""#));
        assert_eq!(verify(&f, &tok), Err(TokenError::Malformed), "{bad}");
    }
}

#[test]
fn uri_signing_cdniip_binds_the_client_address_or_prefix() {
    let f = format();
    let req = inputs("/a", None);
    let exact = token(r#","cdniip":"192.0.2.7""#);
    assert_eq!(check(&f, &exact, &req, NOW), Ok(()));
    let other = Inputs {
        client: "192.0.2.8".parse().expect("ip"),
        ..req
    };
    assert_eq!(check(&f, &exact, &other, NOW), Err(TokenError::Ip));
    let prefix = token(r#","cdniip":"192.0.2.0/24""#);
    assert_eq!(check(&f, &prefix, &other, NOW), Ok(()));
    let mapped = Inputs {
        client: "::ffff:192.0.2.7".parse().expect("ip"),
        ..req
    };
    assert_eq!(check(&f, &exact, &mapped, NOW), Ok(()));
    let bad = token(r#","cdniip":"not-an-address""#);
    assert_eq!(verify(&f, &bad), Err(TokenError::Malformed));
}

#[test]
fn l2_uri_signing_refuses_tampering_alg_none_and_algorithm_confusion() {
    let (_, es_public) = generate_pem(keys::Algorithm::Es256).expect("generate");
    let es =
        VerifyKey::from_material("es", keys::Algorithm::Es256, es_public.as_bytes()).expect("key");
    let jwks = KeySet::from_keys(vec![es], None).jwks();
    let es_jwk = jwk(jwks["keys"][0].clone());
    let mut keys = hs_keys();
    keys.push(es_jwk.clone());
    let f = format_with(&keys, None);
    let tok = token("");
    assert!(verify(&f, &tok).is_ok());
    // Tampered: the payload of another token under this one's signature.
    let parts: Vec<&str> = tok.split('.').collect();
    let later = token(r#","sub":"x""#);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        later.split('.').nth(1).expect("payload"),
        parts[2]
    );
    assert_eq!(verify(&f, &forged), Err(TokenError::BadSignature));
    // alg none, unsigned.
    let payload = format!(r#"{{"iss":"{ISS}","exp":{}}}"#, NOW + 600);
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"First Key"}"#),
        b64(payload.as_bytes())
    );
    assert!(verify(&f, &none).is_err(), "alg none");
    // HS256 keyed with the ES256 key's public PEM, under the ES256 kid.
    let secret = b64(es_public.as_bytes());
    let confused = hs256(r#"{"alg":"HS256","kid":"es"}"#, &payload, &secret);
    assert_eq!(verify(&f, &confused), Err(TokenError::BadSignature));
    // A header alg other than the kid's (HS384 under an HS256 kid).
    let other_alg = hs256(r#"{"alg":"HS384","kid":"First Key"}"#, &payload, K1);
    assert_eq!(verify(&f, &other_alg), Err(TokenError::BadSignature));
    // A kid of another issuer's, an unknown issuer, an unknown kid.
    let unknown_kid = hs256(r#"{"alg":"HS256","kid":"nope"}"#, &payload, K1);
    assert_eq!(verify(&f, &unknown_kid), Err(TokenError::UnknownKid));
    let stranger = hs256(
        r#"{"alg":"HS256","kid":"First Key"}"#,
        &payload.replace(ISS, "Someone Else"),
        K1,
    );
    assert_eq!(verify(&f, &stranger), Err(TokenError::Issuer));
    // No kid: the issuer's keys of the header's algorithm are tried, as the plugin does.
    let no_kid = hs256(r#"{"alg":"HS256"}"#, &payload, K2);
    assert!(verify(&f, &no_kid).is_ok());
    let no_kid_bad = hs256(r#"{"alg":"HS256"}"#, &payload, &secret);
    assert_eq!(verify(&f, &no_kid_bad), Err(TokenError::BadSignature));
}

#[test]
fn l3_uri_signing_refuses_missing_duplicated_and_mistyped_claims() {
    let f = format();
    let header = r#"{"alg":"HS256","kid":"First Key"}"#;
    let exp = NOW + 600;
    let cases = [
        format!(r#"{{"exp":{exp}}}"#),
        format!(r#"{{"iss":"{ISS}"}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp},"exp":{}}}"#, exp + 9_999),
        format!(r#"{{"iss":"{ISS}","iss":"{ISS}","exp":{exp}}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp},"cdniuc":"regex:/a","cdniuc":"regex:.*"}}"#),
        format!(r#"{{"iss":"{ISS}","exp":"{exp}"}}"#),
        format!(r#"{{"iss":"{ISS}","exp":-1}}"#),
        format!(r#"{{"iss":"{ISS}","exp":1e300}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp},"cdniv":2}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp},"cdnistt":2}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp},"cdnistd":-1}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp},"jti":7}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp},"cdniuc":"regex:("}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp},"cdniuc":"regex:a{{5000}}{{5000}}"}}"#),
        format!(r#"{{"iss":"{ISS}","exp":{exp}}} trailing"#),
    ];
    for payload in cases {
        let tok = hs256(header, &payload, K1);
        assert_eq!(verify(&f, &tok), Err(TokenError::Malformed), "{payload}");
    }
    // A header naming its alg twice.
    let tok = hs256(
        r#"{"alg":"HS256","alg":"none","kid":"First Key"}"#,
        &format!(r#"{{"iss":"{ISS}","exp":{exp}}}"#),
        K1,
    );
    assert!(verify(&f, &tok).is_err());
    // Reals, as the plugin writes them when it renews, are read without widening.
    let real = hs256(
        header,
        &format!(r#"{{"iss":"{ISS}","exp":{exp}.9,"nbf":{}.1}}"#, NOW - 10),
        K1,
    );
    let grant = verify(&f, &real).expect("reals");
    assert_eq!((grant.exp, grant.nbf), (Some(exp), Some(NOW - 9)));
}

#[test]
fn l4_uri_signing_refuses_an_unknown_critical_claim_only() {
    let f = format();
    assert!(verify(&f, &token(r#","cdnicrit":"exp, cdniuc,cdniip""#)).is_ok());
    assert_eq!(
        verify(&f, &token(r#","cdnicrit":"exp,cdniroles""#)),
        Err(TokenError::Malformed)
    );
    // An unknown claim that is not critical is ignored.
    assert!(verify(&f, &token(r#","cdniroles":"x""#)).is_ok());
}

#[test]
fn uri_signing_audience_is_the_configured_id() {
    let f = format();
    assert!(verify(&f, &token(r#","aud":"mycdn""#)).is_ok());
    assert!(verify(&f, &token(r#","aud":["other","mycdn"]"#)).is_ok());
    assert_eq!(
        verify(&f, &token(r#","aud":"other""#)),
        Err(TokenError::Audience)
    );
    let no_id = format_with(&hs_keys(), None);
    assert_eq!(
        verify(&no_id, &token(r#","aud":"mycdn""#)),
        Err(TokenError::Audience)
    );
    assert!(verify(&no_id, &token("")).is_ok());
}

#[test]
fn l3_uri_signing_overlong_tokens_are_refused_before_decoding() {
    let kind = Kind::UriSigning(format());
    let formats = vec![Format {
        name: "ats".into(),
        kind,
    }];
    let foreign = Foreign::new(formats, 512, 16, Duration::from_secs(60), Duration::ZERO);
    let long = token(&format!(r#","sub":"{}""#, "x".repeat(600)));
    let cred = Credential::of(&[Some(long.as_str())]);
    assert_eq!(
        foreign.verify_and_cache(0, &cred, &inputs("/a", None), NOW),
        Err(TokenError::Malformed)
    );
}

/// The renewal's claims, decoded without checking (the test then verifies it).
fn payload_of(token: &str) -> serde_json::Value {
    let part = token.split('.').nth(1).expect("payload");
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("b64");
    serde_json::from_slice(&json).expect("json")
}

#[test]
fn i4_a_uri_signing_renewal_keeps_every_claim_and_ends_cdniets_after_now() {
    let f = format();
    let extra = r#","sub":"v","aud":"mycdn","jti":"s-1","cdniip":"192.0.2.0/24","cdniuc":"regex:https://media\\.example/vod/","cdniets":30,"cdnistt":1,"cdnistd":2,"cdnicrit":"cdniip""#;
    let original = token(extra);
    let grant = verify(&f, &original).expect("verified");
    let bound = grant.uri_signing.as_deref().expect("bound");
    let kept = bound.renewal.as_ref().expect("renewable");
    let at = NOW + 100;
    let renewed = f.renew(kept, "/vod/demo/seg.ts", at).expect("renewed");
    assert_eq!(renewed.exp, at + 30, "exp is now + cdniets, never more");
    assert_eq!(renewed.cookie_path, "/vod/demo");
    // It verifies (under the renewal key) into the same bindings, later exp only.
    let again = verify(&f, &renewed.token).expect("the renewal verifies");
    assert_eq!(again.exp, Some(at + 30));
    assert_eq!((again.nbf, again.id.as_deref()), (grant.nbf, Some("s-1")));
    let again_bound = again.uri_signing.as_deref().expect("bound");
    assert_eq!(again_bound.net, bound.net);
    assert_eq!(again_bound.container, bound.container);
    assert_eq!(again_bound.renewal.as_ref(), Some(kept));
    // Every claim but iat and exp is the original's (iss: the renewal key's issuer).
    let (mut old, mut new) = (payload_of(&original), payload_of(&renewed.token));
    for claims in [&mut old, &mut new] {
        let map = claims.as_object_mut().expect("object");
        map.remove("exp");
        map.remove("iat");
        map.remove("cdniv");
    }
    assert_eq!(old, new);
    // The renewal of a renewal is bounded the same way; it is refused past its exp.
    let req = inputs("/vod/demo/seg.ts", None);
    assert_eq!(
        check(&f, &renewed.token, &req, at + 31),
        Err(TokenError::Expired)
    );
    // No renewal without cdnistt 1 and cdniets, nor for a path shorter than cdnistd.
    for no in [
        r#","cdniets":30"#,
        r#","cdnistt":1"#,
        r#","cdnistt":1,"cdniets":0"#,
    ] {
        let g = verify(&f, &token(no)).expect("verified");
        assert!(
            g.uri_signing.as_deref().expect("bound").renewal.is_none(),
            "{no}"
        );
    }
    assert!(f.renew(kept, "/vod", at).is_none());
}

#[test]
fn uri_signing_cookie_path_holds_cdnistd_segments() {
    assert_eq!(cookie_path("/a/b/c.ts", 0).as_deref(), Some("/"));
    assert_eq!(cookie_path("/a/b/c.ts", 1).as_deref(), Some("/a"));
    assert_eq!(cookie_path("/a/b/c.ts", 2).as_deref(), Some("/a/b"));
    assert_eq!(cookie_path("/a/b/c.ts", 3), None);
}

#[test]
fn uri_signing_config_is_validated() {
    let settings = |keys: &[serde_json::Map<String, serde_json::Value>], renewal: Option<&str>| {
        UriSigning::new(&Settings {
            package: DEFAULT_PACKAGE,
            id: None,
            renewal_kid: renewal,
            require_exp: true,
            issuers: vec![(ISS, keys)],
        })
        .map(|_| ())
    };
    assert_eq!(settings(&hs_keys(), Some("First Key")), Ok(()));
    let rsa_as_hmac = jwk(
        serde_json::json!({"alg": "HS256", "kid": "r", "kty": "RSA", "n": "AQAB", "e": "AQAB"}),
    );
    let no_alg = jwk(serde_json::json!({"kid": "a", "kty": "oct", "k": K1}));
    let no_kid = jwk(serde_json::json!({"alg": "HS256", "kty": "oct", "k": K1}));
    let short = jwk(serde_json::json!({"alg": "HS256", "kid": "s", "kty": "oct", "k": "c2hvcnQ"}));
    for (keys, says) in [
        (vec![rsa_as_hmac], "does not fit"),
        (vec![no_alg], "alg"),
        (vec![no_kid], "kid"),
        (vec![short], "16 bytes"),
        (vec![], "no keys"),
        ([hs_keys(), hs_keys()].concat(), "twice"),
    ] {
        let err = settings(&keys, None).expect_err(says);
        assert!(err.contains(says), "{err}");
    }
    let err = settings(&hs_keys(), Some("Third Key")).expect_err("renewal");
    assert!(err.contains("renewal_kid"), "{err}");
}
