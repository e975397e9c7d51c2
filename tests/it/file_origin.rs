//! The `file://` origin through the gate: exact bytes, media types, HEAD, ranges,
//! conditional requests, symlinks that leave the root, and the threat model's A15
//! table (docs/threat-model.md).

use crate::common;

use std::path::{Path, PathBuf};

use common::traversal::*;
use common::*;
use http::Method;

const SECRET_B: &str = "SECRET-B-4f1c9a-only-for-resource-b";
const OUTSIDE: &str = "OUTSIDE-ROOT-7d2e-never-served";
const MASTER: &str =
    "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:6\n#EXTINF:6.0,\nseg.ts\n#EXT-X-ENDLIST\n";

/// 6000 bytes that differ from their neighbours, so any off-by-one shows.
fn segment_bytes() -> Vec<u8> {
    (0..6000u32).map(|i| ((i * 31 + 7) % 251) as u8).collect()
}

/// `outer/outside.txt` and the origin root `outer/root` with `vod/a`, `vod/b` and symlinks.
struct Tree {
    _outer: tempfile::TempDir,
    root: PathBuf,
}

fn write(path: &Path, bytes: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("mkdir fixture dir");
    }
    std::fs::write(path, bytes).expect("write fixture file");
}

fn tree() -> Tree {
    let outer = tempfile::tempdir().expect("tempdir");
    write(&outer.path().join("outside.txt"), OUTSIDE.as_bytes());
    let root = outer.path().join("root");
    write(&root.join("vod/a/seg.ts"), &segment_bytes());
    write(&root.join("vod/a/master.m3u8"), MASTER.as_bytes());
    write(&root.join("vod/a/ok.txt"), b"ok-a");
    write(&root.join("vod/b/secret.txt"), SECRET_B.as_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        // A directory symlink to the root's parent, and a file symlink out of the root.
        symlink(outer.path(), root.join("vod/a/link")).expect("symlink to parent");
        symlink(
            outer.path().join("outside.txt"),
            root.join("vod/a/outside.ts"),
        )
        .expect("symlink to outside file");
        symlink("../../..", root.join("vod/a/up")).expect("relative symlink upwards");
    }
    Tree {
        _outer: outer,
        root,
    }
}

async fn gate_for(tree: &Tree) -> TestGate {
    start(Setup {
        origins: vec![("o".into(), vec![format!("file://{}", tree.root.display())])],
        ..Setup::standard(vec![])
    })
    .await
}

fn header<'a>(got: &'a Got, name: &str) -> &'a str {
    got.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn file_origin_serves_exact_bytes_with_media_types() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let tok = tg.token_for("a");
    let bytes = segment_bytes();

    let got = get(tg.plain(), &format!("/vod/a/seg.ts?token={tok}"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body[..], &bytes[..]);
    assert_eq!(header(&got, "content-type"), "video/mp2t");
    assert_eq!(header(&got, "content-length"), bytes.len().to_string());

    // The path-prefix carrier needs no manifest rewrite, so the playlist comes back as stored.
    let got = get(tg.plain(), &format!("/t/{tok}/vod/a/master.m3u8"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body[..], MASTER.as_bytes());
    assert_eq!(
        header(&got, "content-type"),
        "application/vnd.apple.mpegurl"
    );

    let bearer = format!("Bearer {tok}");
    let got = get(
        tg.plain(),
        "/vod/a/seg.ts",
        &[("authorization", bearer.as_str())],
    )
    .await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body[..], &bytes[..]);
}

#[tokio::test]
async fn file_origin_without_a_token_or_with_another_resources_token_is_refused() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let got = get(tg.plain(), "/vod/a/seg.ts", &[]).await;
    assert_eq!(got.status, 401, "{got:?}");
    assert!(got.body.len() < 100);
    let tok_b = tg.token_for("b");
    let got = get(tg.plain(), &format!("/vod/a/seg.ts?token={tok_b}"), &[]).await;
    assert_eq!(got.status, 403, "{got:?}");
    assert_eq!(got.reason(), "scope");
}

#[tokio::test]
async fn file_origin_head_has_no_body_and_the_same_length() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let tok = tg.token_for("a");
    let target = format!("/vod/a/seg.ts?token={tok}");
    let full = get(tg.plain(), &target, &[]).await;
    assert_eq!(full.status, 200, "{full:?}");

    let head = request(tg.plain(), Method::HEAD, &target, &[]).await;
    assert_eq!(head.status, 200, "{head:?}");
    assert!(head.body.is_empty(), "HEAD body: {} bytes", head.body.len());
    assert_eq!(
        header(&head, "content-length"),
        segment_bytes().len().to_string()
    );
    assert_eq!(
        header(&head, "content-length"),
        header(&full, "content-length")
    );
    assert_eq!(header(&head, "content-type"), "video/mp2t");
    assert_eq!(header(&head, "etag"), header(&full, "etag"));
}

#[tokio::test]
async fn file_origin_range_returns_206_with_exactly_those_bytes() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let tok = tg.token_for("a");
    let bytes = segment_bytes();
    let got = get(
        tg.plain(),
        &format!("/vod/a/seg.ts?token={tok}"),
        &[("range", "bytes=10-19")],
    )
    .await;
    assert_eq!(got.status, 206, "{got:?}");
    assert_eq!(&got.body[..], &bytes[10..20]);
    assert_eq!(
        header(&got, "content-range"),
        format!("bytes 10-19/{}", bytes.len())
    );
    assert_eq!(header(&got, "content-length"), "10");
    assert_eq!(header(&got, "accept-ranges"), "bytes");

    let got = get(
        tg.plain(),
        &format!("/t/{tok}/vod/a/seg.ts"),
        &[("range", "bytes=-5")],
    )
    .await;
    assert_eq!(got.status, 206, "{got:?}");
    assert_eq!(&got.body[..], &bytes[bytes.len() - 5..]);
}

