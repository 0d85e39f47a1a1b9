//! tracefs: where it is, mounting it when missing, and the layout of `oom:mark_victim`.
//!
//! The tracepoint's fields differ between kernels (pid only from 4.13 to 6.8; comm, RSS counters,
//! uid, pgtables and oom_score_adj since 72ba14deb40a, mainline 6.9, backported to some stable
//! trees). The `format` file names each field with its offset, size and signedness; we read it at
//! start-up and pass the locations to the program.

use std::{
    io,
    path::{Path, PathBuf},
};

use oomtrace_common::tp_field;

/// Where tracefs is normally mounted.
pub const TRACEFS: &str = "/sys/kernel/tracing";
/// The older place, through debugfs.
pub const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    #[error("mounting tracefs on {path}: {source}")]
    Mount { path: String, source: io::Error },
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path}: line {line}: {reason}")]
    Format {
        path: String,
        line: usize,
        reason: String,
    },
}

/// Returns the tracefs root, mounting tracefs on [`TRACEFS`] when no tracefs is mounted.
pub fn ensure_mounted() -> Result<PathBuf, TracefsError> {
    for root in [TRACEFS, DEBUGFS_TRACING] {
        if Path::new(root).join("events").is_dir() {
            return Ok(PathBuf::from(root));
        }
    }
    log::info!("tracefs is not mounted; mounting it on {TRACEFS}");
    super::mount_pseudo_fs("tracefs", Path::new(TRACEFS)).map_err(|source| {
        TracefsError::Mount {
            path: TRACEFS.into(),
            source,
        }
    })?;
    Ok(PathBuf::from(TRACEFS))
}

/// One `field:` line of a format file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The C declaration without the name, e.g. `unsigned long`, `__data_loc char[]`.
    pub c_type: String,
    pub name: String,
    pub offset: u16,
    pub size: u8,
    pub signed: bool,
}

impl Field {
    /// The location for the eBPF program (`oomtrace_common::tp_field`).
    pub fn encode(&self) -> u32 {
        tp_field::encode(self.offset, self.size, self.signed)
    }
    /// `__data_loc` fields hold `(len << 16) | offset` of a string stored after the fixed fields.
    pub fn is_data_loc(&self) -> bool {
        self.c_type.starts_with("__data_loc")
    }
}

/// A parsed event `format` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFormat {
    pub name: String,
    pub id: Option<u32>,
    /// The event's own fields (the `common_*` header fields are left out).
    pub fields: Vec<Field>,
}

impl EventFormat {
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Reads and parses `<tracefs>/events/<system>/<event>/format`.
    pub fn load(tracefs: &Path, system: &str, event: &str) -> Result<Self, TracefsError> {
        let path = tracefs
            .join("events")
            .join(system)
            .join(event)
            .join("format");
        let text = std::fs::read_to_string(&path).map_err(|source| TracefsError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| TracefsError::Format {
            path: path.display().to_string(),
            line,
            reason,
        })
    }

    /// Parses a format file. Errors carry the 1-based line number and what was wrong.
    pub fn parse(text: &str) -> Result<Self, (usize, String)> {
        let mut name = None;
        let mut id = None;
        let mut fields = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let lineno = i + 1;
            if let Some(v) = line.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("ID:") {
                id = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| (lineno, format!("bad ID {v:?}")))?,
                );
            } else if line.starts_with("field:") {
                let f = parse_field(line).map_err(|r| (lineno, r))?;
                if !f.name.starts_with("common_") {
                    fields.push(f);
                }
            } else if line.starts_with("print fmt:") {
                break;
            }
        }
        let name = name.ok_or((0, "no name: line".to_string()))?;
        Ok(Self { name, id, fields })
    }
}

