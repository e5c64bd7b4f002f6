//! ARP and IPv6 neighbour-discovery parsing, and the round trips: a parsed
//! ARP frame emitted again parses to the same fields; a neighbour
//! solicitation or unsolicited advertisement built from the input's
//! addresses (and VLAN) parses back to them.
#![no_main]

use std::net::Ipv6Addr;

use libfuzzer_sys::fuzz_target;
use xbond_core::options::MacAddr;
use xbond_core::wire::{neighbour_solicitation, parse_arp, parse_nd, unsolicited_na, NdKind};

fuzz_target!(|data: &[u8]| {
    if let Some(a) = parse_arp(data) {
        assert_eq!(parse_arp(&a.emit()), Some(a), "emit then parse is the identity");
    }
    let _ = parse_nd(data);
    if data.len() >= 40 {
        let mac = MacAddr(data[0..6].try_into().unwrap_or_default());
        let vlan = u16::from_be_bytes([data[6], data[7]]) & 0x0fff;
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&data[8..24]).unwrap_or_default());
        let target = Ipv6Addr::from(<[u8; 16]>::try_from(&data[24..40]).unwrap_or_default());
        let ns = parse_nd(&neighbour_solicitation(mac, src, target, vlan)).expect("our NS parses");
        assert_eq!((ns.kind, ns.src, ns.target), (NdKind::Solicitation, src, target));
        let na = parse_nd(&unsolicited_na(mac, target, vlan)).expect("our NA parses");
        assert_eq!((na.kind, na.src, na.target), (NdKind::Advertisement, target, target));
    }
});
