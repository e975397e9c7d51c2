//! Threat model A15: path tricks never reach another resource, whatever the origin normalises.
//!
//! The origin here is deliberately lenient, like a careless static file server: it
//! percent-decodes (once, or twice in one variant), folds overlong UTF-8 dots and slashes,
//! truncates at NUL, treats `\` as `/`, strips `;params`, resolves dot segments, collapses
//! `//` and ignores case. It holds `MARKER-B` in resource b's folder. A token for resource
//! a, carried in the query or in the `/t/<tok>/` prefix, must never get that marker back.

use crate::common;

use std::sync::Arc;

use bytes::Bytes;
use common::traversal::*;
use common::*;
use http::Response;
use http_body_util::Full;

const MARKER: &str = "MARKER-B";
const OK_A: &str = "ok-a";

/// Which normalisations the lenient origin applies on top of the baseline set.
#[derive(Debug, Clone, Copy)]
struct Lenient {
    /// How many times `%XX` escapes are decoded (1 = the usual, 2 = a double decoder).
    decodes: usize,
    /// Fold full-width `．／＼` and `․` to their ASCII look-alikes (NFKC-style).
    fold_unicode: bool,
}

const ONCE: Lenient = Lenient {
    decodes: 1,
    fold_unicode: false,
};
const TWICE: Lenient = Lenient {
    decodes: 2,
    fold_unicode: false,
};
const UNICODE: Lenient = Lenient {
    decodes: 1,
    fold_unicode: true,
};

