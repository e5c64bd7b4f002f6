//! What a worker needs of a port, and of the memory its frames live in.
//!
//! A frame is a token (`Port::Frame`) that the worker holds between taking
//! it from a ring or the pool and giving it back: not `Clone`, so that a
//! frame is never in two places. The bytes are reached through [`Frames`],
//! the memory shared by all ports of one worker (the UMEM of AF_XDP, the
//! heap for the in-memory port).

/// The memory a worker's frames live in.
pub trait Frames {
    /// A frame the worker owns.
    type Frame;

    /// The frame's bytes (its current length).
    fn bytes<'a>(&'a self, frame: &'a Self::Frame) -> &'a [u8];

    /// Edits the frame's bytes in place (the length stays).
    fn edit(&self, frame: &mut Self::Frame, edit: impl FnOnce(&mut [u8]));

    /// Makes `bytes` the frame's content; false when they do not fit.
    fn write(&self, frame: &mut Self::Frame, bytes: &[u8]) -> bool;

    /// Makes `to` a copy of `from`; false when it does not fit.
    fn copy(&self, from: &Self::Frame, to: &mut Self::Frame) -> bool {
        self.write(to, self.bytes(from))
    }
}

/// What a TX kick found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kick {
    /// The port took what was on its TX ring (or needed no kick).
    Done,
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
    /// many.
    fn receive(&mut self, out: &mut Vec<Self::Frame>, max: usize) -> usize;

    /// Places frames from the front of `frames` on the TX ring, in order, as
    /// many as fit, and removes them from `frames`; returns how many. What is
    /// left in `frames` did not fit.
    fn transmit(&mut self, frames: &mut Vec<Self::Frame>) -> usize;

    /// Takes the frames whose transmission completed, appended to `out`;
    /// returns how many.
    fn complete(&mut self, out: &mut Vec<Self::Frame>) -> usize;

    /// How many frames the fill ring has room for.
    fn fill_room(&mut self) -> usize;

    /// Places frames from the end of `frames` on the fill ring (where
    /// received frames will be written), as many as fit, and removes them
    /// from `frames`; returns how many.
    fn fill(&mut self, frames: &mut Vec<Self::Frame>) -> usize;

    /// Tells the device that the TX ring has frames (one syscall per ring per
    /// batch for AF_XDP).
    fn kick(&mut self) -> Kick;
}