/// `field:unsigned long total_vm;\toffset:16;\tsize:8;\tsigned:0;`
fn parse_field(line: &str) -> Result<Field, String> {
    let mut decl = None;
    let mut offset = None;
    let mut size = None;
    let mut signed = None;
    for part in line.split(';') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (k, v) = part
            .split_once(':')
            .ok_or_else(|| format!("no ':' in {part:?}"))?;
        let v = v.trim();
        match k.trim() {
            "field" => decl = Some(v.to_string()),
            "offset" => offset = Some(v.parse::<u16>().map_err(|_| format!("bad offset {v:?}"))?),
            "size" => size = Some(v.parse::<u8>().map_err(|_| format!("bad size {v:?}"))?),
            "signed" => signed = Some(v == "1"),
            _ => {}
        }
    }
    let decl = decl.ok_or("no field declaration")?;
    // The name is the last identifier of the declaration, before any array brackets.
    let (c_type, name) =
        split_decl(&decl).ok_or_else(|| format!("cannot read declaration {decl:?}"))?;
    Ok(Field {
        c_type,
        name,
        offset: offset.ok_or("no offset")?,
        size: size.ok_or("no size")?,
        signed: signed.unwrap_or(false),
    })
}

fn split_decl(decl: &str) -> Option<(String, String)> {
    let decl = decl.trim();
    // `char comm[16]`: the name stands before the brackets; `__data_loc char[] comm`: at the end.
    let (head, brackets) = match decl.rfind('[') {
        Some(i) if decl.ends_with(']') => (decl[..i].trim_end(), &decl[i..]),
        _ => (decl, ""),
    };
    // The byte after the last character that cannot be in a name (which may be multi-byte).
    let start = head
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let name = &head[start..];
    if name.is_empty() || start == 0 || name.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((
        format!("{}{brackets}", head[..start].trim_end()),
        name.to_string(),
    ))
}

/// The `oom:mark_victim` field locations the tracepoint program needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MarkVictimLayout {
    pub pid: u32,
    pub comm: u32,
    pub total_vm: u32,
    pub anon_rss: u32,
    pub file_rss: u32,
    pub shmem_rss: u32,
    pub uid: u32,
    pub pgtables: u32,
    pub oom_score_adj: u32,
}

impl MarkVictimLayout {
    /// Picks the known fields out of the format; unknown ones are ignored, missing ones stay 0
    /// (absent). `pid` is required: every kernel with the event has it.
    pub fn from_format(f: &EventFormat) -> Result<Self, String> {
        let get = |n: &str| f.field(n).map_or(0, Field::encode);
        let pid = f.field("pid").ok_or("mark_victim has no pid field")?;
        if pid.size != 4 {
            return Err(format!("mark_victim pid has size {}, expected 4", pid.size));
        }
        let comm = match f.field("comm") {
            Some(c) if c.is_data_loc() && c.size == 4 => c.encode(),
            Some(c) => {
                return Err(format!(
                    "mark_victim comm is {:?}, expected __data_loc",
                    c.c_type
                ));
            }
            None => 0,
        };
        Ok(Self {
            pid: pid.encode(),
            comm,
            total_vm: get("total_vm"),
            anon_rss: get("anon_rss"),
            file_rss: get("file_rss"),
            shmem_rss: get("shmem_rss"),
            uid: get("uid"),
            pgtables: get("pgtables"),
            oom_score_adj: get("oom_score_adj"),
        })
    }