/// Lenient `%XX` decoding: a broken escape is kept literally, as many servers do.
fn pct_decode(input: &[u8]) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%' {
            if let (Some(h), Some(l)) = (
                input.get(i + 1).copied().and_then(hex),
                input.get(i + 2).copied().and_then(hex),
            ) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Overlong UTF-8 spellings of `.`, `/` and `\` folded to ASCII, as old decoders did.
fn fold_overlong(input: &[u8]) -> Vec<u8> {
    const TABLE: &[(&[u8], u8)] = &[
        (&[0xF0, 0x80, 0x80, 0xAE], b'.'),
        (&[0xF0, 0x80, 0x80, 0xAF], b'/'),
        (&[0xE0, 0x80, 0xAE], b'.'),
        (&[0xE0, 0x80, 0xAF], b'/'),
        (&[0xC0, 0xAE], b'.'),
        (&[0xC0, 0xAF], b'/'),
        (&[0xC1, 0x9C], b'\\'),
    ];
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    'outer: while i < input.len() {
        for (seq, ascii) in TABLE {
            if input[i..].starts_with(seq) {
                out.push(*ascii);
                i += seq.len();
                continue 'outer;
            }
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// The file the lenient origin serves for a request target (origin-form).
fn lenient_resolve(target: &str, how: Lenient) -> String {
    let raw_path = target.split('?').next().unwrap_or_default();
    let mut bytes = raw_path.as_bytes().to_vec();
    for _ in 0..how.decodes {
        bytes = pct_decode(&bytes);
    }
    bytes = fold_overlong(&bytes);
    // A C string ends at NUL.
    if let Some(nul) = bytes.iter().position(|&b| b == 0) {
        bytes.truncate(nul);
    }
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if how.fold_unicode {
        text = text
            .replace(['\u{FF0E}', '\u{2024}'], ".")
            .replace('\u{FF0F}', "/")
            .replace('\u{FF3C}', "\\");
    }
    let text = text.replace('\\', "/");
    let mut out: Vec<String> = Vec::new();
    for seg in text.split('/') {
        // Tomcat-style: path parameters go before dot segments are resolved.
        let seg = seg.split(';').next().unwrap_or_default();
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s.to_lowercase()),
        }
    }
    format!("/{}", out.join("/"))
}

fn lenient_file(path: &str) -> Option<&'static str> {
    match path {
        "/vod/b/secret.txt" => Some(MARKER),
        "/vod/a/ok.txt" => Some(OK_A),
        _ => None,
    }
}

async fn lenient_origin(how: Lenient) -> TestOrigin {
    TestOrigin::start_with(Arc::new(move |s: &Seen| {
        let resolved = lenient_resolve(&s.target, how);
        let (status, body) = match lenient_file(&resolved) {
            Some(body) => (200, body),
            None => (404, "no such file"),
        };
        Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .expect("origin response")
    }))
    .await
}

fn body_of(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// Sends every mutation with both carriers; returns a line per violation.
async fn run_table(tg: &TestGate, origin: &TestOrigin, how: Lenient) -> Vec<String> {
    let addr = tg.plain();
    let host = addr.to_string();
    let tok = tg.token_for("a");
    let mut failures = Vec::new();
    for m in MUTATIONS {
        for carrier in [Carrier::Query, Carrier::PathPrefix] {
            let t = target(m, &host, &tok, carrier);
            let (status, text) = send_target(addr, &t).await;
            let shown = t.replace(&tok, "<tok>");
            let leaked = text.contains(MARKER);
            let status_ok = match status {
                Some(400 | 401 | 403 | 404) => true,
                Some(200) => !body_of(&text).contains(MARKER),
                _ => false,
            };
            if leaked || !status_ok {
                failures.push(format!(
                    "GET {shown} ({carrier:?}) -> {status:?} leaked={leaked} body={:?}",
                    body_of(&text)
                ));
            }
        }
    }
    // Whatever did reach the origin must resolve inside a, by the origin's own rules.
    for seen in origin.requests() {
        let resolved = lenient_resolve(&seen.target, how);
        if resolved.starts_with("/vod/b") {
            failures.push(format!(
                "origin saw {:?}, which it resolves to {resolved:?}",
                seen.target
            ));
        }
    }
    failures
}

async fn assert_table_holds(how: Lenient) {
    let origin = lenient_origin(how).await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let failures = run_table(&tg, &origin, how).await;
    assert!(
        failures.is_empty(),
        "{} of {} requests broke A15 against a {how:?} origin:\n{}",
        failures.len(),
        MUTATIONS.len() * 2,
        failures.join("\n")
    );
}

#[test]
fn a15_the_test_origin_is_lenient_enough_to_leak_directly() {
    // Without the gate in front, the origin itself hands out the marker for most tricks;
    // otherwise the table below would prove nothing.
    let leaking: Vec<&str> = MUTATIONS
        .iter()
        .filter(|m| !m.starts_with("http://"))
        .filter(|m| lenient_file(&lenient_resolve(m, ONCE)) == Some(MARKER))
        .copied()
        .collect();
    assert!(
        leaking.len() >= 40,
        "only {} mutations leak from the bare origin: {leaking:?}",
        leaking.len()
    );
    for m in [
        "/vod/a/%2e%2e/b/secret.txt",
        "/vod/a/..%5cb/secret.txt",
        "/vod/a/..\\b/secret.txt",
        "/vod/a/%c0%ae%c0%ae/b/secret.txt",
        "/vod/a/..;/b/secret.txt",
        "/VOD/B/SECRET.TXT",
        "/vod/b/secret.txt/.",
    ] {
        assert_eq!(lenient_resolve(m, ONCE), "/vod/b/secret.txt", "{m}");
    }
    assert_eq!(
        lenient_resolve("/vod/a/%252e%252e%252fb/secret.txt", TWICE),
        "/vod/b/secret.txt"
    );
    assert_eq!(
        lenient_resolve("/vod/a/%EF%BC%8E%EF%BC%8E/b/secret.txt", UNICODE),
        "/vod/b/secret.txt"
    );
    assert!(MUTATIONS.len() >= 40);
}

#[tokio::test]
async fn a15_legitimate_paths_are_served_from_a() {
    let origin = lenient_origin(ONCE).await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let addr = tg.plain();
    let tok = tg.token_for("a");
    for path in [
        "/vod/a/ok.txt",
        "/vod/a/x/../ok.txt",
        "/vod/a/./ok.txt",
        "/vod/a//ok.txt",
        "/vod/a/x/y/../../ok.txt",
    ] {
        for carrier in [Carrier::Query, Carrier::PathPrefix] {
            let t = target(path, "", &tok, carrier);
            let (status, text) = send_target(addr, &t).await;
            assert_eq!(status, Some(200), "{path} ({carrier:?}): {text}");
            assert_eq!(body_of(&text), OK_A, "{path} ({carrier:?})");
        }
    }
    // The gate resolved the literal dots itself: the origin only ever saw the canonical path.
    let seen = origin.requests();
    assert_eq!(seen.len(), 10);
    for s in seen {
        assert_eq!(s.target, "/vod/a/ok.txt");
    }
}

#[tokio::test]
async fn a15_a_literal_dotdot_into_b_is_refused_as_scope_and_never_reaches_the_origin() {
    let origin = lenient_origin(ONCE).await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    for carrier in [Carrier::Query, Carrier::PathPrefix] {
        let t = target("/vod/a/../b/secret.txt", "", &tok, carrier);
        let got = get(tg.plain(), &t, &[]).await;
        assert_eq!(got.status, 403, "{carrier:?}: {got:?}");
        assert_eq!(got.reason(), "scope", "{carrier:?}");
    }
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn a15_encoded_dotdot_never_reaches_other_resource() {
    assert_table_holds(ONCE).await;
}

#[tokio::test]
async fn a15_double_decoding_origin_never_serves_other_resource() {
    assert_table_holds(TWICE).await;
}

#[tokio::test]
async fn a15_unicode_folding_origin_never_serves_other_resource() {
    assert_table_holds(UNICODE).await;
}
