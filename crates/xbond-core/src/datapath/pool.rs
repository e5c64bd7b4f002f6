//! The free-frame pool of one worker, with exact accounting: every frame is
//! at any time either free, in a fill ring, or in flight on a TX ring (until
//! its completion is reaped). Frames taken from RX rings are in the worker's
//! hands only within one batch, and the batch returns each of them to the
//! pool or to a TX ring before it ends.
//!
//! The books count buffers: a frame longer than one buffer (an AF_XDP
//! multi-buffer jumbo frame) is a chain of them ([`Buffers`]), which the pool
//! takes apart when the frame comes back, so that every free entry is one
//! buffer, ready for a fill ring.

/// A frame as buffers of the worker's memory: one, or a chain, in one
/// region of it.
pub trait Buffers: Sized {
    /// The region of the worker's memory the frame lives in: 0 when the
    /// worker's ports share one memory; with a memory per port (an AF_XDP
    /// zero-copy socket needs a UMEM of its own), the port's.
    #[inline]
    fn region(&self) -> usize {
        0
    }

    /// How many buffers the frame spans.
    #[inline]
    fn buffers(&self) -> usize {
        1
    }

    /// Appends the frame's buffers to `out`, each as a frame of its own.
    #[inline]
    fn unchain(self, out: &mut Vec<Self>) {
        out.push(self);
    }
}

impl Buffers for u32 {}

/// A stack of free buffers plus counts of buffers lent to the ports.
#[derive(Debug)]
pub struct FramePool<F> {
    free: Vec<F>,
    total: usize,
    in_fill: usize,
    in_tx: usize,
}

/// The pools of a worker, one per region of its memory ([`Buffers::region`]):
/// a frame goes back to its own region's pool, and a port is filled from
/// its own. With one region this is a [`FramePool`].
#[derive(Debug)]
pub struct Pools<F> {
    pools: Vec<FramePool<F>>,
}

impl<F: Buffers> Pools<F> {
    /// Pools owning all of `frames`, each in its region's.
    pub fn new(frames: Vec<F>) -> Pools<F> {
        let regions = frames.iter().map(Buffers::region).max().unwrap_or(0) + 1;
        let mut split: Vec<Vec<F>> = (0..regions).map(|_| Vec::new()).collect();
        for f in frames {
            let r = f.region();
            split[r].push(f);
        }
        Pools {
            pools: split.into_iter().map(FramePool::new).collect(),
        }
    }

    /// The pool of `region` (of the last region for one beyond: a port
    /// with no memory of its own).
    #[inline]
    pub fn region(&mut self, region: usize) -> &mut FramePool<F> {
        let last = self.pools.len() - 1;
        &mut self.pools[region.min(last)]
    }

    /// Whether the worker's memory has more than one region.
    #[inline]
    pub fn split(&self) -> bool {
        self.pools.len() > 1
    }

    /// Returns a frame to its region's pool.
    #[inline]
    pub fn free(&mut self, f: F) {
        let r = f.region();
        self.region(r).free(f);
    }

    /// Returns every frame of `frames` (emptied) to its region's pool.
    #[inline]
    pub fn free_all(&mut self, frames: &mut Vec<F>) {
        if !self.split() {
            self.pools[0].free_all(frames);
        } else {
            for f in frames.drain(..) {
                self.free(f);
            }
        }
    }

    /// Where the frames are, over all regions.
    pub fn counts(&self) -> PoolCounts {
        self.pools
            .iter()
            .map(FramePool::counts)
            .fold(PoolCounts::default(), |a, c| PoolCounts {
                free: a.free + c.free,
                in_fill: a.in_fill + c.in_fill,
                in_tx: a.in_tx + c.in_tx,
                total: a.total + c.total,
            })
    }
}

/// A snapshot of where the frames are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCounts {
    /// Frames in the pool.
    pub free: usize,
    /// Frames in fill rings (waiting for received data).
    pub in_fill: usize,
    /// Frames on TX rings, not yet completed.
    pub in_tx: usize,
    /// All frames of the worker's memory.
    pub total: usize,
}

