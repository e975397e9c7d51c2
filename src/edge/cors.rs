//! CORS for browser players (threat model C7): the preflight answer and the headers on
//! every other answer, per `edge.cors_origins`.
//!
//! `"*"` in the list means any origin may *read* media: the answer carries a literal
//! `Access-Control-Allow-Origin: *` and never `Access-Control-Allow-Credentials`, so no
//! website can make credentialed (cookie-carrying) reads through it. Credentials are
//! allowed only for origins listed by name, which are reflected exactly. A preflight
//! needs no token. This module owns these headers and nothing else.

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::EdgeError;
use crate::body::{self, Body};

const METHODS: &str = "GET, HEAD, POST, OPTIONS";

/// The configured origins.
pub struct Cors {
    /// Origins listed by name (compared ignoring ASCII case).
    named: Vec<String>,
    /// `"*"` was listed: any other origin may read without credentials.
    any: bool,
    /// The request headers a preflight allows: the gate's own, and the header each
    /// foreign format's credential may travel in (a Common Access Token player sends
    /// `CTA-Common-Access-Token` from the page).
    allow_headers: HeaderValue,
}

const ALLOW_HEADERS: &str = "Authorization, Range, If-None-Match, If-Modified-Since, If-Range";

/// How one request's `Origin` is allowed.
enum Allowed<'a> {
    /// Listed by name: reflected, with credentials.
    Named(&'a HeaderValue),
    /// Allowed by `"*"`: a literal `*`, no credentials.
    Any,
}

impl Cors {
    /// `credential_headers`: the header carriers of the configured foreign formats.
    pub fn new<'h>(
        origins: &[String],
        credential_headers: impl IntoIterator<Item = &'h str>,
    ) -> Self {
        let mut allow = ALLOW_HEADERS.to_string();
        for name in credential_headers.into_iter().filter(|h| !h.is_empty()) {
            // Whole entries: a name inside another (`If` in `If-Range`) is still added.
            if !allow.split(", ").any(|h| h.eq_ignore_ascii_case(name)) {
                allow.push_str(", ");
                allow.push_str(name);
            }
        }
        Cors {
            named: origins.iter().filter(|o| *o != "*").cloned().collect(),
            any: origins.iter().any(|o| o == "*"),
            // Header names are validated tokens (config): the fallback is never taken.
            allow_headers: HeaderValue::from_str(&allow)
                .unwrap_or(HeaderValue::from_static(ALLOW_HEADERS)),
        }
    }

    fn is_off(&self) -> bool {
        self.named.is_empty() && !self.any
    }

    fn allowed<'a>(&self, origin: Option<&'a HeaderValue>) -> Option<Allowed<'a>> {
        let origin = origin?;
        let s = origin.to_str().ok()?;
        if self.named.iter().any(|o| o.eq_ignore_ascii_case(s)) {
            Some(Allowed::Named(origin))
        } else {
            self.any.then_some(Allowed::Any)
        }
    }

    /// Add CORS response headers when the request's `Origin` is allowed.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        if self.is_off() {
            return;
        }
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(allowed) = self.allowed(origin) else {
            return;
        };
        match allowed {
            Allowed::Named(o) => {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o.clone());
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
            Allowed::Any => {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
        }
        headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed(headers));
    }

    /// Answer an OPTIONS request; preflights need no token.
    pub fn preflight(&self, headers: &HeaderMap) -> Result<Response<Body>, EdgeError> {
        let origin = headers.get(header::ORIGIN);
        if origin.is_some() && self.allowed(origin).is_none() {
            return Err(EdgeError::CorsOrigin);
        }
        let mut resp = Response::new(body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        h.insert(header::ALLOW, HeaderValue::from_static(METHODS));
        if origin.is_some() {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                self.allow_headers.clone(),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("600"),
            );
        }
        Ok(resp)
    }
}

/// The headers a player may read: the gate's list, and any the answer already exposes
/// (a Common Access Token renewal header, edge/catr.rs).
fn exposed(headers: &HeaderMap) -> HeaderValue {
    const EXPOSED: &str = "Content-Length, Content-Range, Content-Type, ETag, x-tollgate-reason";
    let mut list = String::new();
    for v in headers.get_all(header::ACCESS_CONTROL_EXPOSE_HEADERS) {
        if let Ok(v) = v.to_str() {
            list.push_str(", ");
            list.push_str(v);
        }
    }
    match list.is_empty() {
        true => HeaderValue::from_static(EXPOSED),
        false => HeaderValue::from_str(&format!("{EXPOSED}{list}"))
            .unwrap_or(HeaderValue::from_static(EXPOSED)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decorated(cors: &Cors, origin: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        let origin = HeaderValue::from_str(origin).expect("origin");
        cors.decorate(Some(&origin), &mut h);
        h
    }

    #[test]
    fn c7_a_preflight_allows_each_foreign_formats_credential_header() {
        let cors = Cors::new(
            &["*".to_owned()],
            ["CTA-Common-Access-Token", "", "range", "If"],
        );
        let mut req = HeaderMap::new();
        req.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://p.example"),
        );
        let resp = cors.preflight(&req).expect("allowed");
        let allow = resp.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
            .to_str()
            .expect("text");
        assert_eq!(
            allow,
            format!("{ALLOW_HEADERS}, CTA-Common-Access-Token, If")
        );
    }

    #[test]
    fn c7_star_is_a_literal_star_without_credentials() {
        let cors = Cors::new(&["*".to_owned()], []);
        let h = decorated(&cors, "https://any.example");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert!(cors.preflight(&HeaderMap::new()).is_ok());
    }

    #[test]
    fn c7_named_origins_are_reflected_with_credentials_others_get_nothing() {
        let cors = Cors::new(&["https://player.example".to_owned()], []);
        let h = decorated(&cors, "https://PLAYER.example");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://PLAYER.example"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[header::VARY], "Origin");
        let h = decorated(&cors, "https://evil.example");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let mut pre = HeaderMap::new();
        pre.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert_eq!(cors.preflight(&pre).err(), Some(EdgeError::CorsOrigin));
    }

    #[test]
    fn c7_a_named_origin_beside_star_keeps_its_credentials() {
        let cors = Cors::new(&["*".to_owned(), "https://player.example".to_owned()], []);
        let h = decorated(&cors, "https://player.example");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let h = decorated(&cors, "https://other.example");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
    }

    #[test]
    fn c7_a_header_the_answer_already_exposes_stays_exposed() {
        let cors = Cors::new(&["*".to_owned()], []);
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("CTA-Common-Access-Token"),
        );
        let origin = HeaderValue::from_static("https://any.example");
        cors.decorate(Some(&origin), &mut h);
        let exposed = h[header::ACCESS_CONTROL_EXPOSE_HEADERS]
            .to_str()
            .expect("text");
        assert!(exposed.contains("x-tollgate-reason"), "{exposed}");
        assert!(exposed.ends_with(", CTA-Common-Access-Token"), "{exposed}");
    }

    #[test]
    fn no_origins_configured_adds_nothing() {
        let h = decorated(&Cors::new(&[], []), "https://player.example");
        assert!(h.is_empty());
    }
}
