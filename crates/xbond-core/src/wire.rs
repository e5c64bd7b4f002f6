//! Frame headers: the flow fields the hash policies read, the one ARP codec
//! ([`ArpInfo`]), the one Ethernet header writer with its 802.1Q tag
//! ([`push_eth_header`]), neighbour discovery, and the frames the bond sends
//! on its own behalf (gratuitous ARP, ARP and NS probes, unsolicited
//! neighbour advertisement).
//!
//! Parsing never panics: every read is bounds-checked, and a frame too short
//! for a header simply yields fewer fields (a hash policy then falls back the
//! way the kernel's does). Multi-byte fields on the wire are big-endian
//! (network order); the comments say where a value is kept in wire order.

use std::net::{Ipv4Addr, Ipv6Addr};

pub use crate::options::MacAddr;

/// EtherType of IPv4.
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of ARP.
pub const ETH_P_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// EtherType of an IEEE 802.1Q VLAN tag.
pub const ETH_P_8021Q: u16 = 0x8100;
/// EtherType of an IEEE 802.1ad service VLAN tag.
pub const ETH_P_8021AD: u16 = 0x88a8;
/// EtherType of the IEEE slow protocols (LACP, Marker).
pub const ETH_P_SLOW: u16 = 0x8809;
/// Length of an Ethernet header without VLAN tags.
pub const ETH_HLEN: usize = 14;
/// Minimum Ethernet frame length without FCS (`ETH_ZLEN`): the frames the
/// bond builds are padded with zeros to it.
pub const ETH_ZLEN: usize = 60;

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_UDPLITE: u8 = 136;

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

#[inline]
fn array<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at + N)?.try_into().ok()
}

/// Layer-2 view of a frame: addresses, the EtherType after any VLAN tags, the
/// first VLAN id, and where the network header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthInfo {
    /// Destination MAC.
    pub dst: [u8; 6],
    /// Source MAC.
    pub src: [u8; 6],
    /// EtherType after up to two VLAN tags (what a NIC with VLAN offload reports).
    pub ethertype: u16,
    /// VLAN id of the outer tag, 0 if untagged.
    pub vlan: u16,
    /// Offset of the network header.
    pub l3_offset: usize,
}

impl EthInfo {
    /// Parses the Ethernet header and up to two VLAN tags; `None` if the frame
    /// is shorter than an Ethernet header (or a tag it announces).
    #[inline]
    pub fn parse(frame: &[u8]) -> Option<EthInfo> {
        let dst = array::<6>(frame, 0)?;
        let src = array::<6>(frame, 6)?;
        let mut ethertype = be16(frame, 12)?;
        let mut off = ETH_HLEN;
        let mut vlan = 0;
        for depth in 0..2 {
            if ethertype != ETH_P_8021Q && ethertype != ETH_P_8021AD {
                break;
            }
            let tci = be16(frame, off)?;
            if depth == 0 {
                vlan = tci & 0x0fff;
            }
            ethertype = be16(frame, off + 2)?;
            off += 4;
        }
        Some(EthInfo {
            dst,
            src,
            ethertype,
            vlan,
            l3_offset: off,
        })
    }
}

/// Network addresses of a flow, in wire order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addrs {
    /// IPv4 source and destination.
    V4 {
        /// Source address bytes.
        src: [u8; 4],
        /// Destination address bytes.
        dst: [u8; 4],
    },
    /// IPv6 source and destination.
    V6 {
        /// Source address bytes.
        src: [u8; 16],
        /// Destination address bytes.
        dst: [u8; 16],
    },
}

/// Layer-3/4 fields of a flow as the kernel's flow dissector sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowInfo {
    /// Addresses of the (outer, or with `decap` innermost) IP header.
    pub addrs: Addrs,
    /// Source and destination port bytes in wire order (TCP, UDP, SCTP,
    /// UDP-Lite, first fragment only), or zero.
    pub ports: [u8; 4],
    /// ICMP echo type, code and identifier in wire order, or zero when the
    /// message carries no identifier.
    pub icmp: [u8; 4],
}

