//! An in-process upper port: the bond's host side is a pair of bounded
//! queues of frames that the embedding program reads and writes
//! ([`UpperChannel`]), instead of a network interface. Every queue's worker
//! has a [`ChannelPort`] on the same pair of queues. A frame crossing
//! between the program and a UMEM is copied once each way.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, TrySendError};
use xbond_core::datapath::{Frames, Kick, Port};

use crate::sys::Waker;
use crate::xsk::{UmemFrames, XdpFrame, MAX_BUFFERS, RING_SIZE};

/// Frames each way that may wait in the channel.
pub const CHANNEL_DEPTH: usize = 4096;

/// The embedding program's end of an in-process upper port: frames it sends
/// go out on the slaves by the bond's mode; frames the slaves deliver come
/// out of [`UpperChannel::recv`].
#[derive(Debug, Clone)]
pub struct UpperChannel {
    to_bond: Sender<Vec<u8>>,
    from_bond: Receiver<Vec<u8>>,
    waker: Arc<Waker>,
    counters: Arc<ChannelCounters>,
    /// The workers' ends of the two queues, for [`UpperChannel::port`].
    worker_rx: Receiver<Vec<u8>>,
    worker_tx: Sender<Vec<u8>>,
}

/// What an in-process upper port dropped.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    /// Frames the bond delivered while the program's queue was full.
    pub to_program_dropped: AtomicU64,
    /// Frames the program sent that are larger than a UMEM frame.
    pub oversize: AtomicU64,
}

/// Why [`UpperChannel::send`] refused a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The bond has not taken the frames sent before (the queue holds
    /// [`CHANNEL_DEPTH`]); try again later.
    #[error("the bond's queue is full ({CHANNEL_DEPTH} frames)")]
    Full,
}

impl UpperChannel {
    /// Hands a whole Ethernet frame to the bond, to be sent on a slave.
    pub fn send(&self, frame: Vec<u8>) -> Result<(), SendError> {
        match self.to_bond.try_send(frame) {
            Ok(()) => {
                self.waker.wake();
                Ok(())
            }
            // The channel holds the workers' ends itself: never disconnected.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(SendError::Full),
        }
    }

    /// The next frame the bond delivered, waiting up to `timeout`; `None`
    /// when none came.
    pub fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.from_bond.recv_timeout(timeout).ok()
    }

    /// The next delivered frame, if one is waiting.
    pub fn try_recv(&self) -> Option<Vec<u8>> {
        self.from_bond.try_recv().ok()
    }

    /// What the port dropped.
    pub fn counters(&self) -> &ChannelCounters {
        &self.counters
    }
}

/// The bond's end: a [`Port`] over the two queues.
#[derive(Debug)]
pub struct ChannelPort {
    mem: UmemFrames,
    from_program: Receiver<Vec<u8>>,
    to_program: Sender<Vec<u8>>,
    waker: Arc<Waker>,
    counters: Arc<ChannelCounters>,
    /// Frames given to receive into (the fill ring's twin).
    spare: Vec<XdpFrame>,
    /// Frames whose bytes went to the program (the completion ring's twin).
    done: Vec<XdpFrame>,
}

/// The program's end of a new in-process upper port; [`UpperChannel::port`]
/// gives each queue's worker its end.
pub fn upper_channel() -> std::io::Result<UpperChannel> {
    let (to_bond, from_program) = crossbeam::channel::bounded(CHANNEL_DEPTH);
    let (to_program, from_bond) = crossbeam::channel::bounded(CHANNEL_DEPTH);
    Ok(UpperChannel {
        to_bond,
        from_bond,
        waker: Arc::new(Waker::new()?),
        counters: Arc::new(ChannelCounters::default()),
        worker_rx: from_program,
        worker_tx: to_program,
    })
}

impl UpperChannel {
    /// A worker's end, over the frames of `mem`. All ends take from and give
    /// to the same two queues; the program's sends wake every worker, and
    /// the first to look takes the frames.
    pub fn port(&self, mem: UmemFrames) -> ChannelPort {
        ChannelPort {
            mem,
            from_program: self.worker_rx.clone(),
            to_program: self.worker_tx.clone(),
            waker: self.waker.clone(),
            counters: self.counters.clone(),
            spare: Vec::new(),
            done: Vec::new(),
        }
    }
}

impl ChannelPort {
    /// Readable when the program sent frames: for the worker's sleep.
    pub fn fd(&self) -> std::os::fd::RawFd {
        self.waker.fd()
    }
}

impl Port for ChannelPort {
    type Frame = XdpFrame;

    fn receive(&mut self, out: &mut Vec<XdpFrame>, max: usize) -> usize {
        // Clear before looking: a frame sent after the look wakes the worker
        // again, so none waits for the next timeout.
        self.waker.clear();
        if self.from_program.is_empty() {
            return 0;
        }
        let mut n = 0;
        // Room for the longest frame, so that a frame taken is never lost
        // for want of buffers.
        while n < max && self.spare.len() >= MAX_BUFFERS {
            let Ok(bytes) = self.from_program.try_recv() else {
                break;
            };
            match self.mem.write_chain(&mut self.spare, &bytes) {
                Some(f) => {
                    out.push(f);
                    n += 1;
                }
                None => {
                    self.counters.oversize.fetch_add(1, Relaxed);
                }
            }
        }
        if !self.from_program.is_empty() {
            // More is waiting than fit: look again without sleeping.
            self.waker.wake();
        }
        n
    }

    fn transmit(&mut self, frames: &mut Vec<XdpFrame>) -> usize {
        let n = frames.len();
        for f in frames.drain(..) {
            let mut bytes = Vec::with_capacity(self.mem.len(&f));
            self.mem.gather(&f, &mut bytes);
            if self.to_program.try_send(bytes).is_err() {
                self.counters.to_program_dropped.fetch_add(1, Relaxed);
            }
            self.done.push(f);
        }
        n
    }

    fn complete(&mut self, out: &mut Vec<XdpFrame>) -> usize {
        let n = self.done.len();
        out.append(&mut self.done);
        n
    }

    fn fill_room(&mut self) -> usize {
        RING_SIZE as usize - self.spare.len().min(RING_SIZE as usize)
    }

    fn fill(&mut self, frames: &mut Vec<XdpFrame>) -> usize {
        let n = self.fill_room().min(frames.len());
        let at = frames.len() - n;
        self.spare.extend(frames.drain(at..));
        n
    }

    fn region(&self) -> usize {
        0
    }

    fn kick(&mut self) -> Kick {
        Kick::Unneeded
    }
}
