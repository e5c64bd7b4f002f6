//! `xbond run`: the daemon. Sets up the upper port and the slaves, starts the
//! data plane, and runs the control loop: link events and polls into the bond
//! core, the core's decisions out to the workers, the XDP programs, the
//! interfaces and the wire. On SIGINT/SIGTERM it removes what it created and
//! restores the slaves.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam::channel::{Receiver, TryRecvError};
use sd_notify::NotifyState;
use tracing::{debug, info, warn};
use xbond_core::bond::{Bond, BondEvent, SlaveSpec};
use xbond_core::config::BondConfig;
use xbond_core::options::{MacAddr, Mode};
use xbond_core::status::{BondRuntime, SlaveRuntime, Status};
use xbond_core::wire::ETH_P_SLOW;
use xbond_xdp::netlink::{speed_duplex, CarrierReader, LinkEvents, Netlink};
use xbond_xdp::packet::PacketSocket;
use xbond_xdp::sys::Waker;
use xbond_xdp::worker::{
    Dataplane, DataplaneConfig, InjectedFault, WorkerFault, ZeroCopy, HOST_ARP,
};

use crate::control::{ControlServer, Request};
use crate::filters::{self, Filters};
use crate::{offload, runstate, upper};

/// A worker whose loop has not moved for this long is stuck (its longest
/// sleep is one second); the systemd watchdog is then no longer fed.
const WORKER_STUCK: Duration = Duration::from_secs(5);

/// How often balance-tlb/alb reads the workers' per-destination byte counts.
const TLB_SAMPLE: Duration = Duration::from_millis(100);

/// Options of `xbond run` beyond the config file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Try zero-copy AF_XDP binds first.
    pub zero_copy: ZeroCopy,
    /// Benchmark baseline: the same worker and sockets with the bond logic
    /// bypassed (first slave only).
    pub raw_forwarder: bool,
    /// How long workers busy-poll before sleeping.
    pub busy_poll: Duration,
    /// Test-only: a fault for the worker of queue 0.
    pub fault: Option<InjectedFault>,
    /// Readable when a stop signal arrived (a self-pipe): wakes the control
    /// loop at once, so a stop (and a restart) waits for no timer.
    pub stop_fd: Option<std::os::fd::RawFd>,
}

/// What the daemon changed on the host, undone on exit (also on error).
struct HostGuard {
    nl: Netlink,
    /// The upper port: (host side, data-plane side).
    upper: Option<(String, String)>,
    /// The upper port was created by this run and the bond never ran: an
    /// error during set-up removes it again, leaving nothing half-made.
    created_now: bool,
    restore_macs: Vec<(String, MacAddr)>,
    /// Offloads turned off on slaves, turned back on at exit.
    restore_offloads: Vec<(String, Vec<(String, bool)>)>,
}

impl Drop for HostGuard {
    fn drop(&mut self) {
        for (name, mac) in self.restore_macs.drain(..) {
            if let Err(e) = self.nl.set_mac(&name, mac) {
                warn!("could not restore the MAC of {name}: {e}");
            }
        }
        for (name, features) in self.restore_offloads.drain(..) {
            offload::set(&name, &features);
        }
        let Some((host, data)) = self.upper.take() else {
            return;
        };
        if self.created_now {
            match self.nl.delete(&host) {
                Ok(()) => info!("{host}: removed the upper port made by this failed start"),
                Err(e) => warn!("could not remove {host}: {e}"),
            }
            return;
        }
        // bond0 stays, with everything the host put on it; without a data
        // plane behind it, it has no carrier.
        match self.nl.set_up(&data, false) {
            Ok(()) => info!("{host}: carrier down ({data} down); {host} is kept, `xbond down {host}` removes it"),
            Err(e) => warn!("could not set {data} down: {e}"),
        }
    }
}

/// Modes this build runs; the others are parsed and validated but refused.
fn check_supported(cfg: &BondConfig) -> Result<()> {
    match cfg.mode {
        Mode::BalanceRr
        | Mode::ActiveBackup
        | Mode::BalanceXor
        | Mode::Broadcast
        | Mode::Ieee8023ad
        | Mode::BalanceTlb
        | Mode::BalanceAlb => {}
    }
    Ok(())
}

