//! `oomtrace run` and `oomtrace trace`: check the settings, load and attach, then move records
//! from the ring to the sinks until SIGINT or SIGTERM (or, for `trace`, until enough kills or
//! time), and drain what is left before exiting.
//!
//! Everything that can be wrong with the settings (file, outputs, metrics address) is checked
//! before anything is attached, as a [`ConfigError`] (exit code 2).

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::Notify,
};
use tokio_util::sync::CancellationToken;

use crate::{
    cli::{AttachArgs, RunArgs, Source, TraceArgs},
    config::{ConfigError, Format, OutputSpec, Overrides, Settings, Target},
    enrich::Enricher,
    event::{Event, Lost, System},
    health::{Health, VictimHold},
    kernel::{cgroups, gfp, tracefs},
    loss::Accounting,
    notify::Systemd,
    pipeline::{self, Pipeline},
    probes::{self, Attempt},
    sink::{self, Sinks, metrics},
    source::{self, bpf, kmsg::KmsgSource},
};

pub use crate::source::Flow;

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The event callback asked to stop.
    Done,
    /// SIGINT, SIGTERM or the deadline (the token was cancelled).
    Cancelled,
}

/// Where kills are read from.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per daemon, never moved in a loop"
)]
enum Input {
    /// The eBPF programs, attached, and their ring ([`bpf`]).
    Bpf(bpf::BpfSource),
    /// The kernel log (fallback).
    Kmsg(KmsgSource),
}

/// The attached input and the pipeline it feeds.
struct Attached {
    input: Input,
    pipeline: Pipeline,
    attempts: Vec<Attempt>,
    summary: String,
    /// Loss counters and reconciliation, shared with the metrics endpoint.
    acct: Arc<Mutex<Accounting>>,
    /// What keeps the victim hook attached (for `/healthz`).
    victim_hold: VictimHold,
}

/// Start-up parses the kernel's BTF (several MiB) and then frees it; hand that memory back to
/// the kernel so the daemon's resident size is what it keeps using.
fn release_startup_memory() {
    // SAFETY: malloc_trim has no preconditions (glibc).
    unsafe { libc::malloc_trim(0) };
}

/// After each drain: report records the kernel side lost, and kernel kills no event explains.
fn account(pipeline: &mut Pipeline, acct: &Mutex<Accounting>) {
    {
        let s = pipeline.stats;
        let mut a = acct
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        a.delivered = s.victims - s.late_victims;
        a.group_kill_ooms = s.group_kill_ooms;
        let lost = a.check_lost();
        if lost.victims > 0 {
            log::warn!(
                "{} OOM records lost: the ring buffer was full ({} in all; raise --ring-size)",
                lost.victims,
                a.lost_total()
            );
            let rec = Lost::new(pipeline.node(), lost.victims, a.lost_total());
            pipeline.sinks.lost(&rec);
        }
        if lost.contexts > 0 {
            log::warn!(
                "{} OOM context records lost: the ring buffer was full (their victims are still reported, with context_missing; raise --ring-size)",
                lost.contexts
            );
        }
        for path in std::mem::take(&mut pipeline.recent_cgroups) {
            let missing = pipeline
                .memory_mount()
                .map_or(0, |m| a.saw_victim_in(m, &path));
            if missing > 0 {
                log::warn!(
                    "{missing} OOM kills counted in memory cgroup {path} (its oom_kill counter) have no event"
                );
            }
        }
        let unexplained = a.reconcile();
        if unexplained > 0 {
            log::warn!(
                "{unexplained} OOM kills counted by the kernel (/proc/vmstat oom_kill) have no event ({} since start)",
                a.unexplained_total
            );
        }
    }
}

/// Cancels `stop` on SIGINT or SIGTERM; on SIGHUP notifies the returned [`Notify`] (reopen the
/// file outputs, after log rotation) and goes on. Installed first, so a signal during start-up
/// is not the default "die now".
fn on_signals(stop: &CancellationToken) -> anyhow::Result<Arc<Notify>> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sighup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let hup = Arc::new(Notify::new());
    let stop = stop.clone();
    let reopen = hup.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = sigint.recv() => {
                    log::info!("SIGINT: draining and exiting");
                    break;
                }
                _ = sigterm.recv() => {
                    log::info!("SIGTERM: draining and exiting");
                    break;
                }
                _ = sighup.recv() => {
                    log::info!("SIGHUP: reopening the file outputs");
                    reopen.notify_one();
                }
            }
        }
        stop.cancel();
    });
    Ok(hup)
}

