//! The bond's status in the shape of `/proc/net/bonding/bondX`, and the same
//! data as JSON.
//!
//! [`Status`] is built by the runtime from the [`Bond`] state and its own
//! counters, sent over the control socket as JSON, and rendered as the kernel's
//! text by [`Status::proc_text`] so that scripts written for a kernel bond read
//! it unchanged. xbond's own lines (AF_XDP bind mode, frame counters) come
//! after the kernel's fields of each block.

use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::bond::{Bond, LinkState};
use crate::lacp::{AggregatorInfo, PortStatus};
use crate::options::{FailOverMac, HashFunction, HashPolicy, MacAddr, Mode, PrimaryReselect};

/// Per-slave figures only the runtime knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaveRuntime {
    /// AF_XDP bind mode of the slave's sockets ("zero-copy" or "copy").
    pub xdp_bind: String,
    /// XDP attach mode ("native" or "generic").
    pub xdp_attach: String,
    /// Frames received from the slave and delivered to the host.
    pub rx_frames: u64,
    /// Frames transmitted on the slave.
    pub tx_frames: u64,
    /// Frames dropped because the mode does not deliver from this slave now
    /// (counted in XDP and in the worker).
    pub rx_dropped_inactive: u64,
    /// Frames dropped as duplicates of a copy received on another slave.
    pub rx_dropped_duplicate: u64,
    /// Frames that could not be sent (ring full).
    pub tx_dropped: u64,
    /// Frames dropped in XDP because no AF_XDP socket serves their RX queue
    /// (the slave has more active queues than xbond serves).
    pub rx_dropped_no_socket: u64,
    /// Slow-protocol and link-local frames passed to the slave's own stack.
    pub rx_passed_to_kernel: u64,
}

/// What one queue (one worker engine: the upper port's queue and the
/// slaves' queue of the same number) carried.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueRuntime {
    /// Frames from the host sent on a slave.
    pub from_host: u64,
    /// Frames from the slaves delivered to the host.
    pub to_host: u64,
    /// Frames dropped: no usable slave, a full TX ring, malformed, longer
    /// than the MTU.
    pub dropped: u64,
    /// The queue's AF_XDP sockets: the upper port's first, then the
    /// slaves' in order.
    #[serde(default)]
    pub sockets: Vec<SocketRuntime>,
    /// Passes of the worker's loop over this queue that found work (a
    /// batch received or a TX ring kicked again).
    #[serde(default)]
    pub busy_passes: u64,
    /// TX kicks that were system calls (`sendto`).
    #[serde(default)]
    pub kicks: u64,
    /// Times the worker slept in poll(2) (each ends in a wake-up).
    #[serde(default)]
    pub sleeps: u64,
    /// Coalescing waits: timed sleeps after a pass that took few frames
    /// (`xbond run --coalesce-us`; each ends in a wake-up).
    #[serde(default)]
    pub coalesce_waits: u64,
}

/// One AF_XDP socket: what it got at bind, and the kernel's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketRuntime {
    /// Its interface.
    pub iface: String,
    /// "zero-copy" or "copy".
    pub xdp_bind: String,
    /// Whether it carries multi-buffer (jumbo) frames.
    pub multi_buffer: bool,
    /// Whether it has a UMEM of its own (the split layout).
    pub own_umem: bool,
    /// The better bind modes tried first, each with the error that refused
    /// it.
    pub refused: Vec<String>,
    /// Kernel: frames dropped for this socket.
    pub rx_dropped: u64,
    /// Kernel: frames dropped because the RX ring was full.
    pub rx_ring_full: u64,
    /// Kernel: times the fill ring was empty.
    pub fill_ring_empty: u64,
    /// Kernel: invalid descriptors (fill and TX rings).
    pub invalid_descs: u64,
}

