#!/usr/bin/env bash
# The VM part of the system benchmark (issue 11, items 5 and 6): inside the
# VM lab's guest (Debian's kernel, bonding.ko, pktgen), the kernel bond and
# xbond on the same veths, with the kernel's pktgen as the generator for
# both, in the same run. Run by `cargo bench -p xbond --bench system -- --vm`
# (scripts/vmlab.sh run --out DIR benches/vm/kernel-vs-xbond.sh), which
# renders benches/results/vm.{json,md} from what this writes to
# $VMLAB_RESULTS/out/vm-bench.json.
#
# Throughput, per mode (balance-rr, active-backup, balance-xor layer3+4,
# 802.3ad layer3+4): pktgen on bond0 in the guest's root namespace (the kernel
# bond itself, or xbond's bond0, whose frames cross xbond's workers), 60-byte
# frames (64 on the wire) in 64 UDP flows, the slaves' far ends in namespace
# s (in 802.3ad enslaved to a kernel 802.3ad bond, the partner). Frames/s is
# what the far ends received per second; CPU per frame is the guest's busy
# time on all its CPUs (/proc/stat) per frame received, flat out and at a
# fixed rate.
#
# Failover, active-backup with primary v0: the far ends in a bridge with a
# target host t (10.77.0.254); pktgen sends a steady stream to t; the active
# link's far end goes down (carrier loss, miimon 100) or leaves the bridge
# (a dead path with carrier up, arp_interval 100 to t), and later comes back;
# frames lost in each phase (pktgen's count minus t's).
#
# TCG makes absolute figures meaningless; the ratios xbond/kernel are the
# result. A benchmark, not a test: it sleeps for its measuring windows.
set -uo pipefail
. "$(dirname "$0")/../../tests/vm/lib.sh"

RUN_S=${VMB_RUN_S:-3}
FIXED=${VMB_FIXED_RATE:-20000}
FO_RATE=${VMB_FAILOVER_RATE:-5000}
OUT=$VMLAB_RESULTS/out
mkdir -p "$OUT"
J=$OUT/vm-bench.json
W=/tmp/vmbench
mkdir -p "$W"
xpid=""
T_MAC=02:00:00:00:77:fe

stop_bond() {
  stop_xbond
  "$XBOND" down bond0 >/dev/null 2>&1
  ip link del bond0 2>/dev/null
  return 0
}
teardown() { stop_bond; for n in s t; do ip netns del $n 2>/dev/null; done; return 0; }
trap teardown EXIT

# far plain|partner|switch: fresh veths v0-p0, v1-p1 and the far side.
far() {
  stop_bond
  for n in s t; do ip netns del $n 2>/dev/null; done
  ip netns add s
  ip -n s link set lo up
  # No IPv6 chatter from the far ends: on a dead path it would pass for
  # the partner's traffic (the kernel's arp_validate none counts any).
  ip netns exec s sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
  for i in 0 1; do ip link add v$i type veth peer name p$i netns s; done
  case $1 in
    plain) for i in 0 1; do ip -n s link set p$i up; done ;;
    partner)
      ip -n s link add pb0 type bond mode 802.3ad lacp_rate fast miimon 100 xmit_hash_policy layer3+4
      for i in 0 1; do ip -n s link set p$i master pb0; done
      ip -n s link set pb0 up ;;
    switch)
      ip netns add t
      ip netns exec t sysctl -qw net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1
      ip -n s link add br0 type bridge stp_state 0 forward_delay 0
      ip -n s link add tv type veth peer name tt netns t
      ip -n t link set tt address $T_MAC
      ip -n t addr add 10.77.0.254/24 dev tt
      ip -n t link set tt up
      for l in p0 p1 tv; do ip -n s link set $l master br0; ip -n s link set $l up; done
      ip -n s link set br0 up
      bridge -n s fdb add $T_MAC dev tv master static ;;
  esac
}

# bond kernel|xbond "KERNEL OPTIONS" "XBOND TOML": bond0 over v0, v1.
bond() {
  if [ "$1" = kernel ]; then
    # shellcheck disable=SC2086
    ip link add bond0 type bond $2 || fail "kernel bond: $2"
    for i in 0 1; do ip link set v$i master bond0; done
    ip link set bond0 up
  else
    printf 'name = "bond0"\nslaves = ["v0", "v1"]\ncontrol_socket = "%s"\n%s\n' "$W/x.sock" "$3" > "$W/b.toml"
    start_xbond_in "" "$W/b.toml" "$W/x.sock" "$W/xbond.log" || fail "xbond did not start"
  fi
  ip addr add 10.77.0.1/24 dev bond0
}
status() { if [ "$1" = kernel ]; then cat /proc/net/bonding/bond0; else "$XBOND" status bond0 --socket "$W/x.sock"; fi; }
all_up() { [ "$(status "$1" | grep -c '^MII Status: up')" = 3 ]; }
aggregated() { all_up "$1" && status "$1" | grep -q '^	Number of ports: 2'; }
active_is() { status "$1" | grep -q "^Currently Active Slave: $2\$"; }

