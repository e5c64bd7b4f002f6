# shellcheck shell=bash
# Helpers for the guest scripts in tests/vm (sourced; bash, in the VM).
# Every wait is on a state, with a generous timeout; time never decides.

fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }
skip() { echo "SKIP: $*"; exit 77; }

# wait_for TIMEOUT_S DESCRIPTION CMD...: polls CMD every WAIT_STEP seconds
# (default 0.3) until it succeeds; fails after TIMEOUT_S.
wait_for() {
  local t=$1 what=$2; shift 2
  local end=$((SECONDS + t))
  while ! "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $end ] && { echo "timeout (${t}s) waiting for: $what"; return 1; }
    sleep "${WAIT_STEP:-0.3}"
  done
}

# start_xbond_in NS CONFIG SOCKET LOG: starts `xbond run --config CONFIG` in
# namespace NS ("" for the root namespace) in the background, output
# appended to LOG; sets xpid and
# waits (60 s at most) until its control socket SOCKET answers. Returns 1,
# with the log's tail, if it does not.
start_xbond_in() {
  local ns=$1 cfg=$2 sock=$3 log=$4
  if [ -n "$ns" ]; then
    ip netns exec "$ns" "$XBOND" run --config "$cfg" >> "$log" 2>&1 &
  else
    "$XBOND" run --config "$cfg" >> "$log" 2>&1 &
  fi
  xpid=$!
  wait_for 60 "xbond's control socket $sock" "$XBOND" status bond0 --socket "$sock" \
    || { tail -n 30 "$log"; return 1; }
}

# stop_xbond: stops the xbond that start_xbond_in started (xpid), if any.
stop_xbond() {
  if [ -n "${xpid:-}" ]; then kill "$xpid" 2>/dev/null; wait "$xpid" 2>/dev/null; xpid=""; fi
  return 0
}

[ "${VMLAB:-}" = 1 ] || { echo "tests/vm scripts run inside the VM: scripts/vmlab.sh run $0"; exit 77; }
REPO=$(pwd)
XBOND=${XBOND:-$REPO/target/release/xbond}
