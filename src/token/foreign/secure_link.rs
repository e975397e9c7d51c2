//! nginx `secure_link`: `secure_link $arg_md5,$arg_expires;` with
//! `secure_link_md5 "<expression>";`, verified as nginx's ngx_http_secure_link_module
//! does. The link carries two query parameters (names configurable, default `md5` and
//! `expires`); the digest is MD5 over the expression with its variables replaced,
//! base64url (nginx's `-_` alphabet, `=` padding optional), 16 bytes.
//!
//! Supported variables: `$secure_link_expires` (the `expires` value as sent),
//! `$uri` (the normalised path), `$remote_addr` (the client address), `$host` (lower
//! case, no port) and `$arg_<name>` (the first `name=value` query parameter, ASCII
//! case ignored as nginx does, raw); `${name}` is the same as `$name`. Everything else
//! is literal text: the secret. nginx semantics: a missing or undecodable digest, a
//! missing, empty or non-numeric expiry (when the expiry parameter is configured) and a
//! digest that does not match are all refused; a matching link past its expiry is
//! `expired` (with tollgate's `token.leeway`). An expression without `$uri` does not
//! bind the path: such a link opens every path of the routes that list the format.
//!
//! It never touches HTTP types or configuration: the caller hands in plain values.

use md5::{Digest, Md5};

use super::{parse_seconds, push_len_prefixed, Carriers, Credential, ForeignGrant, Inputs};
use crate::token::TokenError;

/// Least literal (secret) text an expression must hold, in bytes of non-space text
/// (nginx's documented example, ` secret`, has six).
pub const MIN_SECRET_LEN: usize = 6;

/// One piece of a `secure_link_md5` expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Expires,
    Uri,
    RemoteAddr,
    Host,
    Arg(String),
}

/// A configured `secure_link` format.
#[derive(Clone)]
pub struct SecureLink {
    parts: Vec<Part>,
    md5_param: String,
    /// "" when links carry no expiry (`secure_link $arg_md5;`).
    expires_param: String,
}

impl SecureLink {
    /// Parse `expression`; `md5` and `expires` name the query parameters (`expires`
    /// may be "": links never expire). The error says what is wrong, for the config.
    pub fn new(expression: &str, md5: &str, expires: &str) -> Result<Self, String> {
        if md5.is_empty() || md5 == expires {
            return Err("md5 must name a query parameter other than expires".into());
        }
        let parts = parse_expression(expression)?;
        let secret: usize = parts
            .iter()
            .map(|p| match p {
                Part::Literal(t) => t.bytes().filter(|b| !b.is_ascii_whitespace()).count(),
                _ => 0,
            })
            .sum();
        if secret < MIN_SECRET_LEN {
            return Err(format!(
                "the expression needs a secret: at least {MIN_SECRET_LEN} bytes of literal text"
            ));
        }
        if expires.is_empty() && parts.contains(&Part::Expires) {
            return Err("$secure_link_expires needs an expires parameter".into());
        }
        // nginx allows it, but an expiry the digest does not cover is one any client
        // can push back: refuse it rather than honour an unsigned number.
        let signed = |p: &Part| match p {
            Part::Expires => true,
            Part::Arg(name) => name.eq_ignore_ascii_case(expires),
            _ => false,
        };
        if !expires.is_empty() && !parts.iter().any(signed) {
            return Err(format!(
                "the expiry is not signed: add $secure_link_expires to the expression, \
                 or set expires = \"\" for links that never expire (it was {expires:?})"
            ));
        }
        Ok(SecureLink {
            parts,
            md5_param: md5.into(),
            expires_param: expires.into(),
        })
    }

    /// Field 0 is the digest, field 1 the expiry; query parameters only.
    pub fn carriers(&self) -> Carriers {
        let mut query = vec![self.md5_param.clone()];
        if !self.expires_param.is_empty() {
            query.push(self.expires_param.clone());
        }
        Carriers {
            query,
            ..Carriers::default()
        }
    }

    /// The digest and the expiry's form; whether the link has expired is
    /// [`super::authorize`]'s question, asked on every request.
    pub(super) fn verify(
        &self,
        cred: &Credential<'_>,
        inputs: &Inputs<'_>,
    ) -> Result<ForeignGrant, TokenError> {
        let digest = cred.fields[0].ok_or(TokenError::Malformed)?;
        let expires = match self.expires_param.is_empty() {
            true => None,
            false => Some(cred.fields[1].ok_or(TokenError::Malformed)?),
        };
        let exp = expires.map(parse_seconds).transpose()?;
        if exp == Some(0) {
            return Err(TokenError::Malformed); // nginx: an expiry must be > 0
        }
        let presented = decode_digest(digest)?;
        let expected = Md5::digest(self.evaluate(inputs, expires.unwrap_or("")));
        aws_lc_rs::constant_time::verify_slices_are_equal(&presented, &expected)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(ForeignGrant {
            exp,
            ..ForeignGrant::default()
        })
    }

