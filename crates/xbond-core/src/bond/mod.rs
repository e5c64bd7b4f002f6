//! The control-plane state of one bond: link monitor, active slave selection,
//! failover and peer notification.
//!
//! The runtime feeds carrier changes (from netlink events as they happen, and
//! from polling every `miimon` ms as a safety net) with
//! [`Bond::handle_carrier`], calls [`Bond::handle_timeout`] when
//! [`Bond::poll_timeout`] is due, and drains [`Bond::poll_event`] (plan and
//! carrier changes, MAC changes) and [`Bond::poll_transmit`] (gratuitous ARPs
//! and unsolicited NAs). Nothing here reads a clock.
//!
//! The link monitor follows the kernel's inspect-then-commit model
//! (`bond_miimon_inspect()` / `bond_miimon_commit()`): a link moves through
//! [`LinkState`] `Up -> Fail -> Down` and `Down -> Back -> Up`, with
//! `downdelay`/`updelay` spent in the middle states. Unlike the kernel, a
//! carrier event is acted on when it arrives, not at the next poll, so the
//! detection time is the event latency instead of up to `miimon` ms.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::alb::{self, LearningTimer, Rlb, Tlb};
use crate::config::{BondConfig, LacpRate};
use crate::lacp::{wire::SlowError, Lacp, LacpConfig, PortSpec};
use crate::monitor::{ArpMonitor, Role};
use crate::options::{FailOverMac, LinkWatchPolicy, MacAddr, Mode, PrimaryReselect};
use crate::plan::TxPlan;
use crate::timer::Timer;
use crate::wire;
use crate::MAX_SLAVES;

/// What the runtime knows about a slave when the bond starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaveSpec {
    /// Interface name.
    pub name: String,
    /// The MAC the interface had before xbond touched it.
    pub perm_mac: MacAddr,
    /// Link speed in Mb/s, if known.
    pub speed_mbps: Option<u32>,
    /// Full duplex, if known.
    pub full_duplex: Option<bool>,
}

/// Link state of a slave, as the kernel's `BOND_LINK_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Carrier present and believed.
    Up,
    /// Carrier lost; `downdelay` runs until `until`.
    Fail {
        /// When the link is declared down if carrier stays away.
        until: Instant,
    },
    /// Link down.
    Down,
    /// Carrier back; `updelay` runs until `until`.
    Back {
        /// When the link is declared up if carrier stays.
        until: Instant,
    },
}

impl LinkState {
    /// Whether a slave in this state carries traffic: up, or still within its
    /// downdelay (as the kernel, which keeps using a failing link until the
    /// delay has run out).
    pub fn usable(self) -> bool {
        matches!(self, LinkState::Up | LinkState::Fail { .. })
    }

    /// The kernel's `/proc` spelling of the state.
    pub fn proc_name(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Fail { .. } => "going down",
            LinkState::Down => "down",
            LinkState::Back { .. } => "going back",
        }
    }
}

/// One slave's state.
#[derive(Debug, Clone)]
pub struct Slave {
    /// What the runtime told us at start.
    pub spec: SlaveSpec,
    /// Last carrier reading.
    pub carrier: bool,
    /// Link state after up/down delays.
    pub link: LinkState,
    /// Times the link went down.
    pub link_failure_count: u32,
    /// Priority (`prio`); higher is preferred.
    pub prio: i32,
    /// MAC the slave carries now (as set by xbond).
    pub mac: MacAddr,
}

/// Something the runtime must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BondEvent {
    /// Decisions changed: publish [`Bond::tx_plan`] to the workers now.
    PlanChanged,
    /// The bond's own carrier (on the upper port) must become this.
    Carrier(bool),
    /// The active slave changed (modes with one).
    ActiveChanged {
        /// Previous active slave.
        old: Option<usize>,
        /// New active slave.
        new: Option<usize>,
    },
    /// A slave's link was committed up or down.
    Link {
        /// Slave index.
        slave: usize,
        /// Up or down.
        up: bool,
    },
    /// Set this slave's MAC address.
    SetSlaveMac {
        /// Slave index.
        slave: usize,
        /// The address.
        mac: MacAddr,
    },
    /// Set the bond's (upper port's) MAC address.
    SetBondMac(MacAddr),
    /// Time for a `miimon` poll: read every slave's carrier and feed it to
    /// [`Bond::handle_carrier`].
    PollLinks,
}

/// A frame the bond sends itself on a slave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Slave index.
    pub slave: usize,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
}

#[derive(Debug, Clone)]
struct PeerNotify {
    slave: usize,
    arp_left: u8,
    na_left: u8,
    timer: Timer,
}

/// The state of one bond.
#[derive(Debug)]
pub struct Bond {
    cfg: BondConfig,
    slaves: Vec<Slave>,
    primary: Option<usize>,
    active: Option<usize>,
    bond_mac: MacAddr,
    carrier: bool,
    plan_version: u64,
    mii_timer: Timer,
    notify: Option<PeerNotify>,
    ipv4: Vec<Ipv4Addr>,
    ipv6: Vec<Ipv6Addr>,
    events: VecDeque<BondEvent>,
    transmits: VecDeque<Transmit>,
    lacp: Option<Lacp>,
    arp: Option<ArpMonitor>,
    /// balance-tlb/alb transmit balancing.
    tlb: Option<Tlb>,
    /// balance-alb receive balancing.
    rlb: Option<Rlb>,
    /// balance-tlb/alb learning packets.
    learning: Option<LearningTimer>,
}

