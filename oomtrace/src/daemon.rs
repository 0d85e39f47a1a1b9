//! `oomtrace run`: load, attach, then move records from the ring to the sinks until SIGINT or
//! SIGTERM, and drain what is left before exiting.

use std::{io, path::Path};

use anyhow::Context as _;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    cli::RunArgs,
    enrich::Enricher,
    event::System,
    kernel::{cgroups, gfp, tracefs},
    pipeline::{self, Pipeline},
    probes,
    sink::{Sinks, json::JsonLines},
};

pub async fn run(args: &RunArgs, log_level: log::LevelFilter) -> anyhow::Result<()> {
    // Signal handlers first, so a SIGTERM during start-up is not the default "die now".
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;

    let tracefs = tracefs::ensure_mounted()?;
    let mode = cgroups::detect(Path::new("/"));
    let mut loaded = probes::load(&probes::LoadOptions {
        tracefs: &tracefs,
        ring_size: args.ring_size,
        log_level,
        hooks: args.hooks,
        cgroup_mode: mode,
    })?;
    for a in loaded.attempts.iter().filter(|a| a.error.is_some()) {
        log::info!("not used: {a}");
    }
    log::info!("hooks: {} (memory cgroups: {mode:?})", loaded.summary());
    let summary = loaded.summary();
    let context_hook = loaded.context.is_some();
    let ring = probes::take_ring(&mut loaded.ebpf)?;
    // SAFETY: the ring and the logger own their map fds for as long as they live, and always
    // return the same fd.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the ring buffer: {e}"))?;
    let mut logs = unsafe { AsyncFd::register_with_interest(loaded.logger, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("registering the log ring: {e}"))?;

    let mut sinks = Sinks::default();
    sinks.push(Box::new(JsonLines::new("json:stdout", io::stdout())));
    let gfp = gfp::load(&tracefs);
    let enricher = Enricher::new(&args.host_root);
    let mut pipeline = Pipeline::new(
        pipeline::node_name(),
        System::read(),
        gfp,
        context_hook,
        enricher,
        sinks,
    );

    // Tests and benchmarks wait for this line.
    eprintln!("ready: attached {summary}");

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard.context("waiting on the ring buffer")?;
                let r = guard.get_inner_mut();
                while let Some(item) = r.next() {
                    pipeline.handle(&item);
                }
                guard.clear_ready();
            }
            guard = logs.readable_mut() => {
                let mut guard = guard.context("waiting on the log ring")?;
                guard.get_inner_mut().flush();
                guard.clear_ready();
            }
            _ = sigint.recv() => { log::info!("SIGINT: draining and exiting"); break; }
            _ = sigterm.recv() => { log::info!("SIGTERM: draining and exiting"); break; }
        }
    }
    // Whatever the kernel wrote before we stopped still goes out.
    let r = ring.get_mut();
    while let Some(item) = r.next() {
        pipeline.handle(&item);
    }
    logs.get_mut().flush();
    let s = pipeline.stats;
    log::info!(
        "stopped: {} records, {} victims, {} undecodable, {} sink errors",
        s.records,
        s.victims,
        s.decode_errors,
        pipeline.sinks.errors
    );
    Ok(())
}
