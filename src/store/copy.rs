//! Copying a whole store into another, empty one (`tollgate store copy`): how a gate that
//! outgrew its SQLite file moves to a shared PostgreSQL database. Written over
//! [`Store`] only, so any backend copies into any other. Never opens a store itself
//! (the caller does) and never sees the configuration.
//!
//! **What moves.** Organisations (with their Azure placement), projects, resources,
//! users (with their organisations in grant order), API tokens (as their hashes),
//! revocations (in order, with their times) and refresh families whole (every token,
//! current or spent, with its spent time; the family's revoked flag), so a refresh
//! token issued before the copy rotates, is reissued or is caught as reused after it
//! exactly as it would have been before.
//!
//! **Refusals.** A target that holds anything is refused before a single write: a copy
//! never merges two stores. The source is read listing by listing; if its version moved
//! meanwhile (a gate still writing to it), the copy reports it after writing, and the
//! target must be emptied and the copy run again with the gates stopped.
//!
//! **Half-way.** Each row is written in a transaction of its own (a refresh family with
//! all its tokens in one), in dependency order: organisations, projects, resources,
//! users, API tokens, revocations, refresh families. A copy that stops half-way leaves a
//! target that is not empty, so a rerun refuses it; the recovery is to drop and recreate
//! the target database (or delete the target file) and copy again. The source is only
//! read, never changed.

use super::{
    ApiToken, Org, Project, RefreshFamily, Resource, Result, Revocation, Store, StoreError, User,
};

/// How many rows of each kind a copy wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Copied {
    pub orgs: usize,
    pub projects: usize,
    pub resources: usize,
    pub users: usize,
    pub api_tokens: usize,
    pub revocations: usize,
    pub refresh_families: usize,
    pub refresh_tokens: usize,
}

/// Everything a store holds, as its listings return it.
struct Snapshot {
    orgs: Vec<Org>,
    projects: Vec<Project>,
    resources: Vec<Resource>,
    users: Vec<User>,
    api_tokens: Vec<ApiToken>,
    revocations: Vec<Revocation>,
    refresh_families: Vec<RefreshFamily>,
}

/// Copy everything `from` holds into `to`, which must be empty (see the module doc).
pub fn copy(from: &dyn Store, to: &dyn Store) -> Result<Copied> {
    refuse_unless_empty(to)?;
    let version = from.version()?;
    let snapshot = Snapshot::read(from)?;
    snapshot.write(to)?;
    if from.version()? != version {
        return Err(StoreError::Conflict(
            "the source changed while it was being copied: stop every gate using it, \
             empty the target and copy again"
                .into(),
        ));
    }
    Ok(snapshot.counts())
}

/// `Conflict` naming what `store` holds, unless it holds nothing.
pub fn refuse_unless_empty(store: &dyn Store) -> Result<()> {
    let held = Snapshot::read(store)?.counts();
    if held == Copied::default() {
        return Ok(());
    }
    Err(StoreError::Conflict(format!(
        "the target store is not empty ({held:?}): copy only into a new, empty store"
    )))
}

impl Snapshot {
    fn read(store: &dyn Store) -> Result<Self> {
        Ok(Self {
            orgs: store.orgs()?,
            projects: store.projects()?,
            resources: store.resources()?,
            users: store.users()?,
            api_tokens: store.api_tokens()?,
            revocations: store.revocations()?,
            refresh_families: store.refresh_families()?,
        })
    }

    /// Write every row into `to`, each kind after the kinds it refers to. Revocations
    /// go before refresh families: recording a `subject` revocation marks that user's
    /// families revoked, which must not reach families made after it; the families then
    /// arrive with their own revoked flags.
    fn write(&self, to: &dyn Store) -> Result<()> {
        self.orgs.iter().try_for_each(|o| to.put_org(o))?;
        self.projects.iter().try_for_each(|p| to.put_project(p))?;
        self.resources.iter().try_for_each(|r| to.put_resource(r))?;
        self.users.iter().try_for_each(|u| to.put_user(u))?;
        self.api_tokens
            .iter()
            .try_for_each(|t| to.put_api_token(t))?;
        self.revocations.iter().try_for_each(|r| to.revoke(r))?;
        self.refresh_families
            .iter()
            .try_for_each(|f| to.import_refresh_family(f))
    }

    fn counts(&self) -> Copied {
        Copied {
            orgs: self.orgs.len(),
            projects: self.projects.len(),
            resources: self.resources.len(),
            users: self.users.len(),
            api_tokens: self.api_tokens.len(),
            revocations: self.revocations.len(),
            refresh_families: self.refresh_families.len(),
            refresh_tokens: self.refresh_families.iter().map(|f| f.tokens.len()).sum(),
        }
    }
}

