//! Parsing the kernel's OOM-killer log lines, as read from `/dev/kmsg` (pure: no I/O).
//!
//! Three layers:
//! - [`parse_record`]: one `/dev/kmsg` record (`6,1234,5678901,-;text`) → [`KmsgRecord`];
//! - [`parse_oom_line`]: one message → [`OomLine`], for every OOM-killer line format from 4.9 to
//!   6.18 (header, summary, kill, reaper, ...);
//! - [`OomAssembler`]: the lines of one OOM, in order → one [`KmsgKill`] per `Killed process` line,
//!   with the context (failed allocation, trigger, constraint, memcgs) when it provably belongs to it.
//!
//! Formats (from `mm/oom_kill.c`, `mm/memcontrol.c` and `kernel/cgroup/cpuset.c`):
//!
//! | line | 4.9 | 4.19 | 5.0 | 5.4 / 5.10 / 6.1 / 6.18 |
//! |---|---|---|---|---|
//! | header `<current> invoked oom-killer: gfp_mask=%#x(%pGg), ...` | `nodemask=` (cpuset mems if NULL) | `nodemask=(null)` | no nodemask | no nodemask |
//! | `<current> cpuset=<name> mems_allowed=<list>` | yes | yes | — | — |
//! | `Task in <task memcg> killed as a result of limit of <oom memcg>` | memcg OOMs | memcg OOMs | — | — |
//! | summary `oom-kill:constraint=...,task=,pid=,uid=` | — | — | yes | yes |
//! | `<msg>: Kill process <pid> (<comm>) score <n> or sacrifice child` | yes | yes | yes | — |
//! | kill | `Killed process ...shmem-rss:` | same | same | `<msg>: Killed process ...shmem-rss:..kB, UID:.. pgtables:..kB oom_score_adj:..` |
//! | `Tasks in <memcg> are going to be killed due to memory.oom.group set` | — | yes | yes | yes |
//! | `<msg>: OOM victim <pid> (<comm>) is already exiting. Skip killing the task` | — | — | — | 5.10+ |
//! | `oom_reaper: reaped process <pid> (<comm>), now anon-rss:..` | yes | yes | yes | yes |
//!
//! `<msg>` is `Memory cgroup out of memory`, `Out of memory` or `Out of memory
//! (oom_kill_allocating_task)`. The header and everything `dump_header` prints (the summary
//! included) are rate-limited together (`DEFAULT_RATELIMIT_BURST` = 10 per 5 s); the kill lines are
//! not. Before 5.4 the `Killed process` line has no `<msg>:` prefix; the preceding `Kill process`
//! line (never rate-limited) tells global from memcg OOMs there.
//!
//! `/dev/kmsg` escapes every byte < 0x20, >= 0x7f and `\` itself as `\xNN`
//! (`msg_add_ext_text` in `kernel/printk/printk.c`). [`KmsgRecord::message`] keeps that escaped text;
//! [`parse_oom_line`] expects it and unescapes the task names and cgroup paths it extracts exactly
//! once: the bytes are rebuilt and turned into a `String` with `String::from_utf8_lossy` (invalid
//! UTF-8, e.g. a comm cut in the middle of a character at 15 bytes, becomes U+FFFD).

/// One `/dev/kmsg` record: `<prio>,<seq>,<ts_usec>,<flags>[,<more>];<message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgRecord {
    /// Log level (`KERN_ERR` = 3, `KERN_WARNING` = 4, `KERN_INFO` = 6, ...): `prio & 7`.
    pub level: u8,
    /// Syslog facility: `prio >> 3` (0 for the kernel).
    pub facility: u32,
    /// Record sequence number (increments by 1; gaps mean lost or skipped records).
    pub seq: u64,
    /// Timestamp in µs since boot (`local_clock`, i.e. CLOCK_MONOTONIC-like, not boot time).
    pub ts_usec: u64,
    /// The `c` flag: this record is a continuation fragment.
    pub continuation: bool,
    /// `caller=T123` / `caller=C1` with `CONFIG_PRINTK_CALLER`.
    pub caller: Option<String>,
    /// The message, still `\xNN`-escaped as `/dev/kmsg` gives it.
    pub message: String,
}

