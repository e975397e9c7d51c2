//! BlendVision One CMS: `POST /bv/cms/v1/resources/tokens` (and `…/tokens:admin`), and
//! every other path under `/bv/`.
//!
//! Parses and validates the request body and renders the answer and the errors as the
//! vendor's API documents them, and where it is silent as a gRPC-gateway service does:
//! the body is read as protobuf's JSON mapping reads it (proto and lowerCamelCase field
//! names, enum values by name or number, unknown fields ignored as gRPC-gateway's default
//! marshaler does, a field given twice refused). 200 is `{"token","expired_at"}` in that
//! order (`expired_at` omitted when the token never expires); errors are google.rpc.Status
//! `{"code","message","details"}` with the matching HTTP status (400/3 with a
//! google.rpc.BadRequest naming the field, 401/16, 403/7, 404/5, 429/8, 500/13, 503/14
//! UNAVAILABLE while the store cannot be reached, and 501/12 for a wrong method). Authentication and issuing are the admin router's; this
//! file owns only the wire format.

use std::time::Duration;

use http::StatusCode;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admin::issuer::{About, Expiry, IssueError, Issued, Target};
use crate::resource::ResourceType;

/// Every BlendVision path starts with this; the admin router sends them all here.
pub const PREFIX: &str = "/bv/";

/// The google.rpc.BadRequest type URL, as Google-style APIs put it in `details`.
const BAD_REQUEST_TYPE: &str = "type.googleapis.com/google.rpc.BadRequest";

/// The two token endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Tokens,
    /// `tokens:admin`: unpublished resources, no customer fields.
    TokensAdmin,
}

/// The endpoint `path` names, if any.
pub fn endpoint(path: &str) -> Option<Endpoint> {
    match path {
        "/bv/cms/v1/resources/tokens" => Some(Endpoint::Tokens),
        "/bv/cms/v1/resources/tokens:admin" => Some(Endpoint::TokensAdmin),
        _ => None,
    }
}

/// A field of the request message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    ResourceId,
    ResourceType,
    CustomerId,
    CustomerName,
    ExpiredAt,
    ExpiresIn,
}

impl Field {
    const ALL: [Field; 6] = [
        Field::ResourceId,
        Field::ResourceType,
        Field::CustomerId,
        Field::CustomerName,
        Field::ExpiredAt,
        Field::ExpiresIn,
    ];

    /// The proto name: what the document shows and what errors name.
    fn proto_name(self) -> &'static str {
        match self {
            Field::ResourceId => "resource_id",
            Field::ResourceType => "resource_type",
            Field::CustomerId => "customer_id",
            Field::CustomerName => "customer_name",
            Field::ExpiredAt => "expired_at",
            Field::ExpiresIn => "expires_in",
        }
    }

    /// The lowerCamelCase JSON name, which protobuf's JSON mapping accepts too.
    fn json_name(self) -> &'static str {
        match self {
            Field::ResourceId => "resourceId",
            Field::ResourceType => "resourceType",
            Field::CustomerId => "customerId",
            Field::CustomerName => "customerName",
            Field::ExpiredAt => "expiredAt",
            Field::ExpiresIn => "expiresIn",
        }
    }

    fn from_key(key: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.proto_name() == key || f.json_name() == key)
    }
}

/// The request body: the known fields as JSON values (the first of each), and the first
/// field given more than once, which [`parse`] refuses.
#[derive(Debug, Default)]
struct Body {
    fields: Vec<(Field, Value)>,
    repeated: Option<Field>,
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut body = Body::default();
        while let Some(key) = map.next_key::<String>()? {
            let Some(field) = Field::from_key(&key) else {
                // gRPC-gateway's default unmarshaler discards unknown fields.
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value: Value = map.next_value()?;
            if body.fields.iter().any(|(f, _)| *f == field) {
                body.repeated = body.repeated.or(Some(field));
            } else {
                body.fields.push((field, value));
            }
        }
        Ok(body)
    }
}

impl Body {
    /// The field's value; JSON `null` is unset, as in protobuf's JSON mapping.
    fn value(&self, field: Field) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, v)| v)
            .filter(|v| !v.is_null())
    }

    /// A string field: unset, or a JSON string (an empty one is unset, as in proto3).
    fn string(&self, field: Field) -> Result<Option<String>, Status> {
        match self.value(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone()).filter(|s| !s.is_empty())),
            Some(_) => Err(Status::invalid_field(field, "must be a string")),
        }
    }
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
    /// For 400: the request field at fault (the BadRequest's field violation).
    pub field: Option<&'static str>,
}

