//! The metrics endpoint: a deliberately small HTTP/1.1 server on tokio (GET/HEAD of `/metrics`
//! and `/healthz`, one request per connection), so that oomtrace needs no HTTP framework.
//!
//! `/metrics` answers OpenMetrics text when the client asks for it in `Accept` (Prometheus does),
//! else the Prometheus text format 0.0.4. Requests larger than 8 KiB or slower than 5 s are
//! dropped.

use std::{sync::Arc, time::Duration};

use prometheus_client::registry::Registry;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tokio_util::sync::CancellationToken;

use crate::sink::metrics;

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((conn, _)) => {
                    let registry = registry.clone();
                    tokio::spawn(async move {
                        if let Err(e) = handle(conn, &registry).await {
                            log::debug!("metrics connection: {e}");
                        }
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
pub fn respond(head: &str, registry: &Registry) -> (&'static str, &'static str, String) {
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
        "/healthz" => ("200 OK", "text/plain", "ok\n".into()),
        _ => (
            "404 Not Found",
            "text/plain",
            "oomtrace: /metrics or /healthz\n".into(),
        ),
    }
}

async fn handle(mut conn: TcpStream, registry: &Registry) -> std::io::Result<()> {
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
    tokio::time::timeout(REQUEST_TIMEOUT, read)
        .await
        .map_err(|_| std::io::Error::other("request timed out"))??;
    let head = String::from_utf8_lossy(&buf);
    let (status, ctype, body) = respond(&head, registry);
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
        assert!(
            respond("POST /metrics HTTP/1.1\r\n", &r)
                .0
                .starts_with("405")
        );
    }
}
