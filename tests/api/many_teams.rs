//! A gateway of many teams (docs/architecture.md#many-teams): background
//! work finds the teams with something due through the teams' due indexes,
//! so an idle gateway costs the store little whatever its number of teams;
//! a due entry of any team is still acted on, once, by whichever instance
//! runs; work that fell due while none ran, or whose note was lost, is
//! found by the rescan at start.
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chatgate::store::{keys, Op, SharedStore};

use crate::helpers::*;
use crate::round_trips::Counting;

/// Many teams: the interactions' team (acme) sorts after all of them.
const MANY: usize = 500;

/// Two-second authentications, among `extra` other teams.
fn short_lived(extra: usize) -> Setup {
    Setup {
        defaults: "authenticated_ttl = \"2s\"".into(),
        extra_teams: extra,
        ..Setup::default()
    }
}

both_stores!(
    the_due_expiry_of_a_team_among_many_fires,
    setup: short_lived(MANY),
    |mut app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-many").await;
        app.advance(3);
        let e = app
            .next_event("interaction.expired", Duration::from_secs(10))
            .await
            .expect("interaction.expired of acme, among 500 other teams");
        assert_eq!(
            crate::helpers::event_data(&e)["interaction"]["id"],
            id.as_str()
        );
    }
);

/// Takes every team out of both due indexes and holds them for ever, as
/// an instance that died between a queue's write and its note would leave
/// them: only a rescan finds their work again.
async fn lose_the_notes(store: &SharedStore) {
    for index in [keys::DUE_INDEX_DUEQ, keys::DUE_INDEX_OUTBOX] {
        // Held past any time the claims below ask for.
        let never = 1_i64 << 50;
        while !store
            .due_teams_claim(index, never - 1, 1_000, never)
            .await
            .unwrap()
            .teams
            .is_empty()
        {}
    }
}

