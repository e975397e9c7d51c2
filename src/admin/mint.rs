//! `tollgate token mint`: the operator's rules for a token signed on the command line
//! with the configured active key.
//!
//! Owns the defaults a configured resource supplies (its type, organisation and project),
//! the `never` lifetime rule, the cap `token.max_lifetime` puts on `--ttl` and
//! `--session` (as the admin APIs apply it: a `jti` revocation is kept only that long,
//! so no token of this gate may outlive it), the session end and the fields each scope
//! needs. Signing is
//! `token::mint`'s; this module only builds its request from the config and the options.

use crate::config::{parse_duration, Config};
use crate::resource::{Resource, ResourceType};
use crate::token::keys::KeyError;
use crate::token::{self, Claims, KeySet, MintRequest, Scope, TokenError};

/// The command line's mint options, as given.
#[derive(Debug, Clone)]
pub struct MintOptions {
    /// Resource id; with scope `project` or `account`, its project/org are used unless given.
    pub resource: Option<String>,
    /// Resource type name; default: the configured resource's, else `vod`.
    pub resource_type: Option<String>,
    pub scope: Scope,
    pub org: Option<String>,
    pub project: Option<String>,
    /// A lifetime like `60s` or `1h`, or `never`.
    pub ttl: String,
    pub sub: Option<String>,
    pub ip: Option<String>,
    pub acl: Vec<String>,
    /// Session end for live renewal, as a lifetime from now.
    pub session: Option<String>,
    /// An admin token (`adm`): it also plays unpublished resources.
    pub admin: bool,
}

/// Why no token was minted.
#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error("unknown type {0:?}")]
    UnknownType(String),
    #[error("--ttl never needs token.allow_never_expiring = true in the config")]
    NeverNotAllowed,
    #[error("--ttl {0:?} is not a duration like 60s")]
    Ttl(String),
    #[error("--session {0:?} is not a duration like 4h")]
    Session(String),
    #[error("{0} is longer than token.max_lifetime ({1}s)")]
    BeyondMaxLifetime(&'static str, u64),
    #[error("{0}")]
    Scope(&'static str),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Mint a token at `now` with the config's active key and issuer.
pub fn mint(cfg: &Config, opts: &MintOptions, now: u64) -> Result<(String, Claims), MintError> {
    let keys = KeySet::load(&cfg.keys)?;
    let req = request(cfg, opts, now)?;
    Ok(token::mint(&keys, &cfg.token.issuer, &req, now)?)
}

/// The signing request the options and the config make, checked for what its scope needs.
pub fn request(cfg: &Config, opts: &MintOptions, now: u64) -> Result<MintRequest, MintError> {
    let configured = configured_resource(cfg, opts);
    let req = MintRequest {
        scope: opts.scope,
        rid: opts.resource.clone(),
        rty: Some(resource_type(opts, configured)?),
        org: opts
            .org
            .clone()
            .or_else(|| configured.map(|r| r.org.clone())),
        prj: opts
            .project
            .clone()
            .or_else(|| configured.and_then(|r| r.project.clone())),
        sub: opts.sub.clone(),
        name: None,
        ttl: lifetime(cfg, &opts.ttl)?,
        ip: opts.ip.clone(),
        acl: opts.acl.clone(),
        sxp: session_end(opts.session.as_deref(), now)?,
        aud: cfg.token.audience.first().cloned(),
        family: None,
        admin: opts.admin,
    };
    check_scope(&req)?;
    check_max_lifetime(cfg, &req, now)?;
    Ok(req)
}

/// Neither the token's lifetime nor its session may exceed `token.max_lifetime`.
fn check_max_lifetime(cfg: &Config, req: &MintRequest, now: u64) -> Result<(), MintError> {
    let Some(max) = cfg.token.max_lifetime else {
        return Ok(());
    };
    let beyond = |what| MintError::BeyondMaxLifetime(what, max.as_secs());
    if req.ttl.is_none_or(|ttl| ttl > max) {
        return Err(beyond("--ttl"));
    }
    if req
        .sxp
        .is_some_and(|sxp| sxp.saturating_sub(now) > max.as_secs())
    {
        return Err(beyond("--session"));
    }
    Ok(())
}

/// The configured resource the options name (by id, and by type when one is given).
fn configured_resource<'a>(cfg: &'a Config, opts: &MintOptions) -> Option<&'a Resource> {
    let id = opts.resource.as_ref()?;
    cfg.resources.iter().find(|r| {
        &r.id == id
            && opts
                .resource_type
                .as_deref()
                .is_none_or(|t| t == r.resource_type.as_str())
    })
}

