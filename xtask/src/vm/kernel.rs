//! The guest kernels: Debian `linux-image-*` packages at pinned versions ([`MATRIX`]), fetched
//! with `apt-get download` through a package index of the test's own (`DIR/apt/`: its sources
//! list, lists and cache, selected with apt's `Dir::` options; the machine's apt configuration
//! and lists are never touched), cached, and unpacked (their `/boot` only) under the vm-test
//! directory.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail, ensure};

/// One kernel of the matrix: the package, its exact version and where Debian serves it, and
/// what this kernel has (what the checks expect of it).
#[derive(Debug, Clone, Copy)]
pub struct KernelSet {
    /// `--kernel-set NAME`.
    pub name: &'static str,
    pub package: &'static str,
    /// The exact Debian version (`apt-get download PACKAGE=VERSION`).
    pub version: &'static str,
    /// The archive (`http://deb.debian.org/ARCHIVE`) and suite that serve it.
    pub archive: &'static str,
    pub suite: &'static str,
    /// What the kernel has, and so what the checks expect.
    pub has: Has,
}

/// Kernel features the checks depend on.
#[derive(Debug, Clone, Copy)]
pub struct Has {
    /// `oom:mark_victim` passes the victim's `task_struct` (6.9+, or a stable backport); else
    /// only its pid, and the victim hook is fentry on `mark_oom_victim`.
    pub mark_victim_task: bool,
    /// `memory.events` has `oom_group_kill` (5.17+ and backports).
    pub oom_group_kill_counter: bool,
    /// `memory.events` `oom` of one memcg OOM whose chosen victim is the task that triggered
    /// it (the memcg-single and parent-domain scenarios). 6.12 counts 2 (seen: the killed
    /// trigger retries its charge and runs the OOM path once more, which finds it already
    /// marked and kills nothing); the older kernels 1. A group kill, whose chosen task is not
    /// the trigger, counts 1 on all four.
    pub oom_events_self_kill: u64,
    /// The cgroup v1 memory controller can be mounted (scenario `memcg-v1`); Debian's 6.12 is
    /// built without CONFIG_MEMCG_V1.
    pub memcg_v1: bool,
}

impl KernelSet {
    /// The victim hook `oomtrace run` picks on this kernel.
    pub fn victim_hook(&self) -> &'static str {
        if self.has.mark_victim_task {
            "tp_btf"
        } else {
            "fentry"
        }
    }
}

/// The kernel matrix, in the order `cargo xtask vm-test` runs it. Versions are pinned: when
/// Debian drops one from its archive, pick the current one with
/// `apt-cache -o Dir::Etc::sourcelist=target/vm/apt/sources.list -o Dir::State=target/vm/apt/state
/// -o Dir::Cache=target/vm/apt/cache policy PACKAGE` and update it here and in README.md.
pub const MATRIX: &[KernelSet] = &[
    KernelSet {
        name: "5.10-pid",
        package: "linux-image-5.10.0-32-cloud-amd64",
        version: "5.10.223-1",
        archive: "debian",
        suite: "bullseye",
        has: Has {
            mark_victim_task: false,
            oom_group_kill_counter: false,
            oom_events_self_kill: 1,
            memcg_v1: true,
        },
    },
    KernelSet {
        name: "5.10",
        package: "linux-image-5.10.0-46-cloud-amd64",
        version: "5.10.262-1",
        archive: "debian-security",
        suite: "bullseye-security",
        has: Has {
            mark_victim_task: true,
            oom_group_kill_counter: false,
            oom_events_self_kill: 1,
            memcg_v1: true,
        },
    },
    KernelSet {
        name: "6.1",
        package: "linux-image-6.1.0-56-cloud-amd64",
        version: "6.1.192-2",
        archive: "debian-security",
        suite: "bookworm-security",
        has: Has {
            mark_victim_task: true,
            oom_group_kill_counter: true,
            oom_events_self_kill: 1,
            memcg_v1: true,
        },
    },
    KernelSet {
        name: "6.12",
        package: "linux-image-6.12.117+deb13-cloud-amd64",
        version: "6.12.117-1",
        archive: "debian",
        suite: "trixie",
        has: Has {
            mark_victim_task: true,
            oom_group_kill_counter: true,
            oom_events_self_kill: 2,
            memcg_v1: false,
        },
    },
];

/// The keyring Debian's archive is signed with (package debian-archive-keyring).
pub const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

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

