//! The data plane: one worker thread per queue, each with one UMEM shared by
//! its upper-port socket and its slave sockets, so that forwarding moves
//! descriptors and never copies frames (broadcast mode copies a frame once per
//! extra slave, since a frame cannot sit on two TX rings at once).
//!
//! Per loop a worker: reaps completions into its [`FramePool`], refills the
//! fill rings, forwards a batch from the upper port to the slaves chosen by
//! [`Selector::select_batch`], delivers batches from the slaves to the upper
//! port by the plan's receive rules, and kicks the TX rings with one syscall
//! per ring per batch. When a poll finds nothing for a while, it sleeps in
//! poll(2) on all its sockets, so an idle bond costs no CPU.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xbond_core::alb::{tlb_bucket, TLB_BUCKETS};
use xbond_core::plan::{Choice, DupFilter, Selector, TxPlan};
use xbond_core::{options::Mode, MAX_SLAVES};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use crate::bpf::XdpProgram;
use crate::error::{Error, Result};
use crate::pool::{FramePool, PoolCounts};
use crate::sys::{kick_tx, poll_readable, Kick, Waker};

/// Frames per batch.
pub const BATCH: usize = 64;
/// Size of every ring (fill, completion, RX, TX).
pub const RING_SIZE: u32 = 2048;
/// Size of one UMEM frame.
pub const FRAME_SIZE: u32 = 2048;
/// How long a worker keeps polling its rings without finding work before it
/// sleeps in poll(2), by default (`xbond run --busy-poll-us`).
pub const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(200);
/// Longest sleep; a stop request also wakes a sleeping worker at once.
const SLEEP_MS: i32 = 1000;

/// The plan cell shared by the control thread and the workers. Workers check
/// the version (one atomic load) per batch and take the lock only when a new
/// plan was published.
#[derive(Debug)]
pub struct PlanCell {
    version: AtomicU64,
    plan: Mutex<Arc<TxPlan>>,
}

impl PlanCell {
    /// A cell holding `plan`.
    pub fn new(plan: TxPlan) -> PlanCell {
        PlanCell {
            version: AtomicU64::new(plan.version),
            plan: Mutex::new(Arc::new(plan)),
        }
    }

    /// Publishes a new plan; workers use it from their next batch.
    pub fn publish(&self, plan: TxPlan) {
        let v = plan.version;
        let mut g = self.plan.lock().unwrap_or_else(|p| p.into_inner());
        *g = Arc::new(plan);
        self.version.store(v, std::sync::atomic::Ordering::Release);
    }

    /// The current version.
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The current plan.
    pub fn load(&self) -> Arc<TxPlan> {
        self.plan.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

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
    /// Frames dropped because the TX ring was full.
    pub tx_dropped: AtomicU64,
    /// TX kicks the kernel refused (EBUSY, ENETDOWN): a hint that the
    /// slave's carrier is gone, passed to the control loop at once.
    pub tx_errors: AtomicU64,
}

/// Counters of one worker, written once per batch and summed on read.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Per slave.
    pub slaves: Vec<SlaveCounters>,
    /// Frames from the host with no usable slave.
    pub tx_no_slave: AtomicU64,
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
    /// Times the worker went to sleep in poll(2).
    pub sleeps: AtomicU64,
    /// Passes of the worker's loop: advances at least once a second (the
    /// longest sleep) while the worker lives and is not stuck.
    pub heartbeat: AtomicU64,
    /// balance-tlb/alb: bytes sent per destination bucket (running totals).
    pub tlb_bytes: Vec<AtomicU64>,
}

impl WorkerStats {
    fn new(slaves: usize) -> WorkerStats {
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

/// Whether to try zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Try zero-copy for every socket of a worker; fall back to copy mode for
    /// all of them if any socket cannot (sockets sharing a UMEM share its mode).
    Try,
    /// Copy mode only.
    Never,
}

struct Port {
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    tx_pending: bool,
}

/// A fault a test makes a worker suffer (`xbond run --inject-fault`, hidden):
/// it strikes when the worker receives the first IPv4 frame from the host,
/// so that a test decides when by sending one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The worker thread panics.
    Panic,
    /// The worker's loop stops (the thread lives, nothing moves).
    Stall,
}

