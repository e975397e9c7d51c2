//! Akamai EdgeAuth 2.0 tokens (`hdnts=ip=…~st=…~exp=…~acl=…~id=…~data=…~hmac=…`), as
//! the reference generator (`akamai-edgeauth` on PyPI) makes them, verified from plain
//! values.
//!
//! The token travels under one name (default `hdnts`) as a query parameter, a cookie
//! or a header; its value is taken byte for byte. Fields are split on the configured
//! delimiter (default `~`); each may appear once; `exp` and `hmac` are required and
//! `hmac` is last; any other name is refused (`malformed`). The HMAC (SHA-256 by
//! default, SHA-1 or MD5; the key is hex) covers the token text before `~hmac=`, then,
//! for a token without `acl` (a *URL token*: the reference signs `url=<path>` but does
//! not send it), `~url=<request path>`, then `~salt=<salt>` when one is configured.
//! With `escape_early`, the generator percent-escapes `ip`, `id`, `data` and the URL
//! (Python's `quote_plus`, lower-case hex) before signing; the URL is escaped the same
//! way here and `ip` is unescaped before it is compared.
//!
//! What the token binds: `ip` (the client address must equal it), `st`/`exp` (checked
//! on every request), `acl` (`!`-separated patterns, `*` matches any run including
//! `/`, a pattern without `*` must equal the path) or, for a URL token, the request
//! path itself; `id` is the revocation handle (`tollgate revoke jti <id>`). `data` is
//! signed and otherwise ignored.

use ::hmac::{KeyInit, Mac};
use aws_lc_rs::hmac;

use super::{parse_seconds, push_len_prefixed, Carriers, Credential, ForeignGrant, Inputs};
use crate::token::TokenError;

/// The HMAC an EdgeAuth key is used with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha1,
    Md5,
}

impl Algorithm {
    pub fn parse(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sha256" => Some(Algorithm::Sha256),
            "sha1" => Some(Algorithm::Sha1),
            "md5" => Some(Algorithm::Md5),
            _ => None,
        }
    }
}

/// A configured EdgeAuth format.
#[derive(Clone)]
pub struct EdgeAuth {
    name: String,
    algorithm: Algorithm,
    key: Vec<u8>,
    field_delimiter: char,
    acl_delimiter: char,
    escape_early: bool,
    salt: Option<String>,
}

/// The fields of one token, each at most once.
#[derive(Default)]
struct Fields<'a> {
    ip: Option<&'a str>,
    st: Option<&'a str>,
    exp: Option<&'a str>,
    acl: Option<&'a str>,
    id: Option<&'a str>,
    data: Option<&'a str>,
}

/// The settings of an EdgeAuth format, as the configuration states them.
pub struct Settings<'a> {
    /// Token name: the query parameter, cookie and header (default `hdnts`).
    pub name: &'a str,
    pub algorithm: Algorithm,
    /// The key, hex (as the reference generator takes it).
    pub key_hex: &'a str,
    pub field_delimiter: &'a str,
    pub acl_delimiter: &'a str,
    pub escape_early: bool,
    pub salt: Option<&'a str>,
}

