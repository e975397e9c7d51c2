//! BlendVision One CMS: `POST /bv/cms/v1/resources/tokens` (and `…/tokens:admin`).
//!
//! Parses and validates the request body and renders the answer and the errors exactly
//! as `seeds/blendvision-create-access-token.txt` documents them: 200
//! `{"token","expired_at"}` (`expired_at` omitted when the token never expires), errors
//! as google.rpc.Status `{"code","message","details":[]}` with the matching HTTP status
//! (400/3, 401/16, 403/7, 404/5, 500/13). Authentication and issuing are the admin
//! router's; this file owns only the wire format.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use crate::admin::issuer::{Expiry, IssueError, Issued, Target};
use crate::resource::ResourceType;

/// The request body, as the API defines it. Unknown fields are refused (as protojson does).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    resource_id: Option<String>,
    resource_type: Option<String>,
    customer_id: Option<String>,
    customer_name: Option<String>,
    expired_at: Option<String>,
    expires_in: Option<String>,
}

/// A validated request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub target: Target,
    pub customer_id: Option<String>,
    pub customer_name: Option<String>,
    pub expiry: Expiry,
}

/// A google.rpc.Status error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub http: StatusCode,
    pub code: u32,
    pub message: String,
}

impl Status {
    pub fn invalid(msg: impl Into<String>) -> Self {
        Status {
            http: StatusCode::BAD_REQUEST,
            code: 3,
            message: msg.into(),
        }
    }

    pub fn unauthenticated() -> Self {
        Status {
            http: StatusCode::UNAUTHORIZED,
            code: 16,
            message: "the authorization header is missing or not recognised".into(),
        }
    }

    pub fn permission_denied(msg: impl Into<String>) -> Self {
        Status {
            http: StatusCode::FORBIDDEN,
            code: 7,
            message: msg.into(),
        }
    }

    /// google.rpc RESOURCE_EXHAUSTED: the API token's issuing rate is spent.
    pub fn exhausted() -> Self {
        Status {
            http: StatusCode::TOO_MANY_REQUESTS,
            code: 8,
            message: "too many token requests for this API token; retry later".into(),
        }
    }

    pub fn internal() -> Self {
        Status {
            http: StatusCode::INTERNAL_SERVER_ERROR,
            code: 13,
            message: "internal error".into(),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({ "code": self.code, "message": self.message, "details": [] })
            .to_string()
            .into_bytes()
    }
}

impl From<IssueError> for Status {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Invalid(m) => Status::invalid(m),
            IssueError::NotFound(m) => Status {
                http: StatusCode::NOT_FOUND,
                code: 5,
                message: m,
            },
            IssueError::Forbidden(m) => Status::permission_denied(m),
            IssueError::Internal => Status::internal(),
        }
    }
}

fn resource_type(s: &str) -> Option<ResourceType> {
    Some(match s {
        "RESOURCE_TYPE_LIVE" => ResourceType::Live,
        "RESOURCE_TYPE_VOD" => ResourceType::Vod,
        "RESOURCE_TYPE_LIVE_EVENT" => ResourceType::LiveEvent,
        "RESOURCE_TYPE_LIVE_EVENT_RECORDING" => ResourceType::LiveEventRecording,
        "RESOURCE_TYPE_VOD_EVENT" => ResourceType::VodEvent,
        "RESOURCE_TYPE_AUDIO_EVENT" => ResourceType::AudioEvent,
        "RESOURCE_TYPE_VOD_ENCODING" => ResourceType::VodEncoding,
        _ => return None,
    })
}

/// A protobuf JSON Duration: `"3600s"`, `"1.5s"` (up to nanoseconds). Must be positive.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let num = s.strip_suffix('s')?;
    let (whole, frac) = match num.split_once('.') {
        Some((w, f)) => (w, f),
        None => (num, ""),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (num.contains('.') && frac.is_empty()) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    let d = Duration::new(secs, nanos);
    (!d.is_zero()).then_some(d)
}

/// RFC 3339 → Unix seconds (sub-second precision is dropped, rounding up).
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(if t.nanosecond() > 0 { secs + 1 } else { secs })
}

