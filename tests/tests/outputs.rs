//! Outputs an operator uses: a real Prometheus scraping `oomtrace run --metrics-addr`, the metrics
//! text through `promtool`, JSON and text sinks at once, `oomtrace trace`, and bad settings that
//! must stop oomtrace with exit code 2 before it attaches anything.

use std::{path::PathBuf, time::Duration};

use oomtrace_tests::{
    cgroup::MemCgroup,
    daemon::{Daemon, run_to_exit},
    prom::{Prometheus, free_port, http_get},
    require_root, unique,
};
use serde_json::Value;

const LIMIT: u64 = 64 << 20;
const KILL_TIMEOUT: Duration = Duration::from_mins(1);

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

/// True when `promtool` is there; outside CI its absence skips the test with a message.
fn require_promtool() -> bool {
    let ok = std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool missing (Debian package prometheus; scripts/setup.sh --test)"
        );
        eprintln!("skipping: promtool missing (scripts/setup.sh --test installs it)");
    }
    ok
}

/// OOM-kills a 300 MiB hog (with `args`) in `cg`; returns its pid.
fn kill_in(cg: &MemCgroup, args: &[&str]) -> u32 {
    let mut hog = cg.spawn_hog(args);
    let pid = hog.pid();
    hog.expect_oom_killed(KILL_TIMEOUT);
    pid
}

#[test]
fn real_prometheus_counts_the_kill() {
    if !require_root() {
        return;
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut d = Daemon::start(&["run", "--metrics-addr", &addr]);
    let prom = Prometheus::start(&addr);
    // Prometheus sees the target before the kill.
    assert!(
        prom.wait_value(
            "oomtrace_build_info{job=\"oomtrace\"}",
            Duration::from_secs(30)
        )
        .is_some(),
        "no scrape of oomtrace within 30 s; prometheus log:\n{}",
        prom.log()
    );
    let cg = MemCgroup::create(&unique("oomtrace-prom"), Some(LIMIT));
    let pid = kill_in(&cg, &[]);
    d.victim(pid, Duration::from_secs(5));
    let q = format!("oomtrace_oom_kills_total{{cgroup=\"{}\"}}", cg.path);
    let v = prom.wait_value(&q, Duration::from_secs(30));
    assert_eq!(
        v,
        Some(1.0),
        "{q} in Prometheus; prometheus log:\n{}",
        prom.log()
    );
    let series = prom.query(&q);
    assert_eq!(series.len(), 1, "one series for the cgroup: {series:?}");
    let labels = &series[0]["metric"];
    // "unknown" without a context hook (this host), "memcg" with one.
    assert!(
        labels["constraint"] == "unknown" || labels["constraint"] == "memcg",
        "constraint: {labels}"
    );
    assert!(
        labels.get("pod").is_none(),
        "no pod for a plain cgroup: {labels}"
    );
    assert_eq!(labels["outcome"], "host", "a host process: {labels}");
    let lost = prom.wait_value("oomtrace_events_lost_total", Duration::from_secs(10));
    assert_eq!(lost, Some(0.0), "oomtrace_events_lost_total");
    let last_kill = prom
        .wait_value(
            "oomtrace_last_oom_kill_timestamp_seconds",
            Duration::from_secs(10),
        )
        .expect("last kill timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        (now - last_kill).abs() < 120.0,
        "last kill {last_kill}, now {now}"
    );
    let attached = prom.query("oomtrace_hook_attached{role=\"victim\"} == 1");
    assert_eq!(attached.len(), 1, "one victim hook attached: {attached:?}");
    assert!(
        prom.wait_value("oomtrace_kernel_oom_kills_total", Duration::from_secs(10))
            .is_some_and(|n| n >= 1.0)
    );

    // Every query of the dashboard and every alert expression is valid PromQL for this server
    // and names only metrics oomtrace exports.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("deploy/grafana/oomtrace-dashboard.json"))
            .expect("dashboard"),
    )
    .expect("dashboard JSON");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().expect("expr").to_string())
        .collect();
    assert!(exprs.len() >= 6, "{exprs:?}");
    for e in &exprs {
        let e = e
            .replace("$__rate_interval", "1m")
            .replace("$__range", "5m")
            .replace("$namespace", ".*");
        let (code, body) = http_get(
            &prom.addr,
            &format!("/api/v1/query?query={}", oomtrace_tests::prom::encode(&e)),
            None,
        );
        assert_eq!(code, 200, "dashboard query {e}: {body}");
    }
    d.stop();
}

