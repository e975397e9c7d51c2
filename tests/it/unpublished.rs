//! The one unpublished rule at the edge: an unpublished resource plays only for an admin
//! token (`adm`), whatever the token's scope. Project- and account-scoped tokens (Azure
//! Video Indexer's Project and Account scopes, movingimage access tokens) are issued
//! without naming a resource, so the rule cannot live only in the issuer.
//!
//! A gate with the standard setup and a store holding org `acme`, project `p9`, vod `v3`
//! (unpublished) and `v1` (published), and user carol (acme), set up through the
//! management API. Its vod route also accepts Akamai EdgeAuth tokens and Common Access
//! Tokens (a foreign credential is never an admin's).

use crate::common;

use std::time::Duration;

use http::Method;
use serde_json::{json, Value};
use tollgate::resource::ResourceType;
use tollgate::token::{MintRequest, Scope};

use common::*;

const CAROL: (&str, &str) = ("carol", "carol-secret-1");
/// How long a store change may take to reach the edge (`store.poll` is 250 ms).
const STORE_DEADLINE: Duration = Duration::from_secs(2);

struct World {
    origin: TestOrigin,
    tg: TestGate,
}

async fn world() -> World {
    let origin = TestOrigin::start().await;
    let mut setup = Setup::standard(vec![origin.url()]);
    setup.extra = setup.extra.replacen(
        "path = \"/vod/{rid}/\"\n",
        "path = \"/vod/{rid}/\"\nformats = [\"native\", \"akamai\", \"cat\"]\n",
        1,
    );
    setup.extra += &format!(
        "\n[[formats]]\nname = \"akamai\"\nkind = \"edgeauth\"\nkey = \"{EDGEAUTH_KEY}\"\n\
         \n[[formats]]\nname = \"cat\"\nkind = \"cat\"\n\
         [[formats.keys]]\nkid = \"k1\"\nalg = \"HS256\"\nkey = \"{}\"\n",
        crate::cat_edge::KEY
    );
    let tg = start(setup).await;
    let w = World { origin, tg };
    w.created("/v1/orgs", json!({"id": "acme", "name": "Acme"}))
        .await;
    w.created(
        "/v1/projects",
        json!({"id": "p9", "org": "acme", "name": "p9"}),
    )
    .await;
    w.created(
        "/v1/users",
        json!({"username": CAROL.0, "password": CAROL.1, "orgs": ["acme"]}),
    )
    .await;
    for r in [
        json!({"id": "v1", "type": "vod", "org": "acme", "project": "p9"}),
        json!({"id": "v3", "type": "vod", "org": "acme", "project": "p9", "published": false}),
    ] {
        w.created("/v1/resources", r).await;
    }
    // v1 is the last resource written: once an account token plays it, the registry
    // (replaced whole from one store read) holds v3 too.
    w.plays_within(&w.account(false), "/vod/v1/").await;
    w
}

