//! The control loop: link events and polls into the bond core, the core's
//! decisions out to the workers, the XDP programs, the interfaces and the
//! wire. [`Controller::start`] sets up; [`Controller::run`] loops until the
//! stop flag is set or the data path fails, and dropping the controller
//! removes what it set up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam::channel::{Receiver, Sender, TryRecvError};
use tracing::{debug, info, warn};
use xbond_core::bond::{Bond, BondEvent};
use xbond_core::config::BondConfig;
use xbond_core::options::{MacAddr, Mode};
use xbond_core::status::Status;
use xbond_core::wire::ETH_P_SLOW;
use xbond_xdp::channel::UpperChannel;
use xbond_xdp::dataplane::{Dataplane, DataplaneConfig, WorkerFault};
use xbond_xdp::netlink::{CarrierReader, LinkEvents, Netlink};
use xbond_xdp::packet::PacketSocket;
use xbond_xdp::sys::Waker;
use xbond_xdp::worker::{UpperSpec, HOST_ARP};

mod changes;

use super::host::{self, HostGuard};
use super::mtu::{self, MtuState};
use super::notify::{Notice, Notifier};
use super::words;
use super::{status::status, Event, EventSink, RuntimeOptions, Upper};
use crate::control::{ControlServer, Request};
use crate::filters::{self, Filters};
use crate::runstate::{self, RunState};
use crate::upper;

/// A worker whose loop has not moved for this long is stuck (its longest
/// sleep is one second); the systemd watchdog is then no longer fed.
const WORKER_STUCK: Duration = Duration::from_secs(5);

/// After a pass that read slow-protocol frames, the loop does not wake for
/// more for this long: LACP's timers are seconds, and a flood on a slave
/// costs at most this many wake-ups a second (with each port's receive
/// budget, `lacp::RX_BUDGET`, bounding what is parsed).
const SLOW_QUIET: Duration = Duration::from_millis(10);

/// How often balance-tlb/alb reads the workers' per-destination byte counts.
const TLB_SAMPLE: Duration = Duration::from_millis(100);

/// Timers of the loop's periodic work.
struct Every {
    hint_poll: Instant,
    rx_check: Instant,
    tlb_sample: Instant,
    addr_refresh: Instant,
    filter_read: Instant,
}

/// Everything the control loop owns.
pub(super) struct Controller {
    cfg: BondConfig,
    upper: Upper,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    sink: EventSink,
    status_rx: Receiver<Sender<Status>>,
    nl: Netlink,
    bond: Bond,
    state: RunState,
    state_path: PathBuf,
    macs_done: HashMap<String, MacAddr>,
    carriers: CarrierReader,
    by_index: HashMap<u32, usize>,
    events: LinkEvents,
    senders: Vec<Option<PacketSocket>>,
    slow: Vec<PacketSocket>,
    wait_fds: Vec<std::os::fd::RawFd>,
    /// Until then the slow-protocol sockets do not wake the loop.
    slow_quiet_until: Option<Instant>,
    slow_buf: Vec<u8>,
    server: Option<ControlServer>,
    requests: Option<Receiver<Request>>,
    notifier: Notifier,
    watchdog: Option<Duration>,
    last_watchdog: Option<Instant>,
    stuck_logged: bool,
    upper_carrier: bool,
    rx_check_every: Duration,
    rx_seen: Vec<u64>,
    every: Every,
    /// bond0's index (veth pair), whose filters are passed down.
    upper_index: Option<u32>,
    filters: Filters,
    /// bond0's MTU as passed down.
    mtu: MtuState,
    /// Queues served per slave.
    queues: u32,
    /// Slaves whose queue count changed since the start.
    queue_notes: Vec<String>,
    /// The 802.3ad "no partner" warning is out (until a partner answers).
    no_partner_warned: bool,
    wanted: filters::Wanted,
    applied: Option<(Vec<bool>, filters::Wanted)>,
    transmitting: Vec<u8>,
    /// The slaves' interface indices, in order.
    ifindexes: Vec<u32>,
    /// Slaves whose interface is gone (deleted, unplugged).
    gone: Vec<bool>,
    /// The descriptor a signal makes readable, woken on with the others.
    stop_fd: Option<std::os::fd::RawFd>,
    /// How the data plane was started, to start it again for a slave that
    /// rejoins.
    dp_cfg: DataplaneConfig,
    /// Times the data plane was started again, and the last reason.
    dp_restarts: (u64, String),
    /// The file the bond's config came from, if any (for `xbond ctl --save`).
    config_path: Option<PathBuf>,
    /// Failovers so far, the last one's duration (from when the active
    /// slave's failure was read to the new plan's hand-over), and when the
    /// active slave's link was first seen failing.
    failovers: (u64, Option<Duration>, Option<Instant>),
    /// When the last plan went to the workers.
    published: Instant,
    /// The procfs-style status file, when it was last written, and whether
    /// the bond changed since.
    proc_file: (PathBuf, Option<Instant>, bool),
    // Dropped in this order: the data plane stops before the host is put back.
    dp: Dataplane,
    /// Puts the host back when dropped.
    guard: HostGuard,
}

