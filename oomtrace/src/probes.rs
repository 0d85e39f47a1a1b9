//! Loading the eBPF object, handing it the kernel locations, attaching the hooks.

use std::path::Path;

use anyhow::Context as _;
use aya::{
    Ebpf, EbpfLoader,
    maps::{MapData, RingBuf},
    programs::TracePoint,
};
use aya_log::EbpfLogger;

use crate::kernel::tracefs::{EventFormat, MarkVictimLayout};

/// The eBPF object built by build.rs from `oomtrace-ebpf`, embedded in the binary.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/oomtrace.bpf.o"));

/// Default ring size: room for about 280 victim records in flight.
pub const DEFAULT_RING_SIZE: u32 = 256 * 1024;

pub struct LoadOptions<'a> {
    pub tracefs: &'a Path,
    pub ring_size: u32,
    pub log_level: log::LevelFilter,
}

/// A hook that is attached: its role (`victim`, `context`) and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    pub role: &'static str,
    pub hook: &'static str,
}

pub struct Loaded {
    pub ebpf: Ebpf,
    /// aya-log's reader. It holds the log map's fd: it must live as long as the programs, and be
    /// drained, or the programs' log writes are lost.
    pub logger: EbpfLogger<&'static dyn log::Log>,
    pub attached: Vec<Attached>,
}

/// Loads the object with this kernel's layout and attaches the hooks.
pub fn load(opts: &LoadOptions<'_>) -> anyhow::Result<Loaded> {
    let format = EventFormat::load(opts.tracefs, "oom", "mark_victim")?;
    let layout = MarkVictimLayout::from_format(&format)
        .map_err(|e| anyhow::anyhow!("oom:mark_victim format: {e}"))?;
    log::debug!("mark_victim layout: {layout:?}");
    let globals = layout.globals();
    // aya-log-ebpf levels: Error=1 .. Trace=5, the same numbering as log::LevelFilter.
    let log_level = opts.log_level as u8;

    if !opts.ring_size.is_power_of_two() || opts.ring_size < 4096 {
        anyhow::bail!(
            "ring size {} must be a power of two and at least 4096 bytes",
            opts.ring_size
        );
    }
    let mut loader = EbpfLoader::new();
    for (name, value) in &globals {
        loader.override_global(name, value, true);
    }
    loader.override_global("AYA_LOG_LEVEL", &log_level, false);
    loader.map_max_entries("EVENTS", opts.ring_size);
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("loading the eBPF object")?;

    let logger = EbpfLogger::init(&mut ebpf).context("setting up aya-log")?;

    let mut attached = Vec::new();
    let prog: &mut TracePoint = ebpf
        .program_mut("mark_victim_tp")
        .context("program mark_victim_tp missing from the object")?
        .try_into()?;
    prog.load().context("loading tracepoint/oom/mark_victim")?;
    prog.attach("oom", "mark_victim")
        .context("attaching tracepoint/oom/mark_victim")?;
    attached.push(Attached {
        role: "victim",
        hook: "tracepoint",
    });
    Ok(Loaded {
        ebpf,
        logger,
        attached,
    })
}

/// Takes the ring buffer out of the object.
pub fn take_ring(ebpf: &mut Ebpf) -> anyhow::Result<RingBuf<MapData>> {
    let map = ebpf
        .take_map("EVENTS")
        .context("map EVENTS missing from the object")?;
    Ok(RingBuf::try_from(map)?)
}
