//! One worker's loop pass over its ports, the same for AF_XDP and for the
//! in-memory ports of the simulations.
//!
//! A pass: reaps completions into the [`Pools`] (one per memory region)
//! and refills the fill rings; takes a batch from the host (the upper port),
//! gives it the verdicts of [`tx_batch`] and places each frame on its
//! slave's TX ring (copied into the slave's region when it has its own);
//! takes a batch from each slave, gives it the verdicts of [`rx_batch`]
//! and places what is delivered on the upper port's TX ring; then kicks the
//! TX rings that got frames. The engine moves frames and applies verdicts;
//! it decides nothing itself. Counters are written once per batch (the TLB
//! byte counts and a failed broadcast copy per frame) into
//! [`WorkerStats`], which other threads read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::alb::TLB_BUCKETS;
use crate::plan::{DupFilter, Selector, TxPlan};
use crate::MAX_SLAVES;

use super::pool::{Buffers, PoolCounts, Pools};
use super::{
    rewrite_destination, rewrite_source, rx_batch, tx_batch, Frames, Kick, Port, RxAction,
    RxVerdict, TxAction, TxVerdict, BATCH,
};

/// Counters of one slave as seen by one worker.
#[derive(Debug, Default)]
pub struct SlaveCounters {
    /// Frames received and delivered to the host.
    pub rx: AtomicU64,
    /// Frames transmitted.
    pub tx: AtomicU64,
    /// Frames received on a slave that must not deliver now.
    pub rx_inactive: AtomicU64,
    /// Duplicates dropped.
    pub rx_duplicate: AtomicU64,
    /// Frames received too short for an Ethernet header, dropped.
    pub rx_malformed: AtomicU64,
    /// Frames received longer than bond0's MTU allows, dropped.
    pub rx_oversize: AtomicU64,
    /// Frames dropped because the TX ring was full (or no frame was free for
    /// a broadcast copy).
    pub tx_dropped: AtomicU64,
    /// TX kicks the device refused: a hint that the slave's carrier is gone,
    /// passed to the control loop at once.
    pub tx_errors: AtomicU64,
}

/// Counters of one worker, written once per batch and summed on read.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Per slave.
    pub slaves: Vec<SlaveCounters>,
    /// Frames from the host with no usable slave.
    pub tx_no_slave: AtomicU64,
    /// Frames from the host too short for an Ethernet header, dropped.
    pub tx_malformed: AtomicU64,
    /// Frames from the host longer than bond0's MTU allows, dropped.
    pub tx_oversize: AtomicU64,
    /// Frames from the host given to the control thread (balance-alb ARP).
    pub tx_diverted: AtomicU64,
    /// Frames from the host that reached a slave ring.
    pub upper_rx: AtomicU64,
    /// Frames delivered to the host.
    pub upper_tx: AtomicU64,
    /// Frames dropped because the upper TX ring was full.
    pub upper_tx_dropped: AtomicU64,
    /// Pool: free frames.
    pub pool_free: AtomicU64,
    /// Pool: frames in fill rings.
    pub pool_in_fill: AtomicU64,
    /// Pool: frames on TX rings.
    pub pool_in_tx: AtomicU64,
    /// Pool: all frames.
    pub pool_total: AtomicU64,
    /// Times the worker went to sleep in poll(2) (each sleep ends in a
    /// wake-up).
    pub sleeps: AtomicU64,
    /// Coalescing waits: timed sleeps after a pass that took few frames
    /// (`--coalesce-us`; each ends in a wake-up).
    pub coalesce_waits: AtomicU64,
    /// Passes that found work: frames received, or a TX ring to kick again.
    pub busy_passes: AtomicU64,
    /// TX kicks that were system calls (a port that needs no kick is not
    /// counted).
    pub kicks: AtomicU64,
    /// Passes of the worker's loop: advances at least once a second (the
    /// longest sleep) while the worker lives and is not stuck.
    pub heartbeat: AtomicU64,
    /// balance-tlb/alb: bytes sent per destination bucket (running totals).
    pub tlb_bytes: Vec<AtomicU64>,
}

