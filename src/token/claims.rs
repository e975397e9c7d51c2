//! The token's claims as they travel ([`Claims`]) and as the edge uses them ([`Grant`]).
//!
//! [`Claims`] is the JSON payload, exactly as `docs/architecture.md` ("Tokens") lists it. Deserialising it
//! is strict: a registered time claim that is not a non-negative integer (a string, a
//! float, a negative or an array), or any claim given twice, fails as `malformed`.
//! [`Grant`] is what survives verification: typed, with the `ip` binding and `acl`
//! patterns parsed once, so that checking it on every request is a few comparisons.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::TokenError;
use crate::resource::ResourceType;

/// Latest time accepted in a time claim (9999-12-31T23:59:59Z). Larger values are
/// treated as malformed rather than "never", so that arithmetic on them cannot overflow.
pub const MAX_TIME: u64 = 253_402_300_799;

/// What a token covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Every resource of `org`.
    Account,
    /// Every resource of project `prj`.
    Project,
    /// The one resource `rid` of type `rty`.
    Resource,
}

/// `aud` is either one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The JWT payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prj: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rty: Option<ResourceType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sxp: Option<u64>,
    /// Refresh family (movingimage access tokens): revoking the family revokes the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fam: Option<String>,
    /// Issued by an admin call (BlendVision `tokens:admin`, `token mint --admin`): the
    /// only tokens that play unpublished resources. Present only when true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adm: Option<bool>,
}

/// The part of a verified token that authorisation reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The key that verified it (reloads drop cached grants of removed keys).
    pub kid: String,
    pub sub: Option<String>,
    pub jti: Option<String>,
    /// The `jti` as the revocation set keys it when tollgate made it (its 16 bytes),
    /// worked out once here so that the per-request revocation check does not; None
    /// for any other `jti` (the check then works it out itself, so a grant built
    /// without it is checked the same).
    pub jti_key: Option<[u8; 16]>,
    pub nbf: Option<u64>,
    /// None only for never-expiring tokens, where the configuration allows them.
    pub exp: Option<u64>,
    pub sxp: Option<u64>,
    pub org: Option<String>,
    pub scope: Scope,
    pub prj: Option<String>,
    pub rid: Option<String>,
    pub rty: Option<ResourceType>,
    pub acl: Vec<String>,
    pub ip: Option<IpNet>,
    pub fam: Option<String>,
    /// The `adm` claim: may play unpublished resources.
    pub admin: bool,
}

impl Grant {
    /// Check and convert claims whose signature has been verified.
    pub fn from_claims(
        kid: &str,
        c: Claims,
        issuer: &str,
        audience: &[String],
        allow_never_expiring: bool,
    ) -> Result<Self, TokenError> {
        for t in [c.iat, c.nbf, c.exp, c.sxp].into_iter().flatten() {
            if t > MAX_TIME {
                return Err(TokenError::Malformed);
            }
        }
        if c.exp.is_none() && !allow_never_expiring {
            return Err(TokenError::Malformed);
        }
        if c.iss != issuer {
            return Err(TokenError::Issuer);
        }
        match (&c.aud, audience.is_empty()) {
            (None, true) => {}
            (None, false) => return Err(TokenError::Audience),
            // A token addressed to someone must be refused by a gate that is not named.
            (Some(_), true) => return Err(TokenError::Audience),
            (Some(Audience::One(a)), false) => {
                if !audience.iter().any(|x| x == a) {
                    return Err(TokenError::Audience);
                }
            }
            (Some(Audience::Many(list)), false) => {
                if !list.iter().any(|a| audience.iter().any(|x| x == a)) {
                    return Err(TokenError::Audience);
                }
            }
        }
        // Each scope needs the claim it is checked against.
        let complete = match c.scope {
            Scope::Account => c.org.is_some(),
            Scope::Project => c.prj.is_some(),
            Scope::Resource => c.rid.is_some() && c.rty.is_some(),
        };
        if !complete {
            return Err(TokenError::Malformed);
        }
        let ip = match &c.ip {
            None => None,
            Some(s) => Some(parse_net(s).ok_or(TokenError::Malformed)?),
        };
        let acl = c.acl.unwrap_or_default();
        if acl.iter().any(|p| !p.starts_with('/')) {
            return Err(TokenError::Malformed);
        }
        Ok(Grant {
            kid: kid.to_string(),
            sub: c.sub,
            jti_key: c.jti.as_deref().and_then(super::revocations::own_jti),
            jti: c.jti,
            nbf: c.nbf,
            exp: c.exp,
            sxp: c.sxp,
            org: c.org,
            scope: c.scope,
            prj: c.prj,
            rid: c.rid,
            rty: c.rty,
            acl,
            ip,
            fam: c.fam,
            admin: c.adm == Some(true),
        })
    }

