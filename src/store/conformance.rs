//! The conformance suite every [`Store`] backend runs unchanged: the behaviour the rest
//! of the gate relies on (round trips, referential rules, the refresh-token rotation with
//! exactly one winner, revocations, the version counter), written against `&dyn Store`
//! only.
//!
//! Each case is a function taking a fresh, empty store (or two handles on one store).
//! A backend runs them all with [`conformance_suite!`], which makes every case its own
//! `#[test]`; backend-specific tests (files, migrations, crash safety) stay with the
//! backend. A backend that needs a server this machine may lack (PostgreSQL) answers
//! [`Unavailable`] instead of a store: each case then writes one
//! `… skipped: <why>` line straight to the terminal (past the test harness's capture)
//! and passes without running. Test-only: compiled under `cfg(test)`.

use std::sync::Barrier;

pub use super::copy::cases::{
    a_copy_into_a_store_that_is_not_empty_is_refused_and_writes_nothing,
    every_kind_of_row_survives_a_copy_from_sqlite,
    refresh_rotation_and_revocation_behave_the_same_after_a_copy,
};
use super::{
    ApiToken, AzurePlacement, Org, Project, RefreshFamily, RefreshToken, Resource, Result,
    Revocation, RevocationKind, Rotation, Store, StoreError, StoredRefreshToken, User,
};
use crate::resource::ResourceType;

/// A fresh store for one case. Dropped when the case ends (a temporary file or
/// database goes with it).
pub trait Backend {
    /// The store, empty at first.
    fn store(&self) -> &dyn Store;
    /// A second, independent handle (connection) on the same store.
    fn another_handle(&self) -> Box<dyn Store>;
}

/// Why a backend cannot run here (e.g. "TOLLGATE_TEST_PG_URL not set").
#[derive(Debug)]
pub struct Unavailable(pub &'static str);

/// The backend `fresh` made, or `None` after saying on the terminal that `case` (in
/// `module`) is skipped and why.
pub fn available<B: Backend>(
    fresh: std::result::Result<B, Unavailable>,
    module: &str,
    case: &str,
) -> Option<B> {
    match fresh {
        Ok(backend) => Some(backend),
        Err(Unavailable(why)) => {
            say_skipped(module, case, why);
            None
        }
    }
}

/// Write a skip notice to the terminal: `eprintln!` would be captured (and shown only
/// for failing tests), this is not.
pub fn say_skipped(module: &str, case: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{module}::{case}: skipped: {why}");
}

/// One `#[test]` per conformance case, each on a backend from `$fresh()` (a path to a
/// function that returns a [`Backend`], or [`Unavailable`]).
macro_rules! conformance_suite {
    ($fresh:path) => {
        $crate::store::conformance::conformance_suite!(@single $fresh;
            orgs_round_trip_are_listed_by_id_and_put_replaces_the_name,
            an_org_keeps_its_azure_placement_until_put_without_one,
            projects_round_trip_and_need_an_existing_org,
            resources_round_trip_with_and_without_a_project,
            a_resource_is_keyed_by_id_and_type,
            put_resource_rejects_an_unknown_org_an_unknown_project_and_a_project_of_another_org,
            users_round_trip_with_their_orgs_in_grant_order,
            put_user_replaces_by_id_and_rewrites_the_org_list,
            a_duplicate_username_is_a_conflict_and_changes_nothing,
            put_user_rejects_an_unknown_org_and_an_org_listed_twice,
            api_tokens_round_trip_and_are_found_by_hash,
            put_api_token_rejects_an_unknown_org_a_hash_in_use_and_a_plaintext_secret,
            delete_org_is_a_conflict_while_anything_refers_to_it,
            refresh_tokens_do_not_pin_their_org,
            deleting_a_missing_thing_is_not_found,
            a_project_with_resources_cannot_be_deleted_or_moved_to_another_org,
            refresh_tokens_round_trip,
            insert_refresh_rejects_an_unknown_user_or_org_and_an_existing_family_or_hash,
            rotating_the_current_token_spends_it_and_makes_the_new_one_current,
            a_rotation_that_cannot_complete_changes_nothing,
            b2_reuse_of_a_rotated_refresh_token_revokes_the_family,
            a_spent_token_within_the_reuse_interval_is_reissued_and_one_token_stays_current,
            a_spent_token_after_the_reuse_interval_revokes_the_family_and_reissuing_does_not_extend_it,
            an_expired_refresh_token_is_dead,
            an_unknown_refresh_token_is_unknown,
            a_family_revoked_by_an_admin_or_by_subject_is_dead,
            deleting_a_user_deletes_their_refresh_tokens,
            revocations_round_trip_in_order_and_revoke_is_idempotent,
            expired_jti_revocations_are_pruned_and_unexpired_or_unbounded_ones_stay,
            pruning_deletes_at_most_the_limit_soonest_first,
            revoking_again_keeps_the_later_expiry_and_moves_the_version_only_then,
            only_jti_revocations_expire,
            version_grows_with_every_write_and_not_with_reads,
            refresh_families_are_exported_whole_and_imported_unchanged,
            import_refresh_family_rejects_what_it_cannot_keep_and_changes_nothing,
            every_kind_of_row_survives_a_copy_from_sqlite,
            refresh_rotation_and_revocation_behave_the_same_after_a_copy,
            a_copy_into_a_store_that_is_not_empty_is_refused_and_writes_nothing,
            changes_since_returns_exactly_the_revocations_after_the_number_in_order,
            changes_since_returns_every_resource_only_when_one_changed_after_the_number,
            a_family_revoked_for_reuse_is_in_the_change_feed,
        );
        $crate::store::conformance::conformance_suite!(@pair $fresh;
            b2_two_concurrent_refreshes_have_exactly_one_winner,
            two_concurrent_refreshes_within_the_reuse_interval_leave_exactly_one_current_token,
            a_write_by_another_handle_shows_in_version,
            a_follower_of_two_concurrent_writers_never_skips_a_revocation,
        );
    };
    (@single $fresh:path; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let Some(backend) = $crate::store::conformance::available(
                    $fresh(),
                    module_path!(),
                    stringify!($case),
                ) else {
                    return;
                };
                $crate::store::conformance::$case(
                    $crate::store::conformance::Backend::store(&backend),
                );
            }
        )*
    };
    (@pair $fresh:path; $($case:ident,)*) => {
        $(
            #[test]
            fn $case() {
                let Some(backend) = $crate::store::conformance::available(
                    $fresh(),
                    module_path!(),
                    stringify!($case),
                ) else {
                    return;
                };
                let other = $crate::store::conformance::Backend::another_handle(&backend);
                $crate::store::conformance::$case(
                    $crate::store::conformance::Backend::store(&backend),
                    other.as_ref(),
                );
            }
        )*
    };
}
pub(crate) use conformance_suite;

/// A stand-in SHA-256 digest, distinct per `n`.
pub fn h(n: u32) -> String {
    format!("{n:064x}")
}

pub fn org(id: &str) -> Org {
    Org {
        id: id.into(),
        name: format!("Org {id}"),
        azure: None,
    }
}

