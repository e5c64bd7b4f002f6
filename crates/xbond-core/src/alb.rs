//! The pure logic of `balance-tlb` (mode 5) and `balance-alb` (mode 6), after
//! the kernel's `drivers/net/bonding/bond_alb.c`.
//!
//! - [`Tlb`]: transmit load balancing. IPv4/IPv6 unicast frames are put in one
//!   of [`TLB_BUCKETS`] buckets by destination address ([`tlb_bucket`]); each
//!   bucket is given to a slave, by load (`tlb_dynamic_lb 1`) or by a static
//!   spread (`tlb_dynamic_lb 0`). The workers read the [`Tlb::table`] snapshot;
//!   frames of an unassigned bucket, and frames with no bucket, go on the
//!   active slave.
//! - [`Rlb`]: receive load balancing (ALB only). Each IPv4 peer is told, by the
//!   ARP replies the host sends and by ARP updates the bond sends itself, the
//!   MAC of the slave it should send to, so that peers spread their traffic
//!   over the slaves.
//! - [`learning_packet`] and [`LearningTimer`]: the frames that keep switches'
//!   forwarding tables pointing at each slave (`lp_interval`).
//! - [`swap_on_failover`]: the MAC moves on failover (`alb_swap_mac_addr`).
//!
//! Nothing here reads a clock or touches a device: time is an argument, and
//! the frames to send are pulled with [`Rlb::poll_transmit`]. No input frame,
//! however short or malformed, can make these functions panic.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::options::MacAddr;
use crate::timer::Timer;
use crate::wire::{
    arp_frame, push_eth_header, set_arp_sender_mac, ArpInfo, EthInfo, ARPOP_REPLY, ARPOP_REQUEST,
    ETH_HLEN, ETH_P_IP, ETH_P_IPV6, ETH_ZLEN,
};
use crate::MAX_SLAVES;

/// Number of TLB buckets (kernel `TLB_HASH_TABLE_SIZE`).
pub const TLB_BUCKETS: usize = 256;
/// Interval between TLB rebalances (kernel `BOND_TLB_REBALANCE_INTERVAL`).
pub const TLB_REBALANCE_INTERVAL: Duration = Duration::from_secs(10);
/// Marks an unassigned bucket in [`Tlb::table`].
pub const TLB_UNASSIGNED: u8 = 0xff;
/// Speed assumed for a slave whose speed is unknown, in Mb/s.
pub const TLB_DEFAULT_SPEED_MBPS: u32 = 1000;

/// Delay between an ARP request sent by the host and the ARP updates that
/// undo what it taught the peers (kernel `RLB_UPDATE_DELAY`, 2 ticks of
/// 100 ms).
pub const RLB_UPDATE_DELAY: Duration = Duration::from_millis(200);
/// ARP replies sent per client update (kernel `RLB_ARP_BURST_SIZE`).
pub const RLB_ARP_BURST_SIZE: u8 = 2;
/// Most clients the receive balancer remembers. The kernel keeps 256 hashed
/// slots where a colliding client evicts another; xbond keeps a map of up to
/// this many peers and evicts the one heard from least recently.
pub const RLB_MAX_CLIENTS: usize = 4096;

/// EtherType of the learning packets (kernel `ETH_P_LOOPBACK`).
pub const ETH_P_LOOPBACK: u16 = 0x9000;

const IPPROTO_IGMP: u8 = 2;

fn xor_fold(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |h, b| h ^ b)
}

/// The TLB bucket of a frame the bond transmits: the kernel's `_simple_hash`
/// (XOR of the bytes) of the destination IPv4 or IPv6 address, after up to two
/// VLAN tags.
///
/// `None` means "not balanced, send on the active slave", as in the kernel's
/// `bond_alb_xmit`: non-IP frames (ARP included), group destination MACs,
/// IPv4 to 255.255.255.255, IGMP, IPv6 from the unspecified address (DAD),
/// and frames too short for their IP header.
///
/// Newer kernels hash with `xmit_hash_policy` here; xbond keeps the
/// destination-address hash so that one bucket is one peer, which is what
/// the per-bucket load in the status means.
pub fn tlb_bucket(frame: &[u8]) -> Option<u8> {
    let eth = EthInfo::parse(frame)?;
    if MacAddr(eth.dst).is_multicast() {
        return None;
    }
    let l3 = eth.l3_offset;
    match eth.ethertype {
        ETH_P_IP => {
            let h: [u8; 20] = frame.get(l3..l3 + 20)?.try_into().ok()?;
            if h[0] >> 4 != 4 || h[9] == IPPROTO_IGMP {
                return None;
            }
            let dst = &h[16..20];
            if dst == [0xff; 4] {
                return None;
            }
            Some(xor_fold(dst))
        }
        ETH_P_IPV6 => {
            let h: [u8; 40] = frame.get(l3..l3 + 40)?.try_into().ok()?;
            if h[0] >> 4 != 6 || h[8..24] == [0; 16] {
                return None;
            }
            Some(xor_fold(&h[24..40]))
        }
        _ => None,
    }
}

/// One TLB bucket (kernel `struct tlb_client_info`).
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Assigned slave (dynamic mode only).
    slave: Option<u8>,
    /// Bytes sent in the current interval.
    tx_bytes: u64,
    /// Bytes sent in the last complete interval.
    load_history: u64,
}