pg() { echo "$2" > "/proc/net/pktgen/$1" || fail "pktgen refused $1: $2"; }
# pktgen_on DEV RATE DST_MAC: a stream of 60-byte frames in 64 flows (UDP
# source ports), RATE frames/s (0: flat out), until stopped.
pktgen_on() {
  pg kpktgend_0 rem_device_all
  pg kpktgend_0 "add_device $1"
  pg "$1" "count 0"
  pg "$1" "clone_skb 0"
  pg "$1" "pkt_size 60"
  if [ "$2" = 0 ]; then pg "$1" "delay 0"; else pg "$1" "delay $((1000000000 / $2))"; fi
  pg "$1" "dst_mac $3"
  pg "$1" "dst 10.77.0.254"
  pg "$1" "src_min 10.77.0.1"
  pg "$1" "src_max 10.77.0.1"
  pg "$1" "udp_src_min 9"
  pg "$1" "udp_src_max 72"
  echo start > /proc/net/pktgen/pgctrl &
  pgpid=$!
}
pktgen_stop() { echo stop > /proc/net/pktgen/pgctrl; wait "$pgpid" 2>/dev/null; }
sofar() { awk '/pkts-sofar:/ { print $2 }' /proc/net/pktgen/bond0; }
rx() { local n=0 i; for i in "$@"; do n=$((n + $(cat "/sys/class/net/$i/statistics/rx_packets"))); done; echo $n; }
far_rx() { ip netns exec "${FAR_NS:-s}" bash -c "$(declare -f rx); rx $*"; }
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }

# window RATE DST_MAC FAR-IFACES...: "frames seconds busy_cs sent" of RUN_S
# seconds of pktgen on bond0.
window() {
  local rate=$1 mac=$2; shift 2
  pktgen_on bond0 "$rate" "$mac"
  sleep 0.5 # pktgen and the bond get going
  local r0 b0 s0 t0 r1 b1 s1 t1
  r0=$(far_rx "$@"); b0=$(busy); s0=$(sofar); t0=$(date +%s.%N)
  sleep "$RUN_S"
  r1=$(far_rx "$@"); b1=$(busy); s1=$(sofar); t1=$(date +%s.%N)
  pktgen_stop
  echo "$((r1 - r0)) $(echo "$t1 - $t0" | bc) $((b1 - b0)) $((s1 - s0))"
}

sep=""
echo '{"throughput": [' > "$J"
# throughput MODE-LABEL FAR KERNEL-OPTIONS XBOND-TOML SETTLED
throughput() {
  local label=$1 farkind=$2 kopts=$3 xtoml=$4 settled=$5 b mac
  for b in kernel xbond; do
    far "$farkind"
    bond $b "$kopts" "$xtoml"
    wait_for 60 "$label ($b) settled" "$settled" $b || fail "$label ($b) did not settle"
    mac=$T_MAC
    [ "$farkind" = partner ] && mac=$(ip netns exec s cat /sys/class/net/pb0/address)
    read -r f s cs sent < <(window 0 "$mac" p0 p1)
    read -r ff fs fcs fsent < <(window "$FIXED" "$mac" p0 p1)
    printf '%s{"mode": "%s", "bond": "%s", "frames": %s, "seconds": %s, "busy_cs": %s, "sent": %s, "fixed_rate": %s, "fixed_frames": %s, "fixed_seconds": %s, "fixed_busy_cs": %s, "fixed_sent": %s}\n' \
      "$sep" "$label" $b "$f" "$s" "$cs" "$sent" "$FIXED" "$ff" "$fs" "$fcs" "$fsent" >> "$J"
    sep=,
    echo "$label $b: $f frames in $s s ($sent sent), busy $cs cs; at $FIXED/s: $ff frames, busy $fcs cs"
    [ $b = xbond ] && status xbond | grep -E "xb-bond0: copy|^Frames" | sed 's/^/  xbond: /'
    stop_bond
  done
}

# VMB_ONLY=failover skips the throughput part (its list stays empty).
[ "${VMB_ONLY:-}" = failover ] || {
throughput balance-rr plain "mode balance-rr miimon 100" 'mode = "balance-rr"
miimon = 100' all_up
throughput active-backup plain "mode active-backup miimon 100 primary v0" 'mode = "active-backup"
miimon = 100
primary = "v0"' all_up
throughput "balance-xor layer3+4" plain "mode balance-xor miimon 100 xmit_hash_policy layer3+4" 'mode = "balance-xor"
miimon = 100
xmit_hash_policy = "layer3+4"' all_up
throughput "802.3ad layer3+4" partner "mode 802.3ad miimon 100 lacp_rate fast xmit_hash_policy layer3+4" 'mode = "802.3ad"
miimon = 100
lacp_rate = "fast"
xmit_hash_policy = "layer3+4"' aggregated
}
echo '], "failover": [' >> "$J"