impl WorkerStats {
    /// Zeroed counters for a worker with `slaves` slaves.
    pub fn new(slaves: usize) -> WorkerStats {
        WorkerStats {
            slaves: (0..slaves).map(|_| SlaveCounters::default()).collect(),
            tlb_bytes: (0..TLB_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            ..WorkerStats::default()
        }
    }

    /// Where the worker's frames are, as last published.
    pub fn pool(&self) -> PoolCounts {
        PoolCounts {
            free: self.pool_free.load(Relaxed) as usize,
            in_fill: self.pool_in_fill.load(Relaxed) as usize,
            in_tx: self.pool_in_tx.load(Relaxed) as usize,
            total: self.pool_total.load(Relaxed) as usize,
        }
    }
}

/// The slave index under which frames the host sent are queued in [`Taps`].
pub const HOST_ARP: u8 = u8::MAX;

/// Kicks a TX ring gets in one pass while its device says "again": 8 × 32
/// frames (copy mode's slice) covers a pass's batch and some backlog.
pub const KICK_REPEATS: usize = 8;

/// Frames the workers copy to the control thread (ARP and IPv6 ND received
/// on slaves, for the link monitors and ALB; the host's ARP in balance-alb).
/// Bounded: when the control thread falls behind, copies are dropped and
/// counted, never the traffic.
#[derive(Debug)]
pub struct Taps {
    queue: crossbeam_queue::ArrayQueue<(u8, Vec<u8>)>,
    /// The host's own ARP (balance-alb), apart so that a storm of ARP from
    /// the network cannot crowd it out.
    host: crossbeam_queue::ArrayQueue<(u8, Vec<u8>)>,
    /// Copies dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl Default for Taps {
    fn default() -> Self {
        Taps {
            queue: crossbeam_queue::ArrayQueue::new(1024),
            host: crossbeam_queue::ArrayQueue::new(256),
            dropped: AtomicU64::new(0),
        }
    }
}

impl Taps {
    /// Queues a copy of `frame`, received on `slave` ([`HOST_ARP`]: sent by
    /// the host).
    pub fn push(&self, slave: u8, frame: &[u8]) {
        let q = if slave == HOST_ARP {
            &self.host
        } else {
            &self.queue
        };
        // No copy when it would be dropped anyway.
        if q.is_full() || q.push((slave, frame.to_vec())).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }

    /// Takes the next tapped frame (the host's own first).
    pub fn pop(&self) -> Option<(u8, Vec<u8>)> {
        self.host.pop().or_else(|| self.queue.pop())
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Frames taken from RX rings, plus one if a TX ring still holds frames
    /// the device has not taken: zero means the worker may go to sleep.
    pub work: usize,
    /// The control thread has something to look at now (a tapped frame, a
    /// refused TX kick).
    pub wake_control: bool,
}

/// What the TX side of a pass keeps: the pools of every region, a scratch
/// list for frames copied into a port's region, and per port (upper first)
/// whether frames were placed on its TX ring since the last kick.
#[derive(Debug)]
struct TxBooks<F> {
    pool: Pools<F>,
    cross: Vec<F>,
    pending: Vec<bool>,
}

/// One worker's frames and per-batch state.
#[derive(Debug)]
pub struct Engine<F> {
    tx: TxBooks<F>,
    sel: Selector,
    dups: DupFilter,
    /// Benchmark baseline: upper -> slave 0 and slaves -> upper, no rules.
    raw: bool,
    batch: Vec<F>,
    keep: Vec<F>,
    scratch: Vec<F>,
    out: Vec<Vec<F>>,
    stats: std::sync::Arc<WorkerStats>,
}

impl<F: Buffers> Engine<F> {
    /// An engine owning `frames` for a worker with `slaves` slaves; `seed`
    /// starts balance-rr's random choice.
    pub fn new(frames: Vec<F>, slaves: usize, seed: u64) -> Engine<F> {
        let stats = WorkerStats::new(slaves);
        stats.pool_total.store(frames.len() as u64, Relaxed);
        Engine {
            tx: TxBooks {
                pool: Pools::new(frames),
                cross: Vec::new(),
                pending: vec![false; slaves + 1],
            },
            sel: Selector::new(seed),
            dups: DupFilter::default(),
            raw: false,
            batch: Vec::with_capacity(BATCH),
            keep: Vec::with_capacity(BATCH),
            scratch: Vec::new(),
            out: (0..slaves.min(MAX_SLAVES))
                .map(|_| Vec::with_capacity(BATCH))
                .collect(),
            stats: std::sync::Arc::new(stats),
        }
    }

