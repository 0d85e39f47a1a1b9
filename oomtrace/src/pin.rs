//! Restart without loss: the ring buffer, the counters and the links are pinned in bpffs, so the
//! hooks stay attached and keep writing while no daemon runs; the next daemon reuses the pinned
//! ring and delivers what waited there (flagged `delivered_late`).
//!
//! Layout: `<root>/<layout id>/{events, counters, reported, link-victim-<hook>,
//! link-context-<hook>, link-return-<hook>, link-exit-<hook>}`, root `/sys/fs/bpf/oomtrace`. The
//! layout id is the record version and a hash of the embedded eBPF object, so a daemon only ever
//! reuses programs built from the very same object: it can decode their records.
//!
//! Replacing another build safely: under an exclusive lock on the root (`flock`, so two daemons
//! never share one ring), every pin set with another layout id is removed first — its links
//! detach, its ring goes away unread (its records may be in a layout this build cannot decode) —
//! and then this build's programs are loaded, attached and pinned. Two sets of programs are never
//! attached at once; kills in the instant between are not seen by BPF (they still count in
//! /proc/vmstat, so reconciliation reports them as unexplained).

use std::{
    fs::File,
    io,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
};

use aya::{
    maps::{Array, Map, MapData, PerCpuArray, RingBuf},
    programs::links::{FdLink, PinnedLink},
};

