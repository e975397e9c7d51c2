//! Test harness: start a real gate on `127.0.0.1:0` with generated keys and certificates,
//! in-process origins that record what reached them, and small clients.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tollgate::app::Gate;
use tollgate::config::Config;
use tollgate::resource::ResourceType;
use tollgate::token::keys::Algorithm;
use tollgate::token::keys::{generate_pem, SigningKey, VerifyKey};
use tollgate::token::{mint, KeySet, MintRequest, Scope};

pub mod traversal;

pub const ISSUER: &str = "tollgate-test";
pub const LEEWAY: u64 = 5;

/// One request as an origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// The request target (path and query) exactly as received.
    pub target: String,
    pub headers: HeaderMap,
}

/// An in-process HTTP/1.1 origin that records every request and answers with `respond`.
pub struct TestOrigin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

pub type Responder = Arc<dyn Fn(&Seen) -> Response<Full<Bytes>> + Send + Sync>;

impl TestOrigin {
    /// An origin answering 200 with a body naming the requested target.
    pub async fn start() -> Self {
        Self::start_with(Arc::new(|s: &Seen| {
            Response::builder()
                .status(200)
                .header("content-type", "video/mp2t")
                .body(Full::new(Bytes::from(format!("origin:{}", s.target))))
                .expect("response")
        }))
        .await
    }