/// Parses the IP header at `eth.l3_offset` and the L4 ports. With `decap`,
/// follows IP-in-IP, IPv6-in-IP and GRE (IPv4/IPv6 payloads) to the innermost
/// header, as the kernel's encap2+3 / encap3+4 policies do. `None` for non-IP
/// frames and truncated headers.
#[inline]
pub fn parse_flow(frame: &[u8], eth: &EthInfo, decap: bool) -> Option<FlowInfo> {
    let mut ethertype = eth.ethertype;
    let mut off = eth.l3_offset;
    // Bounded: at most 4 nested tunnel headers are followed.
    for _ in 0..4 {
        let (addrs, proto, l4, fragmented) = match ethertype {
            ETH_P_IP => parse_ipv4(frame, off)?,
            ETH_P_IPV6 => parse_ipv6(frame, off)?,
            _ => return None,
        };
        if decap && !fragmented {
            match proto {
                IPPROTO_IPIP => {
                    ethertype = ETH_P_IP;
                    off = l4;
                    continue;
                }
                IPPROTO_IPV6 => {
                    ethertype = ETH_P_IPV6;
                    off = l4;
                    continue;
                }
                IPPROTO_GRE => {
                    if let Some((inner, inner_off)) = parse_gre(frame, l4) {
                        ethertype = inner;
                        off = inner_off;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let mut info = FlowInfo {
            addrs,
            ports: [0; 4],
            icmp: [0; 4],
        };
        if !fragmented {
            match proto {
                IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_UDPLITE => {
                    info.ports = array::<4>(frame, l4).unwrap_or([0; 4]);
                }
                IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                    if let Some(h) = array::<6>(frame, l4) {
                        let echo = matches!(
                            (proto, h[0]),
                            (IPPROTO_ICMP, 0 | 8) | (IPPROTO_ICMPV6, 128 | 129)
                        );
                        if echo {
                            info.icmp = [h[0], h[1], h[4], h[5]];
                        }
                    }
                }
                _ => {}
            }
        }
        return Some(info);
    }
    None
}

/// Returns (addrs, protocol, L4 offset, fragmented-not-first-or-more).
#[inline]
fn parse_ipv4(frame: &[u8], off: usize) -> Option<(Addrs, u8, usize, bool)> {
    let vihl = *frame.get(off)?;
    if vihl >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(vihl & 0x0f) * 4;
    if ihl < 20 {
        return None;
    }
    let frag = be16(frame, off + 6)?;
    let proto = *frame.get(off + 9)?;
    let src = array::<4>(frame, off + 12)?;
    let dst = array::<4>(frame, off + 16)?;
    // More-fragments flag or a non-zero offset: no L4 header to trust.
    let fragmented = frag & 0x3fff != 0;
    Some((Addrs::V4 { src, dst }, proto, off + ihl, fragmented))
}

#[inline]
fn parse_ipv6(frame: &[u8], off: usize) -> Option<(Addrs, u8, usize, bool)> {
    if *frame.get(off)? >> 4 != 6 {
        return None;
    }
    let mut next = *frame.get(off + 6)?;
    let src = array::<16>(frame, off + 8)?;
    let dst = array::<16>(frame, off + 24)?;
    let mut l4 = off + 40;
    let mut fragmented = false;
    // Skip up to 8 extension headers.
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let nh = *frame.get(l4)?;
                let len = (usize::from(*frame.get(l4 + 1)?) + 1) * 8;
                next = nh;
                l4 += len;
            }
            44 => {
                let nh = *frame.get(l4)?;
                let frag = be16(frame, l4 + 2)?;
                fragmented = frag & 0xfff9 != 0;
                next = nh;
                l4 += 8;
            }
            _ => break,
        }
    }
    Some((Addrs::V6 { src, dst }, next, l4, fragmented))
}

/// GRE (RFC 2784/2890) carrying IPv4 or IPv6: returns the inner EtherType and
/// offset.
#[inline]
fn parse_gre(frame: &[u8], off: usize) -> Option<(u16, usize)> {
    let flags = be16(frame, off)?;
    if flags & 0x0007 != 0 {
        return None; // only version 0
    }
    let proto = be16(frame, off + 2)?;
    let mut len = 4;
    if flags & 0x8000 != 0 {
        len += 4; // checksum + reserved
    }
    if flags & 0x2000 != 0 {
        len += 4; // key
    }
    if flags & 0x1000 != 0 {
        len += 4; // sequence
    }
    match proto {
        ETH_P_IP | ETH_P_IPV6 => Some((proto, off + len)),
        _ => None,
    }
}

