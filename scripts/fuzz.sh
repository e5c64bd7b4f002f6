#!/usr/bin/env bash
# The cargo-fuzz targets in fuzz/ (see fuzz/Cargo.toml): frames and every
# hash policy, LACPDU/Marker (round trip), ARP/ND (round trip), the config
# TOML (round trip), option strings and ifupdown stanzas, control requests.
#
#   scripts/fuzz.sh smoke              every target for 20 000 runs from its seeds (CI)
#   scripts/fuzz.sh campaign [RUNS]    every target for RUNS runs (default 10 000 000),
#                                      then 200 000 under AddressSanitizer with leak
#                                      detection; logs in target/fuzz-logs/
#   scripts/fuzz.sh run TARGET [ARGS]  one target, libFuzzer ARGS (e.g. -max_total_time=3600)
#
# Needs the nightly toolchain and cargo-fuzz; both are installed when
# missing (exit 77, a skip, when nightly cannot be). Found inputs go to fuzz/corpus/TARGET (not committed; the small
# seeds in fuzz/seeds/TARGET are), crashes to fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
targets=(frames slow arp_nd config_toml import request)
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal || {
    echo "fuzz: SKIP: no nightly toolchain, and rustup could not install one" >&2
    exit 77
  }
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
run() {  # run SANITIZER TARGET LIBFUZZER-ARGS...
  local san=$1 t=$2; shift 2
  mkdir -p "corpus/$t"
  cargo +nightly fuzz run -s "$san" --target-dir "target/$san" "$t" "corpus/$t" "seeds/$t" -- \
    -timeout=10 -print_final_stats=1 "$@"
}
case "${1:-smoke}" in
  smoke)
    for t in "${targets[@]}"; do
      echo "fuzz: $t"
      run none "$t" -runs=20000 2>&1 | grep -E "^(Done|stat::number_of_executed_units)" || { echo "fuzz: $t failed" >&2; exit 1; }
    done ;;
  campaign)
    runs=${2:-10000000}
    mkdir -p ../target/fuzz-logs
    for t in "${targets[@]}"; do
      run none "$t" -runs="$runs" > "../target/fuzz-logs/$t.log" 2>&1
      run address "$t" -runs=200000 -detect_leaks=1 > "../target/fuzz-logs/$t-asan.log" 2>&1
      grep -hE "^(Done|stat::number_of_executed_units|#[0-9]+.*DONE)" "../target/fuzz-logs/$t.log" "../target/fuzz-logs/$t-asan.log"
    done ;;
  run)
    t=${2:?a target: ${targets[*]}}; shift 2
    run none "$t" "$@" ;;
  *) echo "usage: scripts/fuzz.sh smoke|campaign [RUNS]|run TARGET [ARGS]" >&2; exit 2 ;;
esac
