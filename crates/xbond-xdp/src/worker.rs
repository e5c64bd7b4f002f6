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
pub use xbond_core::options::UmemLayout;
use xbond_core::plan::TxPlan;
use xbond_core::wire::{EthInfo, ETH_P_IP};

use crate::bpf::XdpProgram;
use crate::channel::{ChannelPort, UpperChannel};
use crate::error::{Error, Result};
use crate::sys::{poll, Waker};
use crate::xsk::{create_umem, StatsHandle, UmemFrames, XdpFrame, XdpPort};
pub use crate::xsk::{BindMode, BUFFER_SIZE, FRAME_SIZE, MAX_MULTI_BUFFER_FRAME, RING_SIZE};

/// How long a worker keeps polling its rings without finding work before it
/// sleeps in poll(2), by default (`xbond run --busy-poll-us`).
pub const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(200);
/// Longest sleep; a stop request also wakes a sleeping worker at once.
const SLEEP: Duration = Duration::from_secs(1);
/// With coalescing: a pass that took fewer frames than this is followed by
/// the coalescing wait; a fuller one by the next pass at once.
pub const COALESCE_BELOW: usize = BATCH / 2;

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

    fn region(&self) -> usize {
        match &self.io {
            Io::Xdp(p) => p.region(),
            Io::Channel(p) => p.region(),
        }
    }
}

/// What one socket got when it was bound.
#[derive(Debug, Clone)]
pub struct SocketInfo {
    /// Its interface.
    pub iface: String,
    /// Zero-copy or copy.
    pub mode: BindMode,
    /// Whether it carries multi-buffer (jumbo) frames.
    pub multi_buffer: bool,
    /// Whether it has a UMEM of its own (the split layout).
    pub own_umem: bool,
    /// The better modes tried first, each with the error that refused it.
    pub refused: Vec<String>,
    /// Reads the kernel's counters of the socket.
    pub stats: Option<Arc<StatsHandle>>,
}

/// The tries in order for one socket or one UMEM's sockets: each mode with
/// multi-buffer, then (unless frames longer than a buffer must cross)
/// without.
fn tries(modes: &[BindMode], jumbo: bool) -> Vec<(BindMode, bool)> {
    let mut t = Vec::with_capacity(4);
    for &m in modes {
        t.push((m, true));
        if !jumbo {
            t.push((m, false));
        }
    }
    t
}

fn describe(mode: BindMode, sg: bool) -> String {
    format!(
        "{}{}",
        mode.as_str(),
        if sg { " with multi-buffer" } else { "" }
    )
}

/// The error when no try worked: the last "not supported", with what
/// multi-buffer needs when frames longer than one buffer must cross.
fn none_worked(queue: u32, jumbo: bool, last: Option<Error>) -> Error {
    match last {
        Some(e) if jumbo => Error::Unsupported(format!(
            "frames longer than {BUFFER_SIZE} bytes need AF_XDP multi-buffer \
             (XDP_USE_SG, Linux 6.6 or later), which the sockets of queue {queue} \
             could not get on this kernel ({}): {e}",
            crate::sys::kernel_release()
        )),
        Some(e) => e,
        None => Error::Unsupported("no bind mode to try".into()),
    }
}

/// How many times a bind that finds its queue busy is tried again, 20 ms
/// apart.
const BUSY_RETRIES: u32 = 100;

/// The sockets of one queue, to be bound.
struct Sockets<'a> {
    queue: u32,
    upper: &'a UpperSpec,
    upper_program: Option<&'a XdpProgram>,
    slaves: &'a [(String, &'a XdpProgram)],
    jumbo: bool,
    /// Per slave: why it could not bind zero-copy on a UMEM of its own
    /// (the auto layout's probe), added to what its socket reports.
    alone: std::cell::RefCell<Vec<Vec<String>>>,
}

