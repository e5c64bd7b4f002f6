//! One queue of the data plane: a UMEM shared by the upper port's socket on
//! that queue and every slave's, so that forwarding moves descriptors and
//! never copies frames (broadcast mode copies a frame once per extra slave,
//! since a frame cannot sit on two TX rings at once; an in-process upper
//! port copies once each way). A worker thread runs one or more queues
//! ([`run_queues`]).
//!
//! A worker's loop is the core's [`Engine`] over [`XdpPort`]s: per pass it
//! reaps completions, refills the fill rings, forwards a batch from the upper
//! port to the slaves and a batch from each slave to the upper port by the
//! verdicts of `xbond_core::datapath`, and kicks the TX rings with one
//! syscall per ring per batch. When a pass finds nothing for a while, the
//! thread sleeps in poll(2) on all its sockets, so an idle bond costs no CPU.
//! [`crate::dataplane::Dataplane`] starts the workers and watches that they
//! live.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use xbond_core::datapath::engine::Engine;
pub use xbond_core::datapath::engine::{SlaveCounters, Taps, WorkerStats, HOST_ARP};
pub use xbond_core::datapath::pool::PoolCounts;
use xbond_core::datapath::{Frames, Port, BATCH};
use xbond_core::plan::TxPlan;
use xbond_core::wire::{EthInfo, ETH_P_IP};

use crate::bpf::XdpProgram;
use crate::channel::{ChannelPort, UpperChannel};
use crate::error::{Error, Result};
use crate::sys::{poll, Waker};
use crate::xsk::{create_umem, UmemFrames, XdpFrame, XdpPort};
pub use crate::xsk::{BindMode, BUFFER_SIZE, FRAME_SIZE, MAX_MULTI_BUFFER_FRAME, RING_SIZE};

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

/// Whether `e` says that a bind mode is not supported (the driver or the
/// kernel lacks it), as opposed to a failure that another mode would not
/// cure (no memory, no device, no permission).
fn not_supported(e: &Error) -> bool {
    match e {
        Error::Sys { source, .. } => matches!(
            source.raw_os_error(),
            Some(libc::EOPNOTSUPP | libc::EINVAL | libc::EPROTONOSUPPORT | libc::EAFNOSUPPORT)
        ),
        Error::Unsupported(_) => true,
        _ => false,
    }
}

/// The data plane's host side.
#[derive(Debug, Clone)]
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
    /// An in-process channel of frames ([`UpperChannel`]), shared by the
    /// queues.
    Channel(UpperChannel),
}

impl UpperSpec {
    pub(crate) fn name(&self) -> &str {
        match self {
            UpperSpec::Interface { name, .. } => name,
            UpperSpec::Channel(_) => "the in-process upper port",
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
    multi_buffer: bool,
    /// The better bind modes tried first, and why each was refused.
    refused: Vec<String>,
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
    /// (`upper_program` is the upper port's when it is an interface).
    ///
    /// The sockets get multi-buffer (`XDP_USE_SG`) where the kernel and the
    /// driver have it; with `jumbo` (frames longer than one buffer must
    /// cross) they must, and copy mode with multi-buffer is preferred to
    /// zero-copy without. A mode is given up only on an error that means
    /// "not supported"; any other error is returned.
    pub fn new(
        queue: u32,
        upper: &UpperSpec,
        upper_program: Option<&XdpProgram>,
        slaves: &[(String, &XdpProgram)],
        zero_copy: ZeroCopy,
        jumbo: bool,
    ) -> Result<Worker> {
        let mut tries: Vec<(BindMode, bool)> = Vec::with_capacity(4);
        let modes: &[BindMode] = match zero_copy {
            ZeroCopy::Try => &[BindMode::ZeroCopy, BindMode::Copy],
            ZeroCopy::Never => &[BindMode::Copy],
        };
        for &m in modes {
            tries.push((m, true));
            if !jumbo {
                tries.push((m, false));
            }
        }
        let mut last = None;
        let mut refused = Vec::new();
        for (mode, sg) in tries {
            let what = format!(
                "{}{}",
                mode.as_str(),
                if sg { " with multi-buffer" } else { "" }
            );
            match Self::with_mode(queue, upper, upper_program, slaves, mode, sg) {
                Ok(mut w) => {
                    if !refused.is_empty() {
                        tracing::info!(queue, "sockets bound {what}; {}", refused.join("; "));
                    }
                    w.refused = refused;
                    return Ok(w);
                }
                Err(e) if not_supported(&e) => {
                    refused.push(format!("{what} refused: {e}"));
                    last = Some((e, sg));
                }
                Err(e) => return Err(e),
            }
        }
        Err(match last {
            Some((e, true)) if jumbo => Error::Unsupported(format!(
                "frames longer than {BUFFER_SIZE} bytes need AF_XDP multi-buffer \
                 (XDP_USE_SG, Linux 6.6 or later), which the sockets of queue {queue} \
                 could not get on this kernel ({}): {e}",
                crate::sys::kernel_release()
            )),
            Some((e, _)) => e,
            None => Error::Unsupported("no bind mode to try".into()),
        })
    }

    fn with_mode(
        queue: u32,
        upper: &UpperSpec,
        upper_program: Option<&XdpProgram>,
        slaves: &[(String, &XdpProgram)],
        mode: BindMode,
        multi_buffer: bool,
    ) -> Result<Worker> {
        let sockets = 1 + slaves.len() as u32;
        // Each socket: a full fill ring plus a full TX ring in flight.
        let (umem, frames) = create_umem(upper.name(), sockets * RING_SIZE * 2)?;
        let open = |name: &str, prog: &XdpProgram| -> Result<WorkerPort> {
            let port = XdpPort::bind(&umem, name, queue, mode, multi_buffer)?;
            prog.register_socket(queue, port.fd())?;
            Ok(WorkerPort::new(Io::Xdp(port), queue))
        };
        let mem = UmemFrames::new(umem.clone());
        let upper_port = match (upper, upper_program) {
            (UpperSpec::Interface { name, .. }, Some(prog)) => open(name, prog)?,
            (UpperSpec::Interface { name, .. }, None) => {
                return Err(Error::Unsupported(format!("{name}: no XDP program")))
            }
            (UpperSpec::Channel(c), _) => WorkerPort::new(Io::Channel(c.port(mem.clone())), queue),
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
            multi_buffer,
            refused: Vec::new(),
        };
        Ok(worker)
    }

    /// The bind mode all of this worker's sockets got.
    pub fn mode(&self) -> BindMode {
        self.mode
    }

    /// Whether this worker's sockets carry multi-buffer frames.
    pub fn multi_buffer(&self) -> bool {
        self.multi_buffer
    }

    /// The better bind modes that were tried first, each with the error
    /// that refused it.
    pub fn refused(&self) -> &[String] {
        &self.refused
    }

    /// The worker's counters.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.engine.stats()
    }

    /// Benchmark baseline: bypass every rule.
    pub(crate) fn set_raw(&mut self, raw: bool) {
        self.engine.set_raw(raw);
    }

    /// Sets the busy-poll window before sleeping.
    pub(crate) fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// The worker's queue.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    pub(crate) fn set_fault(&mut self, fault: Option<InjectedFault>) {
        self.upper.fault = fault.map(|f| (f, self.mem.clone()));
    }

