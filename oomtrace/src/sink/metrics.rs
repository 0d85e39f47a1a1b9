//! Prometheus metrics (`prometheus-client`, OpenMetrics text): a sink that counts kills, and
//! what is read at scrape time (BPF loss counter, /proc/vmstat). Served by [`crate::http`].
//!
//! Cardinality: `oomtrace_oom_kills_total` keeps at most `max_series` distinct label sets (default
//! 1000, `metrics.max_series`); a kill with a new label set beyond that is counted under
//! `pod="_other"` (other labels empty but `constraint` and `outcome`) and in `oomtrace_series_folded_total`.
//! The `cgroup` label is only set when there is neither a pod nor a systemd unit.

use std::{
    collections::HashSet,
    fmt::Write as _,
    sync::{Arc, Mutex, atomic::AtomicU64},
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _},
    metrics::{
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::Gauge,
        histogram::Histogram,
    },
    registry::Registry,
};

use super::Sink;
use crate::{event::Event, loss::Accounting, probes::Attempt};

/// `pod` label of the kills folded once `max_series` label sets exist.
pub const OTHER: &str = "_other";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KillLabels {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    /// `memcg`, `none` (global), `cpuset`, `mempolicy`; `unknown` without a context hook.
    pub constraint: String,
    /// The victim's memory cgroup path, only when there is no pod and no systemd unit.
    pub cgroup: String,
    /// Only when there is no pod.
    pub systemd_unit: String,
    /// `container_exit`, `process_only`, `host`; `unknown` when the event has no outcome.
    pub outcome: String,
}

impl KillLabels {
    pub fn of(ev: &Event) -> Self {
        let pod = ev.owner.pod.as_ref();
        let unit = if pod.is_none() {
            ev.owner.systemd_unit.clone()
        } else {
            None
        };
        let cgroup = if pod.is_none() && unit.is_none() {
            ev.victim.cgroup.as_ref().map(|c| c.path.clone())
        } else {
            None
        };
        Self {
            namespace: pod.and_then(|p| p.namespace.clone()).unwrap_or_default(),
            pod: pod
                .map(|p| p.name.clone().unwrap_or_else(|| p.uid.clone()))
                .unwrap_or_default(),
            container: super::container_label(ev).unwrap_or_default(),
            constraint: ev
                .oom
                .as_ref()
                .and_then(|o| o.constraint)
                .unwrap_or("unknown")
                .to_string(),
            cgroup: cgroup.unwrap_or_default(),
            systemd_unit: unit.unwrap_or_default(),
            outcome: ev
                .outcome
                .map_or("unknown", crate::event::Outcome::name)
                .to_string(),
        }
    }

