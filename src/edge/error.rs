//! The one mapping from an edge refusal to its response (docs/architecture.md, "The
//! request path").
//!
//! Every error response is small, uncacheable (`Cache-Control: private, no-store`) and
//! carries a stable `x-tollgate-reason`, the same code the access log records. Nothing
//! internal (key ids, paths, upstream addresses) is ever in it.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::extract::ExtractError;
use crate::body::{self, Body};
use crate::origin::OriginError;
use crate::token::cat::CatReason;
use crate::token::TokenError;

/// Why the edge refused or failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EdgeError {
    #[error("no token")]
    Missing,
    #[error(transparent)]
    Token(TokenError),
    /// A Common Access Token refused, with its own reason code.
    #[error("common access token refused: {}", .0.code())]
    Cat(CatReason),
    #[error(transparent)]
    Extract(ExtractError),
    #[error("malformed path")]
    MalformedPath,
    #[error("malformed header")]
    MalformedHeader,
    #[error("no route")]
    NoRoute,
    #[error("method not allowed")]
    Method,
    #[error("request body not allowed")]
    BodyNotAllowed,
    #[error("request body too large")]
    BodyTooLarge,
    #[error("request headers too large")]
    HeadersTooLarge,
    #[error("origin not allowed by CORS")]
    CorsOrigin,
    #[error(transparent)]
    Origin(OriginError),
    /// Too many requests for one of the limiters (a metric label: `edge_ip`, …).
    #[error("rate limited")]
    RateLimited {
        limiter: &'static str,
        /// Whole seconds until a retry may pass (at least 1).
        retry_after: u32,
    },
}

impl From<ExtractError> for EdgeError {
    fn from(e: ExtractError) -> Self {
        EdgeError::Extract(e)
    }
}

impl EdgeError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::Missing => StatusCode::UNAUTHORIZED,
            Self::Token(t) if t.is_forbidden() => StatusCode::FORBIDDEN,
            Self::Token(_) => StatusCode::UNAUTHORIZED,
            Self::Cat(r) if cat_is_forbidden(r) => StatusCode::FORBIDDEN,
            Self::Cat(CatReason::TooLong) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Cat(_) => StatusCode::UNAUTHORIZED,
            // A token with the wrong alphabet is an untrusted token, like a bad signature.
            Self::Extract(ExtractError::Malformed) => StatusCode::UNAUTHORIZED,
            Self::Extract(ExtractError::TooLong) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Extract(ExtractError::Conflict) => StatusCode::BAD_REQUEST,
            Self::MalformedPath | Self::MalformedHeader | Self::BodyNotAllowed => {
                StatusCode::BAD_REQUEST
            }
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Method => StatusCode::METHOD_NOT_ALLOWED,
            Self::CorsOrigin => StatusCode::FORBIDDEN,
            Self::Origin(OriginError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            Self::Origin(_) => StatusCode::BAD_GATEWAY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The stable reason code.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Token(t) => t.reason(),
            Self::Cat(r) => r.code(),
            Self::Extract(ExtractError::Malformed) => "malformed",
            Self::Extract(ExtractError::TooLong) => "too_long",
            Self::Extract(ExtractError::Conflict) => "conflict",
            Self::MalformedPath => "bad_path",
            Self::MalformedHeader => "bad_header",
            Self::NoRoute => "no_route",
            Self::Method => "method",
            Self::BodyNotAllowed => "body",
            Self::BodyTooLarge => "body_too_large",
            Self::HeadersTooLarge => "headers_too_large",
            Self::CorsOrigin => "cors",
            Self::Origin(o) => o.reason(),
            Self::RateLimited { .. } => "rate_limited",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut resp = body::refusal(status, self.reason());
        let h = resp.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            h.insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, OPTIONS"),
            );
        }
        if let Self::RateLimited { retry_after, .. } = self {
            h.insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
        }
        if status == StatusCode::BAD_REQUEST {
            // After a refused framing or carrier, do not trust the rest of this connection.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// As for the native token: a CAT that verified but does not allow this request is 403;
/// one that cannot be trusted at all is 401.
fn cat_is_forbidden(r: CatReason) -> bool {
    use CatReason::*;
    matches!(
        r,
        Expired
            | NotYetValid
            | Uri
            | Method
            | Ip
            | Header
            | Geo
            | GeoUnavailable
            | Replay
            | ReplayUnenforced
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_response_is_uncacheable_and_names_its_reason() {
        let all = [
            EdgeError::Missing,
            EdgeError::Token(TokenError::Expired),
            EdgeError::Token(TokenError::BadSignature),
            EdgeError::Extract(ExtractError::Conflict),
            EdgeError::MalformedPath,
            EdgeError::NoRoute,
            EdgeError::Origin(OriginError::Timeout),
            EdgeError::Origin(OriginError::Refused),
            EdgeError::RateLimited {
                limiter: "edge_ip",
                retry_after: 3,
            },
            EdgeError::Extract(ExtractError::Malformed),
            EdgeError::Extract(ExtractError::TooLong),
            EdgeError::MalformedHeader,
            EdgeError::Method,
            EdgeError::BodyNotAllowed,
            EdgeError::BodyTooLarge,
            EdgeError::HeadersTooLarge,
            EdgeError::CorsOrigin,
            EdgeError::Origin(OriginError::Failed),
            EdgeError::Token(TokenError::Malformed),
            EdgeError::Token(TokenError::UnknownKid),
            EdgeError::Token(TokenError::Issuer),
            EdgeError::Token(TokenError::Audience),
            EdgeError::Token(TokenError::NotYetValid),
            EdgeError::Token(TokenError::Revoked),
            EdgeError::Token(TokenError::Scope),
            EdgeError::Token(TokenError::Acl),
            EdgeError::Token(TokenError::Ip),
            EdgeError::Cat(CatReason::Algorithm),
            EdgeError::Cat(CatReason::Critical),
            EdgeError::Cat(CatReason::Version),
            EdgeError::Cat(CatReason::Uri),
            EdgeError::Cat(CatReason::Method),
            EdgeError::Cat(CatReason::Header),
            EdgeError::Cat(CatReason::Geo),
            EdgeError::Cat(CatReason::GeoUnavailable),
            EdgeError::Cat(CatReason::Replay),
            EdgeError::Cat(CatReason::ReplayUnenforced),
        ];
        for e in all {
            assert!(
                crate::metrics::EDGE_REASONS.contains(&e.reason())
                    || e.reason() == crate::metrics::ORIGIN_ERROR,
                "{} has no prepared metric series",
                e.reason()
            );
            let r = e.into_response();
            assert_eq!(
                r.headers()[header::CACHE_CONTROL],
                "private, no-store",
                "{e:?}"
            );
            assert_eq!(r.headers()["x-tollgate-reason"], e.reason(), "{e:?}");
        }
        assert_eq!(
            EdgeError::Token(TokenError::Expired).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            EdgeError::Token(TokenError::BadSignature).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            EdgeError::Origin(OriginError::Timeout).status(),
            StatusCode::GATEWAY_TIMEOUT
        );
        let limited = EdgeError::RateLimited {
            limiter: "bad_token",
            retry_after: 0,
        }
        .into_response();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "1");
        assert!(EdgeError::Missing
            .into_response()
            .headers()
            .contains_key(header::WWW_AUTHENTICATE));
    }
}