/// Parses one `/dev/kmsg` record. Only the first line is used: the ` KEY=value` dictionary lines
/// that follow it in the same read (and any line starting with a space) are skipped. `None` for
/// anything that is not a record.
pub fn parse_record(line: &str) -> Option<KmsgRecord> {
    let first = line.split('\n').next()?;
    if first.starts_with(' ') {
        return None;
    }
    let (prefix, message) = first.split_once(';')?;
    let mut fields = prefix.split(',');
    let prio: u32 = fields.next()?.parse().ok()?;
    let seq: u64 = fields.next()?.parse().ok()?;
    let ts_usec: u64 = fields.next()?.parse().ok()?;
    let flags = fields.next()?;
    if flags.is_empty() || !flags.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-') {
        return None;
    }
    let caller = fields
        .find_map(|f| f.strip_prefix("caller="))
        .map(str::to_owned);
    Some(KmsgRecord {
        level: u8::try_from(prio & 7).ok()?,
        facility: prio >> 3,
        seq,
        ts_usec,
        continuation: flags.contains('c'),
        caller,
        message: message.strip_suffix('\r').unwrap_or(message).to_owned(),
    })
}

/// Undoes the `/dev/kmsg` escaping: every `\xNN` (two hex digits) becomes the byte `0xNN`; all
/// other characters are kept as they are.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x') {
            let hi = bytes.get(i + 2).and_then(|b| char::from(*b).to_digit(16));
            let lo = bytes.get(i + 3).and_then(|b| char::from(*b).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                // hi, lo < 16: the value fits in a byte.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// [`unescape`], then `String::from_utf8_lossy`.
pub fn unescape_lossy(text: &str) -> String {
    String::from_utf8_lossy(&unescape(text)).into_owned()
}

/// `<current> invoked oom-killer: gfp_mask=0x...(FLAGS), [nodemask=..., ]order=N, oom_score_adj=N`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomHeader {
    /// `current->comm`: the task whose allocation failed (the trigger), not the victim.
    pub trigger_comm: String,
    /// The failed allocation's gfp mask.
    pub gfp_mask: u64,
    /// The kernel's own rendering of the mask (`GFP_KERNEL|__GFP_COMP`, empty for 0); `None` on
    /// kernels that print no `(...)` after the mask.
    pub gfp_flags: Option<String>,
    /// `nodemask=` (4.x only): a node list such as `0-1,3`, or `(null)`.
    pub nodemask: Option<String>,
    /// Allocation order (`-1` for a sysrq-f OOM).
    pub order: i32,
    /// The trigger's `oom_score_adj`.
    pub oom_score_adj: i32,
}

/// `oom-kill:constraint=...,nodemask=...,cpuset=...,mems_allowed=...,oom_memcg=...|global_oom,
/// task_memcg=...,task=<comm>,pid=N,uid=N` (5.0+, `dump_oom_summary`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomSummary {
    /// As printed: `CONSTRAINT_NONE`, `CONSTRAINT_CPUSET`, `CONSTRAINT_MEMORY_POLICY`,
    /// `CONSTRAINT_MEMCG`.
    pub constraint: String,
    /// `nodemask=` value.
    pub nodemask: Option<String>,
    /// `cpuset=`: the trigger's cpuset name (absent without `CONFIG_CPUSETS`).
    pub cpuset: Option<String>,
    /// `mems_allowed=`: the trigger's allowed nodes.
    pub mems_allowed: Option<String>,
    /// `oom_memcg=`: the OOM domain (absent for a global OOM or without `CONFIG_MEMCG`).
    pub oom_memcg: Option<String>,
    /// `global_oom` was printed instead of `oom_memcg=`.
    pub global_oom: bool,
    /// `task_memcg=`: the victim's own memory cgroup.
    pub task_memcg: Option<String>,
    /// `task=`: the victim's comm.
    pub comm: String,
    /// `pid=`: the victim.
    pub pid: u32,
    /// `uid=`: the victim's uid.
    pub uid: u32,
}

