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

/// Kicks an AF_XDP socket's TX ring (sendto with no data). Returns the errno
/// when the kernel reports that a frame could not be sent: EBUSY (the device
/// dropped it, e.g. no carrier) or ENETDOWN/ENXIO (device down or gone).
/// EAGAIN and ENOBUFS (ring busy) are not failures.
pub fn kick_tx(fd: RawFd) -> Option<i32> {
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
        return None;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(e @ (libc::EBUSY | libc::ENETDOWN | libc::ENXIO)) => Some(e),
        _ => None,
    }
}
