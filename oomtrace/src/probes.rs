//! Loading the eBPF object, handing it the kernel locations, and choosing and attaching hooks.
//!
//! Two roles, each with hooks in order of preference; the first that loads and attaches wins
//! (or the one forced with `--hooks`):
//! - `victim` (one record per OOM victim): `tp_btf` → `raw_tracepoint` → `fentry` → `kprobe` →
//!   `tracepoint`. The first two need a `mark_victim` tracepoint that passes the victim's
//!   `task_struct` (6.9+, and stable backports); on kernels where it passes only a pid they are
//!   refused before loading, and `fentry`/`kprobe` on `mark_oom_victim(struct task_struct *)`
//!   read the same whole record from the task. `tracepoint` is the last resort: whole only when
//!   the victim is the task that ran the OOM killer;
//! - `context` (one record per OOM, `oom_kill_process`): `fentry` → `kprobe` → none;
//! - `exit` (the victims' exits): `tracepoint` on `sched:sched_process_exit`, or none (then no
//!   `victim_exit` lines).
//!
//! Each attempt that fails says why; `oomtrace check` prints them.

use std::{cell::RefCell, fmt, path::Path, str::FromStr};

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::{BtfTracePoint, FEntry, FExit, KProbe, RawTracePoint, TracePoint, links::FdLink},
};
use aya_log::EbpfLogger;
use oomtrace_common::KernelOffsets;

use crate::kernel::{
    btf,
    cgroups::CgroupMode,
    offsets::{self, Resolved},
    tracefs::{EventFormat, MarkVictimLayout},
};

/// The eBPF object built by build.rs from `oomtrace-ebpf`, embedded in the binary.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/oomtrace.bpf.o"));

/// Default ring size: room for about 150 victim records in flight.
pub const DEFAULT_RING_SIZE: u32 = 256 * 1024;

pub const BTF_PATH: &str = "/sys/kernel/btf/vmlinux";

/// Hooks of the victim role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VictimHook {
    TpBtf,
    RawTracepoint,
    /// fentry on `mark_oom_victim`.
    Fentry,
    /// kprobe on `mark_oom_victim`.
    Kprobe,
    Tracepoint,
}

/// Hooks of the context role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextHook {
    Fentry,
    Kprobe,
}

impl VictimHook {
    pub const ALL: [Self; 5] = [
        Self::TpBtf,
        Self::RawTracepoint,
        Self::Fentry,
        Self::Kprobe,
        Self::Tracepoint,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Self::TpBtf => "tp_btf",
            Self::RawTracepoint => "raw_tracepoint",
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
            Self::Tracepoint => "tracepoint",
        }
    }

    /// What the hook gives, for `oomtrace check`.
    pub fn what(self) -> &'static str {
        match self {
            Self::TpBtf | Self::RawTracepoint => {
                "mark_victim passes the victim's task_struct: whole records"
            }
            Self::Fentry | Self::Kprobe => {
                "mark_oom_victim(task): whole records where mark_victim passes only a pid"
            }
            Self::Tracepoint => {
                "tracefs fields only; the rest is read from the OOM-killing task, so a victim that is not it gets only the fields the event has"
            }
        }
    }
}

impl ContextHook {
    pub const ALL: [Self; 2] = [Self::Fentry, Self::Kprobe];
    pub fn name(self) -> &'static str {
        match self {
            Self::Fentry => "fentry",
            Self::Kprobe => "kprobe",
        }
    }
}

/// `--hooks victim=X,context=Y`: what to force; `None` = choose automatically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HookChoice {
    pub victim: Option<VictimHook>,
    /// `Some(None)` = no context hook at all.
    pub context: Option<Option<ContextHook>>,
}

impl FromStr for HookChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut c = HookChoice::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (role, hook) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected ROLE=HOOK"))?;
            match role {
                "victim" => {
                    c.victim = Some(match hook {
                        "auto" => continue,
                        h => *VictimHook::ALL
                            .iter()
                            .find(|v| v.name() == h)
                            .ok_or_else(|| format!("victim hook {h:?}: one of tp_btf, raw_tracepoint, fentry, kprobe, tracepoint, auto"))?,
                    });
                }
                "context" => {
                    c.context = Some(match hook {
                        "auto" => continue,
                        "none" => None,
                        h => Some(*ContextHook::ALL.iter().find(|v| v.name() == h).ok_or_else(
                            || format!("context hook {h:?}: one of fentry, kprobe, none, auto"),
                        )?),
                    });
                }
                r => return Err(format!("role {r:?}: victim or context")),
            }
        }
        Ok(c)
    }
}