/// `[<msg>: ]Killed process <pid> (<comm>) total-vm:..kB, anon-rss:..kB, file-rss:..kB,
/// shmem-rss:..kB[, UID:.. pgtables:..kB oom_score_adj:..]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KilledProcess {
    /// The `<msg>:` prefix (5.4+): `Memory cgroup out of memory`, `Out of memory`, ...
    pub message: Option<String>,
    /// The victim (the thread group leader's pid, or a thread's if the leader is gone).
    pub pid: u32,
    /// The victim's comm.
    pub comm: String,
    /// `total-vm` in kB.
    pub total_vm_kb: u64,
    /// `anon-rss` in kB.
    pub anon_rss_kb: u64,
    /// `file-rss` in kB.
    pub file_rss_kb: u64,
    /// `shmem-rss` in kB.
    pub shmem_rss_kb: u64,
    /// `UID:` (5.4+).
    pub uid: Option<u32>,
    /// `pgtables:` in kB (5.4+).
    pub pgtables_kb: Option<u64>,
    /// `oom_score_adj:` (5.4+).
    pub oom_score_adj: Option<i32>,
}

/// `oom_reaper: reaped process <pid> (<comm>), now anon-rss:..kB, file-rss:..kB, shmem-rss:..kB`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReapedProcess {
    /// The reaped victim.
    pub pid: u32,
    /// Its comm.
    pub comm: String,
    /// What is left of its anonymous memory, in kB.
    pub anon_rss_kb: u64,
    /// What is left of its file-backed memory, in kB.
    pub file_rss_kb: u64,
    /// What is left of its shmem, in kB.
    pub shmem_rss_kb: u64,
}

/// One OOM-killer log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OomLine {
    /// The first line of an OOM report (rate-limited).
    Header(OomHeader),
    /// The one-line summary, last line of the report (5.0+, rate-limited with the header).
    Summary(OomSummary),
    /// `Task in <task_memcg> killed as a result of limit of <oom_memcg>` (4.x memcg OOMs,
    /// rate-limited with the header).
    MemcgLimit {
        /// The chosen task's memcg.
        task_memcg: String,
        /// The memcg whose limit was hit.
        oom_memcg: String,
    },
    /// `<msg>: Kill process <pid> (<comm>) score <n> or sacrifice child` (up to 5.0; not
    /// rate-limited). The process actually killed can be one of its children.
    KillCandidate {
        /// `Out of memory`, `Memory cgroup out of memory`, ...
        message: String,
        /// The chosen process.
        pid: u32,
        /// Its comm.
        comm: String,
        /// Its badness score as printed.
        score: u64,
    },
    /// A victim was sent SIGKILL.
    Killed(KilledProcess),
    /// `Tasks in <memcg> are going to be killed due to memory.oom.group set`: the `Killed
    /// process` lines that follow are the rest of the group.
    GroupKill {
        /// The memcg being killed as a whole.
        memcg: String,
    },
    /// `<msg>: OOM victim <pid> (<comm>) is already exiting. Skip killing the task`.
    VictimExiting {
        /// `Out of memory`, `Memory cgroup out of memory`, ...
        message: String,
        /// The victim.
        pid: u32,
        /// Its comm.
        comm: String,
    },
    /// `Out of memory and no killable processes...`: the report ends without a kill.
    NoKillable,
    /// The OOM reaper freed a victim's memory (recognized so callers can ignore it).
    Reaped(ReapedProcess),
}

