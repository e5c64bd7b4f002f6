#!/usr/bin/env bash
# The seed guide's Proxmox VE set-up end to end, on Debian's kernel (which,
# unlike the development machines', has 8021q and VLAN-filtering bridges):
#
#   namespace pve: an xbond 802.3ad bond0 (miimon 100, layer3+4) over p0, p1;
#                  vmbr0, VLAN-aware, on bond0 with bridge-vids 10 20 30 100
#                  (what ifupdown2 makes of `bridge-vlan-aware yes` /
#                  `bridge-vids 10 20 30 100`); a "VM" behind tap100i0 in
#                  vmbr0, VLAN 20 access (pvid untagged), its own MAC
#   namespace vm:  the VM's eth0, 10.20.0.50/24
#   namespace sw:  the switch: a kernel 802.3ad bond (bonding.ko) over s0, s1
#                  speaking LACP, bond0.20 with 10.20.0.1/24
#
# Checks: both sides aggregate both links; the VM pings 10.20.0.1 across the
# bond on VLAN 20 (tagged on the wire: the switch only has the address on
# bond0.20); one link is cut under a running ping and the ping goes on; xbond
# status shows the aggregator shrink to one port; the kernel agrees.
# Every wait is for a state with a generous timeout; time never decides.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

W=/tmp/proxmox
mkdir -p "$W"
xpid=""
teardown() {
  [ -n "$xpid" ] && { kill "$xpid" 2>/dev/null; wait "$xpid" 2>/dev/null; }
  for n in pve vm sw; do ip netns del $n 2>/dev/null; done
}
trap teardown EXIT
dump() {
  echo "---- xbond status"; "$XBOND" status bond0 --socket "$W/x.sock"
  echo "---- kernel bond (switch)"; ip netns exec sw cat /proc/net/bonding/bond0
  echo "---- bridge vlan (pve)"; ip netns exec pve bridge vlan show
  echo "---- xbond log"; tail -n 30 "$W/xbond.log"
}
die() { echo "FAIL: $*"; dump; exit 1; }

for n in pve vm sw; do ip netns add $n; ip -n $n link set lo up; done
ip -n pve link add p0 type veth peer name s0 netns sw
ip -n pve link add p1 type veth peer name s1 netns sw
ip -n pve link add tap100i0 type veth peer name eth0 netns vm
for l in p0 p1 tap100i0; do ip -n pve link set $l up; done

# The switch: a kernel LACP bond with the VLAN 20 gateway.
ip -n sw link add bond0 type bond mode 802.3ad miimon 100 lacp_rate fast xmit_hash_policy layer3+4
for l in s0 s1; do ip -n sw link set $l down; ip -n sw link set $l master bond0; done
ip -n sw link set bond0 up
ip -n sw link add link bond0 name bond0.20 type vlan id 20
ip -n sw addr add 10.20.0.1/24 dev bond0.20
ip -n sw link set bond0.20 up
# A wire carries the tag in the frame; between veths the kernel would pass it
# out of band (vlan_tci), where no XDP program sees it.
for l in s0 s1; do ip netns exec sw ethtool -K $l txvlan off; done

# The Proxmox host: xbond in place of the kernel bond.
cat > "$W/bond0.toml" <<EOF
name = "bond0"
slaves = ["p0", "p1"]
mode = "802.3ad"
miimon = 100
xmit_hash_policy = "layer3+4"
lacp_rate = "fast"
control_socket = "$W/x.sock"
EOF
start_xbond_in pve "$W/bond0.toml" "$W/x.sock" "$W/xbond.log" || die "xbond did not start"
ip -n pve link add vmbr0 type bridge vlan_filtering 1 stp_state 0 forward_delay 0
ip -n pve link set bond0 master vmbr0
ip -n pve link set tap100i0 master vmbr0
for vid in 10 20 30 100; do ip netns exec pve bridge vlan add dev bond0 vid $vid; done
ip netns exec pve bridge vlan del dev tap100i0 vid 1
ip netns exec pve bridge vlan add dev tap100i0 vid 20 pvid untagged
ip -n pve link set vmbr0 up
ip -n vm addr add 10.20.0.50/24 dev eth0
ip -n vm link set eth0 up
ok "topology built"

ports() { "$XBOND" status bond0 --socket "$W/x.sock" | grep -m1 "Number of ports:" | awk '{print $4}'; }
kports() { ip netns exec sw cat /proc/net/bonding/bond0 | grep -m1 "Number of ports:" | awk '{print $4}'; }
two() { [ "$(ports)" = 2 ] && [ "$(kports)" = 2 ]; }
one() { [ "$(ports)" = 1 ] && [ "$(kports)" = 1 ]; }
wait_for 60 "both sides aggregate both links" two || die "no aggregation of both links"
ok "xbond and the kernel bond aggregate both links"

if ! wait_for 30 "the VM reaches the gateway on VLAN 20" ip netns exec vm ping -c 1 -W 1 10.20.0.1; then
  cnt() { for c in "pve tap100i0" "pve vmbr0" "pve bond0" "pve xb-bond0" "pve p0" "pve p1" "sw s0" "sw s1" "sw bond0" "sw bond0.20"; do set -- $c; echo "$1 $2 $(ip -n $1 -s link show $2 | awk '/RX:/{getline; r=$2} /TX:/{getline; t=$2} END{print "rx", r, "tx", t}')"; done; }
  cnt > "$W/c1"; ip netns exec vm ping -c 5 -i 0.2 -W 1 10.20.0.1; cnt > "$W/c2"; paste "$W/c1" "$W/c2"
  ip netns exec pve bridge fdb show br vmbr0 | grep -v permanent
  ip netns exec sw ip neigh
  "$XBOND" status bond0 --socket "$W/x.sock" --json | grep -E '"(rx|tx)_(frames|dropped[a-z_]*)"|tx_no_slave|malformed' | head -20
  ip netns exec pve ethtool -k bond0 | grep -i vlan
  die "the VM cannot reach 10.20.0.1 on VLAN 20"
fi
vmmac=$(ip netns exec vm cat /sys/class/net/eth0/address)
ip netns exec sw ip neigh show dev bond0.20 | grep -qi "$vmmac" \
  || die "the switch did not learn the VM's own MAC $vmmac on VLAN 20"
ok "the VM (MAC $vmmac) pings 10.20.0.1 across the bond on VLAN 20"

# A ping runs; one link is cut under it.
ip netns exec vm ping -i 0.05 -W 1 10.20.0.1 > "$W/ping.txt" 2>&1 &
ppid=$!
wait_for 10 "the ping runs" grep -q "bytes from" "$W/ping.txt" || die "no ping replies"
ip -n sw link set s0 down
wait_for 30 "both sides shrink to one port" one || die "the aggregator did not shrink"
ok "the aggregator shrank to one port on both sides"
before=$(grep -c "bytes from" "$W/ping.txt")
wait_for 20 "replies go on after the cut" sh -c "[ \$(grep -c 'bytes from' $W/ping.txt) -ge $((before + 20)) ]" \
  || die "the ping stopped after the cut"
kill -INT $ppid; wait $ppid 2>/dev/null
tail -n 3 "$W/ping.txt"
ok "the VM's ping went on over the remaining link"
"$XBOND" status bond0 --socket "$W/x.sock" | grep -E "^(Bonding Mode|Number of ports|Slave Interface|MII Status)"
echo "PASS"