/// The kernel-log source (`--source kmsg`, or BPF unusable).
fn attach_kmsg(mode: cgroups::CgroupMode, pipeline: Pipeline) -> anyhow::Result<Attached> {
    let src = KmsgSource::open().with_context(|| format!("opening {}", source::kmsg::DEV_KMSG))?;
    log::info!(
        "source: kernel log ({}), memory cgroups: {mode:?}",
        source::kmsg::DEV_KMSG
    );
    Ok(Attached {
        input: Input::Kmsg(src),
        pipeline,
        attempts: vec![Attempt {
            role: "victim",
            hook: "kmsg",
            error: None,
        }],
        summary: "source=kmsg".into(),
        acct: Accounting::shared(None, None),
        victim_hold: VictimHold::Process,
    })
}

/// BPF works but the hooks forced with `--hooks` do not attach here: an error, not a quiet switch
/// to the kernel log (a pid-only kernel with `victim=tp_btf` forced used to get kmsg events).
fn forced(e: anyhow::Error) -> anyhow::Error {
    e.context(
        "the hooks forced with --hooks cannot be attached (not falling back to the kernel log)",
    )
}

fn attach(
    a: &AttachArgs,
    settings: &Settings,
    sinks: Sinks,
    log_level: log::LevelFilter,
    pin_root: Option<&Path>,
) -> anyhow::Result<Attached> {
    let mode = cgroups::detect(Path::new("/"));
    let make_pipeline = |gfp, context_hook, exit_hook: bool, sinks| {
        Pipeline::new(
            pipeline::node_name(),
            System::read(),
            gfp,
            context_hook,
            Enricher::new(&a.host_root),
            sinks,
        )
        .with_memory_mount(cgroups::memory_mount(Path::new("/"), mode))
        .with_exit_tracking(exit_hook.then_some(a.exit_timeout))
    };
    let open_bpf = || {
        bpf::open(&bpf::Options {
            ring_size: settings.ring_size,
            log_level,
            hooks: settings.hooks,
            cgroup_mode: mode,
            pin_root,
        })
    };
    let opened = match a.source {
        Source::Kmsg => None,
        Source::Bpf => Some(open_bpf()?),
        Source::Auto => match open_bpf() {
            Ok(o) => Some(o),
            Err(e) if settings.hooks != probes::HookChoice::default() => return Err(forced(e)),
            Err(e) => {
                log::warn!(
                    "BPF cannot be used ({e:#}); falling back to the kernel log (/dev/kmsg): events carry fewer fields"
                );
                None
            }
        },
    };
    let Some(o) = opened else {
        return attach_kmsg(
            mode,
            make_pipeline(gfp::load(Path::new(tracefs::TRACEFS)), false, false, sinks),
        );
    };
    Ok(Attached {
        pipeline: make_pipeline(gfp::load(&o.tracefs), o.context_hook, o.exit_hook, sinks),
        input: Input::Bpf(o.source),
        attempts: o.attempts,
        summary: o.summary,
        acct: o.acct,
        victim_hold: o.victim_hold,
    })
}

