//! Threat model A15: request targets that try to reach `/vod/b/secret.txt` from `/vod/a/`,
//! shared by the tests against a lenient HTTP origin and against the `file://` origin.

use std::time::Duration;

use super::raw;

/// Every mutation tries to reach `/vod/b/secret.txt` starting from `/vod/a/`.
/// `http://HOST` marks an absolute-form request target (HOST becomes the gate's address).
pub const MUTATIONS: &[&str] = &[
    // literal and single dots
    "/vod/a/../b/secret.txt",
    "/vod/a/./../b/secret.txt",
    "/vod/a/x/../../b/secret.txt",
    "/vod/a/./b/../../b/secret.txt",
    // encoded dots and slashes
    "/vod/a/%2e%2e/b/secret.txt",
    "/vod/a/%2E%2E/b/secret.txt",
    "/vod/a/%2E%2E%2Fb/secret.txt",
    "/vod/a/%2E%2E%2Fb%2Fsecret.txt",
    "/vod/a/%2e%2e%2fb/secret.txt",
    "/vod/a/.%2e/b/secret.txt",
    "/vod/a/%2e./b/secret.txt",
    "/vod/a/.%2E/b/secret.txt",
    "/vod/a/..%2fb/secret.txt",
    "/vod/a/..%2Fb%2Fsecret.txt",
    "/vod/a/%2e%2e%2f%2e%2e%2fvod/b/secret.txt",
    "/vod/a/%2e/../b/secret.txt",
    // double encoding
    "/vod/a/%252e%252e%252fb/secret.txt",
    "/vod/a/%252e%252e/b/secret.txt",
    "/vod/a/%252E%252E%252Fb%252Fsecret.txt",
    "/vod/a/..%252fb/secret.txt",
    "/vod/a/..%255cb/secret.txt",
    "/vod/a/%25%32%65%25%32%65%25%32%66b/secret.txt",
    "/vod/a/%%32%65%%32%65/b/secret.txt",
    // backslashes, encoded and raw
    "/vod/a/..%5cb/secret.txt",
    "/vod/a/..%5Cb%5Csecret.txt",
    "/vod/a/%2e%2e%5cb/secret.txt",
    "/vod/a/..\\b/secret.txt",
    "/vod/a/..\\b\\secret.txt",
    "/vod/a\\..\\b\\secret.txt",
    // overlong UTF-8
    "/vod/a/%c0%ae%c0%ae/b/secret.txt",
    "/vod/a/%C0%AE%C0%AE%C0%AFb/secret.txt",
    "/vod/a/%c0%ae%c0%ae%c0%afb%c0%afsecret.txt",
    "/vod/a/%e0%80%ae%e0%80%ae/b/secret.txt",
    "/vod/a/%e0%80%ae%e0%80%ae%e0%80%afb/secret.txt",
    "/vod/a/%f0%80%80%ae%f0%80%80%ae/b/secret.txt",
    "/vod/a/..%c0%afb/secret.txt",
    "/vod/a/..%c1%9cb/secret.txt",
    "/vod/a/%u002e%u002e/b/secret.txt",
    "/vod/a/%u002e%u002e%u2215b/secret.txt",
    // slashes and single-dot segments
    "//vod/a/../b/secret.txt",
    "/vod/a//../b/secret.txt",
    "/vod/a/.//..//b/secret.txt",
    "/vod//a/../b/secret.txt",
    "/vod/a/./../b/./secret.txt",
    "/vod/a/.../b/secret.txt",
    "/vod/a/..../b/secret.txt",
    "/vod/a/..%20/b/secret.txt",
    "/vod/a/%20../b/secret.txt",
    // trailing dot segments
    "/vod/a/../b/secret.txt/.",
    "/vod/a/../b/secret.txt/..",
    "/vod/b/secret.txt/.",
    "/vod/b/secret.txt/x/..",
    "/vod/a/../b/secret.txt/",
    // case changes
    "/VOD/b/secret.txt",
    "/vod/B/secret.txt",
    "/vod/a/../B/secret.txt",
    "/Vod/A/../b/secret.txt",
    "/VOD/A/../B/SECRET.TXT",
    "/vod/%62/secret.txt",
    "/vod/%42/secret.txt",
    // path parameters
    "/vod/a;x=1/../b/secret.txt",
    "/vod/a/..;/b/secret.txt",
    "/vod/a/..;x=1/b/secret.txt",
    "/vod/a/.;/../b/secret.txt",
    "/vod/a/;/../b/secret.txt",
    "/vod/a/..%3b/b/secret.txt",
    "/vod/a/..%3B/b/secret.txt",
    "/vod/a/..%3bjsessionid=1/b/secret.txt",
    "/vod/b;a/secret.txt",
    "/vod/a;/b/secret.txt",
    // NUL and hash
    "/vod/a/%00/../../b/secret.txt",
    "/vod/a/ok.txt%00/../../b/secret.txt",
    "/vod/a/..%00/b/secret.txt",
    "/vod/a/x%23/../../b/secret.txt",
    "/vod/a/%23/../b/secret.txt",
    "/vod/a/..%23/b/secret.txt",
    "/vod/a/..%3f/b/secret.txt",
    // Unicode look-alikes (full-width dot and slash, one-dot leader)
    "/vod/a/%EF%BC%8E%EF%BC%8E/b/secret.txt",
    "/vod/a/%EF%BC%8E%EF%BC%8E%EF%BC%8Fb%EF%BC%8Fsecret.txt",
    "/vod/a/..%EF%BC%8Fb/secret.txt",
    "/vod/a/..%EF%BC%BCb/secret.txt",
    "/vod/a/%E2%80%A4%E2%80%A4/b/secret.txt",
    // combinations
    "/vod/a/.%2e/%2e%2e/vod/b/secret.txt",
    "/vod/a/..%2f..%2fvod%2fb%2fsecret.txt",
    "/vod/a//%2e%2e//b/secret.txt",
    "/vod/a/%2e%2e;/b/secret.txt",
    "/vod/a/..%5c..%5cvod%5cB%5cSECRET.TXT",
    "/vod/a/x/..%252f..%252fb/secret.txt",
    // absolute-form request targets
    "http://HOST/vod/b/secret.txt",
    "http://HOST/vod/a/../b/secret.txt",
    "http://HOST/vod/a/%2e%2e/b/secret.txt",
    "http://evil.example/vod/a/../b/secret.txt",
    "http://evil.example/vod/b/secret.txt",
];

#[derive(Debug, Clone, Copy)]
pub enum Carrier {
    Query,
    PathPrefix,
}

/// The request target for mutation `m` with the token in `carrier`.
pub fn target(m: &str, host: &str, tok: &str, carrier: Carrier) -> String {
    let (authority, path) = match m.strip_prefix("http://") {
        Some(rest) => {
            let cut = rest.find('/').expect("absolute-form mutation has a path");
            (
                Some(rest[..cut].replace("HOST", host)),
                rest[cut..].to_string(),
            )
        }
        None => (None, m.to_string()),
    };
    let path = match carrier {
        Carrier::Query if path.contains('?') => format!("{path}&token={tok}"),
        Carrier::Query => format!("{path}?token={tok}"),
        Carrier::PathPrefix => format!("/t/{tok}{path}"),
    };
    match authority {
        Some(a) => format!("http://{a}{path}"),
        None => path,
    }
}

/// One raw HTTP/1.1 request (the target byte for byte); the whole response as text.
pub async fn send_target(addr: std::net::SocketAddr, target: &str) -> (Option<u16>, String) {
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let text = raw(addr, req.as_bytes(), Duration::from_secs(10)).await;
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, text)
}
