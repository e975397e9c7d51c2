//! Verify and authorise: may this client fetch this resource with this token, now?
//!
//! A public route or resource needs no token. Otherwise the token is verified (the
//! verification cache first; a miss costs signature work only while the client has
//! failed-verification budget left, so a flood of bad tokens becomes cheap 429s) and
//! authorised against the route's resource, the normalised path and the client address
//! on every request, cache hit or not.
//!
//! This module also owns the **live-session rule** ([`Access::session`]): the one
//! exception to "an expired token is refused"; and the **fresher-wins rule**
//! ([`Access::fresher`]): the one case where two different tokens in a request are not
//! a conflict. It never changes the request's headers (it reads them only for a Common
//! Access Token's `cath`), and never touches the origin or the response.

use std::net::IpAddr;
use std::sync::Arc;

use http::HeaderMap;

use super::extract::{ExtractError, ForeignPresented, Presented, Source};
use super::limit::EdgeLimits;
use super::log::{AccessLog, TokenId};
use super::registry::Resources;
use super::rewrite::Ask;
use super::route::Match;
use super::EdgeError;
use crate::resource::Resource;
use crate::token::cat::{self, CatReason, IfAction, Refusal};
use crate::token::foreign::{self, CachedCat, Foreign, ForeignGrant, Inputs};
use crate::token::{self, Grant, Revocations, TokenError, Verifier};

/// What authorisation needs besides the request.
pub struct Access {
    verifier: Arc<Verifier>,
    foreign: Arc<Foreign>,
    revocations: Arc<Revocations>,
    resources: Resources,
    leeway: u64,
}

/// One request as authorisation sees it.
pub struct Asking<'r> {
    pub route: &'r Match<'r, 'r>,
    /// The token and where it came from, if any.
    pub presented: Option<Presented<'r>>,
    /// A credential of one of the route's foreign formats (never beside a token).
    pub foreign: Option<ForeignPresented<'r>>,
    /// The host (lower case, no port) and the query as sent: what a foreign format's
    /// signature may cover besides the path and the client.
    pub host: &'r str,
    pub raw_query: Option<&'r str>,
    /// The request's authority as sent: the URL a CloudFront policy names.
    pub authority: &'r str,
    /// The request came over HTTPS (directly or as a trusted proxy says).
    pub https: bool,
    /// The normalised path, token removed: what is authorised is what is forwarded.
    pub path: &'r str,
    pub client: IpAddr,
    /// The manifest decision for this request.
    pub manifest: Ask,
    /// What a Common Access Token's claims may bind besides the above.
    pub cat: CatFacts<'r>,
    pub now: u64,
}

/// The request facts a CAT's claims bind (`cat::Request`) that [`Asking`] does not
/// already hold.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatFacts<'r> {
    /// The client reached the gate over TLS (directly or via a trusted proxy).
    pub https: bool,
    /// The port the client used (the scheme's default when the request named none).
    pub port: u16,
    pub method: &'r str,
    /// The query as forwarded: every credential removed.
    pub query: &'r str,
    /// The request's headers, read only for `cath`.
    pub headers: Option<&'r HeaderMap>,
}

/// Why a request may pass.
pub enum Granted<'r> {
    /// A public route or resource: no token needed (one sent is ignored).
    Public,
    /// A token that verified and covers the request.
    Token {
        presented: Presented<'r>,
        grant: Arc<Grant>,
        /// Accepted on the live-session rule: only a renewed manifest may answer.
        session: bool,
    },
    /// A foreign credential that verified and covers the request: its grant, for a
    /// format that renews (RFC 9246 `cdnistt`); never rewritten into manifests.
    Foreign {
        format: usize,
        grant: Arc<ForeignGrant>,
    },
    /// A Common Access Token that verified and authorised the request: the respond
    /// phase may renew it (`catr`) through the carrier it came in.
    Cat {
        cached: Arc<CachedCat>,
        /// The token's text, as presented.
        text: &'r str,
        source: Source,
        /// Accepted on the live-session allowance: only a manifest rewritten to carry
        /// a renewed token may answer.
        session: bool,
    },
    /// A Common Access Token refused on a claim its `catif` names: the answer is the
    /// token's (status and headers), the reason is still the refusal's.
    CatRefused {
        format: usize,
        reason: CatReason,
        action: IfAction,
    },
}