impl EdgeAuth {
    /// The error says what is wrong, for the config.
    pub fn new(s: &Settings<'_>) -> Result<Self, String> {
        let key = crate::url::decode_hex(s.key_hex.trim()).ok_or("key: not hex")?;
        if key.len() < 16 {
            return Err("key: at least 16 bytes (32 hex digits)".into());
        }
        // `=` splits a field, and `&`, `;`, `#` end the token in a query or cookie
        // before the gate sees the rest: such a delimiter could never verify.
        let one_char = |what: &str, v: &str| -> Result<char, String> {
            let mut chars = v.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_punctuation() && !"=&;#".contains(c) => Ok(c),
                _ => Err(format!("{what}: one punctuation character but = & ; #")),
            }
        };
        let name_ok = !s.name.is_empty()
            && s.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
        if !name_ok {
            return Err(format!(
                "name: {:?} must be letters, digits, _ or -",
                s.name
            ));
        }
        let field_delimiter = one_char("field_delimiter", s.field_delimiter)?;
        let acl_delimiter = one_char("acl_delimiter", s.acl_delimiter)?;
        if field_delimiter == acl_delimiter {
            return Err("field_delimiter and acl_delimiter must differ".into());
        }
        Ok(EdgeAuth {
            name: s.name.into(),
            algorithm: s.algorithm,
            key,
            field_delimiter,
            acl_delimiter,
            escape_early: s.escape_early,
            salt: s.salt.map(str::to_owned),
        })
    }

    /// One field, under the token name, in every carrier.
    pub fn carriers(&self) -> Carriers {
        Carriers {
            query: vec![self.name.clone()],
            cookies: vec![self.name.clone()],
            header: self.name.clone(),
            ..Carriers::default()
        }
    }

    pub(super) fn verify(
        &self,
        cred: &Credential<'_>,
        inputs: &Inputs<'_>,
    ) -> Result<ForeignGrant, TokenError> {
        let token = cred.fields[0].ok_or(TokenError::Malformed)?;
        let (signed, mac) = self.split_hmac(token)?;
        let fields = self.fields(signed)?;
        let exp = parse_seconds(fields.exp.ok_or(TokenError::Malformed)?)?;
        let nbf = fields.st.map(parse_seconds).transpose()?;
        let ip = fields.ip.map(|ip| self.address(ip)).transpose()?;
        let source = self.hash_source(signed, fields.acl.is_none(), inputs.path);
        self.check_mac(&source, mac)?;
        Ok(ForeignGrant {
            exp: Some(exp),
            nbf,
            id: fields.id.map(|id| self.unescaped(id)).transpose()?,
            ip,
            acl: fields
                .acl
                .map(|acl| acl.split(self.acl_delimiter).map(str::to_owned).collect())
                .unwrap_or_default(),
            ..ForeignGrant::default()
        })
    }

    /// A URL token's signature covers the path: the path joins the cache key.
    pub(super) fn binding(&self, cred: &Credential<'_>, inputs: &Inputs<'_>, out: &mut Vec<u8>) {
        let token = cred.fields[0].unwrap_or("");
        // Split rather than format a marker: this runs on every cached hit.
        if !token
            .split(self.field_delimiter)
            .any(|field| field.starts_with("acl="))
        {
            push_len_prefixed(out, inputs.path.as_bytes());
        }
    }

    /// `…~hmac=<hex>` → (`…`, hex): `hmac` is the last field.
    fn split_hmac<'t>(&self, token: &'t str) -> Result<(&'t str, &'t str), TokenError> {
        let marker = format!("{}hmac=", self.field_delimiter);
        let (signed, mac) = token.rsplit_once(&marker).ok_or(TokenError::Malformed)?;
        if signed.is_empty() || mac.contains(self.field_delimiter) {
            return Err(TokenError::Malformed);
        }
        Ok((signed, mac))
    }

    /// Every field before `hmac`, each known and at most once.
    fn fields<'t>(&self, signed: &'t str) -> Result<Fields<'t>, TokenError> {
        let mut f = Fields::default();
        for field in signed.split(self.field_delimiter) {
            let (name, value) = field.split_once('=').ok_or(TokenError::Malformed)?;
            let slot = match name {
                "ip" => &mut f.ip,
                "st" => &mut f.st,
                "exp" => &mut f.exp,
                "acl" => &mut f.acl,
                "id" => &mut f.id,
                "data" => &mut f.data,
                _ => return Err(TokenError::Malformed),
            };
            if slot.replace(value).is_some() || value.is_empty() {
                return Err(TokenError::Malformed);
            }
        }
        Ok(f)
    }

    fn address(&self, ip: &str) -> Result<std::net::IpAddr, TokenError> {
        self.unescaped(ip)?
            .parse()
            .map_err(|_| TokenError::Malformed)
    }

    /// A field as the issuer meant it: escape-early generators send `ip` and `id`
    /// percent-encoded (`viewer 42` as `viewer+42`), and `tollgate revoke jti` names
    /// the session as it was given to the generator.
    fn unescaped(&self, value: &str) -> Result<String, TokenError> {
        match self.escape_early {
            true => percent_decode(value).ok_or(TokenError::Malformed),
            false => Ok(value.to_owned()),
        }
    }

    /// What the issuer signed: the fields, the URL of a URL token, the salt.
    fn hash_source(&self, signed: &str, url_token: bool, path: &str) -> Vec<u8> {
        let mut source = signed.as_bytes().to_vec();
        let mut push = |name: &str, value: &str| {
            source.extend_from_slice(self.field_delimiter.to_string().as_bytes());
            source.extend_from_slice(name.as_bytes());
            source.push(b'=');
            source.extend_from_slice(value.as_bytes());
        };
        if url_token {
            match self.escape_early {
                true => push("url", &quote_plus_lower(path)),
                false => push("url", path),
            }
        }
        if let Some(salt) = &self.salt {
            push("salt", salt);
        }
        source
    }

    /// The HMAC, compared in constant time.
    fn check_mac(&self, source: &[u8], mac_hex: &str) -> Result<(), TokenError> {
        let mac = crate::url::decode_hex(mac_hex).ok_or(TokenError::Malformed)?;
        let ok = match self.algorithm {
            Algorithm::Sha256 => aws_hmac(hmac::HMAC_SHA256, &self.key, source, &mac),
            Algorithm::Sha1 => {
                aws_hmac(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.key, source, &mac)
            }
            Algorithm::Md5 => ::hmac::Hmac::<md5::Md5>::new_from_slice(&self.key)
                .map(|m| m.chain_update(source).verify_slice(&mac).is_ok())
                .unwrap_or(false),
        };
        ok.then_some(()).ok_or(TokenError::BadSignature)
    }
}