/// The next tick of the watchdog timer; never without one.
async fn tick(i: Option<&mut tokio::time::Interval>) {
    match i {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// `STATUS=` for systemd when the counts changed.
fn counts(sd: &mut Systemd, pipeline: &Pipeline, acct: &Mutex<Accounting>) {
    let lost = acct
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .lost_total();
    sd.counts(pipeline.stats.victims, lost);
}

/// The loop both commands share: every ring record through the pipeline (which writes its
/// sinks), then `on_event`, until `on_event` says stop or `stop` is cancelled; then what the
/// kernel already wrote is drained.
async fn pump(
    t: &mut Attached,
    stop: &CancellationToken,
    hup: &Notify,
    health: &Health,
    sd: &mut Systemd,
    on_event: &mut dyn FnMut(&Event) -> Flow,
) -> anyhow::Result<Ended> {
    let Attached {
        input,
        pipeline,
        acct,
        ..
    } = t;
    let check = acct
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .check_requested
        .clone();
    // Victims still alive --exit-timeout after their kill are looked for this often, only while
    // some are waited for.
    let mut exit_check = tokio::time::interval(Duration::from_millis(250));
    exit_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Only with a systemd watchdog does the loop wake on a timer.
    let mut watchdog = sd.watchdog_interval().map(|d| {
        let mut i = tokio::time::interval(d);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    });
    let ended = 'outer: loop {
        health.waiting();
        match input {
            Input::Bpf(src) => tokio::select! {
                guard = src.ring.readable_mut() => {
                    let woke = std::time::Instant::now();
                    health.woke();
                    let mut guard = guard.context("waiting on the ring buffer")?;
                    let flow = bpf::drain(guard.get_inner_mut(), |item| {
                        pipeline
                            .handle_woken(item, woke)
                            .map_or(Flow::Continue, |ev| on_event(&ev))
                    });
                    if flow == Flow::Stop {
                        break 'outer Ended::Done;
                    }
                    guard.clear_ready();
                    account(pipeline, acct);
                    pipeline.check_exits(crate::clock::boot_ns_now());
                    counts(sd, pipeline, acct);
                }
                _ = exit_check.tick(), if pipeline.exits_to_watch() => pipeline.check_exits(crate::clock::boot_ns_now()),
                guard = async { match src.logs.as_mut() { Some(l) => l.readable_mut().await, None => std::future::pending().await } } => {
                    health.woke();
                    let mut guard = guard.context("waiting on the log ring")?;
                    guard.get_inner_mut().flush();
                    guard.clear_ready();
                }
                () = hup.notified() => { health.woke(); pipeline.sinks.reopen(); }
                () = check.notified() => { health.woke(); account(pipeline, acct); }
                () = tick(watchdog.as_mut()) => { health.woke(); sd.alive(); }
                () = stop.cancelled() => break Ended::Cancelled,
            },
            Input::Kmsg(src) => tokio::select! {
                kills = src.next_kills() => {
                    health.woke();
                    for k in kills.context("reading /dev/kmsg")? {
                        let ev = source::kmsg::event(&k, pipeline.system(), pipeline.gfp(), pipeline.node());
                        let ev = pipeline.handle_event(ev);
                        if on_event(&ev) == Flow::Stop {
                            break 'outer Ended::Done;
                        }
                    }
                    account(pipeline, acct);
                    counts(sd, pipeline, acct);
                }
                () = hup.notified() => { health.woke(); pipeline.sinks.reopen(); }
                () = check.notified() => { health.woke(); account(pipeline, acct); }
                () = tick(watchdog.as_mut()) => { health.woke(); sd.alive(); }
                () = stop.cancelled() => break Ended::Cancelled,
            },
        }
    };
    health.woke();
    sd.stopping();
    if let Input::Bpf(src) = input {
        if ended == Ended::Cancelled {
            // Whatever the kernel wrote before we stopped still goes out.
            bpf::drain(src.ring.get_mut(), |item| {
                pipeline
                    .handle(item)
                    .map_or(Flow::Continue, |ev| on_event(&ev))
            });
        }
        account(pipeline, acct);
        if let Some(l) = &mut src.logs {
            l.get_mut().flush();
        }
    }
    let s = pipeline.stats;
    log::info!(
        "stopped: {} records, {} victims, {} undecodable, {} sink errors",
        s.records,
        s.victims,
        s.decode_errors,
        pipeline.sinks.errors()
    );
    Ok(ended)
}

fn overrides(a: &AttachArgs) -> Overrides {
    Overrides {
        ring_size: a.ring_size,
        queue_size: a.queue_size,
        hooks: a.hooks,
        ..Overrides::default()
    }
}

/// Opens every output, each on its own writer thread behind a queue of `queue_size` events: a
/// file that cannot be opened is a [`ConfigError`].
fn open_sinks(outputs: &[OutputSpec], queue_size: usize) -> anyhow::Result<Sinks> {
    let mut sinks = Sinks::default();
    let node = pipeline::node_name();
    for o in outputs {
        sinks
            .push_queued(sink::open(o)?, queue_size, node.clone())
            .with_context(|| format!("starting the writer thread of output {o}"))?;
    }
    Ok(sinks)
}

/// How long exiting waits for the outputs to write what they have queued.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

fn bind(addr: std::net::SocketAddr) -> Result<std::net::TcpListener, ConfigError> {
    std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|source| ConfigError::Bind { addr, source })
}

