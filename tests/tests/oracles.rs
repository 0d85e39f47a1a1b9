//! oomtrace's readings of the running kernel, checked against the kernel's own words at test
//! time (never against numbers of one kernel build): the GFP flag names oomtrace prints for a
//! mask must be the ones the kernel itself prints (`%pGg`) in its OOM report header.

use std::{path::Path, time::Duration};

use oomtrace::kernel::gfp;
use oomtrace_tests::{cgroup::MemCgroup, kmsg::Kmsg, require_root, unique};

/// `gfp_mask=0xcc0(GFP_KERNEL)` of `… invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0,
/// oom_score_adj=0` → `(0xcc0, "GFP_KERNEL")`.
fn header_gfp(line: &str) -> Option<(u64, String)> {
    let rest = line.split_once("gfp_mask=0x")?.1;
    let (hex, rest) = rest.split_once('(')?;
    let names = rest.split_once(')')?.0;
    Some((u64::from_str_radix(hex, 16).ok()?, names.to_owned()))
}

#[test]
fn header_parser() {
    assert_eq!(
        header_gfp(
            "python3 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"
        ),
        Some((0xcc0, "GFP_KERNEL".into()))
    );
    assert_eq!(header_gfp("Killed process 1 (x)"), None);
}

#[test]
fn gfp_names_are_the_kernels_own() {
    if !require_root() {
        return;
    }
    let tracefs = oomtrace::kernel::tracefs::ensure_mounted().expect("tracefs");
    let table = gfp::load(&tracefs);
    let cg = MemCgroup::create(&unique("oomtrace-gfp"), Some(64 << 20));
    // The OOM report header is rate-limited (10 per 5 s, shared with every other OOM on the
    // node): try a few kills, each after a fresh window.
    let mut header = None;
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(5500));
        }
        let mut kmsg = Kmsg::open();
        let mut hog = cg.spawn_hog(&[]);
        let pid = hog.pid();
        hog.expect_oom_killed(Duration::from_mins(1));
        kmsg.killed(pid, Duration::from_secs(5));
        // The header names the task that ran the OOM killer: the hog itself here.
        header = kmsg.message(
            |m| m.contains("invoked oom-killer: gfp_mask=") && m.starts_with("oomtrace-hog"),
            Duration::from_millis(500),
        );
        if header.is_some() {
            break;
        }
    }
    let header = header.expect("the kernel printed no OOM header for 4 kills (rate limit?)");
    let (mask, kernel_names) = header_gfp(&header).expect("gfp_mask=0x…(…) in the header");
    assert_eq!(
        table.format(mask),
        kernel_names,
        "oomtrace's names for {mask:#x} (table from {}) vs the kernel's: {header}",
        Path::new(&tracefs).display()
    );
}
