//! Raw AF_PACKET sockets bound to one interface, for what is not the AF_XDP
//! data path:
//!
//! - the frames the bond sends itself on a slave (gratuitous ARPs, unsolicited
//!   NAs, ARP/NS monitor probes, ALB learning frames, LACPDUs and Marker PDUs);
//! - in 802.3ad, the slow-protocol frames that the XDP program passes to the
//!   kernel, read on one socket per slave;
//! - [`Membership`]s, which hand the bond's receive filters (promiscuous,
//!   all-multicast, multicast addresses) down to a slave;
//! - `xbond pktgen`'s `af_packet` engine, which sends and captures test
//!   frames.
//!
//! [`PacketSocket::recv`] waits with [`crate::sys::poll`].

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use crate::error::{Error, Result};

/// EtherType that captures every frame.
pub const ETH_P_ALL: u16 = 0x0003;

/// What an AF_PACKET membership asks of its device. Memberships are counted
/// by the kernel and dropped when the socket closes, also when the process
/// dies: a filter passed down this way never outlives the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Membership {
    /// Promiscuous mode (PACKET_MR_PROMISC).
    Promisc,
    /// All multicast (PACKET_MR_ALLMULTI).
    AllMulti,
    /// One multicast address in the device's filter (PACKET_MR_MULTICAST).
    Multicast([u8; 6]),
    /// One secondary unicast address in the device's filter
    /// (PACKET_MR_UNICAST).
    Unicast([u8; 6]),
}

/// `PACKET_MR_UNICAST` (linux/if_packet.h), which libc does not name.
const PACKET_MR_UNICAST: libc::c_int = 3;

/// An AF_PACKET (SOCK_RAW) socket bound to one interface and EtherType.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    iface: String,
    ifindex: i32,
}

fn ifindex_of(iface: &str) -> Result<i32> {
    let name = CString::new(iface).map_err(|_| Error::NoSuchInterface(iface.to_string()))?;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        return Err(Error::NoSuchInterface(iface.to_string()));
    }
    i32::try_from(idx).map_err(|_| Error::NoSuchInterface(iface.to_string()))
}