impl Sockets<'_> {
    fn upper_program(&self) -> Result<Option<(&str, &XdpProgram)>> {
        match (self.upper, self.upper_program) {
            (UpperSpec::Interface { name, .. }, Some(p)) => Ok(Some((name.as_str(), p))),
            (UpperSpec::Interface { name, .. }, None) => {
                Err(Error::Unsupported(format!("{name}: no XDP program")))
            }
            (UpperSpec::Channel(_), _) => Ok(None),
        }
    }

    fn bind(
        &self,
        umem: &xsk_rs::Umem,
        region: u8,
        name: &str,
        prog: &XdpProgram,
        mode: BindMode,
        sg: bool,
    ) -> Result<XdpPort> {
        // A socket of an earlier try on this queue is released by the
        // kernel a moment after it closes (its pool goes in deferred work):
        // until then the queue is busy.
        let mut busy = 0;
        let port = loop {
            match XdpPort::bind(umem, region, name, self.queue, mode, sg) {
                Err(Error::Sys { source, .. })
                    if source.raw_os_error() == Some(libc::EBUSY) && busy < BUSY_RETRIES =>
                {
                    busy += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                r => break r?,
            }
        };
        prog.register_socket(self.queue, port.fd())?;
        Ok(port)
    }

    fn info(port: &XdpPort, mode: BindMode, own_umem: bool, refused: Vec<String>) -> SocketInfo {
        SocketInfo {
            iface: port.name().to_string(),
            mode,
            multi_buffer: port.multi_buffer(),
            own_umem,
            refused,
            stats: port.stats_handle().ok().map(Arc::new),
        }
    }

    /// One UMEM, every socket in the first of `modes` (with or without
    /// multi-buffer) that all of them can bind.
    fn shared(&self, modes: &[BindMode], refused: &mut Vec<String>) -> Result<Worker> {
        let mut last = None;
        for (mode, sg) in tries(modes, self.jumbo) {
            match self.shared_with(mode, sg, refused) {
                Ok(w) => return Ok(w),
                Err(e) if not_supported(&e) => {
                    refused.push(format!("{} refused: {e}", describe(mode, sg)));
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(none_worked(self.queue, self.jumbo, last))
    }

    fn shared_with(&self, mode: BindMode, sg: bool, refused: &[String]) -> Result<Worker> {
        let sockets = 1 + self.slaves.len() as u32;
        // Each socket: a full fill ring plus a full TX ring in flight.
        let (umem, frames) = create_umem(self.upper.name(), sockets * RING_SIZE * 2, 0)?;
        let mem = UmemFrames::new(umem.clone());
        let mut infos = Vec::new();
        let upper = match self.upper_program()? {
            Some((name, prog)) => {
                let port = self.bind(&umem, 0, name, prog, mode, sg)?;
                infos.push(Self::info(&port, mode, false, refused.to_vec()));
                Io::Xdp(port)
            }
            None => match self.upper {
                UpperSpec::Channel(c) => Io::Channel(c.port(mem.clone())),
                UpperSpec::Interface { .. } => unreachable_upper()?,
            },
        };
        let mut ports = Vec::with_capacity(self.slaves.len());
        for (i, (name, prog)) in self.slaves.iter().enumerate() {
            let port = self.bind(&umem, 0, name, prog, mode, sg)?;
            let mut why = refused.to_vec();
            why.extend(self.alone.borrow().get(i).into_iter().flatten().cloned());
            infos.push(Self::info(&port, mode, false, why));
            ports.push(port);
        }
        if !refused.is_empty() {
            tracing::info!(
                queue = self.queue,
                "sockets bound {}; {}",
                describe(mode, sg),
                refused.join("; ")
            );
        }
        Ok(self.worker(mem, frames, upper, ports, infos))
    }

    /// One socket on its own UMEM (region `region`), in the best of `modes`.
    fn own(
        &self,
        name: &str,
        prog: &XdpProgram,
        region: u8,
        modes: &[BindMode],
    ) -> Result<(XdpPort, xsk_rs::Umem, Vec<XdpFrame>, SocketInfo)> {
        let mut refused = Vec::new();
        let mut last = None;
        for (mode, sg) in tries(modes, self.jumbo) {
            let (umem, frames) = create_umem(name, RING_SIZE * 2, region)?;
            match self.bind(&umem, region, name, prog, mode, sg) {
                Ok(port) => {
                    let info = Self::info(&port, mode, true, refused);
                    return Ok((port, umem, frames, info));
                }
                Err(e) if not_supported(&e) => {
                    refused.push(format!("{} refused: {e}", describe(mode, sg)));
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(none_worked(self.queue, self.jumbo, last))
    }

    /// A UMEM per socket, each socket in the best of `modes` it can get.
    /// With `need_zero_copy`, the slaves try zero-copy first, and unless one
    /// of them gets it, nothing more is bound and `None` comes back (then a
    /// shared UMEM is better: no copy).
    fn split(&self, modes: &[BindMode], need_zero_copy: bool) -> Result<Option<Worker>> {
        let region = |i: usize| {
            u8::try_from(i + 1)
                .map_err(|_| Error::Unsupported("too many slaves for a UMEM each".into()))
        };
        type Own = (XdpPort, xsk_rs::Umem, Vec<XdpFrame>, SocketInfo);
        let mut slaves: Vec<Option<Own>> = Vec::with_capacity(self.slaves.len());
        if need_zero_copy {
            for (i, (name, prog)) in self.slaves.iter().enumerate() {
                match self.own(name, prog, region(i)?, &[BindMode::ZeroCopy]) {
                    Ok(o) => slaves.push(Some(o)),
                    Err(e) if not_supported(&e) => {
                        if let Some(w) = self.alone.borrow_mut().get_mut(i) {
                            w.push(format!("zero-copy on a UMEM of its own refused: {e}"));
                        }
                        slaves.push(None);
                    }
                    Err(e) => return Err(e),
                }
            }
            if slaves.iter().all(Option::is_none) {
                return Ok(None);
            }
        } else {
            slaves.resize_with(self.slaves.len(), || None);
        }
        let mut umems = Vec::with_capacity(1 + self.slaves.len());
        let mut frames = Vec::new();
        let mut infos = Vec::new();
        let upper_port = match self.upper_program()? {
            Some((name, prog)) => {
                let (port, umem, f, info) = self.own(name, prog, 0, modes)?;
                umems.push(umem);
                frames.extend(f);
                infos.push(info);
                Some(port)
            }
            None => {
                let (umem, f) = create_umem(self.upper.name(), RING_SIZE * 2, 0)?;
                umems.push(umem);
                frames.extend(f);
                None
            }
        };
        let mut ports = Vec::with_capacity(self.slaves.len());
        for (i, ((name, prog), got)) in self.slaves.iter().zip(slaves).enumerate() {
            let (port, umem, f, info) = match got {
                Some(o) => o,
                None => self.own(name, prog, region(i)?, modes)?,
            };
            umems.push(umem);
            frames.extend(f);
            infos.push(info);
            ports.push(port);
        }
        let mem = UmemFrames::regions(umems);
        let upper = match (upper_port, self.upper) {
            (Some(p), _) => Io::Xdp(p),
            (None, UpperSpec::Channel(c)) => Io::Channel(c.port(mem.clone())),
            (None, UpperSpec::Interface { .. }) => unreachable_upper()?,
        };
        tracing::info!(
            queue = self.queue,
            "a UMEM per socket: {}",
            infos
                .iter()
                .map(|i| format!("{} {}", i.iface, describe(i.mode, i.multi_buffer)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(Some(self.worker(mem, frames, upper, ports, infos)))
    }

    fn worker(
        &self,
        mem: UmemFrames,
        frames: Vec<XdpFrame>,
        upper: Io,
        slaves: Vec<XdpPort>,
        sockets: Vec<SocketInfo>,
    ) -> Worker {
        let queue = self.queue;
        Worker {
            queue,
            spin: SPIN_BEFORE_SLEEP,
            coalesce: Duration::ZERO,
            engine: Engine::new(frames, slaves.len(), 0x5eed ^ u64::from(queue)),
            mem,
            upper: WorkerPort::new(upper, queue),
            slaves: slaves
                .into_iter()
                .map(|p| WorkerPort::new(Io::Xdp(p), queue))
                .collect(),
            sockets,
        }
    }
}

/// An interface upper port always has its program (checked first).
fn unreachable_upper() -> Result<Io> {
    Err(Error::Unsupported(
        "the upper interface has no XDP program".into(),
    ))
}

/// One worker's sockets and UMEM, ready to run.
pub struct Worker {
    queue: u32,
    /// Busy-poll window before sleeping.
    spin: Duration,
    /// Wait after a small pass (see [`run_queues`]).
    coalesce: Duration,
    mem: UmemFrames,
    engine: Engine<XdpFrame>,
    upper: WorkerPort,
    slaves: Vec<WorkerPort>,
    /// What each socket got (upper port first).
    sockets: Vec<SocketInfo>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.queue)
            .field("mode", &self.mode())
            .field("slaves", &self.slaves.len())
            .finish()
    }
}

impl Worker {
    /// Creates the UMEM(s) and the sockets of queue `queue` on the upper port
    /// and every slave, and registers each socket in its interface's XSKMAP
    /// (`upper_program` is the upper port's when it is an interface).
    ///
    /// The sockets get multi-buffer (`XDP_USE_SG`) where the kernel and the
    /// driver have it; with `jumbo` (frames longer than one buffer must
    /// cross) they must, and copy mode with multi-buffer is preferred to
    /// zero-copy without. A mode is given up only on an error that means
    /// "not supported"; any other error is returned. `layout` says whether
    /// the sockets share one UMEM (see [`UmemLayout`]).
    pub fn new(
        queue: u32,
        upper: &UpperSpec,
        upper_program: Option<&XdpProgram>,
        slaves: &[(String, &XdpProgram)],
        zero_copy: ZeroCopy,
        jumbo: bool,
        layout: UmemLayout,
    ) -> Result<Worker> {
        let s = Sockets {
            queue,
            upper,
            upper_program,
            slaves,
            jumbo,
            alone: std::cell::RefCell::new(vec![Vec::new(); slaves.len()]),
        };
        let modes: &[BindMode] = match zero_copy {
            ZeroCopy::Try => &[BindMode::ZeroCopy, BindMode::Copy],
            ZeroCopy::Never => &[BindMode::Copy],
        };
        let mut refused = Vec::new();
        match (layout, zero_copy) {
            (UmemLayout::Shared, _) | (UmemLayout::Auto, ZeroCopy::Never) => {
                s.shared(modes, &mut refused)
            }
            (UmemLayout::Split, _) => s
                .split(modes, false)?
                .ok_or_else(|| Error::Unsupported("no socket to bind".into())),
            (UmemLayout::Auto, ZeroCopy::Try) => {
                // Zero-copy everywhere in one UMEM moves descriptors only.
                match s.shared(&[BindMode::ZeroCopy], &mut refused) {
                    Ok(w) => return Ok(w),
                    Err(e) if !not_supported(&e) => return Err(e),
                    Err(_) => {}
                }
                // Zero-copy slaves with UMEMs of their own, the upper port
                // in copy mode: one copy per frame crossing.
                if let Some(w) = s.split(modes, true)? {
                    return Ok(w);
                }
                // No slave binds zero-copy: copy mode everywhere in one UMEM,
                // no copy.
                s.shared(&[BindMode::Copy], &mut refused)
            }
        }
    }

    /// What each socket of this worker got (upper port first, then the
    /// slaves in order; no entry for an in-process upper port).
    pub fn sockets(&self) -> &[SocketInfo] {
        &self.sockets
    }

    /// Zero-copy if every socket of this worker bound zero-copy.
    pub fn mode(&self) -> BindMode {
        if self.sockets.iter().all(|s| s.mode == BindMode::ZeroCopy) {
            BindMode::ZeroCopy
        } else {
            BindMode::Copy
        }
    }

    /// Whether this worker's sockets carry multi-buffer frames (all of
    /// them).
    pub fn multi_buffer(&self) -> bool {
        self.sockets.iter().all(|s| s.multi_buffer)
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

    /// Sets the wait after a pass that took few frames (zero: none).
    pub(crate) fn set_coalesce(&mut self, coalesce: Duration) {
        self.coalesce = coalesce;
    }

    /// The worker's queue.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    pub(crate) fn set_fault(&mut self, fault: Option<InjectedFault>) {
        self.upper.fault = fault.map(|f| (f, self.mem.clone()));
    }

    /// One pass of this queue's engine; returns how much work it found
    /// (frames, chiefly).
    fn pass(&mut self, plan: &TxPlan, taps: &Taps, waker: &Waker) -> usize {
        let stats = self.engine.stats();
        stats.heartbeat.fetch_add(1, Relaxed);
        let pass = self
            .engine
            .pass(&self.mem, &mut self.upper, &mut self.slaves, plan, taps);
        if pass.wake_control {
            waker.wake();
        }
        self.engine.publish_pool();
        pass.work
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
///
/// With coalescing (`xbond run --coalesce-us`), a round of passes that
/// found work, but less than [`COALESCE_BELOW`] in every queue (frames
/// over its rings), is followed by a timed sleep of that long before the
/// next round, so that a
/// moderate stream is taken in batches with one wake-up each instead of a
/// wake-up (and a TX system call) for every frame or two: less CPU a frame,
/// at the price of up to that much latency. A full round goes on at once,
/// so a saturated worker never waits, and an idle one still sleeps in
/// poll(2) until a frame comes.
pub fn run_queues(mut queues: Vec<Worker>, shared: Shared) {
    let spin = queues.first().map_or(SPIN_BEFORE_SLEEP, |w| w.spin);
    let coalesce = queues.first().map_or(Duration::ZERO, |w| w.coalesce);
    if !coalesce.is_zero() {
        // The default slack (50 us) would stretch every short wait.
        if let Err(e) = crate::sys::set_timer_slack(Duration::from_micros(1)) {
            tracing::warn!(
                "prctl(PR_SET_TIMERSLACK) failed: coalescing waits may run 50 us long ({e})"
            );
        }
    }
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
        let (mut work, mut fullest) = (false, 0);
        for w in &mut queues {
            let n = w.pass(&plan, &shared.taps, &shared.waker);
            work |= n > 0;
            fullest = fullest.max(n);
        }
        if work {
            idle_since = None;
            if !coalesce.is_zero() && fullest < COALESCE_BELOW {
                for w in &queues {
                    w.engine.stats().coalesce_waits.fetch_add(1, Relaxed);
                }
                std::thread::sleep(coalesce);
            }
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
