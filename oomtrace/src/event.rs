//! The event oomtrace reports for each OOM victim, and how it is built from ring records.
//!
//! The JSON field names are a public contract (docs/events.md): pipelines parse them. Add fields,
//! never rename or retype one. A field the kernel or the hook could not provide is omitted.

use serde::Serialize;

use oomtrace_common::{VictimRecord, hook, present};

use crate::clock;

/// `"schema"` of every event: bump only on an incompatible change.
pub const SCHEMA: u32 = 1;

/// One OOM victim.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Always `"oom_kill"` for victims (other kinds of line: `"lost"`).
    pub kind: &'static str,
    pub schema: u32,
    /// Wall time (RFC 3339, UTC, nanoseconds) of the kernel's boot-clock stamp.
    pub time: String,
    /// `CLOCK_BOOTTIME` nanoseconds when the kernel marked the victim.
    pub boot_ns: u64,
    pub node: String,
    /// Program that saw the victim: `tracepoint`, `raw_tracepoint` or `tp_btf`.
    pub hook: &'static str,
    pub victim: Victim,
    /// The task that ran the OOM killer (`current`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Victim {
    pub pid: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tgid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_vm_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anon_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shmem_rss_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgtables_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub swap_kb: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trigger {
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
}

/// `task->comm` bytes up to the first NUL, as UTF-8. The kernel cuts comm at 15 bytes, possibly
/// inside a multi-byte character: the broken tail becomes U+FFFD so the JSON stays valid UTF-8.
pub fn comm_str(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

pub fn hook_name(h: u32) -> &'static str {
    match h {
        hook::TRACEPOINT => "tracepoint",
        hook::RAW_TRACEPOINT => "raw_tracepoint",
        hook::TP_BTF => "tp_btf",
        hook::KPROBE => "kprobe",
        hook::FENTRY => "fentry",
        _ => "unknown",
    }
}

impl Event {
    /// Builds the event of one victim record.
    pub fn from_victim(r: &VictimRecord, node: &str) -> Self {
        let has = |bit: u64| r.present & bit != 0;
        let opt = |bit: u64, v: u64| has(bit).then_some(v);
        let victim = Victim {
            pid: r.pid,
            tgid: has(present::TGID).then_some(r.tgid),
            comm: has(present::COMM).then(|| comm_str(&r.comm)),
            uid: has(present::UID).then_some(r.uid),
            total_vm_kb: opt(present::TOTAL_VM, r.total_vm_kb),
            anon_rss_kb: opt(present::ANON_RSS, r.anon_rss_kb),
            file_rss_kb: opt(present::FILE_RSS, r.file_rss_kb),
            shmem_rss_kb: opt(present::SHMEM_RSS, r.shmem_rss_kb),
            pgtables_kb: opt(present::PGTABLES, r.pgtables_kb),
            swap_kb: opt(present::SWAP, r.swap_kb),
            oom_score_adj: has(present::OOM_SCORE_ADJ).then_some(r.oom_score_adj),
        };
        let trigger = has(present::TRIGGER).then(|| Trigger {
            pid: r.trigger_pid,
            tgid: r.trigger_tgid,
            comm: comm_str(&r.trigger_comm),
        });
        Self {
            kind: "oom_kill",
            schema: SCHEMA,
            time: clock::rfc3339(clock::boot_to_unix_ns(r.header.boot_ns)),
            boot_ns: r.header.boot_ns,
            node: node.to_string(),
            hook: hook_name(r.hook),
            victim,
            trigger,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comm_cut_inside_a_character_stays_utf8() {
        // "ééééééé-x" is 2*7+2 bytes; the kernel keeps 15: 7 'é' and the first byte of... no:
        // 14 bytes of 'é' then '-'. Cut one byte earlier to split a character.
        let name = "ééééééééé"; // 18 bytes
        let mut buf = [0u8; 16];
        buf[..15].copy_from_slice(&name.as_bytes()[..15]);
        let s = comm_str(&buf);
        assert_eq!(s, "ééééééé\u{FFFD}");
        assert!(serde_json::to_string(&s).is_ok());
    }

    #[test]
    fn absent_fields_are_omitted() {
        let r = crate::decode::tests::victim(42);
        let e = Event::from_victim(&r, "n1");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["victim"]["pid"], 42);
        assert_eq!(v["victim"]["comm"], "hog1");
        assert!(v["victim"].get("uid").is_none(), "uid absent, not 0: {v}");
        assert!(v["victim"].get("oom_score_adj").is_none());
        assert!(v.get("trigger").is_none());
        assert_eq!(v["hook"], "tracepoint");
        assert_eq!(v["schema"], 1);
    }
}