    /// Bypasses every rule (the raw forwarder the benchmark compares with).
    pub fn set_raw(&mut self, raw: bool) {
        self.raw = raw;
    }

    /// The counters, shared with the threads that read them.
    pub fn stats(&self) -> std::sync::Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Where the frames are now.
    pub fn pool(&self) -> PoolCounts {
        self.tx.pool.counts()
    }

    /// Publishes the pool's counts into the stats.
    pub fn publish_pool(&self) {
        let c = self.tx.pool.counts();
        self.stats.pool_free.store(c.free as u64, Relaxed);
        self.stats.pool_in_fill.store(c.in_fill as u64, Relaxed);
        self.stats.pool_in_tx.store(c.in_tx as u64, Relaxed);
    }

    /// Runs one pass over `upper` and `slaves` (indices as in the plan).
    pub fn pass<M, P>(
        &mut self,
        mem: &M,
        upper: &mut P,
        slaves: &mut [P],
        plan: &TxPlan,
        taps: &Taps,
    ) -> Pass
    where
        M: Frames<Frame = F>,
        P: Port<Frame = F>,
    {
        let mut pass = Pass::default();
        self.reap_and_refill(upper, slaves);
        pass.work += self.forward_upper(mem, upper, slaves, plan, taps, &mut pass.wake_control);
        for s in 0..slaves.len() {
            pass.work += self.deliver(mem, s, upper, slaves, plan, taps, &mut pass.wake_control);
        }
        pass.work += usize::from(self.kick(upper, slaves, &mut pass.wake_control));
        if pass.work > 0 {
            self.stats.busy_passes.fetch_add(1, Relaxed);
        }
        pass
    }

    /// Takes back completed frames from every port and refills the fill
    /// rings (also at the end of a worker's life, so that the books close).
    pub fn reap_and_refill<P: Port<Frame = F>>(&mut self, upper: &mut P, slaves: &mut [P]) {
        for port in std::iter::once(upper).chain(slaves.iter_mut()) {
            // A port transmits frames of its own region only, so its
            // completions are of its region too.
            let pool = self.tx.pool.region(port.region());
            port.complete(&mut self.scratch);
            pool.completed(&mut self.scratch);
            let want = port.fill_room();
            if want >= BATCH || (want > 0 && pool.counts().in_fill == 0) {
                pool.take_for_fill(want, &mut self.scratch);
                let placed = port.fill(&mut self.scratch);
                pool.filled(placed, &mut self.scratch);
            }
        }
    }

    /// Places `frames` on `port`'s TX ring, each first copied into the
    /// port's region when it lives in another (a frame crossing between a
    /// zero-copy slave's UMEM and the upper port's); what does not fit, or
    /// finds no free buffer to be copied into, goes back to the pool.
    /// Returns how many were placed.
    fn push_tx<M, P>(
        mem: &M,
        tx: &mut TxBooks<F>,
        index: usize,
        port: &mut P,
        frames: &mut Vec<F>,
    ) -> usize
    where
        M: Frames<Frame = F>,
        P: Port<Frame = F>,
    {
        let TxBooks {
            pool: pools,
            cross,
            pending,
        } = tx;
        let r = port.region();
        if pools.split() && frames.iter().any(|f| f.region() != r) {
            cross.clear();
            for f in frames.drain(..) {
                if f.region() == r {
                    cross.push(f);
                    continue;
                }
                if let Some(c) = mem.copy(&f, pools.region(r)) {
                    cross.push(c);
                }
                pools.free(f);
            }
            std::mem::swap(frames, cross);
        }
        let buffers = |f: &Vec<F>| f.iter().map(Buffers::buffers).sum::<usize>();
        let before = buffers(frames);
        let sent = port.transmit(frames);
        pools.region(r).sent(before - buffers(frames));
        pools.free_all(frames);
        if sent > 0 {
            pending[index] = true;
        }
        sent
    }

