//! AF_XDP sockets and their UMEM (xsk-rs), as the core's
//! [`Port`] and [`Frames`]: the one place where a UMEM is made and a socket
//! bound, used by the workers and by the traffic generator.
//!
//! A frame is an [`XdpFrame`], a descriptor the holder owns: it is made only
//! by taking frames from a ring or from a fresh UMEM, is not `Clone`, and is
//! given up by placing it on a ring. While it exists neither the kernel nor
//! another ring holds that frame, which is what makes reading and writing its
//! bytes through [`UmemFrames`] sound.
//!
//! A frame longer than one buffer ([`BUFFER_SIZE`] bytes: jumbo frames) is a
//! chain of buffers (AF_XDP multi-buffer, `XDP_USE_SG`): the RX ring hands it
//! over as descriptors marked `XDP_PKT_CONTD` but the last, and the TX ring
//! takes it the same way. Sockets are bound with `XDP_USE_SG` where the
//! kernel (6.6 and later) and, in zero-copy, the driver have it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use xbond_core::datapath::pool::{Buffers, FramePool};
use xbond_core::datapath::{Frames, Kick, Port};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::error::{Error, Result};
use crate::sys::{kick_tx, Kick as SysKick};

/// Size of every ring (fill, completion, RX, TX).
pub const RING_SIZE: u32 = 2048;
/// Size of one UMEM frame.
pub const FRAME_SIZE: u32 = 2048;
/// Bytes of a frame one UMEM buffer holds: the frame less the headroom the
/// kernel keeps for XDP (`XDP_PACKET_HEADROOM`).
pub const BUFFER_SIZE: usize = FRAME_SIZE as usize - 256;
/// Most buffers a multi-buffer frame may span: the kernel builds at most
/// `MAX_SKB_FRAGS` (17) fragments, and xbond keeps one in hand.
pub const MAX_BUFFERS: usize = 16;
/// The longest frame a socket with multi-buffer carries.
pub const MAX_MULTI_BUFFER_FRAME: usize = MAX_BUFFERS * BUFFER_SIZE;
/// `XDP_PKT_CONTD`: more buffers of this frame follow.
const XDP_PKT_CONTD: u32 = 1;

/// The AF_XDP bind mode a socket got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Zero-copy (the driver DMAs into the UMEM).
    ZeroCopy,
    /// Copy mode (the kernel copies frames in and out).
    Copy,
}

impl BindMode {
    /// "zero-copy" or "copy".
    pub fn as_str(self) -> &'static str {
        match self {
            BindMode::ZeroCopy => "zero-copy",
            BindMode::Copy => "copy",
        }
    }
}

/// A UMEM frame the holder owns (see the module comment): one buffer, or a
/// chain of them, in one of the worker's UMEMs (its region).
#[derive(Debug)]
pub struct XdpFrame {
    head: FrameDesc,
    /// The further buffers of a multi-buffer frame, in order.
    more: Vec<FrameDesc>,
    /// Which of the worker's UMEMs ([`UmemFrames`]) the buffers are in.
    region: u8,
}

impl XdpFrame {
    fn one(head: FrameDesc, region: u8) -> XdpFrame {
        XdpFrame {
            head,
            more: Vec::new(),
            region,
        }
    }

    /// The descriptors of the frame's buffers, in order.
    fn descs(&self) -> impl Iterator<Item = &FrameDesc> {
        std::iter::once(&self.head).chain(self.more.iter())
    }
}

impl Buffers for XdpFrame {
    #[inline]
    fn buffers(&self) -> usize {
        1 + self.more.len()
    }

    fn unchain(self, out: &mut Vec<XdpFrame>) {
        let r = self.region;
        out.push(XdpFrame::one(self.head, r));
        out.extend(self.more.into_iter().map(|d| XdpFrame::one(d, r)));
    }

    #[inline]
    fn region(&self) -> usize {
        usize::from(self.region)
    }
}

fn sock_err(op: &'static str, name: &str, e: impl std::fmt::Display) -> Error {
    Error::sys(op, name, std::io::Error::other(e.to_string()))
}

/// Makes a UMEM of `frames` frames of [`FRAME_SIZE`] bytes for sockets on
/// `name`, region `region` of its worker's memory; returns it with all its
/// frames.
pub fn create_umem(name: &str, frames: u32, region: u8) -> Result<(Umem, Vec<XdpFrame>)> {
    let ring = QueueSize::new(RING_SIZE).map_err(|e| sock_err("ring size", name, e))?;
    let cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| sock_err("frame size", name, e))?)
        .fill_queue_size(ring)
        .comp_queue_size(ring)
        .build()
        .map_err(|e| sock_err("UMEM config", name, e))?;
    let count =
        std::num::NonZeroU32::new(frames).ok_or_else(|| Error::Unsupported("no frames".into()))?;
    let (umem, descs) = Umem::new(cfg, count, false)
        .map_err(|e| sock_err("create UMEM (XDP_UMEM_REG)", name, e))?;
    // Fresh frames: nothing but this list holds them.
    Ok((
        umem,
        descs
            .into_iter()
            .map(|d| XdpFrame::one(d, region))
            .collect(),
    ))
}