impl Access {
    pub fn new(
        verifier: Arc<Verifier>,
        foreign: Arc<Foreign>,
        revocations: Arc<Revocations>,
        resources: Resources,
        leeway: u64,
    ) -> Self {
        Access {
            verifier,
            foreign,
            revocations,
            resources,
            leeway,
        }
    }

    /// The resource registry requests are authorised against.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    pub fn verifier(&self) -> &Arc<Verifier> {
        &self.verifier
    }

    /// The renewal a foreign credential asks for, as the `Set-Cookie` value its format
    /// answers with (RFC 9246 `cdnistt` 1: the plugin's session cookie); None for
    /// everything else.
    pub fn foreign_renewal(&self, granted: &Granted<'_>, path: &str, now: u64) -> Option<String> {
        let Granted::Foreign { format, grant } = granted else {
            return None;
        };
        let kept = grant.uri_signing.as_deref()?.renewal.as_ref()?;
        let foreign::Kind::UriSigning(f) = &self.foreign.formats().get(*format)?.kind else {
            return None;
        };
        f.renew(kept, path, now).map(|r| f.cookie(&r))
    }

    /// The foreign formats (a `cat` format's keys mint its renewals).
    pub fn foreign(&self) -> &Foreign {
        &self.foreign
    }

    /// Verify and authorise `req`, then apply the per-subject limit (it needs the
    /// verified subject). The token's id goes to the access log.
    pub fn check<'r>(
        &self,
        req: &Asking<'r>,
        limits: &EdgeLimits,
        log: &mut AccessLog,
    ) -> Result<Granted<'r>, EdgeError> {
        let registry = self.resources.snapshot();
        let route = req.route;
        let resource = route
            .rid
            .and_then(|rid| registry.get(route.resource_type, rid));
        if route.public || resource.is_some_and(|r| r.public) {
            return Ok(Granted::Public);
        }
        if let Some(credential) = req.foreign {
            log.token = Some(TokenId::of_foreign(&credential.credential));
            if self.foreign.cat(credential.format).is_some() {
                return self.check_cat(&credential, req, resource, limits);
            }
            return self.check_foreign(&credential, req, resource, limits);
        }
        // A route that does not list "native" reads its token as no credential.
        let presented = req
            .presented
            .filter(|_| route.native)
            .ok_or(EdgeError::Missing)?;
        let target = token::Target {
            resource_type: route.resource_type,
            rid: route.rid.unwrap_or(""),
            resource,
            path: req.path,
            client: req.client,
        };
        let (presented, grant) = match presented.rival {
            None => {
                let grant = self.verify(presented.token, req.client, req.now, limits)?;
                (presented, grant)
            }
            Some(_) => self.fresher(presented, &target, req, limits)?,
        };
        log.token = Some(TokenId::of(presented.token, &grant));
        let session =
            match token::authorize(&grant, &target, req.now, self.leeway, &self.revocations) {
                Ok(()) => false,
                Err(TokenError::Expired) => {
                    self.session(&grant, &target, req)?;
                    true
                }
                Err(e) => return Err(EdgeError::Token(e)),
            };
        if let Some(sub) = grant.sub.as_deref() {
            limits.subject(route.index, sub)?;
        }
        Ok(Granted::Token {
            presented,
            grant,
            session,
        })
    }

    /// A foreign credential: the cached grant, or one verified now while the client has
    /// budget; then the rules every request re-checks (docs/architecture.md, "Foreign
    /// token formats"). The route is its scope: extraction read only the carriers of
    /// the formats it lists.
    fn check_foreign<'r>(
        &self,
        credential: &ForeignPresented<'_>,
        req: &Asking<'r>,
        resource: Option<&Resource>,
        limits: &EdgeLimits,
    ) -> Result<Granted<'r>, EdgeError> {
        let inputs = Inputs {
            path: req.path,
            client: req.client,
            host: req.host,
            query: req.raw_query,
            https: req.https,
            authority: req.authority,
        };
        let (format, cred) = (credential.format, &credential.credential);
        let grant = match self.foreign.cached(format, cred, &inputs, req.now) {
            Some(grant) => grant,
            None => limits.verify_within_budget(req.client, || {
                self.foreign
                    .verify_and_cache(format, cred, &inputs, req.now)
                    .map_err(EdgeError::Token)
            })?,
        };
        let (now, leeway) = (req.now, self.leeway);
        foreign::authorize(&grant, &inputs, resource, now, leeway, &self.revocations)?;
        Ok(Granted::Foreign { format, grant })
    }

    /// A Common Access Token: the cached verification (keyed by the token alone: a CAT
    /// binds no request input) or one made now while the client has budget; then
    /// `authorize` on every request, hit or not, and the `cti` against the revocations.
    /// A refusal on a claim the token's `catif` names is answered as the token says.
    fn check_cat<'r>(
        &self,
        credential: &ForeignPresented<'r>,
        req: &Asking<'r>,
        resource: Option<&Resource>,
        limits: &EdgeLimits,
    ) -> Result<Granted<'r>, EdgeError> {
        let (format, text) = (credential.format, credential.credential.fields[0]);
        let text = text.ok_or(EdgeError::Missing)?;
        let cfg = self.foreign.cat(format).ok_or(EdgeError::Missing)?;
        let cached = match self.foreign.cat_cached(format, text, req.now) {
            Some(cached) => cached,
            None => limits.verify_within_budget(req.client, || {
                self.foreign
                    .cat_verify_and_cache(format, text, req.now)
                    .map_err(EdgeError::Cat)
            })?,
        };
        // Headers are gathered only for a token that binds them (`cath`).
        let headers: Vec<(&str, &str)> = match (&cached.cat.claims.cath, req.cat.headers) {
            (Some(_), Some(h)) => h
                .iter()
                .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
                .collect(),
            _ => Vec::new(),
        };
        let facts = cat::Request {
            scheme: if req.cat.https { "https" } else { "http" },
            host: req.host,
            port: req.cat.port,
            path: req.path,
            query: req.cat.query,
            method: req.cat.method,
            client_ip: Some(req.client),
            headers: &headers,
            country: None,
            asn: None,
        };
        let replay = self.foreign.replay_guard();
        let policy = cfg.policy();
        let verdict = match cached.cat.authorize(&facts, policy, req.now, Some(replay)) {
            Err(Refusal {
                reason: CatReason::Expired,
                ..
            }) if cat_session_may_apply(cfg, &cached, credential.source, req) => cached
                .cat
                .authorize_within(&facts, policy, req.now, cfg.live_session(), Some(replay))
                .map(|_| true),
            other => other.map(|_| false),
        };
        let session = match verdict {
            Ok(session) => session,
            Err(Refusal {
                reason,
                catif: Some(action),
            }) => {
                return Ok(Granted::CatRefused {
                    format,
                    reason,
                    action,
                })
            }
            Err(refusal) => return Err(EdgeError::Cat(refusal.reason)),
        };
        // A `cti` in text is revocable like a `jti` (`tollgate revoke --jti`).
        let cti = cached.cat.claims.cti.as_deref();
        if cti
            .and_then(|c| std::str::from_utf8(c).ok())
            .is_some_and(|c| self.revocations.is_jti_revoked(c))
        {
            return Err(EdgeError::Token(TokenError::Revoked));
        }
        // A CAT is never an admin's: an unpublished resource does not play for it.
        if !token::authorize::may_play_unpublished(false, resource) {
            return Err(EdgeError::Token(TokenError::Scope));
        }
        Ok(Granted::Cat {
            cached,
            text,
            source: credential.source,
            session,
        })
    }

    /// The **fresher-wins rule**: a request with two different tokens (a page that appends
    /// its own token to every request, beside the renewed one a manifest gave the player)
    /// is answered with the fresher of the two only when both are copies of one session:
    ///
    /// - both verify (signature, key, claims);
    /// - both name the same `jti` (a renewal keeps it; every mint draws a new one);
    /// - both would authorise this request but for expiry: not revoked, in scope for this
    ///   resource and path, the client's address, `nbf`.
    ///
    /// The fresher (the later `exp`; no `exp` is latest) then goes through every check
    /// as if it had come alone, including the live-session rule. Anything else is the
    /// `conflict` two different tokens always were: the gate never guesses between two
    /// sessions, and a token that does not verify never decides anything.
    fn fresher<'r>(
        &self,
        presented: Presented<'r>,
        target: &token::Target<'_>,
        req: &Asking<'r>,
        limits: &EdgeLimits,
    ) -> Result<(Presented<'r>, Arc<Grant>), EdgeError> {
        let conflict = EdgeError::Extract(ExtractError::Conflict);
        let Some((rival, rival_source)) = presented.rival else {
            return Err(conflict);
        };
        let copy = |token: &str| -> Result<Arc<Grant>, EdgeError> {
            let grant = self.verify(token, req.client, req.now, limits)?;
            token::authorize_until(
                &grant,
                None,
                target,
                req.now,
                self.leeway,
                &self.revocations,
            )?;
            Ok(grant)
        };
        let (Ok(first), Ok(second)) = (copy(presented.token), copy(rival)) else {
            return Err(conflict);
        };
        if first.jti.is_none() || first.jti != second.jti {
            return Err(conflict);
        }
        let latest = |g: &Grant| g.exp.unwrap_or(u64::MAX);
        Ok(if latest(&second) > latest(&first) {
            let winner = Presented {
                token: rival,
                source: rival_source,
                rival: None,
            };
            (winner, second)
        } else {
            (
                Presented {
                    rival: None,
                    ..presented
                },
                first,
            )
        })
    }

    /// The grant for `token`: cached, or verified now if `client` has budget left.
    fn verify(
        &self,
        token: &str,
        client: IpAddr,
        now: u64,
        limits: &EdgeLimits,
    ) -> Result<Arc<Grant>, EdgeError> {
        if let Some(grant) = self.verifier.cached(token, now) {
            return Ok(grant);
        }
        limits.verify_within_budget(client, || {
            self.verifier
                .verify_and_cache(token, now)
                .map_err(EdgeError::Token)
        })
    }

    /// The live-session rule. A live player reloads its media playlist at the URL the
    /// master playlist gave it, token included, for as long as it plays. So a request
    /// whose token has *expired* (no other refusal) still passes when all of these hold:
    ///
    /// - the token carries `sxp`, the session's end, and that has not passed (with
    ///   leeway); every other check (revocation, scope, `ip`, `acl`, `nbf`) still holds;
    /// - the path names a manifest (`.m3u8`, `.mpd`), asked for with `GET` or `HEAD`;
    /// - the manifest answer carries a token to its children (query rewrite or cookie);
    /// - a signing key exists to renew the token with.
    ///
    /// Such a request is answered *only* with a manifest carrying a renewed, short-lived
    /// token: `rewrite.rs` turns any other answer into the 403 `expired` it would have
    /// been. Segments never get this. Otherwise the answer is the original `expired`.
    fn session(
        &self,
        grant: &Grant,
        target: &token::Target<'_>,
        req: &Asking<'_>,
    ) -> Result<(), EdgeError> {
        let renewable = req.manifest.delivers
            && req.manifest.kind.is_some()
            && reads_only(req.cat.method)
            && self.verifier.keys().signing().is_some();
        let Some(sxp) = grant.sxp.filter(|_| renewable) else {
            return Err(EdgeError::Token(TokenError::Expired));
        };
        token::authorize_until(
            grant,
            Some(sxp),
            target,
            req.now,
            self.leeway,
            &self.revocations,
        )
        .map_err(EdgeError::Token)
    }
}

