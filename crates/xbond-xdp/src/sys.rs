//! Small process-level settings that need libc.

use std::io;

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

/// Waits up to `timeout_ms` for any of `fds` to become readable. EINTR and
/// errors count as a wake-up; the caller looks at its rings either way.
pub fn poll_readable(fds: &[RawFd], timeout_ms: i32) {
    let mut pfd = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; 32];
    let n = fds.len().min(pfd.len());
    for (p, fd) in pfd.iter_mut().zip(fds) {
        p.fd = *fd;
    }
    // SAFETY: `pfd[..n]` is a valid array of pollfds of length `n`.
    unsafe { libc::poll(pfd.as_mut_ptr(), n as libc::nfds_t, timeout_ms) };
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
