//! Authorisation: does a verified [`Grant`] allow this request, at this time?
//!
//! Checked on every request, cache hit or not, in this order: time (`nbf`, `exp`, with
//! leeway), revocation, scope against the resource (an unpublished resource only for an
//! admin token, whatever the scope), `ip` binding, `acl` against the path. The path is
//! the same normalised value the request is forwarded with.

use std::net::IpAddr;

use super::claims::{Grant, Scope};
use super::revocations::Revocations;
use super::TokenError;
use crate::resource::{Resource, ResourceType};

/// What a request asks for.
pub struct Target<'a> {
    /// The route's resource type.
    pub resource_type: ResourceType,
    /// The resource id from the route's `{rid}` segment.
    pub rid: &'a str,
    /// The registered resource, if the registry knows it. Unknown resources can only be
    /// reached by a resource-scoped token naming them exactly (organisation and project
    /// cannot be checked for them).
    pub resource: Option<&'a Resource>,
    /// The normalised path, token removed.
    pub path: &'a str,
    /// The client address (after trusted-proxy resolution).
    pub client: IpAddr,
}

/// Does `grant` allow `target` at `now` (Unix seconds), with `leeway` seconds of skew?
pub fn authorize(
    grant: &Grant,
    target: &Target<'_>,
    now: u64,
    leeway: u64,
    revocations: &Revocations,
) -> Result<(), TokenError> {
    authorize_until(grant, grant.exp, target, now, leeway, revocations)
}

/// [`authorize`] with `until` standing in for the token's own `exp` (None: no end);
/// every other check is the same. Which requests may outlive `exp`, and until when, is
/// the caller's rule, not the token's: the edge's live-session rule (`edge/access.rs`)
/// passes the token's `sxp` here.
pub fn authorize_until(
    grant: &Grant,
    until: Option<u64>,
    target: &Target<'_>,
    now: u64,
    leeway: u64,
    revocations: &Revocations,
) -> Result<(), TokenError> {
    if let Some(nbf) = grant.nbf {
        if nbf > now.saturating_add(leeway) {
            return Err(TokenError::NotYetValid);
        }
    }
    if let Some(end) = until {
        if end.saturating_add(leeway) < now {
            return Err(TokenError::Expired);
        }
    }
    if revocations.is_revoked(grant) {
        return Err(TokenError::Revoked);
    }
    if !in_scope(grant, target) || !may_play_unpublished(grant.admin, target.resource) {
        return Err(TokenError::Scope);
    }
    if !grant.admits_ip(target.client) {
        return Err(TokenError::Ip);
    }
    if !grant.acl.is_empty() && !grant.acl.iter().any(|p| acl_matches(p, target.path)) {
        return Err(TokenError::Acl);
    }
    Ok(())
}

/// Does the token's scope cover the target? Scope `account` needs the same `org`,
/// `project` the same `prj`, `resource` the same `rid` and `rty`.
fn in_scope(grant: &Grant, target: &Target<'_>) -> bool {
    match grant.scope {
        Scope::Resource => {
            grant.rid.as_deref() == Some(target.rid) && grant.rty == Some(target.resource_type)
        }
        Scope::Project => target.resource.is_some_and(|r| {
            r.project.is_some()
                && r.project == grant.prj
                && grant.org.as_ref().is_none_or(|org| *org == r.org)
        }),
        Scope::Account => target
            .resource
            .is_some_and(|r| grant.org.as_deref() == Some(r.org.as_str())),
    }
}

/// The one unpublished rule, whatever the scope: an unpublished resource plays only for
/// an admin token (`adm`). Checked here, not only when issuing, because project and
/// account tokens name no resource when they are issued, and a resource unpublished
/// after its tokens were issued must stop playing too. A resource the registry does not
/// know has no published state to check. A foreign credential is never an admin's.
pub fn may_play_unpublished(admin: bool, resource: Option<&Resource>) -> bool {
    admin || resource.is_none_or(|r| r.published)
}

