#!/usr/bin/env bash
# Runs the VM tests, each in a VM of its own (scripts/vmlab.sh run, with the
# options of the test's "# vmlab-args:" line), and reports pass / fail /
# skip for each.
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

pass=0 failn=0 skipn=0 summary=()
t_all=$SECONDS
for t in "${tests[@]}"; do
  f="$here/${t%.sh}.sh"
  [ -f "$f" ] || { echo "vm: no test $f" >&2; exit 2; }
  echo "=== vm test ${t%.sh}"
  t0=$SECONDS
  # A test may ask for its VM: a line "# vmlab-args: --nics 4 --bridge".
  read -ra args <<< "$(sed -n 's/^# vmlab-args: //p' "$f" | head -n 1)"
  "$vmlab" run "${args[@]}" "$f"
  rc=$?
  dt=$((SECONDS - t0))
  case $rc in
    0) pass=$((pass + 1)); r=pass ;;
    77) skipn=$((skipn + 1)); r=skip ;;
    *) failn=$((failn + 1)); r="FAIL (exit $rc)" ;;
  esac
  summary+=("$(printf '%-16s %-16s %4d s' "${t%.sh}" "$r" "$dt")")
done
echo "=== vm suite: $pass passed, $failn failed, $skipn skipped in $((SECONDS - t_all)) s"
printf '  %s\n' "${summary[@]}"
[ $failn -gt 0 ] && exit 1
[ $pass -eq 0 ] && [ $skipn -gt 0 ] && exit 77
exit 0
