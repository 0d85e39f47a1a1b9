//! BTF blobs: the reader must reject malformed input with an error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace::kernel::btf::Btf;

fuzz_target!(|data: &[u8]| {
    if let Ok(b) = Btf::from_bytes(data.to_vec()) {
        let _ = b.struct_member("task_struct", "pid");
        let _ = b.enum_value("cgroup_subsys_id", "memory_cgrp_id");
        let _ = b.func_proto_params("btf_trace_mark_victim");
        let _ = oomtrace::kernel::offsets::resolve(&b, true);
    }
});