/// Recognizes one OOM-killer message (the `message` of a [`KmsgRecord`], still escaped). `None`
/// for every other line, including all the report's detail lines (stack, meminfo, task list).
pub fn parse_oom_line(msg: &str) -> Option<OomLine> {
    let msg = msg.trim_end_matches(['\n', '\r']);
    // Each form is tried in turn: a comm can contain another form's keywords.
    let forms: [fn(&str) -> Option<OomLine>; 9] = [
        |m| parse_summary(m.strip_prefix("oom-kill:")?).map(OomLine::Summary),
        |m| parse_reaped(m.strip_prefix("oom_reaper: reaped process ")?).map(OomLine::Reaped),
        |m| {
            let (comm, rest) = m.split_once(" invoked oom-killer: ")?;
            parse_header(comm, rest).map(OomLine::Header)
        },
        |m| {
            let (prefix, body) = m.split_once("Killed process ")?;
            let message = if prefix.is_empty() {
                None
            } else {
                Some(prefix.strip_suffix(": ")?.to_owned())
            };
            parse_killed(message, body).map(OomLine::Killed)
        },
        |m| {
            let (message, body) = m.split_once(": Kill process ")?;
            let (pid, comm, rest) = pid_comm(body, ") score ")?;
            let score = rest.strip_suffix(" or sacrifice child")?.parse().ok()?;
            Some(OomLine::KillCandidate {
                message: message.to_owned(),
                pid,
                comm,
                score,
            })
        },
        |m| {
            let (message, body) = m.split_once(": OOM victim ")?;
            let (pid, comm, rest) = pid_comm(body, ") is already exiting. Skip killing the task")?;
            rest.is_empty().then(|| OomLine::VictimExiting {
                message: message.to_owned(),
                pid,
                comm,
            })
        },
        |m| {
            let memcg = m
                .strip_prefix("Tasks in ")?
                .strip_suffix(" are going to be killed due to memory.oom.group set")?;
            Some(OomLine::GroupKill {
                memcg: unescape_lossy(memcg),
            })
        },
        |m| {
            let (task, oom) = m
                .strip_prefix("Task in ")?
                .split_once(" killed as a result of limit of ")?;
            Some(OomLine::MemcgLimit {
                task_memcg: unescape_lossy(task),
                oom_memcg: unescape_lossy(oom),
            })
        },
        |m| (m == "Out of memory and no killable processes...").then_some(OomLine::NoKillable),
    ];
    forms.iter().find_map(|form| form(msg))
}

/// `<pid> (<comm><end>rest`: the comm runs to the **last** `end` (the kernel prints `(%s)` and a
/// comm may itself contain `(`, `)` and spaces).
fn pid_comm<'a>(body: &'a str, end: &str) -> Option<(u32, String, &'a str)> {
    let (pid, rest) = body.split_once(" (")?;
    let pid = parse_u32(pid)?;
    let at = rest.rfind(end)?;
    Some((pid, unescape_lossy(&rest[..at]), &rest[at + end.len()..]))
}

fn parse_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_kb(text: &str) -> Option<u64> {
    let digits = text.strip_suffix("kB")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn parse_header(comm: &str, rest: &str) -> Option<OomHeader> {
    let rest = rest.strip_prefix("gfp_mask=")?;
    let hex_end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || c == 'x' || c == 'X'))
        .unwrap_or(rest.len());
    let mask_text = &rest[..hex_end];
    let gfp_mask = match mask_text
        .strip_prefix("0x")
        .or_else(|| mask_text.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => mask_text.parse().ok()?,
    };
    let mut rest = &rest[hex_end..];
    let mut gfp_flags = None;
    if let Some(inner) = rest.strip_prefix('(') {
        let close = inner.find(')')?;
        gfp_flags = Some(inner[..close].to_owned());
        rest = &inner[close + 1..];
    }
    let (mut nodemask, mut order, mut adj) = (None, None, None);
    // `, key=value` pairs; a node list has commas but never ", ".
    for pair in rest.strip_prefix(", ")?.split(", ") {
        let (key, value) = pair.split_once('=')?;
        match key {
            "nodemask" => nodemask = Some(value.to_owned()),
            "order" => order = Some(value.parse().ok()?),
            "oom_score_adj" => adj = Some(value.parse().ok()?),
            _ => {}
        }
    }
    Some(OomHeader {
        trigger_comm: unescape_lossy(comm),
        gfp_mask,
        gfp_flags,
        nodemask,
        order: order?,
        oom_score_adj: adj?,
    })
}

