#!/usr/bin/env bash
# Hash oracle (issue 11, item 4): with xmit_hash_function = "kernel", every
# flow leaves an xbond bond on the slave with the index the kernel bond
# picks for it. The kernel bond (bonding.ko, balance-xor) is the oracle.
#
#   namespace k: the kernel's bond0 over k0..k3, bond0.100 on it
#   namespace x: xbond's bond0 over x0..x3, bond0.100 on it
#   namespaces ks, xs: the far ends kp0..kp3, xp0..xp3, where sinks record
#                      the interface each flow arrived on
#
# For 2, 3 and 4 slaves and each xmit_hash_policy (set live on both bonds:
# sysfs for the kernel, `xbond ctl set` for xbond), 256 flows (`xbond pktgen
# send --mix varied`: UDP, TCP and ICMP echo over IPv4 and IPv6, MACs,
# addresses, ports and echo ids differing per flow) are sent once untagged
# through bond0 and once through bond0.100 (VLAN 100: the tag travels out of
# band, as from any VLAN device or VLAN-aware bridge). Every flow must
# arrive, on one slave only, and on slave i of xbond's where the kernel's
# sends it on slave i. The slaves are enslaved in the same order, so slave i
# is the i-th in both bonds' lists.
# Every wait is for a state with a generous timeout; time never decides.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

W=/tmp/hash-oracle
mkdir -p "$W"
xpid=""
POLICIES=(layer2 layer2+3 layer3+4 encap2+3 encap3+4 vlan+srcmac)
FLOWS=256
SRC_MAC=02:00:00:00:5a:01 DST_MAC=02:00:00:00:5b:01

teardown() {
  stop_xbond
  for n in k x ks xs; do ip netns del $n 2>/dev/null; done
  return 0
}
trap teardown EXIT
die() {
  echo "FAIL: $*"
  echo "---- kernel"; ip netns exec k cat /proc/net/bonding/bond0 2>&1
  echo "---- xbond"; "$XBOND" status bond0 --socket "$W/x.sock" 2>&1
  echo "---- xbond log"; tail -n 30 "$W/xbond.log"
  exit 1
}

for n in k x ks xs; do ip netns add $n; ip -n $n link set lo up; done
for i in 0 1 2 3; do
  ip -n k link add k$i type veth peer name kp$i netns ks
  ip -n x link add x$i type veth peer name xp$i netns xs
  ip -n ks link set kp$i up
  ip -n xs link set xp$i up
done

# mii_up STATUS_CMD...: the bond and its N1 slaves say MII Status up.
mii_up() { [ "$("$@" | grep -c "^MII Status: up")" -ge $((N1 + 1)) ]; }  # the bond's line too
kstatus() { ip netns exec k cat /proc/net/bonding/bond0; }
xstatus() { "$XBOND" status bond0 --socket "$W/x.sock"; }
# sockets NS N: N packet sockets open in NS (a sink is listening).
sockets() { [ "$(ip netns exec "$1" cat /proc/net/packet | tail -n +2 | wc -l)" -ge "$2" ]; }

# bonds N: both bonds over the first N slaves, balance-xor, layer2.
bonds() {
  local n=$1 i sl=""
  stop_xbond
  ip -n k link del bond0 2>/dev/null
  for i in 0 1 2 3; do ip -n k link set k$i nomaster 2>/dev/null; ip -n k link set k$i down; done
  ip -n k link add bond0 type bond mode balance-xor miimon 100 xmit_hash_policy layer2
  for ((i = 0; i < n; i++)); do
    ip -n k link set k$i master bond0
    sl+="${sl:+, }\"x$i\""
  done
  ip -n k link set bond0 up
  ip -n k link add link bond0 name bond0.100 type vlan id 100
  ip -n k link set bond0.100 up
  cat > "$W/bond0.toml" <<EOF
name = "bond0"
slaves = [$sl]
mode = "balance-xor"
xmit_hash_policy = "layer2"
xmit_hash_function = "kernel"
miimon = 100
control_socket = "$W/x.sock"
EOF
  start_xbond_in x "$W/bond0.toml" "$W/x.sock" "$W/xbond.log" || die "xbond did not start"
  ip -n x link add link bond0 name bond0.100 type vlan id 100
  ip -n x link set bond0.100 up
  N1=$n
  wait_for 30 "the kernel bond's $n slaves up" mii_up kstatus || die "kernel slaves not up"
  wait_for 30 "xbond's $n slaves up" mii_up xstatus || die "xbond slaves not up"
}

