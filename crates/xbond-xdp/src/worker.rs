//! The data plane: one worker thread per queue, each with one UMEM shared by
//! its upper-port socket and its slave sockets, so that forwarding moves
//! descriptors and never copies frames (broadcast mode copies a frame once per
//! extra slave, since a frame cannot sit on two TX rings at once).
//!
//! A worker's loop is the core's [`Engine`] over [`XdpPort`]s: per pass it
//! reaps completions, refills the fill rings, forwards a batch from the upper
//! port to the slaves and a batch from each slave to the upper port by the
//! verdicts of `xbond_core::datapath`, and kicks the TX rings with one
//! syscall per ring per batch. When a pass finds nothing for a while, the
//! worker sleeps in poll(2) on all its sockets, so an idle bond costs no CPU.
//! [`Dataplane`] attaches the XDP programs, starts the workers and watches
//! that they live.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xbond_core::alb::TLB_BUCKETS;
use xbond_core::datapath::engine::Engine;
pub use xbond_core::datapath::engine::{SlaveCounters, Taps, WorkerStats, HOST_ARP};
pub use xbond_core::datapath::pool::PoolCounts;
use xbond_core::datapath::{Frames, Port, BATCH};
use xbond_core::plan::TxPlan;
use xbond_core::wire::{EthInfo, ETH_P_IP};

use crate::bpf::XdpProgram;
use crate::channel::{upper_channel, ChannelPort, UpperChannel};
use crate::error::{Error, Result};
use crate::sys::{poll, Waker};
use crate::xsk::{create_umem, UmemFrames, XdpFrame, XdpPort};
pub use crate::xsk::{BindMode, FRAME_SIZE, RING_SIZE};

/// How long a worker keeps polling its rings without finding work before it
/// sleeps in poll(2), by default (`xbond run --busy-poll-us`).
pub const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(200);
/// Longest sleep; a stop request also wakes a sleeping worker at once.
const SLEEP: Duration = Duration::from_secs(1);

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

/// Whether to try zero-copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroCopy {
    /// Try zero-copy for every socket of a worker; fall back to copy mode for
    /// all of them if any socket cannot (sockets sharing a UMEM share its mode).
    Try,
    /// Copy mode only.
    Never,
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

/// The data plane's host side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperSpec {
    /// An interface: the data-plane side of the veth pair whose host side is
    /// `bond0`, or an existing interface (an L2 appliance). It gets the XDP
    /// program and an AF_XDP socket per queue.
    Interface {
        /// Its name.
        name: String,
        /// Its index.
        ifindex: u32,
    },
    /// An in-process channel of frames ([`UpperChannel`]), one queue.
    Channel,
}

impl UpperSpec {
    fn name(&self) -> &str {
        match self {
            UpperSpec::Interface { name, .. } => name,
            UpperSpec::Channel => "the in-process upper port",
        }
    }
}

#[derive(Debug)]
enum Io {
    Xdp(XdpPort),
    Channel(ChannelPort),
}

/// A worker's port, with the test-only fault that watches what the host
/// sends (on the upper port of queue 0).
#[derive(Debug)]
struct WorkerPort {
    io: Io,
    queue: u32,
    fault: Option<(InjectedFault, UmemFrames)>,
    struck: Option<InjectedFault>,
}

impl WorkerPort {
    fn new(io: Io, queue: u32) -> WorkerPort {
        WorkerPort {
            io,
            queue,
            fault: None,
            struck: None,
        }
    }

    fn fd(&self) -> std::os::fd::RawFd {
        match &self.io {
            Io::Xdp(p) => p.fd(),
            Io::Channel(p) => p.fd(),
        }
    }
}

macro_rules! io {
    ($self:ident, $p:ident => $e:expr) => {
        match &mut $self.io {
            Io::Xdp($p) => $e,
            Io::Channel($p) => $e,
        }
    };
}

impl Port for WorkerPort {
    type Frame = XdpFrame;

    fn receive(&mut self, out: &mut Vec<XdpFrame>, max: usize) -> usize {
        let from = out.len();
        let n = io!(self, p => p.receive(out, max));
        if let Some((fault, mem)) = &self.fault {
            let ipv4 = out[from..]
                .iter()
                .any(|f| EthInfo::parse(mem.bytes(f)).is_some_and(|e| e.ethertype == ETH_P_IP));
            if ipv4 {
                if *fault == InjectedFault::Panic {
                    panic!("injected fault: worker of queue {} panics", self.queue);
                }
                self.struck = Some(*fault);
            }
        }
        n
    }

