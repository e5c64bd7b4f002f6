#!/usr/bin/env bash
# Runs the VM tests, each in a VM of its own (scripts/vmlab.sh run, with the
# options of the test's "# vmlab-args:" line), and reports pass / fail /
# skip for each. A test with a "# vmlab-lane: 2" line runs beside the
# others, in a VM of its own (VM_LANES=1: all in turn).
#
#   tests/vm/run.sh [TEST...]     TEST: a file name in tests/vm (smoke, lacp-kernel, ...); default
#                                 every executable tests/vm/*.sh but run.sh, smoke first
#
# Exit 0 if every test passed (or some were skipped and the rest passed), 1 if
# any failed, 77 if all were skipped (the lab cannot run here). A failed test's
# run directory (console.log, output) is kept under target/vmlab/runs/.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
vmlab="$repo/scripts/vmlab.sh"

# The lab first, then the rest in name order.
all=(smoke)
for f in "$here"/*.sh; do
  t=$(basename "$f" .sh)
  [ -x "$f" ] && [ "$t" != run ] && [ "$t" != smoke ] && all+=("$t")
done
tests=("$@"); [ ${#tests[@]} -eq 0 ] && tests=("${all[@]}")

[ -x "$repo/target/release/xbond" ] || {
  echo "vm: no target/release/xbond; build it first (cargo build --release -p xbond)" >&2
  exit 1
}
"$vmlab" prepare || { rc=$?; [ $rc = 77 ] && echo "vm: SKIP all: the lab cannot run here" >&2; exit $rc; }

# Two lanes, one VM each at a time (a TCG guest takes one host core): a
# test with the line "# vmlab-lane: 2" runs in the second, beside the
# others, its output printed when it ends. VM_LANES=1 runs all in turn.
res=$(mktemp -d)
lane2pid=""
trap 'if [ -n "$lane2pid" ]; then pkill -TERM -P "$lane2pid"; kill "$lane2pid"; fi 2>/dev/null; rm -rf "$res"' EXIT
run_one() { # test
  local t=${1%.sh} f="$here/${1%.sh}.sh" t0=$SECONDS rc args
  echo "=== vm test $t"
  # A test may ask for its VM: a line "# vmlab-args: --nics 4 --bridge".
  read -ra args <<< "$(sed -n 's/^# vmlab-args: //p' "$f" | head -n 1)"
  "$vmlab" run "${args[@]}" "$f"
  rc=$?
  echo "$rc $((SECONDS - t0))" > "$res/$t"
}
lane1=() lane2=()
for t in "${tests[@]}"; do
  f="$here/${t%.sh}.sh"
  [ -f "$f" ] || { echo "vm: no test $f" >&2; exit 2; }
  if [ "${VM_LANES:-2}" != 1 ] && grep -q '^# vmlab-lane: 2' "$f"; then lane2+=("$t"); else lane1+=("$t"); fi
done
t_all=$SECONDS
if [ ${#lane2[@]} -gt 0 ]; then
  echo "vm: ${lane2[*]} in a second lane, beside the others (output when it ends)"
  (for t in "${lane2[@]}"; do run_one "$t"; done) > "$res/lane2.log" 2>&1 &
  lane2pid=$!
fi
for t in "${lane1[@]}"; do run_one "$t"; done
if [ -n "$lane2pid" ]; then
  wait "$lane2pid"
  lane2pid=""
  cat "$res/lane2.log"
fi

pass=0 failn=0 skipn=0 summary=()
for t in "${lane1[@]}" "${lane2[@]}"; do
  t=${t%.sh}
  read -r rc dt < "$res/$t" 2>/dev/null || { rc=125; dt=0; }
  case $rc in
    0) pass=$((pass + 1)); r=pass ;;
    77) skipn=$((skipn + 1)); r=skip ;;
    *) failn=$((failn + 1)); r="FAIL (exit $rc)" ;;
  esac
  summary+=("$(printf '%-16s %-16s %4d s' "$t" "$r" "$dt")")
done
echo "=== vm suite: $pass passed, $failn failed, $skipn skipped in $((SECONDS - t_all)) s"
printf '  %s\n' "${summary[@]}"
[ $failn -gt 0 ] && exit 1
[ $pass -eq 0 ] && [ $skipn -gt 0 ] && exit 77
exit 0
