//! `oomtrace check`: what this kernel offers and which hooks `run` would use, and why not the
//! better ones. It really loads and attaches (then detaches) the programs: the answer is the
//! kernel's, not a guess.

use std::path::Path;

use serde::Serialize;

use crate::{
    cli::CheckArgs,
    kernel::{cgroups, tracefs},
    probes::{self, Attempt, HookChoice},
};

/// Capability names by bit (include/uapi/linux/capability.h).
const CAPS: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// Effective capabilities of this process, by name (`cap_bpf`, ...).
pub fn effective_caps() -> Vec<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let bits = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    CAPS.iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| format!("cap_{n}"))
        .collect()
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub kernel: String,
    pub btf: bool,
    pub tracefs: Option<String>,
    pub mark_victim_fields: Vec<String>,
    pub cgroup_mode: cgroups::CgroupMode,
    pub capabilities: Vec<String>,
    /// The hook `run` would use for each role (context: null when none can be used).
    pub victim_hook: Option<&'static str>,
    pub context_hook: Option<&'static str>,
    /// Every hook tried, in order of preference, with why it could not be used.
    pub attempts: Vec<Attempt>,
    pub offsets_missing: Vec<String>,
    pub error: Option<String>,
}

pub fn report() -> Report {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".into(), |s| s.trim().into());
    let mode = cgroups::detect(Path::new("/"));
    let mut r = Report {
        kernel,
        btf: Path::new(probes::BTF_PATH).exists(),
        tracefs: None,
        mark_victim_fields: Vec::new(),
        cgroup_mode: mode,
        capabilities: effective_caps(),
        victim_hook: None,
        context_hook: None,
        attempts: Vec::new(),
        offsets_missing: Vec::new(),
        error: None,
    };
    let root = match tracefs::ensure_mounted() {
        Ok(p) => p,
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    };
    r.tracefs = Some(root.display().to_string());
    if let Ok(f) = tracefs::EventFormat::load(&root, "oom", "mark_victim") {
        r.mark_victim_fields = f.fields.iter().map(|f| f.name.clone()).collect();
    }
    match probes::load(&probes::LoadOptions {
        tracefs: &root,
        ring_size: probes::DEFAULT_RING_SIZE,
        log_level: log::LevelFilter::Off,
        hooks: HookChoice::default(),
        cgroup_mode: mode,
        pin: None,
    }) {
        Ok(l) => {
            r.victim_hook = Some(l.victim.name());
            r.context_hook = l.context.map(probes::ContextHook::name);
            r.attempts = l.attempts;
            r.offsets_missing = l.missing_offsets;
        }
        Err(e) => r.error = Some(format!("{e:#}")),
    }
    r
}

pub fn run(args: &CheckArgs) -> anyhow::Result<bool> {
    let r = report();
    let out = if args.json {
        serde_json::to_string_pretty(&r)? + "\n"
    } else {
        text(&r)
    };
    // A closed pipe (`oomtrace check | head`) is not an error.
    match std::io::Write::write_all(&mut std::io::stdout(), out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    Ok(r.victim_hook.is_some())
}

fn text(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let yes = |b: bool| if b { "yes" } else { "no" };
    let _ = writeln!(out, "kernel:        {}", r.kernel);
    let _ = writeln!(out, "BTF:           {} ({})", yes(r.btf), probes::BTF_PATH);
    let _ = writeln!(
        out,
        "tracefs:       {}",
        r.tracefs.as_deref().unwrap_or("not available")
    );
    let _ = writeln!(
        out,
        "mark_victim:   fields {}",
        if r.mark_victim_fields.is_empty() {
            "?".into()
        } else {
            r.mark_victim_fields.join(" ")
        }
    );
    let _ = writeln!(out, "memory cgroup: {:?}", r.cgroup_mode);
    let _ = writeln!(out, "capabilities:  {}", r.capabilities.join(" "));
    let _ = writeln!(out, "hooks:");
    let victim = probes::VictimHook::ALL
        .iter()
        .find(|h| Some(h.name()) == r.victim_hook);
    let _ = match victim {
        Some(h) => writeln!(out, "  victim:  {} ({})", h.name(), h.what()),
        None => writeln!(out, "  victim:  NONE (oomtrace cannot trace here)"),
    };
    let _ = writeln!(
        out,
        "  context: {}",
        r.context_hook
            .unwrap_or("none (events carry no oom object)")
    );
    for a in &r.attempts {
        match &a.error {
            None => {
                let _ = writeln!(out, "    {}={}: ok", a.role, a.hook);
            }
            Some(e) => {
                let _ = writeln!(out, "    {}={}: unavailable: {e}", a.role, a.hook);
            }
        }
    }
    if !r.offsets_missing.is_empty() {
        let _ = writeln!(
            out,
            "kernel members not found (dependent fields are absent):"
        );
        for m in &r.offsets_missing {
            let _ = writeln!(out, "  {m}");
        }
    }
    if let Some(e) = &r.error {
        let _ = writeln!(out, "error: {e}");
    }
    out
}
