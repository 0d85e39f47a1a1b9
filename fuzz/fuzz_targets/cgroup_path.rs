//! cgroup paths through the attribution parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(path) = std::str::from_utf8(data) {
        let _ = oomtrace::enrich::cgroup_path::parse(path);
    }
});
