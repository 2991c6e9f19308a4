//! The machine a report was taken on, read from Linux's `/proc` and
//! `/sys`, so that two reports of one row can be compared: what differs
//! between two machines of the same core count (the CPU, the kernel's
//! clock source, its mitigations of speculative execution) moves the
//! gateway's µs per request more than any load does
//! (docs/performance.md#which-machine).
use serde::Serialize;

/// CPU features that change what the gateway's hot paths cost: vector
/// units (hashing, JSON), AES and SHA in hardware (TLS, digests), and
/// what a hypervisor passes through for the clock and the TLB.
const FLAGS: &[&str] = &[
    "avx2",
    "avx512f",
    "sha_ni",
    "aes",
    "bmi2",
    "pcid",
    "invpcid",
    "constant_tsc",
    "tsc_known_freq",
    "rdtscp",
    "hypervisor",
];

/// The speculative-execution mitigations whose cost falls on every system
/// call and context switch, the load test's loopback traffic included.
const MITIGATIONS: &[&str] = &["spectre_v2", "retbleed", "spec_rstack_overflow", "mds"];

#[derive(Debug, Serialize)]
pub struct Machine {
    /// `model name` of the first CPU (a VM may show a generic one).
    pub cpu_model: String,
    /// `cpu MHz` of the first CPU as the kernel reports it.
    pub cpu_mhz: String,
    /// Which of [`FLAGS`] the CPU has.
    pub cpu_flags: Vec<String>,
    /// Logical CPUs this process may run on.
    pub cores: usize,
    /// `uname -r`.
    pub kernel: String,
    /// The kernel's clock source: `tsc` reads the time in user space;
    /// `kvm-clock`, `hpet` or `xen` may make every clock read (tokio's
    /// timers, tracing, metrics) slower by an order of magnitude.
    pub clocksource: String,
    /// Each of [`MITIGATIONS`] as `/sys/devices/system/cpu/vulnerabilities` says it.
    pub mitigations: Vec<(String, String)>,
    /// The global allocator of the load test and of `chatgate`.
    pub allocator: &'static str,
    /// `release` or `debug`: which profile this binary was built with.
    pub profile: &'static str,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The value of the first `key\t: value` line of `/proc/cpuinfo`.
fn cpuinfo<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

impl Machine {
    pub fn read() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags: Vec<&str> = cpuinfo(&info, "flags")
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        Machine {
            cpu_model: cpuinfo(&info, "model name").unwrap_or("unknown").into(),
            cpu_mhz: cpuinfo(&info, "cpu MHz").unwrap_or("unknown").into(),
            cpu_flags: FLAGS
                .iter()
                .filter(|f| flags.contains(f))
                .map(|f| f.to_string())
                .collect(),
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            kernel: read("/proc/sys/kernel/osrelease"),
            clocksource: read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
            mitigations: MITIGATIONS
                .iter()
                .map(|m| {
                    let state = read(&format!("/sys/devices/system/cpu/vulnerabilities/{m}"));
                    (m.to_string(), state)
                })
                .collect(),
            allocator: "mimalloc",
            profile: if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            },
        }
    }

    /// The lines the printed report opens with.
    pub fn text(&self) -> String {
        let mitigations: Vec<String> = self
            .mitigations
            .iter()
            .map(|(name, state)| format!("{name}: {state}"))
            .collect();
        format!(
            "machine: {} at {} MHz, {} cores, flags {}; kernel {}, clock source {}; allocator {}, {} build\nmitigations: {}",
            self.cpu_model,
            self.cpu_mhz,
            self.cores,
            self.cpu_flags.join(" "),
            self.kernel,
            self.clocksource,
            self.allocator,
            self.profile,
            mitigations.join("; ")
        )
    }
}
