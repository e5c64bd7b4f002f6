#!/usr/bin/env bash
# A VLAN device stacked on bond0, on Debian's kernel (the development
# machines have no 8021q): peer notification through it, and the ARP
# monitor probing a target behind it.
#
#   namespace h: an xbond active-backup bond0 over h0, h1 (primary h0), no
#                address on bond0; bond0.100 (VLAN 100, its own MAC) with
#                10.100.0.1/24
#   namespace f: a switch without a LAG: bridge br0 over f0, f1, and
#                br0.100 with 10.100.0.2/24 (a neighbour on VLAN 100)
#
# Checks: xbond's status lists bond0.100 as announced; after the active link
# fails, f's neighbour entry for 10.100.0.1 (made stale with a wrong MAC)
# takes bond0.100's MAC, which only a gratuitous ARP tagged with VLAN 100 and
# sent from bond0.100's MAC can do (an untagged one reaches br0, not
# br0.100), and br0 learns that MAC on f1. Neither host sends ARP of its own:
# h has a permanent entry for 10.100.0.2 and IPv6 is off on both VLANs.
# Then xbond restarts with the ARP monitor (arp_validate active) and
# 10.100.0.2 as its target: with f answering ARP only on the interface that
# has the address (arp_ignore 1), only probes tagged 100 and sent from
# 10.100.0.1 get replies, and the active slave stays up by them.
# Every wait is for a state with a generous timeout; time never decides.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

W=/tmp/vlan-uppers
mkdir -p "$W"
xpid=""
teardown() {
  [ -n "$xpid" ] && { kill "$xpid" 2>/dev/null; wait "$xpid" 2>/dev/null; }
  for n in h f; do ip netns del $n 2>/dev/null; done
}
trap teardown EXIT
dump() {
  echo "---- xbond status"; "$XBOND" status bond0 --socket "$W/x.sock"
  echo "---- f neighbours"; ip -n f neigh show
  echo "---- f fdb"; bridge -n f fdb show br br0 | grep -v permanent
  echo "---- xbond log"; tail -n 30 "$W/xbond.log"
}
die() { echo "FAIL: $*"; dump; exit 1; }

MAC=02:00:00:00:64:01
for n in h f; do ip netns add $n; ip -n $n link set lo up; done
ip -n h link add h0 type veth peer name f0 netns f
ip -n h link add h1 type veth peer name f1 netns f
ip -n f link add br0 type bridge stp_state 0 forward_delay 0
for l in f0 f1; do
  ip -n f link set $l master br0
  # Tags in the frame, as on a wire (see proxmox.sh).
  ip netns exec f ethtool -K $l txvlan off >/dev/null
  ip -n f link set $l up
done
ip -n f link add link br0 name br0.100 type vlan id 100
ip netns exec f sh -c "echo 1 > /proc/sys/net/ipv6/conf/br0.100/disable_ipv6"
ip -n f addr add 10.100.0.2/24 dev br0.100
ip -n f link set br0 up
ip -n f link set br0.100 up

cat > "$W/bond0.toml" <<EOF
name = "bond0"
slaves = ["h0", "h1"]
mode = "active-backup"
primary = "h0"
miimon = 100
control_socket = "$W/x.sock"
EOF
start_xbond_in h "$W/bond0.toml" "$W/x.sock" "$W/xbond.log" || die "xbond did not start"
ip netns exec h sysctl -qw net.ipv6.conf.bond0.disable_ipv6=1
ip -n h link add link bond0 name bond0.100 address $MAC type vlan id 100
ip netns exec h sh -c "echo 1 > /proc/sys/net/ipv6/conf/bond0.100/disable_ipv6"
ip -n h addr add 10.100.0.1/24 dev bond0.100
ip -n h link set bond0.100 up
ok "topology built"

announced() { "$XBOND" status bond0 --socket "$W/x.sock" | grep -q "Announced after failover: bond0.100 (vlan 100, $MAC): 10.100.0.1"; }
wait_for 30 "xbond lists bond0.100 as announced" announced || die "bond0.100 is not announced"
ok "xbond announces bond0.100 on VLAN 100"