fn resource_type(
    opts: &MintOptions,
    configured: Option<&Resource>,
) -> Result<ResourceType, MintError> {
    match (&opts.resource_type, configured) {
        (Some(t), _) => ResourceType::parse(t).ok_or_else(|| MintError::UnknownType(t.clone())),
        (None, Some(r)) => Ok(r.resource_type),
        (None, None) => Ok(ResourceType::Vod),
    }
}

/// `None` is a token that never expires, which the config must allow.
fn lifetime(cfg: &Config, ttl: &str) -> Result<Option<std::time::Duration>, MintError> {
    match ttl {
        "never" if cfg.token.allow_never_expiring => Ok(None),
        "never" => Err(MintError::NeverNotAllowed),
        t => parse_duration(t)
            .map(Some)
            .ok_or_else(|| MintError::Ttl(t.to_string())),
    }
}

fn session_end(session: Option<&str>, now: u64) -> Result<Option<u64>, MintError> {
    session
        .map(|s| {
            parse_duration(s)
                .map(|d| now + d.as_secs())
                .ok_or_else(|| MintError::Session(s.to_string()))
        })
        .transpose()
}

fn check_scope(req: &MintRequest) -> Result<(), MintError> {
    match req.scope {
        Scope::Resource if req.rid.is_none() => {
            Err(MintError::Scope("--scope resource needs --resource"))
        }
        Scope::Project if req.prj.is_none() => Err(MintError::Scope(
            "--scope project needs --project or a configured --resource",
        )),
        Scope::Account if req.org.is_none() => Err(MintError::Scope(
            "--scope account needs --org or a configured --resource",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn config(allow_never: bool) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            r#"
[edge]
tls_listen = ""
plain_listen = "127.0.0.1:0"

[store]
path = "state/tollgate.db"

[token]
issuer = "mint-test"
audience = ["gate-a"]
allow_never_expiring = {allow_never}

[[keys]]
kid = "k1"
alg = "EdDSA"
public = "keys/k1.pub.pem"
private = "keys/k1.pem"
active = true
dev_generate = true

[[resources]]
id = "demo"
type = "live"
org = "o1"
project = "p1"
"#
        );
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, text).expect("write config");
        let cfg = Config::load(&path).expect("valid config");
        crate::token::keys::ensure_dev_keys(&cfg.keys).expect("keys");
        (dir, cfg)
    }

    fn opts(resource: Option<&str>) -> MintOptions {
        MintOptions {
            resource: resource.map(Into::into),
            resource_type: None,
            scope: Scope::Resource,
            org: None,
            project: None,
            ttl: "1h".into(),
            sub: None,
            ip: None,
            acl: Vec::new(),
            session: None,
            admin: false,
        }
    }

    #[test]
    fn a_configured_resource_supplies_type_org_and_project() {
        let (_dir, cfg) = config(false);
        let req = request(&cfg, &opts(Some("demo")), 1_000).expect("request");
        assert_eq!(req.rty, Some(ResourceType::Live));
        assert_eq!(req.org.as_deref(), Some("o1"));
        assert_eq!(req.prj.as_deref(), Some("p1"));
        assert_eq!(req.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(req.aud.as_deref(), Some("gate-a"));
    }

    #[test]
    fn an_unconfigured_resource_is_vod_unless_a_type_is_given() {
        let (_dir, cfg) = config(false);
        let req = request(&cfg, &opts(Some("other")), 1_000).expect("request");
        assert_eq!((req.rty, req.org), (Some(ResourceType::Vod), None));
        let typed = MintOptions {
            resource_type: Some("vod".into()),
            ..opts(Some("demo"))
        };
        let req = request(&cfg, &typed, 1_000).expect("request");
        assert_eq!(req.rty, Some(ResourceType::Vod));
        assert_eq!(req.org, None, "demo is configured as live, not vod");
    }

    #[test]
    fn never_expiring_needs_the_config_to_allow_it() {
        let never = MintOptions {
            ttl: "never".into(),
            ..opts(Some("demo"))
        };
        let (_dir, strict) = config(false);
        assert!(matches!(
            request(&strict, &never, 1_000),
            Err(MintError::NeverNotAllowed)
        ));
        let (_dir, lax) = config(true);
        assert_eq!(request(&lax, &never, 1_000).expect("request").ttl, None);
    }

    #[test]
    fn a_session_ends_that_long_after_now() {
        let (_dir, cfg) = config(false);
        let live = MintOptions {
            session: Some("4h".into()),
            ..opts(Some("demo"))
        };
        let req = request(&cfg, &live, 1_000).expect("request");
        assert_eq!(req.sxp, Some(1_000 + 4 * 3600));
    }

    /// A jti revocation is kept for `token.max_lifetime`: a token minted here may not
    /// outlive it, by its lifetime or by its session.
    #[test]
    fn mint_refuses_a_ttl_or_session_beyond_max_lifetime() {
        let (_dir, mut cfg) = config(true);
        cfg.token.max_lifetime = Some(Duration::from_secs(2 * 3600));
        let with = |ttl: &str, session: Option<&str>| MintOptions {
            ttl: ttl.into(),
            session: session.map(Into::into),
            ..opts(Some("demo"))
        };
        let got = |o: &MintOptions| request(&cfg, o, 1_000).err();
        assert!(got(&with("2h", Some("2h"))).is_none());
        for (o, what) in [
            (with("3h", None), "--ttl"),
            (with("never", None), "--ttl"),
            (with("30s", Some("7201s")), "--session"),
        ] {
            assert!(
                matches!(got(&o), Some(MintError::BeyondMaxLifetime(w, 7200)) if w == what),
                "{what}"
            );
        }
    }

    #[test]
    fn an_unknown_type_a_bad_ttl_or_session_is_refused_with_its_reason() {
        let (_dir, cfg) = config(false);
        let base = || opts(Some("demo"));
        let film = MintOptions {
            resource_type: Some("film".into()),
            ..base()
        };
        let soon = MintOptions {
            ttl: "soon".into(),
            ..base()
        };
        let x = MintOptions {
            session: Some("x".into()),
            ..base()
        };
        let got = |o: &MintOptions| request(&cfg, o, 1_000).err();
        assert!(matches!(got(&film), Some(MintError::UnknownType(_))));
        assert!(matches!(got(&soon), Some(MintError::Ttl(_))));
        assert!(matches!(got(&x), Some(MintError::Session(_))));
    }

    #[test]
    fn each_scope_needs_its_field() {
        let (_dir, cfg) = config(false);
        let cases = [
            (Scope::Resource, opts(None)),
            (Scope::Project, opts(Some("other"))),
            (Scope::Account, opts(None)),
        ];
        for (scope, o) in cases {
            let o = MintOptions { scope, ..o };
            assert!(
                matches!(request(&cfg, &o, 1_000), Err(MintError::Scope(_))),
                "{scope:?}"
            );
        }
        let project = MintOptions {
            scope: Scope::Project,
            ..opts(Some("demo"))
        };
        assert_eq!(
            request(&cfg, &project, 1_000).expect("ok").prj.as_deref(),
            Some("p1")
        );
    }

    #[test]
    fn mint_signs_with_the_active_key_and_the_configured_issuer() {
        let (_dir, cfg) = config(false);
        let (token, claims) = mint(&cfg, &opts(Some("demo")), 1_000).expect("mint");
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(claims.iss, "mint-test");
        assert_eq!(claims.exp, Some(1_000 + 3600));
    }
}
