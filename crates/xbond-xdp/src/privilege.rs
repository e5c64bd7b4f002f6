//! Least privilege, per thread (capabilities and scheduling policy are
//! per-thread on Linux): once set up, the control thread keeps only the
//! capabilities its work at run time needs ([`RUNTIME`]), every other
//! thread of xbond's keeps none and runs at normal priority
//! ([`plain_thread`]), and the daemon's main thread drops everything
//! ([`drop_all`]).

use caps::{CapSet, Capability, CapsHashSet};

/// What the control thread keeps after set-up, and why:
///
/// - `CAP_NET_ADMIN`: links up and down, MACs, MTUs, offloads (netlink,
///   ethtool), and attaching and detaching XDP programs, also at exit when
///   the host is put back.
/// - `CAP_NET_RAW`: the AF_PACKET sockets of peer notification and the
///   receive filters, and AF_XDP sockets when a slave rejoins.
/// - `CAP_BPF`: loading a slave's XDP program when it rejoins (kernels
///   before 5.8 have no CAP_BPF: `CAP_SYS_ADMIN` is kept instead).
/// - `CAP_IPC_LOCK`: pinning a rejoining slave's UMEM beyond
///   RLIMIT_MEMLOCK.
pub const RUNTIME: &[Capability] = &[
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_BPF,
    Capability::CAP_IPC_LOCK,
];

/// The capabilities that [`keep`] keeps on this kernel: [`RUNTIME`], with
/// `CAP_SYS_ADMIN` for `CAP_BPF` where the kernel does not know CAP_BPF.
pub fn runtime_set() -> CapsHashSet {
    let known = caps::runtime::thread_all_supported();
    RUNTIME
        .iter()
        .map(|&c| {
            if c == Capability::CAP_BPF && !known.contains(&c) {
                Capability::CAP_SYS_ADMIN
            } else {
                c
            }
        })
        .collect()
}

/// Limits the calling thread to `keep` (those of them it has): the bounding
/// set first (while CAP_SETPCAP is still there), then permitted and
/// effective; inheritable and ambient are emptied. A thread that had none
/// of them to lose succeeds.
pub fn keep(keep: &CapsHashSet) -> Result<(), caps::errors::CapsError> {
    let bounding = caps::read(None, CapSet::Bounding)?;
    for c in bounding.difference(keep) {
        // Needs CAP_SETPCAP; a thread without it has a bounding set that
        // the permitted set below cannot exceed anyway.
        if caps::drop(None, CapSet::Bounding, *c).is_err() {
            break;
        }
    }
    let permitted = caps::read(None, CapSet::Permitted)?;
    let kept: CapsHashSet = permitted.intersection(keep).copied().collect();
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::set(None, CapSet::Effective, &kept)?;
    caps::set(None, CapSet::Permitted, &kept)
}

/// Drops every capability of the calling thread.
pub fn drop_all() -> Result<(), caps::errors::CapsError> {
    keep(&CapsHashSet::new())
}

/// Makes the calling thread, one of xbond's helpers (a worker, the control
/// socket's, the notifier), an ordinary thread: normal scheduling (a thread
/// started by the real-time control thread inherits SCHED_FIFO) and no
/// capabilities. Failures are logged; the thread goes on.
pub fn plain_thread() {
    if let Err(e) = crate::sys::set_normal_priority() {
        tracing::warn!("a helper thread keeps its scheduling policy: {e}");
    }
    if let Err(e) = drop_all() {
        tracing::warn!("a helper thread keeps its capabilities: {e}");
    }
}
