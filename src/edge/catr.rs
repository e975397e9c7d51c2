//! The Common Access Token's HTTP side: the `catif` answer to a refused token, and
//! `catr` renewal (docs/architecture.md, "Common Access Token at the edge").
//!
//! **When.** A token that verified *and* authorised the request, carrying `catr`, is
//! renewed once `exp` − now ≤ `deadline`; without a `deadline`, within the last 60 s
//! before `exp`, as `@eyevinn/cat`'s validator decides (`shouldRenew`); and only while
//! the renewal (now + `expadd`) would outlast it, so a renewed token is not renewed
//! again at once (a redirect renewal would loop). A refused token
//! is never renewed (threat model I4). The renewal is `token::cat::renew`: the presented
//! claims with `exp` = now + `expadd` and `iat` = now, minted with the format's
//! `renew_kid` (or the token's own `kid`); a key without its private half cannot, and
//! the answer then goes without a renewal (one log line).
//!
//! **How** (`catr` type): header (2): the renewed token in the header `header-name`
//! (default the format's header carrier name) with `header-params` after `; `, and
//! `Access-Control-Expose-Headers` naming it, so a browser player may read it; cookie
//! (1): `Set-Cookie` `cookie-name` (default the format's cookie name) with
//! `cookie-params` (none given: `Path=/`, `HttpOnly`, and `Secure; SameSite=None` over
//! TLS); redirect (3): the request is answered with the status `code` (default 302) to
//! the same URL with the renewed token in the query parameter, without asking the
//! origin; automatic (0): the carrier the token came in (header → header, cookie →
//! cookie, query → tollgate's manifest rewrite: a playlist's child URIs carry the
//! renewed token in the query parameter; a segment is served as it is).
//!
//! This module owns these headers and answers; it never verifies (access.rs does) and
//! never decides what a manifest looks like (the rewriter in `manifest` does).

use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};

use super::extract::Source;
use crate::body::{self, Body};
use crate::token::cat::renewal::IfHeader;
use crate::token::cat::{self, IfAction, RenewalKind};
use crate::token::foreign::{CachedCat, CatFormat};

/// Seconds before `exp` at which a token without a `deadline` is renewed
/// (`@eyevinn/cat`'s `shouldRenew`).
pub const DEFAULT_DEADLINE: u64 = 60;

/// The answer a token's `catif` gives for the claim that failed: its status and its
/// text headers (a header asking for a minted token is left out unless the format can
/// mint with the named key), uncacheable, with the refusal's reason.
pub fn if_answer(
    action: &IfAction,
    reason: &'static str,
    format: Option<&CatFormat>,
) -> Response<Body> {
    let status = StatusCode::from_u16(action.status).unwrap_or(StatusCode::FORBIDDEN);
    let mut resp = body::refusal(status, reason);
    let h = resp.headers_mut();
    for (name, value) in &action.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            continue;
        };
        let text = match value {
            IfHeader::Text(t) => Some(t.clone()),
            IfHeader::Token { url_prefix, claims } => format
                .and_then(|f| if_token(f, action, claims))
                .map(|token| format!("{url_prefix}{token}")),
        };
        if let Some(v) = text.and_then(|t: String| HeaderValue::from_str(&t).ok()) {
            h.append(name, v);
        }
    }
    resp
}

/// A `catif` header's token: the claims the refused token names, minted with the key
/// `kid` names (the format's renewal key when it names none).
fn if_token(
    format: &CatFormat,
    action: &IfAction,
    claims: &ciborium::value::Value,
) -> Option<String> {
    let kid = action.kid.as_deref().unwrap_or(&[]);
    let (kid, signer) = format.renewal_signer(kid)?;
    let mut payload = Vec::new();
    ciborium::ser::into_writer(claims, &mut payload).ok()?;
    signer.mint(payload, kid).ok().map(|t| cat::encode_text(&t))
}

/// How a renewed token travels, decided from `catr` and the token's carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Header,
    Cookie,
    Redirect,
    /// In the query of a rewritten playlist's child URIs.
    Manifest,
}

/// A renewed token and how it goes to the client.
#[derive(Debug, Clone)]
pub struct Renewed {
    pub token: String,
    pub delivery: Delivery,
    /// The header or cookie name, with its parameters.
    pub name: String,
    pub params: Vec<String>,
    /// The redirect status.
    pub code: u16,
}

/// Is a token with this `exp` due for renewal at `now` under `catr`? Only while it is
/// still valid, inside its deadline, and when the renewal would outlast it (a renewal
/// that does not — a deadline longer than `expadd` — would be renewed again on every
/// request, and a redirect renewal would loop).
pub fn due(exp: Option<u64>, deadline: Option<u64>, expadd: u64, now: u64) -> bool {
    let Some(exp) = exp else { return false };
    now < exp
        && exp - now <= deadline.unwrap_or(DEFAULT_DEADLINE)
        && now.saturating_add(expadd) > exp
}