/// A gratuitous ARP announcing `ip` at `mac`: an ARP request (as the kernel
/// bond sends) with sender and target address both `ip`, to broadcast. With
/// `vlan` non-zero, the frame carries an 802.1Q tag.
pub fn gratuitous_arp(mac: MacAddr, ip: Ipv4Addr, vlan: u16) -> Vec<u8> {
    arp_frame(
        ARPOP_REQUEST,
        MacAddr::BROADCAST,
        mac,
        ip,
        MacAddr::default(),
        ip,
        vlan,
    )
}

/// Appends an Ethernet header: `dst`, `src`, an IEEE 802.1Q tag when `vlan`
/// is non-zero (priority 0, the low 12 bits of `vlan` as the VLAN id), then
/// `ethertype`. Every frame the bond builds starts here; [`EthInfo::parse`]
/// reads the header back.
pub fn push_eth_header(f: &mut Vec<u8>, dst: MacAddr, src: MacAddr, vlan: u16, ethertype: u16) {
    f.extend_from_slice(&dst.0);
    f.extend_from_slice(&src.0);
    if vlan != 0 {
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&(vlan & 0x0fff).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
}

/// An unsolicited neighbour advertisement (RFC 4861 7.2.6) for `ip` at `mac`,
/// to the all-nodes group, with the override flag and a target link-layer
/// address option.
pub fn unsolicited_na(mac: MacAddr, ip: Ipv6Addr, vlan: u16) -> Vec<u8> {
    let all_nodes = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[136, 0, 0, 0]); // type NA, code, checksum (later)
    icmp.extend_from_slice(&[0x20, 0, 0, 0]); // Override flag
    icmp.extend_from_slice(&ip.octets());
    icmp.extend_from_slice(&[2, 1]); // option: target link-layer address, 8 bytes
    icmp.extend_from_slice(&mac.0);
    let csum = icmpv6_checksum(&ip, &all_nodes, &icmp);
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());

    let mut f = Vec::with_capacity(90);
    push_eth_header(
        &mut f,
        MacAddr([0x33, 0x33, 0, 0, 0, 1]),
        mac,
        vlan,
        ETH_P_IPV6,
    );
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(IPPROTO_ICMPV6);
    f.push(255); // hop limit 255, required for ND
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&all_nodes.octets());
    f.extend_from_slice(&icmp);
    f
}

/// ARP operation: request.
pub const ARPOP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub const ARPOP_REPLY: u16 = 2;
/// Length of an Ethernet/IPv4 ARP header (RFC 826), from the hardware type
/// to the target protocol address.
pub const ARP_LEN: usize = 28;
/// The start of an Ethernet/IPv4 ARP header: hardware type 1 (Ethernet),
/// protocol type 0x0800 (IPv4), hardware address length 6, protocol address
/// length 4.
const ARP_ETH_IPV4: [u8; 6] = [0, 1, 8, 0, 6, 4];

/// An Ethernet/IPv4 ARP frame (RFC 826): the Ethernet addresses, the VLAN
/// id, and the fields of the ARP header. The one ARP codec of the crate: the
/// link monitor's probes, the gratuitous ARPs and the receive balancer's
/// updates are all written by [`ArpInfo::emit`] and read by
/// [`ArpInfo::parse`].
///
/// `parse` accepts any bytes without panicking. `emit` is its exact inverse:
/// `ArpInfo::parse(&a.emit()) == Some(a)` for every `a` whose `vlan` fits in
/// 12 bits, and `emit` gives back, byte for byte, any frame it wrote. (A
/// frame `emit` cannot write, with two tags, a priority or a longer padding,
/// parses to the fields it carries.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpInfo {
    /// Ethernet destination.
    pub eth_dst: MacAddr,
    /// Ethernet source.
    pub eth_src: MacAddr,
    /// VLAN id of the outer tag, 0 if untagged.
    pub vlan: u16,
    /// Operation: [`ARPOP_REQUEST`], [`ARPOP_REPLY`] or any other value.
    pub op: u16,
    /// Sender hardware address.
    pub sha: MacAddr,
    /// Sender protocol address.
    pub spa: Ipv4Addr,
    /// Target hardware address.
    pub tha: MacAddr,
    /// Target protocol address.
    pub tpa: Ipv4Addr,
}

