//! Admission, the first phase: may this request enter the pipeline at all? Decided from
//! the request head alone, before the path or any token is read:
//!
//! - **framing**: a body must say its length; `Transfer-Encoding` and conflicting
//!   `Content-Length`s are refused (threat model C4);
//! - **authority**: one agreed host: `Host`, the HTTP/2 `:authority` and an absolute-form
//!   target must agree, carry no userinfo, and an HTTP/1.1 or HTTP/2 request must name
//!   one (RFC 9110 §7.2, RFC 9112 §3.2, RFC 9113 §8.3.1; threat model C8). The agreed
//!   value is what the origin gets as `X-Forwarded-Host`;
//! - **header limits**: the configured count and size, answered with the gate's own 431;
//! - **method**: `OPTIONS` is a CORS preflight, `GET`/`HEAD` carry no body, `POST`
//!   streams a capped body; anything else is 405.
//!
//! It owns these rules and nothing else: no path, token, route or origin logic.

use http::header::{self, HeaderMap, HeaderValue};
use http::request::Parts;
use http::{Method, Version};
use http_body_util::BodyExt;

use super::EdgeError;
use crate::body::{self, Body};
use crate::config;

/// The admission settings, from `[edge]`.
pub struct Admission {
    max_header_bytes: usize,
    max_headers: usize,
    max_body_bytes: u64,
}

/// What admission lets through.
pub enum Admitted {
    /// An `OPTIONS` request: answered by CORS, never routed or forwarded.
    Preflight,
    /// A request for the pipeline.
    Request(Admit),
}

/// An admitted request's body and authority.
pub struct Admit {
    /// The body to forward (`POST` only, capped at `edge.max_body_bytes`).
    pub body: Option<Body>,
    /// The one authority the request names (for `X-Forwarded-Host`); None only for an
    /// HTTP/1.0 request that named none.
    pub authority: Option<HeaderValue>,
}

impl Admission {
    pub fn new(edge: &config::Edge) -> Self {
        Admission {
            max_header_bytes: edge.max_header_bytes,
            max_headers: edge.max_headers,
            max_body_bytes: edge.max_body_bytes,
        }
    }

    /// Admit `head`, taking its body along for a `POST`.
    pub fn admit<B>(&self, head: &Parts, body: B) -> Result<Admitted, EdgeError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<body::BoxError>,
    {
        let declared = declared_body(&head.headers)?;
        let authority = agreed_authority(head)?;
        self.check_header_limits(&head.headers)?;
        let body = match head.method {
            Method::OPTIONS => return Ok(Admitted::Preflight),
            // Segment and manifest requests carry no body: one on a GET/HEAD is refused,
            // so no smuggled bytes can ride along (threat model C4).
            Method::GET | Method::HEAD if declared == BodyLen::None => None,
            Method::GET | Method::HEAD => return Err(EdgeError::BodyNotAllowed),
            // POST (DRM licence requests, player beacons): the body streams to the
            // origin, capped at `edge.max_body_bytes`.
            Method::POST => Some(self.capped(declared, body)?),
            _ => return Err(EdgeError::Method),
        };
        Ok(Admitted::Request(Admit { body, authority }))
    }

    /// A `POST` body: refused at once when its declared length is over the cap, and
    /// failed mid-stream when it turns out longer (an HTTP/2 body need not declare one).
    fn capped<B>(&self, declared: BodyLen, body: B) -> Result<Body, EdgeError>
    where
        B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
        B::Error: Into<body::BoxError>,
    {
        if let BodyLen::Length(n) = declared {
            if n > self.max_body_bytes {
                return Err(EdgeError::BodyTooLarge);
            }
        }
        let cap = usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX);
        let limited = http_body_util::Limited::new(body, cap);
        Ok(limited.map_err(|e| e as body::BoxError).boxed_unsync())
    }

    /// The configured header limits. hyper enforces twice these (bounding memory) and
    /// answers with a bare 431 beyond them; within them, this check answers the gate's
    /// own uncacheable 431 with a reason code.
    fn check_header_limits(&self, headers: &HeaderMap) -> Result<(), EdgeError> {
        if headers.len() > self.max_headers {
            return Err(EdgeError::HeadersTooLarge);
        }
        // Name, ": ", value, CRLF — the size of the block as it was sent (for HTTP/1.1).
        let bytes: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        if bytes > self.max_header_bytes {
            return Err(EdgeError::HeadersTooLarge);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyLen {
    /// No body declared (HTTP/2 may still stream DATA frames: capped the same way).
    None,
    Length(u64),
}

/// What the request's framing headers promise. Conflicting framing is refused outright.
fn declared_body(headers: &HeaderMap) -> Result<BodyLen, EdgeError> {
    let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => None,
        (Some(v), None) => Some(
            std::str::from_utf8(v.as_bytes())
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(EdgeError::MalformedHeader)?,
        ),
        (Some(_), Some(_)) => return Err(EdgeError::MalformedHeader),
    };
    // A request body must say its length. `Transfer-Encoding` is refused outright: hyper
    // drops a `Content-Length` sent beside it, so CL+TE would otherwise look like plain
    // chunking here, and no player sends chunked requests (threat model C4).
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(EdgeError::MalformedHeader);
    }
    Ok(match length {
        None | Some(0) => BodyLen::None,
        Some(n) => BodyLen::Length(n),
    })
}

