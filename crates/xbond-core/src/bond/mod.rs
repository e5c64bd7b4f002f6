//! The control-plane state of one bond: link monitor, active slave selection,
//! failover and peer notification.
//!
//! The runtime feeds carrier changes (from netlink events as they happen, and
//! from polling every `miimon` ms as a safety net) with
//! [`Bond::handle_carrier`], calls [`Bond::handle_timeout`] when
//! [`Bond::poll_timeout`] is due, and drains [`Bond::poll_event`] (plan,
//! carrier, active-slave, link and MAC changes, and when to poll the links)
//! and [`Bond::poll_transmit`] (gratuitous ARPs, unsolicited NAs, LACPDUs). Nothing here reads a clock.
//!
//! The link monitor follows the kernel's inspect-then-commit model
//! (`bond_miimon_inspect()` / `bond_miimon_commit()`): a link moves through
//! [`LinkState`] `Up -> Fail -> Down` and `Down -> Back -> Up`, with
//! `downdelay`/`updelay` spent in the middle states. Unlike the kernel, a
//! carrier event is acted on when it arrives, not at the next poll, so the
//! detection time is the event latency instead of up to `miimon` ms.
//!
//! This file holds the types the runtime sees, [`Bond`]'s construction, its
//! accessors and the event, transmit and timeout plumbing. The rest of
//! [`Bond`]'s methods are split by concern:
//!
//! - `links`: [`LinkState`], carrier and ARP/NS readings, `updelay` and
//!   `downdelay`, the `miimon` poll.
//! - `reselect`: the active slave (`primary`, `primary_reselect`, `prio`),
//!   failover MAC moves and the bond's carrier.
//! - `notify`: gratuitous ARPs and unsolicited NAs after a failover
//!   (`num_grat_arp`, `num_unsol_na`, `peer_notif_delay`).
//! - `balance`: the balance-tlb/alb glue (load reports, learning packets, the
//!   host's ARP frames).
//! - `publish`: building the [`TxPlan`](crate::plan::TxPlan) and versioning it.
//! - `mode`: the per-mode state, one enum variant per mode.

mod balance;
mod links;
mod mode;
mod notify;
mod publish;
mod reconfig;
mod reselect;
#[cfg(test)]
mod test_util;

use std::collections::VecDeque;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use crate::config::BondConfig;
use crate::lacp::{wire::SlowError, Lacp};
use crate::monitor::ProbePath;
use crate::options::{MacAddr, Mode};
use crate::timer::Timer;
use crate::MAX_SLAVES;

pub use links::LinkState;
use mode::ModeState;
pub use notify::{Joined, UpperAddresses};
pub use reconfig::{changed_keys, key_values, LIVE_KEYS};

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
    /// A slave's carrier changed while its link waits out `updelay` or
    /// `downdelay` (the kernel logs each such step).
    LinkDelay {
        /// Slave index.
        slave: usize,
        /// What happened.
        note: LinkNote,
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

/// A step of a link through `updelay` / `downdelay`, in the kernel's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkNote {
    /// Carrier lost: the link goes down in this many ms unless it returns.
    DownIn(u32),
    /// Carrier back during `downdelay` after this many ms: the link stays up.
    UpAgain(u32),
    /// Carrier back: the link comes up in this many ms unless it goes.
    UpIn(u32),
    /// Carrier lost during `updelay` after this many ms: the link stays down.
    DownAgain(u32),
}

/// A frame the bond sends itself on a slave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Slave index.
    pub slave: usize,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
}

