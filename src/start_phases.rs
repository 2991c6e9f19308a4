//! The phases of a start, timed (docs/performance.md#a-start-of-100-000-api-teams):
//! each logged at `debug` under the target `chatgate::start` with its wall
//! time and the process's CPU over it, so that a slow start says which
//! phase waited on the store and which spent the cores.
use std::time::{Duration, Instant};

/// The target the phases are logged under (`RUST_LOG=info,chatgate::start=debug`).
pub const TARGET: &str = "chatgate::start";

/// A clock of phases: each [`Phases::done`] logs the one since the last.
pub struct Phases {
    at: Instant,
    cpu: Option<Duration>,
    on: bool,
}

impl Phases {
    /// Phases timed when `on` and the target is logged; else nothing read.
    pub fn new(on: bool) -> Phases {
        let on = on && tracing::enabled!(target: TARGET, tracing::Level::DEBUG);
        Phases {
            at: Instant::now(),
            cpu: on.then(process_cpu).flatten(),
            on,
        }
    }

    /// The phase since the last (or since [`Phases::new`]) logged as
    /// `phase`, with `count` things done in it (teams, keys: 0 for none).
    pub fn done(&mut self, phase: &'static str, count: usize) {
        if !self.on {
            return;
        }
        let (now, cpu) = (Instant::now(), process_cpu());
        let wall_ms = now.duration_since(self.at).as_secs_f64() * 1e3;
        let cpu_ms = (cpu.zip(self.cpu)).map(|(b, a)| b.saturating_sub(a).as_secs_f64() * 1e3);
        tracing::debug!(target: TARGET, phase, count, wall_ms, cpu_ms = cpu_ms.unwrap_or(-1.0), "a start's phase");
        (self.at, self.cpu) = (now, cpu);
    }
}

/// The CPU the process spent, user and system, where the system says it
/// (`/proc/self/stat`, in ticks of 10 ms); `None` elsewhere.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    cpu_of_stat(&stat)
}

/// The user and system time of a `/proc/PID/stat` line (its 14th and
/// 15th fields, after the command's closing parenthesis), in ticks of
/// 10 ms.
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    let (_, after) = stat.rsplit_once(')')?;
    let mut fields = after.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_millis((user + system) * 10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_is_read_after_the_command_s_name() {
        let stat = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0";
        assert_eq!(cpu_of_stat(stat), Some(Duration::from_millis(2800)));
        assert_eq!(cpu_of_stat("42 (x) S 1"), None);
        assert_eq!(cpu_of_stat("no parenthesis"), None);
    }
}