# failover kernel|xbond mii|arp
sep=""
failover() {
  local b=$1 mon=$2 kopts xtoml
  far switch
  if [ "$mon" = mii ]; then
    kopts="mode active-backup miimon 100 primary v0"
    xtoml='mode = "active-backup"
miimon = 100
primary = "v0"'
  else
    kopts="mode active-backup arp_interval 100 arp_ip_target 10.77.0.254 primary v0"
    xtoml='mode = "active-backup"
miimon = 0
arp_interval = 100
arp_ip_target = ["10.77.0.254"]
primary = "v0"'
  fi
  bond $b "$kopts" "$xtoml"
  wait_for 60 "failover $b $mon: v0 active, both up" eval "all_up $b && active_is $b v0" \
    || fail "failover $b $mon: not settled"
  # The sink on t numbers pktgen's frames by their sequence numbers.
  ip netns exec t "$XBOND" pktgen sink --iface tt --stream 0 --duration 60 --idle-ms 2000 \
    > "$W/fo.json" 2> "$W/fo.err" &
  local sink=$!
  wait_for 30 "the sink on t" eval '[ "$(ip netns exec t cat /proc/net/packet | wc -l)" -ge 2 ]' \
    || fail "the sink did not start"
  pktgen_on bond0 "$FO_RATE" $T_MAC
  sleep 1
  local at_cut at_return act_cut act_back
  at_cut=$(sofar)
  if [ "$mon" = mii ]; then ip -n s link set p0 down; else ip -n s link set p0 nomaster; fi
  sleep 3
  act_cut=$(status $b | awk -F': ' '/^Currently Active Slave/ { print $2 }')
  at_return=$(sofar)
  if [ "$mon" = mii ]; then ip -n s link set p0 up; else ip -n s link set p0 master br0; fi
  sleep 3
  act_back=$(status $b | awk -F': ' '/^Currently Active Slave/ { print $2 }')
  local at_end
  at_end=$(sofar)
  pktgen_stop
  # pktgen stops for good when bond0 loses its carrier (no usable slave for
  # a moment): then nothing after that moment was measured.
  local stopped=false
  [ $((at_end - at_return)) -ge $((FO_RATE / 2)) ] || stopped=true
  wait $sink || fail "failover $b $mon: the sink failed: $(cat "$W/fo.err")"
  # The cut's loss: the longest gap from the cut to the return; the return's:
  # the longest after it; any other gap is loss outside the two windows
  # (reported, it makes the two figures suspect).
  local q='[.gaps[] | select(.[0] >= $a and .[0] < $b) | .[1]] | max // 0'
  local lost_cut lost_back lost_total lost_other
  lost_cut=$(jq --argjson a "$at_cut" --argjson b "$at_return" "$q" "$W/fo.json")
  lost_back=$(jq --argjson a "$at_return" --argjson b 1e18 "$q" "$W/fo.json")
  lost_total=$(jq '[.gaps[] | .[1]] | add // 0' "$W/fo.json")
  lost_other=$((lost_total - lost_cut - lost_back))
  [ "$b" = xbond ] && status xbond | grep -E "xb-bond0: copy|^Frames" | sed 's/^/  xbond: /'
  printf '%s{"bond": "%s", "monitor": "%s", "rate": %s, "lost_cut": %s, "lost_return": %s, "lost_elsewhere": %s, "received": %s, "seq_at_cut": %s, "seq_at_return": %s, "active_after_cut": "%s", "active_after_return": "%s", "generator_stopped": %s}\n' \
    "$sep" $b $mon "$FO_RATE" "$lost_cut" "$lost_back" "$lost_other" "$(jq .unique "$W/fo.json")" \
    "$at_cut" "$at_return" "$act_cut" "$act_back" $stopped >> "$J"
  sep=,
  echo "failover $b $mon at $FO_RATE/s: lost $lost_cut at the cut (active then $act_cut), $lost_back at the return (active then $act_back), $lost_other elsewhere; cut at seq $at_cut, return at $at_return; gaps $(jq -c '.gaps[:8]' "$W/fo.json"), received $(jq .unique "$W/fo.json"), generator stopped: $stopped"
  stop_bond
}
for mon in mii arp; do for b in kernel xbond; do failover $b $mon; done; done
printf '], "guest_kernel": "%s", "guest_cpus": %s, "run_seconds": %s}\n' "$(uname -r)" "$(nproc)" "$RUN_S" >> "$J"
jq . "$J" > /dev/null || fail "the results are not JSON"
echo "PASS"
