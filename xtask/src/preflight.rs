//! What a task needs before it starts. A missing tool or file ends the task with one line that
//! names it and the command that installs it, not a backtrace half-way through.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// One prerequisite.
pub enum Need<'a> {
    /// A program on PATH.
    Program(&'a str),
    /// A statically linked executable (copied alone into a VM).
    StaticExecutable(&'a Path),
    /// A file (a keyring, ...).
    File(&'a Path),
    /// Root (uid 0).
    Root,
    /// A rustup toolchain.
    Toolchain(&'a str),
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}

fn is_static(path: &Path) -> bool {
    // An ELF with no PT_INTERP program header is statically linked; read the headers with the
    // standard library rather than run `file`.
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (
        bytes
            .get(32..40)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())),
        bytes.get(54..56).map(|b| u16::from_le_bytes([b[0], b[1]])),
        bytes.get(56..58).map(|b| u16::from_le_bytes([b[0], b[1]])),
    ) else {
        return false;
    };
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) {
        return false;
    }
    (0..u64::from(phnum)).all(|i| {
        let at = usize::try_from(phoff + i * u64::from(phentsize)).unwrap_or(usize::MAX);
        // p_type 3 = PT_INTERP.
        bytes.get(at..at + 4) != Some(&3u32.to_le_bytes()[..])
    })
}

impl Need<'_> {
    /// `None` when met, else what is missing.
    fn missing(&self) -> Option<String> {
        match *self {
            Need::Program(p) => on_path(p).is_none().then(|| format!("{p} (not on PATH)")),
            Need::StaticExecutable(f) if !f.exists() => Some(f.display().to_string()),
            Need::StaticExecutable(f) => {
                (!is_static(f)).then(|| format!("{} (not statically linked)", f.display()))
            }
            Need::File(f) => (!f.is_file()).then(|| f.display().to_string()),
            // SAFETY: geteuid has no preconditions.
            Need::Root => (unsafe { libc::geteuid() } != 0).then(|| "root (uid 0)".to_owned()),
            Need::Toolchain(t) => (!Command::new("rustup")
                .args(["run", t, "rustc", "--version"])
                .output()
                .is_ok_and(|o| o.status.success()))
            .then(|| format!("rustup toolchain {t}")),
        }
    }
}

/// Every missing prerequisite of `task`, or exit 1 with one line saying what and how to install.
pub fn require(task: &str, needs: &[Need<'_>], install: &str) {
    let missing: Vec<String> = needs.iter().filter_map(Need::missing).collect();
    if !missing.is_empty() {
        eprintln!(
            "cargo xtask {task}: missing {}; install with: {install}",
            missing.join(", ")
        );
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_executables() {
        // This test binary is dynamically linked (it has an interpreter).
        let me = std::env::current_exe().unwrap();
        assert!(!is_static(&me));
        assert!(Need::StaticExecutable(&me).missing().is_some());
        assert!(
            Need::StaticExecutable(Path::new("/no/such/file"))
                .missing()
                .is_some()
        );
        assert!(Need::Program("sh").missing().is_none());
        assert!(Need::Program("no-such-program-xyz").missing().is_some());
        assert!(!is_static(Path::new("/etc/hostname")));
        assert!(Need::File(Path::new("/etc/hostname")).missing().is_none());
        assert!(Need::File(Path::new("/no/such/file")).missing().is_some());
    }

    /// A minimal ELF64 header with one program header of type `p_type`.
    fn elf(p_type: u32) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2; // ELFCLASS64
        b[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        b[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        b[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        b[64..68].copy_from_slice(&p_type.to_le_bytes());
        b
    }

    #[test]
    fn pt_interp_decides() {
        let d = std::env::temp_dir().join(format!("xtask-preflight-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let (load, interp) = (d.join("static"), d.join("dynamic"));
        std::fs::write(&load, elf(1)).unwrap();
        std::fs::write(&interp, elf(3)).unwrap();
        let got = (is_static(&load), is_static(&interp));
        std::fs::remove_dir_all(&d).unwrap();
        assert_eq!(got, (true, false));
    }
}