/// The **live-session allowance** for a Common Access Token, the CAT's side of the
/// live-session rule ([`Access::session`]). A live player that cannot send a header
/// or a cookie (hls.js) reloads its media playlist at the URL the master gave it, so
/// that URL's token expires while the player plays. Such a request may still pass, its
/// other claims checked as always, up to the format's `live_session` past `exp`, when:
///
/// - the route serves a live type (a VOD player does not reload its playlists);
/// - the request is a `GET` or `HEAD` (an origin must not act on a `POST` an expired
///   token sent, even if its answer would be refused);
/// - the token asks for automatic renewal (`catr` type 0) and came in the query, so the
///   renewal travels in a rewritten manifest's child URIs;
/// - the token's `catif` says nothing for `exp` (the issuer's own answer to an expired
///   token, a re-authentication say, wins);
/// - the path names a manifest (`.m3u8`, `.mpd`);
/// - the format has a key to mint the renewal with;
/// - the token is not single-use (`catreplay` 1: `authorize_within` gives it none).
///
/// The answer is then *only* a manifest rewritten to carry a renewed token
/// (`rewrite.rs` turns any other into the 403 `expired`). Segments never pass expired.
/// Unlike a native token's `sxp`, a CAT names no session end, so the allowance is the
/// operator's: `live_session` (plus the leeway) past the stuck URL's `exp`. The renewal
/// keeps `catr`, so like every `catr` renewal it can be renewed again while it is valid
/// (docs/threat-model.md, J12).
fn cat_session_may_apply(
    cfg: &foreign::CatFormat,
    cached: &CachedCat,
    source: Source,
    req: &Asking<'_>,
) -> bool {
    let claims = &cached.cat.claims;
    let automatic = claims
        .catr
        .as_ref()
        .is_some_and(|r| r.kind == cat::RenewalKind::Automatic);
    let issuer_answers_expiry = claims
        .catif
        .as_ref()
        .is_some_and(|rules| rules.for_claim(cat::claims::EXP).is_some());
    cfg.live_session() > 0
        && req.route.resource_type.is_live()
        && reads_only(req.cat.method)
        && automatic
        && !issuer_answers_expiry
        && source == Source::Query
        && req.manifest.kind.is_some()
        && cfg.renewal_signer(&cached.cat.kid).is_some()
}

