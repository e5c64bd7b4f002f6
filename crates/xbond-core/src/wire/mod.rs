//! Frame headers: the Ethernet header ([`EthInfo`], and [`push_eth_header`],
//! the one writer of it and of its 802.1Q tag), the flow fields the hash
//! policies read ([`parse_flow`]), the Internet checksum, and, in
//! submodules re-exported here, the one ARP codec ([`ArpInfo`], with the
//! gratuitous ARP and the ARP probe) and IPv6 neighbour discovery
//! ([`parse_nd`], the NS probe, the unsolicited neighbour advertisement).
//!
//! Parsing never panics: every read is bounds-checked, and a frame too short
//! for a header simply yields fewer fields (a hash policy then falls back the
//! way the kernel's does). Multi-byte fields on the wire are big-endian
//! (network order); the comments say where a value is kept in wire order.

mod arp;
mod igmp;
mod nd;

pub use crate::options::MacAddr;
pub use arp::{
    arp_frame, arp_request, gratuitous_arp, parse_arp, set_arp_sender_mac, ArpInfo, ARPOP_REPLY,
    ARPOP_REQUEST, ARP_LEN,
};
pub use igmp::{igmp_reports, mld_reports, GROUPS_PER_REPORT};
pub use nd::{neighbour_solicitation, parse_nd, unsolicited_na, NdInfo, NdKind};

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
/// Length of one VLAN tag.
pub const VLAN_HLEN: usize = 4;
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
    /// ICMP type, code and identifier of a message that has one (echo and
    /// timestamp, request and reply) as the kernel's flow dissector keeps
    /// them (`skb_flow_get_icmp_tci()`): the identifier converted to host
    /// order, read here as little-endian, and an identifier of 0 taken as 1.
    /// Zero for every other message.
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
                        // The kernel's icmp_has_id(): the same types for
                        // ICMP and ICMPv6.
                        if matches!(h[0], 0 | 8 | 13 | 14 | 128 | 129) {
                            let id = u16::from_be_bytes([h[4], h[5]]).max(1).to_le_bytes();
                            info.icmp = [h[0], h[1], id[0], id[1]];
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

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

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
}
