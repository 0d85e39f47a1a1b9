//! `/dev/kmsg` fallback: when BPF cannot be loaded (no CAP_BPF, a locked-down kernel) or with
//! `--source kmsg`, OOM kills are read from the kernel's own log lines ([`super::kmsg_parse`])
//! into the same event shape, with `"hook": "kmsg"` and only the fields the log gives.
//!
//! Reading needs CAP_SYSLOG when `kernel.dmesg_restrict=1`. Only messages written after start-up
//! are read (the daemon seeks to the end). Each read returns one record and needs a buffer of at
//! least the record's size (8 KiB here); EPIPE means the kernel overwrote records we had not read
//! yet: they are counted as lost.
//!
//! Only the kernel's own records are trusted: any process that can open `/dev/kmsg` for writing
//! (root, CAP_SYSLOG is not needed) can add records, and the kernel marks them with facility
//! LOG_USER (1) or whatever the writer chose, never 0 (`devkmsg_write` in
//! `kernel/printk/printk.c`). Records whose facility is not 0 (kernel) are ignored and counted
//! (`oomtrace_kmsg_untrusted_records_total`), so a forged `Killed process` or `oom-kill:` line is
//! never an event nor joined to a real one.

use std::{
    fs::File,
    io::{self, ErrorKind, Read as _, Seek as _, SeekFrom},
    os::unix::fs::OpenOptionsExt as _,
};

use tokio::io::{Interest, unix::AsyncFd};

use prometheus_client::metrics::counter::Counter;

use super::kmsg_parse::{KmsgKill, OomAssembler, parse_oom_line, parse_record};
use crate::{
    enrich::Attribution,
    event::{Cgroup, Event, Flags, Oom, System, Victim},
    kernel::gfp::GfpTable,
};

pub const DEV_KMSG: &str = "/dev/kmsg";

/// The kernel's records, in order, into kills; records not from the kernel are counted and
/// ignored.
#[derive(Debug, Default)]
pub struct KernelRecords {
    asm: OomAssembler,
    /// Records with a facility other than 0 (kernel): written by userspace.
    pub untrusted: Counter,
}

impl KernelRecords {
    /// One record as read from /dev/kmsg; the kill it completes, if any.
    pub fn push(&mut self, text: &str) -> Option<KmsgKill> {
        let rec = parse_record(text)?;
        if rec.facility != 0 {
            let n = self.untrusted.inc() + 1;
            // Logged at the 1st, 2nd, 4th, 8th, ... so that a flood of them cannot flood ours.
            if n.is_power_of_two() && parse_oom_line(&rec.message).is_some() {
                log::warn!(
                    "/dev/kmsg: ignoring an OOM-like record written by userspace (facility {}, seq {}; {n} untrusted records so far): {}",
                    rec.facility,
                    rec.seq,
                    rec.message
                );
            }
            return None;
        }
        self.asm.push_record(&rec)
    }
}

pub struct KmsgSource {
    fd: AsyncFd<File>,
    pub records: KernelRecords,
    buf: Vec<u8>,
    /// Times the kernel overwrote records before we read them (`EPIPE`).
    pub overrun: Counter,
}

