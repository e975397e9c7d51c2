//! Azure Video Indexer: `generateRestrictedViewerAccessToken`.
//!
//! `POST /subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/
//! Microsoft.VideoIndexer/accounts/{accountName}/generateRestrictedViewerAccessToken
//! ?api-version=…` with `{"scope":"Account"|"Project"|"Video","projectId"?,"videoId"?}`
//! → 200 `{"accessToken"}`. Path and query are validated as
//! `seeds/azure-video-indexer-restricted-viewer-token.txt` says (accountName 3–50 of
//! `[A-Za-z0-9-]`, resourceGroupName 1–90, subscriptionId ≥ 1, api-version required);
//! errors are `{"error":{"code","message","details":[]}}`. The account is the
//! organisation whose id equals `accountName`; a `Video` is a VOD resource.

use std::time::Duration;

use http::StatusCode;
use serde::Deserialize;

use crate::admin::issuer::{Expiry, IssueError, Issued, Target};
use crate::resource::ResourceType;

/// Restricted viewer tokens live an hour, as Azure's do.
pub const LIFETIME: Duration = Duration::from_secs(3600);

/// The path parameters of a matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathParams<'a> {
    pub subscription: &'a str,
    pub resource_group: &'a str,
    pub account: &'a str,
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

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is missing or not valid.",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "AuthorizationFailed", message)
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
            IssueError::Internal => Error::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "internal error",
            ),
        }
    }
}

const PREFIX: &str = "/subscriptions/";
const ACTION: &str = "/generateRestrictedViewerAccessToken";

/// Split the path if it is this API's route (whatever the parameter values): Some(Ok)
/// when the parameters are valid, Some(Err) when they are not, None for another route.
pub fn match_path(path: &str) -> Option<Result<PathParams<'_>, Error>> {
    let rest = path.strip_prefix(PREFIX)?.strip_suffix(ACTION)?;
    let mut parts = rest.split('/');
    let (
        Some(sub),
        Some("resourceGroups"),
        Some(rg),
        Some("providers"),
        Some(ns),
        Some("accounts"),
        Some(account),
        None,
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return None;
    };
    if !ns.eq_ignore_ascii_case("Microsoft.VideoIndexer") {
        return None;
    }
    Some(validate(sub, rg, account))
}

fn validate<'a>(sub: &'a str, rg: &'a str, account: &'a str) -> Result<PathParams<'a>, Error> {
    if sub.is_empty() {
        return Err(Error::invalid("subscriptionId must not be empty"));
    }
    if rg.is_empty() || rg.chars().count() > 90 {
        return Err(Error::invalid(
            "resourceGroupName must be 1 to 90 characters",
        ));
    }
    let len_ok = (3..=50).contains(&account.len());
    let chars_ok = account
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if !len_ok || !chars_ok {
        return Err(Error::invalid(
            "accountName must be 3 to 50 characters of A-Z, a-z, 0-9 and '-'",
        ));
    }
    Ok(PathParams {
        subscription: sub,
        resource_group: rg,
        account,
    })
}

/// The `api-version` query parameter is required and non-empty.
pub fn check_api_version(query: Option<&str>) -> Result<(), Error> {
    let found = query
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .any(|(k, v)| k == "api-version" && !v.is_empty());
    if found {
        Ok(())
    } else {
        Err(Error::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ))
    }
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
            (p.subscription, p.resource_group, p.account),
            ("b04775c3", "contoso-rg", "contoso-vi")
        );
        assert!(match_path("/subscriptions/x/other").is_none());
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
}