pub fn project(id: &str, org: &str) -> Project {
    Project {
        id: id.into(),
        org: org.into(),
        name: format!("Project {id}"),
    }
}

pub fn resource(id: &str, org: &str, project: Option<&str>) -> Resource {
    Resource {
        id: id.into(),
        resource_type: ResourceType::Vod,
        org: org.into(),
        project: project.map(Into::into),
        public: false,
        published: true,
    }
}

pub fn user(id: &str, username: &str, orgs: &[&str]) -> User {
    User {
        id: id.into(),
        username: username.into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        orgs: orgs.iter().map(|o| (*o).to_owned()).collect(),
    }
}

pub fn api_token(id: &str, org: &str, n: u32) -> ApiToken {
    ApiToken {
        id: id.into(),
        org: org.into(),
        label: format!("token {id}"),
        hash: h(n),
    }
}

pub fn refresh(n: u32, family: &str, user: &str, org: &str, expires_at: u64) -> RefreshToken {
    RefreshToken {
        hash: h(n),
        family: family.into(),
        user: user.into(),
        org: org.into(),
        expires_at,
    }
}

/// Put org `o1`, user `u1` in it, and a refresh family `f1` whose current token is
/// `h(1)`, expiring at 1000, into `store`.
pub fn with_family(store: &dyn Store) {
    store.put_org(&org("o1")).expect("put org");
    store
        .put_user(&user("u1", "alice", &["o1"]))
        .expect("put user");
    store
        .insert_refresh(&refresh(1, "f1", "u1", "o1", 1000))
        .expect("insert refresh");
}

pub fn is_invalid<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StoreError::Invalid(_)))
}

pub fn is_conflict<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StoreError::Conflict(_)))
}

pub fn is_not_found<T: std::fmt::Debug>(r: Result<T>) -> bool {
    matches!(r, Err(StoreError::NotFound(_)))
}

pub fn orgs_round_trip_are_listed_by_id_and_put_replaces_the_name(store: &dyn Store) {
    assert_eq!(store.orgs().expect("orgs"), vec![]);
    store.put_org(&org("b")).expect("put b");
    store.put_org(&org("a")).expect("put a");
    assert_eq!(store.orgs().expect("orgs"), vec![org("a"), org("b")]);
    assert_eq!(store.org("a").expect("org a"), Some(org("a")));
    assert_eq!(store.org("zzz").expect("org zzz"), None);
    let renamed = Org {
        id: "a".into(),
        name: "Renamed".into(),
        azure: None,
    };
    store.put_org(&renamed).expect("rename a");
    assert_eq!(store.org("a").expect("org a"), Some(renamed));
    assert_eq!(store.orgs().expect("orgs").len(), 2);
    store.delete_org("a").expect("delete a");
    assert_eq!(store.orgs().expect("orgs"), vec![org("b")]);
}

pub fn an_org_keeps_its_azure_placement_until_put_without_one(store: &dyn Store) {
    let bound = Org {
        azure: Some(AzurePlacement {
            subscription: "b04775c3".into(),
            resource_group: "Media-RG".into(),
        }),
        ..org("a")
    };
    store.put_org(&bound).expect("put bound");
    assert_eq!(store.org("a").expect("org a"), Some(bound.clone()));
    assert_eq!(store.orgs().expect("orgs"), vec![bound]);
    store.put_org(&org("a")).expect("put unbound");
    assert_eq!(store.org("a").expect("org a"), Some(org("a")));
}

pub fn projects_round_trip_and_need_an_existing_org(store: &dyn Store) {
    assert!(is_invalid(store.put_project(&project("p1", "o1"))));
    store.put_org(&org("o1")).expect("put org");
    store.put_org(&org("o2")).expect("put org");
    store
        .put_project(&project("p2", "o1"))
        .expect("put project");
    store
        .put_project(&project("p1", "o1"))
        .expect("put project");
    assert_eq!(
        store.projects().expect("projects"),
        vec![project("p1", "o1"), project("p2", "o1")]
    );
    store
        .put_project(&project("p1", "o2"))
        .expect("move an empty project to another org");
    assert_eq!(store.projects().expect("projects")[0], project("p1", "o2"));
    store.delete_project("p1").expect("delete project");
    assert_eq!(
        store.projects().expect("projects"),
        vec![project("p2", "o1")]
    );
}

pub fn resources_round_trip_with_and_without_a_project(store: &dyn Store) {
    store.put_org(&org("o1")).expect("put org");
    store
        .put_project(&project("p1", "o1"))
        .expect("put project");
    let plain = Resource {
        public: true,
        published: false,
        ..resource("r1", "o1", None)
    };
    let in_project = Resource {
        resource_type: ResourceType::LiveEventRecording,
        ..resource("r2", "o1", Some("p1"))
    };
    store.put_resource(&plain).expect("put r1");
    store.put_resource(&in_project).expect("put r2");
    assert_eq!(stored(store, "r1", ResourceType::Vod), Some(plain.clone()));
    assert_eq!(
        stored(store, "r2", ResourceType::LiveEventRecording),
        Some(in_project.clone())
    );
    assert_eq!(
        store.resources().expect("resources"),
        vec![plain.clone(), in_project]
    );
    let flipped = Resource {
        public: false,
        published: true,
        project: Some("p1".into()),
        ..plain
    };
    store.put_resource(&flipped).expect("replace r1");
    assert_eq!(stored(store, "r1", ResourceType::Vod), Some(flipped));
    store
        .delete_resource("r1", ResourceType::Vod)
        .expect("delete r1");
    assert_eq!(stored(store, "r1", ResourceType::Vod), None);
    assert_eq!(store.resources().expect("resources").len(), 1);
}

/// Present refresh token `old` at `now`, to be replaced by `new` for `org` until
/// `expires_at`; the store must answer (a storage error fails the case).
fn rotate(
    store: &dyn Store,
    old: &str,
    new: &str,
    org: &str,
    expires_at: u64,
    now: u64,
) -> Rotation {
    store
        .rotate_refresh(old, new, org, expires_at, now, 0)
        .expect("rotate_refresh answers")
}

/// [`rotate`] with a reuse interval of `interval` seconds.
fn rotate_within(
    store: &dyn Store,
    old: &str,
    new: &str,
    org: &str,
    now: u64,
    interval: u64,
) -> Rotation {
    store
        .rotate_refresh(old, new, org, 2000, now, interval)
        .expect("rotate_refresh answers")
}

/// Is `n`'s token its family's current one?
fn is_current(store: &dyn Store, n: u32) -> Option<bool> {
    store
        .refresh_token(&h(n))
        .expect("lookup")
        .map(|(_, current)| current)
}

/// The resource `id` of type `rty` as the store has it.
fn stored(store: &dyn Store, id: &str, rty: ResourceType) -> Option<Resource> {
    store.resource(id, rty).expect("read the resource")
}

