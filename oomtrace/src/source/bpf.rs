//! The BPF input: this build's pinned programs reused, or the eBPF object loaded, its hooks
//! chosen and attached (`probes`) and pinned (`pin`), and its ring buffer drained. The daemon
//! only wires it to the pipeline, like the kernel-log input (`source::kmsg`).

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Array, MapData, PerCpuArray, RingBuf},
    programs::links::FdLink,
};
use aya_log::EbpfLogger;
use tokio::io::{Interest, unix::AsyncFd};

use crate::{
    health::VictimHold,
    kernel::{cgroups::CgroupMode, tracefs},
    loss::Accounting,
    pin,
    probes::{self, Attempt},
    source::Flow,
};

/// The attached programs and their ring: dropping it detaches what is not pinned.
pub struct BpfSource {
    /// Owns the programs and their unpinned links. None when reusing pinned programs.
    _ebpf: Option<Ebpf>,
    pub ring: AsyncFd<RingBuf<MapData>>,
    /// aya-log's reader (None for reused pinned programs: their log lines are not read).
    pub logs: Option<AsyncFd<EbpfLogger<&'static dyn log::Log>>>,
    /// Links whose pinning failed: their hooks stay attached while these live.
    _held: Vec<FdLink>,
    /// Held while running: no other daemon uses the same pins.
    _pin_lock: Option<pin::PinLock>,
}

/// How to open the BPF input.
pub struct Options<'a> {
    pub ring_size: u32,
    pub log_level: log::LevelFilter,
    pub hooks: probes::HookChoice,
    pub cgroup_mode: CgroupMode,
    /// Where to pin (None: `--no-pin`, `trace`).
    pub pin_root: Option<&'a Path>,
}

/// The opened input, and what the daemon wires around it.
pub struct Opened {
    pub source: BpfSource,
    pub attempts: Vec<Attempt>,
    pub summary: String,
    /// Loss counters and reconciliation (the event loop owns it; metrics read it).
    pub acct: Arc<Mutex<Accounting>>,
    /// What keeps the victim hook attached (for `/healthz`).
    pub victim_hold: VictimHold,
    pub context_hook: bool,
    pub exit_hook: bool,
    /// The tracefs root (the GFP names come from its formats).
    pub tracefs: PathBuf,
}

