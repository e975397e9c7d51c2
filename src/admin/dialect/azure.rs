//! Azure Video Indexer: `generateRestrictedViewerAccessToken`, read the way Azure
//! Resource Manager (ARM) reads it.
//!
//! `POST /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/
//! Microsoft.VideoIndexer/accounts/{accountName}/generateRestrictedViewerAccessToken
//! ?api-version=2024-01-01` with `{"scope":"Account"|"Project"|"Video","projectId"?,
//! "videoId"?}` → 200 `{"accessToken"}`. As ARM does, the fixed segments (`subscriptions`,
//! `resourceGroups`, `providers`, the namespace, `accounts`, the action) match in any
//! case, and the parameters are percent-decoded before they are checked (accountName
//! 3–50 of `[A-Za-z0-9-]`, resourceGroupName 1–90 characters, subscriptionId ≥ 1);
//! `api-version` must be one this API supports. Errors are ARM's `ErrorResponse`:
//! `{"error":{"code","message","details":[]}}`, with ARM's codes and messages
//! (503 `ServiceUnavailable` while the store cannot be reached).
//!
//! This file owns the wire format only; who the caller is (API token or Azure AD bearer,
//! `super::super::oidc`) and which account it may use are the admin router's.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use crate::admin::issuer::{Expiry, IssueError, Issued, Target};
use crate::resource::ResourceType;

/// Restricted viewer tokens live an hour, as Azure's do.
pub const LIFETIME: Duration = Duration::from_secs(3600);

/// The `api-version` values this API answers: the one its document describes.
pub const API_VERSIONS: &[&str] = &["2024-01-01"];

/// The ARM action a caller needs on the account (named in 403 messages).
const ACTION_ID: &str =
    "Microsoft.VideoIndexer/accounts/generateRestrictedViewerAccessToken/action";

/// The path parameters of a matched route, percent-decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathParams {
    pub subscription: String,
    pub resource_group: String,
    pub account: String,
}

impl PathParams {
    /// The ARM scope of the account, as ARM names it in authorization errors.
    pub fn scope(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.VideoIndexer/accounts/{}",
            self.subscription, self.resource_group, self.account
        )
    }
}

/// An Azure error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub http: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl Error {
    fn new(http: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Error {
            http,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", message)
    }

    /// 401 without credentials: ARM's answer to a missing `Authorization` header.
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing or not valid.",
        )
    }

    /// 401 for a bearer token that is not valid, with ARM's code for the reason.
    pub fn bad_token(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AuthorizationFailed", message)
    }

    /// 403 in ARM's words: `client` may not run this action on the account.
    pub fn not_authorized(client: &str, params: &PathParams) -> Self {
        Self::forbidden(format!(
            "The client '{client}' with object id '{client}' does not have authorization to \
             perform action '{ACTION_ID}' over scope '{}' or the scope is invalid. If access \
             was recently granted, please refresh your credentials.",
            params.scope()
        ))
    }

    /// 404 in ARM's words: no such account under this subscription and resource group.
    pub fn account_not_found(params: &PathParams) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource 'Microsoft.VideoIndexer/accounts/{}' under resource group '{}' \
                 was not found. For more details please go to \
                 https://aka.ms/ARMResourceNotFoundFix",
                params.account, params.resource_group
            ),
        )
    }

    /// 405 in ARM's words, for any method but POST on this route.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The HTTP method '{method}' is not supported on the resource '{path}'."),
        )
    }

    /// 429, as Azure Resource Manager throttles.
    pub fn too_many() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many token requests for this API token. Retry after the time in Retry-After.",
        )
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({
            "error": { "code": self.code, "message": self.message, "details": [] }
        })
        .to_string()
        .into_bytes()
    }
}

impl From<IssueError> for Error {
    fn from(e: IssueError) -> Self {
        match e {
            IssueError::Invalid(m) => Error::invalid(m),
            IssueError::NotFound(m) => Error::new(StatusCode::NOT_FOUND, "ResourceNotFound", m),
            IssueError::Forbidden(m) => Error::forbidden(m),
            IssueError::Unavailable => Error::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The service is temporarily unavailable. Retry after the time in Retry-After.",
            ),
            IssueError::Internal => Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal error",
            ),
        }
    }
}

/// The path's segments after the leading `/`, with the fixed ones in ARM's spelling;
/// `None` marks a parameter.
const SEGMENTS: [Option<&str>; 9] = [
    Some("subscriptions"),
    None,
    Some("resourceGroups"),
    None,
    Some("providers"),
    Some("Microsoft.VideoIndexer"),
    Some("accounts"),
    None,
    Some("generateRestrictedViewerAccessToken"),
];