/// Bond-wide figures only the runtime knows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BondRuntime {
    /// The data-plane side of the upper port.
    pub peer_name: String,
    /// AF_XDP bind mode of the upper port's sockets.
    pub upper_xdp_bind: String,
    /// Worker threads.
    pub workers: u32,
    /// Per queue served, in queue order.
    #[serde(default)]
    pub queues: Vec<QueueRuntime>,
    /// Frames from the host with no usable slave.
    pub tx_no_slave: u64,
    /// Malformed frames (shorter than an Ethernet header) dropped.
    pub malformed: u64,
    /// Frames longer than the MTU allows, dropped (either way).
    #[serde(default)]
    pub oversize: u64,
    /// bond0's MTU, as passed down to the slaves (0: not known).
    #[serde(default)]
    pub mtu: u32,
    /// The longest frame that crosses (the MTU plus an Ethernet header and
    /// a VLAN tag, or less where the sockets cannot carry more).
    #[serde(default)]
    pub max_frame: u64,
    /// Problems with what was asked of the host (an MTU a slave refused, an
    /// MTU the sockets cannot carry), one line each.
    #[serde(default)]
    pub notes: Vec<String>,
    /// Devices stacked on bond0 whose addresses a failover announces, as
    /// "NAME (vlan N): ADDRESSES".
    #[serde(default)]
    pub announced: Vec<String>,
    /// Devices whose multicast groups a failover reports again
    /// (`resend_igmp`), as "NAME (vlan N): GROUPS".
    #[serde(default)]
    pub reported: Vec<String>,
    /// Frames in the frame pools (free).
    pub pool_free: u64,
    /// Frames in fill rings.
    pub pool_in_fill: u64,
    /// Frames on TX rings, not yet completed.
    pub pool_in_tx: u64,
    /// Total frames in all UMEMs.
    pub pool_total: u64,
    /// Times the data plane was started again (a slave's interface came
    /// back); its counters count from the last start.
    #[serde(default)]
    pub data_plane_restarts: u64,
    /// Why it last started again.
    #[serde(default)]
    pub data_plane_restarted_for: String,
    /// Failovers: the active slave lost its link and another took over.
    #[serde(default)]
    pub failovers: u64,
    /// The last failover, in microseconds from when the control loop read
    /// the first sign of the active slave's link loss (a carrier event, a
    /// failed transmission, the ARP monitor) to the new plan's hand-over to
    /// the workers (downdelay included): the bond's own reaction, without
    /// the kernel's delivery of the event.
    #[serde(default)]
    pub last_failover_us: Option<u64>,
}

/// One slave's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaveStatus {
    /// Interface name.
    pub name: String,
    /// "up", "going down", "down" or "going back".
    pub mii_status: String,
    /// Carrier as last read.
    pub carrier: bool,
    /// Speed in Mb/s, if known.
    pub speed_mbps: Option<u32>,
    /// Full duplex, if known.
    pub full_duplex: Option<bool>,
    /// Times the link went down.
    pub link_failure_count: u32,
    /// The interface's own MAC.
    pub perm_hwaddr: MacAddr,
    /// The MAC it carries now.
    pub hwaddr: MacAddr,
    /// Queue id (`queue_id`).
    pub queue_id: u16,
    /// Priority (`prio`).
    pub prio: i32,
    /// Runtime figures.
    pub runtime: SlaveRuntime,
    /// LACP port state (802.3ad).
    pub lacp: Option<PortStatus>,
    /// What the ARP/NS monitor says (None without one).
    pub arp_up: Option<bool>,
}

/// The balancing tables (JSON only): balance-tlb/alb, and the hash buckets of balance-xor and 802.3ad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceInfo {
    /// Bytes sent per slave in the last interval, in slave order.
    pub load_per_slave: Vec<u64>,
    /// Buckets with their slave and load: (bucket, slave, bytes). In
    /// balance-tlb/alb, destination buckets; in balance-xor and 802.3ad,
    /// hash buckets (bytes over about the last second).
    pub buckets: Vec<(u8, String, u64)>,
    /// balance-xor and 802.3ad: times the buckets were rebalanced.
    #[serde(default)]
    pub rebalances: u64,
    /// balance-alb: peers and the slave each was given: (peer IP, peer MAC,
    /// slave).
    pub clients: Vec<(std::net::Ipv4Addr, MacAddr, String)>,
}

