#!/usr/bin/env bash
# vmlab-args: --nics 4 --bridge
# xbond on a real driver: the VM's virtio-net NICs as slaves (4 queue pairs
# each), their host ends bridged together on the host (a switch without a
# LAG; no frame leaves the lab):
#
#   root namespace: xbond active-backup bond0 over eth0, eth1 (primary eth0);
#                   later vmbr0 on bond0 with 10.200.0.1/24 and a "VM"
#                   (namespace vm, its own MAC, 10.200.0.50/24) behind it
#   namespace far:  eth2 with 10.200.0.2/24
#
# Checks, each something veth cannot show:
#   - XDP runs in native mode on virtio-net, and each socket reports the
#     AF_XDP mode it got (zero-copy tried first; the reason when refused);
#   - the device's MAC filter: frames for the VM's MAC do not reach eth0
#     while bond0 is not promiscuous, and do once vmbr0 makes it so and
#     xbond passes that down (the VM answers ping);
#   - the host spreads many flows over eth0's 4 RX queues: every queue
#     delivers, none drops for want of a socket.
# Every wait is for a state or a count, with a generous timeout.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

W=/tmp/virtio
mkdir -p "$W"
xpid=""
teardown() {
  [ -n "$xpid" ] && { kill "$xpid" 2>/dev/null; wait "$xpid" 2>/dev/null; }
  for n in far vm; do ip netns del $n 2>/dev/null; done
}
trap teardown EXIT
st() { "$XBOND" status bond0 --socket "$W/x.sock"; }
dump() { echo "---- xbond status"; st; echo "---- xbond log"; tail -n 30 "$W/xbond.log"; }
die() { echo "FAIL: $*"; dump; exit 1; }
# field SLAVE PATTERN N: field N of the first line matching PATTERN in
# SLAVE's section of the status.
field() {
  st | awk -v s="$1" -v p="$2" -v f="$3" '/^Slave Interface: /{n=$3} n==s && $0 ~ p {print $f; exit}'
}

for i in eth0 eth1 eth2 eth3; do
  ethtool -L $i combined "$VMLAB_QUEUES" 2>/dev/null || true
done
ip netns add far; ip -n far link set lo up
ip link set eth2 netns far
ip -n far addr add 10.200.0.2/24 dev eth2
ip -n far link set eth2 up
ip netns add vm; ip -n vm link set lo up

cat > "$W/bond0.toml" <<EOF
name = "bond0"
slaves = ["eth0", "eth1"]
mode = "active-backup"
primary = "eth0"
miimon = 100
control_socket = "$W/x.sock"
EOF
start_xbond_in "" "$W/bond0.toml" "$W/x.sock" "$W/xbond.log" || die "xbond did not start"
wait_for 20 "eth0 active" sh -c "\"$XBOND\" status bond0 --socket $W/x.sock | grep -q 'Currently Active Slave: eth0'" \
  || die "eth0 is not active"

# Native XDP, and the AF_XDP mode each socket got.
for s in eth0 eth1; do
  [ "$(field $s '^AF_XDP:' 4)" = "native)" ] || die "$s: XDP is not native: $(field $s '^AF_XDP:' 0)"
done
ok "XDP native on eth0 and eth1 (virtio_net)"
st | grep -E "^Queue [0-9]+ socket (eth0|eth1):" > "$W/sockets.txt"
grep -qE "^Queue 0 socket eth0: (zero-copy|copy)" "$W/sockets.txt" || die "no AF_XDP mode reported for eth0"
if ! grep -qE "^Queue 0 socket eth0: zero-copy" "$W/sockets.txt"; then
  grep -qE "^Queue 0 socket eth0: zero-copy( with multi-buffer)? refused: " "$W/sockets.txt" \
    || die "eth0 is in copy mode without saying why zero-copy was refused"
fi
sed -n '1,4p' "$W/sockets.txt"
ok "each socket reports its AF_XDP mode (zero-copy tried first)"

# The MAC filter: 1000 frames to the VM's MAC while bond0 is not
# promiscuous, then 1000 to bond0's MAC on the same path.
VMMAC=02:00:00:c8:00:50
bmac=$(cat /sys/class/net/bond0/address)
rx0=$(field eth0 '^Frames: rx' 3)
ip netns exec far "$XBOND" pktgen send --iface eth2 --dst-mac $VMMAC --count 1000 --rate 20000 --stream 1 >/dev/null \
  || die "pktgen send to the VM's MAC"
ip netns exec far "$XBOND" pktgen send --iface eth2 --dst-mac "$bmac" --count 1000 --rate 20000 --stream 2 >/dev/null \
  || die "pktgen send to bond0's MAC"
arrived() { [ "$(field eth0 '^Frames: rx' 3)" -ge $((rx0 + 1000)) ]; }
wait_for 20 "the frames for bond0's MAC arrive" arrived || die "frames for bond0's MAC did not arrive on eth0"
rx1=$(field eth0 '^Frames: rx' 3)
[ $((rx1 - rx0)) -lt 1500 ] || die "eth0 received $((rx1 - rx0)) frames: the VM's frames passed the MAC filter without promisc"
ok "without promisc the NIC's MAC filter keeps the VM's frames out ($((rx1 - rx0)) of 2000 arrived)"

# A bridge on bond0 with a VM behind it: bond0 becomes promiscuous, xbond
# passes that to eth0, and the VM's frames arrive.
ip link add vmbr0 type bridge stp_state 0 forward_delay 0
ip link set bond0 master vmbr0
ip link set vmbr0 up
ip addr add 10.200.0.1/24 dev vmbr0
ip link add tap100i0 type veth peer name eth0 netns vm
ip link set tap100i0 master vmbr0
ip link set tap100i0 up
ip -n vm link set eth0 address $VMMAC
ip -n vm addr add 10.200.0.50/24 dev eth0
ip -n vm link set eth0 up
promisc() { ip -d link show eth0 | grep -qE "promiscuity [1-9]"; }
wait_for 20 "eth0 promiscuous" promisc || die "xbond did not pass promisc down to eth0"
wait_for 30 "far pings the VM" ip netns exec far ping -c 1 -W 1 10.200.0.50 || die "the VM's frames do not arrive"
ok "with vmbr0 on bond0 eth0 is promiscuous and the VM answers ping"

# Many flows from far to bond0's MAC: the host spreads them over eth0's
# queues.
ip netns exec far "$XBOND" pktgen send --iface eth2 --dst-mac "$bmac" --flows 256 --count 8000 --rate 20000 --stream 3 >/dev/null \
  || die "pktgen send (256 flows)"
queues=$(st | grep -c "^Queue [0-9]*: ")
[ "$queues" -eq "$VMLAB_QUEUES" ] || die "xbond serves $queues queues, eth0 has $VMLAB_QUEUES"
all_deliver() {
  st | awk '/^Queue [0-9]+: /{ if ($8+0 == 0) bad=1; n++ } END{exit (bad || n == 0)}'
}
wait_for 20 "every queue delivers to the host" all_deliver || { st | grep "^Queue [0-9]*: "; die "a queue carried nothing"; }
[ "$(field eth0 '^Frames:' 12)" = "0" ] || die "eth0 dropped frames for want of a socket: $(field eth0 '^Frames:' 0)"
st | grep "^Queue [0-9]*: "
ok "the host's flows land on all $VMLAB_QUEUES queues of eth0; no no-socket drops"
echo "PASS"