/// Split the path if it is this API's route (whatever the parameter values, and in any
/// case for the fixed segments, as ARM matches them): Some(Ok) when the parameters are
/// valid, Some(Err) when they are not, None for another route.
pub fn match_path(path: &str) -> Option<Result<PathParams, Error>> {
    let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if parts.len() != SEGMENTS.len() {
        return None;
    }
    let fixed_match = SEGMENTS
        .iter()
        .zip(&parts)
        .all(|(want, got)| want.is_none_or(|w| w.eq_ignore_ascii_case(got)));
    if !fixed_match {
        return None;
    }
    Some(decode_params(parts[1], parts[3], parts[7]).and_then(validate))
}

/// Percent-decode the three parameters (ARM checks the decoded values).
fn decode_params(sub: &str, rg: &str, account: &str) -> Result<PathParams, Error> {
    let decode = |what: &str, raw: &str| {
        percent_decode(raw).ok_or_else(|| {
            Error::invalid(format!(
                "{what} is not a valid percent-encoded UTF-8 string"
            ))
        })
    };
    Ok(PathParams {
        subscription: decode("subscriptionId", sub)?,
        resource_group: decode("resourceGroupName", rg)?,
        account: decode("accountName", account)?,
    })
}

/// `%XX` escapes decoded; None for a broken escape or bytes that are not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    String::from_utf8(crate::url::percent_decode(raw.as_bytes(), false)?).ok()
}

fn validate(p: PathParams) -> Result<PathParams, Error> {
    if p.subscription.is_empty() {
        return Err(Error::invalid("subscriptionId must not be empty"));
    }
    if p.resource_group.is_empty() || p.resource_group.chars().count() > 90 {
        return Err(Error::invalid(
            "resourceGroupName must be 1 to 90 characters",
        ));
    }
    let len_ok = (3..=50).contains(&p.account.len());
    let chars_ok = p
        .account
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !len_ok || !chars_ok {
        return Err(Error::invalid(
            "accountName must be 3 to 50 characters of A-Z, a-z, 0-9 and '-'",
        ));
    }
    Ok(p)
}