/// The fields of the summary line between `constraint=` and `task=`, each optional, in order.
const SUMMARY_KEYS: [&str; 6] = [
    ",nodemask=",
    ",cpuset=",
    ",mems_allowed=",
    ",oom_memcg=",
    ",global_oom",
    ",task_memcg=",
];
fn parse_summary(body: &str) -> Option<OomSummary> {
    let (rest, uid) = body.rsplit_once(",uid=")?;
    // uid is printed with %d: an unmapped uid shows as -1.
    let uid = parse_u32(uid).or_else(|| uid.parse::<i32>().ok().map(i32::cast_unsigned))?;
    let (rest, pid) = rest.rsplit_once(",pid=")?;
    let pid = parse_u32(pid)?;
    let (context, comm) = rest.rsplit_once(",task=")?;
    let context = context.strip_prefix("constraint=")?;
    // The fields between constraint and task, each optional but in this order: SUMMARY_KEYS.
    let mut found: Vec<(usize, usize, usize)> = Vec::new(); // (key index, key start, value start)
    let mut cursor = 0;
    for (k, key) in SUMMARY_KEYS.iter().enumerate() {
        if let Some(at) = context[cursor..].find(key) {
            let start = cursor + at;
            found.push((k, start, start + key.len()));
            cursor = start + key.len();
        }
    }
    let constraint_end = found.first().map_or(context.len(), |f| f.1);
    let mut values: [Option<&str>; 6] = [None; 6];
    for (i, &(k, _, value_start)) in found.iter().enumerate() {
        let value_end = found.get(i + 1).map_or(context.len(), |next| next.1);
        values[k] = Some(&context[value_start..value_end]);
    }
    let global_oom = values[4].is_some();
    if values[4].is_some_and(|v| !v.is_empty()) {
        return None;
    }
    let constraint = &context[..constraint_end];
    if constraint.is_empty() {
        return None;
    }
    Some(OomSummary {
        constraint: constraint.to_owned(),
        nodemask: values[0].map(str::to_owned),
        cpuset: values[1].map(unescape_lossy),
        mems_allowed: values[2].map(str::to_owned),
        oom_memcg: values[3].map(unescape_lossy),
        global_oom,
        task_memcg: values[5].map(unescape_lossy),
        comm: unescape_lossy(comm),
        pid,
        uid,
    })
}

fn parse_killed(message: Option<String>, body: &str) -> Option<KilledProcess> {
    let (pid, comm, rest) = pid_comm(body, ") total-vm:")?;
    let mut k = KilledProcess {
        message,
        pid,
        comm,
        total_vm_kb: 0,
        anon_rss_kb: 0,
        file_rss_kb: 0,
        shmem_rss_kb: 0,
        uid: None,
        pgtables_kb: None,
        oom_score_adj: None,
    };
    let mut seen = 0u8;
    let tail = format!("total-vm:{rest}");
    for item in tail.split([',', ' ']).filter(|s| !s.is_empty()) {
        let (key, value) = item.split_once(':')?;
        match key {
            "total-vm" => (k.total_vm_kb, seen) = (parse_kb(value)?, seen | 1),
            "anon-rss" => (k.anon_rss_kb, seen) = (parse_kb(value)?, seen | 2),
            "file-rss" => (k.file_rss_kb, seen) = (parse_kb(value)?, seen | 4),
            "shmem-rss" => (k.shmem_rss_kb, seen) = (parse_kb(value)?, seen | 8),
            "UID" => k.uid = Some(parse_u32(value)?),
            "pgtables" => k.pgtables_kb = Some(parse_kb(value)?),
            "oom_score_adj" => k.oom_score_adj = Some(value.parse().ok()?),
            _ => {} // a field from a newer kernel
        }
    }
    (seen == 15).then_some(k)
}

fn parse_reaped(body: &str) -> Option<ReapedProcess> {
    let (pid, comm, rest) = pid_comm(body, "), now ")?;
    let mut r = ReapedProcess {
        pid,
        comm,
        anon_rss_kb: 0,
        file_rss_kb: 0,
        shmem_rss_kb: 0,
    };
    let mut seen = 0u8;
    for item in rest.split(", ") {
        let (key, value) = item.split_once(':')?;
        match key {
            "anon-rss" => (r.anon_rss_kb, seen) = (parse_kb(value)?, seen | 1),
            "file-rss" => (r.file_rss_kb, seen) = (parse_kb(value)?, seen | 2),
            "shmem-rss" => (r.shmem_rss_kb, seen) = (parse_kb(value)?, seen | 4),
            _ => {}
        }
    }
    (seen == 7).then_some(r)
}