/// The frame memory of one worker: one UMEM shared by all its sockets, or
/// (the zero-copy layout) one per socket, each a region.
#[derive(Debug, Clone)]
pub struct UmemFrames {
    umems: Vec<Umem>,
}

impl UmemFrames {
    /// The frame memory of `umem` alone (region 0).
    pub fn new(umem: Umem) -> UmemFrames {
        UmemFrames { umems: vec![umem] }
    }

    /// The frame memory of `umems`, region i being `umems[i]`.
    pub fn regions(umems: Vec<Umem>) -> UmemFrames {
        UmemFrames { umems }
    }

    /// The UMEM of region 0, to bind sockets to.
    pub fn umem(&self) -> &Umem {
        &self.umems[0]
    }

    fn umem_of(&self, region: u8) -> &Umem {
        let last = self.umems.len() - 1;
        &self.umems[usize::from(region).min(last)]
    }

    fn buffer<'a>(&'a self, desc: &'a FrameDesc, region: u8) -> &'a [u8] {
        // SAFETY: `desc` is a buffer of a frame the caller owns (an XdpFrame
        // exists only while no ring holds it), in the UMEM of its region, so
        // the kernel does not write it meanwhile.
        unsafe { self.umem_of(region).data(desc) }.contents()
    }

    fn write_buffer(&self, desc: &mut FrameDesc, region: u8, bytes: &[u8]) -> bool {
        // SAFETY: as in `buffer`; the `&mut` makes this the only view.
        let mut data = unsafe { self.umem_of(region).data_mut(desc) };
        let mut cur = data.cursor();
        // The cursor starts at the frame's previous length; the content at 0.
        cur.set_pos(0);
        std::io::Write::write_all(&mut cur, bytes).is_ok()
    }

    /// Makes `bytes` a frame in buffers taken from the end of `free`, a
    /// chain when they need more than one ([`MAX_BUFFERS`] at most); `None`
    /// (nothing taken) when there are not enough.
    pub fn write_chain(&self, free: &mut Vec<XdpFrame>, bytes: &[u8]) -> Option<XdpFrame> {
        let n = bytes.len().div_ceil(BUFFER_SIZE).max(1);
        if n > MAX_BUFFERS || n > free.len() {
            return None;
        }
        let mut parts = free.split_off(free.len() - n).into_iter();
        let mut chunks = bytes.chunks(BUFFER_SIZE);
        let mut frame = parts.next()?;
        let r = frame.region;
        self.write_buffer(&mut frame.head, r, chunks.next().unwrap_or(&[]));
        for (mut part, c) in parts.zip(chunks) {
            // One region: the spare buffers are the port's own.
            self.write_buffer(&mut part.head, part.region, c);
            frame.more.push(part.head);
        }
        Some(frame)
    }

    /// Appends the bytes of every buffer of `frame` to `out`.
    pub fn gather(&self, frame: &XdpFrame, out: &mut Vec<u8>) {
        for d in frame.descs() {
            out.extend_from_slice(self.buffer(d, frame.region));
        }
    }
}

impl Frames for UmemFrames {
    type Frame = XdpFrame;

    fn bytes<'a>(&'a self, frame: &'a XdpFrame) -> &'a [u8] {
        self.buffer(&frame.head, frame.region)
    }

    fn len(&self, frame: &XdpFrame) -> usize {
        frame.descs().map(|d| d.lengths().data()).sum()
    }

    fn edit(&self, frame: &mut XdpFrame, edit: impl FnOnce(&mut [u8])) {
        // SAFETY: the frame is owned by the caller (see `buffer`); the `&mut`
        // makes this the only view.
        let mut data = unsafe { self.umem_of(frame.region).data_mut(&mut frame.head) };
        edit(data.contents_mut());
    }

    fn write(&self, frame: &mut XdpFrame, bytes: &[u8]) -> bool {
        frame.more.is_empty() && self.write_buffer(&mut frame.head, frame.region, bytes)
    }

