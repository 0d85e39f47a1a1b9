#!/usr/bin/env bash
# Clippy on the eBPF crate for its own target (bpfel-unknown-none), with the toolchain that
# builds it: rustup nightly + rust-src if present, else Debian's rustc-web + rust-web-clippy.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_ENCODED_RUSTFLAGS="-Cdebuginfo=2"
if rustup run nightly rustc --print sysroot >/dev/null 2>&1 &&
  [ -d "$(rustup run nightly rustc --print sysroot)/lib/rustlib/src/rust/library/core" ]; then
  exec rustup run nightly cargo clippy -Z build-std=core -p oomtrace-ebpf --target bpfel-unknown-none \
    --release --target-dir target/ebpf-clippy -- -D warnings
fi
[ -x /usr/bin/cargo-clippy ] || { echo "clippy-ebpf: install rust-web-clippy (scripts/setup.sh --test)" >&2; exit 1; }
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 exec /usr/bin/cargo-clippy clippy -p oomtrace-ebpf \
  --target bpfel-unknown-none --release --target-dir target/ebpf-clippy -- -D warnings