/// One worker's sockets and UMEM, ready to run.
pub struct Worker {
    queue: u32,
    /// Test-only fault, on queue 0.
    fault: Option<InjectedFault>,
    /// The injected stall struck: the loop only waits for stop.
    stalled: bool,
    /// Benchmark baseline: forward upper -> slave 0 and slaves -> upper with
    /// no bond logic at all (no selection, no receive rules).
    raw: bool,
    /// Busy-poll window before sleeping.
    spin: Duration,
    /// Per-slave output batches of the current upper-port batch, kept here
    /// so that they are not zeroed on the stack for every batch.
    tx_out: Box<[[FrameDesc; BATCH]; MAX_SLAVES]>,
    /// Completions and fill-ring frames of one port (RING_SIZE entries).
    scratch: Vec<FrameDesc>,
    fill: Vec<FrameDesc>,
    umem: Umem,
    pool: FramePool<FrameDesc>,
    upper: Port,
    slaves: Vec<Port>,
    mode: BindMode,
    stats: Arc<WorkerStats>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("slaves", &self.slaves.len())
            .finish()
    }
}

fn iface(name: &str) -> Result<Interface> {
    name.parse::<Interface>()
        .map_err(|_| Error::NoSuchInterface(name.to_string()))
}

fn sock_err(op: &'static str, name: &str, e: impl std::fmt::Display) -> Error {
    Error::sys(op, name, std::io::Error::other(e.to_string()))
}

impl Worker {
    /// Creates the UMEM and the sockets of queue `queue` on the upper port and
    /// every slave, and registers each socket in its interface's XSKMAP.
    /// `programs[0]` is the upper port's program, `programs[1..]` the slaves'.
    pub fn new(
        queue: u32,
        upper: &str,
        slaves: &[String],
        programs: &[&XdpProgram],
        zero_copy: ZeroCopy,
    ) -> Result<Worker> {
        if zero_copy == ZeroCopy::Try {
            match Self::with_mode(queue, upper, slaves, programs, BindMode::ZeroCopy) {
                Ok(w) => return Ok(w),
                Err(e) => tracing::info!(queue, "zero-copy not available ({e}); using copy mode"),
            }
        }
        Self::with_mode(queue, upper, slaves, programs, BindMode::Copy)
    }

