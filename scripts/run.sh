#!/usr/bin/env bash
# Quick start, command 1: installs what is missing, builds oomtrace (release) and runs it live.
#   scripts/run.sh                 # oomtrace trace: one line per OOM victim, live (nothing pinned)
#   scripts/run.sh check           # any other oomtrace arguments
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
scripts/setup.sh
cargo build --release --locked -p oomtrace
[ $# -eq 0 ] && set -- trace
exec target/release/oomtrace "$@"