impl Controller {
    /// Sets up the host and the data plane. A refused start changes nothing
    /// on the host; a failed one removes what it made.
    pub(super) fn start(
        mut cfg: BondConfig,
        opts: RuntimeOptions,
        stop: Arc<AtomicBool>,
        waker: Arc<Waker>,
        sink: EventSink,
        status_rx: Receiver<Sender<Status>>,
    ) -> Result<Controller> {
        if cfg.monitoring_off() {
            warn!(
                "link monitoring is off (link_watch_policy = \"none\"): {} will never fail over",
                cfg.name
            );
        }
        let mut nl = Netlink::open()?;
        let mut guard = HostGuard {
            nl: Netlink::open()?,
            upper: None,
            created_now: false,
            restore_macs: Vec::new(),
            restore_offloads: Vec::new(),
            restore_ipv6: Vec::new(),
            restore_mtu: Vec::new(),
        };
        if opts.control_socket && crate::control::query_status(&cfg.socket_path()).is_ok() {
            bail!(
                "an xbond for {} is already running (its control socket {} answers)",
                cfg.name,
                cfg.socket_path()
            );
        }
        // Checked before anything on the host is touched: a refused start
        // changes nothing.
        let found = match &opts.upper {
            Upper::VethPair => upper::inspect(&mut nl, &cfg.name, &cfg.peer_name)?,
            Upper::Interface(name) => {
                if cfg.slaves.contains(name) {
                    bail!("the upper interface {name} is also a slave (key slaves)");
                }
                nl.link(name)
                    .with_context(|| format!("the upper interface {name}"))?;
                cfg.peer_name = name.clone();
                None
            }
            Upper::Channel => {
                cfg.peer_name = "(in-process)".into();
                None
            }
        };
        // What an earlier run recorded: the active slave, and the slaves as
        // they were before xbond first changed them (a crash leaves them
        // changed).
        let state_path = runstate::path(&cfg);
        let mut state = runstate::load(&state_path).unwrap_or_default();
        let host::Slaves {
            specs,
            restore_macs,
            queues,
        } = host::check_slaves(&mut nl, &cfg, &state)?;
        if opts.upper == Upper::VethPair {
            host::set_up_pair(&mut nl, &mut cfg, queues, &mut guard, found)?;
        }
        guard.restore_macs = restore_macs;
        // VLAN tags must be in the frames the data path sees.
        let upper_if = match &opts.upper {
            Upper::VethPair => Some(cfg.name.clone()),
            Upper::Interface(name) => Some(name.clone()),
            Upper::Channel => None,
        };
        host::prepare_slaves(&cfg, upper_if.as_deref(), &mut guard, &mut state);
        if let Err(e) = runstate::save(&state_path, &state) {
            warn!(
                "{}: could not save {}: {e:#}",
                cfg.name,
                state_path.display()
            );
        }
        let host_was_up = match opts.upper {
            Upper::VethPair => nl.link(&cfg.name)?.admin_up,
            _ => false,
        };

        let mut bond = Bond::new(cfg.clone(), specs, Instant::now());
        let mut macs_done = HashMap::new();
        // Initial MACs, before anything is up.
        while let Some(ev) = bond.poll_event() {
            match ev {
                BondEvent::SetBondMac(mac) if opts.upper == Upper::VethPair => {
                    host::set_mac(&mut nl, &cfg.name, mac, &mut macs_done)?
                }
                BondEvent::SetSlaveMac { slave, mac } => {
                    host::set_mac(&mut nl, &cfg.slaves[slave], mac, &mut macs_done)?
                }
                _ => {}
            }
        }
        for s in &cfg.slaves {
            nl.set_up(s, true)?;
        }
        let upper_spec = match &opts.upper {
            Upper::VethPair => {
                // A new bond0 is brought up, as `ip link add` + ifup would; an
                // adopted one keeps the admin state the host gave it.
                if guard.created_now || host_was_up {
                    nl.set_up(&cfg.name, true)?;
                }
                nl.set_up(&cfg.peer_name, true)?;
                UpperSpec::Interface {
                    name: cfg.peer_name.clone(),
                    ifindex: nl.link(&cfg.peer_name)?.index,
                }
            }
            Upper::Interface(name) => {
                nl.set_up(name, true)?;
                UpperSpec::Interface {
                    name: name.clone(),
                    ifindex: nl.link(name)?.index,
                }
            }
            Upper::Channel => UpperSpec::Channel(
                xbond_xdp::channel::upper_channel().context("eventfd for the in-process upper")?,
            ),
        };
        let mut ifindexes = Vec::new();
        for s in &cfg.slaves {
            ifindexes.push(nl.link(s)?.index);
        }
        let carriers = CarrierReader::new(
            &cfg.slaves
                .iter()
                .cloned()
                .zip(ifindexes.iter().copied())
                .collect::<Vec<_>>(),
        );
        let by_index = ifindexes
            .iter()
            .enumerate()
            .map(|(i, idx)| (*idx, i))
            .collect();
        let bond_mtu = mtu::read(&mut nl, &cfg, &opts.upper).unwrap_or(1500);
        // The sockets bind for frames of this MTU: given down first, so that
        // the slaves take them.
        mtu::pass_down(&mut nl, &cfg, &opts.upper, bond_mtu);
        let dp_cfg = DataplaneConfig {
            upper: upper_spec,
            slaves: cfg.slaves.clone(),
            queues,
            zero_copy: opts.zero_copy,
            raw: opts.raw_forwarder,
            spin: opts.busy_poll,
            coalesce: opts.coalesce,
            fault: opts.fault,
            mtu: bond_mtu,
            layout: cfg.umem_layout,
        };
        let events = LinkEvents::open()?;
        let dp = Dataplane::start(&dp_cfg, &ifindexes, bond.tx_plan(), waker.clone())?;
        for (q, sockets) in dp.sockets().iter().enumerate() {
            let got: Vec<String> = sockets
                .iter()
                .map(|s| {
                    format!(
                        "{} {}{}",
                        s.iface,
                        s.mode.as_str(),
                        if s.multi_buffer { " multi-buffer" } else { "" }
                    )
                })
                .collect();
            info!(queue = q, "AF_XDP sockets: {}", got.join(", "));
        }
        let mtu = mtu::follow(
            &mut nl,
            &cfg,
            &opts.upper,
            bond_mtu,
            dp.max_frame(),
            &mut bond,
        );
        // The slow path: LACPDUs and Marker PDUs, passed to the kernel by
        // XDP, read here on one AF_PACKET socket per slave (802.3ad only).
        let slow: Vec<PacketSocket> = if cfg.mode == Mode::Ieee8023ad {
            cfg.slaves
                .iter()
                .map(|s| {
                    PacketSocket::open(s, ETH_P_SLOW)
                        .with_context(|| format!("slow-protocol socket on {s}"))
                })
                .collect::<Result<_>>()?
        } else {
            Vec::new()
        };
        let wait_fds = wait_fds(&waker, &slow, opts.stop_fd);

        // Carrier as it is now. The slave that was active before a restart
        // is read first, so that it stays active where its link allows (no
        // failover from a restart); the primary, if set, still wins as
        // primary_reselect says.
        let resume = state.active_index(&cfg.slaves);
        let mut order: Vec<usize> = (0..cfg.slaves.len()).collect();
        if let Some(r) = resume {
            order.retain(|&i| i != r);
            order.insert(0, r);
            info!(
                "{}: resuming with {} active (from {})",
                cfg.name,
                cfg.slaves[r],
                state_path.display()
            );
        }
        for i in order {
            let l = nl.link(&cfg.slaves[i])?;
            host::feed_carrier(&mut bond, &cfg, i, l.carrier);
        }
        if opts.upper == Upper::VethPair {
            host::refresh_addresses(&mut nl, &cfg, &mut bond);
        }

        // The control loop must win the CPU over busy-polling workers when a
        // link event arrives; the workers keep normal priority.
        if let Err(e) = xbond_xdp::sys::set_realtime(10) {
            warn!(
                "control thread keeps normal priority (SCHED_FIFO: {e}); failover may wait for CPU"
            );
        }
        let server = if opts.control_socket {
            Some(ControlServer::bind(
                &cfg.socket_path(),
                cfg.control_group.as_deref(),
                waker.clone(),
            )?)
        } else {
            None
        };
        info!(
            "{} running in mode {} with slaves {}; status: xbond status {}",
            cfg.name,
            cfg.mode,
            cfg.slaves.join(", "),
            cfg.name
        );
        let requests = server.as_ref().map(ControlServer::requests);
        // From here on the bond runs: bond0 is kept whatever happens.
        guard.created_now = false;
        // systemd (Type=notify): forwarding works from here on. The watchdog
        // is fed only while every worker lives and moves.
        let notifier = Notifier::start(opts.systemd);
        notifier.send(Notice::Ready(format!(
            "{}: {} over {}",
            cfg.name,
            cfg.mode,
            cfg.slaves.join(", ")
        )));
        let upper_index = match opts.upper {
            Upper::VethPair => Some(nl.link(&cfg.name)?.index),
            _ => None,
        };
        let wanted = match upper_index {
            Some(_) => filters::read(&mut nl, &cfg.name).unwrap_or_default(),
            // An appliance forwards frames for any address.
            None => filters::Wanted {
                promisc: true,
                ..Default::default()
            },
        };
        // Set up: from here on the control thread keeps only what its work
        // at run time needs.
        let keep = xbond_xdp::privilege::runtime_set();
        match xbond_xdp::privilege::keep(&keep) {
            Ok(()) => debug!("{}: the control thread keeps {keep:?}", cfg.name),
            Err(e) => warn!(
                "{}: the control thread keeps its capabilities: {e}",
                cfg.name
            ),
        }
        let now = Instant::now();
        Ok(Controller {
            rx_check_every: rx_check_every(&cfg),
            config_path: opts.config_path.clone(),
            failovers: (0, None, None),
            published: Instant::now(),
            proc_file: (PathBuf::from(cfg.proc_file()), None, true),
            rx_seen: vec![0; cfg.slaves.len()],
            filters: Filters::new(&cfg.slaves),
            senders: cfg.slaves.iter().map(|_| None).collect(),
            watchdog: if opts.systemd {
                sd_notify::watchdog_enabled()
            } else {
                None
            },
            // The peer is up (AF_XDP is bound on it); the loop makes bond0's
            // carrier follow the bond from here on.
            upper_carrier: true,
            cfg,
            upper: opts.upper,
            stop,
            waker,
            sink,
            status_rx,
            nl,
            bond,
            state,
            state_path,
            macs_done,
            carriers,
            by_index,
            events,
            slow,
            wait_fds,
            slow_quiet_until: None,
            slow_buf: vec![0; 2048],
            server,
            requests,
            notifier,
            last_watchdog: None,
            stuck_logged: false,
            every: Every {
                hint_poll: now,
                rx_check: now,
                tlb_sample: now,
                addr_refresh: now,
                filter_read: now,
            },
            upper_index,
            mtu,
            queues,
            queue_notes: Vec::new(),
            no_partner_warned: false,
            wanted,
            applied: None,
            transmitting: Vec::new(),
            gone: vec![false; ifindexes.len()],
            ifindexes,
            stop_fd: opts.stop_fd,
            dp_cfg,
            dp_restarts: (0, String::new()),
            dp,
            guard,
        })
    }