impl Status {
    fn new(http: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Status {
            http,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400/3 about the request as a whole (unreadable body, missing header).
    pub fn invalid(msg: impl Into<String>) -> Self {
        Status::new(StatusCode::BAD_REQUEST, 3, msg)
    }

    /// 400/3 about one field; the message names it too.
    fn invalid_field(field: Field, msg: &str) -> Self {
        Status::invalid_named(field.proto_name(), format!("{}: {msg}", field.proto_name()))
    }

    fn invalid_named(field: &'static str, msg: impl Into<String>) -> Self {
        Status {
            field: Some(field),
            ..Status::invalid(msg)
        }
    }

    pub fn unauthenticated() -> Self {
        Status::new(
            StatusCode::UNAUTHORIZED,
            16,
            "the authorization header is missing or not recognised",
        )
    }

    pub fn permission_denied(msg: impl Into<String>) -> Self {
        Status::new(StatusCode::FORBIDDEN, 7, msg)
    }

    /// google.rpc RESOURCE_EXHAUSTED: the API token's issuing rate is spent.
    pub fn exhausted() -> Self {
        Status::new(
            StatusCode::TOO_MANY_REQUESTS,
            8,
            "too many token requests for this API token; retry later",
        )
    }

    pub fn internal() -> Self {
        Status::new(StatusCode::INTERNAL_SERVER_ERROR, 13, "internal error")
    }

    /// google.rpc UNAVAILABLE, which gRPC-gateway answers with 503: the store cannot be
    /// reached; the client should retry (the router adds `Retry-After`).
    pub fn unavailable() -> Self {
        Status::new(
            StatusCode::SERVICE_UNAVAILABLE,
            14,
            "the token service is temporarily unavailable; retry later",
        )
    }

    /// A failure that is about no field of the request (authentication, or the store):
    /// UNAVAILABLE for an outage, INTERNAL for anything else.
    pub fn failure(e: &IssueError) -> Self {
        match e {
            IssueError::Unavailable => Status::unavailable(),
            _ => Status::internal(),
        }
    }

    /// A path under `/bv/` that names no method: NOT_FOUND, as gRPC-gateway answers.
    pub fn no_such_path() -> Self {
        Status::new(StatusCode::NOT_FOUND, 5, "Not Found")
    }

    /// A known path with another HTTP method: gRPC-gateway's UNIMPLEMENTED, which its
    /// status mapping answers with 501.
    pub fn wrong_method() -> Self {
        Status::new(StatusCode::NOT_IMPLEMENTED, 12, "Method Not Allowed")
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({ "code": self.code, "message": self.message, "details": self.details() })
            .to_string()
            .into_bytes()
    }

    /// `[]`, or for 400 one google.rpc.BadRequest naming the field at fault (none when
    /// the request as a whole is at fault).
    fn details(&self) -> Value {
        if self.code != 3 {
            return Value::Array(Vec::new());
        }
        let violations: Vec<Value> = self
            .field
            .iter()
            .map(|f| serde_json::json!({ "field": f, "description": self.message }))
            .collect();
        serde_json::json!([{ "@type": BAD_REQUEST_TYPE, "fieldViolations": violations }])
    }

    /// An issuer error, with the field a refusal is about as this request spelled it.
    pub fn from_issue(e: IssueError, request: &Request) -> Self {
        match e {
            IssueError::Invalid(r) => {
                let field = match (r.about, request.expiry) {
                    (About::Subject, _) => Field::CustomerId,
                    (About::Expiry, Expiry::At(_)) => Field::ExpiredAt,
                    (About::Expiry, _) => Field::ExpiresIn,
                };
                Status::invalid_named(field.proto_name(), r.message)
            }
            IssueError::NotFound(m) => Status::new(StatusCode::NOT_FOUND, 5, m),
            IssueError::Forbidden(m) => Status::permission_denied(m),
            other @ (IssueError::Unavailable | IssueError::Internal) => Status::failure(&other),
        }
    }
}

/// The resource types in the document's order; the enum numbers follow it, after
/// `RESOURCE_TYPE_UNSPECIFIED` = 0.
const RESOURCE_TYPES: [(&str, ResourceType); 7] = [
    ("RESOURCE_TYPE_LIVE", ResourceType::Live),
    ("RESOURCE_TYPE_VOD", ResourceType::Vod),
    ("RESOURCE_TYPE_LIVE_EVENT", ResourceType::LiveEvent),
    (
        "RESOURCE_TYPE_LIVE_EVENT_RECORDING",
        ResourceType::LiveEventRecording,
    ),
    ("RESOURCE_TYPE_VOD_EVENT", ResourceType::VodEvent),
    ("RESOURCE_TYPE_AUDIO_EVENT", ResourceType::AudioEvent),
    ("RESOURCE_TYPE_VOD_ENCODING", ResourceType::VodEncoding),
];

/// `resource_type`: a name or an enum number; unset, `RESOURCE_TYPE_UNSPECIFIED` and 0
/// are all "missing".
fn resource_type(body: &Body) -> Result<ResourceType, Status> {
    let field = Field::ResourceType;
    let found = match body.value(field) {
        None => None,
        Some(Value::String(s)) if s == "RESOURCE_TYPE_UNSPECIFIED" => None,
        Some(Value::String(s)) => Some(
            RESOURCE_TYPES
                .iter()
                .find(|(name, _)| name == s)
                .map(|(_, t)| *t),
        ),
        Some(Value::Number(n)) if n.as_u64() == Some(0) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| RESOURCE_TYPES.get(i.wrapping_sub(1)))
                .map(|(_, t)| *t),
        ),
        Some(_) => Some(None),
    };
    match found {
        None => Err(Status::invalid_field(field, "is required")),
        Some(Some(t)) => Ok(t),
        Some(None) => Err(Status::invalid_field(
            field,
            "must be one of RESOURCE_TYPE_LIVE (1), RESOURCE_TYPE_VOD (2), \
             RESOURCE_TYPE_LIVE_EVENT (3), RESOURCE_TYPE_LIVE_EVENT_RECORDING (4), \
             RESOURCE_TYPE_VOD_EVENT (5), RESOURCE_TYPE_AUDIO_EVENT (6), \
             RESOURCE_TYPE_VOD_ENCODING (7)",
        )),
    }
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

/// RFC 3339 → Unix seconds, rounded down: a token never outlives the time asked for.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp()).ok()
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

/// `expired_at` xor `expires_in`, or neither (a token that never expires). Expiries are
/// whole seconds, rounded down; a lifetime under one second is refused rather than
/// minted as a token that is already over.
fn expiry(body: &Body) -> Result<Expiry, Status> {
    match (
        body.string(Field::ExpiredAt)?,
        body.string(Field::ExpiresIn)?,
    ) {
        (Some(_), Some(_)) => Err(Status::invalid_named(
            Field::ExpiresIn.proto_name(),
            "expired_at and expires_in cannot be used together",
        )),
        (Some(at), None) => parse_rfc3339(&at)
            .map(Expiry::At)
            .ok_or_else(|| Status::invalid_field(Field::ExpiredAt, "must be an RFC 3339 time")),
        (None, Some(d)) => match parse_duration(&d) {
            Some(d) if d.as_secs() > 0 => Ok(Expiry::In(Duration::from_secs(d.as_secs()))),
            Some(_) => Err(Status::invalid_field(
                Field::ExpiresIn,
                "must be at least one second (tokens expire on whole seconds)",
            )),
            None => Err(Status::invalid_field(
                Field::ExpiresIn,
                "must be a positive duration like \"3600s\"",
            )),
        },
        (None, None) => Ok(Expiry::Never),
    }
}

/// Parse and validate a body for `endpoint`.
pub fn parse(body: &[u8], endpoint: Endpoint) -> Result<Request, Status> {
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| Status::invalid(format!("invalid request body: {e}")))?;
    if let Some(field) = b.repeated {
        return Err(Status::invalid_field(
            field,
            "is given more than once (in either spelling)",
        ));
    }
    let resource_id = b
        .string(Field::ResourceId)?
        .ok_or_else(|| Status::invalid_field(Field::ResourceId, "is required"))?;
    let rty = resource_type(&b)?;
    let customer_id = b.string(Field::CustomerId)?;
    let customer_name = b.string(Field::CustomerName)?;
    if endpoint == Endpoint::TokensAdmin {
        let given = [
            (Field::CustomerId, &customer_id),
            (Field::CustomerName, &customer_name),
        ];
        if let Some((f, _)) = given.iter().find(|(_, v)| v.is_some()) {
            return Err(Status::invalid_field(
                *f,
                "is not accepted by the admin endpoint",
            ));
        }
    }
    Ok(Request {
        target: Target::Resource {
            id: resource_id,
            rty,
        },
        customer_id,
        customer_name,
        expiry: expiry(&b)?,
    })
}