wait_for 20 "h reaches 10.100.0.2 on VLAN 100" ip netns exec h ping -c 1 -W 1 10.100.0.2 \
  || die "no ping across the bond on VLAN 100"
ok "ping across the bond on VLAN 100"
fmac=$(ip netns exec f cat /sys/class/net/br0.100/address)
ip -n h neigh replace 10.100.0.2 lladdr "$fmac" dev bond0.100 nud permanent
ip -n f neigh replace 10.100.0.1 lladdr 02:de:ad:be:ef:01 dev br0.100 nud stale

ip -n f link set f0 down
active() { "$XBOND" status bond0 --socket "$W/x.sock" | grep -q "Currently Active Slave: h1"; }
wait_for 20 "h1 becomes the active slave" active || die "no failover to h1"
moved() { ip -n f neigh show 10.100.0.1 dev br0.100 | grep -qi "$MAC"; }
wait_for 20 "f's entry for 10.100.0.1 takes bond0.100's MAC" moved \
  || die "no tagged gratuitous ARP for 10.100.0.1 reached br0.100"
ok "the tagged gratuitous ARP from bond0.100 reached f's VLAN 100"
learned() { bridge -n f fdb show br br0 | grep -qi "$MAC dev f1 "; }
wait_for 10 "br0 learns bond0.100's MAC on f1" learned || die "br0 did not learn $MAC on f1"
ok "the switch learned that bond0.100 moved to f1"

# The ARP monitor through bond0.100.
kill "$xpid"; wait "$xpid" 2>/dev/null; xpid=""
ip -n f link set f0 up
ip netns exec f sysctl -qw net.ipv4.conf.all.arp_ignore=1
ip -n h neigh del 10.100.0.2 dev bond0.100
cat > "$W/arp.toml" <<EOF
name = "bond0"
slaves = ["h0", "h1"]
mode = "active-backup"
primary = "h0"
miimon = 0
arp_interval = 100
arp_ip_target = ["10.100.0.2"]
arp_validate = "active"
control_socket = "$W/x.sock"
EOF
start_xbond_in h "$W/arp.toml" "$W/x.sock" "$W/xbond.log" || die "xbond (ARP monitor) did not start"
# The probes go tagged from 10.100.0.1 with h0's MAC: f learns h0 there.
ip -n f neigh del 10.100.0.1 dev br0.100 2>/dev/null
h0mac=$(ip netns exec h cat /sys/class/net/h0/address)
probed() { ip -n f neigh show 10.100.0.1 dev br0.100 | grep -qi "$h0mac"; }
wait_for 30 "f learns 10.100.0.1 at h0's MAC from a tagged probe" probed \
  || die "no ARP probe from 10.100.0.1 tagged 100 reached br0.100"
ok "the ARP monitor probes 10.100.0.2 through bond0.100, tagged, from 10.100.0.1"
# Its replies keep h0 up: ten more of them, and h0 stays active and up
# with no link failure.
field() {  # field SLAVE PATTERN AWK-FIELD
  "$XBOND" status bond0 --socket "$W/x.sock" \
    | awk -v s="$1" -v p="$2" -v f="$3" '/^Slave Interface: /{n=$3} n==s && $0 ~ p {print $f; exit}'
}
rx0=$(field h0 "^Frames: rx" 3); fails0=$(field h0 "^Link Failure Count" 4)
more() { [ "$(field h0 "^Frames: rx" 3)" -ge $((rx0 + 10)) ]; }
wait_for 30 "ten more replies delivered from h0" more || die "the replies to the tagged probes stopped"
"$XBOND" status bond0 --socket "$W/x.sock" | grep -q "Currently Active Slave: h0" || die "h0 is not active"
[ "$(field h0 "^Monitors:" 4)" = "ARP/NS" ] && [ "$(field h0 "^Monitors:" 5)" = "up" ] || die "h0's ARP monitor says down"
[ "$(field h0 "^Link Failure Count" 4)" = "$fails0" ] || die "h0 failed meanwhile"
ok "the replies keep h0 up and active (no link failure over ten replies)"
echo "PASS"
