//! What every backend checks and decides the same way, written once: the validation of
//! values before they reach a database, the conversions of times to SQL integers, the
//! "still in use" message, and the refresh-rotation verdict. Never touches a database.

use std::collections::{HashMap, HashSet};

use super::{RefreshFamily, Result, Revocation, RevocationKind, StoreError, StoredRefreshToken};

/// A row that does not decode: logged, and reported without its contents.
pub(super) fn corrupt(what: &str) -> StoreError {
    tracing::error!("store: damaged row: {what}");
    StoreError::Backend(format!("damaged row in the database: {what}"))
}

pub(super) fn non_empty(what: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        Err(StoreError::Invalid(format!("{what} is empty")))
    } else {
        Ok(())
    }
}

/// Secrets are stored as SHA-256 digests in lowercase hex, never as themselves.
pub(super) fn sha256_hex(what: &str, value: &str) -> Result<()> {
    let ok = value.len() == 64
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "{what} is not a SHA-256 digest in lowercase hex"
        )))
    }
}

pub(super) fn time_to_sql(what: &str, t: u64) -> Result<i64> {
    i64::try_from(t).map_err(|_| StoreError::Invalid(format!("{what} is out of range")))
}

pub(super) fn time_from_sql(t: i64) -> Result<u64> {
    u64::try_from(t).map_err(|_| corrupt("negative time"))
}

/// A revocation checked for recording, as its SQL `at` and `expires`: a value, and an
/// expiry only on a `jti` revocation (the other kinds also stop tokens issued after
/// them, so no token lifetime bounds them).
pub(super) fn revocation_row(r: &Revocation) -> Result<(i64, Option<i64>)> {
    non_empty("revocation value", &r.value)?;
    if r.expires.is_some() && r.kind != RevocationKind::Jti {
        return Err(StoreError::Invalid(format!(
            "a {} revocation does not expire; only jti revocations do",
            r.kind.as_str()
        )));
    }
    let at = time_to_sql("revocation time", r.at)?;
    let expires = r
        .expires
        .map(|e| time_to_sql("revocation expiry", e))
        .transpose()?;
    Ok((at, expires))
}

/// A row count limit for SQL (`LIMIT` takes a signed 64-bit integer).
pub(super) fn limit_to_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A user's organisations, each listed once.
pub(super) fn orgs_listed_once(orgs: &[String]) -> Result<()> {
    let mut seen = HashSet::new();
    match orgs.iter().find(|o| !seen.insert(o.as_str())) {
        Some(twice) => Err(StoreError::Invalid(format!(
            "organisation {twice} is listed twice"
        ))),
        None => Ok(()),
    }
}

/// `Conflict` naming what still refers to organisation `id`, from counts of its
/// projects, resources, users and API tokens in that order; `Ok` when all are 0.
pub(super) fn org_unused(id: &str, counts: [i64; 4]) -> Result<()> {
    let users: Vec<String> = ["projects", "resources", "users", "API tokens"]
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|(what, n)| format!("{n} {what}"))
        .collect();
    if users.is_empty() {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "organisation {id} is still used by {}",
        users.join(", ")
    )))
}

/// A refresh token's stored state: `current` or `spent`.
pub(super) fn is_current(state: &str) -> Result<bool> {
    match state {
        "current" => Ok(true),
        "spent" => Ok(false),
        _ => Err(corrupt("unknown refresh token state")),
    }
}

/// A presented refresh token, as far as the rotation verdict needs it.
pub(super) struct Presented {
    /// It is its family's current token.
    pub current: bool,
    /// When it stopped being current (None: current, or spent before that was recorded).
    pub spent_at: Option<u64>,
    /// Its family was revoked (by reuse, or by a `family` or `subject` revocation).
    pub revoked: bool,
    pub expires_at: u64,
}

/// What [`super::Store::rotate_refresh`] does with a known token (see [`super::Rotation`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Expired, or its family is revoked: change nothing.
    Dead,
    /// Current: replace it.
    Rotate,
    /// Spent within the reuse interval: replace the family's current token.
    Reissue,
    /// Spent longer ago: revoke the family.
    Reuse,
}

pub(super) fn verdict(token: &Presented, now: u64, reuse_interval: u64) -> Verdict {
    if token.revoked || token.expires_at <= now {
        return Verdict::Dead;
    }
    match (token.current, token.spent_at) {
        (true, _) => Verdict::Rotate,
        (false, Some(at)) if now < at.saturating_add(reuse_interval) => Verdict::Reissue,
        (false, _) => Verdict::Reuse,
    }
}

/// A refresh family about to be imported whole, checked before any database sees it:
/// its id, digests, times, and at most one current token (which has no `spent_at`).
pub(super) fn importable_family(family: &RefreshFamily) -> Result<()> {
    non_empty("refresh family", &family.id)?;
    let mut current = 0;
    for token in &family.tokens {
        sha256_hex("refresh token hash", &token.hash)?;
        time_to_sql("expiry", token.expires_at)?;
        time_to_sql("creation time", token.created)?;
        if let Some(at) = token.spent_at {
            time_to_sql("spent time", at)?;
        }
        if token.current {
            current += 1;
            if token.spent_at.is_some() {
                return Err(StoreError::Invalid(
                    "a current refresh token has a spent time".into(),
                ));
            }
        }
    }
    if current > 1 {
        return Err(StoreError::Invalid(format!(
            "refresh family {} has {current} current tokens",
            family.id
        )));
    }
    Ok(())
}

/// A refresh token's state as stored.
pub(super) fn state(current: bool) -> &'static str {
    if current {
        "current"
    } else {
        "spent"
    }
}

/// `families` (read without their tokens) with `tokens` (each with its family's id,
/// in order) put into them.
pub(super) fn with_tokens(
    mut families: Vec<RefreshFamily>,
    tokens: Vec<(String, StoredRefreshToken)>,
) -> Result<Vec<RefreshFamily>> {
    let index: HashMap<String, usize> = families
        .iter()
        .enumerate()
        .map(|(i, f)| (f.id.clone(), i))
        .collect();
    for (family, token) in tokens {
        let i = *index
            .get(&family)
            .ok_or_else(|| corrupt("refresh token without its family"))?;
        families[i].tokens.push(token);
    }
    Ok(families)
}
