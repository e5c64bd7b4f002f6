#!/usr/bin/env bash
# Proves that scripts/setup.sh installs everything xbond needs: builds a bare
# Debian 12 (bookworm) minbase root with debootstrap under target/fresh-check/,
# copies the committed tree (git archive HEAD) into it, bind-mounts the host's
# Rust toolchain read-only, runs scripts/setup.sh there and then
# `cargo build --locked --workspace` (a debug build: the same native
# dependencies as the release build, in half the time). Fails, naming the step, if
# anything is missing. As root (CI: `scripts/fresh-check.sh`):
#
#   scripts/fresh-check.sh            # reuses the cached minbase root
#   scripts/fresh-check.sh --cold     # drops every cache first
#
# Caches (all under target/, none needed for correctness):
#   target/fresh-check-bookworm-minbase.tar   the finished debootstrap root
#   target/fresh-check-cache/apt              .debs apt downloaded (not dpkg state)
#   target/fresh-check-cache/cargo            the registry index and .crate files
# The root itself is unpacked anew on every run, so every package setup.sh
# needs must be installed by setup.sh. Crate sources are unpacked anew too
# (registry/src is not cached): libxdp-sys runs its configure, which checks
# for libpcap, inside its source folder, and keeps the result there.
#
# Environment: FRESH_CHECK_REV (default HEAD), FRESH_CHECK_MIRROR (default
# http://deb.debian.org/debian), FRESH_CHECK_KEEP=1 keeps the root afterwards,
# FRESH_CHECK_ALL_TARGETS=1 also builds tests and benches (`--all-targets`;
# about 4 more minutes on 2 cores, and no further packages needed as of now).
#
# Every mount is made in a private mount namespace (unshare), so none can leak
# to the host even if this script is killed; a trap unmounts them all anyway.
# Cargo runs under `flock /tmp/xbond-cargo.lock nice -n 10` (shared cores).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