both_stores!(
    a_start_finds_work_that_fell_due_meanwhile_even_unnoted,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        let Some((store, prefix)) = crate::outbox::own_store(backend).await else {
            return;
        };
        let setup = Setup {
            key_prefix: Some(prefix.clone()),
            store: Some(store.clone()),
            ..short_lived(MANY)
        };
        let first = spawn_with(backend, setup.clone()).await.unwrap();
        let id = first.new_interaction().await;
        first.authenticate(&id, "cust-restart").await;
        let keys = Some(first.keys.clone());
        first.stop_keeping_keys().await;
        lose_the_notes(&store).await;
        // No instance runs while the authentication ends.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let mut second = spawn_with(backend, Setup { keys, ..setup }).await.unwrap();
        second.advance(3);
        let e = second
            .next_event("interaction.expired", Duration::from_secs(10))
            .await
            .expect("the expiry that fell due meanwhile, found by the start's rescan");
        assert_eq!(
            crate::helpers::event_data(&e)["interaction"]["id"],
            id.as_str()
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_instance_leaves_its_due_work_to_the_other_done_once() {
    let Some(a) = spawn_with(Backend::Redis, short_lived(MANY)).await else {
        return;
    };
    let second = Setup {
        key_prefix: Some(a.key_prefix.clone()),
        keys: Some(a.keys.clone()),
        ..short_lived(MANY)
    };
    let mut b = spawn_with(Backend::Redis, second).await.unwrap();
    let id = a.new_interaction().await;
    a.authenticate(&id, "cust-dropped").await;
    a.stop_keeping_keys().await;
    b.advance(3);
    b.next_event("interaction.expired", Duration::from_secs(10))
        .await
        .expect("the dropped instance's expiry, announced by the other");
    assert!(
        b.next_event("interaction.expired", Duration::from_secs(3))
            .await
            .is_none(),
        "announced once"
    );
    let expired = || async {
        let texts = b.chat_messages().await;
        texts.iter().filter(|m| m["purpose"] == "expired").count()
    };
    crate::outbox::eventually("the expired text", || async { expired().await >= 1 }).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(expired().await, 1, "the expired text sent once");
}

/// The calls the Redis at `url` has counted so far, over every command (a
/// command inside a script counts).
async fn redis_calls(url: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.split("calls=")
        .skip(1)
        .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .sum()
}

/// Idle, a gateway of 2 000 teams costs Redis a bounded number of
/// commands a second: before the due indexes, every instance read every
/// team's due queue and outbox on its own clock, about 18.5 commands a
/// second per team (37 000 here); with them, about 30
/// (docs/performance.md#idle-teams). The gateway has a `redis-server` of
/// its own, so no other test's traffic is counted; the bound is the least
/// of three one-second windows, so a window that catches the end of the
/// start's rescan does not decide it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_gateway_of_many_teams_costs_the_store_little() {
    use crate::redis_support::OwnRedis;
    let Some((server, app)) = OwnRedis::gateway(
        "an_idle_gateway_of_many_teams_costs_the_store_little",
        short_lived(2_000),
    )
    .await
    else {
        return;
    };
    // Past the start's rescan.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut least = u64::MAX;
    for _ in 0..3 {
        let before = redis_calls(&server.url()).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        least = least.min(redis_calls(&server.url()).await - before);
    }
    eprintln!("idle, 2 000 teams: {least} Redis commands in a second");
    assert!(
        least < 500,
        "{least} Redis commands in a second, idle, with 2 000 teams"
    );
    drop(app);
}

/// The busy teams of the fairness tests, and how many due entries each has.
const BUSY: usize = 6;
const BACKLOG: usize = 1_200;

/// Expiries of `BUSY` teams, `BACKLOG` each, all due before acme's one
/// expiry. Each names no interaction, so its handling removes it.
async fn seed_backlogs(store: &SharedStore, at: i64) {
    for team in 0..BUSY {
        let ids: Vec<String> = (0..BACKLOG)
            .map(|_| format!("x:{}", uuid::Uuid::now_v7()))
            .collect();
        for chunk in ids.chunks(100) {
            let ops = chunk
                .iter()
                .map(|member| chatgate::store::Op::QueueAdd {
                    key: keys::due_queue(&format!("aaa-{team:05}")),
                    member: member.clone(),
                    score: at,
                    ttl: Duration::from_secs(600),
                })
                .collect();
            store.commit(ops).await.unwrap();
        }
    }
}

/// Due entries of each team a pass takes, at most: acme waits for no more
/// than this many of each busy team (docs/architecture.md#many-teams).
const SLICE: usize = 25;

/// How many of the busy teams' entries `ops` take off their queues.
fn busy_removals(ops: &[Op]) -> usize {
    ops.iter()
        .filter(|op| {
            matches!(op, Op::QueueRemove { key, .. }
                if (0..BUSY).any(|team| *key == keys::due_queue(&format!("aaa-{team:05}"))))
        })
        .count()
}

/// The busy teams' entries handled as the sweeper commits them, and that
/// count when acme's due entry is handled (the commit that takes it off
/// acme's queue writes the expiry): the order of the sweeper's own
/// commits, whatever the time the event takes to reach the test. Told by
/// a [`Counting`] store of each commit that applied.
#[derive(Default)]
struct Fairness {
    /// Busy teams' entries taken off their queues so far.
    busy_handled: AtomicUsize,
    /// `busy_handled` when acme's entry was handled.
    before_acme: OnceLock<usize>,
}

impl Fairness {
    /// `inner`, telling a new `Fairness` of its commits.
    fn wrap(inner: SharedStore) -> (Arc<Self>, SharedStore) {
        let fairness = Arc::new(Fairness::default());
        let told = Arc::clone(&fairness);
        let store = Counting::telling(inner, move |ops| told.applied(ops));
        (fairness, Arc::new(store))
    }

    fn applied(&self, ops: &[Op]) {
        let busy = busy_removals(ops);
        let acme = keys::due_queue("acme");
        let acme_handled = ops
            .iter()
            .any(|op| matches!(op, Op::QueueRemove { key, .. } if *key == acme));
        // The sweeper commits one entry at a time, in order: the count
        // read here is what went before acme's entry.
        let so_far = self.busy_handled.fetch_add(busy, Ordering::SeqCst) + busy;
        if acme_handled {
            let _ = self.before_acme.set(so_far);
        }
    }
}

/// Acme's one expiry among six teams' 1 200 each, due just before it, live
/// or (`restart`) found by a new instance: acme is swept in the first pass
/// over the due teams, a slice of each busy team ahead of it, not their
/// whole backlogs (docs/architecture.md#many-teams). The busy entries
/// handled before acme are counted by the store as the sweeper commits
/// them, so the count does not depend on when the test hears the event.
/// Prints how late acme's expiry came and how many busy entries went
/// before it.
async fn a_small_team_among_busy_ones(backend: Backend, restart: bool) {
    let Some((inner, prefix)) = crate::outbox::own_store(backend).await else {
        return;
    };
    let (fairness, store) = Fairness::wrap(inner);
    let setup = Setup {
        key_prefix: Some(prefix.clone()),
        store: Some(store.clone()),
        defaults: "authenticated_ttl = \"30s\"\nexpiry_notice = \"0s\"".into(),
        extra_teams: BUSY,
        ..Setup::default()
    };
    let mut app = spawn_with(backend, setup.clone()).await.unwrap();
    let id = app.new_interaction().await;
    app.authenticate(&id, "cust-small").await;
    // Due before acme's expiry (30 s from now), not yet, nor when a new
    // instance's clock starts.
    seed_backlogs(
        &store,
        app.now().plus(Duration::from_secs(20)).unix_millis(),
    )
    .await;
    if restart {
        let keys = Some(app.keys.clone());
        app.stop_keeping_keys().await;
        app = spawn_with(backend, Setup { keys, ..setup }).await.unwrap();
    }
    assert_eq!(
        fairness.busy_handled.load(Ordering::SeqCst),
        0,
        "nothing due before the clock moves"
    );
    app.advance(40);
    let moved = std::time::Instant::now();
    app.next_event("interaction.expired", Duration::from_secs(30))
        .await
        .expect("acme's expiry");
    let late = moved.elapsed();
    let before = *fairness
        .before_acme
        .get()
        .expect("acme's entry handled by a commit that takes it off its queue");
    println!(
        "fairness ({backend:?}, restart: {restart}): acme's expiry {} ms after it fell due, \
         {before} of {} busy entries handled before it",
        late.as_millis(),
        BUSY * BACKLOG
    );
    // At most a slice of each busy team goes before acme. Taking each
    // team's backlog first handled 6 000 before acme.
    assert!(
        before <= BUSY * SLICE,
        "{before} busy teams' entries handled before acme's one expiry"
    );
}

both_stores!(
    a_small_team_is_swept_among_busy_ones_in_the_first_pass,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        a_small_team_among_busy_ones(backend, false).await;
    }
);