    fn with_mode(
        queue: u32,
        upper: &str,
        slaves: &[String],
        programs: &[&XdpProgram],
        mode: BindMode,
    ) -> Result<Worker> {
        let ring = QueueSize::new(RING_SIZE).map_err(|e| sock_err("ring size", upper, e))?;
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| sock_err("frame size", upper, e))?)
            .fill_queue_size(ring)
            .comp_queue_size(ring)
            .build()
            .map_err(|e| sock_err("UMEM config", upper, e))?;
        let sockets = 1 + slaves.len() as u32;
        // Each socket: a full fill ring plus a full TX ring in flight.
        let frames = sockets * RING_SIZE * 2;
        let count = std::num::NonZeroU32::new(frames)
            .ok_or_else(|| Error::Unsupported("no frames".into()))?;
        let (umem, descs) = Umem::new(umem_cfg, count, false)
            .map_err(|e| sock_err("create UMEM (XDP_UMEM_REG)", upper, e))?;
        let bind = match mode {
            BindMode::ZeroCopy => BindFlags::XDP_ZEROCOPY | BindFlags::XDP_USE_NEED_WAKEUP,
            BindMode::Copy => BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP,
        };
        let sock_cfg = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(ring)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(bind)
            .build();
        let open = |name: &str, prog: &XdpProgram| -> Result<Port> {
            let ifc = iface(name)?;
            // SAFETY: INHIBIT_PROG_LOAD is set, as xsk-rs requires when a UMEM is
            // shared; each (interface, queue) pair is bound once per UMEM.
            let (tx, rx, rings) = unsafe { Socket::new(sock_cfg, &umem, &ifc, queue) }
                .map_err(|e| sock_err("bind AF_XDP socket", name, e))?;
            let (fq, cq) = rings.ok_or_else(|| {
                Error::Unsupported(format!(
                    "{name} queue {queue} is already bound to this UMEM"
                ))
            })?;
            prog.register_socket(queue, rx.fd().as_raw_fd())?;
            Ok(Port {
                tx,
                rx,
                fq,
                cq,
                tx_pending: false,
            })
        };
        let upper_port = open(upper, programs[0])?;
        let mut slave_ports = Vec::with_capacity(slaves.len());
        for (i, s) in slaves.iter().enumerate() {
            slave_ports.push(open(s, programs[i + 1])?);
        }
        let stats = Arc::new(WorkerStats::new(slaves.len()));
        stats.pool_total.store(u64::from(frames), Relaxed);
        Ok(Worker {
            queue,
            raw: false,
            fault: None,
            stalled: false,
            spin: SPIN_BEFORE_SLEEP,
            tx_out: Box::new([[FrameDesc::default(); BATCH]; MAX_SLAVES]),
            scratch: vec![FrameDesc::default(); RING_SIZE as usize],
            fill: Vec::with_capacity(RING_SIZE as usize),
            umem,
            pool: FramePool::new(descs),
            upper: upper_port,
            slaves: slave_ports,
            mode,
            stats,
        })
    }

    /// The bind mode all of this worker's sockets got.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// The worker's counters.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Runs until `stop` is set.
    pub fn run(
        mut self,
        plans: Arc<PlanCell>,
        stop: Arc<AtomicBool>,
        stop_waker: Arc<Waker>,
        waker: Arc<Waker>,
        taps: Arc<Taps>,
    ) {
        let mut plan = plans.load();
        let mut sel = Selector::new(0x5eed ^ u64::from(self.queue));
        let mut dups = DupFilter::default();
        let mut descs = [FrameDesc::default(); BATCH];
        let mut idle_since: Option<Instant> = None;
        while !stop.load(Relaxed) {
            if self.stalled {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            self.stats.heartbeat.fetch_add(1, Relaxed);
            if plans.version() != plan.version {
                plan = plans.load();
            }
            self.reap_and_refill();
            let mut work = self.forward_upper(&plan, &mut sel, &mut descs, &taps, &waker);
            for s in 0..self.slaves.len() {
                work += self.deliver_slave(s, &plan, &mut dups, &mut descs, &taps, &waker);
            }
            // Frames still waiting on a TX ring count as work: no sleep.
            work += usize::from(self.kick(&waker));
            self.publish_pool();
            if work > 0 {
                idle_since = None;
                continue;
            }
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.spin {
                self.sleep(&stop_waker);
                idle_since = None;
            }
        }
        // Take back what completed, so the books close.
        self.reap_and_refill();
        self.publish_pool();
    }

    fn publish_pool(&self) {
        let c = self.pool.counts();
        self.stats.pool_free.store(c.free as u64, Relaxed);
        self.stats.pool_in_fill.store(c.in_fill as u64, Relaxed);
        self.stats.pool_in_tx.store(c.in_tx as u64, Relaxed);
    }

    fn reap_and_refill(&mut self) {
        for port in std::iter::once(&mut self.upper).chain(self.slaves.iter_mut()) {
            // SAFETY: completed descriptors belong to this worker's UMEM and the
            // kernel is done with them.
            let n = unsafe { port.cq.consume(&mut self.scratch) };
            self.pool.completed(&self.scratch[..n]);

            let want = port.fq.nb_free(RING_SIZE) as usize;
            if want >= BATCH || (want > 0 && self.pool.counts().in_fill == 0) {
                self.fill.clear();
                self.pool.take_for_fill(want, &mut self.fill);
                // SAFETY: the frames come from the free pool of this UMEM, so
                // neither the kernel nor another ring holds them.
                let placed = unsafe { port.fq.produce(&self.fill) };
                self.pool.filled(placed, &self.fill[placed..]);
                // Zero-copy drivers may sleep until told that the fill ring
                // has frames again.
                if placed > 0 && port.fq.needs_wakeup() {
                    let _ = port.fq.wakeup(port.rx.fd_mut(), 0);
                }
            }
        }
    }

    /// Test-only: whether a batch holds the frame an injected fault waits
    /// for, an IPv4 frame (bond0 sends IPv6 and ARP on its own when it comes
    /// up, IPv4 only when a test gives it an address and traffic).
    fn fault_strikes(&self, descs: &[FrameDesc]) -> bool {
        descs.iter().any(|d| {
            // SAFETY: `d` was just received and is owned by the worker.
            let data = unsafe { self.umem.data(d) }.contents();
            xbond_core::wire::EthInfo::parse(data)
                .is_some_and(|e| e.ethertype == xbond_core::wire::ETH_P_IP)
        })
    }

    fn forward_upper(
        &mut self,
        plan: &TxPlan,
        sel: &mut Selector,
        descs: &mut [FrameDesc; BATCH],
        taps: &Taps,
        waker: &Waker,
    ) -> usize {
        // SAFETY: the RX ring hands over frames of this UMEM that the kernel has
        // finished writing.
        let got = unsafe { self.upper.rx.consume(&mut descs[..]) };
        if got == 0 {
            return 0;
        }
        self.pool.received(got);
        if self.fault.is_some() && self.fault_strikes(&descs[..got]) {
            match self.fault {
                Some(InjectedFault::Panic) => {
                    panic!("injected fault: worker of queue {} panics", self.queue)
                }
                Some(InjectedFault::Stall) => {
                    self.stalled = true;
                    return got;
                }
                None => {}
            }
        }
        if self.raw {
            let sent = Self::push_tx(&mut self.slaves[0], &mut self.pool, &descs[..got]);
            self.stats.slaves[0].tx.fetch_add(sent as u64, Relaxed);
            return got;
        }
        let balancing = matches!(plan.mode, Mode::BalanceTlb | Mode::BalanceAlb);
        let mut n = got;
        if plan.divert_host_arp || balancing {
            n = 0;
            for i in 0..got {
                let d = descs[i];
                // SAFETY: `d` was just received and is owned by the worker.
                let data = unsafe { self.umem.data(&d) }.contents();
                if plan.divert_host_arp && is_arp(data) {
                    // balance-alb: the control thread rewrites and sends it.
                    taps.push(HOST_ARP, data);
                    waker.wake();
                    self.pool.free(d);
                    continue;
                }
                if balancing {
                    if let Some(b) = tlb_bucket(data) {
                        // This worker is the only writer: no locked add needed.
                        let c = &self.stats.tlb_bytes[usize::from(b)];
                        c.store(c.load(Relaxed) + data.len() as u64, Relaxed);
                    }
                }
                descs[n] = d;
                n += 1;
            }
        }
        let mut choices = [Choice::Drop; BATCH];
        {
            let mut frames: [&[u8]; BATCH] = [&[]; BATCH];
            for (f, d) in frames.iter_mut().zip(&descs[..n]) {
                // SAFETY: `d` was just received into this UMEM and is owned by
                // the worker until it is placed on a ring below.
                *f = unsafe { self.umem.data(d) }.contents();
            }
            sel.select_batch(plan, &frames[..n], &mut choices);
        }
        let out = &mut *self.tx_out;
        let mut counts = [0usize; MAX_SLAVES];
        let mut no_slave = 0u64;
        for (d, c) in descs[..n].iter_mut().zip(&choices[..n]) {
            match *c {
                Choice::Slave(s) if usize::from(s) < self.slaves.len() => {
                    if balancing && Some(s) != plan.active {
                        // A frame sent on a slave other than the active one
                        // carries that slave's MAC (the switch learns it there).
                        // SAFETY: `d` is owned by the worker, not on any ring.
                        let mut data = unsafe { self.umem.data_mut(d) };
                        if let Some(src) = data.contents_mut().get_mut(6..12) {
                            src.copy_from_slice(&plan.slave_macs[usize::from(s)].0);
                        }
                    }
                    let s = usize::from(s);
                    out[s][counts[s]] = *d;
                    counts[s] += 1;
                }
                Choice::All => {
                    let targets = plan.tx_slaves();
                    let Some((&last, rest)) = targets.split_last() else {
                        self.pool.free(*d);
                        no_slave += 1;
                        continue;
                    };
                    for &s in rest {
                        let s = usize::from(s);
                        if s >= self.slaves.len() {
                            continue;
                        }
                        match Self::copy_frame(&self.umem, &mut self.pool, d) {
                            Some(copy) => {
                                out[s][counts[s]] = copy;
                                counts[s] += 1;
                            }
                            None => {
                                self.stats.slaves[s].tx_dropped.fetch_add(1, Relaxed);
                            }
                        }
                    }
                    let last = usize::from(last);
                    if last < self.slaves.len() {
                        out[last][counts[last]] = *d;
                        counts[last] += 1;
                    } else {
                        self.pool.free(*d);
                    }
                }
                _ => {
                    self.pool.free(*d);
                    no_slave += 1;
                }
            }
        }
        if no_slave > 0 {
            self.stats.tx_no_slave.fetch_add(no_slave, Relaxed);
        }
        self.stats.upper_rx.fetch_add(n as u64 - no_slave, Relaxed);
        for s in 0..self.slaves.len() {
            let k = counts[s];
            if k == 0 {
                continue;
            }
            let sent = Self::push_tx(&mut self.slaves[s], &mut self.pool, &out[s][..k]);
            let c = &self.stats.slaves[s];
            c.tx.fetch_add(sent as u64, Relaxed);
            if sent < k {
                c.tx_dropped.fetch_add((k - sent) as u64, Relaxed);
            }
        }
        got
    }

    /// Copies a frame into a fresh frame of the pool (broadcast mode).
    fn copy_frame(
        umem: &Umem,
        pool: &mut FramePool<FrameDesc>,
        d: &FrameDesc,
    ) -> Option<FrameDesc> {
        let mut copy = pool.alloc()?;
        // SAFETY: `d` is owned by the worker (received, not yet on a ring) and
        // `copy` comes from the free pool; both are frames of this UMEM and are
        // distinct, so the shared and the mutable view do not overlap.
        let src = unsafe { umem.data(d) }.contents();
        // SAFETY: as above; `copy` is not on any ring.
        let mut dst = unsafe { umem.data_mut(&mut copy) };
        let mut cur = dst.cursor();
        // The cursor starts at the frame's previous length; the copy starts at 0.
        cur.set_pos(0);
        if std::io::Write::write_all(&mut cur, src).is_err() {
            pool.free(copy);
            return None;
        }
        Some(copy)
    }

    /// Places frames on a TX ring; frames that do not fit go back to the pool.
    /// Returns how many were placed.
    fn push_tx(port: &mut Port, pool: &mut FramePool<FrameDesc>, frames: &[FrameDesc]) -> usize {
        let room = port.tx.nb_free(frames.len() as u32) as usize;
        let k = room.min(frames.len());
        // SAFETY: the frames belong to this UMEM and are owned by the worker;
        // after this call the kernel owns them until their completion.
        let sent = unsafe { port.tx.produce(&frames[..k]) };
        pool.sent(sent);
        for d in &frames[sent..] {
            pool.free(*d);
        }
        if sent > 0 {
            port.tx_pending = true;
        }
        sent
    }

    #[allow(clippy::too_many_arguments)] // The per-batch state of one worker.
    fn deliver_slave(
        &mut self,
        s: usize,
        plan: &TxPlan,
        dups: &mut DupFilter,
        descs: &mut [FrameDesc; BATCH],
        taps: &Taps,
        waker: &Waker,
    ) -> usize {
        // SAFETY: as in forward_upper.
        let n = unsafe { self.slaves[s].rx.consume(&mut descs[..]) };
        if n == 0 {
            return 0;
        }
        self.pool.received(n);
        if plan.tap_arp {
            let mut tapped = false;
            for d in &descs[..n] {
                // SAFETY: `d` was just received and is owned by the worker.
                let data = unsafe { self.umem.data(d) }.contents();
                if xbond_core::wire::is_arp_or_nd(data) {
                    taps.push(s as u8, data);
                    tapped = true;
                }
            }
            if tapped {
                waker.wake();
            }
        }
        if self.raw {
            let sent = Self::push_tx(&mut self.upper, &mut self.pool, &descs[..n]);
            self.stats.slaves[s].rx.fetch_add(sent as u64, Relaxed);
            return n;
        }
        let c = &self.stats.slaves[s];
        if !plan.delivers_from(s) {
            for d in &descs[..n] {
                self.pool.free(*d);
            }
            c.rx_inactive.fetch_add(n as u64, Relaxed);
            return n;
        }
        let mut keep = [FrameDesc::default(); BATCH];
        let mut k = 0;
        let mut dup = 0u64;
        let mut n = n;
        if matches!(plan.mode, Mode::BalanceTlb | Mode::BalanceAlb) {
            // A slave other than the active one delivers only what peers sent
            // to its own MAC (ALB), rewritten to the bond MAC the host
            // accepts; broadcasts and floods come in once, on the active slave.
            let mine = plan.slave_macs[s].0;
            let active = plan.active == Some(s as u8);
            let mut kept = 0;
            let mut dropped = 0u64;
            for i in 0..n {
                let mut d = descs[i];
                let keep = {
                    // SAFETY: `d` was just received and is owned by the worker.
                    let mut data = unsafe { self.umem.data_mut(&mut d) };
                    match data.contents_mut().get_mut(0..6) {
                        Some(dst) if *dst == mine && mine != plan.bond_mac.0 => {
                            dst.copy_from_slice(&plan.bond_mac.0);
                            true
                        }
                        Some(_) => active,
                        None => false,
                    }
                };
                if keep {
                    descs[kept] = d;
                    kept += 1;
                } else {
                    self.pool.free(d);
                    dropped += 1;
                }
            }
            if dropped > 0 {
                self.stats.slaves[s].rx_inactive.fetch_add(dropped, Relaxed);
            }
            n = kept;
        }
        for d in &descs[..n] {
            let is_dup = plan.mode == Mode::Broadcast && {
                // SAFETY: `d` was just received and is owned by the worker.
                let data = unsafe { self.umem.data(d) }.contents();
                dups.is_duplicate(data, s as u8)
            };
            if is_dup {
                self.pool.free(*d);
                dup += 1;
            } else {
                keep[k] = *d;
                k += 1;
            }
        }
        if dup > 0 {
            c.rx_duplicate.fetch_add(dup, Relaxed);
        }
        let sent = Self::push_tx(&mut self.upper, &mut self.pool, &keep[..k]);
        c.rx.fetch_add(sent as u64, Relaxed);
        self.stats.upper_tx.fetch_add(sent as u64, Relaxed);
        if sent < k {
            self.stats
                .upper_tx_dropped
                .fetch_add((k - sent) as u64, Relaxed);
        }
        n
    }

    /// Kicks every TX ring that got frames; returns whether any ring still
    /// holds frames the kernel has not taken (kick again next loop).
    fn kick(&mut self, waker: &Waker) -> bool {
        let mut again = false;
        for (i, port) in std::iter::once(&mut self.upper)
            .chain(self.slaves.iter_mut())
            .enumerate()
        {
            if !port.tx_pending {
                continue;
            }
            port.tx_pending = false;
            if !port.tx.needs_wakeup() {
                continue;
            }
            match kick_tx(port.tx.fd().as_raw_fd()) {
                Kick::Done => {}
                Kick::Again => {
                    port.tx_pending = true;
                    again = true;
                }
                Kick::Failed(_) if i > 0 => {
                    // A slave's device dropped a frame: most likely its carrier
                    // went away. Let the control loop look now.
                    self.stats.slaves[i - 1].tx_errors.fetch_add(1, Relaxed);
                    waker.wake();
                }
                Kick::Failed(_) => {}
            }
        }
        again
    }

    fn sleep(&mut self, stop_waker: &Waker) {
        let mut fds = [0; MAX_SLAVES + 2];
        let mut n = 0;
        for fd in std::iter::once(&self.upper)
            .chain(self.slaves.iter())
            .map(|p| p.rx.fd().as_raw_fd())
            .chain(std::iter::once(stop_waker.fd()))
        {
            fds[n] = fd;
            n += 1;
        }
        self.stats.sleeps.fetch_add(1, Relaxed);
        poll_readable(&fds[..n], SLEEP_MS);
    }
}

