//! `cargo xtask bench` (root): footprint, start-up, latency and storm throughput of `oomtrace
//! run`, side by side with bpftrace 0.17 running a `tracepoint:oom:mark_victim` script, in the
//! same run. Real OOM kills only, each in its own 64 MiB memory cgroup (never a global OOM).
//! Writes `target/bench/bench.json` and `target/bench/bench.md`.

use std::{
    fmt::Write as _,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{Receiver, channel},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use oomtrace_tests::cgroup::MemCgroup;
use serde_json::{Value, json};

const LIMIT: u64 = 64 << 20;

/// min / median / max (and p99 for latencies) of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub n: usize,
}

pub fn stats(mut v: Vec<f64>) -> Option<Stats> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index into a short sample"
        )]
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v[i]
    };
    Some(Stats {
        min: v[0],
        p50: at(0.5),
        p99: at(0.99),
        max: v[v.len() - 1],
        n: v.len(),
    })
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// utime + stime of a process, seconds (all threads: /proc/<pid>/stat fields 14 and 15).
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) is index 11, stime (15) index 12.
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    #[expect(clippy::cast_precision_loss, reason = "seconds")]
    Some(ticks as f64 / hz as f64)
}

/// A `Key:  value kB` line of /proc/<pid>/status or smaps_rollup, in KiB.
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(key)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

fn proc_read(pid: u32, file: &str) -> String {
    fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

/// `voluntary_ctxt_switches:` of one /proc/<pid>/task/<tid>/status.
pub fn voluntary_field(status: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        l.strip_prefix("voluntary_ctxt_switches:")?
            .trim()
            .parse()
            .ok()
    })
}

/// `memlock:` of one /proc/<pid>/fdinfo/<fd> when the fd is a BPF map (`map_type:` present);
/// None for any other fd (programs and links have a `memlock:` too, and are not map memory).
pub fn map_memlock(fdinfo: &str) -> Option<u64> {
    if !fdinfo.lines().any(|l| l.starts_with("map_type:")) {
        return None;
    }
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("memlock:")?.trim().parse().ok())
}

/// Voluntary context switches of every thread of a process.
fn voluntary_switches(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| {
        d.flatten()
            .filter_map(|t| fs::read_to_string(t.path().join("status")).ok())
            .filter_map(|s| voluntary_field(&s))
            .sum()
    })
}

/// Memory locked by the BPF maps a process holds (`memlock:` of each map fd's fdinfo).
fn bpf_map_bytes(pid: u32) -> u64 {
    fs::read_dir(format!("/proc/{pid}/fdinfo")).map_or(0, |d| {
        d.flatten()
            .filter_map(|e| fs::read_to_string(e.path()).ok())
            .filter_map(|t| map_memlock(&t))
            .sum()
    })
}

/// A traced process: the tool under test, with its stdout lines stamped as they are read.
struct Tracer {
    child: Child,
    lines: Receiver<(u64, u64, String)>,
    started: Duration,
}

