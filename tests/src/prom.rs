//! A real Prometheus server (Debian's `prometheus`) started on loopback for one test, and a tiny
//! HTTP GET client (the tests need no HTTP library). Its config and data directory are removed,
//! and the server killed, on drop.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("local_addr").port()
}

/// `GET path` on `addr` (`127.0.0.1:port`): (status code, body).
pub fn http_get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .expect("writing the request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("reading the response");
    let (head, body) = resp.split_once("\r\n\r\n").expect("HTTP response");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("status line: {head}"));
    (code, body.to_string())
}

/// Percent-encodes a query parameter.
pub fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub struct Prometheus {
    child: Child,
    dir: PathBuf,
    /// `127.0.0.1:port` of its web API.
    pub addr: String,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) every second, and waits until it is
    /// ready.
    pub fn start(target: &str) -> Self {
        let dir = std::env::temp_dir().join(crate::unique("oomtrace-prom"));
        std::fs::create_dir_all(dir.join("data")).expect("prometheus temp dir");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: oomtrace\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("writing prometheus.yml");
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("prometheus.log")).expect("log file"),
            ))
            .spawn()
            .expect("spawning prometheus (Debian package `prometheus`; scripts/setup.sh --test)");
        let p = Self { child, dir, addr };
        let until = Instant::now() + Duration::from_mins(1);
        loop {
            if TcpStream::connect(&p.addr).is_ok() && http_get(&p.addr, "/-/ready", None).0 == 200 {
                return p;
            }
            assert!(
                Instant::now() < until,
                "prometheus not ready within 60 s; log:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// The `data.result` of an instant query.
    pub fn query(&self, q: &str) -> Vec<Value> {
        let (code, body) = http_get(
            &self.addr,
            &format!("/api/v1/query?query={}", encode(q)),
            None,
        );
        assert_eq!(code, 200, "query {q}: {body}");
        let v: Value = serde_json::from_str(&body).expect("query JSON");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Polls `q` until it returns a series (or `timeout`): the first series' value.
    pub fn wait_value(&self, q: &str, timeout: Duration) -> Option<f64> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(s) = self.query(q).first() {
                return s["value"][1].as_str().and_then(|v| v.parse().ok());
            }
            if Instant::now() >= until {
                return None;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