    fn transmit(&mut self, frames: &mut Vec<XdpFrame>) -> usize {
        io!(self, p => p.transmit(frames))
    }

    fn complete(&mut self, out: &mut Vec<XdpFrame>) -> usize {
        io!(self, p => p.complete(out))
    }

    fn fill_room(&mut self) -> usize {
        io!(self, p => p.fill_room())
    }

    fn fill(&mut self, frames: &mut Vec<XdpFrame>) -> usize {
        io!(self, p => p.fill(frames))
    }

    fn kick(&mut self) -> xbond_core::datapath::Kick {
        io!(self, p => p.kick())
    }
}

/// One worker's sockets and UMEM, ready to run.
pub struct Worker {
    queue: u32,
    /// Busy-poll window before sleeping.
    spin: Duration,
    mem: UmemFrames,
    engine: Engine<XdpFrame>,
    upper: WorkerPort,
    slaves: Vec<WorkerPort>,
    mode: BindMode,
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

impl Worker {
    /// Creates the UMEM and the sockets of queue `queue` on the upper port and
    /// every slave, and registers each socket in its interface's XSKMAP
    /// (`upper_program` is the upper port's when it is an interface). With an
    /// in-process upper port, also returns the program's end of it.
    pub fn new(
        queue: u32,
        upper: &UpperSpec,
        upper_program: Option<&XdpProgram>,
        slaves: &[(String, &XdpProgram)],
        zero_copy: ZeroCopy,
    ) -> Result<(Worker, Option<UpperChannel>)> {
        if zero_copy == ZeroCopy::Try {
            match Self::with_mode(queue, upper, upper_program, slaves, BindMode::ZeroCopy) {
                Ok(w) => return Ok(w),
                Err(e) => tracing::info!(queue, "zero-copy not available ({e}); using copy mode"),
            }
        }
        Self::with_mode(queue, upper, upper_program, slaves, BindMode::Copy)
    }

    fn with_mode(
        queue: u32,
        upper: &UpperSpec,
        upper_program: Option<&XdpProgram>,
        slaves: &[(String, &XdpProgram)],
        mode: BindMode,
    ) -> Result<(Worker, Option<UpperChannel>)> {
        let sockets = 1 + slaves.len() as u32;
        // Each socket: a full fill ring plus a full TX ring in flight.
        let (umem, frames) = create_umem(upper.name(), sockets * RING_SIZE * 2)?;
        let open = |name: &str, prog: &XdpProgram| -> Result<WorkerPort> {
            let port = XdpPort::bind(&umem, name, queue, mode)?;
            prog.register_socket(queue, port.fd())?;
            Ok(WorkerPort::new(Io::Xdp(port), queue))
        };
        let mem = UmemFrames::new(umem.clone());
        let (upper_port, channel) = match (upper, upper_program) {
            (UpperSpec::Interface { name, .. }, Some(prog)) => (open(name, prog)?, None),
            (UpperSpec::Interface { name, .. }, None) => {
                return Err(Error::Unsupported(format!("{name}: no XDP program")))
            }
            (UpperSpec::Channel, _) => {
                let (program, port) = upper_channel(mem.clone())
                    .map_err(|e| Error::sys("eventfd", upper.name(), e))?;
                (WorkerPort::new(Io::Channel(port), queue), Some(program))
            }
        };
        let mut slave_ports = Vec::with_capacity(slaves.len());
        for (name, prog) in slaves {
            slave_ports.push(open(name, prog)?);
        }
        let worker = Worker {
            queue,
            spin: SPIN_BEFORE_SLEEP,
            engine: Engine::new(frames, slaves.len(), 0x5eed ^ u64::from(queue)),
            mem,
            upper: upper_port,
            slaves: slave_ports,
            mode,
        };
        Ok((worker, channel))
    }

    /// The bind mode all of this worker's sockets got.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// The worker's counters.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.engine.stats()
    }