/// The bond's 802.3ad information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LacpInfo {
    /// `lacp_active`.
    pub active: bool,
    /// `lacp_rate` ("slow" or "fast").
    pub rate: String,
    /// `min_links`.
    pub min_links: u32,
    /// `ad_select`.
    pub ad_select: String,
    /// System priority.
    pub system_priority: u16,
    /// System MAC address.
    pub system_mac: MacAddr,
    /// The active aggregator.
    pub active_aggregator: Option<AggregatorInfo>,
    /// The slave carrying traffic under `lacp_fallback`, if any.
    pub fallback_slave: Option<String>,
}

/// balance-xor and 802.3ad: the hash buckets with recent load, each with
/// its slave, and the load per slave (bytes over about the last second).
fn hash_balance(bond: &Bond) -> Option<BalanceInfo> {
    use crate::options::Mode;
    if !matches!(bond.config().mode, Mode::BalanceXor | Mode::Ieee8023ad) {
        return None;
    }
    let mut load_per_slave = vec![0u64; bond.slaves().len()];
    let buckets = bond
        .hash_load()
        .into_iter()
        .map(|(b, s, l)| {
            if let Some(x) = load_per_slave.get_mut(s) {
                *x += l;
            }
            let name = bond
                .slaves()
                .get(s)
                .map_or_else(|| s.to_string(), |x| x.spec.name.clone());
            (b, name, l)
        })
        .collect();
    Some(BalanceInfo {
        load_per_slave,
        buckets,
        clients: Vec::new(),
        rebalances: bond.hash_rebalances(),
    })
}

/// The whole status of a bond.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// xbond version.
    pub version: String,
    /// Bond (upper port) name.
    pub name: String,
    /// Mode.
    pub mode: Mode,
    /// Transmit hash policy.
    pub xmit_hash_policy: HashPolicy,
    /// Whether balance-tlb/alb assign flows by load (otherwise by the
    /// transmit hash).
    pub tlb_dynamic_lb: bool,
    /// Hash function.
    pub xmit_hash_function: HashFunction,
    /// Primary slave.
    pub primary: Option<String>,
    /// primary_reselect.
    pub primary_reselect: PrimaryReselect,
    /// fail_over_mac.
    pub fail_over_mac: FailOverMac,
    /// Currently active slave.
    pub active: Option<String>,
    /// Bond carrier.
    pub mii_status: bool,
    /// miimon, ms.
    pub miimon: u32,
    /// updelay, ms.
    pub updelay: u32,
    /// downdelay, ms.
    pub downdelay: u32,
    /// peer_notif_delay, ms.
    pub peer_notif_delay: u32,
    /// min_links.
    pub min_links: u32,
    /// Bond MAC.
    pub hwaddr: MacAddr,
    /// True when every link monitor was turned off on purpose.
    pub monitoring_off: bool,
    /// Version of the plan the workers use.
    pub plan_version: u64,
    /// Runtime figures.
    pub runtime: BondRuntime,
    /// 802.3ad information.
    pub lacp: Option<LacpInfo>,
    /// balance-tlb/alb tables.
    pub balance: Option<BalanceInfo>,
    /// arp_interval, ms (0 = no ARP/NS monitor).
    pub arp_interval: u32,
    /// arp_missed_max.
    pub arp_missed_max: u8,
    /// arp_ip_target.
    pub arp_ip_target: Vec<std::net::Ipv4Addr>,
    /// ns_ip6_target.
    pub ns_ip6_target: Vec<std::net::Ipv6Addr>,
    /// arp_validate.
    pub arp_validate: String,
    /// link_watch_policy, when set.
    pub link_watch_policy: Option<String>,
    /// Slaves in configuration order.
    pub slaves: Vec<SlaveStatus>,
}

