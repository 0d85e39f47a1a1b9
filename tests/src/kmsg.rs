//! The kernel's own "Killed process" lines, read from /dev/kmsg: the referee for what oomtrace
//! reports. This is a small independent parser on purpose (the product's own one is not used).

use std::{
    fs::File,
    io::{ErrorKind, Read as _, Seek as _, SeekFrom},
    os::unix::fs::OpenOptionsExt as _,
    time::{Duration, Instant},
};

/// `Killed process 2469 (python3) total-vm:323768kB, anon-rss:65024kB, file-rss:5588kB,
/// shmem-rss:0kB, UID:0 pgtables:192kB oom_score_adj:0`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Killed {
    pub pid: u32,
    /// The comm bytes, with /dev/kmsg's `\xNN` escapes undone.
    pub comm: Vec<u8>,
    pub total_vm_kb: u64,
    pub anon_rss_kb: u64,
    pub file_rss_kb: u64,
    pub shmem_rss_kb: u64,
    pub uid: Option<u32>,
    pub pgtables_kb: Option<u64>,
    pub oom_score_adj: Option<i32>,
}

/// /dev/kmsg opened at its end: only lines written after `open` are seen.
pub struct Kmsg {
    f: File,
    seen: Vec<Killed>,
    /// The text of every kernel record read so far (facility 0 only: nothing userspace wrote).
    messages: Vec<String>,
}

impl Kmsg {
    pub fn open() -> Self {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .expect("opening /dev/kmsg");
        f.seek(SeekFrom::End(0))
            .expect("seeking /dev/kmsg to its end");
        Self {
            f,
            seen: Vec::new(),
            messages: Vec::new(),
        }
    }

    fn pump(&mut self) {
        // One record per read; a buffer smaller than the record fails with EINVAL.
        let mut buf = vec![0u8; 8192];
        loop {
            match self.f.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let (prefix, msg) = rec
                        .split_once(';')
                        .map_or(("", ""), |(p, m)| (p, m.lines().next().unwrap_or("")));
                    // PRI = facility * 8 + level; the kernel's own records have facility 0.
                    let pri: u32 = prefix
                        .split(',')
                        .next()
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(8);
                    if pri >> 3 != 0 {
                        continue;
                    }
                    if let Some(k) = parse_killed(msg) {
                        self.seen.push(k);
                    }
                    self.messages.push(msg.to_owned());
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                // EPIPE: records were overwritten before we read them; go on with the next.
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
                Err(e) => panic!("reading /dev/kmsg: {e}"),
            }
        }
    }

    /// The kernel's "Killed process" line of `pid`, waiting up to `timeout`.
    pub fn killed(&mut self, pid: u32, timeout: Duration) -> Killed {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if let Some(k) = self.seen.iter().find(|k| k.pid == pid) {
                return k.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no 'Killed process {pid}' line in /dev/kmsg within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Kmsg {
    /// The first kernel message read since `open` for which `pred` holds, waiting up to
    /// `timeout`; `None` when none came.
    pub fn message(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if let Some(m) = self.messages.iter().find(|m| pred(m)) {
                return Some(m.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1] == b'x'
            && let Ok(v) = u8::from_str_radix(&s[i + 2..i + 4], 16)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn num<T: std::str::FromStr>(rest: &str, key: &str) -> Option<T> {
    let i = rest.find(key)? + key.len();
    let v: String = rest[i..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    v.parse().ok()
}

/// Parses the text of one kernel message (after the `;`).
pub fn parse_killed(msg: &str) -> Option<Killed> {
    let i = msg.find("Killed process ")?;
    let rest = &msg[i + "Killed process ".len()..];
    let (pid, rest) = rest.split_once(" (")?;
    let end = rest.rfind(") total-vm:")?;
    let comm = unescape(&rest[..end]);
    let tail = &rest[end..];
    Some(Killed {
        pid: pid.parse().ok()?,
        comm,
        total_vm_kb: num(tail, "total-vm:")?,
        anon_rss_kb: num(tail, "anon-rss:")?,
        file_rss_kb: num(tail, "file-rss:")?,
        shmem_rss_kb: num(tail, "shmem-rss:")?,
        uid: num(tail, "UID:"),
        pgtables_kb: num(tail, "pgtables:"),
        oom_score_adj: num(tail, "oom_score_adj:"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_6_x_line() {
        let k = parse_killed("Memory cgroup out of memory: Killed process 2469 (python3) total-vm:323768kB, anon-rss:65024kB, file-rss:5588kB, shmem-rss:0kB, UID:0 pgtables:192kB oom_score_adj:0").unwrap();
        assert_eq!(k.pid, 2469);
        assert_eq!(k.comm, b"python3");
        assert_eq!(k.anon_rss_kb, 65024);
        assert_eq!(k.oom_score_adj, Some(0));
        let k = parse_killed(r"Killed process 7 (\xc3\xa9 (x)) total-vm:1kB, anon-rss:2kB, file-rss:3kB, shmem-rss:4kB, UID:0 pgtables:5kB oom_score_adj:1000").unwrap();
        assert_eq!(k.comm, "é (x)".as_bytes());
        assert_eq!(k.oom_score_adj, Some(1000));
    }
}