fn aws_hmac(alg: hmac::Algorithm, key: &[u8], source: &[u8], mac: &[u8]) -> bool {
    hmac::verify(&hmac::Key::new(alg, key), source, mac).is_ok()
}

/// Python's `quote_plus` with lower-case escapes, as the reference escapes early:
/// letters, digits and `_.-~` stay, a space is `+`, every other byte is `%xx`.
fn quote_plus_lower(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02x}")),
        }
    }
    out
}

/// `quote_plus`'s inverse: `%XX` and `+` as a space, as text.
fn percent_decode(s: &str) -> Option<String> {
    String::from_utf8(crate::url::percent_decode(s.as_bytes(), true)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

    fn edgeauth(algorithm: Algorithm, escape_early: bool) -> EdgeAuth {
        EdgeAuth::new(&Settings {
            name: "hdnts",
            algorithm,
            key_hex: KEY,
            field_delimiter: "~",
            acl_delimiter: "!",
            escape_early,
            salt: None,
        })
        .expect("valid")
    }

    fn inputs(path: &str) -> Inputs<'_> {
        Inputs {
            path,
            client: "192.0.2.7".parse().expect("ip"),
            host: "media.example",
            query: None,
            https: false,
            authority: "media.example",
        }
    }

    /// A token signed as the reference generator signs it (independently of the
    /// verifier: aws-lc-rs HMAC over the same text).
    fn sign(fields: &str, extra: &str) -> String {
        let key = crate::url::decode_hex(KEY).expect("hex");
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &key),
            format!("{fields}{extra}").as_bytes(),
        );
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("{fields}~hmac={hex}")
    }

    fn verify(f: &EdgeAuth, token: &str, path: &str) -> Result<ForeignGrant, TokenError> {
        let cred = Credential::of(&[Some(token)]);
        f.verify(&cred, &inputs(path))
    }

    #[test]
    fn edgeauth_acl_token_verifies_into_its_fields() {
        let f = edgeauth(Algorithm::Sha256, false);
        let token = sign(
            "ip=192.0.2.7~st=100~exp=200~acl=/vod/a/*!/x.m3u8~id=s1~data=d",
            "",
        );
        let grant = verify(&f, &token, "/anything").expect("verified");
        assert_eq!(grant.exp, Some(200));
        assert_eq!(grant.nbf, Some(100));
        assert_eq!(grant.id.as_deref(), Some("s1"));
        assert_eq!(grant.ip, Some("192.0.2.7".parse().expect("ip")));
        assert_eq!(
            grant.acl,
            vec!["/vod/a/*".to_string(), "/x.m3u8".to_string()]
        );
    }

    #[test]
    fn edgeauth_url_token_signs_the_request_path() {
        let f = edgeauth(Algorithm::Sha256, false);
        let token = sign("exp=200", "~url=/vod/a/x.ts");
        assert!(verify(&f, &token, "/vod/a/x.ts").is_ok());
        assert_eq!(
            verify(&f, &token, "/vod/a/y.ts"),
            Err(TokenError::BadSignature)
        );
        let early = edgeauth(Algorithm::Sha256, true);
        let token = sign("ip=192.0.2.7~exp=200", "~url=%2fvod%2fa%2fx.ts");
        assert!(verify(&early, &token, "/vod/a/x.ts").is_ok());
    }

    #[test]
    fn i2_i3_edgeauth_refuses_tampering_another_algorithm_and_missing_duplicated_or_unknown_fields()
    {
        let f = edgeauth(Algorithm::Sha256, false);
        let token = sign("exp=200~acl=/*", "");
        assert_eq!(
            verify(&f, &token.replace("exp=200", "exp=900"), "/"),
            Err(TokenError::BadSignature)
        );
        for bad in [
            sign("acl=/*", ""),
            sign("exp=200~exp=300~acl=/*", ""),
            sign("exp=200~acl=/*~url=/x", ""),
            sign("exp=soon~acl=/*", ""),
            sign("exp=200~acl=", ""),
            "exp=200~acl=/*".to_string(),
            format!("{token}~id=late"),
            token.replace("hmac=", "hmac=zz"),
        ] {
            assert_eq!(verify(&f, &bad, "/"), Err(TokenError::Malformed), "{bad}");
        }
        let sha1 = edgeauth(Algorithm::Sha1, false);
        assert_eq!(verify(&sha1, &token, "/"), Err(TokenError::BadSignature));
    }

    #[test]
    fn edgeauth_config_is_validated() {
        let ok = Settings {
            name: "hdnts",
            algorithm: Algorithm::Md5,
            key_hex: KEY,
            field_delimiter: "~",
            acl_delimiter: "!",
            escape_early: false,
            salt: None,
        };
        assert!(EdgeAuth::new(&ok).is_ok());
        assert!(EdgeAuth::new(&Settings {
            key_hex: "xyz",
            ..ok
        })
        .is_err());
        assert!(EdgeAuth::new(&Settings {
            key_hex: "0a0b",
            ..ok
        })
        .is_err());
        assert!(EdgeAuth::new(&Settings {
            field_delimiter: "~~",
            ..ok
        })
        .is_err());
        for (field_delimiter, acl_delimiter) in [("&", "!"), (";", "!"), ("~", "#"), ("!", "!")] {
            let bad = Settings {
                field_delimiter,
                acl_delimiter,
                ..ok
            };
            assert!(
                EdgeAuth::new(&bad).is_err(),
                "{field_delimiter} {acl_delimiter}"
            );
        }
        assert!(EdgeAuth::new(&Settings {
            field_delimiter: "=",
            ..ok
        })
        .is_err());
        assert!(EdgeAuth::new(&Settings { name: "a b", ..ok }).is_err());
    }

    #[test]
    fn quote_plus_matches_python() {
        assert_eq!(
            quote_plus_lower("/a b/c~d.e_f-g?h"),
            "%2fa+b%2fc~d.e_f-g%3fh"
        );
        assert_eq!(
            percent_decode("2001%3adb8%3a%3a1").as_deref(),
            Some("2001:db8::1")
        );
    }
}