    /// The expression with its variables replaced: the MD5 input.
    fn evaluate(&self, inputs: &Inputs<'_>, expires: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text.as_bytes()),
                variable => out.extend_from_slice(value(variable, inputs, expires).as_bytes()),
            }
        }
        out
    }

    /// The values of the expression's variables (the expiry is a field already).
    pub(super) fn binding(&self, inputs: &Inputs<'_>, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Literal(_) | Part::Expires => {}
                // The address's octets, not its text: this runs on every cached hit.
                Part::RemoteAddr => match inputs.client {
                    std::net::IpAddr::V4(ip) => push_len_prefixed(out, &ip.octets()),
                    std::net::IpAddr::V6(ip) => push_len_prefixed(out, &ip.octets()),
                },
                _ => push_len_prefixed(out, value(part, inputs, "").as_bytes()),
            }
        }
    }
}

/// A variable's value for this request (a literal is not a variable: "").
fn value<'a>(part: &'a Part, inputs: &Inputs<'a>, expires: &'a str) -> std::borrow::Cow<'a, str> {
    use std::borrow::Cow;
    match part {
        Part::Literal(_) => Cow::Borrowed(""),
        Part::Expires => Cow::Borrowed(expires),
        Part::Uri => Cow::Borrowed(inputs.path),
        Part::RemoteAddr => Cow::Owned(inputs.client.to_string()),
        Part::Host => Cow::Borrowed(inputs.host),
        Part::Arg(name) => Cow::Borrowed(arg(inputs.query, name).unwrap_or("")),
    }
}

/// nginx's `$arg_<name>`: the first `&`-separated `name=value` whose name equals
/// `name` ignoring ASCII case, its value raw; a bare `name` without `=` is skipped, as
/// nginx's `ngx_http_arg` skips it.
fn arg<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|param| {
        let (n, v) = param.split_once('=')?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// base64url (`-_`), `=` padding optional, exactly the 16 bytes of an MD5 digest.
fn decode_digest(text: &str) -> Result<Vec<u8>, TokenError> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine as _;
    const URL_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    if text.len() > 24 {
        return Err(TokenError::Malformed);
    }
    let bytes = URL_ANY_PAD
        .decode(text)
        .map_err(|_| TokenError::Malformed)?;
    match bytes.len() {
        16 => Ok(bytes),
        _ => Err(TokenError::Malformed),
    }
}

/// Split an expression into literal text and the supported variables.
fn parse_expression(expression: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut rest = expression;
    while let Some(i) = rest.find('$') {
        literal.push_str(&rest[..i]);
        let (name, after) = variable_name(&rest[i + 1..])
            .ok_or_else(|| format!("a '$' without a variable name in {expression:?}"))?;
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal)));
        }
        parts.push(variable(name)?);
        rest = after;
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        parts.push(Part::Literal(literal));
    }
    Ok(parts)
}

/// `name…` or `{name}…` after a `$`: the name and the text after it.
fn variable_name(s: &str) -> Option<(&str, &str)> {
    if let Some(braced) = s.strip_prefix('{') {
        let end = braced.find('}')?;
        return Some((&braced[..end], &braced[end + 1..])).filter(|(n, _)| !n.is_empty());
    }
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| (&s[..end], &s[end..]))
}

