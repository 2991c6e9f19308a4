//! The counters and gauges labelled by a team, kept beside the Prometheus
//! recorder rather than in it: that recorder keeps every series it was
//! ever given, so a fleet that writes and deletes teams would grow by each
//! team it ever had. These are dropped when their team leaves the
//! configuration in force ([`TeamSeries::forget`], from the outbox's
//! dispatcher, which hears the departures), and rendered after the
//! recorder's families in the same text format. A family's series all
//! carry a `team` label or none do (docs/operations.md#metrics), so a
//! family is wholly here or wholly there.
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::formatting::{
    key_to_parts, write_help_line, write_metric_line, write_type_line,
};

/// A series' labels, rendered, and its value.
type Sample = (Vec<String>, String);

/// The series labelled by a team, by key; and every family's help.
#[derive(Default)]
pub struct TeamSeries(Mutex<Held>);

#[derive(Default)]
struct Held {
    counters: HashMap<Key, Arc<AtomicU64>>,
    gauges: HashMap<Key, Arc<AtomicU64>>,
    help: HashMap<String, SharedString>,
}

/// The value of a key's `team` label.
fn team_of(key: &Key) -> Option<&str> {
    key.labels().find(|l| l.key() == "team").map(|l| l.value())
}

impl TeamSeries {
    fn lock(&self) -> MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn counter(&self, key: &Key) -> Counter {
        let mut held = self.lock();
        let cell = held.counters.entry(key.clone()).or_default();
        Counter::from_arc(Arc::clone(cell))
    }

    fn gauge(&self, key: &Key) -> Gauge {
        let mut held = self.lock();
        let cell = held.gauges.entry(key.clone()).or_default();
        Gauge::from_arc(Arc::clone(cell))
    }

    fn describe(&self, name: &KeyName, help: SharedString) {
        let mut held = self.lock();
        held.help.entry(name.as_str().to_string()).or_insert(help);
    }

    /// Drops every series labelled by `team`; answers how many.
    pub fn forget(&self, team: &str) -> usize {
        let mut held = self.lock();
        let before = held.counters.len() + held.gauges.len();
        held.counters.retain(|k, _| team_of(k) != Some(team));
        held.gauges.retain(|k, _| team_of(k) != Some(team));
        before - held.counters.len() - held.gauges.len()
    }

    /// How many series are held.
    #[cfg(test)]
    fn count(&self) -> usize {
        let held = self.lock();
        held.counters.len() + held.gauges.len()
    }

    /// Appends each family held, as the recorder renders its own: `# HELP`,
    /// `# TYPE`, a line per series (in the order of their labels), then a
    /// blank line.
    pub fn render(&self, out: &mut String) {
        let held = self.lock();
        let mut families: BTreeMap<(String, &str), Vec<Sample>> = BTreeMap::new();
        let counters = (held.counters.iter())
            .map(|(k, v)| (k, "counter", v.load(Ordering::Relaxed).to_string()));
        let gauges = (held.gauges.iter()).map(|(k, v)| {
            let value = f64::from_bits(v.load(Ordering::Relaxed));
            (k, "gauge", value.to_string())
        });
        for (key, kind, value) in counters.chain(gauges) {
            let (name, labels) = key_to_parts(key, None);
            families
                .entry((name, kind))
                .or_default()
                .push((labels, value));
        }
        for ((name, kind), mut series) in families {
            if let Some(help) = held.help.get(&name) {
                write_help_line(out, &name, help);
            }
            write_type_line(out, &name, kind);
            series.sort();
            for (labels, value) in series {
                write_metric_line::<&str, String>(out, &name, None, &labels, None, value, None);
            }
            out.push('\n');
        }
    }
}

/// The process's recorder: the Prometheus recorder, but for the counters
/// and gauges labelled by a team, which [`TeamSeries`] holds.
pub struct ByTeam {
    pub inner: metrics_exporter_prometheus::PrometheusRecorder,
    pub teams: Arc<TeamSeries>,
}

impl Recorder for ByTeam {
    fn describe_counter(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        self.teams.describe(&name, help.clone());
        self.inner.describe_counter(name, unit, help);
    }

    fn describe_gauge(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        self.teams.describe(&name, help.clone());
        self.inner.describe_gauge(name, unit, help);
    }

    fn describe_histogram(&self, name: KeyName, unit: Option<Unit>, help: SharedString) {
        self.inner.describe_histogram(name, unit, help);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        match team_of(key) {
            Some(_) => self.teams.counter(key),
            None => self.inner.register_counter(key, metadata),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        match team_of(key) {
            Some(_) => self.teams.gauge(key),
            None => self.inner.register_gauge(key, metadata),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(key, metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics::Label;

    fn key(name: &'static str, team: &str, kind: &'static str) -> Key {
        let labels = vec![
            Label::new("team", team.to_string()),
            Label::new("kind", kind),
        ];
        Key::from_parts(name, labels)
    }

    #[test]
    fn a_team_s_series_render_as_the_recorder_s_and_go_with_the_team() {
        let teams = TeamSeries::default();
        teams.describe(&KeyName::from("t_total"), "Things, by team.".into());
        teams.counter(&key("t_total", "acme", "event")).increment(3);
        teams.counter(&key("t_total", "acme", "event")).increment(1);
        teams
            .counter(&key("t_total", "globex", "event"))
            .increment(0);
        teams.gauge(&key("t_age", "acme", "notice")).set(2.5);
        let mut out = String::new();
        teams.render(&mut out);
        assert_eq!(
            out,
            "# TYPE t_age gauge\nt_age{team=\"acme\",kind=\"notice\"} 2.5\n\n\
             # HELP t_total Things, by team.\n# TYPE t_total counter\n\
             t_total{team=\"acme\",kind=\"event\"} 4\n\
             t_total{team=\"globex\",kind=\"event\"} 0\n\n"
        );
        assert_eq!(teams.forget("acme"), 2);
        assert_eq!(teams.forget("acme"), 0);
        let mut out = String::new();
        teams.render(&mut out);
        assert!(!out.contains("acme") && out.contains("globex"), "{out}");
        assert_eq!(teams.count(), 1);
        // A handle taken before the team went counts nowhere that renders;
        // the team's next use starts its series again at 0.
        let old = teams.counter(&key("t_total", "globex", "event"));
        teams.forget("globex");
        old.increment(5);
        teams
            .counter(&key("t_total", "globex", "event"))
            .increment(1);
        let mut out = String::new();
        teams.render(&mut out);
        assert!(
            out.contains("t_total{team=\"globex\",kind=\"event\"} 1\n"),
            "{out}"
        );
    }

    #[test]
    fn only_series_with_a_team_label_are_held_here() {
        let recorder = ByTeam {
            inner: metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder(),
            teams: Arc::default(),
        };
        let meta = Metadata::new("t", metrics::Level::INFO, None);
        let handle = recorder.inner.handle();
        recorder
            .register_counter(&Key::from_name("plain_total"), &meta)
            .increment(2);
        recorder
            .register_counter(&key("t_total", "acme", "event"), &meta)
            .increment(1);
        recorder
            .register_gauge(&key("t_age", "acme", "event"), &meta)
            .set(1.0);
        recorder
            .register_gauge(&Key::from_name("plain_gauge"), &meta)
            .set(7.0);
        assert_eq!(recorder.teams.count(), 2);
        let inner = handle.render();
        assert!(
            inner.contains("plain_total 2") && inner.contains("plain_gauge 7"),
            "{inner}"
        );
        assert!(!inner.contains("acme"), "{inner}");
    }
}
