//! oomtrace's kernel programs.
//!
//! One module per hook; they share the ring buffer and counters in [`maps`] and the start-up
//! values the daemon writes into [`globals`] (tracefs field offsets, BTF member offsets). No
//! kernel struct offset is written in this crate: the daemon resolves each one on the running
//! kernel and hands it over, so a member that does not exist is reported as absent.
#![no_std]
#![no_main]

#[cfg(feature = "bench")]
mod bench_ring;
mod cgroup;
mod context;
mod exit;
mod globals;
mod kernel;
mod maps;
mod mark_oom_victim;
mod mark_victim_btf;
mod mark_victim_raw;
mod mark_victim_tp;
mod memcg;
mod oom_kill_process;
mod record;
mod task;
mod victim;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// bpf_probe_read_kernel and friends are GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
