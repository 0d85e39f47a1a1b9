//! oomtrace: a node-level eBPF OOM-kill tracer.
//!
//! The data path, in module order:
//! kernel programs (`oomtrace-ebpf`, one module per hook) → [`probes`] (load, attach, hand over
//! the locations resolved in [`kernel`]) → ring buffer → [`decode`] (length-checked) →
//! [`event`] → [`enrich`] (cgroup → container → pod / systemd unit) → [`sink`]s; the victims'
//! exits in [`exits`]. [`daemon`] runs it; [`cli`] is the command line.

pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod enrich;
pub mod event;
pub mod exits;
pub mod health;
pub mod http;
pub mod kernel;
pub mod loss;
pub mod notify;
pub mod pin;
pub mod pipeline;
pub mod probes;
pub mod sink;
pub mod source;

#[cfg(test)]
pub(crate) mod testutil;