/// The one host the request names. `Host` (at most one line), and the target's
/// authority (HTTP/2 `:authority`, or an HTTP/1.1 absolute-form target) must agree,
/// ignoring ASCII case; neither may carry userinfo. A cache in front, the gate and the
/// origin could otherwise each pick another host for the same request.
fn agreed_authority(head: &Parts) -> Result<Option<HeaderValue>, EdgeError> {
    let mut hosts = head.headers.get_all(header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(EdgeError::MalformedHeader);
    }
    let target = head.uri.authority().map(|a| a.as_str());
    if host.is_some_and(|h| h.as_bytes().contains(&b'@')) || target.is_some_and(|a| a.contains('@'))
    {
        return Err(EdgeError::MalformedHeader);
    }
    match (host, target) {
        (Some(h), Some(a)) if !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()) => {
            Err(EdgeError::MalformedHeader)
        }
        (Some(h), _) => Ok(Some(h.clone())),
        (None, Some(a)) => HeaderValue::from_str(a)
            .map(Some)
            .map_err(|_| EdgeError::MalformedHeader),
        // HTTP/1.1 requires `Host`, HTTP/2 `:authority` or `Host`; HTTP/1.0 has neither.
        (None, None) if matches!(head.version, Version::HTTP_11 | Version::HTTP_2) => {
            Err(EdgeError::MalformedHeader)
        }
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn admission() -> Admission {
        Admission {
            max_header_bytes: 1024,
            max_headers: 10,
            max_body_bytes: 100,
        }
    }

    fn head(req: http::request::Builder) -> Parts {
        req.body(()).expect("request").into_parts().0
    }

    fn admit(parts: &Parts) -> Result<Option<HeaderValue>, EdgeError> {
        match admission().admit(parts, http_body_util::Empty::<bytes::Bytes>::new())? {
            Admitted::Request(a) => Ok(a.authority),
            Admitted::Preflight => Ok(None),
        }
    }

    #[test]
    fn c8_host_and_authority_must_agree() {
        let agreeing = head(
            Request::get("http://Media.Example:8080/vod/a/x.ts")
                .version(Version::HTTP_2)
                .header("host", "media.example:8080"),
        );
        assert_eq!(
            admit(&agreeing),
            Ok(Some(HeaderValue::from_static("media.example:8080")))
        );
        let only_authority = head(Request::get("https://media.example/x").version(Version::HTTP_2));
        assert_eq!(
            admit(&only_authority),
            Ok(Some(HeaderValue::from_static("media.example")))
        );
        for req in [
            // HTTP/2 :authority differs from Host.
            Request::get("https://media.example/x")
                .version(Version::HTTP_2)
                .header("host", "other.example"),
            // :authority with userinfo.
            Request::get("https://user@media.example/x").version(Version::HTTP_2),
            // Absolute-form HTTP/1.1 target whose host differs from Host.
            Request::get("http://evil.example/x").header("host", "media.example"),
            // HTTP/1.1 without Host.
            Request::get("/x"),
            // HTTP/2 with neither.
            Request::get("/x").version(Version::HTTP_2),
            // Two Host lines; userinfo in Host.
            Request::get("/x").header("host", "a").header("host", "a"),
            Request::get("/x").header("host", "u@a"),
        ] {
            let parts = head(req);
            assert_eq!(admit(&parts), Err(EdgeError::MalformedHeader), "{parts:?}");
        }
        let http10 = head(Request::get("/x").version(Version::HTTP_10));
        assert_eq!(admit(&http10), Ok(None));
    }

    #[test]
    fn c4_framing_is_checked_before_the_method() {
        let cases = [
            (
                "GET",
                &[("transfer-encoding", "chunked")][..],
                EdgeError::MalformedHeader,
            ),
            (
                "POST",
                &[("content-length", "1"), ("content-length", "1")],
                EdgeError::MalformedHeader,
            ),
            ("GET", &[("content-length", "3")], EdgeError::BodyNotAllowed),
            (
                "POST",
                &[("content-length", "101")],
                EdgeError::BodyTooLarge,
            ),
            ("PUT", &[], EdgeError::Method),
        ];
        for (method, headers, want) in cases {
            let mut req = Request::builder()
                .method(method)
                .uri("/x")
                .header("host", "a");
            for (n, v) in headers {
                req = req.header(*n, *v);
            }
            assert_eq!(admit(&head(req)), Err(want), "{method} {headers:?}");
        }
    }

    #[test]
    fn a10_header_limits_answer_431() {
        let mut many = Request::get("/x").header("host", "a");
        for i in 0..10 {
            many = many.header(format!("x-{i}"), "1");
        }
        assert_eq!(admit(&head(many)), Err(EdgeError::HeadersTooLarge));
        let big = head(
            Request::get("/x")
                .header("host", "a")
                .header("x-big", "a".repeat(1100)),
        );
        assert_eq!(admit(&big), Err(EdgeError::HeadersTooLarge));
    }

    #[test]
    fn options_is_a_preflight() {
        let parts = head(Request::options("/x").header("host", "a"));
        let admitted = admission()
            .admit(&parts, http_body_util::Empty::<bytes::Bytes>::new())
            .expect("admitted");
        assert!(matches!(admitted, Admitted::Preflight));
    }
}
