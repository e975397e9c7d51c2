//! Manifest responses on the edge: which token child requests get, and how it reaches
//! them (docs/architecture.md, "Manifests"). The formats are [`crate::manifest`]'s; this is the HTTP side.
//!
//! - **Query mode** (`manifest.mode = "query"`, the default): a manifest requested with
//!   `?token=` is buffered (up to `manifest.max_bytes`) and rewritten so that every child
//!   URL carries the token. Players resolve relative URLs by RFC 3986, which drops the
//!   query, so without this the first variant or segment request would be refused.
//! - **Cookie mode** (`"cookie"`): the manifest is not rewritten; its response sets the
//!   token cookie, scoped to the resource's path (`/vod/<rid>/`), `HttpOnly`, and
//!   `Secure; SameSite=None` on TLS. A request that came with the token cookie gets the
//!   cookie refreshed in either mode.
//! - **Renewal**: when the token carries `sxp` (a live session's end) and expires within
//!   `manifest.renew_before`, children get a renewed copy instead — same claims and `jti`,
//!   `exp = min(now + manifest.renew_ttl, sxp)` — signed with the active key.
//! - **Sessions**: a request admitted on the live-session rule (`access.rs`: its token
//!   expired, its `sxp` has not) is answered *only* with a rewritten manifest (or a
//!   refreshed cookie) carrying a renewed token; any other answer is the 403 `expired`
//!   it would have been. This module enforces that half of the rule.
//!
//! A rewritten manifest gets a correct `Content-Length`, `Cache-Control: private,
//! no-cache`, and loses the origin's `ETag`/`Last-Modified` (they describe other bytes).
//! Manifest requests go to the origin without `Range`, conditionals or compression, so
//! the origin answers with the whole, plain body. A body that cannot be parsed passes
//! through untouched with a log line and a reason (`not_hls`, `not_mpd`, `not_utf8`,
//! `too_large`, `encoded`), never a 500. In cookie delivery the body is not touched at
//! all: it streams as the origin sends it.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;

use super::extract::Source;
use super::EdgeError;
use crate::body::{self, Body};
use crate::config::{self, ManifestMode};
use crate::manifest::{self, Kind, Rewrite};
use crate::origin::OriginError;
use crate::token::{self, Grant, KeySet, TokenError};

/// The `[manifest]` settings plus the carrier names they use.
pub struct ManifestPolicy {
    cfg: config::Manifest,
    query_name: String,
    cookie_name: String,
}

/// What the request step hands to the response step for a token-carrying request that
/// may be for a manifest ([`Ask::candidate`]).
pub struct Plan {
    pub token: String,
    pub source: Source,
    pub grant: Arc<Grant>,
    /// Accepted on the live-session rule (`access.rs`): only a renewed manifest may answer.
    pub session: bool,
    /// The resource's path (`/vod/<rid>/`), for the cookie's `Path`.
    pub scope_path: String,
    /// The client reached us over TLS (directly or via a trusted proxy): `Secure` cookie.
    pub secure: bool,
    /// The manifest kind the request path names by its extension.
    pub path_kind: Option<Kind>,
}

/// What a playlist's children get for a Common Access Token from the query.
pub struct CatChild<'a> {
    /// The format's query parameter.
    pub param: &'a str,
    /// The token the child URIs carry: a renewal, or the request's own.
    pub token: &'a str,
    pub renewed: bool,
    /// Admitted on the live-session allowance: only a renewed playlist may answer.
    pub session: bool,
}

/// The manifest decision for one request, made once ([`ManifestPolicy::ask`]) and read
/// by every later phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// The manifest kind the path names by its extension (`.m3u8`, `.mpd`).
    pub kind: Option<Kind>,
    /// Could the answer be a manifest? A manifest path, or one whose last segment has no
    /// extension (the response's `Content-Type` decides). `.ts`, `.m4s`, `.mp4`, `.key`,
    /// ... never are: segment requests skip the manifest step entirely.
    pub candidate: bool,
    /// Would a manifest answer carry the token to its children (rewrite or cookie)?
    pub delivers: bool,
}

/// What happened to a manifest, for the access log (a bounded set of labels).
pub type Outcome = &'static str;

impl ManifestPolicy {
    pub fn new(cfg: &config::Config) -> Self {
        ManifestPolicy {
            cfg: cfg.manifest.clone(),
            query_name: cfg.token.query.clone(),
            cookie_name: cfg.token.cookie.clone(),
        }
    }