/// Serves `/metrics` and `/healthz` on a thread of its own (its own runtime), so `/healthz`
/// still answers while the drain loop is stuck.
fn serve_on_own_thread(
    listener: std::net::TcpListener,
    registry: Registry,
    health: Arc<Health>,
    refused: prometheus_client::metrics::counter::Counter,
    stop: CancellationToken,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the metrics server's runtime")?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        crate::http::serve(l, Arc::new(registry), health, refused, stop).await;
                    }
                    Err(e) => log::error!("metrics: registering the listener: {e}"),
                }
            });
        })
        .context("starting the metrics server's thread")
}

/// `oomtrace run`.
pub async fn run(args: &RunArgs, log_level: log::LevelFilter) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let hup = on_signals(&stop)?;
    let settings = Settings::load(
        args.attach.config.as_deref(),
        Overrides {
            outputs: args.outputs.clone(),
            metrics_addr: args.metrics_addr.clone(),
            max_series: args.metrics_max_series,
            healthz_stall: args.healthz_stall,
            ..overrides(&args.attach)
        },
    )?;
    let sinks = open_sinks(&settings.outputs, settings.queue_size)?;
    let listener = settings.metrics.map(|m| bind(m.addr)).transpose()?;

    let pin_root = (!args.no_pin).then_some(args.pin_dir.as_path());
    let mut t = attach(&args.attach, &settings, sinks, log_level, pin_root)?;
    let health = Arc::new(Health::new(
        t.victim_hold.clone(),
        settings
            .metrics
            .map_or(crate::health::DEFAULT_STALL, |m| m.healthz_stall),
    ));
    let mut server = None;
    if let (Some(m), Some(listener)) = (settings.metrics, listener) {
        let (mut registry, msink) = metrics::build(m.max_series, &t.attempts, t.acct.clone());
        metrics::register_dropped(&mut registry, t.pipeline.sinks.stalled.clone());
        t.pipeline.processing.register(&mut registry);
        // Stays 0 with the BPF source.
        let (untrusted, overrun) = match &t.input {
            Input::Kmsg(src) => (src.records.untrusted.clone(), src.overrun.clone()),
            Input::Bpf(_) => Default::default(),
        };
        metrics::register_kmsg_untrusted(&mut registry, untrusted, overrun);
        let refused = prometheus_client::metrics::counter::Counter::default();
        crate::http::register_refused(&mut registry, refused.clone());
        t.pipeline.sinks.push(Box::new(msink));
        log::info!("metrics on http://{}/metrics", m.addr);
        server = Some(serve_on_own_thread(
            listener,
            registry,
            health.clone(),
            refused,
            stop.clone(),
        )?);
    }
    let outputs: Vec<String> = settings.outputs.iter().map(ToString::to_string).collect();
    log::info!("outputs: {}", outputs.join(", "));
    // Tests and benchmarks wait for this line.
    release_startup_memory();
    eprintln!("ready: attached {}", t.summary);
    let mut sd = Systemd::from_env(&t.summary);
    sd.ready();

    let r = pump(&mut t, &stop, &hup, &health, &mut sd, &mut |_| {
        Flow::Continue
    })
    .await;
    t.pipeline
        .sinks
        .close(std::time::Instant::now() + CLOSE_WAIT);
    stop.cancel();
    if let Some(s) = server {
        let _ = s.join();
    }
    r.map(|_| ())
}

/// What `trace` shows.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub container: Option<String>,
    pub cgroup: Option<String>,
    pub comm: Option<String>,
    pub pid: Option<u32>,
    pub outcome: Option<crate::event::Outcome>,
}

impl Filter {
    /// True when the event passes every filter given. The pod, namespace and container filters
    /// only match events attributed to one.
    pub fn matches(&self, ev: &Event) -> bool {
        let pod = ev.owner.pod.as_ref();
        let container = ev.owner.container.as_ref();
        self.pid.is_none_or(|p| ev.victim.pid == p)
            && self.outcome.is_none_or(|o| ev.outcome == Some(o))
            && self
                .comm
                .as_ref()
                .is_none_or(|c| ev.victim.comm.as_ref() == Some(c))
            && self.cgroup.as_ref().is_none_or(|prefix| {
                ev.victim
                    .cgroup
                    .as_ref()
                    .is_some_and(|g| g.path.starts_with(prefix.as_str()))
            })
            && self
                .pod
                .as_ref()
                .is_none_or(|n| pod.is_some_and(|p| p.name.as_ref() == Some(n) || p.uid == *n))
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| pod.is_some_and(|p| p.namespace.as_ref() == Some(n)))
            && self.container.as_ref().is_none_or(|n| {
                container
                    .is_some_and(|c| c.name.as_ref() == Some(n) || c.id.starts_with(n.as_str()))
            })
    }
}