/// Reuses this build's pinned programs, or loads, attaches and (with a pin root) pins them.
///
/// # Errors
/// When the object cannot be loaded or no victim hook attaches.
pub fn open(opts: &Options<'_>) -> anyhow::Result<Opened> {
    let prepared = prepare_pins(opts.hooks, opts.pin_root);
    if let Some(pin::Prepared {
        lock,
        dir,
        reused: Some(r),
    }) = prepared
    {
        return reuse_pinned(r, &dir, lock);
    }
    let tracefs = tracefs::ensure_mounted()?;
    let mut loaded = probes::load(&probes::LoadOptions {
        tracefs: &tracefs,
        ring_size: opts.ring_size,
        log_level: opts.log_level,
        hooks: opts.hooks,
        cgroup_mode: opts.cgroup_mode,
        pin: prepared.as_ref().map(|p| p.dir.as_path()),
    })?;
    for a in loaded.attempts.iter().filter(|a| a.error.is_some()) {
        log::info!("not used: {a}");
    }
    log::info!(
        "hooks: {} (memory cgroups: {:?})",
        loaded.summary(),
        opts.cgroup_mode
    );
    let summary = loaded.summary();
    let ring = probes::take_ring(&mut loaded.ebpf)?;
    let acct = bpf_accounting(&mut loaded.ebpf);
    // SAFETY: the ring and the logger own their map fds for as long as they live, and always
    // return the same fd.
    let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer: {e}"))?;
    let logs = unsafe { AsyncFd::register_with_interest(loaded.logger, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the log ring: {e}"))?;
    Ok(Opened {
        summary,
        context_hook: loaded.context.is_some(),
        exit_hook: loaded.exit,
        victim_hold: victim_hold(&loaded.pinned),
        attempts: loaded.attempts,
        acct,
        source: BpfSource {
            _ebpf: Some(loaded.ebpf),
            ring,
            logs: Some(logs),
            _held: loaded.held,
            _pin_lock: prepared.map(|p| p.lock),
        },
        tracefs,
    })
}

/// Hands every record waiting in the ring to `f`, in order, until it says stop.
pub fn drain(ring: &mut RingBuf<MapData>, mut f: impl FnMut(&[u8]) -> Flow) -> Flow {
    while let Some(item) = ring.next() {
        if f(&item) == Flow::Stop {
            return Flow::Stop;
        }
    }
    Flow::Continue
}

/// The BPF per-CPU counters (`COUNTERS`), for the loss metric.
fn take_counters(ebpf: &mut Ebpf) -> Option<PerCpuArray<MapData, u64>> {
    let map = ebpf.take_map("COUNTERS")?;
    PerCpuArray::try_from(map)
        .inspect_err(|e| log::warn!("map COUNTERS: {e}"))
        .ok()
}

/// The accounting of freshly loaded programs: their counters and what of them was reported.
fn bpf_accounting(ebpf: &mut Ebpf) -> Arc<Mutex<Accounting>> {
    Accounting::shared(take_counters(ebpf), take_reported(ebpf))
}

/// The BPF `REPORTED` map: what of the counters has been reported.
fn take_reported(ebpf: &mut Ebpf) -> Option<Array<MapData, u64>> {
    let map = ebpf.take_map("REPORTED")?;
    Array::try_from(map)
        .inspect_err(|e| log::warn!("map REPORTED: {e}"))
        .ok()
}

/// Pins: this build's to reuse, or a directory to pin fresh ones into; None (unpinned) with
/// --no-pin, without bpffs, or while another daemon holds the pins.
fn prepare_pins(hooks: probes::HookChoice, pin_root: Option<&Path>) -> Option<pin::Prepared> {
    // Pins: reuse this build's, or load fresh and pin; without bpffs or with another daemon
    // holding them, run unpinned.
    let mut prepared = match pin_root {
        None => None,
        Some(root) => match pin::prepare(root) {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!(
                    "not pinning ({e}): kills while oomtrace is down will not be delivered later"
                );
                None
            }
        },
    };
    // Forced hooks other than the pinned ones: replace the pins.
    if let Some(p) = prepared.as_mut()
        && let Some(r) = &p.reused
        && !r.matches(hooks)
    {
        log::info!(
            "the pinned hooks ({}) are not the ones asked for: replacing them",
            r.summary()
        );
        p.reused = None;
        if let Err(e) = std::fs::remove_dir_all(&p.dir).and_then(|()| std::fs::create_dir(&p.dir)) {
            log::warn!("replacing {}: {e}", p.dir.display());
        }
    }
    prepared
}

/// A daemon reusing the hooks and ring an earlier daemon of this build pinned.
fn reuse_pinned(r: pin::Reused, dir: &Path, lock: pin::PinLock) -> anyhow::Result<Opened> {
    let summary = r.summary();
    log::info!(
        "reusing the pinned hooks and ring in {}: {summary}",
        dir.display()
    );
    let victim_link = r
        .links
        .iter()
        .find(|l| l.starts_with("victim-"))
        .map(|l| dir.join(format!("link-{l}")))
        .context("the pinned set has no victim link")?;
    let id = pin::pinned_link_id(&victim_link).map_err(|e| anyhow::anyhow!("{e}"))?;
    // SAFETY: the ring owns its map fd for as long as it lives.
    let ring = unsafe { AsyncFd::register_with_interest(r.ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the pinned ring buffer: {e}"))?;
    let attempts = r
        .links
        .iter()
        .filter_map(|l| {
            let (role, hook) = l.split_once('-')?;
            let role = match role {
                "victim" => "victim",
                "context" => "context",
                "exit" => "exit",
                _ => return None,
            };
            Some(Attempt {
                role,
                hook: probes::hook_static(hook)?,
                error: None,
            })
        })
        .collect();
    Ok(Opened {
        context_hook: r.links.iter().any(|l| l.starts_with("context-")),
        exit_hook: r.links.iter().any(|l| l.starts_with("exit-")),
        source: BpfSource {
            _ebpf: None,
            ring,
            logs: None,
            _held: Vec::new(),
            _pin_lock: Some(lock),
        },
        attempts,
        summary,
        acct: Accounting::shared(r.counters, r.reported),
        victim_hold: VictimHold::Pinned {
            path: victim_link,
            id,
        },
        tracefs: PathBuf::from(tracefs::TRACEFS),
    })
}

/// Pinned: only the pin keeps the victim hook; otherwise this process does.
fn victim_hold(pinned: &[probes::PinnedHook]) -> VictimHold {
    pinned
        .iter()
        .find(|p| p.name.starts_with("victim-"))
        .map_or(VictimHold::Process, |p| VictimHold::Pinned {
            path: p.path.clone(),
            id: p.id,
        })
}