#[tokio::test]
async fn file_origin_if_none_match_with_the_etag_is_304() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let tok = tg.token_for("a");
    let target = format!("/vod/a/seg.ts?token={tok}");
    let first = get(tg.plain(), &target, &[]).await;
    assert_eq!(first.status, 200, "{first:?}");
    let etag = header(&first, "etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 2, "etag {etag:?}");

    let got = get(tg.plain(), &target, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(got.status, 304, "{got:?}");
    assert!(got.body.is_empty());
    assert_eq!(header(&got, "etag"), etag);

    let got = get(tg.plain(), &target, &[("if-none-match", "\"stale\"")]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body[..], &segment_bytes()[..]);
}

#[cfg(unix)]
#[tokio::test]
async fn file_origin_symlink_escaping_the_root_is_404() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let tok = tg.token_for("a");
    // The fixture is real: the outside file is there to be leaked.
    let outside = std::fs::read_to_string(tree.root.join("vod/a/link/outside.txt"))
        .expect("symlink resolves on disk");
    assert_eq!(outside, OUTSIDE);
    for path in [
        "/vod/a/link/outside.txt",
        "/vod/a/outside.ts",
        "/vod/a/up/outside.txt",
    ] {
        for target in [format!("{path}?token={tok}"), format!("/t/{tok}{path}")] {
            let got = get(tg.plain(), &target, &[]).await;
            assert_eq!(got.status, 404, "{path}: {got:?}");
            let body = String::from_utf8_lossy(&got.body);
            assert!(!body.contains(OUTSIDE), "{path}");
            assert!(!body.contains(SECRET_B), "{path}");
            assert!(
                !body.contains(&*tree.root.to_string_lossy()),
                "{path}: 404 reveals the root"
            );
        }
    }
}

#[cfg(unix)]
#[tokio::test]
async fn file_origin_a_path_through_a_symlink_that_leaves_the_root_is_404() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let tok = tg.token_for("a");
    // `link` and `up` both point above the root; following them back down into the root
    // reaches b's folder from a URL the gate authorised for a.
    assert_eq!(
        std::fs::read_to_string(tree.root.join("vod/a/link/root/vod/b/secret.txt"))
            .expect("fixture path resolves on disk"),
        SECRET_B
    );
    for path in [
        "/vod/a/link/root/vod/b/secret.txt",
        "/vod/a/up/root/vod/b/secret.txt",
        "/vod/a/link/root/vod/a/ok.txt",
    ] {
        for target in [format!("{path}?token={tok}"), format!("/t/{tok}{path}")] {
            let got = get(tg.plain(), &target, &[]).await;
            assert_eq!(got.status, 404, "{path}: {got:?}");
            assert!(
                !String::from_utf8_lossy(&got.body).contains(SECRET_B),
                "{path}"
            );
        }
    }
}

#[tokio::test]
async fn file_origin_missing_files_and_directories_are_404() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let tok = tg.token_for("a");
    for path in ["/vod/a/nope.ts", "/vod/a/", "/vod/a/seg.ts/"] {
        let got = get(tg.plain(), &format!("{path}?token={tok}"), &[]).await;
        assert_eq!(got.status, 404, "{path}: {got:?}");
        let body = String::from_utf8_lossy(&got.body);
        assert!(!body.contains("nope"), "{path}: 404 echoes the path");
        assert!(!body.contains(&*tree.root.to_string_lossy()));
    }
}

/// The same A15 table as paths.rs: every entry tries to reach `/vod/b/secret.txt`
/// from `/vod/a/`. `http://HOST` marks an absolute-form request target.
#[tokio::test]
async fn a15_file_origin_never_returns_another_resources_bytes() {
    let tree = tree();
    let tg = gate_for(&tree).await;
    let addr = tg.plain();
    let host = addr.to_string();

    // The secret is really served to its own resource's token, so a leak would show.
    let tok_b = tg.token_for("b");
    let (status, text) = send_target(addr, &format!("/vod/b/secret.txt?token={tok_b}")).await;
    assert_eq!(status, Some(200), "{text}");
    assert!(text.contains(SECRET_B));

    let tok = tg.token_for("a");
    let mut failures = Vec::new();
    for m in MUTATIONS {
        for carrier in [Carrier::Query, Carrier::PathPrefix] {
            let t = target(m, &host, &tok, carrier);
            let (status, text) = send_target(addr, &t).await;
            let leaked = text.contains(SECRET_B) || text.contains(OUTSIDE);
            let status_ok = matches!(status, Some(200 | 400 | 401 | 403 | 404));
            if leaked || !status_ok {
                failures.push(format!(
                    "GET {} -> {status:?} leaked={leaked}",
                    t.replace(&tok, "<tok>")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests broke A15 against the file origin:\n{}",
        failures.len(),
        MUTATIONS.len() * 2,
        failures.join("\n")
    );

    // And a's own files are still served through the same gate.
    let (status, text) = send_target(addr, &format!("/vod/a/x/../ok.txt?token={tok}")).await;
    assert_eq!(status, Some(200), "{text}");
    assert!(text.ends_with("\r\n\r\nok-a"), "{text}");
}
