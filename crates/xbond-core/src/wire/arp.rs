//! The ARP codec (RFC 826, Ethernet/IPv4 only): [`ArpInfo`] parses a frame
//! and emits its exact inverse, and the ARP frames the bond builds on top of
//! it (the ARP monitor's probe, the gratuitous ARP).

use std::net::Ipv4Addr;

use super::{array, be16, push_eth_header, EthInfo, MacAddr, ETH_P_ARP, ETH_ZLEN};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::is_arp_or_nd;

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
}