/// Everything the data plane runs: the XDP programs and the worker threads.
#[derive(Debug)]
pub struct Dataplane {
    /// Upper port's program, then one per slave.
    programs: Vec<XdpProgram>,
    plans: Arc<PlanCell>,
    stats: Vec<Arc<WorkerStats>>,
    modes: Vec<BindMode>,
    stop: Arc<AtomicBool>,
    stop_waker: Arc<Waker>,
    threads: Vec<std::thread::JoinHandle<()>>,
    last_rx_mask: Option<(u32, bool)>,
    last_tx_errors: u64,
    taps: Arc<Taps>,
    tlb_seen: Box<[u64; TLB_BUCKETS]>,
    /// Per worker: the heartbeat last seen and when it last moved.
    beats: Vec<(u64, Instant)>,
}

/// A worker that no longer forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerFault {
    /// The thread ended (it panicked) while the data plane was running.
    Dead {
        /// The worker's queue.
        queue: usize,
    },
    /// The thread lives but its loop has not moved for longer than allowed.
    Stuck {
        /// The worker's queue.
        queue: usize,
        /// How long its loop has not moved.
        for_: Duration,
    },
}

impl std::fmt::Display for WorkerFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerFault::Dead { queue } => write!(f, "the worker of queue {queue} died"),
            WorkerFault::Stuck { queue, for_ } => write!(
                f,
                "the worker of queue {queue} has been stuck for {} ms",
                for_.as_millis()
            ),
        }
    }
}