impl Bucket {
    /// The load this bucket is expected to put on a slave per interval: what
    /// it sent in the last interval, or more if it already sent more in this
    /// one.
    fn weight(&self) -> u64 {
        self.load_history.max(self.tx_bytes)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct TlbSlave {
    usable: bool,
    speed_mbps: Option<u32>,
}

impl TlbSlave {
    /// What the slave can carry in one rebalance interval, in bytes.
    fn capacity(&self) -> i128 {
        let mbps = match self.speed_mbps {
            Some(s) if s > 0 => s,
            _ => TLB_DEFAULT_SPEED_MBPS,
        };
        i128::from(mbps) * 1_000_000 / 8 * i128::from(TLB_REBALANCE_INTERVAL.as_secs())
    }
}

/// Transmit load balancing: which slave carries each bucket (kernel
/// `tlb_choose_channel`, `tlb_get_least_loaded_slave`, `tlb_clear_slave`).
///
/// With `tlb_dynamic_lb` (`dynamic = true`) a bucket is given, when first
/// used, to the usable slave with the most spare capacity
/// (`speed * interval - load`, as the kernel's `compute_gap`; ties go to the
/// slave with fewer buckets, then the lower index), where a slave's load is
/// the sum of its buckets' loads. Every [`TLB_REBALANCE_INTERVAL`] the loads
/// just measured become the buckets' history and all assignments are
/// redone from them (heaviest first).
///
/// Departures from the kernel, both to avoid bursts on the active slave:
/// at a rebalance, and when a slave fails or returns, the buckets that carry
/// traffic are re-spread at once instead of on their next frame; idle buckets
/// are freed and get a slave when next used.
///
/// Without `tlb_dynamic_lb`, bucket `b` goes to the `b % n`-th of the `n`
/// usable slaves: a static spread, as the kernel's hash over `usable_slaves`.
#[derive(Debug, Clone)]
pub struct Tlb {
    dynamic: bool,
    buckets: Box<[Bucket; TLB_BUCKETS]>,
    slaves: Vec<TlbSlave>,
    rebalance: Timer,
    changed: bool,
}

impl Tlb {
    /// A table for `n_slaves` slaves (at most [`MAX_SLAVES`]), all unusable
    /// until [`Tlb::set_usable`] says otherwise.
    pub fn new(n_slaves: usize, dynamic: bool, now: Instant) -> Tlb {
        Tlb {
            dynamic,
            buckets: Box::new([Bucket::default(); TLB_BUCKETS]),
            slaves: vec![TlbSlave::default(); n_slaves.min(MAX_SLAVES)],
            rebalance: Timer::start(now, TLB_REBALANCE_INTERVAL),
            changed: false,
        }
    }

    /// Whether buckets are assigned by load (`tlb_dynamic_lb 1`).
    pub fn dynamic(&self) -> bool {
        self.dynamic
    }

    /// Updates which slaves may carry traffic and their speeds in Mb/s
    /// (missing entries count as unusable / unknown speed).
    ///
    /// The buckets of a slave that became unusable move, with their load, to
    /// the other usable slaves. When a slave becomes usable, every bucket in
    /// use is re-spread over all usable slaves (the kernel forces a rebalance
    /// on link up).
    pub fn set_usable(&mut self, usable: &[bool], speeds: &[Option<u32>]) {
        let mut came_up = false;
        let mut went_down = false;
        for (i, s) in self.slaves.iter_mut().enumerate() {
            let u = usable.get(i).copied().unwrap_or(false);
            came_up |= u && !s.usable;
            went_down |= !u && s.usable;
            s.usable = u;
            s.speed_mbps = speeds.get(i).copied().flatten();
        }
        if !came_up && !went_down {
            return;
        }
        if !self.dynamic {
            self.changed = true;
            return;
        }
        let slaves = &self.slaves;
        let moving: Vec<usize> = (0..TLB_BUCKETS)
            .filter(|&b| match self.buckets[b].slave {
                None => false,
                Some(s) => came_up || !slaves.get(usize::from(s)).is_some_and(|s| s.usable),
            })
            .collect();
        self.respread(moving);
    }

    /// The slave for `bucket`, assigning one if the bucket has none (dynamic
    /// mode). `None` when no slave is usable.
    pub fn assign(&mut self, bucket: u8) -> Option<u8> {
        let b = usize::from(bucket);
        if !self.dynamic {
            return self.static_slave(b);
        }
        if let Some(s) = self.buckets[b].slave {
            return Some(s);
        }
        let (loads, counts) = self.loads_and_counts();
        let s = self.least_loaded(&loads, &counts)?;
        self.buckets[b].slave = Some(s);
        self.changed = true;
        Some(s)
    }

    /// Adds `bytes` sent through `bucket` in the current interval.
    pub fn note_load(&mut self, bucket: u8, bytes: u64) {
        let e = &mut self.buckets[usize::from(bucket)];
        e.tx_bytes = e.tx_bytes.saturating_add(bytes);
    }

    /// Takes the per-bucket byte counts the workers reported since the last
    /// call: adds them to the buckets' loads, then assigns every bucket that
    /// saw traffic and has no slave yet, heaviest first.
    pub fn assign_all_seen(&mut self, seen: &[u64; TLB_BUCKETS]) {
        let mut fresh = Vec::new();
        for (b, &bytes) in seen.iter().enumerate() {
            if bytes == 0 {
                continue;
            }
            let e = &mut self.buckets[b];
            e.tx_bytes = e.tx_bytes.saturating_add(bytes);
            if self.dynamic && e.slave.is_none() {
                fresh.push(b);
            }
        }
        if !fresh.is_empty() {
            self.respread(fresh);
        }
    }

    /// The snapshot the workers read: the slave of each bucket, or
    /// [`TLB_UNASSIGNED`] (send on the active slave).
    pub fn table(&self) -> [u8; TLB_BUCKETS] {
        let mut t = [TLB_UNASSIGNED; TLB_BUCKETS];
        for (b, slot) in t.iter_mut().enumerate() {
            if let Some(s) = self.slave_of(b) {
                *slot = s;
            }
        }
        t
    }

    /// The slave `bucket` is on now, without assigning one.
    pub fn bucket_slave(&self, bucket: u8) -> Option<u8> {
        self.slave_of(usize::from(bucket))
    }

    /// Runs the rebalance when its timer is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.rebalance.due(now) {
            return;
        }
        self.rebalance = Timer::start(now, TLB_REBALANCE_INTERVAL);
        let mut busy = Vec::new();
        for (b, e) in self.buckets.iter_mut().enumerate() {
            e.load_history = e.tx_bytes;
            e.tx_bytes = 0;
            if self.dynamic && e.slave.is_some() {
                if e.load_history > 0 {
                    busy.push(b);
                } else {
                    // Idle for a whole interval: freed, reassigned on use.
                    e.slave = None;
                    self.changed = true;
                }
            }
        }
        if self.dynamic {
            self.respread(busy);
        }
    }

    /// When [`Tlb::handle_timeout`] next has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rebalance.deadline()
    }

    /// Whether [`Tlb::table`] changed since the last call; clears the flag.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// The load of each slave in bytes per interval: the sum of its buckets'
    /// loads (the last interval's, or the current one's if larger).
    pub fn load_per_slave(&self) -> Vec<u64> {
        self.loads_and_counts().0
    }

    /// `(bucket, slave, load)` for every assigned bucket (dynamic mode), or
    /// for every bucket that carried traffic (static mode, where all 256
    /// buckets have a slave).
    pub fn assignments(&self) -> Vec<(u8, u8, u64)> {
        (0..TLB_BUCKETS)
            .filter_map(|b| {
                let s = self.slave_of(b)?;
                let w = self.buckets[b].weight();
                if !self.dynamic && w == 0 {
                    return None;
                }
                Some((u8::try_from(b).ok()?, s, w))
            })
            .collect()
    }

    fn slave_of(&self, b: usize) -> Option<u8> {
        if self.dynamic {
            self.buckets.get(b)?.slave
        } else {
            self.static_slave(b)
        }
    }

    fn static_slave(&self, b: usize) -> Option<u8> {
        let n = self.slaves.iter().filter(|s| s.usable).count();
        if n == 0 {
            return None;
        }
        let i = self
            .slaves
            .iter()
            .enumerate()
            .filter(|(_, s)| s.usable)
            .nth(b % n)?
            .0;
        u8::try_from(i).ok()
    }

    fn loads_and_counts(&self) -> (Vec<u64>, Vec<u32>) {
        let mut loads = vec![0u64; self.slaves.len()];
        let mut counts = vec![0u32; self.slaves.len()];
        for b in 0..TLB_BUCKETS {
            if let Some(s) = self.slave_of(b) {
                if let (Some(l), Some(c)) = (
                    loads.get_mut(usize::from(s)),
                    counts.get_mut(usize::from(s)),
                ) {
                    *l = l.saturating_add(self.buckets[b].weight());
                    *c += 1;
                }
            }
        }
        (loads, counts)
    }

    /// The usable slave with the most spare capacity; ties to fewer buckets,
    /// then the lower index.
    fn least_loaded(&self, loads: &[u64], counts: &[u32]) -> Option<u8> {
        let mut best: Option<(usize, (i128, Reverse<u32>))> = None;
        for (i, s) in self.slaves.iter().enumerate() {
            if !s.usable {
                continue;
            }
            let load = loads.get(i).copied().unwrap_or(0);
            let key = (
                s.capacity() - i128::from(load),
                Reverse(counts.get(i).copied().unwrap_or(0)),
            );
            if best.is_none_or(|(_, k)| key > k) {
                best = Some((i, key));
            }
        }
        u8::try_from(best?.0).ok()
    }

    /// Unassigns `list` and gives each of its buckets, heaviest first, to the
    /// least-loaded usable slave.
    fn respread(&mut self, mut list: Vec<usize>) {
        let before: Vec<(usize, Option<u8>)> =
            list.iter().map(|&b| (b, self.buckets[b].slave)).collect();
        for &b in &list {
            self.buckets[b].slave = None;
        }
        let (mut loads, mut counts) = self.loads_and_counts();
        list.sort_by_key(|&b| (Reverse(self.buckets[b].weight()), b));
        for &b in &list {
            let s = self.least_loaded(&loads, &counts);
            self.buckets[b].slave = s;
            if let Some(s) = s {
                let i = usize::from(s);
                if let (Some(l), Some(c)) = (loads.get_mut(i), counts.get_mut(i)) {
                    *l = l.saturating_add(self.buckets[b].weight());
                    *c += 1;
                }
            }
        }
        self.changed |= before.iter().any(|&(b, s)| self.buckets[b].slave != s);
    }
}

fn is_unicast(mac: MacAddr) -> bool {
    !mac.is_multicast() && !mac.is_zero()
}

/// Parses an Ethernet/IPv4 ARP request or reply after up to two VLAN tags
/// ([`ArpInfo::parse`]); `None` for any other operation, anything else or
/// anything short.
fn parse_request_or_reply(frame: &[u8]) -> Option<ArpInfo> {
    let arp = ArpInfo::parse(frame)?;
    matches!(arp.op, ARPOP_REQUEST | ARPOP_REPLY).then_some(arp)
}

/// A peer of the bond as the receive balancer sees it (kernel
/// `struct rlb_client_info`), for the status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    /// The peer's IPv4 address.
    pub ip: Ipv4Addr,
    /// The peer's MAC, 00:00:00:00:00:00 while unknown (the host asked for
    /// the peer and no answer was seen yet).
    pub mac: MacAddr,
    /// The slave the peer is told to send to.
    pub slave: u8,
    /// ARP updates telling the peer its slave's MAC are pending.
    pub needs_update: bool,
}

