//! The metrics endpoint: a deliberately small HTTP/1.1 server on tokio (GET/HEAD of `/metrics`
//! and `/healthz`, one request per connection), so that oomtrace needs no HTTP framework.
//!
//! `/metrics` answers OpenMetrics text when the client asks for it in `Accept` (Prometheus does),
//! else the Prometheus text format 0.0.4. Requests larger than 8 KiB or slower than 5 s are
//! dropped.
//!
//! At most [`MAX_CONNECTIONS`] connections are open at once. When a new one arrives with all of
//! them open, the oldest one that has not sent its request yet (idle) is closed to make room;
//! when every open one is busy answering, the new one is closed. Either is counted in
//! `oomtrace_http_connections_refused_total`. So thousands of idle connections cost no memory,
//! and a scrape (which sends its request at once) is still answered while they are held.

use std::{sync::Arc, time::Duration};

use std::{collections::VecDeque, sync::Mutex};

use prometheus_client::{metrics::counter::Counter, registry::Registry};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

use crate::{health::Health, sink::metrics};

const MAX_REQUEST: usize = 8 * 1024;
/// Connections open at once; beyond that, the oldest idle one (else the new one) is closed and
/// counted.
pub const MAX_CONNECTIONS: usize = 64;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `oomtrace_http_connections_refused_total`: connections closed at once because
/// [`MAX_CONNECTIONS`] were being served.
pub fn register_refused(r: &mut Registry, refused: Counter) {
    r.register(
        "oomtrace_http_connections_refused",
        "Connections to the metrics endpoint closed unanswered because 64 were already open: the oldest that had not sent its request yet, else the new one.",
        refused,
    );
}

/// The open connections: how many, and the idle ones (no request read yet), oldest first.
#[derive(Default)]
struct Open {
    count: usize,
    next_id: u64,
    idle: VecDeque<(u64, CancellationToken)>,
}

impl Open {
    fn forget_idle(&mut self, id: u64) {
        self.idle.retain(|(i, _)| *i != id);
    }
}

fn lock(open: &Mutex<Open>) -> std::sync::MutexGuard<'_, Open> {
    open.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves until `stop` is cancelled, [`MAX_CONNECTIONS`] connections at most (see the module
/// doc); closed ones are counted in `refused`.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Arc<Health>,
    refused: Counter,
    stop: CancellationToken,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((conn, peer)) => {
                    let admitted = {
                        let mut o = lock(&open);
                        if o.count >= MAX_CONNECTIONS {
                            if refused.inc() == 0 {
                                log::warn!(
                                    "metrics: {MAX_CONNECTIONS} connections open (from {peer} the latest): closing idle or new ones, counted in oomtrace_http_connections_refused_total"
                                );
                            }
                            // The evicted connection's task ends at once and gives its slot back.
                            o.idle.pop_front().map(|(_, evict)| evict.cancel()).is_some()
                        } else {
                            true
                        }
                    };
                    if !admitted {
                        drop(conn);
                        continue;
                    }
                    let (id, cancel) = {
                        let mut o = lock(&open);
                        o.count += 1;
                        o.next_id += 1;
                        let id = o.next_id;
                        let cancel = CancellationToken::new();
                        o.idle.push_back((id, cancel.clone()));
                        (id, cancel)
                    };
                    let (registry, health, open) = (registry.clone(), health.clone(), open.clone());
                    tokio::spawn(async move {
                        let busy = || lock(&open).forget_idle(id);
                        if let Err(e) = handle(conn, &registry, &health, &cancel, busy).await {
                            log::debug!("metrics connection: {e}");
                        }
                        let mut o = lock(&open);
                        o.forget_idle(id);
                        o.count -= 1;
                    });
                }
                Err(e) => {
                    log::warn!("metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// The response to a request head: (status line, content type, body).
pub fn respond(
    head: &str,
    registry: &Registry,
    health: &Health,
) -> (&'static str, &'static str, String) {
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    if method != "GET" && method != "HEAD" {
        return (
            "405 Method Not Allowed",
            "text/plain",
            "GET or HEAD\n".into(),
        );
    }
    let path = target.split('?').next().unwrap_or("");
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("accept"))
        .map_or("", |(_, v)| v);
    match path {
        "/metrics" => {
            let om = metrics::openmetrics(registry);
            if accept.contains("application/openmetrics-text") {
                ("200 OK", OPENMETRICS, om)
            } else {
                ("200 OK", PROMETHEUS_TEXT, metrics::prometheus_text(&om))
            }
        }
        "/healthz" => match health.check() {
            Ok(()) => ("200 OK", "text/plain", "ok\n".into()),
            Err(why) => ("503 Service Unavailable", "text/plain", why + "\n"),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "oomtrace: /metrics or /healthz\n".into(),
        ),
    }
}

/// Reads one request (unless `evict` is cancelled first), calls `busy`, answers.
async fn handle(
    mut conn: TcpStream,
    registry: &Registry,
    health: &Health,
    evict: &CancellationToken,
    busy: impl FnOnce(),
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = conn.read(&mut chunk).await?;
            if n == 0 || buf.len() + n > MAX_REQUEST {
                return Err(std::io::Error::other("request too large or incomplete"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Ok(())
    };
    tokio::select! {
        r = tokio::time::timeout(REQUEST_TIMEOUT, read) => {
            r.map_err(|_| std::io::Error::other("request timed out"))??;
        }
        () = evict.cancelled() => {
            return Err(std::io::Error::other("closed to make room (no request yet)"));
        }
    }
    busy();
    let head = String::from_utf8_lossy(&buf);
    let (status, ctype, body) = respond(&head, registry, health);
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if !head.starts_with("HEAD ") {
        out.push_str(&body);
    }
    conn.write_all(out.as_bytes()).await?;
    conn.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_negotiation() {
        let (r, _) = metrics::build(10, &[], crate::loss::Accounting::shared(None, None));
        let healthy = Health::new(
            crate::health::VictimHold::Process,
            crate::health::DEFAULT_STALL,
        );
        let respond = |head: &str, r: &Registry| respond(head, r, &healthy);
        let (s, t, b) = respond(
            "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\n",
            &r,
        );
        assert_eq!((s, t), ("200 OK", OPENMETRICS));
        assert!(b.ends_with("# EOF\n"));
        let (_, t, b) = respond("GET /metrics HTTP/1.1\r\nHost: x\r\n", &r);
        assert_eq!(t, PROMETHEUS_TEXT);
        assert!(!b.contains("# EOF"));
        assert_eq!(respond("GET /healthz HTTP/1.1\r\n", &r).2, "ok\n");
        assert!(respond("GET /nope HTTP/1.1\r\n", &r).0.starts_with("404"));
        let gone = Health::new(
            crate::health::VictimHold::Pinned {
                path: "/nonexistent/link-victim-tp_btf".into(),
                id: 1,
            },
            crate::health::DEFAULT_STALL,
        );
        let (s, _, b) = super::respond("GET /healthz HTTP/1.1\r\n", &r, &gone);
        assert!(
            s.starts_with("503") && b.starts_with("victim hook detached"),
            "{s} {b}"
        );
        assert!(
            respond("POST /metrics HTTP/1.1\r\n", &r)
                .0
                .starts_with("405")
        );
    }
}
