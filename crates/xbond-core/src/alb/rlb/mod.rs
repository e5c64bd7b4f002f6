//! Receive load balancing, for `balance-alb` only (kernel `rlb_*` in
//! `bond_alb.c`): [`Rlb`] keeps a table of IPv4 peers ([`Client`]), each
//! given a slave. It rewrites the ARP replies the host sends so that they
//! name the peer's slave's MAC, learns from the ARP frames the peers send,
//! and queues the ARP updates that tell a peer when its slave changes.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::options::MacAddr;
use crate::timer::Timer;
use crate::wire::{arp_frame, set_arp_sender_mac, ArpInfo, ARPOP_REPLY, ARPOP_REQUEST};
use crate::MAX_SLAVES;

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

fn is_unicast(mac: MacAddr) -> bool {
    !mac.is_multicast() && !mac.is_zero()
}

/// Parses an Ethernet/IPv4 ARP request or reply after up to two VLAN tags
/// ([`ArpInfo::parse`]); `None` for any other operation, anything else or
/// anything short.
pub(super) fn parse_request_or_reply(frame: &[u8]) -> Option<ArpInfo> {
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

    /// Replaces the slaves' MACs (after
    /// [`swap_on_failover`](super::swap_on_failover)): the clients of a slave
    /// whose MAC changed are updated (kernel `rlb_req_update_slave_clients`).
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

#[cfg(test)]
mod tests;
