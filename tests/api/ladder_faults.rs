//! A delivery ladder across a dead instance (docs/api.md#delivery-ladder,
//! docs/decisions/0201-a-resent-step-moves-on-and-every-move-is-announced-in-its-commit.md):
//! a step whose sender died is sent once more and moves on from there as
//! any step does — at once when its time-out passed meanwhile — and every
//! move is announced once, by whichever instance records it. Counted, not
//! timed: for each ladder, the messages each step's provider received, the
//! moves its challenge records (`via`) and the `challenge.advanced` events
//! in the team's history.
//!
//! In-process, on both stores: a sender that never finishes (its provider
//! holds the request) is the instance killed mid-send; a gateway stopped
//! while its poller sends is the SIGTERM; two gateways on one store race
//! for the same time-outs. On processes (Redis): the built binary killed
//! with -KILL and -TERM mid-send, and two of them at once, printing one
//! line per run (docs/operations.md#a-ladder-across-a-dead-instance).
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;
use crate::ladder::{
    advance_and_leave, ladder, providers_answer_with_ids, start_ladder, tg_takes, tg_takes_after,
    with_phone, PHONE,
};

/// How long a test waits on a move before it leaves it mid-send.
const LEAVE_AFTER: Duration = Duration::from_millis(300);

/// Makes the fake Telegram gateway hold its next `n` sends for good (a
/// sender waiting on it never finishes), then take codes at once.
async fn tg_holds_the_next(app: &TestApp, n: u64) {
    Mock::given(method("POST"))
        .and(path("/tg/sendVerificationMessage"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(600)))
        .up_to_n_times(n)
        .with_priority(1)
        .mount(&app.chat)
        .await;
    tg_takes(app).await;
}

/// The messages the fake providers received, each as `(step, phone)`.
async fn sends(app: &TestApp) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in app.chat.received_requests().await.unwrap_or_default() {
        let p = r.url.path();
        let form = || -> Vec<(String, String)> {
            url::form_urlencoded::parse(&r.body).into_owned().collect()
        };
        if p.starts_with("/wa/") {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            out.push(("wa".into(), v["to"].as_str().unwrap_or_default().into()));
        } else if p.ends_with("/Messages.json") {
            let to = form().into_iter().find(|(k, _)| k == "To").unwrap().1;
            out.push(("sms".into(), to));
        } else if p.ends_with("/sendVerificationMessage") {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            out.push(("tg".into(), v["phone_number"].as_str().unwrap().into()));
        }
    }
    out
}

/// The `challenge.advanced` events of the team's history, in order:
/// `(interaction, previous_channel, channel, reason)`.
async fn advanced(app: &TestApp) -> Vec<(String, String, String, String)> {
    let log = app.gateway.events().log();
    let logged = log.read_after("acme", None, 10_000).await.unwrap();
    logged
        .iter()
        .filter(|e| e.event.kind.as_str() == "challenge.advanced")
        .map(|e| {
            let d: Value = serde_json::from_str(e.event.data.get()).unwrap();
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (
                s(&d["interaction"]["id"]),
                s(&d["previous_channel"]),
                s(&d["challenge"]["channel"]),
                s(&d["reason"]),
            )
        })
        .collect()
}

/// What a run of `ladders` (interaction ids, each to its own phone)
/// came to.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    ladders: usize,
    /// Ladders not on their last step at the end.
    stopped: usize,
    /// Messages beyond one per step and ladder (a step sent again).
    sent_twice: usize,
    /// Steps that took the code after the first: `via`'s length less one.
    moves: usize,
    events: usize,
    /// Events announcing the same move again.
    duplicate_events: usize,
}

impl Tally {
    fn events_missing(&self) -> usize {
        self.moves
            .saturating_sub(self.events - self.duplicate_events)
    }

    fn line(&self, run: &str) -> String {
        format!(
            "ladder run ({run}): {} ladders, stopped {}, sent twice {}, moves {}, events {}, events missing {}, duplicate events {}",
            self.ladders,
            self.stopped,
            self.sent_twice,
            self.moves,
            self.events,
            self.events_missing(),
            self.duplicate_events
        )
    }
}

/// Where a run reads its interactions: a gateway's address and the bot's
/// key.
struct Reader {
    base: String,
    key: String,
}

impl Reader {
    fn of(app: &TestApp) -> Self {
        Reader {
            base: app.base.clone(),
            key: app.keys.bot.clone(),
        }
    }