/// Where oomtrace pins by default.
pub const DEFAULT_ROOT: &str = "/sys/fs/bpf/oomtrace";
/// `statfs` magic of bpffs (include/uapi/linux/magic.h).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("another oomtrace holds the pins in {path}")]
    Busy { path: PathBuf },
    #[error(
        "a running oomtrace holds the pins in {path} (its lock): not removing them; stop it first, or `oomtrace cleanup --force` to remove them anyway (its hooks detach and it stops seeing kills)"
    )]
    InUse { path: PathBuf },
    #[error("mounting bpffs on {path}: {source}")]
    Mount { path: PathBuf, source: io::Error },
    #[error("opening pinned {path}: {reason}")]
    Open { path: PathBuf, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> PinError + '_ {
    move |source| PinError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The record version and a hash (FNV-1a) of the embedded object: `v1-0123456789abcdef`.
pub fn layout_id() -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in crate::probes::EBPF_OBJECT {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("v{}-{h:016x}", oomtrace_common::RECORD_VERSION)
}

fn is_bpffs(path: &Path) -> bool {
    crate::kernel::fs_magic(path) == Some(BPF_FS_MAGIC)
}

/// Mounts bpffs on the root's parent (normally /sys/fs/bpf) when it is not bpffs yet.
fn ensure_bpffs(root: &Path) -> Result<(), PinError> {
    let mnt = root.parent().unwrap_or(Path::new("/sys/fs/bpf"));
    if is_bpffs(mnt) {
        return Ok(());
    }
    log::info!("mounting bpffs on {}", mnt.display());
    crate::kernel::mount_pseudo_fs("bpf", mnt).map_err(|source| PinError::Mount {
        path: mnt.to_path_buf(),
        source,
    })?;
    Ok(())
}

/// Held for the daemon's lifetime: an exclusive `flock` on the pin root.
pub struct PinLock {
    _dir: File,
}

/// What was pinned by an earlier daemon of this build.
pub struct Reused {
    pub ring: RingBuf<MapData>,
    pub counters: Option<PerCpuArray<MapData, u64>>,
    /// What of the counters the daemons before this one reported (`REPORTED`).
    pub reported: Option<Array<MapData, u64>>,
    /// `victim-tp_btf`, `context-kprobe`, ...
    pub links: Vec<String>,
}

impl Reused {
    /// Whether these pinned hooks are what `--hooks` asks for (auto matches anything).
    pub fn matches(&self, want: crate::probes::HookChoice) -> bool {
        let has = |name: String| self.links.contains(&name);
        let victim_ok = want
            .victim
            .is_none_or(|h| has(format!("victim-{}", h.name())));
        let context_ok = match want.context {
            None => true,
            Some(None) => !self.links.iter().any(|l| l.starts_with("context-")),
            Some(Some(h)) => has(format!("context-{}", h.name())),
        };
        victim_ok && context_ok
    }

    pub fn summary(&self) -> String {
        let hook = |role: &str| {
            self.links
                .iter()
                .find_map(|l| l.strip_prefix(role)?.strip_prefix('-'))
                .unwrap_or("none")
                .to_string()
        };
        format!(
            "victim={} context={} exit={} (pinned)",
            hook("victim"),
            hook("context"),
            hook("exit")
        )
    }
}

/// The result of [`prepare`].
pub struct Prepared {
    pub lock: PinLock,
    /// This build's pin directory.
    pub dir: PathBuf,
    /// Pins of an earlier daemon of this build, to reuse; None: load fresh and pin into `dir`.
    pub reused: Option<Reused>,
}

/// Mounts bpffs if needed, takes the lock, removes other builds' pins, and opens this build's
/// pins when they are complete.
pub fn prepare(root: &Path) -> Result<Prepared, PinError> {
    ensure_bpffs(root)?;
    std::fs::create_dir_all(root).map_err(io_err(root))?;
    let dir_fd = File::open(root).map_err(io_err(root))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(dir_fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(PinError::Busy {
            path: root.to_path_buf(),
        });
    }
    let lock = PinLock { _dir: dir_fd };
    let ours = root.join(layout_id());
    for e in std::fs::read_dir(root).map_err(io_err(root))?.flatten() {
        if e.path() != ours {
            log::info!(
                "removing pins of another oomtrace build: {}",
                e.path().display()
            );
            std::fs::remove_dir_all(e.path()).map_err(io_err(&e.path()))?;
        }
    }
    let links = links_in(&ours);
    let complete = ours.join("events").exists() && links.iter().any(|l| l.starts_with("victim-"));
    if complete {
        match open(&ours, links) {
            Ok(r) => {
                return Ok(Prepared {
                    lock,
                    dir: ours,
                    reused: Some(r),
                });
            }
            Err(e) => log::warn!("{e}: replacing the pins"),
        }
    }
    if ours.exists() {
        std::fs::remove_dir_all(&ours).map_err(io_err(&ours))?;
    }
    std::fs::create_dir(&ours).map_err(io_err(&ours))?;
    Ok(Prepared {
        lock,
        dir: ours,
        reused: None,
    })
}

fn links_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_prefix("link-")
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn open(dir: &Path, links: Vec<String>) -> Result<Reused, PinError> {
    let path = dir.join("events");
    let bad = |path: &Path, reason: String| PinError::Open {
        path: path.to_path_buf(),
        reason,
    };
    let ring = MapData::from_pin(&path).map_err(|e| bad(&path, e.to_string()))?;
    let ring = RingBuf::try_from(Map::RingBuf(ring)).map_err(|e| bad(&path, e.to_string()))?;
    let cpath = dir.join("counters");
    let counters = MapData::from_pin(&cpath)
        .ok()
        .and_then(|m| PerCpuArray::try_from(Map::PerCpuArray(m)).ok());
    let rpath = dir.join("reported");
    let reported = MapData::from_pin(&rpath)
        .ok()
        .and_then(|m| Array::try_from(Map::Array(m)).ok());
    Ok(Reused {
        ring,
        counters,
        reported,
        links,
    })
}

/// The fd of `link` in this process: aya's `FdLink` does not lend it, and its `pin` consumes the
/// link (so a failed pin would detach the hook). Found by the link id in `/proc/self/fdinfo`.
fn link_fd(link: &FdLink) -> io::Result<i32> {
    let id = link.info().map_err(io::Error::other)?.id();
    let want = format!("link_id:\t{id}");
    for e in std::fs::read_dir("/proc/self/fdinfo")?.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if std::fs::read_to_string(e.path()).is_ok_and(|t| t.lines().any(|l| l == want)) {
            return Ok(fd);
        }
    }
    Err(io::Error::other(format!(
        "link {id}: no fd of this process holds it"
    )))
}