/// One hook tried: its role, its name, and why it could not be used (None: attached).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attempt {
    pub role: &'static str,
    pub hook: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            None => write!(f, "{}={}: attached", self.role, self.hook),
            Some(e) => write!(f, "{}={}: {e}", self.role, self.hook),
        }
    }
}

pub struct LoadOptions<'a> {
    pub tracefs: &'a Path,
    pub ring_size: u32,
    pub log_level: log::LevelFilter,
    pub hooks: HookChoice,
    pub cgroup_mode: CgroupMode,
    /// Pin the ring, the counters and the links here (`pin.rs`), so they outlive this process.
    pub pin: Option<&'a Path>,
}

pub struct Loaded {
    pub ebpf: Ebpf,
    /// aya-log's reader. It holds the log map's fd: it must live as long as the programs, and be
    /// drained, or the programs' log writes are lost.
    pub logger: EbpfLogger<&'static dyn log::Log>,
    /// Every hook tried, in order.
    pub attempts: Vec<Attempt>,
    pub victim: VictimHook,
    pub context: Option<ContextHook>,
    /// The exit hook (`sched:sched_process_exit`) is attached.
    pub exit: bool,
    /// Offsets that this kernel could not give (fields depending on them are absent).
    pub missing_offsets: Vec<String>,
    /// With a pin directory: the links pinned there.
    pub pinned: Vec<PinnedHook>,
    /// With a pin directory: the hooks (by link name) that could not be pinned; they stay
    /// attached while this process lives.
    pub unpinned: Vec<String>,
    /// Links taken out of their program whose pinning failed: they must live as long as the
    /// daemon, or their hooks detach.
    pub held: Vec<FdLink>,
}

impl Loaded {
    pub fn summary(&self) -> String {
        let not_pinned = if self.unpinned.is_empty() {
            String::new()
        } else {
            format!(" (not pinned: {})", self.unpinned.join(", "))
        };
        format!(
            "victim={} context={} exit={}{not_pinned}",
            self.victim.name(),
            self.context.map_or("none", ContextHook::name),
            if self.exit { "tracepoint" } else { "none" }
        )
    }
}

/// What the kernel's BTF says about the hooks, before trying them.
struct KernelFacts {
    resolved: Option<Resolved>,
    /// `btf_trace_mark_victim` passes a `struct task_struct *` (false on pid-only kernels).
    mark_victim_has_task: bool,
    /// BTF type ids the BTF-typed hooks attach to; `None` where this kernel's BTF lacks them.
    mark_victim_typedef: Option<u32>,
    mark_oom_victim: Option<u32>,
    oom_kill_process: Option<u32>,
    btf_error: Option<String>,
}

impl KernelFacts {
    /// The kernel BTF type id a tp_btf/fentry/fexit program on `name` attaches to.
    fn attach_id(&self, id: Option<u32>, name: &str) -> Result<u32, String> {
        if let Some(e) = &self.btf_error {
            return Err(format!("needs kernel BTF: {e}"));
        }
        id.ok_or_else(|| format!("{name} is not in BTF (inlined on this build?)"))
    }
}