    /// The channels of interaction `id`'s ladder that took its code, in
    /// order (`open_challenge.ladder`, its steps left and the current one).
    async fn steps_taken(&self, id: &str) -> Vec<String> {
        let v: Value = reqwest::Client::new()
            .get(format!("{}/v1/interactions/{id}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let steps = v["open_challenge"]["ladder"].as_array().cloned();
        steps
            .unwrap_or_default()
            .iter()
            .filter(|s| s["step"] == "left" || s["step"] == "current")
            .map(|s| s["channel"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits (real time, up to `within`) until every one of `ladders` is on
    /// its last step.
    async fn until_all_on_sms(&self, ladders: &[(String, String)], within: Duration) {
        let deadline = std::time::Instant::now() + within;
        'wait: while std::time::Instant::now() < deadline {
            for (id, _) in ladders {
                if self.steps_taken(id).await.last().map(String::as_str) != Some("sms") {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue 'wait;
                }
            }
            return;
        }
    }
}

/// The digits of a phone number, however a provider's request spells it.
fn digits(phone: &str) -> String {
    phone.chars().filter(char::is_ascii_digit).collect()
}

/// Counts `ladders` (`(interaction, phone)`) as `reader` reads them, the
/// messages in `sent` and the events in `events`.
async fn tally(
    reader: &Reader,
    ladders: &[(String, String)],
    sent: &[(String, String)],
    events: &[(String, String, String, String)],
) -> Tally {
    let mut t = Tally {
        ladders: ladders.len(),
        ..Tally::default()
    };
    for (id, phone) in ladders {
        let taken = reader.steps_taken(id).await;
        if taken.last().map(String::as_str) != Some("sms") {
            t.stopped += 1;
        }
        t.moves += taken.len().saturating_sub(1);
        let mut per_step: BTreeMap<&str, usize> = BTreeMap::new();
        for (step, to) in sent {
            if digits(to) == digits(phone) {
                *per_step.entry(step).or_default() += 1;
            }
        }
        t.sent_twice += per_step.values().map(|n| n - 1).sum::<usize>();
        let mine: Vec<_> = events.iter().filter(|e| &e.0 == id).collect();
        t.events += mine.len();
        let mut moves: Vec<_> = mine.iter().map(|e| (&e.1, &e.2)).collect();
        moves.sort();
        moves.dedup();
        t.duplicate_events += mine.len() - moves.len();
    }
    t
}

/// Starts `n` ladders on `app`, the `i`th to the phone `phone(i)`:
/// `(interaction, phone)`, each on its first step.
async fn start_ladders(
    app: &TestApp,
    n: usize,
    phone: impl Fn(usize) -> String,
) -> Vec<(String, String)> {
    let mut ladders = Vec::new();
    for i in 0..n {
        let phone = phone(i);
        let id = with_phone(app, &phone).await;
        let c: Value = start_ladder(app, &id).await.json().await.unwrap();
        assert_eq!(c["channel"], "wa", "{c}");
        ladders.push((id, phone));
    }
    ladders
}

/// The challenge id of interaction `id`'s open challenge.
async fn challenge_of(app: &TestApp, id: &str) -> String {
    app.get(id).await["open_challenge"]["challenge_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits (real time, up to 10 s) until `app`'s fake providers received
/// `n` messages for step `step`.
async fn until_sent(app: &TestApp, step: &str, n: usize) {
    for _ in 0..100 {
        if sends(app).await.iter().filter(|(s, _)| s == step).count() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const STEPS: [&str; 3] = ["wa", "tg", "sms"];

both_stores!(
    a_step_resent_after_its_time_out_moves_on_at_once,
    setup: ladder(&STEPS, "advance_after = \"20s\""),
    |app: TestApp| async move {
        providers_answer_with_ids(&app).await;
        tg_holds_the_next(&app, 1).await;
        let id = with_phone(&app, PHONE).await;
        let c: Value = start_ladder(&app, &id).await.json().await.unwrap();
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        // The move to Telegram is recorded and sent; its sender never
        // finishes (an instance killed mid-send).
        advance_and_leave(&app, &id, &cid, LEAVE_AFTER).await;
        until_sent(&app, "tg", 1).await;
        // Past the sender's lease and past Telegram's own time-out: the
        // step is sent once more, its answer recorded late — and the
        // ladder moves on from there at once, never stops.
        app.advance(25);
        let ladders = [(id.clone(), PHONE.to_string())];
        let reader = Reader::of(&app);
        reader.until_all_on_sms(&ladders, Duration::from_secs(10)).await;
        let steps: Vec<String> = sends(&app).await.into_iter().map(|(s, _)| s).collect();
        assert_eq!(steps, ["wa", "tg", "tg", "sms"]);
        // Each move announced once, the first by the instance that sent
        // its step again, with the move's own reason.
        let events: Vec<(String, String, String)> = advanced(&app)
            .await
            .into_iter()
            .map(|(_, from, to, why)| (from, to, why))
            .collect();
        let moved = |from: &str, to: &str, why: &str| (from.to_string(), to.to_string(), why.to_string());
        assert_eq!(
            events,
            [moved("wa", "tg", "requested"), moved("tg", "sms", "timeout")]
        );
        assert_eq!(reader.steps_taken(&id).await, STEPS);
    }
);

/// How a run ends an instance (in-process).
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Its moves' senders never finish: requested moves, left hanging on
    /// the provider (a process killed mid-send).
    Killed,
    /// Stopped while its poller sends the time-outs' moves (SIGTERM:
    /// background work in flight is abandoned to the leases).
    Stopped,
    /// None: two instances race for the same time-outs.
    TwoInstances,
}

/// `n` ladders on two gateways `a` and `b` sharing one store, with
/// `fault` befalling `a`; each gateway's clock is its own, so that which
/// one acts on a time-out is the test's to say.
async fn run_in_process(backend: Backend, fault: Fault, n: usize) -> Tally {
    let setup = ladder(&STEPS, "advance_after = \"20s\"");
    let Some(a) = spawn_with(backend, setup.clone()).await else {
        return Tally::default();
    };
    let same = Setup {
        extra_channels: setup.extra_channels.clone(),
        unlisted_channels: setup.unlisted_channels.clone(),
        team_extra: setup.team_extra.clone(),
        store: (backend == Backend::Memory).then(|| a.gateway.store().clone()),
        ..a.same_store()
    };
    let b = spawn_with(backend, same).await.unwrap();
    b.clock.set(a.now());
    for app in [&a, &b] {
        providers_answer_with_ids(app).await;
    }
    match fault {
        Fault::Killed | Fault::Stopped => tg_holds_the_next(&a, n as u64).await,
        Fault::TwoInstances => tg_takes_after(&a, Duration::from_millis(300)).await,
    }
    tg_takes_after(&b, Duration::from_millis(300)).await;
    let ladders = start_ladders(&a, n, |i| format!("+4474001{:05}", 90_000 + i)).await;
    let mut sent_by_a = Vec::new();
    let a = match fault {
        Fault::Killed => {
            for (id, _) in &ladders {
                let cid = challenge_of(&a, id).await;
                advance_and_leave(&a, id, &cid, LEAVE_AFTER).await;
            }
            until_sent(&a, "tg", n).await;
            // Only b's clock passes the leases and Telegram's time-outs.
            b.advance(25);
            Some(a)
        }
        Fault::Stopped => {
            a.advance(21);
            until_sent(&a, "tg", n).await;
            sent_by_a = sends(&a).await;
            a.stop_keeping_keys().await;
            b.advance(21 + 25);
            None
        }
        Fault::TwoInstances => {
            a.advance(21);
            b.advance(21);
            for _ in 0..100 {
                let mut all = sends(&a).await;
                all.extend(sends(&b).await);
                if all.iter().filter(|(s, _)| s == "tg").count() >= n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(1500)).await;
            a.advance(21);
            b.advance(21);
            Some(a)
        }
    };
    let reader = Reader::of(&b);
    reader
        .until_all_on_sms(&ladders, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(a) = a.as_ref() {
        sent_by_a = sends(a).await;
    }
    let mut sent = sent_by_a;
    sent.extend(sends(&b).await);
    let events = advanced(&b).await;
    let t = tally(&reader, &ladders, &sent, &events).await;
    eprintln!("{}", t.line(&format!("{fault:?}, {backend:?}, in-process")));
    // A killed one's senders still wait on its provider: dropped, not
    // stopped (a stop would wait for them).
    drop(a);
    t
}

/// Asserts what every run must come to: no ladder stopped, one event per
/// move, and at most one extra message per ladder (its one resend).
fn holds(t: &Tally, n: usize, resent: bool) {
    assert_eq!(t.ladders, n);
    assert_eq!(t.stopped, 0, "{t:?}");
    assert_eq!(t.moves, 2 * n, "{t:?}");
    assert_eq!(t.events, t.moves, "one event per move: {t:?}");
    assert_eq!(t.duplicate_events, 0, "{t:?}");
    assert!(t.sent_twice <= n, "at most one resend per ladder: {t:?}");
    if resent {
        assert_eq!(
            t.sent_twice, n,
            "every abandoned send was sent again: {t:?}"
        );
    }
}

mod in_process {
    use super::*;

    const N: usize = 6;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_memory() {
        holds(
            &run_in_process(Backend::Memory, Fault::Killed, N).await,
            N,
            true,
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killed_redis() {
        if redis_available().await {
            holds(
                &run_in_process(Backend::Redis, Fault::Killed, N).await,
                N,
                true,
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopped_memory() {
        holds(
            &run_in_process(Backend::Memory, Fault::Stopped, N).await,
            N,
            true,
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopped_redis() {
        if redis_available().await {
            holds(
                &run_in_process(Backend::Redis, Fault::Stopped, N).await,
                N,
                true,
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_memory() {
        let t = run_in_process(Backend::Memory, Fault::TwoInstances, N).await;
        holds(&t, N, false);
        assert_eq!(t.sent_twice, 0, "{t:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_redis() {
        if redis_available().await {
            let t = run_in_process(Backend::Redis, Fault::TwoInstances, N).await;
            holds(&t, N, false);
            assert_eq!(t.sent_twice, 0, "{t:?}");
        }
    }
}

/// How a process run ends its first instance.
#[derive(Clone, Copy, Debug)]
enum Signal {
    Kill,
    Term,
    /// Neither: two instances throughout.
    None,
}

/// `n` ladders on built gateways sharing one Redis, in real time:
/// `advance_after` 2 s, Telegram answering the first `n` sends in 4 s and
/// the others in 3 s (each longer than a step's time-out, as a slow
/// provider's, and within the 5 s a send may take). The first instance takes the time-outs alone and is ended
/// with `signal` while Telegram holds its sends; a second one takes over.
/// With no signal both run throughout.
async fn run_processes(signal: Signal, n: usize, m: usize) -> Option<Tally> {
    let setup = ladder(&STEPS, "advance_after = \"2s\"");
    let app = spawn_with(Backend::Redis, setup).await?;
    providers_answer_with_ids(&app).await;
    Mock::given(method("POST"))
        .and(path("/tg/sendVerificationMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"ok": true, "result": {"request_id": "req-1"}}))
                .set_delay(Duration::from_secs(4)),
        )
        .up_to_n_times(n as u64)
        .with_priority(1)
        .mount(&app.chat)
        .await;
    tg_takes_after(&app, Duration::from_secs(3)).await;
    let first = Instance::start(&app.dir).await;
    let both = matches!(signal, Signal::None);
    let mut second = if both {
        Some(Instance::start(&app.dir).await)
    } else {
        None
    };
    let key = app.keys.bot.clone();
    let mut ladders = Vec::new();
    for i in 0..n {
        let phone = format!("+4474001{m}{i:04}");
        let create = json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
            "contact": {"phone": phone}});
        let id = first.post(&key, "/v1/interactions", create).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        let start = json!({"method": "otp", "delivery": "ladder"});
        let c = first
            .post(&key, &format!("/v1/interactions/{id}/challenges"), start)
            .await;
        assert_eq!(c["channel"], "wa", "{c}");
        ladders.push((id, phone));
    }
    let mine = |v: Vec<(String, String)>| -> Vec<(String, String)> {
        v.into_iter()
            .filter(|(_, to)| ladders.iter().any(|(_, p)| digits(p) == digits(to)))
            .collect()
    };
    if !both {
        // Every step times out; the first instance sends them all on
        // Telegram, which holds them; then it is ended mid-send.
        for _ in 0..100 {
            if mine(sends(&app).await)
                .iter()
                .filter(|(s, _)| s == "tg")
                .count()
                >= n
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        second = Some(Instance::start(&app.dir).await);
        first.signal(match signal {
            Signal::Kill => "-KILL",
            _ => "-TERM",
        });
    }
    let survivor = second.as_ref().expect("a second instance");
    let reader = Reader {
        base: survivor.base.clone(),
        key: key.clone(),
    };
    reader
        .until_all_on_sms(&ladders, Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let sent = mine(sends(&app).await);
    let events = advanced(&app).await;
    let t = tally(&reader, &ladders, &sent, &events).await;
    eprintln!("{}", t.line(&format!("{signal:?}, processes on Redis")));
    drop(second);
    drop(first);
    Some(t)
}

/// The kill -9, SIGTERM and two-instance runs on processes, one line
/// each: `cargo test --test api ladder_faults::processes -- --nocapture`.
/// Eight ladders: as many time-outs as one team's lane sends at once
/// (docs/operations.md#background-work), so that every one is mid-send
/// when the first instance ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes() {
    const N: usize = 8;
    let mut runs = Vec::new();
    for (m, signal) in [Signal::Kill, Signal::Term, Signal::None]
        .into_iter()
        .enumerate()
    {
        let Some(t) = run_processes(signal, N, m).await else {
            return;
        };
        runs.push(t);
    }
    // Every line printed first, then held to the rules.
    for t in &runs {
        holds(t, N, false);
    }
}
