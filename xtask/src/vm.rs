//! `cargo xtask vm-test`: the kernel matrix. Boots a Debian kernel under QEMU (TCG, no KVM
//! needed) with a busybox initramfs, runs the scenarios of tests/vm/ inside (real OOM kills,
//! oomtrace tracing them), and asserts on the host on what the VM carried out.
//!
//! Layout: kernel.rs fetches the kernel, initramfs.rs packs the guest, qemu.rs boots it with a
//! wall-time bound, report.rs reads the framed results of ttyS1, checks.rs asserts.

mod checks;
mod initramfs;
mod kernel;
mod qemu;
mod report;

use std::{
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use clap::ValueEnum;

use checks::{Status, TestResult};

const ABOUT: &str =
    "Boot Debian's kernels in QEMU (TCG) and prove oomtrace's hooks on real OOM kills";

const LONG_ABOUT: &str = "\
Boot Debian's kernels in QEMU (TCG) and prove oomtrace's hooks on real OOM kills.

The kernel matrix (xtask/src/vm/kernel.rs MATRIX, exact versions pinned), all by default:
  5.10-pid  linux-image-5.10.0-32-cloud-amd64 5.10.223-1 (bullseye): mark_victim passes
            only a pid; the victim hook is fentry on mark_oom_victim
  5.10      linux-image-5.10.0-46-cloud-amd64 5.10.262-1 (bullseye-security): mark_victim
            passes the task (backport); no oom_group_kill in memory.events
  6.1       linux-image-6.1.0-56-cloud-amd64 6.1.192-2 (bookworm-security)
  6.12      linux-image-6.12.117+deb13-cloud-amd64 6.12.117-1 (trixie): memory.events
            counts 2 `oom` when the killed task triggered the OOM; rss_anon/rss_file/
            rss_shmem in the OOM task table; no cgroup v1 memory controller

Steps, per kernel:
  1. apt-get download PACKAGE=VERSION into DIR/deb (once), through an apt index of the test's
     own (DIR/apt: sources.list of the matrix's suites signed by
     /usr/share/keyrings/debian-archive-keyring.gpg, its lists and cache, chosen with apt's
     Dir:: options; the machine's apt configuration is never changed), unpack its /boot into
     DIR/kernel, and check its config: BPF, BTF, kprobes, fentry trampolines, cgroup v2
     memory, tracefs and the 8250 serial console must be built in (no modules are loaded).
  2. Pack an initramfs (cpio newc, gzip): busybox-static and its applet links, the release
     oomtrace binary with the libraries ldd names and the loader, and tests/vm/ (init.sh is
     /init; it mounts proc, sysfs, devtmpfs, tracefs, bpffs and cgroup2 with +memory).
  3. Boot `qemu-system-x86_64 -accel tcg`: one VM (--memory) runs env, check, kprobe, fentry,
     victim-kprobe, victim-fentry, victim-raw-tp, victim-tracepoint, tracepoint-other,
     group-kill, parent-domain, limit-bpf and contexts-lru in sequence; a second, smaller one
     (--global-memory) runs global-oom; a third (--memory, cgroup v1 memory only, on the
     kernels that have it) runs memcg-v1. The kernel console goes to DIR/run/SET/BOOT/console.log; the scenarios
     write their results to a second serial port, DIR/run/SET/BOOT/results.log. A boot that
     outlives --timeout is killed and fails. The JSON lines oomtrace printed in the guest are
     kept as DIR/results/UNAME-R/SCENARIO.jsonl.
  4. Assert on the host, with what that kernel has: per scenario a `kernel` test (exit
     statuses, memory.events, /proc/vmstat oom_kill, dmesg) and an `oomtrace` test (its JSON
     lines, cross-checked with the kernel's numbers). Prints PASS/FAIL/SKIP per test and
     `N passed, N failed`; exits 1 when a test fails or a VM does not come back.

Needs: qemu-system-x86, busybox-static, gzip, dpkg-deb, apt-get, debian-archive-keyring
(scripts/setup.sh --test).
Relative paths are taken from the workspace root. Each boot takes a few seconds of TCG.";

#[derive(Debug, clap::Args)]
#[command(about = ABOUT, long_about = LONG_ABOUT)]
pub struct Args {
    /// The oomtrace binary to test (a release build).
    #[arg(long, value_name = "PATH", default_value = "target/release/oomtrace")]
    oomtrace: PathBuf,

    /// Build it first: `cargo build --release -p oomtrace`.
    #[arg(long, conflicts_with = "no_oomtrace")]
    build: bool,

    /// Leave oomtrace out: only the harness and the kernel's side are tested; the oomtrace
    /// tests are skipped.
    #[arg(long)]
    no_oomtrace: bool,

    /// Kernels of the matrix to run, comma-separated: 5.10-pid, 5.10, 6.1, 6.12 (default: all).
    #[arg(long, value_delimiter = ',', value_name = "NAME", value_parser = kernel_set)]
    kernel_set: Vec<&'static kernel::KernelSet>,

    /// Boot this kernel image instead of the set's package (no download, no config check); the
    /// checks expect what --kernel-set (exactly one) has.
    #[arg(long, value_name = "VMLINUZ")]
    kernel: Option<PathBuf>,

    /// Scenarios to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "NAME")]
    scenarios: Vec<Scenario>,

    /// Cache and work directory (kernel package, initramfs, logs of each boot).
    #[arg(long, value_name = "DIR", default_value = "target/vm")]
    dir: PathBuf,

    /// RAM of the main VM, MiB.
    #[arg(long, value_name = "MIB", default_value_t = 320)]
    memory: u32,

    /// RAM of the global-OOM VM, MiB: small, so that `tail /dev/zero` exhausts it quickly.
    #[arg(long, value_name = "MIB", default_value_t = 192)]
    global_memory: u32,

    /// Wall-time limit of each boot, seconds: QEMU is killed and the boot fails past it.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    timeout: u64,

    /// How long the guest waits for oomtrace's `ready` line, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 90)]
    ready_timeout: u64,

    /// Judge the logs of the previous run again (DIR/run/BOOT/results.log) without building or
    /// booting anything: for working on the assertions.
    #[arg(long, conflicts_with = "build")]
    replay: bool,

    /// The busybox to put in the VM (must be statically linked: busybox-static).
    #[arg(long, value_name = "PATH", default_value = "/bin/busybox")]
    busybox: PathBuf,
}

/// The scenarios, in the order they run; each is tests/vm/scenarios/NAME.sh.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Scenario {
    /// Mounts, cgroup v2 controllers, kallsyms, mark_victim format, kprobe PMU, BTF.
    Env,
    /// `oomtrace check` names tp_btf and kprobe or fentry.
    Check,
    /// Context from a kprobe on oom_kill_process; one kill in a 64 MiB cgroup.
    Kprobe,
    /// Context from fentry on oom_kill_process; one kill in a 64 MiB cgroup.
    Fentry,
    /// Victim from a kprobe on mark_oom_victim (the fallback of fentry); one kill.
    VictimKprobe,
    /// Victim from fentry on mark_oom_victim, also where oomtrace would pick tp_btf; one kill.
    VictimFentry,
    /// Victim from raw_tracepoint/mark_victim; one kill (refused, with the reason, where
    /// mark_victim passes only a pid).
    VictimRawTp,
    /// Victim from the classic tracepoint oom:mark_victim; one kill whose victim ran the OOM.
    VictimTracepoint,
    /// The classic tracepoint when the victim is not the task that ran the OOM killer: only the
    /// event's own fields, nothing of the trigger's.
    TracepointOther,
    /// memory.oom.group=1 with four processes: four victims, one context.
    GroupKill,
    /// Limit on a parent cgroup, victim in its child.
    ParentDomain,
    /// No context hook: the limit comes from the victim hook's memcg walk (`source` "bpf").
    LimitBpf,
    /// A 2-entry CONTEXTS map (test setting), no return hook, four OOMs by four triggers: every
    /// victim still joins its OOM.
    ContextsLru,
    /// System-wide OOM in a small VM (a boot of its own).
    GlobalOom,
    /// A memcg OOM under cgroup v1 (a boot of its own, on the kernels that have the v1 memory
    /// controller).
    MemcgV1,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Env => "env",
            Scenario::Check => "check",
            Scenario::Kprobe => "kprobe",
            Scenario::Fentry => "fentry",
            Scenario::VictimKprobe => "victim-kprobe",
            Scenario::VictimFentry => "victim-fentry",
            Scenario::VictimRawTp => "victim-raw-tp",
            Scenario::VictimTracepoint => "victim-tracepoint",
            Scenario::TracepointOther => "tracepoint-other",
            Scenario::GroupKill => "group-kill",
            Scenario::ParentDomain => "parent-domain",
            Scenario::LimitBpf => "limit-bpf",
            Scenario::ContextsLru => "contexts-lru",
            Scenario::GlobalOom => "global-oom",
            Scenario::MemcgV1 => "memcg-v1",
        }
    }

    /// The boot that runs it.
    fn boot(self) -> BootKind {
        match self {
            Scenario::GlobalOom => BootKind::Global,
            Scenario::MemcgV1 => BootKind::CgroupV1,
            _ => BootKind::Main,
        }
    }
}

