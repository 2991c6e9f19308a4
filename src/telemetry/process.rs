//! `process_*` metrics in the Prometheus client libraries' names, read
//! from `/proc/self` at scrape time (Linux; elsewhere none).
use std::fmt::Write as _;

/// Appends the process families to `out`.
pub(super) fn render(out: &mut String) {
    #[cfg(target_os = "linux")]
    linux::render(out);
    #[cfg(not(target_os = "linux"))]
    let _ = out;
}

fn family(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
    );
}

#[cfg(target_os = "linux")]
mod linux {
    use super::family;

    /// Clock ticks per second of `/proc/self/stat`'s times (`USER_HZ`, 100
    /// on every Linux architecture we build for).
    const TICKS: f64 = 100.0;

    pub(super) fn render(out: &mut String) {
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the `(comm)`, which may hold spaces: state is 3rd.
            let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok());
            if let (Some(u), Some(s)) = (num(14), num(15)) {
                family(
                    out,
                    "process_cpu_seconds_total",
                    "counter",
                    "Total user and system CPU time spent in seconds.",
                    (u + s) / TICKS,
                );
            }
            if let Some(threads) = num(20) {
                family(
                    out,
                    "process_threads",
                    "gauge",
                    "Number of OS threads in the process.",
                    threads,
                );
            }
            if let (Some(start), Some(boot)) = (num(22), boot_time()) {
                family(
                    out,
                    "process_start_time_seconds",
                    "gauge",
                    "Start time of the process since unix epoch in seconds.",
                    boot + start / TICKS,
                );
            }
            if let Some(vsize) = num(23) {
                family(
                    out,
                    "process_virtual_memory_bytes",
                    "gauge",
                    "Virtual memory size in bytes.",
                    vsize,
                );
            }
        }
        if let Some(rss) = resident_bytes() {
            family(
                out,
                "process_resident_memory_bytes",
                "gauge",
                "Resident memory size in bytes.",
                rss,
            );
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            family(
                out,
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                fds.count() as f64,
            );
        }
        if let Some(max) = max_fds() {
            family(
                out,
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max,
            );
        }
    }

    fn boot_time() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        stat.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// `VmRSS` of `/proc/self/status` (in kB there; the page size varies).
    fn resident_bytes() -> Option<f64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
        let kb: f64 = line.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024.0)
    }

    fn max_fds() -> Option<f64> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }
}