    pub async fn start_with(respond: Responder) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen2.clone();
                let respond = respond.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let s = Seen {
                            method: req.method().clone(),
                            target: req
                                .uri()
                                .path_and_query()
                                .map(|p| p.as_str().to_string())
                                .unwrap_or_default(),
                            headers: req.headers().clone(),
                        };
                        let resp = respond(&s);
                        seen.lock().expect("lock").push(s);
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        TestOrigin { addr, seen }
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Key material the test gate trusts, by algorithm.
pub struct TestKeys {
    /// (kid, alg, private PEM or secret bytes)
    pub signing: Vec<(String, Algorithm, Vec<u8>)>,
}

/// A running gate with everything a test needs to talk to it.
pub struct TestGate {
    pub gate: Gate,
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub keys: TestKeys,
    pub ca: PathBuf,
}

/// What the test gate is configured with.
pub struct Setup {
    /// `[[origins]]` name → upstream URLs (http://, https:// or file://).
    pub origins: Vec<(String, Vec<String>)>,
    /// Extra TOML appended to the config (routes, resources, `[edge]` keys must not be repeated).
    pub extra: String,
    /// `[edge]` extra lines.
    pub edge: String,
    /// `[token]` extra lines.
    pub token: String,
    /// `[admin]` extra lines.
    pub admin: String,
    /// The `[limits]` section's lines (default: every limit off, so that tests sending
    /// many requests or bad tokens see the behaviour they test; rate-limit tests set them).
    pub limits: String,
}

/// Every `[limits]` limit off.
pub const NO_LIMITS: &str = "per_ip = \"off\"\nper_subject = \"off\"\nbad_tokens_per_ip = \"off\"\nissue_per_api_token = \"off\"\n";

impl Setup {
    /// One origin "o" and the standard routes and resources:
    /// `/vod/{rid}/` (vod) and `/live/{rid}/` (live) → "o"; `/public/` (public) → "o";
    /// resources a, b (org1/p1), c (org1/p2), d (org2/p3) as vod, la as live, pub as a public vod.
    pub fn standard(upstreams: Vec<String>) -> Self {
        Setup {
            origins: vec![("o".into(), upstreams)],
            extra: STANDARD_ROUTES.into(),
            edge: String::new(),
            token: String::new(),
            admin: String::new(),
            limits: NO_LIMITS.into(),
        }
    }
}

pub const STANDARD_ROUTES: &str = r#"
[[routes]]
name = "vod"
path = "/vod/{rid}/"
type = "vod"
origin = "o"

[[routes]]
name = "live"
path = "/live/{rid}/"
type = "live"
origin = "o"

[[routes]]
name = "public"
path = "/public/"
type = "vod"
origin = "o"
public = true

[[resources]]
id = "a"
type = "vod"
org = "org1"
project = "p1"

[[resources]]
id = "b"
type = "vod"
org = "org1"
project = "p1"

[[resources]]
id = "c"
type = "vod"
org = "org1"
project = "p2"

[[resources]]
id = "d"
type = "vod"
org = "org2"
project = "p3"

[[resources]]
id = "la"
type = "live"
org = "org1"
project = "p1"

[[resources]]
id = "pub"
type = "vod"
org = "org1"
privacy = "public"
"#;

fn write(path: &Path, bytes: &[u8]) {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(path, bytes).expect("write");
}

/// Start a gate: EdDSA (`ed`, active), ES256 (`es`), RS256 (`rs`) and HS256 (`hs`) keys,
/// a dev certificate, TLS and plain edge listeners and the admin listener on port 0.
pub async fn start(setup: Setup) -> TestGate {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let mut signing = Vec::new();
    let mut keys_toml = String::new();
    for (kid, alg) in [
        ("ed", Algorithm::EdDsa),
        ("es", Algorithm::Es256),
        ("rs", Algorithm::Rs256),
    ] {
        let (private, public) = generate_pem(alg).expect("generate");
        write(&d.join(format!("keys/{kid}.pem")), private.as_bytes());
        write(&d.join(format!("keys/{kid}.pub.pem")), public.as_bytes());
        keys_toml += &format!(
            "[[keys]]\nkid = \"{kid}\"\nalg = \"{}\"\npublic = \"keys/{kid}.pub.pem\"\nprivate = \"keys/{kid}.pem\"\nactive = {}\n\n",
            alg.as_str(),
            kid == "ed"
        );
        signing.push((kid.to_string(), alg, private.into_bytes()));
    }
    let secret = b"0123456789abcdef0123456789abcdef-test-secret".to_vec();
    write(&d.join("keys/hs.secret"), &secret);
    keys_toml += "[[keys]]\nkid = \"hs\"\nalg = \"HS256\"\nsecret = \"keys/hs.secret\"\n\n";
    signing.push(("hs".into(), Algorithm::Hs256, secret));

    let mut origins_toml = String::new();
    for (name, ups) in &setup.origins {
        let list: Vec<String> = ups.iter().map(|u| format!("{u:?}")).collect();
        origins_toml += &format!(
            "[[origins]]\nname = \"{name}\"\nupstreams = [{}]\nconnect_timeout = \"500ms\"\nread_timeout = \"1s\"\n\n",
            list.join(", ")
        );
    }
    let text = format!(
        r#"
[edge]
tls_listen = "127.0.0.1:0"
plain_listen = "127.0.0.1:0"
header_timeout = "1s"
tls_handshake_timeout = "2s"
{cors}
trusted_proxies = ["127.0.0.2"]
{edge}

[tls]
dev_generate = true
[[tls.certs]]
cert = "certs/cert.pem"
key = "certs/key.pem"
server_names = ["localhost"]

[admin]
listen = "127.0.0.1:0"
token_file = "admin-token"
{admin}

[store]
path = "state/tollgate.db"

[token]
issuer = "{ISSUER}"
leeway = "{LEEWAY}s"
{token}

[limits]
{limits}

{keys_toml}
{origins_toml}
{extra}
"#,
        edge = setup.edge,
        // A test that sets its own `cors_origins` in `edge` replaces the default.
        cors = if setup.edge.contains("cors_origins") {
            ""
        } else {
            "cors_origins = [\"https://player.example\"]"
        },
        admin = setup.admin,
        token = setup.token,
        limits = setup.limits,
        extra = setup.extra,
    );
    let cfg_path = d.join("tollgate.toml");
    write(&cfg_path, text.as_bytes());
    let config = Config::load(&cfg_path).expect("test config valid");
    let gate = Gate::start(&config).await.expect("gate starts");
    let ca = d.join("certs/ca.pem");
    TestGate {
        gate,
        dir,
        config,
        keys: TestKeys { signing },
        ca,
    }
}

pub fn now() -> u64 {
    tollgate::clock::now()
}

impl TestGate {
    pub fn plain(&self) -> SocketAddr {
        self.gate.edge_plain.expect("plain listener")
    }

    pub fn tls(&self) -> SocketAddr {
        self.gate.edge_tls.expect("tls listener")
    }

    pub fn admin(&self) -> SocketAddr {
        self.gate.admin.expect("admin listener")
    }

