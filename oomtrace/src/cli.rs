//! Command line: one `Parser` struct per subcommand.

use clap::{Args, Parser, Subcommand};

use crate::probes::{DEFAULT_RING_SIZE, HookChoice};

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
    /// Run the tracer: attach to the kernel and write one JSON line per OOM victim to stdout.
    Run(RunArgs),
    /// Report what this kernel offers (BTF, tracefs, cgroup mode, capabilities) and which hook
    /// `run` would use for each role, with the reason each better one cannot be used. Exit 0 when
    /// a victim hook attaches.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Size of the BPF ring buffer in bytes (a power of two, at least 4096). Each victim record
    /// takes about 900 bytes.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_SIZE, env = "OOMTRACE_RING_SIZE")]
    pub ring_size: u32,

    /// Force hooks instead of picking the best available: `victim=tp_btf|raw_tracepoint|tracepoint`,
    /// `context=fentry|kprobe|none`, comma-separated; `auto` (default) for either.
    #[arg(
        long,
        value_name = "ROLE=HOOK,...",
        default_value = "",
        hide_default_value = true,
        env = "OOMTRACE_HOOKS"
    )]
    pub hooks: HookChoice,

    /// Where the node's files are: the kubelet's /var/log/pods and the container runtimes' state
    /// are read under this prefix to name pods and containers (a DaemonSet mounts the host's
    /// files at /host).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/",
        env = "OOMTRACE_HOST_ROOT"
    )]
    pub host_root: std::path::PathBuf,
}