impl Bond {
    /// Creates the bond with every slave down; the runtime then reports each
    /// slave's carrier with [`Bond::handle_carrier`]. `cfg` must have passed
    /// validation and `slaves` must follow `cfg.slaves`.
    pub fn new(cfg: BondConfig, slaves: Vec<SlaveSpec>, now: Instant) -> Bond {
        let slaves: Vec<Slave> = slaves
            .into_iter()
            .take(MAX_SLAVES)
            .map(|spec| Slave {
                prio: cfg.prio.get(&spec.name).copied().unwrap_or(0),
                mac: spec.perm_mac,
                spec,
                carrier: false,
                link: LinkState::Down,
                link_failure_count: 0,
            })
            .collect();
        let primary = cfg
            .primary
            .as_ref()
            .and_then(|p| slaves.iter().position(|s| &s.spec.name == p));
        let bond_mac = cfg
            .mac
            .or_else(|| slaves.first().map(|s| s.spec.perm_mac))
            .unwrap_or_default();
        let mii_timer = if cfg.miimon > 0 {
            Timer::Running {
                expires_at: now + Duration::from_millis(u64::from(cfg.miimon)),
            }
        } else {
            Timer::Stopped
        };
        let lacp = (cfg.mode == Mode::Ieee8023ad).then(|| {
            let lcfg = LacpConfig {
                fast: cfg.lacp_rate == LacpRate::Fast,
                active: cfg.lacp_active,
                ad_select: cfg.ad_select,
                system: cfg.ad_actor_system.unwrap_or(bond_mac),
                system_priority: cfg.ad_actor_sys_prio,
                user_port_key: cfg.ad_user_port_key,
                coupled: cfg.coupled_control,
                min_links: cfg.min_links,
                fallback: cfg.lacp_fallback == Some(Mode::ActiveBackup),
            };
            let ports = slaves
                .iter()
                .map(|s| PortSpec {
                    mac: s.spec.perm_mac,
                    speed_mbps: s.spec.speed_mbps,
                    full_duplex: s.spec.full_duplex,
                    port_priority: cfg
                        .ad_actor_port_prio
                        .get(&s.spec.name)
                        .copied()
                        .unwrap_or(255),
                    name: s.spec.name.clone(),
                })
                .collect();
            Lacp::new(lcfg, ports, now)
        });
        let monitored =
            cfg.arp_interval > 0 && !(cfg.arp_ip_target.is_empty() && cfg.ns_ip6_target.is_empty());
        let arp = monitored.then(|| {
            ArpMonitor::new(
                cfg.arp_interval,
                cfg.arp_missed_max,
                cfg.arp_validate,
                cfg.arp_all_targets,
                &cfg.arp_ip_target,
                &cfg.ns_ip6_target,
                slaves.len(),
                now,
            )
        });
        let balancing = matches!(cfg.mode, Mode::BalanceTlb | Mode::BalanceAlb);
        let tlb = balancing.then(|| Tlb::new(slaves.len(), cfg.tlb_dynamic_lb, now));
        let rlb = (cfg.mode == Mode::BalanceAlb)
            .then(|| Rlb::new(slaves.iter().map(|s| s.mac).collect(), bond_mac, Vec::new()));
        let learning = balancing
            .then(|| LearningTimer::new(Duration::from_secs(u64::from(cfg.lp_interval)), now));
        let mut bond = Bond {
            cfg,
            slaves,
            primary,
            active: None,
            bond_mac,
            carrier: false,
            plan_version: 0,
            mii_timer,
            notify: None,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            lacp,
            arp,
            tlb,
            rlb,
            learning,
        };
        bond.events.push_back(BondEvent::SetBondMac(bond_mac));
        if bond.slaves_take_bond_mac() {
            for i in 0..bond.slaves.len() {
                bond.set_slave_mac(i, bond_mac);
            }
        }
        bond.events.push_back(BondEvent::Carrier(false));
        bond.publish();
        bond
    }

    /// The configuration the bond runs with.
    pub fn config(&self) -> &BondConfig {
        &self.cfg
    }

    /// The slaves, in configuration order.
    pub fn slaves(&self) -> &[Slave] {
        &self.slaves
    }

    /// The active slave, in modes that have one.
    pub fn active(&self) -> Option<usize> {
        self.active
    }

    /// The primary slave, if configured.
    pub fn primary(&self) -> Option<usize> {
        self.primary
    }

    /// The bond's MAC address.
    pub fn bond_mac(&self) -> MacAddr {
        self.bond_mac
    }

    /// The bond's carrier (upper port).
    pub fn carrier(&self) -> bool {
        self.carrier
    }

    /// Number of slaves whose link is up.
    pub fn up_count(&self) -> usize {
        self.slaves.iter().filter(|s| s.link.usable()).count()
    }

    fn slaves_take_bond_mac(&self) -> bool {
        match self.cfg.mode {
            Mode::ActiveBackup => self.cfg.fail_over_mac == FailOverMac::None,
            Mode::BalanceTlb | Mode::BalanceAlb => false,
            _ => true,
        }
    }

    fn set_slave_mac(&mut self, slave: usize, mac: MacAddr) {
        if let Some(s) = self.slaves.get_mut(slave) {
            if s.mac != mac || mac == s.spec.perm_mac {
                s.mac = mac;
                self.events.push_back(BondEvent::SetSlaveMac { slave, mac });
            }
        }
    }

    /// The addresses configured on the bond's upper port, announced after a
    /// failover.
    pub fn set_addresses(&mut self, ipv4: Vec<Ipv4Addr>, ipv6: Vec<Ipv6Addr>) {
        if let Some(r) = self.rlb.as_mut() {
            r.set_bond_ips(ipv4.clone());
        }
        self.ipv4 = ipv4;
        self.ipv6 = ipv6;
    }

