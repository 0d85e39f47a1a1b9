//! Which cgroup hierarchy holds the memory controller: v2 (unified), v1, or hybrid (v1 memory
//! beside a v2 hierarchy without it). It decides which cgroup of a task oomtrace reports.

use std::path::Path;

/// `statfs` magic of cgroup2 (include/uapi/linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    /// Memory controller on the unified hierarchy.
    V2,
    /// Memory controller on a v1 hierarchy, no cgroup2 mounted.
    V1,
    /// Memory controller on v1, a cgroup2 hierarchy mounted too (systemd "hybrid").
    Hybrid,
    /// No memory controller found.
    None,
}

impl CgroupMode {
    /// True when the task's v2 cgroup is the one to report.
    pub fn memory_on_v2(self) -> bool {
        self == Self::V2
    }
}

fn is_cgroup2(path: &Path) -> bool {
    super::fs_magic(path) == Some(CGROUP2_SUPER_MAGIC)
}

/// Looks at `<root>/sys/fs/cgroup`.
pub fn detect(root: &Path) -> CgroupMode {
    let base = root.join("sys/fs/cgroup");
    if is_cgroup2(&base) {
        let controllers =
            std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
        return if controllers.split_whitespace().any(|c| c == "memory") {
            CgroupMode::V2
        } else {
            CgroupMode::None
        };
    }
    if base.join("memory/memory.limit_in_bytes").exists() {
        return if is_cgroup2(&base.join("unified")) {
            CgroupMode::Hybrid
        } else {
            CgroupMode::V1
        };
    }
    CgroupMode::None
}

/// Where the memory controller's files are: `<root>/sys/fs/cgroup` (v2) or
/// `<root>/sys/fs/cgroup/memory` (v1, hybrid).
pub fn memory_mount(root: &Path, mode: CgroupMode) -> Option<std::path::PathBuf> {
    let base = root.join("sys/fs/cgroup");
    match mode {
        CgroupMode::V2 => Some(base),
        CgroupMode::V1 | CgroupMode::Hybrid => Some(base.join("memory")),
        CgroupMode::None => None,
    }
}

/// The kernel's own count of OOM kills of tasks in a memory cgroup itself (not its children):
/// `oom_kill` of v2 `memory.events.local` (5.2+; `memory.events` before) or v1
/// `memory.oom_control`. None when the cgroup is gone.
pub fn oom_kill_count(mount: &Path, path: &str) -> Option<u64> {
    let dir = mount.join(path.trim_start_matches('/'));
    // Kills in this cgroup itself, not in its children: v2's `memory.events` is hierarchical,
    // `memory.events.local` is not; v1's `memory.oom_control` counts only its own (the kernel's
    // memcg_memory_event() does not propagate on v1).
    let text = std::fs::read_to_string(dir.join("memory.events.local"))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.events")))
        .or_else(|_| std::fs::read_to_string(dir.join("memory.oom_control")))
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// Limits at or above this are "no limit" (v1 writes PAGE_COUNTER_MAX × PAGE_SIZE, about 2^63).
const UNLIMITED: u64 = 1 << 62;

/// The memory limit of cgroup `path` (from the hierarchy root) or of its nearest ancestor that
/// has one, read from the cgroup filesystem mounted at `mount`: `(bytes, cgroup path)`. None when
/// the cgroup no longer exists or nothing up to the root is limited.
pub fn memory_limit(mount: &Path, path: &str) -> Option<(u64, String)> {
    let mut rel = path.trim_start_matches('/').to_string();
    if !mount.join(&rel).is_dir() {
        return None;
    }
    loop {
        let dir = mount.join(&rel);
        let v2 = std::fs::read_to_string(dir.join("memory.max"));
        let text = v2.or_else(|_| std::fs::read_to_string(dir.join("memory.limit_in_bytes")));
        if let Ok(t) = text
            && let Ok(bytes) = t.trim().parse::<u64>()
            && bytes < UNLIMITED
        {
            return Some((bytes, format!("/{rel}")));
        }
        if rel.is_empty() {
            return None;
        }
        rel = rel
            .rsplit_once('/')
            .map_or(String::new(), |(p, _)| p.to_string());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn oom_kills_are_counted_per_cgroup_not_per_subtree() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        std::fs::create_dir_all(m.join("pod/a")).unwrap();
        // v2: the parent's memory.events includes its child's kills; .local does not.
        std::fs::write(m.join("pod/memory.events"), "oom 3\noom_kill 3\n").unwrap();
        std::fs::write(m.join("pod/memory.events.local"), "oom 0\noom_kill 0\n").unwrap();
        std::fs::write(m.join("pod/a/memory.events"), "oom_kill 3\n").unwrap();
        std::fs::write(m.join("pod/a/memory.events.local"), "oom_kill 3\n").unwrap();
        assert_eq!(oom_kill_count(m, "/pod"), Some(0));
        assert_eq!(oom_kill_count(m, "/pod/a"), Some(3));
        // v1.
        std::fs::create_dir_all(m.join("v1")).unwrap();
        std::fs::write(
            m.join("v1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        assert_eq!(oom_kill_count(m, "/v1"), Some(2));
        assert_eq!(oom_kill_count(m, "/gone"), None);
    }

    #[test]
    fn limit_walks_up_to_the_nearest_limited_ancestor() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path();
        std::fs::create_dir_all(m.join("a/b/c")).unwrap();
        std::fs::write(m.join("memory.max"), "max\n").unwrap();
        std::fs::write(m.join("a/memory.max"), "67108864\n").unwrap();
        std::fs::write(m.join("a/b/memory.max"), "max\n").unwrap();
        assert_eq!(memory_limit(m, "/a/b/c"), Some((64 << 20, "/a".into())));
        assert_eq!(memory_limit(m, "/a"), Some((64 << 20, "/a".into())));
        assert_eq!(memory_limit(m, "/"), None, "root unlimited");
        assert_eq!(memory_limit(m, "/gone"), None, "deleted cgroup: no guess");
        // v1 spelling of "no limit".
        std::fs::create_dir_all(m.join("v1")).unwrap();
        std::fs::write(m.join("v1/memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(memory_limit(m, "/v1"), None);
    }

    use super::*;

    /// The mode agrees with the kernel's own mount table (`/proc/self/mounts`), read here
    /// without the product's code.
    #[test]
    fn this_host_agrees_with_the_mount_table() {
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        let at = |fstype: &str, dir: &str| -> Option<String> {
            mounts.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() > 3 && f[1] == dir && f[2] == fstype).then(|| f[3].to_owned())
            })
        };
        let v2_root = at("cgroup2", "/sys/fs/cgroup").is_some();
        let v1_memory = at("cgroup", "/sys/fs/cgroup/memory")
            .is_some_and(|opts| opts.split(',').any(|o| o == "memory"));
        let unified = at("cgroup2", "/sys/fs/cgroup/unified").is_some();
        let want = if v2_root {
            let controllers =
                std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap_or_default();
            if controllers.split_whitespace().any(|c| c == "memory") {
                CgroupMode::V2
            } else {
                CgroupMode::None
            }
        } else if v1_memory {
            if unified {
                CgroupMode::Hybrid
            } else {
                CgroupMode::V1
            }
        } else {
            CgroupMode::None
        };
        let got = detect(Path::new("/"));
        assert_eq!(got, want, "mounts:\n{mounts}");
        // The suite OOM-kills in memory cgroups: a CI host must have them.
        crate::testutil::require("a memory cgroup hierarchy", got != CgroupMode::None);
    }
}