fn variable(name: &str) -> Result<Part, String> {
    Ok(match name {
        "secure_link_expires" => Part::Expires,
        "uri" => Part::Uri,
        "remote_addr" => Part::RemoteAddr,
        "host" => Part::Host,
        _ => match name.strip_prefix("arg_") {
            Some(arg) if !arg.is_empty() => Part::Arg(arg.into()),
            _ => return Err(format!("unsupported variable ${name}: use $secure_link_expires, $uri, $remote_addr, $host or $arg_<name>")),
        },
    })
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    const EXPR: &str = "$secure_link_expires$uri$remote_addr secret";

    fn inputs(path: &str) -> Inputs<'_> {
        Inputs {
            path,
            client: "127.0.0.1".parse().expect("ip"),
            host: "media.example",
            query: None,
            https: false,
            authority: "media.example",
        }
    }

    /// What nginx's documentation does: `echo -n '…' | openssl md5 -binary | openssl
    /// base64 | tr +/ -_ | tr -d =`.
    fn link_md5(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(Md5::digest(text.as_bytes()))
    }

    fn verify(
        f: &SecureLink,
        md5: &str,
        expires: &str,
        path: &str,
    ) -> Result<ForeignGrant, TokenError> {
        let cred = Credential::of(&[Some(md5), Some(expires)]);
        f.verify(&cred, &inputs(path))
    }

    #[test]
    fn secure_link_accepts_the_documented_expression_and_binds_path_ip_and_expiry() {
        let f = SecureLink::new(EXPR, "md5", "expires").expect("valid");
        let md5 = link_md5("2147483647/s/link127.0.0.1 secret");
        let grant = verify(&f, &md5, "2147483647", "/s/link").expect("accepted");
        assert_eq!(grant.exp, Some(2_147_483_647));
        assert_eq!(
            verify(&f, &md5, "2147483647", "/s/other"),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&f, &md5, "2147483646", "/s/link"),
            Err(TokenError::BadSignature)
        );
        let cred = Credential::of(&[Some(md5.as_str()), Some("2147483647")]);
        let elsewhere = Inputs {
            client: "127.0.0.2".parse().expect("ip"),
            ..inputs("/s/link")
        };
        assert_eq!(f.verify(&cred, &elsewhere), Err(TokenError::BadSignature));
        // Padding is optional, as in nginx's base64url decoder.
        assert!(verify(&f, &format!("{md5}=="), "2147483647", "/s/link").is_ok());
    }

    #[test]
    fn i3_secure_link_refuses_missing_or_unparsable_fields_as_nginx_does() {
        let f = SecureLink::new(EXPR, "md5", "expires").expect("valid");
        let md5 = link_md5("2147483647/s/link127.0.0.1 secret");
        let missing = Credential::of(&[Some(md5.as_str())]);
        assert_eq!(
            f.verify(&missing, &inputs("/s/link")),
            Err(TokenError::Malformed)
        );
        for (md5, expires) in [
            (md5.as_str(), ""),
            (md5.as_str(), "0"),
            (md5.as_str(), "-5"),
            (md5.as_str(), "12ab"),
            ("short", "2147483647"),
            ("not*base64*not*base64*", "2147483647"),
            ("AAAAAAAAAAAAAAAAAAAAAAAAAAAA", "2147483647"),
        ] {
            assert_eq!(
                verify(&f, md5, expires, "/s/link"),
                Err(TokenError::Malformed),
                "{md5:?} {expires:?}"
            );
        }
    }

    #[test]
    fn secure_link_expression_variables_host_and_args_are_evaluated() {
        let f = SecureLink::new("${host}$uri$arg_user secret-text", "s", "").expect("valid");
        let inputs = Inputs {
            query: Some("a=1&USER=alice&user=bob"),
            ..inputs("/p")
        };
        let md5 = link_md5("media.example/palice secret-text");
        let cred = Credential::of(&[Some(md5.as_str())]);
        let grant = f.verify(&cred, &inputs).expect("accepted");
        assert_eq!(
            grant.exp, None,
            "no expires parameter: the link never expires"
        );
        // As nginx's ngx_http_arg: a bare `user` (no `=`) is no value; the next is.
        let bare = Inputs {
            query: Some("user&user=alice"),
            ..inputs
        };
        assert!(f.verify(&cred, &bare).is_ok(), "the bare name is skipped");
        let md5 = link_md5("media.example/p secret-text");
        let empty = Credential::of(&[Some(md5.as_str())]);
        assert_eq!(
            f.verify(&empty, &bare).map(|_| ()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn secure_link_config_is_validated() {
        assert!(
            SecureLink::new("$uri$remote_addr", "md5", "expires").is_err(),
            "no secret"
        );
        assert!(SecureLink::new("$uri $request_uri secret-text", "md5", "expires").is_err());
        assert!(SecureLink::new("$ secret-text", "md5", "expires").is_err());
        assert!(SecureLink::new("$secure_link_expires secret-text", "md5", "").is_err());
        assert!(SecureLink::new("$uri secret-text", "md5", "md5").is_err());
        assert!(SecureLink::new("$uri secret-text", "", "e").is_err());
        let unsigned = SecureLink::new("$uri secret-text", "md5", "expires").map(|_| ());
        assert!(unsigned.is_err_and(|e| e.contains("not signed")));
        assert!(SecureLink::new("$uri$arg_Expires secret-text", "md5", "expires").is_ok());
        assert!(SecureLink::new("$uri secret-text", "md5", "").is_ok());
    }
}