    /// The speed and duplex of `slave`, read by the runtime when its link
    /// comes up (a link that was down at start reports none).
    pub fn set_speed(
        &mut self,
        slave: usize,
        speed_mbps: Option<u32>,
        full_duplex: Option<bool>,
        now: Instant,
    ) {
        let Some(s) = self.slaves.get_mut(slave) else {
            return;
        };
        if (s.spec.speed_mbps, s.spec.full_duplex) == (speed_mbps, full_duplex) {
            return;
        }
        s.spec.speed_mbps = speed_mbps;
        s.spec.full_duplex = full_duplex;
        if let Some(l) = self.lacp.as_mut() {
            l.set_port_speed(slave, speed_mbps, full_duplex, now);
            if l.take_changed() {
                self.reselect(now);
            }
        }
    }

    /// A carrier reading for `slave` (from a netlink event or a poll). Readings
    /// that change nothing are ignored.
    pub fn handle_carrier(&mut self, slave: usize, carrier: bool, now: Instant) {
        let Some(s) = self.slaves.get_mut(slave) else {
            return;
        };
        s.carrier = carrier;
        let signal = self.link_signal(slave);
        self.apply_signal(slave, signal, now);
    }

    /// What the configured monitors say about a slave's link, combined by
    /// `link_watch_policy`. Carrier counts when `miimon` is set or no ARP/NS
    /// monitor runs; with only an ARP/NS monitor, carrier is not consulted
    /// (as in the kernel).
    fn link_signal(&self, slave: usize) -> bool {
        let carrier = self.slaves[slave].carrier;
        let Some(arp) = &self.arp else {
            return carrier;
        };
        let arp_up = arp.is_up(slave);
        if self.cfg.miimon == 0 {
            return arp_up;
        }
        match self.cfg.link_watch_policy {
            Some(LinkWatchPolicy::Any) => carrier || arp_up,
            _ => carrier && arp_up,
        }
    }

    /// Moves a slave's link state toward `signal`, through updelay/downdelay.
    fn apply_signal(&mut self, slave: usize, signal: bool, now: Instant) {
        let carrier = signal;
        let s = &self.slaves[slave];
        let updelay = Duration::from_millis(u64::from(self.cfg.updelay));
        let downdelay = Duration::from_millis(u64::from(self.cfg.downdelay));
        let next = match (s.link, carrier) {
            (LinkState::Up, false) if downdelay.is_zero() => Some(LinkState::Down),
            (LinkState::Up, false) => Some(LinkState::Fail {
                until: now + downdelay,
            }),
            // Carrier came back before downdelay ran out: the link never went down.
            (LinkState::Fail { .. }, true) => Some(LinkState::Up),
            (LinkState::Down, true) if updelay.is_zero() => Some(LinkState::Up),
            (LinkState::Down, true) => Some(LinkState::Back {
                until: now + updelay,
            }),
            (LinkState::Back { .. }, false) => Some(LinkState::Down),
            _ => None,
        };
        if let Some(next) = next {
            self.commit_link(slave, next, now);
        }
    }

    fn commit_link(&mut self, slave: usize, next: LinkState, now: Instant) {
        let s = &mut self.slaves[slave];
        let was_up = s.link.usable();
        let is_up = next.usable();
        s.link = next;
        if was_up && !is_up {
            s.link_failure_count = s.link_failure_count.saturating_add(1);
        }
        if was_up != is_up {
            self.events.push_back(BondEvent::Link { slave, up: is_up });
        }
        // LACP sees the link after up/down delays, as in the kernel.
        if let Some(l) = self.lacp.as_mut() {
            l.set_port_enabled(slave, is_up, now);
        }
        self.reselect(now);
    }