both_stores!(
    a_small_team_is_swept_among_busy_ones_in_the_first_pass_after_a_start,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        a_small_team_among_busy_ones(backend, true).await;
    }
);

/// Puts `n` entries in `team`'s due queue, due at `at`, each naming an
/// interaction that does not exist: the sweeper removes each as it
/// handles it, so an entry gone is an entry acted on.
pub(crate) async fn queue_due(store: &SharedStore, team: &str, at: i64, n: usize) {
    let ops = (0..n)
        .map(|_| chatgate::store::Op::QueueAdd {
            key: keys::due_queue(team),
            member: format!("x:{}", uuid::Uuid::now_v7()),
            score: at,
            ttl: Duration::from_secs(600),
        })
        .collect();
    store.commit(ops).await.unwrap();
}

/// How many entries `team`'s due queue holds.
pub(crate) async fn left_in(store: &SharedStore, team: &str) -> usize {
    let queue = keys::due_queue(team);
    store.index_desc(&queue, None, 1_000).await.unwrap().len()
}

// A reload removes a team while its work falls due; the sweeper, which no
// longer knows the team, drops it from the due index. A reload that adds
// it back notes its queues at once: its work is acted on within seconds,
// not at the slow rescan's turn (minutes).
both_stores!(
    work_due_while_its_team_was_removed_is_acted_on_when_a_reload_adds_it_back,
    setup: short_lived(2),
    |app: TestApp| async move {
        let store = app.gateway.store().clone();
        let team = "aaa-00000";
        let file = app.dir.join(format!("config/teams/{team}.toml"));
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::remove_file(&file).unwrap();
        crate::reload::reload_applies(&app).await;
        queue_due(&store, team, app.now().unix_millis(), 3).await;
        // The sweeper takes the team, finds it no longer configured, and
        // hands it back to nobody.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(left_in(&store, team).await, 3, "a removed team's work waits");
        std::fs::write(&file, text).unwrap();
        crate::reload::reload_applies(&app).await;
        crate::outbox::eventually("the team's work, acted on after it is back", || async {
            left_in(&store, team).await == 0
        })
        .await;
    }
);

