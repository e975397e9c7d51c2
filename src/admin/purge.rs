//! `POST /v1/cache/purge`: remove objects from the shield cache (admin token required).
//!
//! The body names what goes, by the path the edge was asked for (after normalisation,
//! without the token): `{"path": "/live/a/seg1.ts"}` removes that object under every
//! query, `{"path": "/live/a/index.m3u8?_HLS_msn=5"}` that one query (parameters in any
//! order), `{"prefix": "/live/a/"}` everything under the prefix. `"origin": "<name>"`
//! narrows any of them to one origin. The answer is `{"purged": <objects removed>}`;
//! fills running for a matching key finish for their waiters but store nothing.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde::Deserialize;

use super::{json, BodyError};
use crate::body::Body;
use crate::cache::{canonical_query, Cache, Key};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Purge {
    path: Option<String>,
    prefix: Option<String>,
    origin: Option<String>,
}

/// Which keys a purge request names.
enum Matcher {
    Target(String),
    Path(String),
    Prefix(String),
}

impl Matcher {
    fn of(p: &Purge) -> Option<Matcher> {
        match (&p.path, &p.prefix) {
            (Some(path), None) if path.starts_with('/') => Some(match path.split_once('?') {
                Some((path, query)) => {
                    let q = canonical_query(query);
                    Matcher::Target(if q.is_empty() {
                        path.to_string()
                    } else {
                        format!("{path}?{q}")
                    })
                }
                None => Matcher::Path(path.clone()),
            }),
            (None, Some(prefix)) if prefix.starts_with('/') => {
                Some(Matcher::Prefix(prefix.clone()))
            }
            _ => None,
        }
    }

    fn matches(&self, key: &Key) -> bool {
        match self {
            Matcher::Target(t) => key.target() == t,
            Matcher::Path(p) => key.path() == p,
            Matcher::Prefix(p) => key.path().starts_with(p.as_str()),
        }
    }
}

pub(super) fn purge(cache: Option<&Cache>, body: Result<Bytes, BodyError>) -> Response<Body> {
    let bad = |msg: &str| {
        json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": msg }).to_string().into_bytes(),
        )
    };
    let Ok(body) = body else {
        return bad("the request body could not be read");
    };
    let Ok(req) = serde_json::from_slice::<Purge>(&body) else {
        return bad(
            "expected {\"path\": \"/...\"} or {\"prefix\": \"/...\"}, optionally with \"origin\"",
        );
    };
    let Some(matcher) = Matcher::of(&req) else {
        return bad("give exactly one of \"path\" or \"prefix\", starting with /");
    };
    let purged = cache.map_or(0, |c| {
        c.purge(|k| req.origin.as_deref().is_none_or(|o| k.origin() == o) && matcher.matches(k))
    });
    json(
        StatusCode::OK,
        serde_json::json!({ "purged": purged })
            .to_string()
            .into_bytes(),
    )
}