    /// The program's end of an in-process upper port.
    pub(super) fn upper_channel(&self) -> Option<UpperChannel> {
        self.dp.upper_channel().cloned()
    }

    /// Runs until the stop flag is set; an error means the data path failed
    /// (a worker died) and the bond stopped.
    pub(super) fn run(&mut self) -> Result<()> {
        while !self.stop.load(Ordering::Relaxed) {
            self.check_workers()?;
            self.apply_decisions();
            self.serve()?;
            let links = self.wait();
            self.read_inputs(links);
            let now = Instant::now();
            if self.bond.poll_timeout().is_some_and(|t| t <= now) {
                self.bond.handle_timeout(now);
            }
            // A failover goes to the workers before the periodic work (the
            // procfs file, the receive filters: half a millisecond).
            self.apply_decisions();
            self.housekeeping(now);
        }
        info!("stopping {}", self.cfg.name);
        self.notifier.send(Notice::Stopping);
        self.dp.stop();
        Ok(())
    }

    /// Never goes on with a dead data path: a dead worker is an error (bond0
    /// loses carrier on the way out, systemd restarts the daemon); a stuck
    /// one stops the watchdog.
    fn check_workers(&mut self) -> Result<()> {
        match self.dp.check_workers(WORKER_STUCK) {
            Err(f @ WorkerFault::Dead { .. }) => {
                bail!(
                    "{}: {f}; stopping the bond so that it is restarted",
                    self.cfg.name
                );
            }
            Err(f) => {
                if !self.stuck_logged {
                    warn!("{}: {f}; the watchdog is no longer fed", self.cfg.name);
                    self.stuck_logged = true;
                }
            }
            Ok(()) => {
                self.stuck_logged = false;
                if let Some(w) = self.watchdog {
                    if self.last_watchdog.is_none_or(|t| t.elapsed() >= w / 2) {
                        self.notifier.send(Notice::Watchdog);
                        self.last_watchdog = Some(Instant::now());
                    }
                }
            }
        }
        Ok(())
    }