/// Runs the daemon until `stop` is set (by a signal).
pub fn run(mut cfg: BondConfig, opts: RunOptions, stop: Arc<AtomicBool>) -> Result<()> {
    check_supported(&cfg)?;
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
    };

    // The upper port: adopted when it is ours (a restart keeps what the host
    // configured on it), created otherwise.
    if crate::control::query_status(&cfg.socket_path()).is_ok() {
        bail!(
            "an xbond for {} is already running (its control socket {} answers)",
            cfg.name,
            cfg.socket_path()
        );
    }
    // Checked before anything on the host is touched: a refused start
    // changes nothing.
    let found = upper::inspect(&mut nl, &cfg.name, &cfg.peer_name)?;

    // What an earlier run recorded: the active slave, and the slaves as they
    // were before xbond first changed them (a crash leaves them changed).
    let state_path = runstate::path(&cfg);
    let mut state = runstate::load(&state_path).unwrap_or_default();

    // Slaves must exist, be free and have a queue per worker.
    let mut specs = Vec::new();
    let mut restore_macs = Vec::new();
    for name in &cfg.slaves {
        let link = nl
            .link(name)
            .with_context(|| format!("slave {name} (key slaves)"))?;
        if link.rx_queues < cfg.queues || link.tx_queues < cfg.queues {
            bail!(
                "slave {name} has {} RX / {} TX queues, but queues = {} needs {} of each (ethtool -L {name} combined {})",
                link.rx_queues, link.tx_queues, cfg.queues, cfg.queues, cfg.queues
            );
        }
        if let Some(m) = link.master {
            let master = nl
                .link_by_index(m)
                .map_or(format!("ifindex {m}"), |l| l.name);
            bail!(
                "slave {name} (key slaves) is enslaved to {master}; release it first \
                 (ip link set {name} nomaster)"
            );
        }
        let (speed, duplex) = speed_duplex(name);
        // The MAC to give back: the one recorded before the first start, else
        // the permanent one where the driver reports it, else the current.
        let perm = link.perm_mac.filter(|m| !m.is_zero()).unwrap_or(link.mac);
        let original = state.originals.get(name).map_or(perm, |o| o.mac);
        restore_macs.push((name.clone(), original));
        specs.push(SlaveSpec {
            name: name.clone(),
            perm_mac: perm,
            speed_mbps: speed,
            full_duplex: duplex,
        });
    }

    match found {
        None => {
            upper::create(&mut nl, &cfg.name, &cfg.peer_name, cfg.queues)?;
            guard.created_now = true;
        }
        Some(upper::Pair { host, data }) => {
            if host.rx_queues < cfg.queues || data.rx_queues < cfg.queues {
                bail!(
                    "{} has {} queues but queues = {} needs {}; `xbond down {}` removes it \
                     (and what the host configured on it) so that the next start makes it anew",
                    cfg.name,
                    host.rx_queues.min(data.rx_queues),
                    cfg.queues,
                    cfg.queues,
                    cfg.name
                );
            }
            // No carrier until the bond says so.
            nl.set_up(&cfg.peer_name, false)?;
            // bond0 keeps the MAC it has (the one xbond gave it, or the
            // host's `hwaddress`), as a kernel bond keeps its address.
            if cfg.mac.is_none() && !host.mac.is_zero() {
                cfg.mac = Some(host.mac);
            }
            info!(
                "{}: adopted the upper port ({} host side, {} data plane); its addresses, \
                 routes and uppers stay",
                cfg.name, cfg.name, cfg.peer_name
            );
        }
    }
    guard.upper = Some((cfg.name.clone(), cfg.peer_name.clone()));
    guard.restore_macs = restore_macs;
    // VLAN tags must be in the frames the data path sees.
    offload::turn_off(&cfg.name, offload::UPPER_OFF);
    for (s, (_, mac)) in cfg.slaves.iter().zip(&guard.restore_macs) {
        let turned_off = offload::turn_off(s, offload::SLAVE_OFF);
        let original = state
            .originals
            .entry(s.clone())
            .or_insert_with(|| runstate::Original {
                mac: *mac,
                offloads: turned_off,
            });
        if !original.offloads.is_empty() {
            guard
                .restore_offloads
                .push((s.clone(), original.offloads.clone()));
        }
    }
    state.originals.retain(|k, _| cfg.slaves.contains(k));
    if let Err(e) = runstate::save(&state_path, &state) {
        warn!(
            "{}: could not save {}: {e:#}",
            cfg.name,
            state_path.display()
        );
    }
    let host_was_up = nl.link(&cfg.name)?.admin_up;

    let now = Instant::now();
    let mut bond = Bond::new(cfg.clone(), specs, now);
    let mut macs_done = HashMap::new();
    // Initial MACs, before anything is up.
    while let Some(ev) = bond.poll_event() {
        match ev {
            BondEvent::SetBondMac(mac) => set_mac(&mut nl, &cfg.name, mac, &mut macs_done)?,
            BondEvent::SetSlaveMac { slave, mac } => {
                set_mac(&mut nl, &cfg.slaves[slave], mac, &mut macs_done)?
            }
            _ => {}
        }
    }
    for s in &cfg.slaves {
        nl.set_up(s, true)?;
    }
    // A new bond0 is brought up, as `ip link add` + ifup would; an adopted
    // one keeps the admin state the host gave it.
    if guard.created_now || host_was_up {
        nl.set_up(&cfg.name, true)?;
    }
    nl.set_up(&cfg.peer_name, true)?;

    let mut ifindexes = vec![nl.link(&cfg.peer_name)?.index];
    for s in &cfg.slaves {
        ifindexes.push(nl.link(s)?.index);
    }
    let carriers = CarrierReader::new(
        &cfg.slaves
            .iter()
            .cloned()
            .zip(ifindexes[1..].iter().copied())
            .collect::<Vec<_>>(),
    );
    let by_index: HashMap<u32, usize> = ifindexes[1..]
        .iter()
        .enumerate()
        .map(|(i, idx)| (*idx, i))
        .collect();
    let dp_cfg = DataplaneConfig {
        upper: cfg.peer_name.clone(),
        slaves: cfg.slaves.clone(),
        queues: cfg.queues,
        zero_copy: opts.zero_copy,
        raw: opts.raw_forwarder,
        spin: opts.busy_poll,
        fault: opts.fault,
    };
    let mut events = LinkEvents::open()?;
    let waker = Arc::new(Waker::new().context("eventfd")?);
    let mut dp = Dataplane::start(&dp_cfg, &ifindexes, bond.tx_plan(), waker.clone())?;
    for (q, m) in dp.bind_modes().iter().enumerate() {
        info!(queue = q, "AF_XDP sockets bound in {} mode", m.as_str());
    }
    let mut senders: Vec<Option<PacketSocket>> = cfg.slaves.iter().map(|_| None).collect();
    // The slow path: LACPDUs and Marker PDUs, passed to the kernel by XDP,
    // read here on one AF_PACKET socket per slave (802.3ad only).
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
    let mut wait_fds: Vec<std::os::fd::RawFd> = vec![waker.fd()];
    wait_fds.extend(slow.iter().map(|s| s.raw_fd()));
    wait_fds.extend(opts.stop_fd);
    let mut slow_buf = vec![0u8; 2048];

    // Carrier as it is now. The slave that was active before a restart is
    // read first, so that it stays active where its link allows (no failover
    // from a restart); the primary, if set, still wins as primary_reselect says.
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
        feed_carrier(&mut bond, &cfg, i, l.carrier);
    }
    refresh_addresses(&mut nl, &cfg.name, &mut bond);

    // The control loop must win the CPU over busy-polling workers when a link
    // event arrives; the workers keep normal priority.
    if let Err(e) = xbond_xdp::sys::set_realtime(10) {
        warn!("control thread keeps normal priority (SCHED_FIFO: {e}); failover may wait for CPU");
    }
    let server = ControlServer::bind(
        &cfg.socket_path(),
        cfg.control_group.as_deref(),
        waker.clone(),
    )?;
    info!(
        "{} running in mode {} with slaves {}; status: xbond status {}",
        cfg.name,
        cfg.mode,
        cfg.slaves.join(", "),
        cfg.name
    );
    let requests = server.requests();
    // From here on the bond runs: bond0 is kept whatever happens.
    guard.created_now = false;
    // systemd (Type=notify): forwarding works from here on. The watchdog is
    // fed below only while every worker lives and moves.
    let watchdog = sd_notify::watchdog_enabled();
    let mut last_watchdog: Option<Instant> = None;
    let mut stuck_logged = false;
    let notifier = Notifier::start();
    notifier.send(Notice::Ready(format!(
        "{}: {} over {}",
        cfg.name,
        cfg.mode,
        cfg.slaves.join(", ")
    )));
    // The peer is up (AF_XDP is bound on it); the loop below makes bond0's
    // carrier follow the bond from here on.
    let mut upper_carrier = true;
    let mut last_hint_poll = Instant::now();
    // ARP/NS monitor: "any traffic" proof comes from the XDP counters.
    let rx_check_every = Duration::from_millis(u64::from(cfg.arp_interval.max(4) / 4));
    let mut last_rx_check = Instant::now();
    let mut rx_seen = vec![0u64; cfg.slaves.len()];
    // balance-tlb/alb: new destinations get a slave within TLB_SAMPLE.
    let balancing = matches!(cfg.mode, Mode::BalanceTlb | Mode::BalanceAlb);
    let mut last_tlb_sample = Instant::now();
    let mut last_addr_refresh = Instant::now();
    // bond0's receive filters, passed down to the slaves per mode.
    let upper_index = nl.link(&cfg.name)?.index;
    let mut filters = Filters::new(&cfg.slaves);
    let mut wanted = filters::read(&mut nl, &cfg.name).unwrap_or_default();
    let mut applied: Option<(Vec<bool>, filters::Wanted)> = None;
    let mut last_filter_read = Instant::now();

    while !stop.load(Ordering::Relaxed) {
        match dp.check_workers(WORKER_STUCK) {
            Err(f @ WorkerFault::Dead { .. }) => {
                // Never go on with a dead data path: exit non-zero (bond0
                // loses carrier on the way out) so that systemd restarts it.
                bail!(
                    "{}: {f}; stopping the bond so that it is restarted",
                    cfg.name
                );
            }
            Err(f) => {
                if !stuck_logged {
                    warn!("{}: {f}; the watchdog is no longer fed", cfg.name);
                    stuck_logged = true;
                }
            }
            Ok(()) => {
                stuck_logged = false;
                if let Some(w) = watchdog {
                    if last_watchdog.is_none_or(|t| t.elapsed() >= w / 2) {
                        notifier.send(Notice::Watchdog);
                        last_watchdog = Some(Instant::now());
                    }
                }
            }
        }
        // Apply everything the core decided.
        while let Some(ev) = bond.poll_event() {
            match ev {
                BondEvent::PlanChanged => {
                    if let Err(e) = dp.publish(bond.tx_plan()) {
                        warn!("publishing the plan to XDP: {e}");
                    }
                }
                // Applied below from bond.carrier(), so that the state at
                // start is applied too.
                BondEvent::Carrier(_) => {}
                BondEvent::ActiveChanged { old, new } => {
                    let name =
                        |i: Option<usize>| i.map_or("none".to_string(), |i| cfg.slaves[i].clone());
                    info!("active slave {} -> {}", name(old), name(new));
                    state.active = new.map(|i| cfg.slaves[i].clone());
                    if let Err(e) = runstate::save(&state_path, &state) {
                        warn!("{}: could not save the active slave: {e:#}", cfg.name);
                    }
                    refresh_addresses(&mut nl, &cfg.name, &mut bond);
                }
                BondEvent::Link { slave, up } => {
                    let s = &cfg.slaves[slave];
                    if up {
                        info!("link status definitely up for interface {s}");
                    } else {
                        warn!("link status definitely down for interface {s}, disabling it");
                    }
                }
                BondEvent::SetSlaveMac { slave, mac } => {
                    if let Err(e) = set_mac(&mut nl, &cfg.slaves[slave], mac, &mut macs_done) {
                        warn!("{e:#}");
                    }
                }
                BondEvent::SetBondMac(mac) => {
                    if let Err(e) = set_mac(&mut nl, &cfg.name, mac, &mut macs_done) {
                        warn!("{e:#}");
                    }
                }
                BondEvent::PollLinks => poll_links(&mut nl, &carriers, &cfg, &mut bond),
            }
        }
        if upper_carrier != bond.carrier() {
            // A veth's carrier follows its peer's admin state.
            match nl.set_up(&cfg.peer_name, bond.carrier()) {
                Ok(()) => {
                    upper_carrier = bond.carrier();
                    info!(
                        "{} carrier {}",
                        cfg.name,
                        if upper_carrier { "up" } else { "down" }
                    );
                }
                Err(e) => warn!("setting the carrier of {}: {e}", cfg.name),
            }
        }
        while let Some(t) = bond.poll_transmit() {
            let name = &cfg.slaves[t.slave];
            if senders[t.slave].is_none() {
                match PacketSocket::open(name, 0) {
                    Ok(s) => senders[t.slave] = Some(s),
                    Err(e) => warn!("cannot send on {name}: {e}"),
                }
            }
            if let Some(sock) = &senders[t.slave] {
                if let Err(e) = sock.send(&t.frame) {
                    warn!("peer notification on {name}: {e}");
                }
            }
        }
        serve(&requests, &bond, &dp, &cfg)?;

        let now = Instant::now();
        // Sleep until the core's next timer; link events, slow-protocol
        // frames, worker hints and control requests wake the loop earlier.
        // The cap bounds how late a stop signal is seen.
        let wait = bond
            .poll_timeout()
            .map_or(Duration::from_millis(500), |t| {
                t.saturating_duration_since(now)
            })
            .min(if balancing {
                TLB_SAMPLE
            } else {
                Duration::from_millis(500)
            })
            .min(watchdog.map_or(Duration::MAX, |w| w / 4));
        let links = events.wait(&wait_fds, wait);
        // bond0's flags change with a link event; its multicast list has
        // none, so it is read again every second.
        if links.iter().any(|l| l.index == upper_index)
            || last_filter_read.elapsed() >= Duration::from_secs(1)
        {
            last_filter_read = Instant::now();
            if let Some(w) = filters::read(&mut nl, &cfg.name) {
                wanted = w;
            }
        }
        // With link_watch_policy = "none" nothing but the reading at start
        // counts: the bond never fails over, as the operator asked.
        if !cfg.monitoring_off() {
            for link in links {
                if let Some(&i) = by_index.get(&link.index) {
                    feed_carrier(&mut bond, &cfg, i, link.carrier);
                }
            }
        }
        for (i, sock) in slow.iter().enumerate() {
            // Frames this host sent come back as length 0 and are skipped.
            // Bounded per pass, so that a flood cannot starve the loop.
            for _ in 0..64 {
                let Ok(Some(n)) = sock.recv(&mut slow_buf, Duration::ZERO) else {
                    break;
                };
                if n == 0 {
                    continue;
                }
                if let Err(e) = bond.handle_slow_frame(i, &slow_buf[..n], Instant::now()) {
                    debug!("{}: dropped a slow-protocol frame: {e}", cfg.slaves[i]);
                }
            }
        }
        for _ in 0..1024 {
            let Some((slave, frame)) = dp.taps().pop() else {
                break;
            };
            if slave == HOST_ARP {
                bond.handle_host_arp(frame, Instant::now());
            } else {
                bond.handle_arp_frame(usize::from(slave), &frame, Instant::now());
            }
        }
        if balancing && last_tlb_sample.elapsed() >= TLB_SAMPLE {
            last_tlb_sample = Instant::now();
            bond.note_tlb_load(&dp.take_tlb_load());
        }
        if bond.arp_monitoring() && last_rx_check.elapsed() >= rx_check_every {
            last_rx_check = Instant::now();
            for (i, p) in dp.programs()[1..].iter().enumerate() {
                let c = p.counters();
                let total = c.redirected + c.dropped_inactive + c.passed_slow;
                if total != rx_seen[i] {
                    rx_seen[i] = total;
                    bond.note_rx(i, last_rx_check);
                }
            }
        }
        // Woken by a control request (served at the top of the loop) or by a
        // worker hint (checked here).
        waker.clear();
        if dp.take_tx_errors()
            && !cfg.monitoring_off()
            && last_hint_poll.elapsed() >= Duration::from_millis(1)
        {
            last_hint_poll = Instant::now();
            // A worker's TX to a slave failed: read the carriers now. Netlink
            // carrier events can be held back by the kernel's linkwatch (up to
            // a second when links change often), the reading is not.
            poll_links(&mut nl, &carriers, &cfg, &mut bond);
        }
        let now = Instant::now();
        if bond.poll_timeout().is_some_and(|t| t <= now) {
            bond.handle_timeout(now);
        }
        let key = (bond.filter_slaves(), wanted.clone());
        if applied.as_ref() != Some(&key) {
            filters.apply(&bond, &wanted);
            applied = Some(key);
        }
        if events.take_addresses_changed()
            || now.duration_since(last_addr_refresh) > Duration::from_secs(10)
        {
            refresh_addresses(&mut nl, &cfg.name, &mut bond);
            last_addr_refresh = now;
        }
    }
    info!("stopping {}", cfg.name);
    notifier.send(Notice::Stopping);
    dp.stop();
    drop(dp);
    drop(server);
    drop(guard);
    Ok(())
}