impl World {
    async fn created(&self, path: &str, body: Value) {
        let admin_token = std::fs::read_to_string(self.tg.dir.path().join("admin-token"))
            .expect("the gate writes its admin token file");
        let auth = format!("Bearer {}", admin_token.trim());
        let got = send(
            self.tg.admin(),
            Method::POST,
            path,
            &[
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(got.status, 201, "POST {path} {body}: {got:?}");
    }

    fn mint(&self, req: MintRequest) -> String {
        self.tg.mint_with("ed", &req, now())
    }

    fn project(&self, admin: bool) -> String {
        self.mint(MintRequest {
            scope: Scope::Project,
            org: Some("acme".into()),
            prj: Some("p9".into()),
            admin,
            ..resource("", ResourceType::Vod)
        })
    }

    fn account(&self, admin: bool) -> String {
        self.mint(MintRequest {
            scope: Scope::Account,
            org: Some("acme".into()),
            admin,
            ..resource("", ResourceType::Vod)
        })
    }

    async fn segment(&self, token: &str, prefix: &str) -> Got {
        get(
            self.tg.plain(),
            &format!("{prefix}seg-1.ts?token={token}"),
            &[],
        )
        .await
    }

    async fn plays_within(&self, token: &str, prefix: &str) {
        let end = tokio::time::Instant::now() + STORE_DEADLINE;
        loop {
            let got = self.segment(token, prefix).await;
            if got.status == 200 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "{prefix} must play within {STORE_DEADLINE:?}: {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// 200 from the origin.
    async fn assert_plays(&self, token: &str, prefix: &str, what: &str) {
        let before = self.origin.count();
        let got = self.segment(token, prefix).await;
        assert_eq!(got.status, 200, "{what}: must play {prefix}: {got:?}");
        assert_eq!(self.origin.count(), before + 1, "{what}");
    }

    /// 403 `scope`, and the origin never asked.
    async fn assert_refused(&self, token: &str, prefix: &str, what: &str) {
        let before = self.origin.count();
        let got = self.segment(token, prefix).await;
        assert_eq!(got.status, 403, "{what}: must not play {prefix}: {got:?}");
        assert_eq!(got.reason(), "scope", "{what}: {got:?}");
        assert_eq!(self.origin.count(), before, "{what}: reached the origin");
    }
}

#[tokio::test]
async fn project_and_account_tokens_do_not_play_an_unpublished_resource() {
    let w = world().await;
    for (what, token) in [("project", w.project(false)), ("account", w.account(false))] {
        w.assert_plays(&token, "/vod/v1/", what).await;
        w.assert_refused(&token, "/vod/v3/", what).await;
    }
}

#[tokio::test]
async fn admin_tokens_of_every_scope_play_an_unpublished_resource() {
    let w = world().await;
    let resource_admin = w.mint(MintRequest {
        admin: true,
        ..resource("v3", ResourceType::Vod)
    });
    for (what, token) in [
        ("resource admin", resource_admin),
        ("project admin", w.project(true)),
        ("account admin", w.account(true)),
    ] {
        w.assert_plays(&token, "/vod/v3/", what).await;
    }
    // The same rule for a resource token issued without adm (e.g. before the resource
    // was unpublished).
    let plain = w.mint(resource("v3", ResourceType::Vod));
    w.assert_refused(&plain, "/vod/v3/", "resource token without adm")
        .await;
}

#[tokio::test]
async fn a_movingimage_access_token_does_not_play_an_unpublished_resource() {
    let w = world().await;
    let body = json!({"username": CAROL.0, "password": CAROL.1}).to_string();
    let got = send(
        w.tg.admin(),
        Method::POST,
        "/v1/vms/auth/login",
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .await;
    assert_eq!(got.status, 200, "login: {got:?}");
    let v: Value = serde_json::from_slice(&got.body).expect("JSON");
    let token = v["accessToken"].as_str().expect("accessToken");
    w.assert_plays(token, "/vod/v1/", "movingimage").await;
    w.assert_refused(token, "/vod/v3/", "movingimage").await;
}

#[tokio::test]
async fn a_foreign_credential_does_not_play_an_unpublished_resource() {
    let w = world().await;
    let edgeauth = edgeauth(&format!("exp={}~acl=/vod/*", now() + 600), "");
    let cat = crate::cat_edge::token(600, vec![]);
    for query in [format!("hdnts={edgeauth}"), format!("CAT={cat}")] {
        let at = |rid: &str| format!("/vod/{rid}/seg-1.ts?{query}");
        let before = w.origin.count();
        let got = get(w.tg.plain(), &at("v1"), &[]).await;
        assert_eq!(got.status, 200, "published: {got:?}");
        let got = get(w.tg.plain(), &at("v3"), &[]).await;
        let refused = (got.status.as_u16(), got.reason());
        assert_eq!(refused, (403, "scope"), "{query}: {got:?}");
        assert_eq!(w.origin.count(), before + 1, "{query}: reached the origin");
    }
}
