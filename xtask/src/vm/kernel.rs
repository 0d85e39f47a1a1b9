//! The guest kernel: a Debian `linux-image-*` package fetched with `apt-get download`, cached,
//! and unpacked (its `/boot` only) under the vm-test directory.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail, ensure};

/// A kernel image ready to boot.
pub struct Kernel {
    pub vmlinuz: PathBuf,
    /// `CONFIG_*` lines of the symbols the tests need (shown in the run's summary).
    pub config_summary: Vec<String>,
}

/// Config symbols that must be built in (`=y`): the initramfs carries no modules.
const REQUIRED: &[(&str, &str)] = &[
    ("BPF_SYSCALL", "bpf(2)"),
    ("BPF_JIT", "JIT for the programs"),
    ("BPF_EVENTS", "BPF programs on kprobes and tracepoints"),
    (
        "DEBUG_INFO_BTF",
        "/sys/kernel/btf/vmlinux: tp_btf, fentry and the offsets oomtrace resolves",
    ),
    ("KPROBES", "kprobe on oom_kill_process"),
    ("KPROBE_EVENTS", "the perf kprobe PMU aya attaches through"),
    ("PERF_EVENTS", "perf_event_open for kprobes and tracepoints"),
    ("TRACEPOINTS", "oom:mark_victim"),
    ("FTRACE", "tracefs"),
    ("FUNCTION_TRACER", "fentry"),
    (
        "DYNAMIC_FTRACE_WITH_DIRECT_CALLS",
        "BPF trampolines (fentry)",
    ),
    ("CGROUPS", "cgroups"),
    ("MEMCG", "the cgroup v2 memory controller"),
    ("BLK_DEV_INITRD", "the initramfs"),
    ("RD_GZIP", "a gzip initramfs"),
    ("DEVTMPFS", "/dev in the initramfs"),
    ("SERIAL_8250", "ttyS0 (console) and ttyS1 (results)"),
    ("SERIAL_8250_CONSOLE", "console=ttyS0"),
];

/// Fetch (or reuse) `package`'s .deb under `cache`, unpack its /boot, check its config.
pub fn prepare(cache: &Path, package: &str) -> Result<Kernel> {
    let deb_dir = cache.join("deb");
    let deb = match find_deb(&deb_dir, package)? {
        Some(deb) => deb,
        None => download(&deb_dir, package)?,
    };
    let stem = deb
        .file_stem()
        .and_then(|s| s.to_str())
        .context("the .deb has no UTF-8 file name")?
        .to_owned();
    let root = cache.join("kernel").join(&stem);
    if !root.join("boot").is_dir() {
        extract_boot(&deb, &root)?;
    }
    let boot = root.join("boot");
    let vmlinuz = find_prefixed(&boot, "vmlinuz-")?
        .with_context(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let config = find_prefixed(&boot, "config-")?
        .with_context(|| format!("no config-* in {}", boot.display()))?;
    let config_summary = check_config(&config)?;
    Ok(Kernel {
        vmlinuz,
        config_summary,
    })
}

/// A kernel image given on the command line: no package, no config check.
pub fn from_image(vmlinuz: &Path) -> Result<Kernel> {
    ensure!(
        vmlinuz.is_file(),
        "kernel image {} not found",
        vmlinuz.display()
    );
    Ok(Kernel {
        vmlinuz: vmlinuz.to_owned(),
        config_summary: Vec::new(),
    })
}

fn find_deb(dir: &Path, package: &str) -> Result<Option<PathBuf>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let prefix = format!("{package}_");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "deb")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
        })
        .collect();
    found.sort();
    Ok(found.pop())
}

fn find_prefixed(dir: &Path, prefix: &str) -> Result<Option<PathBuf>> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    Ok(found.pop())
}

fn download(dir: &Path, package: &str) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("vm-test: apt-get download {package}");
    let get = || {
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(dir)
            .status()
            .context("running apt-get download (is this a Debian system?)")
    };
    if !get()?.success() {
        // A fresh machine may have no package lists yet.
        eprintln!("vm-test: apt-get download failed; running apt-get update and retrying");
        let st = Command::new("apt-get")
            .args(["update", "-qq"])
            .status()
            .context("running apt-get update")?;
        ensure!(st.success(), "apt-get update failed ({st}); are you root?");
        let st = get()?;
        ensure!(st.success(), "apt-get download {package} failed ({st})");
    }
    find_deb(dir, package)?.with_context(|| {
        format!(
            "apt-get download left no {package}_*.deb in {}",
            dir.display()
        )
    })
}

/// `dpkg-deb --fsys-tarfile DEB | tar -x ./boot`: the image and its config; the modules are
/// not needed (everything the tests use is built in, see `REQUIRED`).
fn extract_boot(deb: &Path, root: &Path) -> Result<()> {
    let tmp = root.with_extension("partial");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .context("running dpkg-deb")?;
    let tar_in = dpkg.stdout.take().context("dpkg-deb's stdout")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&tmp)
        .args(["--wildcards", "./boot/*"])
        .stdin(tar_in)
        .status()
        .context("running tar")?;
    let st = dpkg.wait().context("waiting for dpkg-deb")?;
    ensure!(
        st.success(),
        "dpkg-deb --fsys-tarfile {} failed ({st})",
        deb.display()
    );
    ensure!(tar.success(), "tar -x of {} failed ({tar})", deb.display());
    fs::rename(&tmp, root)
        .with_context(|| format!("renaming {} to {}", tmp.display(), root.display()))?;
    Ok(())
}

/// Every `REQUIRED` symbol must be `=y`; returns their lines.
fn check_config(path: &Path) -> Result<Vec<String>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut summary = Vec::new();
    let mut problems = Vec::new();
    for (sym, why) in REQUIRED {
        let key = format!("CONFIG_{sym}=");
        match text.lines().find_map(|l| l.strip_prefix(&key)) {
            Some("y") => summary.push(format!("CONFIG_{sym}=y")),
            Some(v) => problems.push(format!("CONFIG_{sym}={v} (needed built in for {why})")),
            None => problems.push(format!("CONFIG_{sym} is not set (needed for {why})")),
        }
    }
    if !problems.is_empty() {
        bail!(
            "{} does not fit the VM tests (they load no modules):\n  {}",
            path.display(),
            problems.join("\n  ")
        );
    }
    Ok(summary)
}
