#!/usr/bin/env bash
# Runs every check CI runs: formatting, clippy, rustdoc, unit and simulation
# tests, the integration tests on veth pairs in network namespaces, a smoke
# run of every fuzz target, and the
# VM suite (Debian's kernel in qemu: the kernel bond as LACP partner and
# oracle; skipped, never passed, where qemu cannot run).
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step says how long it took (CI's log shows where the time goes).
t_start=$SECONDS t_step=$SECONDS
took() { echo "test: $1 done in $((SECONDS - t_step)) s ($((SECONDS - t_start)) s in all)"; t_step=$SECONDS; }
scripts/setup.sh
took setup
ulimit -l unlimited 2>/dev/null || true
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
took "fmt and clippy"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
took rustdoc
cargo test --workspace
took "cargo test"
# A short run of every fuzz target from its seeds (scripts/fuzz.sh campaign
# is the long one).
frc=0
scripts/fuzz.sh smoke || frc=$?
case $frc in
  0) ;;
  77) echo "test: the fuzz smoke run was skipped (see above)" ;;
  *) echo "test: a fuzz target failed" >&2; exit 1 ;;
esac
took "fuzz smoke"
# The VM suite runs the release binary inside the guest.
cargo build --release --quiet -p xbond
took "release build"
rc=0
tests/vm/run.sh || rc=$?
case $rc in
  0) ;;
  77) echo "test: the VM suite was skipped: the VM lab cannot run on this machine (see above)" ;;
  *) echo "test: the VM suite failed" >&2; exit 1 ;;
esac
took "VM suite"
