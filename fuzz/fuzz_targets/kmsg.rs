//! /dev/kmsg records through the OOM line parser and the assembler.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace::source::kmsg_parse::{OomAssembler, parse_oom_line, parse_record};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut asm = OomAssembler::new();
    for line in text.lines() {
        if let Some(r) = parse_record(line) {
            let _ = asm.push_record(&r);
        }
        let _ = parse_oom_line(line);
    }
});
