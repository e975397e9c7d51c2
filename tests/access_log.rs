//! The access log as an operator reads it: one JSON line per edge request, written when
//! the body is done, with route, status, reason, bytes, timings, client and the token's
//! `jti` — never the token, native or foreign. (Its own test binary: it installs the
//! process's subscriber.)

#[path = "it/common/mod.rs"]
mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use http::StatusCode;
use tollgate::logging::AccessFormat;
use tracing_subscriber::layer::SubscriberExt;

/// Lines written by the access layer, shared with the test.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn json(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().expect("lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
            .collect()
    }
}

#[tokio::test]
async fn each_edge_request_is_one_json_access_line_with_bytes_and_the_jti_but_never_the_token() {
    let lines = Lines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::registry().with(tollgate::logging::access_layer(
        AccessFormat::Json,
        move || writer.clone(),
    ));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let origin = TestOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.extra += "\n[cache]\nenabled = true\n";
    setup.extra += &format!(
        "\n[[routes]]\nname = \"ea\"\npath = \"/ea/{{rid}}/\"\ntype = \"vod\"\norigin = \"o\"\n\
         formats = [\"akamai\"]\n\n[[formats]]\nname = \"akamai\"\nkind = \"edgeauth\"\nkey = \"{EDGEAUTH_KEY}\"\n"
    );
    let tg = start(setup).await;
    let tok = tg.token_for("a");
    let ok = get(tg.plain(), &format!("/vod/a/seg-1.ts?token={tok}"), &[]).await;
    assert_eq!(ok.status, StatusCode::OK);
    let again = get(tg.plain(), &format!("/vod/a/seg-1.ts?token={tok}"), &[]).await;
    assert_eq!((again.status, &again.body), (StatusCode::OK, &ok.body));
    let bad = format!("{}x", &tok[..tok.len() - 1]);
    let refused = get(tg.plain(), &format!("/vod/a/seg-2.ts?token={bad}"), &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let foreign = edgeauth("exp=4000000000~acl=/ea/a/*", "");
    let foreign_ok = get(tg.plain(), &format!("/ea/a/seg-1.ts?hdnts={foreign}"), &[]).await;
    assert_eq!(foreign_ok.status, StatusCode::OK);
    let foreign_bad = foreign.replace("4000000000", "4000000001");
    let foreign_refused = get(
        tg.plain(),
        &format!("/ea/a/seg-1.ts?hdnts={foreign_bad}"),
        &[],
    )
    .await;
    assert_eq!(foreign_refused.status, StatusCode::UNAUTHORIZED);

    let mut found = Vec::new();
    for _ in 0..100 {
        found = lines.json();
        if found.len() >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(found.len(), 5, "one line per request: {found:?}");
    let (first, hit, second) = (&found[0], &found[1], &found[2]);
    // A foreign credential is named by a hash prefix, whether it verified or not.
    for line in &found[3..] {
        let id = line["token"].as_str().expect("a token id");
        assert!(!id.is_empty() && !id.starts_with("jti:"), "{line}");
    }
    // The shield cache says what it did; a refused request never reached it.
    assert_eq!(
        (first["cache"].as_str(), hit["cache"].as_str()),
        (Some("miss"), Some("hit"))
    );
    assert!(second.get("cache").is_none(), "{second}");
    assert_eq!(hit["bytes"].as_u64(), Some(ok.body.len() as u64));
    assert_eq!(first["route"], "vod");
    assert_eq!(first["status"], 200);
    assert_eq!(first["method"], "GET");
    assert_eq!(first["bytes"].as_u64(), Some(ok.body.len() as u64));
    assert_eq!(first["complete"], true);
    assert_eq!(first["client"], "127.0.0.1");
    assert!(first["micros"].as_u64().is_some() && first["upstream_micros"].as_u64().is_some());
    assert!(
        first.get("reason").is_none(),
        "no reason on success: {first}"
    );
    let jti = tg
        .gate
        .verifier
        .verify(&tok, now())
        .expect("valid")
        .jti
        .clone();
    assert_eq!(
        first["token"].as_str(),
        Some(format!("jti:{}", jti.expect("jti")).as_str())
    );
    assert_eq!(second["status"], 401);
    assert!(
        matches!(
            second["reason"].as_str(),
            Some("bad_signature" | "malformed")
        ),
        "{second}"
    );
    assert_eq!(second["bytes"].as_u64(), Some(refused.body.len() as u64));
    let all = String::from_utf8(lines.0.lock().expect("lock").clone()).expect("utf-8");
    for secret in [&tok, &bad] {
        let signature = secret.rsplit('.').next().expect("signature");
        assert!(!all.contains(signature), "a token reached the access log");
    }
    for secret in [&foreign, &foreign_bad] {
        let mac = secret.rsplit("hmac=").next().expect("hmac");
        assert!(
            !all.contains(mac),
            "an EdgeAuth token reached the access log"
        );
        assert!(
            !all.contains("4000000000~acl"),
            "EdgeAuth fields reached the access log"
        );
    }
}
