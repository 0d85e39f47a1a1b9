//! Long-uptime safety (issue 13): the victim's cgroup path is either whole or flagged
//! `truncated`, at every length up to what the kernel allows.

use std::time::Duration;

use oomtrace_tests::{cgroup::MemCgroup, daemon::Daemon, require_root, unique};

/// A nested cgroup path of about `total` bytes (with its leading `/`): `n` names of the same
/// length, the first a unique name padded.
fn long_path(total: usize, n: usize) -> String {
    let each = total / n - 1;
    assert!(each <= 255, "a cgroup name is at most NAME_MAX bytes");
    let top = unique("oomtrace-long");
    let mut p = format!("{top}{}", "x".repeat(each - top.len()));
    for i in 1..n {
        p.push('/');
        p.push_str(&i.to_string());
        p.push_str(&"x".repeat(each - 1));
    }
    p
}

fn kill_in(d: &mut Daemon, path: &str) -> serde_json::Value {
    let cg = MemCgroup::create(path, Some(64 << 20));
    let mut hog = cg.spawn_hog(&[]);
    let pid = hog.pid();
    hog.expect_oom_killed(Duration::from_mins(1));
    let (_, ev) = d.victim(pid, Duration::from_secs(5));
    ev["victim"]["cgroup"].clone()
}

#[test]
fn cgroup_paths_are_whole_or_flagged_truncated() {
    if !require_root() {
        return;
    }
    let mut d = Daemon::start(&["run"]);
    // 600 bytes in three names: the top one starts inside the kernel side's 512 bytes and ends
    // past them. It used to be cut at 512 bytes without the flag; whole now.
    let p600 = long_path(600, 3);
    assert!((590..=600).contains(&(p600.len() + 1)), "{}", p600.len());
    let c = kill_in(&mut d, &p600);
    assert_eq!(c["path"], format!("/{p600}"), "{c}");
    assert!(c.get("truncated").is_none(), "{c}");
    // 900 bytes: more than the kernel side can copy (768): flagged.
    let p900 = long_path(900, 4);
    assert!((880..=900).contains(&(p900.len() + 1)), "{}", p900.len());
    let c = kill_in(&mut d, &p900);
    assert_eq!(c["truncated"], true, "{c}");
    let path = c["path"].as_str().expect("path");
    assert!(
        format!("/{p900}").ends_with(path) && path.len() < p900.len(),
        "a truncated path is the leaf end of the real one: {path}"
    );
    // And a short one is whole.
    let short = unique("oomtrace-short");
    let c = kill_in(&mut d, &short);
    assert_eq!(c["path"], format!("/{short}"));
    assert!(c.get("truncated").is_none(), "{c}");
    d.stop();
}
