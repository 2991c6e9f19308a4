//! Every key a team's requests write is in the team's Redis Cluster slot,
//! those found from what a browser brings (a short link's code, a page
//! link's code, a wallet request's key id, a console sign-in's state, a
//! console session's cookie) included: a master's failure reaches only
//! the teams whose keys it holds (docs/architecture.md#many-teams,
//! docs/decisions/0590-a-browser-s-code-carries-its-team-s-slot.md,
//! docs/decisions/0631-every-code-a-browser-brings-carries-its-team-s-slot.md).
//! The store's own keys shared by teams (`{~due…}`, `{~teams}`, `{~ep…}`)
//! are the only others.
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chatgate::store::keys::{slot_of, team_slot};
use chatgate::store::{SharedStore, StoreError};
use chatgate::time::Timestamp;
use reqwest::Method;
use serde_json::json;

use crate::console_sign_in::{console_section, sign_in, with_session, HTTP};
use crate::helpers::*;
use crate::oidc_provider::FakeIdp;
use crate::wallet::{self, Access};
use crate::wrapped::{Around, Call, Wrapped};

/// A store that notes the key of every op committed through it.
struct Noting {
    inner: SharedStore,
    written: Mutex<Vec<String>>,
}

#[async_trait]
impl Around for Noting {
    fn inner(&self) -> SharedStore {
        Arc::clone(&self.inner)
    }

    async fn before(&self, call: Call<'_>) -> Result<(), StoreError> {
        if let Call::Commit(ops) = call {
            let mut written = self.written.lock().unwrap();
            written.extend(ops.iter().map(|op| op.key().to_string()));
        }
        Ok(())
    }
}

/// Whether `key` is one of the store's own keys shared by teams.
fn shared(key: &str) -> bool {
    ["{~due", "{~teams}", "{~ep"]
        .iter()
        .any(|tag| key.starts_with(tag))
}

both_stores!(
    every_key_a_team_s_requests_write_is_in_the_team_s_slot,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        let Some((inner, prefix)) = crate::outbox::own_store(backend).await else {
            return;
        };
        let store = Wrapped::new(Noting {
            inner,
            written: Mutex::new(Vec::new()),
        });
        // acme with a workforce provider for its console (which shows
        // codes to agents) and a `[wallet]`, the clock where the wallet's
        // fixtures hold.
        let access = wallet::access();
        let idp = FakeIdp::start_for(&format!("{HTTP}/console/acme/callback")).await;
        let team_extra = wallet::wallet_setup(&access, "").team_extra + &console_section(&idp, "");
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store.store()),
            team_extra,
            public_url: Some(HTTP.into()),
            ..Setup::default()
        };
        let Some(app) = spawn_with(backend, setup).await else {
            return;
        };
        let now = wallet::fixtures()["now"].as_i64().unwrap();
        app.clock.set(Timestamp::from_unix_seconds(now));
        idp.use_clock(app.clock.clone());
        idp.sign_in_as("jane-0001");
        idp.id_token_claims(json!({"groups": ["agents"], "preferred_username": "jane.doe"}));
        // What the start wrote of each team is its own; from here on,
        // only acme's requests (another team's start may still be
        // writing its own keys meanwhile).
        store.written.lock().unwrap().clear();
        // A login link issued, followed by the browser, used.
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let short = link["short_url"].as_str().unwrap();
        let code = short.rsplit('/').next().unwrap();
        let res = app
            .request(Method::GET, &format!("/l/{code}"), None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        let token = link["token"].as_str().unwrap();
        let res = app
            .callback(token, "success", json!({"id": "cust-slot"}))
            .await;
        assert_eq!(res.status(), 200);
        // A code typed on a page: its link saved, opened.
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/challenges"),
                Some(&app.keys.bot),
                &json!({"method": "otp", "delivery": "agent", "entry": "page"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let page = last_code_page_link(&app, "code_entry_link").await;
        let res = app.request(Method::GET, &page, None).send().await.unwrap();
        assert_eq!(res.status(), 200);
        wallet_answered(&app, &access, now).await;
        // A staff member signs in to the console, is known by the
        // session's cookie, and signs out.
        let session = sign_in(&app).await.session();
        let me = with_session(&app, Method::GET, "/console/session", &session, false);
        assert_eq!(me.send().await.unwrap().status(), 200);
        let out = with_session(&app, Method::POST, "/console/sign-out", &session, true);
        assert!(out.send().await.unwrap().status().is_success());

        let slot = team_slot("acme");
        let written = store.written.lock().unwrap().clone();
        let found_by_code = ["l:", "ce:", "wl:", "wk:", "csi:", "cst:"].map(|p| {
            written
                .iter()
                .any(|k| k.starts_with("{~s") && k.contains(&format!("}}:{p}")))
        });
        assert_eq!(found_by_code, [true; 6], "{written:#?}");
        let elsewhere: Vec<_> = written
            .iter()
            .filter(|k| !shared(k) && !k.starts_with("{globex}:"))
            .filter(|k| slot_of(k.as_bytes()) != slot)
            .collect();
        assert!(elsewhere.is_empty(), "outside acme's slot: {elsewhere:#?}");
    }
);

/// A wallet challenge asked, its link's page fetched by a wallet and
/// answered with the fixtures' credential: the answer is found by its
/// request key's id alone.
async fn wallet_answered(app: &TestApp, access: &Access, now: i64) {
    let id = wallet::interaction(app, "cust-slot-wallet").await;
    let (_, link) = wallet::start(app, &id, wallet::ada()).await;
    let asked = wallet::fetch_request(app, access, &link).await;
    let kid = asked["client_metadata"]["jwks"]["keys"][0]["kid"]
        .as_str()
        .unwrap();
    assert!(
        kid.starts_with(&format!("{:04x}.", team_slot("acme"))),
        "{kid}"
    );
    let jwe = wallet::answer_for(&asked, &wallet::present("es256", &asked, None, now));
    assert_eq!(wallet::respond(app, &jwe).await.status(), 200);
}