pub fn a_resource_is_keyed_by_id_and_type(store: &dyn Store) {
    store.put_org(&org("o1")).expect("put org");
    let vod = resource("same", "o1", None);
    let live = Resource {
        resource_type: ResourceType::Live,
        public: true,
        ..resource("same", "o1", None)
    };
    store.put_resource(&vod).expect("put vod");
    store.put_resource(&live).expect("put live");
    assert_eq!(stored(store, "same", ResourceType::Vod), Some(vod.clone()));
    assert_eq!(stored(store, "same", ResourceType::Live), Some(live));
    assert_eq!(stored(store, "same", ResourceType::AudioEvent), None);
    store
        .delete_resource("same", ResourceType::Live)
        .expect("delete live");
    assert_eq!(store.resources().expect("resources"), vec![vod]);
}

pub fn put_resource_rejects_an_unknown_org_an_unknown_project_and_a_project_of_another_org(
    store: &dyn Store,
) {
    assert!(is_invalid(store.put_resource(&resource("r", "o1", None))));
    store.put_org(&org("o1")).expect("put org");
    store.put_org(&org("o2")).expect("put org");
    store
        .put_project(&project("p2", "o2"))
        .expect("put project");
    assert!(is_invalid(store.put_resource(&resource(
        "r",
        "o1",
        Some("nope")
    ))));
    assert!(is_invalid(store.put_resource(&resource(
        "r",
        "o1",
        Some("p2")
    ))));
    assert_eq!(store.resources().expect("resources"), vec![]);
}

pub fn users_round_trip_with_their_orgs_in_grant_order(store: &dyn Store) {
    for id in ["o1", "o2", "o3"] {
        store.put_org(&org(id)).expect("put org");
    }
    let alice = user("u1", "alice", &["o3", "o1", "o2"]);
    let bob = user("u2", "bob", &[]);
    store.put_user(&bob).expect("put bob");
    store.put_user(&alice).expect("put alice");
    assert_eq!(store.user("u1").expect("user"), Some(alice.clone()));
    assert_eq!(
        store.user_by_name("alice").expect("by name"),
        Some(alice.clone())
    );
    assert_eq!(store.user_by_name("Alice").expect("by name"), None);
    assert_eq!(store.user("u9").expect("user"), None);
    assert_eq!(store.users().expect("users"), vec![alice, bob.clone()]);
    store.delete_user("u1").expect("delete alice");
    assert_eq!(store.users().expect("users"), vec![bob]);
    assert_eq!(store.user_by_name("alice").expect("by name"), None);
}

pub fn put_user_replaces_by_id_and_rewrites_the_org_list(store: &dyn Store) {
    store.put_org(&org("o1")).expect("put org");
    store.put_org(&org("o2")).expect("put org");
    store
        .put_user(&user("u1", "alice", &["o1", "o2"]))
        .expect("put");
    let changed = User {
        password_hash: "$argon2id$other".into(),
        ..user("u1", "alicia", &["o2"])
    };
    store.put_user(&changed).expect("replace");
    assert_eq!(store.users().expect("users"), vec![changed.clone()]);
    assert_eq!(store.user_by_name("alice").expect("old name"), None);
    assert_eq!(
        store.user_by_name("alicia").expect("new name"),
        Some(changed)
    );
    // o1 is no longer granted to anyone, so it can go.
    store.delete_org("o1").expect("delete o1");
}

pub fn a_duplicate_username_is_a_conflict_and_changes_nothing(store: &dyn Store) {
    store
        .put_user(&user("u1", "alice", &[]))
        .expect("put alice");
    store.put_user(&user("u2", "bob", &[])).expect("put bob");
    let before = store.version().expect("version");
    assert!(is_conflict(store.put_user(&user("u3", "alice", &[]))));
    assert!(is_conflict(store.put_user(&user("u2", "alice", &[]))));
    assert_eq!(store.version().expect("version"), before);
    assert_eq!(
        store.users().expect("users"),
        vec![user("u1", "alice", &[]), user("u2", "bob", &[])]
    );
}

pub fn put_user_rejects_an_unknown_org_and_an_org_listed_twice(store: &dyn Store) {
    store.put_org(&org("o1")).expect("put org");
    assert!(is_invalid(store.put_user(&user(
        "u1",
        "alice",
        &["o1", "o9"]
    ))));
    assert!(is_invalid(store.put_user(&user(
        "u1",
        "alice",
        &["o1", "o1"]
    ))));
    assert!(is_invalid(store.put_user(&user("", "alice", &[]))));
    assert_eq!(store.users().expect("users"), vec![]);
}

pub fn api_tokens_round_trip_and_are_found_by_hash(store: &dyn Store) {
    store.put_org(&org("o1")).expect("put org");
    store.put_org(&org("o2")).expect("put org");
    let t1 = api_token("t1", "o1", 1);
    let t2 = api_token("t2", "o2", 2);
    store.put_api_token(&t2).expect("put t2");
    store.put_api_token(&t1).expect("put t1");
    assert_eq!(store.api_tokens().expect("tokens"), vec![t1.clone(), t2]);
    assert_eq!(store.api_token_by_hash(&h(1)).expect("by hash"), Some(t1));
    assert_eq!(store.api_token_by_hash(&h(3)).expect("by hash"), None);
    let relabelled = ApiToken {
        label: "renamed".into(),
        ..api_token("t1", "o1", 4)
    };
    store.put_api_token(&relabelled).expect("replace t1");
    assert_eq!(store.api_token_by_hash(&h(1)).expect("old hash"), None);
    assert_eq!(
        store.api_token_by_hash(&h(4)).expect("new hash"),
        Some(relabelled)
    );
    store.delete_api_token("t2").expect("delete t2");
    assert_eq!(store.api_tokens().expect("tokens").len(), 1);
}

pub fn put_api_token_rejects_an_unknown_org_a_hash_in_use_and_a_plaintext_secret(
    store: &dyn Store,
) {
    assert!(is_invalid(store.put_api_token(&api_token("t1", "o1", 1))));
    store.put_org(&org("o1")).expect("put org");
    store
        .put_api_token(&api_token("t1", "o1", 1))
        .expect("put t1");
    assert!(is_conflict(store.put_api_token(&api_token("t2", "o1", 1))));
    for not_a_digest in ["secret", &h(0xabcdef).to_uppercase(), &h(1)[1..], ""] {
        let t = ApiToken {
            hash: not_a_digest.to_owned(),
            ..api_token("t3", "o1", 0)
        };
        assert!(is_invalid(store.put_api_token(&t)), "{not_a_digest:?}");
    }
    assert_eq!(store.api_tokens().expect("tokens").len(), 1);
}

pub fn delete_org_is_a_conflict_while_anything_refers_to_it(store: &dyn Store) {
    store.put_org(&org("o1")).expect("put org");
    store.put_org(&org("o2")).expect("put org");

    store.put_project(&project("p", "o1")).expect("project");
    assert!(is_conflict(store.delete_org("o1")));
    store.delete_project("p").expect("delete project");

    store
        .put_resource(&resource("r", "o1", None))
        .expect("resource");
    assert!(is_conflict(store.delete_org("o1")));
    store
        .delete_resource("r", ResourceType::Vod)
        .expect("delete resource");

    store
        .put_user(&user("u", "alice", &["o2", "o1"]))
        .expect("user");
    assert!(is_conflict(store.delete_org("o1")));
    store.delete_user("u").expect("delete user");

    store
        .put_api_token(&api_token("t", "o1", 1))
        .expect("api token");
    assert!(is_conflict(store.delete_org("o1")));
    store.delete_api_token("t").expect("delete api token");

    store.delete_org("o1").expect("delete the unused org");
    assert_eq!(store.org("o1").expect("org"), None);
}