/// Where the ARP header of an Ethernet/IPv4 ARP frame starts (after up to
/// two VLAN tags); `None` for any other frame, and for a frame too short for
/// the whole header.
fn arp_offset(frame: &[u8]) -> Option<usize> {
    let eth = EthInfo::parse(frame)?;
    let o = eth.l3_offset;
    if eth.ethertype != ETH_P_ARP || frame.get(o..o + ARP_LEN)?.get(..6)? != ARP_ETH_IPV4 {
        return None;
    }
    Some(o)
}

impl ArpInfo {
    /// Parses an Ethernet/IPv4 ARP frame of any operation, after up to two
    /// VLAN tags. `None` for anything else: another EtherType, another
    /// hardware or protocol type, or a frame shorter than its ARP header.
    pub fn parse(frame: &[u8]) -> Option<ArpInfo> {
        let o = arp_offset(frame)?;
        Some(ArpInfo {
            eth_dst: MacAddr(array::<6>(frame, 0)?),
            eth_src: MacAddr(array::<6>(frame, 6)?),
            vlan: EthInfo::parse(frame)?.vlan,
            op: be16(frame, o + 6)?,
            sha: MacAddr(array::<6>(frame, o + 8)?),
            spa: Ipv4Addr::from(array::<4>(frame, o + 14)?),
            tha: MacAddr(array::<6>(frame, o + 18)?),
            tpa: Ipv4Addr::from(array::<4>(frame, o + 24)?),
        })
    }

    /// The frame: the Ethernet header of [`push_eth_header`] (one 802.1Q tag
    /// when `vlan` is non-zero), the ARP header, and zero padding to
    /// [`ETH_ZLEN`]: 60 bytes, the tag counted in them.
    pub fn emit(&self) -> Vec<u8> {
        let mut f = Vec::with_capacity(ETH_ZLEN + 4);
        push_eth_header(&mut f, self.eth_dst, self.eth_src, self.vlan, ETH_P_ARP);
        f.extend_from_slice(&ARP_ETH_IPV4);
        f.extend_from_slice(&self.op.to_be_bytes());
        f.extend_from_slice(&self.sha.0);
        f.extend_from_slice(&self.spa.octets());
        f.extend_from_slice(&self.tha.0);
        f.extend_from_slice(&self.tpa.octets());
        f.resize(f.len().max(ETH_ZLEN), 0);
        f
    }
}

/// Parses an Ethernet/IPv4 ARP frame (after up to two VLAN tags): the same
/// as [`ArpInfo::parse`].
pub fn parse_arp(frame: &[u8]) -> Option<ArpInfo> {
    ArpInfo::parse(frame)
}

/// Rewrites, in place, the Ethernet source and the ARP sender hardware
/// address of an Ethernet/IPv4 ARP frame to `mac`; every other byte (tags and
/// their priority, padding) stays. `None`, with the frame untouched, when
/// [`ArpInfo::parse`] would not read the frame.
pub fn set_arp_sender_mac(frame: &mut [u8], mac: MacAddr) -> Option<()> {
    let o = arp_offset(frame)?;
    frame.get_mut(o + 8..o + 14)?.copy_from_slice(&mac.0);
    frame.get_mut(6..12)?.copy_from_slice(&mac.0);
    Some(())
}

/// An ARP request for `target` from `src_ip` at `mac`, to broadcast: the
/// ARP monitor's probe (`bond_arp_send`).
pub fn arp_request(mac: MacAddr, src_ip: Ipv4Addr, target: Ipv4Addr, vlan: u16) -> Vec<u8> {
    arp_frame(
        ARPOP_REQUEST,
        MacAddr::BROADCAST,
        mac,
        src_ip,
        MacAddr::default(),
        target,
        vlan,
    )
}

/// An Ethernet/IPv4 ARP frame to `dst` whose Ethernet source is the sender
/// hardware address `sha` ([`ArpInfo::emit`]).
pub fn arp_frame(
    op: u16,
    dst: MacAddr,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
    vlan: u16,
) -> Vec<u8> {
    ArpInfo {
        eth_dst: dst,
        eth_src: sha,
        vlan,
        op,
        sha,
        spa,
        tha,
        tpa,
    }
    .emit()
}

/// Which neighbour-discovery message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdKind {
    /// Neighbour Solicitation (ICMPv6 type 135).
    Solicitation,
    /// Neighbour Advertisement (ICMPv6 type 136).
    Advertisement,
}

/// The fields of a neighbour solicitation or advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdInfo {
    /// NS or NA.
    pub kind: NdKind,
    /// IPv6 source.
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// The target address of the message.
    pub target: Ipv6Addr,
}

