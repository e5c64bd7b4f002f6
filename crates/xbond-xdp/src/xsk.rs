//! AF_XDP sockets and their UMEM (xsk-rs), as the core's
//! [`Port`] and [`Frames`]: the one place where a UMEM is made and a socket
//! bound, used by the workers and by the traffic generator.
//!
//! A frame is an [`XdpFrame`], a descriptor the holder owns: it is made only
//! by taking frames from a ring or from a fresh UMEM, is not `Clone`, and is
//! given up by placing it on a ring. While it exists neither the kernel nor
//! another ring holds that frame, which is what makes reading and writing its
//! bytes through [`UmemFrames`] sound.

use std::os::fd::{AsRawFd, RawFd};

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

/// A UMEM frame the holder owns (see the module comment).
#[derive(Debug)]
#[repr(transparent)]
pub struct XdpFrame(FrameDesc);

impl XdpFrame {
    /// Views owned frames as the descriptors xsk-rs takes.
    fn descs(frames: &[XdpFrame]) -> &[FrameDesc] {
        // SAFETY: XdpFrame is a repr(transparent) wrapper of FrameDesc, so the
        // two slices have the same layout; the view is shared, and the frames
        // stay owned by the caller until it removes them from its list.
        unsafe { std::slice::from_raw_parts(frames.as_ptr().cast(), frames.len()) }
    }
}

fn sock_err(op: &'static str, name: &str, e: impl std::fmt::Display) -> Error {
    Error::sys(op, name, std::io::Error::other(e.to_string()))
}

/// Makes a UMEM of `frames` frames of [`FRAME_SIZE`] bytes for sockets on
/// `name`; returns it with all its frames.
pub fn create_umem(name: &str, frames: u32) -> Result<(Umem, Vec<XdpFrame>)> {
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
    Ok((umem, descs.into_iter().map(XdpFrame).collect()))
}

/// The frames of one UMEM, shared by every socket bound to it.
#[derive(Debug, Clone)]
pub struct UmemFrames {
    umem: Umem,
}

impl UmemFrames {
    /// The frame memory of `umem`.
    pub fn new(umem: Umem) -> UmemFrames {
        UmemFrames { umem }
    }

    /// The UMEM, to bind sockets to.
    pub fn umem(&self) -> &Umem {
        &self.umem
    }
}

impl Frames for UmemFrames {
    type Frame = XdpFrame;

    fn bytes<'a>(&'a self, frame: &'a XdpFrame) -> &'a [u8] {
        // SAFETY: the frame is owned by the caller (an XdpFrame exists only
        // while no ring holds it), so the kernel does not write it meanwhile.
        unsafe { self.umem.data(&frame.0) }.contents()
    }

    fn edit(&self, frame: &mut XdpFrame, edit: impl FnOnce(&mut [u8])) {
        // SAFETY: as in `bytes`; the `&mut` makes this the only view.
        let mut data = unsafe { self.umem.data_mut(&mut frame.0) };
        edit(data.contents_mut());
    }

    fn write(&self, frame: &mut XdpFrame, bytes: &[u8]) -> bool {
        // SAFETY: as in `edit`.
        let mut data = unsafe { self.umem.data_mut(&mut frame.0) };
        let mut cur = data.cursor();
        // The cursor starts at the frame's previous length; the content at 0.
        cur.set_pos(0);
        std::io::Write::write_all(&mut cur, bytes).is_ok()
    }
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
    /// Binds a socket on queue `queue` of `name` to `umem`, in `mode`.
    pub fn bind(umem: &Umem, name: &str, queue: u32, mode: BindMode) -> Result<XdpPort> {
        let ring = QueueSize::new(RING_SIZE).map_err(|e| sock_err("ring size", name, e))?;
        let bind = match mode {
            BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY | BindFlags::XDP_USE_NEED_WAKEUP,
            BindMode::Copy => BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP,
        };
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
        let (tx, rx, rings) = unsafe { Socket::new(cfg, umem, &ifc, queue) }
            .map_err(|e| sock_err("bind AF_XDP socket", name, e))?;
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
        })
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
        // SAFETY: the RX ring hands over frames of this UMEM that the kernel
        // has finished writing; from here the caller owns them.
        let n = unsafe { self.rx.consume(&mut self.scratch[..max]) };
        out.extend(self.scratch[..n].iter().copied().map(XdpFrame));
        n
    }

    fn transmit(&mut self, frames: &mut Vec<XdpFrame>) -> usize {
        let room = self.tx.nb_free(frames.len() as u32) as usize;
        let k = room.min(frames.len());
        // SAFETY: the frames belong to this UMEM and are owned by the caller;
        // once placed, the kernel owns them until their completion, and they
        // are removed from the caller's list below.
        let sent = unsafe { self.tx.produce(&XdpFrame::descs(frames)[..k]) };
        frames.drain(..sent);
        sent
    }

    fn complete(&mut self, out: &mut Vec<XdpFrame>) -> usize {
        // SAFETY: completed descriptors belong to this UMEM and the kernel is
        // done with them; from here the caller owns them.
        let n = unsafe { self.cq.consume(&mut self.scratch) };
        out.extend(self.scratch[..n].iter().copied().map(XdpFrame));
        n
    }

    fn fill_room(&mut self) -> usize {
        self.fq.nb_free(RING_SIZE) as usize
    }

    fn fill(&mut self, frames: &mut Vec<XdpFrame>) -> usize {
        let room = self.fq.nb_free(frames.len() as u32) as usize;
        let at = frames.len() - room.min(frames.len());
        // SAFETY: the frames are owned by the caller and belong to this UMEM;
        // the placed ones are removed from its list below.
        let placed = unsafe { self.fq.produce(&XdpFrame::descs(frames)[at..]) };
        frames.truncate(frames.len() - placed);
        // Zero-copy drivers may sleep until told that the fill ring has
        // frames again.
        if placed > 0 && self.fq.needs_wakeup() {
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
        }
        placed
    }

    fn kick(&mut self) -> Kick {
        if !self.tx.needs_wakeup() {
            return Kick::Done;
        }
        match kick_tx(self.fd()) {
            SysKick::Done => Kick::Done,
            SysKick::Again => Kick::Again,
            SysKick::Failed(_) => Kick::Failed,
        }
    }
}