/// Reads and parses the kernel's BTF once (our reader: offsets, the mark_victim prototype and the
/// attach ids), and drops it before anything is loaded. aya is never handed the kernel's BTF:
/// the object has no CO-RE relocations (every offset comes from this parse, through globals),
/// and the BTF-typed programs are loaded with their attach id (`load_with_btf_id`, vendor/aya).
fn kernel_facts(mode: CgroupMode) -> KernelFacts {
    let ours = btf::Btf::from_file(BTF_PATH).map_err(|e| format!("{BTF_PATH}: {e}"));
    match ours {
        Ok(b) => {
            let params = b
                .func_proto_params("btf_trace_mark_victim")
                .ok()
                .flatten()
                .unwrap_or_default();
            let has_task = params
                .get(1)
                .is_some_and(|p| b.pointee_name(p.type_id) == Some("task_struct"));
            KernelFacts {
                resolved: Some(offsets::resolve(&b, mode.memory_on_v2())),
                mark_victim_has_task: has_task,
                mark_victim_typedef: b.attach_id("btf_trace_mark_victim", btf::AttachKind::Typedef),
                mark_oom_victim: b.attach_id("mark_oom_victim", btf::AttachKind::Func),
                oom_kill_process: b.attach_id("oom_kill_process", btf::AttachKind::Func),
                btf_error: None,
            }
        }
        Err(e) => KernelFacts {
            resolved: None,
            mark_victim_has_task: false,
            mark_victim_typedef: None,
            mark_oom_victim: None,
            oom_kill_process: None,
            btf_error: Some(e),
        },
    }
}

/// `, peak RSS N kB` (the process's VmHWM so far) for the start-up debug lines; empty unless
/// debug logging is on.
fn peak_rss() -> String {
    if !log::log_enabled!(log::Level::Debug) {
        return String::new();
    }
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| format!(", peak RSS {}", v.trim()))
        })
        .unwrap_or_default()
}

fn chain(e: impl Into<anyhow::Error>) -> String {
    let e: anyhow::Error = e.into();
    let s = format!("{e:#}");
    if s.contains("Operation not permitted") || s.contains("EPERM") {
        format!("load refused (EPERM): {s}")
    } else {
        s
    }
}

