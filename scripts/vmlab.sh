#!/usr/bin/env bash
# The VM lab: Debian's own kernel (with bonding.ko, pktgen, virtio-net) in
# qemu, running a script of ours in the host's userland (the host's root is
# mounted read-only over 9p and the guest chroots into it).
#
#   scripts/vmlab.sh prepare                 install qemu etc., fetch the kernel, build the initramfs
#   scripts/vmlab.sh run [opts] SCRIPT [ARGS...]
#                                            boot, run SCRIPT ARGS in the guest, print its output,
#                                            exit with its exit code
#   scripts/vmlab.sh shell [opts]            boot to an interactive shell in the chroot (serial console)
#   scripts/vmlab.sh clean                   remove target/vmlab
#
# run/shell options:
#   --nics N      virtio-net NICs (default 2), guest eth0..eth{N-1}
#   --queues Q    queues per NIC (default 4; mq=on, vectors=2Q+2)
#   --bridge      bridge the taps together in the run's namespace (the NICs see each other)
#   --mem MB      guest memory (default 2048)   --smp N   guest CPUs (default: host CPUs, at most 4)
#   --timeout S   kill the VM after S seconds (default 600)
#   --keep        keep the run directory even on success
#   --out DIR     copy what the script wrote to $VMLAB_RESULTS/out/ into DIR (the benchmarks' results)
#
# Exit codes: the guest script's own (0 pass; 77 is the skip convention), or
#   77  the lab cannot run here (no qemu and no apt to install it, not root, no /dev/net/tun,
#       the kernel package cannot be fetched, qemu exits before the guest starts)
#   125 the lab broke: the guest booted (or should have) but never reported an exit code
#       (timeout, kernel panic, init failure). The console log is kept.
#
# Each run has a directory target/vmlab/runs/<id>/ (console.log: the guest's
# serial console; output: the script's stdout+stderr; rc; any files the script
# wrote to $VMLAB_RESULTS, a writable 9p share). It is removed after a run that
# exits 0 (unless --keep) and kept otherwise.
#
# In the guest the script runs as root in the host's userland with cwd = the
# repository root (read-only), tmpfs on /tmp, /run, /var/tmp, fresh /proc, /sys,
# /dev, bpffs, and these modules loaded: bonding (max_bonds=0, so no default bond0),
# pktgen, virtio_net, veth, bridge, 8021q, sch_netem, 9p. Environment:
# VMLAB=1, VMLAB_RESULTS, VMLAB_NICS, VMLAB_QUEUES, VMLAB_KERNEL.
#
# The kernel's version is in scripts/vmlab.version (one line, the ABI name,
# e.g. 6.12.117+deb12-amd64; package linux-image-<that>). VMLAB_ACCEL=tcg|kvm
# forces the accelerator; otherwise KVM is used only if a probe boot with it
# works (cached in target/vmlab/<ver>/accel). VMLAB_TCG_THREAD=multi runs
# TCG's vCPUs on threads of their own (faster; the guest kernel's code
# patching can then crash it). VMLAB_APPEND adds to the guest
# kernel's command line. VMB_* (the VM benchmark's knobs), VMLAB_LONG and
# VM_STRICT pass through to the guest script's environment.
set -uo pipefail

SKIP=77
LABERR=125
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
self="$here/$(basename "${BASH_SOURCE[0]}")"
kver=${VMLAB_KERNEL:-$(tr -d ' \n' < "$here/vmlab.version")}
lab="$repo/target/vmlab"
kdir="$lab/$kver"

# Modules loaded in the guest, dependencies first (the package has no
# modules.dep; `prepare` resolves `depends=` with modinfo and fails if a
# dependency is missing from this list).
modules=(tls bonding pktgen failover net_failover virtio_net veth llc stp bridge garp mrp 8021q
  sch_netem netfs 9pnet 9pnet_virtio 9p)