/// Unix seconds → RFC 3339 UTC with milliseconds, as the API's example shows.
pub fn format_rfc3339(secs: u64) -> String {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

/// Parse and validate a body. `admin`: the `tokens:admin` variant (no customer fields).
pub fn parse(body: &[u8], admin: bool) -> Result<Request, Status> {
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| Status::invalid(format!("invalid request body: {e}")))?;
    let resource_id = b
        .resource_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Status::invalid("resource_id is required"))?;
    let rt = b
        .resource_type
        .ok_or_else(|| Status::invalid("resource_type is required"))?;
    let rty = resource_type(&rt).ok_or_else(|| {
        Status::invalid(format!(
            "resource_type {rt:?} is not one of RESOURCE_TYPE_LIVE, RESOURCE_TYPE_VOD, \
             RESOURCE_TYPE_LIVE_EVENT, RESOURCE_TYPE_LIVE_EVENT_RECORDING, \
             RESOURCE_TYPE_VOD_EVENT, RESOURCE_TYPE_AUDIO_EVENT, RESOURCE_TYPE_VOD_ENCODING"
        ))
    })?;
    if admin && (b.customer_id.is_some() || b.customer_name.is_some()) {
        return Err(Status::invalid(
            "customer_id and customer_name are not accepted by the admin endpoint",
        ));
    }
    let expiry = match (b.expired_at, b.expires_in) {
        (Some(_), Some(_)) => {
            return Err(Status::invalid(
                "expired_at and expires_in cannot be used together",
            ))
        }
        (Some(at), None) => Expiry::At(parse_rfc3339(&at).ok_or_else(|| {
            Status::invalid(format!("expired_at {at:?} is not an RFC 3339 time"))
        })?),
        (None, Some(d)) => Expiry::In(parse_duration(&d).ok_or_else(|| {
            Status::invalid(format!(
                "expires_in {d:?} is not a positive duration like \"3600s\""
            ))
        })?),
        (None, None) => Expiry::Never,
    };
    Ok(Request {
        target: Target::Resource {
            id: resource_id,
            rty,
        },
        customer_id: b.customer_id.filter(|s| !s.is_empty()),
        customer_name: b.customer_name.filter(|s| !s.is_empty()),
        expiry,
    })
}

/// The 200 body.
pub fn render(issued: &Issued) -> Vec<u8> {
    let mut v = serde_json::json!({ "token": issued.token });
    if let Some(exp) = issued.expires_at {
        v["expired_at"] = serde_json::Value::String(format_rfc3339(exp));
    }
    v.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_protobuf_json() {
        assert_eq!(parse_duration("3600s"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        for bad in [
            "3600",
            "s",
            "-5s",
            "0s",
            "1.s",
            ".5s",
            "1.1234567890s",
            "1hs",
            "10m",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_round_trips_with_milliseconds() {
        let t = parse_rfc3339("2024-07-29T15:51:28.071Z").expect("valid");
        assert_eq!(t, 1_722_268_289);
        assert_eq!(format_rfc3339(1_722_268_288), "2024-07-29T15:51:28.000Z");
        assert_eq!(
            parse_rfc3339("2024-07-29T17:51:28+02:00"),
            Some(1_722_268_288)
        );
        assert_eq!(parse_rfc3339("2024-07-29 15:51:28"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_valid_body_parses_into_a_resource_request() {
        let r = parse(
            br#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","customer_id":"c1","expires_in":"60s"}"#,
            false,
        )
        .expect("valid");
        assert_eq!(
            r.target,
            Target::Resource {
                id: "v1".into(),
                rty: ResourceType::Vod
            }
        );
        assert_eq!(r.customer_id.as_deref(), Some("c1"));
        assert_eq!(r.expiry, Expiry::In(Duration::from_secs(60)));
    }

    #[test]
    fn every_invalid_body_is_400_code_3() {
        for (body, admin) in [
            (&br#"{"resource_type":"RESOURCE_TYPE_VOD"}"#[..], false),
            (br#"{"resource_id":"v1"}"#, false),
            (br#"{"resource_id":"v1","resource_type":"VOD"}"#, false),
            (br#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","expired_at":"2030-01-01T00:00:00Z","expires_in":"60s"}"#, false),
            (br#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","expired_at":"tomorrow"}"#, false),
            (br#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","expires_in":"1h"}"#, false),
            (br#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","customer_id":"c"}"#, true),
            (br#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","extra":1}"#, false),
            (br#"not json"#, false),
        ] {
            let e = parse(body, admin).expect_err("must fail");
            assert_eq!((e.http, e.code), (StatusCode::BAD_REQUEST, 3), "{}", String::from_utf8_lossy(body));
            let v: serde_json::Value = serde_json::from_slice(&e.body()).expect("json");
            assert_eq!(v["code"], 3);
            assert!(v["details"].as_array().is_some_and(|d| d.is_empty()));
        }
    }
}
