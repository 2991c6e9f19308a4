//! The table and the JSON file: each figure, its ratio to the matching
//! ceiling, the target and whether it is met.
use std::path::PathBuf;

use serde::Serialize;

use crate::engine::{Outcome, Plan};
use crate::machine::Machine;

/// What a row must reach (docs/performance.md#targets).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Target {
    /// Least ratio to the ceiling.
    pub min_ratio: Option<f64>,
    /// Largest p99, ms.
    pub max_p99_ms: Option<f64>,
    /// Least req/s as a share of the same scenario at 1k live.
    pub min_of_1k: Option<(f64, f64)>,
    /// Largest outbox backlog after the row, in seconds of delivering it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backlog_s: Option<f64>,
}

impl Target {
    pub fn ratio(min: f64) -> Self {
        Target {
            min_ratio: Some(min),
            max_p99_ms: Some(10.0),
            min_of_1k: None,
            max_backlog_s: None,
        }
    }
    /// 64 concurrent requests on one record.
    pub fn hot() -> Self {
        Target {
            min_ratio: Some(0.10),
            max_p99_ms: Some(20.0),
            min_of_1k: None,
            max_backlog_s: None,
        }
    }
    /// Within 20 % of the cost at 1k live (req/s ≥ 0.8 × that of 1k).
    pub fn scaling(at_1k: Option<f64>) -> Self {
        Target {
            min_ratio: None,
            max_p99_ms: Some(10.0),
            min_of_1k: at_1k.map(|r| (0.8, r)),
            max_backlog_s: None,
        }
    }
    /// A p99 bound alone (a row with no ceiling to compare with).
    pub fn p99(max_ms: f64) -> Self {
        Target {
            min_ratio: None,
            max_p99_ms: Some(max_ms),
            min_of_1k: None,
            max_backlog_s: None,
        }
    }
    /// The outbox delivers what the row left within `max_s` after it.
    pub fn backlog(max_s: f64) -> Self {
        Target {
            max_backlog_s: Some(max_s),
            ..Self::none()
        }
    }
    pub fn none() -> Self {
        Target {
            min_ratio: None,
            max_p99_ms: None,
            min_of_1k: None,
            max_backlog_s: None,
        }
    }
    fn text(&self) -> String {
        let mut parts = Vec::new();
        if let Some(r) = self.min_ratio {
            parts.push(format!("≥{r:.2}×"));
        }
        if let Some((share, _)) = self.min_of_1k {
            parts.push(format!("≥{share:.1}×@1k"));
        }
        if let Some(p) = self.max_p99_ms {
            parts.push(format!("p99≤{p:.0}"));
        }
        if let Some(s) = self.max_backlog_s {
            parts.push(format!("outbox≤{s:.1}s"));
        }
        if parts.is_empty() {
            "-".into()
        } else {
            parts.join(" ")
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub store: String,
    pub outcome: Outcome,
    pub ceiling: Option<String>,
    /// The ceiling measured right before and right after this row.
    pub ceiling_around: Option<Ceiling>,
    pub ratio: Option<f64>,
    pub target: Option<Target>,
    pub pass: Option<bool>,
}

impl Row {
    pub fn ceiling(name: &str, store: &str, outcome: Outcome) -> Self {
        Row {
            name: name.into(),
            store: store.into(),
            outcome,
            ceiling: None,
            ceiling_around: None,
            ratio: None,
            target: None,
            pass: None,
        }
    }

    pub fn new(
        name: &str,
        store: &str,
        outcome: Outcome,
        (ceiling, around): (&str, Ceiling),
        target: Target,
    ) -> Self {
        let ratio = outcome.req_per_s / around.req_per_s();
        let mut pass = None;
        let mut check = |ok: bool| pass = Some(pass.unwrap_or(true) && ok);
        if let Some(min) = target.min_ratio {
            check(ratio >= min);
        }
        if let Some(max) = target.max_p99_ms {
            check(outcome.p99_ms <= max);
        }
        if let Some((share, at_1k)) = target.min_of_1k {
            check(outcome.req_per_s >= share * at_1k);
        }
        if let Some(max) = target.max_backlog_s {
            check(outcome.outbox_after_s.is_some_and(|s| s <= max));
        }
        Row {
            name: name.into(),
            store: store.into(),
            outcome,
            ceiling: Some(ceiling.into()),
            ceiling_around: Some(around),
            ratio: Some(ratio),
            target: Some(target),
            pass,
        }
    }
}

/// A ceiling measured right before and right after a row.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ceiling {
    pub before: f64,
    pub after: f64,
}

impl Ceiling {
    /// How far the two may differ before the row's ratio is marked
    /// uncertain: the machine changed speed during the row.
    const MOVED: f64 = 0.15;

    /// The ceiling during the row: the mean of the two.
    pub fn req_per_s(self) -> f64 {
        (self.before + self.after) / 2.0
    }

