//! What a team costs an instance's heap (docs/performance.md#what-a-team-costs),
//! by the allocator's own count: the bytes still allocated after N teams
//! written through the operator API are built (the body `tools/idle_teams.py`
//! writes, `Config::team_of_json`) and put in force together
//! (`Config::with_api_teams`), by the team, then by part of a team: what
//! a clone of each part allocates (a part shared with other teams, an
//! `Arc`, costs its clone nothing). A figure that does not move with the
//! machine's speed or load. It also prints what the shared parts would
//! cost copied for each team, as they were before
//! (docs/decisions/0702-what-a-team-inherits-is-shared.md).
//!
//! ```sh
//! cargo run --example team_memory -- 10000
//! ```
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;

/// The system allocator, its bytes in use counted.
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as i64, Relaxed);
        std::alloc::System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as i64, Relaxed);
        std::alloc::System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        LIVE.fetch_add(size as i64 - l.size() as i64, Relaxed);
        std::alloc::System.realloc(p, l, size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> i64 {
    LIVE.load(Relaxed)
}

/// The bytes `make` leaves allocated while what it made is held.
fn cost<T>(make: impl FnOnce() -> T) -> (T, i64) {
    let before = live();
    let made = make();
    (made, live() - before)
}

/// The sample configuration with no team file and the operator API on,
/// in a folder of its own: its system file.
fn sample_config() -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("team-memory-{}", std::process::id()));
    let copy = |from: &str| {
        let to = root.join(from);
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && from != "config/teams" {
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    };
    for folder in ["config", "config/teams", "channels"] {
        copy(folder);
    }
    let system = root.join("config/chatgate.toml");
    let mut text = std::fs::read_to_string(&system).unwrap();
    text.push_str(&format!(
        "\n[operator]\napi_keys = [{{ id = \"ops\", sha256 = \"{}\", role = \"operator\" }}]\n\
         secrets_keys = [{{ id = \"k1\", key = \"{}\" }}]\n",
        "0".repeat(64),
        "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="
    ));
    std::fs::write(&system, text).unwrap();
    system
}

/// Team `i` as `tools/idle_teams.py` writes it (globex's, keys of its own).
fn body(i: usize) -> serde_json::Value {
    let team = format!("t{i:05}");
    let hex = |n: usize| format!("{n:064x}");
    serde_json::json!({
        "id": team,
        "login_url": format!("https://login.example/login?team={team}"),
        "channels": ["webchat"],
        "security_keys": [{"kid": format!("{team}-1"), "primary": true,
                           "secret": "whsec_QskdYKp1/zH3Mu7PENa6zAlRSqc7twavV/a/Oan1BcI="}],
        "api_keys": [{"id": format!("{team}-bot"), "role": "bot", "sha256": hex(2 * i + 1)},
                     {"id": format!("{team}-agent"), "role": "agent", "sha256": hex(2 * i + 2)}],
        "settings": {"lockout": {"threshold": 3}},
    })
}

/// A part of a team, by name, and what clones it.
type Part<'a> = (&'a str, Box<dyn Fn() -> Box<dyn std::any::Any> + 'a>);

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(10_000, |a| a.parse().expect("a number of teams"));
    let system = sample_config();
    let config = chatgate::config::load(&system).expect("the sample configuration");
    let salts = chatgate::domain::secrets_cipher::Salts::new();
    let body_bytes = serde_json::to_vec(&body(0)).unwrap().len();
    let (teams, built) = cost(|| {
        (0..n)
            .map(|i| Arc::new(config.team_of_json(&body(i), &salts).expect("a valid team")))
            .collect::<Vec<_>>()
    });
    let (in_force, put) = cost(|| config.with_api_teams(teams.iter().cloned(), &[]).unwrap());
    let kb = |bytes: i64| bytes as f64 / n as f64 / 1024.0;
    println!(
        "{n} API teams: {:.1} KB a team built, {:.1} KB more in force ({:.1} KB in all; a body is {body_bytes} bytes)",
        kb(built),
        kb(put),
        kb(built + put)
    );
    let team = &teams[n / 2];
    let parts: [Part<'_>; 4] = [
        ("print", Box::new(|| Box::new(team.print.clone()))),
        ("settings", Box::new(|| Box::new(team.settings.clone()))),
        (
            "channel_settings",
            Box::new(|| Box::new(team.channel_settings.clone())),
        ),
        ("form", Box::new(|| Box::new(team.form.clone()))),
    ];
    let each: Vec<String> = parts
        .iter()
        .map(|(name, clone)| {
            let (_held, bytes) = cost(clone);
            format!("{name} {bytes}")
        })
        .collect();
    println!("one team's parts, bytes of a clone: {}", each.join(", "));
    // What the same parts held copied for each team, as before they were
    // shared: the print's keys written out in one map, and the texts of
    // the team's settings and of each channel's copied.
    let copied = |s: &chatgate::config::Settings| {
        let mut s = s.clone();
        s.templates = Arc::new((*s.templates).clone());
        s.translations = Arc::new((*s.translations).clone());
        s
    };
    let (_keys, print) = cost(|| team.print.keys());
    let (_settings, settings) = cost(|| copied(&team.settings));
    let (_channels, channels) = cost(|| {
        (team.channel_settings.iter())
            .map(|(name, s)| (name.clone(), copied(s)))
            .collect::<std::collections::BTreeMap<_, _>>()
    });
    println!("the same parts copied for each team: print {print}, settings {settings}, channel_settings {channels}");
    drop(in_force);
    let _ = std::fs::remove_dir_all(system.parent().unwrap().parent().unwrap());
}
