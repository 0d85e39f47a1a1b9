//! Command line: one `Parser` struct per subcommand.

use clap::{Args, Parser, Subcommand};

use std::path::PathBuf;

use crate::{
    config::{DEFAULT_METRICS_ADDR, OutputSpec},
    probes::HookChoice,
};

#[derive(Debug, Parser)]
#[command(
    name = "oomtrace",
    version,
    about = "Trace the kernel's OOM kills with eBPF: who was killed, who triggered it, where, and which limit was hit.",
    long_about = None
)]
pub struct Cli {
    /// Log level of oomtrace's own messages on stderr (error, warn, info, debug, trace), eBPF-side
    /// logs included. Default: $RUST_LOG, else info.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<log::LevelFilter>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the tracer: attach to the kernel and write every OOM victim to the sinks (default one
    /// JSON line per victim on stdout), optionally serving Prometheus metrics.
    Run(RunArgs),
    /// Watch OOM kills ad hoc: one text line per matching victim on stdout (`--json` for JSON
    /// lines), until `--count` kills, `--duration`, or Ctrl-C.
    Trace(TraceArgs),
    /// Report what this kernel offers (BTF, tracefs, cgroup mode, capabilities) and which hook
    /// `run` would use for each role, with the reason each better one cannot be used. Exit 0 when
    /// a victim hook attaches.
    Check(CheckArgs),
    /// Remove the pins `run` leaves in bpffs (ring, counters, attached hooks): the hooks detach.
    /// Refuses (exit 1) while a running oomtrace holds them, unless `--force`.
    Cleanup(CleanupArgs),
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// bpffs directory of the pins.
    #[arg(long, value_name = "DIR", default_value = crate::pin::DEFAULT_ROOT, env = "OOMTRACE_PIN_DIR")]
    pub pin_dir: PathBuf,

    /// Remove the pins even while a running oomtrace holds them (its lock on --pin-dir): its
    /// hooks detach and it stops seeing kills. Without it, cleanup refuses (exit 1).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Settings `run` and `trace` share (also from `--config`; flags and environment win).
#[derive(Debug, Args)]
pub struct AttachArgs {
    /// TOML configuration file (see deploy/config.example.toml). Flags and OOMTRACE_* variables
    /// win over it. An unknown key or a bad value: one line naming it, exit code 2.
    #[arg(long, value_name = "FILE", env = "OOMTRACE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Size of the BPF ring buffer in bytes (a power of two, at least 4096). Each victim record
    /// takes about 1.7 KiB. Default 262144.
    #[arg(long, value_name = "BYTES", env = "OOMTRACE_RING_SIZE")]
    pub ring_size: Option<u32>,

    /// Events each output holds in memory while it cannot write (a stalled stdout, a slow
    /// disk): the ring keeps being drained, and once an output's queue is full its new events
    /// are dropped and counted (a `lost` line with `cause` `sink_stalled` when it writes
    /// again). About 1 KiB per event. Default 4096.
    #[arg(long, value_name = "EVENTS", env = "OOMTRACE_QUEUE_SIZE")]
    pub queue_size: Option<usize>,

    /// Force hooks instead of picking the best available:
    /// `victim=tp_btf|raw_tracepoint|fentry|kprobe|tracepoint` (fentry and kprobe are on
    /// mark_oom_victim), `context=fentry|kprobe|none`, comma-separated; `auto` (default) for
    /// either. A forced hook that cannot be attached is an error (no kernel-log fallback).
    #[arg(long, value_name = "ROLE=HOOK,...", env = "OOMTRACE_HOOKS")]
    pub hooks: Option<HookChoice>,

