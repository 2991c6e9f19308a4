//! Every key a team's requests write is in the team's Redis Cluster slot,
//! those found from what a browser brings (a short link's code, a page
//! link's code) included: a master's failure reaches only the teams whose
//! keys it holds (docs/architecture.md#many-teams,
//! docs/decisions/0590-a-browser-s-code-carries-its-team-s-slot.md). The
//! store's own keys shared by teams (`{~due…}`, `{~teams}`, `{~ep…}`)
//! are the only others.
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chatgate::store::keys::{slot_of, team_slot};
use chatgate::store::{SharedStore, StoreError};
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;
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
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store.store()),
            team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
            ..Setup::default()
        };
        let Some(app) = spawn_with(backend, setup).await else {
            return;
        };
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

        let slot = team_slot("acme");
        let written = store.written.lock().unwrap().clone();
        let found_by_code = ["l:", "ce:"].map(|p| {
            written
                .iter()
                .any(|k| k.starts_with("{~s") && k.contains(&format!("}}:{p}")))
        });
        assert_eq!(found_by_code, [true, true], "{written:#?}");
        let elsewhere: Vec<_> = written
            .iter()
            .filter(|k| !shared(k) && !k.starts_with("{globex}:"))
            .filter(|k| slot_of(k.as_bytes()) != slot)
            .collect();
        assert!(elsewhere.is_empty(), "outside acme's slot: {elsewhere:#?}");
    }
);