    /// Decide, once, what the manifest step means for a request for `path` whose token
    /// (if any) came from `source`.
    pub fn ask(&self, path: &str, source: Option<Source>) -> Ask {
        let kind = Kind::from_path(path);
        let file = path.rsplit('/').next().unwrap_or("");
        Ask {
            kind,
            candidate: kind.is_some() || !file.contains('.'),
            delivers: source.is_some_and(|s| self.delivers(s)),
        }
    }

    /// Does a manifest answer to a request whose token came from `source` carry a token
    /// to its children (a rewrite or a cookie)? Only then can a session be renewed.
    fn delivers(&self, source: Source) -> bool {
        self.cfg.rewrite && (self.rewrites(source) || self.sets_cookie(source))
    }

    fn rewrites(&self, source: Source) -> bool {
        self.cfg.mode == ManifestMode::Query && source == Source::Query
    }

    fn sets_cookie(&self, source: Source) -> bool {
        self.cfg.mode == ManifestMode::Cookie || source == Source::Cookie
    }

    /// Will the answer be a likely manifest (by extension) whose body is rewritten?
    fn rewrites_whole(&self, plan: Option<&Plan>) -> bool {
        plan.is_some_and(|p| self.rewrites(p.source) && self.cfg.rewrite && p.path_kind.is_some())
    }

    /// A `HEAD` of a manifest that will be rewritten is fetched as a `GET`: the rewritten
    /// length, which the `HEAD` answer must state, exists only once the body is rewritten.
    /// `cat_rewrites`: a Common Access Token from the query, on a manifest path, whose
    /// playlist `finish_cat` rewrites. True when `method` was changed (the caller then
    /// drops the body it gets back).
    pub fn head_as_get(
        &self,
        plan: Option<&Plan>,
        cat_rewrites: bool,
        method: &mut Method,
    ) -> bool {
        let cat_rewrites = cat_rewrites && self.cfg.rewrite;
        let switch = *method == Method::HEAD && (self.rewrites_whole(plan) || cat_rewrites);
        if switch {
            *method = Method::GET;
        }
        switch
    }

    /// Prepare the origin request of a likely manifest (by extension) that will be
    /// rewritten: the whole body, uncompressed, unconditional — or there would be nothing
    /// to rewrite.
    pub fn prepare_request(&self, plan: Option<&Plan>, headers: &mut HeaderMap) {
        if plan.is_some_and(|p| self.delivers(p.source) && p.path_kind.is_some()) {
            whole_and_plain(headers);
        }
    }

    /// Prepare the origin request of a likely manifest a CAT rewrite will touch.
    pub fn prepare_cat_request(&self, headers: &mut HeaderMap) {
        if self.cfg.rewrite {
            whole_and_plain(headers);
        }
    }
}

/// An answer that will not carry a renewed token passes, unless the request was
/// admitted as a live session (access.rs): then only an error passes (it carries no
/// media); a 200, 206, 304 or redirect would serve an expired token without renewing
/// it, so it is the 403 `expired` it would have been.
fn unrenewed(resp: Response<Body>, session: bool) -> Result<Response<Body>, EdgeError> {
    let status = resp.status();
    let carries = status.is_success() || status.is_redirection();
    match session && carries {
        true => Err(EdgeError::Token(TokenError::Expired)),
        false => Ok(resp),
    }
}

/// The whole body, uncompressed, unconditional: a manifest to be rewritten.
fn whole_and_plain(headers: &mut HeaderMap) {
    for h in [
        header::RANGE,
        header::IF_RANGE,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
    ] {
        headers.remove(h);
    }
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
}

