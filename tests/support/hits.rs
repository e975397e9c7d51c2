//! One primed cache hit per token format: the request path's common case (every
//! segment after the first). Shared by `benches/verify.rs`, which times each hit beside
//! the native one, and `tests/hot_path_alloc.rs`, which counts its heap allocations
//! (none). A new format adds its case here once, and is both timed and counted.

#![allow(dead_code)] // each including target uses a part

use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use md5::Digest as _;
use tollgate::config;
use tollgate::resource::{Resource, ResourceType};
use tollgate::token::foreign::edgeauth::{self, EdgeAuth, Settings};
use tollgate::token::foreign::uri_signing::{Settings as UriSettings, UriSigning, DEFAULT_PACKAGE};
use tollgate::token::foreign::{
    self, Credential, Foreign, Format, Inputs, Kind, SecureLink, MAX_FIELDS,
};
use tollgate::token::keys::{generate_pem, Algorithm, SigningKey, VerifyKey};
use tollgate::token::{authorize, mint, KeySet, MintRequest, Revocations, Scope, Target, Verifier};

pub const NOW: u64 = 1_800_000_000;
pub const PATH: &str = "/vod/demo/v0/seg_001.ts";

pub fn client() -> IpAddr {
    IpAddr::from([192, 0, 2, 7])
}

pub fn token_cfg() -> config::Token {
    config::Token {
        issuer: "bench".into(),
        audience: vec![],
        leeway: Duration::from_secs(30),
        max_len: 4096,
        cache_capacity: 100_000,
        cache_max_ttl: Duration::from_secs(300),
        path_prefix: "t".into(),
        query: "token".into(),
        cookie: "tollgate_token".into(),
        allow_never_expiring: false,
        max_lifetime: None,
    }
}

/// A verifier with one key of `alg` and a token for `demo` it signed.
pub fn native(alg: Algorithm) -> (Verifier, String) {
    let (private, public) = match alg {
        Algorithm::Hs256 => {
            let s = "bench-secret-bench-secret-bench-secret!!".to_string();
            (s.clone(), s)
        }
        _ => generate_pem(alg).expect("generate"),
    };
    let keys = KeySet::from_keys(
        vec![VerifyKey::from_material("k", alg, public.as_bytes()).expect("verify key")],
        Some(SigningKey::from_material("k", alg, private.as_bytes()).expect("signing key")),
    );
    let req = MintRequest {
        scope: Scope::Resource,
        rid: Some("demo".into()),
        rty: Some(ResourceType::Vod),
        sub: Some("viewer-42".into()),
        ttl: Some(Duration::from_secs(3600)),
        ..MintRequest::default()
    };
    let (token, _) = mint(&keys, "bench", &req, NOW).expect("mint");
    (Verifier::new(keys, &token_cfg()), token)
}

pub fn resource() -> Resource {
    Resource {
        id: "demo".into(),
        resource_type: ResourceType::Vod,
        org: "org".into(),
        project: Some("p".into()),
        public: false,
        published: true,
    }
}

/// The native hit: the verification cache, then authorisation.
pub fn native_hit(
    verifier: &Verifier,
    token: &str,
    resource: &Resource,
    revocations: &Revocations,
) {
    let target = Target {
        resource_type: ResourceType::Vod,
        rid: "demo",
        resource: Some(resource),
        path: PATH,
        client: client(),
    };
    let grant = verifier.verify(black_box(token), NOW).expect("valid");
    authorize(&grant, black_box(&target), NOW, 30, revocations).expect("allowed");
}

/// One foreign credential, as the edge would find it.
pub struct ForeignCase {
    pub name: &'static str,
    pub format: usize,
    pub fields: Vec<Option<String>>,
}

impl ForeignCase {
    pub fn credential(&self) -> Credential<'_> {
        let fields: [Option<&str>; MAX_FIELDS] =
            std::array::from_fn(|i| self.fields.get(i).and_then(|f| f.as_deref()));
        Credential::of(&fields)
    }
}