    fn set_fault(&mut self, fault: Option<InjectedFault>) {
        self.upper.fault = fault.map(|f| (f, self.mem.clone()));
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
        let stats = self.engine.stats();
        let mut plan = plans.load();
        let mut idle_since: Option<Instant> = None;
        while !stop.load(Relaxed) {
            if self.upper.struck.is_some() {
                // The injected stall struck: the loop only waits for stop.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
            stats.heartbeat.fetch_add(1, Relaxed);
            if plans.version() != plan.version {
                plan = plans.load();
            }
            let pass = self
                .engine
                .pass(&self.mem, &mut self.upper, &mut self.slaves, &plan, &taps);
            if pass.wake_control {
                waker.wake();
            }
            self.engine.publish_pool();
            if pass.work > 0 {
                idle_since = None;
                continue;
            }
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= self.spin {
                self.sleep(&stop_waker, &stats);
                idle_since = None;
            }
        }
        // Take back what completed, so the books close.
        self.engine
            .reap_and_refill(&mut self.upper, &mut self.slaves);
        self.engine.publish_pool();
    }

    fn sleep(&mut self, stop_waker: &Waker, stats: &WorkerStats) {
        let mut fds = [0; xbond_core::MAX_SLAVES + 2];
        let mut n = 0;
        for fd in std::iter::once(&self.upper)
            .chain(self.slaves.iter())
            .map(WorkerPort::fd)
            .chain(std::iter::once(stop_waker.fd()))
        {
            fds[n] = fd;
            n += 1;
        }
        stats.sleeps.fetch_add(1, Relaxed);
        // An error counts as a wake-up: the worker looks at its rings anyway.
        let _ = poll(&fds[..n], SLEEP, "worker sockets");
    }
}

const _: () = assert!(BATCH <= RING_SIZE as usize);

/// Everything the data plane runs: the XDP programs and the worker threads.
#[derive(Debug)]
pub struct Dataplane {
    /// The upper port's program (when it is an interface).
    upper_program: Option<XdpProgram>,
    /// One per slave.
    slave_programs: Vec<XdpProgram>,
    /// The program's end of an in-process upper port.
    channel: Option<UpperChannel>,
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

/// Where the data plane runs.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// The host side.
    pub upper: UpperSpec,
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
    /// `slave_ifindexes` are the slaves' interface indices, in order.
    pub fn start(
        cfg: &DataplaneConfig,
        slave_ifindexes: &[u32],
        plan: TxPlan,
        waker: Arc<Waker>,
    ) -> Result<Dataplane> {
        let upper_name = cfg.upper.name().to_string();
        if cfg.upper == UpperSpec::Channel && cfg.queues != 1 {
            return Err(Error::Unsupported(format!(
                "an in-process upper port has one queue, but queues = {} (set queues = 1)",
                cfg.queues
            )));
        }
        let upper_program = match &cfg.upper {
            UpperSpec::Interface { name, ifindex } => Some(XdpProgram::attach(name, *ifindex)?),
            UpperSpec::Channel => None,
        };
        let mut slave_programs = Vec::with_capacity(cfg.slaves.len());
        for (name, idx) in cfg.slaves.iter().zip(slave_ifindexes) {
            slave_programs.push(XdpProgram::attach(name, *idx)?);
        }
        let plans = Arc::new(PlanCell::new(plan.clone()));
        let stop = Arc::new(AtomicBool::new(false));
        let stop_waker = Arc::new(Waker::new().map_err(|e| Error::sys("eventfd", &upper_name, e))?);
        let mut dp = Dataplane {
            upper_program,
            slave_programs,
            channel: None,
            plans,
            stats: Vec::new(),
            modes: Vec::new(),
            stop,
            stop_waker,
            threads: Vec::new(),
            last_rx_mask: None,
            last_tx_errors: 0,
            taps: Arc::new(Taps::default()),
            tlb_seen: Box::new([0; TLB_BUCKETS]),
            beats: Vec::new(),
        };
        dp.configure_programs(&plan)?;
        let mut workers = Vec::new();
        {
            let slaves: Vec<(String, &XdpProgram)> = cfg
                .slaves
                .iter()
                .cloned()
                .zip(dp.slave_programs.iter())
                .collect();
            for q in 0..cfg.queues {
                let (mut w, channel) = Worker::new(
                    q,
                    &cfg.upper,
                    dp.upper_program.as_ref(),
                    &slaves,
                    cfg.zero_copy,
                )?;
                if channel.is_some() {
                    dp.channel = channel;
                }
                w.engine.set_raw(cfg.raw);
                w.spin = cfg.spin;
                w.set_fault(cfg.fault.filter(|_| q == 0));
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
                .map_err(|e| Error::sys("spawn worker thread", &upper_name, e))?;
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
        if let Some(p) = &self.upper_program {
            p.configure(true, false, false)?;
        }
        for (i, p) in self.slave_programs.iter().enumerate() {
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

    /// The upper port's XDP program, when the upper port is an interface.
    pub fn upper_program(&self) -> Option<&XdpProgram> {
        self.upper_program.as_ref()
    }

    /// The slaves' XDP programs, in slave order.
    pub fn slave_programs(&self) -> &[XdpProgram] {
        &self.slave_programs
    }

    /// The program's end of an in-process upper port.
    pub fn upper_channel(&self) -> Option<&UpperChannel> {
        self.channel.as_ref()
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
