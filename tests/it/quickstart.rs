//! The quick start as a new user meets it: the shipped `config/tollgate.toml` (copied
//! beside a link to the committed `sample/`, so first-run keys and certificates land in a
//! temp dir), the URL it prints, and the refusals the README promises.

use crate::common;

use std::path::Path;
use std::time::Duration;

use common::*;
use tollgate::app::{playback_urls, Gate};
use tollgate::config::Config;
use tollgate::resource::ResourceType;
use tollgate::token::{mint, MintRequest, Scope};

struct QuickStart {
    _dir: tempfile::TempDir,
    cfg: Config,
    gate: Gate,
}

async fn quick_start() -> QuickStart {
    quick_start_over(&Path::new(env!("CARGO_MANIFEST_DIR")).join("sample")).await
}

/// The shipped config with its `file://../sample` origin reading `sample`.
async fn quick_start_over(sample: &Path) -> QuickStart {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("config")).expect("mkdir");
    std::fs::copy(
        repo.join("config/tollgate.toml"),
        dir.path().join("config/tollgate.toml"),
    )
    .expect("copy config");
    std::os::unix::fs::symlink(sample, dir.path().join("sample")).expect("link sample");
    let mut cfg = Config::load(&dir.path().join("config/tollgate.toml")).expect("shipped config");
    // What `serve --edge-tls-listen 127.0.0.1:0 …` does.
    cfg.edge.tls_listen = Some("127.0.0.1:0".parse().expect("addr"));
    cfg.edge.plain_listen = Some("127.0.0.1:0".parse().expect("addr"));
    cfg.admin_listen = Some("127.0.0.1:0".parse().expect("addr"));
    let gate = Gate::start(&cfg).await.expect("quick start starts");
    assert!(
        gate.dev_material.cert,
        "first run makes the dev certificate"
    );
    assert_eq!(gate.dev_material.keys, vec!["dev-ed25519".to_string()]);
    QuickStart {
        _dir: dir,
        cfg,
        gate,
    }
}

fn line<'a>(lines: &'a [(&'static str, String)], label: &str) -> &'a str {
    &lines
        .iter()
        .find(|(l, _)| *l == label)
        .unwrap_or_else(|| panic!("no {label} line in {lines:?}"))
        .1
}

/// `http://ADDR/TARGET` → (ADDR, TARGET).
fn split(url: &str) -> (std::net::SocketAddr, String) {
    let rest = url.strip_prefix("http://").expect("plain url");
    let cut = rest.find('/').expect("path");
    (rest[..cut].parse().expect("addr"), rest[cut..].to_string())
}

#[tokio::test]
async fn the_printed_url_plays_and_the_readme_refusals_hold() {
    let qs = quick_start().await;
    let lines = playback_urls(&qs.cfg, &qs.gate, now()).expect("urls");
    assert!(line(&lines, "playback").starts_with("https://127.0.0.1:"));
    assert!(line(&lines, "ca").ends_with("certs/dev/ca.pem"));
    let (addr, target) = split(line(&lines, "playback-plain"));
    assert!(target.ends_with("/vod/demo/master.m3u8"), "{target}");

    // The printed URL → 200 with the origin's bytes.
    let got = get(addr, &target, &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    let file =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/vod/demo/master.m3u8"))
            .expect("sample");
    assert_eq!(&got.body[..], &file[..]);
    // …and a segment under it.
    let seg = target.replace("master.m3u8", "v0/seg_000.ts");
    let got = get(addr, &seg, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "video/mp2t");

    // No token → 401 missing.
    let got = get(addr, "/vod/demo/master.m3u8", &[]).await;
    assert_eq!((got.status.as_u16(), got.reason()), (401, "missing"));

    let keys = qs.gate.verifier.keys();
    let issuer = &qs.cfg.token.issuer;
    let req = |rid: &str| MintRequest {
        scope: Scope::Resource,
        rid: Some(rid.into()),
        rty: Some(ResourceType::Vod),
        ttl: Some(Duration::from_secs(600)),
        ..MintRequest::default()
    };
    // A token for another resource → 403 scope.
    let (trailer, _) = mint(&keys, issuer, &req("trailer"), now()).expect("mint");
    let got = get(addr, &format!("/t/{trailer}/vod/demo/master.m3u8"), &[]).await;
    assert_eq!((got.status.as_u16(), got.reason()), (403, "scope"));
    // …which plays its own resource.
    let got = get(addr, &format!("/t/{trailer}/vod/trailer/master.m3u8"), &[]).await;
    assert_eq!(got.status, 200);
    // Expired → 403 expired.
    let (old, _) = mint(&keys, issuer, &req("demo"), now() - 7200).expect("mint");
    let got = get(addr, &format!("/t/{old}/vod/demo/master.m3u8"), &[]).await;
    assert_eq!((got.status.as_u16(), got.reason()), (403, "expired"));
    // A tampered signature → 401.
    let good = target
        .strip_prefix("/t/")
        .and_then(|r| r.split('/').next())
        .expect("token in the printed url")
        .to_string();
    let mut bad = good.clone().into_bytes();
    let last = bad.len() - 2;
    bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).expect("ascii");
    let got = get(addr, &format!("/t/{bad}/vod/demo/master.m3u8"), &[]).await;
    assert_eq!((got.status.as_u16(), got.reason()), (401, "bad_signature"));
}

/// Every resource type has a route in the shipped config, and a resource token for each
/// reaches the sample origin under that route (none is `404 no_route`).
#[tokio::test]
async fn a_token_for_every_resource_type_reaches_the_shipped_configs_origin() {
    let media = tempfile::tempdir().expect("tempdir");
    let shipped = Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.toml"))
        .expect("shipped config");
    // One file per routed type, where the file origin will look for it.
    for route in shipped.routes.iter().filter(|r| r.has_rid) {
        let dir = media
            .path()
            .join(format!("{}probe", route.prefix.trim_start_matches('/')));
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join("seg.ts"), route.resource_type.as_str()).expect("write");
    }
    let qs = quick_start_over(media.path()).await;
    let addr = qs.gate.edge_plain.expect("plain edge");
    let keys = qs.gate.verifier.keys();
    for rty in ResourceType::ALL {
        let route = qs
            .cfg
            .routes
            .iter()
            .find(|r| r.resource_type == rty && r.has_rid)
            .unwrap_or_else(|| panic!("no route for {rty:?}"));
        let req = MintRequest {
            scope: Scope::Resource,
            rid: Some("probe".into()),
            rty: Some(rty),
            ttl: Some(Duration::from_secs(600)),
            ..MintRequest::default()
        };
        let (token, _) = mint(&keys, &qs.cfg.token.issuer, &req, now()).expect("mint");
        let target = format!("/t/{token}{}probe/seg.ts", route.prefix);
        let got = get(addr, &target, &[]).await;
        assert_eq!(got.status, 200, "{rty:?} at {}: {got:?}", route.prefix);
        assert_eq!(&got.body[..], rty.as_str().as_bytes(), "{rty:?}");
    }
}