impl ManifestPolicy {
    /// Turn the origin's answer into the client's: rewrite, renew, set the cookie.
    pub async fn finish(
        &self,
        resp: Response<Body>,
        plan: &Plan,
        now: u64,
        keys: &KeySet,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, EdgeError> {
        let expired = EdgeError::Token(TokenError::Expired);
        if !self.delivers(plan.source) {
            return if plan.session { Err(expired) } else { Ok(resp) };
        }
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let kind = Kind::detect(content_type, plan.path_kind);
        let Some(kind) = kind.filter(|_| resp.status() == StatusCode::OK) else {
            return unrenewed(resp, plan.session);
        };
        // The token the children get: the request's own, or a renewed one.
        let (child, child_exp, renewed) = self.child_token(plan, now, keys);
        if plan.session && !renewed {
            return Err(expired);
        }
        let delivered = if renewed { "renewed" } else { "rewritten" };

        let (mut parts, body) = resp.into_parts();
        if !self.rewrites(plan.source) {
            // Cookie delivery: the body stays the origin's, streamed as it comes.
            self.decorate(&mut parts.headers, plan, &child, child_exp, now);
            *outcome = if renewed { "renewed" } else { "cookie" };
            return Ok(Response::from_parts(parts, body));
        }
        let param = self.query_name.as_str();
        match self
            .rewrite_body(parts, body, kind, param, &child, outcome)
            .await?
        {
            Rewritten::Done(mut resp) => {
                self.decorate(resp.headers_mut(), plan, &child, child_exp, now);
                *outcome = delivered;
                Ok(resp)
            }
            Rewritten::Untouched(_) if plan.session => Err(expired),
            Rewritten::Untouched(resp) => Ok(resp),
        }
    }

    /// A Common Access Token that came in the query: a playlist answer (200, a manifest
    /// by type or extension) is rewritten so that its child URIs carry the child's
    /// token in its query parameter (edge/catr.rs). Anything else passes as it is,
    /// except to a request admitted on the live-session allowance (access.rs): that
    /// gets a playlist carrying a renewed token or the 403 `expired` it would have been.
    pub async fn finish_cat(
        &self,
        resp: Response<Body>,
        path_kind: Option<Kind>,
        child: CatChild<'_>,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, EdgeError> {
        let expired = EdgeError::Token(TokenError::Expired);
        let content_type = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let kind = Kind::detect(content_type, path_kind);
        let ok = resp.status() == StatusCode::OK;
        let Some(kind) = kind.filter(|_| self.cfg.rewrite && ok) else {
            return unrenewed(resp, child.session);
        };
        if child.session && !child.renewed {
            return Err(expired);
        }
        let (parts, body) = resp.into_parts();
        match self
            .rewrite_body(parts, body, kind, child.param, child.token, outcome)
            .await?
        {
            Rewritten::Done(mut resp) => {
                fresh_headers(resp.headers_mut());
                *outcome = if child.renewed {
                    "renewed"
                } else {
                    "rewritten"
                };
                Ok(resp)
            }
            Rewritten::Untouched(_) if child.session => Err(expired),
            Rewritten::Untouched(resp) => Ok(resp),
        }
    }

    /// Buffer and rewrite a manifest body so that child URLs carry `token` in `param`;
    /// an encoded, oversized or unparsable body passes untouched (with its reason).
    async fn rewrite_body(
        &self,
        mut parts: http::response::Parts,
        body: Body,
        kind: Kind,
        param: &str,
        token: &str,
        outcome: &mut Outcome,
    ) -> Result<Rewritten, EdgeError> {
        let encoded = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let untouched = |reason: &'static str, outcome: &mut Outcome| {
            *outcome = reason;
            log_untouched(kind, reason);
        };
        if encoded {
            untouched("encoded", outcome);
            return Ok(Rewritten::Untouched(Response::from_parts(parts, body)));
        }
        if declared.is_some_and(|n| n > self.cfg.max_bytes as u64) {
            untouched("too_large", outcome);
            return Ok(Rewritten::Untouched(Response::from_parts(parts, body)));
        }
        let bytes = match buffer(body, self.cfg.max_bytes).await? {
            Buffered::Whole(b) => b,
            Buffered::Partial(head, rest) => {
                untouched("too_large", outcome);
                let resp = Response::from_parts(parts, prefixed(head, rest));
                return Ok(Rewritten::Untouched(resp));
            }
        };
        let encoded = Rewrite::encode_token(token);
        let rw = Rewrite {
            param,
            token: &encoded,
            allow_hosts: &self.cfg.allow_hosts,
        };
        match manifest::rewrite(kind, &bytes, &rw) {
            Ok(out) => {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(out.len()));
                Ok(Rewritten::Done(Response::from_parts(
                    parts,
                    body::full(out),
                )))
            }
            Err(reason) => {
                untouched(reason.as_str(), outcome);
                let resp = Response::from_parts(parts, body::full(bytes));
                Ok(Rewritten::Untouched(resp))
            }
        }
    }

    /// The request's token, or — for a session token near or past its `exp` — a renewed
    /// one. Returns (token, its exp, renewed?).
    fn child_token(&self, plan: &Plan, now: u64, keys: &KeySet) -> (String, Option<u64>, bool) {
        let own = (plan.token.to_string(), plan.grant.exp, false);
        let due = plan
            .grant
            .exp
            .is_some_and(|exp| exp < now.saturating_add(self.cfg.renew_before.as_secs()));
        if !due || plan.grant.sxp.is_none() {
            return own;
        }
        match token::issue::renew(keys, &plan.token, now, self.cfg.renew_ttl) {
            Ok(Some((t, exp))) => (t, Some(exp), true),
            Ok(None) => own,
            Err(e) => {
                tracing::warn!(target: "tollgate::manifest", error = %e, "token renewal failed");
                own
            }
        }
    }

    /// Headers of every rewritten (or cookie-carrying) manifest answer.
    fn decorate(
        &self,
        headers: &mut HeaderMap,
        plan: &Plan,
        child: &str,
        child_exp: Option<u64>,
        now: u64,
    ) {
        fresh_headers(headers);
        if self.sets_cookie(plan.source) {
            let max_age = child_exp
                .map(|exp| format!("; Max-Age={}", exp.saturating_sub(now)))
                .unwrap_or_default();
            let attrs = if plan.secure {
                // Partitioned (CHIPS): a browser that blocks third-party cookies (Chromium's
                // default, Safari) keeps this one for a player embedded in another site's
                // page, in that site's partition only; it needs Secure.
                "; HttpOnly; Secure; SameSite=None; Partitioned"
            } else {
                "; HttpOnly; SameSite=Lax"
            };
            let cookie = format!(
                "{}={}; Path={}{max_age}{attrs}",
                self.cookie_name,
                Rewrite::encode_token(child),
                plan.scope_path
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, v);
            }
        }
    }
}

