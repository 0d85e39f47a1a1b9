//! tracefs `format` files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oomtrace::kernel::tracefs::{EventFormat, MarkVictimLayout};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(f) = EventFormat::parse(text)
    {
        let _ = MarkVictimLayout::from_format(&f);
    }
});
