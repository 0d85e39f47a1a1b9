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
    /// Timestamp in µs since boot, from printk's `local_clock()` (not `CLOCK_BOOTTIME`).
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

/// The tests kept next to this file (`kmsg_parse/tests.rs`, added with the kmsg source).
#[cfg(test)]
#[path = "kmsg_parse/tests.rs"]
mod log_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded on kernel 6.18 host (6.18.44-fc-v769, cgroup v1), 2026-11-25: raw `/dev/kmsg`
    /// records of two memcg OOMs in a 64 MiB v1 cgroup `/kmsgtest`
    /// (`sh -c 'echo $$ > .../kmsgtest/cgroup.procs; exec python3 -c "b=bytearray(300*1024*1024)"'`,
    /// exit 137 both times, `memory.oom_control` `oom_kill 2`). The first OOM (seq 341–418) is
    /// complete; of the second (seq 419–496), whose python3 renamed itself with
    /// `prctl(PR_SET_NAME, b"my (w) n\xc3\xa9 x")` before allocating, the stack, meminfo and
    /// memcg-stats records are left out.
    const HOST_6_18: &str = r"4,341,674966408,-;python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
4,342,674966436,-;CPU: 1 UID: 0 PID: 9643 Comm: python3 Not tainted 6.18.44-fc-v769 #1 PREEMPT(none) 
4,343,674966457,-;Call Trace:
4,344,674967542,-; <TASK>
4,345,674967702,-; dump_stack_lvl+0x59/0x90
4,346,674969317,-; dump_header+0x43/0x1c0
4,347,674969363,-; oom_kill_process.cold+0x8/0x8a
4,348,674969366,-; out_of_memory+0x214/0x500
4,349,674970185,-; mem_cgroup_out_of_memory+0xe8/0x130
4,350,674970934,-; try_charge_memcg+0x439/0x700
4,351,674970951,-; charge_memcg+0x2f/0x90
4,352,674970953,-; __mem_cgroup_charge+0x2c/0x90
4,353,674971173,-; do_anonymous_page+0x220/0xaa0
4,354,674971589,-; ? ___pte_offset_map+0x17/0x100
4,355,674971606,-; __handle_mm_fault+0xa64/0xf80
4,356,674971611,-; handle_mm_fault+0xd0/0x310
4,357,674971613,-; exc_page_fault+0x176/0x770
4,358,674972557,-; asm_exc_page_fault+0x22/0x30
4,359,674972580,-;RIP: 0033:0x7f77ae58c0ba
4,360,674972582,-;Code: 00 00 48 c7 c1 ff ff ff ff c4 e2 e8 f5 c9 c4 e1 fb 92 c9 62 e1 7f 49 7f 00 c3 66 0f 1f 44 00 00 40 0f b6 c6 48 89 d1 48 89 fa <f3> aa 48 89 d0 c3 48 3b 15 09 53 06 00 77 e7 62 e1 fe 48 7f 07 62
4,361,674972583,-;RSP: 002b:00007ffe8297fe08 EFLAGS: 00010206
4,362,674972585,-;RAX: 0000000000000000 RBX: 00007f77ae3bac30 RCX: 000000000f2f3010
4,363,674972586,-;RDX: 00007f779b279010 RSI: 0000000000000000 RDI: 00007f779eb86000
4,364,674972587,-;RBP: 00007f77adea9150 R08: 00000000ffffffff R09: 0000000000000000
4,365,674972587,-;R10: 0000000000000022 R11: 0000000000000246 R12: 0000000012c00000
4,366,674972588,-;R13: 0000000000000000 R14: 0000000000000000 R15: 00007f77ae7c13d0
4,367,674972611,-; </TASK>
6,368,674972651,-;memory: usage 65536kB, limit 65536kB, failcnt 247
6,369,674972877,-;memory+swap: usage 65536kB, limit 9007199254740988kB, failcnt 0
6,370,674972878,-;kmem: usage 228kB, limit 9007199254740988kB, failcnt 0
6,371,674972879,-;Memory cgroup stats for /kmsgtest:
6,372,674972913,-;cache 16384
6,373,674972914,-;rss 66859008
6,374,674972914,-;rss_huge 0
6,375,674972915,-;shmem 0
6,376,674972915,-;mapped_file 0
6,377,674972916,-;dirty 0
6,378,674972916,-;writeback 0
6,379,674972917,-;workingset_refault_anon 0
6,380,674972917,-;workingset_refault_file 158
6,381,674972918,-;swap 0
6,382,674972918,-;swapcached 0
6,383,674972918,-;pgpgin 19559
6,384,674972919,-;pgpgout 3232
6,385,674972919,-;pgfault 23961
6,386,674972919,-;pgmajfault 1
6,387,674972920,-;inactive_anon 66740224
6,388,674972920,-;active_anon 4096
6,389,674972921,-;inactive_file 0
6,390,674972921,-;active_file 0
6,391,674972921,-;unevictable 0
6,392,674972922,-;hierarchical_memory_limit 67108864
6,393,674972922,-;hierarchical_memsw_limit 9223372036854771712
6,394,674972922,-;total_cache 16384
6,395,674972923,-;total_rss 66859008
6,396,674972923,-;total_rss_huge 0
6,397,674972924,-;total_shmem 0
6,398,674972924,-;total_mapped_file 0
6,399,674972924,-;total_dirty 0
6,400,674972925,-;total_writeback 0
6,401,674972925,-;total_workingset_refault_anon 0
6,402,674972925,-;total_workingset_refault_file 158
6,403,674972926,-;total_swap 0
6,404,674972926,-;total_swapcached 0
6,405,674972926,-;total_pgpgin 19559
6,406,674972926,-;total_pgpgout 3232
6,407,674972927,-;total_pgfault 23961
6,408,674972927,-;total_pgmajfault 1
6,409,674972927,-;total_inactive_anon 66740224
6,410,674972928,-;total_active_anon 4096
6,411,674972928,-;total_inactive_file 0
6,412,674972928,-;total_active_file 0
6,413,674972929,-;total_unevictable 0
6,414,674972929,-;Tasks state (memory values in pages):
6,415,674973158,-;[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name
6,416,674973160,-;[   9643]     0  9643    80942    17912    16288     1624         0   192512        0             0 python3
6,417,674973162,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kmsgtest,task_memcg=/kmsgtest,task=python3,pid=9643,uid=0
3,418,674973180,-;Memory cgroup out of memory: Killed process 9643 (python3) total-vm:323768kB, anon-rss:65152kB, file-rss:6496kB, shmem-rss:0kB, UID:0 pgtables:188kB oom_score_adj:0
4,419,676109859,-;my (w) n\xc3\xa9 x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
4,420,676109869,-;CPU: 1 UID: 0 PID: 9719 Comm: my (w) n\xc3\xa9 x Not tainted 6.18.44-fc-v769 #1 PREEMPT(none) 
6,449,676110216,-;Memory cgroup stats for /kmsgtest:
6,492,676110468,-;Tasks state (memory values in pages):
6,493,676110468,-;[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name
6,494,676110469,-;[   9719]     0  9719    80987    17984    16288     1696         0   196608        0             0 my (w) n\xc3\xa9 x
6,495,676110471,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kmsgtest,task_memcg=/kmsgtest,task=my (w) n\xc3\xa9 x,pid=9719,uid=0
3,496,676110482,-;Memory cgroup out of memory: Killed process 9719 (my (w) n\xc3\xa9 x) total-vm:323948kB, anon-rss:65152kB, file-rss:6784kB, shmem-rss:0kB, UID:0 pgtables:192kB oom_score_adj:0";

    /// Linux 4.9, memcg OOM in a cgroup v1 `/kmsgtest`. Written from the v4.9 tree
    /// (`github.com/lxuxx/linux-4.9` and `github.com/pengdonglin137/linux-4.9`, both 4.9.0 with
    /// the same `mm/oom_kill.c` blob):
    /// - 1001 `dump_header` (`mm/oom_kill.c`): `gfp_mask=%#x(%pGg), nodemask=%*pbl, order=%d,
    ///   oom_score_adj=%hd`; a NULL nodemask is replaced by `cpuset_current_mems_allowed`, so `0`;
    ///   `GFP_KERNEL` is 0x24000c0 in 4.9 (`___GFP_DIRECT_RECLAIM` 0x400000, `___GFP_KSWAPD_RECLAIM`
    ///   0x2000000);
    /// - 1002 `cpuset_print_current_mems_allowed` (kernel/cpuset.c);
    /// - 1003, 1004 `mem_cgroup_print_oom_info` (mm/memcontrol.c);
    /// - 1005, 1006 `dump_tasks` (4.9 column set);
    /// - 1007 `oom_kill_process`: `%s: Kill process %d (%s) score %u or sacrifice child`;
    /// - 1008 `oom_kill_process`: `Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB,
    ///   file-rss:%lukB, shmem-rss:%lukB` (no message prefix, no UID);
    /// - 1009 `__oom_reap_task_mm`.
    const V4_9: &str = "\
4,1001,2001000,-;python3 invoked oom-killer: gfp_mask=0x24000c0(GFP_KERNEL), nodemask=0, order=0, oom_score_adj=0
6,1002,2001010,-;python3 cpuset=/ mems_allowed=0
6,1003,2001100,-;Task in /kmsgtest killed as a result of limit of /kmsgtest
6,1004,2001110,-;memory: usage 65536kB, limit 65536kB, failcnt 51
6,1005,2001120,-;[ pid ]   uid  tgid total_vm      rss nr_ptes nr_pmds swapents oom_score_adj name
6,1006,2001130,-;[ 2469]     0  2469    80942    16426      60       3        0             0 python3
3,1007,2001140,-;Memory cgroup out of memory: Kill process 2469 (python3) score 1006 or sacrifice child
3,1008,2001150,-;Killed process 2469 (python3) total-vm:323768kB, anon-rss:64876kB, file-rss:828kB, shmem-rss:0kB
6,1009,2001900,-;oom_reaper: reaped process 2469 (python3), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
";

    /// Linux 4.19, group kill: cgroup v2 `/pod` with `memory.max` 64M and `memory.oom.group` 1,
    /// containers `/pod/c1` (pids 301, 302) and `/pod/c2` (303). Written from the 4.19.1 tree
    /// (`github.com/chens37/linux-4.19.1`; the print statements are the same in 4.19.304,
    /// `github.com/maxiangpan/linux-4.19`):
    /// - 2001 `dump_header`: `nodemask=%*pbl` of `oc->nodemask` (NULL → `(null)`), `GFP_KERNEL` is
    ///   0x6000c0 in 4.19;
    /// - 2002 `cpuset_print_current_mems_allowed` (kernel/cgroup/cpuset.c);
    /// - 2003, 2004 `mem_cgroup_print_oom_info`; 2005–2009 `dump_tasks`;
    /// - 2010 `oom_kill_process` (`Kill process`); 2011 `__oom_kill_process` (`Killed process`,
    ///   no prefix, no UID);
    /// - 2012 `mem_cgroup_print_oom_group` (mm/memcontrol.c); 2013–2015 `oom_kill_memcg_member` →
    ///   `__oom_kill_process` for every task of `/pod`, the first victim again included (it still
    ///   has its mm: nothing in 4.19's `__oom_kill_process` skips it).
    ///
    /// There is no `oom-kill:` summary in 4.19: `dump_oom_summary` first appears in 5.0.
    const V4_19_GROUP: &str = "\
4,2001,5001000,-;dd invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=0
6,2002,5001010,-;dd cpuset=/ mems_allowed=0
6,2003,5001100,-;Task in /pod/c2 killed as a result of limit of /pod
6,2004,5001110,-;memory: usage 65536kB, limit 65536kB, failcnt 0
6,2005,5001120,-;Tasks state (memory values in pages):
6,2006,5001130,-;[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
6,2007,5001140,-;[    301]     0   301     4992     5020    69632        0             0 dd
6,2008,5001150,-;[    302]     0   302     4992     5020    69632        0             0 dd
6,2009,5001160,-;[    303]     0   303    10608    10656   114688        0             0 dd
3,2010,5001200,-;Memory cgroup out of memory: Kill process 303 (dd) score 652 or sacrifice child
3,2011,5001210,-;Killed process 303 (dd) total-vm:42432kB, anon-rss:41040kB, file-rss:1584kB, shmem-rss:0kB
6,2012,5001220,-;Tasks in /pod are going to be killed due to memory.oom.group set
3,2013,5001230,-;Killed process 301 (dd) total-vm:19968kB, anon-rss:18496kB, file-rss:1584kB, shmem-rss:0kB
3,2014,5001240,-;Killed process 302 (dd) total-vm:19968kB, anon-rss:18496kB, file-rss:1584kB, shmem-rss:0kB
3,2015,5001250,-;Killed process 303 (dd) total-vm:42432kB, anon-rss:41040kB, file-rss:1584kB, shmem-rss:0kB
";

    /// Linux 5.0, memcg OOM (v1 `/kmsgtest`) where the chosen process has a child with its own
    /// mm, which is killed instead ("sacrifice child"). Written from the 5.0.1 tree
    /// (`github.com/VVvector/linux-5.0.1`, same `mm/oom_kill.c` blob as 5.0.4 in
    /// `github.com/KuanKuanQAQ/adelie-kaslr-linux-5.0.4`):
    /// - 3001 `dump_header`: no nodemask since 5.0; 3002 `mem_cgroup_print_oom_meminfo`;
    /// - 3003–3006 `dump_tasks`; 3007 `dump_oom_summary` (last line of `dump_header`, about the
    ///   chosen process `p`), `cpuset=`/`mems_allowed=` from `cpuset_print_current_mems_allowed`,
    ///   `oom_memcg=`/`task_memcg=` from `mem_cgroup_print_oom_context`;
    /// - 3008 `oom_kill_process` (`Kill process` of the chosen parent);
    /// - 3009 `__oom_kill_process` (`Killed process` of the child, no prefix, no UID).
    const V5_0_CHILD: &str = "\
4,3001,7001000,-;java invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL), order=0, oom_score_adj=0
6,3002,7001100,-;memory: usage 65536kB, limit 65536kB, failcnt 9
6,3003,7001110,-;Tasks state (memory values in pages):
6,3004,7001120,-;[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
6,3005,7001130,-;[   3000]  1000  3000   812345    15900   401408        0             0 java
6,3006,7001140,-;[   3010]  1000  3010     1120      217    45056        0             0 sh
6,3007,7001150,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kmsgtest,task_memcg=/kmsgtest,task=java,pid=3000,uid=1000
3,3008,7001160,-;Memory cgroup out of memory: Kill process 3000 (java) score 994 or sacrifice child
3,3009,7001170,-;Killed process 3010 (sh) total-vm:4480kB, anon-rss:88kB, file-rss:780kB, shmem-rss:0kB
";

    /// Linux 5.4, global OOM (busybox `tail /dev/zero` in a systemd session), then the reaper.
    /// Written from the 5.4.0 tree (`github.com/jashawnyu/linux-5.4`):
    /// - 4001 `dump_header` (`GFP_HIGHUSER_MOVABLE` is 0x100cca since 5.2's renumbering);
    /// - 4002–4004 `dump_tasks`;
    /// - 4005 `dump_oom_summary`: `mem_cgroup_print_oom_context` prints `,global_oom` instead of
    ///   `,oom_memcg=` when `oc->memcg` is NULL;
    /// - 4006 `__oom_kill_process`: `%s: Killed process %d (%s) total-vm:%lukB, anon-rss:%lukB,
    ///   file-rss:%lukB, shmem-rss:%lukB, UID:%u pgtables:%lukB oom_score_adj:%hd` (the prefix,
    ///   `UID`, `pgtables` and `oom_score_adj` are all there in 5.4; `Kill process` is gone);
    /// - 4007 `oom_reap_task_mm`.
    const V5_4_GLOBAL: &str = "\
4,4001,9001000,-;tail invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0
6,4002,9001100,-;Tasks state (memory values in pages):
6,4003,9001110,-;[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
6,4004,9001120,-;[    812]     0   812    62791    60859   540672        0             0 tail
6,4005,9001130,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice/user-0.slice/session-1.scope,task=tail,pid=812,uid=0
3,4006,9001140,-;Out of memory: Killed process 812 (tail) total-vm:251164kB, anon-rss:243432kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:528kB oom_score_adj:0
6,4007,9001500,-;oom_reaper: reaped process 812 (tail), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB
";

    /// Linux 5.10, a Kubernetes pod in an OOM storm (cgroup v1). Written from the 5.10.0 tree
    /// (`github.com/wqhot/linux-5.10`):
    /// - 5001, 5002 `dump_header` + `dump_oom_summary`, 5003 `__oom_kill_process`;
    /// - 5004: the next OOM's kill, its header and summary suppressed by `oom_kill_process`'s
    ///   `__ratelimit(&oom_rs)` (10 per 5 s);
    /// - 5005, 5006: an OOM where nothing is killable: `out_of_memory` calls `dump_header(oc,
    ///   NULL)` (header, no summary; not rate-limited) then `Out of memory and no killable
    ///   processes...`;
    /// - 5007: a later kill whose header was suppressed again.
    const V5_10_STORM: &str = "\
4,5001,11001000,-;stress invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=939
6,5002,11001100,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod1,task_memcg=/kubepods/burstable/pod1/c1,task=stress,pid=5100,uid=0
3,5003,11001110,-;Memory cgroup out of memory: Killed process 5100 (stress) total-vm:73828kB, anon-rss:65408kB, file-rss:260kB, shmem-rss:0kB, UID:0 pgtables:172kB oom_score_adj:939
3,5004,11501110,-;Memory cgroup out of memory: Killed process 5101 (stress) total-vm:73828kB, anon-rss:65400kB, file-rss:264kB, shmem-rss:0kB, UID:0 pgtables:172kB oom_score_adj:939
4,5005,12001000,-;pause invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=-998
4,5006,12001100,-;Out of memory and no killable processes...
3,5007,12501110,-;Memory cgroup out of memory: Killed process 5102 (stress) total-vm:73828kB, anon-rss:65412kB, file-rss:256kB, shmem-rss:0kB, UID:0 pgtables:172kB oom_score_adj:939
";

    /// Linux 6.1, group kill: cgroup v2 `/pod` (`memory.oom.group` 1) with `/pod/c1`..`/pod/c4`.
    /// Written from the v6.1 tree (`github.com/TeddyNight/linux-6.1` = 6.1.15, same
    /// `mm/oom_kill.c` blob as 6.1-rc7 in `github.com/krr-io/linux-6.1.0`):
    /// - 6001 `dump_header`; 6002 `mem_cgroup_print_oom_meminfo`; 6003–6008 `dump_tasks`;
    ///   6009 `dump_oom_summary` (about the chosen victim 404);
    /// - 6010 `__oom_kill_process(victim, "Memory cgroup out of memory")`;
    /// - 6011 `mem_cgroup_print_oom_group`; then `mem_cgroup_scan_tasks(oom_group,
    ///   oom_kill_memcg_member, message)` calls `__oom_kill_process` for every process of `/pod`
    ///   with the **same** message: 6012, 6013 `Memory cgroup out of memory: Killed process`;
    ///   6014 a member without mm (`find_lock_task_mm` fails): `OOM victim ... is already
    ///   exiting`; 6015 the chosen victim again (`SIGKILL`ed but not exited yet: printed, and
    ///   counted in `oom_kill`, a second time);
    /// - 6016: two seconds later, another OOM whose header and summary were rate-limited away.
    const V6_1_GROUP: &str = "\
4,6001,20001000,-;dd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0
6,6002,20001100,-;memory: usage 65536kB, limit 65536kB, failcnt 87
6,6003,20001110,-;Tasks state (memory values in pages):
6,6004,20001120,-;[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name
6,6005,20001130,-;[    401]     0   401     4992     5020    69632        0             0 dd
6,6006,20001131,-;[    402]     0   402     4992     5020    69632        0             0 dd
6,6007,20001132,-;[    403]     0   403      596       12    40960        0             0 sh
6,6008,20001133,-;[    404]     0   404    10894    10656   114688        0             0 dd
6,6009,20001160,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/pod,task_memcg=/pod/c4,task=dd,pid=404,uid=0
3,6010,20001170,-;Memory cgroup out of memory: Killed process 404 (dd) total-vm:43576kB, anon-rss:41036kB, file-rss:1588kB, shmem-rss:0kB, UID:0 pgtables:112kB oom_score_adj:0
6,6011,20001180,-;Tasks in /pod are going to be killed due to memory.oom.group set
3,6012,20001190,-;Memory cgroup out of memory: Killed process 401 (dd) total-vm:19968kB, anon-rss:18496kB, file-rss:1584kB, shmem-rss:0kB, UID:0 pgtables:68kB oom_score_adj:0
3,6013,20001200,-;Memory cgroup out of memory: Killed process 402 (dd) total-vm:19968kB, anon-rss:18496kB, file-rss:1584kB, shmem-rss:0kB, UID:0 pgtables:68kB oom_score_adj:0
6,6014,20001210,-;Memory cgroup out of memory: OOM victim 403 (sh) is already exiting. Skip killing the task
3,6015,20001220,-;Memory cgroup out of memory: Killed process 404 (dd) total-vm:43576kB, anon-rss:41036kB, file-rss:1588kB, shmem-rss:0kB, UID:0 pgtables:112kB oom_score_adj:0
3,6016,22001220,-;Memory cgroup out of memory: Killed process 410 (dd) total-vm:43576kB, anon-rss:41036kB, file-rss:1588kB, shmem-rss:0kB, UID:0 pgtables:112kB oom_score_adj:0
";

    fn records(text: &str) -> Vec<KmsgRecord> {
        text.lines()
            .map(|l| parse_record(l).unwrap_or_else(|| panic!("not a record: {l}")))
            .collect()
    }

    fn assemble_all(text: &str) -> Vec<KmsgKill> {
        let mut asm = OomAssembler::new();
        records(text)
            .iter()
            .filter_map(|r| asm.push_record(r))
            .collect()
    }

    #[allow(clippy::unnecessary_wraps)] // shorthand for the many `Some(String)` fields
    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    /// The fields a kill line alone gives, everything else empty.
    fn bare(seq: u64, ts_usec: u64, pid: u32, comm: &str, kb: [u64; 4]) -> KmsgKill {
        KmsgKill {
            ts_usec,
            seq,
            pid,
            comm: comm.to_owned(),
            total_vm_kb: kb[0],
            anon_rss_kb: kb[1],
            file_rss_kb: kb[2],
            shmem_rss_kb: kb[3],
            uid: None,
            pgtables_kb: None,
            oom_score_adj: None,
            global: false,
            constraint: None,
            oom_memcg: None,
            task_memcg: None,
            gfp_mask: None,
            order: None,
            trigger_comm: None,
            trigger_oom_score_adj: None,
            oom_group: None,
        }
    }

    #[test]
    fn parse_records() {
        let r = parse_record("6,1234,5678901,-;text").unwrap();
        assert_eq!(
            (r.level, r.facility, r.seq, r.ts_usec),
            (6, 0, 1234, 5_678_901)
        );
        assert_eq!(
            (r.continuation, r.caller.as_deref(), r.message.as_str()),
            (false, None, "text")
        );
        // Facility, continuation flag, CONFIG_PRINTK_CALLER field, `;` inside the message.
        let r = parse_record("12,7,1,c,caller=T42;a;b").unwrap();
        assert_eq!((r.level, r.facility, r.continuation), (4, 1, true));
        assert_eq!(
            (r.caller.as_deref(), r.message.as_str()),
            (Some("T42"), "a;b")
        );
        // A whole read(): the record and its dictionary.
        let r = parse_record("6,339,1365662,-;virtio_blk virtio1: [vda] new size\n SUBSYSTEM=virtio\n DEVICE=+virtio:virtio1\n").unwrap();
        assert_eq!(r.message, "virtio_blk virtio1: [vda] new size");
        // Dictionary lines alone are skipped; a message starting with a space is not one.
        assert_eq!(parse_record(" SUBSYSTEM=virtio"), None);
        assert_eq!(
            parse_record("4,345,674967702,-; dump_stack_lvl+0x59/0x90")
                .unwrap()
                .message,
            " dump_stack_lvl+0x59/0x90"
        );
        // An empty message.
        assert_eq!(parse_record("6,1,2,-;").unwrap().message, "");
        for bad in [
            "",
            "text",
            "6,1,2;x",
            "6,1,2,;x",
            "a,1,2,-;x",
            "6,-1,2,-;x",
            "6,1,2.5,-;x",
            "6,1,2,-",
            "6,1,2,%;x",
            "999999999999,1,2,-;x",
        ] {
            assert_eq!(parse_record(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn host_6_18_recorded() {
        let recs = records(HOST_6_18);
        let lines: Vec<_> = recs
            .iter()
            .filter_map(|r| parse_oom_line(&r.message).map(|l| (r.seq, l)))
            .collect();
        // Exactly header, summary and kill of each OOM are recognized; the 80 other records
        // (stack, registers, meminfo, memcg stats, task table) are not.
        assert_eq!(
            lines.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            [341, 417, 418, 419, 495, 496]
        );
        assert_eq!(
            lines[0].1,
            OomLine::Header(OomHeader {
                trigger_comm: "python3".into(),
                gfp_mask: 0xcc0,
                gfp_flags: s("GFP_KERNEL"),
                nodemask: None,
                order: 0,
                oom_score_adj: 0
            })
        );
        assert_eq!(
            lines[1].1,
            OomLine::Summary(OomSummary {
                constraint: "CONSTRAINT_MEMCG".into(),
                nodemask: s("(null)"),
                cpuset: s("/"),
                mems_allowed: s("0"),
                oom_memcg: s("/kmsgtest"),
                global_oom: false,
                task_memcg: s("/kmsgtest"),
                comm: "python3".into(),
                pid: 9643,
                uid: 0
            })
        );
        let kills = assemble_all(HOST_6_18);
        let full = |k: KmsgKill| KmsgKill {
            uid: Some(0),
            oom_score_adj: Some(0),
            constraint: s("memcg"),
            oom_memcg: s("/kmsgtest"),
            task_memcg: s("/kmsgtest"),
            gfp_mask: Some(0xcc0),
            order: Some(0),
            trigger_oom_score_adj: Some(0),
            ..k
        };
        assert_eq!(
            kills,
            [
                full(KmsgKill {
                    pgtables_kb: Some(188),
                    trigger_comm: s("python3"),
                    ..bare(
                        418,
                        674_973_180,
                        9643,
                        "python3",
                        [323_768, 65_152, 6_496, 0]
                    )
                }),
                full(KmsgKill {
                    pgtables_kb: Some(192),
                    trigger_comm: s("my (w) n\u{e9} x"),
                    ..bare(
                        496,
                        676_110_482,
                        9719,
                        "my (w) n\u{e9} x",
                        [323_948, 65_152, 6_784, 0]
                    )
                }),
            ]
        );
    }

    #[test]
    fn v4_9_memcg() {
        let kills = assemble_all(V4_9);
        assert_eq!(
            kills,
            [KmsgKill {
                oom_memcg: s("/kmsgtest"),
                task_memcg: s("/kmsgtest"),
                gfp_mask: Some(0x0240_00c0),
                order: Some(0),
                trigger_comm: s("python3"),
                trigger_oom_score_adj: Some(0),
                ..bare(1008, 2_001_150, 2469, "python3", [323_768, 64_876, 828, 0])
            }]
        );
        let recs = records(V4_9);
        match parse_oom_line(&recs[0].message) {
            Some(OomLine::Header(h)) => assert_eq!(h.nodemask.as_deref(), Some("0")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_oom_line(&recs[6].message),
            Some(OomLine::KillCandidate {
                message: "Memory cgroup out of memory".into(),
                pid: 2469,
                comm: "python3".into(),
                score: 1006
            })
        );
        assert_eq!(
            parse_oom_line(&recs[8].message),
            Some(OomLine::Reaped(ReapedProcess {
                pid: 2469,
                comm: "python3".into(),
                anon_rss_kb: 0,
                file_rss_kb: 0,
                shmem_rss_kb: 0
            }))
        );
    }

    #[test]
    fn v4_19_group_kill() {
        let kills = assemble_all(V4_19_GROUP);
        let ctx = |k: KmsgKill| KmsgKill {
            oom_memcg: s("/pod"),
            gfp_mask: Some(0x0060_00c0),
            order: Some(0),
            trigger_comm: s("dd"),
            trigger_oom_score_adj: Some(0),
            ..k
        };
        let big = [42_432, 41_040, 1_584, 0];
        let small = [19_968, 18_496, 1_584, 0];
        assert_eq!(
            kills,
            [
                // The chosen one: `Task in /pod/c2` is about it.
                ctx(KmsgKill {
                    task_memcg: s("/pod/c2"),
                    ..bare(2011, 5_001_210, 303, "dd", big)
                }),
                ctx(KmsgKill {
                    oom_group: s("/pod"),
                    ..bare(2013, 5_001_230, 301, "dd", small)
                }),
                ctx(KmsgKill {
                    oom_group: s("/pod"),
                    ..bare(2014, 5_001_240, 302, "dd", small)
                }),
                ctx(KmsgKill {
                    oom_group: s("/pod"),
                    task_memcg: s("/pod/c2"),
                    ..bare(2015, 5_001_250, 303, "dd", big)
                }),
            ]
        );
        assert!(kills.iter().all(|k| !k.global && k.constraint.is_none()));
    }

    #[test]
    fn v5_0_sacrificed_child_gets_no_summary() {
        let kills = assemble_all(V5_0_CHILD);
        // The summary is about java (3000), the kill about its child sh (3010): the header is the
        // same OOM's, the summary is not attached.
        assert_eq!(
            kills,
            [KmsgKill {
                gfp_mask: Some(0x0060_00c0),
                order: Some(0),
                trigger_comm: s("java"),
                trigger_oom_score_adj: Some(0),
                ..bare(3009, 7_001_170, 3010, "sh", [4_480, 88, 780, 0])
            }]
        );
        // The same lines without the child: everything attaches, uid from the summary.
        let text = V5_0_CHILD.replace("Killed process 3010 (sh)", "Killed process 3000 (java)");
        let k = &assemble_all(&text)[0];
        assert_eq!(
            (k.uid, k.constraint.as_deref(), k.oom_memcg.as_deref()),
            (Some(1000), Some("memcg"), Some("/kmsgtest"))
        );
        assert_eq!(k.task_memcg.as_deref(), Some("/kmsgtest"));
    }

    #[test]
    fn v5_4_global() {
        let kills = assemble_all(V5_4_GLOBAL);
        assert_eq!(
            kills,
            [KmsgKill {
                uid: Some(0),
                pgtables_kb: Some(528),
                oom_score_adj: Some(0),
                global: true,
                constraint: s("none"),
                task_memcg: s("/user.slice/user-0.slice/session-1.scope"),
                gfp_mask: Some(0x0010_0cca),
                order: Some(0),
                trigger_comm: s("tail"),
                trigger_oom_score_adj: Some(0),
                ..bare(4006, 9_001_140, 812, "tail", [251_164, 243_432, 4, 0])
            }]
        );
        match parse_oom_line(&records(V5_4_GLOBAL)[4].message) {
            Some(OomLine::Summary(sum)) => assert!(sum.global_oom && sum.oom_memcg.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn v5_10_rate_limited_kills_get_no_stale_context() {
        let kills = assemble_all(V5_10_STORM);
        assert_eq!(kills.len(), 3);
        let first = &kills[0];
        assert_eq!(
            (first.pid, first.trigger_comm.as_deref(), first.gfp_mask),
            (5100, Some("stress"), Some(0xcc0))
        );
        assert_eq!(first.oom_memcg.as_deref(), Some("/kubepods/burstable/pod1"));
        assert_eq!(
            first.task_memcg.as_deref(),
            Some("/kubepods/burstable/pod1/c1")
        );
        assert_eq!(
            (first.oom_score_adj, first.trigger_oom_score_adj),
            (Some(939), Some(939))
        );
        // Back-to-back kills: the second one's header and summary were suppressed.
        for k in &kills[1..] {
            assert_eq!(
                (k.trigger_comm.as_ref(), k.gfp_mask, k.order),
                (None, None, None),
                "{k:?}"
            );
            assert_eq!(
                (
                    k.constraint.as_ref(),
                    k.oom_memcg.as_ref(),
                    k.task_memcg.as_ref()
                ),
                (None, None, None),
                "{k:?}"
            );
            assert!(!k.global && k.oom_group.is_none());
            // What the kill line itself says is there.
            assert_eq!(
                (k.uid, k.pgtables_kb, k.oom_score_adj),
                (Some(0), Some(172), Some(939))
            );
        }
        // The `pause` header of the OOM that killed nothing is not given to 5102.
        assert_eq!((kills[1].pid, kills[2].pid), (5101, 5102));
    }

    #[test]
    fn v6_1_group_kill() {
        let kills = assemble_all(V6_1_GROUP);
        let ctx = |k: KmsgKill| KmsgKill {
            uid: Some(0),
            oom_score_adj: Some(0),
            constraint: s("memcg"),
            oom_memcg: s("/pod"),
            gfp_mask: Some(0xcc0),
            order: Some(0),
            trigger_comm: s("dd"),
            trigger_oom_score_adj: Some(0),
            ..k
        };
        let big = [43_576, 41_036, 1_588, 0];
        let small = [19_968, 18_496, 1_584, 0];
        assert_eq!(
            kills,
            [
                ctx(KmsgKill {
                    task_memcg: s("/pod/c4"),
                    pgtables_kb: Some(112),
                    ..bare(6010, 20_001_170, 404, "dd", big)
                }),
                ctx(KmsgKill {
                    oom_group: s("/pod"),
                    pgtables_kb: Some(68),
                    ..bare(6012, 20_001_190, 401, "dd", small)
                }),
                ctx(KmsgKill {
                    oom_group: s("/pod"),
                    pgtables_kb: Some(68),
                    ..bare(6013, 20_001_200, 402, "dd", small)
                }),
                ctx(KmsgKill {
                    oom_group: s("/pod"),
                    task_memcg: s("/pod/c4"),
                    pgtables_kb: Some(112),
                    ..bare(6015, 20_001_220, 404, "dd", big)
                }),
                // Two seconds later, header suppressed: not part of the group, no context.
                KmsgKill {
                    uid: Some(0),
                    pgtables_kb: Some(112),
                    oom_score_adj: Some(0),
                    ..bare(6016, 22_001_220, 410, "dd", big)
                },
            ]
        );
        assert_eq!(
            parse_oom_line(&records(V6_1_GROUP)[13].message),
            Some(OomLine::VictimExiting {
                message: "Memory cgroup out of memory".into(),
                pid: 403,
                comm: "sh".into()
            })
        );
    }

    fn kill(pid: u32) -> OomLine {
        OomLine::Killed(KilledProcess {
            message: s("Out of memory"),
            pid,
            comm: "x".into(),
            total_vm_kb: 1,
            anon_rss_kb: 1,
            file_rss_kb: 0,
            shmem_rss_kb: 0,
            uid: Some(0),
            pgtables_kb: Some(4),
            oom_score_adj: Some(0),
        })
    }

    fn header(comm: &str) -> OomLine {
        OomLine::Header(OomHeader {
            trigger_comm: comm.into(),
            gfp_mask: 0x0014_0cca,
            gfp_flags: None,
            nodemask: None,
            order: 0,
            oom_score_adj: 0,
        })
    }

    #[test]
    fn assembly_with_and_without_header() {
        let summary = |pid: u32| {
            parse_oom_line(&format!("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x,pid={pid},uid=0")).unwrap()
        };
        let mut asm = OomAssembler::new();
        // A kill with nothing before it.
        let k = asm.push(1, 10, kill(7)).unwrap();
        assert!(k.global && k.trigger_comm.is_none() && k.constraint.is_none());
        // Header → summary → kill.
        assert_eq!(asm.push(2, 20, header("a")), None);
        assert_eq!(asm.push(3, 21, summary(8)), None);
        assert_eq!(
            asm.push(
                4,
                21,
                OomLine::Reaped(ReapedProcess {
                    pid: 7,
                    comm: "x".into(),
                    anon_rss_kb: 0,
                    file_rss_kb: 0,
                    shmem_rss_kb: 0
                })
            ),
            None
        );
        let k = asm.push(5, 22, kill(8)).unwrap();
        assert_eq!(
            (
                k.trigger_comm.as_deref(),
                k.constraint.as_deref(),
                k.task_memcg.as_deref()
            ),
            (Some("a"), Some("none"), Some("/"))
        );
        // Back to back: nothing carried over.
        let k = asm.push(6, 23, kill(9)).unwrap();
        assert!(k.trigger_comm.is_none() && k.constraint.is_none());
        // A summary for another pid is not attached; the header of the same OOM is.
        asm.push(7, 30, header("b"));
        asm.push(8, 30, summary(10));
        let k = asm.push(9, 31, kill(11)).unwrap();
        assert_eq!(
            (k.trigger_comm.as_deref(), k.constraint.as_ref()),
            (Some("b"), None)
        );
        // A report that ends without a kill is dropped.
        asm.push(10, 40, header("c"));
        asm.push(
            11,
            40,
            OomLine::VictimExiting {
                message: "Out of memory".into(),
                pid: 12,
                comm: "x".into(),
            },
        );
        assert!(asm.push(12, 41, kill(13)).unwrap().trigger_comm.is_none());
        // A second summary without a header: a new OOM whose header was lost.
        asm.push(13, 50, header("d"));
        asm.push(14, 50, summary(14));
        asm.push(15, 50, summary(15));
        let k = asm.push(16, 51, kill(15)).unwrap();
        assert_eq!(
            (k.trigger_comm.as_ref(), k.constraint.as_deref()),
            (None, Some("none"))
        );
    }

    #[test]
    fn group_window() {
        let mut asm = OomAssembler::new();
        // A group line long after the kill does not revive its context.
        asm.push(17, 60, header("e"));
        asm.push(18, 60, kill(16));
        asm.push(
            19,
            60 + OomAssembler::DEFAULT_GROUP_WINDOW_USEC + 1,
            OomLine::GroupKill { memcg: "/g".into() },
        );
        let k = asm
            .push(
                20,
                60 + OomAssembler::DEFAULT_GROUP_WINDOW_USEC + 2,
                kill(17),
            )
            .unwrap();
        assert_eq!(
            (k.trigger_comm.as_ref(), k.oom_group.as_deref()),
            (None, Some("/g"))
        );
        // A header ends a group.
        asm.push(21, 1_000_000, header("f"));
        let k = asm.push(22, 1_000_001, kill(18)).unwrap();
        assert_eq!(
            (k.trigger_comm.as_deref(), k.oom_group.as_ref()),
            (Some("f"), None)
        );
        // A custom window.
        let mut asm = OomAssembler::with_group_window(10);
        asm.push(1, 0, header("g"));
        asm.push(2, 0, kill(1));
        asm.push(3, 5, OomLine::GroupKill { memcg: "/g".into() });
        assert_eq!(
            asm.push(4, 14, kill(2)).unwrap().trigger_comm.as_deref(),
            Some("g")
        );
        assert_eq!(asm.push(5, 30, kill(3)).unwrap().oom_group, None);
        assert!(
            OomAssembler::default()
                .push(1, 1, OomLine::NoKillable)
                .is_none()
        );
    }

    #[test]
    fn headers_of_every_era() {
        let h = |m: &str| match parse_oom_line(m) {
            Some(OomLine::Header(h)) => h,
            other => panic!("{m}: {other:?}"),
        };
        // 4.4 (`gfp_mask=0x%x, order=%d, oom_score_adj=%hd`): no flag names.
        let x = h("java invoked oom-killer: gfp_mask=0x24201ca, order=0, oom_score_adj=0");
        assert_eq!((x.gfp_mask, x.gfp_flags, x.order), (0x0242_01ca, None, 0));
        // 4.9 with a flag name the table no longer has, and a node list.
        let x = h(
            "a.out invoked oom-killer: gfp_mask=0x24201ca(GFP_HIGHUSER_MOVABLE|__GFP_COLD), nodemask=0-1,3, order=0, oom_score_adj=0",
        );
        assert_eq!(
            (x.gfp_flags.as_deref(), x.nodemask.as_deref()),
            (Some("GFP_HIGHUSER_MOVABLE|__GFP_COLD"), Some("0-1,3"))
        );
        // 4.19 pagefault_out_of_memory: gfp_mask 0 prints as `0x0()`.
        let x =
            h("app invoked oom-killer: gfp_mask=0x0(), nodemask=(null), order=0, oom_score_adj=0");
        assert_eq!(
            (x.gfp_mask, x.gfp_flags.as_deref(), x.nodemask.as_deref()),
            (0, Some(""), Some("(null)"))
        );
        // sysrq-f: order -1; negative oom_score_adj; a comm with the separator's neighbours.
        let x = h(
            "kworker/0:1 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=-1, oom_score_adj=-999",
        );
        assert_eq!(
            (x.trigger_comm.as_str(), x.order, x.oom_score_adj),
            ("kworker/0:1", -1, -999)
        );
        // Unknown leftover bits inside the flags.
        assert_eq!(h("x invoked oom-killer: gfp_mask=0x1000cc0(GFP_KERNEL|0x1000000), order=0, oom_score_adj=0").gfp_mask, 0x0100_0cc0);
        for bad in [
            "x invoked oom-killer: ",
            "x invoked oom-killer: gfp_mask=zz, order=0, oom_score_adj=0",
            "x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL, order=0, oom_score_adj=0",
            "x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0",
            "x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=a, oom_score_adj=0",
            "x invoked oom-killer: gfp_mask=0x1ffffffffffffffff(), order=0, oom_score_adj=0",
        ] {
            assert_eq!(parse_oom_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn summaries() {
        let sum = |m: &str| match parse_oom_line(m) {
            Some(OomLine::Summary(x)) => x,
            other => panic!("{m}: {other:?}"),
        };
        // Without CONFIG_CPUSETS and CONFIG_MEMCG; a comm with commas and `=`; uid printed as -1.
        let x = sum(
            "oom-kill:constraint=CONSTRAINT_MEMORY_POLICY,nodemask=0,2-3,task=a,b=c,pid=5,uid=-1",
        );
        assert_eq!(
            (
                x.nodemask.as_deref(),
                x.cpuset.as_ref(),
                x.oom_memcg.as_ref()
            ),
            (Some("0,2-3"), None, None)
        );
        assert_eq!((x.comm.as_str(), x.pid, x.uid), ("a,b=c", 5, u32::MAX));
        assert_eq!(constraint_name(&x.constraint), "mempolicy");
        // Escaped bytes in the cgroup paths and comm.
        let x = sum(
            r"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/caf\xc3\xa9,task_memcg=/caf\xc3\xa9/a\x5cb,task=t\x09ab,pid=1,uid=0",
        );
        assert_eq!(
            (
                x.oom_memcg.as_deref(),
                x.task_memcg.as_deref(),
                x.comm.as_str()
            ),
            (Some("/caf\u{e9}"), Some("/caf\u{e9}/a\\b"), "t\tab")
        );
        assert_eq!(constraint_name("CONSTRAINT_CPUSET"), "cpuset");
        assert_eq!(constraint_name("CONSTRAINT_NONE"), "none");
        assert_eq!(constraint_name("CONSTRAINT_FUTURE_THING"), "future_thing");
        for bad in [
            "oom-kill:",
            "oom-kill:constraint=CONSTRAINT_NONE,task=x,pid=1",
            "oom-kill:constraint=CONSTRAINT_NONE,task=x,pid=,uid=0",
            "oom-kill:nodemask=(null),task=x,pid=1,uid=0",
            "oom-kill:constraint=,nodemask=(null),task=x,pid=1,uid=0",
            "oom-kill:constraint=CONSTRAINT_NONE,global_oomX,task=x,pid=1,uid=0",
            "oom-kill:constraint=CONSTRAINT_NONE,task=x,pid=1,uid=0x",
        ] {
            assert_eq!(parse_oom_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn comms_with_spaces_parens_and_escapes() {
        let killed = |m: &str| match parse_oom_line(m) {
            Some(OomLine::Killed(k)) => k,
            other => panic!("{m}: {other:?}"),
        };
        let tail = "total-vm:8kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0";
        let k = killed(&format!(
            "Out of memory: Killed process 12 (my (weird) name) {tail}"
        ));
        assert_eq!(
            (k.pid, k.comm.as_str(), k.message.as_deref()),
            (12, "my (weird) name", Some("Out of memory"))
        );
        // The comm ends at the *last* `) total-vm:`.
        assert_eq!(
            killed(&format!(
                "Out of memory: Killed process 12 (a) total-vm:1) {tail}"
            ))
            .comm,
            "a) total-vm:1"
        );
        // `\xNN` escapes: UTF-8, a backslash, a control byte, and a comm cut inside a character.
        assert_eq!(
            killed(&format!(r"Killed process 1 (caf\xc3\xa9) {tail}")).comm,
            "caf\u{e9}"
        );
        assert_eq!(
            killed(&format!(r"Killed process 1 (a\x5cx41) {tail}")).comm,
            r"a\x41"
        );
        assert_eq!(
            killed(&format!(r"Killed process 1 (a\x0ab) {tail}")).comm,
            "a\nb"
        );
        assert_eq!(
            killed(&format!(r"Killed process 1 (abcdefghijklmn\xc3) {tail}")).comm,
            "abcdefghijklmn\u{fffd}"
        );
        // A comm that looks like another line.
        assert_eq!(
            killed(&format!("Killed process 3 (Kill process ) {tail}")).comm,
            "Kill process "
        );
        assert_eq!(
            parse_oom_line(
                "Out of memory: Kill process 3 (Killed process ) score 5 or sacrifice child"
            ),
            Some(OomLine::KillCandidate {
                message: "Out of memory".into(),
                pid: 3,
                comm: "Killed process ".into(),
                score: 5
            })
        );
        assert_eq!(
            parse_oom_line(
                "oom_reaper: reaped process 4 (x), now y), now anon-rss:1kB, file-rss:2kB, shmem-rss:3kB"
            ),
            Some(OomLine::Reaped(ReapedProcess {
                pid: 4,
                comm: "x), now y".into(),
                anon_rss_kb: 1,
                file_rss_kb: 2,
                shmem_rss_kb: 3
            }))
        );
        assert_eq!(
            parse_oom_line(
                r"Tasks in /k8s/p\xc3\xa9 are going to be killed due to memory.oom.group set"
            ),
            Some(OomLine::GroupKill {
                memcg: "/k8s/p\u{e9}".into()
            })
        );
        // The oom_kill_allocating_task message counts as global.
        let mut asm = OomAssembler::new();
        let line = parse_oom_line(&format!(
            "Out of memory (oom_kill_allocating_task): Killed process 5 (x) {tail}"
        ))
        .unwrap();
        assert!(asm.push(1, 1, line).unwrap().global);
        // Unescaping by itself: incomplete escapes stay as they are.
        assert_eq!(unescape(r"\x4"), br"\x4");
        assert_eq!(unescape(r"\xZZ\x41\"), br"\xZZA\");
        assert_eq!(unescape_lossy(r"\xff"), "\u{fffd}");
    }

    #[test]
    fn garbage_is_none_and_never_panics() {
        for bad in [
            "",
            "hello",
            "Killed process",
            "Killed process 12 (abc",
            "Killed process 12 (abc) total-vm:",
            "Killed process x (abc) total-vm:1kB, anon-rss:1kB, file-rss:1kB, shmem-rss:1kB",
            "Killed process 99999999999 (abc) total-vm:1kB, anon-rss:1kB, file-rss:1kB, shmem-rss:1kB",
            "Killed process 1 (abc) total-vm:1kB, anon-rss:1kB, file-rss:1kB",
            "Killed process 1 (abc) total-vm:1MB, anon-rss:1kB, file-rss:1kB, shmem-rss:1kB",
            "Killed process 1 (abc) total-vm:-1kB, anon-rss:1kB, file-rss:1kB, shmem-rss:1kB",
            "Killed process 1 (abc) total-vm:1kB, anon-rss:1kB, file-rss:1kB, shmem-rss:1kB, UID:x",
            "nonsense Killed process 1 (abc) total-vm:1kB, anon-rss:1kB, file-rss:1kB, shmem-rss:1kB",
            "Out of memory: Kill process 1 (x) score 1",
            "Out of memory: Kill process 1 (x) score many or sacrifice child",
            "oom_reaper: reaped process 1 (x), now anon-rss:0kB",
            "oom_reaper: unable to reap pid:1 (x)",
            "Tasks in /x are going to be killed",
            "Task in /x killed",
            "Memory cgroup out of memory: OOM victim 1 (x) is already exiting. Skip killing the task now",
            "Out of memory and no killable processes",
            "oom killer 5 (x) has mm pinned by 1 (init)",
            "\u{0}\u{ffff}(((()))))",
        ] {
            assert_eq!(parse_oom_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn cut_lines_and_byte_soup_never_panic() {
        // Every prefix and suffix of every fixture line, and some byte soup: no panic.
        let all = [
            HOST_6_18,
            V4_9,
            V4_19_GROUP,
            V5_0_CHILD,
            V5_4_GLOBAL,
            V5_10_STORM,
            V6_1_GROUP,
        ]
        .concat();
        let mut asm = OomAssembler::new();
        for line in all.lines() {
            for (i, _) in line.char_indices() {
                for piece in [&line[..i], &line[i..]] {
                    if let Some(r) = parse_record(piece) {
                        let _ = asm.push_record(&r);
                    }
                    if let Some(l) = parse_oom_line(piece) {
                        let _ = asm.push(0, u64::MAX, l);
                    }
                }
            }
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let soup: String = (0..40)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    [
                        '(', ')', ' ', ',', ':', '=', 'k', 'B', '1', 'x', '\\', ';', '-', 'é',
                    ][(x >> 16) as usize % 14]
                })
                .collect();
            let _ = parse_record(&soup);
            let _ = parse_oom_line(&format!("Killed process 1 ({soup}"));
            let _ = parse_oom_line(&format!("oom-kill:constraint={soup}"));
            let _ = parse_oom_line(&format!("x invoked oom-killer: gfp_mask=0x1({soup}"));
        }
    }
}
