//! `cargo xtask install [--prefix /usr/local] [--sysconfdir /etc] [--destdir DIR]`: builds the
//! release binary and installs it with its systemd unit, configuration, logrotate snippet, man
//! pages and shell completions, in the usual places under PREFIX (`DESTDIR` is prepended to every path, for
//! packaging and for the test that installs into a temporary directory).

use std::{
    fs,
    io::BufRead as _,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail, ensure};

#[derive(clap::Args)]
pub struct Args {
    /// Installation prefix: the binary goes to PREFIX/bin, the unit to PREFIX/lib/systemd/system,
    /// man pages to PREFIX/share/man/man1, completions under PREFIX/share.
    #[arg(long, default_value = "/usr/local")]
    prefix: PathBuf,
    /// Where the configuration goes (SYSCONFDIR/oomtrace/config.toml; the unit's --config
    /// names it) and the logrotate snippet (SYSCONFDIR/logrotate.d/oomtrace). Existing ones are
    /// kept.
    #[arg(long, default_value = "/etc")]
    sysconfdir: PathBuf,
    /// Staging directory prepended to every installed path (packaging); the unit and the
    /// paths it names are written as if installed without it.
    #[arg(long)]
    destdir: Option<PathBuf>,
}

/// The unit's paths as written in deploy/systemd/oomtrace.service, rewritten on install.
const UNIT_BIN: &str = "/usr/local/bin/oomtrace";
const UNIT_CONFIG: &str = "/etc/oomtrace/config.toml";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(
        args.prefix.is_absolute() && args.sysconfdir.is_absolute(),
        "--prefix and --sysconfdir must be absolute paths"
    );
    let root = workspace_root();
    let bin = build_release(&root)?;
    let dest = |p: &Path| -> PathBuf {
        match &args.destdir {
            Some(d) => d.join(p.strip_prefix("/").expect("absolute")),
            None => p.to_path_buf(),
        }
    };
    let prefix = dest(&args.prefix);

    // Binary.
    install_file(&bin, &prefix.join("bin/oomtrace"), 0o755)?;

    // systemd unit, pointing at where the binary and the configuration really are.
    let unit = fs::read_to_string(root.join("deploy/systemd/oomtrace.service"))
        .context("reading deploy/systemd/oomtrace.service")?;
    let unit = rewrite_unit(
        &unit,
        &args.prefix.join("bin/oomtrace"),
        &args.sysconfdir.join("oomtrace/config.toml"),
    )?;
    write_file(
        &prefix.join("lib/systemd/system/oomtrace.service"),
        unit.as_bytes(),
        0o644,
    )?;

    // Configuration: never overwrite one that is already there (it may have been edited).
    let config = dest(&args.sysconfdir).join("oomtrace/config.toml");
    if config.exists() {
        println!("kept existing {}", config.display());
    } else {
        install_file(&root.join("deploy/config.example.toml"), &config, 0o644)?;
    }
    // logrotate for the file outputs: kept too when already there.
    let logrotate = dest(&args.sysconfdir).join("logrotate.d/oomtrace");
    if logrotate.exists() {
        println!("kept existing {}", logrotate.display());
    } else {
        install_file(&root.join("deploy/logrotate/oomtrace"), &logrotate, 0o644)?;
    }

    // Man pages and completions, generated from the CLI definitions.
    let staging = std::env::temp_dir().join(format!("oomtrace-install-{}", std::process::id()));
    let _ = fs::remove_dir_all(&staging);
    crate::docs::man(&staging.join("man"))?;
    crate::docs::completions(&staging.join("completions"))?;
    for entry in fs::read_dir(staging.join("man"))? {
        let p = entry?.path();
        let name = p.file_name().expect("file name");
        install_file(&p, &prefix.join("share/man/man1").join(name), 0o644)?;
    }
    let comp = staging.join("completions");
    for (from, to) in [
        (
            "oomtrace.bash",
            "share/bash-completion/completions/oomtrace",
        ),
        ("_oomtrace", "share/zsh/site-functions/_oomtrace"),
        (
            "oomtrace.fish",
            "share/fish/vendor_completions.d/oomtrace.fish",
        ),
    ] {
        install_file(&comp.join(from), &prefix.join(to), 0o644)?;
    }
    let _ = fs::remove_dir_all(&staging);

    if args.destdir.is_none() {
        println!(
            "installed; start it with: systemctl daemon-reload && systemctl enable --now oomtrace"
        );
    }
    Ok(())
}

/// `cargo build --release -p oomtrace`; returns the binary cargo reports it built.
fn build_release(root: &Path) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--locked",
            "--release",
            "-p",
            "oomtrace",
            "--message-format=json-render-diagnostics",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .context("running cargo build")?;
    let mut exe = None;
    for line in std::io::BufReader::new(child.stdout.take().expect("stdout")).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?).unwrap_or_default();
        if v["reason"] == "compiler-artifact"
            && v["target"]["name"] == "oomtrace"
            && let Some(p) = v["executable"].as_str()
        {
            exe = Some(PathBuf::from(p));
        }
    }
    let st = child.wait()?;
    ensure!(
        st.success(),
        "cargo build --release -p oomtrace failed: {st}"
    );
    exe.context("cargo did not report the oomtrace executable")
}

/// The unit with ExecStart's binary and --config path replaced.
fn rewrite_unit(unit: &str, bin: &Path, config: &Path) -> anyhow::Result<String> {
    let mut out = String::with_capacity(unit.len());
    let mut found = 0;
    for line in unit.lines() {
        if let Some(rest) = line.strip_prefix("ExecStart=") {
            let Some(args) = rest.strip_prefix(UNIT_BIN) else {
                bail!("ExecStart= does not start with {UNIT_BIN}: {line}");
            };
            ensure!(
                args.contains(UNIT_CONFIG),
                "ExecStart= does not name {UNIT_CONFIG}"
            );
            let args = args.replace(UNIT_CONFIG, &config.to_string_lossy());
            out.push_str("ExecStart=");
            out.push_str(&bin.to_string_lossy());
            out.push_str(&args);
            found += 1;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    ensure!(found == 1, "expected one ExecStart= line, found {found}");
    Ok(out)
}

fn install_file(from: &Path, to: &Path, mode: u32) -> anyhow::Result<()> {
    let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    write_file(to, &data, mode)
}

fn write_file(to: &Path, data: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = to.parent().expect("has a parent");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Write beside and rename, so a running binary is replaced, not modified in place.
    let tmp = dir.join(format!(
        ".{}.tmp",
        to.file_name().expect("file name").to_string_lossy()
    ));
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    fs::rename(&tmp, to).with_context(|| format!("installing {}", to.display()))?;
    println!("{}", to.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_paths_are_rewritten() {
        let unit =
            "[Service]\nExecStart=/usr/local/bin/oomtrace run --config /etc/oomtrace/config.toml\n";
        let out = rewrite_unit(
            unit,
            Path::new("/usr/bin/oomtrace"),
            Path::new("/opt/etc/oomtrace/config.toml"),
        )
        .unwrap();
        assert_eq!(
            out,
            "[Service]\nExecStart=/usr/bin/oomtrace run --config /opt/etc/oomtrace/config.toml\n"
        );
        assert!(rewrite_unit("ExecStart=/bin/true\n", Path::new("/x"), Path::new("/y")).is_err());
    }
}
