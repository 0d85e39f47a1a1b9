//! One boot of the guest under `qemu-system-x86_64 -accel tcg`, bounded in wall time.
//!
//! ttyS0 (kernel console and the scripts' progress) and ttyS1 (the framed results, see
//! report.rs) are files in the boot's directory, so kernel messages never interleave with the
//! results.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

pub struct Boot<'a> {
    pub name: &'a str,
    pub vmlinuz: &'a Path,
    pub initrd: &'a Path,
    pub memory_mib: u32,
    /// Appended to `console=ttyS0 loglevel=4 panic=-1 ...`.
    pub cmdline: String,
    pub dir: PathBuf,
    pub timeout: Duration,
}

pub struct Outcome {
    /// What the guest wrote to ttyS1, `\r` removed.
    pub results: String,
    pub console: PathBuf,
    pub results_path: PathBuf,
    pub elapsed: Duration,
    /// QEMU's exit status; `None` when it was killed at the timeout.
    pub status: Option<ExitStatus>,
}

pub fn run(b: &Boot<'_>) -> Result<Outcome> {
    fs::create_dir_all(&b.dir).with_context(|| format!("creating {}", b.dir.display()))?;
    let console = b.dir.join("console.log");
    let results_path = b.dir.join("results.log");
    let qemu_log = b.dir.join("qemu.log");
    for p in [&console, &results_path] {
        if p.exists() {
            fs::remove_file(p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let log =
        fs::File::create(&qemu_log).with_context(|| format!("creating {}", qemu_log.display()))?;
    let log2 = log
        .try_clone()
        .with_context(|| format!("duplicating {}", qemu_log.display()))?;
    // loglevel=4: the console (a TCG-emulated UART, slow per byte) gets errors only, not the
    // long OOM reports; the scenarios read those from the kernel ring buffer (dmesg).
    let append = format!("console=ttyS0 loglevel=4 panic=-1 {}", b.cmdline);

    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-smp", "1", "-m"])
        .arg(b.memory_mib.to_string())
        .args(["-nodefaults", "-display", "none", "-no-reboot"])
        .arg("-serial")
        .arg(serial_file(&console)?)
        .arg("-serial")
        .arg(serial_file(&results_path)?)
        .arg("-kernel")
        .arg(b.vmlinuz)
        .arg("-initrd")
        .arg(b.initrd)
        .arg("-append")
        .arg(&append)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    let start = Instant::now();
    let mut child = cmd.spawn().context(
        "starting qemu-system-x86_64 (apt-get install qemu-system-x86, or scripts/setup.sh --test)",
    )?;
    let status = loop {
        if let Some(st) = child.try_wait().context("waiting for qemu")? {
            break Some(st);
        }
        if start.elapsed() >= b.timeout {
            eprintln!(
                "vm-test: boot {}: no power-off after {:?}: killing QEMU",
                b.name, b.timeout
            );
            // Ours, by handle: the child we spawned.
            let _ = child.kill();
            child.wait().context("reaping qemu")?;
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let elapsed = start.elapsed();
    let results = match fs::read(&results_path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).replace('\r', ""),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", results_path.display())),
    };
    Ok(Outcome {
        results,
        console,
        results_path,
        elapsed,
        status,
    })
}

/// The outcome of the previous run of this boot, from its results file.
pub fn replay(b: &Boot<'_>) -> Result<Outcome> {
    use std::os::unix::process::ExitStatusExt as _;
    let results_path = b.dir.join("results.log");
    let bytes =
        fs::read(&results_path).with_context(|| format!("reading {}", results_path.display()))?;
    Ok(Outcome {
        results: String::from_utf8_lossy(&bytes).replace('\r', ""),
        console: b.dir.join("console.log"),
        results_path,
        elapsed: Duration::ZERO,
        status: Some(ExitStatus::from_raw(0)),
    })
}

fn serial_file(p: &Path) -> Result<String> {
    let s = p.to_str().context("log path is not UTF-8")?;
    // QEMU splits chardev options at commas.
    anyhow::ensure!(
        !s.contains(','),
        "QEMU cannot take a path with a comma: {s}"
    );
    Ok(format!("file:{s}"))
}

/// The last `n` lines of a file, for failure messages.
pub fn tail(p: &Path, n: usize) -> String {
    let text = fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).replace('\r', ""))
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