    /// Hands the core's plan to the workers (and says which slaves
    /// transmit now, when that changed).
    fn publish_plan(&mut self) {
        let plan = self.bond.tx_plan();
        if plan.tx_slaves() != self.transmitting.as_slice() {
            self.transmitting = plan.tx_slaves().to_vec();
            let names = self
                .transmitting
                .iter()
                .map(|&i| self.cfg.slaves[usize::from(i)].clone())
                .collect();
            self.sink.send(Event::Transmitting(names));
        }
        if let Err(e) = self.dp.publish(plan) {
            warn!("publishing the plan to XDP: {e}");
        }
        self.published = Instant::now();
    }

    fn slave_name(&self, i: Option<usize>) -> Option<String> {
        i.map(|i| self.cfg.slaves[i].clone())
    }

    /// Applies everything the core decided: plans, MACs, carrier, frames.
    fn apply_decisions(&mut self) {
        // When the events were read: the start of a failover's reaction.
        let seen = Instant::now();
        let mut failover_from = None;
        loop {
            let events: Vec<BondEvent> = std::iter::from_fn(|| self.bond.poll_event()).collect();
            if events.is_empty() {
                break;
            }
            // A new plan goes to the workers first: what else a failover brings
            // (the log, the saved state, the addresses for the peer
            // notifications) took half a millisecond, at 100 000 frames/s fifty
            // frames more on the dead slave. Not when a MAC changes with it:
            // the new slave must not send before it has its MAC.
            let mac_change = events
                .iter()
                .any(|e| matches!(e, BondEvent::SetSlaveMac { .. } | BondEvent::SetBondMac(_)));
            let early = !mac_change && events.contains(&BondEvent::PlanChanged);
            if early {
                self.publish_plan();
            }
            for ev in events {
                self.proc_file.2 = true;
                match ev {
                    BondEvent::PlanChanged if early => {}
                    BondEvent::PlanChanged => self.publish_plan(),
                    // Applied below from bond.carrier(), so that the state at
                    // start is applied too.
                    BondEvent::Carrier(_) => {}
                    BondEvent::ActiveChanged { old, new } => {
                        if let (Some(_), Some(_), Some(t)) = (old, new, self.failovers.2.take()) {
                            failover_from = Some(t);
                        }
                        let (old, new) = (self.slave_name(old), self.slave_name(new));
                        if let Some(n) = &new {
                            info!("{}", words::new_active(&self.cfg.name, n));
                        }
                        self.state.active = new.clone();
                        if let Err(e) = runstate::save(&self.state_path, &self.state) {
                            warn!("{}: could not save the active slave: {e:#}", self.cfg.name);
                        }
                        self.refresh_addresses();
                        self.sink.send(Event::ActiveChanged { old, new });
                    }
                    BondEvent::Link { slave, up } => {
                        if !up && self.state.active.as_ref() == Some(&self.cfg.slaves[slave]) {
                            self.failovers.2.get_or_insert(seen);
                        }
                        let s = self.cfg.slaves[slave].clone();
                        let spec = self.bond.slaves().get(slave).map(|x| &x.spec);
                        let line = words::link(
                            &self.cfg.name,
                            &s,
                            up,
                            spec.and_then(|x| x.speed_mbps),
                            spec.and_then(|x| x.full_duplex),
                        );
                        if up {
                            info!("{line}");
                        } else {
                            warn!("{line}");
                        }
                        self.sink.send(Event::Link { slave: s, up });
                    }
                    BondEvent::LinkDelay { slave, note } => {
                        let active = self.state.active.as_ref() == Some(&self.cfg.slaves[slave]);
                        match note {
                            xbond_core::bond::LinkNote::DownIn(_) if active => {
                                self.failovers.2.get_or_insert(seen);
                            }
                            // Back within downdelay: no failover after all.
                            xbond_core::bond::LinkNote::UpAgain(_) if active => {
                                self.failovers.2 = None;
                            }
                            _ => {}
                        }
                        let role = match self.bond.active() {
                            Some(a) if a == slave => "active ",
                            Some(_) if self.cfg.mode == Mode::ActiveBackup => "backup ",
                            _ => "",
                        };
                        let s = &self.cfg.slaves[slave];
                        info!("{}", words::link_delay(&self.cfg.name, s, role, note));
                    }
                    BondEvent::SetSlaveMac { slave, mac } => {
                        let name = &self.cfg.slaves[slave];
                        if let Err(e) = host::set_mac(&mut self.nl, name, mac, &mut self.macs_done)
                        {
                            warn!("{e:#}");
                        }
                    }
                    BondEvent::SetBondMac(mac) if self.upper == Upper::VethPair => {
                        let name = &self.cfg.name;
                        if let Err(e) = host::set_mac(&mut self.nl, name, mac, &mut self.macs_done)
                        {
                            warn!("{e:#}");
                        }
                    }
                    BondEvent::SetBondMac(_) => {}
                    BondEvent::PollLinks => self.poll_links(),
                }
            }
        }
        // A failover's time: from when the active slave's failure was read
        // to the new plan's hand-over to the workers.
        if let Some(t) = failover_from {
            self.failovers.0 += 1;
            self.failovers.1 = Some(self.published.saturating_duration_since(t));
        }
        if self.upper_carrier != self.bond.carrier() {
            self.upper_carrier = self.bond.carrier();
            self.sink.send(Event::Carrier(self.upper_carrier));
            let line = words::carrier(&self.cfg.name, self.upper_carrier);
            if self.upper == Upper::VethPair {
                // A veth's carrier follows its peer's admin state.
                if let Err(e) = self.nl.set_up(&self.cfg.peer_name, self.upper_carrier) {
                    warn!("setting the carrier of {}: {e}", self.cfg.name);
                }
            }
            if self.upper_carrier {
                info!("{line}");
            } else {
                warn!("{line}");
            }
        }
        while let Some(t) = self.bond.poll_transmit() {
            let name = &self.cfg.slaves[t.slave];
            if self.senders[t.slave].is_none() {
                match PacketSocket::open(name, 0) {
                    Ok(s) => self.senders[t.slave] = Some(s),
                    Err(e) => warn!("cannot send on {name}: {e}"),
                }
            }
            if let Some(sock) = &self.senders[t.slave] {
                if let Err(e) = sock.send(&t.frame) {
                    warn!("peer notification on {name}: {e}");
                }
            }
        }
    }