/// The foreign formats, a primed cache and one valid credential per format.
pub struct ForeignHits {
    pub foreign: Foreign,
    pub cases: Vec<ForeignCase>,
}

const EDGEAUTH_KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";
const SECURE_LINK_SECRET: &str = "bench-secret";

impl ForeignHits {
    pub fn new() -> Self {
        let cfg = token_cfg();
        let cloudfront = CloudFrontKey::new();
        let formats = vec![
            secure_link_format(),
            edgeauth_format(),
            uri_signing_format(),
            cloudfront_format(&cloudfront),
        ];
        let foreign = Foreign::new(
            formats,
            cfg.max_len,
            cfg.cache_capacity,
            cfg.cache_max_ttl,
            cfg.leeway,
        );
        let cases = vec![
            secure_link_case(0),
            edgeauth_case(1),
            uri_signing_case(2),
            cloudfront_canned_case(3, &cloudfront),
            cloudfront_custom_case(3, &cloudfront),
        ];
        for case in &cases {
            foreign
                .verify_and_cache(case.format, &case.credential(), &inputs(), NOW)
                .expect("prime the cache");
        }
        ForeignHits { foreign, cases }
    }

    /// The foreign hit: the cache lookup (keyed by the credential and the inputs its
    /// signature binds), then the rules every request re-checks.
    pub fn hit(&self, case: &ForeignCase, revocations: &Revocations) {
        let inputs = inputs();
        let cred = case.credential();
        let grant = self
            .foreign
            .cached(case.format, black_box(&cred), black_box(&inputs), NOW)
            .expect("cached");
        foreign::authorize(&grant, &inputs, None, NOW, 30, revocations).expect("allowed");
    }
}

impl Default for ForeignHits {
    fn default() -> Self {
        Self::new()
    }
}

fn inputs() -> Inputs<'static> {
    Inputs {
        path: PATH,
        client: client(),
        host: "media.example",
        query: Some("q=1"),
        https: true,
        authority: "media.example",
    }
}

fn secure_link_format() -> Format {
    let expression = format!("$secure_link_expires$uri$remote_addr {SECURE_LINK_SECRET}");
    Format {
        name: "nginx".into(),
        kind: Kind::SecureLink(SecureLink::new(&expression, "md5", "expires").expect("valid")),
    }
}

fn secure_link_case(format: usize) -> ForeignCase {
    let expires = (NOW + 3600).to_string();
    let signed = format!("{expires}{PATH}{} {SECURE_LINK_SECRET}", client());
    let md5 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(md5::Md5::digest(signed));
    ForeignCase {
        name: "hit/secure_link",
        format,
        fields: vec![Some(md5), Some(expires)],
    }
}

fn edgeauth_format() -> Format {
    let settings = Settings {
        name: "hdnts",
        algorithm: edgeauth::Algorithm::Sha256,
        key_hex: EDGEAUTH_KEY,
        field_delimiter: "~",
        acl_delimiter: "!",
        escape_early: false,
        salt: None,
    };
    Format {
        name: "akamai".into(),
        kind: Kind::EdgeAuth(EdgeAuth::new(&settings).expect("valid")),
    }
}

fn edgeauth_case(format: usize) -> ForeignCase {
    let key: Vec<u8> = (0..EDGEAUTH_KEY.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&EDGEAUTH_KEY[i..i + 2], 16).expect("hex"))
        .collect();
    let fields = format!("exp={}~acl=/vod/demo/*~id=viewer-42", NOW + 3600);
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key),
        fields.as_bytes(),
    );
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    ForeignCase {
        name: "hit/edgeauth",
        format,
        fields: vec![Some(format!("{fields}~hmac={hex}"))],
    }
}

const URI_SIGNING_KEY: &str = "Kh_RkUMj-fzbD37qBnDf_3e_RvQ3RP9PaSmVEpE24AM";