#[test]
fn metrics_text_passes_promtool() {
    if !require_root() || !require_promtool() {
        return;
    }
    let addr = format!("127.0.0.1:{}", free_port());
    let mut d = Daemon::start(&["run", "--metrics-addr", &addr]);
    let cg = MemCgroup::create(&unique("oomtrace-promtool"), Some(LIMIT));
    let pid = kill_in(&cg, &[]);
    d.victim(pid, Duration::from_secs(5));
    for accept in [None, Some("application/openmetrics-text; version=1.0.0")] {
        let (code, body) = http_get(&addr, "/metrics", accept);
        assert_eq!(code, 200);
        assert!(
            body.contains(&format!("cgroup=\"{}\"", cg.path)),
            "the kill's series: {body}"
        );
        if accept.is_some() {
            assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
            continue;
        }
        let mut p = std::process::Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("promtool");
        std::io::Write::write_all(&mut p.stdin.take().expect("stdin"), body.as_bytes())
            .expect("feeding promtool");
        let out = p.wait_with_output().expect("promtool output");
        assert!(
            out.status.success(),
            "promtool check metrics: {}{}\n{body}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (code, body) = http_get(&addr, "/healthz", None);
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    d.stop();
}

#[test]
fn alert_rules_pass_promtool() {
    if !require_promtool() {
        return;
    }
    let rules = repo_file("deploy/prometheus/oomtrace-alerts.yaml");
    let out = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_and_text_sinks_at_once() {
    if !require_root() {
        return;
    }
    let dir = std::env::temp_dir().join(unique("oomtrace-sinks"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let text = dir.join("kills.log");
    // Appended to: what was there stays.
    std::fs::write(&text, "earlier line\n").expect("seeding the text file");
    let text_arg = format!("text:{}", text.display());
    let mut d = Daemon::start(&["run", "-o", "json:stdout", "-o", &text_arg]);
    let cg = MemCgroup::create(&unique("oomtrace-sinks"), Some(LIMIT));
    let pid = kill_in(&cg, &[]);
    let (_, ev) = d.victim(pid, Duration::from_secs(5));
    d.stop();
    assert_eq!(
        d.events(|e| e["victim"]["pid"] == pid).len(),
        1,
        "one JSON line"
    );
    assert_eq!(ev["limit"]["bytes"], LIMIT, "the cgroup's limit: {ev}");
    // Read in the kernel by the victim hook (no context hook attaches on this host).
    assert!(
        ev["limit"]["source"] == "bpf" || ev["limit"]["source"] == "oom_control",
        "{ev}"
    );
    let lines = std::fs::read_to_string(&text).expect("reading the text sink");
    let _ = std::fs::remove_dir_all(&dir);
    // One kill line; a VICTIM-EXIT line for the same pid may follow it.
    let ours: Vec<&str> = lines
        .lines()
        .filter(|l| l.contains(" OOM-KILL ") && l.contains(&format!(" pid={pid} ")))
        .collect();
    assert_eq!(ours.len(), 1, "one kill line for {pid}: {lines}");
    let l = ours[0];
    assert!(lines.starts_with("earlier line\n"), "appended: {lines}");
    assert!(l.contains(" OOM-KILL "), "{l}");
    assert!(!l.contains('\x1b'), "no colour in a file: {l}");
    assert!(l.contains(" limit=64MiB "), "{l}");
    assert!(l.contains(&format!("(cgroup {})", cg.path)), "{l}");
    assert!(l.contains(" comm=oomtrace-hog "), "{l}");
    let rss_kb = ev["victim"]["anon_rss_kb"].as_u64().expect("anon")
        + ev["victim"]["file_rss_kb"].as_u64().expect("file")
        + ev["victim"]["shmem_rss_kb"].as_u64().expect("shmem");
    #[expect(clippy::cast_precision_loss, reason = "one decimal")]
    let want = format!(" rss={:.1}MiB ", rss_kb as f64 / 1024.0);
    assert!(
        l.contains(&want) || l.contains(&format!(" rss={}MiB ", rss_kb / 1024)),
        "{want} in {l}"
    );
}

#[test]
fn trace_count_two_by_comm() {
    if !require_root() {
        return;
    }
    // A comm no one else's hog has (15 bytes at most).
    let comm = format!("tc{}", std::process::id() % 10_000_000);
    let mut d = Daemon::start(&["trace", "--count", "2", "--comm", &comm]);
    let cg = MemCgroup::create(&unique("oomtrace-trace"), Some(LIMIT));
    let first = kill_in(&cg, &["--comm", &comm]);
    let other = kill_in(&cg, &["--comm", "tc-other"]);
    let second = kill_in(&cg, &["--comm", &comm]);
    let st = d.wait_exit(Duration::from_secs(10));
    assert_eq!(st.code(), Some(0), "exit 0 after two matching kills");
    let lines: Vec<&String> = d.seen.iter().map(|(_, l)| l).collect();
    assert_eq!(lines.len(), 2, "exactly two lines: {lines:?}");
    assert!(lines[0].contains(&format!(" pid={first} ")), "{lines:?}");
    assert!(lines[1].contains(&format!(" pid={second} ")), "{lines:?}");
    assert!(
        lines.iter().all(|l| !l.contains(&format!(" pid={other} "))),
        "the non-matching kill is not shown: {lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.contains('\x1b')),
        "no colour when stdout is not a terminal"
    );
}

#[test]
fn trace_duration_without_enough_kills_exits_1() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&[
        "trace",
        "--json",
        "--count",
        "1",
        "--pid",
        "1",
        "--duration",
        "1s",
    ]);
    let st = d.wait_exit(Duration::from_secs(15));
    assert_eq!(st.code(), Some(1), "did not see what it waited for");
}

/// A bad setting: exit 2, one `error:` line naming `what`, and nothing attached.
fn rejected(args: &[&str], env: &[(&str, &str)], what: &str) {
    let (st, stdout, stderr) = run_to_exit(args, env, Duration::from_secs(20));
    assert_eq!(st.code(), Some(2), "exit 2; stderr:\n{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(errors[0].contains(what), "{what:?} named in: {}", errors[0]);
    assert!(
        !stderr.contains("ready") && !stderr.contains("hooks:"),
        "nothing attached: {stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}

fn config_file(text: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(unique("oomtrace-config"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let f = dir.join("oomtrace.toml");
    std::fs::write(&f, text).expect("writing the config");
    (dir, f)
}

#[test]
fn config_unknown_key_exits_2() {
    let (dir, f) = config_file("ring_size = 262144\n[metrics]\nadress = \"127.0.0.1:9464\"\n");
    rejected(
        &["run", "--config", f.to_str().expect("utf-8")],
        &[],
        "`adress`",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_wrong_type_exits_2() {
    let (dir, f) = config_file("ring_size = \"big\"\n");
    rejected(
        &["run", "--config", f.to_str().expect("utf-8")],
        &[],
        "`ring_size`",
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn config_bad_metrics_address_exits_2() {
    let (dir, f) = config_file("[metrics]\naddr = \"localhost:notaport\"\n");
    rejected(
        &["run", "--config", f.to_str().expect("utf-8")],
        &[],
        "metrics.addr",
    );
    let _ = std::fs::remove_dir_all(dir);
    // The same through the environment and the flag.
    rejected(
        &["run"],
        &[("OOMTRACE_METRICS_ADDR", "999.1.1.1:80")],
        "--metrics-addr",
    );
    rejected(&["run", "--metrics-addr", "nowhere"], &[], "--metrics-addr");
}

#[test]
fn config_unwritable_output_file_exits_2() {
    // A directory cannot be opened as a file, even by root.
    let dir = std::env::temp_dir().join(unique("oomtrace-out"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec = format!("json:{}", dir.display());
    rejected(&["run", "-o", &spec], &[], &spec);
    // And from the config file.
    let (cdir, f) = config_file(&format!("outputs = [\"{spec}\"]\n"));
    rejected(&["run", "--config", f.to_str().expect("utf-8")], &[], &spec);
    let _ = std::fs::remove_dir_all(dir);
    let _ = std::fs::remove_dir_all(cdir);
}