/// Maps a printed constraint to oomtrace's name: `CONSTRAINT_NONE` → `none`, `CONSTRAINT_CPUSET`
/// → `cpuset`, `CONSTRAINT_MEMORY_POLICY` → `mempolicy`, `CONSTRAINT_MEMCG` → `memcg`; anything
/// else is lower-cased without the `CONSTRAINT_` prefix.
pub fn constraint_name(printed: &str) -> String {
    match printed {
        "CONSTRAINT_NONE" => "none".to_owned(),
        "CONSTRAINT_CPUSET" => "cpuset".to_owned(),
        "CONSTRAINT_MEMORY_POLICY" => "mempolicy".to_owned(),
        "CONSTRAINT_MEMCG" => "memcg".to_owned(),
        other => other
            .strip_prefix("CONSTRAINT_")
            .unwrap_or(other)
            .to_ascii_lowercase(),
    }
}

/// One OOM kill as the kernel log tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsgKill {
    /// Timestamp of the `Killed process` record, µs since boot.
    pub ts_usec: u64,
    /// Sequence number of the `Killed process` record.
    pub seq: u64,
    /// The victim.
    pub pid: u32,
    /// The victim's comm (unescaped, lossy UTF-8).
    pub comm: String,
    /// Victim's `total-vm`, kB.
    pub total_vm_kb: u64,
    /// Victim's `anon-rss`, kB.
    pub anon_rss_kb: u64,
    /// Victim's `file-rss`, kB.
    pub file_rss_kb: u64,
    /// Victim's `shmem-rss`, kB.
    pub shmem_rss_kb: u64,
    /// Victim's uid: the kill line's `UID:` (5.4+), else the matching summary's `uid=` (5.0).
    pub uid: Option<u32>,
    /// Victim's page tables, kB (5.4+).
    pub pgtables_kb: Option<u64>,
    /// Victim's `oom_score_adj` (5.4+).
    pub oom_score_adj: Option<i32>,
    /// System-wide OOM (`Out of memory...`) rather than a memcg one. Taken from the kill line's
    /// prefix (5.4+), else the `Kill process` line (≤ 5.0), else the summary or 4.x memcg line;
    /// `false` when nothing in the log says.
    pub global: bool,
    /// `none`, `cpuset`, `mempolicy` or `memcg` (see [`constraint_name`]), from the summary.
    pub constraint: Option<String>,
    /// The OOM domain: the memcg whose limit was hit.
    pub oom_memcg: Option<String>,
    /// The victim's own memcg.
    pub task_memcg: Option<String>,
    /// The failed allocation's gfp mask, from the header.
    pub gfp_mask: Option<u64>,
    /// The failed allocation's order, from the header.
    pub order: Option<i32>,
    /// The task whose allocation failed (`current`), from the header.
    pub trigger_comm: Option<String>,
    /// The trigger's `oom_score_adj`, from the header.
    pub trigger_oom_score_adj: Option<i32>,
    /// Set on the kills that follow a `Tasks in <memcg> are going to be killed due to
    /// memory.oom.group set` line: that memcg. (The first victim of a group kill is printed before
    /// that line and has `None`; it may be printed, and counted by the kernel, a second time
    /// during the group scan if it has not exited yet.)
    pub oom_group: Option<String>,
}

/// The lines of the OOM report being read.
#[derive(Debug, Clone, Default)]
struct OomContext {
    header: Option<OomHeader>,
    summary: Option<OomSummary>,
    /// 4.x `Task in ... killed as a result of limit of ...`: (task memcg, oom memcg).
    memcg_limit: Option<(String, String)>,
    /// ≤ 5.0 `Kill process` line: (message, pid).
    candidate: Option<(String, u32)>,
}

impl OomContext {
    fn is_empty(&self) -> bool {
        self.header.is_none()
            && self.summary.is_none()
            && self.memcg_limit.is_none()
            && self.candidate.is_none()
    }
}