/// A `GET` or `HEAD`: the only requests a session (native or CAT) may send on with an
/// expired token, since the origin acts on the request before its answer is judged.
fn reads_only(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::manifest::Kind;
    use crate::resource::ResourceType;
    use crate::token::issue::{mint, MintRequest};
    use crate::token::keys::Algorithm;
    use crate::token::keys::{generate_pem, KeySet, SigningKey, VerifyKey};
    use crate::token::Scope;

    const NOW: u64 = 1_000_000;

    /// The example config (resources `demo` and `trailer`), its limits and an EdDSA key.
    fn setup() -> (Config, KeySet) {
        let cfg = crate::config::example(|t| t);
        let (private, public) = generate_pem(Algorithm::EdDsa).expect("generate");
        let keys = KeySet::from_keys(
            vec![VerifyKey::from_material("k", Algorithm::EdDsa, public.as_bytes()).expect("key")],
            Some(
                SigningKey::from_material("k", Algorithm::EdDsa, private.as_bytes()).expect("key"),
            ),
        );
        (cfg, keys)
    }

    fn access(cfg: &Config, keys: KeySet) -> Access {
        Access::new(
            Arc::new(Verifier::new(keys, &cfg.token)),
            Arc::new(Foreign::new(
                vec![],
                4096,
                16,
                Duration::from_secs(60),
                Duration::ZERO,
            )),
            Arc::new(Revocations::default()),
            Resources::new(cfg.resources.clone()),
            cfg.token.leeway.as_secs(),
        )
    }

    fn token(keys: &KeySet, rid: &str, ttl: u64, sxp: Option<u64>, at: u64) -> String {
        let req = MintRequest {
            scope: Scope::Resource,
            rid: Some(rid.into()),
            rty: Some(ResourceType::Vod),
            ttl: Some(Duration::from_secs(ttl)),
            sxp,
            ..MintRequest::default()
        };
        mint(keys, "tollgate-dev", &req, at).expect("mint").0
    }

    fn route<'p>(rid: &'p str, public: bool) -> Match<'static, 'p> {
        Match {
            index: 0,
            name: "vod",
            prefix: "/vod/",
            resource_type: ResourceType::Vod,
            rid: Some(rid),
            origin: 0,
            public,
            native: true,
            formats: &[],
        }
    }

    /// Check `token` (from the query) for a `GET` of `path` under resource `rid`.
    fn check(
        access: &Access,
        cfg: &Config,
        rid: &str,
        path: &str,
        token: Option<&str>,
        manifest: Ask,
    ) -> Result<bool, EdgeError> {
        check_as("GET", access, cfg, rid, path, token, manifest)
    }

    /// [`check`] with another method.
    fn check_as(
        method: &str,
        access: &Access,
        cfg: &Config,
        rid: &str,
        path: &str,
        token: Option<&str>,
        manifest: Ask,
    ) -> Result<bool, EdgeError> {
        let route = route(rid, false);
        let asking = Asking {
            route: &route,
            presented: token.map(|token| Presented {
                token,
                source: super::super::extract::Source::Query,
                rival: None,
            }),
            path,
            client: "127.0.0.1".parse().expect("ip"),
            foreign: None,
            host: "localhost",
            raw_query: None,
            authority: "localhost",
            https: false,
            manifest,
            cat: CatFacts {
                method,
                ..CatFacts::default()
            },
            now: NOW,
        };
        let limits = EdgeLimits::new(cfg);
        match access.check(&asking, &limits, &mut AccessLog::default())? {
            Granted::Public
            | Granted::Foreign { .. }
            | Granted::Cat { .. }
            | Granted::CatRefused { .. } => Ok(false),
            Granted::Token { session, .. } => Ok(session),
        }
    }

    const SEGMENT: Ask = Ask {
        kind: None,
        candidate: false,
        delivers: true,
    };
    const PLAYLIST: Ask = Ask {
        kind: Some(Kind::Hls),
        candidate: true,
        delivers: true,
    };

    #[test]
    fn a14_a_token_opens_its_own_resource_only_and_none_is_missing() {
        let (cfg, keys) = setup();
        let tok = token(&keys, "demo", 60, None, NOW);
        let access = access(&cfg, keys);
        let seg = "/vod/demo/x.ts";
        assert_eq!(
            check(&access, &cfg, "demo", seg, Some(&tok), SEGMENT),
            Ok(false)
        );
        assert_eq!(
            check(
                &access,
                &cfg,
                "trailer",
                "/vod/trailer/x.ts",
                Some(&tok),
                SEGMENT
            ),
            Err(EdgeError::Token(TokenError::Scope))
        );
        assert_eq!(
            check(&access, &cfg, "demo", seg, None, SEGMENT),
            Err(EdgeError::Missing)
        );
        let public = route("demo", true);
        let asking = Asking {
            route: &public,
            presented: None,
            path: seg,
            client: "127.0.0.1".parse().expect("ip"),
            foreign: None,
            host: "localhost",
            raw_query: None,
            authority: "localhost",
            https: false,
            manifest: SEGMENT,
            cat: CatFacts::default(),
            now: NOW,
        };
        let granted = access.check(&asking, &EdgeLimits::new(&cfg), &mut AccessLog::default());
        assert!(matches!(granted, Ok(Granted::Public)));
    }

    #[test]
    fn a4_the_live_session_rule_admits_only_an_expired_manifest_reload_before_sxp() {
        let (cfg, keys) = setup();
        // Expired 10 minutes ago; the session runs for another hour.
        let issued = NOW - 3600;
        let live = token(&keys, "demo", 3000, Some(NOW + 3600), issued);
        let no_session = token(&keys, "demo", 3000, None, issued);
        let ended = token(&keys, "demo", 3000, Some(NOW - 60), issued);
        let access = access(&cfg, keys);
        let playlist = "/vod/demo/index.m3u8";
        let expired = Err(EdgeError::Token(TokenError::Expired));
        // Accepted as a session: a manifest path whose answer delivers a renewed token.
        assert_eq!(
            check(&access, &cfg, "demo", playlist, Some(&live), PLAYLIST),
            Ok(true)
        );
        // Not a session: a POST (the origin would act on it), a segment, a manifest
        // that would not carry the token on, a token without sxp, a session that has
        // ended.
        assert_eq!(
            check_as(
                "POST",
                &access,
                &cfg,
                "demo",
                playlist,
                Some(&live),
                PLAYLIST
            ),
            expired
        );
        let seg = "/vod/demo/x.ts";
        assert_eq!(
            check(&access, &cfg, "demo", seg, Some(&live), SEGMENT),
            expired
        );
        let undelivered = Ask {
            delivers: false,
            ..PLAYLIST
        };
        assert_eq!(
            check(&access, &cfg, "demo", playlist, Some(&live), undelivered),
            expired
        );
        assert_eq!(
            check(&access, &cfg, "demo", playlist, Some(&no_session), PLAYLIST),
            expired
        );
        assert_eq!(
            check(&access, &cfg, "demo", playlist, Some(&ended), PLAYLIST),
            expired
        );
        // The rule relaxes expiry only: another resource is still out of scope.
        assert_eq!(
            check(
                &access,
                &cfg,
                "trailer",
                "/vod/trailer/index.m3u8",
                Some(&live),
                PLAYLIST
            ),
            Err(EdgeError::Token(TokenError::Scope))
        );
    }
}
