//! An in-memory [`Port`]: the four rings of an AF_XDP socket as bounded
//! queues, with the device's side ([`MemPort::wire_receive`],
//! [`MemPort::wire_transmit`]) driven by the caller. Simulations join two
//! bonds' in-memory ports with links that lose, delay and flap; the
//! [`Engine`](super::engine::Engine) runs over them exactly as it runs over
//! AF_XDP sockets.

use std::collections::VecDeque;

use super::pool::Buffers;
use super::{Frames, Kick, Port};

/// A frame of the in-memory port: it owns its buffer, in a region of the
/// worker's memory (as an AF_XDP frame lives in one UMEM of several).
#[derive(Debug)]
pub struct MemFrame(Vec<u8>, usize);

impl Buffers for MemFrame {
    #[inline]
    fn region(&self) -> usize {
        self.1
    }
}

/// The heap as frame memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemFrames;

impl MemFrames {
    /// `n` empty frames of up to `size` bytes each, for an engine's pool.
    pub fn frames(n: usize, size: usize) -> Vec<MemFrame> {
        MemFrames::frames_in(n, size, 0)
    }

    /// `n` empty frames of up to `size` bytes each in region `region`, for
    /// an engine whose ports have memories of their own.
    pub fn frames_in(n: usize, size: usize, region: usize) -> Vec<MemFrame> {
        (0..n)
            .map(|_| MemFrame(Vec::with_capacity(size), region))
            .collect()
    }
}

impl Frames for MemFrames {
    type Frame = MemFrame;

    fn bytes<'a>(&'a self, frame: &'a MemFrame) -> &'a [u8] {
        &frame.0
    }

    fn edit(&self, frame: &mut MemFrame, edit: impl FnOnce(&mut [u8])) {
        edit(&mut frame.0);
    }

    fn write(&self, frame: &mut MemFrame, bytes: &[u8]) -> bool {
        frame.0.clear();
        frame.0.extend_from_slice(bytes);
        true
    }
}

/// What an in-memory port's device side counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemPortCounters {
    /// Frames that arrived with no frame in the fill ring or no room on the
    /// RX ring (AF_XDP's "rx dropped"): lost.
    pub rx_dropped: u64,
    /// Frames the worker transmitted while the carrier was down: lost.
    pub tx_carrier_lost: u64,
}

/// One queue of one in-memory interface.
///
/// ```
/// use xbond_core::datapath::engine::{Engine, Taps};
/// use xbond_core::datapath::mem::{MemFrames, MemPort};
/// use xbond_core::options::Mode;
/// use xbond_core::plan::TxPlan;
///
/// // An active-backup worker with slave 1 active: a frame from the host
/// // leaves on slave 1.
/// let plan = TxPlan::with_slaves(Mode::ActiveBackup, &[1]);
/// let mut engine = Engine::new(MemFrames::frames(64, 2048), 2, 1);
/// let (mut upper, mut slaves) = (MemPort::new(16), vec![MemPort::new(16), MemPort::new(16)]);
/// let taps = Taps::default();
/// engine.pass(&MemFrames, &mut upper, &mut slaves, &plan, &taps); // fills the rings
/// assert!(upper.wire_receive(&[0xff; 60]));
/// engine.pass(&MemFrames, &mut upper, &mut slaves, &plan, &taps);
/// assert_eq!(slaves[1].wire_transmit().map(|f| f.len()), Some(60));
/// assert_eq!(slaves[0].wire_transmit(), None);
/// ```
#[derive(Debug)]
pub struct MemPort {
    ring: usize,
    fill: VecDeque<MemFrame>,
    rx: VecDeque<MemFrame>,
    tx: VecDeque<MemFrame>,
    comp: VecDeque<MemFrame>,
    carrier: bool,
    counters: MemPortCounters,
    region: usize,
}

impl MemPort {
    /// A port whose rings hold `ring` frames each, carrier up.
    pub fn new(ring: usize) -> MemPort {
        MemPort::in_region(ring, 0)
    }

    /// A port whose frames live in region `region` of the worker's memory.
    pub fn in_region(ring: usize, region: usize) -> MemPort {
        MemPort {
            region,
            ring,
            fill: VecDeque::with_capacity(ring),
            rx: VecDeque::with_capacity(ring),
            tx: VecDeque::with_capacity(ring),
            comp: VecDeque::with_capacity(ring),
            carrier: true,
            counters: MemPortCounters::default(),
        }
    }

    /// Sets the device's carrier; while it is down, frames the worker
    /// transmits are dropped and its kicks fail, as a NIC's do.
    pub fn set_carrier(&mut self, up: bool) {
        self.carrier = up;
    }

    /// The carrier.
    pub fn carrier(&self) -> bool {
        self.carrier
    }

    /// The device receives `bytes`: written into a frame of the fill ring and
    /// placed on the RX ring. False (and counted) when either ring stops it.
    pub fn wire_receive(&mut self, bytes: &[u8]) -> bool {
        if !self.carrier || self.rx.len() >= self.ring {
            self.counters.rx_dropped += 1;
            return false;
        }
        let Some(mut f) = self.fill.pop_front() else {
            self.counters.rx_dropped += 1;
            return false;
        };
        f.0.clear();
        f.0.extend_from_slice(bytes);
        self.rx.push_back(f);
        true
    }

    /// The device sends the next frame of the TX ring: its bytes, the frame
    /// going to the completion ring.
    pub fn wire_transmit(&mut self) -> Option<Vec<u8>> {
        let f = self.tx.pop_front()?;
        let bytes = f.0.clone();
        self.comp.push_back(f);
        Some(bytes)
    }

    /// Frames waiting on the TX ring.
    pub fn tx_queued(&self) -> usize {
        self.tx.len()
    }

    /// Frames held by the port's rings (fill, RX, TX, completion).
    pub fn held(&self) -> usize {
        self.fill.len() + self.rx.len() + self.tx.len() + self.comp.len()
    }

    /// What the device side counted.
    pub fn counters(&self) -> MemPortCounters {
        self.counters
    }
}

impl Port for MemPort {
    type Frame = MemFrame;

    fn receive(&mut self, out: &mut Vec<MemFrame>, max: usize) -> usize {
        let n = max.min(self.rx.len());
        out.extend(self.rx.drain(..n));
        n
    }

    fn transmit(&mut self, frames: &mut Vec<MemFrame>) -> usize {
        let n = (self.ring - self.tx.len()).min(frames.len());
        self.tx.extend(frames.drain(..n));
        n
    }

    fn complete(&mut self, out: &mut Vec<MemFrame>) -> usize {
        let n = self.comp.len();
        out.extend(self.comp.drain(..));
        n
    }

    fn fill_room(&mut self) -> usize {
        self.ring - self.fill.len()
    }

    fn fill(&mut self, frames: &mut Vec<MemFrame>) -> usize {
        let n = (self.ring - self.fill.len()).min(frames.len());
        let at = frames.len() - n;
        self.fill.extend(frames.drain(at..));
        n
    }

    fn region(&self) -> usize {
        self.region
    }

    fn kick(&mut self) -> Kick {
        if self.carrier {
            return Kick::Done;
        }
        // A device without carrier drops what it is given.
        let lost = self.tx.len() as u64;
        self.counters.tx_carrier_lost += lost;
        self.comp.extend(self.tx.drain(..));
        Kick::Failed
    }
}
