#!/usr/bin/env bash
# Builds xbond and runs the demo: an active-backup bond on veth links in two
# network namespaces, traffic, a failover, and clean-up.
#
#   scripts/demo.sh             the demo on this machine
#   scripts/demo.sh --proxmox   the seed guide's Proxmox VE set-up, in the VM
#                               lab (Debian's kernel, for 8021q and VLAN-aware
#                               bridges): xbond 802.3ad under a VLAN-aware
#                               vmbr0, a kernel LACP bond as the switch, a VM
#                               on VLAN 20 pinging across a link cut
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p xbond
case "${1:-}" in
  --proxmox) exec scripts/vmlab.sh run tests/vm/proxmox.sh ;;
  "") exec target/release/xbond demo ;;
  *) echo "demo: unknown option $1 (valid: --proxmox)" >&2; exit 2 ;;
esac
