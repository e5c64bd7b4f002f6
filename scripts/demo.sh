#!/usr/bin/env bash
# Builds xbond and runs the demo: an active-backup bond on veth links in two
# network namespaces, traffic, a failover, and clean-up.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p xbond
exec target/release/xbond demo