    fn forward_upper<M, P>(
        &mut self,
        mem: &M,
        upper: &mut P,
        slaves: &mut [P],
        plan: &TxPlan,
        taps: &Taps,
        wake: &mut bool,
    ) -> usize
    where
        M: Frames<Frame = F>,
        P: Port<Frame = F>,
    {
        self.batch.clear();
        let got = upper.receive(&mut self.batch, BATCH);
        if got == 0 {
            return 0;
        }
        self.tx.pool.region(upper.region()).received(&self.batch);
        if self.raw {
            let Some(first) = slaves.first_mut() else {
                self.tx.pool.free_all(&mut self.batch);
                return got;
            };
            let sent = Self::push_tx(mem, &mut self.tx, 1, first, &mut self.batch);
            self.stats.slaves[0].tx.fetch_add(sent as u64, Relaxed);
            return got;
        }
        let mut verdicts = [TxVerdict::default(); BATCH];
        let mut lens = [0usize; BATCH];
        {
            let mut frames: [&[u8]; BATCH] = [&[]; BATCH];
            for ((f, l), d) in frames.iter_mut().zip(lens.iter_mut()).zip(&self.batch) {
                *f = mem.bytes(d);
                *l = mem.len(d);
            }
            tx_batch(plan, &mut self.sel, &frames[..got], &mut verdicts);
        }
        let (mut no_slave, mut malformed, mut diverted, mut oversize) = (0u64, 0u64, 0u64, 0u64);
        let n_slaves = slaves.len().min(self.out.len());
        for ((mut f, v), len) in self.batch.drain(..).zip(verdicts).zip(lens) {
            if len > plan.max_frame {
                oversize += 1;
                self.tx.pool.free(f);
                continue;
            }
            if let Some(b) = v.load_bucket {
                // This worker is the only writer: no locked add needed.
                let c = &self.stats.tlb_bytes[usize::from(b)];
                c.store(c.load(Relaxed) + len as u64, Relaxed);
            }
            match v.action {
                TxAction::Slave(s) | TxAction::SlaveOwnSource(s) if usize::from(s) < n_slaves => {
                    if matches!(v.action, TxAction::SlaveOwnSource(_)) {
                        mem.edit(&mut f, |b| rewrite_source(plan, s, b));
                    }
                    self.out[usize::from(s)].push(f);
                }
                TxAction::All => {
                    let targets = plan.tx_slaves();
                    let Some((&last, rest)) = targets.split_last() else {
                        self.tx.pool.free(f);
                        no_slave += 1;
                        continue;
                    };
                    for &s in rest {
                        let s = usize::from(s);
                        if s >= n_slaves {
                            continue;
                        }
                        match mem.copy(&f, self.tx.pool.region(slaves[s].region())) {
                            Some(c) => self.out[s].push(c),
                            None => {
                                self.stats.slaves[s].tx_dropped.fetch_add(1, Relaxed);
                            }
                        }
                    }
                    let last = usize::from(last);
                    if last < n_slaves {
                        self.out[last].push(f);
                    } else {
                        self.tx.pool.free(f);
                    }
                }
                TxAction::Divert => {
                    taps.push(HOST_ARP, mem.bytes(&f));
                    *wake = true;
                    diverted += 1;
                    self.tx.pool.free(f);
                }
                TxAction::Malformed => {
                    malformed += 1;
                    self.tx.pool.free(f);
                }
                TxAction::NoSlave | TxAction::Slave(_) | TxAction::SlaveOwnSource(_) => {
                    no_slave += 1;
                    self.tx.pool.free(f);
                }
            }
        }
        let st = &self.stats;
        for (c, v) in [
            (&st.tx_no_slave, no_slave),
            (&st.tx_malformed, malformed),
            (&st.tx_diverted, diverted),
            (&st.tx_oversize, oversize),
        ] {
            if v > 0 {
                c.fetch_add(v, Relaxed);
            }
        }
        let mut placed = 0u64;
        for (s, port) in slaves.iter_mut().enumerate().take(n_slaves) {
            let k = self.out[s].len();
            if k == 0 {
                continue;
            }
            let sent = Self::push_tx(mem, &mut self.tx, s + 1, port, &mut self.out[s]);
            placed += sent as u64;
            let c = &self.stats.slaves[s];
            c.tx.fetch_add(sent as u64, Relaxed);
            if sent < k {
                c.tx_dropped.fetch_add((k - sent) as u64, Relaxed);
            }
        }
        self.stats.upper_rx.fetch_add(placed, Relaxed);
        got
    }