/// Loads the object with this kernel's layout and offsets, and attaches the chosen hooks.
pub fn load(opts: &LoadOptions<'_>) -> anyhow::Result<Loaded> {
    let format = EventFormat::load(opts.tracefs, "oom", "mark_victim")?;
    let layout = MarkVictimLayout::from_format(&format)
        .map_err(|e| anyhow::anyhow!("oom:mark_victim format: {e}"))?;
    log::debug!("mark_victim layout: {layout:?}");
    let t0 = std::time::Instant::now();
    let facts = kernel_facts(opts.cgroup_mode);
    log::debug!(
        "start-up: BTF read and offsets resolved in {:?}{}",
        t0.elapsed(),
        peak_rss()
    );
    let offsets = facts
        .resolved
        .as_ref()
        .map_or(KernelOffsets::UNKNOWN, |r| r.offsets);
    let missing_offsets = facts
        .resolved
        .as_ref()
        .map(|r| r.missing.clone())
        .unwrap_or_default();
    for m in &missing_offsets {
        log::info!("kernel offset unavailable, dependent fields will be absent: {m}");
    }
    let globals = layout.globals();
    // aya-log-ebpf levels: Error=1 .. Trace=5, the same numbering as log::LevelFilter.
    let log_level = opts.log_level as u8;

    if !opts.ring_size.is_power_of_two() || opts.ring_size < 4096 {
        anyhow::bail!(
            "ring size {} must be a power of two and at least 4096 bytes",
            opts.ring_size
        );
    }
    // No kernel BTF for aya (see `kernel_facts`); with vendor/aya's patch, `new` no longer
    // parses it before `btf(None)` can say so.
    let mut loader = EbpfLoader::new();
    loader.btf(None);
    for (name, value) in &globals {
        loader.override_global(name, value, true);
    }
    loader.override_global("OFFSETS", &offsets, true);
    loader.override_global("AYA_LOG_LEVEL", &log_level, false);
    loader.map_max_entries("EVENTS", opts.ring_size);
    if let Some(n) = test_context_map_entries() {
        log::warn!("test setting: CONTEXTS map of {n} entries (OOMTRACE_TEST_CONTEXT_MAP_ENTRIES)");
        loader.map_max_entries("CONTEXTS", n);
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("loading the eBPF object")?;
    log::debug!(
        "start-up: object loaded (maps created) at {:?}{}",
        t0.elapsed(),
        peak_rss()
    );
    let logger = EbpfLogger::init(&mut ebpf).context("setting up aya-log")?;

    let pins = opts.pin.map(Pinner::new);
    let (victim, context, mut attempts) =
        attach_all(&mut ebpf, opts, pins.as_ref(), &facts, &offsets)?;
    let r = attach_exit(&mut ebpf, pins.as_ref());
    if let Err(e) = &r {
        log::warn!("no exit hook ({e}): victims' exits are not reported");
    }
    let exit = r.is_ok();
    attempts.push(Attempt {
        role: "exit",
        hook: "tracepoint",
        error: r.err(),
    });
    if let Some(p) = &pins
        && !p.lost.borrow().is_empty()
    {
        anyhow::bail!(
            "hooks detached while pinning: {}",
            p.lost.borrow().join("; ")
        );
    }
    if let Some(dir) = opts.pin {
        pin_maps(&ebpf, dir);
    }
    let (pinned, (unpinned, held)) = pins.map_or_else(Default::default, |p| {
        (p.pinned.into_inner(), p.unpinned.into_inner())
    });
    log::debug!(
        "start-up: hooks attached at {:?}{}",
        t0.elapsed(),
        peak_rss()
    );
    Ok(Loaded {
        ebpf,
        logger,
        attempts,
        victim,
        context,
        exit,
        missing_offsets,
        pinned,
        unpinned,
        held,
    })
}

/// `tracepoint/sched/sched_process_exit`, for the victims' exits (pinned as `link-exit-tracepoint`).
fn attach_exit(ebpf: &mut Ebpf, pin: Option<&Pinner<'_>>) -> Result<(), String> {
    attach_tracepoint(
        ebpf,
        "sched_process_exit",
        ("sched", "sched_process_exit"),
        pin,
        "exit-tracepoint",
    )
}

/// Loads program `name`, attaches it to the classic tracepoint `category:event` and keeps its
/// link (pinned as `link-<pin_name>` where the kernel has perf links).
fn attach_tracepoint(
    ebpf: &mut Ebpf,
    name: &str,
    (category, event): (&str, &str),
    pin: Option<&Pinner<'_>>,
    pin_name: &str,
) -> Result<(), String> {
    let p: &mut TracePoint = prog(ebpf, name)?;
    p.load().map_err(chain)?;
    let id = p.attach(category, event).map_err(chain)?;
    keep(pin, pin_name, aya::features().bpf_perf_link(), || {
        p.take_link(id)
            .map_err(chain)
            .and_then(|l| FdLink::try_from(l).map_err(chain))
    });
    Ok(())
}

/// Tries the hooks of each role in order of preference (or the forced ones) and attaches the
/// first that works; every attempt is recorded with its reason.
fn attach_all(
    ebpf: &mut Ebpf,
    opts: &LoadOptions<'_>,
    pin: Option<&Pinner<'_>>,
    facts: &KernelFacts,
    offsets: &KernelOffsets,
) -> anyhow::Result<(VictimHook, Option<ContextHook>, Vec<Attempt>)> {
    let mut attempts = Vec::new();
    let victims: Vec<VictimHook> = opts
        .hooks
        .victim
        .map_or_else(|| VictimHook::ALL.to_vec(), |h| vec![h]);
    let mut victim = None;
    for h in victims {
        let r = attach_victim(ebpf, h, facts, offsets, pin);
        attempts.push(Attempt {
            role: "victim",
            hook: h.name(),
            error: r.err(),
        });
        if attempts.last().is_some_and(|a| a.error.is_none()) {
            victim = Some(h);
            break;
        }
    }
    let Some(victim) = victim else {
        let why: Vec<String> = attempts.iter().map(ToString::to_string).collect();
        anyhow::bail!("no victim hook could be attached: {}", why.join("; "));
    };
    let contexts: Vec<ContextHook> = match opts.hooks.context {
        None => ContextHook::ALL.to_vec(),
        Some(None) => Vec::new(),
        Some(Some(h)) => vec![h],
    };
    let mut context = None;
    for h in contexts {
        let r = attach_context(ebpf, h, facts, offsets, pin);
        attempts.push(Attempt {
            role: "context",
            hook: h.name(),
            error: r.err(),
        });
        if attempts.last().is_some_and(|a| a.error.is_none()) {
            context = Some(h);
            break;
        }
    }
    if opts.hooks.context.is_some_and(|c| c.is_some()) && context.is_none() {
        let why: Vec<String> = attempts
            .iter()
            .filter(|a| a.role == "context")
            .map(ToString::to_string)
            .collect();
        anyhow::bail!(
            "the forced context hook could not be attached: {}",
            why.join("; ")
        );
    }
    Ok((victim, context, attempts))
}

/// Pins the ring, the counters and what of them was reported (`events`, `counters`, `reported`)
/// in `dir`.
fn pin_maps(ebpf: &Ebpf, dir: &Path) {
    for name in ["EVENTS", "COUNTERS", "REPORTED"] {
        if let Some(m) = ebpf.map(name)
            && let Err(e) = m.pin(dir.join(name.to_ascii_lowercase()))
        {
            log::warn!("pinning map {name} in {}: {e}", dir.display());
        }
    }
}

/// Where the links are pinned, and what became of each.
pub struct Pinner<'a> {
    dir: &'a Path,
    /// Pinned links: (name, pin path, link id).
    pinned: RefCell<Vec<PinnedHook>>,
    /// Links that stay attached but unpinned (by name), and those this process holds.
    unpinned: RefCell<(Vec<String>, Vec<FdLink>)>,
    /// Links lost (detached) on the way to their pin: why, per link.
    lost: RefCell<Vec<String>>,
}