    fn copy(&self, from: &XdpFrame, pool: &mut FramePool<XdpFrame>) -> Option<XdpFrame> {
        let mut to = pool.alloc()?;
        if !self.write(&mut to, self.bytes(from)) {
            pool.free(to);
            return None;
        }
        for d in &from.more {
            let Some(mut part) = pool.alloc() else {
                pool.free(to);
                return None;
            };
            let r = part.region;
            self.write_buffer(&mut part.head, r, self.buffer(d, from.region));
            to.more.push(part.head);
        }
        Some(to)
    }
}

/// The kernel's counters of one AF_XDP socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Frames the kernel dropped for this socket (no fill buffer in time,
    /// among other reasons).
    pub rx_dropped: u64,
    /// Frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was found empty.
    pub fill_ring_empty: u64,
    /// Invalid descriptors on the RX side (fill ring).
    pub rx_invalid: u64,
    /// Invalid descriptors the TX ring held.
    pub tx_invalid: u64,
}

/// A handle that reads a socket's kernel counters from another thread: a
/// duplicate of its descriptor, which keeps the socket open as long as it
/// lives.
#[derive(Debug)]
pub struct StatsHandle {
    fd: OwnedFd,
}

impl StatsHandle {
    /// The socket's counters now.
    pub fn read(&self) -> std::io::Result<SocketStats> {
        socket_stats(self.fd.as_fd())
    }
}

/// Reads `XDP_STATISTICS` of the AF_XDP socket `fd`.
pub fn socket_stats(fd: BorrowedFd<'_>) -> std::io::Result<SocketStats> {
    // SAFETY: xdp_statistics is plain integers, for which all zeros is a
    // valid value.
    let mut st: libc::xdp_statistics = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket for the call; `st` is writable and
    // `len` holds its size, which the kernel does not exceed.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_STATISTICS,
            (&mut st as *mut libc::xdp_statistics).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(SocketStats {
        rx_dropped: st.rx_dropped,
        rx_ring_full: st.rx_ring_full,
        fill_ring_empty: st.rx_fill_ring_empty_descs,
        rx_invalid: st.rx_invalid_descs,
        tx_invalid: st.tx_invalid_descs,
    })
}

/// One AF_XDP socket (queue `queue` of an interface) as a [`Port`].
pub struct XdpPort {
    name: String,
    queue: u32,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    scratch: Vec<FrameDesc>,
    /// Bound with `XDP_USE_SG`: carries multi-buffer frames.
    multi_buffer: bool,
    /// A chain whose last buffers the RX ring has not handed over yet.
    partial: Option<XdpFrame>,
    /// The region of the worker's memory its UMEM is.
    region: u8,
}

impl std::fmt::Debug for XdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpPort")
            .field("name", &self.name)
            .field("queue", &self.queue)
            .finish()
    }
}

impl XdpPort {
    /// Binds a socket on queue `queue` of `name` to `umem` (region `region`
    /// of its worker's memory), in `mode`, with `XDP_USE_SG` when
    /// `multi_buffer`.
    pub fn bind(
        umem: &Umem,
        region: u8,
        name: &str,
        queue: u32,
        mode: BindMode,
        multi_buffer: bool,
    ) -> Result<XdpPort> {
        let ring = QueueSize::new(RING_SIZE).map_err(|e| sock_err("ring size", name, e))?;
        let mut bind = match mode {
            BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY | BindFlags::XDP_USE_NEED_WAKEUP,
            BindMode::Copy => BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP,
        };
        if multi_buffer {
            bind |= BindFlags::XDP_USE_SG;
        }
        let cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();
        let ifc: Interface = name
            .parse()
            .map_err(|_| Error::NoSuchInterface(name.to_string()))?;
        // SAFETY: INHIBIT_PROG_LOAD is set, as xsk-rs requires when a UMEM is
        // shared; each (interface, queue) pair is bound once per UMEM.
        let (tx, rx, rings) = unsafe { Socket::new(cfg, umem, &ifc, queue) }.map_err(|e| {
            // Keep the errno: the caller tells "not supported" from the rest.
            let os = std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .and_then(std::io::Error::raw_os_error);
            match os {
                Some(errno) => Error::sys(
                    "bind AF_XDP socket",
                    name,
                    std::io::Error::from_raw_os_error(errno),
                ),
                None => sock_err("bind AF_XDP socket", name, e),
            }
        })?;
        let (fq, cq) = rings.ok_or_else(|| {
            Error::Unsupported(format!(
                "{name} queue {queue} is already bound to this UMEM"
            ))
        })?;
        Ok(XdpPort {
            name: name.to_string(),
            queue,
            tx,
            rx,
            fq,
            cq,
            scratch: vec![FrameDesc::default(); RING_SIZE as usize],
            multi_buffer,
            partial: None,
            region,
        })
    }

