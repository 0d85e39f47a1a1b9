//! `cargo xtask man` and `cargo xtask completions`: generated from oomtrace's clap definitions,
//! so they cannot drift from the binary.

use std::{fs, path::Path};

use anyhow::Context as _;
use clap::CommandFactory as _;

/// Writes `oomtrace.1` and one `oomtrace-<sub>.1` per subcommand into `dir`.
pub fn man(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = oomtrace::cli::Cli::command();
    write_page(&cmd, "oomtrace", dir)?;
    for sub in cmd.get_subcommands() {
        // The page of `oomtrace run` is `oomtrace-run(1)`, the usual convention.
        let name: &'static str = format!("oomtrace-{}", sub.get_name()).leak();
        write_page(&sub.clone().name(name), name, dir)?;
    }
    Ok(())
}

fn write_page(cmd: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut buf)
        .with_context(|| format!("rendering {name}.1"))?;
    let path = dir.join(format!("{name}.1"));
    fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
    println!("{}", path.display());
    Ok(())
}

/// Writes bash, zsh and fish completion scripts into `dir`.
pub fn completions(dir: &Path) -> anyhow::Result<()> {
    use clap_complete::Shell;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let mut cmd = oomtrace::cli::Cli::command();
        let path = clap_complete::generate_to(shell, &mut cmd, "oomtrace", dir)
            .with_context(|| format!("writing {shell} completions into {}", dir.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