/// The slave index under which frames the host sent are queued in [`Taps`].
pub const HOST_ARP: u8 = u8::MAX;

fn is_arp(frame: &[u8]) -> bool {
    xbond_core::wire::EthInfo::parse(frame)
        .is_some_and(|e| e.ethertype == xbond_core::wire::ETH_P_ARP)
}

/// Frames the workers copy to the control thread (ARP and IPv6 ND received
/// on slaves, for the link monitors and ALB). Bounded: when the control
/// thread falls behind, copies are dropped and counted, never the traffic.
#[derive(Debug)]
pub struct Taps {
    queue: crossbeam::queue::ArrayQueue<(u8, Vec<u8>)>,
    /// The host's own ARP (balance-alb), apart so that a storm of ARP from
    /// the network cannot crowd it out.
    host: crossbeam::queue::ArrayQueue<(u8, Vec<u8>)>,
    /// Copies dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl Taps {
    fn new() -> Taps {
        Taps {
            queue: crossbeam::queue::ArrayQueue::new(1024),
            host: crossbeam::queue::ArrayQueue::new(256),
            dropped: AtomicU64::new(0),
        }
    }

    fn push(&self, slave: u8, frame: &[u8]) {
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

/// Where the data plane runs.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// Data-plane side of the upper port.
    pub upper: String,
    /// Slave interfaces.
    pub slaves: Vec<String>,
    /// Number of queues (= workers).
    pub queues: u32,
    /// Zero-copy policy.
    pub zero_copy: ZeroCopy,
    /// Benchmark baseline: bypass the bond logic (one slave).
    pub raw: bool,
    /// Busy-poll window before a worker sleeps.
    pub spin: Duration,
    /// Test-only: a fault for the worker of queue 0.
    pub fault: Option<InjectedFault>,
}

impl Dataplane {
    /// Attaches the programs, creates the workers and starts them with `plan`.
    pub fn start(
        cfg: &DataplaneConfig,
        ifindexes: &[u32],
        plan: TxPlan,
        waker: Arc<Waker>,
    ) -> Result<Dataplane> {
        let names: Vec<&str> = std::iter::once(cfg.upper.as_str())
            .chain(cfg.slaves.iter().map(String::as_str))
            .collect();
        let mut programs = Vec::with_capacity(names.len());
        for (name, idx) in names.iter().zip(ifindexes) {
            let p = XdpProgram::attach(name, *idx)?;
            programs.push(p);
        }
        let plans = Arc::new(PlanCell::new(plan.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let stop_waker = Arc::new(Waker::new().map_err(|e| Error::sys("eventfd", &cfg.upper, e))?);
        let mut dp = Dataplane {
            programs,
            plans,
            stats: Vec::new(),
            modes: Vec::new(),
            stop,
            stop_waker,
            threads: Vec::new(),
            last_rx_mask: None,
            last_tx_errors: 0,
            taps: Arc::new(Taps::new()),
            tlb_seen: Box::new([0; TLB_BUCKETS]),
            beats: Vec::new(),
        };
        dp.configure_programs(&plan)?;
        let mut workers = Vec::new();
        {
            let progs: Vec<&XdpProgram> = dp.programs.iter().collect();
            for q in 0..cfg.queues {
                let mut w = Worker::new(q, &cfg.upper, &cfg.slaves, &progs, cfg.zero_copy)?;
                w.raw = cfg.raw;
                w.spin = cfg.spin;
                w.fault = cfg.fault.filter(|_| q == 0);
                workers.push(w);
            }
        }
        for w in workers {
            dp.stats.push(w.stats());
            dp.modes.push(w.mode());
            let plans = dp.plans.clone();
            let stop = dp.stop.clone();
            let q = w.queue;
            let waker = waker.clone();
            let stop_waker = dp.stop_waker.clone();
            let taps = dp.taps.clone();
            let t = std::thread::Builder::new()
                .name(format!("xbond-q{q}"))
                .spawn(move || w.run(plans, stop, stop_waker, waker, taps))
                .map_err(|e| Error::sys("spawn worker thread", &cfg.upper, e))?;
            dp.threads.push(t);
        }
        dp.beats = vec![(0, Instant::now()); dp.threads.len()];
        Ok(dp)
    }

    fn configure_programs(&mut self, plan: &TxPlan) -> Result<()> {
        let key = (plan.rx_mask, plan.tap_arp);
        if self.last_rx_mask == Some(key) {
            return Ok(());
        }
        self.programs[0].configure(true, false, false)?;
        for (i, p) in self.programs[1..].iter().enumerate() {
            p.configure(plan.delivers_from(i), true, plan.tap_arp)?;
        }
        self.last_rx_mask = Some(key);
        Ok(())
    }

    /// ARP and ND frames tapped by the workers: (slave, frame).
    pub fn taps(&self) -> &Taps {
        &self.taps
    }

    /// Publishes a new plan to the workers and the XDP programs.
    pub fn publish(&mut self, plan: TxPlan) -> Result<()> {
        // Workers first: they stop sending on a failed slave at their next batch.
        self.plans.publish(plan.clone());
        self.configure_programs(&plan)
    }

    /// balance-tlb/alb: bytes per destination bucket sent by all workers since
    /// the last call.
    pub fn take_tlb_load(&mut self) -> [u64; TLB_BUCKETS] {
        let mut out = [0u64; TLB_BUCKETS];
        for (b, o) in out.iter_mut().enumerate() {
            let total: u64 = self
                .stats
                .iter()
                .map(|w| w.tlb_bytes[b].load(Relaxed))
                .sum();
            *o = total.wrapping_sub(self.tlb_seen[b]);
            self.tlb_seen[b] = total;
        }
        out
    }

    /// Whether a worker reported new slave TX failures since the last call
    /// (a hint that a carrier went away).
    pub fn take_tx_errors(&mut self) -> bool {
        let now: u64 = self
            .stats
            .iter()
            .flat_map(|w| w.slaves.iter())
            .map(|c| c.tx_errors.load(Relaxed))
            .sum();
        let new = now != self.last_tx_errors;
        self.last_tx_errors = now;
        new
    }

    /// Checks that every worker lives and its loop moves: a worker whose
    /// thread ended, or whose loop has not passed for `stuck_after` (longer
    /// than its longest sleep, one second), is a fault.
    pub fn check_workers(&mut self, stuck_after: Duration) -> std::result::Result<(), WorkerFault> {
        let now = Instant::now();
        for (queue, ((t, st), beat)) in self
            .threads
            .iter()
            .zip(&self.stats)
            .zip(self.beats.iter_mut())
            .enumerate()
        {
            if t.is_finished() {
                return Err(WorkerFault::Dead { queue });
            }
            let hb = st.heartbeat.load(Relaxed);
            if hb != beat.0 {
                *beat = (hb, now);
            } else if now.duration_since(beat.1) > stuck_after {
                return Err(WorkerFault::Stuck {
                    queue,
                    for_: now.duration_since(beat.1),
                });
            }
        }
        Ok(())
    }

    /// Bind mode of each worker's sockets.
    pub fn bind_modes(&self) -> &[BindMode] {
        &self.modes
    }

    /// The XDP programs: upper port first, then the slaves.
    pub fn programs(&self) -> &[XdpProgram] {
        &self.programs
    }

    /// Per-worker counters.
    pub fn stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// Stops the workers and waits for them; the programs detach on drop.
    pub fn stop(&mut self) {
        self.stop.store(true, Relaxed);
        self.stop_waker.wake();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop();
    }
}