impl PoolCounts {
    /// True when every frame is accounted for.
    pub fn balanced(&self) -> bool {
        self.free + self.in_fill + self.in_tx == self.total
    }
}

impl<F: Buffers> FramePool<F> {
    /// A pool owning all of `frames`.
    pub fn new(frames: Vec<F>) -> FramePool<F> {
        FramePool {
            total: frames.len(),
            free: frames,
            in_fill: 0,
            in_tx: 0,
        }
    }

    /// Takes one free frame.
    #[inline]
    pub fn alloc(&mut self) -> Option<F> {
        self.free.pop()
    }

    /// Returns a frame that is done with (dropped, or its data copied).
    #[inline]
    pub fn free(&mut self, f: F) {
        if f.buffers() == 1 {
            self.free.push(f);
        } else {
            f.unchain(&mut self.free);
        }
    }

    /// Returns every frame of `frames` (emptied).
    #[inline]
    pub fn free_all(&mut self, frames: &mut Vec<F>) {
        if frames.iter().all(|f| f.buffers() == 1) {
            self.free.append(frames);
        } else {
            for f in frames.drain(..) {
                self.free(f);
            }
        }
    }

    /// Takes up to `n` frames destined for a fill ring, into `out`.
    pub fn take_for_fill(&mut self, n: usize, out: &mut Vec<F>) {
        let n = n.min(self.free.len());
        let at = self.free.len() - n;
        out.extend(self.free.drain(at..));
    }

    /// `n` buffers were placed on a fill ring; the rest of `unplaced` come
    /// back (emptied).
    pub fn filled(&mut self, n: usize, unplaced: &mut Vec<F>) {
        self.in_fill += n;
        self.free_all(unplaced);
    }

    /// `frames` arrived on an RX ring (their buffers leave the fill rings).
    #[inline]
    pub fn received(&mut self, frames: &[F]) {
        let n: usize = frames.iter().map(Buffers::buffers).sum();
        self.in_fill = self.in_fill.saturating_sub(n);
    }

    /// `n` buffers were placed on a TX ring.
    #[inline]
    pub fn sent(&mut self, n: usize) {
        self.in_tx += n;
    }

    /// Frames whose transmission completed come back (`frames` is emptied).
    #[inline]
    pub fn completed(&mut self, frames: &mut Vec<F>) {
        let n: usize = frames.iter().map(Buffers::buffers).sum();
        self.in_tx = self.in_tx.saturating_sub(n);
        self.free_all(frames);
    }

    /// Free frames now.
    #[inline]
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Where the frames are.
    pub fn counts(&self) -> PoolCounts {
        PoolCounts {
            free: self.free.len(),
            in_fill: self.in_fill,
            in_tx: self.in_tx,
            total: self.total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_accounted_through_a_forwarding_cycle() {
        let mut p = FramePool::new((0..64u32).collect());
        let mut fill = Vec::new();
        p.take_for_fill(48, &mut fill);
        // The ring takes 40; 8 go back.
        let mut unplaced = fill.split_off(40);
        p.filled(40, &mut unplaced);
        assert!(p.counts().balanced());
        // 10 frames arrive; 6 are forwarded, 4 dropped.
        let mut rx: Vec<u32> = fill.drain(..10).collect();
        p.received(&rx);
        p.sent(6);
        for d in rx.drain(6..) {
            p.free(d);
        }
        assert!(p.counts().balanced(), "{:?}", p.counts());
        p.completed(&mut rx);
        let c = p.counts();
        assert!(c.balanced());
        assert_eq!((c.in_fill, c.in_tx, c.free), (30, 0, 34));
    }

    #[test]
    fn a_lost_frame_unbalances_the_books() {
        let mut p = FramePool::new((0..8u32).collect());
        let d = p.alloc();
        assert!(d.is_some());
        assert!(!p.counts().balanced());
    }
}