/// `BPF_OBJ_PIN`'s part of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    /// Zero: the kernel refuses an attribute with non-zero bytes past the command's fields.
    pad: u32,
}

/// Pins `link` at `path` without consuming it: when pinning fails (the path exists, its
/// directory is gone, the name is too long, ...) the caller still owns the link, so the hook
/// stays attached. Returns the link's id.
pub fn pin_link(link: &FdLink, path: &Path) -> io::Result<u32> {
    use std::os::unix::ffi::OsStrExt as _;
    const BPF_OBJ_PIN: libc::c_long = 6;
    let id = link.info().map_err(io::Error::other)?.id();
    let fd = link_fd(link)?;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let attr = ObjPinAttr {
        pathname: c.as_ptr() as u64,
        bpf_fd: fd.cast_unsigned(),
        file_flags: 0,
        path_fd: 0,
        pad: 0,
    };
    // SAFETY: bpf(BPF_OBJ_PIN) reads `attr` (and the path it points to, alive until after the
    // call) and does not keep either.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_PIN,
            std::ptr::from_ref(&attr),
            std::mem::size_of::<ObjPinAttr>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(id)
}

/// The id of the link pinned at `path`; an error when nothing is pinned there any more (the
/// hook detached when its pin was removed).
pub fn pinned_link_id(path: &Path) -> Result<u32, String> {
    let l = PinnedLink::from_pin(path).map_err(|e| format!("{}: {e}", path.display()))?;
    FdLink::from(l)
        .info()
        .map(|i| i.id())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// `oomtrace cleanup`: removes every pin (the hooks detach). Returns how many pin sets it removed.
/// Refuses ([`PinError::InUse`]) while a daemon holds the pin lock, unless `force`.
pub fn cleanup(root: &Path, force: bool) -> Result<usize, PinError> {
    if !root.exists() {
        return Ok(0);
    }
    let dir_fd = File::open(root).map_err(io_err(root))?;
    // Held while removing: no daemon starts pinning into what is being removed.
    // SAFETY: flock on an fd we own.
    let locked = unsafe { libc::flock(dir_fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    if !locked {
        if !force {
            return Err(PinError::InUse {
                path: root.to_path_buf(),
            });
        }
        log::warn!(
            "--force: removing the pins of a running oomtrace in {}: its hooks detach",
            root.display()
        );
    }
    let n = std::fs::read_dir(root).map_err(io_err(root))?.count();
    std::fs::remove_dir_all(root).map_err(io_err(root))?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_id_names_the_record_version() {
        let id = layout_id();
        assert!(
            id.starts_with(&format!("v{}-", oomtrace_common::RECORD_VERSION)),
            "{id}"
        );
        assert_eq!(
            id.len(),
            2 + oomtrace_common::RECORD_VERSION.to_string().len() + 16
        );
        assert_eq!(id, layout_id(), "stable");
    }

    #[test]
    fn cleanup_of_nothing_is_zero() {
        assert_eq!(
            cleanup(Path::new("/nonexistent/oomtrace-pins"), false).unwrap(),
            0
        );
    }

    #[test]
    fn cleanup_refuses_while_the_lock_is_held_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pins");
        std::fs::create_dir_all(root.join("v1-x")).unwrap();
        let held = File::open(&root).unwrap();
        // SAFETY: flock on an fd we own.
        assert_eq!(
            unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
        let e = cleanup(&root, false).unwrap_err().to_string();
        assert!(
            e.contains("running oomtrace") && e.contains("--force"),
            "{e}"
        );
        assert!(root.join("v1-x").exists(), "nothing removed");
        assert_eq!(cleanup(&root, true).unwrap(), 1);
        assert!(!root.exists());
        drop(held);
        std::fs::create_dir_all(root.join("v1-y")).unwrap();
        assert_eq!(cleanup(&root, false).unwrap(), 1, "no lock held: removed");
    }
}