impl Tracer {
    /// Starts `cmd` and waits for the stderr/stdout line starting with `ready` (oomtrace) or
    /// `Attaching` (bpftrace, on stdout).
    fn start(cmd: &mut Command, ready: &'static str) -> anyhow::Result<Self> {
        let t0 = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawning the tracer")?;
        let (tx, lines) = channel();
        let (rtx, rrx) = channel();
        let out = child.stdout.take().expect("piped");
        let rtx2 = rtx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if l.starts_with(ready) {
                    let _ = rtx2.send(());
                    continue;
                }
                let _ = tx.send((
                    clock_ns(libc::CLOCK_BOOTTIME),
                    clock_ns(libc::CLOCK_MONOTONIC),
                    l,
                ));
            }
        });
        let err = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if l.starts_with(ready) {
                    let _ = rtx.send(());
                }
            }
        });
        rrx.recv_timeout(Duration::from_secs(30))
            .context("tracer did not become ready")?;
        Ok(Self {
            child,
            lines,
            started: t0.elapsed(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGINT, then SIGKILL if it has not exited after 2 s (bpftrace 0.17 with piped output
    /// does not always act on SIGINT).
    fn stop(mut self) {
        // SAFETY: plain kill(2).
        unsafe { libc::kill(i32::try_from(self.child.id()).unwrap_or(0), libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Tools {
    oomtrace: PathBuf,
    hog: PathBuf,
}

fn oomtrace_cmd(t: &Tools) -> Command {
    let mut c = Command::new(&t.oomtrace);
    c.args(["run", "--no-pin"]).env("RUST_LOG", "warn");
    c
}

const BPFTRACE_SCRIPT: &str =
    r#"tracepoint:oom:mark_victim { printf("%d %llu\n", args->pid, nsecs); }"#;

fn bpftrace_cmd() -> Command {
    let mut c = Command::new("bpftrace");
    c.args(["-e", BPFTRACE_SCRIPT]);
    c
}

/// A kernel clock a tracer stamps events with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// CLOCK_BOOTTIME (`bpf_ktime_get_boot_ns`, BPF helper 125).
    Boot,
    /// CLOCK_MONOTONIC (`bpf_ktime_get_ns`, BPF helper 5).
    Monotonic,
}

impl Clock {
    pub fn name(self) -> &'static str {
        match self {
            Clock::Boot => "CLOCK_BOOTTIME",
            Clock::Monotonic => "CLOCK_MONOTONIC",
        }
    }
}

/// The clock bpftrace's `nsecs` reads, from the LLVM IR that `bpftrace -d` prints: the helper
/// called for `%get_ns` (its number is cast to a function pointer).
pub fn nsecs_clock_from_ir(ir: &str) -> Option<Clock> {
    let line = ir.lines().find(|l| l.contains("%get_ns = "))?;
    let n = line.split("inttoptr (i64 ").nth(1)?.split(' ').next()?;
    match n {
        "125" => Some(Clock::Boot),
        "5" => Some(Clock::Monotonic),
        _ => None,
    }
}

/// Asks the installed bpftrace which clock `nsecs` is (a dry run; nothing is attached).
/// bpftrace 0.17 on this project's machine: helper 125, CLOCK_BOOTTIME, not CLOCK_MONOTONIC.
fn bpftrace_clock() -> anyhow::Result<Clock> {
    let out = Command::new("bpftrace")
        .args(["-d", "-e", BPFTRACE_SCRIPT])
        .stdin(Stdio::null())
        .output()
        .context("bpftrace -d")?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    nsecs_clock_from_ir(&text)
        .context("bpftrace -d: no `%get_ns` helper call with a known clock in its output")
}

/// OOM-kills `n` hogs, `at_once` at a time, spread over `cgroups` 64 MiB cgroups.
fn kills(t: &Tools, n: usize, cgroups: usize, at_once: usize) -> anyhow::Result<Vec<u32>> {
    let cgs: Vec<MemCgroup> = (0..cgroups)
        .map(|i| {
            MemCgroup::create(
                &format!("oomtrace-bench-{}-{i}", std::process::id()),
                Some(LIMIT),
            )
        })
        .collect();
    let mut pids = Vec::with_capacity(n);
    let mut i = 0;
    while i < n {
        let mut wave = Vec::new();
        for k in 0..at_once.min(n - i) {
            let cg = &cgs[(i + k) % cgroups];
            let c = Command::new(&t.hog)
                .arg("--procs")
                .arg(cg.procs_file())
                .stdout(Stdio::null())
                .spawn()
                .context("spawning the hog")?;
            wave.push(c);
        }
        for mut c in wave {
            pids.push(c.id());
            let st = c.wait()?;
            if std::os::unix::process::ExitStatusExt::signal(&st) != Some(libc::SIGKILL) {
                bail!("a hog was not OOM-killed: {st:?}");
            }
        }
        i += at_once;
    }
    Ok(pids)
}

fn startup(make: &dyn Fn() -> Command, ready: &'static str, runs: usize) -> anyhow::Result<Stats> {
    let mut v = Vec::new();
    for _ in 0..runs {
        let t = Tracer::start(&mut make(), ready)?;
        v.push(t.started.as_secs_f64() * 1000.0);
        t.stop();
    }
    Ok(stats(v).expect("runs > 0"))
}

/// `oom_kill` of /proc/vmstat: OOM kills on the node since boot.
pub fn vmstat_oom_kill(vmstat: &str) -> Option<u64> {
    vmstat
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

fn node_oom_kills() -> u64 {
    vmstat_oom_kill(&fs::read_to_string("/proc/vmstat").unwrap_or_default()).unwrap_or(0)
}

/// CPU seconds and voluntary context switches of `pid` over `secs`, and the OOM kills anywhere
/// on the node meanwhile (others' tests on a shared machine): a kill is work, not idleness.
fn idle(pid: u32, secs: u64) -> Value {
    let c0 = cpu_seconds(&proc_read(pid, "stat")).unwrap_or(0.0);
    let s0 = voluntary_switches(pid);
    let k0 = node_oom_kills();
    std::thread::sleep(Duration::from_secs(secs));
    json!({
        "cpu_seconds": cpu_seconds(&proc_read(pid, "stat")).unwrap_or(0.0) - c0,
        "voluntary_context_switches": voluntary_switches(pid) - s0,
        "node_oom_kills_meanwhile": node_oom_kills() - k0,
    })
}

fn memory(pid: u32) -> Value {
    json!({
        "rss_kib": kb_field(&proc_read(pid, "status"), "VmRSS:"),
        "pss_kib": kb_field(&proc_read(pid, "smaps_rollup"), "Pss:"),
        "bpf_map_bytes": bpf_map_bytes(pid),
    })
}

/// Latency of each kill: stamp when the line was read minus the kernel's stamp in it.
fn latencies(
    tr: &Tracer,
    pids: &[u32],
    kernel_ns: &dyn Fn(&str) -> Option<(u32, u64)>,
    clock: Clock,
) -> Vec<f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < pids.len() && Instant::now() < deadline {
        let Ok((boot, mono, line)) = tr.lines.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if let Some((pid, k)) = kernel_ns(&line)
            && pids.contains(&pid)
        {
            let read = match clock {
                Clock::Boot => boot,
                Clock::Monotonic => mono,
            };
            #[expect(clippy::cast_precision_loss, reason = "milliseconds")]
            got.push(read.saturating_sub(k) as f64 / 1e6);
        }
    }
    got
}

fn oomtrace_stamp(line: &str) -> Option<(u32, u64)> {
    let v: Value = serde_json::from_str(line).ok()?;
    Some((
        u32::try_from(v["victim"]["pid"].as_u64()?).ok()?,
        v["boot_ns"].as_u64()?,
    ))
}

fn bpftrace_stamp(line: &str) -> Option<(u32, u64)> {
    let (pid, ns) = line.split_once(' ')?;
    Some((pid.trim().parse().ok()?, ns.trim().parse().ok()?))
}

fn fmt_stats(s: Option<Stats>, unit: &str) -> String {
    s.map_or_else(
        || "n/a".into(),
        |s| {
            format!(
                "{:.2} / {:.2} / {:.2} {unit} (p99 {:.2}, n={})",
                s.min, s.p50, s.max, s.p99, s.n
            )
        },
    )
}

fn stats_json(s: Option<Stats>) -> Value {
    s.map_or(
        Value::Null,
        |s| json!({"min": s.min, "p50": s.p50, "p99": s.p99, "max": s.max, "n": s.n}),
    )
}

/// 200 real kills over 20 cgroups, 10 hogs at a time: wall time until every event was read,
/// and the daemon's CPU time over it.
fn storm(t: &Tools, tr: &Tracer) -> anyhow::Result<Value> {
    let pid = tr.pid();
    let c0 = cpu_seconds(&proc_read(pid, "stat")).unwrap_or(0.0);
    let s0 = Instant::now();
    let spids = kills(t, 200, 20, 10)?;
    let delivered = latencies(tr, &spids, &oomtrace_stamp, Clock::Boot).len();
    Ok(
        json!({"kills": 200, "delivered": delivered, "seconds": s0.elapsed().as_secs_f64(),
               "daemon_cpu_seconds": cpu_seconds(&proc_read(pid, "stat")).unwrap_or(0.0) - c0}),
    )
}

/// Root, for BPF and memory cgroups, and bpftrace to compare with.
fn preflight() {
    crate::preflight::require(
        "bench",
        &[
            crate::preflight::Need::Root,
            crate::preflight::Need::Program("bpftrace"),
        ],
        "scripts/setup.sh --bench (as root)",
    );
}

pub fn run(out: &Path, kills_n: usize) -> anyhow::Result<()> {
    if rerun_in_release()? {
        return Ok(());
    }
    preflight();
    let st = Command::new("cargo")
        .args([
            "build",
            "--release",
            "-p",
            "oomtrace",
            "-p",
            "oomtrace-tests",
        ])
        .status()?;
    if !st.success() {
        bail!("release build failed");
    }
    let t = Tools {
        oomtrace: "target/release/oomtrace".into(),
        hog: "target/release/oomtrace-hog".into(),
    };
    let loadavg = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let have_bpftrace = Command::new("bpftrace")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    eprintln!(
        "bench: kernel {kernel}, load average at start: {}",
        loadavg.trim()
    );
    let begun = Instant::now();

    let mut r = json!({"kernel": kernel, "cpus": std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
                       "loadavg_at_start": loadavg.trim(), "kills": kills_n});
    let mut tools = vec![("oomtrace", true)];
    // Compared with the same clock when the line is read.
    let mut bt_clock = Clock::Boot;
    if have_bpftrace {
        bt_clock = bpftrace_clock()?;
        eprintln!("bench: bpftrace's nsecs is {}", bt_clock.name());
        r["bpftrace_nsecs_clock"] = json!(bt_clock.name());
        tools.push(("bpftrace", false));
    } else {
        eprintln!(
            "bench: bpftrace not installed (scripts/setup.sh --bench): side-by-side figures skipped"
        );
    }
    for (name, ours) in tools {
        eprintln!("bench: {name}: start-up ×10");
        let make: Box<dyn Fn() -> Command> = if ours {
            Box::new(|| oomtrace_cmd(&t))
        } else {
            Box::new(bpftrace_cmd)
        };
        let ready = if ours { "ready" } else { "Attaching" };
        let start = startup(&*make, ready, 10)?;
        let tr = Tracer::start(&mut make(), ready)?;
        let pid = tr.pid();
        let mem_start = memory(pid);
        eprintln!("bench: {name}: idle 10 s");
        let idle_10s = idle(pid, 10);
        eprintln!("bench: {name}: {kills_n} real OOM kills, one at a time");
        let pids = kills(&t, kills_n, 4, 1)?;
        let lat = if ours {
            latencies(&tr, &pids, &oomtrace_stamp, Clock::Boot)
        } else {
            latencies(&tr, &pids, &bpftrace_stamp, bt_clock)
        };
        let mem_after = memory(pid);
        let storm = if ours {
            eprintln!("bench: {name}: storm of 200 kills (20 cgroups, 10 at a time)");
            storm(&t, &tr)?
        } else {
            Value::Null
        };
        tr.stop();
        r[name] = json!({
            "startup_ms": stats_json(Some(start)),
            "idle_10s": idle_10s,
            "memory_at_start": mem_start,
            "memory_after_kills": mem_after,
            "latency_ms": stats_json(stats(lat.clone())),
            "latency_delivered": lat.len(),
            "storm": storm,
        });
        eprintln!("bench: {name}: start-up {}", fmt_stats(Some(start), "ms"));
    }
    r["ring_path"] = ring::all()?;
    r["seconds"] = json!(begun.elapsed().as_secs_f64());
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    fs::write(out.join("bench.json"), serde_json::to_string_pretty(&r)?)?;
    let md = markdown(&r);
    fs::write(out.join("bench.md"), &md)?;
    println!("{md}");
    Ok(())
}

/// The table's rows: label, JSON pointer under each tool, unit, target.
const ROWS: [(&str, &str, &str, &str); 16] = [
    (
        "start-up to ready, median",
        "/startup_ms/p50",
        "ms",
        "≤ 50 ms",
    ),
    ("start-up, min", "/startup_ms/min", "ms", ""),
    ("start-up, max", "/startup_ms/max", "ms", ""),
    ("idle 10 s: CPU", "/idle_10s/cpu_seconds", "s", "≈ 0"),
    (
        "idle 10 s: voluntary context switches",
        "/idle_10s/voluntary_context_switches",
        "",
        "0",
    ),
    (
        "RSS after start-up",
        "/memory_at_start/rss_kib",
        "KiB",
        "≤ 8192 KiB",
    ),
    ("PSS after start-up", "/memory_at_start/pss_kib", "KiB", ""),
    (
        "RSS after the kills",
        "/memory_after_kills/rss_kib",
        "KiB",
        "≤ 8192 KiB",
    ),
    (
        "PSS after the kills",
        "/memory_after_kills/pss_kib",
        "KiB",
        "",
    ),
    (
        "BPF map memory (memlock)",
        "/memory_at_start/bpf_map_bytes",
        "B",
        "",
    ),
    ("latency p50", "/latency_ms/p50", "ms", ""),
    ("latency p99", "/latency_ms/p99", "ms", "≤ 1 ms"),
    ("latency max", "/latency_ms/max", "ms", ""),
    ("storm: 200 kills delivered", "/storm/delivered", "", "200"),
    ("storm: wall time", "/storm/seconds", "s", ""),
    ("storm: daemon CPU", "/storm/daemon_cpu_seconds", "s", ""),
];

/// Benchmarks of the userspace path must run optimized: a debug `cargo xtask` re-runs itself
/// with `--release`. Returns true when it did (the caller then stops).
pub fn rerun_in_release() -> anyhow::Result<bool> {
    if !cfg!(debug_assertions) {
        return Ok(false);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let st = Command::new("cargo")
        .args(["run", "--quiet", "--release", "--package", "xtask", "--"])
        .args(&args)
        .status()
        .context("re-running xtask in release")?;
    if !st.success() {
        bail!("cargo xtask bench (release) failed: {st}");
    }
    Ok(true)
}

/// `--render FILE`: the Markdown of an earlier `bench.json` again (after a change to the report
/// only), written beside it as `bench.md`.
pub fn render(json_file: &Path) -> anyhow::Result<()> {
    let text = fs::read_to_string(json_file)
        .with_context(|| format!("reading {}", json_file.display()))?;
    let md = markdown(&serde_json::from_str(&text)?);
    fs::write(json_file.with_file_name("bench.md"), &md)?;
    println!("{md}");
    Ok(())
}

/// `--ring-only`: just figure 6, written to `<out>/ring.json`.
pub fn ring_only(out: &Path) -> anyhow::Result<()> {
    if rerun_in_release()? {
        return Ok(());
    }
    let v = ring::all()?;
    fs::create_dir_all(out)?;
    fs::write(out.join("ring.json"), serde_json::to_string_pretty(&v)?)?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

fn markdown(res: &Value) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "kernel {} · {} CPUs · load average at start {} · {} kills per tool · {:.0} s in all\n",
        res["kernel"].as_str().unwrap_or("?"),
        res["cpus"],
        res["loadavg_at_start"].as_str().unwrap_or("?"),
        res["kills"],
        res["seconds"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(
        md,
        "| figure | oomtrace | bpftrace | oomtrace / bpftrace | target |\n|---|---|---|---|---|"
    );
    let show = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.3} {unit}"));
    for (label, path, unit, target) in ROWS {
        let ours = res["oomtrace"].pointer(path).and_then(Value::as_f64);
        let theirs = res["bpftrace"].pointer(path).and_then(Value::as_f64);
        let ratio = match (ours, theirs) {
            (Some(o), Some(b)) if b > 0.0 => format!("{:.3}", o / b),
            _ => "n/a".into(),
        };
        let _ = writeln!(
            md,
            "| {label} | {} | {} | {ratio} | {target} |",
            show(ours, unit),
            show(theirs, unit)
        );
    }
    if let Some(c) = res["bpftrace_nsecs_clock"].as_str() {
        let _ = writeln!(
            md,
            "\nbpftrace's `nsecs` is {c} here (from `bpftrace -d`); its latency is read against it."
        );
    }
    let _ = writeln!(
        md,
        "\n| ring path: bench_ring → drain | ring | producers | fired/s | \
         delivered/s | lost | lost/s |\n|---|---|---|---|---|---|---|"
    );
    for v in res["ring_path"]["runs"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "| {}, {} s, built {} | {} KiB | {} | {:.0} | {:.0} | {} | {:.0} |",
            v["drain"].as_str().unwrap_or("?"),
            v["seconds"]
                .as_f64()
                .map_or("?".into(), |s| format!("{s:.1}")),
            v["drain_profile"].as_str().unwrap_or("?"),
            v["ring_bytes"].as_u64().unwrap_or(0) / 1024,
            v["producers"],
            v["fired_per_second"].as_f64().unwrap_or(0.0),
            v["delivered_per_second"].as_f64().unwrap_or(0.0),
            v["lost"],
            v["lost_per_second"].as_f64().unwrap_or(0.0),
        );
    }
    for v in res["ring_path"]["drain_capacity"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            md,
            "\nDrain alone ({}, built {}; a {}-record backlog, no producer running): {:.0} records/s.",
            v["drain"].as_str().unwrap_or("?"),
            v["drain_profile"].as_str().unwrap_or("?"),
            v["backlog"],
            v["drained_per_second"].as_f64().unwrap_or(0.0)
        );
    }
    let _ = writeln!(md, "\n| target | result | met? |\n|---|---|---|");
    for (target, result, met) in targets(res) {
        let met = match met {
            Some(true) => "**yes**",
            Some(false) => "**no**",
            None => "not judged",
        };
        let _ = writeln!(md, "| {target} | {result} | {met} |");
    }
    md
}

/// Each target of issue 9 against the result: (target, what was measured, met?).
pub fn targets(res: &Value) -> Vec<(&'static str, String, Option<bool>)> {
    let ours = &res["oomtrace"];
    let num = |p: &str| ours.pointer(p).and_then(Value::as_f64);
    let mut out = Vec::new();
    out.push((
        "idle: 0 wakeups in 10 s",
        num("/idle_10s/voluntary_context_switches").map_or("n/a".into(), |v| {
            format!(
                "{v:.0} voluntary context switches, {:.2} s CPU ({} OOM kills elsewhere on the \
                 node meanwhile)",
                num("/idle_10s/cpu_seconds").unwrap_or(0.0),
                ours.pointer("/idle_10s/node_oom_kills_meanwhile")
                    .and_then(Value::as_u64)
                    .map_or("?".into(), |k| k.to_string())
            )
        }),
        // Kills elsewhere on the node during the window are work, not idleness: not judged.
        match (
            num("/idle_10s/voluntary_context_switches"),
            num("/idle_10s/node_oom_kills_meanwhile"),
        ) {
            (Some(0.0), _) => Some(true),
            (Some(_), Some(k)) if k > 0.0 => None,
            (v, _) => v.map(|_| false),
        },
    ));
    let rss = [
        num("/memory_at_start/rss_kib"),
        num("/memory_after_kills/rss_kib"),
    ];
    out.push((
        "RSS ≤ 8 MiB (after start-up and after the kills)",
        match rss {
            [Some(start), Some(after)] => format!("{start:.0} KiB / {after:.0} KiB"),
            _ => "n/a".into(),
        },
        match rss {
            [Some(start), Some(after)] => Some(start <= 8192.0 && after <= 8192.0),
            _ => None,
        },
    ));
    out.push((
        "start-up ≤ 50 ms (median)",
        num("/startup_ms/p50").map_or("n/a".into(), |v| format!("{v:.1} ms")),
        num("/startup_ms/p50").map(|v| v <= 50.0),
    ));
    out.push((
        "latency p99 ≤ 1 ms",
        num("/latency_ms/p99").map_or("n/a".into(), |v| {
            format!(
                "p99 {v:.2} ms over {} kills",
                ours["latency_delivered"].as_u64().unwrap_or(0)
            )
        }),
        num("/latency_ms/p99").map(|v| v <= 1.0),
    ));
    out.push((
        "storm: all 200 kills delivered",
        num("/storm/delivered").map_or("n/a".into(), |v| {
            format!(
                "{v:.0} of 200 in {:.2} s",
                num("/storm/seconds").unwrap_or(0.0)
            )
        }),
        num("/storm/delivered").map(|v| v >= 200.0),
    ));
    let default_ring = u64::from(oomtrace::probes::DEFAULT_RING_SIZE);
    for producers in [1, 2] {
        let at_default = res["ring_path"]["runs"].as_array().and_then(|a| {
            a.iter().find(|v| {
                v["producers"] == producers
                    && v["ring_bytes"].as_u64() == Some(default_ring)
                    && v["drain"] == ring::Drain::Pipeline.name()
            })
        });
        let target = if producers == 1 {
            "ring path ≥ 1 M records/s, 0 lost, 256 KiB ring (1 producer)"
        } else {
            "ring path ≥ 1 M records/s, 0 lost, 256 KiB ring (2 producers)"
        };
        out.push(match at_default {
            None => (target, "n/a".into(), None),
            Some(v) => {
                let rate = v["delivered_per_second"].as_f64().unwrap_or(0.0);
                let lost = v["lost"].as_u64().unwrap_or(u64::MAX);
                (
                    target,
                    format!("{:.2} M/s delivered, {lost} lost", rate / 1e6),
                    Some(rate >= 1e6 && lost == 0),
                )
            }
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let s = stats((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((s.min, s.max, s.n), (1.0, 100.0, 100));
        assert!(
            (s.p50 - 50.0).abs() <= 1.0 && (s.p99 - 99.0).abs() <= 1.0,
            "{s:?}"
        );
        assert!(stats(vec![]).is_none());
    }

    #[test]
    fn proc_parsing() {
        let stat = "123 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 0 0";
        // utime 250 + stime 50 ticks.
        // SAFETY: sysconf has no preconditions.
        let hz = f64::from(i32::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap());
        assert_eq!(cpu_seconds(stat), Some(300.0 / hz));
        assert_eq!(
            kb_field("Name:\tx\nVmRSS:\t    5120 kB\n", "VmRSS:"),
            Some(5120)
        );
        assert_eq!(
            kb_field("Pss:                1234 kB\n", "Pss:"),
            Some(1234)
        );
        assert_eq!(bpftrace_stamp("42 123456"), Some((42, 123_456)));
        assert_eq!(
            vmstat_oom_kill("pgfault 9\noom_kill 31\nnuma_hit 1\n"),
            Some(31)
        );
        assert_eq!(
            oomtrace_stamp(r#"{"boot_ns":5,"victim":{"pid":7}}"#),
            Some((7, 5))
        );
    }

    #[test]
    fn context_switches_and_map_memory() {
        let status =
            "Name:\toomtrace\nvoluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n";
        assert_eq!(voluntary_field(status), Some(17));
        assert_eq!(voluntary_field("Name:\tx\n"), None);
        // As bpf_map_show_fdinfo / bpf_prog_show_fdinfo print them (6.18).
        let map = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t2071\nmap_type:\t27\n\
                   key_size:\t0\nvalue_size:\t0\nmax_entries:\t262144\nmap_flags:\t0x0\n\
                   map_extra:\t0x0\nmemlock:\t266560\nmap_id:\t12\nfrozen:\t0\n";
        assert_eq!(map_memlock(map), Some(266_560));
        let prog = "pos:\t0\nflags:\t02000002\nprog_type:\t26\nprog_jited:\t1\n\
                    memlock:\t4096\nprog_id:\t40\n";
        assert_eq!(map_memlock(prog), None, "a program is not map memory");
        assert_eq!(map_memlock("pos:\t0\nflags:\t02\n"), None);
    }

    #[test]
    fn targets_met_and_not() {
        let res = json!({
            "oomtrace": {
                "idle_10s": {"voluntary_context_switches": 0, "cpu_seconds": 0.0},
                "memory_at_start": {"rss_kib": 8000},
                "memory_after_kills": {"rss_kib": 8300},
                "startup_ms": {"p50": 45.0},
                "latency_ms": {"p99": 1.5},
                "latency_delivered": 1000,
                "storm": {"delivered": 200, "seconds": 3.0},
            },
            "ring_path": {"runs": [
                {"producers": 1, "ring_bytes": 262_144, "drain": "decode only", "lost": 9},
                {"producers": 1, "ring_bytes": 262_144, "drain": "pipeline+json",
                 "delivered_per_second": 1.2e6, "lost": 0},
                {"producers": 2, "ring_bytes": 262_144, "drain": "pipeline+json",
                 "delivered_per_second": 1.5e6, "lost": 9},
            ]},
        });
        let met: Vec<Option<bool>> = targets(&res).into_iter().map(|t| t.2).collect();
        assert_eq!(
            met,
            [
                Some(true),
                Some(false),
                Some(true),
                Some(false),
                Some(true),
                Some(true),
                Some(false)
            ]
        );
        let busy = json!({"oomtrace": {"idle_10s": {"voluntary_context_switches": 3,
                                                      "node_oom_kills_meanwhile": 3}}});
        assert_eq!(targets(&busy)[0].2, None, "kills on the node: not idle");
        let none = targets(&json!({}));
        assert!(none.iter().all(|t| t.2.is_none()), "{none:?}");
    }

    #[test]
    fn bpftrace_clock_from_its_ir() {
        // bpftrace 0.17 `-d`, tracepoint:oom:mark_victim with nsecs (Debian package, 6.18 host).
        let ir = "  %8 = getelementptr inbounds ...\n  \
                  %get_ns = tail call i64 inttoptr (i64 125 to i64 ()*)()\n  \
                  store i64 %get_ns, i64* %9, align 8\n";
        assert_eq!(nsecs_clock_from_ir(ir), Some(Clock::Boot));
        let mono = "%get_ns = call i64 inttoptr (i64 5 to i64 ()*)()";
        assert_eq!(nsecs_clock_from_ir(mono), Some(Clock::Monotonic));
        assert_eq!(
            nsecs_clock_from_ir("%get_ns = call i64 inttoptr (i64 7 to"),
            None
        );
        assert_eq!(nsecs_clock_from_ir("no such line"), None);
    }
}

/// Figure 6, the ring path: the benchmark-only program (`bench_ring`, oomtrace-ebpf feature
/// `bench`) writes one victim-sized record per `oom:oom_score_adj_update`; producer threads fire
/// it by writing /proc/self/oom_score_adj in a loop; this thread drains the ring through the real
/// decoder, pipeline and JSON sink (into a sink that discards the bytes).
pub mod ring {
    use std::{
        io::Write as _,
        sync::{
            Arc,
            atomic::{AtomicBool, AtomicU64, Ordering},
        },
        time::{Duration, Instant},
    };

    use anyhow::{Context as _, bail};
    use aya::{
        EbpfLoader,
        maps::{PerCpuArray, RingBuf},
        programs::TracePoint,
    };
    use oomtrace::{
        decode::decode,
        enrich::Enricher,
        event::System,
        kernel::gfp::GfpTable,
        pipeline::Pipeline,
        sink::{Sinks, json::JsonLines},
    };
    use serde_json::{Value, json};

    const BUILD_DIR: &str = "target/bench-build";

    /// Builds oomtrace with the benchmark program in its eBPF object
    /// (`OOMTRACE_EBPF_FEATURES=bench`, honoured by oomtrace/build.rs), in a target directory of
    /// its own so the normal build is not touched, and returns the object.
    pub fn object() -> anyhow::Result<Vec<u8>> {
        let st = std::process::Command::new("cargo")
            .args([
                "build",
                "--release",
                "-p",
                "oomtrace",
                "--target-dir",
                BUILD_DIR,
            ])
            .env("OOMTRACE_EBPF_FEATURES", "bench")
            .status()
            .context("building the benchmark object")?;
        if !st.success() {
            bail!("building the benchmark object failed ({st})");
        }
        let newest = std::fs::read_dir(format!("{BUILD_DIR}/release/build"))?
            .flatten()
            .map(|e| e.path().join("out/oomtrace.bpf.o"))
            .filter(|p| p.exists())
            .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
            .with_context(|| format!("no oomtrace.bpf.o under {BUILD_DIR}"))?;
        std::fs::read(&newest).with_context(|| format!("reading {}", newest.display()))
    }

    /// The largest ring the sweep tries.
    const MAX_RING: u32 = 64 << 20;

    /// The drain's capacity alone (decode only and the whole pipeline); then 1 and 2 producers
    /// at the default ring size, decode only and pipeline, and while the pipeline loses records,
    /// the ring doubled (up to 64 MiB) to find the size that loses none over the run. The drain
    /// runs in this process, which `rerun_in_release` made a release build.
    pub fn all() -> anyhow::Result<Value> {
        eprintln!("bench: ring path (benchmark-only program on oom:oom_score_adj_update)");
        let obj = object()?;
        sweep(&obj)
    }

    fn sweep(obj: &[u8]) -> anyhow::Result<Value> {
        let mut capacities = Vec::new();
        for mode in [Drain::DecodeOnly, Drain::Pipeline] {
            let v = capacity(obj, mode)?;
            eprintln!("bench: drain capacity, {}: {v}", mode.name());
            capacities.push(v);
        }
        let mut runs = Vec::new();
        for producers in [1, 2] {
            let v = run(
                obj,
                Drain::DecodeOnly,
                producers,
                2.0,
                oomtrace::probes::DEFAULT_RING_SIZE,
            )?;
            eprintln!("bench: ring, decode only, {producers} producer(s): {v}");
            runs.push(v);
            let mut ring_bytes = oomtrace::probes::DEFAULT_RING_SIZE;
            loop {
                let v = run(obj, Drain::Pipeline, producers, 2.0, ring_bytes)?;
                eprintln!("bench: ring {ring_bytes} B, {producers} producer(s): {v}");
                let lost = v["lost"].as_u64().unwrap_or(0);
                runs.push(v);
                if lost == 0 || ring_bytes >= MAX_RING {
                    break;
                }
                ring_bytes *= 2;
            }
        }
        Ok(json!({"runs": runs, "drain_capacity": capacities}))
    }

    /// The JSON sink's destination: counts the bytes and lines written, keeps nothing.
    #[derive(Clone, Default)]
    pub struct Counting {
        pub bytes: Arc<AtomicU64>,
        pub lines: Arc<AtomicU64>,
    }

    impl std::io::Write for Counting {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            #[expect(clippy::naive_bytecount, reason = "no dependency for a bench counter")]
            let nl = buf.iter().filter(|&&b| b == b'\n').count() as u64;
            self.lines.fetch_add(nl, Ordering::Relaxed);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Not a file: nothing to reopen.
    impl oomtrace::sink::file::Out for Counting {}

    /// What the consumer does with each record.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Drain {
        /// The daemon's path: decode → event → enrich → JSON sink.
        Pipeline,
        /// Only the length-checked decode: what the ring itself delivers.
        DecodeOnly,
    }

    impl Drain {
        pub fn name(self) -> &'static str {
            match self {
                Drain::Pipeline => "pipeline+json",
                Drain::DecodeOnly => "decode only",
            }
        }
    }

    type Attached = (
        aya::Ebpf,
        RingBuf<aya::maps::MapData>,
        PerCpuArray<aya::maps::MapData, u64>,
    );

    /// Loads the benchmark object with a ring of `ring_size` bytes and attaches `bench_ring`.
    fn attach(obj: &[u8], ring_size: u32) -> anyhow::Result<Attached> {
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("EVENTS", ring_size)
            .load(obj)
            .context("loading the bench object")?;
        let prog: &mut TracePoint = ebpf
            .program_mut("bench_ring")
            .context("no bench_ring program")?
            .try_into()?;
        prog.load()?;
        prog.attach("oom", "oom_score_adj_update")?;
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("EVENTS")?)?;
        let counters = PerCpuArray::try_from(ebpf.take_map("COUNTERS").context("COUNTERS")?)?;
        Ok((ebpf, ring, counters))
    }

    /// The daemon's pipeline with one JSON-lines sink writing into `out`.
    fn pipeline(out: &Counting) -> Pipeline {
        let mut sinks = Sinks::default();
        sinks.push(Box::new(JsonLines::new("bench", out.clone())));
        Pipeline::new(
            "bench".into(),
            System::read(),
            GfpTable::builtin(),
            false,
            Enricher::new("/nonexistent"),
            sinks,
        )
    }

    /// The drain alone, with no producer competing for the CPUs: one producer fills a 64 MiB
    /// ring while nobody reads, stops, and the backlog is drained through `mode` and timed.
    pub fn capacity(obj: &[u8], mode: Drain) -> anyhow::Result<Value> {
        let (_ebpf, mut ring, _counters) = attach(obj, MAX_RING)?;
        let out = Counting::default();
        let mut pipeline = pipeline(&out);
        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicU64::new(0));
        let p = producer(stop.clone(), fired.clone());
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        p.join()
            .map_err(|_| anyhow::anyhow!("producer panicked"))??;
        let t0 = Instant::now();
        let mut delivered = 0u64;
        while let Some(item) = ring.next() {
            match mode {
                Drain::Pipeline => drop(pipeline.handle(&item)),
                Drain::DecodeOnly => drop(std::hint::black_box(decode(&item))),
            }
            delivered += 1;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let _ = std::fs::write("/proc/self/oom_score_adj", "0");
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let rate = delivered as f64 / elapsed;
        Ok(
            json!({"drain": mode.name(), "backlog": delivered, "seconds": elapsed,
                  "drained_per_second": rate, "json_lines": out.lines.load(Ordering::Relaxed),
                  "drain_profile": if cfg!(debug_assertions) { "debug" } else { "release" }}),
        )
    }

    /// A thread writing /proc/self/oom_score_adj (each write fires the program once) until
    /// `stop`; adds its writes to `fired`.
    fn producer(
        stop: Arc<AtomicBool>,
        fired: Arc<AtomicU64>,
    ) -> std::thread::JoinHandle<std::io::Result<()>> {
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open("/proc/self/oom_score_adj")?;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // 0..=1000 only: negative values need CAP_SYS_RESOURCE.
                f.write_all(if n.is_multiple_of(2) { b"1" } else { b"0" })?;
                n += 1;
            }
            fired.fetch_add(n, Ordering::Relaxed);
            Ok(())
        })
    }

    pub fn run(
        obj: &[u8],
        mode: Drain,
        producers: usize,
        seconds: f64,
        ring_size: u32,
    ) -> anyhow::Result<Value> {
        let (_ebpf, mut ring, counters) = attach(obj, ring_size)?;
        let out = Counting::default();
        let mut pipeline = pipeline(&out);

        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..producers)
            .map(|_| producer(stop.clone(), fired.clone()))
            .collect();
        let t0 = Instant::now();
        let mut delivered = 0u64;
        let mut events = 0u64;
        let mut drain = |item: &[u8]| match mode {
            Drain::Pipeline => u64::from(pipeline.handle(item).is_some()),
            Drain::DecodeOnly => u64::from(matches!(
                decode(item),
                Ok(oomtrace::decode::Record::Victim(_))
            )),
        };
        while t0.elapsed().as_secs_f64() < seconds {
            // Look at the clock every 1024 records too: producers may never let the ring empty.
            let mut got = 0;
            while got < 1024
                && let Some(item) = ring.next()
            {
                events += drain(&item);
                delivered += 1;
                got += 1;
            }
            if got == 0 {
                std::hint::spin_loop();
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join()
                .map_err(|_| anyhow::anyhow!("producer panicked"))??;
        }
        // The rate is what was consumed while producing; what was still queued is drained after
        // (for the accounting), at most 5 s.
        let elapsed = t0.elapsed().as_secs_f64();
        let in_window = delivered;
        let drain_until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < drain_until
            && let Some(item) = ring.next()
        {
            events += drain(&item);
            delivered += 1;
        }
        let fired = fired.load(Ordering::Relaxed);
        let lost: u64 = counters
            .get(&oomtrace_common::counter::RING_FULL, 0)?
            .iter()
            .sum();
        let _ = std::fs::write("/proc/self/oom_score_adj", "0");
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let rate = in_window as f64 / elapsed;
        let json_lines = out.lines.load(Ordering::Relaxed);
        // Every write fired the program once: what it fired was either delivered or lost
        // (other processes writing an oom_score_adj meanwhile only add to the two).
        let expect_lines = if mode == Drain::Pipeline { events } else { 0 };
        if delivered + lost < fired || json_lines != expect_lines || events != delivered {
            bail!(
                "ring path does not add up: fired {fired}, delivered {delivered} + lost {lost}, \
                 events {events}, JSON lines {json_lines}"
            );
        }
        #[expect(clippy::cast_precision_loss, reason = "rates")]
        let (fired_rate, lost_rate) = (fired as f64 / elapsed, lost as f64 / elapsed);
        Ok(
            json!({"producers": producers, "ring_bytes": ring_size, "seconds": elapsed,
                  "drain": mode.name(),
                  "fired": fired, "delivered": delivered, "lost": lost,
                  "other_fires": delivered + lost - fired, "json_lines": json_lines, "json_bytes": out.bytes.load(Ordering::Relaxed),
                  "delivered_per_second": rate, "fired_per_second": fired_rate,
                  "lost_per_second": lost_rate,
                  "drain_profile": if cfg!(debug_assertions) { "debug" } else { "release" }}),
        )
    }
}
