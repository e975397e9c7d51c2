//! The quick path end to end: a valid token streams the origin's bytes; refusals never reach it.

use crate::common;

use common::*;
use tollgate::resource::ResourceType;

#[tokio::test]
async fn a_valid_token_streams_the_origin_and_the_origin_never_sees_it() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.token_for("a");
    let got = get(tg.plain(), &format!("/t/{tok}/vod/a/seg.ts?x=1"), &[]).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body[..], b"origin:/vod/a/seg.ts?x=1");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    assert!(!format!("{:?}", seen[0]).contains(&tok));
    assert_eq!(seen[0].headers["x-forwarded-proto"], "http");
    assert_eq!(seen[0].headers["x-forwarded-for"], "127.0.0.1");
}

#[tokio::test]
async fn h2_over_tls_serves_the_same_bytes() {
    let origin = TestOrigin::start().await;
    let tg = start(Setup::standard(vec![origin.url()])).await;
    let tok = tg.mint_with("ed", &resource("la", ResourceType::Live), now());
    let got = get_h2_tls(&tg, &format!("/live/la/x.m4s?token={tok}")).await;
    assert_eq!(got.status, 200, "{got:?}");
    assert_eq!(&got.body[..], b"origin:/live/la/x.m4s");
}
