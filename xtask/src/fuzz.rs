//! `cargo xtask fuzz`: a bounded libFuzzer run of every target in fuzz/ (record decoder, tracefs
//! format parser, kmsg parser, cgroup-path parser, BTF reader). Fails on the first crash; the
//! crashing input is left in fuzz/artifacts/<target>/ to be turned into a regression test.
//!
//! Needs cargo-fuzz (installed from crates.io when missing) and a nightly rustc (rustup's
//! `nightly`; rust-src is not needed).

use std::process::Command;

use anyhow::{Context as _, bail};

pub const TARGETS: [&str; 5] = ["decode", "tracefs_format", "kmsg", "cgroup_path", "btf"];

pub fn run(seconds: u32, only: Option<&str>) -> anyhow::Result<()> {
    crate::preflight::require(
        "fuzz",
        &[
            crate::preflight::Need::Program("rustup"),
            crate::preflight::Need::Toolchain("nightly"),
        ],
        "rustup toolchain install nightly (cargo-fuzz is then installed by this task)",
    );
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("fuzz: installing cargo-fuzz");
        let st = Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()
            .context("running cargo install cargo-fuzz")?;
        if !st.success() {
            bail!("cargo install cargo-fuzz failed ({st})");
        }
    }
    let targets: Vec<&str> = match only {
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!("unknown fuzz target {t}: one of {}", TARGETS.join(", ")),
        None => TARGETS.to_vec(),
    };
    for t in targets {
        eprintln!("fuzz: {t} for {seconds} s");
        let st = Command::new("rustup")
            .args([
                "run",
                "nightly",
                "cargo",
                "fuzz",
                "run",
                "--fuzz-dir",
                "fuzz",
                t,
                "--",
            ])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=1024")
            .status()
            .with_context(|| format!("running cargo fuzz run {t}"))?;
        if !st.success() {
            bail!("fuzz target {t} failed ({st}): see fuzz/artifacts/{t}/");
        }
    }
    Ok(())
}