/// `oomtrace trace`: Ok(true) when it saw what it waited for (`--count` kills; without
/// `--count`, always).
pub async fn trace(args: &TraceArgs, log_level: log::LevelFilter) -> anyhow::Result<bool> {
    let stop = CancellationToken::new();
    let hup = on_signals(&stop)?;
    let settings = Settings::load(args.attach.config.as_deref(), overrides(&args.attach))?;
    let format = if args.json {
        Format::Json
    } else {
        Format::Text
    };
    let mut out = open_sinks(
        &[OutputSpec {
            format,
            target: Target::Stdout,
        }],
        settings.queue_size,
    )?;
    let filter = Filter {
        pod: args.pod.clone(),
        namespace: args.namespace.clone(),
        container: args.container.clone(),
        cgroup: args.cgroup.clone(),
        comm: args.comm.clone(),
        pid: args.pid,
        outcome: args.outcome,
    };
    // The pipeline's own sinks stay empty: only matching events are written.
    // Ad-hoc tracing never pins: nothing stays attached after it.
    let mut t = attach(&args.attach, &settings, Sinks::default(), log_level, None)?;
    if let Some(d) = args.duration {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            log::info!("--duration {d:?} elapsed");
            stop.cancel();
        });
    }
    release_startup_memory();
    eprintln!("ready: attached {}", t.summary);
    let mut seen = 0u64;
    let health = Health::new(t.victim_hold.clone(), crate::health::DEFAULT_STALL);
    let ended = pump(
        &mut t,
        &stop,
        &hup,
        &health,
        &mut Systemd::off(),
        &mut |ev| {
            if !filter.matches(ev) {
                return Flow::Continue;
            }
            out.emit(ev);
            seen += 1;
            if args.count.is_some_and(|n| seen >= n) {
                Flow::Stop
            } else {
                Flow::Continue
            }
        },
    )
    .await?;
    out.close(std::time::Instant::now() + CLOSE_WAIT);
    stop.cancel();
    // Give the spawned tasks a turn to finish.
    tokio::time::sleep(Duration::ZERO).await;
    Ok(args.count.is_none() || ended == Ended::Done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let mut ev = crate::testutil::event(42);
        ev.victim.cgroup = Some(crate::event::Cgroup {
            id: Some(1),
            path: "/kubepods/burstable/pod1/abc".into(),
            truncated: false,
        });
        let all = Filter::default();
        assert!(all.matches(&ev));
        let f = |f: Filter| f.matches(&ev);
        assert!(f(Filter {
            comm: Some("hog1".into()),
            pid: Some(42),
            cgroup: Some("/kubepods/burstable".into()),
            ..Filter::default()
        }));
        assert!(!f(Filter {
            comm: Some("hog".into()),
            ..Filter::default()
        }));
        assert!(
            !f(Filter {
                outcome: Some(crate::event::Outcome::Host),
                ..Filter::default()
            }),
            "unknown outcome: an outcome filter does not match"
        );
        let mut only = ev.clone();
        only.outcome = Some(crate::event::Outcome::ProcessOnly);
        let process_only = Filter {
            outcome: Some(crate::event::Outcome::ProcessOnly),
            ..Filter::default()
        };
        assert!(process_only.matches(&only));
        only.outcome = Some(crate::event::Outcome::ContainerExit);
        assert!(!process_only.matches(&only));
        assert!(!f(Filter {
            cgroup: Some("/system.slice".into()),
            ..Filter::default()
        }));
        assert!(
            !f(Filter {
                pod: Some("cart".into()),
                ..Filter::default()
            }),
            "no pod attributed: a pod filter does not match"
        );
        ev.owner.pod = Some(crate::enrich::Pod {
            uid: "u1".into(),
            qos: None,
            name: Some("cart".into()),
            namespace: Some("shop".into()),
        });
        assert!(
            Filter {
                pod: Some("cart".into()),
                namespace: Some("shop".into()),
                ..Filter::default()
            }
            .matches(&ev)
        );
    }
}
