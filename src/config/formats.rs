//! `[[formats]]` and each route's `formats` list: the foreign token formats a route
//! accepts beside (or instead of) the native token (docs/architecture.md, "Foreign
//! token formats").
//!
//! Refused: an unknown kind, a key of the other kind, a bad expression or key, two
//! formats with one name (or named `native`), a route's formats sharing a carrier name
//! with each other, with the native token's or with a header the request itself needs
//! (`Cookie`, `Authorization`, `Host`, framing), a route listing an unknown or
//! repeated name or nothing, and a format no route lists (a typo would otherwise leave
//! a route on the native token alone without a word). It reads the PEM key files of
//! `cat` and `cloudfront` formats (relative to the configuration's directory; a reload,
//! which parses the file again, reloads them all or nothing) and never touches sockets.

use std::collections::{HashMap, HashSet};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};

use super::file::{CatFile, CatKeyFile, CloudFrontFile, FormatFile, RouteFile};
use super::validate::Paths;
use super::{invalid, ConfigError, Route, Token};
use crate::token::foreign::cat::{self, KeyMaterial};
use crate::token::foreign::edgeauth::{Algorithm, Settings};
use crate::token::foreign::{
    uri_signing, CatFormat, CloudFront, EdgeAuth, Format, Kind, SecureLink, UriSigning,
};

/// The name a route lists to accept the native token.
pub const NATIVE: &str = "native";

/// Every `[[formats]]` entry, checked and built.
pub(super) fn formats(
    file: &[FormatFile],
    paths: &Paths<'_>,
    token: &Token,
) -> Result<Vec<Format>, ConfigError> {
    let mut names = HashSet::new();
    file.iter()
        .map(|f| {
            let name = f.name();
            if name.is_empty() || name == NATIVE || !names.insert(name) {
                return Err(invalid(format!(
                    "formats: name {name:?} is empty, \"native\" or used twice"
                )));
            }
            let kind =
                kind(f, paths, token).map_err(|e| invalid(format!("formats[{name}]: {e}")))?;
            Ok(Format {
                name: name.to_string(),
                kind,
            })
        })
        .collect()
}

fn kind(f: &FormatFile, paths: &Paths<'_>, token: &Token) -> Result<Kind, String> {
    match f {
        FormatFile::Cat(f) => cat_format(f, paths, token).map(|c| Kind::Cat(Box::new(c))),
        FormatFile::SecureLink(f) => SecureLink::new(
            &f.expression,
            f.md5.as_deref().unwrap_or("md5"),
            f.expires.as_deref().unwrap_or("expires"),
        )
        .map(Kind::SecureLink),
        FormatFile::Edgeauth(f) => {
            let algorithm = f.algorithm.as_deref().unwrap_or("sha256");
            EdgeAuth::new(&Settings {
                name: f.token_name.as_deref().unwrap_or("hdnts"),
                algorithm: Algorithm::parse(algorithm).ok_or("algorithm: sha256, sha1 or md5")?,
                key_hex: &f.key,
                field_delimiter: f.field_delimiter.as_deref().unwrap_or("~"),
                acl_delimiter: f.acl_delimiter.as_deref().unwrap_or("!"),
                escape_early: f.escape_early.unwrap_or(false),
                salt: f.salt.as_deref(),
            })
            .map(Kind::EdgeAuth)
        }
        FormatFile::UriSigning(f) => UriSigning::new(&uri_signing::Settings {
            package: f.package.as_deref().unwrap_or(uri_signing::DEFAULT_PACKAGE),
            id: f.id.as_deref(),
            renewal_kid: f.renewal_kid.as_deref(),
            require_exp: f.require_exp.unwrap_or(true),
            issuers: f
                .issuers
                .iter()
                .map(|i| (i.name.as_str(), i.keys.as_slice()))
                .collect(),
        })
        .map(Kind::UriSigning),
        FormatFile::Cloudfront(f) => cloudfront(f, paths).map(Kind::CloudFront),
    }
}