    /// Answers status requests: the control socket's and the embedder's.
    fn serve(&mut self) -> Result<()> {
        while let Ok(reply) = self.status_rx.try_recv() {
            let _ = reply.send(self.status());
        }
        let Some(requests) = self.requests.clone() else {
            return Ok(());
        };
        loop {
            match requests.try_recv() {
                Ok(req) => self.answer(req),
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => bail!("control socket thread ended"),
            }
        }
    }

    /// Sleeps until the core's next timer; link events, slow-protocol
    /// frames, worker hints and control requests wake it earlier. The cap
    /// bounds how late a stop is seen.
    fn wait(&mut self) -> Vec<xbond_xdp::netlink::Link> {
        let now = Instant::now();
        let balancing = matches!(
            self.cfg.mode,
            Mode::BalanceTlb | Mode::BalanceAlb | Mode::BalanceXor | Mode::Ieee8023ad
        );
        let wait = self
            .bond
            .poll_timeout()
            .map_or(Duration::from_millis(500), |t| {
                t.saturating_duration_since(now)
            })
            .min(if balancing {
                TLB_SAMPLE
            } else {
                Duration::from_millis(500)
            })
            .min(self.watchdog.map_or(Duration::MAX, |w| w / 4));
        match self.slow_quiet_until.filter(|&t| t > now) {
            Some(t) => {
                // The waker (first) and the signal descriptor (last, if any).
                let quiet: Vec<_> = self.wait_fds[..1]
                    .iter()
                    .chain(self.stop_fd.iter())
                    .copied()
                    .collect();
                self.events.wait(&quiet, wait.min(t - now))
            }
            None => self.events.wait(&self.wait_fds, wait),
        }
    }