/// One client entry.
#[derive(Debug, Clone)]
struct Entry {
    /// The peer's MAC, once known.
    mac: Option<MacAddr>,
    /// Assigned slave.
    slave: u8,
    /// The bond address the peer talks to; sender of the updates.
    bond_ip: Ipv4Addr,
    /// VLAN the peer was seen on.
    vlan: u16,
    /// When the next ARP update is due; `Stopped` when none is pending.
    update: Timer,
    /// Updates left in the current burst.
    burst_left: u8,
    /// Last time the host or the peer spoke ARP about this peer.
    last_seen: Instant,
}

impl Entry {
    /// Schedules a burst of updates no earlier than `at`, nor earlier than an
    /// update already scheduled (which waits out an ARP request).
    fn mark(&mut self, at: Instant) {
        let at = self.update.deadline().map_or(at, |d| d.max(at));
        self.update = Timer::Running { expires_at: at };
        self.burst_left = RLB_ARP_BURST_SIZE;
    }

    fn needs_update(&self) -> bool {
        matches!(self.update, Timer::Running { .. })
    }
}

/// Receive load balancing for `balance-alb` (kernel `rlb_*`): a table of IPv4
/// peers, each assigned a slave whose MAC the peer is taught by ARP.
///
/// The runtime passes every ARP frame the host sends out of the bond through
/// [`Rlb::rewrite_host_arp`] (replies are rewritten to name the peer's slave
/// and must be sent on it), feeds every ARP frame received on any slave to
/// [`Rlb::learn_from_peer`], reports link changes with [`Rlb::set_usable`] and
/// MAC changes with [`Rlb::set_slave_macs`], and sends what
/// [`Rlb::poll_transmit`] yields, on the slave it names, once
/// [`Rlb::poll_timeout`] is reached.
///
/// New peers go to the usable slave with the fewest clients (the kernel
/// round-robins with `rlb_next_rx_slave`; counting spreads the same and
/// stays even after failures). Departures from the kernel: ARP requests the
/// host sends keep the bond MAC and go on the active slave, and when a slave
/// returns only as many clients move as evening out the counts needs.
#[derive(Debug, Clone)]
pub struct Rlb {
    slave_macs: Vec<MacAddr>,
    usable: Vec<bool>,
    bond_mac: MacAddr,
    bond_ips: Vec<Ipv4Addr>,
    clients: BTreeMap<Ipv4Addr, Entry>,
}

impl Rlb {
    /// A balancer for slaves with these MACs (at most [`MAX_SLAVES`]), all
    /// unusable until [`Rlb::set_usable`], on a bond with this MAC and these
    /// IPv4 addresses.
    pub fn new(mut slave_macs: Vec<MacAddr>, bond_mac: MacAddr, bond_ips: Vec<Ipv4Addr>) -> Rlb {
        slave_macs.truncate(MAX_SLAVES);
        Rlb {
            usable: vec![false; slave_macs.len()],
            slave_macs,
            bond_mac,
            bond_ips,
            clients: BTreeMap::new(),
        }
    }

    /// Replaces the bond's IPv4 addresses; clients that talked to an address
    /// the bond no longer has are forgotten.
    pub fn set_bond_ips(&mut self, ips: Vec<Ipv4Addr>) {
        self.clients.retain(|_, e| ips.contains(&e.bond_ip));
        self.bond_ips = ips;
    }

    /// Replaces the bond's MAC (which host ARP frames carry as sender).
    pub fn set_bond_mac(&mut self, mac: MacAddr) {
        self.bond_mac = mac;
    }

    /// Replaces the slaves' MACs (after [`swap_on_failover`]): the clients of
    /// a slave whose MAC changed are updated (kernel
    /// `rlb_req_update_slave_clients`).
    pub fn set_slave_macs(&mut self, mut macs: Vec<MacAddr>, now: Instant) {
        macs.truncate(MAX_SLAVES);
        for e in self.clients.values_mut() {
            let i = usize::from(e.slave);
            if self.slave_macs.get(i) != macs.get(i) {
                e.mark(now);
            }
        }
        self.usable.resize(macs.len(), false);
        self.slave_macs = macs;
        // Clients of slaves that no longer exist need a new one.
        self.rebalance(false, now);
    }

    /// Updates which slaves can receive. Clients of a slave that became
    /// unusable move to the usable slaves with the fewest clients; when a
    /// slave becomes usable the clients are evened out over all usable slaves
    /// (kernel `rlb_rebalance`). Every moved client gets an ARP update.
    pub fn set_usable(&mut self, usable: &[bool], now: Instant) {
        let mut came_up = false;
        let mut went_down = false;
        for (i, u) in self.usable.iter_mut().enumerate() {
            let n = usable.get(i).copied().unwrap_or(false);
            came_up |= n && !*u;
            went_down |= !n && *u;
            *u = n;
        }
        if came_up || went_down {
            self.rebalance(came_up, now);
        }
    }

    /// Learns from an ARP frame received from the network (kernel
    /// `rlb_arp_recv` / `rlb_update_entry_from_arp`): refreshes the sender's
    /// entry, updating the peer if its MAC changed, and creates an entry for
    /// a peer asking for one of the bond's addresses. Frames from the bond's
    /// own addresses or MACs, from 0.0.0.0, with a group or zero sender MAC,
    /// and anything that is not an Ethernet/IPv4 ARP request or reply are
    /// ignored.
    pub fn learn_from_peer(&mut self, frame: &[u8], now: Instant) {
        let Some(arp) = parse_request_or_reply(frame) else {
            return;
        };
        if arp.spa.is_unspecified()
            || arp.spa.is_broadcast()
            || arp.spa.is_multicast()
            || self.bond_ips.contains(&arp.spa)
            || !is_unicast(arp.sha)
            || self.is_own_mac(arp.sha)
        {
            return;
        }
        if let Some(e) = self.clients.get_mut(&arp.spa) {
            e.last_seen = now;
            if e.mac != Some(arp.sha) {
                let had_mac = e.mac.is_some();
                e.mac = Some(arp.sha);
                // Another host now uses this address: tell it its slave.
                // (A placeholder learning its MAC already has its update.)
                if had_mac {
                    e.mark(now);
                }
            }
            return;
        }
        if arp.op == ARPOP_REQUEST && self.bond_ips.contains(&arp.tpa) {
            if let Some(slave) = self.fewest() {
                self.insert(
                    arp.spa,
                    Entry {
                        mac: Some(arp.sha),
                        slave,
                        bond_ip: arp.tpa,
                        vlan: arp.vlan,
                        update: Timer::Stopped,
                        burst_left: 0,
                        last_seen: now,
                    },
                );
            }
        }
    }

    /// Handles an ARP frame the host sends out of the bond (kernel
    /// `rlb_arp_xmit`).
    ///
    /// A reply from one of the bond's addresses to peer P is given P's slave
    /// (a new P goes to the usable slave with the fewest clients): its ARP
    /// sender hardware address and Ethernet source become that slave's MAC,
    /// and the slave is returned; the caller must send the frame on it.
    ///
    /// A request from the bond to P is left as it is and returns `None` (it
    /// goes on the active slave with the bond MAC), but P gets an entry and,
    /// [`RLB_UPDATE_DELAY`] later, ARP updates naming its slave, as soon as
    /// its MAC is known. A broadcast request teaches every peer on the VLAN
    /// the bond MAC, so all clients of that bond address are updated too
    /// (kernel `rlb_req_update_subnet_clients`).
    ///
    /// `None` also for frames from addresses or MACs not the bond's (a bridge
    /// behind the bond), gratuitous ARPs, non-IPv4 ARP, non-ARP and short
    /// frames, and when no slave is usable; the frame is then untouched.
    pub fn rewrite_host_arp(&mut self, frame: &mut [u8], now: Instant) -> Option<u8> {
        let arp = parse_request_or_reply(frame)?;
        if !self.bond_ips.contains(&arp.spa) || !self.is_own_mac(arp.sha) {
            return None;
        }
        let peer = arp.tpa;
        if peer.is_unspecified()
            || peer.is_broadcast()
            || peer.is_multicast()
            || self.bond_ips.contains(&peer)
        {
            return None;
        }
        let slave = self.slave_for(peer)?;
        let old = self.clients.get(&peer);
        let (update, burst_left) = old.map_or((Timer::Stopped, 0), |e| (e.update, e.burst_left));
        if arp.op == ARPOP_REPLY {
            if !is_unicast(arp.tha) {
                return None;
            }
            let mac = *self.slave_macs.get(usize::from(slave))?;
            set_arp_sender_mac(frame, mac)?;
            self.insert(
                peer,
                Entry {
                    mac: Some(arp.tha),
                    slave,
                    bond_ip: arp.spa,
                    vlan: arp.vlan,
                    update,
                    burst_left,
                    last_seen: now,
                },
            );
            return Some(slave);
        }
        // A request: the peer learns the bond MAC from it.
        let mac = if is_unicast(arp.tha) {
            Some(arp.tha)
        } else {
            old.and_then(|e| e.mac)
        };
        self.insert(
            peer,
            Entry {
                mac,
                slave,
                bond_ip: arp.spa,
                vlan: arp.vlan,
                update,
                burst_left,
                last_seen: now,
            },
        );
        let at = now + RLB_UPDATE_DELAY;
        if arp.eth_dst.is_multicast() {
            for e in self.clients.values_mut() {
                if e.bond_ip == arp.spa && e.vlan == arp.vlan {
                    e.mark(at);
                }
            }
        } else if let Some(e) = self.clients.get_mut(&peer) {
            e.mark(at);
        }
        None
    }