    /// Does the `ip` binding (if any) admit `client`?
    pub fn admits_ip(&self, client: IpAddr) -> bool {
        match self.ip {
            None => true,
            Some(net) => net.contains(&client.to_canonical()),
        }
    }
}

/// An address (`10.0.0.1`) or a network (`10.0.0.0/8`): the `ip` claim's form, and the
/// configuration's `trusted_proxies`.
pub fn parse_net(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> Result<Claims, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn a7_time_claims_of_the_wrong_type_do_not_deserialise() {
        for bad in [
            r#"{"iss":"i","scope":"account","org":"o","exp":"1700000000"}"#,
            r#"{"iss":"i","scope":"account","org":"o","exp":1.5}"#,
            r#"{"iss":"i","scope":"account","org":"o","exp":-1}"#,
            r#"{"iss":"i","scope":"account","org":"o","exp":[1]}"#,
            r#"{"iss":"i","scope":"account","org":"o","exp":1e40}"#,
            r#"{"iss":"i","scope":"account","org":"o","exp":1,"exp":2}"#,
            r#"{"iss":"i","scope":"account","org":"o","org":"p","exp":1}"#,
        ] {
            assert!(claims(bad).is_err(), "{bad} must not deserialise");
        }
    }

    #[test]
    fn a7_huge_times_are_malformed() {
        let c = claims(r#"{"iss":"i","scope":"account","org":"o","exp":18446744073709551615}"#)
            .expect("fits in u64");
        assert_eq!(
            Grant::from_claims("k", c, "i", &[], false),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn missing_exp_is_malformed_unless_allowed() {
        let c = claims(r#"{"iss":"i","scope":"account","org":"o"}"#).expect("valid json");
        assert_eq!(
            Grant::from_claims("k", c.clone(), "i", &[], false),
            Err(TokenError::Malformed)
        );
        assert!(Grant::from_claims("k", c, "i", &[], true).is_ok());
    }

    #[test]
    fn a9_issuer_and_audience_must_match() {
        let c = claims(r#"{"iss":"other","scope":"account","org":"o","exp":5}"#).expect("json");
        assert_eq!(
            Grant::from_claims("k", c, "i", &[], false),
            Err(TokenError::Issuer)
        );
        let c =
            claims(r#"{"iss":"i","aud":"x","scope":"account","org":"o","exp":5}"#).expect("json");
        assert_eq!(
            Grant::from_claims("k", c.clone(), "i", &["gate".into()], false),
            Err(TokenError::Audience)
        );
        assert_eq!(
            Grant::from_claims("k", c, "i", &[], false),
            Err(TokenError::Audience)
        );
        let c = claims(r#"{"iss":"i","aud":["x","gate"],"scope":"account","org":"o","exp":5}"#)
            .expect("json");
        assert!(Grant::from_claims("k", c, "i", &["gate".into()], false).is_ok());
    }

    #[test]
    fn a_scope_without_its_claim_is_malformed() {
        let c = claims(r#"{"iss":"i","scope":"resource","rid":"a","exp":5}"#).expect("json");
        assert_eq!(
            Grant::from_claims("k", c, "i", &[], false),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn ip_binding_accepts_cidrs_and_mapped_addresses() {
        let c = claims(r#"{"iss":"i","scope":"account","org":"o","exp":5,"ip":"10.0.0.0/8"}"#)
            .expect("json");
        let g = Grant::from_claims("k", c, "i", &[], false).expect("valid");
        assert!(g.admits_ip("10.1.2.3".parse().expect("ip")));
        assert!(g.admits_ip("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(!g.admits_ip("11.1.2.3".parse().expect("ip")));
    }
}
