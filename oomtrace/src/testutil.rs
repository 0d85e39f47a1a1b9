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