impl KmsgSource {
    /// Opens /dev/kmsg at its end.
    pub fn open() -> io::Result<Self> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(DEV_KMSG)?;
        f.seek(SeekFrom::End(0))?;
        // SAFETY: the File owns its fd for as long as the AsyncFd lives.
        let fd = unsafe { AsyncFd::register_with_interest(f, Interest::READABLE) }
            .map_err(io::Error::other)?;
        Ok(Self {
            fd,
            records: KernelRecords::default(),
            buf: vec![0; 8192],
            overrun: Counter::default(),
        })
    }

    /// Waits until the log has new records, then returns the kills they complete.
    pub async fn next_kills(&mut self) -> io::Result<Vec<KmsgKill>> {
        let mut guard = self.fd.readable_mut().await?;
        let mut kills = Vec::new();
        loop {
            match guard.get_inner_mut().read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => {
                    let text = String::from_utf8_lossy(&self.buf[..n]);
                    kills.extend(self.records.push(&text));
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                    self.overrun.inc();
                    log::warn!("/dev/kmsg: records were overwritten before oomtrace read them");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(kills)
    }
}

/// The event of a kill read from the kernel log.
pub fn event(k: &KmsgKill, sys: &System, gfp: &GfpTable, node: &str) -> Event {
    let mut victim = Victim {
        pid: k.pid,
        comm: Some(k.comm.clone()),
        uid: k.uid,
        total_vm_kb: Some(k.total_vm_kb),
        anon_rss_kb: Some(k.anon_rss_kb),
        file_rss_kb: Some(k.file_rss_kb),
        shmem_rss_kb: Some(k.shmem_rss_kb),
        pgtables_kb: k.pgtables_kb,
        oom_score_adj: k.oom_score_adj,
        cgroup: k.task_memcg.as_ref().map(|p| Cgroup {
            id: None,
            path: p.clone(),
            truncated: false,
        }),
        ..Victim::default()
    };
    victim.oom_score = victim.compute_oom_score(sys);
    let known = k.constraint.is_some() || k.gfp_mask.is_some();
    let oom = known.then(|| Oom {
        hook: "kmsg",
        constraint: k
            .constraint
            .as_deref()
            .and_then(|c| crate::event::constraint_name_str(c)),
        memcg: k.constraint.as_ref().map(|_| {
            k.oom_memcg.as_ref().filter(|_| !k.global).map(|p| Cgroup {
                id: None,
                path: p.clone(),
                truncated: false,
            })
        }),
        totalpages: None,
        chosen_points: None,
        chosen_pid: None,
        gfp_mask: k.gfp_mask.and_then(|m| u32::try_from(m).ok()),
        gfp_flags: k.gfp_mask.map(|m| gfp.decode(m)),
        order: k.order,
        memcg_usage_bytes: None,
        memcg_limit_bytes: None,
        owner: Attribution::default(),
    });
    // The log's timestamps are the kernel's local clock (µs since boot, not counting suspend).
    let boot_ns = k.ts_usec.saturating_mul(1000);
    let flags = Flags {
        group_kill: k.oom_group.is_some(),
        already_exiting: false,
        context_missing: oom.is_none(),
    };
    let mut ev = Event::kill("kmsg", boot_ns, node, victim, flags);
    ev.oom = oom;
    ev
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::kmsg_parse::parse_oom_line;

    #[test]
    fn records_not_from_the_kernel_are_ignored_and_counted() {
        let killed = "Memory cgroup out of memory: Killed process 1 (systemd) total-vm:1000kB, anon-rss:100kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0";
        let summary = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/podx,task_memcg=/kubepods/burstable/podx/c,task=hog,pid=42,uid=0";
        let real = "Memory cgroup out of memory: Killed process 42 (hog) total-vm:1000kB, anon-rss:100kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0";
        let mut r = KernelRecords::default();
        // LOG_USER (facility 1, level 4): prio 12; the kernel: facility 0.
        assert!(r.push(&format!("12,1,100,-;{killed}")).is_none());
        assert!(r.push(&format!("12,2,200,-;{summary}")).is_none());
        assert!(r.push(&format!("14,3,250,-;{summary}")).is_none());
        assert_eq!(r.untrusted.get(), 3);
        let k = r
            .push(&format!("3,4,300,-;{real}"))
            .expect("the kernel's kill");
        assert_eq!(k.pid, 42);
        assert_eq!(k.task_memcg, None, "the forged summary is not joined");
        assert_eq!(r.untrusted.get(), 3);
    }

    #[test]
    fn a_6_x_kill_becomes_an_event() {
        let mut asm = OomAssembler::new();
        let lines = [
            "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
            "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/x,task_memcg=/x/y,task=python3,pid=2469,uid=0",
            "Memory cgroup out of memory: Killed process 2469 (python3) total-vm:323768kB, anon-rss:65024kB, file-rss:5588kB, shmem-rss:0kB, UID:0 pgtables:192kB oom_score_adj:0",
        ];
        let mut kill = None;
        for (i, l) in lines.iter().enumerate() {
            kill = asm
                .push(i as u64, 1_000_000, parse_oom_line(l).expect(l))
                .or(kill);
        }
        let k = kill.expect("a kill");
        let sys = System {
            page_size: 4096,
            ram_pages: 1 << 20,
            swap_pages: 0,
        };
        let ev = event(&k, &sys, &GfpTable::builtin(), "n");
        let j = serde_json::to_value(&ev).unwrap();
        assert_eq!(j["hook"], "kmsg");
        assert_eq!(j["victim"]["pid"], 2469);
        assert_eq!(j["victim"]["anon_rss_kb"], 65024);
        assert_eq!(j["victim"]["cgroup"]["path"], "/x/y");
        assert!(
            j["victim"]["cgroup"].get("id").is_none(),
            "no id from the log"
        );
        assert_eq!(j["oom"]["constraint"], "memcg");
        assert_eq!(j["oom"]["memcg"]["path"], "/x");
        assert_eq!(j["oom"]["gfp_flags"][0], "GFP_KERNEL");
        assert_eq!(j["boot_ns"], 1_000_000_000u64);
        assert!(j.get("trigger").is_none());
    }
}