/// Parses an IPv6 neighbour solicitation or advertisement (no extension
/// headers, as RFC 4861 messages carry none; hop limit 255).
pub fn parse_nd(frame: &[u8]) -> Option<NdInfo> {
    let eth = EthInfo::parse(frame)?;
    if eth.ethertype != ETH_P_IPV6 {
        return None;
    }
    let o = eth.l3_offset;
    if *frame.get(o)? >> 4 != 6 || *frame.get(o + 6)? != IPPROTO_ICMPV6 || *frame.get(o + 7)? != 255
    {
        return None;
    }
    let kind = match *frame.get(o + 40)? {
        135 => NdKind::Solicitation,
        136 => NdKind::Advertisement,
        _ => return None,
    };
    Some(NdInfo {
        kind,
        src: Ipv6Addr::from(array::<16>(frame, o + 8)?),
        dst: Ipv6Addr::from(array::<16>(frame, o + 24)?),
        target: Ipv6Addr::from(array::<16>(frame, o + 48)?),
    })
}

/// A neighbour solicitation for `target` from `src_ip` at `mac`, to the
/// target's solicited-node multicast group: the NS monitor's probe
/// (`bond_ns_send`), with a source link-layer address option.
pub fn neighbour_solicitation(
    mac: MacAddr,
    src_ip: Ipv6Addr,
    target: Ipv6Addr,
    vlan: u16,
) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut icmp = Vec::with_capacity(32);
    icmp.extend_from_slice(&[135, 0, 0, 0, 0, 0, 0, 0]);
    icmp.extend_from_slice(&t);
    icmp.extend_from_slice(&[1, 1]); // source link-layer address, 8 bytes
    icmp.extend_from_slice(&mac.0);
    let csum = icmpv6_checksum(&src_ip, &group, &icmp);
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());
    let g = group.octets();
    let mut f = Vec::with_capacity(90);
    push_eth_header(
        &mut f,
        MacAddr([0x33, 0x33, g[12], g[13], g[14], g[15]]),
        mac,
        vlan,
        ETH_P_IPV6,
    );
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(IPPROTO_ICMPV6);
    f.push(255);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&g);
    f.extend_from_slice(&icmp);
    f
}

/// True for frames the link monitors and ALB look at: ARP, and IPv6
/// neighbour solicitations and advertisements. Cheap enough for the data path.
#[inline]
pub fn is_arp_or_nd(frame: &[u8]) -> bool {
    let Some(eth) = EthInfo::parse(frame) else {
        return false;
    };
    match eth.ethertype {
        ETH_P_ARP => true,
        ETH_P_IPV6 => {
            let o = eth.l3_offset;
            frame.get(o + 6) == Some(&IPPROTO_ICMPV6)
                && matches!(frame.get(o + 40), Some(135 | 136))
        }
        _ => false,
    }
}

