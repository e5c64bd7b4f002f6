//! Multicast membership reports, sent again after a failover (`resend_igmp`)
//! so that snooping switches move the groups joined behind the bond to the
//! new path: an IGMPv3 report (RFC 3376) for IPv4 groups and an MLDv2 report
//! (RFC 3810) for IPv6 groups, each group as a "current state" record of
//! mode EXCLUDE with no source (joined for every source), as the kernel's
//! `ip_mc_rejoin_groups` and `ipv6_mc_rejoin_groups` report them.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::nd::icmpv6_checksum;
use super::{inet_checksum, push_eth_header, MacAddr, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMPV6};

/// Group records per report: a report stays well inside a 1500-byte MTU.
pub const GROUPS_PER_REPORT: usize = 64;

/// Record type MODE_IS_EXCLUDE.
const MODE_IS_EXCLUDE: u8 = 2;

/// A report of type `kind` (IGMPv3 0x22, MLDv2 143; checksum zero): the
/// record count, then one MODE_IS_EXCLUDE record with no source per group.
fn report<const N: usize>(kind: u8, groups: impl ExactSizeIterator<Item = [u8; N]>) -> Vec<u8> {
    let mut r = vec![kind, 0, 0, 0, 0, 0];
    r.extend_from_slice(&(groups.len() as u16).to_be_bytes());
    for g in groups {
        r.extend_from_slice(&[MODE_IS_EXCLUDE, 0, 0, 0]);
        r.extend_from_slice(&g);
    }
    r
}

/// IGMPv3 membership reports for `groups` from `src` at `mac`, to
/// 224.0.0.22, with the Router Alert option and TTL 1; one report per
/// [`GROUPS_PER_REPORT`] groups.
pub fn igmp_reports(mac: MacAddr, src: Ipv4Addr, groups: &[Ipv4Addr], vlan: u16) -> Vec<Vec<u8>> {
    let dst = Ipv4Addr::new(224, 0, 0, 22);
    groups
        .chunks(GROUPS_PER_REPORT)
        .map(|chunk| {
            let mut igmp = report(0x22, chunk.iter().map(|g| g.octets()));
            let csum = inet_checksum(&[&igmp]);
            igmp[2..4].copy_from_slice(&csum.to_be_bytes());
            let total = (24 + igmp.len()) as u16;
            let mut ip = vec![0x46, 0xc0];
            ip.extend_from_slice(&total.to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 1, 2, 0, 0]);
            ip.extend_from_slice(&src.octets());
            ip.extend_from_slice(&dst.octets());
            ip.extend_from_slice(&[0x94, 0x04, 0, 0]); // Router Alert
            let csum = inet_checksum(&[&ip]);
            ip[10..12].copy_from_slice(&csum.to_be_bytes());
            let mut f = Vec::with_capacity(18 + ip.len() + igmp.len());
            push_eth_header(
                &mut f,
                MacAddr([0x01, 0x00, 0x5e, 0, 0, 0x16]),
                mac,
                vlan,
                ETH_P_IP,
            );
            f.extend_from_slice(&ip);
            f.extend_from_slice(&igmp);
            f
        })
        .collect()
}

/// MLDv2 listener reports for `groups` from `src` (a link-local address,
/// or `::`) at `mac`, to ff02::16, with a hop-by-hop Router Alert and hop
/// limit 1; one report per [`GROUPS_PER_REPORT`] groups.
pub fn mld_reports(mac: MacAddr, src: Ipv6Addr, groups: &[Ipv6Addr], vlan: u16) -> Vec<Vec<u8>> {
    let dst = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x16);
    groups
        .chunks(GROUPS_PER_REPORT)
        .map(|chunk| {
            let mut icmp = report(143, chunk.iter().map(|g| g.octets()));
            let csum = icmpv6_checksum(&src, &dst, &icmp);
            icmp[2..4].copy_from_slice(&csum.to_be_bytes());
            let mut f = Vec::with_capacity(18 + 48 + icmp.len());
            push_eth_header(
                &mut f,
                MacAddr([0x33, 0x33, 0, 0, 0, 0x16]),
                mac,
                vlan,
                ETH_P_IPV6,
            );
            f.extend_from_slice(&[0x60, 0, 0, 0]);
            f.extend_from_slice(&((8 + icmp.len()) as u16).to_be_bytes());
            f.push(0); // hop-by-hop options
            f.push(1);
            f.extend_from_slice(&src.octets());
            f.extend_from_slice(&dst.octets());
            // Next header ICMPv6, 8 bytes; Router Alert (MLD); PadN.
            f.extend_from_slice(&[IPPROTO_ICMPV6, 0, 5, 2, 0, 0, 1, 0]);
            f.extend_from_slice(&icmp);
            f
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn igmp_report_is_valid_ipv4_with_one_record_per_group() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let groups: Vec<Ipv4Addr> = (0..70).map(|i| Ipv4Addr::new(239, 1, 0, i)).collect();
        let r = igmp_reports(mac, Ipv4Addr::new(10, 0, 0, 1), &groups, 0);
        assert_eq!(r.len(), 2, "70 groups: 64 + 6");
        let f = &r[1];
        assert_eq!(&f[0..6], &[1, 0, 0x5e, 0, 0, 0x16]);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        let ip = &f[14..38];
        assert_eq!(inet_checksum(&[ip]), 0, "IPv4 header checksum");
        assert_eq!((ip[8], ip[9]), (1, 2), "TTL 1, IGMP");
        assert_eq!(&ip[20..22], &[0x94, 0x04], "Router Alert");
        let igmp = &f[38..];
        assert_eq!(u16::from_be_bytes([ip[2], ip[3]]) as usize, 24 + igmp.len());
        assert_eq!(inet_checksum(&[igmp]), 0, "IGMP checksum");
        assert_eq!((igmp[0], u16::from_be_bytes([igmp[6], igmp[7]])), (0x22, 6));
        assert_eq!(&igmp[8..16], &[2, 0, 0, 0, 239, 1, 0, 64]);
    }

    #[test]
    fn mld_report_is_valid_ipv6_with_router_alert() {
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let g: Ipv6Addr = "ff05::1:3".parse().unwrap();
        let r = mld_reports(mac, src, &[g], 100);
        assert_eq!(r.len(), 1);
        let f = &r[0];
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 0x16]);
        assert_eq!(&f[12..16], &[0x81, 0x00, 0, 100], "tagged");
        let ip = &f[18..58];
        assert_eq!((ip[6], ip[7]), (0, 1), "hop-by-hop next, hop limit 1");
        let hbh = &f[58..66];
        assert_eq!(hbh, &[58, 0, 5, 2, 0, 0, 1, 0]);
        let icmp = &f[66..];
        assert_eq!(u16::from_be_bytes([ip[4], ip[5]]) as usize, 8 + icmp.len());
        let dst: Ipv6Addr = "ff02::16".parse().unwrap();
        assert_eq!(icmpv6_checksum(&src, &dst, icmp), 0, "ICMPv6 checksum");
        assert_eq!((icmp[0], icmp[7]), (143, 1));
        assert_eq!(&icmp[12..28], &g.octets());
        assert!(mld_reports(mac, src, &[], 0).is_empty());
    }
}