    #[allow(clippy::too_many_arguments)] // One worker's ports, plan and outputs.
    fn deliver<M, P>(
        &mut self,
        mem: &M,
        s: usize,
        upper: &mut P,
        slaves: &mut [P],
        plan: &TxPlan,
        taps: &Taps,
        wake: &mut bool,
    ) -> usize
    where
        M: Frames<Frame = F>,
        P: Port<Frame = F>,
    {
        self.batch.clear();
        let n = slaves[s].receive(&mut self.batch, BATCH);
        if n == 0 {
            return 0;
        }
        self.tx
            .pool
            .region(slaves[s].region())
            .received(&self.batch);
        let c = &self.stats.slaves[s];
        if self.raw {
            let sent = Self::push_tx(mem, &mut self.tx, 0, upper, &mut self.batch);
            c.rx.fetch_add(sent as u64, Relaxed);
            return n;
        }
        let mut verdicts = [RxVerdict::default(); BATCH];
        {
            let mut frames: [&[u8]; BATCH] = [&[]; BATCH];
            for (f, d) in frames.iter_mut().zip(&self.batch) {
                *f = mem.bytes(d);
            }
            rx_batch(plan, s, &mut self.dups, &frames[..n], &mut verdicts);
        }
        let (mut inactive, mut dup, mut malformed, mut oversize) = (0u64, 0u64, 0u64, 0u64);
        self.keep.clear();
        for (mut f, v) in self.batch.drain(..).zip(verdicts) {
            if mem.len(&f) > plan.max_frame {
                oversize += 1;
                self.tx.pool.free(f);
                continue;
            }
            if v.tap {
                taps.push(s as u8, mem.bytes(&f));
                *wake = true;
            }
            match v.action {
                RxAction::Deliver => self.keep.push(f),
                RxAction::DeliverToBond => {
                    mem.edit(&mut f, |b| rewrite_destination(plan, b));
                    self.keep.push(f);
                }
                RxAction::Inactive => {
                    inactive += 1;
                    self.tx.pool.free(f);
                }
                RxAction::Duplicate => {
                    dup += 1;
                    self.tx.pool.free(f);
                }
                RxAction::Malformed => {
                    malformed += 1;
                    self.tx.pool.free(f);
                }
            }
        }
        for (counter, v) in [
            (&c.rx_inactive, inactive),
            (&c.rx_duplicate, dup),
            (&c.rx_malformed, malformed),
            (&c.rx_oversize, oversize),
        ] {
            if v > 0 {
                counter.fetch_add(v, Relaxed);
            }
        }
        let k = self.keep.len();
        if k == 0 {
            return n;
        }
        let sent = Self::push_tx(mem, &mut self.tx, 0, upper, &mut self.keep);
        c.rx.fetch_add(sent as u64, Relaxed);
        self.stats.upper_tx.fetch_add(sent as u64, Relaxed);
        if sent < k {
            self.stats
                .upper_tx_dropped
                .fetch_add((k - sent) as u64, Relaxed);
        }
        n
    }

    /// Kicks every TX ring that got frames (each up to [`KICK_REPEATS`] times
    /// while the device takes them in slices); returns whether a ring still
    /// holds frames the device has not taken (kick again next pass).
    fn kick<P: Port<Frame = F>>(
        &mut self,
        upper: &mut P,
        slaves: &mut [P],
        wake: &mut bool,
    ) -> bool {
        let mut again = false;
        for (i, port) in std::iter::once(upper).chain(slaves.iter_mut()).enumerate() {
            if !std::mem::take(&mut self.tx.pending[i]) {
                continue;
            }
            // Copy mode sends at most 32 frames a call and says EAGAIN while
            // more wait: kick again at once (bounded) rather than a pass
            // later, when the ring may have filled.
            let mut kick = port.kick();
            let mut calls = 1;
            for _ in 1..KICK_REPEATS {
                if kick != Kick::Again {
                    break;
                }
                kick = port.kick();
                calls += 1;
            }
            if kick != Kick::Unneeded {
                self.stats.kicks.fetch_add(calls, Relaxed);
            }
            match kick {
                Kick::Done | Kick::Unneeded => {}
                Kick::Again => {
                    self.tx.pending[i] = true;
                    again = true;
                }
                Kick::Failed if i > 0 => {
                    // A slave's device dropped frames: most likely its carrier
                    // went away. Let the control loop look now.
                    self.stats.slaves[i - 1].tx_errors.fetch_add(1, Relaxed);
                    *wake = true;
                }
                Kick::Failed => {}
            }
        }
        again
    }
}
