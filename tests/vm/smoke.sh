#!/usr/bin/env bash
# The lab itself: Debian's kernel, bonding and pktgen loaded, the virtio-net
# NICs with their queues, the host's userland, bpffs, the xbond binary.
set -uo pipefail
. "$(dirname "$0")/lib.sh"

echo "kernel $(uname -r), $(nproc) CPUs"
[ "$(uname -r)" = "$VMLAB_KERNEL" ] || fail "kernel $(uname -r), expected $VMLAB_KERNEL"

# bonding: max_bonds=0, so no bond0 yet; a kernel bond can be made.
[ -f /sys/class/net/bonding_masters ] || fail "bonding not loaded"
ip link add smoke0 type bond mode 802.3ad || fail "cannot create a kernel bond"
[ -f /proc/net/bonding/smoke0 ] || fail "no /proc/net/bonding/smoke0"
grep -q "^Bonding Mode: IEEE 802.3ad Dynamic link aggregation" /proc/net/bonding/smoke0 || fail "bond mode"
ip link del smoke0
ok "bonding.ko"

# pktgen: one thread per CPU.
[ -d /proc/net/pktgen ] || fail "pktgen not loaded"
n=$(find /proc/net/pktgen -maxdepth 1 -name 'kpktgend_*' | wc -l)
[ "$n" -eq "$(nproc)" ] || fail "pktgen threads: $n, CPUs: $(nproc)"
ok "pktgen ($n threads)"

# virtio-net NICs, each offering VMLAB_QUEUES queue pairs. The driver starts
# with min(queues, CPUs) in use; ethtool -L turns them all on.
nics=0
for d in /sys/class/net/*; do
  [ "$(basename "$(readlink -f "$d/device/driver" 2>/dev/null)")" = virtio_net ] || continue
  i=$(basename "$d")
  max=$(ethtool -l "$i" | awk '/^Pre-set/{c=1} c && /^Combined:/{print $2; exit}')
  [ "$max" = "$VMLAB_QUEUES" ] || fail "$i offers ${max:-?} combined channels, expected $VMLAB_QUEUES"
  ethtool -L "$i" combined "$VMLAB_QUEUES" 2>/dev/null || true
  ip link set "$i" up
  rxq=$(ls -d "$d"/queues/rx-* | wc -l)
  txq=$(ls -d "$d"/queues/tx-* | wc -l)
  echo "$i: virtio_net $(cat "$d/address"), max $max combined, $rxq rx / $txq tx queues in use"
  [ "$rxq" -eq "$VMLAB_QUEUES" ] && [ "$txq" -eq "$VMLAB_QUEUES" ] || fail "$i uses $rxq/$txq queues after ethtool -L combined $VMLAB_QUEUES"
  nics=$((nics + 1))
done
[ "$nics" -eq "$VMLAB_NICS" ] || fail "$nics virtio-net NICs, expected $VMLAB_NICS"
ok "$nics virtio-net NICs with $VMLAB_QUEUES queues each"

# veth, network namespaces, bpffs, the results share, the xbond binary.
ip netns add smoke || fail "ip netns add"
ip link add sm0 type veth peer name sm1 netns smoke || fail "veth"
ip netns del smoke
mountpoint -q /sys/fs/bpf || fail "no bpffs"
echo hi > "$VMLAB_RESULTS/smoke.txt" || fail "results share not writable"
[ -x "$XBOND" ] || fail "no xbond binary at $XBOND (build it on the host: cargo build --release -p xbond)"
"$XBOND" --version 2>/dev/null || "$XBOND" --help | head -1
ok "veth, netns, bpffs, results share, xbond binary"
echo PASS