    /// Sign `req` with key `kid` at time `at`.
    pub fn mint_with(&self, kid: &str, req: &MintRequest, at: u64) -> String {
        let (_, alg, material) = self
            .keys
            .signing
            .iter()
            .find(|(k, _, _)| k == kid)
            .expect("known kid");
        let signing = SigningKey::from_material(kid, *alg, material).expect("signing key");
        let keys = KeySet::from_keys(Vec::<VerifyKey>::new(), Some(signing));
        mint(&keys, ISSUER, req, at).expect("mint").0
    }

    /// A one-hour EdDSA token for vod resource `rid`.
    pub fn token_for(&self, rid: &str) -> String {
        self.mint_with("ed", &resource(rid, ResourceType::Vod), now())
    }
}

/// A resource-scoped mint request with a one-hour lifetime.
pub fn resource(rid: &str, rty: ResourceType) -> MintRequest {
    MintRequest {
        scope: Scope::Resource,
        rid: Some(rid.into()),
        rty: Some(rty),
        sub: Some("viewer-1".into()),
        ttl: Some(Duration::from_secs(3600)),
        ..MintRequest::default()
    }
}

/// A plain-HTTP/1.1 response, read whole.
#[derive(Debug)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Read a whole response into a [`Got`].
pub async fn got(resp: Response<Incoming>) -> Got {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

impl Got {
    pub fn reason(&self) -> &str {
        self.headers
            .get("x-tollgate-reason")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// GET `target` (origin-form, e.g. `/vod/a/x.ts?token=…`) on `addr` over HTTP/1.1 with extra headers.
pub async fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Got {
    request(addr, Method::GET, target, headers).await
}

pub async fn request(
    addr: SocketAddr,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
) -> Got {
    send(addr, method, target, headers, b"").await
}

/// An HTTP/1.1 request from a client socket bound to `local` (e.g. 127.0.0.2, the trusted proxy).
pub async fn request_from(
    local: std::net::IpAddr,
    addr: SocketAddr,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
) -> Got {
    send_from(local, addr, method, target, headers, b"").await
}

/// Send raw bytes on a new connection and read until the server closes or `wait` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A TLS client trusting the test CA, offering `alpn`.
pub fn tls_client(ca: &Path, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).expect("ca") {
        roots.add(c.expect("cert")).expect("add");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(tollgate::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// GET over TLS with HTTP/2 (ALPN h2) through hyper's client.
pub async fn get_h2_tls(gate: &TestGate, target: &str) -> Got {
    let tcp = tokio::net::TcpStream::connect(gate.tls())
        .await
        .expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tls_client(&gate.ca, &[b"h2"])
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "ALPN must pick h2"
    );
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri(format!("https://localhost{target}"))
        .body(http_body_util::Empty::<Bytes>::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    got(resp).await
}

/// Send `method target` with `headers` and `body` (sent with its `Content-Length`) on
/// `addr` over HTTP/1.1: how tests POST to the admin listener.
pub async fn send(
    addr: SocketAddr,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Got {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    send_on(tcp, addr, method, target, headers, body).await
}

/// [`send`] from a client socket bound to `local` (another loopback address, e.g.
/// 127.0.0.3, to act as another client).
pub async fn send_from(
    local: std::net::IpAddr,
    addr: SocketAddr,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Got {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(local, 0))
        .expect("bind the client to the given loopback address");
    let tcp = socket.connect(addr).await.expect("connect");
    send_on(tcp, addr, method, target, headers, body).await
}

async fn send_on(
    tcp: tokio::net::TcpStream,
    addr: SocketAddr,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Got {
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut b = Request::builder()
        .method(method)
        .uri(target)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("answer within 10 s")
        .expect("response");
    got(resp).await
}

/// The hex key the tests' Akamai EdgeAuth formats are configured with.
pub const EDGEAUTH_KEY: &str = "52a152a152a152a152a152a152a152a1";

/// An Akamai EdgeAuth 2.0 token as the reference generator writes it: `fields`, then
/// `~hmac=` over `fields` and `unsent` (what is signed but not sent: `~url=…`),
/// HMAC-SHA256 with [`EDGEAUTH_KEY`].
pub fn edgeauth(fields: &str, unsent: &str) -> String {
    let key: Vec<u8> = (0..EDGEAUTH_KEY.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&EDGEAUTH_KEY[i..i + 2], 16).expect("hex"))
        .collect();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let tag = aws_lc_rs::hmac::sign(&key, format!("{fields}{unsent}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("{fields}~hmac={hex}")
}
