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
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-parameter; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &raw mut st) };
    rc == 0 && st.f_type == CGROUP2_SUPER_MAGIC
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host() {
        let m = detect(Path::new("/"));
        // Whatever it is, it must agree with the filesystem.
        let v1 = Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists();
        match m {
            CgroupMode::V1 | CgroupMode::Hybrid => assert!(v1),
            CgroupMode::V2 => assert!(!v1),
            CgroupMode::None => {}
        }
        if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() && v1 {
            assert_eq!(m, CgroupMode::Hybrid);
        }
    }
}