log() { echo "vmlab: $*" >&2; }
skip() { log "SKIP: $*"; exit $SKIP; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------- prepare

# apt-get, waiting for any other apt on this machine instead of failing on
# its lock (CI runs this script beside others that install packages).
apt_get() { flock -w 1800 /var/lib/apt/xbond-apt.lock apt-get -o DPkg::Lock::Timeout=1800 "$@"; }
ensure_packages() {
  local need=() p
  for p in qemu-system-x86 busybox-static cpio xz-utils kmod iproute2 ethtool; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || skip "missing ${need[*]} and no apt-get to install them"
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  { apt_get update -qq && apt_get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null 2>&1 \
    || skip "could not install ${need[*]} with apt-get"
}

fetch_kernel() {
  [ -f "$kdir/vmlinuz" ] && [ -f "$kdir/.extracted" ] && return 0
  local pkg="linux-image-$kver" deb
  mkdir -p "$kdir"
  deb=$(ls "$kdir"/"$pkg"_*.deb 2>/dev/null | head -1)
  if [ -z "$deb" ]; then
    log "fetching $pkg (about 110 MB, cached under $kdir)"
    (cd "$kdir" && apt_get download "$pkg" >/dev/null 2>&1) || {
      apt_get update -qq >/dev/null 2>&1
      (cd "$kdir" && apt_get download "$pkg" >/dev/null 2>&1)
    } || skip "apt-get download $pkg failed (no network, or the archive dropped that version: update scripts/vmlab.version)"
    deb=$(ls "$kdir"/"$pkg"_*.deb | head -1)
  fi
  rm -rf "$kdir/root"
  dpkg-deb -x "$deb" "$kdir/root" || die "dpkg-deb -x $deb failed"
  cp "$kdir/root/boot/vmlinuz-$kver" "$kdir/vmlinuz" || die "no vmlinuz-$kver in $deb"
  touch "$kdir/.extracted"
}

build_initramfs() {
  local out="$kdir/initramfs.cpio.gz"
  if [ -f "$out" ] && [ "$out" -nt "$self" ] && [ "$out" -nt "$here/vmlab.version" ]; then return 0; fi
  local mdir="$kdir/root/lib/modules/$kver" tree="$kdir/initramfs" m f dep
  rm -rf "$tree" && mkdir -p "$tree"/{bin,proc,sys,dev,mnt,lib/modules,tmp}
  cp /bin/busybox "$tree/bin/busybox" || die "no /bin/busybox (busybox-static)"
  file -L "$tree/bin/busybox" 2>/dev/null | grep -q "dynamically linked" && die "/bin/busybox is not static (install busybox-static)"
  local loaded=" "
  for m in "${modules[@]}"; do
    f=$(find "$mdir/kernel" -name "$m.ko.xz" -o -name "$m.ko" | head -1)
    [ -n "$f" ] || die "module $m not in linux-image-$kver"
    for dep in $(modinfo -F depends "$f" | tr ',' ' '); do
      case "$loaded" in *" $dep "*) ;; *) die "module $m needs $dep: add it before $m in modules=() of $self" ;; esac
    done
    case "$f" in *.xz) xz -dc "$f" > "$tree/lib/modules/$m.ko" ;; *) cp "$f" "$tree/lib/modules/$m.ko" ;; esac
    loaded+="$m "
  done
  echo "${modules[*]}" > "$tree/lib/modules/order"
  sed -n '/^# ---- guest init ----$/,/^# ---- end guest init ----$/p' "$self" | sed '1d;$d' > "$tree/init"
  chmod 755 "$tree/init"
  (cd "$tree" && find . | cpio -o -H newc --quiet | gzip -1) > "$out.tmp" && mv "$out.tmp" "$out" \
    || die "cpio failed"
}