# table SIDE PREFIX: $W/SIDE.json as lines "stream flow slave-index" and
# $W/SIDE.sum as "stream unique flows flows-on-several-slaves per-iface".
table() {
  jq -r --arg p "$2" 'to_entries[] | .key as $s | .value.flow_iface | to_entries[]
    | "\($s) \(.key) \(.value | ltrimstr($p))"' "$W/$1.json" | sort -n -k1,1 -k2,2 > "$W/$1.map"
  jq -r 'to_entries[] | "\(.key) \(.value.unique) \(.value.flows) \(.value.flows_on_several_ifaces) \(.value.per_iface | tostring)"' \
    "$W/$1.json" > "$W/$1.sum"
}

# check N STREAM WHAT: the stream's flows all arrived, each on one slave,
# every slave carried some, and each on the kernel's slave.
check() {
  local n=$1 s=$2 tag="$n slaves, $3" side u f sev per
  for side in k x; do
    read -r _ u f sev per < <(awk -v s="$s" '$1 == s' "$W/$side.sum")
    [ "${u:-}" = $FLOWS ] && [ "${f:-}" = $FLOWS ] \
      || die "$tag: $side side got ${u:-0} frames of ${f:-0} flows of $FLOWS ($per)"
    [ "$sev" = 0 ] || die "$tag: $side side: $sev flows on several slaves"
  done
  awk -v s="$s" '$1 == s { print $2, $3 }' "$W/k.map" > "$W/k.one"
  awk -v s="$s" '$1 == s { print $2, $3 }' "$W/x.map" > "$W/x.one"
  if ! cmp -s "$W/k.one" "$W/x.one"; then
    echo "flow kernel-slave xbond-slave (first differences):"
    join "$W/k.one" "$W/x.one" | awk '$2 != $3' | head -n 10
    die "$tag: $(join "$W/k.one" "$W/x.one" | awk '$2 != $3' | wc -l) of $FLOWS flows on another slave than the kernel's"
  fi
  # The flows are spread: every slave carries some (so the check has teeth).
  [ "$(cut -d' ' -f2 "$W/k.one" | sort -u | wc -l)" = "$n" ] || die "$tag: not every slave carried a flow"
}

# send NS DEV STREAM: the flows, once each, through DEV.
send() {
  ip netns exec "$1" "$XBOND" pktgen send --iface "$2" --src-mac $SRC_MAC --dst-mac $DST_MAC \
    --mix varied --flows $FLOWS --count $FLOWS --rate 5000 --stream "$3" > /dev/null
}

for n in 2 3 4; do
  t0=$SECONDS
  bonds $n
  echo "($n slaves: bonds up in $((SECONDS - t0)) s)"
  # One sink per side for all policies: stream 2p+1 untagged, 2p+2 on VLAN
  # 100 for policy p; each stops once every stream is complete.
  kif=() xif=() streams=()
  for ((i = 0; i < n; i++)); do kif+=(--iface kp$i); xif+=(--iface xp$i); done
  for ((s = 1; s <= 2 * ${#POLICIES[@]}; s++)); do streams+=(--stream $s); done
  sink=(pktgen sink "${streams[@]}" --expect $FLOWS --until-expected --duration 300 --idle-ms 300000)
  ip netns exec ks "$XBOND" "${sink[@]}" "${kif[@]}" > "$W/k.json" 2> "$W/k.err" &
  ksink=$!
  ip netns exec xs "$XBOND" "${sink[@]}" "${xif[@]}" > "$W/x.json" 2> "$W/x.err" &
  xsink=$!
  wait_for 30 "the kernel side's sink" sockets ks "$n" || die "the sink did not start"
  wait_for 30 "xbond's side's sink" sockets xs "$n" || die "the sink did not start"
  s=0
  for pol in "${POLICIES[@]}"; do
    ip netns exec k sh -c "echo $pol > /sys/class/net/bond0/bonding/xmit_hash_policy" \
      || die "the kernel refused xmit_hash_policy $pol"
    "$XBOND" ctl bond0 --socket "$W/x.sock" set xmit_hash_policy "$pol" > /dev/null \
      || die "xbond refused xmit_hash_policy $pol"
    (send k bond0 $((s + 1)) && send k bond0.100 $((s + 2))) &
    kp=$!
    (send x bond0 $((s + 1)) && send x bond0.100 $((s + 2))) || die "$pol: sending through xbond failed"
    wait $kp || die "$pol: sending through the kernel bond failed"
    s=$((s + 2))
    echo "($pol sent at $((SECONDS - t0)) s)"
  done
  wait $ksink || die "kernel side's sink: $(cat "$W/k.err")"
  wait $xsink || die "xbond side's sink: $(cat "$W/x.err")"
  echo "(sinks done at $((SECONDS - t0)) s)"
  table k kp
  table x xp
  s=0
  for pol in "${POLICIES[@]}"; do
    check $n $((s + 1)) "$pol, untagged"
    check $n $((s + 2)) "$pol, VLAN 100"
    s=$((s + 2))
    ok "$n slaves, $pol: $FLOWS flows untagged and $FLOWS on VLAN 100 on the kernel's slave"
  done
done
echo "PASS"