suite=bookworm
mirror=${FRESH_CHECK_MIRROR:-http://deb.debian.org/debian}
rev=${FRESH_CHECK_REV:-HEAD}
base=$repo/target/fresh-check
root=$base/root
tarball=$repo/target/fresh-check-$suite-minbase.tar
cache=$repo/target/fresh-check-cache
lock=/tmp/xbond-cargo.lock

say() { echo "fresh-check: $*" >&2; }
die() { say "FAILED: $*"; exit 1; }

# Mount points under $root in this mount namespace, deepest first.
mounts_under_root() {
  awk -v r="$root" '$5 == r || index($5, r "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r
}

unmount_all() {
  local m
  for _ in 1 2 3; do
    [ -n "$(mounts_under_root)" ] || return 0
    while read -r m; do
      [ -n "$m" ] && { umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; }
    done < <(mounts_under_root)
  done
  [ -z "$(mounts_under_root)" ] || { say "could not unmount: $(mounts_under_root | tr '\n' ' ')"; return 1; }
}

# Removes the root, refusing while anything is mounted under it.
remove_root() {
  [ -e "$root" ] || return 0
  unmount_all || die "mounts remain under $root; not removing it"
  rm -rf --one-file-system "$root"
}

# Long steps run as a job in a session of their own, so that an interrupt can
# end all of it (apt, cargo, rustc) before the mounts go.
jobpid=
job() {
  setsid -w "$@" &
  jobpid=$!
  local rc=0
  wait "$jobpid" || rc=$?
  jobpid=
  return "$rc"
}
stop_job() {
  [ -n "$jobpid" ] || return 0
  kill -TERM -- "-$jobpid" 2>/dev/null || kill -TERM "$jobpid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 -- "-$jobpid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL -- "-$jobpid" 2>/dev/null || true
  wait "$jobpid" 2>/dev/null || true
}

# ---------------------------------------------------------------------------
# Inner part: runs in the private mount namespace.
inner() {
  trap 'rc=$?; unmount_all || rc=1; exit $rc' EXIT
  trap 'say "interrupted"; stop_job; exit 130' INT TERM HUP

  remove_root
  mkdir -p "$base" "$cache/apt/partial" "$cache/cargo/index" "$cache/cargo/cache"

  # 1. The bare root: from the cached tarball, or debootstrap (then cached).
  local t0=$SECONDS
  if [ -s "$tarball" ]; then
    say "unpacking cached minbase root $(basename "$tarball")"
    mkdir -p "$root"
    tar -C "$root" --numeric-owner -xpf "$tarball" || {
      rm -f "$tarball"; die "the cached tarball was broken (removed it; run again)"; }
  else
    say "debootstrap --variant=minbase $suite from $mirror (cold; a few minutes)"
    mkdir -p "$root"
    if ! job debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$base/debootstrap.log" 2>&1; then
      tail -n 30 "$base/debootstrap.log" >&2
      die "debootstrap failed (log: $base/debootstrap.log)"
    fi
    unmount_all   # debootstrap may leave /proc mounted in the target on some versions
    rm -rf "${root:?}"/var/cache/apt/archives/*.deb
    tar -C "$root" --numeric-owner -cpf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    say "cached the minbase root as $(basename "$tarball")"
  fi
  say "bare root ready in $((SECONDS - t0)) s"

  # 2. A normal Debian 12 machine's apt sources; the host's DNS and local CAs;
  # no services started.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
EOF
  cp -L /etc/resolv.conf "$root/etc/resolv.conf"
  # The site's own CAs (public certificates, e.g. a TLS-inspecting proxy's),
  # where Debian keeps them; they enter the trust store only once setup.sh
  # installs ca-certificates, as on a fresh machine of this site.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -L /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  fi
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod 755 "$root/usr/sbin/policy-rc.d"

  # 3. The committed tree.
  mkdir -p "$root/root/xbond"
  git -C "$repo" archive --format=tar "$rev" | tar -C "$root/root/xbond" -xf - ||
    die "git archive $rev failed"
  say "copied $(git -C "$repo" rev-parse --short "$rev") ($rev) into the root"

  # 4. Mounts: kernel file systems, the toolchain (read-only), the caches.
  mount -t proc proc "$root/proc"
  mount -t sysfs sysfs "$root/sys"
  mount --rbind /dev "$root/dev"
  mkdir -p "$root/opt/rust" "$root/root/.cargo/registry/index" "$root/root/.cargo/registry/cache" \
    "$root/var/cache/apt/archives"
  mount --bind "$sysroot" "$root/opt/rust"
  mount -o remount,bind,ro "$root/opt/rust"
  mount --bind "$cache/apt" "$root/var/cache/apt/archives"
  mount --bind "$cache/cargo/index" "$root/root/.cargo/registry/index"
  mount --bind "$cache/cargo/cache" "$root/root/.cargo/registry/cache"

  # A clean environment in the root; `in_root CMD` runs a shell command there.
  local env_root=(chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb
    PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    CARGO_HOME=/root/.cargo CARGO_TERM_COLOR=never /bin/bash -c)
  in_root() { "${env_root[@]}" "cd /root/xbond && $1"; }
  in_root 'cargo --version && rustc --version' >&2 || die "the toolchain does not run in the root"

  # 5. setup.sh, exactly as a user on a fresh machine runs it.
  t0=$SECONDS
  say "running scripts/setup.sh in the bare root"
  job "${env_root[@]}" 'cd /root/xbond && scripts/setup.sh' || die "scripts/setup.sh failed in the bare root"
  say "setup.sh done in $((SECONDS - t0)) s"

  # 6. The commands the tests and the demo run must now be there.
  local missing
  missing=$(in_root 'for c in ip ping kill tshark cc clang make pkg-config; do
      command -v "$c" >/dev/null || echo "$c"; done') || die "checking the tools failed"
  [ -z "$missing" ] || die "setup.sh left these commands missing (tests/demo need them): $(echo $missing)"

  # 7. The build. The lock is taken here, on the host side of the chroot.
  t0=$SECONDS
  local build='cargo build --locked --workspace'
  [ "${FRESH_CHECK_ALL_TARGETS:-0}" != 1 ] || build="$build && cargo build --locked --workspace --all-targets"
  say "running: $build"
  local rc=0
  job bash -c 'set -o pipefail; "${@:2}" 2>&1 | tee "$1"' _ "$base/build.log" \
    flock "$lock" nice -n 10 "${env_root[@]}" "cd /root/xbond && $build" || rc=$?
  if [ "$rc" != 0 ]; then
    say "the build failed (exit $rc); what looks missing:"
    grep -E "fatal error:|missing - this is required|No such file|not found|cannot find|error: (failed|could not)|unable to find" \
      "$base/build.log" | sort -u | head -n 20 >&2 || true
    die "cargo build in the bare root (log: $base/build.log); a Debian package is probably missing from scripts/setup.sh"
  fi
  say "build done in $((SECONDS - t0)) s"
}

# ---------------------------------------------------------------------------
if [ "${1:-}" = --inner ]; then
  sysroot=$2
  inner
  exit 0
fi

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and mounts need it)"
case "${1:-}" in
  --cold) rm -rf "$tarball" "$cache"; say "cold run: caches dropped" ;;
  "") ;;
  *) die "usage: $0 [--cold]" ;;
esac

start=$SECONDS
git -C "$repo" rev-parse --verify -q "$rev^{commit}" >/dev/null || die "no commit $rev in $repo"
[ -z "$(git -C "$repo" status --porcelain --untracked-files=no)" ] ||
  say "note: the work tree has uncommitted changes; checking the committed $rev only"

# apt-get, waiting for any other apt on this machine instead of failing on
# its lock (CI runs this script beside others that install packages).
apt_get() { flock -w 1800 /var/lib/apt/xbond-apt.lock apt-get -o DPkg::Lock::Timeout=1800 "$@"; }
if ! command -v debootstrap >/dev/null; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt_get update -qq
  DEBIAN_FRONTEND=noninteractive apt_get install -y -qq debootstrap >/dev/null
fi

# The host's toolchain: its sysroot holds bin/cargo, bin/rustc and their libs.
sysroot=$(rustc --print sysroot 2>/dev/null) || die "no Rust toolchain (rustc) on the host"
[ -x "$sysroot/bin/cargo" ] || die "$sysroot/bin/cargo missing: the toolchain needs cargo"

# The inner part in its own mount namespace; an interrupt is passed on to it
# (it stops its job, unmounts, and exits) and waited for.
unshare --mount --propagation private -- "$0" --inner "$sysroot" &
inner_pid=$!
trap 'kill -TERM "$inner_pid" 2>/dev/null || true' INT TERM HUP
rc=0
while :; do
  wait "$inner_pid" && rc=0 || rc=$?
  kill -0 "$inner_pid" 2>/dev/null || break
done
trap - INT TERM HUP

# Nothing of ours may stay mounted on the host (the namespace makes sure of it).
if [ -n "$(mounts_under_root)" ]; then
  say "mounts left under $root on the host:"; mounts_under_root >&2
  rc=1
elif [ "${FRESH_CHECK_KEEP:-0}" != 1 ]; then
  rm -rf --one-file-system "$root"
fi

if [ "$rc" = 0 ]; then
  say "PASSED: setup.sh + cargo build --locked on bare Debian 12 ($((SECONDS - start)) s)"
else
  say "FAILED (exit $rc) after $((SECONDS - start)) s"
fi
exit "$rc"