    /// The two differ by more than [`Ceiling::MOVED`] of the larger.
    pub fn moved(self) -> bool {
        (self.before - self.after).abs() > Self::MOVED * self.before.max(self.after)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Memory {
    pub name: String,
    pub bytes: f64,
    pub target_bytes: f64,
}

/// A figure of its own (a count per call, a latency), with its target
/// when it has one: `value` ≤ `target` passes.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<f64>,
}

impl Memory {
    pub fn new(name: &str, bytes: f64, target_bytes: f64) -> Self {
        Memory {
            name: name.into(),
            bytes,
            target_bytes,
        }
    }
}

/// What a burst of waiting calls of one key held of a gateway with the
/// default waiting budget, read three seconds after they were sent
/// (docs/performance.md#an-mcp-tool-call).
#[derive(Debug, Serialize)]
pub struct Held {
    pub name: String,
    pub sent: usize,
    /// `chatgate_waiting_calls`: the calls holding a place.
    pub waiting: f64,
    /// `chatgate_connections_open`: every connection being served.
    pub connections_open: f64,
    /// Calls answered within the three seconds (at once, as `wait_seconds` 0).
    pub answered: usize,
    /// Of those, answered other than 200.
    pub refused: usize,
    /// Those, by their status or why no answer came.
    pub refused_as: String,
    /// `GET /healthz` meanwhile: 200s of those sent, and the slowest.
    pub healthz_ok: (usize, usize),
    pub healthz_max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub args: String,
    /// What the figures were taken on (docs/performance.md#which-machine).
    pub machine: Machine,
    pub unix_time: u64,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub conns: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub live: usize,
    pub rows: Vec<Row>,
    pub memory: Vec<Memory>,
    pub held: Vec<Held>,
    pub figures: Vec<Figure>,
    /// (store, live count reached, seconds it took).
    pub seed_seconds: Vec<(String, usize, f64)>,
    pub total_seconds: f64,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The most frequent status and its share, e.g. `200 100%`.
fn answers(o: &Outcome) -> String {
    let total: u64 = o.statuses.values().sum();
    match o.statuses.iter().max_by_key(|(_, n)| **n) {
        Some((s, n)) if total > 0 => format!("{s} {:.0}%", 100.0 * *n as f64 / total as f64),
        _ => "-".into(),
    }
}

impl Report {
    pub fn new(args: &str, plan: Plan, live: usize) -> Self {
        Report {
            args: args.into(),
            machine: Machine::read(),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            loadavg_start: loadavg(),
            loadavg_end: String::new(),
            conns: plan.conns,
            warmup_s: plan.warmup.as_secs_f64(),
            duration_s: plan.duration.as_secs_f64(),
            live,
            rows: Vec::new(),
            memory: Vec::new(),
            held: Vec::new(),
            figures: Vec::new(),
            seed_seconds: Vec::new(),
            total_seconds: 0.0,
        }
    }

