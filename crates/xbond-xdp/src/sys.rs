//! The libc calls the rest of the crate needs: SCHED_FIFO for the control
//! thread, CPU affinity for the workers, the eventfd [`Waker`], the AF_XDP
//! TX kick, the one poll(2) wrapper, SO_PEERCRED and umask.

use std::io;
use std::time::Duration;

use crate::error::{Error, Result};

/// Gives the calling thread real-time priority (SCHED_FIFO at `priority`), so
/// that link events are acted on at once even while busy-polling workers
/// occupy every core. The kernel bond's link monitor runs in kernel context
/// with the same effect.
pub fn set_realtime(priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param; pid 0 means the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Gives the calling thread normal scheduling (SCHED_OTHER), as a thread
/// started by the real-time control thread must not keep SCHED_FIFO.
pub fn set_normal_priority() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 means the calling thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread into the network namespace at `path` (e.g.
/// `/run/netns/NAME`); threads it starts afterwards are born there. For
/// tests and labs that run a bond in-process inside a namespace.
pub fn enter_netns(path: &std::path::Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(path)?;
    // SAFETY: `ns` is an open namespace file for the call's duration;
    // setns(2) changes only the calling thread's namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The CPUs the calling thread may run on (sched_getaffinity), in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below CPU_SETSIZE, the set's capacity.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

/// Sets the calling thread's timer slack (PR_SET_TIMERSLACK): how much
/// later than asked the kernel may end its timed sleeps, to group wake-ups.
pub fn set_timer_slack(slack: Duration) -> io::Result<()> {
    let ns = libc::c_ulong::try_from(slack.as_nanos().max(1)).unwrap_or(libc::c_ulong::MAX);
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and changes only
    // the calling thread.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Pins the calling thread to `cpu` (sched_setaffinity).
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` was checked to be below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a live cpu_set_t of the size passed; pid 0 is the
    // calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// An eventfd that worker threads use to wake the control loop (e.g. when a
/// slave's TX fails, a hint that its carrier went away).
#[derive(Debug)]
pub struct Waker {
    fd: OwnedFd,
}

impl Waker {
    /// A new, unsignalled waker.
    pub fn new() -> io::Result<Waker> {
        // SAFETY: plain eventfd(2) call with constant flags.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Waker { fd })
    }

    /// Signals the waker. Never blocks.
    pub fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd. A full counter
        // (EAGAIN) already means "signalled".
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears the signal; returns whether it was set.
    pub fn clear(&self) -> bool {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        n == 8 && v > 0
    }

    /// The descriptor, to wait on with poll().
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// What a TX kick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The kernel took what was on the ring.
    Done,
    /// Descriptors remain (copy mode sends at most 32 per call) or the
    /// device is busy: kick again.
    Again,
    /// The device dropped a frame (EBUSY) or is down or gone (ENETDOWN,
    /// ENXIO): a hint that its carrier went away.
    Failed(i32),
}

/// Kicks an AF_XDP socket's TX ring (sendto with no data).
pub fn kick_tx(fd: RawFd) -> Kick {
    // SAFETY: a zero-length sendto with null buffers is the documented AF_XDP
    // TX kick; no memory is read or written.
    let rc = unsafe {
        libc::sendto(
            fd,
            std::ptr::null(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null(),
            0,
        )
    };
    if rc >= 0 {
        return Kick::Done;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(e @ (libc::EBUSY | libc::ENETDOWN | libc::ENXIO)) => Kick::Failed(e),
        Some(libc::EAGAIN | libc::ENOBUFS) => Kick::Again,
        _ => Kick::Done,
    }
}

/// Waits up to `timeout` for any of `fds` to become readable: poll(2) with
/// POLLIN on each. Returns how many are ready; 0 after a timeout or when a
/// signal interrupted the wait (EINTR), so callers look again rather than
/// fail. `iface` is what the descriptors serve, for the error ("-" for
/// none). The timeout is rounded up to whole milliseconds: waking before the
/// deadline would make a caller spin. Up to 32 descriptors need no
/// allocation.
pub fn poll(fds: &[RawFd], timeout: Duration, iface: &str) -> Result<usize> {
    const EMPTY: libc::pollfd = libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    };
    let mut on_stack = [EMPTY; 32];
    let mut on_heap = Vec::new();
    let pfd: &mut [libc::pollfd] = if fds.len() <= on_stack.len() {
        &mut on_stack[..fds.len()]
    } else {
        on_heap.resize(fds.len(), EMPTY);
        &mut on_heap
    };
    for (p, fd) in pfd.iter_mut().zip(fds) {
        p.fd = *fd;
    }
    let ms = i32::try_from(timeout.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
    // SAFETY: `pfd` is a live, writable slice of initialised pollfds and the
    // count passed is its length; poll(2) writes only their `revents`. A bad
    // descriptor in it is reported in `revents` (POLLNVAL), not undefined.
    let rc = unsafe { libc::poll(pfd.as_mut_ptr(), pfd.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(Error::sys("poll", iface, e));
    }
    Ok(rc as usize)
}

/// The credentials of the process at the other end of a unix socket
/// (SO_PEERCRED), as the kernel recorded them at connect time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Process id.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// Reads SO_PEERCRED of a connected unix socket.
pub fn peer_cred(fd: RawFd) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable ucred and `len` its size, as
    // getsockopt(SO_PEERCRED) requires; a bad fd only makes it fail.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(PeerCred {
        pid: cred.pid,
        uid: cred.uid,
        gid: cred.gid,
    })
}

/// Runs `f` with the process umask set to `mask`, then restores it: a file
/// (a unix socket) made by `f` never exists with looser permissions.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask only swaps the process's file mode mask; it cannot fail.
    let old = unsafe { libc::umask(mask as libc::mode_t) };
    let r = f();
    // SAFETY: as above, restoring the previous mask.
    unsafe { libc::umask(old) };
    r
}

/// The running kernel's release (`uname -r`), or "unknown".
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_reports_the_ready_descriptors_also_past_the_stack_array() {
        let w = Waker::new().unwrap();
        assert_eq!(poll(&[w.fd()], Duration::ZERO, "-").unwrap(), 0);
        w.wake();
        assert_eq!(poll(&[w.fd()], Duration::from_secs(5), "-").unwrap(), 1);
        assert_eq!(poll(&[w.fd(); 40], Duration::ZERO, "-").unwrap(), 40);
        assert!(w.clear());
        assert_eq!(poll(&[w.fd(); 40], Duration::ZERO, "-").unwrap(), 0);
    }

    #[test]
    fn a_failed_poll_names_the_call() {
        // More descriptors than RLIMIT_NOFILE allows: EINVAL.
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `lim` is a writable rlimit, as getrlimit(2) requires.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        let Some(n) = usize::try_from(lim.rlim_cur.saturating_add(1))
            .ok()
            .filter(|n| *n <= 1 << 22)
        else {
            return; // A limit too large to exceed here.
        };
        let e = poll(&vec![-1; n], Duration::ZERO, "eth9").unwrap_err();
        assert!(e.to_string().starts_with("poll on eth9: "), "{e}");
    }
}