fn uri_signing_format() -> Format {
    let key = serde_json::json!({"alg": "HS256", "kid": "k1", "kty": "oct", "k": URI_SIGNING_KEY});
    let keys = vec![key.as_object().expect("object").clone()];
    let settings = UriSettings {
        package: DEFAULT_PACKAGE,
        id: None,
        renewal_kid: None,
        require_exp: true,
        issuers: vec![("bench", &keys)],
    };
    Format {
        name: "ats".into(),
        kind: Kind::UriSigning(UriSigning::new(&settings).expect("valid")),
    }
}

/// A token binding the client's /24 (`cdniip`), the resource's URI prefix (`cdniuc`,
/// a regex) and a `jti`: every per-request check a hit makes.
fn uri_signing_case(format: usize) -> ForeignCase {
    let claims = serde_json::json!({
        "iss": "bench", "exp": NOW + 3600, "jti": "viewer-42", "cdniv": 1,
        "cdniip": "192.0.2.0/24", "cdniuc": "regex:https://media\\.example/vod/demo/",
    });
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(URI_SIGNING_KEY)
        .expect("key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some("k1".into());
    let key = jsonwebtoken::EncodingKey::from_secret(&key);
    let token = jsonwebtoken::encode(&header, &claims, &key).expect("sign");
    ForeignCase {
        name: "hit/uri_signing",
        format,
        fields: vec![Some(token)],
    }
}

/// A cached Common Access Token hit: the lookup keyed by the token's text, then
/// `authorize` with the request's facts (a token with `iss`, `exp`, `cti`, `catu` host
/// suffix and path prefix, `catm`, `catnip` and `catr`, HS256), and its text `cti`
/// against the `jti` revocations, as the edge does.
pub struct CatHit {
    foreign: Foreign,
    text: String,
    policy: tollgate::token::cat::CatPolicy,
}

impl CatHit {
    pub fn new() -> Self {
        use tollgate::token::cat;
        use tollgate::token::foreign::cat::{KeyMaterial, Settings};
        use tollgate::token::foreign::CatFormat;

        let secret = [7u8; 32];
        let text = cat::encode_text(&cat_token(&secret));
        let format = CatFormat::new(Settings {
            header: "CTA-Common-Access-Token",
            query: "CAT",
            cookie: "CTA-Common-Access-Token",
            issuer: Some("bench"),
            audience: None,
            renew_kid: None,
            keys: vec![(b"k1".to_vec(), KeyMaterial::Hs256(&secret))],
            leeway: 30,
            max_len: 4096,
            live_session: 0,
        })
        .expect("format");
        let cfg = token_cfg();
        let formats = vec![Format {
            name: "cat".into(),
            kind: Kind::Cat(Box::new(format)),
        }];
        let foreign = Foreign::new(
            formats,
            cfg.max_len,
            cfg.cache_capacity,
            cfg.cache_max_ttl,
            cfg.leeway,
        );
        foreign
            .cat_verify_and_cache(0, &text, NOW)
            .expect("prime the cache");
        let policy = foreign.cat(0).expect("cat").policy().clone();
        CatHit {
            foreign,
            text,
            policy,
        }
    }

    pub fn hit(&self, revocations: &Revocations) {
        let req = tollgate::token::cat::Request {
            scheme: "https",
            host: "media.example.com",
            port: 443,
            path: PATH,
            query: "",
            method: "GET",
            client_ip: Some(client()),
            headers: &[],
            country: None,
            asn: None,
        };
        let cached = self
            .foreign
            .cat_cached(0, black_box(&self.text), NOW)
            .expect("cached");
        let grant = cached
            .cat
            .authorize(black_box(&req), &self.policy, NOW, None)
            .expect("allowed");
        let cti = grant.cti.and_then(|c| std::str::from_utf8(c).ok());
        assert!(!cti.is_some_and(|c| revocations.is_jti_revoked(c)));
    }
}

impl Default for CatHit {
    fn default() -> Self {
        Self::new()
    }
}

/// A COSE_Mac0 CAT over the claims [`CatHit`] checks.
fn cat_token(secret: &[u8]) -> Vec<u8> {
    use ciborium::value::Value;
    use coset::{iana, CoseMac0Builder, HeaderBuilder, TaggedCborSerializable};

    let i = |n: i64| Value::Integer(n.into());
    let t = |s: &str| Value::Text(s.into());
    let m = |e: Vec<(i64, Value)>| Value::Map(e.into_iter().map(|(k, v)| (i(k), v)).collect());
    let claims = m(vec![
        (1, t("bench")),
        (4, i(NOW as i64 + 3600)),
        (7, Value::Bytes(b"bench-cti".to_vec())),
        (
            312,
            m(vec![
                (1, m(vec![(2, t("example.com"))])),
                (3, m(vec![(1, t("/vod/demo/"))])),
            ]),
        ),
        (313, Value::Array(vec![t("GET"), t("HEAD")])),
        (
            311,
            Value::Array(vec![Value::Tag(
                52,
                Box::new(Value::Array(vec![i(24), Value::Bytes(vec![192, 0, 2])])),
            )]),
        ),
        (323, m(vec![(0, i(2)), (1, i(120)), (2, i(60))])),
    ]);
    let mut payload = Vec::new();
    ciborium::ser::into_writer(&claims, &mut payload).expect("cbor");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    CoseMac0Builder::new()
        .protected(
            HeaderBuilder::new()
                .algorithm(iana::Algorithm::HMAC_256_256)
                .key_id(b"k1".to_vec())
                .build(),
        )
        .payload(payload)
        .create_tag(b"", |d| aws_lc_rs::hmac::sign(&key, d).as_ref().to_vec())
        .build()
        .to_tagged_vec()
        .expect("cose")
}

/// An ECDSA P-256 key a CloudFront key group would hold.
struct CloudFrontKey {
    pair: aws_lc_rs::signature::EcdsaKeyPair,
    public_pem: Vec<u8>,
}

impl CloudFrontKey {
    fn new() -> Self {
        use aws_lc_rs::encoding::AsDer as _;
        use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        let der = pair.public_key().as_der().expect("der");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        let public_pem =
            format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n").into_bytes();
        CloudFrontKey { pair, public_pem }
    }

    /// The policy's signature (SHA-256), CloudFront base64.
    fn sign(&self, policy: &str) -> String {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self.pair.sign(&rng, policy.as_bytes()).expect("sign");
        cloudfront_b64(sig.as_ref())
    }
}

fn cloudfront_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .replace('+', "-")
        .replace('=', "_")
        .replace('/', "~")
}

