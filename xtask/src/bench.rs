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
    pub p90: f64,
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
        p90: at(0.9),
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
    /// VmHWM (KiB) when it said ready: the peak of its start-up.
    hwm_at_ready: Option<u64>,
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
        let started = t0.elapsed();
        let hwm_at_ready = kb_field(&proc_read(child.id(), "status"), "VmHWM:");
        Ok(Self {
            child,
            lines,
            started,
            hwm_at_ready,
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

/// Where the benchmarked daemon serves its metrics (read for its own processing time).
const METRICS_ADDR: &str = "127.0.0.1:19464";

fn oomtrace_cmd(t: &Tools) -> Command {
    let mut c = Command::new(&t.oomtrace);
    c.args(["run", "--no-pin", "--metrics-addr", METRICS_ADDR])
        .env("RUST_LOG", "warn");
    c
}

/// GET /metrics of the daemon under test.
fn scrape() -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(METRICS_ADDR).context("connecting to /metrics")?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {METRICS_ADDR}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// Quantile `q` of a Prometheus histogram of `metric` with label `stage` in `text`, as the
/// upper bound of the first bucket holding it (`histogram_quantile` without interpolation), and
/// the count. None when the histogram has no observation.
pub fn histogram_quantile(text: &str, metric: &str, stage: &str, q: f64) -> Option<(f64, u64)> {
    let mut buckets: Vec<(f64, u64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{metric}_bucket{{")))
        .filter(|l| l.contains(&format!("stage=\"{stage}\"")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.trim().parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count = buckets.last()?.1;
    if count == 0 {
        return None;
    }
    #[expect(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a rank in a count of events"
    )]
    let rank = (q * count as f64).ceil() as u64;
    buckets
        .iter()
        .find(|(_, c)| *c >= rank)
        .map(|&(le, _)| (le, count))
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

/// Start-up of the tools `runs` times, interleaved run by run (oomtrace, bpftrace, oomtrace,
/// ...) so a change of load touches both alike: exec → ready in ms, and VmHWM at ready (KiB).
fn startup_interleaved(
    tools: &[(&'static str, &dyn Fn() -> Command, &'static str)],
    runs: usize,
) -> anyhow::Result<Vec<(Vec<f64>, Vec<f64>)>> {
    let mut out = vec![(Vec::new(), Vec::new()); tools.len()];
    for _ in 0..runs {
        for (i, (_, make, ready)) in tools.iter().enumerate() {
            let t = Tracer::start(&mut make(), ready)?;
            out[i].0.push(t.started.as_secs_f64() * 1000.0);
            #[expect(clippy::cast_precision_loss, reason = "KiB")]
            out[i].1.extend(t.hwm_at_ready.map(|k| k as f64));
            t.stop();
        }
    }
    Ok(out)
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

/// CPU seconds and voluntary context switches of each of `pids` over the same `secs`, and the
/// OOM kills anywhere on the node meanwhile (others' tests on a shared machine): a kill is work,
/// not idleness.
fn idle_many(pids: &[u32], secs: u64) -> Vec<Value> {
    let c0: Vec<f64> = pids
        .iter()
        .map(|&p| cpu_seconds(&proc_read(p, "stat")).unwrap_or(0.0))
        .collect();
    let s0: Vec<u64> = pids.iter().map(|&p| voluntary_switches(p)).collect();
    let k0 = node_oom_kills();
    std::thread::sleep(Duration::from_secs(secs));
    let k = node_oom_kills() - k0;
    pids.iter()
        .enumerate()
        .map(|(i, &p)| {
            json!({
                "cpu_seconds": cpu_seconds(&proc_read(p, "stat")).unwrap_or(0.0) - c0[i],
                "voluntary_context_switches": voluntary_switches(p) - s0[i],
                "node_oom_kills_meanwhile": k,
            })
        })
        .collect()
}

/// p50/p90/p99 of each stage of `oomtrace_event_processing_seconds` (bucket upper bounds).
fn processing(metrics: &str) -> Value {
    let mut v = json!({});
    for stage in ["decode", "enrich", "write"] {
        let q = |q| {
            histogram_quantile(metrics, "oomtrace_event_processing_seconds", stage, q)
                .map(|(le, _)| le)
        };
        v[stage] = json!({"p50": q(0.5), "p90": q(0.9), "p99": q(0.99),
            "count": histogram_quantile(metrics, "oomtrace_event_processing_seconds", stage, 0.5)
                .map(|(_, n)| n)});
    }
    v
}

/// Wall time of `n` fork+exec+exit+wait of /bin/true, seconds.
fn fork_exit_loop(n: usize) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    for _ in 0..n {
        Command::new("/bin/true")
            .status()
            .context("running /bin/true")?;
    }
    Ok(t0.elapsed().as_secs_f64())
}

/// `run_time_ns` and `run_cnt` of the program named `sched_process_e*` (the exit hook, its name
/// cut to 15 bytes by the kernel) that `pid` holds, from its fdinfo and bpftool.
fn exit_prog_stats(pid: u32) -> Option<(u64, u64)> {
    let ids: Vec<u64> = fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .ok()?
        .flatten()
        .filter_map(|e| fs::read_to_string(e.path()).ok())
        .filter_map(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok())
        })
        .collect();
    ids.into_iter().find_map(|id| {
        let out = Command::new("bpftool")
            .args(["prog", "show", "id", &id.to_string(), "-j"])
            .output()
            .ok()?;
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["name"]
            .as_str()?
            .starts_with("sched_process_e")
            .then(|| Some((v["run_time_ns"].as_u64()?, v["run_cnt"].as_u64()?)))?
    })
}

/// The exit hook's cost: `rounds` × `n` fork+exit of /bin/true without oomtrace and with it
/// attached, alternating; with `kernel.bpf_stats_enabled` on meanwhile, the kernel's own
/// run time of the hook per run.
fn exit_hook_cost(t: &Tools, n: usize, rounds: usize) -> anyhow::Result<Value> {
    const STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";
    let was = fs::read_to_string(STATS).unwrap_or_else(|_| "0".into());
    fs::write(STATS, "1").context("enabling kernel.bpf_stats_enabled")?;
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let (mut run_ns, mut runs) = (0u64, 0u64);
    let r: anyhow::Result<()> = (|| {
        for _ in 0..rounds {
            without.push(fork_exit_loop(n)?);
            let tr = Tracer::start(&mut oomtrace_cmd(t), "ready")?;
            let before = exit_prog_stats(tr.pid());
            with.push(fork_exit_loop(n)?);
            let after = exit_prog_stats(tr.pid());
            tr.stop();
            if let (Some(b), Some(a)) = (before, after) {
                run_ns += a.0 - b.0;
                runs += a.1 - b.1;
            }
        }
        Ok(())
    })();
    let _ = fs::write(STATS, was.trim());
    r?;
    let (w0, w1): (f64, f64) = (without.iter().sum(), with.iter().sum());
    #[expect(clippy::cast_precision_loss, reason = "a count and ns")]
    let (per_run_ns, exits) = (
        (runs > 0).then(|| run_ns as f64 / runs as f64),
        (n * rounds) as f64,
    );
    Ok(json!({
        "iterations": n * rounds, "rounds": rounds,
        "without_seconds": without, "with_seconds": with,
        "wall_overhead_percent": (w1 - w0) / w0 * 100.0,
        "hook_runs": runs, "hook_run_time_ns": run_ns, "hook_ns_per_run": per_run_ns,
        // The hook's own time against the wall time of one fork+exit without it.
        "hook_percent_of_fork_exit": per_run_ns.map(|ns| ns / (w0 / exits * 1e9) * 100.0),
    }))
}

fn memory(pid: u32) -> Value {
    json!({
        "rss_kib": kb_field(&proc_read(pid, "status"), "VmRSS:"),
        "pss_kib": kb_field(&proc_read(pid, "smaps_rollup"), "Pss:"),
        "bpf_map_bytes": bpf_map_bytes(pid),
    })
}

/// Latency of each kill by pid: stamp when the line was read minus the kernel's stamp in it.
fn latencies(
    tr: &Tracer,
    pids: &[u32],
    kernel_ns: &dyn Fn(&str) -> Option<(u32, u64)>,
    clock: Clock,
) -> std::collections::HashMap<u32, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = std::collections::HashMap::new();
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
            got.insert(pid, read.saturating_sub(k) as f64 / 1e6);
        }
    }
    got
}

/// The kills both tools reported: each kill's oomtrace / bpftrace latency ratio.
pub fn paired_ratios(
    ours: &std::collections::HashMap<u32, f64>,
    theirs: &std::collections::HashMap<u32, f64>,
) -> Vec<f64> {
    ours.iter()
        .filter_map(|(pid, o)| theirs.get(pid).filter(|b| **b > 0.0).map(|b| o / b))
        .collect()
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
        |s| json!({"min": s.min, "p50": s.p50, "p90": s.p90, "p99": s.p99, "max": s.max, "n": s.n}),
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

/// Both tools attached at once: memory, idle over the same 10 s, the same `kills_n` kills read
/// by both (paired per kill), oomtrace's own processing time, then oomtrace's storm alone.
fn side_by_side(
    t: &Tools,
    list: &[(&'static str, &dyn Fn() -> Command, &'static str)],
    kills_n: usize,
    bt_clock: Clock,
    r: &mut Value,
) -> anyhow::Result<()> {
    eprintln!("bench: both tools attached at once");
    let trs = list
        .iter()
        .map(|(_, make, ready)| Tracer::start(&mut make(), ready))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for ((name, _, _), tr) in list.iter().zip(&trs) {
        r[*name]["memory_at_start"] = memory(tr.pid());
    }
    eprintln!("bench: idle 10 s");
    let pids_now: Vec<u32> = trs.iter().map(Tracer::pid).collect();
    for ((name, _, _), v) in list.iter().zip(idle_many(&pids_now, 10)) {
        r[*name]["idle_10s"] = v;
    }
    eprintln!("bench: {kills_n} real OOM kills, one at a time, read by both tools");
    let pids = kills(t, kills_n, 4, 1)?;
    let mut lat = Vec::new();
    for ((name, _, _), tr) in list.iter().zip(&trs) {
        let l = if *name == "oomtrace" {
            latencies(tr, &pids, &oomtrace_stamp, Clock::Boot)
        } else {
            latencies(tr, &pids, &bpftrace_stamp, bt_clock)
        };
        r[*name]["latency_ms"] = stats_json(stats(l.values().copied().collect()));
        r[*name]["latency_delivered"] = json!(l.len());
        r[*name]["memory_after_kills"] = memory(tr.pid());
        lat.push(l);
    }
    if let [o, b] = &lat[..] {
        let ratios = paired_ratios(o, b);
        r["paired"] = json!({"kills_both_read": ratios.len(),
                             "ratio": stats_json(stats(ratios))});
    }
    r["oomtrace"]["processing_seconds"] = processing(&scrape()?);
    let mut trs = trs.into_iter();
    let ours = trs.next().context("oomtrace is first")?;
    for other in trs {
        other.stop();
    }
    eprintln!("bench: oomtrace: storm of 200 kills (20 cgroups, 10 at a time), bpftrace stopped");
    r["oomtrace"]["storm"] = storm(t, &ours)?;
    r["oomtrace"]["processing_seconds_after_storm"] = processing(&scrape()?);
    ours.stop();
    Ok(())
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
    let om = || oomtrace_cmd(&t);
    let mut list: Vec<(&'static str, &dyn Fn() -> Command, &'static str)> =
        vec![("oomtrace", &om, "ready")];
    if tools.len() > 1 {
        list.push(("bpftrace", &bpftrace_cmd, "Attaching"));
    }
    eprintln!("bench: start-up ×10, the tools interleaved run by run");
    let starts = startup_interleaved(&list, 10)?;
    for ((name, _, _), (ms, hwm)) in list.iter().zip(&starts) {
        r[*name] = json!({"startup_ms": stats_json(stats(ms.clone())),
                          "startup_vmhwm_kib": stats_json(stats(hwm.clone()))});
        eprintln!(
            "bench: {name}: start-up {}",
            fmt_stats(stats(ms.clone()), "ms")
        );
    }
    side_by_side(&t, &list, kills_n, bt_clock, &mut r)?;
    eprintln!("bench: exit hook: fork+exit of /bin/true without and with oomtrace");
    r["exit_hook"] = exit_hook_cost(&t, 10_000, 2)?;
    r["loadavg_before_ring_path"] = json!(
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    r["ring_path"] = ring::all()?;
    r["seconds"] = json!(begun.elapsed().as_secs_f64());
    r["loadavg_at_end"] = json!(
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    fs::write(out.join("bench.json"), serde_json::to_string_pretty(&r)?)?;
    let md = markdown(&r);
    fs::write(out.join("bench.md"), &md)?;
    println!("{md}");
    Ok(())
}

/// The table's rows: label, JSON pointer under each tool, unit, target.
const ROWS: [(&str, &str, &str, &str); 19] = [
    (
        "start-up to ready, median",
        "/startup_ms/p50",
        "ms",
        "≤ 40 ms, ≤ 0.4 × bpftrace",
    ),
    (
        "peak RSS during start-up (VmHWM at ready), median",
        "/startup_vmhwm_kib/p50",
        "KiB",
        "≤ 16384 KiB",
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
    ("kernel stamp → line read, p50", "/latency_ms/p50", "ms", ""),
    ("kernel stamp → line read, p90", "/latency_ms/p90", "ms", ""),
    ("kernel stamp → line read, p99", "/latency_ms/p99", "ms", ""),
    ("kernel stamp → line read, max", "/latency_ms/max", "ms", ""),
    (
        "daemon's own processing, wake-up → write, p99 (bucket bound)",
        "/processing_seconds/write/p99",
        "µs",
        "≤ 100 µs",
    ),
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

/// The paired latency ratio, the daemon's processing time and the exit hook's cost.
fn paired_processing_exit(md: &mut String, res: &Value) {
    if let Some(p) = res["paired"].as_object() {
        let q = |k: &str| {
            res["paired"]["ratio"][k]
                .as_f64()
                .map_or("n/a".into(), |v| format!("{v:.2}"))
        };
        let _ = writeln!(
            md,
            "\nPaired per kill ({} kills read by both): oomtrace / bpftrace latency ratio p50 {}, \
             p90 {}, p99 {}, min {}, max {}.",
            p.get("kills_both_read").unwrap_or(&Value::Null),
            q("p50"),
            q("p90"),
            q("p99"),
            q("min"),
            q("max")
        );
    }
    for (key, what) in [
        ("processing_seconds", "after the paired kills"),
        ("processing_seconds_after_storm", "after the storm too"),
    ] {
        let p = &res["oomtrace"][key];
        let us = |s: &str, q: &str| {
            p[s][q]
                .as_f64()
                .map_or("n/a".into(), |v| format!("{:.0} µs", v * 1e6))
        };
        if p.is_object() {
            let _ = writeln!(
                md,
                "\noomtrace_event_processing_seconds ({what}, {} events; bucket upper bounds): \
                 decode p99 {}, enrich p99 {}, write p50 {} / p90 {} / p99 {}.",
                p["write"]["count"],
                us("decode", "p99"),
                us("enrich", "p99"),
                us("write", "p50"),
                us("write", "p90"),
                us("write", "p99")
            );
        }
    }
    let x = &res["exit_hook"];
    if x.is_object() {
        let _ = writeln!(
            md,
            "\nExit hook: {} fork+exit of /bin/true in {} rounds, without oomtrace {} s, with it \
             {} s: {:+.2} % wall time; bpf_stats: {} runs of the hook, {:.0} ns each = {:.3} % \
             of one fork+exit.",
            x["iterations"],
            x["rounds"],
            x["without_seconds"],
            x["with_seconds"],
            x["wall_overhead_percent"].as_f64().unwrap_or(f64::NAN),
            x["hook_runs"],
            x["hook_ns_per_run"].as_f64().unwrap_or(f64::NAN),
            x["hook_percent_of_fork_exit"].as_f64().unwrap_or(f64::NAN)
        );
    }
}

fn markdown(res: &Value) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "kernel {} · {} CPUs · load average at start {}, at the end {} · {} kills read by both \
         tools at once · {:.0} s in all\n",
        res["kernel"].as_str().unwrap_or("?"),
        res["cpus"],
        res["loadavg_at_start"].as_str().unwrap_or("?"),
        res["loadavg_at_end"].as_str().unwrap_or("?"),
        res["kills"],
        res["seconds"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(
        md,
        "| figure | oomtrace | bpftrace | oomtrace / bpftrace | target |\n|---|---|---|---|---|"
    );
    let show = |v: Option<f64>, unit: &str| v.map_or("n/a".into(), |v| format!("{v:.3} {unit}"));
    for (label, path, unit, target) in ROWS {
        // µs rows are stored in seconds.
        let scale = if unit == "µs" { 1e6 } else { 1.0 };
        let ours = res["oomtrace"]
            .pointer(path)
            .and_then(Value::as_f64)
            .map(|v| v * scale);
        let theirs = res["bpftrace"]
            .pointer(path)
            .and_then(Value::as_f64)
            .map(|v| v * scale);
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
    paired_processing_exit(&mut md, res);
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

/// The targets of issue 16: start-up, its peak RSS, the daemon's processing, the exit hook.
fn startup_processing_exit_targets(res: &Value) -> Vec<(&'static str, String, Option<bool>)> {
    let ours = &res["oomtrace"];
    let num = |p: &str| ours.pointer(p).and_then(Value::as_f64);
    let mut out = Vec::new();
    let bt_start = res["bpftrace"]
        .pointer("/startup_ms/p50")
        .and_then(Value::as_f64);
    out.push((
        "start-up ≤ 40 ms and ≤ 0.4 × bpftrace's (medians, interleaved)",
        num("/startup_ms/p50").map_or("n/a".into(), |v| {
            format!(
                "{v:.1} ms (bpftrace {})",
                bt_start.map_or("n/a".into(), |b| format!("{b:.1} ms, ratio {:.2}", v / b))
            )
        }),
        num("/startup_ms/p50").map(|v| v <= 40.0 && bt_start.is_none_or(|b| v <= 0.4 * b)),
    ));
    out.push((
        "peak RSS during start-up (VmHWM) ≤ 16 MiB",
        num("/startup_vmhwm_kib/max").map_or("n/a".into(), |v| {
            format!(
                "median {:.0} KiB, max {v:.0} KiB",
                num("/startup_vmhwm_kib/p50").unwrap_or(0.0)
            )
        }),
        num("/startup_vmhwm_kib/max").map(|v| v <= 16384.0),
    ));
    out.push((
        "daemon's processing p99 ≤ 100 µs (wake-up → write)",
        num("/processing_seconds/write/p99").map_or("n/a".into(), |v| {
            format!("≤ {:.0} µs (bucket bound)", v * 1e6)
        }),
        num("/processing_seconds/write/p99").map(|v| v <= 0.000_1),
    ));
    let x = &res["exit_hook"];
    out.push((
        "exit hook < 1 % on a fork+exit loop",
        x["wall_overhead_percent"]
            .as_f64()
            .map_or("n/a".into(), |w| {
                format!(
                    "wall {w:+.2} %; the hook's own run time {:.3} % of a fork+exit",
                    x["hook_percent_of_fork_exit"].as_f64().unwrap_or(f64::NAN)
                )
            }),
        x["hook_percent_of_fork_exit"].as_f64().map(|k| k < 1.0),
    ));
    out
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
    out.extend(startup_processing_exit_targets(res));
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
                "startup_ms": {"p50": 35.0},
                "startup_vmhwm_kib": {"p50": 20000.0, "max": 21000.0},
                "processing_seconds": {"write": {"p99": 0.000_05}},
                "latency_ms": {"p99": 1.5},
                "latency_delivered": 1000,
                "storm": {"delivered": 200, "seconds": 3.0},
            },
            "bpftrace": {"startup_ms": {"p50": 100.0}},
            "exit_hook": {"wall_overhead_percent": 2.0, "hook_percent_of_fork_exit": 0.05},
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
                Some(true),
                Some(true),
                Some(false)
            ]
        );
        // 35 ms is not ≤ 0.4 × 80 ms.
        let mut slow = res.clone();
        slow["bpftrace"]["startup_ms"]["p50"] = json!(80.0);
        assert_eq!(targets(&slow)[2].2, Some(false));
        let busy = json!({"oomtrace": {"idle_10s": {"voluntary_context_switches": 3,
                                                      "node_oom_kills_meanwhile": 3}}});
        assert_eq!(targets(&busy)[0].2, None, "kills on the node: not idle");
        let none = targets(&json!({}));
        assert!(none.iter().all(|t| t.2.is_none()), "{none:?}");
    }

    #[test]
    fn processing_quantiles_from_the_histogram() {
        let m = "oomtrace_event_processing_seconds_bucket{le=\"0.00001\",stage=\"write\"} 50\n\
                 oomtrace_event_processing_seconds_bucket{le=\"0.0001\",stage=\"write\"} 98\n\
                 oomtrace_event_processing_seconds_bucket{le=\"0.001\",stage=\"write\"} 100\n\
                 oomtrace_event_processing_seconds_bucket{le=\"+Inf\",stage=\"write\"} 100\n\
                 oomtrace_event_processing_seconds_bucket{le=\"0.00001\",stage=\"decode\"} 0\n\
                 oomtrace_event_processing_seconds_bucket{le=\"+Inf\",stage=\"decode\"} 0\n";
        let q = |st, q| histogram_quantile(m, "oomtrace_event_processing_seconds", st, q);
        assert_eq!(q("write", 0.5), Some((0.00001, 100)));
        assert_eq!(q("write", 0.9), Some((0.0001, 100)));
        assert_eq!(q("write", 0.99), Some((0.001, 100)));
        assert_eq!(q("decode", 0.5), None, "no observation");
        assert_eq!(q("enrich", 0.5), None);
    }

    #[test]
    fn ratios_pair_the_kills_both_read() {
        let o = std::collections::HashMap::from([(1, 2.0), (2, 1.0), (3, 5.0)]);
        let b = std::collections::HashMap::from([(1, 1.0), (2, 4.0), (4, 1.0)]);
        let mut r = paired_ratios(&o, &b);
        r.sort_by(f64::total_cmp);
        assert_eq!(r, [0.25, 2.0]);
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