pub fn refresh_tokens_do_not_pin_their_org(store: &dyn Store) {
    with_family(store);
    store
        .put_user(&user("u1", "alice", &[]))
        .expect("take o1 away from alice");
    store.delete_org("o1").expect("delete o1");
    assert!(store.refresh_token(&h(1)).expect("lookup").is_some());
}

pub fn deleting_a_missing_thing_is_not_found(store: &dyn Store) {
    assert!(is_not_found(store.delete_org("x")));
    assert!(is_not_found(store.delete_project("x")));
    assert!(is_not_found(store.delete_resource("x", ResourceType::Vod)));
    assert!(is_not_found(store.delete_user("x")));
    assert!(is_not_found(store.delete_api_token("x")));
    assert_eq!(store.version().expect("version"), 0);
}

pub fn a_project_with_resources_cannot_be_deleted_or_moved_to_another_org(store: &dyn Store) {
    store.put_org(&org("o1")).expect("put org");
    store.put_org(&org("o2")).expect("put org");
    store.put_project(&project("p", "o1")).expect("project");
    store
        .put_resource(&resource("r", "o1", Some("p")))
        .expect("resource");
    assert!(is_conflict(store.delete_project("p")));
    assert!(is_conflict(store.put_project(&project("p", "o2"))));
    assert_eq!(
        store.projects().expect("projects"),
        vec![project("p", "o1")]
    );
    let renamed = Project {
        name: "renamed".into(),
        ..project("p", "o1")
    };
    store.put_project(&renamed).expect("rename in place");
    assert_eq!(store.projects().expect("projects"), vec![renamed]);
}

pub fn refresh_tokens_round_trip(store: &dyn Store) {
    with_family(store);
    assert_eq!(
        store.refresh_token(&h(1)).expect("lookup"),
        Some((refresh(1, "f1", "u1", "o1", 1000), true))
    );
    assert_eq!(store.refresh_token(&h(2)).expect("lookup"), None);
}

pub fn insert_refresh_rejects_an_unknown_user_or_org_and_an_existing_family_or_hash(
    store: &dyn Store,
) {
    with_family(store);
    assert!(is_invalid(
        store.insert_refresh(&refresh(2, "f2", "nobody", "o1", 1000))
    ));
    assert!(is_invalid(
        store.insert_refresh(&refresh(2, "f2", "u1", "nowhere", 1000))
    ));
    assert!(is_conflict(
        store.insert_refresh(&refresh(2, "f1", "u1", "o1", 1000))
    ));
    assert!(is_conflict(
        store.insert_refresh(&refresh(1, "f2", "u1", "o1", 1000))
    ));
    let plaintext = RefreshToken {
        hash: "opaque-token".into(),
        ..refresh(0, "f2", "u1", "o1", 1000)
    };
    assert!(is_invalid(store.insert_refresh(&plaintext)));
    assert!(is_invalid(store.insert_refresh(&refresh(
        2,
        "f2",
        "u1",
        "o1",
        u64::MAX
    ))));
    assert_eq!(store.refresh_token(&h(2)).expect("lookup"), None);
}

pub fn rotating_the_current_token_spends_it_and_makes_the_new_one_current(store: &dyn Store) {
    with_family(store);
    store.put_org(&org("o2")).expect("put org");
    let rotated = store
        .rotate_refresh(&h(1), &h(2), "o2", 2000, 500, 0)
        .expect("rotate");
    assert_eq!(
        rotated,
        Rotation::Rotated(refresh(1, "f1", "u1", "o1", 1000))
    );
    assert_eq!(
        store.refresh_token(&h(2)).expect("lookup"),
        Some((refresh(2, "f1", "u1", "o2", 2000), true))
    );
    assert_eq!(
        store
            .refresh_token(&h(1))
            .expect("lookup")
            .map(|(_, current)| current),
        Some(false),
        "a spent token is not current"
    );
    let again = store
        .rotate_refresh(&h(2), &h(3), "o1", 3000, 600, 0)
        .expect("rotate again");
    assert_eq!(again, Rotation::Rotated(refresh(2, "f1", "u1", "o2", 2000)));
    assert_eq!(store.revocations().expect("revocations"), vec![]);
}

pub fn a_rotation_that_cannot_complete_changes_nothing(store: &dyn Store) {
    with_family(store);
    store
        .insert_refresh(&refresh(7, "f7", "u1", "o1", 1000))
        .expect("another family");
    let before = store.version().expect("version");
    assert!(is_conflict(store.rotate_refresh(
        &h(1),
        &h(7),
        "o1",
        2000,
        500,
        0
    )));
    assert!(is_invalid(store.rotate_refresh(
        &h(1),
        &h(2),
        "nowhere",
        2000,
        500,
        0
    )));
    assert!(is_invalid(store.rotate_refresh(
        &h(1),
        "plain",
        "o1",
        2000,
        500,
        0
    )));
    assert_eq!(store.version().expect("version"), before);
    assert!(matches!(
        store.rotate_refresh(&h(1), &h(2), "o1", 2000, 500, 0),
        Ok(Rotation::Rotated(_))
    ));
}

pub fn b2_reuse_of_a_rotated_refresh_token_revokes_the_family(store: &dyn Store) {
    with_family(store);
    assert!(matches!(
        store.rotate_refresh(&h(1), &h(2), "o1", 2000, 500, 0),
        Ok(Rotation::Rotated(_))
    ));
    assert_eq!(
        rotate(store, &h(1), &h(3), "o1", 2000, 501),
        Rotation::Reused("f1".into())
    );
    assert_eq!(rotate(store, &h(2), &h(4), "o1", 2000, 502), Rotation::Dead);
    assert_eq!(store.refresh_token(&h(3)).expect("lookup"), None);
    assert_eq!(store.refresh_token(&h(4)).expect("lookup"), None);
    assert_eq!(
        store.revocations().expect("revocations"),
        vec![Revocation {
            kind: RevocationKind::Family,
            value: "f1".into(),
            at: 501,
            expires: None,
        }]
    );
    assert_eq!(rotate(store, &h(1), &h(5), "o1", 2000, 503), Rotation::Dead);
}

