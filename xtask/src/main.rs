//! `cargo xtask <task>`: developer tasks that are more than a cargo command.
//!
//! Each task lives in its own module; this file only dispatches.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "Developer tasks for oomtrace")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.task {}
}
