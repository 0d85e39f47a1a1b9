//! The initramfs: a cpio "newc" archive written here (no staging directory, no root-owned
//! files on the host), compressed with `gzip`. It holds busybox-static with its applet links,
//! the scenario scripts of tests/vm/ (init.sh as /init), and optionally oomtrace with the shared
//! libraries `ldd` names and the dynamic loader.

use std::{
    collections::BTreeSet,
    fs,
    io::Write as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail, ensure};

/// Where oomtrace lands inside the VM (tests/vm/lib.sh expects it there).
pub const OOMTRACE_IN_VM: &str = "usr/local/bin/oomtrace";

pub struct Spec<'a> {
    /// A statically linked busybox.
    pub busybox: &'a Path,
    /// tests/vm: init.sh, lib.sh, scenarios/*.sh.
    pub scripts: &'a Path,
    pub oomtrace: Option<&'a Path>,
}

/// Builds the archive and writes it, gzip-compressed, to `out`. Returns the uncompressed size.
pub fn build(spec: &Spec<'_>, out: &Path) -> Result<usize> {
    let mut a = Cpio::default();
    for d in [
        "proc", "sys", "dev", "tmp", "run", "root", "etc", "bin", "sbin", "usr/bin", "usr/sbin",
    ] {
        a.dir(d);
    }
    // The kernel opens /dev/console for /init's stdio before anything is mounted.
    a.char_dev("dev/console", 0o600, 5, 1);

    ensure_static(spec.busybox)?;
    a.file("bin/busybox", 0o755, &read(spec.busybox)?);
    for applet in busybox_applets(spec.busybox)? {
        if applet != "bin/busybox" {
            a.symlink(&applet, "/bin/busybox");
        }
    }

    a.file("init", 0o755, &read(&spec.scripts.join("init.sh"))?);
    a.file("vmtest/lib.sh", 0o644, &read(&spec.scripts.join("lib.sh"))?);
    let scen_dir = spec.scripts.join("scenarios");
    let mut scenarios: Vec<PathBuf> = fs::read_dir(&scen_dir)
        .with_context(|| format!("reading {}", scen_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sh"))
        .collect();
    scenarios.sort();
    for s in &scenarios {
        let name = s
            .file_name()
            .and_then(|n| n.to_str())
            .context("scenario file name")?;
        a.file(&format!("vmtest/scenarios/{name}"), 0o644, &read(s)?);
    }

    if let Some(bin) = spec.oomtrace {
        a.file(OOMTRACE_IN_VM, 0o755, &read(bin)?);
        for lib in shared_libraries(bin)? {
            let inside = lib
                .to_str()
                .context("library path is not UTF-8")?
                .trim_start_matches('/');
            a.file(inside, 0o755, &read(&lib)?);
        }
    }

    let raw = a.finish();
    gzip(&raw, out)?;
    Ok(raw.len())
}

fn read(p: &Path) -> Result<Vec<u8>> {
    fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// `busybox --list-full`: applet paths relative to / (`usr/bin/tail`, ...).
fn busybox_applets(busybox: &Path) -> Result<Vec<String>> {
    let out = Command::new(busybox)
        .arg("--list-full")
        .output()
        .with_context(|| format!("running {} --list-full", busybox.display()))?;
    ensure!(
        out.status.success(),
        "{} --list-full failed",
        busybox.display()
    );
    let list = String::from_utf8(out.stdout).context("busybox --list-full output is not UTF-8")?;
    Ok(list
        .lines()
        .map(|l| l.trim_start_matches('/').to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

fn ensure_static(bin: &Path) -> Result<()> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if out.status.success() && !text.contains("statically linked") {
        bail!(
            "{} is dynamically linked; the VM needs busybox-static (apt-get install busybox-static)",
            bin.display()
        );
    }
    Ok(())
}

/// The libraries and the loader `ldd` names for `bin`, as absolute paths.
fn shared_libraries(bin: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .with_context(|| format!("running ldd {}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // A static binary needs nothing more.
        return Ok(Vec::new());
    }
    let libs = parse_ldd(&text);
    for l in &libs {
        ensure!(
            l.is_file(),
            "ldd names {} for {}, which is not a file",
            l.display(),
            bin.display()
        );
    }
    Ok(libs)
}

/// `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)` and `/lib64/ld-linux-x86-64.so.2 (0x…)`
/// give a path; `linux-vdso.so.1 (0x…)` does not.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    let mut set = BTreeSet::new();
    for line in text.lines() {
        let line = line.trim();
        let path = line.split_once("=>").map_or(line, |(_, r)| r.trim());
        let path = path.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            set.insert(PathBuf::from(path));
        }
    }
    set.into_iter().collect()
}

fn gzip(raw: &[u8], out: &Path) -> Result<()> {
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut child = Command::new("gzip")
        .args(["-1", "-n", "-c"])
        .stdin(Stdio::piped())
        .stdout(file)
        .spawn()
        .context("running gzip")?;
    child
        .stdin
        .take()
        .context("gzip's stdin")?
        .write_all(raw)
        .context("writing to gzip")?;
    let st = child.wait().context("waiting for gzip")?;
    ensure!(st.success(), "gzip failed ({st})");
    Ok(())
}

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// A cpio "newc" (SVR4, no CRC) writer. Parent directories are added before their entries; a
/// path added twice keeps its first entry. Owner root, mtime 0.
#[derive(Default)]
struct Cpio {
    buf: Vec<u8>,
    ino: u32,
    paths: BTreeSet<String>,
}

impl Cpio {
    fn dir(&mut self, path: &str) {
        self.parents(path);
        if self.paths.insert(path.to_owned()) {
            self.entry(path, S_IFDIR | 0o755, 2, (0, 0), &[]);
        }
    }

    fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        self.parents(path);
        if self.paths.insert(path.to_owned()) {
            self.entry(path, S_IFREG | perm, 1, (0, 0), data);
        }
    }

    fn symlink(&mut self, path: &str, target: &str) {
        self.parents(path);
        if self.paths.insert(path.to_owned()) {
            self.entry(path, S_IFLNK | 0o777, 1, (0, 0), target.as_bytes());
        }
    }

    fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) {
        self.parents(path);
        if self.paths.insert(path.to_owned()) {
            self.entry(path, S_IFCHR | perm, 1, (major, minor), &[]);
        }
    }

    fn parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            let dir = &path[..end + i];
            if self.paths.insert(dir.to_owned()) {
                self.entry(dir, S_IFDIR | 0o755, 2, (0, 0), &[]);
            }
            end += i + 1;
        }
    }

    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let size = u32::try_from(data.len()).expect("initramfs member over 4 GiB");
        let namesize = u32::try_from(name.len() + 1).expect("path length");
        let fields = [
            self.ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev.0, rdev.1, namesize, 0,
        ];
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::{Cpio, parse_ldd};
    use std::path::PathBuf;

    #[test]
    fn ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x1)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x2)\n\t/lib64/ld-linux-x86-64.so.2 (0x3)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
    }

    #[test]
    fn newc_layout() {
        let mut a = Cpio::default();
        a.file("a/b", 0o644, b"hello");
        let raw = a.finish();
        // "a" (dir), "a/b", trailer; every header starts on a 4-byte boundary.
        let text = String::from_utf8_lossy(&raw);
        assert_eq!(text.matches("070701").count(), 3);
        assert!(raw.len() % 4 == 0);
        let b = text.find("a/b\0").unwrap();
        assert_eq!(&text[b - 110..b - 104], "070701");
        // mode of a/b, filesize 5, namesize 4.
        assert_eq!(&text[b - 110 + 14..b - 110 + 22], "000081a4");
        assert_eq!(&text[b - 110 + 54..b - 110 + 62], "00000005");
        assert_eq!(&text[b - 110 + 94..b - 110 + 102], "00000004");
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!"));
    }
}
