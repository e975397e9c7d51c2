//! The one body type every response of tollgate carries, and its constructors.
//!
//! Responses stream: an origin's body, a file, or a small fixed buffer all become a
//! [`Body`], a boxed `http_body::Body` of `Bytes`. Boxing costs one allocation per
//! response and keeps the edge, the origins and the admin listener on one type.

use bytes::Bytes;
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
