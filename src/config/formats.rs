//! `[[formats]]` and each route's `formats` list: the foreign token formats a route
//! accepts beside (or instead of) the native token (docs/architecture.md, "Foreign
//! token formats").
//!
//! Refused: an unknown kind, a key of the other kind, a bad expression or key, two
//! formats with one name (or named `native`), a route's formats sharing a carrier name
//! with each other, with the native token's or with a header the request itself needs
//! (`Cookie`, `Authorization`, `Host`, framing), a route listing an unknown or
//! repeated name or nothing, and a format no route lists (a typo would otherwise leave
//! a route on the native token alone without a word). It reads one kind of file, a
//! CloudFront format's public keys (so a reload, which parses the file again, reloads
//! them all or nothing), and never touches sockets.

use std::collections::{HashMap, HashSet};

use super::file::{CloudFrontFile, FormatFile, RouteFile};
use super::validate::Paths;
use super::{invalid, ConfigError, Route, Token};
use crate::token::foreign::edgeauth::{Algorithm, Settings};
use crate::token::foreign::{CloudFront, EdgeAuth, Format, Kind, SecureLink};

/// The name a route lists to accept the native token.
pub const NATIVE: &str = "native";

/// Every `[[formats]]` entry, checked and built.
pub(super) fn formats(file: &[FormatFile], paths: &Paths<'_>) -> Result<Vec<Format>, ConfigError> {
    let mut names = HashSet::new();
    file.iter()
        .map(|f| {
            let name = f.name();
            if name.is_empty() || name == NATIVE || !names.insert(name) {
                return Err(invalid(format!(
                    "formats: name {name:?} is empty, \"native\" or used twice"
                )));
            }
            let kind = kind(f, paths).map_err(|e| invalid(format!("formats[{name}]: {e}")))?;
            Ok(Format {
                name: name.to_string(),
                kind,
            })
        })
        .collect()
}

fn kind(f: &FormatFile, paths: &Paths<'_>) -> Result<Kind, String> {
    match f {
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
}