    /// Feeds the core what arrived: link events, slow-protocol frames and
    /// the frames the workers tapped.
    fn read_inputs(&mut self, links: Vec<xbond_xdp::netlink::Link>) {
        // bond0's flags change with a link event; its multicast list has
        // none, so it is read again every second.
        if let Some(idx) = self.upper_index {
            if links.iter().any(|l| l.index == idx)
                || self.every.filter_read.elapsed() >= Duration::from_secs(1)
            {
                self.every.filter_read = Instant::now();
                if let Some(w) = filters::read(&mut self.nl, &self.cfg.name) {
                    self.wanted = w;
                }
                // An MTU set on bond0 (ifupdown's `mtu`, `ip link set bond0
                // mtu`) goes down to the slaves.
                match mtu::read(&mut self.nl, &self.cfg, &self.upper) {
                    Some(m) if m != self.mtu.mtu => {
                        info!("{}: MTU {} -> {m}", self.cfg.name, self.mtu.mtu);
                        self.mtu = mtu::follow(
                            &mut self.nl,
                            &self.cfg,
                            &self.upper,
                            m,
                            self.dp.max_frame(),
                            &mut self.bond,
                        );
                    }
                    _ => {}
                }
            }
        }
        // A slave's interface deleted, or one of a slave's name (re)created.
        let deleted = self.events.take_deleted();
        let rejoined = (deleted.iter().any(|i| self.by_index.contains_key(i))
            || links.iter().any(|l| {
                !self.by_index.contains_key(&l.index) && self.cfg.slaves.contains(&l.name)
            }))
            && self.check_presence();
        // With link_watch_policy = "none" nothing but the reading at start
        // counts: the bond never fails over, as the operator asked. After a
        // rejoin the events read before it are stale (the carriers were
        // read afresh).
        if !self.cfg.monitoring_off() && !rejoined {
            for link in links {
                if let Some(&i) = self.by_index.get(&link.index) {
                    host::feed_carrier(&mut self.bond, &self.cfg, i, link.carrier);
                }
            }
        }
        let mut slow_read = false;
        for (i, sock) in self.slow.iter().enumerate() {
            // Frames this host sent come back as length 0 and are skipped.
            // Bounded per pass, so that a flood cannot starve the loop.
            for _ in 0..64 {
                let Ok(Some(n)) = sock.recv(&mut self.slow_buf, Duration::ZERO) else {
                    break;
                };
                if n == 0 {
                    continue;
                }
                slow_read = true;
                let frame = &self.slow_buf[..n];
                if let Err(e) = self.bond.handle_slow_frame(i, frame, Instant::now()) {
                    debug!("{}: dropped a slow-protocol frame: {e}", self.cfg.slaves[i]);
                }
            }
        }
        if slow_read {
            self.slow_quiet_until = Some(Instant::now() + SLOW_QUIET);
        }
        for _ in 0..1024 {
            let Some((slave, frame)) = self.dp.taps().pop() else {
                break;
            };
            if slave == HOST_ARP {
                self.bond.handle_host_arp(frame, Instant::now());
            } else {
                self.bond
                    .handle_arp_frame(usize::from(slave), &frame, Instant::now());
            }
        }
    }

    /// The periodic work: TLB load, the ARP monitor's traffic proof, worker
    /// TX hints, receive filters, bond0's addresses.
    fn housekeeping(&mut self, now: Instant) {
        let balancing = matches!(self.cfg.mode, Mode::BalanceTlb | Mode::BalanceAlb);
        let hashing = matches!(self.cfg.mode, Mode::BalanceXor | Mode::Ieee8023ad);
        if hashing && self.every.tlb_sample.elapsed() >= TLB_SAMPLE {
            // The load view (and any rebalancing) of the hash buckets.
            self.every.tlb_sample = now;
            self.bond.note_hash_load(&self.dp.take_tlb_load(), now);
        }
        if balancing && self.every.tlb_sample.elapsed() >= TLB_SAMPLE {
            self.every.tlb_sample = now;
            self.bond.note_tlb_load(&self.dp.take_tlb_load());
        }
        // ARP/NS monitor: "any traffic" proof comes from the XDP counters.
        if self.bond.arp_monitoring() && self.every.rx_check.elapsed() >= self.rx_check_every {
            self.every.rx_check = now;
            for (i, p) in self.dp.slave_programs().iter().enumerate() {
                let c = p.counters();
                let total = c.redirected + c.dropped_inactive + c.passed_slow;
                if total != self.rx_seen[i] {
                    self.rx_seen[i] = total;
                    self.bond.note_rx(i, now);
                }
            }
        }
        // Woken by a control request (served at the top of the loop) or by
        // a worker hint (checked here).
        self.waker.clear();
        if self.dp.take_tx_errors()
            && !self.cfg.monitoring_off()
            && self.every.hint_poll.elapsed() >= Duration::from_millis(1)
        {
            self.every.hint_poll = now;
            // A worker's TX to a slave failed: read the carriers now. Netlink
            // carrier events can be held back by the kernel's linkwatch (up
            // to a second when links change often), the reading is not.
            self.poll_links();
            self.apply_decisions();
        }
        self.write_proc_file(now);
        let key = (self.bond.filter_slaves(), self.wanted.clone());
        if self.applied.as_ref() != Some(&key) {
            self.filters.apply(&self.bond, &self.wanted);
            self.applied = Some(key);
        }
        // Addresses come with events; groups joined by a socket and devices
        // stacked on bond0 do not: read every second.
        if self.events.take_addresses_changed()
            || now.duration_since(self.every.addr_refresh) >= Duration::from_secs(1)
        {
            self.refresh_addresses();
            self.check_presence();
            self.check_queues();
            self.check_lacp_partner();
            self.every.addr_refresh = now;
        }
    }

