//! Ring records: the decoder must reject anything malformed with an error, and a record it
//! accepts must turn into an event and JSON without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace::{
    decode::{Record, decode},
    event::{Event, System},
    kernel::gfp::GfpTable,
};

fuzz_target!(|data: &[u8]| {
    let sys = System { page_size: 4096, ram_pages: 1 << 20, swap_pages: 0 };
    let gfp = GfpTable::builtin();
    match decode(data) {
        Ok(Record::Victim(v)) => {
            let ev = Event::from_victim(&v, None, true, &sys, &gfp, "n");
            let _ = serde_json::to_string(&ev);
        }
        Ok(Record::Context(c)) => {
            let _ = serde_json::to_string(&oomtrace::event::Oom::from_context(&c, &sys, &gfp));
        }
        Ok(Record::Exit(x)) => {
            let mut t = oomtrace::exits::ExitTracker::new(std::time::Duration::ZERO);
            t.killed(x.pid, x.tgid, x.kill_boot_ns);
            for l in t.exited(&x, "n") {
                let _ = serde_json::to_string(&l);
            }
        }
        Err(_) => {}
    }
});
