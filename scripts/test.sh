#!/usr/bin/env bash
# Quick start, command 2: installs what is missing and runs the whole test suite:
#  1. unit + black-box tests on this host (real OOM kills in memory cgroups);
#  2. the kernel matrix: Debian's 5.10.223 (pid-only mark_victim), 5.10.262, 6.1 and 6.12
#     kernels under QEMU, one VM at a time (every victim and context hook, cgroup v2, group kill,
#     global OOM, cgroup v1 where the kernel has it), see tests/vm/README.md.
# Tests that need root and BPF fail (not skip) when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --test
# The deploy tests validate the Kubernetes manifests with kubernetes-validate (PyPI, target/venv).
scripts/venv.sh >/dev/null
# The black-box tests run the real binaries: build them first. The release binary is used by
# the deploy tests (`cargo xtask install`, the binary alone in an empty directory) and the VM.
cargo build --locked -p oomtrace -p oomtrace-tests
cargo build --locked --release -p oomtrace
cargo test --locked --workspace --exclude oomtrace-ebpf
cargo xtask vm-test