fn cloudfront_format(key: &CloudFrontKey) -> Format {
    let keys = [("KEC".to_string(), key.public_pem.clone())];
    Format {
        name: "cloudfront".into(),
        kind: Kind::CloudFront(
            tollgate::token::foreign::CloudFront::new(None, &keys).expect("valid"),
        ),
    }
}

/// A canned policy for this very URL (SHA-256).
fn cloudfront_canned_case(format: usize, key: &CloudFrontKey) -> ForeignCase {
    let expires = (NOW + 3600).to_string();
    let signature = key.sign(&format!(
        r#"{{"Statement":[{{"Resource":"https://media.example{PATH}?q=1","Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#
    ));
    ForeignCase {
        name: "hit/cloudfront/canned",
        format,
        fields: vec![
            None,
            Some(expires),
            Some(signature),
            Some("KEC".into()),
            Some("SHA256".into()),
        ],
    }
}

/// A custom policy: a wildcard resource bound to the client's network (SHA-256).
fn cloudfront_custom_case(format: usize, key: &CloudFrontKey) -> ForeignCase {
    let policy = format!(
        r#"{{"Statement":[{{"Resource":"https://media.example/vod/demo/*","Condition":{{"DateLessThan":{{"AWS:EpochTime":{}}},"IpAddress":{{"AWS:SourceIp":"192.0.2.0/24"}}}}}}]}}"#,
        NOW + 3600
    );
    let signature = key.sign(&policy);
    ForeignCase {
        name: "hit/cloudfront/custom",
        format,
        fields: vec![
            Some(cloudfront_b64(policy.as_bytes())),
            None,
            Some(signature),
            Some("KEC".into()),
            Some("SHA256".into()),
        ],
    }
}