    /// Whether the socket carries multi-buffer frames.
    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// A handle to read the socket's kernel counters from another thread.
    pub fn stats_handle(&self) -> Result<StatsHandle> {
        // SAFETY: the descriptor is open (the socket lives in `self`); dup
        // makes a new one that the handle owns alone.
        let fd = unsafe { libc::dup(self.fd()) };
        if fd < 0 {
            return Err(Error::sys(
                "dup AF_XDP socket",
                &self.name,
                std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: `fd` was just made by dup and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(StatsHandle { fd })
    }

    /// The socket's descriptor: for the XSKMAP, and to wait on with poll().
    pub fn fd(&self) -> RawFd {
        self.rx.fd().as_raw_fd()
    }

    /// The queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Port for XdpPort {
    type Frame = XdpFrame;

    fn receive(&mut self, out: &mut Vec<XdpFrame>, max: usize) -> usize {
        let max = max.min(self.scratch.len());
        // SAFETY: the RX ring hands over buffers of this UMEM that the kernel
        // has finished writing; from here the caller owns them.
        let n = unsafe { self.rx.consume(&mut self.scratch[..max]) };
        let from = out.len();
        for d in &self.scratch[..n] {
            let more = d.options() & XDP_PKT_CONTD != 0;
            let mut d = *d;
            d.set_options(0);
            let frame = match self.partial.take() {
                Some(mut f) => {
                    f.more.push(d);
                    f
                }
                None => XdpFrame::one(d, self.region),
            };
            if more {
                self.partial = Some(frame);
            } else {
                out.push(frame);
            }
        }
        out.len() - from
    }

    fn transmit(&mut self, frames: &mut Vec<XdpFrame>) -> usize {
        let want: usize = frames.iter().map(Buffers::buffers).sum();
        let room = (self.tx.nb_free(want as u32) as usize).min(self.scratch.len());
        let (mut k, mut descs) = (0, 0);
        for f in frames.iter() {
            let n = f.buffers();
            if descs + n > room || (n > 1 && !self.multi_buffer) {
                break;
            }
            for (i, d) in f.descs().enumerate() {
                let mut d = *d;
                d.set_options(if i + 1 < n { XDP_PKT_CONTD } else { 0 });
                self.scratch[descs + i] = d;
            }
            descs += n;
            k += 1;
        }
        // SAFETY: the buffers belong to this UMEM and are owned by the
        // caller; once placed, the kernel owns them until their completion,
        // and their frames are removed from the caller's list below. The
        // ring had room for all of them, so all are placed.
        let placed = unsafe { self.tx.produce(&self.scratch[..descs]) };
        debug_assert_eq!(placed, descs);
        frames.drain(..k);
        k
    }

    fn complete(&mut self, out: &mut Vec<XdpFrame>) -> usize {
        // SAFETY: completed descriptors belong to this UMEM and the kernel is
        // done with them; from here the caller owns them.
        let n = unsafe { self.cq.consume(&mut self.scratch) };
        let r = self.region;
        out.extend(self.scratch[..n].iter().map(|d| XdpFrame::one(*d, r)));
        n
    }

    fn fill_room(&mut self) -> usize {
        self.fq.nb_free(RING_SIZE) as usize
    }

    fn fill(&mut self, frames: &mut Vec<XdpFrame>) -> usize {
        let room = self.fq.nb_free(frames.len() as u32) as usize;
        // One-buffer frames from the end (the pool holds no chains).
        let k = frames
            .iter()
            .rev()
            .take(room.min(self.scratch.len()))
            .take_while(|f| f.more.is_empty())
            .count();
        let at = frames.len() - k;
        for (s, f) in self.scratch.iter_mut().zip(&frames[at..]) {
            *s = f.head;
        }
        // SAFETY: the buffers are owned by the caller and belong to this
        // UMEM; the placed ones are removed from its list below.
        let placed = unsafe { self.fq.produce(&self.scratch[..k]) };
        frames.truncate(frames.len() - placed);
        // Zero-copy drivers may sleep until told that the fill ring has
        // frames again.
        if placed > 0 && self.fq.needs_wakeup() {
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
        }
        placed
    }

    fn region(&self) -> usize {
        usize::from(self.region)
    }

    fn kick(&mut self) -> Kick {
        if !self.tx.needs_wakeup() {
            return Kick::Unneeded;
        }
        match kick_tx(self.fd()) {
            SysKick::Done => Kick::Done,
            SysKick::Again => Kick::Again,
            SysKick::Failed(_) => Kick::Failed,
        }
    }
}
