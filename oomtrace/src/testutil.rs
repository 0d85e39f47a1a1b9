//! Helpers for unit tests that need the real kernel.

use std::path::PathBuf;

/// Skips (returns None, with a message) when the kernel facility is not usable, unless CI=true,
/// where the test fails instead.
pub fn require(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} is required under CI=true"
    );
    eprintln!("skipping: {what} is not available (run as root; CI=true makes this a failure)");
    false
}

/// The tracefs root, mounting it when needed (root only).
pub fn tracefs_or_skip() -> Option<PathBuf> {
    let r = crate::kernel::tracefs::ensure_mounted();
    require(&format!("tracefs ({:?})", r.as_ref().err()), r.is_ok()).then(|| r.expect("checked"))
}

/// An event of a victim record with `pid` (comm `hog1`), no context.
pub fn event(pid: u32) -> crate::event::Event {
    let r = crate::decode::tests::victim(pid);
    let sys = crate::event::System {
        page_size: 4096,
        ram_pages: 1 << 20,
        swap_pages: 0,
    };
    crate::event::Event::from_victim(
        &r,
        None,
        false,
        &sys,
        &crate::kernel::gfp::GfpTable::builtin(),
        "n",
    )
}
