//! The admin listener over TLS (`admin.tls_listen`, `[[admin.tls.certs]]`): real
//! handshakes against the gate's own admin certificate (a development CA of its own, not
//! the edge's), the admin APIs over https, and a reload that swaps the admin certificate
//! for new connections.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

use common::*;

/// How long a store change may take to reach the edge (`store.poll` is 250 ms).
const STORE_DEADLINE: Duration = Duration::from_secs(2);

/// A gate with the standard setup plus the admin TLS listener on its own dev
/// certificate, and the origin its routes lead to.
async fn gate() -> (TestGate, TestOrigin) {
    let origin = TestOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    // `[admin]` keys, then its `[admin.tls]` sub-table.
    setup.admin = r#"tls_listen = "127.0.0.1:0"
[admin.tls]
dev_generate = true
[[admin.tls.certs]]
cert = "admin-certs/cert.pem"
key = "admin-certs/key.pem"
server_names = ["admin.localhost"]
"#
    .into();
    (start(setup).await, origin)
}

fn admin_cert(tg: &TestGate) -> &tollgate::config::Cert {
    &tg.config.admin.tls.certs[0]
}

fn admin_ca(tg: &TestGate) -> PathBuf {
    tollgate::tls::dev_ca_path(admin_cert(tg))
}

/// A TLS handshake with the admin TLS listener, trusting only `ca`.
async fn handshake(
    tg: &TestGate,
    ca: &Path,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let addr = tg.gate.admin_tls.expect("the admin TLS listener is on");
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    tls_client(ca, &[b"http/1.1"]).connect(name, tcp).await
}

/// The DER of the certificate a new admin TLS connection is shown.
async fn served_cert(tg: &TestGate) -> Vec<u8> {
    let tls = handshake(tg, &admin_ca(tg))
        .await
        .expect("handshake with the admin CA");
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate")
        .to_vec()
}

/// One HTTP/1.1 request over https to the admin TLS listener.
async fn https(tg: &TestGate, method: Method, target: &str, body: Option<Value>) -> Got {
    https_trusting(tg, &admin_ca(tg), method, target, body).await
}

/// [`https`], trusting `ca`.
async fn https_trusting(
    tg: &TestGate,
    ca: &Path,
    method: Method,
    target: &str,
    body: Option<Value>,
) -> Got {
    let tls = handshake(tg, ca).await.expect("handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let admin_token = std::fs::read_to_string(tg.dir.path().join("admin-token"))
        .expect("the gate writes its admin token file");
    let req = Request::builder()
        .method(method)
        .uri(target)
        .header("host", "localhost")
        .header("authorization", format!("Bearer {}", admin_token.trim()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("answer within 10 s")
        .expect("response");
    got(resp).await
}

#[tokio::test]
async fn the_admin_tls_listener_has_its_own_certificate_and_issues_tokens_over_https() {
    let (tg, _origin) = gate().await;
    assert!(tg.gate.dev_material.admin_cert, "first run makes it");
    // Its own certificate: the edge's CA does not vouch for it.
    assert!(
        handshake(&tg, &tg.ca).await.is_err(),
        "the admin certificate must not be the edge's"
    );

    for (path, body) in [
        ("/v1/orgs", json!({"id": "acme", "name": "Acme"})),
        (
            "/v1/resources",
            json!({"id": "v1", "type": "vod", "org": "acme"}),
        ),
        (
            "/v1/users",
            json!({"username": "carol", "password": "carol-secret-1", "orgs": ["acme"]}),
        ),
    ] {
        let got = https(&tg, Method::POST, path, Some(body)).await;
        assert_eq!(got.status, 201, "POST {path} over https: {got:?}");
    }
    // movingimage login over https: a token, which plays at the edge.
    let got = https(
        &tg,
        Method::POST,
        "/v1/vms/auth/login",
        Some(json!({"username": "carol", "password": "carol-secret-1"})),
    )
    .await;
    assert_eq!(got.status, 200, "login over https: {got:?}");
    let v: Value = serde_json::from_slice(&got.body).expect("JSON");
    let token = v["accessToken"].as_str().expect("accessToken");
    let end = tokio::time::Instant::now() + STORE_DEADLINE;
    loop {
        let got = get(tg.plain(), &format!("/vod/v1/seg.ts?token={token}"), &[]).await;
        if got.status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < end, "plays: {got:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The JWKS and health answer there too.
    let got = https(&tg, Method::GET, "/.well-known/jwks.json", None).await;
    assert_eq!(got.status, 200, "{got:?}");
}

#[tokio::test]
async fn a_reload_swaps_the_admin_tls_certificate_for_new_connections() {
    let (tg, _origin) = gate().await;
    let before = served_cert(&tg).await;
    let stale = tg.dir.path().join("old-admin-ca.pem");
    std::fs::copy(admin_ca(&tg), &stale).expect("keep the old CA");

    // A new certificate under a new CA, then the reload endpoint (over https, still
    // answered with the old certificate).
    let cert = admin_cert(&tg);
    std::fs::remove_file(&cert.cert).expect("rm cert");
    std::fs::remove_file(&cert.key).expect("rm key");
    assert!(tollgate::tls::ensure_dev_cert(cert).expect("new certificate"));
    let got = https_trusting(&tg, &stale, Method::POST, "/v1/reload", None).await;
    assert_eq!(got.status, 200, "reload: {got:?}");

    let after = served_cert(&tg).await;
    assert_ne!(before, after, "new connections get the new certificate");
    assert!(
        handshake(&tg, &stale).await.is_err(),
        "the old CA no longer vouches for what the admin listener serves"
    );

    // A certificate that does not load changes nothing.
    std::fs::write(&cert.cert, b"not a certificate").expect("write");
    let got = https(&tg, Method::POST, "/v1/reload", None).await;
    assert_eq!(got.status, 422, "broken certificate: {got:?}");
    assert_eq!(
        served_cert(&tg).await,
        after,
        "the running certificate stays"
    );
}