    /// Advances timers: up/down delays, the `miimon` poll and peer
    /// notifications.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.slaves.len() {
            match self.slaves[i].link {
                LinkState::Fail { until } if until <= now => {
                    self.commit_link(i, LinkState::Down, now)
                }
                LinkState::Back { until } if until <= now => {
                    self.commit_link(i, LinkState::Up, now)
                }
                _ => {}
            }
        }
        if let Some(l) = self.lacp.as_mut() {
            l.handle_timeout(now);
            if l.take_changed() {
                self.reselect(now);
            }
        }
        let mut republish = false;
        if let Some(t) = self.tlb.as_mut() {
            t.handle_timeout(now);
            republish |= t.take_changed();
        }
        if let Some(r) = self.rlb.as_mut() {
            while let Some((slave, frame)) = r.poll_transmit(now) {
                self.transmits.push_back(Transmit {
                    slave: usize::from(slave),
                    frame,
                });
            }
        }
        if self.learning.as_mut().is_some_and(|l| l.due(now)) {
            for (i, s) in self
                .slaves
                .iter()
                .enumerate()
                .filter(|(_, s)| s.link.usable())
            {
                self.transmits.push_back(Transmit {
                    slave: i,
                    frame: alb::learning_packet(s.mac, 0),
                });
            }
        }
        if republish {
            self.publish();
        }
        if self.arp.as_ref().is_some_and(|a| a.next_tick() <= now) {
            self.arp_tick(now);
        }
        if self.mii_timer.due(now) {
            self.events.push_back(BondEvent::PollLinks);
            self.mii_timer = Timer::Running {
                expires_at: now + Duration::from_millis(u64::from(self.cfg.miimon)),
            };
        }
        self.run_notify(now);
    }

    /// When [`Bond::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.slaves.iter().filter_map(|s| match s.link {
            LinkState::Fail { until } | LinkState::Back { until } => Some(until),
            _ => None,
        });
        let notify = self.notify.as_ref().and_then(|n| n.timer.deadline());
        let lacp = self.lacp.as_ref().and_then(|l| l.poll_timeout());
        let arp = self.arp.as_ref().map(|a| a.next_tick());
        let tlb = self.tlb.as_ref().and_then(|t| t.poll_timeout());
        let rlb = self.rlb.as_ref().and_then(|r| r.poll_timeout());
        let learning = self.learning.as_ref().and_then(|l| l.poll_timeout());
        links
            .chain(self.mii_timer.deadline())
            .chain(notify)
            .chain(lacp)
            .chain(arp)
            .chain(tlb)
            .chain(rlb)
            .chain(learning)
            .min()
    }

    /// The next thing the runtime must do.
    pub fn poll_event(&mut self) -> Option<BondEvent> {
        self.events.pop_front()
    }

    /// The next frame to send on a slave.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        let (slave, frame) = self.lacp.as_mut()?.poll_transmit()?;
        Some(Transmit { slave, frame })
    }

    /// A slow-protocol frame (EtherType 0x8809) received on `slave`. In modes
    /// other than 802.3ad it is ignored. A malformed frame is counted and
    /// changes nothing; the error says why it was rejected.
    pub fn handle_slow_frame(
        &mut self,
        slave: usize,
        frame: &[u8],
        now: Instant,
    ) -> Result<(), SlowError> {
        let Some(l) = self.lacp.as_mut() else {
            return Ok(());
        };
        let r = l.handle_frame(slave, frame, now);
        if l.take_changed() {
            self.reselect(now);
        }
        r
    }

    fn role(&self, slave: usize) -> Role {
        if self.cfg.mode == Mode::ActiveBackup && self.active != Some(slave) {
            Role::Backup
        } else {
            Role::Active
        }
    }

    /// One ARP/NS monitor interval: queue the probes, then move every
    /// slave's link toward what the monitors now say.
    fn arp_tick(&mut self, now: Instant) {
        let roles: Vec<Role> = (0..self.slaves.len()).map(|i| self.role(i)).collect();
        let macs: Vec<MacAddr> = self.slaves.iter().map(|s| s.mac).collect();
        let src4 = self.ipv4.first().copied().unwrap_or(Ipv4Addr::UNSPECIFIED);
        // Prefer a global address as the source of solicitations.
        let src6 = self
            .ipv6
            .iter()
            .find(|a| a.segments()[0] & 0xffc0 != 0xfe80)
            .or(self.ipv6.first())
            .copied()
            .unwrap_or(Ipv6Addr::UNSPECIFIED);
        let Some(arp) = self.arp.as_mut() else {
            return;
        };
        for p in arp.tick(&roles, &macs, src4, src6, now) {
            self.transmits.push_back(Transmit {
                slave: p.slave,
                frame: p.frame,
            });
        }
        for i in 0..self.slaves.len() {
            let signal = self.link_signal(i);
            self.apply_signal(i, signal, now);
        }
    }

    /// An ARP or IPv6 ND frame received on `slave` (tapped by the data path):
    /// proof of life for the ARP/NS monitor.
    pub fn handle_arp_frame(&mut self, slave: usize, frame: &[u8], now: Instant) {
        if let Some(r) = self.rlb.as_mut() {
            r.learn_from_peer(frame, now);
        }
        let role = self.role(slave);
        if let Some(arp) = self.arp.as_mut() {
            arp.handle_frame(slave, role, frame, &self.ipv4, &self.ipv6, now);
        }
    }

    /// Frames were received on `slave` (from the data path's counters): proof
    /// of life where `arp_validate` does not validate.
    pub fn note_rx(&mut self, slave: usize, now: Instant) {
        if let Some(arp) = self.arp.as_mut() {
            arp.note_rx(slave, now);
        }
    }

    /// balance-alb: an ARP frame the host sent out of the bond (diverted by
    /// the data path). Replies are rewritten to carry the MAC of the slave
    /// assigned to the peer and sent on that slave; everything else goes out
    /// unchanged on the active slave.
    pub fn handle_host_arp(&mut self, mut frame: Vec<u8>, now: Instant) {
        let slave = match self
            .rlb
            .as_mut()
            .and_then(|r| r.rewrite_host_arp(&mut frame, now))
        {
            Some(s) => Some(usize::from(s)),
            None => self.active,
        };
        if let Some(slave) = slave.filter(|&s| s < self.slaves.len()) {
            self.transmits.push_back(Transmit { slave, frame });
        }
        if let Some(r) = self.rlb.as_mut() {
            while let Some((slave, frame)) = r.poll_transmit(now) {
                self.transmits.push_back(Transmit {
                    slave: usize::from(slave),
                    frame,
                });
            }
        }
    }

    /// balance-tlb/alb: bytes per destination bucket that the workers sent
    /// since the last call. New buckets get a slave; the plan follows.
    pub fn note_tlb_load(&mut self, seen: &[u64; alb::TLB_BUCKETS]) {
        let Some(t) = self.tlb.as_mut() else {
            return;
        };
        t.assign_all_seen(seen);
        if t.take_changed() {
            self.publish();
        }
    }

    /// The transmit balancing state (balance-tlb/alb).
    pub fn tlb(&self) -> Option<&Tlb> {
        self.tlb.as_ref()
    }

    /// The receive balancing state (balance-alb).
    pub fn rlb(&self) -> Option<&Rlb> {
        self.rlb.as_ref()
    }

    /// Whether an ARP/NS monitor runs (the runtime then taps ARP/ND frames).
    pub fn arp_monitoring(&self) -> bool {
        self.arp.is_some()
    }

    /// What the ARP/NS monitor says about a slave (None without one).
    pub fn arp_up(&self, slave: usize) -> Option<bool> {
        self.arp.as_ref().map(|a| a.is_up(slave))
    }

    /// Which slaves carry the bond's receive filters (promisc, allmulti,
    /// multicast list), as the kernel's `bond_set_promiscuity` and
    /// `bond_set_rx_mode` decide: in modes with an active slave only that one
    /// (moved at failover), in the others every slave.
    pub fn filter_slaves(&self) -> Vec<bool> {
        (0..self.slaves.len())
            .map(|i| !self.cfg.mode.has_active_slave() || self.active == Some(i))
            .collect()
    }

    /// Multicast addresses every slave must receive for the bond itself: the
    /// Slow Protocols group 01:80:c2:00:00:02 in 802.3ad (IEEE 802.1AX
    /// LACPDUs), as the kernel adds it on enslave.
    pub fn own_multicast(&self) -> &'static [MacAddr] {
        const SLOW_PROTOCOLS: MacAddr = MacAddr([0x01, 0x80, 0xc2, 0x00, 0x00, 0x02]);
        if self.cfg.mode == Mode::Ieee8023ad {
            &[SLOW_PROTOCOLS]
        } else {
            &[]
        }
    }

    /// The LACP state, in 802.3ad mode.
    pub fn lacp(&self) -> Option<&Lacp> {
        self.lacp.as_ref()
    }

    /// Chooses the active slave as `bond_find_best_slave()` does, and updates
    /// carrier and plan.
    fn reselect(&mut self, now: Instant) {
        if self.cfg.mode.has_active_slave() {
            let best = self.best_slave();
            if let Some(b) = best {
                if let LinkState::Back { .. } = self.slaves[b].link {
                    // No slave is up: use one that is coming back at once, as the
                    // kernel does ("making interface the new active one earlier").
                    self.slaves[b].link = LinkState::Up;
                    self.events
                        .push_back(BondEvent::Link { slave: b, up: true });
                }
            }
            if best != self.active {
                self.change_active(best, now);
            }
        }
        if self.tlb.is_some() || self.rlb.is_some() {
            let usable: Vec<bool> = self.slaves.iter().map(|s| s.link.usable()).collect();
            let speeds: Vec<Option<u32>> = self.slaves.iter().map(|s| s.spec.speed_mbps).collect();
            if let Some(t) = self.tlb.as_mut() {
                t.set_usable(&usable, &speeds);
            }
            if let Some(r) = self.rlb.as_mut() {
                r.set_usable(&usable, now);
            }
        }
        let usable = self.up_count();
        let carrier = match &self.lacp {
            Some(l) => l.carrier(),
            None => usable > 0 && usable >= self.cfg.min_links as usize,
        };
        if carrier != self.carrier {
            self.carrier = carrier;
            self.events.push_back(BondEvent::Carrier(carrier));
        }
        self.publish();
    }

    fn is_up(&self, i: usize) -> bool {
        self.slaves[i].link.usable()
    }

    fn best_slave(&self) -> Option<usize> {
        let cur = self.active.filter(|&a| self.is_up(a));
        if let Some(p) = self.primary.filter(|&p| self.is_up(p)) {
            let change = match (cur, self.cfg.primary_reselect) {
                (None, _) => true,
                (Some(a), _) if a == p => true,
                (Some(_), PrimaryReselect::Always) => true,
                (Some(a), PrimaryReselect::Better) => self.faster(p, a),
                (Some(_), PrimaryReselect::Failure) => false,
            };
            if change {
                return Some(p);
            }
        }
        if cur.is_some() {
            return cur;
        }
        let by_prio = |pred: &dyn Fn(&Slave) -> bool| {
            self.slaves
                .iter()
                .enumerate()
                .filter(|(_, s)| pred(s))
                // Highest prio; among equals, the first in configuration order.
                .max_by_key(|(i, s)| (s.prio, std::cmp::Reverse(*i)))
                .map(|(i, _)| i)
        };
        by_prio(&|s| s.link.usable())
            .or_else(|| by_prio(&|s| matches!(s.link, LinkState::Back { .. })))
    }

    fn faster(&self, a: usize, b: usize) -> bool {
        let key = |i: usize| {
            let s = &self.slaves[i].spec;
            (s.speed_mbps.unwrap_or(0), s.full_duplex.unwrap_or(false))
        };
        key(a) > key(b)
    }

    fn change_active(&mut self, new: Option<usize>, now: Instant) {
        let old = self.active;
        self.active = new;
        self.events.push_back(BondEvent::ActiveChanged { old, new });
        if let (Some(n), true) = (new, self.tlb.is_some()) {
            // balance-tlb/alb: the new active slave takes the bond MAC (the
            // one that had it takes the new one's), and tells the switch.
            let mut macs: Vec<MacAddr> = self.slaves.iter().map(|s| s.mac).collect();
            for (i, mac) in alb::swap_on_failover(&mut macs, self.bond_mac, n) {
                self.set_slave_mac(i, mac);
            }
            if let Some(r) = self.rlb.as_mut() {
                r.set_slave_macs(macs, now);
            }
            self.transmits.push_back(Transmit {
                slave: n,
                frame: alb::learning_packet(self.bond_mac, 0),
            });
        }
        if self.cfg.mode == Mode::ActiveBackup {
            match self.cfg.fail_over_mac {
                FailOverMac::None => {}
                FailOverMac::Active => {
                    if let Some(n) = new {
                        let mac = self.slaves[n].spec.perm_mac;
                        if mac != self.bond_mac {
                            self.bond_mac = mac;
                            self.events.push_back(BondEvent::SetBondMac(mac));
                        }
                    }
                }
                FailOverMac::Follow => {
                    if let Some(n) = new {
                        // The slave that holds the bond MAC now (the old
                        // active one, or whichever had it when no slave was
                        // active) swaps MACs with the new active slave, so two
                        // slaves never share one (`bond_get_old_active`).
                        let holder = old
                            .filter(|&o| self.slaves[o].mac == self.bond_mac)
                            .or_else(|| self.slaves.iter().position(|s| s.mac == self.bond_mac));
                        let new_mac = self.slaves[n].mac;
                        self.set_slave_mac(n, self.bond_mac);
                        if let Some(h) = holder.filter(|&h| h != n) {
                            self.set_slave_mac(h, new_mac);
                        }
                    }
                }
            }
            // Announce the bond's addresses on the new path.
            if let Some(n) = new {
                self.notify = Some(PeerNotify {
                    slave: n,
                    arp_left: self.cfg.num_grat_arp,
                    na_left: self.cfg.num_unsol_na,
                    timer: Timer::Running { expires_at: now },
                });
                self.run_notify(now);
            } else {
                self.notify = None;
            }
        }
    }

    fn run_notify(&mut self, now: Instant) {
        let Some(n) = self.notify.as_mut() else {
            return;
        };
        if !n.timer.due(now) {
            return;
        }
        let slave = n.slave;
        let mac = self.bond_mac;
        if n.arp_left > 0 {
            n.arp_left -= 1;
            for ip in &self.ipv4 {
                self.transmits.push_back(Transmit {
                    slave,
                    frame: wire::gratuitous_arp(mac, *ip, 0),
                });
            }
        }
        if n.na_left > 0 {
            n.na_left -= 1;
            for ip in &self.ipv6 {
                self.transmits.push_back(Transmit {
                    slave,
                    frame: wire::unsolicited_na(mac, *ip, 0),
                });
            }
        }
        if n.arp_left == 0 && n.na_left == 0 {
            self.notify = None;
        } else {
            let gap = match self.cfg.peer_notif_delay {
                0 => self.cfg.miimon,
                d => d,
            };
            n.timer = Timer::Running {
                expires_at: now + Duration::from_millis(u64::from(gap)),
            };
        }
    }

    /// The plan the workers should use now.
    pub fn tx_plan(&self) -> TxPlan {
        let mut plan = TxPlan::empty(self.cfg.mode);
        plan.version = self.plan_version;
        plan.policy = self.cfg.xmit_hash_policy;
        plan.function = self.cfg.xmit_hash_function;
        plan.packets_per_slave = self.cfg.packets_per_slave;
        plan.active = self.active.map(|a| a as u8);
        plan.tap_arp = self.arp.is_some() || self.rlb.is_some();
        plan.divert_host_arp = self.rlb.is_some();
        plan.bond_mac = self.bond_mac;
        for (m, s) in plan.slave_macs.iter_mut().zip(&self.slaves) {
            *m = s.mac;
        }
        if let Some(t) = &self.tlb {
            plan.tlb_table = t.table();
        }
        let mut push = |i: usize| {
            plan.tx_slaves[usize::from(plan.tx_count)] = i as u8;
            plan.tx_count += 1;
        };
        if let Some(l) = &self.lacp {
            for p in l.tx_ports() {
                push(p);
            }
        } else if self.tlb.is_some() {
            for (i, _) in self
                .slaves
                .iter()
                .enumerate()
                .filter(|(_, s)| s.link.usable())
            {
                push(i);
            }
        } else if self.cfg.mode.has_active_slave() {
            if let Some(a) = self.active {
                push(a);
            }
        } else {
            for (i, _) in self
                .slaves
                .iter()
                .enumerate()
                .filter(|(_, s)| s.link.usable())
            {
                push(i);
            }
        }
        let all = if self.slaves.len() >= 32 {
            u32::MAX
        } else {
            (1u32 << self.slaves.len()) - 1
        };
        let collecting = |l: &Lacp| {
            (0..self.slaves.len().min(32))
                .filter(|&i| l.collecting(i))
                .fold(0u32, |m, i| m | 1 << i)
        };
        plan.rx_mask = match (self.cfg.mode, self.active) {
            (Mode::Ieee8023ad, _) => self.lacp.as_ref().map_or(0, collecting),
            // balance-tlb receives on the active slave; balance-alb on every
            // slave (the workers keep only frames sent to a slave's own MAC on
            // the others).
            (Mode::BalanceTlb, Some(a)) => 1 << a,
            (Mode::BalanceTlb, None) => 0,
            (Mode::BalanceAlb, _) => all,
            (Mode::ActiveBackup, _) if self.cfg.all_slaves_active => all,
            (Mode::ActiveBackup, Some(a)) => 1 << a,
            (Mode::ActiveBackup, None) => 0,
            _ => all,
        };
        if !self.carrier && (self.cfg.min_links > 0 || self.lacp.is_some()) {
            // The upper port has no carrier: neither send nor deliver, so no
            // stale frames burst out when it comes back.
            plan.tx_count = 0;
            plan.rx_mask = 0;
        }
        plan
    }

    fn publish(&mut self) {
        self.plan_version += 1;
        self.events.push_back(BondEvent::PlanChanged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(mode: Mode) -> BondConfig {
        let mut c = BondConfig::new("bond0", vec!["eno1".into(), "eno2".into()]);
        c.mode = mode;
        c
    }

    fn spec(name: &str, last: u8, speed: u32) -> SlaveSpec {
        SlaveSpec {
            name: name.into(),
            perm_mac: MacAddr([2, 0, 0, 0, 0, last]),
            speed_mbps: Some(speed),
            full_duplex: Some(true),
        }
    }

    fn bond(c: BondConfig, t0: Instant) -> Bond {
        let mut b = Bond::new(c, vec![spec("eno1", 1, 1000), spec("eno2", 2, 1000)], t0);
        b.set_addresses(
            vec![Ipv4Addr::new(10, 0, 0, 1)],
            vec!["fd00::1".parse().unwrap()],
        );
        b
    }

    fn drain(b: &mut Bond) -> Vec<BondEvent> {
        std::iter::from_fn(|| b.poll_event()).collect()
    }

    fn transmits(b: &mut Bond) -> Vec<Transmit> {
        std::iter::from_fn(|| b.poll_transmit()).collect()
    }

    #[test]
    fn active_backup_fails_over_at_once_and_announces() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.primary = Some("eno1".into());
        c.num_grat_arp = 2;
        c.peer_notif_delay = 200;
        let mut b = bond(c, t0);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        assert_eq!(b.active(), Some(0));
        assert!(b.carrier());
        assert_eq!(b.tx_plan().tx_slaves(), &[0]);
        assert_eq!(b.tx_plan().rx_mask, 0b01);
        drain(&mut b);
        transmits(&mut b);

        b.handle_carrier(0, false, t0 + Duration::from_millis(5));
        assert_eq!(b.active(), Some(1));
        let ev = drain(&mut b);
        assert!(ev.contains(&BondEvent::ActiveChanged {
            old: Some(0),
            new: Some(1)
        }));
        assert!(ev.contains(&BondEvent::PlanChanged));
        assert_eq!(b.tx_plan().tx_slaves(), &[1]);
        assert_eq!(b.tx_plan().rx_mask, 0b10);
        assert_eq!(b.slaves()[0].link_failure_count, 1);
        // First GARP and NA at once on the new slave, the second ARP 200 ms later.
        let tx = transmits(&mut b);
        assert_eq!(tx.len(), 2);
        assert!(tx.iter().all(|t| t.slave == 1));
        b.handle_timeout(t0 + Duration::from_millis(100));
        assert!(transmits(&mut b).is_empty());
        b.handle_timeout(t0 + Duration::from_millis(205));
        let tx = transmits(&mut b);
        assert_eq!(tx.len(), 1);
        assert_eq!(&tx[0].frame[12..14], &[0x08, 0x06]);
    }

    #[test]
    fn primary_reselect_always_better_failure() {
        let t0 = Instant::now();
        for (policy, back_to_primary) in [
            (PrimaryReselect::Always, true),
            (PrimaryReselect::Better, false),
            (PrimaryReselect::Failure, false),
        ] {
            let mut c = cfg(Mode::ActiveBackup);
            c.primary = Some("eno1".into());
            c.primary_reselect = policy;
            let mut b = bond(c, t0);
            b.handle_carrier(0, true, t0);
            b.handle_carrier(1, true, t0);
            b.handle_carrier(0, false, t0);
            assert_eq!(b.active(), Some(1));
            b.handle_carrier(0, true, t0);
            let want = if back_to_primary { 0 } else { 1 };
            assert_eq!(b.active(), Some(want), "{policy}");
        }
        // better: a faster primary takes over.
        let mut c = cfg(Mode::ActiveBackup);
        c.primary = Some("eno1".into());
        c.primary_reselect = PrimaryReselect::Better;
        let mut b = Bond::new(c, vec![spec("eno1", 1, 10000), spec("eno2", 2, 1000)], t0);
        b.handle_carrier(1, true, t0);
        assert_eq!(b.active(), Some(1));
        b.handle_carrier(0, true, t0);
        assert_eq!(b.active(), Some(0));
    }

    #[test]
    fn updelay_is_honoured_unless_no_other_link() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.updelay = 200;
        c.primary = Some("eno1".into());
        let mut b = bond(c, t0);
        // No link up at all: the first returning link is used at once.
        b.handle_carrier(1, true, t0);
        assert_eq!(b.active(), Some(1));
        // The primary comes back, but must wait 200 ms.
        b.handle_carrier(0, true, t0);
        assert_eq!(b.active(), Some(1));
        b.handle_timeout(t0 + Duration::from_millis(199));
        assert_eq!(b.active(), Some(1));
        b.handle_timeout(t0 + Duration::from_millis(200));
        assert_eq!(b.active(), Some(0));
    }

    #[test]
    fn downdelay_ignores_short_flaps() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.downdelay = 300;
        let mut b = bond(c, t0);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        b.handle_carrier(0, false, t0);
        assert_eq!(b.slaves()[0].link.proc_name(), "going down");
        b.handle_carrier(0, true, t0 + Duration::from_millis(100));
        assert_eq!(b.active(), Some(0));
        assert_eq!(b.slaves()[0].link_failure_count, 0);
        b.handle_carrier(0, false, t0 + Duration::from_millis(200));
        b.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(b.active(), Some(1));
        assert_eq!(b.slaves()[0].link_failure_count, 1);
    }

    #[test]
    fn carrier_follows_usable_links_and_min_links() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::BalanceRr);
        c.min_links = 2;
        let mut b = bond(c, t0);
        assert!(!b.carrier());
        b.handle_carrier(0, true, t0);
        assert!(!b.carrier(), "one link is below min_links");
        assert_eq!(b.tx_plan().tx_count, 0);
        b.handle_carrier(1, true, t0);
        assert!(b.carrier());
        assert_eq!(b.tx_plan().tx_slaves(), &[0, 1]);
        b.handle_carrier(0, false, t0);
        assert!(!b.carrier());
        let ev = drain(&mut b);
        assert!(ev.contains(&BondEvent::Carrier(false)));
    }

    #[test]
    fn macs_per_mode() {
        let t0 = Instant::now();
        let mut b = bond(cfg(Mode::BalanceXor), t0);
        let ev = drain(&mut b);
        let bond_mac = MacAddr([2, 0, 0, 0, 0, 1]);
        assert!(ev.contains(&BondEvent::SetBondMac(bond_mac)));
        assert!(ev.contains(&BondEvent::SetSlaveMac {
            slave: 1,
            mac: bond_mac
        }));

        let mut c = cfg(Mode::ActiveBackup);
        c.fail_over_mac = FailOverMac::Follow;
        let mut b = bond(c, t0);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        drain(&mut b);
        b.handle_carrier(0, false, t0);
        let ev = drain(&mut b);
        assert!(ev.contains(&BondEvent::SetSlaveMac {
            slave: 1,
            mac: bond_mac
        }));
        assert!(ev.contains(&BondEvent::SetSlaveMac {
            slave: 0,
            mac: MacAddr([2, 0, 0, 0, 0, 2])
        }));

        let mut c = cfg(Mode::ActiveBackup);
        c.fail_over_mac = FailOverMac::Active;
        let mut b = bond(c, t0);
        b.handle_carrier(1, true, t0);
        assert_eq!(b.bond_mac(), MacAddr([2, 0, 0, 0, 0, 2]));
    }

    #[test]
    fn follow_never_leaves_two_slaves_with_the_bond_mac() {
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.fail_over_mac = FailOverMac::Follow;
        let mut b = bond(c, t0);
        // eno1 never comes up: eno2 becomes active with no previous active.
        b.handle_carrier(1, true, t0);
        assert_eq!(b.active(), Some(1));
        let macs: Vec<MacAddr> = b.slaves().iter().map(|s| s.mac).collect();
        assert_eq!(macs[1], b.bond_mac());
        assert_ne!(macs[0], macs[1], "{macs:?}");
    }

    #[test]
    fn arp_monitor_fails_over_when_the_target_stops_answering_despite_carrier() {
        use crate::wire::{arp_frame, ARPOP_REPLY};
        let t0 = Instant::now();
        let mut c = cfg(Mode::ActiveBackup);
        c.miimon = 0;
        c.arp_interval = 100;
        c.arp_ip_target = vec![Ipv4Addr::new(10, 0, 0, 254)];
        c.arp_validate = crate::config::ArpValidate::None;
        let mut b = bond(c, t0);
        b.handle_carrier(0, true, t0);
        b.handle_carrier(1, true, t0);
        assert_eq!(
            b.active(),
            None,
            "carrier alone proves nothing to an ARP-only bond"
        );
        let reply = arp_frame(
            ARPOP_REPLY,
            MacAddr([2, 0, 0, 0, 0, 1]),
            MacAddr([2, 0, 0, 0, 0, 9]),
            Ipv4Addr::new(10, 0, 0, 254),
            MacAddr([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(10, 0, 0, 1),
            0,
        );
        let mut t = t0;
        for _ in 0..3 {
            t += Duration::from_millis(100);
            b.handle_arp_frame(0, &reply, t - Duration::from_millis(10));
            b.note_rx(1, t - Duration::from_millis(10));
            b.handle_timeout(t);
        }
        assert_eq!(b.active(), Some(0));
        assert!(
            transmits(&mut b)
                .iter()
                .any(|x| x.slave == 0 && x.frame[12..14] == [8, 6]),
            "probes on the active slave"
        );
        // The target goes quiet on slave 0; slave 1 keeps seeing traffic.
        let quiet = t;
        while t < quiet + Duration::from_millis(400) {
            t += Duration::from_millis(100);
            b.note_rx(1, t - Duration::from_millis(10));
            b.handle_timeout(t);
        }
        assert_eq!(
            b.active(),
            Some(1),
            "failed over after arp_interval × arp_missed_max"
        );
        assert_eq!(b.slaves()[0].link_failure_count, 1);
        assert!(b.slaves()[0].carrier, "carrier never went away");
    }

    #[test]
    fn link_watch_policy_combines_carrier_and_arp() {
        use crate::options::LinkWatchPolicy;
        let t0 = Instant::now();
        for (policy, up_with_carrier_only) in
            [(LinkWatchPolicy::All, false), (LinkWatchPolicy::Any, true)]
        {
            let mut c = cfg(Mode::BalanceRr);
            c.miimon = 100;
            c.arp_interval = 100;
            c.arp_ip_target = vec![Ipv4Addr::new(10, 0, 0, 254)];
            c.link_watch_policy = Some(policy);
            let mut b = bond(c, t0);
            // Carrier, but the ARP target never answers.
            b.handle_carrier(0, true, t0);
            b.handle_timeout(t0 + Duration::from_millis(100));
            let up = b.slaves()[0].link.usable();
            assert_eq!(up, up_with_carrier_only, "{policy}");
        }
    }

    #[test]
    fn miimon_asks_for_polls() {
        let t0 = Instant::now();
        let mut b = bond(cfg(Mode::Broadcast), t0);
        drain(&mut b);
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_millis(100)));
        b.handle_timeout(t0 + Duration::from_millis(100));
        assert_eq!(drain(&mut b), vec![BondEvent::PollLinks]);
        assert_eq!(b.poll_timeout(), Some(t0 + Duration::from_millis(200)));
    }
}