impl Status {
    /// Builds the status from the bond state and the runtime's figures
    /// (`slaves` in slave order; missing entries read as zero).
    pub fn new(bond: &Bond, runtime: BondRuntime, slaves: &[SlaveRuntime]) -> Status {
        let cfg = bond.config();
        let name_of = |i: Option<usize>| i.map(|i| bond.slaves()[i].spec.name.clone());
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            name: cfg.name.clone(),
            mode: cfg.mode,
            xmit_hash_policy: cfg.xmit_hash_policy,
            tlb_dynamic_lb: cfg.tlb_dynamic_lb,
            xmit_hash_function: cfg.xmit_hash_function,
            primary: name_of(bond.primary()),
            primary_reselect: cfg.primary_reselect,
            fail_over_mac: cfg.fail_over_mac,
            active: name_of(bond.active()),
            mii_status: bond.carrier(),
            miimon: cfg.miimon,
            updelay: cfg.updelay,
            downdelay: cfg.downdelay,
            peer_notif_delay: cfg.peer_notif_delay,
            min_links: cfg.min_links,
            hwaddr: bond.bond_mac(),
            monitoring_off: cfg.monitoring_off(),
            plan_version: bond.tx_plan().version,
            runtime,
            arp_interval: cfg.arp_interval,
            arp_missed_max: cfg.arp_missed_max,
            arp_ip_target: cfg.arp_ip_target.clone(),
            ns_ip6_target: cfg.ns_ip6_target.clone(),
            arp_validate: cfg.arp_validate.to_string(),
            link_watch_policy: cfg.link_watch_policy.map(|p| p.to_string()),
            balance: hash_balance(bond).or_else(|| {
                bond.tlb().map(|t| {
                    let name = |i: u8| {
                        bond.slaves()
                            .get(usize::from(i))
                            .map_or_else(|| i.to_string(), |s| s.spec.name.clone())
                    };
                    BalanceInfo {
                        load_per_slave: t.load_per_slave(),
                        buckets: t
                            .assignments()
                            .into_iter()
                            .map(|(b, s, l)| (b, name(s), l))
                            .collect(),
                        clients: bond
                            .rlb()
                            .map(|r| {
                                r.clients()
                                    .into_iter()
                                    .map(|c| (c.ip, c.mac, name(c.slave)))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        rebalances: 0,
                    }
                })
            }),
            lacp: bond.lacp().map(|l| {
                let c = l.config();
                LacpInfo {
                    active: c.active,
                    rate: if c.fast { "fast" } else { "slow" }.to_string(),
                    min_links: c.min_links,
                    ad_select: c.ad_select.to_string(),
                    system_priority: c.system_priority,
                    system_mac: c.system,
                    active_aggregator: l.active_aggregator(),
                    fallback_slave: l
                        .fallback_port()
                        .map(|p| bond.slaves()[p].spec.name.clone()),
                }
            }),
            slaves: bond
                .slaves()
                .iter()
                .enumerate()
                .map(|(i, s)| SlaveStatus {
                    name: s.spec.name.clone(),
                    mii_status: s.link.proc_name().to_string(),
                    carrier: s.carrier,
                    speed_mbps: s.spec.speed_mbps,
                    full_duplex: s.spec.full_duplex,
                    link_failure_count: s.link_failure_count,
                    perm_hwaddr: s.spec.perm_mac,
                    hwaddr: s.mac,
                    queue_id: 0,
                    prio: s.prio,
                    runtime: slaves.get(i).cloned().unwrap_or_default(),
                    lacp: bond.lacp().and_then(|l| l.port_status(i)),
                    arp_up: bond.arp_up(i),
                })
                .collect(),
        }
    }

    /// Whether a slave is up (for scripts that only want the boolean).
    pub fn slave_up(&self, name: &str) -> Option<bool> {
        self.slaves
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.mii_status == LinkState::Up.proc_name())
    }

    /// The `/proc/net/bonding/bondX` text.
    pub fn proc_text(&self) -> String {
        let mut o = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_proc(&mut o);
        o
    }

