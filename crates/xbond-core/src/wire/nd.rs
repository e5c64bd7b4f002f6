//! IPv6 neighbour discovery (RFC 4861): [`parse_nd`] reads a neighbour
//! solicitation or advertisement, and the bond builds the NS monitor's probe
//! ([`neighbour_solicitation`]) and the unsolicited neighbour advertisement
//! of a failover ([`unsolicited_na`]).

use std::net::Ipv6Addr;

use super::{array, inet_checksum, push_eth_header, EthInfo, MacAddr, ETH_P_IPV6, IPPROTO_ICMPV6};

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
    nd_frame(mac, vlan, ip, all_nodes, icmp)
}

/// An ND message `icmp` (checksum field zero) from `src` at `mac` to the
/// multicast group `dst`: the checksum filled in, the IPv6 header (hop limit
/// 255, as ND requires) and the Ethernet header to the group's MAC.
fn nd_frame(mac: MacAddr, vlan: u16, src: Ipv6Addr, dst: Ipv6Addr, mut icmp: Vec<u8>) -> Vec<u8> {
    let csum = icmpv6_checksum(&src, &dst, &icmp);
    icmp[2..4].copy_from_slice(&csum.to_be_bytes());
    let d = dst.octets();
    let mut f = Vec::with_capacity(90);
    push_eth_header(
        &mut f,
        MacAddr([0x33, 0x33, d[12], d[13], d[14], d[15]]),
        mac,
        vlan,
        ETH_P_IPV6,
    );
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    f.push(IPPROTO_ICMPV6);
    f.push(255);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&d);
    f.extend_from_slice(&icmp);
    f
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
    nd_frame(mac, vlan, src_ip, group, icmp)
}

pub(super) fn icmpv6_checksum(src: &Ipv6Addr, dst: &Ipv6Addr, body: &[u8]) -> u16 {
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
    use crate::wire::is_arp_or_nd;
    use etherparse::{SlicedPacket, TransportSlice};

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
