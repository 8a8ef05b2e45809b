#!/usr/bin/env bash
# Latency benchmark: safeExecuteCode("true") from a workflow beside its floors (a no-op activity
# and `docker run --rm`), all measured in this run on this machine. Release builds.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --gvisor >/dev/null
cargo build --release --workspace --bins
cargo bench -p ae-tests --bench latency
