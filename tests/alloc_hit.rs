//! A cached foreign-credential hit allocates nothing: the cache lookup (its key built in
//! a per-thread buffer), then every per-request rule, RFC 9246's `cdniip` and `cdniuc`
//! (the URI built in a per-thread buffer) included. Its own test binary, without the
//! test harness: it installs the process's global allocator, dhat's, which counts every
//! thread's allocations, so nothing may run beside the check (libtest's main thread
//! allocates while it waits on a slow test).

use std::time::Duration;

use base64::Engine as _;
use tollgate::token::foreign::uri_signing::{Settings, UriSigning, DEFAULT_PACKAGE};
use tollgate::token::foreign::{self, Credential, Foreign, Format, Inputs, Kind};
use tollgate::token::Revocations;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const K: &str = "Kh_RkUMj-fzbD37qBnDf_3e_RvQ3RP9PaSmVEpE24AM";
const NOW: u64 = 1_800_000_000;

fn format() -> Foreign {
    let key = serde_json::json!({"alg": "HS256", "kid": "k1", "kty": "oct", "k": K});
    let keys = vec![key.as_object().expect("object").clone()];
    let kind = UriSigning::new(&Settings {
        package: DEFAULT_PACKAGE,
        id: None,
        renewal_kid: None,
        require_exp: true,
        issuers: vec![("iss", &keys)],
    })
    .expect("valid");
    let formats = vec![Format {
        name: "ats".into(),
        kind: Kind::UriSigning(kind),
    }];
    Foreign::new(formats, 4096, 16, Duration::from_secs(60), Duration::ZERO)
}

/// Signed by hand (HMAC-SHA256 over the exact text), binding a /24, a URI prefix and a
/// `jti`: every per-request check a hit makes.
fn token() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let header = B64.encode(r#"{"alg":"HS256","kid":"k1"}"#);
    let claims = format!(
        r#"{{"iss":"iss","exp":{},"jti":"s-1","cdniip":"192.0.2.0/24","cdniuc":"regex:https://media\\.example/vod/demo/"}}"#,
        NOW + 600
    );
    let input = format!("{header}.{}", B64.encode(claims));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &B64.decode(K).expect("k"));
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", B64.encode(tag.as_ref()))
}

fn main() {
    l6_a_cached_uri_signing_hit_rechecks_the_request_without_allocating();
    println!("l6_a_cached_uri_signing_hit_rechecks_the_request_without_allocating ... ok");
}

fn l6_a_cached_uri_signing_hit_rechecks_the_request_without_allocating() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let foreign = format();
    let tok = token();
    let cred = Credential {
        fields: [Some(tok.as_str()), None],
    };
    let req = Inputs {
        path: "/vod/demo/seg_001.ts",
        client: "192.0.2.7".parse().expect("ip"),
        host: "media.example",
        query: Some("URISigningPackage=t&q=1"),
        https: true,
    };
    let revocations = Revocations::default();
    revocations.revoke_jti("someone-else", None);
    foreign
        .verify_and_cache(0, &cred, &req, NOW)
        .expect("verified");
    let hit = |req: &Inputs<'_>| {
        let grant = foreign.cached(0, &cred, req, NOW).expect("a hit");
        foreign::authorize(&grant, req, NOW, 0, &revocations)
    };
    assert_eq!(hit(&req), Ok(()), "warms the per-thread buffers");
    let before = dhat::HeapStats::get().total_blocks;
    for _ in 0..1000 {
        assert_eq!(hit(&req), Ok(()));
    }
    let allocated = dhat::HeapStats::get().total_blocks - before;
    assert_eq!(allocated, 0, "allocations in 1000 cached hits");
    // The hit still re-checks the request: another path, another address.
    let elsewhere = Inputs {
        path: "/vod/other/seg_001.ts",
        ..req
    };
    assert_eq!(hit(&elsewhere), Err(tollgate::token::TokenError::Acl));
    let stranger = Inputs {
        client: "198.51.100.1".parse().expect("ip"),
        ..req
    };
    assert_eq!(hit(&stranger), Err(tollgate::token::TokenError::Ip));
}