impl PacketSocket {
    /// Opens a socket on `iface` that receives frames of `ethertype` (host
    /// order; [`ETH_P_ALL`] for all) and can send any frame.
    pub fn open(iface: &str, ethertype: u16) -> Result<PacketSocket> {
        let ifindex = ifindex_of(iface)?;
        let proto = ethertype.to_be();
        // SAFETY: plain socket(2) call with constant arguments.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(proto),
            )
        };
        if raw < 0 {
            return Err(Error::sys(
                "socket(AF_PACKET)",
                iface,
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(Error::sys(
                "bind(AF_PACKET)",
                iface,
                io::Error::last_os_error(),
            ));
        }
        Ok(PacketSocket {
            fd,
            iface: iface.to_string(),
            ifindex,
        })
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The interface index.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// Sends one whole Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> Result<()> {
        // SAFETY: the pointer and length describe the live slice `frame`.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(Error::sys(
                "send(AF_PACKET)",
                &self.iface,
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Receives one frame into `buf`, waiting at most `timeout`. Returns the
    /// frame length, or `None` on timeout. Frames this host sent on the
    /// interface (PACKET_OUTGOING) are skipped.
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> Result<Option<usize>> {
        Ok(self.recv_stamped(buf, timeout)?.map(|(n, _)| n))
    }

    /// Has the kernel stamp each received frame with its arrival time
    /// (SO_TIMESTAMPNS), for [`PacketSocket::recv_stamped`].
    pub fn enable_timestamps(&self) -> Result<()> {
        self.set_socket_option(libc::SO_TIMESTAMPNS, 1, "setsockopt(SO_TIMESTAMPNS)")
    }

    /// Sets the SOL_SOCKET option `name` to `value`; `what` names the call
    /// in an error.
    fn set_socket_option(
        &self,
        name: libc::c_int,
        value: libc::c_int,
        what: &'static str,
    ) -> Result<()> {
        // SAFETY: the option value is a live c_int and the length is its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(Error::sys(what, &self.iface, io::Error::last_os_error()));
        }
        Ok(())
    }

    /// As [`PacketSocket::recv`], with the kernel's arrival time of the
    /// frame in nanoseconds since the Unix epoch (CLOCK_REALTIME, taken when
    /// the frame reached the socket, not when it was read), once
    /// [`PacketSocket::enable_timestamps`] was called.
    pub fn recv_stamped(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<Option<(usize, Option<u64>)>> {
        if crate::sys::poll(&[self.fd.as_raw_fd()], timeout, &self.iface)? == 0 {
            return Ok(None);
        }
        // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // Room for one SCM_TIMESTAMPNS message, u64-aligned as cmsghdr needs.
        let mut control = [0u64; 8];
        // SAFETY: msghdr is plain old data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `msg` points at live buffers of the lengths it gives:
        // `from`, `iov` over `buf`, and `control`.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(None);
            }
            return Err(Error::sys("recvmsg(AF_PACKET)", &self.iface, e));
        }
        if from.sll_pkttype == libc::PACKET_OUTGOING {
            return Ok(Some((0, None)));
        }
        let mut stamp = None;
        // SAFETY: `msg` was filled by recvmsg; CMSG_FIRSTHDR and CMSG_NXTHDR
        // stay within its control buffer and return null past its end.
        let mut c = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !c.is_null() {
            // SAFETY: `c` is non-null and points at a cmsghdr inside
            // `control`, which recvmsg wrote.
            let h = unsafe { &*c };
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SCM_TIMESTAMPNS {
                // SAFETY: an SCM_TIMESTAMPNS message carries one timespec;
                // CMSG_DATA points at it (unaligned reads are allowed).
                let ts = unsafe {
                    std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>())
                };
                stamp = u64::try_from(ts.tv_sec)
                    .ok()
                    .zip(u64::try_from(ts.tv_nsec).ok())
                    .and_then(|(s, ns)| s.checked_mul(1_000_000_000)?.checked_add(ns));
            }
            // SAFETY: as above; `c` is a header of `msg`'s control buffer.
            c = unsafe { libc::CMSG_NXTHDR(&msg, c) };
        }
        Ok(Some((n as usize, stamp)))
    }

    /// Sets the receive buffer to `bytes` (SO_RCVBUFFORCE, past
    /// `rmem_max`; needs CAP_NET_ADMIN), so that a reader that is late by a
    /// few milliseconds loses nothing.
    pub fn set_rcvbuf(&self, bytes: i32) -> Result<()> {
        self.set_socket_option(libc::SO_RCVBUFFORCE, bytes, "setsockopt(SO_RCVBUFFORCE)")
    }

    /// Frames the kernel dropped because the socket's buffer was full, since
    /// the last call (PACKET_STATISTICS).
    pub fn take_drops(&self) -> Result<u64> {
        let mut st = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` is a live tpacket_stats and `len` its size.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if rc < 0 {
            return Err(Error::sys(
                "getsockopt(PACKET_STATISTICS)",
                &self.iface,
                io::Error::last_os_error(),
            ));
        }
        Ok(u64::from(st.tp_drops))
    }

    /// Adds (`on`) or drops a membership on the socket's interface.
    pub fn set_membership(&self, m: Membership, on: bool) -> Result<()> {
        let (kind, addr) = match m {
            Membership::Promisc => (libc::PACKET_MR_PROMISC, None),
            Membership::AllMulti => (libc::PACKET_MR_ALLMULTI, None),
            Membership::Multicast(a) => (libc::PACKET_MR_MULTICAST, Some(a)),
            Membership::Unicast(a) => (PACKET_MR_UNICAST, Some(a)),
        };
        let mut mr = libc::packet_mreq {
            mr_ifindex: self.ifindex,
            mr_type: kind as u16,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        if let Some(a) = addr {
            mr.mr_alen = 6;
            mr.mr_address[..6].copy_from_slice(&a);
        }
        let op = if on {
            libc::PACKET_ADD_MEMBERSHIP
        } else {
            libc::PACKET_DROP_MEMBERSHIP
        };
        // SAFETY: `mr` is a valid packet_mreq and the length is its size.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                op,
                (&mr as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(Error::sys(
                if on {
                    "setsockopt(PACKET_ADD_MEMBERSHIP)"
                } else {
                    "setsockopt(PACKET_DROP_MEMBERSHIP)"
                },
                &self.iface,
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// The raw descriptor.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
