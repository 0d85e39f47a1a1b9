//! Builds the eBPF object (`oomtrace-ebpf`) from source and hands its path to the crate
//! (`OOMTRACE_EBPF_OBJECT`), which embeds it with `include_bytes!`.
//!
//! Two toolchains can build it; the first that is present is used:
//! 1. rustup `nightly` with `rust-src`: `cargo +nightly build -Z build-std=core`.
//! 2. Debian's `rustc-web` (`/usr/bin/rustc`) with the prebuilt `core` for `bpfel-unknown-none`
//!    from `libstd-rust-web-dev-bpf`, used with `RUSTC_BOOTSTRAP=1`.
//!
//! Both need `bpf-linker` on PATH (or in ~/.cargo/bin). `OOMTRACE_EBPF_TOOLCHAIN=nightly|debian`
//! forces a route; `OOMTRACE_EBPF_PREBUILT=/path/to/object` skips the build (cross builds);
//! `OOMTRACE_EBPF_FEATURES=bench` adds the benchmark-only program (used by `cargo xtask bench`
//! in a target directory of its own).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

const TARGET: &str = "bpfel-unknown-none";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("workspace root").to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let dest = out_dir.join("oomtrace.bpf.o");

    for dir in [
        "oomtrace-ebpf/src",
        "oomtrace-ebpf/Cargo.toml",
        "oomtrace-common/src",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    for var in [
        "OOMTRACE_EBPF_TOOLCHAIN",
        "OOMTRACE_EBPF_PREBUILT",
        "OOMTRACE_EBPF_FEATURES",
        "PATH",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    if let Some(prebuilt) = env::var_os("OOMTRACE_EBPF_PREBUILT") {
        std::fs::copy(&prebuilt, &dest).unwrap_or_else(|e| {
            panic!(
                "copying OOMTRACE_EBPF_PREBUILT={}: {e}",
                Path::new(&prebuilt).display()
            )
        });
        return;
    }

    let route = match env::var("OOMTRACE_EBPF_TOOLCHAIN").as_deref() {
        Ok("nightly") => Route::Nightly,
        Ok("debian") => Route::Debian,
        Ok(other) => fail(&format!(
            "OOMTRACE_EBPF_TOOLCHAIN={other}: expected nightly or debian"
        )),
        Err(_) => detect(),
    };
    let linker = find_bpf_linker();

    let target_dir = out_dir.join("ebpf-target");
    let mut cmd = match route {
        Route::Nightly => {
            let mut c = Command::new("rustup");
            c.args(["run", "nightly", "cargo", "build", "-Z", "build-std=core"]);
            c
        }
        Route::Debian => {
            let mut c = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            c.arg("build");
            c.env("RUSTC", "/usr/bin/rustc").env("RUSTC_BOOTSTRAP", "1");
            c
        }
    };
    cmd.current_dir(&root)
        .args([
            "--package",
            "oomtrace-ebpf",
            "--bin",
            "oomtrace",
            "--release",
            "--target",
            TARGET,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // `cargo xtask bench` builds a separate copy with its benchmark-only program.
    if let Ok(f) = env::var("OOMTRACE_EBPF_FEATURES")
        && !f.is_empty()
    {
        cmd.args(["--features", &f]);
    }
    scrub_env(&mut cmd, route);
    if let Some(dir) = linker.parent() {
        let path = env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(env::split_paths(&path));
        cmd.env("PATH", env::join_paths(paths).expect("PATH"));
    }
    // Debug info for BTF (.BTF/.BTF.ext); the symbols stay so aya can override globals.
    cmd.env(
        "CARGO_ENCODED_RUSTFLAGS",
        "-Cdebuginfo=2\x1f-Clink-arg=--btf",
    );

    let status = cmd
        .status()
        .unwrap_or_else(|e| fail(&format!("running the eBPF build ({cmd:?}): {e}")));
    if !status.success() {
        fail(&format!(
            "the eBPF build ({}) failed: {status}; its errors are above",
            route.name()
        ));
    }
    let built = target_dir.join(TARGET).join("release").join("oomtrace");
    std::fs::copy(&built, &dest).unwrap_or_else(|e| {
        fail(&format!(
            "copying {} to {}: {e}",
            built.display(),
            dest.display()
        ))
    });
}

/// Start from a clean slate: the outer cargo's settings are for the host, not for BPF.
fn scrub_env(cmd: &mut Command, route: Route) {
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy();
        let host_setting = (k.starts_with("CARGO_") && k != "CARGO_HOME")
            || k.starts_with("RUSTC")
            || k == "RUSTFLAGS"
            || k == "RUSTDOCFLAGS"
            || (k == "RUSTUP_TOOLCHAIN" && route == Route::Nightly);
        let ours = route == Route::Debian && (k == "RUSTC" || k == "RUSTC_BOOTSTRAP");
        if host_setting && !ours {
            cmd.env_remove(k.as_ref());
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Nightly,
    Debian,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Route::Nightly => "rustup nightly + rust-src",
            Route::Debian => "Debian rustc-web + prebuilt bpfel core",
        }
    }
}

fn detect() -> Route {
    let nightly_src = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .is_some_and(|s| s.join("lib/rustlib/src/rust/library/core").is_dir());
    if nightly_src {
        return Route::Nightly;
    }
    let debian_core = Path::new("/usr/lib/rustlib")
        .join(TARGET)
        .join("lib")
        .read_dir()
        .is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("libcore-")))
        });
    if debian_core && Path::new("/usr/bin/rustc").exists() {
        return Route::Debian;
    }
    fail(
        "no toolchain can build the eBPF programs. Install one of:\n\
         \x20 * rustup nightly with rust-src:  rustup toolchain install nightly --component rust-src\n\
         \x20 * Debian 12:  apt-get install rustc-web libstd-rust-web-dev-bpf\n\
         and bpf-linker (scripts/setup.sh does all of this on Debian).",
    )
}

fn find_bpf_linker() -> PathBuf {
    let mut candidates: Vec<PathBuf> = env::split_paths(&env::var_os("PATH").unwrap_or_default())
        .map(|p| p.join("bpf-linker"))
        .collect();
    if let Some(home) = env::var_os("CARGO_HOME")
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into_os_string()))
    {
        candidates.push(Path::new(&home).join("bin/bpf-linker"));
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        fail(
            "bpf-linker not found on PATH or in ~/.cargo/bin. Install it: scripts/setup.sh, or\n\
             \x20 cargo install bpf-linker (rustup nightly), or on Debian 12 with LLVM 22:\n\
             \x20 LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --no-default-features --features llvm-22",
        )
    })
}

fn fail(msg: &str) -> ! {
    // A panic in build.rs prints the message; make it the first thing the user sees.
    eprintln!("error: {msg}");
    panic!("{msg}");
}