    /// Names of the globals in the eBPF object and their values.
    pub fn globals(&self) -> [(&'static str, u32); 9] {
        [
            ("TP_PID", self.pid),
            ("TP_COMM", self.comm),
            ("TP_TOTAL_VM", self.total_vm),
            ("TP_ANON_RSS", self.anon_rss),
            ("TP_FILE_RSS", self.file_rss),
            ("TP_SHMEM_RSS", self.shmem_rss),
            ("TP_UID", self.uid),
            ("TP_PGTABLES", self.pgtables),
            ("TP_OOM_SCORE_ADJ", self.oom_score_adj),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid-only layout of kernels 4.13 to 6.8, written from include/trace/events/oom.h
    /// (TRACE_EVENT(mark_victim, TP_PROTO(int pid), ... __field(int, pid))) and the common
    /// header every event has (8 bytes: type, flags, preempt_count, pid). Not recorded: no such
    /// kernel is at hand here.
    const PID_ONLY: &str = "name: mark_victim
ID: 412
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int pid;\toffset:8;\tsize:4;\tsigned:1;

print fmt: \"pid=%d\", REC->pid
";

    #[test]
    fn pid_only_layout() {
        let f = EventFormat::parse(PID_ONLY).expect("parses");
        assert_eq!(f.name, "mark_victim");
        assert_eq!(f.id, Some(412));
        assert_eq!(f.fields.len(), 1);
        let l = MarkVictimLayout::from_format(&f).expect("layout");
        assert_eq!(l.pid, tp_field::encode(8, 4, true));
        assert_eq!(l.comm, 0, "absent, not zero offset");
        assert_eq!(l.anon_rss, 0);
        assert_eq!(l.oom_score_adj, 0);
    }

    #[test]
    fn host_format_file() {
        let Some(root) = crate::testutil::tracefs_or_skip() else {
            return;
        };
        let f = EventFormat::load(&root, "oom", "mark_victim").expect("host format parses");
        let l = MarkVictimLayout::from_format(&f).expect("layout");
        assert_ne!(l.pid, 0);
        // The oracle: the file read as plain text, `field:TYPE NAME;\toffset:N;\tsize:N;\t
        // signed:N;` per line, split here without the product's parser.
        let text = std::fs::read_to_string(root.join("events/oom/mark_victim/format")).unwrap();
        let mut fields = std::collections::HashMap::new();
        for line in text.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix("field:") else {
                continue;
            };
            let parts: Vec<&str> = rest.split(';').map(str::trim).collect();
            let name = parts[0]
                .rsplit(' ')
                .next()
                .unwrap()
                .split('[')
                .next()
                .unwrap()
                .to_owned();
            let num = |key: &str| -> u32 {
                parts
                    .iter()
                    .find_map(|p| p.strip_prefix(key))
                    .unwrap_or_else(|| panic!("{key} in {line}"))
                    .parse()
                    .unwrap()
            };
            fields.insert(name, (num("offset:"), num("size:"), num("signed:") == 1));
        }
        assert!(fields.contains_key("pid"), "{text}");
        let ours = [
            ("pid", l.pid),
            ("comm", l.comm),
            ("total_vm", l.total_vm),
            ("anon_rss", l.anon_rss),
            ("file_rss", l.file_rss),
            ("shmem_rss", l.shmem_rss),
            ("uid", l.uid),
            ("pgtables", l.pgtables),
            ("oom_score_adj", l.oom_score_adj),
        ];
        for (name, enc) in ours {
            let want = fields.get(name).copied();
            let got = (enc != 0).then(|| {
                (
                    tp_field::offset(enc),
                    tp_field::size(enc),
                    enc & tp_field::SIGNED != 0,
                )
            });
            assert_eq!(got, want, "field {name}: (offset, size, signed)");
        }
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        for bad in [
            "",
            "name: mark_victim\n\tfield:int pid;\toffset:x;\tsize:4;\tsigned:1;\n",
            "name: mark_victim\n\tfield:int pid;\toffset:8;\tsigned:1;\n",
            "name: mark_victim\n\tfield:;\toffset:8;\tsize:4;\n",
            "name: mark_victim\n\tfield:int 8;\toffset:8;\tsize:4;\n",
            "name: mark_victim\n\tfield:int pid;\toffset:99999999;\tsize:4;\n",
        ] {
            assert!(EventFormat::parse(bad).is_err(), "{bad:?} must be rejected");
        }
        // A format without pid parses but has no usable layout.
        let f = EventFormat::parse(
            "name: mark_victim\n\tfield:int other;\toffset:8;\tsize:4;\tsigned:1;\n",
        )
        .unwrap();
        assert!(MarkVictimLayout::from_format(&f).is_err());
    }

    #[test]
    fn declarations() {
        assert_eq!(
            split_decl("unsigned long total_vm"),
            Some(("unsigned long".into(), "total_vm".into()))
        );
        assert_eq!(
            split_decl("__data_loc char[] comm"),
            Some(("__data_loc char[]".into(), "comm".into()))
        );
        assert_eq!(
            split_decl("char comm[16]"),
            Some(("char[16]".into(), "comm".into()))
        );
    }
}
