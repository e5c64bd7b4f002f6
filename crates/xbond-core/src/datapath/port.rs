//! What a worker needs of a port, and of the memory its frames live in.
//!
//! A frame is a token (`Port::Frame`) that the worker holds between taking
//! it from a ring or the pool and giving it back: not `Clone`, so that a
//! frame is never in two places. The bytes are reached through [`Frames`],
//! the memory shared by all ports of one worker (the UMEM of AF_XDP, the
//! heap for the in-memory port).

/// The memory a worker's frames live in.
///
/// A frame longer than one buffer is a chain of buffers (an AF_XDP
/// multi-buffer frame, see [`Buffers`]); [`Frames::bytes`] and
/// [`Frames::edit`] reach its first buffer, which always holds the headers
/// the bond reads and rewrites.
pub trait Frames {
    /// A frame the worker owns.
    type Frame: Buffers;

    /// The bytes of the frame's first buffer: the whole frame unless it is
    /// a chain.
    fn bytes<'a>(&'a self, frame: &'a Self::Frame) -> &'a [u8];

    /// The frame's length over all its buffers.
    fn len(&self, frame: &Self::Frame) -> usize {
        self.bytes(frame).len()
    }

    /// Edits the bytes of the frame's first buffer in place (the length
    /// stays).
    fn edit(&self, frame: &mut Self::Frame, edit: impl FnOnce(&mut [u8]));

    /// Makes `bytes` the content of a one-buffer frame; false when they do
    /// not fit.
    fn write(&self, frame: &mut Self::Frame, bytes: &[u8]) -> bool;

    /// A copy of `from` in buffers taken from `pool` (none are kept when the
    /// pool runs short).
    fn copy(&self, from: &Self::Frame, pool: &mut FramePool<Self::Frame>) -> Option<Self::Frame> {
        let mut to = pool.alloc()?;
        if self.write(&mut to, self.bytes(from)) {
            Some(to)
        } else {
            pool.free(to);
            None
        }
    }
}

use super::pool::{Buffers, FramePool};

/// What a TX kick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The port took what was on its TX ring.
    Done,
    /// The port needed no kick: it takes TX frames without one (no system
    /// call was made).
    Unneeded,
    /// Frames remain on the ring (the device is busy, or sends in slices):
    /// kick again.
    Again,
    /// The device dropped frames or is down or gone: a hint that its carrier
    /// went away.
    Failed,
}

/// One queue of one interface, as a worker drives it: the RX, TX, fill and
/// completion rings of an AF_XDP socket, or their in-memory twin.
pub trait Port {
    /// A frame the worker owns.
    type Frame;

    /// Takes up to `max` received frames, appended to `out`; returns how
    /// many frames.
    fn receive(&mut self, out: &mut Vec<Self::Frame>, max: usize) -> usize;

    /// Places frames from the front of `frames` on the TX ring, in order, as
    /// many as fit whole (every buffer of a chain), and removes them from
    /// `frames`; returns how many frames. What is left in `frames` did not
    /// fit.
    fn transmit(&mut self, frames: &mut Vec<Self::Frame>) -> usize;

    /// Takes the buffers whose transmission completed, appended to `out`
    /// (a chain may come back as its single buffers); returns how many
    /// entries.
    fn complete(&mut self, out: &mut Vec<Self::Frame>) -> usize;

    /// How many buffers the fill ring has room for.
    fn fill_room(&mut self) -> usize;

    /// Places one-buffer frames from the end of `frames` on the fill ring
    /// (where received frames will be written), as many as fit, and removes
    /// them from `frames`; returns how many.
    fn fill(&mut self, frames: &mut Vec<Self::Frame>) -> usize;

    /// Tells the device that the TX ring has frames (one syscall per ring per
    /// batch for AF_XDP).
    fn kick(&mut self) -> Kick;

    /// The region of the worker's memory this port's frames live in (see
    /// [`Buffers::region`]): frames from another region are copied into
    /// this one before they go on its TX ring.
    fn region(&self) -> usize {
        0
    }
}
