//! Answering a request from a stored object (whose headers already hold its
//! `Content-Length` and, for a 200, `Accept-Ranges`; see [`Object::new`]): `Age`, `HEAD`, one byte range (206 or
//! 416), and the conditionals (`If-None-Match`, else `If-Modified-Since`) as 304, all
//! from the object's own validators (RFC 9110 §13–14).
//!
//! A request that will be rewritten (a manifest carrying a token to its children) asks
//! for the whole object (`whole`): ranges and conditionals describe the origin's bytes,
//! not the rewritten ones the viewer gets.

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::freshness::http_date;
use super::Object;
use crate::body::{self, Body};

/// What the request asks of a stored object.
pub struct Asked<'a> {
    pub method: &'a Method,
    pub headers: &'a HeaderMap,
    /// Ignore ranges and conditionals (the answer will be rewritten).
    pub whole: bool,
}

/// The answer to `asked` from `obj`, which has been held for `held`.
pub fn respond(obj: &Object, asked: &Asked<'_>, held: Duration) -> Response<Body> {
    let mut headers = obj.headers.clone();
    let age = (obj.age + held).as_secs();
    headers.insert(header::AGE, HeaderValue::from(age));
    let ok = obj.status == StatusCode::OK;
    if ok && !asked.whole && not_modified(&obj.headers, asked.headers) {
        return answer(
            StatusCode::NOT_MODIFIED,
            only_validators(headers),
            None,
            asked,
        );
    }
    let range = match asked.headers.get(header::RANGE) {
        Some(r) if ok && !asked.whole && if_range_holds(&obj.headers, asked.headers) => {
            byte_range(r, obj.body.len())
        }
        _ => Range::Whole,
    };
    match range {
        // The object's headers already carry its length and `Accept-Ranges`.
        Range::Whole => answer(obj.status, headers, Some(obj.body.clone()), asked),
        Range::Part(start, end) => {
            let content_range = format!("bytes {start}-{}/{}", end - 1, obj.body.len());
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
            headers.insert(header::CONTENT_RANGE, header_value(&content_range));
            let part = obj.body.slice(start..end);
            answer(StatusCode::PARTIAL_CONTENT, headers, Some(part), asked)
        }
        Range::Unsatisfiable => {
            let mut h = HeaderMap::new();
            let content_range = format!("bytes */{}", obj.body.len());
            h.insert(header::CONTENT_RANGE, header_value(&content_range));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            answer(StatusCode::RANGE_NOT_SATISFIABLE, h, None, asked)
        }
    }
}

fn header_value(s: &str) -> HeaderValue {
    // Digits, spaces, '-', '/' and '*' only: always a valid header value.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn answer(
    status: StatusCode,
    headers: HeaderMap,
    body: Option<Bytes>,
    asked: &Asked<'_>,
) -> Response<Body> {
    let body = match body {
        Some(b) if asked.method != Method::HEAD => body::full(b),
        _ => body::empty(),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// A 304 carries the validators and caching headers, not the body's description.
fn only_validators(mut h: HeaderMap) -> HeaderMap {
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_RANGE,
        header::CONTENT_ENCODING,
    ] {
        h.remove(name);
    }
    h
}

/// Does a conditional in `req` say the viewer's copy is current?
fn not_modified(obj: &HeaderMap, req: &HeaderMap) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        let Some(etag) = obj.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        return inm
            .to_str()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || weak_eq(t, etag));
    }
    match (
        http_date(req.get(header::IF_MODIFIED_SINCE)),
        http_date(obj.get(header::LAST_MODIFIED)),
    ) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// Weak comparison: equal opaque tags, `W/` ignored (RFC 9110 §8.8.3.2).
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

/// `If-Range`: the range applies only if the viewer's validator is the object's
/// (a strong ETag, or the exact `Last-Modified` date).
fn if_range_holds(obj: &HeaderMap, req: &HeaderMap) -> bool {
    let Some(v) = req.get(header::IF_RANGE) else {
        return true;
    };
    let strong_etag = obj
        .get(header::ETAG)
        .filter(|e| !e.as_bytes().starts_with(b"W/"));
    strong_etag == Some(v) || obj.get(header::LAST_MODIFIED) == Some(v)
}

#[derive(Debug, PartialEq, Eq)]
enum Range {
    Whole,
    /// `start..end` (end exclusive).
    Part(usize, usize),
    Unsatisfiable,
}

/// One `bytes=` range of a body of `len` bytes. Anything else (several ranges, another
/// unit, nonsense) is ignored, which RFC 9110 §14.2 allows: the whole body is sent.
fn byte_range(v: &HeaderValue, len: usize) -> Range {
    let Some(spec) = v
        .to_str()
        .ok()
        .and_then(|s| s.trim().strip_prefix("bytes="))
    else {
        return Range::Whole;
    };
    if spec.contains(',') {
        return Range::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Whole;
    };
    let num = |s: &str| s.trim().parse::<usize>().ok();
    let (start, end) = match (first.trim().is_empty(), num(first), num(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) if n > 0 => (len.saturating_sub(n), len),
        (true, _, _) => return Range::Unsatisfiable,
        (false, Some(a), None) if last.trim().is_empty() => (a, len),
        (false, Some(a), Some(b)) if b >= a => (a, len.min(b.saturating_add(1))),
        _ => return Range::Whole,
    };
    if start >= len {
        return Range::Unsatisfiable;
    }
    Range::Part(start, end)
}