/// The 200 body, its keys in the document's order.
#[derive(Serialize)]
struct Answer<'a> {
    token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expired_at: Option<String>,
}

/// The 200 body: the token and its real expiry.
pub fn render(issued: &Issued) -> Vec<u8> {
    let answer = Answer {
        token: &issued.token,
        expired_at: issued.expires_at.map(format_rfc3339),
    };
    serde_json::to_vec(&answer).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const VOD: Endpoint = Endpoint::Tokens;

    fn ok(body: &str) -> Request {
        parse(body.as_bytes(), VOD).unwrap_or_else(|e| panic!("{body}: {e:?}"))
    }

    /// The 400 for `body`, checked to be 3 with a BadRequest naming `field`.
    #[track_caller]
    fn refused(body: &str, endpoint: Endpoint, field: Option<&str>) -> Value {
        let e = parse(body.as_bytes(), endpoint).expect_err(body);
        assert_eq!((e.http, e.code), (StatusCode::BAD_REQUEST, 3), "{body}");
        let v: Value = serde_json::from_slice(&e.body()).expect("json");
        assert_eq!(v["code"], 3, "{v}");
        let details = v["details"].as_array().expect("details");
        assert_eq!(details.len(), 1, "{v}");
        assert_eq!(details[0]["@type"], BAD_REQUEST_TYPE, "{v}");
        let violations = details[0]["fieldViolations"]
            .as_array()
            .expect("violations");
        let named: Vec<&str> = violations
            .iter()
            .filter_map(|f| f["field"].as_str())
            .collect();
        assert_eq!(named, field.into_iter().collect::<Vec<_>>(), "{v}");
        v
    }

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
    fn bv_expired_at_rounds_down_so_the_token_never_outlives_the_time_asked() {
        let t = parse_rfc3339("2024-07-29T15:51:28.071Z").expect("valid");
        assert_eq!(t, 1_722_268_288);
        assert_eq!(format_rfc3339(t), "2024-07-29T15:51:28.000Z");
        assert_eq!(
            parse_rfc3339("2024-07-29T17:51:28.999+02:00"),
            Some(1_722_268_288)
        );
        assert_eq!(parse_rfc3339("2024-07-29 15:51:28"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn a_valid_body_parses_into_a_resource_request() {
        let r = ok(
            r#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","customer_id":"c1","expires_in":"60s"}"#,
        );
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
    fn bv_accepts_lower_camel_case_fields_and_enum_numbers() {
        let r = ok(
            r#"{"resourceId":"v1","resourceType":"RESOURCE_TYPE_LIVE","customerId":"c1","customerName":"Ann","expiresIn":"60s"}"#,
        );
        let snake = ok(
            r#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_LIVE","customer_id":"c1","customer_name":"Ann","expires_in":"60s"}"#,
        );
        assert_eq!(r, snake);
        let at = ok(r#"{"resourceId":"v1","resourceType":2,"expiredAt":"2030-01-01T00:00:00Z"}"#);
        assert_eq!(at.expiry, Expiry::At(1_893_456_000));
        for (n, rty) in [
            (1, ResourceType::Live),
            (2, ResourceType::Vod),
            (7, ResourceType::VodEncoding),
        ] {
            let r = ok(&format!(r#"{{"resource_id":"v1","resource_type":{n}}}"#));
            assert!(
                matches!(r.target, Target::Resource { rty: t, .. } if t == rty),
                "{n}"
            );
        }
        for bad in ["8", "-1", "1.5", "true", "\"2\""] {
            refused(
                &format!(r#"{{"resource_id":"v1","resource_type":{bad}}}"#),
                VOD,
                Some("resource_type"),
            );
        }
        for missing in ["0", "null", "\"RESOURCE_TYPE_UNSPECIFIED\""] {
            refused(
                &format!(r#"{{"resource_id":"v1","resource_type":{missing}}}"#),
                VOD,
                Some("resource_type"),
            );
        }
    }

    #[test]
    fn bv_ignores_unknown_fields_as_grpc_gateways_default_unmarshaler_does() {
        let r = ok(
            r#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","extra":{"a":[1]},"expires_in":"60s","Resource_Id":"x"}"#,
        );
        assert_eq!(r.expiry, Expiry::In(Duration::from_secs(60)));
        assert!(matches!(r.target, Target::Resource { ref id, .. } if id == "v1"));
    }

    #[test]
    fn bv_a_field_given_twice_in_either_spelling_is_400() {
        for body in [
            r#"{"resource_id":"v1","resourceId":"v2","resource_type":"RESOURCE_TYPE_VOD"}"#,
            r#"{"resource_id":"v1","resource_id":"v2","resource_type":"RESOURCE_TYPE_VOD"}"#,
        ] {
            let v = refused(body, VOD, Some("resource_id"));
            assert!(
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("resource_id")),
                "{v}"
            );
        }
    }

    #[test]
    fn bv_a_lifetime_under_one_second_is_400_and_fractions_round_down() {
        for tiny in ["0.000000001s", "0.999s"] {
            refused(
                &format!(
                    r#"{{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","expires_in":"{tiny}"}}"#
                ),
                VOD,
                Some("expires_in"),
            );
        }
        let r = ok(
            r#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","expires_in":"1.999999999s"}"#,
        );
        assert_eq!(r.expiry, Expiry::In(Duration::from_secs(1)));
    }

    #[test]
    fn bv_every_invalid_body_is_400_code_3_with_a_bad_request_naming_the_field() {
        for (body, endpoint, field) in [
            (
                r#"{"resource_type":"RESOURCE_TYPE_VOD"}"#,
                VOD,
                Some("resource_id"),
            ),
            (
                r#"{"resource_id":"","resource_type":"RESOURCE_TYPE_VOD"}"#,
                VOD,
                Some("resource_id"),
            ),
            (
                r#"{"resource_id":7,"resource_type":"RESOURCE_TYPE_VOD"}"#,
                VOD,
                Some("resource_id"),
            ),
            (r#"{"resource_id":"v1"}"#, VOD, Some("resource_type")),
            (
                r#"{"resource_id":"v1","resource_type":"VOD"}"#,
                VOD,
                Some("resource_type"),
            ),
            (
                r#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","expired_at":"2030-01-01T00:00:00Z","expires_in":"60s"}"#,
                VOD,
                Some("expires_in"),
            ),
            (
                r#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","expired_at":"tomorrow"}"#,
                VOD,
                Some("expired_at"),
            ),
            (
                r#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","expires_in":"1h"}"#,
                VOD,
                Some("expires_in"),
            ),
            (
                r#"{"resource_id":"v1","resource_type":"RESOURCE_TYPE_VOD","customer_id":"c"}"#,
                Endpoint::TokensAdmin,
                Some("customer_id"),
            ),
            (
                r#"{"resourceId":"v1","resourceType":2,"customerName":"n"}"#,
                Endpoint::TokensAdmin,
                Some("customer_name"),
            ),
            (r#"not json"#, VOD, None),
            (r#"[1]"#, VOD, None),
        ] {
            let v = refused(body, endpoint, field);
            assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        }
    }

    #[test]
    fn bv_issuer_refusals_name_the_field_the_request_used() {
        use crate::admin::issuer::Refusal;
        let refusal = |about| {
            IssueError::Invalid(Refusal {
                message: "no".into(),
                about,
            })
        };
        let at = ok(r#"{"resource_id":"v1","resource_type":2,"expiredAt":"2030-01-01T00:00:00Z"}"#);
        let never = ok(r#"{"resource_id":"v1","resource_type":2}"#);
        for (about, request, field) in [
            (About::Subject, &never, "customer_id"),
            (About::Expiry, &at, "expired_at"),
            (About::Expiry, &never, "expires_in"),
        ] {
            let s = Status::from_issue(refusal(about), request);
            assert_eq!(
                (s.http, s.code, s.field),
                (StatusCode::BAD_REQUEST, 3, Some(field))
            );
        }
    }

    #[test]
    fn bv_errors_other_than_400_have_empty_details() {
        for s in [
            Status::unauthenticated(),
            Status::permission_denied("x"),
            Status::no_such_path(),
            Status::wrong_method(),
            Status::internal(),
        ] {
            let v: Value = serde_json::from_slice(&s.body()).expect("json");
            assert_eq!(v["details"], serde_json::json!([]), "{v}");
        }
    }

    #[test]
    fn bv_the_answer_lists_token_before_expired_at() {
        let body = render(&Issued {
            token: "t".into(),
            jti: "j".into(),
            expires_at: Some(1_722_268_288),
        });
        assert_eq!(
            String::from_utf8(body).expect("utf-8"),
            r#"{"token":"t","expired_at":"2024-07-29T15:51:28.000Z"}"#
        );
        let never = render(&Issued {
            token: "t".into(),
            jti: "j".into(),
            expires_at: None,
        });
        assert_eq!(never, br#"{"token":"t"}"#);
    }

    /// gRPC-gateway maps UNAVAILABLE (14) to 503; an outage is never INTERNAL (13).
    #[test]
    fn b11_a_store_outage_is_unavailable_14_with_empty_details() {
        let s = Status::failure(&IssueError::Unavailable);
        assert_eq!((s.http.as_u16(), s.code), (503, 14));
        let v: Value = serde_json::from_slice(&s.body()).expect("json");
        assert_eq!(v["details"], serde_json::json!([]));
        assert_eq!(Status::failure(&IssueError::Internal).code, 13);
    }
}