/// The `api-version` query parameter (its name in any case, as ARM reads it) is required
/// and must be one of [`API_VERSIONS`].
pub fn check_api_version(query: Option<&str>) -> Result<(), Error> {
    let given = query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, v)| k.eq_ignore_ascii_case("api-version") && !v.is_empty())
        .map(|(_, v)| v);
    let Some(version) = given else {
        return Err(Error::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ));
    };
    if API_VERSIONS.iter().any(|v| v.eq_ignore_ascii_case(version)) {
        return Ok(());
    }
    Err(Error::new(
        StatusCode::BAD_REQUEST,
        "InvalidApiVersionParameter",
        format!(
            "The api-version '{version}' is invalid. The supported versions are '{}'.",
            API_VERSIONS.join(",")
        ),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Body {
    scope: Option<String>,
    project_id: Option<String>,
    video_id: Option<String>,
}

/// Parse and validate the body into what the token covers.
pub fn parse(body: &[u8]) -> Result<(Target, Expiry), Error> {
    let b: Body = serde_json::from_slice(body)
        .map_err(|e| Error::invalid(format!("The request body is not valid: {e}")))?;
    let scope = b
        .scope
        .ok_or_else(|| Error::invalid("scope is required: Account, Project or Video"))?;
    let non_empty = |v: Option<String>, what: &str| {
        v.filter(|s| !s.is_empty())
            .ok_or_else(|| Error::invalid(format!("{what} is required for scope {scope}")))
    };
    let target = match scope.as_str() {
        "Account" => Target::Account,
        "Project" => Target::Project(non_empty(b.project_id, "projectId")?),
        "Video" => Target::Resource {
            id: non_empty(b.video_id, "videoId")?,
            rty: ResourceType::Vod,
        },
        other => {
            return Err(Error::invalid(format!(
                "scope {other:?} is not one of Account, Project, Video"
            )))
        }
    };
    Ok((target, Expiry::In(LIFETIME)))
}

/// The 200 body.
pub fn render(issued: &Issued) -> Vec<u8> {
    serde_json::json!({ "accessToken": issued.token })
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "/subscriptions/b04775c3/resourceGroups/contoso-rg/providers/Microsoft.VideoIndexer/accounts/contoso-vi/generateRestrictedViewerAccessToken";

    #[test]
    fn the_documented_path_matches_and_validates() {
        let p = match_path(OK).expect("route").expect("valid");
        assert_eq!(
            (
                p.subscription.as_str(),
                p.resource_group.as_str(),
                p.account.as_str()
            ),
            ("b04775c3", "contoso-rg", "contoso-vi")
        );
        assert!(match_path("/subscriptions/x/other").is_none());
    }

    #[test]
    fn arm_matches_fixed_segments_in_any_case() {
        for path in [
            OK.replace("resourceGroups", "resourcegroups"),
            OK.replace("providers", "PROVIDERS"),
            OK.replace("Microsoft.VideoIndexer", "microsoft.videoindexer"),
            OK.replace("accounts/", "Accounts/"),
            OK.replace("subscriptions", "SUBSCRIPTIONS"),
            OK.replace(
                "generateRestrictedViewerAccessToken",
                "generaterestrictedvieweraccesstoken",
            ),
        ] {
            let p = match_path(&path).expect("route").expect("valid");
            assert_eq!(p.account, "contoso-vi", "{path}");
        }
        assert!(match_path(&OK.replace("providers", "provider")).is_none());
    }

    #[test]
    fn resource_group_length_counts_the_decoded_name() {
        // 89 characters once decoded; 91 bytes as sent.
        let name = format!("{}%28", "r".repeat(88));
        let path = OK.replace("contoso-rg", &name);
        let p = match_path(&path).expect("route").expect("valid");
        assert_eq!(p.resource_group, format!("{}(", "r".repeat(88)));
        let long = OK.replace("contoso-rg", &format!("{}%28%29", "r".repeat(89)));
        let e = match_path(&long).expect("route").expect_err("91 decoded");
        assert_eq!(e.code, "InvalidParameter");
        let broken = OK.replace("contoso-rg", "rg%2");
        assert!(match_path(&broken).expect("route").is_err());
    }

    #[test]
    fn api_version_outside_the_documented_ones_is_invalid_api_version_parameter() {
        assert!(check_api_version(Some("API-Version=2024-01-01")).is_ok());
        for v in ["2023-01-01", "2024-06-01-preview", "latest"] {
            let e = check_api_version(Some(&format!("api-version={v}"))).expect_err(v);
            assert_eq!(
                (e.http, e.code),
                (StatusCode::BAD_REQUEST, "InvalidApiVersionParameter")
            );
            assert_eq!(
                e.message,
                format!(
                    "The api-version '{v}' is invalid. The supported versions are '2024-01-01'."
                )
            );
        }
    }

    #[test]
    fn bad_path_parameters_are_400_invalid_parameter() {
        let long_rg = "r".repeat(91);
        for path in [
            OK.replace("accounts/contoso-vi", "accounts/ab"),
            OK.replace(
                "accounts/contoso-vi",
                &format!("accounts/{}", "a".repeat(51)),
            ),
            OK.replace("accounts/contoso-vi", "accounts/contoso_vi"),
            OK.replace(
                "resourceGroups/contoso-rg",
                &format!("resourceGroups/{long_rg}"),
            ),
            OK.replace("resourceGroups/contoso-rg", "resourceGroups/"),
            OK.replace("subscriptions/b04775c3", "subscriptions/"),
        ] {
            let e = match_path(&path).expect("route").expect_err("invalid");
            assert_eq!(
                (e.http, e.code),
                (StatusCode::BAD_REQUEST, "InvalidParameter"),
                "{path}"
            );
        }
    }

    #[test]
    fn api_version_is_required() {
        assert!(check_api_version(Some("api-version=2024-01-01")).is_ok());
        for q in [None, Some(""), Some("api-version="), Some("version=1")] {
            let e = check_api_version(q).expect_err("missing");
            assert_eq!(e.code, "MissingApiVersionParameter");
            let v: serde_json::Value = serde_json::from_slice(&e.body()).expect("json");
            assert_eq!(v["error"]["code"], "MissingApiVersionParameter");
        }
    }

    #[test]
    fn scopes_parse_and_need_their_ids() {
        assert_eq!(
            parse(br#"{"scope":"Account"}"#).expect("ok").0,
            Target::Account
        );
        assert_eq!(
            parse(br#"{"scope":"Project","projectId":"p1"}"#)
                .expect("ok")
                .0,
            Target::Project("p1".into())
        );
        assert_eq!(
            parse(br#"{"scope":"Video","videoId":"v1"}"#).expect("ok").0,
            Target::Resource {
                id: "v1".into(),
                rty: ResourceType::Vod
            }
        );
        for bad in [
            &br#"{"scope":"Project"}"#[..],
            br#"{"scope":"Video","videoId":""}"#,
            br#"{"scope":"account"}"#,
            br#"{}"#,
            br#"{"scope":"Account","extra":1}"#,
            br#"[]"#,
        ] {
            let e = parse(bad).expect_err("invalid");
            assert_eq!(
                e.http,
                StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn b11_a_store_outage_is_arm_service_unavailable() {
        let e = Error::from(IssueError::Unavailable);
        assert_eq!((e.http.as_u16(), e.code), (503, "ServiceUnavailable"));
        let v: serde_json::Value = serde_json::from_slice(&e.body()).expect("json");
        assert_eq!(v["error"]["code"], "ServiceUnavailable");
        assert_eq!(Error::from(IssueError::Internal).http.as_u16(), 500);
    }
}