/// A link pinned in bpffs: the pin alone keeps the hook attached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedHook {
    /// `victim-tp_btf`, `context-kprobe`, ...
    pub name: String,
    pub path: std::path::PathBuf,
    pub id: u32,
}

impl<'a> Pinner<'a> {
    fn new(dir: &'a Path) -> Self {
        Self {
            dir,
            pinned: RefCell::default(),
            unpinned: RefCell::default(),
            lost: RefCell::default(),
        }
    }
}

/// With a pin directory: takes the link out of its program (so dropping the program does not
/// detach it) and pins it as `link-<name>`, so the hook outlives this process. `fd_based`: the
/// link is a BPF link (always for tp_btf, raw tracepoints, fentry/fexit; for tracepoints and
/// kprobes only where the kernel has perf links, 5.15+) — other links cannot be pinned and stay
/// with the program.
///
/// A link that cannot be pinned stays attached, held by this process (it detaches when oomtrace
/// stops), with a warning, and is named in [`Loaded::unpinned`]. A link lost while being taken
/// out of its program (aya drops one it cannot convert) makes [`load`] fail. Never a silent
/// detach.
fn keep(
    pin: Option<&Pinner<'_>>,
    name: &str,
    fd_based: bool,
    take: impl FnOnce() -> Result<FdLink, String>,
) {
    let Some(pinner) = pin else { return };
    let unpinned = |why: String| {
        log::warn!(
            "{name}: {why}: the hook stays attached but unpinned: it detaches when oomtrace stops, and kills while oomtrace is down will not be delivered later"
        );
        pinner.unpinned.borrow_mut().0.push(name.to_string());
    };
    if !fd_based {
        unpinned("this kernel has no BPF perf links, the hook cannot be pinned".into());
        return;
    }
    match take() {
        Ok(link) => {
            let path = pinner.dir.join(format!("link-{name}"));
            match crate::pin::pin_link(&link, &path) {
                // The pin holds the link now: closing our fd leaves the hook attached.
                Ok(id) => pinner.pinned.borrow_mut().push(PinnedHook {
                    name: name.to_string(),
                    path,
                    id,
                }),
                Err(e) => {
                    unpinned(format!("pinning {}: {e}", path.display()));
                    pinner.unpinned.borrow_mut().1.push(link);
                }
            }
        }
        // aya's conversion to an FdLink drops (detaches) a link it cannot convert: loading fails.
        Err(e) => pinner
            .lost
            .borrow_mut()
            .push(format!("{name}: taking the link to pin it: {e}")),
    }
}