/// A reload (as a start) with every team's configuration already recorded
/// reads the digests kept beside the records, 500 teams a store call, and
/// no team's whole recorded configuration (docs/audit.md#configuration-changes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_configuration_of_many_teams_is_checked_in_few_reads() {
    let (counting, app) = crate::round_trips::on_counting_store_with(short_lived(600)).await;
    counting.gets.lock().unwrap().clear();
    crate::reload::reload_applies(&app).await;
    let gets = std::mem::take(&mut *counting.gets.lock().unwrap());
    let naming = |suffix: &str| {
        gets.iter()
            .filter(|keys| keys.iter().any(|k| k.ends_with(suffix)))
            .count()
    };
    assert_eq!(naming("}:acfg"), 0, "no team's whole configuration read");
    // 600 teams and the harness's own: two calls.
    assert_eq!(naming("}:acfgd"), 2, "the digests, 500 teams a call");
}

/// A team whose configuration was recorded without the digest kept beside
/// it (`{team}:acfgd`) gets the digest at the next reload or start, and no
/// second entry: the start after reads it with the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_configuration_without_its_digest_gets_it_and_no_entry() {
    use chatgate::store::Store as _;
    let (counting, app) = crate::round_trips::on_counting_store_with(Setup::default()).await;
    let digest = keys::audit_config_digest("acme");
    let kept = counting.get(std::slice::from_ref(&digest)).await.unwrap();
    let version = kept[0].as_ref().expect("kept at start").version;
    let gone = Op::Delete {
        key: digest.clone(),
        expected: version,
    };
    counting.commit(vec![gone]).await.unwrap();
    let entries = counting.head_commits.load(Ordering::SeqCst);
    crate::reload::reload_applies(&app).await;
    let kept = counting.get(std::slice::from_ref(&digest)).await.unwrap();
    assert!(kept[0].is_some(), "the digest is kept again");
    assert_eq!(
        counting.head_commits.load(Ordering::SeqCst),
        entries,
        "no config.changed: the configuration is the one recorded"
    );
}

/// The interactions whose `expired` notice two instances sent into the
/// chat, and whose `interaction.expired` reached the team's webhook.
async fn acted_on(
    a: &TestApp,
    b: &TestApp,
    hook: &wiremock::MockServer,
) -> (HashSet<String>, HashSet<String>) {
    let mut sent = a.chat_messages().await;
    sent.extend(b.chat_messages().await);
    let notices = sent
        .iter()
        .filter(|m| m["purpose"] == "expired")
        .map(|m| m["conversation_id"].to_string())
        .collect();
    let events = crate::outbox::requests_where(hook, |e| e["type"] == "interaction.expired")
        .await
        .iter()
        .map(|r| crate::outbox::body(r)["data"]["interaction"]["id"].to_string())
        .collect();
    (notices, events)
}