#[derive(Debug, Clone)]
struct GroupState {
    /// The context of the group's first kill (summary kept only if it matched that kill).
    context: OomContext,
    memcg: String,
    /// Timestamp of the group's last line.
    last_ts: u64,
}

/// Turns the OOM lines of the log, in order, into one [`KmsgKill`] per `Killed process` line.
///
/// Rules, so that a kill never gets the context of another OOM:
/// - a header starts a new OOM (and drops whatever came before); summary, `Task in` and `Kill
///   process` lines add to it; a second one of the same kind without a header in between means
///   the header of a new OOM was rate-limited away, and starts an empty OOM;
/// - a `Killed process` line gets the header (gfp mask, order, trigger) of the current OOM, and
///   the summary's fields only if the summary's `pid=` is the killed pid; then the state is reset,
///   so the next kill, whose header and summary the kernel may have suppressed (10 per 5 s), gets
///   `None` for them;
/// - a report that ends without a kill (`OOM victim ... is already exiting`, `Out of memory and no
///   killable processes...`) is dropped;
/// - `Tasks in <memcg> are going to be killed due to memory.oom.group set` re-opens the OOM of the
///   kill just before it for the group's `Killed process` lines: they get its header, its
///   constraint and OOM memcg (if its summary matched), and `oom_group`. A group line is followed
///   by its kills at once (one CPU, under `oom_lock`), so the group ends at the next header,
///   summary, `Task in` or `Kill process` line, or when more than the group window (default
///   [`OomAssembler::DEFAULT_GROUP_WINDOW_USEC`]) passes between two of its lines; a
///   header-suppressed OOM's kill inside that window would be taken for a group member.
///
/// `oom_reaper` and unrelated lines change nothing.
#[derive(Debug, Clone)]
pub struct OomAssembler {
    context: OomContext,
    /// Context of the last kill and its timestamp, for a group line that may follow.
    last_kill: Option<(OomContext, u64)>,
    group: Option<GroupState>,
    group_window_usec: u64,
}

impl Default for OomAssembler {
    fn default() -> Self {
        Self::new()
    }
}

impl OomAssembler {
    /// Longest gap between two lines of one group kill: 250 ms.
    pub const DEFAULT_GROUP_WINDOW_USEC: u64 = 250_000;

    /// An assembler with the default group window.
    pub fn new() -> Self {
        Self::with_group_window(Self::DEFAULT_GROUP_WINDOW_USEC)
    }

    /// An assembler whose group kills end after `usec` µs without a line of theirs.
    pub fn with_group_window(usec: u64) -> Self {
        Self {
            context: OomContext::default(),
            last_kill: None,
            group: None,
            group_window_usec: usec,
        }
    }

    /// Parses a record's message and feeds it (see [`OomAssembler::push`]).
    pub fn push_record(&mut self, record: &KmsgRecord) -> Option<KmsgKill> {
        let line = parse_oom_line(&record.message)?;
        self.push(record.seq, record.ts_usec, line)
    }

    /// Feeds the next OOM line (with its record's sequence number and timestamp); returns the kill
    /// when it is a `Killed process` line.
    pub fn push(&mut self, seq: u64, ts_usec: u64, line: OomLine) -> Option<KmsgKill> {
        match line {
            OomLine::Header(header) => {
                self.end_group();
                self.context = OomContext {
                    header: Some(header),
                    ..OomContext::default()
                };
            }
            OomLine::Summary(summary) => {
                self.end_group();
                if self.context.summary.is_some() {
                    self.context = OomContext::default();
                }
                self.context.summary = Some(summary);
            }
            OomLine::MemcgLimit {
                task_memcg,
                oom_memcg,
            } => {
                self.end_group();
                if self.context.memcg_limit.is_some() {
                    self.context = OomContext::default();
                }
                self.context.memcg_limit = Some((task_memcg, oom_memcg));
            }
            OomLine::KillCandidate { message, pid, .. } => {
                self.end_group();
                if self.context.candidate.is_some() {
                    self.context = OomContext::default();
                }
                self.context.candidate = Some((message, pid));
            }
            OomLine::GroupKill { memcg } => {
                let context = match self.last_kill.take() {
                    Some((context, ts)) if ts_usec.saturating_sub(ts) <= self.group_window_usec => {
                        context
                    }
                    _ => OomContext::default(),
                };
                self.context = OomContext::default();
                self.group = Some(GroupState {
                    context,
                    memcg,
                    last_ts: ts_usec,
                });
            }
            OomLine::VictimExiting { .. } => {
                if let Some(group) = self
                    .group
                    .as_mut()
                    .filter(|g| ts_usec.saturating_sub(g.last_ts) <= self.group_window_usec)
                {
                    group.last_ts = ts_usec;
                } else {
                    self.end_group();
                    self.context = OomContext::default();
                }
            }
            OomLine::NoKillable => {
                self.end_group();
                self.context = OomContext::default();
            }
            OomLine::Reaped(_) => {}
            OomLine::Killed(killed) => return Some(self.kill(seq, ts_usec, killed)),
        }
        None
    }

