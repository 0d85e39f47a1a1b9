#!/usr/bin/env bash
# Installs what building and testing oomtrace needs, and nothing that is already there.
# Idempotent: every step first checks whether its result exists.
#
#   scripts/setup.sh            build toolchain (eBPF + userspace)
#   scripts/setup.sh --test     + what the test suite uses (prometheus, qemu, busybox, kernel image, ...)
#   scripts/setup.sh --bench    + what the benchmarks use (bpftrace)
#
# Debian 12 (root) is the supported automatic path. Elsewhere it prints what to install by hand.
set -euo pipefail

want_test=0
want_bench=0
for a in "$@"; do
  case "$a" in
    --test) want_test=1 ;;
    --bench) want_bench=1; want_test=1 ;;
    *) echo "setup.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

log() { printf 'setup: %s\n' "$*" >&2; }

is_debian() { [ -r /etc/debian_version ] && command -v apt-get >/dev/null; }

apt_updated=0
apt_install() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! is_debian; then
    log "not a Debian system: install the equivalents of: ${missing[*]}"
    return 1
  fi
  if [ "$(id -u)" != 0 ]; then
    log "need root to apt-get install ${missing[*]}"
    return 1
  fi
  if [ $apt_updated = 0 ]; then
    log "apt-get update"
    apt-get update -qq
    apt_updated=1
  fi
  log "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Make sure cargo is on PATH (rustup installs into ~/.cargo/bin).
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || { log "cargo not found: install Rust (rustup or your distribution's cargo)"; exit 1; }

# --- eBPF toolchain -------------------------------------------------------------------------
# Route 1 (ordinary developer machine): rustup nightly with rust-src, -Z build-std=core.
# Route 2 (Debian 12 without rust-src for nightly): Debian's rustc-web 1.96 with a prebuilt
#          `core` for bpfel-unknown-none (libstd-rust-web-dev-bpf), used with RUSTC_BOOTSTRAP=1.
have_nightly_src() {
  command -v rustup >/dev/null &&
    rustup run nightly rustc --print sysroot >/dev/null 2>&1 &&
    [ -d "$(rustup run nightly rustc --print sysroot)/lib/rustlib/src/rust/library/core" ]
}
have_debian_bpf_core() {
  [ -x /usr/bin/rustc ] && ls /usr/lib/rustlib/bpfel-unknown-none/lib/libcore-*.rlib >/dev/null 2>&1
}

if have_nightly_src; then
  log "eBPF toolchain: rustup nightly + rust-src"
  llvm_prefix=""
else
  if ! have_debian_bpf_core; then
    apt_install rustc-web libstd-rust-web-dev-bpf
  fi
  log "eBPF toolchain: Debian rustc-web + prebuilt bpfel core"
fi

# bpf-linker links the eBPF object. It needs LLVM; pick the LLVM that matches the rustc in use.
if ! command -v bpf-linker >/dev/null && [ ! -x "$HOME/.cargo/bin/bpf-linker" ]; then
  if have_nightly_src && ! is_debian; then
    log "installing bpf-linker (bundled LLVM of the nightly toolchain)"
    cargo install bpf-linker --locked
  else
    apt_install llvm-22-dev libpolly-22-dev libzstd-dev zlib1g-dev
    log "installing bpf-linker 0.13 against LLVM 22 (~1 min)"
    # bpf-linker's build script finds LLVM through LLVM_PREFIX or the first llvm-config on PATH;
    # Debian's /usr/bin/llvm-config may point at an older LLVM, so name LLVM 22 explicitly.
    PATH="/usr/lib/llvm-22/bin:$PATH" LLVM_PREFIX=/usr/lib/llvm-22 LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 \
      cargo install bpf-linker --version '^0.13' --locked --no-default-features --features llvm-22
  fi
fi

if [ $want_test = 1 ]; then
  # prometheus/promtool: metrics test; qemu + busybox + kmod: kernel-matrix VM (debian-archive-keyring
  # verifies the kernel packages it fetches with its own apt index, gzip packs its initramfs);
  # util-linux: setpriv;
  # libcap2-bin: capsh; systemd: systemd-analyze verify; man-db: man -l; python3-venv: kubernetes-validate;
  # logrotate: the rotation test runs Debian's logrotate against the daemon's file outputs.
  apt_install rust-web-clippy prometheus qemu-system-x86 busybox-static cpio kmod util-linux libcap2-bin man-db \
    bash-completion python3 python3-venv systemd bpftool podman runc logrotate debian-archive-keyring gzip
  # The tests start their own Prometheus on free loopback ports; if the package's own service was
  # started by apt (init script, no systemd here), stop it so it does not run in the background.
  if [ -x /etc/init.d/prometheus ] && [ -s /run/prometheus/prometheus.pid ] && [ "$(id -u)" = 0 ]; then
    log "stopping Debian's packaged prometheus service"
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
fi
if [ $want_bench = 1 ]; then
  apt_install bpftrace
fi
log "ok"