/// A rewritten body is the gate's, for this client: the origin's validators describe
/// other bytes.
fn fresh_headers(headers: &mut HeaderMap) {
    for h in [
        header::ETAG,
        header::LAST_MODIFIED,
        header::ACCEPT_RANGES,
        header::EXPIRES,
    ] {
        headers.remove(h);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
}

/// What [`ManifestPolicy::rewrite_body`] made of a manifest.
enum Rewritten {
    Done(Response<Body>),
    /// Passed through as the origin sent it (the reason is in the outcome).
    Untouched(Response<Body>),
}

fn log_untouched(kind: Kind, reason: &'static str) {
    tracing::warn!(
        target: "tollgate::manifest",
        kind = kind.as_str(),
        reason,
        "manifest passed through untouched"
    );
}

enum Buffered {
    Whole(Bytes),
    /// Over the cap: what was read, and the rest of the body still to stream.
    Partial(Bytes, Body),
}

/// Read the body up to `cap` bytes. An origin failure before the end is a 502: nothing
/// has been sent to the client yet.
async fn buffer(mut body: Body, cap: usize) -> Result<Buffered, EdgeError> {
    let mut buf = BytesMut::new();
    // Bounded: each frame adds data and the loop ends past `cap` or at the end.
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| EdgeError::Origin(OriginError::Failed))?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > cap {
                return Ok(Buffered::Partial(buf.freeze(), body));
            }
        }
    }
    Ok(Buffered::Whole(buf.freeze()))
}

/// `head` followed by the rest of `rest`.
fn prefixed(head: Bytes, rest: Body) -> Body {
    Chain {
        first: Some(body::full(head)),
        second: rest,
    }
    .boxed_unsync()
}

/// Two bodies, one after the other.
struct Chain {
    first: Option<Body>,
    second: Body,
}

impl http_body::Body for Chain {
    type Data = Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if let Some(first) = self.first.as_mut() {
            match std::pin::Pin::new(first).poll_frame(cx) {
                Poll::Ready(None) => self.first = None,
                other => return other,
            }
        }
        std::pin::Pin::new(&mut self.second).poll_frame(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: &str) -> ManifestPolicy {
        let cfg = crate::config::example(|t| {
            t.replace("mode = \"query\"", &format!("mode = \"{mode}\""))
        });
        ManifestPolicy::new(&cfg)
    }

    #[test]
    fn the_manifest_decision_is_made_once_from_the_path_and_the_carrier() {
        let p = policy("query");
        let hls = p.ask("/vod/demo/index.m3u8", Some(Source::Query));
        assert_eq!(
            (hls.kind, hls.candidate, hls.delivers),
            (Some(Kind::Hls), true, true)
        );
        let mpd = p.ask("/vod/demo/manifest.mpd", Some(Source::Path));
        assert_eq!(
            (mpd.kind, mpd.candidate, mpd.delivers),
            (Some(Kind::Dash), true, false)
        );
        // No extension: the response's Content-Type decides, so it may be a manifest.
        let bare = p.ask("/live/ch1/playlist", Some(Source::Query));
        assert_eq!((bare.kind, bare.candidate), (None, true));
        // Segments never pay for the manifest step.
        let seg = p.ask("/vod/demo/seg_001.ts", Some(Source::Query));
        assert!(!seg.candidate);
        // A cookie-carried token is delivered by cookie in either mode; no token, never.
        assert!(p.ask("/x.m3u8", Some(Source::Cookie)).delivers);
        assert!(!p.ask("/x.m3u8", None).delivers);
        assert!(
            policy("cookie")
                .ask("/x.m3u8", Some(Source::Header))
                .delivers
        );
    }
}
