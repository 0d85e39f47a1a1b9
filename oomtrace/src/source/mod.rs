//! Where kills are read from: the BPF programs and their ring ([`bpf`]), or the kernel log
//! ([`kmsg`], the fallback).

pub mod bpf;
pub mod kmsg;
pub mod kmsg_parse;

/// Whether reading goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}