/// The boots of one kernel: the scenarios of each share one VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BootKind {
    /// cgroup v2 with +memory, --memory MiB.
    Main,
    /// --global-memory MiB, for the system-wide OOM.
    Global,
    /// Only the cgroup v1 memory hierarchy (`vmtest.cgroup=v1`), --memory MiB.
    CgroupV1,
}

fn kernel_set(name: &str) -> Result<&'static kernel::KernelSet, String> {
    kernel::MATRIX
        .iter()
        .find(|k| k.name == name)
        .ok_or_else(|| {
            let names: Vec<&str> = kernel::MATRIX.iter().map(|k| k.name).collect();
            format!("unknown kernel set {name:?}: one of {}", names.join(", "))
        })
}

fn workspace_root() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask.parent().unwrap_or(xtask).to_owned()
}

fn resolve(root: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_owned()
    } else {
        root.join(p)
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// What booting needs on the host, checked before anything is fetched or built.
fn preflight(args: &Args, root: &Path) {
    let busybox = resolve(root, &args.busybox);
    let mut needs = vec![
        crate::preflight::Need::Program("qemu-system-x86_64"),
        crate::preflight::Need::Program("gzip"),
        crate::preflight::Need::StaticExecutable(&busybox),
    ];
    if args.kernel.is_none() {
        needs.extend([
            crate::preflight::Need::Program("apt-get"),
            crate::preflight::Need::Program("dpkg-deb"),
            crate::preflight::Need::Program("tar"),
            crate::preflight::Need::File(Path::new(kernel::KEYRING)),
        ]);
    }
    crate::preflight::require("vm-test", &needs, "scripts/setup.sh --test");
}

pub fn run(args: &Args) -> Result<()> {
    let t0 = Instant::now();
    let root = workspace_root();
    let dir = resolve(&root, &args.dir);
    let sets: Vec<&'static kernel::KernelSet> = if args.kernel_set.is_empty() {
        kernel::MATRIX.iter().collect()
    } else {
        let mut v = Vec::new();
        for k in &args.kernel_set {
            if !v.iter().any(|x: &&kernel::KernelSet| x.name == k.name) {
                v.push(*k);
            }
        }
        v
    };
    ensure!(
        args.kernel.is_none() || sets.len() == 1,
        "--kernel VMLINUZ needs --kernel-set NAME (one) to say what that kernel has"
    );

    if !args.replay {
        preflight(args, &root);
    }
    let run_root = dir.join("run");
    let initrd = if args.replay {
        PathBuf::new()
    } else {
        let oomtrace = prepare_oomtrace(args, &root)?;
        fs::create_dir_all(&run_root)
            .with_context(|| format!("creating {}", run_root.display()))?;
        pack(args, &root, &run_root, oomtrace.as_deref())?
    };

    let mut results = Vec::new();
    for set in sets {
        results.extend(run_set(args, &root, &dir, &initrd, set)?);
    }

    let (passed, failed, skipped) = print_results(&results);
    println!(
        "vm-test: total {} (logs in {}, oomtrace's lines in {})",
        secs(t0.elapsed()),
        run_root.display(),
        dir.join("results").display()
    );
    if skipped > 0 {
        println!("{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    let _ = std::io::stdout().flush();
    if failed > 0 {
        // The counts stay the last line of the output.
        std::process::exit(1);
    }
    Ok(())
}

/// Boots one kernel of the matrix and judges its scenarios.
fn run_set(
    args: &Args,
    root: &Path,
    dir: &Path,
    initrd: &Path,
    set: &'static kernel::KernelSet,
) -> Result<Vec<TestResult>> {
    let mut results = Vec::new();
    let run_root = dir.join("run");
    let mut scenarios = if args.scenarios.is_empty() {
        Scenario::value_variants().to_vec()
    } else {
        args.scenarios.clone()
    };
    scenarios.sort();
    scenarios.dedup();
    let t = Instant::now();
    announce(set);
    let vmlinuz = if args.replay {
        PathBuf::new()
    } else {
        match kernel_image(args, root, dir, set, t) {
            Ok(k) => k,
            Err(e) => {
                results.push(TestResult {
                    name: format!("{}: kernel package", set.name),
                    status: Status::Fail(vec![format!("{e:#}")]),
                });
                return Ok(results);
            }
        }
    };
    let ctx = checks::Ctx {
        with_oomtrace: !args.no_oomtrace,
        set,
    };
    let run_dir = run_root.join(set.name);
    for (boot, memory, kind) in [
        ("main", args.memory, BootKind::Main),
        ("global", args.global_memory, BootKind::Global),
        ("v1", args.memory, BootKind::CgroupV1),
    ] {
        let here: Vec<Scenario> = scenarios
            .iter()
            .copied()
            .filter(|s| s.boot() == kind)
            .collect();
        if here.is_empty() {
            continue;
        }
        let names: Vec<&str> = here.iter().map(|s| s.name()).collect();
        if kind == BootKind::CgroupV1 && !set.has.memcg_v1 {
            let status = no_memcg_v1(dir, set);
            for n in &names {
                results.push(TestResult {
                    name: format!(
                        "{}: {n}: expected absence, no cgroup v1 memory controller (config)",
                        set.name
                    ),
                    status: status.clone(),
                });
            }
            continue;
        }
        let extra = if kind == BootKind::CgroupV1 {
            " vmtest.cgroup=v1"
        } else {
            ""
        };
        let spec = qemu::Boot {
            name: boot,
            vmlinuz: &vmlinuz,
            initrd,
            memory_mib: memory,
            cmdline: format!(
                "vmtest.scenarios={} vmtest.ready_timeout={} vmtest.victim_hook={}{extra}",
                names.join(","),
                args.ready_timeout,
                set.victim_hook()
            ),
            dir: run_dir.join(boot),
            timeout: Duration::from_secs(args.timeout),
        };
        println!(
            "vm-test: boot {}/{boot}: {memory} MiB, {}",
            set.name,
            names.join(", ")
        );
        let _ = std::io::stdout().flush();
        let out = if args.replay {
            qemu::replay(&spec)?
        } else {
            qemu::run(&spec)?
        };
        let rep = report::parse(&out.results);
        keep_results(dir, &rep);
        results.extend(judge_boot(&spec, &out, &rep, &names, &ctx));
    }
    println!("vm-test: kernel set {}: {}", set.name, secs(t.elapsed()));
    Ok(results)
}

fn announce(set: &kernel::KernelSet) {
    println!(
        "vm-test: kernel set {}: {}={} ({}, {})",
        set.name,
        set.package,
        set.version,
        set.suite,
        if set.has.mark_victim_task {
            "mark_victim passes the task"
        } else {
            "mark_victim passes only a pid"
        }
    );
}

/// A kernel the matrix says has no cgroup v1 memory controller: an expected absence (Debian's
/// 6.12 is built without CONFIG_MEMCG_V1), proven from its own config rather than skipped.
fn no_memcg_v1(dir: &Path, set: &kernel::KernelSet) -> Status {
    match kernel::config_lacks(dir, set, "MEMCG_V1") {
        Some(true) => Status::Pass,
        Some(false) => Status::Fail(vec![
            "its config does not say `# CONFIG_MEMCG_V1 is not set`: set memcg_v1 in \
             MATRIX (xtask/src/vm/kernel.rs) and run memcg-v1 on it"
                .into(),
        ]),
        None => Status::Fail(vec![format!(
            "no unpacked config of {}={} under {}",
            set.package,
            set.version,
            dir.join("kernel").display()
        )]),
    }
}

/// The set's kernel image (fetched and checked), or the one given with --kernel.
fn kernel_image(
    args: &Args,
    root: &Path,
    dir: &Path,
    set: &'static kernel::KernelSet,
    t: Instant,
) -> Result<PathBuf> {
    let k = match &args.kernel {
        Some(k) => kernel::from_image(&resolve(root, k)),
        None => kernel::prepare(dir, set),
    }?;
    println!(
        "vm-test: kernel {} ({})",
        k.vmlinuz.display(),
        secs(t.elapsed())
    );
    if !k.config_summary.is_empty() {
        println!("vm-test: config: {}", k.config_summary.join(" "));
    }
    Ok(k.vmlinuz)
}

/// Keeps the JSON lines oomtrace printed in each scenario as DIR/results/UNAME-R/SCENARIO.jsonl,
/// so the same kill can be compared across kernels without booting again.
fn keep_results(dir: &Path, rep: &report::BootReport) {
    let Some(uname) = rep.kernel.as_deref() else {
        return;
    };
    // The guest's own word names a directory: no separators, no `..`.
    if uname.is_empty() || uname.contains('/') || uname.starts_with('.') {
        eprintln!("vm-test: odd guest uname {uname:?}: results not kept");
        return;
    }
    let out = dir.join("results").join(uname);
    for (name, s) in &rep.scenarios {
        let lines = s.section("oomtrace.stdout");
        if lines.trim().is_empty() {
            continue;
        }
        let r = fs::create_dir_all(&out)
            .and_then(|()| fs::write(out.join(format!("{name}.jsonl")), lines));
        if let Err(e) = r {
            eprintln!("vm-test: keeping {name}'s lines in {}: {e}", out.display());
        }
    }
}

fn prepare_oomtrace(args: &Args, root: &Path) -> Result<Option<PathBuf>> {
    if args.no_oomtrace {
        return Ok(None);
    }
    let bin = resolve(root, &args.oomtrace);
    if args.build {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        println!("vm-test: cargo build --release -p oomtrace");
        let st = Command::new(cargo)
            .args(["build", "--release", "-p", "oomtrace"])
            .current_dir(root)
            .status()
            .context("running cargo build")?;
        ensure!(
            st.success(),
            "cargo build --release -p oomtrace failed ({st})"
        );
    }
    ensure!(
        bin.is_file(),
        "{} not found: build it (cargo build --release -p oomtrace, or pass --build), or pass --no-oomtrace",
        bin.display()
    );
    Ok(Some(bin))
}

/// The boot test (the VM came back, every scenario reported) and the scenarios' tests.
fn judge_boot(
    spec: &qemu::Boot<'_>,
    out: &qemu::Outcome,
    rep: &report::BootReport,
    names: &[&str],
    ctx: &checks::Ctx,
) -> Vec<TestResult> {
    let mut fails = Vec::new();
    match out.status {
        None => fails.push(format!("killed after {} (--timeout)", secs(spec.timeout))),
        Some(st) if !st.success() => fails.push(format!("QEMU exited with {st}")),
        Some(_) => {}
    }
    if !rep.done {
        fails.push(format!(
            "/init did not finish (no `@@vmtest done` in {})",
            out.results_path.display()
        ));
    }
    let timing = format!(
        "{} wall, /init at {} s and power-off at {} s of guest uptime",
        secs(out.elapsed),
        rep.init_uptime
            .map_or_else(|| "?".into(), |u| format!("{u:.1}")),
        rep.scenarios
            .values()
            .filter_map(|s| s.end_uptime)
            .reduce(f64::max)
            .map_or_else(|| "?".into(), |u| format!("{u:.1}")),
    );
    println!("vm-test: boot {}/{}: {timing}", ctx.set.name, spec.name);
    for n in names {
        if let Some(s) = rep.scenarios.get(*n)
            && let (Some(a), Some(b)) = (s.start_uptime, s.end_uptime)
        {
            println!("vm-test:   {n}: {:.1} s", b - a);
        }
    }
    if !fails.is_empty() {
        fails.push(format!("console ({}), last lines:", out.console.display()));
        fails.extend(
            qemu::tail(&out.console, 15)
                .lines()
                .map(|l| format!("  {l}")),
        );
    }
    let mut results = vec![TestResult {
        name: format!(
            "{}: boot {} ({} MiB)",
            ctx.set.name, spec.name, spec.memory_mib
        ),
        status: if fails.is_empty() {
            Status::Pass
        } else {
            Status::Fail(fails)
        },
    }];
    for n in names {
        results.extend(
            checks::scenario(n, rep.scenarios.get(*n), ctx)
                .into_iter()
                .map(|mut r| {
                    r.name = format!("{}: {}", ctx.set.name, r.name);
                    r
                }),
        );
    }
    results
}

/// Builds the initramfs in `run_dir`.
fn pack(args: &Args, root: &Path, run_dir: &Path, oomtrace: Option<&Path>) -> Result<PathBuf> {
    let t = Instant::now();
    let initrd = run_dir.join("initramfs.cpio.gz");
    let raw = initramfs::build(
        &initramfs::Spec {
            busybox: &args.busybox,
            scripts: &root.join("tests/vm"),
            oomtrace,
        },
        &initrd,
    )?;
    let packed = fs::metadata(&initrd)
        .with_context(|| format!("reading {}", initrd.display()))?
        .len();
    println!(
        "vm-test: initramfs {} ({} KiB, {} KiB unpacked, oomtrace {}) ({})",
        initrd.display(),
        packed / 1024,
        raw / 1024,
        oomtrace.map_or_else(|| "left out".to_owned(), |p| p.display().to_string()),
        secs(t.elapsed())
    );

    Ok(initrd)
}

/// PASS/FAIL/SKIP lines; returns the counts.
fn print_results(results: &[TestResult]) -> (usize, usize, usize) {
    let (mut passed, mut failed, mut skipped) = (0, 0, 0);
    for r in results {
        match &r.status {
            Status::Pass => {
                passed += 1;
                println!("PASS {}", r.name);
            }
            Status::Skip(why) => {
                skipped += 1;
                println!("SKIP {} ({why})", r.name);
            }
            Status::Fail(why) => {
                failed += 1;
                println!("FAIL {}", r.name);
                for w in why {
                    println!("    {w}");
                }
            }
        }
    }
    (passed, failed, skipped)
}