/// Fetch (or reuse) the set's .deb under `cache`, unpack its /boot, check its config.
pub fn prepare(cache: &Path, set: &KernelSet) -> Result<Kernel> {
    let deb_dir = cache.join("deb");
    let deb = match find_deb(&deb_dir, set.package, set.version)? {
        Some(deb) => deb,
        None => download(cache, &deb_dir, set)?,
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

/// `PACKAGE_VERSION_*.deb` in `dir` (apt writes an epoch's `:` as `%3a`).
fn find_deb(dir: &Path, package: &str, version: &str) -> Result<Option<PathBuf>> {
    if !dir.is_dir() {
        return Ok(None);
    }
    let prefix = format!("{package}_{}_", version.replace(':', "%3a"));
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

/// Whether the set's unpacked kernel config (`DIR/kernel/PACKAGE_VERSION_*/boot/config-*`, left
/// by [`prepare`]) says `# CONFIG_SYMBOL is not set`: `None` when that config is not there.
pub fn config_lacks(cache: &Path, set: &KernelSet, symbol: &str) -> Option<bool> {
    let prefix = format!("{}_{}_", set.package, set.version.replace(':', "%3a"));
    let kernels = cache.join("kernel");
    let root = fs::read_dir(&kernels)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix))
        })?;
    let config = find_prefixed(&root.join("boot"), "config-").ok()??;
    let text = fs::read_to_string(config).ok()?;
    let unset = format!("# CONFIG_{symbol} is not set");
    Some(text.lines().any(|l| l == unset))
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

/// The test's own apt: `DIR/apt/sources.list` (the matrix's suites, signed by Debian's archive
/// keyring), its own lists and cache; everything else is apt's defaults and the machine's
/// apt.conf (proxies), which is only read.
pub struct Apt {
    root: PathBuf,
}

impl Apt {
    pub fn new(cache: &Path) -> Result<Self> {
        let root = cache.join("apt");
        for d in [
            "sources.list.d",
            "state/lists/partial",
            "cache/archives/partial",
        ] {
            let p = root.join(d);
            fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        }
        ensure!(
            Path::new(KEYRING).is_file(),
            "{KEYRING} not found: apt-get install debian-archive-keyring (scripts/setup.sh --test)"
        );
        let mut lines: Vec<String> = MATRIX
            .iter()
            .map(|k| {
                format!(
                    "deb [signed-by={KEYRING}] http://deb.debian.org/{} {} main",
                    k.archive, k.suite
                )
            })
            .collect();
        lines.dedup();
        let list = format!(
            "# Written by cargo xtask vm-test (xtask/src/vm/kernel.rs MATRIX): the suites of the\n\
             # kernel matrix. Used only through apt's Dir:: options, never by the system's apt.\n{}\n",
            lines.join("\n")
        );
        let path = root.join("sources.list");
        if fs::read_to_string(&path).ok().as_deref() != Some(list.as_str()) {
            fs::write(&path, list).with_context(|| format!("writing {}", path.display()))?;
            // New suites: the old lists do not cover them.
            let _ = fs::remove_file(root.join("state/updated"));
        }
        Ok(Self { root })
    }

    /// `-o Dir::...` options that point apt at this index only.
    pub fn options(&self) -> Vec<String> {
        let r = |p: &str| self.root.join(p).display().to_string();
        vec![
            format!("-oDir::Etc::sourcelist={}", r("sources.list")),
            format!("-oDir::Etc::sourceparts={}", r("sources.list.d")),
            format!("-oDir::State={}", r("state")),
            format!("-oDir::Cache={}", r("cache")),
            "-oAcquire::Languages=none".into(),
            "-oAPT::Architecture=amd64".into(),
            // The downloads go to a root-owned directory: fetch as root, not as `_apt`.
            "-oAPT::Sandbox::User=root".into(),
        ]
    }

    fn apt_get(&self, args: &[&str], cwd: &Path) -> Result<()> {
        let st = Command::new("apt-get")
            .args(self.options())
            .args(args)
            .current_dir(cwd)
            .status()
            .context("running apt-get (is this a Debian system?)")?;
        ensure!(st.success(), "apt-get {} failed ({st})", args.join(" "));
        Ok(())
    }

    /// `apt-get update` of this index, once (a marker file remembers it).
    pub fn update(&self) -> Result<()> {
        let marker = self.root.join("state/updated");
        if marker.exists() {
            return Ok(());
        }
        eprintln!(
            "vm-test: apt-get update of {}",
            self.root.join("sources.list").display()
        );
        self.apt_get(&["update", "-q"], &self.root)?;
        fs::write(&marker, "").with_context(|| format!("writing {}", marker.display()))?;
        Ok(())
    }
}

fn download(cache: &Path, dir: &Path, set: &KernelSet) -> Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let apt = Apt::new(cache)?;
    let want = format!("{}={}", set.package, set.version);
    apt.update()?;
    eprintln!("vm-test: apt-get download {want}");
    if apt.apt_get(&["download", "-q", &want], dir).is_err() {
        // Lists older than the pin.
        let _ = fs::remove_file(apt.root.join("state/updated"));
        apt.update()?;
        apt.apt_get(&["download", "-q", &want], dir).with_context(|| {
            format!(
                "{want} is not in {} {} any more: pin the current version in xtask/src/vm/kernel.rs MATRIX",
                set.archive, set.suite
            )
        })?;
    }
    find_deb(dir, set.package, set.version)?.with_context(|| {
        format!(
            "apt-get download left no {}_{}_*.deb in {}",
            set.package,
            set.version,
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