/// An `acl` pattern: without `*` it is a path prefix; with `*`, each `*` matches any run
/// of characters (including `/`) and the whole path must match.
pub fn acl_matches(pattern: &str, path: &str) -> bool {
    // No collecting: this runs on every request of a token with an ACL.
    let Some((head, last)) = pattern.rsplit_once('*') else {
        return path.starts_with(pattern);
    };
    let mut parts = head.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    for part in parts {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(scope: Scope) -> Grant {
        Grant {
            kid: "k".into(),
            sub: Some("u".into()),
            jti: Some("j".into()),
            jti_key: None,
            nbf: None,
            exp: Some(1_000),
            sxp: None,
            org: Some("org1".into()),
            scope,
            prj: Some("p1".into()),
            rid: Some("a".into()),
            rty: Some(ResourceType::Vod),
            acl: vec![],
            ip: None,
            fam: None,
            admin: false,
        }
    }

    fn resource(id: &str, org: &str, project: &str) -> Resource {
        Resource {
            id: id.into(),
            resource_type: ResourceType::Vod,
            org: org.into(),
            project: Some(project.into()),
            public: false,
            published: true,
        }
    }

    fn check(
        g: &Grant,
        rid: &str,
        res: Option<&Resource>,
        path: &str,
        now: u64,
    ) -> Result<(), TokenError> {
        let target = Target {
            resource: res,
            ..target(ResourceType::Vod, rid, path)
        };
        authorize(g, &target, now, 5, &Revocations::default())
    }

    /// A request from 192.0.2.1 for `path` under the unregistered resource `rid`.
    fn target<'a>(resource_type: ResourceType, rid: &'a str, path: &'a str) -> Target<'a> {
        Target {
            resource_type,
            rid,
            resource: None,
            path,
            client: "192.0.2.1".parse().expect("ip"),
        }
    }

    #[test]
    fn a6_leeway_is_inclusive_to_the_second() {
        let g = grant(Scope::Resource);
        assert_eq!(check(&g, "a", None, "/vod/a/x", 1_005), Ok(()));
        assert_eq!(
            check(&g, "a", None, "/vod/a/x", 1_006),
            Err(TokenError::Expired)
        );
        let g = Grant {
            nbf: Some(2_000),
            exp: Some(3_000),
            ..grant(Scope::Resource)
        };
        assert_eq!(check(&g, "a", None, "/vod/a/x", 1_995), Ok(()));
        assert_eq!(
            check(&g, "a", None, "/vod/a/x", 1_994),
            Err(TokenError::NotYetValid)
        );
    }

    #[test]
    fn a14_resource_scope_needs_the_same_id_and_type() {
        let g = grant(Scope::Resource);
        assert_eq!(
            check(&g, "b", None, "/vod/b/x", 900),
            Err(TokenError::Scope)
        );
        let target = target(ResourceType::Live, "a", "/live/a/x");
        assert_eq!(
            authorize(&g, &target, 900, 5, &Revocations::default()),
            Err(TokenError::Scope)
        );
    }

    #[test]
    fn b5_project_and_account_scopes_follow_the_registry() {
        let same = resource("b", "org1", "p1");
        let other_project = resource("c", "org1", "p2");
        let other_org = resource("d", "org2", "p1");
        let p = grant(Scope::Project);
        assert_eq!(check(&p, "b", Some(&same), "/vod/b/", 900), Ok(()));
        assert_eq!(
            check(&p, "c", Some(&other_project), "/vod/c/", 900),
            Err(TokenError::Scope)
        );
        assert_eq!(
            check(&p, "d", Some(&other_org), "/vod/d/", 900),
            Err(TokenError::Scope)
        );
        assert_eq!(check(&p, "z", None, "/vod/z/", 900), Err(TokenError::Scope));
        let a = grant(Scope::Account);
        assert_eq!(check(&a, "c", Some(&other_project), "/vod/c/", 900), Ok(()));
        assert_eq!(
            check(&a, "d", Some(&other_org), "/vod/d/", 900),
            Err(TokenError::Scope)
        );
    }

    /// The unpublished rule is the same for every scope: only an admin token plays an
    /// unpublished resource, with the reason an out-of-scope token gets.
    #[test]
    fn an_unpublished_resource_plays_only_for_an_admin_token_of_any_scope() {
        let unpublished = Resource {
            published: false,
            ..resource("a", "org1", "p1")
        };
        for scope in [Scope::Resource, Scope::Project, Scope::Account] {
            assert_eq!(
                check(&grant(scope), "a", Some(&unpublished), "/vod/a/x", 900),
                Err(TokenError::Scope),
                "{scope:?} token without adm"
            );
            let admin = Grant {
                admin: true,
                ..grant(scope)
            };
            assert_eq!(
                check(&admin, "a", Some(&unpublished), "/vod/a/x", 900),
                Ok(()),
                "{scope:?} token with adm"
            );
        }
        // Published, every scope plays without adm.
        let published = resource("a", "org1", "p1");
        for scope in [Scope::Resource, Scope::Project, Scope::Account] {
            assert_eq!(
                check(&grant(scope), "a", Some(&published), "/vod/a/x", 900),
                Ok(())
            );
        }
    }

    #[test]
    fn a14_ip_binding_refuses_other_clients() {
        let g = Grant {
            ip: crate::token::claims::parse_net("198.51.100.0/24"),
            ..grant(Scope::Resource)
        };
        assert_eq!(check(&g, "a", None, "/vod/a/x", 900), Err(TokenError::Ip));
    }

    #[test]
    fn acl_patterns_are_prefixes_or_globs() {
        assert!(acl_matches("/vod/a/", "/vod/a/v0/seg.ts"));
        assert!(!acl_matches("/vod/a/", "/vod/ab/seg.ts"));
        assert!(acl_matches("/vod/a/*.ts", "/vod/a/v0/seg.ts"));
        assert!(!acl_matches("/vod/a/*.ts", "/vod/a/v0/seg.m3u8"));
        assert!(acl_matches("/vod/*/v0/*", "/vod/a/v0/x"));
        assert!(!acl_matches("/vod/*/v1/*", "/vod/a/v0/x"));
        let g = Grant {
            acl: vec!["/vod/a/v0/".into()],
            ..grant(Scope::Resource)
        };
        assert_eq!(
            check(&g, "a", None, "/vod/a/v1/x.ts", 900),
            Err(TokenError::Acl)
        );
        assert_eq!(check(&g, "a", None, "/vod/a/v0/x.ts", 900), Ok(()));
    }

    #[test]
    fn a17_revoked_grants_are_refused() {
        let g = grant(Scope::Resource);
        let r = Revocations::default();
        r.revoke_jti("j", None);
        let target = target(ResourceType::Vod, "a", "/vod/a/x");
        assert_eq!(authorize(&g, &target, 900, 5, &r), Err(TokenError::Revoked));
    }
}