    /// One pass of this queue's engine; returns whether it found work.
    fn pass(&mut self, plan: &TxPlan, taps: &Taps, waker: &Waker) -> bool {
        let stats = self.engine.stats();
        stats.heartbeat.fetch_add(1, Relaxed);
        let pass = self
            .engine
            .pass(&self.mem, &mut self.upper, &mut self.slaves, plan, taps);
        if pass.wake_control {
            waker.wake();
        }
        self.engine.publish_pool();
        pass.work > 0
    }

    fn fds(&self) -> impl Iterator<Item = std::os::fd::RawFd> + '_ {
        std::iter::once(&self.upper)
            .chain(self.slaves.iter())
            .map(WorkerPort::fd)
    }
}

/// What a worker thread shares with the data plane.
#[derive(Debug, Clone)]
pub struct Shared {
    /// The plans the control thread publishes.
    pub plans: Arc<PlanCell>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
    /// Wakes a sleeping worker for a stop.
    pub stop_waker: Arc<Waker>,
    /// Wakes the control thread (tapped frames, TX failures).
    pub waker: Arc<Waker>,
    /// Frames for the control thread.
    pub taps: Arc<Taps>,
}

/// Runs the queues of one worker thread until stop: a pass over each in
/// turn; when none found work for the busy-poll window, a sleep in poll(2)
/// on all their sockets.
pub fn run_queues(mut queues: Vec<Worker>, shared: Shared) {
    let spin = queues.first().map_or(SPIN_BEFORE_SLEEP, |w| w.spin);
    let mut plan = shared.plans.load();
    let mut idle_since: Option<Instant> = None;
    while !shared.stop.load(Relaxed) {
        if queues.iter().any(|w| w.upper.struck.is_some()) {
            // The injected stall struck: the loop only waits for stop.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if shared.plans.version() != plan.version {
            plan = shared.plans.load();
        }
        let mut work = false;
        for w in &mut queues {
            work |= w.pass(&plan, &shared.taps, &shared.waker);
        }
        if work {
            idle_since = None;
            continue;
        }
        let since = *idle_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= spin {
            sleep(&queues, &shared.stop_waker);
            idle_since = None;
        }
    }
    // Take back what completed, so the books close.
    for w in &mut queues {
        w.engine.reap_and_refill(&mut w.upper, &mut w.slaves);
        w.engine.publish_pool();
    }
}

fn sleep(queues: &[Worker], stop_waker: &Waker) {
    let fds: Vec<std::os::fd::RawFd> = queues
        .iter()
        .flat_map(Worker::fds)
        .chain(std::iter::once(stop_waker.fd()))
        .collect();
    for w in queues {
        w.engine.stats().sleeps.fetch_add(1, Relaxed);
    }
    // An error counts as a wake-up: the worker looks at its rings anyway.
    let _ = poll(&fds, SLEEP, "worker sockets");
}

const _: () = assert!(BATCH <= RING_SIZE as usize);
