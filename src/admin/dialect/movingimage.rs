//! movingimage VideoManager Pro: login, refresh, and the VideoManager list.
//!
//! `POST /v1/vms/auth/login {username,password}` and
//! `POST /v1/vms/auth/refresh/{videoManagerId} {refreshToken}` both answer
//! `{accessToken, refreshToken, videoManagerList:[{id,name}], validForVideoManager}`
//! (`seeds/movingimage-access-refresh-tokens.txt`); `GET /v1/vms/video-managers` with
//! `Authorization: Bearer <accessToken>` lists the caller's VideoManagers. The seed shows
//! no error body, so errors are `{"code": <HTTP status>, "message": "…"}`; a failed login
//! says the same thing for an unknown user and a wrong password (docs/threat-model.md, B3),
//! and a store that cannot be reached is `{"code": 503, …}`, never 401.

use http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::admin::issuer::IssueError;

/// One VideoManager (an organisation) as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VideoManager {
    pub id: String,
    pub name: String,
}

/// The body of a successful login or refresh.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub video_manager_list: Vec<VideoManager>,
    pub valid_for_video_manager: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    username: Option<String>,
    password: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshBody {
    refresh_token: Option<String>,
}

/// A movingimage error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub http: StatusCode,
    pub message: &'static str,
}

impl Error {
    pub const BAD_REQUEST: Error = Error {
        http: StatusCode::BAD_REQUEST,
        message: "the request body is not valid",
    };
    /// Unknown user and wrong password alike.
    pub const BAD_CREDENTIALS: Error = Error {
        http: StatusCode::UNAUTHORIZED,
        message: "invalid username or password",
    };
    pub const BAD_REFRESH: Error = Error {
        http: StatusCode::UNAUTHORIZED,
        message: "the refresh token is not valid",
    };
    pub const BAD_ACCESS: Error = Error {
        http: StatusCode::UNAUTHORIZED,
        message: "the access token is missing or not valid",
    };
    pub const FORBIDDEN_VM: Error = Error {
        http: StatusCode::FORBIDDEN,
        message: "this user may not use that VideoManager",
    };
    pub const TOO_MANY: Error = Error {
        http: StatusCode::TOO_MANY_REQUESTS,
        message: "too many login attempts; retry later",
    };
    pub const INTERNAL: Error = Error {
        http: StatusCode::INTERNAL_SERVER_ERROR,
        message: "internal error",
    };
    /// The store cannot be reached: try again (the router adds `Retry-After`). Never
    /// 401: the credentials were not judged.
    pub const UNAVAILABLE: Error = Error {
        http: StatusCode::SERVICE_UNAVAILABLE,
        message: "the service is temporarily unavailable; retry later",
    };

    /// An issuing or store failure: 503 for an outage, 500 for anything else.
    pub fn failure(e: &IssueError) -> Error {
        match e {
            IssueError::Unavailable => Error::UNAVAILABLE,
            _ => Error::INTERNAL,
        }
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({ "code": self.http.as_u16(), "message": self.message })
            .to_string()
            .into_bytes()
    }
}

/// `{username, password}`, both non-empty.
pub fn parse_login(body: &[u8]) -> Result<(String, String), Error> {
    let b: LoginBody = serde_json::from_slice(body).map_err(|_| Error::BAD_REQUEST)?;
    match (b.username, b.password) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Ok((u, p)),
        _ => Err(Error::BAD_REQUEST),
    }
}

/// `{refreshToken}`, non-empty.
pub fn parse_refresh(body: &[u8]) -> Result<String, Error> {
    let b: RefreshBody = serde_json::from_slice(body).map_err(|_| Error::BAD_REQUEST)?;
    b.refresh_token
        .filter(|t| !t.is_empty())
        .ok_or(Error::BAD_REQUEST)
}

pub fn render(tokens: &Tokens) -> Vec<u8> {
    serde_json::to_vec(tokens).unwrap_or_default()
}

pub fn render_list(list: &[VideoManager]) -> Vec<u8> {
    serde_json::to_vec(list).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_parse_and_refuse_what_is_missing() {
        assert_eq!(
            parse_login(br#"{"username":"u","password":"p"}"#),
            Ok(("u".into(), "p".into()))
        );
        for bad in [
            &br#"{"username":"u"}"#[..],
            br#"{"username":"","password":"p"}"#,
            b"x",
            br#"{"username":"u","password":"p","x":1}"#,
            // The document's curl example quotes with ' : not JSON (README lists it).
            br#"{'username':'u', 'password':'p'}"#,
        ] {
            assert_eq!(parse_login(bad), Err(Error::BAD_REQUEST));
        }
        assert_eq!(parse_refresh(br#"{"refreshToken":"r"}"#), Ok("r".into()));
        assert_eq!(
            parse_refresh(br#"{"refreshToken":""}"#),
            Err(Error::BAD_REQUEST)
        );
    }

    #[test]
    fn the_token_body_uses_the_documented_field_names() {
        let body = render(&Tokens {
            access_token: "a".into(),
            refresh_token: "r".into(),
            video_manager_list: vec![VideoManager {
                id: "1".into(),
                name: "VM".into(),
            }],
            valid_for_video_manager: "1".into(),
        });
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(v["accessToken"], "a");
        assert_eq!(v["refreshToken"], "r");
        assert_eq!(v["videoManagerList"][0]["id"], "1");
        assert_eq!(v["videoManagerList"][0]["name"], "VM");
        assert_eq!(v["validForVideoManager"], "1");
    }

    #[test]
    fn b11_a_store_outage_is_503_never_401() {
        assert_eq!(Error::failure(&IssueError::Unavailable).http.as_u16(), 503);
        let v: serde_json::Value =
            serde_json::from_slice(&Error::UNAVAILABLE.body()).expect("json");
        assert_eq!(v["code"], 503);
        assert_eq!(Error::failure(&IssueError::Internal).http.as_u16(), 500);
    }
}
