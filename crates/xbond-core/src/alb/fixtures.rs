//! Fixtures shared by the ALB tests: addresses, hand-built IPv4 and IPv6
//! frames (with any number of VLAN tags), the ARP frames the host and its
//! peers exchange, and balancers over two usable slaves.

use std::net::Ipv4Addr;
use std::time::Instant;

use super::rlb::parse_request_or_reply;
use super::{Rlb, Tlb};
use crate::options::MacAddr;
use crate::wire::{ArpInfo, ARPOP_REPLY, ARPOP_REQUEST, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6};

pub(super) fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, last])
}

pub(super) fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

pub(super) const BOND_MAC: MacAddr = MacAddr([0x02, 0xb0, 0, 0, 0, 1]);
pub(super) const BOND_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

/// Ethernet header with `vlans` tags (802.1Q), then `payload`.
pub(super) fn eth(
    dst: MacAddr,
    src: MacAddr,
    vlans: &[u16],
    ethertype: u16,
    payload: &[u8],
) -> Vec<u8> {
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
pub(super) fn ipv4_frame(dst: [u8; 4], vlans: &[u16], proto: u8) -> Vec<u8> {
    let mut ip = vec![0x45, 0, 0, 28, 0, 0, 0x40, 0, 64, proto, 0, 0];
    ip.extend_from_slice(&[192, 168, 0, 9]);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
    eth(mac(0x99), BOND_MAC, vlans, ETH_P_IP, &ip)
}

pub(super) fn ipv6_frame(src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    let mut ip = vec![0x60, 0, 0, 0, 0, 8, 17, 64];
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    ip.extend_from_slice(&[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
    eth(mac(0x99), BOND_MAC, &[], ETH_P_IPV6, &ip)
}

/// The host's ARP reply from the bond to peer `p` at `pmac`.
pub(super) fn host_reply(p: Ipv4Addr, pmac: MacAddr) -> Vec<u8> {
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
pub(super) fn host_request(p: Ipv4Addr) -> Vec<u8> {
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
pub(super) fn peer_reply(p: Ipv4Addr, pmac: MacAddr) -> Vec<u8> {
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
pub(super) fn peer_request(p: Ipv4Addr, pmac: MacAddr) -> Vec<u8> {
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
pub(super) fn read_arp(f: &[u8]) -> ArpInfo {
    parse_request_or_reply(f).expect("an ARP frame")
}

pub(super) fn rlb2(now: Instant) -> Rlb {
    let mut r = Rlb::new(vec![mac(0x10), mac(0x11)], BOND_MAC, vec![BOND_IP]);
    r.set_usable(&[true, true], now);
    r
}

pub(super) fn drain(r: &mut Rlb, now: Instant) -> Vec<(u8, Vec<u8>)> {
    std::iter::from_fn(|| r.poll_transmit(now))
        .take(10_000)
        .collect()
}

pub(super) fn peer_mac(i: u8) -> MacAddr {
    MacAddr([0x0a, 0, 0, 0, 1, i])
}

pub(super) fn tlb2(dynamic: bool, now: Instant) -> Tlb {
    let mut t = Tlb::new(2, dynamic, now);
    t.set_usable(&[true, true], &[Some(1000), Some(1000)]);
    t
}
