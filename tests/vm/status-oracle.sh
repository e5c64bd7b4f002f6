#!/usr/bin/env bash
# Status oracle (issue 11, item 3): for one configuration per mode, and for
# the ARP/NS monitor, the kernel bond and xbond are built from the same
# options and their status texts compared line by line: the kernel's
# /proc/net/bonding/bond0 and `xbond status bond0`.
#
#   802.3ad:      namespace k (kernel bond0 over k0, k1) and x (xbond bond0
#                 over x0, x1) joined by the veth pairs k0-x0, k1-x1: each
#                 is the other's LACP partner
#   other modes:  each bond over its own switch (a bridge in namespace kt,
#                 resp. xt) that has the ARP/NS target 10.9.0.254, fd09::fe;
#                 both bonds have 10.9.0.1, fd09::1
#
# Once both are settled (every slave up, the primary active, both ports
# aggregated), the texts are split into their blank-line separated blocks;
# in each block the kernel's lines must be the first lines of xbond's (xbond's
# own lines follow the kernel's fields), field names, order and values equal
# after masking what is specific to the run: MAC addresses, the driver
# version, link failure and churn counts, aggregator ids; slaves are named by
# position (k1 and x1 are both "slave1"). A difference README documents is
# named and allowed (DOCUMENTED below); any other fails the test.
# Every wait is for a state with a generous timeout; time never decides.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

W=/tmp/status-oracle
mkdir -p "$W"
xpid=""

# Differences xbond makes on purpose (README, "Differences from the kernel
# bond"): field|kernel's value|xbond's value|why.
DOCUMENTED=(
  "Actor Churn State|monitoring|none|xbond runs IEEE 802.1AX's churn machine: no churn once in sync; the kernel says monitoring until its churn timer (60 s) expires"
  "Partner Churn State|monitoring|none|as Actor Churn State"
)

# stop_bonds: xbond stopped and its bond0 removed (the kernel's goes with k).
stop_bonds() { stop_xbond; ip -n x link del bond0 2>/dev/null; return 0; }
teardown() {
  stop_bonds
  for n in k x kt xt; do ip netns del $n 2>/dev/null; done
  return 0
}
trap teardown EXIT
kstatus() { ip netns exec k cat /proc/net/bonding/bond0; }
xstatus() { "$XBOND" status bond0 --socket "$W/x.sock"; }
die() {
  echo "FAIL: $*"
  echo "---- kernel"; kstatus 2>&1
  echo "---- xbond"; xstatus 2>&1
  echo "---- xbond log"; tail -n 20 "$W/xbond.log"
  exit 1
}

for n in k x; do ip netns add $n; ip -n $n link set lo up; done

# switches: each bond's slaves to a bridge of its own, with the target.
switches() {
  local s t
  for s in k x; do
    t=${s}t
    ip netns del $t 2>/dev/null
    ip netns add $t
    ip -n $t link set lo up
    ip -n $t link add br0 type bridge stp_state 0 forward_delay 0
    ip -n $t addr add 10.9.0.254/24 dev br0
    ip -n $t addr add fd09::fe/64 dev br0 nodad
    for i in 0 1; do
      ip -n $s link add $s$i type veth peer name ${s}b$i netns $t
      ip -n $t link set ${s}b$i master br0
      ip -n $t link set ${s}b$i up
    done
    ip -n $t link set br0 up
  done
}
# wires: k0-x0, k1-x1 (802.3ad: each bond the other's partner).
wires() {
  local i
  for n in kt xt; do ip netns del $n 2>/dev/null; done
  for i in 0 1; do ip -n k link add k$i type veth peer name x$i netns x; done
}

# norm SIDE: the status (stdin) with run-specific values masked, as lines
# "BLOCK<TAB>LINE<TAB>text".
norm() {
  awk -v side="$1" '
    BEGIN { blk = 0; ln = 0 }
    /^$/ { if (ln) { blk++; ln = 0 } ; next }
    {
      s = $0
      # mawk: no interval expressions, no word boundaries.
      h = "[0-9a-f][0-9a-f]"
      gsub(h ":" h ":" h ":" h ":" h ":" h, "MAC", s)
      if (s ~ /^(Slave Interface|Currently Active Slave|Primary Slave): / && match(s, ": " side "[0-9]"))
        s = substr(s, 1, RSTART + 1) "slave" substr(s, RSTART + 2 + length(side))
      if (s ~ /^Ethernet Channel Bonding Driver:/) s = "Ethernet Channel Bonding Driver: VERSION"
      if (s ~ /^(\t| )*(Link Failure Count|Aggregator ID|Actor Churned Count|Partner Churned Count):/)
        sub(/: .*/, ": N", s)
      print blk "\t" ln++ "\t" s
    }'
}