prepare() {
  [ "$(id -u)" = 0 ] || skip "needs root (taps, network namespaces, apt)"
  ensure_packages
  mkdir -p "$lab"
  exec 9>"$lab/.lock"
  flock 9
  fetch_kernel
  build_initramfs
  flock -u 9
}

# ---------------------------------------------------------------- boot

# qemu_cmd ACCEL RUNDIR CMDLINE_EXTRA: prints nothing, fills the array qemu.
qemu=()
make_qemu() {
  local accel=$1 run=$2 extra=$3 cpu=max
  qemu=(qemu-system-x86_64 -nodefaults -no-user-config -display none -monitor none -no-reboot
    -machine pc -m "$mem" -smp "$smp")
  # shellcheck disable=SC2054 # -accel takes one comma-separated argument
  # TCG runs every vCPU on one host thread unless VMLAB_TCG_THREAD=multi:
  # multi-threaded TCG lets one vCPU run code the guest kernel is patching
  # on another (jump labels: a static key turned on by a ping's socket, at
  # boot or at any time), and the guest then panics (netif_rx_internal,
  # enqueue_timer).
  if [ "$accel" = kvm ]; then qemu+=(-accel kvm -cpu host); else qemu+=(-accel "tcg,thread=${VMLAB_TCG_THREAD:-single}" -cpu "$cpu"); fi
  qemu+=(-kernel "$kdir/vmlinuz" -initrd "$kdir/initramfs.cpio.gz"
    -append "console=ttyS0 quiet loglevel=4 panic=-1 mitigations=off tsc=reliable $extra ${VMLAB_APPEND:-}"
    -serial "file:$run/console.log")
}

