#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, rustdoc, unit and simulation
# tests, and the integration tests on veth pairs in network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
ulimit -l unlimited 2>/dev/null || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
cargo test --workspace