# compare WHAT: kernel's and xbond's status, block by block.
compare() {
  kstatus | norm k > "$W/k.norm"
  xstatus | norm x > "$W/x.norm"
  local doc
  doc=$(printf '%s\n' "${DOCUMENTED[@]}")
  awk -F'\t' -v what="$1" -v doc="$doc" '
    BEGIN {
      n = split(doc, d, "\n")
      for (i = 1; i <= n; i++) { split(d[i], f, "|"); dk[f[1] ": " f[2]] = f[1] ": " f[3]; why[f[1] ": " f[2]] = f[4] }
    }
    FNR == NR { x[$1 "\t" $2] = $3; xb[$1] = 1; next }
    {
      k = $3; key = $1 "\t" $2; v = (key in x) ? x[key] : "(nothing)"
      kblocks[$1] = 1
      if (k == v) next
      t = k; sub(/^[ \t]+/, "", t); u = v; sub(/^[ \t]+/, "", u)
      if ((t in dk) && dk[t] == u) { printf "  documented difference (%s): kernel \"%s\", xbond \"%s\": %s\n", what, t, u, why[t]; next }
      printf "  block %d line %d: kernel \"%s\", xbond \"%s\"\n", $1, $2, k, v; bad++
    }
    END {
      for (b in xb) if (!(b in kblocks)) { printf "  xbond has a block %d the kernel has not\n", b; bad++ }
      exit bad > 0
    }' "$W/x.norm" "$W/k.norm"
}

# run NAME TOPOLOGY "KERNEL IP-LINK OPTIONS" "XBOND TOML" SETTLED-CHECK
run() {
  local name=$1 topo=$2 kopts=$3 xtoml=$4 settled=$5 i
  stop_bonds
  ip -n k link del bond0 2>/dev/null
  $topo
  # shellcheck disable=SC2086 # the options are words
  ip -n k link add bond0 type bond $kopts || die "$name: the kernel refused: $kopts"
  for i in 0 1; do ip -n k link set k$i master bond0 || die "$name: enslaving k$i"; done
  ip netns exec k sysctl -qw net.ipv6.conf.bond0.accept_dad=0
  ip -n k addr add 10.9.0.1/24 dev bond0
  ip -n k addr add fd09::1/64 dev bond0 nodad
  ip -n k link set bond0 up
  printf 'name = "bond0"\nslaves = ["x0", "x1"]\ncontrol_socket = "%s"\n%s\n' "$W/x.sock" "$xtoml" > "$W/bond0.toml"
  start_xbond_in x "$W/bond0.toml" "$W/x.sock" "$W/xbond.log" || die "$name: xbond did not start"
  ip netns exec x sysctl -qw net.ipv6.conf.bond0.accept_dad=0
  ip -n x addr add 10.9.0.1/24 dev bond0
  ip -n x addr add fd09::1/64 dev bond0 nodad
  both() { "$settled" kstatus k && "$settled" xstatus x; }
  wait_for 60 "$name: both bonds settled" both || die "$name: not settled"
  compare "$name" || die "$name: the status texts differ (above)"
  ok "$name: xbond's status has the kernel's fields, in its order, with its values"
}

# Settled checks, given STATUS-CMD SIDE.
all_up() { [ "$("$1" | grep -c '^MII Status: up')" = 3 ]; }
primary_active() { all_up "$1" && "$1" | grep -q "^Currently Active Slave: ${2}1$"; }
aggregated() { # both ports in the aggregator, partner in sync, fast rate
  all_up "$1" && "$1" | grep -q '^	Number of ports: 2' && [ "$("$1" | grep -c 'port state: 63')" = 4 ]
}

run balance-rr switches \
  "mode balance-rr miimon 100 updelay 200 downdelay 300" \
  'mode = "balance-rr"
miimon = 100
updelay = 200
downdelay = 300' all_up
run active-backup switches \
  "mode active-backup miimon 100 primary k1 primary_reselect better peer_notify_delay 200 updelay 100" \
  'mode = "active-backup"
miimon = 100
primary = "x1"
primary_reselect = "better"
peer_notif_delay = 200
updelay = 100' primary_active
run balance-xor switches \
  "mode balance-xor miimon 100 xmit_hash_policy layer3+4" \
  'mode = "balance-xor"
miimon = 100
xmit_hash_policy = "layer3+4"' all_up
run broadcast switches \
  "mode broadcast miimon 50 downdelay 100" \
  'mode = "broadcast"
miimon = 50
downdelay = 100' all_up
run balance-tlb switches \
  "mode balance-tlb miimon 100 tlb_dynamic_lb 0 xmit_hash_policy layer2+3 primary k1" \
  'mode = "balance-tlb"
miimon = 100
tlb_dynamic_lb = false
xmit_hash_policy = "layer2+3"
primary = "x1"' primary_active
run balance-alb switches \
  "mode balance-alb miimon 100 primary k1 updelay 100" \
  'mode = "balance-alb"
miimon = 100
primary = "x1"
updelay = 100' primary_active
run arp-monitor switches \
  "mode active-backup arp_interval 100 arp_ip_target 10.9.0.254 ns_ip6_target fd09::fe arp_validate all arp_missed_max 3 primary k1" \
  'mode = "active-backup"
miimon = 0
arp_interval = 100
arp_ip_target = ["10.9.0.254"]
ns_ip6_target = ["fd09::fe"]
arp_validate = "all"
arp_missed_max = 3
primary = "x1"' primary_active
run 802.3ad wires \
  "mode 802.3ad miimon 100 lacp_rate fast ad_select bandwidth min_links 1 ad_actor_sys_prio 1000 xmit_hash_policy layer2+3" \
  'mode = "802.3ad"
miimon = 100
lacp_rate = "fast"
ad_select = "bandwidth"
min_links = 1
ad_actor_sys_prio = 1000
xmit_hash_policy = "layer2+3"' aggregated
echo "PASS"