probe_accel() {
  if [ -n "${VMLAB_ACCEL:-}" ]; then accel=$VMLAB_ACCEL; return; fi
  local cache="$kdir/accel" key
  key="host $(uname -r), guest $kver, $(command -v qemu-system-x86_64)"
  if [ -f "$cache" ] && [ "$(sed -n 2p "$cache")" = "$key" ]; then accel=$(head -1 "$cache"); return; fi
  accel=tcg
  # kvm-pvm (PVM, the nested KVM of some cloud VMs: no VMX in the guest's
  # CPU flags) runs only guests built for it: Debian's kernel stops in its
  # decompressor ("emulation failure" on a VEX instruction) and an
  # uncompressed vmlinux does not boot either, so the probe would only
  # spend its 20 s.
  if [ -d /sys/module/kvm_pvm ] && [ ! -d /sys/module/kvm_intel ] && [ ! -d /sys/module/kvm_amd ]; then
    log "accelerator: tcg (/dev/kvm is kvm-pvm, which cannot run Debian's kernel)"
  elif [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    local p; p=$(mktemp -d "$lab/probe.XXXXXX")
    make_qemu kvm "$p" vmlab.probe=1
    (timeout 20 "${qemu[@]}"; true) >/dev/null 2>&1
    if grep -q VMLAB-PROBE-OK "$p/console.log" 2>/dev/null; then accel=kvm; fi
    rm -rf "$p"
  fi
  printf '%s\n%s\n' "$accel" "$key" > "$cache"
  log "accelerator: $accel (probe cached in $cache)"
}

# qemu's own pid (from -pidfile): TERM, then KILL after 10 s.
kill_qemu() {
  local p i
  p=$(cat "$run/qemu.pid" 2>/dev/null) || return 0
  kill "$p" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  if [ -n "${qpid:-}" ]; then
    kill_qemu
    wait "$qpid" 2>/dev/null
  fi
  [ -n "${tailpid:-}" ] && kill "$tailpid" 2>/dev/null && wait "$tailpid" 2>/dev/null
  [ -n "${netns:-}" ] && ip netns del "$netns" 2>/dev/null
  [ -n "${interrupted:-}" ] && [ -n "${run:-}" ] && [ -d "$run" ] && log "interrupted (exit $rc); run directory kept: $run"
  exit "$rc"
}

boot_and_run() { # mode(run|shell) args...
  local mode=$1; shift
  nics=2 queues=4 mem=2048 timeout_s=600 keep=0 bridge=0 out=""
  smp=$(nproc); [ "$smp" -gt 4 ] && smp=4
  while [ $# -gt 0 ]; do
    case "$1" in
      --nics) nics=$2; shift 2 ;;
      --queues) queues=$2; shift 2 ;;
      --mem) mem=$2; shift 2 ;;
      --smp) smp=$2; shift 2 ;;
      --timeout) timeout_s=$2; shift 2 ;;
      --keep) keep=1; shift ;;
      --out) out=$2; shift 2 ;;
      --bridge) bridge=1; shift ;;
      --) shift; break ;;
      -*) die "unknown option $1" ;;
      *) break ;;
    esac
  done
  local script=""
  if [ "$mode" = run ]; then
    [ $# -ge 1 ] || die "usage: vmlab.sh run [opts] SCRIPT [ARGS...]"
    script=$(realpath "$1") || die "no such script $1"; shift
    [ -f "$script" ] || die "no such script $script"
    # The guest covers /tmp, /run and /var/tmp with tmpfs; the repository is
    # shared on its own (below), so only scripts outside it are out of sight.
    case "$script" in
      "$repo"/*) ;;
      /tmp/* | /run/* | /var/tmp/*) die "the guest cannot see the host's ${script%/*} (a tmpfs covers it there): put $script elsewhere" ;;
    esac
  fi
  prepare
  command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not found"
  [ -c /dev/net/tun ] || skip "no /dev/net/tun (taps are needed for the NICs)"
  probe_accel

  local id; id="$(date +%Y%m%d-%H%M%S)-$$"
  run="$lab/runs/$id"
  mkdir -p "$run"
  : > "$run/output"
  trap cleanup EXIT
  trap 'interrupted=1; exit 130' INT
  trap 'interrupted=1; exit 143' TERM
  trap 'interrupted=1; exit 129' HUP
  netns="vmlab-$$-$RANDOM"
  ip netns add "$netns" 2>/dev/null || skip "cannot create a network namespace"
  ip -n "$netns" link set lo up
  [ "$bridge" = 1 ] && { ip -n "$netns" link add vlbr type bridge && ip -n "$netns" link set vlbr up; }

  # job.sh: what the guest runs in the chroot.
  {
    echo "cd $(printf %q "$repo") || exit $LABERR"
    # The tests' and benchmarks' knobs pass through: VMB_* (benchmark),
    # VMLAB_LONG, VM_STRICT.
    local v
    for v in $(compgen -e | grep -E '^(VMB_[A-Z_]+|VMLAB_LONG|VM_STRICT)$'); do
      printf 'export %s=%q\n' "$v" "${!v}"
    done
    if [ "$mode" = run ]; then
      printf 'exec bash %q' "$script"; [ $# -gt 0 ] && printf ' %q' "$@"; echo
    fi
  } > "$run/job.sh"

  make_qemu "$accel" "$run" "vmlab.nics=$nics vmlab.queues=$queues vmlab.kernel=$kver vmlab.mode=$mode vmlab.repo=$repo"
  [ "$mode" = shell ] && qemu=("${qemu[@]/file:$run\/console.log/mon:stdio}")
  local i tap mac
  for ((i = 0; i < nics; i++)); do
    tap="vt$$n$i"
    ip -n "$netns" tuntap add dev "$tap" mode tap multi_queue || skip "cannot create tap $tap"
    ip -n "$netns" link set "$tap" up
    [ "$bridge" = 1 ] && ip -n "$netns" link set "$tap" master vlbr
    mac=$(printf '52:54:00:a0:%02x:%02x' $(($$ % 256)) "$i")
    qemu+=(-netdev "tap,id=n$i,ifname=$tap,script=no,downscript=no,queues=$queues"
      -device "virtio-net-pci,netdev=n$i,mq=on,vectors=$((2 * queues + 2)),mac=$mac${VMLAB_NIC_OPTS:+,$VMLAB_NIC_OPTS}")
  done
  qemu+=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
    -virtfs "local,path=$run,mount_tag=results,security_model=none"
    -virtfs "local,path=$repo,mount_tag=repo,security_model=none,readonly=on,multidevs=remap")

  local t0 t1 t2="" rc
  t0=$(date +%s.%N)
  if [ "$mode" = shell ]; then
    ip netns exec "$netns" "${qemu[@]}"
    rc=$?
    [ "$keep" = 0 ] && rm -rf "$run"
    return $rc
  fi
  # The wrapper shell exits normally with qemu's status (no job-control noise
  # when qemu dies by a signal); qemu itself is killed by its pidfile.
  qemu+=(-pidfile "$run/qemu.pid")
  local deadline=$((SECONDS + timeout_s)) timed_out=0 qrc attempt
  tail -n +1 -s 0.2 -F "$run/output" 2>/dev/null &
  tailpid=$!
  # A guest that dies before the script starts (qemu exits 0 after the
  # guest's panic: multi-threaded TCG now and then breaks the kernel's
  # boot-time code patching, an int3 oops) is booted again, at most twice;
  # nothing of the script has run yet.
  for attempt in 1 2 3; do
    bash -c '"$@"; exit $?' vmlab-qemu ip netns exec "$netns" "${qemu[@]}" > "$run/qemu.log" 2>&1 &
    qpid=$!
    while kill -0 "$qpid" 2>/dev/null; do
      if [ -z "$t2" ] && [ -f "$run/started" ]; then t2=$(date +%s.%N); fi
      if [ $SECONDS -ge $deadline ] && [ $timed_out = 0 ]; then timed_out=1; kill_qemu; fi
      sleep 0.1
    done
    wait "$qpid" 2>/dev/null; qrc=$?; qpid=""
    [ -z "$t2" ] && [ -f "$run/started" ] && t2=$(date +%s.%N)
    if [ "$qrc" = 0 ] && [ $timed_out = 0 ] && [ ! -f "$run/started" ] && [ $attempt -lt 3 ]; then
      mv "$run/console.log" "$run/console.boot$attempt.log"
      log "the guest died while booting (kept console.boot$attempt.log: $(grep -m1 -o 'Kernel panic.*\|Oops.*' "$run/console.boot$attempt.log" || echo 'no panic line')); booting again"
      t0=$(date +%s.%N)
      continue
    fi
    break
  done
  sleep 0.3; kill "$tailpid" 2>/dev/null; wait "$tailpid" 2>/dev/null; tailpid=""
  t1=$(date +%s.%N)
  if [ -s "$run/rc" ]; then
    rc=$(tr -dc 0-9 < "$run/rc")
    log "$(basename "$script"): exit $rc; boot to script $(awk -v a="$t0" -v b="$t2" 'BEGIN{printf "%.1f", b-a}') s (guest uptime $(cat "$run/started" 2>/dev/null) s), total $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s ($accel)"
  elif [ -z "$t2" ] && [ "$qrc" != 0 ] && ! grep -q VMLAB-INIT-UP "$run/console.log" 2>/dev/null && [ $timed_out = 0 ]; then
    log "qemu exited ($qrc) before the guest started:"; tail -n 5 "$run/qemu.log" "$run/console.log" >&2
    rc=$SKIP; log "SKIP: qemu cannot run here"
  else
    rc=$LABERR
    if [ $timed_out = 1 ]; then log "timeout after ${timeout_s}s: VM killed"; fi
    log "the guest reported no exit code (qemu $qrc); last console lines:"
    tail -20 "$run/console.log" >&2
  fi
  if [ -n "$out" ] && [ -d "$run/out" ]; then
    mkdir -p "$out" && cp -r "$run/out/." "$out/" || log "could not copy $run/out to $out"
  fi
  if [ "$rc" = 0 ] && [ "$keep" = 0 ] && ! ls "$run"/console.boot*.log >/dev/null 2>&1; then
    rm -rf "$run"
  else
    log "run directory kept: $run (console.log, output)"
  fi
  return "$rc"
}

case "${1:-}" in
  prepare) prepare; log "ready: $kdir (accelerator probe on first run)" ;;
  run) shift; boot_and_run run "$@"; exit $? ;;
  shell) shift; boot_and_run shell "$@"; exit $? ;;
  clean) rm -rf "$lab" ;;
  *) sed -n '2,/^set -uo/p' "$self" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
exit 0

# The guest's /init (busybox sh), extracted into the initramfs by build_initramfs.
# ---- guest init ----
#!/bin/busybox sh
export PATH=/bin
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "VMLAB-INIT-UP $(cut -d' ' -f1 /proc/uptime)" > /dev/console
arg() { for w in $(cat /proc/cmdline); do case "$w" in vmlab.$1=*) echo "${w#*=}" ;; esac; done; }
if grep -q vmlab.probe /proc/cmdline; then
  echo VMLAB-PROBE-OK > /dev/console
  poweroff -f
fi
for m in $(cat /lib/modules/order); do
  opt=""
  [ "$m" = bonding ] && opt="max_bonds=0"
  insmod /lib/modules/$m.ko $opt || echo "vmlab-init: insmod $m failed" > /dev/console
done
R=/mnt
fail() {
  echo "vmlab-init: $*" > /dev/console
  [ -d $R/run/vmlab/results ] && echo 125 > $R/run/vmlab/results/rc
  poweroff -f
}
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot $R || fail "cannot mount hostroot"
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp
# A repository under /tmp, /run or /var/tmp (a CI clone) is hidden by those
# tmpfs: it comes in over its own share, at the same path.
repo=$(arg repo)
case "$repo" in
  /tmp/* | /run/* | /var/tmp/*)
    mkdir -p "$R$repo"
    mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose repo "$R$repo" || fail "cannot mount the repository"
    ;;
esac
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm $R/run/vmlab/results $R/run/netns $R/run/lock
mount -t devpts -o ptmxmode=0666 devpts $R/dev/pts
ln -sf /proc/self/fd $R/dev/fd; ln -sf fd/0 $R/dev/stdin; ln -sf fd/1 $R/dev/stdout; ln -sf fd/2 $R/dev/stderr
[ -e $R/dev/ptmx ] || ln -sf pts/ptmx $R/dev/ptmx
mount -t tmpfs tmpfs $R/dev/shm
mount -t bpf bpf $R/sys/fs/bpf
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 results $R/run/vmlab/results || fail "cannot mount results"
hostname vmlab
ip link set lo up
ulimit -l unlimited
ulimit -n 65536
cut -d' ' -f1 /proc/uptime > $R/run/vmlab/results/started
env="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp TERM=dumb LANG=C.UTF-8
 VMLAB=1 VMLAB_RESULTS=/run/vmlab/results VMLAB_NICS=$(arg nics) VMLAB_QUEUES=$(arg queues)
 VMLAB_KERNEL=$(arg kernel)"
if [ "$(arg mode)" = shell ]; then
  echo "vmlab: shell in the host's userland (exit to power off)" > /dev/console
  setsid cttyhack chroot $R /usr/bin/env -i $env /bin/bash -c 'cd /; exec bash -i' < /dev/console > /dev/console 2>&1
  poweroff -f
fi
chroot $R /usr/bin/env -i $env /bin/bash /run/vmlab/results/job.sh < /dev/null > $R/run/vmlab/results/output 2>&1
rc=$?
echo $rc > $R/run/vmlab/results/rc
sync
umount $R/run/vmlab/results
poweroff -f
# ---- end guest init ----