    /// The next ARP update to send, and the slave to send it on: an ARP reply
    /// from the bond address to the client, with the slave's MAC as Ethernet
    /// source and ARP sender (kernel `rlb_update_client`). Each update is a
    /// burst of [`RLB_ARP_BURST_SIZE`] replies. Updates wait for their delay,
    /// for the client's MAC to be known and for a usable slave.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(u8, Vec<u8>)> {
        let (macs, usable) = (&self.slave_macs, &self.usable);
        let (ip, e) = self
            .clients
            .iter_mut()
            .find(|(_, e)| e.update.due(now) && sendable(e, macs, usable))?;
        let src = *macs.get(usize::from(e.slave))?;
        let dst = e.mac?;
        e.burst_left = e.burst_left.saturating_sub(1);
        if e.burst_left == 0 {
            e.update = Timer::Stopped;
        }
        // An ARP reply, the Ethernet addresses equal to the ARP hardware
        // addresses (kernel `arp_create` in `rlb_update_client`).
        let reply = arp_frame(ARPOP_REPLY, dst, src, e.bond_ip, dst, *ip, e.vlan);
        Some((e.slave, reply))
    }

    /// When [`Rlb::poll_transmit`] next has something to send.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clients
            .values()
            .filter(|e| sendable(e, &self.slave_macs, &self.usable))
            .filter_map(|e| e.update.deadline())
            .min()
    }

    /// All clients, by IP address.
    pub fn clients(&self) -> Vec<Client> {
        self.clients
            .iter()
            .map(|(ip, e)| Client {
                ip: *ip,
                mac: e.mac.unwrap_or(MacAddr([0; 6])),
                slave: e.slave,
                needs_update: e.needs_update(),
            })
            .collect()
    }

    /// The slave assigned to the peer `ip`.
    pub fn slave_of(&self, ip: Ipv4Addr) -> Option<u8> {
        self.clients.get(&ip).map(|e| e.slave)
    }

    fn is_own_mac(&self, mac: MacAddr) -> bool {
        mac == self.bond_mac || self.slave_macs.contains(&mac)
    }

    fn is_usable(&self, slave: u8) -> bool {
        self.usable
            .get(usize::from(slave))
            .copied()
            .unwrap_or(false)
    }

    /// The peer's slave if it is usable, else the usable slave with the
    /// fewest clients.
    fn slave_for(&self, peer: Ipv4Addr) -> Option<u8> {
        match self.clients.get(&peer) {
            Some(e) if self.is_usable(e.slave) => Some(e.slave),
            _ => self.fewest(),
        }
    }

    /// The usable slave with the fewest clients; ties to the lower index.
    fn fewest(&self) -> Option<u8> {
        let mut counts = vec![0usize; self.slave_macs.len()];
        for e in self.clients.values() {
            if let Some(c) = counts.get_mut(usize::from(e.slave)) {
                *c += 1;
            }
        }
        let (i, _) = counts
            .iter()
            .enumerate()
            .filter(|&(i, _)| self.usable.get(i).copied().unwrap_or(false))
            .min_by_key(|&(i, c)| (*c, i))?;
        u8::try_from(i).ok()
    }

    /// Inserts or replaces an entry, evicting the least recently seen client
    /// when the table is full.
    fn insert(&mut self, ip: Ipv4Addr, entry: Entry) {
        if !self.clients.contains_key(&ip) && self.clients.len() >= RLB_MAX_CLIENTS {
            let oldest = self
                .clients
                .iter()
                .min_by_key(|(_, e)| e.last_seen)
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                self.clients.remove(&oldest);
            }
        }
        self.clients.insert(ip, entry);
    }

    /// Moves the clients of unusable (or vanished) slaves to the usable
    /// slaves with the fewest clients, and with `level` also evens out the
    /// counts of the usable slaves. Moved clients are marked for an update.
    fn rebalance(&mut self, level: bool, now: Instant) {
        let n = self.slave_macs.len();
        let usable = |i: usize| self.usable.get(i).copied().unwrap_or(false);
        if !(0..n).any(usable) {
            // Nowhere to go; the clients wait for a slave to come back.
            return;
        }
        let mut on: Vec<Vec<Ipv4Addr>> = vec![Vec::new(); n];
        let mut orphans = Vec::new();
        for (ip, e) in &self.clients {
            let i = usize::from(e.slave);
            match on.get_mut(i) {
                Some(list) if usable(i) => list.push(*ip),
                _ => orphans.push(*ip),
            }
        }
        let fewest = |on: &[Vec<Ipv4Addr>]| {
            (0..n)
                .filter(|&i| usable(i))
                .min_by_key(|&i| (on.get(i).map_or(0, Vec::len), i))
        };
        let most = |on: &[Vec<Ipv4Addr>]| {
            (0..n)
                .filter(|&i| usable(i))
                .max_by_key(|&i| (on.get(i).map_or(0, Vec::len), Reverse(i)))
        };
        let mut moves = Vec::new();
        for ip in orphans {
            let Some(to) = fewest(&on) else { break };
            if let Some(list) = on.get_mut(to) {
                list.push(ip);
                moves.push((ip, to));
            }
        }
        // Each step moves a client from the fullest to the emptiest slave
        // while they differ by two or more, which lowers the sum of squared
        // counts: the loop ends.
        if level {
            while let (Some(from), Some(to)) = (most(&on), fewest(&on)) {
                let len = |i: usize| on.get(i).map_or(0, Vec::len);
                if len(from) <= len(to) + 1 {
                    break;
                }
                let Some(ip) = on.get_mut(from).and_then(Vec::pop) else {
                    break;
                };
                if let Some(list) = on.get_mut(to) {
                    list.push(ip);
                    moves.push((ip, to));
                }
            }
        }
        for (ip, to) in moves {
            if let (Some(e), Ok(to)) = (self.clients.get_mut(&ip), u8::try_from(to)) {
                if e.slave != to {
                    e.slave = to;
                    e.mark(now);
                }
            }
        }
    }
}

/// Whether an update for `e` can go out: its MAC is known and its slave is
/// usable and has a MAC.
fn sendable(e: &Entry, macs: &[MacAddr], usable: &[bool]) -> bool {
    let i = usize::from(e.slave);
    e.mac.is_some() && macs.get(i).is_some() && usable.get(i).copied().unwrap_or(false)
}

/// A learning packet for `slave_mac` (kernel `alb_send_lp_vid`): destination
/// and source both the slave's MAC, EtherType [`ETH_P_LOOPBACK`], zero
/// padding; 60 bytes, or 64 with the 802.1Q tag for a non-zero `vlan`. It
/// makes switches learn (again) which port a MAC is behind.
pub fn learning_packet(slave_mac: MacAddr, vlan: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(64);
    push_eth_header(&mut f, slave_mac, slave_mac, vlan, ETH_P_LOOPBACK);
    f.resize(f.len() + (ETH_ZLEN - ETH_HLEN), 0);
    f
}

/// When to send learning packets: every `lp_interval` (kernel
/// `bond_alb_monitor`).
#[derive(Debug, Clone)]
pub struct LearningTimer {
    interval: Duration,
    timer: Timer,
}

impl LearningTimer {
    /// First due `lp_interval` after `now`. An interval under one second is
    /// taken as one second, the kernel's minimum `lp_interval`.
    pub fn new(lp_interval: Duration, now: Instant) -> LearningTimer {
        let interval = lp_interval.max(Duration::from_secs(1));
        LearningTimer {
            interval,
            timer: Timer::start(now, interval),
        }
    }

    /// The interval in use.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// True when the packets are due; re-arms for `lp_interval` after `now`.
    pub fn due(&mut self, now: Instant) -> bool {
        if self.timer.due(now) {
            self.timer = Timer::start(now, self.interval);
            true
        } else {
            false
        }
    }

    /// When [`LearningTimer::due`] next returns true.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer.deadline()
    }
}