/// What the control loop tells systemd.
#[derive(Debug)]
enum Notice {
    /// READY=1 with a STATUS= line.
    Ready(String),
    /// WATCHDOG=1.
    Watchdog,
    /// STOPPING=1.
    Stopping,
}

/// Sends sd_notify messages from a thread of its own: the notify socket is
/// a blocking datagram socket, and a service manager that does not read it
/// must never hold up the control loop (and with it a failover). A notice
/// that finds the thread still busy is dropped.
struct Notifier {
    tx: Option<crossbeam::channel::Sender<Notice>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Notifier {
    fn start() -> Notifier {
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            return Notifier {
                tx: None,
                thread: None,
            };
        }
        let (tx, rx) = crossbeam::channel::bounded::<Notice>(4);
        let thread = std::thread::Builder::new()
            .name("xbond-notify".into())
            .spawn(move || {
                for n in rx {
                    let r = match &n {
                        Notice::Ready(status) => {
                            sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)])
                        }
                        Notice::Watchdog => sd_notify::notify(&[NotifyState::Watchdog]),
                        Notice::Stopping => sd_notify::notify(&[NotifyState::Stopping]),
                    };
                    // Only readiness matters to a caller; a manager that
                    // went away later (the ifupdown hook's socket) is not.
                    match (&n, r) {
                        (_, Ok(())) => {}
                        (Notice::Ready(_), Err(e)) => warn!("sd_notify READY: {e}"),
                        (_, Err(e)) => debug!("sd_notify {n:?}: {e}"),
                    }
                }
            })
            .ok();
        Notifier {
            tx: thread.as_ref().map(|_| tx),
            thread,
        }
    }

    fn send(&self, n: Notice) {
        if let Some(tx) = &self.tx {
            let _ = tx.try_send(n);
        }
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has sent what it has;
        // it is not waited for if the socket blocks.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// Feeds a carrier reading to the bond; a link that comes up has its speed
/// and duplex read again first (they are unknown while it is down).
fn feed_carrier(bond: &mut Bond, cfg: &BondConfig, i: usize, carrier: bool) {
    let now = Instant::now();
    if carrier && !bond.slaves()[i].carrier {
        let (speed, duplex) = speed_duplex(&cfg.slaves[i]);
        bond.set_speed(i, speed, duplex, now);
    }
    bond.handle_carrier(i, carrier, now);
}

fn poll_links(nl: &mut Netlink, reader: &CarrierReader, cfg: &BondConfig, bond: &mut Bond) {
    for (i, s) in cfg.slaves.iter().enumerate() {
        match reader.carrier(nl, s) {
            Ok(c) => feed_carrier(bond, cfg, i, c),
            Err(e) => {
                warn!("polling {s}: {e}");
                bond.handle_carrier(i, false, Instant::now());
            }
        }
    }
}

fn set_mac(
    nl: &mut Netlink,
    name: &str,
    mac: MacAddr,
    done: &mut HashMap<String, MacAddr>,
) -> Result<()> {
    if done.get(name) == Some(&mac) {
        return Ok(());
    }
    nl.set_mac(name, mac)
        .with_context(|| format!("setting the MAC of {name} to {mac}"))?;
    done.insert(name.to_string(), mac);
    Ok(())
}

fn refresh_addresses(nl: &mut Netlink, name: &str, bond: &mut Bond) {
    if let Ok((v4, v6)) = nl.addresses(name) {
        bond.set_addresses(v4, v6);
    }
}

/// Builds the full status: the core's view plus the data plane's counters.
pub fn status(bond: &Bond, dp: &Dataplane, cfg: &BondConfig) -> Status {
    let mut runtime = BondRuntime {
        peer_name: cfg.peer_name.clone(),
        upper_xdp_bind: dp
            .bind_modes()
            .first()
            .map_or("none", |m| m.as_str())
            .to_string(),
        workers: dp.stats().len() as u32,
        ..BondRuntime::default()
    };
    // Frames shorter than an Ethernet header are dropped and counted in XDP,
    // on the upper port and on every slave.
    runtime.malformed = dp
        .programs()
        .iter()
        .map(|p| p.counters().dropped_runt)
        .sum();
    let mut slaves = vec![SlaveRuntime::default(); cfg.slaves.len()];
    for (i, s) in slaves.iter_mut().enumerate() {
        s.xdp_bind = runtime.upper_xdp_bind.clone();
        if let Some(p) = dp.programs().get(i + 1) {
            s.xdp_attach = p.mode().as_str().to_string();
            let c = p.counters();
            s.rx_dropped_inactive = c.dropped_inactive;
            s.rx_dropped_no_socket = c.dropped_no_socket;
            s.rx_passed_to_kernel = c.passed_slow;
        }
    }
    use std::sync::atomic::Ordering::Relaxed;
    for w in dp.stats() {
        runtime.tx_no_slave += w.tx_no_slave.load(Relaxed);
        let pool = w.pool();
        runtime.pool_free += pool.free as u64;
        runtime.pool_in_fill += pool.in_fill as u64;
        runtime.pool_in_tx += pool.in_tx as u64;
        runtime.pool_total += pool.total as u64;
        for (s, c) in slaves.iter_mut().zip(&w.slaves) {
            s.rx_frames += c.rx.load(Relaxed);
            s.tx_frames += c.tx.load(Relaxed);
            s.rx_dropped_inactive += c.rx_inactive.load(Relaxed);
            s.rx_dropped_duplicate += c.rx_duplicate.load(Relaxed);
            s.tx_dropped += c.tx_dropped.load(Relaxed);
        }
    }
    Status::new(bond, runtime, &slaves)
}

fn serve(
    requests: &Receiver<Request>,
    bond: &Bond,
    dp: &Dataplane,
    cfg: &BondConfig,
) -> Result<()> {
    loop {
        match requests.try_recv() {
            Ok(req) => {
                let s = status(bond, dp, cfg);
                req.reply(&s);
            }
            Err(TryRecvError::Empty) => return Ok(()),
            Err(TryRecvError::Disconnected) => bail!("control socket thread ended"),
        }
    }
}