/// The document's flow: the token just used for one VideoManager is presented again
/// for another, within the interval. It is answered, and the family keeps one current
/// token: the one handed out last.
pub fn a_spent_token_within_the_reuse_interval_is_reissued_and_one_token_stays_current(
    store: &dyn Store,
) {
    with_family(store);
    store.put_org(&org("o2")).expect("put org");
    assert_eq!(
        rotate_within(store, &h(1), &h(2), "o1", 500, 30),
        Rotation::Rotated(refresh(1, "f1", "u1", "o1", 1000))
    );
    let before = store.version().expect("version");
    assert_eq!(
        rotate_within(store, &h(1), &h(3), "o2", 529, 30),
        Rotation::Reissued(refresh(1, "f1", "u1", "o1", 1000))
    );
    assert!(store.version().expect("version") > before);
    assert_eq!(
        store.refresh_token(&h(3)).expect("lookup"),
        Some((refresh(3, "f1", "u1", "o2", 2000), true))
    );
    assert_eq!(
        (is_current(store, 1), is_current(store, 2)),
        (Some(false), Some(false))
    );
    assert_eq!(store.revocations().expect("revocations"), vec![]);
    assert_eq!(
        rotate_within(store, &h(3), &h(4), "o1", 600, 30),
        Rotation::Rotated(refresh(3, "f1", "u1", "o2", 2000))
    );
}

/// The interval runs from when the token stopped being current; presenting it again
/// does not restart it. After it, the token is reuse like any other.
pub fn a_spent_token_after_the_reuse_interval_revokes_the_family_and_reissuing_does_not_extend_it(
    store: &dyn Store,
) {
    with_family(store);
    assert!(matches!(
        rotate_within(store, &h(1), &h(2), "o1", 500, 30),
        Rotation::Rotated(_)
    ));
    assert!(matches!(
        rotate_within(store, &h(1), &h(3), "o1", 520, 30),
        Rotation::Reissued(_)
    ));
    assert_eq!(
        rotate_within(store, &h(1), &h(4), "o1", 530, 30),
        Rotation::Reused("f1".into())
    );
    assert_eq!(
        rotate_within(store, &h(3), &h(5), "o1", 531, 30),
        Rotation::Dead
    );
    assert_eq!(store.refresh_token(&h(4)).expect("lookup"), None);
    assert_eq!(
        store.revocations().expect("revocations"),
        vec![Revocation {
            kind: RevocationKind::Family,
            value: "f1".into(),
            at: 530,
            expires: None,
        }]
    );
}

pub fn an_expired_refresh_token_is_dead(store: &dyn Store) {
    with_family(store);
    let before = store.version().expect("version");
    assert_eq!(
        rotate(store, &h(1), &h(2), "o1", 5000, 1001),
        Rotation::Dead
    );
    assert_eq!(
        rotate(store, &h(1), &h(2), "o1", 5000, 1000),
        Rotation::Dead
    );
    assert_eq!(store.refresh_token(&h(2)).expect("lookup"), None);
    assert_eq!(store.version().expect("version"), before);
    assert_eq!(
        rotate(store, &h(1), &h(2), "o1", 5000, 999),
        Rotation::Rotated(refresh(1, "f1", "u1", "o1", 1000))
    );
}

pub fn an_unknown_refresh_token_is_unknown(store: &dyn Store) {
    with_family(store);
    assert_eq!(
        rotate(store, &h(9), &h(2), "o1", 5000, 500),
        Rotation::Unknown
    );
    assert_eq!(store.refresh_token(&h(2)).expect("lookup"), None);
}

pub fn a_family_revoked_by_an_admin_or_by_subject_is_dead(store: &dyn Store) {
    with_family(store);
    store
        .insert_refresh(&refresh(2, "f2", "u1", "o1", 1000))
        .expect("a second family");
    store
        .revoke(&Revocation {
            kind: RevocationKind::Family,
            value: "f1".into(),
            at: 100,
            expires: None,
        })
        .expect("revoke f1");
    assert_eq!(rotate(store, &h(1), &h(3), "o1", 5000, 500), Rotation::Dead);
    store
        .revoke(&Revocation {
            kind: RevocationKind::Subject,
            value: "u1".into(),
            at: 100,
            expires: None,
        })
        .expect("revoke u1");
    assert_eq!(rotate(store, &h(2), &h(3), "o1", 5000, 500), Rotation::Dead);
}

pub fn deleting_a_user_deletes_their_refresh_tokens(store: &dyn Store) {
    with_family(store);
    store.delete_user("u1").expect("delete user");
    assert_eq!(store.refresh_token(&h(1)).expect("lookup"), None);
    assert_eq!(
        rotate(store, &h(1), &h(2), "o1", 5000, 500),
        Rotation::Unknown
    );
}

pub fn revocations_round_trip_in_order_and_revoke_is_idempotent(store: &dyn Store) {
    let all = [
        (RevocationKind::Jti, "j1", 10),
        (RevocationKind::Subject, "s1", 20),
        (RevocationKind::Org, "o1", 30),
        (RevocationKind::Family, "f1", 40),
    ]
    .map(|(kind, value, at)| Revocation {
        kind,
        value: value.into(),
        at,
        expires: None,
    });
    for r in &all {
        store.revoke(r).expect("revoke");
    }
    let v = store.version().expect("version");
    assert_eq!(v, 4);
    let again = Revocation {
        at: 99,
        expires: None,
        ..all[0].clone()
    };
    store.revoke(&again).expect("revoke again");
    store.revoke(&all[0]).expect("revoke again");
    assert_eq!(store.version().expect("version"), v);
    assert_eq!(store.revocations().expect("revocations"), all.to_vec());
    assert!(is_invalid(store.revoke(&Revocation {
        kind: RevocationKind::Jti,
        value: String::new(),
        at: 1,
        expires: None,
    })));
}

fn jti(value: &str, at: u64, expires: Option<u64>) -> Revocation {
    Revocation {
        kind: RevocationKind::Jti,
        value: value.into(),
        at,
        expires,
    }
}

/// The memory bound in the store: a revocation whose last second has passed is
/// deleted, one that still matters stays, and one without a bound stays for ever, as do
/// the kinds that never expire. Deleting is not a change edges must see: the version
/// stays.
pub fn expired_jti_revocations_are_pruned_and_unexpired_or_unbounded_ones_stay(store: &dyn Store) {
    let (soon, later, never) = (
        jti("soon", 10, Some(1_000)),
        jti("later", 10, Some(2_000)),
        jti("never", 10, None),
    );
    let subject = Revocation {
        kind: RevocationKind::Subject,
        value: "s".into(),
        at: 10,
        expires: None,
    };
    for r in [&soon, &later, &never, &subject] {
        store.revoke(r).expect("revoke");
    }
    let version = store.version().expect("version");
    assert_eq!(
        store.prune_revocations(1_000, 100).expect("prune"),
        0,
        "it still matters at its last second"
    );
    assert_eq!(store.prune_revocations(1_001, 100).expect("prune"), 1);
    assert_eq!(
        store.revocations().expect("revocations"),
        vec![later.clone(), never.clone(), subject.clone()]
    );
    let end_of_time = i64::MAX.unsigned_abs();
    assert_eq!(store.prune_revocations(end_of_time, 100).expect("prune"), 1);
    assert_eq!(
        store.revocations().expect("revocations"),
        vec![never, subject]
    );
    assert_eq!(store.version().expect("version"), version);
}