/// The copy's cases, run by the conformance suite on every backend as the target (the
/// source is a SQLite file, the store a gate outgrows).
#[cfg(test)]
pub(crate) mod cases {
    use super::*;
    use crate::resource::ResourceType;
    use crate::store::conformance::{api_token, h, org, project, refresh, resource, user};
    use crate::store::sqlite::SqliteStore;
    use crate::store::{AzurePlacement, RevocationKind, Rotation};

    /// A SQLite source in a temporary directory (dropped with it).
    struct Source {
        store: SqliteStore,
        _dir: tempfile::TempDir,
    }

    fn source() -> Source {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("source.db")).expect("open source");
        Source { store, _dir: dir }
    }

    /// A store with every kind of row, each in its less common variants too: an Azure
    /// placement, a resource without a project, a public and an unpublished resource,
    /// a user granted two orgs (in a non-alphabetical order), a refresh family rotated
    /// twice (two spent tokens with their spent times, one current), one revoked for
    /// reuse, one revoked by a subject revocation, one made after that revocation
    /// (still alive), one whose current token's org was deleted since, and revocations
    /// of every kind.
    fn populate(store: &dyn Store) {
        store.put_org(&org("o1")).expect("org");
        store
            .put_org(&Org {
                azure: Some(AzurePlacement {
                    subscription: "sub-1".into(),
                    resource_group: "rg-1".into(),
                }),
                ..org("o2")
            })
            .expect("org with placement");
        store.put_org(&org("o3")).expect("org");
        store.put_project(&project("p1", "o1")).expect("project");
        store.put_project(&project("p2", "o2")).expect("project");
        store
            .put_resource(&resource("r1", "o1", Some("p1")))
            .expect("resource");
        store
            .put_resource(&Resource {
                resource_type: ResourceType::Live,
                public: true,
                ..resource("r1", "o2", None)
            })
            .expect("public live resource");
        store
            .put_resource(&Resource {
                published: false,
                ..resource("r2", "o2", Some("p2"))
            })
            .expect("unpublished resource");
        store
            .put_user(&user("u1", "alice", &["o2", "o1"]))
            .expect("user");
        store.put_user(&user("u2", "bob", &["o1"])).expect("user");
        store.put_user(&user("u3", "carol", &["o3"])).expect("user");
        store
            .put_api_token(&api_token("t1", "o1", 101))
            .expect("api token");
        store
            .put_api_token(&api_token("t2", "o2", 102))
            .expect("api token");
        families(store);
        for (kind, value, at) in [
            (RevocationKind::Jti, "jti-1", 40),
            (RevocationKind::Org, "o9", 41),
            (RevocationKind::Family, "gone", 42),
        ] {
            store
                .revoke(&Revocation {
                    kind,
                    value: value.into(),
                    at,
                    expires: None,
                })
                .expect("revoke");
        }
    }

    /// The refresh families of [`populate`].
    fn families(store: &dyn Store) {
        store
            .insert_refresh(&refresh(1, "f1", "u1", "o1", 10_000))
            .expect("login");
        rotated(store.rotate_refresh(&h(1), &h(2), "o2", 10_000, 100, 0));
        rotated(store.rotate_refresh(&h(2), &h(3), "o1", 10_000, 200, 0));
        store
            .insert_refresh(&refresh(4, "f2", "u1", "o1", 10_000))
            .expect("login");
        rotated(store.rotate_refresh(&h(4), &h(5), "o1", 10_000, 100, 0));
        let reused = store.rotate_refresh(&h(4), &h(6), "o1", 10_000, 300, 0);
        assert!(matches!(reused, Ok(Rotation::Reused(_))), "{reused:?}");
        store
            .insert_refresh(&refresh(7, "f3", "u2", "o1", 10_000))
            .expect("login");
        store
            .revoke(&Revocation {
                kind: RevocationKind::Subject,
                value: "u2".into(),
                at: 50,
                expires: None,
            })
            .expect("revoke subject");
        store
            .insert_refresh(&refresh(8, "f4", "u2", "o1", 10_000))
            .expect("login");
        store
            .insert_refresh(&refresh(9, "f5", "u3", "o3", 10_000))
            .expect("login");
        store.delete_user("u3").expect("delete user");
        store
            .put_user(&user("u3", "carol", &["o1"]))
            .expect("user again");
        store
            .insert_refresh(&refresh(10, "f6", "u3", "o3", 10_000))
            .expect("login");
        store.delete_org("o3").expect("delete org");
    }

    fn rotated(r: Result<Rotation>) {
        assert!(matches!(r, Ok(Rotation::Rotated(_))), "{r:?}");
    }

    /// Every listing of `a` equals `b`'s, and every token looks the same in both.
    fn assert_same(a: &dyn Store, b: &dyn Store) {
        assert_eq!(a.orgs().expect("orgs"), b.orgs().expect("orgs"));
        assert_eq!(
            a.projects().expect("projects"),
            b.projects().expect("projects")
        );
        assert_eq!(
            a.resources().expect("resources"),
            b.resources().expect("resources")
        );
        assert_eq!(a.users().expect("users"), b.users().expect("users"));
        assert_eq!(
            a.api_tokens().expect("tokens"),
            b.api_tokens().expect("tokens")
        );
        assert_eq!(
            a.revocations().expect("revs"),
            b.revocations().expect("revs")
        );
        assert_eq!(
            a.refresh_families().expect("families"),
            b.refresh_families().expect("families")
        );
        for n in 1..=11 {
            assert_eq!(
                a.refresh_token(&h(n)).expect("lookup"),
                b.refresh_token(&h(n)).expect("lookup"),
                "refresh token {n}"
            );
        }
        for n in [101, 102] {
            assert_eq!(
                a.api_token_by_hash(&h(n)).expect("lookup"),
                b.api_token_by_hash(&h(n)).expect("lookup")
            );
        }
    }

    /// Copy a populated SQLite source into `target`: every row is there, and every
    /// refresh token answers a rotation the same way in both.
    pub fn every_kind_of_row_survives_a_copy_from_sqlite(target: &dyn Store) {
        let src = source();
        populate(&src.store);
        let copied = copy(&src.store, target).expect("copy");
        assert_eq!(
            copied,
            Copied {
                orgs: 2,
                projects: 2,
                resources: 3,
                users: 3,
                api_tokens: 2,
                revocations: 5,
                refresh_families: 5,
                refresh_tokens: 8,
            }
        );
        assert_same(&src.store, target);
        let families = target.refresh_families().expect("families");
        let revoked: Vec<(&str, bool)> = families
            .iter()
            .map(|f| (f.id.as_str(), f.revoked))
            .collect();
        assert_eq!(
            revoked,
            [
                ("f1", false),
                ("f2", true),
                ("f3", true),
                ("f4", false),
                ("f6", false)
            ]
        );
    }

    /// After a copy, the same presentations get the same answers from the source and
    /// the target: a current token rotates, a just-spent one is reissued within the
    /// reuse interval, an old spent one revokes its family, a revoked family is dead,
    /// and an admin revocation kills a family in both.
    pub fn refresh_rotation_and_revocation_behave_the_same_after_a_copy(target: &dyn Store) {
        let src = source();
        populate(&src.store);
        copy(&src.store, target).expect("copy");
        let stores: [&dyn Store; 2] = [&src.store, target];
        let presentations = [
            (3, 20, 300, 0),  // f1's current token
            (3, 21, 305, 10), // f1's token just spent: reissued
            (1, 22, 400, 0),  // f1's oldest spent token: reuse
            (5, 23, 400, 0),  // f2, revoked for reuse: dead
            (7, 24, 400, 0),  // f3, revoked by subject: dead
            (8, 25, 400, 0),  // f4, made after that revocation: rotates
            (10, 26, 400, 0), // f6, its org deleted since: rotates to o1
        ];
        for (n, new, now, interval) in presentations {
            let answers: Vec<Rotation> = stores
                .iter()
                .map(|s| {
                    s.rotate_refresh(&h(n), &h(new), "o1", 10_000, now, interval)
                        .expect("rotate")
                })
                .collect();
            assert_eq!(answers[0], answers[1], "presenting token {n}");
        }
        for s in stores {
            s.revoke(&Revocation {
                kind: RevocationKind::Family,
                value: "f4".into(),
                at: 500,
                expires: None,
            })
            .expect("revoke");
        }
        assert_same(&src.store, target);
        assert_eq!(
            target.refresh_token(&h(25)).expect("lookup").map(|t| t.1),
            Some(false)
        );
    }

    /// A target holding anything is refused before a single write.
    pub fn a_copy_into_a_store_that_is_not_empty_is_refused_and_writes_nothing(target: &dyn Store) {
        let src = source();
        populate(&src.store);
        target.put_org(&org("already-here")).expect("org");
        let version = target.version().expect("version");
        let refused = copy(&src.store, target);
        assert!(
            matches!(&refused, Err(StoreError::Conflict(m)) if m.contains("not empty")),
            "{refused:?}"
        );
        assert_eq!(target.version().expect("version"), version);
        assert_eq!(target.orgs().expect("orgs"), vec![org("already-here")]);
    }
}