    /// Hot-unplug: a slave whose interface is gone is down for the bond (it
    /// fails over as on a carrier loss) and named in the status; an
    /// interface of the slave's name that appears (a new index) rejoins.
    /// True when a slave rejoined.
    fn check_presence(&mut self) -> bool {
        let mut back = Vec::new();
        for i in 0..self.cfg.slaves.len() {
            let name = &self.cfg.slaves[i];
            match self.nl.link(name) {
                Ok(l) if l.index == self.ifindexes[i] => self.gone[i] = false,
                Ok(l) => back.push((i, l)),
                // Only a missing interface is gone; another netlink error
                // (a full socket buffer) says nothing about the slave.
                Err(xbond_xdp::error::Error::NoSuchInterface(_)) if !self.gone[i] => {
                    self.gone[i] = true;
                    warn!("{}", words::gone(&self.cfg.name, name));
                    self.bond.handle_carrier(i, false, Instant::now());
                }
                Err(_) => {}
            }
        }
        // A new interface must have the queues the bond serves, as at start;
        // until it has, it stays gone.
        back.retain(|(i, l)| {
            let name = &self.cfg.slaves[*i];
            let (rx, tx) = host::active_queues(name, l);
            let fits = rx == self.queues && tx >= self.queues;
            if !fits {
                warn!(
                    "{}: (slave {name}): back with {rx} RX / {tx} TX queues but the bond serves {}; \
                     it stays out (ethtool -L {name} combined {})",
                    self.cfg.name, self.queues, self.queues
                );
            }
            fits
        });
        if back.is_empty() {
            return false;
        }
        self.rejoin(back);
        true
    }

    /// Slaves whose interface is back: prepared as at start, then the data
    /// plane starts again with their new interface indices (every slave
    /// pauses meanwhile). A data plane that cannot start stops the bond
    /// (the loop sees a dead worker).
    fn rejoin(&mut self, back: Vec<(usize, xbond_xdp::netlink::Link)>) {
        let started = Instant::now();
        let mut names = Vec::new();
        for (i, link) in &back {
            let name = self.cfg.slaves[*i].clone();
            info!("{}", words::rejoining(&self.cfg.name, &name));
            self.gone[*i] = false;
            self.ifindexes[*i] = link.index;
            host::prepare_rejoining(&name, link, &mut self.guard, &mut self.state);
            self.macs_done.remove(&name);
            let mac = self.bond.slaves()[*i].mac;
            if let Err(e) = host::set_mac(&mut self.nl, &name, mac, &mut self.macs_done) {
                warn!("{e:#}");
            }
            if let Err(e) = self.nl.set_up(&name, true) {
                warn!("{}: setting {name} up: {e}", self.cfg.name);
            }
            self.senders[*i] = None;
            if let Some(sock) = self.slow.get_mut(*i) {
                match PacketSocket::open(&name, ETH_P_SLOW) {
                    Ok(s) => *sock = s,
                    Err(e) => warn!("{}: slow-protocol socket on {name}: {e}", self.cfg.name),
                }
            }
            names.push(name);
        }
        self.wait_fds = wait_fds(&self.waker, &self.slow, self.stop_fd);
        if let Err(e) = runstate::save(&self.state_path, &self.state) {
            warn!(
                "{}: could not save {}: {e:#}",
                self.cfg.name,
                self.state_path.display()
            );
        }
        mtu::pass_down(&mut self.nl, &self.cfg, &self.upper, self.mtu.mtu);
        let plan = self.bond.tx_plan();
        self.dp_cfg.mtu = self.mtu.mtu;
        if let Err(e) = self
            .dp
            .restart(&self.dp_cfg, &self.ifindexes, plan, self.waker.clone())
        {
            warn!("{}: the data plane did not start again: {e}", self.cfg.name);
            return;
        }
        self.after_restart();
        self.dp_restarts.0 += 1;
        self.dp_restarts.1 = format!("{} rejoined", names.join(", "));
        info!(
            "{}: data plane started again for {} in {} ms",
            self.cfg.name,
            names.join(", "),
            started.elapsed().as_millis()
        );
        // The link events queued meanwhile (the new interface coming up,
        // the programs attaching) are history: every carrier is read now.
        let _ = self.events.drain();
        if self.cfg.monitoring_off() {
            // Read once, as at start.
            for (i, _) in &back {
                if let Ok(l) = self.nl.link(&self.cfg.slaves[*i]) {
                    host::feed_carrier(&mut self.bond, &self.cfg, *i, l.carrier);
                }
            }
        } else {
            self.poll_links();
        }
    }

