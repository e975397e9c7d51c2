//! Operations: metrics (docs/threat-model.md F1, F2), the edge's rate limits, reload
//! (E2), graceful shutdown (E1) and panic isolation (E4), through the real gate. The
//! limiters' memory bound (B1) is tested with injected time in `ratelimit`; login limits
//! in `issuing.rs`.

use crate::common;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;
use tollgate::resource::ResourceType;
use tollgate::token::MintRequest;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

async fn scrape(tg: &TestGate) -> String {
    let got = get(tg.admin(), "/metrics", &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.headers["content-type"],
        tollgate::metrics::CONTENT_TYPE,
        "Prometheus text format"
    );
    String::from_utf8(got.body.to_vec()).expect("utf-8 exposition")
}

/// Series identities (name and labels), without values.
fn series(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s.to_string()))
        .collect()
}

/// The value of one series (exact name and labels as exposed).
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

fn random_token(i: usize) -> String {
    let mut bytes = [0u8; 48];
    aws_lc_rs::rand::fill(&mut bytes).expect("random");
    use base64::Engine;
    let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    format!("{}.{}.{}{i}", &b[..20], &b[20..44], &b[44..])
}

async fn gate_with_origin(limits: &str) -> (TestGate, TestOrigin) {
    let origin = TestOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.limits = limits.into();
    (start(setup).await, origin)
}