/// The Internet checksum (RFC 1071) over `parts` taken as one byte string
/// (each part of even length except possibly the last).
pub fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for bytes in parts {
        for c in bytes.chunks(2) {
            let w = if c.len() == 2 {
                u16::from_be_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], 0])
            };
            sum += u32::from(w);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, body: &[u8]) -> u16 {
    inet_checksum(&[
        &src.octets(),
        &dst.octets(),
        &(body.len() as u32).to_be_bytes(),
        &[0, 0, 0, IPPROTO_ICMPV6],
        body,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    #[test]
    fn parses_vlan_tagged_ipv4_udp() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(42.try_into().unwrap())
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1000, 2000);
        let mut f = Vec::new();
        b.write(&mut f, &[1, 2, 3]).unwrap();
        let eth = EthInfo::parse(&f).unwrap();
        assert_eq!((eth.vlan, eth.ethertype, eth.l3_offset), (42, ETH_P_IP, 18));
        let flow = parse_flow(&f, &eth, false).unwrap();
        assert_eq!(
            flow.addrs,
            Addrs::V4 {
                src: [10, 0, 0, 1],
                dst: [10, 0, 0, 2]
            }
        );
        assert_eq!(flow.ports, [0x03, 0xe8, 0x07, 0xd0]);
    }

    #[test]
    fn truncated_frames_never_panic() {
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6([1; 16], [2; 16], 64)
            .tcp(1, 2, 3, 4);
        let mut f = Vec::new();
        b.write(&mut f, &[]).unwrap();
        for n in 0..f.len() {
            if let Some(eth) = EthInfo::parse(&f[..n]) {
                let _ = parse_flow(&f[..n], &eth, true);
            }
        }
        let eth = EthInfo::parse(&f).unwrap();
        assert!(parse_flow(&f, &eth, false).is_some());
    }

    #[test]
    fn gratuitous_arp_dissects_as_arp_request_for_itself() {
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        let f = gratuitous_arp(mac, Ipv4Addr::new(10, 1, 2, 3), 0);
        let eth = etherparse::Ethernet2Header::from_slice(&f).unwrap().0;
        assert_eq!(eth.ether_type, etherparse::EtherType::ARP);
        assert_eq!(eth.source, mac.0);
        assert_eq!(&f[28..32], &[10, 1, 2, 3]);
        assert_eq!(&f[38..42], &[10, 1, 2, 3]);
    }

    /// An ARP reply from 02:00:00:00:00:10 / 10.0.0.1 to 0a:00:00:00:01:07 /
    /// 10.0.0.7 on VLAN 42, as bytes on the wire.
    #[rustfmt::skip]
    const TAGGED_REPLY: [u8; 60] = [
        0x0a, 0, 0, 0, 1, 7,  2, 0, 0, 0, 0, 0x10,  0x81, 0x00, 0x00, 42,  0x08, 0x06,
        0, 1, 8, 0, 6, 4,  0, 2,
        2, 0, 0, 0, 0, 0x10,  10, 0, 0, 1,
        0x0a, 0, 0, 0, 1, 7,  10, 0, 0, 7,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn arp_round_trips_through_parse_and_emit() {
        let a = ArpInfo::parse(&TAGGED_REPLY).unwrap();
        assert_eq!(
            a,
            ArpInfo {
                eth_dst: MacAddr([0x0a, 0, 0, 0, 1, 7]),
                eth_src: MacAddr([2, 0, 0, 0, 0, 0x10]),
                vlan: 42,
                op: ARPOP_REPLY,
                sha: MacAddr([2, 0, 0, 0, 0, 0x10]),
                spa: Ipv4Addr::new(10, 0, 0, 1),
                tha: MacAddr([0x0a, 0, 0, 0, 1, 7]),
                tpa: Ipv4Addr::new(10, 0, 0, 7),
            }
        );
        assert_eq!(a.emit(), TAGGED_REPLY, "emit is the inverse of parse");

        let macs = [
            MacAddr::default(),
            MacAddr::BROADCAST,
            MacAddr([2, 3, 4, 5, 6, 7]),
        ];
        for vlan in [0, 1, 42, 4095] {
            for op in [ARPOP_REQUEST, ARPOP_REPLY, 0, 0xffff] {
                for (i, &m) in macs.iter().enumerate() {
                    let n = macs[(i + 1) % macs.len()];
                    let a = ArpInfo {
                        eth_dst: m,
                        eth_src: n,
                        vlan,
                        op,
                        sha: n,
                        spa: Ipv4Addr::new(192, 0, 2, i as u8),
                        tha: m,
                        tpa: Ipv4Addr::new(198, 51, 100, op as u8),
                    };
                    let f = a.emit();
                    assert_eq!(f.len(), ETH_ZLEN, "tagged or not");
                    assert_eq!(ArpInfo::parse(&f), Some(a));
                    assert_eq!(ArpInfo::parse(&f).map(|a| a.emit()), Some(f));
                }
            }
        }
    }

    #[test]
    fn arp_parse_refuses_short_and_foreign_frames() {
        // The header ends at byte 46 of the tagged frame; the padding is not read.
        for n in 0..46 {
            assert_eq!(ArpInfo::parse(&TAGGED_REPLY[..n]), None, "{n} bytes");
        }
        assert!(ArpInfo::parse(&TAGGED_REPLY[..46]).is_some());
        for (at, value) in [(16, 0x86), (19, 2), (20, 0x86), (22, 8), (23, 16)] {
            let mut f = TAGGED_REPLY;
            f[at] = value;
            assert_eq!(ArpInfo::parse(&f), None, "byte {at} = {value:#x}");
        }
    }

    #[test]
    fn arp_sender_rewrite_changes_only_the_sender_mac() {
        let mac = MacAddr([2, 0, 0, 0, 0, 0x11]);
        // A priority in the tag, and a second tag: both stay.
        let mut f = TAGGED_REPLY.to_vec();
        f[14] = 0xa0;
        f.splice(16..16, [0x81, 0x00, 0x00, 7]);
        let before = ArpInfo::parse(&f).unwrap();
        let orig = f.clone();
        assert_eq!(set_arp_sender_mac(&mut f, mac), Some(()));
        let after = ArpInfo::parse(&f).unwrap();
        assert_eq!(
            after,
            ArpInfo {
                eth_src: mac,
                sha: mac,
                ..before
            }
        );
        let changed: Vec<usize> = (0..f.len()).filter(|&i| f[i] != orig[i]).collect();
        // The ARP header starts after two tags, at 22; the sender MAC at 30.
        assert_eq!(changed, vec![11, 35], "only the last byte of each MAC");
        let mut short = TAGGED_REPLY[..45].to_vec();
        assert_eq!(set_arp_sender_mac(&mut short, mac), None);
        assert_eq!(short, &TAGGED_REPLY[..45]);
    }

    #[test]
    fn eth_header_parses_back() {
        let (dst, src) = (MacAddr::BROADCAST, MacAddr([2, 0, 0, 0, 0, 1]));
        for (vlan, len) in [(0, ETH_HLEN), (100, ETH_HLEN + 4), (0x1064, ETH_HLEN + 4)] {
            let mut f = Vec::new();
            push_eth_header(&mut f, dst, src, vlan, ETH_P_IPV6);
            assert_eq!(
                EthInfo::parse(&f),
                Some(EthInfo {
                    dst: dst.0,
                    src: src.0,
                    ethertype: ETH_P_IPV6,
                    vlan: vlan & 0x0fff,
                    l3_offset: len,
                })
            );
        }
    }

    #[test]
    fn arp_probe_parses_back() {
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        let f = arp_request(
            mac,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 254),
            0,
        );
        let a = parse_arp(&f).unwrap();
        assert_eq!(
            (a.op, a.sha, a.spa, a.tpa),
            (
                ARPOP_REQUEST,
                mac,
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 0, 254)
            )
        );
        assert!(is_arp_or_nd(&f));
        let tagged = arp_request(
            mac,
            Ipv4Addr::new(10, 0, 0, 1),
            Ipv4Addr::new(10, 0, 0, 254),
            5,
        );
        assert_eq!(
            parse_arp(&tagged).map(|a| a.tpa),
            Some(Ipv4Addr::new(10, 0, 0, 254))
        );
        for n in 0..f.len() {
            let _ = parse_arp(&f[..n]);
        }
        assert_eq!(parse_arp(&f[..41]), None);
    }

    #[test]
    fn ns_probe_parses_back_with_a_valid_checksum() {
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        let src: Ipv6Addr = "fd00::1".parse().unwrap();
        let target: Ipv6Addr = "fd00::1:2:abcd".parse().unwrap();
        let f = neighbour_solicitation(mac, src, target, 0);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0xff, 0x02, 0xab, 0xcd]);
        let nd = parse_nd(&f).unwrap();
        assert_eq!(
            (nd.kind, nd.src, nd.target),
            (NdKind::Solicitation, src, target)
        );
        assert_eq!(icmpv6_checksum(&src, &nd.dst, &f[54..]), 0);
        assert!(is_arp_or_nd(&f));
        let na = unsolicited_na(mac, target, 0);
        assert_eq!(
            parse_nd(&na).map(|n| (n.kind, n.target)),
            Some((NdKind::Advertisement, target))
        );
        for n in 0..f.len() {
            let _ = parse_nd(&f[..n]);
            let _ = is_arp_or_nd(&f[..n]);
        }
    }

    #[test]
    fn unsolicited_na_has_a_valid_checksum() {
        let mac: MacAddr = "02:00:00:00:00:07".parse().unwrap();
        let ip: Ipv6Addr = "fd00::7".parse().unwrap();
        let f = unsolicited_na(mac, ip, 0);
        let p = SlicedPacket::from_ethernet(&f).unwrap();
        let Some(TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("not icmpv6")
        };
        assert_eq!(icmp.type_u8(), 136);
        // Recomputing over the whole message, checksum included, gives 0.
        let body = &f[54..];
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        assert_eq!(icmpv6_checksum(&ip, &dst, body), 0);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
    }
}