/// The renewal for a token that authorised this request, if `catr` asks for one now;
/// always, for a request admitted on the live-session allowance (`session`: its token
/// has expired, and the answer must carry a renewal).
pub fn renew(
    format: &CatFormat,
    cached: &CachedCat,
    source: Source,
    now: u64,
    session: bool,
) -> Option<Renewed> {
    let cat = &cached.cat;
    let catr = cat.claims.catr.as_ref()?;
    if !session && !due(cat.claims.exp, catr.deadline, catr.expadd, now) {
        return None;
    }
    let delivery = match (catr.kind, source) {
        (RenewalKind::Header, _) | (RenewalKind::Automatic, Source::Header) => Delivery::Header,
        (RenewalKind::Cookie, _) | (RenewalKind::Automatic, Source::Cookie) => Delivery::Cookie,
        (RenewalKind::Redirect, _) => Delivery::Redirect,
        (RenewalKind::Automatic, _) => Delivery::Manifest,
    };
    let Some((kid, signer)) = format.renewal_signer(&cat.kid) else {
        tracing::warn!(
            target: "tollgate::cat",
            "catr renewal skipped: the token's key has no private half and no renew_kid is set"
        );
        return None;
    };
    let (token, _exp) = match cat::renew(cat, now, catr.expadd, kid, signer) {
        Ok(renewed) => renewed,
        Err(e) => {
            tracing::warn!(target: "tollgate::cat", reason = e.code(), "catr renewal failed");
            return None;
        }
    };
    let (name, params) = match delivery {
        Delivery::Header => (
            catr.header_name.as_deref().unwrap_or(format.header_name()),
            catr.header_params.clone(),
        ),
        Delivery::Cookie => (
            catr.cookie_name.as_deref().unwrap_or(format.cookie_name()),
            catr.cookie_params.clone(),
        ),
        Delivery::Redirect | Delivery::Manifest => (format.query_name(), Vec::new()),
    };
    Some(Renewed {
        token: cat::encode_text(&token),
        delivery,
        name: name_or_default(name, delivery).to_string(),
        params,
        code: catr.code.unwrap_or(302),
    })
}

/// A carrier turned off in the configuration ("") still has CTA-5007's name for a
/// renewal the token asks for.
fn name_or_default(name: &str, delivery: Delivery) -> &str {
    match (name.is_empty(), delivery) {
        (false, _) => name,
        (true, Delivery::Header) => crate::token::foreign::cat::DEFAULT_HEADER,
        (true, Delivery::Cookie) => crate::token::foreign::cat::DEFAULT_COOKIE,
        (true, _) => crate::token::foreign::cat::DEFAULT_QUERY,
    }
}

/// Adds a header or cookie renewal to an answer.
pub fn decorate(headers: &mut http::HeaderMap, renewed: &Renewed, secure: bool) {
    match renewed.delivery {
        Delivery::Header => {
            let mut value = renewed.token.clone();
            for p in &renewed.params {
                value.push_str("; ");
                value.push_str(p);
            }
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(renewed.name.as_bytes()),
                HeaderValue::from_str(&value),
            ) else {
                return;
            };
            headers.insert(name, value);
            if let Ok(expose) = HeaderValue::from_str(&renewed.name) {
                headers.append(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose);
            }
        }
        Delivery::Cookie => {
            let params = match renewed.params.is_empty() {
                true if secure => "Path=/; HttpOnly; Secure; SameSite=None".to_string(),
                true => "Path=/; HttpOnly".to_string(),
                false => renewed.params.join("; "),
            };
            let cookie = format!("{}={}; {params}", renewed.name, renewed.token);
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                headers.append(header::SET_COOKIE, v);
            }
        }
        Delivery::Redirect | Delivery::Manifest => {}
    }
}

/// The redirect answer: the same path and query, the token's parameter replaced by the
/// renewed token (the origin is not asked).
pub fn redirect(renewed: &Renewed, path: &str, query: Option<&str>) -> Response<Body> {
    let mut location = String::with_capacity(path.len() + renewed.token.len() + 64);
    location.push_str(path);
    location.push('?');
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        location.push_str(q);
        location.push('&');
    }
    location.push_str(&renewed.name);
    location.push('=');
    location.push_str(&renewed.token);
    let status = StatusCode::from_u16(renewed.code).unwrap_or(StatusCode::FOUND);
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(header::LOCATION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_within_the_deadline_or_the_last_minute() {
        assert!(!due(Some(1_000), Some(100), 300, 899));
        assert!(due(Some(1_000), Some(100), 300, 900));
        assert!(due(Some(1_000), None, 300, 940));
        assert!(!due(Some(1_000), None, 300, 939));
        // An expired token is refused before renewal is asked about; never due.
        assert!(!due(Some(1_000), Some(100), 300, 1_000));
        assert!(!due(None, Some(100), 300, 900));
        // A renewal that would not outlast the token is not made (no redirect loop).
        assert!(!due(Some(1_000), Some(3_600), 100, 900));
        assert!(due(Some(1_000), Some(3_600), 101, 900));
    }
}