    fn folded(&self) -> Self {
        Self {
            namespace: String::new(),
            pod: OTHER.into(),
            container: String::new(),
            constraint: self.constraint.clone(),
            cgroup: String::new(),
            systemd_unit: String::new(),
            outcome: self.outcome.clone(),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    hook: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AttachLabels {
    role: String,
    hook: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// Values read when Prometheus scrapes (no timer): the BPF loss counter, the kernel's own OOM
/// count, and the reconciliation of the two with what was delivered.
#[derive(Debug)]
struct ScrapeTime {
    acct: Arc<Mutex<Accounting>>,
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    n: u64,
) -> Result<(), std::fmt::Error> {
    let m = ConstCounter::new(n);
    let e = encoder.encode_descriptor(name, help, None, m.metric_type())?;
    m.encode(e)
}

/// A counter with one label `key`, one series per `(value, n)`.
fn labeled_counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    key: &str,
    series: &[(&str, u64)],
) -> Result<(), std::fmt::Error> {
    let mut e = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    for &(value, n) in series {
        let labels = [(key, value)];
        ConstCounter::new(n).encode(e.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for ScrapeTime {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use oomtrace_common::counter as c;
        // Only read: the event loop owns the accounting and does the reconciling; ask it to
        // check now, so a kill no event explains shows at the next scrapes even when idle.
        let (snap, check) = {
            let a = self
                .acct
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (a.snapshot(), a.check_requested.clone())
        };
        check.notify_one();
        if let Some(bpf) = snap.bpf {
            let at = |i: u32| bpf[i as usize];
            counter(
                &mut encoder,
                "oomtrace_events_lost",
                "Victim records (OOM kills) the kernel side could not put in the ring buffer (full), counted in BPF since the programs were loaded.",
                at(c::RING_FULL),
            )?;
            labeled_counter(
                &mut encoder,
                "oomtrace_records_lost",
                "Records the kernel side could not put in the ring buffer (full), by kind: victim (a lost kill) or context (an OOM's context; its victims still come, context_missing).",
                "kind",
                &[
                    ("victim", at(c::RING_FULL)),
                    ("context", at(c::CONTEXT_RING_FULL)),
                ],
            )?;
            labeled_counter(
                &mut encoder,
                "oomtrace_records_sent",
                "Records the kernel side put in the ring buffer, by kind, counted in BPF since the programs were loaded.",
                "kind",
                &[("victim", at(c::VICTIMS)), ("context", at(c::CONTEXTS))],
            )?;
            counter(
                &mut encoder,
                "oomtrace_context_map_full",
                "OOM contexts the kernel side could not remember for their victims (map full).",
                at(c::CONTEXT_MAP_FULL),
            )?;
        }
        if let Some(n) = snap.kernel_kills {
            counter(
                &mut encoder,
                "oomtrace_kernel_oom_kills",
                "OOM kills on this node since boot, as the kernel counts them (/proc/vmstat oom_kill).",
                n,
            )?;
        }
        counter(
            &mut encoder,
            "oomtrace_unexplained_kernel_oom_kills",
            "Kernel OOM kills since oomtrace started that no event and no counted loss explains.",
            snap.unexplained_total,
        )
    }
}

/// The sink side: updates the kill metrics for every event.
pub struct MetricsSink {
    kills: Family<KillLabels, Counter>,
    seen: HashSet<KillLabels>,
    max_series: usize,
    folded: Counter,
    last: Gauge<f64, AtomicU64>,
    events: Family<HookLabels, Counter>,
    exit_seconds: Histogram,
    slow_exits: Counter,
}

impl Sink for MetricsSink {
    fn name(&self) -> &'static str {
        "metrics"
    }

    fn emit(&mut self, ev: &Event) -> std::io::Result<()> {
        let mut labels = KillLabels::of(ev);
        if !self.seen.contains(&labels) {
            if self.seen.len() >= self.max_series {
                labels = labels.folded();
                self.folded.inc();
            }
            self.seen.insert(labels.clone());
        }
        self.kills.get_or_create(&labels).inc();
        self.events
            .get_or_create(&HookLabels {
                hook: ev.hook.to_string(),
            })
            .inc();
        #[expect(
            clippy::cast_precision_loss,
            reason = "seconds as f64, as Prometheus has them"
        )]
        let secs = crate::clock::boot_to_unix_ns(ev.boot_ns) as f64 / 1e9;
        self.last.set(secs);
        Ok(())
    }

    fn exit(&mut self, rec: &crate::exits::VictimExit) -> std::io::Result<()> {
        if rec.kind == "victim_exit" {
            self.exit_seconds.observe(rec.seconds());
        } else {
            self.slow_exits.inc();
        }
        Ok(())
    }
}

/// Buckets of `oomtrace_victim_exit_seconds`: a killed task usually goes within milliseconds; a
/// victim stuck in the kernel takes seconds or never goes.
const EXIT_BUCKETS: [f64; 12] = [
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0,
];

/// `oomtrace_event_processing_seconds{stage}`: the time the daemon owns for each victim event,
/// from the ring's wake-up (the event loop woke because the ring had records) to the end of each
/// stage: `decode` (record checked and copied), `enrich` (event built, owner and outcome from the
/// caches), `write` (handed to every output: written by direct sinks, copied for a queued one,
/// whose writer is woken right after this stamp).
/// Events handled in one wake-up all count from that wake-up.
#[derive(Clone, Debug)]
pub struct Processing {
    stages: Family<StageLabels, Histogram>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: &'static str,
}

/// Buckets of `oomtrace_event_processing_seconds`: microseconds, up to a stalled 100 ms.
const PROCESSING_BUCKETS: [f64; 12] = [
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.01,
    0.025, 0.1,
];

impl Default for Processing {
    fn default() -> Self {
        Self {
            stages: Family::new_with_constructor(|| Histogram::new(PROCESSING_BUCKETS)),
        }
    }
}

impl Processing {
    /// Records one event's stage ends, each measured from `woke`.
    pub fn observe(
        &self,
        woke: std::time::Instant,
        decoded: std::time::Instant,
        enriched: std::time::Instant,
        written: std::time::Instant,
    ) {
        for (stage, at) in [
            ("decode", decoded),
            ("enrich", enriched),
            ("write", written),
        ] {
            self.stages
                .get_or_create(&StageLabels { stage })
                .observe(at.saturating_duration_since(woke).as_secs_f64());
        }
    }

    pub fn register(&self, r: &mut Registry) {
        r.register(
            "oomtrace_event_processing_seconds",
            "Time from the ring's wake-up to the end of each stage of a victim event (stage: decode, enrich, write = handed to every output), in seconds.",
            self.stages.clone(),
        );
    }
}

/// Builds the registry and the sink that feeds it. `counters`: the BPF `COUNTERS` map.
pub fn build(
    max_series: usize,
    attempts: &[Attempt],
    acct: Arc<Mutex<Accounting>>,
) -> (Registry, MetricsSink) {
    let mut r = Registry::default();
    let kills = Family::<KillLabels, Counter>::default();
    r.register(
        "oomtrace_oom_kills",
        "OOM-killed processes seen by oomtrace, by namespace, pod, container, OOM constraint and outcome (container_exit, process_only, host, unknown; cgroup or systemd_unit where there is no pod).",
        kills.clone(),
    );
    let folded = Counter::default();
    r.register(
        "oomtrace_series_folded",
        "Kills counted under pod=\"_other\" because oomtrace_oom_kills_total reached its label-set cap.",
        folded.clone(),
    );
    let last = Gauge::<f64, AtomicU64>::default();
    r.register(
        "oomtrace_last_oom_kill_timestamp_seconds",
        "Unix time of the last OOM kill seen (0: none since start).",
        last.clone(),
    );
    let events = Family::<HookLabels, Counter>::default();
    r.register(
        "oomtrace_events",
        "Victim events delivered, by the hook that saw them.",
        events.clone(),
    );
    let exit_seconds = Histogram::new(EXIT_BUCKETS);
    r.register(
        "oomtrace_victim_exit_seconds",
        "Time from an OOM victim's kill to its exit (sched_process_exit), in seconds.",
        exit_seconds.clone(),
    );
    let slow_exits = Counter::default();
    r.register(
        "oomtrace_victim_slow_exits",
        "OOM victims still alive --exit-timeout after their kill (a victim_slow_exit line each).",
        slow_exits.clone(),
    );
    let attached = Family::<AttachLabels, Gauge>::default();
    for a in attempts {
        attached
            .get_or_create(&AttachLabels {
                role: a.role.into(),
                hook: a.hook.into(),
            })
            .set(i64::from(a.error.is_none()));
    }
    r.register(
        "oomtrace_hook_attached",
        "1 for the hook attached for a role (victim, context), 0 for each hook tried and not used.",
        attached,
    );
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .set(1);
    r.register("oomtrace_build_info", "oomtrace's version.", build);
    r.register_collector(Box::new(ScrapeTime { acct }));
    let sink = MetricsSink {
        kills,
        seen: HashSet::new(),
        max_series,
        folded,
        last,
        events,
        exit_seconds,
        slow_exits,
    };
    (r, sink)
}

/// `oomtrace_events_dropped_total{cause="sink_stalled"}`: events outputs dropped because their
/// queue was full (`stalled`: [`super::Sinks::stalled`]).
pub fn register_dropped(r: &mut Registry, stalled: Counter) {
    r.sub_registry_with_label(("cause".into(), "sink_stalled".into()))
        .register(
            "oomtrace_events_dropped",
            "Events an output dropped, by cause: sink_stalled = its queue was full because it could not write (a stalled stdout, a slow disk); its other events and the other outputs are unaffected.",
            stalled,
        );
}

/// `oomtrace_kmsg_untrusted_records_total`: /dev/kmsg records not from the kernel (written by
/// userspace), ignored by the kernel-log source.
pub fn register_kmsg_untrusted(r: &mut Registry, untrusted: Counter, overrun: Counter) {
    r.register(
        "oomtrace_kmsg_untrusted_records",
        "Records in /dev/kmsg whose facility is not the kernel's (written by userspace, e.g. forged OOM lines), ignored by the kernel-log source (--source kmsg). 0 with the BPF source.",
        untrusted,
    );
    r.register(
        "oomtrace_kmsg_overruns",
        "Times the kernel overwrote /dev/kmsg records before the kernel-log source read them (records lost there). 0 with the BPF source.",
        overrun,
    );
}

/// OpenMetrics text (what Prometheus asks for).
pub fn openmetrics(r: &Registry) -> String {
    let mut s = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut s, r);
    s
}

/// The same in the Prometheus text format 0.0.4, for clients that do not ask for OpenMetrics
/// (curl, `promtool check metrics`): counter families are named with their `_total` suffix, and
/// the OpenMetrics-only `# UNIT` and `# EOF` lines are dropped.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for l in openmetrics.lines() {
        if l == "# EOF" || l.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, l.strip_prefix(p)?)));
        if let Some((p, rest)) = meta
            && let Some((name, tail)) = rest.split_once(' ')
            && counters.contains(name)
        {
            let _ = writeln!(out, "{p}{name}_total {tail}");
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(pid: u32, cgroup: &str) -> Event {
        let mut ev = crate::testutil::event(pid);
        ev.victim.cgroup = Some(crate::event::Cgroup {
            id: Some(1),
            path: cgroup.into(),
            truncated: false,
        });
        ev
    }

    #[test]
    fn kills_counted_by_labels_and_folded_past_the_cap() {
        let (r, mut s) = build(2, &[], crate::loss::Accounting::shared(None, None));
        s.emit(&event(1, "/a")).unwrap();
        s.emit(&event(2, "/a")).unwrap();
        s.emit(&event(3, "/b")).unwrap();
        s.emit(&event(4, "/c")).unwrap();
        s.emit(&event(5, "/d")).unwrap();
        s.emit(&event(6, "/a")).unwrap();
        let t = openmetrics(&r);
        assert!(
            t.contains(r#"oomtrace_oom_kills_total{namespace="",pod="",container="",constraint="unknown",cgroup="/a",systemd_unit="",outcome="unknown"} 3"#),
            "{t}"
        );
        assert!(
            t.contains(r#"pod="_other""#) && t.contains("oomtrace_series_folded_total 2"),
            "{t}"
        );
        assert!(!t.contains(r#"cgroup="/c""#), "{t}");
        assert!(
            t.contains(r#"oomtrace_events_total{hook="tracepoint"} 6"#),
            "{t}"
        );
        assert!(t.contains("oomtrace_kernel_oom_kills_total"), "{t}");
        assert!(t.ends_with("# EOF\n"));
    }

    #[test]
    fn exits_are_a_histogram_and_slow_ones_a_counter() {
        let (r, mut s) = build(10, &[], crate::loss::Accounting::shared(None, None));
        let mut t = crate::exits::ExitTracker::new(std::time::Duration::ZERO);
        t.killed(1, 1, 1_000);
        let rec = oomtrace_common::ExitRecord {
            header: oomtrace_common::RecordHeader {
                kind: oomtrace_common::kind::EXIT,
                version: oomtrace_common::RECORD_VERSION,
                size: 24,
                boot_ns: 2_001_000,
            },
            pid: 1,
            tgid: 1,
            kill_boot_ns: 1_000,
        };
        for l in t.exited(&rec, "n") {
            s.exit(&l).unwrap();
        }
        let t = openmetrics(&r);
        assert!(t.contains("oomtrace_victim_exit_seconds_count 1"), "{t}");
        assert!(
            t.contains(r#"oomtrace_victim_exit_seconds_bucket{le="0.005"} 1"#),
            "2 ms: {t}"
        );
        assert!(
            t.contains(r#"oomtrace_victim_exit_seconds_bucket{le="0.001"} 0"#),
            "{t}"
        );
        assert!(t.contains("oomtrace_victim_slow_exits_total 1"), "{t}");
    }

    #[test]
    fn outcome_is_a_label() {
        let (r, mut s) = build(10, &[], crate::loss::Accounting::shared(None, None));
        let mut ev = event(1, "/a");
        ev.outcome = Some(crate::event::Outcome::ProcessOnly);
        s.emit(&ev).unwrap();
        let t = openmetrics(&r);
        assert!(
            t.contains(r#"systemd_unit="",outcome="process_only"} 1"#),
            "{t}"
        );
    }

    #[test]
    fn prometheus_text_renames_counter_families() {
        let (r, mut s) = build(10, &[], crate::loss::Accounting::shared(None, None));
        s.emit(&event(1, "/a")).unwrap();
        let t = prometheus_text(&openmetrics(&r));
        assert!(t.contains("# TYPE oomtrace_oom_kills_total counter"), "{t}");
        assert!(t.contains("# HELP oomtrace_oom_kills_total "), "{t}");
        assert!(t.contains("# TYPE oomtrace_build_info gauge"), "{t}");
        assert!(!t.contains("# EOF"));
    }
}