#[cfg(test)]
mod tests {
    use super::super::tests::headers;
    use super::*;
    use http_body_util::BodyExt;

    fn object(pairs: &[(&str, &str)]) -> Object {
        let body = Bytes::from_static(b"0123456789");
        Object::new(StatusCode::OK, headers(pairs), body, Duration::from_secs(3))
    }

    async fn ask(
        obj: &Object,
        method: Method,
        pairs: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Bytes) {
        let headers = headers(pairs);
        let asked = Asked {
            method: &method,
            headers: &headers,
            whole: false,
        };
        let r = respond(obj, &asked, Duration::from_secs(4));
        let (parts, body) = r.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.expect("body").to_bytes(),
        )
    }

    #[tokio::test]
    async fn a_hit_carries_its_age_and_the_whole_body() {
        let (s, h, b) = ask(&object(&[]), Method::GET, &[]).await;
        assert_eq!((s, &b[..]), (StatusCode::OK, &b"0123456789"[..]));
        assert_eq!(h[header::AGE], "7");
        assert_eq!(h[header::CONTENT_LENGTH], "10");
        let (s, h, b) = ask(&object(&[]), Method::HEAD, &[]).await;
        assert_eq!((s, b.len()), (StatusCode::OK, 0));
        assert_eq!(h[header::CONTENT_LENGTH], "10");
    }

    #[tokio::test]
    async fn ranges_get_206_or_416() {
        let obj = object(&[]);
        let (s, h, b) = ask(&obj, Method::GET, &[("range", "bytes=2-4")]).await;
        assert_eq!((s, &b[..]), (StatusCode::PARTIAL_CONTENT, &b"234"[..]));
        assert_eq!(h[header::CONTENT_RANGE], "bytes 2-4/10");
        let (_, _, b) = ask(&obj, Method::GET, &[("range", "bytes=-3")]).await;
        assert_eq!(&b[..], b"789");
        let (_, _, b) = ask(&obj, Method::GET, &[("range", "bytes=8-")]).await;
        assert_eq!(&b[..], b"89");
        let (_, _, b) = ask(&obj, Method::GET, &[("range", "bytes=8-100")]).await;
        assert_eq!(&b[..], b"89");
        let (s, h, _) = ask(&obj, Method::GET, &[("range", "bytes=10-")]).await;
        assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(h[header::CONTENT_RANGE], "bytes */10");
        let (s, _, b) = ask(&obj, Method::GET, &[("range", "bytes=0-1,4-5")]).await;
        assert_eq!(
            (s, b.len()),
            (StatusCode::OK, 10),
            "several ranges: the whole body"
        );
    }

    #[tokio::test]
    async fn conditionals_get_304_from_the_stored_validators() {
        let obj = object(&[
            ("etag", "\"v1\""),
            ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        let (s, h, b) = ask(&obj, Method::GET, &[("if-none-match", "W/\"v1\"")]).await;
        assert_eq!((s, b.len()), (StatusCode::NOT_MODIFIED, 0));
        assert_eq!(h[header::ETAG], "\"v1\"");
        assert!(!h.contains_key(header::CONTENT_LENGTH));
        let (s, _, _) = ask(&obj, Method::GET, &[("if-none-match", "\"v2\"")]).await;
        assert_eq!(s, StatusCode::OK);
        let later = [("if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT")];
        assert_eq!(
            ask(&obj, Method::GET, &later).await.0,
            StatusCode::NOT_MODIFIED
        );
        let earlier = [("if-modified-since", "Sat, 05 Nov 1994 08:49:37 GMT")];
        assert_eq!(ask(&obj, Method::GET, &earlier).await.0, StatusCode::OK);
        let stale_range = [("range", "bytes=0-0"), ("if-range", "\"v0\"")];
        assert_eq!(ask(&obj, Method::GET, &stale_range).await.0, StatusCode::OK);
        let same_range = [("range", "bytes=0-0"), ("if-range", "\"v1\"")];
        assert_eq!(
            ask(&obj, Method::GET, &same_range).await.0,
            StatusCode::PARTIAL_CONTENT
        );
    }

    #[tokio::test]
    async fn a_whole_request_ignores_ranges_and_conditionals() {
        let obj = object(&[("etag", "\"v1\"")]);
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_static("bytes=0-1"));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"v1\""));
        let asked = Asked {
            method: &Method::GET,
            headers: &headers,
            whole: true,
        };
        let r = respond(&obj, &asked, Duration::ZERO);
        assert_eq!(r.status(), StatusCode::OK);
    }
}