#[tokio::test]
async fn f1_metrics_are_well_formed_text_and_only_on_the_admin_listener() {
    let (tg, _origin) = gate_with_origin(NO_LIMITS).await;
    let tok = tg.token_for("a");
    assert_eq!(
        get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[])
            .await
            .status,
        StatusCode::OK
    );
    let text = scrape(&tg).await;
    // Every sample belongs to a family with HELP and TYPE; counters end in _total;
    // no series appears twice; names are Prometheus names.
    let mut typed = std::collections::HashMap::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            typed.insert(name.to_string(), kind.to_string());
        }
    }
    let mut seen = BTreeSet::new();
    for l in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (id, v) = l.rsplit_once(' ').expect("sample value");
        assert!(v.parse::<f64>().is_ok(), "value of {l}");
        assert!(seen.insert(id.to_string()), "duplicate series {id}");
        let name = id.split('{').next().expect("name");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "{name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(name);
        let kind = typed
            .get(family)
            .unwrap_or_else(|| panic!("{name} has no TYPE"));
        assert!(
            text.contains(&format!("# HELP {family} ")),
            "{family} has no HELP"
        );
        if kind == "counter" {
            assert!(
                family.ends_with("_total"),
                "counter {family} must end in _total"
            );
        }
    }
    for family in [
        "tollgate_requests_total",
        "tollgate_request_duration_seconds",
        "tollgate_upstream_duration_seconds",
        "tollgate_upstream_errors_total",
        "tollgate_sent_bytes_total",
        "tollgate_open_connections",
        "tollgate_token_verifications_total",
        "tollgate_verify_cache_hits_total",
        "tollgate_verify_cache_misses_total",
        "tollgate_verify_cache_evictions_total",
        "tollgate_verify_cache_entries",
        "tollgate_tokens_issued_total",
        "tollgate_refreshes_total",
        "tollgate_rate_limited_total",
        "tollgate_revocations_total",
        "tollgate_config_reloads_total",
        "tollgate_build_info",
    ] {
        assert!(typed.contains_key(family), "{family} is not exported");
    }
    assert_eq!(
        value(
            &text,
            r#"tollgate_requests_total{outcome="ok",route="vod"}"#
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            r#"tollgate_token_verifications_total{alg="EdDSA",result="ok"}"#
        ),
        1.0
    );
    assert!(value(&text, r#"tollgate_sent_bytes_total{route="vod"}"#) > 0.0);
    // Never on an edge listener (threat model B7).
    let on_edge = get(tg.plain(), "/metrics", &[]).await;
    assert_eq!(on_edge.status, StatusCode::NOT_FOUND);
    assert!(!String::from_utf8_lossy(&on_edge.body).contains("tollgate_"));
}

#[tokio::test]
async fn f2_random_tokens_paths_and_addresses_add_no_series() {
    let (tg, _origin) = gate_with_origin(NO_LIMITS).await;
    // Every kind of outcome once, so the comparison below is not trivially equal.
    let tok = tg.token_for("a");
    get(tg.plain(), &format!("/vod/a/x.ts?token={tok}"), &[]).await;
    let before = series(&scrape(&tg).await);
    for i in 0..300 {
        let t = random_token(i);
        let path = match i % 4 {
            0 => format!("/vod/r{i}/seg{i}.ts?token={t}"),
            1 => format!("/nowhere/{i}?token={t}"),
            2 => format!("/live/la/{i}.m4s?token={t}"),
            _ => format!("/t/{t}/vod/a/{i}.ts"),
        };
        // From the trusted proxy, with a random client address each time.
        let xff = format!("198.51.100.{}", i % 250);
        request_from(
            ip("127.0.0.2"),
            tg.plain(),
            Method::GET,
            &path,
            &[("x-forwarded-for", &xff)],
        )
        .await;
    }
    let text = scrape(&tg).await;
    let after = series(&text);
    let added: Vec<_> = after.difference(&before).collect();
    assert!(
        added.is_empty(),
        "new series after random traffic: {added:?}"
    );
    assert!(
        value(
            &text,
            r#"tollgate_requests_total{outcome="malformed",route="vod"}"#
        ) > 0.0,
        "the traffic was counted"
    );
    for forbidden in ["198.51.100", "seg1", "nowhere", &tok[..20]] {
        assert!(!text.contains(forbidden), "{forbidden} leaked into a label");
    }
}

#[tokio::test]
async fn bad_token_budget_refuses_a_flood_with_429_before_any_signature_work() {
    let (tg, _origin) = gate_with_origin(
        "per_ip = \"off\"\nper_subject = \"off\"\nbad_tokens_per_ip = \"5/m burst 5\"\n",
    )
    .await;
    // A viewer's token, verified (and cached) before the flood.
    let good = tg.token_for("a");
    let target = format!("/vod/a/x.ts?token={good}");
    assert_eq!(get(tg.plain(), &target, &[]).await.status, StatusCode::OK);
    let verified = |tg: &TestGate| -> u64 {
        tg.gate
            .verifier
            .verification_counts()
            .map(|(_, _, n)| n)
            .sum()
    };
    let before = verified(&tg);
    let mut statuses = Vec::new();
    for i in 0..40 {
        let got = get(
            tg.plain(),
            &format!("/vod/a/{i}.ts?token={}", random_token(i)),
            &[],
        )
        .await;
        if got.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(got.reason(), "rate_limited");
            let secs: u64 = got.headers["retry-after"]
                .to_str()
                .expect("ascii")
                .parse()
                .expect("Retry-After in seconds");
            assert!((1..=60).contains(&secs), "Retry-After {secs}");
            assert_eq!(got.headers["cache-control"], "private, no-store");
        }
        statuses.push(got.status.as_u16());
    }
    // Five failures spend the budget; the sixth finds it spent (still a 401: its
    // verification had started) and blocks the address.
    assert_eq!(statuses[..6], [401; 6], "{statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(
        verified(&tg) - before,
        6,
        "no signature work once the budget is spent"
    );
    // The cached token of this address still plays; another address is unaffected.
    assert_eq!(get(tg.plain(), &target, &[]).await.status, StatusCode::OK);
    let other = tg.mint_with("ed", &resource("b", ResourceType::Vod), now());
    let got = request_from(
        ip("127.0.0.3"),
        tg.plain(),
        Method::GET,
        &format!("/vod/b/x.ts?token={other}"),
        &[],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let text = scrape(&tg).await;
    assert_eq!(
        value(&text, r#"tollgate_rate_limited_total{limiter="bad_token"}"#),
        34.0
    );
    assert_eq!(
        value(
            &text,
            r#"tollgate_requests_total{outcome="rate_limited",route="vod"}"#
        ),
        34.0
    );
}

#[tokio::test]
async fn per_address_limit_is_429_with_retry_after_and_a_route_may_turn_it_off() {
    let origin = TestOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.limits =
        "per_ip = \"3/m burst 3\"\nper_subject = \"off\"\nbad_tokens_per_ip = \"off\"\n".into();
    setup.extra = setup.extra.replace(
        "origin = \"o\"\npublic = true",
        "origin = \"o\"\npublic = true\nper_ip = \"off\"",
    );
    let tg = start(setup).await;
    let tok = tg.token_for("a");
    let target = format!("/vod/a/x.ts?token={tok}");
    for _ in 0..3 {
        assert_eq!(get(tg.plain(), &target, &[]).await.status, StatusCode::OK);
    }
    let limited = get(tg.plain(), &target, &[]).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.reason(), "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
    let seen = origin.count();
    assert_eq!(seen, 3, "a limited request never reaches the origin");
    for _ in 0..5 {
        assert_eq!(
            get(tg.plain(), "/public/free.ts", &[]).await.status,
            StatusCode::OK,
            "the public route has no per-address limit"
        );
    }
    let got = request_from(ip("127.0.0.3"), tg.plain(), Method::GET, &target, &[]).await;
    assert_eq!(
        got.status,
        StatusCode::OK,
        "another address has its own budget"
    );
    let text = scrape(&tg).await;
    assert_eq!(
        value(&text, r#"tollgate_rate_limited_total{limiter="edge_ip"}"#),
        1.0
    );
}

#[tokio::test]
async fn per_subject_limit_follows_the_viewer_across_addresses() {
    let (tg, _origin) = gate_with_origin(
        "per_ip = \"off\"\nper_subject = \"2/m burst 2\"\nbad_tokens_per_ip = \"off\"\n",
    )
    .await;
    let mint = |sub: &str| {
        tg.mint_with(
            "ed",
            &MintRequest {
                sub: Some(sub.into()),
                ..resource("a", ResourceType::Vod)
            },
            now(),
        )
    };
    let v1 = mint("viewer-1");
    let t = format!("/vod/a/x.ts?token={v1}");
    assert_eq!(get(tg.plain(), &t, &[]).await.status, StatusCode::OK);
    let from3 = request_from(ip("127.0.0.3"), tg.plain(), Method::GET, &t, &[]).await;
    assert_eq!(from3.status, StatusCode::OK);
    let from4 = request_from(ip("127.0.0.4"), tg.plain(), Method::GET, &t, &[]).await;
    assert_eq!(from4.status, StatusCode::TOO_MANY_REQUESTS);
    let v2 = mint("viewer-2");
    assert_eq!(
        get(tg.plain(), &format!("/vod/a/x.ts?token={v2}"), &[])
            .await
            .status,
        StatusCode::OK,
        "another subject has its own budget"
    );
}

/// Replace `[[keys]]`' active key with a new Ed25519 key `kid` in the test's config file.
fn add_active_key(tg: &TestGate, kid: &str) -> (String, tollgate::token::KeySet) {
    use tollgate::token::keys::Algorithm;
    use tollgate::token::keys::{generate_pem, SigningKey, VerifyKey};
    let d = tg.dir.path();
    let (private, public) = generate_pem(Algorithm::EdDsa).expect("generate");
    std::fs::write(d.join(format!("keys/{kid}.pem")), &private).expect("write");
    std::fs::write(d.join(format!("keys/{kid}.pub.pem")), &public).expect("write");
    let path = d.join("tollgate.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let text = text.replace("active = true", "active = false")
        + &format!(
            "\n[[keys]]\nkid = \"{kid}\"\nalg = \"EdDSA\"\npublic = \"keys/{kid}.pub.pem\"\nprivate = \"keys/{kid}.pem\"\nactive = true\n"
        );
    std::fs::write(&path, text).expect("write config");
    let keys = tollgate::token::KeySet::from_keys(
        vec![VerifyKey::from_material(kid, Algorithm::EdDsa, public.as_bytes()).expect("vk")],
        Some(SigningKey::from_material(kid, Algorithm::EdDsa, private.as_bytes()).expect("sk")),
    );
    (kid.to_string(), keys)
}

/// The DER of the certificate the TLS edge presents to a new connection.
async fn served_cert(tg: &TestGate) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(tg.tls())
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tls_client(&tg.ca, &[b"http/1.1"])
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the current CA");
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a certificate")
        .to_vec()
}

#[tokio::test]
async fn e2_reload_swaps_keys_and_certificates_without_dropping_an_open_connection() {
    let (tg, _origin) = gate_with_origin(NO_LIMITS).await;
    let old_token = tg.token_for("a");
    let old_cert = served_cert(&tg).await;

    // A keep-alive TLS connection, open across the reload.
    let tcp = tokio::net::TcpStream::connect(tg.tls())
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tls_client(&tg.ca, &[b"http/1.1"])
        .connect(name, tcp)
        .await
        .expect("handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let ask = |t: String| {
        Request::builder()
            .uri(format!("/vod/a/x.ts?token={t}"))
            .header("host", "localhost")
            .body(Empty::<Bytes>::new())
            .expect("request")
    };
    let r = sender
        .send_request(ask(old_token.clone()))
        .await
        .expect("first");
    assert_eq!(r.status(), StatusCode::OK);
    r.into_body().collect().await.expect("body");

    // New signing key, new certificate (and CA), then reload.
    let (kid, new_keys) = add_active_key(&tg, "ed-2");
    let cert = &tg.config.tls.certs[0];
    std::fs::remove_file(&cert.cert).expect("rm cert");
    std::fs::remove_file(&cert.key).expect("rm key");
    assert!(tollgate::tls::ensure_dev_cert(cert).expect("new certificate"));
    let report = tg.gate.reloader().reload().await.expect("reload succeeds");
    assert_eq!(report.active_kid.as_deref(), Some(kid.as_str()));
    assert!(
        report.kids.iter().any(|k| k == "ed"),
        "the old key still verifies"
    );

    // The open connection carries on, old token and all.
    let r = sender
        .send_request(ask(old_token.clone()))
        .await
        .expect("the connection survived the reload");
    assert_eq!(r.status(), StatusCode::OK);
    r.into_body().collect().await.expect("body");
    // A token of the new key works at once, on new connections too.
    let new_token =
        tollgate::token::mint(&new_keys, ISSUER, &resource("a", ResourceType::Vod), now())
            .expect("mint")
            .0;
    let r = sender
        .send_request(ask(new_token.clone()))
        .await
        .expect("new kid");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        get(tg.plain(), &format!("/vod/a/x.ts?token={new_token}"), &[])
            .await
            .status,
        StatusCode::OK
    );
    // The gate signs with the new key (JWKS lists both).
    assert_eq!(
        tg.gate.verifier.keys().signing().map(|k| k.kid.clone()),
        Some(kid)
    );
    let new_cert = served_cert(&tg).await;
    assert_ne!(
        old_cert, new_cert,
        "new connections get the new certificate"
    );
    let text = scrape(&tg).await;
    assert_eq!(
        value(&text, r#"tollgate_config_reloads_total{result="ok"}"#),
        1.0
    );
    assert_eq!(value(&text, "tollgate_config_last_reload_successful"), 1.0);
}

#[tokio::test]
async fn e2_a_broken_file_keeps_the_running_state_and_says_why() {
    let (tg, _origin) = gate_with_origin(NO_LIMITS).await;
    let tok = tg.token_for("a");
    let target = format!("/vod/a/x.ts?token={tok}");
    let path = tg.dir.path().join("tollgate.toml");
    let good = std::fs::read_to_string(&path).expect("config");
    let admin_token = std::fs::read_to_string(tg.dir.path().join("admin-token")).expect("token");
    let auth = format!("Bearer {}", admin_token.trim());
    let cert_before = served_cert(&tg).await;

    // 1. Not TOML.
    std::fs::write(&path, format!("{good}\n[edge\n")).expect("write");
    let err = tg.gate.reloader().reload().await.expect_err("refused");
    assert!(
        err.message.contains("tollgate.toml"),
        "names the file: {err}"
    );
    // 2. A key file that is not there.
    std::fs::write(
        &path,
        good.replace("keys/es.pub.pem", "keys/missing.pub.pem"),
    )
    .expect("write");
    let err = tg.gate.reloader().reload().await.expect_err("refused");
    assert!(err.message.starts_with("keys:"), "{err}");
    // 3. A certificate file that is not a certificate (through the admin endpoint).
    std::fs::write(&path, &good).expect("write");
    let cert = &tg.config.tls.certs[0];
    let saved = std::fs::read(&cert.cert).expect("cert");
    std::fs::write(&cert.cert, b"not a certificate").expect("write");
    let got = send(
        tg.admin(),
        Method::POST,
        "/v1/reload",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(got.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = serde_json::from_slice(&got.body).expect("json");
    assert_eq!(body["result"], "error");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("tls:")),
        "{body}"
    );
    // Without the admin token, no reload at all.
    let anon = send(tg.admin(), Method::POST, "/v1/reload", &[], b"").await;
    assert_eq!(anon.status, StatusCode::UNAUTHORIZED);

    // The running state is untouched: same keys, same certificate, still serving.
    assert_eq!(get(tg.plain(), &target, &[]).await.status, StatusCode::OK);
    assert!(tg.gate.verifier.keys().get("es").is_some());
    assert_eq!(served_cert(&tg).await, cert_before);
    let text = scrape(&tg).await;
    assert_eq!(
        value(&text, r#"tollgate_config_reloads_total{result="error"}"#),
        3.0
    );
    assert_eq!(value(&text, "tollgate_config_last_reload_successful"), 0.0);

    // Fixed: the next reload applies, and says so.
    std::fs::write(&cert.cert, saved).expect("restore");
    let got = send(
        tg.admin(),
        Method::POST,
        "/v1/reload",
        &[("authorization", &auth)],
        b"",
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    let text = scrape(&tg).await;
    assert_eq!(value(&text, "tollgate_config_last_reload_successful"), 1.0);
}

#[tokio::test]
async fn e2_reload_applies_routes_and_limits_and_names_what_needs_a_restart() {
    let (tg, _origin) = gate_with_origin(NO_LIMITS).await;
    let tok = tg.token_for("a");
    assert_eq!(
        get(tg.plain(), &format!("/films/a/x.ts?token={tok}"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let path = tg.dir.path().join("tollgate.toml");
    let text = std::fs::read_to_string(&path).expect("config")
        + "\n[[routes]]\nname = \"films\"\npath = \"/films/{rid}/\"\ntype = \"vod\"\norigin = \"o\"\n";
    let text = text.replace("header_timeout = \"1s\"", "header_timeout = \"2s\"");
    std::fs::write(&path, text).expect("write");
    let report = tg.gate.reloader().reload().await.expect("reload");
    assert_eq!(report.routes, 4);
    assert_eq!(report.restart_needed, vec!["edge.header_timeout"]);
    assert_eq!(
        get(tg.plain(), &format!("/films/a/x.ts?token={tok}"), &[])
            .await
            .status,
        StatusCode::OK
    );
    let metrics = scrape(&tg).await;
    assert!(metrics.contains(r#"tollgate_requests_total{outcome="ok",route="films"} 1"#));
    // Still not applied, so still named on the next reload.
    let again = tg.gate.reloader().reload().await.expect("reload");
    assert_eq!(again.restart_needed, vec!["edge.header_timeout"]);
}

/// A response body fed by a channel: the test decides when each chunk goes out.
struct Drip(mpsc::Receiver<Bytes>);

impl hyper::body::Body for Drip {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b))))
    }
}

/// An origin whose one response streams whatever the returned sender sends.
async fn dripping_origin(len: usize) -> (SocketAddr, mpsc::Sender<Bytes>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let rx = rx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let rx = rx.clone();
                    async move {
                        let body = match rx.lock().await.take() {
                            Some(r) => Drip(r).boxed(),
                            None => Full::new(Bytes::new()).boxed(),
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "video/mp4")
                                .header("content-length", len.to_string())
                                .body(body)
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, tx)
}

#[tokio::test]
async fn e1_shutdown_refuses_new_connections_and_lets_a_slow_download_finish() {
    const CHUNK: usize = 256 * 1024;
    const CHUNKS: usize = 16;
    let (origin, tx) = dripping_origin(CHUNK * CHUNKS).await;
    let mut setup = Setup::standard(vec![format!("http://{origin}")]);
    setup.edge = "shutdown_grace = \"20s\"".into();
    let tg = start(setup).await;
    let tok = tg.token_for("a");
    let plain = tg.plain();

    let tcp = tokio::net::TcpStream::connect(plain)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(format!("/vod/a/big.mp4?token={tok}"))
        .header("host", plain.to_string())
        .body(Empty::<Bytes>::new())
        .expect("request");
    tx.send(Bytes::from(vec![7u8; CHUNK]))
        .await
        .expect("first chunk");
    let resp = sender.send_request(req).await.expect("headers");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();

    // SIGTERM's equivalent: stop accepting, drain.
    let stop = tg.gate.shutdown_token();
    stop.cancel();
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(plain).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections are refused once shutdown starts");

    // The download goes on to the end.
    let feeder = tokio::spawn(async move {
        for _ in 1..CHUNKS {
            if tx.send(Bytes::from(vec![7u8; CHUNK])).await.is_err() {
                return;
            }
        }
    });
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the body does not break off");
        if let Some(d) = frame.data_ref() {
            received += d.len();
        }
    }
    feeder.await.expect("feeder");
    assert_eq!(received, CHUNK * CHUNKS, "the whole file arrived");
    // And the gate finishes well inside its grace period.
    tokio::time::timeout(Duration::from_secs(10), tg.gate.wait())
        .await
        .expect("the gate stops once the download is done");
}

#[tokio::test]
async fn e4_a_panicking_request_fails_alone_and_the_listener_serves_on() {
    use tollgate::server::{serve, Limits};
    let listener = tollgate::server::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = Limits {
        header_timeout: Duration::from_secs(2),
        tls_handshake_timeout: Duration::from_secs(2),
        max_header_bytes: 16 * 1024,
        max_headers: 100,
        max_connections: 16,
        h2_max_concurrent_streams: 10,
        grace: Duration::from_secs(1),
    };
    let handler = |req: Request<Incoming>, _info: tollgate::server::ConnInfo| async move {
        match req.uri().path() {
            "/panic" => panic!("a bug in one request"),
            "/panic-in-body" => {
                let body = http_body_util::StreamBody::new(futures_util::stream::poll_fn(
                    |_cx| -> Poll<Option<Result<Frame<Bytes>, tollgate::body::BoxError>>> {
                        panic!("a bug while streaming")
                    },
                ));
                Response::new(BodyExt::boxed_unsync(body))
            }
            _ => Response::new(tollgate::body::full("fine")),
        }
    };
    let open = prometheus::IntGauge::new("test_open", "open").expect("gauge");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        None,
        limits,
        handler,
        open.clone(),
        shutdown.clone(),
    ));
    let got = get(addr, "/panic", &[]).await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(got.reason(), "internal");
    assert_eq!(got.headers["cache-control"], "private, no-store");
    // A panic mid-body ends that connection only.
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("h1");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("/panic-in-body")
        .header("host", "x")
        .body(Empty::<Bytes>::new())
        .expect("req");
    let broken = match sender.send_request(req).await {
        Ok(r) => r.into_body().collect().await.is_err(),
        Err(_) => true,
    };
    assert!(broken, "the panicking body does not end cleanly");
    for _ in 0..3 {
        let got = get(addr, "/ok", &[]).await;
        assert_eq!(got.status, StatusCode::OK, "the listener serves on");
        assert_eq!(&got.body[..], b"fine");
    }
    // The panicked connections were counted out again.
    for _ in 0..50 {
        if open.get() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(open.get(), 0, "open connections gauge back to zero");
    shutdown.cancel();
    server.await.expect("server task ends");
}

#[tokio::test]
async fn the_grafana_dashboard_only_queries_metrics_the_gate_exports() {
    let (tg, _origin) = gate_with_origin(NO_LIMITS).await;
    let text = scrape(&tg).await;
    let exported: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ops/grafana/tollgate.json");
    let dashboard: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path).expect("dashboard file")).expect("JSON");
    let mut exprs = Vec::new();
    fn walk<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v.as_str()) {
                        ("expr", Some(e)) => out.push(e),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    walk(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 20,
        "the dashboard has its panels: {}",
        exprs.len()
    );
    let mut used = BTreeSet::new();
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("tollgate_") || word.starts_with("process_") {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| word.strip_suffix(s).filter(|f| exported.contains(f)))
                    .unwrap_or(word);
                used.insert(family.to_string());
            }
        }
    }
    let missing: Vec<_> = used
        .iter()
        .filter(|m| !exported.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries unknown metrics: {missing:?}"
    );
    assert!(
        used.contains("tollgate_requests_total") && used.contains("tollgate_rate_limited_total")
    );
}
