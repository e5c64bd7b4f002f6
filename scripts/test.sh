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
cargo test --workspace --no-run --quiet
took "test build"
# Beside the tests, which mostly wait on links, timers and partners, at the
# lowest priority: the release build for the VM suite (a target folder of its
# own, since cargo locks one folder for a build; the binary is then copied
# where the VM tests look, target/release/xbond) and a short run of every
# fuzz target from its seeds (scripts/fuzz.sh campaign is the long one).
# Their output follows the tests'.
mkdir -p target
bg_release() {
  nice -n 19 cargo build --release --quiet -p xbond --target-dir target/vm-build &&
    mkdir -p target/release && cp target/vm-build/release/xbond target/release/xbond.new &&
    mv target/release/xbond.new target/release/xbond
}
bg_release > target/test-release.log 2>&1 &
rel=$!
nice -n 19 scripts/fuzz.sh smoke > target/test-fuzz.log 2>&1 &
fuzz=$!
trc=0
cargo test --workspace || trc=$?
took "cargo test"
frc=0; wait $fuzz || frc=$?
rrc=0; wait $rel || rrc=$?
cat target/test-fuzz.log target/test-release.log
[ $trc = 0 ] || { echo "test: cargo test failed" >&2; exit 1; }
case $frc in
  0) ;;
  77) echo "test: the fuzz smoke run was skipped (see above)" ;;
  *) echo "test: a fuzz target failed" >&2; exit 1 ;;
esac
[ $rrc = 0 ] || { echo "test: the release build failed" >&2; exit 1; }
took "fuzz smoke and release build (beside the tests, waited for)"
# The VM suite runs the release binary inside the guest.
rc=0
tests/vm/run.sh || rc=$?
case $rc in
  0) ;;
  77) echo "test: the VM suite was skipped: the VM lab cannot run on this machine (see above)" ;;
  *) echo "test: the VM suite failed" >&2; exit 1 ;;
esac
took "VM suite"