    fn write_proc(&self, o: &mut String) -> std::fmt::Result {
        writeln!(
            o,
            "Ethernet Channel Bonding Driver: xbond v{}",
            self.version
        )?;
        writeln!(o)?;
        write!(o, "Bonding Mode: {}", self.mode.proc_name())?;
        if self.mode == Mode::ActiveBackup && self.fail_over_mac != FailOverMac::None {
            write!(o, " (fail_over_mac {})", self.fail_over_mac)?;
        }
        writeln!(o)?;
        // The kernel's bond_mode_uses_xmit_hash().
        let tlb_hashed =
            matches!(self.mode, Mode::BalanceTlb | Mode::BalanceAlb) && !self.tlb_dynamic_lb;
        if self.mode.uses_hash() || tlb_hashed {
            writeln!(
                o,
                "Transmit Hash Policy: {} ({})",
                self.xmit_hash_policy,
                self.xmit_hash_policy.number()
            )?;
        }
        if self.mode.has_active_slave() {
            write!(
                o,
                "Primary Slave: {}",
                self.primary.as_deref().unwrap_or("None")
            )?;
            if self.primary.is_some() {
                write!(o, " (primary_reselect {})", self.primary_reselect)?;
            }
            writeln!(o)?;
            writeln!(
                o,
                "Currently Active Slave: {}",
                self.active.as_deref().unwrap_or("None")
            )?;
        }
        writeln!(
            o,
            "MII Status: {}",
            if self.mii_status { "up" } else { "down" }
        )?;
        writeln!(o, "MII Polling Interval (ms): {}", self.miimon)?;
        writeln!(o, "Up Delay (ms): {}", self.updelay)?;
        writeln!(o, "Down Delay (ms): {}", self.downdelay)?;
        writeln!(o, "Peer Notification Delay (ms): {}", self.peer_notif_delay)?;
        if self.arp_interval > 0 {
            writeln!(o, "ARP Polling Interval (ms): {}", self.arp_interval)?;
            writeln!(o, "ARP Missed Max: {}", self.arp_missed_max)?;
            let v4: Vec<String> = self.arp_ip_target.iter().map(|a| a.to_string()).collect();
            writeln!(o, "ARP IP target/s (n.n.n.n form):{}", join_targets(&v4))?;
            let v6: Vec<String> = self.ns_ip6_target.iter().map(|a| a.to_string()).collect();
            writeln!(o, "NS IPv6 target/s (xx::xx form):{}", join_targets(&v6))?;
            writeln!(o, "ARP Validate: {}", self.arp_validate)?;
            if let Some(p) = &self.link_watch_policy {
                writeln!(o, "Link Watch Policy: {p}")?;
            }
        }
        if let Some(l) = &self.lacp {
            writeln!(o)?;
            writeln!(o, "802.3ad info")?;
            writeln!(o, "LACP active: {}", if l.active { "on" } else { "off" })?;
            writeln!(o, "LACP rate: {}", l.rate)?;
            writeln!(o, "Min links: {}", l.min_links)?;
            writeln!(
                o,
                "Aggregator selection policy (ad_select): {}",
                l.ad_select
            )?;
            writeln!(o, "System priority: {}", l.system_priority)?;
            writeln!(o, "System MAC address: {}", l.system_mac)?;
            match &l.active_aggregator {
                None => writeln!(o, "bond {} has no active aggregator", self.name)?,
                Some(a) => {
                    writeln!(o, "Active Aggregator Info:")?;
                    writeln!(o, "\tAggregator ID: {}", a.id)?;
                    writeln!(o, "\tNumber of ports: {}", a.ports)?;
                    writeln!(o, "\tActor Key: {}", a.actor_key)?;
                    writeln!(o, "\tPartner Key: {}", a.partner_key)?;
                    writeln!(o, "\tPartner Mac Address: {}", a.partner_mac)?;
                }
            }
            if let Some(f) = &l.fallback_slave {
                writeln!(o, "LACP fallback: active-backup on {f} (no partner)")?;
            }
        }
        if self.monitoring_off {
            writeln!(
                o,
                "Link Monitoring: off (link_watch_policy none: no failover)"
            )?;
        }
        let r = &self.runtime;
        writeln!(
            o,
            "Upper Port: {} via {} (AF_XDP {}), {} queue(s), {} worker(s)",
            self.name,
            r.peer_name,
            r.upper_xdp_bind,
            r.queues.len(),
            r.workers
        )?;
        for (i, q) in r.queues.iter().enumerate() {
            writeln!(
                o,
                "Queue {i}: from host {}, to host {}, dropped {}; busy passes {}, TX kicks {}, sleeps {}{}",
                q.from_host,
                q.to_host,
                q.dropped,
                q.busy_passes,
                q.kicks,
                q.sleeps,
                if q.coalesce_waits > 0 {
                    format!(", coalescing waits {}", q.coalesce_waits)
                } else {
                    String::new()
                }
            )?;
            for k in &q.sockets {
                writeln!(
                    o,
                    "Queue {i} socket {}: {}{}, {} UMEM; kernel: rx dropped {}, rx ring full {}, fill ring empty {}, invalid descriptors {}",
                    k.iface,
                    k.xdp_bind,
                    if k.multi_buffer { " multi-buffer" } else { "" },
                    if k.own_umem { "own" } else { "shared" },
                    k.rx_dropped,
                    k.rx_ring_full,
                    k.fill_ring_empty,
                    k.invalid_descs
                )?;
                for why in &k.refused {
                    writeln!(o, "Queue {i} socket {}: {why}", k.iface)?;
                }
            }
        }
        if r.mtu > 0 {
            writeln!(
                o,
                "MTU: {} (frames up to {} bytes cross)",
                r.mtu, r.max_frame
            )?;
        }
        for n in &r.notes {
            writeln!(o, "Warning: {n}")?;
        }
        for a in &r.announced {
            writeln!(o, "Announced after failover: {a}")?;
        }
        for g in &r.reported {
            writeln!(o, "Groups reported after failover: {g}")?;
        }
        writeln!(o, "Bond HW addr: {}", self.hwaddr)?;
        writeln!(
            o,
            "Frames: no usable slave {}, malformed {}, oversize {}",
            r.tx_no_slave, r.malformed, r.oversize
        )?;
        if r.failovers > 0 {
            writeln!(
                o,
                "Failovers: {}{}",
                r.failovers,
                r.last_failover_us.map_or(String::new(), |us| format!(
                    " (last: {:.3} ms from the link loss seen to the new active slave's plan)",
                    us as f64 / 1000.0
                ))
            )?;
        }
        if r.data_plane_restarts > 0 {
            writeln!(
                o,
                "Data plane restarts: {} (last: {}; counters count from then)",
                r.data_plane_restarts, r.data_plane_restarted_for
            )?;
        }
        for s in &self.slaves {
            writeln!(o)?;
            writeln!(o, "Slave Interface: {}", s.name)?;
            writeln!(o, "MII Status: {}", s.mii_status)?;
            match s.speed_mbps {
                Some(v) => writeln!(o, "Speed: {v} Mbps")?,
                None => writeln!(o, "Speed: Unknown")?,
            }
            match s.full_duplex {
                Some(true) => writeln!(o, "Duplex: full")?,
                Some(false) => writeln!(o, "Duplex: half")?,
                None => writeln!(o, "Duplex: unknown")?,
            }
            writeln!(o, "Link Failure Count: {}", s.link_failure_count)?;
            writeln!(o, "Permanent HW addr: {}", s.perm_hwaddr)?;
            writeln!(o, "Slave queue ID: {}", s.queue_id)?;
            if let Some(p) = &s.lacp {
                write_lacp_port(o, p)?;
            } else if self.mode == Mode::Ieee8023ad {
                writeln!(o, "Aggregator ID: N/A")?;
            }
            let sr = &s.runtime;
            if let Some(arp) = s.arp_up {
                let word = |b: bool| if b { "up" } else { "down" };
                writeln!(
                    o,
                    "Monitors: carrier {}, ARP/NS {}",
                    word(s.carrier),
                    word(arp)
                )?;
            }
            writeln!(o, "AF_XDP: {} (XDP {})", sr.xdp_bind, sr.xdp_attach)?;
            writeln!(
                o,
                "Frames: rx {} tx {} dropped inactive {} duplicate {} no-socket {} tx-full {}; to kernel {}",
                sr.rx_frames,
                sr.tx_frames,
                sr.rx_dropped_inactive,
                sr.rx_dropped_duplicate,
                sr.rx_dropped_no_socket,
                sr.tx_dropped,
                sr.rx_passed_to_kernel
            )?;
        }
        Ok(())
    }
}

