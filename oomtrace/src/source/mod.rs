//! Event sources other than the BPF ring: the kernel log.

pub mod kmsg;
pub mod kmsg_parse;