pub fn pruning_deletes_at_most_the_limit_soonest_first(store: &dyn Store) {
    for (i, expires) in [50, 10, 40, 20, 30].into_iter().enumerate() {
        store
            .revoke(&jti(&format!("j{i}"), 1, Some(expires)))
            .expect("revoke");
    }
    assert_eq!(store.prune_revocations(100, 2).expect("prune"), 2);
    let left = |store: &dyn Store| -> Vec<u64> {
        let mut e: Vec<u64> = store
            .revocations()
            .expect("revocations")
            .iter()
            .filter_map(|r| r.expires)
            .collect();
        e.sort_unstable();
        e
    };
    assert_eq!(left(store), vec![30, 40, 50]);
    assert_eq!(store.prune_revocations(100, 2).expect("prune"), 2);
    assert_eq!(store.prune_revocations(100, 2).expect("prune"), 1);
    assert_eq!(store.prune_revocations(100, 2).expect("prune"), 0);
    assert_eq!(left(store), Vec::<u64>::new());
}

/// A second revocation of one token never shortens the first: edges must see a later
/// expiry (the version moves), an earlier one changes nothing, and an unbounded one
/// stays unbounded.
pub fn revoking_again_keeps_the_later_expiry_and_moves_the_version_only_then(store: &dyn Store) {
    let expiry = |store: &dyn Store| store.revocations().expect("revocations")[0].expires;
    store.revoke(&jti("j", 1, Some(200))).expect("revoke");
    let v = store.version().expect("version");
    store.revoke(&jti("j", 2, Some(100))).expect("earlier");
    assert_eq!(
        (expiry(store), store.version().expect("version")),
        (Some(200), v)
    );
    store.revoke(&jti("j", 3, Some(300))).expect("later");
    assert_eq!(expiry(store), Some(300));
    let v2 = store.version().expect("version");
    assert!(v2 > v, "a later expiry is a change edges must see");
    let fed = store.changes_since(v).expect("changes");
    assert_eq!(
        fed.revocations
            .iter()
            .map(|r| r.expires)
            .collect::<Vec<_>>(),
        [Some(300)],
        "and the change feed brings it with its new expiry"
    );
    store.revoke(&jti("j", 4, None)).expect("unbounded");
    assert_eq!(expiry(store), None);
    let v3 = store.version().expect("version");
    assert!(v3 > v2);
    store
        .revoke(&jti("j", 5, Some(400)))
        .expect("bounded again");
    assert_eq!(
        (expiry(store), store.version().expect("version")),
        (None, v3)
    );
    assert_eq!(store.revocations().expect("revocations").len(), 1);
    assert_eq!(store.revocations().expect("revocations")[0].at, 1);
}

pub fn only_jti_revocations_expire(store: &dyn Store) {
    for kind in [
        RevocationKind::Subject,
        RevocationKind::Org,
        RevocationKind::Family,
    ] {
        let bounded = Revocation {
            kind,
            value: "v".into(),
            at: 1,
            expires: Some(100),
        };
        assert!(is_invalid(store.revoke(&bounded)), "{kind:?}");
    }
    assert_eq!(store.revocations().expect("revocations"), vec![]);
    assert_eq!(store.version().expect("version"), 0);
}

pub fn version_grows_with_every_write_and_not_with_reads(store: &dyn Store) {
    let mut last = store.version().expect("version");
    assert_eq!(last, 0);
    let mut grew = |what: &str| {
        let now = store.version().expect("version");
        assert!(now > last, "{what}: {now} after {last}");
        last = now;
    };
    store.put_org(&org("o1")).expect("put org");
    grew("put_org");
    store.put_project(&project("p", "o1")).expect("project");
    grew("put_project");
    store
        .put_resource(&resource("r", "o1", Some("p")))
        .expect("resource");
    grew("put_resource");
    store.put_user(&user("u1", "alice", &["o1"])).expect("user");
    grew("put_user");
    store
        .put_api_token(&api_token("t", "o1", 1))
        .expect("api token");
    grew("put_api_token");
    store
        .insert_refresh(&refresh(1, "f1", "u1", "o1", 1000))
        .expect("insert refresh");
    grew("insert_refresh");
    store
        .rotate_refresh(&h(1), &h(2), "o1", 1000, 500, 0)
        .expect("rotate");
    grew("rotate_refresh (rotated)");
    store
        .rotate_refresh(&h(1), &h(3), "o1", 1000, 500, 0)
        .expect("reuse");
    grew("rotate_refresh (reused)");
    store
        .revoke(&Revocation {
            kind: RevocationKind::Jti,
            value: "j".into(),
            at: 1,
            expires: None,
        })
        .expect("revoke");
    grew("revoke");

    let before = store.version().expect("version");
    store.orgs().expect("orgs");
    store.org("o1").expect("org");
    store.projects().expect("projects");
    store.resources().expect("resources");
    store.resource("r", ResourceType::Vod).expect("resource");
    store.users().expect("users");
    store.user("u1").expect("user");
    store.user_by_name("alice").expect("user by name");
    store.api_tokens().expect("api tokens");
    store.api_token_by_hash(&h(1)).expect("api token by hash");
    store.refresh_token(&h(2)).expect("refresh token");
    store.revocations().expect("revocations");
    store
        .rotate_refresh(&h(99), &h(98), "o1", 1000, 500, 0)
        .expect("unknown rotation");
    store
        .rotate_refresh(&h(2), &h(98), "o1", 1000, 500, 0)
        .expect("dead rotation");
    assert_eq!(store.version().expect("version"), before);

    let mut grew = |what: &str| {
        let now = store.version().expect("version");
        assert!(now > last, "{what}: {now} after {last}");
        last = now;
    };
    store.delete_api_token("t").expect("delete api token");
    grew("delete_api_token");
    store.delete_user("u1").expect("delete user");
    grew("delete_user");
    store
        .delete_resource("r", ResourceType::Vod)
        .expect("delete resource");
    grew("delete_resource");
    store.delete_project("p").expect("delete project");
    grew("delete_project");
    store.delete_org("o1").expect("delete org");
    grew("delete_org");
}

/// Two handles on one store rotate the same refresh tokens at the same moment, round
/// after round (docs/threat-model.md, B2): each round has exactly one `Rotated` and one `Reused`.
pub fn b2_two_concurrent_refreshes_have_exactly_one_winner(a: &dyn Store, b: &dyn Store) {
    race_on_refresh_tokens(a, b, 50);
}