    /// Where the node's files are: the kubelet's /var/log/pods and the container runtimes' state
    /// are read under this prefix to name pods and containers (a DaemonSet mounts the host's
    /// files at /host).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/",
        env = "OOMTRACE_HOST_ROOT"
    )]
    pub host_root: PathBuf,

    /// Where kills are read from: `bpf` (the eBPF hooks), `kmsg` (the kernel's log lines in
    /// /dev/kmsg; fewer fields, needs CAP_SYSLOG when dmesg_restrict=1), or `auto`: BPF, and the
    /// kernel log when BPF cannot be loaded (no CAP_BPF, locked-down kernel).
    #[arg(long, value_enum, default_value_t = Source::Auto, env = "OOMTRACE_SOURCE")]
    pub source: Source,

    /// A victim still alive this long after its kill gets a `victim_slow_exit` line (and
    /// `oomtrace_victim_slow_exits_total`); its `victim_exit` line follows when it exits
    /// (`10s`, `500ms`, `0` warns about every victim). Needs the exit hook
    /// (sched:sched_process_exit); the kernel-log source reports no exits.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10s",
        value_parser = crate::config::parse_duration,
        env = "OOMTRACE_EXIT_TIMEOUT"
    )]
    pub exit_timeout: std::time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    Auto,
    Bpf,
    Kmsg,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub attach: AttachArgs,

    /// Do not pin: the hooks detach when oomtrace stops, and kills while it is down are not
    /// delivered later. By default the ring, the counters and the hooks are pinned under
    /// --pin-dir, so a restarted daemon delivers the kills that happened meanwhile.
    #[arg(long, env = "OOMTRACE_NO_PIN")]
    pub no_pin: bool,

    /// bpffs directory for the pins (bpffs is mounted on its parent if needed).
    #[arg(long, value_name = "DIR", default_value = crate::pin::DEFAULT_ROOT, env = "OOMTRACE_PIN_DIR")]
    pub pin_dir: PathBuf,

    /// Where events go, repeatable (several sinks at once): FORMAT:TARGET with FORMAT `json`
    /// (one object per line, docs/events.md) or `text` (one line per victim for people) and
    /// TARGET `stdout`, `stderr` or a file path (appended to, created if missing). Default
    /// `json:stdout`.
    #[arg(
        long = "output",
        short = 'o',
        value_name = "FORMAT:TARGET",
        env = "OOMTRACE_OUTPUT",
        value_delimiter = ','
    )]
    pub outputs: Vec<OutputSpec>,

    /// Serve Prometheus/OpenMetrics metrics on /metrics (and /healthz) at this address. Off
    /// unless given; without a value: 127.0.0.1:9464.
    #[arg(
        long,
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = DEFAULT_METRICS_ADDR,
        env = "OOMTRACE_METRICS_ADDR"
    )]
    pub metrics_addr: Option<String>,

    /// Distinct label sets of oomtrace_oom_kills_total kept; kills of further new workloads
    /// are counted under pod="_other". Default 1000.
    #[arg(long, value_name = "N", env = "OOMTRACE_METRICS_MAX_SERIES")]
    pub metrics_max_series: Option<usize>,

    /// /healthz answers 503 once the loop that drains the ring has been busy this long without
    /// coming back to wait (`30s`, `2m`): stuck, not idle (a node without kills is healthy).
    /// Default 30s.
    #[arg(long, value_name = "DURATION", env = "OOMTRACE_HEALTHZ_STALL", value_parser = crate::config::parse_duration)]
    pub healthz_stall: Option<std::time::Duration>,
}

/// `oomtrace trace`: which kills to show and when to stop.
#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub attach: AttachArgs,

    /// Print JSON lines (docs/events.md) instead of text lines.
    #[arg(long)]
    pub json: bool,

    /// Only kills in this pod (its name; with `--namespace` to tell namespaces apart).
    #[arg(long, value_name = "NAME")]
    pub pod: Option<String>,

    /// Only kills in pods of this namespace.
    #[arg(long, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Only kills in this container (its name in the pod spec, or a prefix of its id).
    #[arg(long, value_name = "NAME|ID")]
    pub container: Option<String>,

    /// Only kills whose victim's memory cgroup path starts with this (e.g. `/kubepods/burstable`).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,

    /// Only victims with this command name (as the kernel keeps it: 15 bytes at most).
    #[arg(long, value_name = "COMM")]
    pub comm: Option<String>,

    /// Only this victim pid.
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,

    /// Only kills with this outcome: `container_exit` (the container dies: its init, or a group
    /// kill), `process_only` (a container loses one process and keeps running: Kubernetes does
    /// not report it), `host` (a host process). Kills whose outcome is unknown never match.
    #[arg(long, value_enum, value_name = "OUTCOME")]
    pub outcome: Option<crate::event::Outcome>,

    /// Exit (code 0) after N matching kills.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Exit after this long (`30s`, `5m`, `1h`): code 0, or 1 when `--count` was given and not
    /// reached.
    #[arg(long, value_name = "DURATION", value_parser = crate::config::parse_duration)]
    pub duration: Option<std::time::Duration>,
}