/// A CloudFront format: its public keys read from their files.
fn cloudfront(f: &CloudFrontFile, paths: &Paths<'_>) -> Result<CloudFront, String> {
    let keys = f
        .keys
        .iter()
        .map(|k| {
            let path = paths.resolve(&k.public_key_file);
            std::fs::read(&path)
                .map(|pem| (k.id.clone(), pem))
                .map_err(|e| format!("keys[{}]: cannot read {}: {e}", k.id, path.display()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    CloudFront::new(f.url_prefix.as_deref(), &keys)
}

/// A `cat` format: its carriers (defaults as CTA-5007 names them), policy and keys.
fn cat_format(f: &CatFile, paths: &Paths<'_>, token: &Token) -> Result<CatFormat, String> {
    let mut materials = Vec::with_capacity(f.keys.len());
    for k in &f.keys {
        materials.push((cat_kid(k)?, cat_key_bytes(k, paths)?));
    }
    let keys = f
        .keys
        .iter()
        .zip(&materials)
        .map(|(k, (kid, bytes))| Ok((kid.clone(), cat_material(k, bytes)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let live_session = live_session(f)?;
    CatFormat::new(cat::Settings {
        header: f.header.as_deref().unwrap_or(cat::DEFAULT_HEADER),
        query: f.query.as_deref().unwrap_or(cat::DEFAULT_QUERY),
        cookie: f.cookie.as_deref().unwrap_or(cat::DEFAULT_COOKIE),
        issuer: f.issuer.as_deref(),
        audience: f.audience.as_deref(),
        renew_kid: f.renew_kid.as_deref().map(str::as_bytes),
        keys,
        leeway: token.leeway.as_secs(),
        max_len: token.max_len,
        live_session,
    })
}

/// `live_session` in seconds (0: off). It renews through the query carrier, so that
/// must be on; less than a second would silently be none.
fn live_session(f: &CatFile) -> Result<u64, String> {
    let Some(d) = f.live_session else {
        return Ok(0);
    };
    if d < std::time::Duration::from_secs(1) {
        return Err("live_session: at least \"1s\" (leave it out to turn it off)".into());
    }
    if f.query.as_deref() == Some("") {
        return Err(
            "live_session: renews through the query carrier, which query = \"\" turns off".into(),
        );
    }
    Ok(d.as_secs())
}

/// A format's `live_session` is served only by a rewritten manifest: with `[manifest]
/// rewrite = false` every such request would reach the origin and then be refused.
pub(super) fn check_live_sessions(formats: &[Format], rewrite: bool) -> Result<(), ConfigError> {
    let needs_rewrite = formats.iter().find(|f| match &f.kind {
        Kind::Cat(c) => c.live_session() > 0,
        _ => false,
    });
    match needs_rewrite {
        Some(f) if !rewrite => Err(invalid(format!(
            "formats[{}]: live_session needs [manifest] rewrite = true",
            f.name
        ))),
        _ => Ok(()),
    }
}

/// `kid` (UTF-8 text) or `kid_hex` (bytes), exactly one.
fn cat_kid(k: &CatKeyFile) -> Result<Vec<u8>, String> {
    match (&k.kid, &k.kid_hex) {
        (Some(kid), None) => Ok(kid.as_bytes().to_vec()),
        (None, Some(hex)) => {
            crate::url::decode_hex(hex).ok_or_else(|| format!("kid_hex {hex:?} is not hex"))
        }
        _ => Err("keys: each key has exactly one of kid and kid_hex".into()),
    }
}

/// The key's bytes: the HS256 secret (hex) or the DER of the PEM in `key_file`, with
/// whether that PEM is a private key.
fn cat_key_bytes(k: &CatKeyFile, paths: &Paths<'_>) -> Result<(Vec<u8>, bool), String> {
    match (k.alg.as_str(), &k.key, &k.key_file) {
        ("HS256", Some(hex), None) => crate::url::decode_hex(hex)
            .map(|b| (b, true))
            .ok_or_else(|| "key: not hex".to_string()),
        ("ES256" | "EdDSA", None, Some(file)) => {
            let path = paths.resolve(file);
            let pem = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            if let Ok(der) = PrivatePkcs8KeyDer::from_pem_slice(&pem) {
                return Ok((der.secret_pkcs8_der().to_vec(), true));
            }
            SubjectPublicKeyInfoDer::from_pem_slice(&pem)
                .map(|der| (der.to_vec(), false))
                .map_err(|_| {
                    format!(
                        "{}: neither a PKCS#8 private key nor an SPKI public key (PEM)",
                        path.display()
                    )
                })
        }
        ("HS256", _, _) => Err("an HS256 key has `key` (hex) and no key_file".into()),
        ("ES256" | "EdDSA", _, _) => Err(format!("an {} key has `key_file` and no key", k.alg)),
        (alg, _, _) => Err(format!("alg {alg:?}: HS256, ES256 or EdDSA")),
    }
}

fn cat_material<'a>(
    k: &'a CatKeyFile,
    (bytes, private): &'a (Vec<u8>, bool),
) -> Result<KeyMaterial<'a>, String> {
    Ok(match (k.alg.as_str(), private) {
        ("HS256", _) => KeyMaterial::Hs256(bytes),
        (alg, true) => KeyMaterial::Pkcs8 { alg, der: bytes },
        (alg, false) => KeyMaterial::Spki { alg, der: bytes },
    })
}

/// Set each route's `native` and `formats` from its list; every format must be listed
/// by some route.
pub(super) fn assign(
    routes: &mut [Route],
    file: &[RouteFile],
    formats: &[Format],
    token: &Token,
) -> Result<(), ConfigError> {
    let index: HashMap<&str, usize> = formats
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name.as_str(), i))
        .collect();
    let mut used = HashSet::new();
    for (route, f) in routes.iter_mut().zip(file) {
        let Some(list) = &f.formats else { continue };
        let at = |msg: String| invalid(format!("routes[{}].formats: {msg}", f.name));
        if list.is_empty() {
            return Err(at("empty: list \"native\" and/or [[formats]] names".into()));
        }
        let mut seen = HashSet::new();
        route.native = false;
        for name in list {
            if !seen.insert(name.as_str()) {
                return Err(at(format!("{name:?} listed twice")));
            }
            match (name.as_str(), index.get(name.as_str())) {
                (NATIVE, _) => route.native = true,
                (_, Some(&i)) => route.formats.push(i),
                (_, None) => return Err(at(format!("no [[formats]] named {name:?}"))),
            }
        }
        distinct_carriers(&route.formats, formats, token).map_err(at)?;
        used.extend(route.formats.iter().copied());
    }
    if let Some(f) = formats.iter().enumerate().find(|(i, _)| !used.contains(i)) {
        return Err(invalid(format!(
            "formats[{}]: no route lists it in its formats",
            f.1.name
        )));
    }
    Ok(())
}

/// Headers a format may not claim: the request's framing and routing, and the carriers
/// the gate or the origin already read.
const RESERVED_HEADERS: [&str; 9] = [
    "authorization",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "x-forwarded-for",
];

/// Two formats of one route may not share a query, cookie or header name, nor take the
/// native token's query or cookie name or a reserved header: a carrier must say which
/// format it carries.
fn distinct_carriers(route: &[usize], formats: &[Format], token: &Token) -> Result<(), String> {
    let mut names: HashSet<(&str, String)> = HashSet::from([
        ("query parameter", token.query.to_ascii_lowercase()),
        ("cookie", token.cookie.to_ascii_lowercase()),
    ]);
    names.extend(RESERVED_HEADERS.map(|h| ("header", h.to_string())));
    for &i in route {
        let c = formats[i].kind.carriers();
        let all = c
            .query
            .iter()
            .map(|q| ("query parameter", q.as_str()))
            .chain(c.cookies.iter().map(|n| ("cookie", n.as_str())))
            .chain([("header", c.header.as_str())])
            .filter(|(_, n)| !n.is_empty());
        for (what, name) in all {
            if !names.insert((what, name.to_ascii_lowercase())) {
                return Err(format!("{name:?}: this {what} is taken (by another format, the native token or the request itself)"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

    /// The example config with `extra` appended and the vod route's `formats` set.
    fn parse(route_formats: &str, extra: &str) -> Result<Config, String> {
        let base = include_str!("../../config/tollgate.toml");
        let text = base.replacen(
            "path = \"/vod/{rid}/\"\n",
            &format!("path = \"/vod/{{rid}}/\"\n{route_formats}\n"),
            1,
        );
        Config::parse(
            &format!("{text}\n{extra}"),
            Path::new("config/tollgate.toml"),
        )
        .map_err(|e| e.to_string())
    }

    fn edgeauth(name: &str) -> String {
        format!("[[formats]]\nname = \"{name}\"\nkind = \"edgeauth\"\nkey = \"{KEY}\"\n")
    }

    #[test]
    fn routes_accept_native_only_unless_they_list_formats() {
        let c = parse("", "").expect("valid");
        assert!(c.routes.iter().all(|r| r.native && r.formats.is_empty()));
        let c = parse(
            "formats = [\"native\", \"akamai\", \"nginx\"]",
            &format!(
                "{}[[formats]]\nname = \"nginx\"\nkind = \"secure_link\"\nexpression = \"$secure_link_expires$uri secret\"\n",
                edgeauth("akamai")
            ),
        )
        .expect("valid");
        let vod = c.routes.iter().find(|r| r.name == "vod").expect("vod");
        assert!(vod.native);
        assert_eq!(vod.formats, vec![0, 1]);
        let c = parse("formats = [\"akamai\"]", &edgeauth("akamai")).expect("valid");
        let vod = c.routes.iter().find(|r| r.name == "vod").expect("vod");
        assert!(!vod.native && vod.formats == vec![0]);
    }

    /// The README's URI Signing migration block (the ES256 key made here).
    fn uri_signing(extra_issuer_key: &str) -> String {
        format!(
            r#"[[formats]]
name = "ats"
kind = "uri_signing"
id = "mycdn"
renewal_kid = "Second Key"

[[formats.issuers]]
name = "Kabletown URI Authority"
keys = [
  {{ alg = "HS256", kid = "Second Key", kty = "oct", k = "Kh_RkUMj-fzbD37qBnDf_3e_RvQ3RP9PaSmVEpE24AM" }},
  {extra_issuer_key}
]
"#
        )
    }

    #[test]
    fn uri_signing_formats_read_the_plugins_issuers_and_jwks() {
        let ec = r#"{ alg = "ES256", kid = "ec-1", kty = "EC", crv = "P-256", x = "MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4", y = "4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM" }"#;
        let c = parse("formats = [\"ats\"]", &uri_signing(ec)).expect("valid");
        let vod = c.routes.iter().find(|r| r.name == "vod").expect("vod");
        assert_eq!(vod.formats, vec![0]);
        let rsa_as_hmac = r#"{ alg = "HS256", kid = "r", kty = "RSA", n = "AQAB", e = "AQAB" }"#;
        let err = parse("formats = [\"ats\"]", &uri_signing(rsa_as_hmac)).expect_err("kty");
        assert!(
            err.contains("formats[ats]") && err.contains("does not fit"),
            "{err}"
        );
        let typo = uri_signing(ec).replace("renewal_kid", "renewal_key");
        let err = parse("formats = [\"ats\"]", &typo).expect_err("unknown key");
        assert!(err.contains("renewal_key"), "{err}");
    }

    #[test]
    fn cloudfront_keys_are_read_from_their_files_and_must_be_rsa_or_p256() {
        use crate::token::keys::{generate_pem, Algorithm};
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |name: &str, alg| {
            let path = dir.path().join(name);
            std::fs::write(&path, generate_pem(alg).expect("key").1).expect("write");
            path.display().to_string()
        };
        let (p256, ed25519) = (
            write("ec.pem", Algorithm::Es256),
            write("ed.pem", Algorithm::EdDsa),
        );
        let format = |path: &str| {
            format!("[[formats]]\nname = \"cf\"\nkind = \"cloudfront\"\n[[formats.keys]]\nid = \"K1\"\npublic_key_file = {path:?}\n")
        };
        let c = parse("formats = [\"cf\"]", &format(&p256)).expect("valid");
        assert!(
            matches!(&c.formats[0].kind, crate::token::foreign::Kind::CloudFront(cf) if cf.key_type("K1").is_some())
        );
        let missing = dir.path().join("nope.pem").display().to_string();
        for (path, says) in [(missing, "cannot read"), (ed25519, "RSA")] {
            let err = parse("formats = [\"cf\"]", &format(&path)).expect_err(says);
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn route_formats_are_validated() {
        let akamai = edgeauth("akamai");
        let cases = [
            ("formats = []", akamai.clone(), "empty"),
            (
                "formats = [\"akamai\", \"akamai\"]",
                akamai.clone(),
                "twice",
            ),
            ("formats = [\"nope\"]", akamai.clone(), "no [[formats]]"),
            ("", akamai.clone(), "no route lists it"),
            ("formats = [\"native\"]", edgeauth("native"), "\"native\""),
            (
                "formats = [\"akamai\", \"other\"]",
                format!("{akamai}{}", edgeauth("other")),
                "is taken",
            ),
            (
                "formats = [\"akamai\"]",
                format!("{akamai}token_name = \"authorization\"\n"),
                "header is taken",
            ),
            (
                "formats = [\"akamai\"]",
                format!("{akamai}token_name = \"token\"\n"),
                "query parameter is taken",
            ),
            (
                "formats = [\"akamai\"]",
                akamai.replace(KEY, "not-hex"),
                "not hex",
            ),
            (
                "formats = [\"akamai\"]",
                format!("{akamai}expression = \"x\"\n"),
                "unknown field `expression`",
            ),
            (
                "formats = [\"n\"]",
                "[[formats]]\nname = \"n\"\nkind = \"secure_link\"\nexpression = \"$uri\"\n".into(),
                "secret",
            ),
            (
                "formats = [\"n\"]",
                "[[formats]]\nname = \"n\"\nkind = \"jwt\"\n".into(),
                "kind",
            ),
        ];
        for (route, extra, says) in cases {
            let err = parse(route, &extra).expect_err(route);
            assert!(err.contains(says), "{route} / {extra}: {err}");
        }
    }

    const CAT_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn cat(extra: &str, keys: &str) -> String {
        format!("[[formats]]\nname = \"cat\"\nkind = \"cat\"\n{extra}\n{keys}")
    }

    fn hs_key(kid: &str) -> String {
        format!("[[formats.keys]]\nkid = \"{kid}\"\nalg = \"HS256\"\nkey = \"{CAT_KEY}\"\n")
    }

    fn cat_format(c: &Config) -> &crate::token::foreign::CatFormat {
        match &c.formats[0].kind {
            crate::token::foreign::Kind::Cat(f) => f,
            _ => panic!("not a cat format"),
        }
    }

    #[test]
    fn a_cat_format_has_cta_5007_carriers_by_default_and_each_can_be_renamed_or_off() {
        let c = parse("formats = [\"cat\"]", &cat("", &hs_key("k1"))).expect("valid");
        let carriers = c.formats[0].kind.carriers();
        assert_eq!(carriers.query, vec!["CAT".to_string()]);
        assert_eq!(carriers.header, "CTA-Common-Access-Token");
        assert_eq!(carriers.cookies, vec!["CTA-Common-Access-Token"]);
        let c = parse(
            "formats = [\"cat\"]",
            &cat(
                "query = \"\"\nheader = \"x-cat\"\ncookie = \"\"\nissuer = \"i\"\naudience = \"a\"",
                &hs_key("k1"),
            ),
        )
        .expect("valid");
        let carriers = c.formats[0].kind.carriers();
        assert!(carriers.query.is_empty() && carriers.cookies.iter().all(String::is_empty));
        assert_eq!(carriers.header, "x-cat");
        let policy = cat_format(&c).policy();
        assert_eq!(
            (policy.issuers.clone(), policy.audiences.clone()),
            (vec!["i".to_string()], vec!["a".to_string()])
        );
    }

    #[test]
    fn live_session_needs_a_key_that_can_mint() {
        use crate::token::keys::{generate_pem, Algorithm};
        let c = parse(
            "formats = [\"cat\"]",
            &cat("live_session = \"4h\"", &hs_key("hs")),
        )
        .expect("valid");
        assert_eq!(cat_format(&c).live_session(), 4 * 3600);
        let c = parse("formats = [\"cat\"]", &cat("", &hs_key("hs"))).expect("valid");
        assert_eq!(cat_format(&c).live_session(), 0, "off by default");
        // A public key alone verifies but cannot mint the renewal a session needs.
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, public) = generate_pem(Algorithm::EdDsa).expect("generate");
        let path = dir.path().join("ed.pub.pem");
        std::fs::write(&path, public).expect("write");
        let keys = format!(
            "[[formats.keys]]\nkid = \"ed\"\nalg = \"EdDSA\"\nkey_file = \"{}\"\n",
            path.display()
        );
        parse("formats = [\"cat\"]", &cat("", &keys)).expect("verifying alone is fine");
        let err = parse("formats = [\"cat\"]", &cat("live_session = \"1h\"", &keys))
            .expect_err("no key can mint");
        assert!(err.contains("live_session"), "{err}");
        // Settings that would make it silently nothing.
        for (extra, says) in [
            ("live_session = \"500ms\"", "at least"),
            ("live_session = \"1h\"\nquery = \"\"", "query carrier"),
        ] {
            let err = parse("formats = [\"cat\"]", &cat(extra, &hs_key("hs"))).expect_err(extra);
            assert!(err.contains(says), "{extra}: {err}");
        }
        let c = parse(
            "formats = [\"cat\"]",
            &cat("live_session = \"4h\"", &hs_key("hs")),
        )
        .expect("valid");
        assert!(super::check_live_sessions(&c.formats, true).is_ok());
        let err = super::check_live_sessions(&c.formats, false).expect_err("no rewrite");
        assert!(err.to_string().contains("rewrite = true"), "{err}");
    }

    #[test]
    fn cat_keys_are_pinned_and_renew_kid_needs_a_private_half() {
        use crate::token::keys::{generate_pem, Algorithm};
        let dir = tempfile::tempdir().expect("tempdir");
        let mut files = String::new();
        for (kid, alg) in [("es", Algorithm::Es256), ("ed", Algorithm::EdDsa)] {
            let (private, public) = generate_pem(alg).expect("generate");
            let private_path = dir.path().join(format!("{kid}.pem"));
            let public_path = dir.path().join(format!("{kid}.pub.pem"));
            std::fs::write(&private_path, private).expect("write");
            std::fs::write(&public_path, public).expect("write");
            let alg = alg.as_str();
            files.push_str(&format!(
                "[[formats.keys]]\nkid = \"{kid}\"\nalg = \"{alg}\"\nkey_file = \"{}\"\n[[formats.keys]]\nkid = \"{kid}-pub\"\nalg = \"{alg}\"\nkey_file = \"{}\"\n",
                private_path.display(),
                public_path.display()
            ));
        }
        let keys = format!("{}{files}", hs_key("hs"));
        let c = parse("formats = [\"cat\"]", &cat("renew_kid = \"es\"", &keys)).expect("valid");
        let f = cat_format(&c);
        assert_eq!(
            f.renewal_signer(b"hs").map(|(kid, _)| kid),
            Some(&b"es"[..])
        );
        let c = parse("formats = [\"cat\"]", &cat("", &keys)).expect("valid");
        let f = cat_format(&c);
        assert!(f.renewal_signer(b"ed").is_some(), "a PKCS#8 key renews");
        assert!(f.renewal_signer(b"ed-pub").is_none(), "an SPKI key cannot");
        let cases = [
            (cat("renew_kid = \"es-pub\"", &keys), "renew_kid"),
            (cat("renew_kid = \"nope\"", &keys), "renew_kid"),
            (cat("", ""), "at least one"),
            (
                cat("", &format!("{}{}", hs_key("k"), hs_key("k"))),
                "used twice",
            ),
            (cat("", &hs_key("k").replace(CAT_KEY, "0011")), "32 bytes"),
            (
                cat("", &hs_key("k").replace("HS256", "RS256")),
                "HS256, ES256 or EdDSA",
            ),
            (
                cat(
                    "",
                    &hs_key("k").replace("alg = \"HS256\"", "alg = \"ES256\""),
                ),
                "key_file",
            ),
            (
                cat("", &format!("{}kid_hex = \"00\"\n", hs_key("k"))),
                "exactly one of kid",
            ),
            (
                cat(
                    "",
                    &hs_key("k").replace("key =", "key_file = \"/nonexistent\"\nkey ="),
                ),
                "no key_file",
            ),
            (cat("expression = \"x\"", &hs_key("k")), "unknown field"),
        ];
        for (extra, says) in cases {
            let err = parse("formats = [\"cat\"]", &extra).expect_err(says);
            assert!(err.contains(says), "{extra}: {err}");
        }
        let c = parse(
            "formats = [\"cat\"]",
            &cat(
                "",
                &hs_key("k").replace("kid = \"k\"", "kid_hex = \"00ff\""),
            ),
        )
        .expect("kid_hex");
        assert!(cat_format(&c).renewal_signer(&[0x00, 0xff]).is_some());
    }
}