/// The kernel's target list: " a, b" (empty when none).
fn join_targets(t: &[String]) -> String {
    if t.is_empty() {
        String::new()
    } else {
        format!(" {}", t.join(", "))
    }
}

fn write_lacp_port(o: &mut String, p: &PortStatus) -> std::fmt::Result {
    match p.aggregator_id {
        Some(id) => writeln!(o, "Aggregator ID: {id}")?,
        None => writeln!(o, "Aggregator ID: N/A")?,
    }
    writeln!(o, "Actor Churn State: {}", p.actor_churn.proc_name())?;
    writeln!(o, "Partner Churn State: {}", p.partner_churn.proc_name())?;
    writeln!(o, "Actor Churned Count: {}", p.actor_churned)?;
    writeln!(o, "Partner Churned Count: {}", p.partner_churned)?;
    writeln!(o, "details actor lacp pdu:")?;
    writeln!(o, "    system priority: {}", p.actor_system_priority)?;
    writeln!(o, "    system mac address: {}", p.actor_system)?;
    writeln!(o, "    port key: {}", p.actor_key)?;
    writeln!(o, "    port priority: {}", p.actor_port_priority)?;
    writeln!(o, "    port number: {}", p.actor_port)?;
    writeln!(o, "    port state: {}", p.actor_state)?;
    writeln!(o, "details partner lacp pdu:")?;
    writeln!(o, "    system priority: {}", p.partner_system_priority)?;
    writeln!(o, "    system mac address: {}", p.partner_system)?;
    writeln!(o, "    oper key: {}", p.partner_key)?;
    writeln!(o, "    port priority: {}", p.partner_port_priority)?;
    writeln!(o, "    port number: {}", p.partner_port)?;
    writeln!(o, "    port state: {}", p.partner_state)?;
    let c = &p.counters;
    writeln!(
        o,
        "LACPDUs: rx {} tx {}; Marker: rx {} tx {} responses rx {} tx {}; unknown rx {}; illegal rx {}; over budget rx {}",
        c.lacpdu_rx,
        c.lacpdu_tx,
        c.marker_rx,
        c.marker_tx,
        c.marker_response_rx,
        c.marker_response_tx,
        c.unknown_rx,
        c.illegal_rx,
        c.over_budget_rx
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bond::SlaveSpec;
    use crate::config::BondConfig;
    use std::time::Instant;

    fn status(mode: Mode) -> Status {
        let mut c = BondConfig::new("bond0", vec!["eno1".into(), "eno2".into()]);
        c.mode = mode;
        if mode == Mode::ActiveBackup {
            c.primary = Some("eno1".into());
        }
        let t0 = Instant::now();
        let specs = ["eno1", "eno2"]
            .iter()
            .enumerate()
            .map(|(i, n)| SlaveSpec {
                name: n.to_string(),
                perm_mac: MacAddr([2, 0, 0, 0, 0, i as u8 + 1]),
                speed_mbps: Some(10000),
                full_duplex: Some(true),
            })
            .collect();
        let mut b = Bond::new(c, specs, t0);
        b.handle_carrier(0, false, t0);
        b.handle_carrier(1, true, t0);
        Status::new(&b, BondRuntime::default(), &[])
    }

    #[test]
    fn active_backup_text_has_the_kernel_fields() {
        let t = status(Mode::ActiveBackup).proc_text();
        for line in [
            "Bonding Mode: fault-tolerance (active-backup)\n",
            "Primary Slave: eno1 (primary_reselect always)\n",
            "Currently Active Slave: eno2\n",
            "MII Status: up\n",
            "MII Polling Interval (ms): 100\n",
            "Up Delay (ms): 0\n",
            "Down Delay (ms): 0\n",
            "Peer Notification Delay (ms): 0\n",
            "\nSlave Interface: eno1\nMII Status: down\nSpeed: 10000 Mbps\nDuplex: full\nLink Failure Count: 0\nPermanent HW addr: 02:00:00:00:00:01\nSlave queue ID: 0\n",
            "\nSlave Interface: eno2\nMII Status: up\n",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
        assert!(!t.contains("Transmit Hash Policy"));
    }

    #[test]
    fn xor_text_shows_the_hash_policy_and_no_active_slave() {
        let t = status(Mode::BalanceXor).proc_text();
        assert!(
            t.contains("Bonding Mode: load balancing (xor)\nTransmit Hash Policy: layer2 (0)\n"),
            "{t}"
        );
        assert!(!t.contains("Currently Active Slave"));
    }

    // Found by the VM status oracle: the kernel shows the policy whenever
    // it hashes, also in balance-tlb without tlb_dynamic_lb.
    #[test]
    fn tlb_shows_the_hash_policy_only_when_it_hashes() {
        let mut s = status(Mode::BalanceTlb);
        assert!(!s.proc_text().contains("Transmit Hash Policy"));
        s.tlb_dynamic_lb = false;
        let t = s.proc_text();
        assert!(
            t.contains("Bonding Mode: transmit load balancing\nTransmit Hash Policy: layer2 (0)\nPrimary Slave:"),
            "{t}"
        );
    }

    #[test]
    fn lacp_text_has_the_kernel_802_3ad_fields() {
        let t = status(Mode::Ieee8023ad).proc_text();
        for line in [
            "Bonding Mode: IEEE 802.3ad Dynamic link aggregation\nTransmit Hash Policy: layer2 (0)\n",
            "\n802.3ad info\nLACP active: on\nLACP rate: slow\nMin links: 0\nAggregator selection policy (ad_select): stable\nSystem priority: 65535\nSystem MAC address: 02:00:00:00:00:01\n",
            "Slave queue ID: 0\nAggregator ID: 2\nActor Churn State: monitoring\n",
            "details actor lacp pdu:\n    system priority: 65535\n    system mac address: 02:00:00:00:00:01\n    port key: 15\n    port priority: 255\n    port number: 2\n",
            "details partner lacp pdu:\n    system priority: 65535\n    system mac address: 00:00:00:00:00:00\n    oper key: 1\n",
        ] {
            assert!(t.contains(line), "missing {line:?} in\n{t}");
        }
        // A partner never answered: no carrier (unlike the kernel).
        assert!(t.contains("MII Status: down\n"), "{t}");
        let j = serde_json::to_string(&status(Mode::Ieee8023ad)).unwrap();
        let back: Status = serde_json::from_str(&j).unwrap();
        assert!(back.lacp.is_some() && back.slaves[1].lacp.is_some());
    }

    #[test]
    fn arp_fields_appear_with_an_arp_monitor() {
        let mut c = BondConfig::new("bond0", vec!["eno1".into(), "eno2".into()]);
        c.mode = Mode::ActiveBackup;
        c.miimon = 0;
        c.arp_interval = 1000;
        c.arp_ip_target = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        let specs = ["eno1", "eno2"]
            .iter()
            .map(|n| SlaveSpec {
                name: n.to_string(),
                perm_mac: MacAddr([2, 0, 0, 0, 0, 1]),
                speed_mbps: None,
                full_duplex: None,
            })
            .collect();
        let b = Bond::new(c, specs, Instant::now());
        let t = Status::new(&b, BondRuntime::default(), &[]).proc_text();
        assert!(t.contains("ARP Polling Interval (ms): 1000\nARP Missed Max: 2\nARP IP target/s (n.n.n.n form): 10.0.0.1, 10.0.0.2\nNS IPv6 target/s (xx::xx form):\n"), "{t}");
        assert!(t.contains("Monitors: carrier down, ARP/NS down\n"), "{t}");
    }

    #[test]
    fn json_round_trips() {
        let s = status(Mode::ActiveBackup);
        let j = serde_json::to_string(&s).unwrap();
        let back: Status = serde_json::from_str(&j).unwrap();
        assert_eq!(back, s);
        assert!(j.contains("\"mode\":\"active-backup\""), "{j}");
    }
}
