//! The data plane as a whole: attaches the XDP programs, makes a [`Worker`]
//! per queue and starts min(queues, usable CPUs) threads that run them, each
//! pinned to a CPU of its own when there are several; publishes plans to the
//! workers and the programs, and watches that the workers live and move.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xbond_core::alb::TLB_BUCKETS;
use xbond_core::plan::TxPlan;

use crate::bpf::XdpProgram;
use crate::channel::UpperChannel;
use crate::error::{Error, Result};
use crate::sys::Waker;
use crate::worker::{
    run_queues, InjectedFault, PlanCell, Shared, SocketInfo, Taps, UmemLayout, UpperSpec, Worker,
    WorkerStats, ZeroCopy, BUFFER_SIZE, MAX_MULTI_BUFFER_FRAME,
};

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
    /// Per queue: what each of its sockets got.
    sockets: Vec<Vec<SocketInfo>>,
    stop: Arc<AtomicBool>,
    stop_waker: Arc<Waker>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Per queue: the index of the thread that serves it.
    queue_thread: Vec<usize>,
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
    /// A worker's wait after a pass that took few frames (zero: none; see
    /// [`crate::worker::run_queues`]).
    pub coalesce: Duration,
    /// Test-only: a fault for the worker of queue 0.
    pub fault: Option<InjectedFault>,
    /// bond0's MTU at start: above what one UMEM buffer holds, every socket
    /// must carry multi-buffer frames.
    pub mtu: u32,
    /// Whether a queue's sockets share one UMEM.
    pub layout: UmemLayout,
}

/// The longest frame of an MTU: the MTU plus an Ethernet header and a VLAN
/// tag, as the kernel forwards.
pub fn frame_len(mtu: u32) -> usize {
    mtu as usize + xbond_core::wire::ETH_HLEN + xbond_core::wire::VLAN_HLEN
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
        let upper_program = match &cfg.upper {
            UpperSpec::Interface { name, ifindex } => Some(XdpProgram::attach(name, *ifindex)?),
            UpperSpec::Channel(_) => None,
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
            channel: match &cfg.upper {
                UpperSpec::Channel(c) => Some(c.clone()),
                UpperSpec::Interface { .. } => None,
            },
            plans,
            stats: Vec::new(),
            sockets: Vec::new(),
            stop,
            stop_waker,
            threads: Vec::new(),
            queue_thread: Vec::new(),
            last_rx_mask: None,
            last_tx_errors: 0,
            taps: Arc::new(Taps::default()),
            tlb_seen: Box::new([0; TLB_BUCKETS]),
            beats: Vec::new(),
        };
        let mut workers = Vec::new();
        {
            let slaves: Vec<(String, &XdpProgram)> = cfg
                .slaves
                .iter()
                .cloned()
                .zip(dp.slave_programs.iter())
                .collect();
            for q in 0..cfg.queues {
                let mut w = Worker::new(
                    q,
                    &cfg.upper,
                    dp.upper_program.as_ref(),
                    &slaves,
                    cfg.zero_copy,
                    frame_len(cfg.mtu) > BUFFER_SIZE,
                    cfg.layout,
                )?;
                w.set_raw(cfg.raw);
                w.set_spin(cfg.spin);
                w.set_coalesce(cfg.coalesce);
                w.set_fault(cfg.fault.filter(|_| q == 0));
                workers.push(w);
            }
        }
        // Workers = min(queues, usable CPUs), each serving every
        // `threads`-th queue, each pinned to a CPU of its own.
        let cpus = crate::sys::allowed_cpus();
        let threads = workers.len().min(cpus.len().max(1)).max(1);
        let mut groups: Vec<Vec<Worker>> = (0..threads).map(|_| Vec::new()).collect();
        for (q, w) in workers.into_iter().enumerate() {
            dp.stats.push(w.stats());
            dp.sockets.push(w.sockets().to_vec());
            dp.queue_thread.push(q % threads);
            groups[q % threads].push(w);
        }
        let shared = Shared {
            plans: dp.plans.clone(),
            stop: dp.stop.clone(),
            stop_waker: dp.stop_waker.clone(),
            waker: waker.clone(),
            taps: dp.taps.clone(),
        };
        for (t, group) in groups.into_iter().enumerate() {
            let shared = shared.clone();
            let cpu = cpus.get(t).copied();
            let queues: Vec<String> = group.iter().map(|w| w.queue().to_string()).collect();
            let handle = std::thread::Builder::new()
                .name(format!("xbond-w{t}"))
                .spawn(move || {
                    crate::privilege::plain_thread();
                    if let Some(cpu) = cpu.filter(|_| threads > 1) {
                        if let Err(e) = crate::sys::pin_to_cpu(cpu) {
                            tracing::warn!("worker {t} stays unpinned (CPU {cpu}: {e})");
                        }
                    }
                    run_queues(group, shared)
                })
                .map_err(|e| Error::sys("spawn worker thread", &upper_name, e))?;
            tracing::info!(
                "worker {t} serves queue(s) {}{}",
                queues.join(", "),
                cpu.filter(|_| threads > 1)
                    .map_or(String::new(), |c| format!(" on CPU {c}"))
            );
            dp.threads.push(handle);
        }
        dp.beats = vec![(0, Instant::now()); dp.stats.len()];
        // Only now, with a socket on every queue, do the programs deliver:
        // until here they drop data frames as inactive, never for want of a
        // socket.
        dp.configure_programs(&plan)?;
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

    /// Stops the workers, detaches the programs and starts the data plane
    /// again with `cfg` and `slave_ifindexes` (a slave that rejoins with a new
    /// interface index). Every slave's forwarding pauses meanwhile and the
    /// counters start again from zero. On error nothing runs: the caller
    /// must stop the bond.
    pub fn restart(
        &mut self,
        cfg: &DataplaneConfig,
        slave_ifindexes: &[u32],
        plan: TxPlan,
        waker: Arc<Waker>,
    ) -> Result<()> {
        self.stop();
        // A program's bpf_link must be gone before a new one attaches.
        self.slave_programs.clear();
        self.upper_program = None;
        // The statistics handles hold the sockets open: a queue's socket
        // must be closed before a new one binds to it.
        self.sockets.clear();
        *self = Dataplane::start(cfg, slave_ifindexes, plan, waker)?;
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
            .queue_thread
            .iter()
            .zip(&self.stats)
            .zip(self.beats.iter_mut())
            .enumerate()
        {
            if self.threads.get(*t).is_none_or(|h| h.is_finished()) {
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

    /// Worker threads (each serving one or more queues).
    pub fn worker_threads(&self) -> usize {
        self.threads.len()
    }

    /// Per queue: what each of its sockets got, and why not better (upper
    /// port first, then the slaves in order).
    pub fn sockets(&self) -> &[Vec<SocketInfo>] {
        &self.sockets
    }

    /// The longest frame every queue's sockets carry.
    pub fn max_frame(&self) -> usize {
        if self.sockets.iter().flatten().all(|s| s.multi_buffer) {
            MAX_MULTI_BUFFER_FRAME
        } else {
            BUFFER_SIZE
        }
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