    fn end_group(&mut self) {
        self.group = None;
        self.last_kill = None;
    }

    fn kill(&mut self, seq: u64, ts_usec: u64, k: KilledProcess) -> KmsgKill {
        let window = self.group_window_usec;
        if let Some(group) = self
            .group
            .as_mut()
            .filter(|g| ts_usec.saturating_sub(g.last_ts) <= window)
        {
            group.last_ts = ts_usec;
            let mut kill = assemble(seq, ts_usec, k, &group.context);
            kill.oom_group = Some(group.memcg.clone());
            return kill;
        }
        self.group = None;
        let mut context = std::mem::take(&mut self.context);
        if context.summary.as_ref().is_some_and(|s| s.pid != k.pid) {
            context.summary = None;
        }
        let kill = assemble(seq, ts_usec, k, &context);
        self.last_kill = (!context.is_empty()).then_some((context, ts_usec));
        kill
    }
}

/// Builds a kill from its line and the OOM context it belongs to. Victim-specific fields (task
/// memcg, uid) are taken only when the context names the same pid.
fn assemble(seq: u64, ts_usec: u64, k: KilledProcess, context: &OomContext) -> KmsgKill {
    let header = context.header.as_ref();
    let summary = context.summary.as_ref();
    let same_pid_summary = summary.filter(|s| s.pid == k.pid);
    let is_memcg_message = |m: &str| m.starts_with("Memory cgroup");
    let global = if let Some(message) = &k.message {
        !is_memcg_message(message)
    } else if let Some((message, _)) = &context.candidate {
        !is_memcg_message(message)
    } else if let Some(s) = summary {
        s.constraint != "CONSTRAINT_MEMCG"
    } else {
        false
    };
    let (task_memcg, oom_memcg) = if let Some(s) = summary {
        (
            same_pid_summary.and_then(|s| s.task_memcg.clone()),
            s.oom_memcg.clone(),
        )
    } else if let Some((task, oom)) = &context.memcg_limit {
        // 4.x: the line is about the chosen process, which may not be the one killed.
        let same = context
            .candidate
            .as_ref()
            .is_none_or(|(_, pid)| *pid == k.pid);
        (same.then(|| task.clone()), Some(oom.clone()))
    } else {
        (None, None)
    };
    KmsgKill {
        ts_usec,
        seq,
        pid: k.pid,
        comm: k.comm,
        total_vm_kb: k.total_vm_kb,
        anon_rss_kb: k.anon_rss_kb,
        file_rss_kb: k.file_rss_kb,
        shmem_rss_kb: k.shmem_rss_kb,
        uid: k.uid.or_else(|| same_pid_summary.map(|s| s.uid)),
        pgtables_kb: k.pgtables_kb,
        oom_score_adj: k.oom_score_adj,
        global,
        constraint: summary.map(|s| constraint_name(&s.constraint)),
        oom_memcg,
        task_memcg,
        gfp_mask: header.map(|h| h.gfp_mask),
        order: header.map(|h| h.order),
        trigger_comm: header.map(|h| h.trigger_comm.clone()),
        trigger_oom_score_adj: header.map(|h| h.oom_score_adj),
        oom_group: None,
    }
}

#[cfg(test)]
mod tests;
