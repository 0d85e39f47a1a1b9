//! `cargo xtask <task>`: developer tasks that are more than a cargo command.
//!
//! Each task lives in its own module; this file only dispatches.

mod bench;
mod docs;
mod fuzz;
mod install;
mod preflight;
mod vm;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Developer tasks for oomtrace")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Benchmark oomtrace against bpftrace with real OOM kills (root; a few minutes). Writes
    /// target/bench/bench.{json,md}.
    Bench {
        /// Output directory.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
        /// Real OOM kills per tool for the latency figure (≥ 200).
        #[arg(long, default_value_t = 1000)]
        kills: usize,
        /// Only the ring-path figure (no OOM kills, no bpftrace).
        #[arg(long)]
        ring_only: bool,
        /// Only write the Markdown again from an earlier bench.json (no measurement).
        #[arg(long, value_name = "BENCH_JSON")]
        render: Option<PathBuf>,
    },
    /// Run every cargo-fuzz target in fuzz/ for a bounded time (needs rustup nightly; installs
    /// cargo-fuzz when missing). Fails on the first crash.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
    },
    /// Generate the man pages (oomtrace.1 and one per subcommand) from the CLI definitions.
    Man {
        /// Output directory.
        #[arg(long, default_value = "target/man")]
        out: PathBuf,
    },
    /// Generate bash, zsh and fish completions from the CLI definitions.
    Completions {
        /// Output directory.
        #[arg(long, default_value = "target/completions")]
        out: PathBuf,
    },
    /// Build the release binary and install it with its systemd unit, configuration, man pages
    /// and completions (`--prefix`, default /usr/local; `--destdir` for staging).
    Install(install::Args),
    // No doc comment: it would replace vm::Args' about and long_about (the matrix, the steps).
    VmTest(vm::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.task {
        Task::Bench {
            out,
            kills,
            ring_only,
            render,
        } => {
            if let Some(json) = render {
                bench::render(&json)
            } else if ring_only {
                bench::ring_only(&out)
            } else {
                bench::run(&out, kills)
            }
        }
        Task::Fuzz { seconds, target } => fuzz::run(seconds, target.as_deref()),
        Task::Man { out } => docs::man(&out),
        Task::Completions { out } => docs::completions(&out),
        Task::Install(args) => install::run(&args),
        Task::VmTest(args) => vm::run(&args),
    }
}