/// The state of one bond.
#[derive(Debug)]
pub struct Bond {
    cfg: BondConfig,
    slaves: Vec<Slave>,
    primary: Option<usize>,
    /// The primary becomes active at the next reselection it is up for,
    /// whatever `primary_reselect` says: set when the bond starts with a
    /// primary, when `primary` is set and when the primary is enslaved, as
    /// the kernel's `force_primary`.
    force_primary: bool,
    active: Option<usize>,
    bond_mac: MacAddr,
    /// bond0's MTU, once the runtime has read it.
    mtu: Option<u32>,
    carrier: bool,
    plan_version: u64,
    mii_timer: Timer,
    ipv4: Vec<Ipv4Addr>,
    ipv6: Vec<Ipv6Addr>,
    /// Devices stacked on the upper port (bridges, VLAN devices) and their
    /// addresses, announced with the bond's own.
    uppers: Vec<UpperAddresses>,
    /// The groups joined on the upper port and the devices on it.
    joined: Vec<Joined>,
    /// ARP/NS targets reached through a device stacked on the upper port.
    probe_paths: Vec<ProbePath>,
    /// Membership reports still to send after the last failover.
    igmp: Option<notify::IgmpResend>,
    events: VecDeque<BondEvent>,
    transmits: VecDeque<Transmit>,
    /// What the configured mode keeps: its machines and timers.
    mode: ModeState,
    /// balance-xor and 802.3ad: the hash buckets' load and any rebalanced
    /// table.
    hash: crate::hashbal::HashBuckets,
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
        let mii_timer = links::mii_timer(cfg.miimon, now);
        let mode = ModeState::new(&cfg, &slaves, bond_mac, now);
        let hash = crate::hashbal::HashBuckets::new(cfg.rebalance_every(), now);
        let mut bond = Bond {
            cfg,
            slaves,
            primary,
            force_primary: primary.is_some(),
            active: None,
            bond_mac,
            mtu: None,
            carrier: false,
            plan_version: 0,
            mii_timer,
            ipv4: Vec::new(),
            uppers: Vec::new(),
            joined: Vec::new(),
            probe_paths: Vec::new(),
            igmp: None,
            ipv6: Vec::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            mode,
            hash,
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

    /// The addresses configured on the bond's upper port, announced after a
    /// failover.
    pub fn set_addresses(&mut self, ipv4: Vec<Ipv4Addr>, ipv6: Vec<Ipv6Addr>) {
        if let Some(r) = self.mode.rlb_mut() {
            r.set_bond_ips(ipv4.clone());
        }
        self.ipv4 = ipv4;
        self.ipv6 = ipv6;
    }

    /// The devices stacked on the bond's upper port (a bridge such as
    /// `vmbr0`, VLAN devices) with their addresses: after a failover they
    /// are announced as the bond's own are, tagged with the device's VLAN,
    /// as the kernel's peer notification reaches every upper device.
    pub fn set_upper_addresses(&mut self, uppers: Vec<UpperAddresses>) {
        self.uppers = uppers;
    }

    /// The devices stacked on the upper port that a failover announces.
    pub fn upper_addresses(&self) -> &[UpperAddresses] {
        &self.uppers
    }

    /// The multicast groups joined on the upper port and on the devices
    /// stacked on it (the runtime reads them from /proc/net/igmp and
    /// /proc/net/igmp6): after a failover to a new active slave they are
    /// reported there again, `resend_igmp` times.
    pub fn set_joined_groups(&mut self, joined: Vec<Joined>) {
        self.joined = joined;
    }

    /// The groups a failover reports again.
    pub fn joined_groups(&self) -> &[Joined] {
        &self.joined
    }

    /// How the ARP/NS targets are reached (the runtime looks their routes
    /// up): a target whose route leaves by a VLAN device on the upper port
    /// is probed tagged with its VLAN, from that device's address, as the
    /// kernel does; the others untagged from the bond's address.
    pub fn set_probe_paths(&mut self, paths: Vec<ProbePath>) {
        if let Some(arp) = self.mode.arp_mut() {
            arp.set_paths(paths.clone());
        }
        self.probe_paths = paths;
    }

    /// How the ARP/NS targets are reached, as last set.
    pub fn probe_paths(&self) -> &[ProbePath] {
        &self.probe_paths
    }

    /// bond0's MTU (read by the runtime at start and whenever it changes):
    /// frames longer than it plus an Ethernet header and a VLAN tag are
    /// dropped and counted. A new MTU publishes a new plan.
    pub fn set_mtu(&mut self, mtu: u32) {
        if self.mtu != Some(mtu) {
            self.mtu = Some(mtu);
            self.publish();
        }
    }

    /// bond0's MTU, once known.
    pub fn mtu(&self) -> Option<u32> {
        self.mtu
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
        if let ModeState::Lacp { engine } = &mut self.mode {
            engine.set_port_speed(slave, speed_mbps, full_duplex, now);
            if engine.take_changed() {
                self.reselect(now);
            }
        }
    }

    /// Advances timers: up/down delays, the mode's machines (LACP, the
    /// ARP/NS monitor, balance-tlb/alb), the `miimon` poll and peer
    /// notifications.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_link_delays(now);
        match &mut self.mode {
            ModeState::Lacp { engine } => {
                engine.handle_timeout(now);
                if engine.take_changed() {
                    self.reselect(now);
                }
            }
            ModeState::Tlb { .. } | ModeState::Alb { .. } => self.balance_timeout(now),
            ModeState::Static { .. } | ModeState::ActiveBackup { .. } => self.arp_timeout(now),
        }
        self.mii_timeout(now);
        self.run_notify(now);
        self.run_igmp_resend(now);
    }

    /// When [`Bond::handle_timeout`] must be called next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.link_deadline()
            .into_iter()
            .chain(self.mode.poll_timeout())
            .chain(self.igmp.as_ref().and_then(notify::IgmpResend::deadline))
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
        let (slave, frame) = self.mode.lacp_mut()?.poll_transmit()?;
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
        let ModeState::Lacp { engine } = &mut self.mode else {
            return Ok(());
        };
        let r = engine.handle_frame(slave, frame, now);
        if engine.take_changed() {
            self.reselect(now);
        }
        r
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
        self.mode.lacp()
    }

    /// balance-xor and 802.3ad: bytes the workers sent per hash bucket
    /// since the last call (every 100 ms). With `rebalance_interval` the
    /// buckets are given out anew by load when that helps.
    pub fn note_hash_load(&mut self, seen: &[u64; crate::hashbal::HASH_BUCKETS], now: Instant) {
        if !matches!(self.cfg.mode, Mode::BalanceXor | Mode::Ieee8023ad) {
            return;
        }
        let n = usize::from(self.tx_plan().tx_count);
        if self.hash.note(seen, n, now) {
            self.publish();
        }
    }

    /// balance-xor and 802.3ad: buckets with recent load: (bucket, slave,
    /// bytes over about the last second).
    pub fn hash_load(&self) -> Vec<(u8, usize, u64)> {
        let plan = self.tx_plan();
        let slaves = plan.tx_slaves();
        self.hash
            .loaded(slaves.len())
            .into_iter()
            .filter_map(|(b, pos, l)| Some((b, usize::from(*slaves.get(pos)?), l)))
            .collect()
    }

    /// Times the hash buckets were rebalanced.
    pub fn hash_rebalances(&self) -> u64 {
        self.hash.moves()
    }
}