    pub fn print(&mut self) {
        self.loadavg_end = loadavg();
        println!(
            "\nchatgate load benchmark — {} connections, {:.1} s warm-up + {:.1} s per scenario; load average at start {} / end {}",
            self.conns, self.warmup_s, self.duration_s, self.loadavg_start, self.loadavg_end
        );
        println!("{}", self.machine.text());
        println!(
            "| {:<44} | {:<6} | {:>8} | {:>7} | {:>7} | {:>9} | {:>8} | {:>6} | {:<22} | {:<4} |",
            "figure",
            "store",
            "req/s",
            "p50 ms",
            "p99 ms",
            "answers",
            "ceiling",
            "ratio",
            "target",
            "pass"
        );
        println!(
            "|{:-<46}|{:-<8}|{:->10}|{:->9}|{:->9}|{:->11}|{:->10}|{:->8}|{:-<24}|{:-<6}|",
            "", "", "", "", "", "", "", "", "", ""
        );
        for r in &self.rows {
            let o = &r.outcome;
            let dry = if o.ran_dry { "*" } else { "" };
            println!(
                "| {:<44} | {:<6} | {:>8.0} | {:>7.2} | {:>7.2} | {:>9} | {:>8} | {:>6} | {:<22} | {:<4} |",
                format!("{}{dry}", r.name),
                r.store,
                o.req_per_s,
                o.p50_ms,
                o.p99_ms,
                answers(o),
                r.ceiling_around
                    .map_or("-".into(), |c| format!("{:.0}", c.req_per_s())),
                // Three decimals: at two, a ratio just under its target
                // (0.598 against 0.60) would read "0.60 FAIL".
                r.ratio.map_or("-".into(), |x| {
                    let moved = r.ceiling_around.is_some_and(Ceiling::moved);
                    format!("{x:.3}{}", if moved { "~" } else { "" })
                }),
                r.target.map_or("ceiling".into(), |t| t.text()),
                match r.pass {
                    Some(true) => "PASS",
                    Some(false) => "FAIL",
                    None => "",
                }
            );
        }
        if self
            .rows
            .iter()
            .any(|r| r.ceiling_around.is_some_and(Ceiling::moved))
        {
            println!(
                "~ the ceiling measured before and after this row differed by more than 15 %: the machine changed speed, the ratio (to their mean) is uncertain"
            );
        }
        if self.rows.iter().any(|r| r.outcome.ran_dry) {
            println!(
                "* ran out of pre-issued tokens before the end: req/s is over the time it ran"
            );
        }
        let costs: Vec<_> = self
            .rows
            .iter()
            .filter(|r| r.outcome.process_cpu_us.is_some() || r.outcome.redis.is_some())
            .collect();
        if !costs.is_empty() {
            println!(
                "\nCPU per request while measured: the gateway's own threads (its runtime: server, outbox, Redis client; /proc/self/task), this process (gateway, load generator and client; /proc/self/stat) and Redis' own (INFO cpu, commandstats); the two cores carry both. `outbox s`: how long the outbox then took to deliver what the row left (work of its requests not in its figures):"
            );
            println!(
                "| {:<44} | {:>10} | {:>10} | {:>9} | {:>9} | {:>8} | {:>7} | {:>9} | {:<40} |",
                "figure",
                "gateway µs",
                "process µs",
                "Redis µs",
                "total µs",
                "commands",
                "scripts",
                "outbox s",
                "most run"
            );
            println!(
                "|{:-<46}|{:->12}|{:->12}|{:->11}|{:->11}|{:->10}|{:->9}|{:->11}|{:-<42}|",
                "", "", "", "", "", "", "", "", ""
            );
            let us = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
            for r in costs {
                let process = r.outcome.process_cpu_us;
                let c = r.outcome.redis.as_ref();
                // A Redis row whose Redis counters could not be read has
                // no total.
                let total = match (process, c) {
                    (Some(p), Some(c)) => Some(p + c.cpu_us),
                    (p, None) if r.store != "redis" => p,
                    _ => None,
                };
                let most: Vec<String> = c.map_or(Vec::new(), |c| {
                    c.by_command
                        .iter()
                        .filter(|(_, per)| *per >= 0.05)
                        .take(4)
                        .map(|(name, per)| format!("{name} {per:.1}"))
                        .collect()
                });
                println!(
                    "| {:<44} | {:>10} | {:>10} | {:>9} | {:>9} | {:>8} | {:>7} | {:>9} | {:<40} |",
                    r.name,
                    us(r.outcome.gateway_cpu_us),
                    us(process),
                    us(c.map(|c| c.cpu_us)),
                    us(total),
                    c.map_or("-".into(), |c| format!("{:.1}", c.commands)),
                    c.map_or("-".into(), |c| format!("{:.2}", c.scripts)),
                    r.outcome.outbox_after_s.map_or("-".into(), |v| {
                        if v >= crate::gateway::SETTLE_LIMIT_S {
                            format!("> {}", crate::gateway::SETTLE_LIMIT_S)
                        } else {
                            format!("{v:.2}")
                        }
                    }),
                    most.join(", ")
                );
            }
        }
        for m in &self.memory {
            let verdict = if m.target_bytes.is_nan() {
                String::new()
            } else if m.bytes <= m.target_bytes {
                format!("target ≤ {:.0} B: PASS", m.target_bytes)
            } else {
                format!("target ≤ {:.0} B: FAIL", m.target_bytes)
            };
            println!("{}: {:.0} B {verdict}", m.name, m.bytes);
        }
        for h in &self.held {
            println!(
                "{}: {} sent, {:.0} waiting, {:.0} connections open, {} answered at once ({} not 200{}); /healthz {}/{} 200, slowest {:.1} ms",
                h.name, h.sent, h.waiting, h.connections_open, h.answered, h.refused,
                if h.refused_as.is_empty() { String::new() } else { format!(": {}", h.refused_as) },
                h.healthz_ok.0, h.healthz_ok.1, h.healthz_max_ms
            );
        }
        for f in &self.figures {
            let verdict = match f.target {
                Some(t) if f.value <= t => format!(" target ≤ {t} {}: PASS", f.unit),
                Some(t) => format!(" target ≤ {t} {}: FAIL", f.unit),
                None => String::new(),
            };
            println!("{}: {:.2} {}{verdict}", f.name, f.value, f.unit);
        }
        for (store, n, secs) in &self.seed_seconds {
            println!("seeding {store} to {n} live interactions took {secs:.1} s");
        }
        println!("total run time {:.0} s", self.total_seconds);
    }

    /// `target/loadtest/<unix time>.json` (or under `CARGO_TARGET_DIR`).
    pub fn write(&self) -> std::io::Result<PathBuf> {
        let dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("loadtest");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}.json", self.unix_time));
        std::fs::write(
            &path,
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        Ok(path)
    }
}