/// [`b2_two_concurrent_refreshes_have_exactly_one_winner`] over `ROUNDS` rounds, each
/// on a family of its own: `a` and `b` present its current token behind one barrier.
pub fn race_on_refresh_tokens(a: &dyn Store, b: &dyn Store, rounds: u32) {
    with_family(a);
    for round in 0..rounds {
        a.insert_refresh(&refresh(
            1000 + round,
            &format!("race{round}"),
            "u1",
            "o1",
            1000,
        ))
        .expect("insert a family per round");
    }
    let barrier = Barrier::new(2);
    // A failed call is kept as an answer, not a panic: a racer that stopped would leave
    // the other waiting at the barrier for ever.
    let results: Vec<Vec<Result<Rotation>>> = std::thread::scope(|s| {
        let racers: Vec<_> = [a, b]
            .into_iter()
            .zip(0_u32..)
            .map(|(store, racer)| {
                let barrier = &barrier;
                s.spawn(move || {
                    (0..rounds)
                        .map(|round| {
                            barrier.wait();
                            store.rotate_refresh(
                                &h(1000 + round),
                                &h(10_000 + 100 * round + racer),
                                "o1",
                                2000,
                                500,
                                0,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|t| t.join().expect("racer thread"))
            .collect()
    });
    let [first, second] = &results[..] else {
        panic!("two racers, got {}", results.len());
    };
    assert_eq!(first.len(), rounds as usize);
    for (round, pair) in first.iter().zip(second).enumerate() {
        let pair = [pair.0, pair.1];
        let rotated = pair
            .iter()
            .filter(|r| matches!(r, Ok(Rotation::Rotated(_))))
            .count();
        let family = format!("race{round}");
        let reused = pair
            .iter()
            .filter(|r| matches!(r, Ok(Rotation::Reused(f)) if *f == family))
            .count();
        assert_eq!((rotated, reused), (1, 1), "round {round}: {pair:?}");
    }
    let families = b
        .revocations()
        .expect("revocations")
        .into_iter()
        .filter(|r| r.kind == RevocationKind::Family)
        .count();
    assert_eq!(families, rounds as usize);
}

/// [`b2_two_concurrent_refreshes_have_exactly_one_winner`] inside a reuse interval:
/// each round has one `Rotated` and one `Reissued`, nothing is revoked, and exactly one
/// of the two new tokens is its family's current token.
pub fn two_concurrent_refreshes_within_the_reuse_interval_leave_exactly_one_current_token(
    a: &dyn Store,
    b: &dyn Store,
) {
    const ROUNDS: u32 = 20;
    with_family(a);
    for round in 0..ROUNDS {
        a.insert_refresh(&refresh(
            1000 + round,
            &format!("race{round}"),
            "u1",
            "o1",
            1000,
        ))
        .expect("insert a family per round");
    }
    let barrier = Barrier::new(2);
    let results: Vec<Vec<Rotation>> = std::thread::scope(|s| {
        let racers: Vec<_> = [a, b]
            .into_iter()
            .zip(0_u32..)
            .map(|(store, racer)| {
                let barrier = &barrier;
                s.spawn(move || {
                    (0..ROUNDS)
                        .map(|round| {
                            barrier.wait();
                            let new = h(10_000 + 100 * round + racer);
                            rotate_within(store, &h(1000 + round), &new, "o1", 500, 30)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|t| t.join().expect("racer thread"))
            .collect()
    });
    for round in 0..ROUNDS {
        let pair: Vec<&Rotation> = results.iter().map(|r| &r[round as usize]).collect();
        let rotated = pair
            .iter()
            .filter(|r| matches!(r, Rotation::Rotated(_)))
            .count();
        let reissued = pair
            .iter()
            .filter(|r| matches!(r, Rotation::Reissued(_)))
            .count();
        assert_eq!((rotated, reissued), (1, 1), "round {round}: {pair:?}");
        let current = (0..2)
            .filter(|racer| is_current(b, 10_000 + 100 * round + racer) == Some(true))
            .count();
        assert_eq!(current, 1, "round {round}: one current token");
    }
    assert_eq!(b.revocations().expect("revocations"), vec![]);
}

/// A write through one handle moves the version another handle reads (how every node
/// notices a change made elsewhere).
pub fn a_write_by_another_handle_shows_in_version(a: &dyn Store, b: &dyn Store) {
    let before = a.version().expect("version");
    b.put_org(&org("o1")).expect("put org through b");
    assert!(a.version().expect("version") > before);
    assert_eq!(a.org("o1").expect("org"), Some(org("o1")));
}

/// The change feed: for every number N a follower could have applied, `changes_since(N)`
/// is exactly the revocations recorded after N, in order, and its `seq` is the store's
/// number; writes that are not revocations bring none, a repeated revocation no new one.
pub fn changes_since_returns_exactly_the_revocations_after_the_number_in_order(store: &dyn Store) {
    let empty = store.changes_since(0).expect("changes");
    assert_eq!((empty.seq, empty.revocations.len()), (0, 0));
    let mut seen = vec![(store.version().expect("version"), Vec::new())];
    let mut recorded: Vec<Revocation> = Vec::new();
    for i in 0..6 {
        if i % 2 == 0 {
            store.put_org(&org(&format!("o{i}"))).expect("put org");
        }
        let r = Revocation {
            kind: [RevocationKind::Jti, RevocationKind::Subject][i % 2],
            value: format!("v{i}"),
            at: 100 + i as u64,
            expires: None,
        };
        store.revoke(&r).expect("revoke");
        store.revoke(&r).expect("revoke again: no change");
        recorded.push(r);
        seen.push((store.version().expect("version"), recorded.clone()));
    }
    let last = store.version().expect("version");
    for (n, before) in &seen {
        let changes = store.changes_since(*n).expect("changes");
        assert_eq!(changes.seq, last, "after {n}");
        assert_eq!(
            changes.revocations,
            recorded[before.len()..].to_vec(),
            "after {n}"
        );
        assert_eq!(changes.resources, None, "no resource changed, after {n}");
    }
    let caught_up = store.changes_since(last).expect("changes");
    assert!(caught_up.revocations.is_empty());
    assert_eq!(caught_up.seq, last);
    let ahead = store.changes_since(u64::MAX).expect("changes");
    assert_eq!((ahead.seq, ahead.revocations.len()), (last, 0));
}

/// Resources come whole, and only when one was put or deleted after the number asked.
pub fn changes_since_returns_every_resource_only_when_one_changed_after_the_number(
    store: &dyn Store,
) {
    store.put_org(&org("o1")).expect("put org");
    let before = store.version().expect("version");
    assert_eq!(store.changes_since(0).expect("changes").resources, None);
    let a = resource("a", "o1", None);
    let b = resource("b", "o1", None);
    store.put_resource(&a).expect("put a");
    store.put_resource(&b).expect("put b");
    let put = store.version().expect("version");
    assert_eq!(
        store.changes_since(before).expect("changes").resources,
        Some(vec![a.clone(), b.clone()])
    );
    store.put_user(&user("u1", "alice", &["o1"])).expect("user");
    store.revoke(&jti("j", 1, None)).expect("revoke");
    let other = store.changes_since(put).expect("changes");
    assert_eq!(
        other.resources, None,
        "a user and a revocation are not resources"
    );
    assert_eq!(other.revocations, vec![jti("j", 1, None)]);
    let later = store.version().expect("version");
    store
        .delete_resource("a", ResourceType::Vod)
        .expect("delete");
    assert_eq!(
        store.changes_since(later).expect("changes").resources,
        Some(vec![b])
    );
    assert!(is_not_found(store.delete_resource("a", ResourceType::Vod)));
    let now = store.version().expect("version");
    assert_eq!(store.changes_since(now).expect("changes").resources, None);
}

/// A refresh token reused after its interval revokes its family: that revocation
/// reaches the edges through the feed like one made by an admin.
pub fn a_family_revoked_for_reuse_is_in_the_change_feed(store: &dyn Store) {
    with_family(store);
    rotate(store, &h(1), &h(2), "o1", 1000, 100);
    let before = store.version().expect("version");
    assert_eq!(
        store
            .rotate_refresh(&h(1), &h(3), "o1", 1000, 500, 0)
            .expect("reuse"),
        Rotation::Reused("f1".into())
    );
    let changes = store.changes_since(before).expect("changes");
    let kinds: Vec<_> = changes
        .revocations
        .iter()
        .map(|r| (r.kind, r.value.as_str()))
        .collect();
    assert_eq!(kinds, vec![(RevocationKind::Family, "f1")]);
}

/// Two handles (two nodes) revoke concurrently while a follower catches up again and
/// again from the number it last applied: it ends with every revocation, none skipped
/// (the numbers are in commit order, so no later snapshot can show a smaller one).
pub fn a_follower_of_two_concurrent_writers_never_skips_a_revocation(a: &dyn Store, b: &dyn Store) {
    const EACH: usize = 150;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let mut applied = 0;
    let mut got = std::collections::HashSet::new();
    std::thread::scope(|s| {
        for (name, store) in [("a", a), ("b", b)] {
            let done = &done;
            s.spawn(move || {
                for i in 0..EACH {
                    store
                        .revoke(&jti(&format!("{name}{i}"), 1, None))
                        .expect("revoke");
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        for _ in 0..100_000 {
            let finished = done.load(std::sync::atomic::Ordering::SeqCst) == 2;
            let changes = a.changes_since(applied).expect("changes");
            assert!(changes.seq >= applied, "the number never goes back");
            got.extend(changes.revocations.into_iter().map(|r| r.value));
            applied = changes.seq;
            if finished {
                break;
            }
        }
    });
    assert_eq!(got.len(), 2 * EACH, "every revocation reached the follower");
    assert_eq!(applied, a.version().expect("version"));
}

/// The families `store` exports after a login and two rotations (one spent token
/// within its reuse interval) and a second, reused family.
fn exported_families(store: &dyn Store) -> Vec<RefreshFamily> {
    with_family(store);
    store.put_org(&org("o2")).expect("put org");
    rotate(store, &h(1), &h(2), "o2", 1000, 100);
    rotate(store, &h(2), &h(3), "o1", 1000, 200);
    store
        .insert_refresh(&refresh(4, "f2", "u1", "o2", 1000))
        .expect("insert refresh");
    rotate(store, &h(4), &h(5), "o2", 1000, 100);
    assert!(matches!(
        store.rotate_refresh(&h(4), &h(6), "o1", 1000, 300, 0),
        Ok(Rotation::Reused(_))
    ));
    store.refresh_families().expect("export")
}

pub fn refresh_families_are_exported_whole_and_imported_unchanged(store: &dyn Store) {
    let families = exported_families(store);
    let f1 = &families[0];
    assert_eq!(
        (f1.id.as_str(), f1.user.as_str(), f1.revoked),
        ("f1", "u1", false)
    );
    // By hash: the login's token was made at the real time, the rotations at test times.
    let mut states: Vec<(String, String, bool, Option<u64>)> = f1
        .tokens
        .iter()
        .map(|t| (t.hash.clone(), t.org.clone(), t.current, t.spent_at))
        .collect();
    states.sort();
    let state = |n: u32, org: &str, current, spent_at| (h(n), org.to_owned(), current, spent_at);
    assert_eq!(
        states,
        [
            state(1, "o1", false, Some(100)),
            state(2, "o2", false, Some(200)),
            state(3, "o1", true, None)
        ]
    );
    assert!(f1.tokens.iter().any(|t| t.hash == h(2) && t.created == 100));
    assert_eq!((families[1].id.as_str(), families[1].revoked), ("f2", true));
    // Deleting the user takes the families with it; importing brings them back as they were.
    store.delete_user("u1").expect("delete user");
    store
        .put_user(&user("u1", "alice", &["o1"]))
        .expect("put user");
    assert_eq!(store.refresh_families().expect("export"), vec![]);
    let version = store.version().expect("version");
    for family in &families {
        store.import_refresh_family(family).expect("import");
    }
    assert!(store.version().expect("version") > version);
    assert_eq!(store.refresh_families().expect("export"), families);
    assert_eq!(
        store
            .rotate_refresh(&h(2), &h(7), "o1", 1000, 205, 10)
            .expect("rotate"),
        Rotation::Reissued(refresh(2, "f1", "u1", "o2", 1000)),
        "an imported spent token keeps its spent time"
    );
    assert_eq!(
        store
            .rotate_refresh(&h(5), &h(8), "o1", 1000, 205, 10)
            .expect("rotate"),
        Rotation::Dead,
        "an imported family keeps its revoked flag"
    );
}

pub fn import_refresh_family_rejects_what_it_cannot_keep_and_changes_nothing(store: &dyn Store) {
    with_family(store);
    let token = |n: u32, current: bool, spent_at: Option<u64>| StoredRefreshToken {
        hash: h(n),
        org: "gone".into(),
        expires_at: 1000,
        current,
        spent_at,
        created: 5,
    };
    let family = |id: &str, user: &str, tokens: Vec<StoredRefreshToken>| RefreshFamily {
        id: id.into(),
        user: user.into(),
        revoked: false,
        tokens,
    };
    let version = store.version().expect("version");
    let before = store.refresh_families().expect("export");
    for (bad, why) in [
        (
            family("f2", "nobody", vec![token(2, true, None)]),
            "unknown user",
        ),
        (
            family("f2", "u1", vec![token(2, true, None), token(3, true, None)]),
            "two current",
        ),
        (
            family("f2", "u1", vec![token(2, true, Some(4))]),
            "current but spent",
        ),
        (
            family(
                "f2",
                "u1",
                vec![StoredRefreshToken {
                    hash: "opaque".into(),
                    ..token(2, true, None)
                }],
            ),
            "not a digest",
        ),
        (family("", "u1", vec![]), "no id"),
    ] {
        assert!(is_invalid(store.import_refresh_family(&bad)), "{why}");
    }
    assert!(is_conflict(store.import_refresh_family(&family(
        "f1",
        "u1",
        vec![]
    ))));
    assert!(is_conflict(store.import_refresh_family(&family(
        "f2",
        "u1",
        vec![token(2, false, Some(4)), token(1, true, None)]
    ))));
    assert_eq!(store.version().expect("version"), version);
    assert_eq!(store.refresh_families().expect("export"), before);
    // An org that no longer exists is kept: refresh tokens do not pin their org.
    store
        .import_refresh_family(&family("f2", "u1", vec![token(2, true, None)]))
        .expect("import");
    assert_eq!(
        store.refresh_families().expect("export")[1].tokens[0].org,
        "gone"
    );
}