fn attach_victim(
    ebpf: &mut Ebpf,
    h: VictimHook,
    facts: &KernelFacts,
    o: &KernelOffsets,
    pin: Option<&Pinner<'_>>,
) -> Result<(), String> {
    let need_task = || -> Result<(), String> {
        if let Some(e) = &facts.btf_error {
            return Err(format!("needs kernel BTF: {e}"));
        }
        if !facts.mark_victim_has_task {
            return Err("this kernel's mark_victim passes only a pid (no task_struct)".into());
        }
        if o.task_pid == oomtrace_common::ABSENT {
            return Err("task_struct.pid offset unknown".into());
        }
        Ok(())
    };
    match h {
        VictimHook::TpBtf => {
            need_task()?;
            let id = facts.attach_id(facts.mark_victim_typedef, "btf_trace_mark_victim")?;
            let p: &mut BtfTracePoint = prog(ebpf, "mark_victim_btf")?;
            p.load_with_btf_id(id).map_err(chain)?;
            let id = p.attach().map_err(chain)?;
            keep(pin, "victim-tp_btf", true, || {
                p.take_link(id).map_err(chain).map(FdLink::from)
            });
        }
        VictimHook::RawTracepoint => {
            need_task()?;
            let p: &mut RawTracePoint = prog(ebpf, "mark_victim_raw")?;
            p.load().map_err(chain)?;
            let id = p.attach("mark_victim").map_err(chain)?;
            keep(pin, "victim-raw_tracepoint", true, || {
                p.take_link(id).map_err(chain).map(FdLink::from)
            });
        }
        VictimHook::Fentry => {
            if o.task_pid == oomtrace_common::ABSENT {
                return Err("task_struct.pid offset unknown".into());
            }
            let id = facts.attach_id(facts.mark_oom_victim, "mark_oom_victim")?;
            let p: &mut FEntry = prog(ebpf, "mark_oom_victim_fentry")?;
            p.load_with_btf_id(id).map_err(chain)?;
            let id = p.attach().map_err(chain)?;
            keep(pin, "victim-fentry", true, || {
                p.take_link(id).map_err(chain).map(FdLink::from)
            });
        }
        VictimHook::Kprobe => {
            if o.task_pid == oomtrace_common::ABSENT {
                return Err("task_struct.pid offset unknown".into());
            }
            kprobe_target("mark_oom_victim")?;
            let p: &mut KProbe = prog(ebpf, "mark_oom_victim_kprobe")?;
            p.load().map_err(chain)?;
            let id = p.attach("mark_oom_victim", 0).map_err(chain)?;
            keep(
                pin,
                "victim-kprobe",
                aya::features().bpf_perf_link(),
                || {
                    p.take_link(id)
                        .map_err(chain)
                        .and_then(|l| FdLink::try_from(l).map_err(chain))
                },
            );
        }
        VictimHook::Tracepoint => attach_tracepoint(
            ebpf,
            "mark_victim_tp",
            ("oom", "mark_victim"),
            pin,
            "victim-tracepoint",
        )?,
    }
    Ok(())
}

/// Test-only (tests/vm scenario `contexts-lru`): the size of the `CONTEXTS` map, made tiny to
/// show that victims keep joining their OOM after more trigger threads than it has entries.
fn test_context_map_entries() -> Option<u32> {
    std::env::var("OOMTRACE_TEST_CONTEXT_MAP_ENTRIES")
        .ok()?
        .parse()
        .ok()
}

/// Test-only (same scenario): attach no return hook, as on kernels where it cannot attach, so
/// nothing removes `CONTEXTS` entries but the map itself.
fn no_return_hook_test() -> Result<(), String> {
    if std::env::var_os("OOMTRACE_TEST_NO_RETURN_HOOK").is_some() {
        return Err("left out by OOMTRACE_TEST_NO_RETURN_HOOK (a test setting)".into());
    }
    Ok(())
}

