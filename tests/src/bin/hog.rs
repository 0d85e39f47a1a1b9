//! The process oomtrace's tests get OOM-killed: joins a cgroup, sets its name and oom_score_adj,
//! then allocates and touches memory.
//!
//! `oomtrace-hog [--procs FILE] [--comm NAME] [--adj N] [--mib N] [--step-mib N] [--hold]`
//! - `--procs FILE`: write our pid into this `cgroup.procs` first;
//! - `--comm NAME`: `prctl(PR_SET_NAME)` (the kernel keeps 15 bytes);
//! - `--adj N`: write N to /proc/self/oom_score_adj;
//! - `--mib N` (default 300): memory to allocate, in MiB, `--step-mib` at a time (default: all);
//! - `--hold`: after allocating, print `held` and sleep until killed.

use std::{ffi::CString, io::Write as _};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut mib: usize = 300;
    let mut step: usize = 0;
    let mut hold = false;
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--procs" => {
                let f = val();
                std::fs::write(&f, format!("{}\n", std::process::id()))
                    .unwrap_or_else(|e| panic!("joining {f}: {e}"));
            }
            "--comm" => {
                let name = CString::new(val()).expect("no NUL in comm");
                // SAFETY: PR_SET_NAME reads a NUL-terminated string of any length (it copies 15 bytes).
                unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
            }
            "--adj" => {
                let v = val();
                std::fs::write("/proc/self/oom_score_adj", &v)
                    .unwrap_or_else(|e| panic!("oom_score_adj {v}: {e}"));
            }
            "--mib" => mib = val().parse().expect("--mib N"),
            "--step-mib" => step = val().parse().expect("--step-mib N"),
            "--hold" => hold = true,
            other => panic!("unknown argument {other}"),
        }
    }
    let step = if step == 0 { mib } else { step };
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut done = 0;
    while done < mib {
        let n = step.min(mib - done);
        let mut v = vec![0u8; n << 20];
        // Touch every page so the memory is really charged.
        for i in (0..v.len()).step_by(4096) {
            v[i] = 1;
        }
        blocks.push(v);
        done += n;
    }
    std::hint::black_box(&blocks);
    if hold {
        println!("held");
        let _ = std::io::stdout().flush();
        loop {
            std::thread::sleep(std::time::Duration::from_hours(1));
        }
    }
}