/// Two instances on one store, their clocks going as the wall's; a reload
/// on each, a second apart, removes a team while its work falls due (on
/// an instance that still has it, and on one that no longer does), a later
/// one on each, a second apart, adds it back. Four rounds. Every due entry
/// is acted on — its `expired` notice sent into the chat,
/// its `interaction.expired` on the team's webhook — within 5 s of the
/// team's return, on whichever instance took it
/// (docs/architecture.md#many-teams): not left to a lease or a periodic
/// pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_act_on_a_re_added_team_s_due_work_in_time() {
    const EACH: usize = 8;
    const ROUNDS: usize = 4;
    let hook = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let setup = Setup {
        team_extra: crate::outbox::with_webhook(
            &hook.uri(),
            &chatgate::domain::secrets::generate_whsec(),
        )
        .team_extra,
        ..short_lived(2)
    };
    let Some(a) = spawn_with(Backend::Redis, setup.clone()).await else {
        return;
    };
    let second = Setup {
        key_prefix: Some(a.key_prefix.clone()),
        keys: Some(a.keys.clone()),
        ..setup
    };
    let b = spawn_with(Backend::Redis, second).await.unwrap();
    b.clock.set(a.now());
    // Both clocks go on as the wall's.
    let clocks = [a.clock.clone(), b.clock.clone()];
    let ticking = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            for c in &clocks {
                c.advance(Duration::from_millis(20));
            }
        }
    });
    let file = |app: &TestApp| app.dir.join("config/teams/acme.toml");
    let text = std::fs::read_to_string(file(&a)).unwrap();
    let (mut late, mut slowest) = (0, Duration::ZERO);
    // The instances' reloads a second apart: work falls due on one that
    // still has the team while the other no longer has it, and the other
    // way round.
    let gap = || 1_000;
    for round in 1..=ROUNDS {
        // Authentications through both instances, falling due 2 s later,
        // one after the other over a second.
        for i in 0..EACH {
            let app = if i % 2 == 0 { &a } else { &b };
            let id = app.new_interaction().await;
            app.authenticate(&id, &format!("cust-back-{round}-{i}"))
                .await;
            tokio::time::sleep(Duration::from_millis(1_000 / EACH as u64)).await;
        }
        for app in [&a, &b] {
            std::fs::remove_file(file(app)).unwrap();
            crate::reload::reload_applies(app).await;
            tokio::time::sleep(Duration::from_millis(gap())).await;
        }
        // They fall due while the team is gone: each instance's workers
        // meet a team they no longer know.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let back = std::time::Instant::now();
        for app in [&a, &b] {
            std::fs::write(file(app), &text).unwrap();
            crate::reload::reload_applies(app).await;
            tokio::time::sleep(Duration::from_millis(gap())).await;
        }
        let want = round * EACH;
        let (mut notices, mut events) = (0, 0);
        while back.elapsed() < Duration::from_secs(5) && (notices < want || events < want) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (n, e) = acted_on(&a, &b, &hook).await;
            (notices, events) = (n.len(), e.len());
        }
        slowest = slowest.max(back.elapsed());
        late += (want - notices.min(want)).max(want - events.min(want));
        // What is late now is not counted again next round.
        while back.elapsed() < Duration::from_secs(40) && (notices < want || events < want) {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let (n, e) = acted_on(&a, &b, &hook).await;
            (notices, events) = (n.len(), e.len());
        }
    }
    ticking.abort();
    eprintln!(
        "re-added team: {late} of {} due entries acted on later than 5 s; the slowest round {slowest:?}",
        ROUNDS * EACH
    );
    assert_eq!(
        late, 0,
        "due entries not acted on within 5 s of the team's return"
    );
    a.stop_keeping_keys().await;
}

/// A start reads the stored API teams 500 a store call, and the
/// reservations of their keys in one call more for each such batch
/// (docs/architecture.md#many-teams): at N teams the start's reads of
/// them are 2·⌈N/500⌉ calls, whatever else it reads. More teams than
/// one thread builds alone: they are built on every core, each in force
/// as written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_reads_the_api_teams_and_their_reservations_in_batches() {
    use crate::operator_claims::team_with_key;
    use crate::operator_writes::{put, with_operator};
    const TEAMS: usize = 150;
    let (counting, a) = crate::round_trips::on_counting_store_with(with_operator()).await;
    for i in 0..TEAMS {
        let id = format!("t{i:02}");
        let res = put(&a, &id, &team_with_key(&id, &format!("key-of-{id}")), &[]).await;
        assert_eq!(res.status(), 201);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    counting.gets.lock().unwrap().clear();
    let store: SharedStore = counting.clone();
    let setup = Setup {
        store: Some(store),
        ..with_operator()
    };
    let b = spawn_with(Backend::Memory, setup).await.unwrap();
    let gets = std::mem::take(&mut *counting.gets.lock().unwrap());
    let config = b.reloader.in_force().config().clone();
    assert_eq!(config.api_teams().count(), TEAMS);
    for team in config.api_teams() {
        let key = chatgate::domain::secrets::ApiKeyHash::of_key(&format!("key-of-{}", team.id));
        assert!(
            team.api_keys.iter().any(|k| k.sha256.matches(&key)),
            "{} has its own key",
            team.id
        );
    }
    let bodies: Vec<&Vec<String>> = (gets.iter())
        .filter(|keys| keys.iter().any(|k| k.ends_with("}:tm")))
        .collect();
    assert_eq!(bodies.len(), 1, "every team's body in one call: {bodies:?}");
    assert_eq!(bodies[0].len(), TEAMS);
    let first = chatgate::domain::secrets::ApiKeyHash::of_key("key-of-t00").to_hex();
    let reservations: Vec<&Vec<String>> = (gets.iter())
        .filter(|keys| keys.iter().any(|k| *k == keys::api_key_reserved(&first)))
        .collect();
    assert_eq!(reservations.len(), 1, "every key's reservation in one call");
    assert_eq!(reservations[0].len(), TEAMS, "one key a team");
    drop(a);
}
