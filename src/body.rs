//! The one body type every response of tollgate carries, its constructors, and the
//! shape of a refusal (small, uncacheable, with a stable reason code).
//!
//! Responses stream: an origin's body, a file, or a small fixed buffer all become a
//! [`Body`], a boxed `http_body::Body` of `Bytes`. Boxing costs one allocation per
//! response and keeps the edge, the origins and the admin listener on one type.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};

/// The error type a body may fail with mid-stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Every response body tollgate sends.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body with no bytes.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body holding `bytes` in full.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A refusal: `status` with a one-line text body, `Cache-Control: private, no-store`
/// and `x-tollgate-reason: reason`. Nothing internal goes in it. The edge's error
/// mapping and the server's panic answer both start from this.
pub fn refusal(status: StatusCode, reason: &'static str) -> Response<Body> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    );
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert("x-tollgate-reason", HeaderValue::from_static(reason));
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        // The handler failed unexpectedly: do not trust the rest of this connection.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
