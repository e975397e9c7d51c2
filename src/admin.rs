//! The admin listener (`127.0.0.1:9090` by default): health and readiness for now; the
//! token APIs, JWKS and metrics join it in later issues. It never shares a listener with
//! the edge, and the edge never answers these paths (THREATS B7).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use crate::body::{self, Body};

/// Admin routes.
pub struct AdminService {
    ready: Arc<AtomicBool>,
}

impl AdminService {
    pub fn new(ready: Arc<AtomicBool>) -> Self {
        AdminService { ready }
    }

    pub async fn handle<B>(&self, req: Request<B>) -> Response<Body> {
        let get = req.method() == Method::GET || req.method() == Method::HEAD;
        match (get, req.uri().path()) {
            (true, "/healthz") => text(StatusCode::OK, "ok\n"),
            (true, "/readyz") if self.ready.load(Ordering::Acquire) => {
                text(StatusCode::OK, "ready\n")
            }
            (true, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    let mut r = Response::new(body::full(s));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