    /// After the data plane started again: what follows the slaves'
    /// interface indices, and the receive filters, start again too.
    fn after_restart(&mut self) {
        self.transmitting.clear();
        self.carriers = CarrierReader::new(
            &self
                .cfg
                .slaves
                .iter()
                .cloned()
                .zip(self.ifindexes.iter().copied())
                .collect::<Vec<_>>(),
        );
        self.by_index = self
            .ifindexes
            .iter()
            .enumerate()
            .map(|(i, idx)| (*idx, i))
            .collect();
        self.filters = Filters::new(&self.cfg.slaves);
        self.applied = None;
        self.rx_seen = vec![0; self.cfg.slaves.len()];
    }

    /// Keeps the status text in the procfs-style file current: after a
    /// change, and every second for the counters. Written whole to a
    /// temporary file and renamed, so a reader never sees half of it.
    fn write_proc_file(&mut self, now: Instant) {
        let (path, last, dirty) = &self.proc_file;
        if !dirty && last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(1)) {
            return;
        }
        let path = path.clone();
        let first = last.is_none();
        self.proc_file.1 = Some(now);
        self.proc_file.2 = false;
        let text = self.status().proc_text();
        let tmp = path.with_file_name(format!(".{}.tmp", self.cfg.name));
        let r = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&tmp, text))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = r {
            if first {
                warn!("{}: cannot keep {}: {e}", self.cfg.name, path.display());
            }
        }
    }

    fn poll_links(&mut self) {
        host::poll_links(&mut self.nl, &self.carriers, &self.cfg, &mut self.bond);
    }

    fn status(&self) -> xbond_core::status::Status {
        let mut s = status(&self.bond, &self.dp, &self.cfg, &self.mtu);
        s.runtime.notes.extend(self.queue_notes.iter().cloned());
        for (i, _) in self.gone.iter().enumerate().filter(|g| *g.1) {
            let n = &self.cfg.slaves[i];
            s.runtime.notes.push(format!(
                "slave {n}: the interface is gone (deleted or unplugged); the bond goes on over \
                 the others, and {n} rejoins when an interface of that name is back"
            ));
        }
        s.runtime.failovers = self.failovers.0;
        s.runtime.last_failover_us = self.failovers.1.map(|d| d.as_micros() as u64);
        s.runtime.data_plane_restarts = self.dp_restarts.0;
        s.runtime.data_plane_restarted_for = self.dp_restarts.1.clone();
        s
    }

    /// 802.3ad: warns, once until a partner answers, when every port whose
    /// link is up runs on defaulted partner information (no LACPDU came in
    /// time: the switch ports are not in an LACP channel), as the kernel.
    fn check_lacp_partner(&mut self) {
        let Some(lacp) = self.bond.lacp() else { return };
        let up: Vec<usize> = (0..self.cfg.slaves.len())
            .filter(|&i| self.bond.slaves()[i].link.usable())
            .collect();
        let silent = !up.is_empty()
            && up.iter().all(|&i| {
                lacp.port_status(i).is_some_and(|p| {
                    p.actor_state & xbond_core::lacp::wire::PortState::DEFAULTED != 0
                })
            });
        if silent && !self.no_partner_warned {
            warn!("{}", words::no_lacp_partner(&self.cfg.name));
        }
        self.no_partner_warned = silent;
    }

    /// Logs, once, each change of a slave's queue count against what is
    /// served; the status keeps the lines while they hold.
    fn check_queues(&mut self) {
        let notes = host::queue_notes(&mut self.nl, &self.cfg, self.queues);
        for n in notes.iter().filter(|n| !self.queue_notes.contains(n)) {
            warn!("{}: {n}", self.cfg.name);
        }
        if !self.queue_notes.is_empty() && notes.is_empty() {
            info!(
                "{}: every slave has the {} RX queues xbond serves again",
                self.cfg.name, self.queues
            );
        }
        self.queue_notes = notes;
    }

    fn refresh_addresses(&mut self) {
        if self.upper == Upper::VethPair {
            host::refresh_addresses(&mut self.nl, &self.cfg, &mut self.bond);
        }
    }
}

/// How often the ARP/NS monitor's proof of traffic is read.
fn rx_check_every(cfg: &BondConfig) -> Duration {
    Duration::from_millis(u64::from(cfg.arp_interval.max(4) / 4))
}

/// What the control loop waits on: its waker, the slow-protocol sockets and
/// the signal descriptor.
fn wait_fds(
    waker: &Waker,
    slow: &[PacketSocket],
    stop_fd: Option<std::os::fd::RawFd>,
) -> Vec<std::os::fd::RawFd> {
    std::iter::once(waker.fd())
        .chain(slow.iter().map(PacketSocket::raw_fd))
        .chain(stop_fd)
        .collect()
}

impl Drop for Controller {
    fn drop(&mut self) {
        // The data plane stops (and its programs detach) before the fields
        // drop: then the control socket goes, then the host is put back.
        self.dp.stop();
        self.server.take();
        // As /proc/net/bonding/BOND goes with the bond.
        let _ = std::fs::remove_file(&self.proc_file.0);
    }
}