/// The MAC moves when `new_active` becomes the active slave (kernel
/// `alb_swap_mac_addr` / `alb_fasten_mac_swap`): it takes `bond_mac`, and the
/// slave that held `bond_mac` takes the new active slave's old MAC. Applies
/// the moves to `macs` and returns them, `(slave, new MAC)`, for the runtime
/// to program. Nothing moves when `new_active` already has the bond MAC or is
/// out of range. If `macs` are all different on entry they still are after.
pub fn swap_on_failover(
    macs: &mut [MacAddr],
    bond_mac: MacAddr,
    new_active: usize,
) -> Vec<(usize, MacAddr)> {
    let Some(&old) = macs.get(new_active) else {
        return Vec::new();
    };
    if old == bond_mac {
        return Vec::new();
    }
    let mut changes = vec![(new_active, bond_mac)];
    let holder = macs
        .iter()
        .enumerate()
        .position(|(i, m)| i != new_active && *m == bond_mac);
    if let Some(h) = holder {
        if let Some(m) = macs.get_mut(h) {
            *m = old;
            changes.push((h, old));
        }
    }
    if let Some(m) = macs.get_mut(new_active) {
        *m = bond_mac;
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ETH_P_8021Q;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, last])
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, last)
    }

    const BOND_MAC: MacAddr = MacAddr([0x02, 0xb0, 0, 0, 0, 1]);
    const BOND_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    /// Ethernet header with `vlans` tags (802.1Q), then `payload`.
    fn eth(dst: MacAddr, src: MacAddr, vlans: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst.0);
        f.extend_from_slice(&src.0);
        for v in vlans {
            f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
            f.extend_from_slice(&v.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// A UDP/IPv4 frame to `dst` (8 bytes of UDP header, no payload).
    fn ipv4_frame(dst: [u8; 4], vlans: &[u16], proto: u8) -> Vec<u8> {
        let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, proto, 0, 0];
        ip.extend_from_slice(&[192, 168, 0, 9]);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        eth(mac(0x99), BOND_MAC, vlans, ETH_P_IP, &ip)
    }

    fn ipv6_frame(src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
        let mut ip = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        ip.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
        eth(mac(0x99), BOND_MAC, &[], ETH_P_IPV6, &ip)
    }

    /// The host's ARP reply from the bond to peer `p` at `pmac`.
    fn host_reply(p: Ipv4Addr, pmac: MacAddr) -> Vec<u8> {
        ArpInfo {
            eth_dst: pmac,
            eth_src: BOND_MAC,
            vlan: 0,
            op: ARPOP_REPLY,
            sha: BOND_MAC,
            spa: BOND_IP,
            tha: pmac,
            tpa: p,
        }
        .emit()
    }

    /// The host's broadcast ARP request for peer `p`.
    fn host_request(p: Ipv4Addr) -> Vec<u8> {
        ArpInfo {
            eth_dst: MacAddr::BROADCAST,
            eth_src: BOND_MAC,
            vlan: 0,
            op: ARPOP_REQUEST,
            sha: BOND_MAC,
            spa: BOND_IP,
            tha: MacAddr([0; 6]),
            tpa: p,
        }
        .emit()
    }

    /// Peer `p` at `pmac` answering the bond.
    fn peer_reply(p: Ipv4Addr, pmac: MacAddr) -> Vec<u8> {
        ArpInfo {
            eth_dst: BOND_MAC,
            eth_src: pmac,
            vlan: 0,
            op: ARPOP_REPLY,
            sha: pmac,
            spa: p,
            tha: BOND_MAC,
            tpa: BOND_IP,
        }
        .emit()
    }

    /// Peer `p` at `pmac` asking for the bond's address.
    fn peer_request(p: Ipv4Addr, pmac: MacAddr) -> Vec<u8> {
        ArpInfo {
            eth_dst: MacAddr::BROADCAST,
            eth_src: pmac,
            vlan: 0,
            op: ARPOP_REQUEST,
            sha: pmac,
            spa: p,
            tha: MacAddr([0; 6]),
            tpa: BOND_IP,
        }
        .emit()
    }

    /// Reads back an ARP reply the balancer sent.
    fn read_arp(f: &[u8]) -> ArpInfo {
        parse_request_or_reply(f).expect("an ARP frame")
    }

    fn rlb2(now: Instant) -> Rlb {
        let mut r = Rlb::new(vec![mac(0x10), mac(0x11)], BOND_MAC, vec![BOND_IP]);
        r.set_usable(&[true, true], now);
        r
    }

    fn drain(r: &mut Rlb, now: Instant) -> Vec<(u8, Vec<u8>)> {
        std::iter::from_fn(|| r.poll_transmit(now))
            .take(10_000)
            .collect()
    }

    fn peer_mac(i: u8) -> MacAddr {
        MacAddr([0x0a, 0, 0, 0, 1, i])
    }

    // ---------------------------------------------------------------- TLB

    #[test]
    fn bucket_is_xor_of_the_destination_address() {
        let f = ipv4_frame([10, 1, 2, 3], &[], 17);
        assert_eq!(tlb_bucket(&f), Some(10 ^ 1 ^ 2 ^ 3));
        let f = ipv4_frame([10, 1, 2, 3], &[100, 200], 6);
        assert_eq!(
            tlb_bucket(&f),
            Some(10 ^ 1 ^ 2 ^ 3),
            "through two VLAN tags"
        );
        let f = ipv4_frame([10, 1, 2, 3], &[100], 17);
        assert_eq!(tlb_bucket(&f), Some(10 ^ 1 ^ 2 ^ 3), "through one VLAN tag");

        let mut dst = [0u8; 16];
        dst[0] = 0x20;
        dst[1] = 0x01;
        dst[15] = 0x42;
        let mut src = [0u8; 16];
        src[15] = 1;
        assert_eq!(tlb_bucket(&ipv6_frame(src, dst)), Some(0x20 ^ 0x01 ^ 0x42));
        assert_eq!(tlb_bucket(&ipv6_frame([0; 16], dst)), None, "DAD from ::");

        let arp = host_reply(ip(5), peer_mac(5));
        assert_eq!(tlb_bucket(&arp), None, "ARP goes on the active slave");
        let mut bcast = ipv4_frame([10, 1, 2, 3], &[], 17);
        bcast[..6].copy_from_slice(&[0xff; 6]);
        assert_eq!(tlb_bucket(&bcast), None, "broadcast MAC");
        let mut mcast = ipv4_frame([224, 0, 0, 251], &[], 17);
        mcast[..6].copy_from_slice(&[0x01, 0x00, 0x5e, 0, 0, 0xfb]);
        assert_eq!(tlb_bucket(&mcast), None, "multicast MAC");
        assert_eq!(tlb_bucket(&ipv4_frame([255; 4], &[], 17)), None);
        assert_eq!(tlb_bucket(&ipv4_frame([10, 0, 0, 2], &[], 2)), None, "IGMP");
        let mut v5 = ipv4_frame([10, 1, 2, 3], &[], 17);
        v5[14] = 0x55;
        assert_eq!(tlb_bucket(&v5), None, "not version 4");
    }

    fn tlb2(dynamic: bool, now: Instant) -> Tlb {
        let mut t = Tlb::new(2, dynamic, now);
        t.set_usable(&[true, true], &[Some(1000), Some(1000)]);
        t
    }

    fn count_on(t: &Tlb, slave: u8) -> usize {
        t.table().iter().filter(|&&s| s == slave).count()
    }

    #[test]
    fn eight_equal_destinations_spread_four_and_four() {
        let now = Instant::now();
        // Reported by the workers in one batch.
        let mut t = tlb2(true, now);
        let mut seen = [0u64; TLB_BUCKETS];
        for d in 1..=8u8 {
            let b = tlb_bucket(&ipv4_frame([10, 0, 0, d], &[], 17)).unwrap();
            seen[usize::from(b)] += 1500;
        }
        t.assign_all_seen(&seen);
        assert!(t.take_changed());
        assert!(!t.take_changed(), "the flag is drained");
        assert_eq!((count_on(&t, 0), count_on(&t, 1)), (4, 4));
        assert_eq!(t.load_per_slave(), vec![4 * 1500, 4 * 1500]);
        assert_eq!(t.assignments().len(), 8);
        // Learned one frame at a time.
        let mut t = tlb2(true, now);
        for d in 1..=8u8 {
            let b = tlb_bucket(&ipv4_frame([10, 0, 0, d], &[], 17)).unwrap();
            assert!(t.assign(b).is_some());
            t.note_load(b, 1500);
        }
        assert_eq!((count_on(&t, 0), count_on(&t, 1)), (4, 4));
        let table = t.table();
        assert_eq!(table.iter().filter(|&&s| s == TLB_UNASSIGNED).count(), 248);
    }

    #[test]
    fn faster_slave_takes_more_buckets() {
        let now = Instant::now();
        let mut t = Tlb::new(2, true, now);
        t.set_usable(&[true, true], &[Some(10_000), Some(1000)]);
        let mut seen = [0u64; TLB_BUCKETS];
        // 1 GB per bucket per 10 s (800 Mb/s). Slave 0 can carry 12.5 GB per
        // interval and slave 1 1.25 GB: slave 0 takes buckets until its spare
        // capacity falls under slave 1's.
        for b in seen.iter_mut().take(13) {
            *b = 1_000_000_000;
        }
        t.assign_all_seen(&seen);
        assert_eq!((count_on(&t, 0), count_on(&t, 1)), (12, 1));
    }

    #[test]
    fn rebalance_after_10s_moves_buckets_off_an_overloaded_slave() {
        let t0 = Instant::now();
        let mut t = tlb2(true, t0);
        assert_eq!(t.poll_timeout(), Some(t0 + TLB_REBALANCE_INTERVAL));
        // Four new peers with little traffic: 0,2 on slave 0; 1,3 on slave 1.
        let mut seen = [0u64; TLB_BUCKETS];
        seen[..4].fill(100);
        t.assign_all_seen(&seen);
        let before = t.table();
        assert_eq!(&before[..4], &[0, 1, 0, 1]);
        t.take_changed();
        // Then buckets 0 and 2 turn heavy: slave 0 carries nearly everything.
        let mut seen = [0u64; TLB_BUCKETS];
        seen[0] = 5_000_000;
        seen[2] = 5_000_000;
        seen[1] = 1000;
        seen[3] = 1000;
        t.assign_all_seen(&seen);
        let loads = t.load_per_slave();
        assert!(loads[0] > 100 * loads[1], "{loads:?}");
        assert_eq!(t.table(), before, "no change before the interval ends");

        t.handle_timeout(t0 + Duration::from_secs(9));
        assert_eq!(t.table(), before);
        t.handle_timeout(t0 + TLB_REBALANCE_INTERVAL);
        assert!(t.take_changed());
        let after = t.table();
        assert_ne!(after[0], after[2], "the heavy buckets are split");
        let loads = t.load_per_slave();
        // Heaviest first: one heavy and one light bucket on each slave.
        assert_eq!(loads, vec![5_000_100 + 1100, 5_000_100 + 1100]);
        assert_eq!(t.poll_timeout(), Some(t0 + 2 * TLB_REBALANCE_INTERVAL));

        // A bucket idle for a whole interval is freed.
        t.handle_timeout(t0 + 2 * TLB_REBALANCE_INTERVAL);
        assert!(t.table().iter().all(|&s| s == TLB_UNASSIGNED));
    }

    #[test]
    fn static_spread_without_dynamic_lb() {
        let now = Instant::now();
        let mut t = Tlb::new(3, false, now);
        assert!(
            t.table().iter().all(|&s| s == TLB_UNASSIGNED),
            "nothing usable"
        );
        t.set_usable(&[true, true, true], &[None, None, None]);
        assert!(t.take_changed());
        let table = t.table();
        for (b, &s) in table.iter().enumerate() {
            assert_eq!(usize::from(s), b % 3);
        }
        // Load does not move anything.
        let mut seen = [0u64; TLB_BUCKETS];
        seen[0] = 1 << 40;
        t.assign_all_seen(&seen);
        t.handle_timeout(now + TLB_REBALANCE_INTERVAL);
        assert_eq!(t.table(), table);
        assert!(!t.take_changed());
        assert_eq!(t.assign(7), Some(1));
        assert_eq!(t.assignments(), vec![(0, 0, 1 << 40)]);
        // Slave 1 fails: spread over the two left.
        t.set_usable(&[true, false, true], &[None, None, None]);
        assert!(t.take_changed());
        for (b, &s) in t.table().iter().enumerate() {
            assert_eq!(s, if b % 2 == 0 { 0 } else { 2 });
        }
    }

    #[test]
    fn failed_slave_buckets_and_load_move_to_the_others() {
        let now = Instant::now();
        let mut t = Tlb::new(3, true, now);
        let speeds = [Some(1000); 3];
        t.set_usable(&[true, true, true], &speeds);
        let mut seen = [0u64; TLB_BUCKETS];
        for (b, s) in seen.iter_mut().enumerate().take(12) {
            *s = 1000 * (b as u64 + 1);
        }
        t.assign_all_seen(&seen);
        let total: u64 = t.load_per_slave().iter().sum();
        let on1: Vec<usize> = (0..12).filter(|&b| t.table()[b] == 1).collect();
        assert!(!on1.is_empty());
        t.take_changed();

        t.set_usable(&[true, false, true], &speeds);
        assert!(t.take_changed());
        let table = t.table();
        assert!(
            table.iter().all(|&s| s != 1),
            "nothing left on the failed slave"
        );
        assert!(
            (0..12).all(|b| table[b] == 0 || table[b] == 2),
            "all still assigned"
        );
        let loads = t.load_per_slave();
        assert_eq!(loads[1], 0);
        assert_eq!(
            loads.iter().sum::<u64>(),
            total,
            "the load moved with the buckets"
        );
        let diff = loads[0].abs_diff(loads[2]);
        assert!(diff <= 12_000, "{loads:?}");

        // All down: every bucket goes back to the active slave.
        t.set_usable(&[false, false, false], &speeds);
        assert!(t.table().iter().all(|&s| s == TLB_UNASSIGNED));
        assert_eq!(t.assign(3), None);
        // Slave 1 returns: the buckets in use are spread again.
        t.set_usable(&[false, true, false], &speeds);
        t.assign_all_seen(&seen);
        assert!((0..12).all(|b| t.table()[b] == 1));
    }

    #[test]
    fn returning_slave_takes_buckets_back() {
        let now = Instant::now();
        let mut t = Tlb::new(2, true, now);
        t.set_usable(&[true, false], &[None, None]);
        let mut seen = [0u64; TLB_BUCKETS];
        seen[..8].fill(1000);
        t.assign_all_seen(&seen);
        assert_eq!(count_on(&t, 0), 8);
        t.set_usable(&[true, true], &[None, None]);
        assert_eq!((count_on(&t, 0), count_on(&t, 1)), (4, 4));
    }

    // ---------------------------------------------------------------- RLB

    #[test]
    fn host_replies_to_four_peers_spread_over_two_slave_macs() {
        let now = Instant::now();
        let mut r = rlb2(now);
        let mut per_slave = [0; 2];
        for i in 2..6u8 {
            let mut f = host_reply(ip(i), peer_mac(i));
            let orig = f.clone();
            let s = r
                .rewrite_host_arp(&mut f, now)
                .expect("a reply is balanced");
            per_slave[usize::from(s)] += 1;
            let smac = mac(0x10 + s);
            let a = read_arp(&f);
            assert_eq!(a.sha, smac, "ARP sender hardware address");
            assert_eq!(&f[6..12], &smac.0, "Ethernet source");
            assert_eq!(a.spa, BOND_IP);
            assert_eq!((a.tha, a.tpa), (peer_mac(i), ip(i)));
            assert_eq!(&f[..6], &orig[..6], "destination untouched");
            assert_eq!(&f[20..22], &orig[20..22], "op untouched");
            assert_eq!(
                &f[28..],
                &orig[28..],
                "addresses after the sender untouched"
            );
            assert_eq!(r.slave_of(ip(i)), Some(s));
            // Asking again keeps the peer on its slave.
            let mut again = host_reply(ip(i), peer_mac(i));
            assert_eq!(r.rewrite_host_arp(&mut again, now), Some(s));
        }
        assert_eq!(per_slave, [2, 2]);
        assert_eq!(r.clients().len(), 4);
        assert!(r.clients().iter().all(|c| !c.needs_update));
        assert_eq!(r.poll_transmit(now + Duration::from_secs(1)), None);
    }

    #[test]
    fn host_reply_through_a_vlan_is_rewritten() {
        let now = Instant::now();
        let mut r = rlb2(now);
        let mut f = ArpInfo {
            eth_dst: peer_mac(7),
            eth_src: BOND_MAC,
            vlan: 42,
            op: ARPOP_REPLY,
            sha: BOND_MAC,
            spa: BOND_IP,
            tha: peer_mac(7),
            tpa: ip(7),
        }
        .emit();
        let s = r.rewrite_host_arp(&mut f, now).unwrap();
        let a = read_arp(&f);
        assert_eq!((a.vlan, a.sha), (42, mac(0x10 + s)));
        assert_eq!(&f[6..12], &mac(0x10 + s).0);
    }

    #[test]
    fn host_request_is_untouched_and_its_peer_is_updated_after_200ms() {
        let t0 = Instant::now();
        let mut r = rlb2(t0);
        // A client already on slave 0, so the new peer goes to slave 1.
        let mut f = host_reply(ip(2), peer_mac(2));
        assert_eq!(r.rewrite_host_arp(&mut f, t0), Some(0));

        let mut req = host_request(ip(9));
        let orig = req.clone();
        assert_eq!(r.rewrite_host_arp(&mut req, t0), None);
        assert_eq!(req, orig, "requests keep the bond MAC");
        assert_eq!(r.slave_of(ip(9)), Some(1));
        assert!(r.clients().iter().all(|c| c.needs_update));
        assert_eq!(r.poll_transmit(t0 + Duration::from_millis(199)), None);
        // The peer answers 5 ms later.
        r.learn_from_peer(
            &peer_reply(ip(9), peer_mac(9)),
            t0 + Duration::from_millis(5),
        );
        assert_eq!(r.poll_timeout(), Some(t0 + RLB_UPDATE_DELAY));
        assert_eq!(r.poll_transmit(t0 + Duration::from_millis(199)), None);

        let sent = drain(&mut r, t0 + RLB_UPDATE_DELAY);
        // The broadcast request also taught the other client the bond MAC.
        let to9: Vec<_> = sent
            .iter()
            .filter(|(_, f)| read_arp(f).tpa == ip(9))
            .collect();
        let to2: Vec<_> = sent
            .iter()
            .filter(|(_, f)| read_arp(f).tpa == ip(2))
            .collect();
        assert_eq!((to9.len(), to2.len()), (2, 2), "a burst of two each");
        for (s, f) in to9 {
            let a = read_arp(f);
            assert_eq!(*s, 1);
            assert_eq!(a.op, ARPOP_REPLY);
            assert_eq!((a.sha, a.spa), (mac(0x11), BOND_IP));
            assert_eq!((a.tha, a.tpa), (peer_mac(9), ip(9)));
            assert_eq!(&f[..6], &peer_mac(9).0, "Ethernet destination is the peer");
            assert_eq!(&f[6..12], &mac(0x11).0, "Ethernet source is the slave");
            assert_eq!(f.len(), 60);
        }
        for (s, f) in to2 {
            assert_eq!((*s, read_arp(f).sha), (0, mac(0x10)));
        }
        assert!(r.clients().iter().all(|c| !c.needs_update));
        assert_eq!(r.poll_timeout(), None);
        assert_eq!(r.poll_transmit(t0 + Duration::from_secs(5)), None);

        // A peer that never answers cannot be updated: its MAC is unknown.
        let t1 = t0 + Duration::from_secs(10);
        let mut req = host_request(ip(10));
        assert_eq!(r.rewrite_host_arp(&mut req, t1), None);
        let sent = drain(&mut r, t1 + Duration::from_secs(1));
        assert!(sent.iter().all(|(_, f)| read_arp(f).tpa != ip(10)));
        assert_eq!(sent.len(), 4, "the other clients heard the broadcast");
        let c10 = r.clients().into_iter().find(|c| c.ip == ip(10)).unwrap();
        assert!(c10.needs_update && c10.mac.is_zero());
        assert_eq!(r.poll_timeout(), None, "nothing sendable is pending");
    }

    #[test]
    fn slave_failure_moves_clients_and_updates_them() {
        let t0 = Instant::now();
        let mut r = Rlb::new(
            vec![mac(0x10), mac(0x11), mac(0x12)],
            BOND_MAC,
            vec![BOND_IP],
        );
        r.set_usable(&[true, true, true], t0);
        for i in 2..8u8 {
            let mut f = host_reply(ip(i), peer_mac(i));
            r.rewrite_host_arp(&mut f, t0).unwrap();
        }
        let on1: Vec<Ipv4Addr> = r
            .clients()
            .iter()
            .filter(|c| c.slave == 1)
            .map(|c| c.ip)
            .collect();
        assert_eq!(on1.len(), 2);

        let t1 = t0 + Duration::from_secs(3);
        r.set_usable(&[true, false, true], t1);
        let clients = r.clients();
        assert!(clients.iter().all(|c| c.slave != 1));
        let counts = [0u8, 2].map(|s| clients.iter().filter(|c| c.slave == s).count());
        assert_eq!(counts, [3, 3], "spread over the slaves left");
        assert_eq!(r.poll_timeout(), Some(t1));
        let sent = drain(&mut r, t1);
        assert_eq!(
            sent.len(),
            2 * on1.len(),
            "only the moved clients are updated"
        );
        for (s, f) in &sent {
            let a = read_arp(f);
            assert!(on1.contains(&a.tpa));
            assert_eq!(Some(*s), r.slave_of(a.tpa));
            assert_eq!(a.sha, mac(0x10 + s), "names the new slave's MAC");
            assert_eq!(&f[6..12], &a.sha.0);
        }
    }

    #[test]
    fn returning_slave_gets_clients_back() {
        let t0 = Instant::now();
        let mut r = rlb2(t0);
        for i in 2..6u8 {
            let mut f = host_reply(ip(i), peer_mac(i));
            r.rewrite_host_arp(&mut f, t0).unwrap();
        }
        r.set_usable(&[true, false], t0);
        assert!(r.clients().iter().all(|c| c.slave == 0));
        assert_eq!(drain(&mut r, t0).len(), 4);

        let t1 = t0 + Duration::from_secs(1);
        r.set_usable(&[true, true], t1);
        let back: Vec<Ipv4Addr> = r
            .clients()
            .iter()
            .filter(|c| c.slave == 1)
            .map(|c| c.ip)
            .collect();
        assert_eq!(back.len(), 2);
        let sent = drain(&mut r, t1);
        assert_eq!(sent.len(), 4, "two clients, a burst of two each");
        for (s, f) in &sent {
            let a = read_arp(f);
            assert_eq!(*s, 1);
            assert!(back.contains(&a.tpa));
            assert_eq!(a.sha, mac(0x11));
        }
    }

    #[test]
    fn no_usable_slave_means_no_rewrite_and_clients_wait() {
        let t0 = Instant::now();
        let mut r = rlb2(t0);
        let mut f = host_reply(ip(2), peer_mac(2));
        assert_eq!(r.rewrite_host_arp(&mut f, t0), Some(0));
        r.set_usable(&[false, false], t0);
        let mut f = host_reply(ip(3), peer_mac(3));
        let orig = f.clone();
        assert_eq!(r.rewrite_host_arp(&mut f, t0), None);
        assert_eq!(f, orig);
        assert_eq!(r.poll_transmit(t0), None);
        r.set_usable(&[false, true], t0);
        assert_eq!(r.slave_of(ip(2)), Some(1));
        assert_eq!(drain(&mut r, t0).len(), 2);
    }

    #[test]
    fn learning_from_peers() {
        let t0 = Instant::now();
        let mut r = rlb2(t0);
        // A request for the bond creates an entry; a reply with no entry does not.
        r.learn_from_peer(&peer_request(ip(3), peer_mac(3)), t0);
        r.learn_from_peer(&peer_reply(ip(4), peer_mac(4)), t0);
        assert_eq!(r.clients().len(), 1);
        let c = r.clients()[0];
        assert_eq!((c.ip, c.mac, c.needs_update), (ip(3), peer_mac(3), false));
        // The host's reply then uses that slave.
        let mut f = host_reply(ip(3), peer_mac(3));
        assert_eq!(r.rewrite_host_arp(&mut f, t0), Some(c.slave));

        // The bond's own address, 0.0.0.0 and our own MACs are ignored.
        r.learn_from_peer(&peer_request(BOND_IP, peer_mac(5)), t0);
        r.learn_from_peer(&peer_request(Ipv4Addr::UNSPECIFIED, peer_mac(5)), t0);
        r.learn_from_peer(&peer_request(ip(6), mac(0x11)), t0);
        r.learn_from_peer(&peer_request(ip(6), MacAddr::BROADCAST), t0);
        // A request for another host.
        let mut other = peer_request(ip(7), peer_mac(7));
        other[38..42].copy_from_slice(&ip(200).octets());
        r.learn_from_peer(&other, t0);
        // Malformed: IPv6 ARP, bad op, not ARP.
        let mut bad = peer_request(ip(8), peer_mac(8));
        bad[16..18].copy_from_slice(&0x86ddu16.to_be_bytes());
        r.learn_from_peer(&bad, t0);
        let mut bad = peer_request(ip(8), peer_mac(8));
        bad[20..22].copy_from_slice(&3u16.to_be_bytes());
        r.learn_from_peer(&bad, t0);
        r.learn_from_peer(&ipv4_frame([10, 0, 0, 1], &[], 17), t0);
        assert_eq!(r.clients().len(), 1, "{:?}", r.clients());

        // The peer's address moves to another host: it is told its slave.
        let t1 = t0 + Duration::from_secs(1);
        r.learn_from_peer(&peer_reply(ip(3), peer_mac(33)), t1);
        assert_eq!(r.clients()[0].mac, peer_mac(33));
        let sent = drain(&mut r, t1);
        assert_eq!(sent.len(), 2);
        assert_eq!(read_arp(&sent[0].1).tha, peer_mac(33));
    }

    #[test]
    fn host_arp_not_from_the_bond_is_left_alone() {
        let t0 = Instant::now();
        let mut r = rlb2(t0);
        // A bridged guest behind the bond.
        let mut f = ArpInfo {
            eth_dst: peer_mac(2),
            eth_src: mac(0x77),
            vlan: 0,
            op: ARPOP_REPLY,
            sha: mac(0x77),
            spa: ip(77),
            tha: peer_mac(2),
            tpa: ip(2),
        }
        .emit();
        let orig = f.clone();
        assert_eq!(r.rewrite_host_arp(&mut f, t0), None);
        assert_eq!(f, orig);
        // Gratuitous ARP from the bond.
        let mut g = crate::wire::gratuitous_arp(BOND_MAC, BOND_IP, 0);
        let orig = g.clone();
        assert_eq!(r.rewrite_host_arp(&mut g, t0), None);
        assert_eq!(g, orig);
        // A reply to a broadcast address.
        let mut b = host_reply(ip(2), MacAddr::BROADCAST);
        assert_eq!(r.rewrite_host_arp(&mut b, t0), None);
        assert!(r.clients().is_empty());
    }

    #[test]
    fn slave_mac_change_updates_its_clients() {
        let t0 = Instant::now();
        let mut r = rlb2(t0);
        for i in 2..6u8 {
            let mut f = host_reply(ip(i), peer_mac(i));
            r.rewrite_host_arp(&mut f, t0).unwrap();
        }
        let mut macs = vec![mac(0x10), mac(0x11)];
        let changes = swap_on_failover(&mut macs, mac(0x10), 1);
        assert_eq!(changes, vec![(1, mac(0x10)), (0, mac(0x11))]);
        r.set_slave_macs(macs, t0);
        let sent = drain(&mut r, t0);
        assert_eq!(sent.len(), 8);
        for (s, f) in sent {
            assert_eq!(read_arp(&f).sha, if s == 0 { mac(0x11) } else { mac(0x10) });
        }
    }

    #[test]
    fn client_table_is_bounded() {
        let t0 = Instant::now();
        let mut r = rlb2(t0);
        for i in 0..(RLB_MAX_CLIENTS as u32 + 10) {
            let o = (i + 2).to_be_bytes();
            let p = Ipv4Addr::new(10, o[1], o[2], o[3]);
            let now = t0 + Duration::from_millis(u64::from(i));
            r.learn_from_peer(&peer_request(p, peer_mac(1)), now);
        }
        assert_eq!(r.clients().len(), RLB_MAX_CLIENTS);
        assert_eq!(
            r.slave_of(Ipv4Addr::new(10, 0, 0, 2)),
            None,
            "oldest evicted"
        );
    }

    // ------------------------------------------------- learning, MAC swap

    #[test]
    fn learning_packet_layout() {
        let f = learning_packet(mac(0x10), 0);
        assert_eq!(f.len(), 60);
        assert_eq!(&f[..6], &mac(0x10).0);
        assert_eq!(&f[6..12], &mac(0x10).0);
        assert_eq!(&f[12..14], &[0x90, 0x00]);
        assert!(f[14..].iter().all(|&b| b == 0));
        let f = learning_packet(mac(0x10), 100);
        assert_eq!(f.len(), 64);
        let eth = EthInfo::parse(&f).unwrap();
        assert_eq!((eth.vlan, eth.ethertype), (100, ETH_P_LOOPBACK));
    }

    #[test]
    fn learning_timer_rearms() {
        let t0 = Instant::now();
        let mut lt = LearningTimer::new(Duration::from_secs(1), t0);
        assert!(!lt.due(t0));
        assert!(!lt.due(t0 + Duration::from_millis(999)));
        assert!(lt.due(t0 + Duration::from_secs(1)));
        assert!(!lt.due(t0 + Duration::from_millis(1500)));
        assert_eq!(lt.poll_timeout(), Some(t0 + Duration::from_secs(2)));
        assert!(lt.due(t0 + Duration::from_secs(2)));
        let lt = LearningTimer::new(Duration::ZERO, t0);
        assert_eq!(lt.interval(), Duration::from_secs(1));
    }

    #[test]
    fn swap_never_leaves_two_slaves_with_one_mac() {
        let bond = MacAddr([0x02, 0xbb, 0, 0, 0, 0]);
        for n in 1..=5usize {
            // `holder`: which slave has the bond MAC (n: none).
            for holder in 0..=n {
                for new_active in 0..=n {
                    let mut macs: Vec<MacAddr> = (0..n).map(|i| mac(i as u8)).collect();
                    if holder < n {
                        macs[holder] = bond;
                    }
                    let before = macs.clone();
                    let changes = swap_on_failover(&mut macs, bond, new_active);
                    let mut sorted = macs.clone();
                    sorted.sort_by_key(|m| m.0);
                    sorted.dedup();
                    assert_eq!(sorted.len(), n, "{before:?} -> {macs:?}");
                    if new_active < n {
                        assert_eq!(macs[new_active], bond);
                    } else {
                        assert!(changes.is_empty());
                    }
                    let mut replay = before.clone();
                    for (i, m) in &changes {
                        replay[*i] = *m;
                    }
                    assert_eq!(replay, macs, "the changes are what happened");
                    if holder < n && holder != new_active && new_active < n {
                        assert_eq!(macs[holder], before[new_active], "a swap");
                    }
                }
            }
        }
    }

    // ----------------------------------------------------------- robustness

    fn fixtures() -> Vec<Vec<u8>> {
        let mut dst6 = [0u8; 16];
        dst6[15] = 9;
        vec![
            ipv4_frame([10, 1, 2, 3], &[], 17),
            ipv4_frame([10, 1, 2, 3], &[7, 8], 6),
            ipv6_frame([1; 16], dst6),
            host_reply(ip(2), peer_mac(2)),
            host_request(ip(3)),
            peer_reply(ip(4), peer_mac(4)),
            peer_request(ip(5), peer_mac(5)),
            ArpInfo {
                eth_dst: peer_mac(6),
                eth_src: BOND_MAC,
                vlan: 9,
                op: ARPOP_REPLY,
                sha: BOND_MAC,
                spa: BOND_IP,
                tha: peer_mac(6),
                tpa: ip(6),
            }
            .emit(),
            learning_packet(mac(1), 3),
        ]
    }

    #[test]
    fn parsers_survive_every_truncation() {
        let now = Instant::now();
        for f in fixtures() {
            let min_arp = EthInfo::parse(&f).map(|e| e.l3_offset + crate::wire::ARP_LEN);
            for len in 0..=f.len() {
                let cut = &f[..len];
                let _ = tlb_bucket(cut);
                let mut r = rlb2(now);
                r.learn_from_peer(cut, now);
                let mut m = cut.to_vec();
                let s = r.rewrite_host_arp(&mut m, now);
                if min_arp.is_none_or(|min| len < min) {
                    assert_eq!(s, None);
                    assert_eq!(&m[..], cut, "a short frame is not modified");
                    assert!(parse_request_or_reply(cut).is_none());
                }
                let _ = drain(&mut r, now + Duration::from_secs(1));
            }
        }
    }

    #[test]
    fn parsers_survive_garbage() {
        let now = Instant::now();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut r = rlb2(now);
        let mut t = tlb2(true, now);
        for round in 0..20_000u32 {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let fixtures = fixtures();
            let mut f = fixtures[(x % fixtures.len() as u64) as usize].clone();
            for k in 0..(x >> 60) {
                let at = ((x >> (8 * (k % 6))) as usize) % f.len();
                f[at] = (x >> 20) as u8 ^ (k as u8);
            }
            let at = now + Duration::from_millis(u64::from(round));
            if let Some(b) = tlb_bucket(&f) {
                t.assign(b);
                t.note_load(b, f.len() as u64);
            }
            r.learn_from_peer(&f, at);
            r.rewrite_host_arp(&mut f, at);
            while r.poll_transmit(at).is_some() {}
        }
        let _ = (t.table(), r.clients());
    }
}
