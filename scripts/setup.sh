#!/usr/bin/env bash
# Installs what xbond needs to build and test on Debian 12, as root:
# clang/llvm and libelf/zlib for the BPF program and libxdp/libbpf (built by
# the xsk-rs and libbpf-sys crates), libpcap-dev (libxdp's configure needs
# pcap/dlt.h), pkg-config and m4 for their builds, ca-certificates for cargo's
# downloads from crates.io, iproute2, ping and procps (kill) for the test
# topologies and the demo, tshark for the LACPDU dissection test, ifupdown and
# bridge-utils for the ifupdown tests (the seed's stanzas with vmbr0),
# systemd for `systemd-analyze verify` of the unit, util-linux for setsid,
# ethtool (xbond turns off VLAN offloads that would hide tags from XDP),
# python3 for ifupdown2 (Proxmox VE's), which conflicts with ifupdown and so
# is unpacked under target/ for its test rather than installed.
# scripts/fresh-check.sh proves the list on a bare Debian 12 (debootstrap).
set -euo pipefail
# apt-get, waiting for any other apt on this machine instead of failing on
# its lock (CI runs this script beside others that install packages).
apt_get() { flock -w 1800 /var/lib/apt/xbond-apt.lock apt-get -o DPkg::Lock::Timeout=1800 "$@"; }
pkgs=(clang llvm libelf-dev zlib1g-dev libpcap-dev pkg-config m4 make gcc libc6-dev linux-libc-dev
  ca-certificates iproute2 iputils-ping procps kmod tshark ifupdown bridge-utils systemd util-linux ethtool python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt_get update -qq
  apt_get install -y -qq "${missing[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required; install it with rustup" >&2; exit 1; }
# BPF maps and programs need locked memory on older kernels.
ulimit -l unlimited 2>/dev/null || true
# Network namespaces need /run/netns; ifupdown2 its lock in /run/network.
mkdir -p /run/netns /run/network
i2="$(cd "$(dirname "$0")/.." && pwd)/target/ifupdown2"
if [ ! -f "$i2/usr/share/ifupdown2/__main__.py" ]; then
  echo "setup: unpacking ifupdown2 into $i2"
  rm -rf "$i2" && mkdir -p "$i2"
  (cd "$i2" && apt_get download -qq -o APT::Sandbox::User=root ifupdown2 >/dev/null && dpkg-deb -x ifupdown2_*.deb .)
fi
