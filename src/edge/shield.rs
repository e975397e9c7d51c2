//! Shield: the cache phase, after a request is authorised and before it is forwarded
//! (docs/architecture.md, "The shield cache").
//!
//! On a cached route (an `http(s)://` origin, `cache` on), a `GET` without a body is
//! answered from the cache: a hit from the stored object, a miss by starting or joining
//! the key's one fill. The key is the origin and what the origin would be asked for —
//! the authorised, normalised path and the query without the token — so a viewer's
//! token, cookies and `Authorization` never reach a key or the fill's request. A `HEAD`
//! or a `Range` request is answered from a stored object when there is one, and otherwise
//! passes to the origin on its own (a range of an object not held would mean fetching the
//! whole of it first). Everything else passes, as does a request whose fill found the
//! answer uncacheable: it is forwarded as if there were no cache.
//!
//! This module decides only which requests consult the cache and turns the cache's
//! answer into the edge's; what is stored and for how long is `crate::cache`'s.

use std::sync::Arc;
use std::time::Duration;

use http::header;
use http::request::Parts;
use http::{Method, Response};
use http_body_util::BodyExt;

use super::extract::Stripped;
use super::forward::Forwarder;
use super::log::AccessLog;
use super::route::Match;
use super::EdgeError;
use crate::body::Body;
use crate::cache::fill::End;
use crate::cache::serve::Asked;
use crate::cache::{Cache, Key, Lookup};
use crate::config;
use crate::origin::OriginError;

/// The cache and, per route and origin, what the phase needs to use it.
pub struct Shield {
    cache: Arc<Cache>,
    /// By route index: does the route go through the cache?
    cached: Vec<bool>,
    /// By origin index: its name (the key's origin) and how long a fill waits for a
    /// body chunk (its read timeout) before it gives up.
    origins: Vec<(String, Duration)>,
}

/// An authorised request, as the cache phase reads it.
pub struct Request<'r> {
    pub route: &'r Match<'r, 'r>,
    /// Method and headers (ranges, conditionals) as the viewer sent them.
    pub head: &'r Parts,
    /// The authorised path and the query without the token.
    pub stripped: &'r Stripped<'r>,
    /// The request has a body (never cached).
    pub has_body: bool,
    /// The answer will be rewritten: ranges and conditionals do not apply to it.
    pub whole: bool,
}

/// The phase's answer.
pub enum Shielded {
    /// Answered from the cache (a hit, or a fill's shared answer).
    Answer(Response<Body>),
    /// Forward the request as if there were no cache.
    Pass,
}

impl Shield {
    pub fn new(cfg: &config::Config, cache: Arc<Cache>) -> Self {
        Shield {
            cache,
            cached: cfg.routes.iter().map(|r| r.cache).collect(),
            origins: cfg
                .origins
                .iter()
                .map(|o| (o.name.clone(), o.read_timeout))
                .collect(),
        }
    }

    /// The cache phase for an authorised request.
    pub async fn serve(
        &self,
        req: Request<'_>,
        forwarder: &Forwarder,
        log: &mut AccessLog,
    ) -> Result<Shielded, EdgeError> {
        let Request {
            route,
            head,
            stripped,
            has_body,
            whole,
        } = req;
        if !self.cached.get(route.index).copied().unwrap_or(false) {
            return Ok(Shielded::Pass);
        }
        let cacheable = (head.method == Method::GET || head.method == Method::HEAD) && !has_body;
        let Some((name, idle)) = self.origins.get(route.origin).filter(|_| cacheable) else {
            self.cache.passed();
            log.cache = "pass";
            return Ok(Shielded::Pass);
        };
        let key = Key::new(name, &stripped.path, stripped.query.as_deref());
        let asked = Asked {
            method: &head.method,
            headers: &head.headers,
            whole,
        };
        let ranged = !whole && head.headers.contains_key(header::RANGE);
        if head.method == Method::HEAD || ranged {
            return Ok(self.stored_only(&key, &asked, log));
        }
        let fetch = |k: &Key| forwarder.fill(route.origin, k.target());
        match self.cache.lookup(key, fetch, *idle) {
            Lookup::Hit(hit) => {
                log.cache = "hit";
                Ok(Shielded::Answer(hit.respond(&asked)))
            }
            Lookup::Pass => {
                log.cache = "pass";
                Ok(Shielded::Pass)
            }
            Lookup::Wait(waiter) => {
                log.cache = if waiter.leader { "miss" } else { "coalesced" };
                let head = self.cache.head(&waiter).await;
                log.upstream = Some(waiter.waited());
                match head {
                    Ok(head) => {
                        let mut resp = Response::new(waiter.into_body().boxed_unsync());
                        *resp.status_mut() = head.status;
                        *resp.headers_mut() = head.headers;
                        Ok(Shielded::Answer(resp))
                    }
                    Err(End::Released) => {
                        log.cache = "pass";
                        Ok(Shielded::Pass)
                    }
                    Err(End::NoHead(e)) => Err(EdgeError::Origin(e)),
                    Err(End::Aborted | End::Complete) => {
                        Err(EdgeError::Origin(OriginError::Failed))
                    }
                }
            }
        }
    }

    /// A `HEAD` or range request: the stored object if there is one, else the origin.
    fn stored_only(&self, key: &Key, asked: &Asked<'_>, log: &mut AccessLog) -> Shielded {
        match self.cache.hit(key) {
            Some(hit) => {
                log.cache = "hit";
                Shielded::Answer(hit.respond(asked))
            }
            None => {
                log.cache = "pass";
                Shielded::Pass
            }
        }
    }
}