fn attach_context(
    ebpf: &mut Ebpf,
    h: ContextHook,
    facts: &KernelFacts,
    o: &KernelOffsets,
    pin: Option<&Pinner<'_>>,
) -> Result<(), String> {
    if o.oc_memcg == oomtrace_common::ABSENT {
        return Err(match &facts.btf_error {
            Some(e) => format!("needs kernel BTF for struct oom_control: {e}"),
            None => "struct oom_control offsets unknown".into(),
        });
    }
    match h {
        ContextHook::Fentry => {
            let btf_id = facts.attach_id(facts.oom_kill_process, "oom_kill_process")?;
            let p: &mut FEntry = prog(ebpf, "oom_kill_process_fentry")?;
            p.load_with_btf_id(btf_id).map_err(chain)?;
            let id = p.attach().map_err(chain)?;
            keep(pin, "context-fentry", true, || {
                p.take_link(id).map_err(chain).map(FdLink::from)
            });
            // The return hook only ends the join window; without it, a 5 s age limit does.
            let r: Result<(), String> = (|| {
                no_return_hook_test()?;
                let x: &mut FExit = prog(ebpf, "oom_kill_process_fexit")?;
                x.load_with_btf_id(btf_id).map_err(chain)?;
                let id = x.attach().map_err(chain)?;
                keep(pin, "return-fexit", true, || {
                    x.take_link(id).map_err(chain).map(FdLink::from)
                });
                Ok(())
            })();
            if let Err(e) = r {
                log::warn!("fexit on oom_kill_process: {e}");
            }
        }
        ContextHook::Kprobe => {
            kprobe_target("oom_kill_process")?;
            let p: &mut KProbe = prog(ebpf, "oom_kill_process_kprobe")?;
            p.load().map_err(chain)?;
            let id = p.attach("oom_kill_process", 0).map_err(chain)?;
            keep(
                pin,
                "context-kprobe",
                aya::features().bpf_perf_link(),
                || {
                    p.take_link(id)
                        .map_err(chain)
                        .and_then(|l| FdLink::try_from(l).map_err(chain))
                },
            );
            let r: Result<(), String> = (|| {
                no_return_hook_test()?;
                let x: &mut KProbe = prog(ebpf, "oom_kill_process_kretprobe")?;
                x.load().map_err(chain)?;
                let id = x.attach("oom_kill_process", 0).map_err(chain)?;
                keep(
                    pin,
                    "return-kretprobe",
                    aya::features().bpf_perf_link(),
                    || {
                        x.take_link(id)
                            .map_err(chain)
                            .and_then(|l| FdLink::try_from(l).map_err(chain))
                    },
                );
                Ok(())
            })();
            if let Err(e) = r {
                log::warn!("kretprobe on oom_kill_process: {e}");
            }
        }
    }
    Ok(())
}

fn prog<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, String>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from the object"))?;
    p.try_into().map_err(chain)
}

/// The static name of a hook (`tp_btf`, `kprobe`, ...), for pinned links read back by name.
pub fn hook_static(name: &str) -> Option<&'static str> {
    VictimHook::ALL
        .iter()
        .map(|h| h.name())
        .chain(ContextHook::ALL.iter().map(|h| h.name()))
        .find(|n| *n == name)
}

/// A kprobe on `sym` can be tried: the kernel has the kprobe PMU and the symbol.
fn kprobe_target(sym: &str) -> Result<(), String> {
    if !Path::new("/sys/bus/event_source/devices/kprobe/type").exists() {
        return Err(
            "kernel built without CONFIG_KPROBES (no kprobe PMU in /sys/bus/event_source/devices)"
                .into(),
        );
    }
    if !kallsyms_has(sym) {
        return Err(format!(
            "{sym} is not in /proc/kallsyms (inlined on this build?)"
        ));
    }
    Ok(())
}

fn kallsyms_has(sym: &str) -> bool {
    std::fs::read_to_string("/proc/kallsyms")
        .is_ok_and(|s| s.lines().any(|l| l.split_whitespace().nth(2) == Some(sym)))
}

/// Takes the ring buffer out of the object.
pub fn take_ring(ebpf: &mut Ebpf) -> anyhow::Result<RingBuf<MapData>> {
    let map = ebpf
        .take_map("EVENTS")
        .context("map EVENTS missing from the object")?;
    Ok(RingBuf::try_from(map)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_choice_parses() {
        let c: HookChoice = "victim=tracepoint,context=none".parse().unwrap();
        assert_eq!(c.victim, Some(VictimHook::Tracepoint));
        assert_eq!(c.context, Some(None));
        let c: HookChoice = "context=kprobe".parse().unwrap();
        assert_eq!(c.victim, None);
        assert_eq!(c.context, Some(Some(ContextHook::Kprobe)));
        assert_eq!("".parse::<HookChoice>().unwrap(), HookChoice::default());
        let c: HookChoice = "victim=fentry".parse().unwrap();
        assert_eq!(c.victim, Some(VictimHook::Fentry));
        assert!("victim=kmsg".parse::<HookChoice>().is_err());
        assert!("context".parse::<HookChoice>().is_err());
        assert!("trigger=tp_btf".parse::<HookChoice>().is_err());
    }
}
