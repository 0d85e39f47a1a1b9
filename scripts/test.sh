#!/usr/bin/env bash
# Quick start, command 2: installs what is missing and runs the whole test suite.
# Tests that need root and BPF fail (not skip) when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh --test
# The black-box tests run the real binaries: build them first.
cargo build --locked -p oomtrace -p oomtrace-tests
cargo test --locked --workspace --exclude oomtrace-ebpf
