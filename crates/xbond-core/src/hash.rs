//! Transmit hash policies (`xmit_hash_policy`).
//!
//! Each policy reads its fields from the frame (see [`crate::wire`]) and folds
//! them with the configured [`HashFunction`]: XXH3, or the kernel bonding
//! driver's XOR fold (`bond_xmit_hash()` in drivers/net/bonding/bond_main.c),
//! which reproduces the kernel's choice of slave index for the same slave
//! count. VLAN tags are skipped and their id taken as a NIC with VLAN offload
//! would report it, which is what a kernel bond sees.
//!
//! Kernel fidelity note: the kernel reads addresses and ports as native-endian
//! `u32`s; this code uses little-endian, the byte order of x86-64 and arm64.

use twox_hash::XxHash3_64;

use crate::options::{HashFunction, HashPolicy};
use crate::wire::{parse_flow, Addrs, EthInfo};

/// Hashes one frame under `policy` with `function`. Frames too short for an
/// Ethernet header hash to 0; non-IP frames fall back to the layer2 fields, as
/// in the kernel.
#[inline]
pub fn frame_hash(frame: &[u8], policy: HashPolicy, function: HashFunction) -> u32 {
    let Some(eth) = EthInfo::parse(frame) else {
        return 0;
    };
    match function {
        HashFunction::Kernel => kernel_hash(frame, &eth, policy),
        HashFunction::Xxh3 => xxh3_hash(frame, &eth, policy),
    }
}

#[inline]
fn eth_fold(eth: &EthInfo) -> u32 {
    u32::from(eth.dst[5] ^ eth.src[5]) ^ u32::from(eth.ethertype)
}

#[inline]
fn vlan_srcmac(eth: &EthInfo) -> u32 {
    let s = eth.src;
    let vendor = u32::from_be_bytes([0, s[0], s[1], s[2]]);
    let dev = u32::from_be_bytes([0, s[3], s[4], s[5]]);
    u32::from(eth.vlan) ^ vendor ^ dev
}

#[inline]
fn fold_addr(a: &[u8; 16]) -> u32 {
    let w = |i: usize| u32::from_le_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]);
    w(0) ^ w(4) ^ w(8) ^ w(12)
}

fn kernel_hash(frame: &[u8], eth: &EthInfo, policy: HashPolicy) -> u32 {
    let (decap, l4) = match policy {
        HashPolicy::VlanSrcMac => return vlan_srcmac(eth),
        HashPolicy::Layer2 => return eth_fold(eth),
        HashPolicy::Layer23 => (false, false),
        HashPolicy::Layer34 => (false, true),
        HashPolicy::Encap23 => (true, false),
        HashPolicy::Encap34 => (true, true),
    };
    let Some(flow) = parse_flow(frame, eth, decap) else {
        return eth_fold(eth);
    };
    let mut hash = if !l4 {
        eth_fold(eth)
    } else if flow.icmp[2..] != [0, 0] {
        u32::from_le_bytes(flow.icmp)
    } else {
        u32::from_le_bytes(flow.ports)
    };
    let (src, dst) = match flow.addrs {
        Addrs::V4 { src, dst } => (u32::from_le_bytes(src), u32::from_le_bytes(dst)),
        Addrs::V6 { src, dst } => (fold_addr(&src), fold_addr(&dst)),
    };
    hash ^= dst ^ src;
    hash ^= hash >> 16;
    hash ^= hash >> 8;
    // The kernel drops the lowest bit for layer3+4 to break the common
    // even-ports pattern.
    if l4 {
        hash >> 1
    } else {
        hash
    }
}

fn xxh3_hash(frame: &[u8], eth: &EthInfo, policy: HashPolicy) -> u32 {
    // Fields are laid into a fixed buffer and hashed once; no allocation.
    let mut buf = [0u8; 48];
    let mut n = 0;
    let mut put = |b: &[u8]| {
        buf[n..n + b.len()].copy_from_slice(b);
        n += b.len();
    };
    let (decap, l2, l4) = match policy {
        HashPolicy::VlanSrcMac => {
            put(&eth.vlan.to_be_bytes());
            put(&eth.src);
            return fold64(XxHash3_64::oneshot(&buf[..8]));
        }
        HashPolicy::Layer2 => (false, true, false),
        HashPolicy::Layer23 => (false, true, false),
        HashPolicy::Layer34 => (false, false, true),
        HashPolicy::Encap23 => (true, true, false),
        HashPolicy::Encap34 => (true, false, true),
    };
    let flow = if policy == HashPolicy::Layer2 {
        None
    } else {
        parse_flow(frame, eth, decap)
    };
    match flow {
        None => {
            put(&eth.dst);
            put(&eth.src);
            put(&eth.ethertype.to_be_bytes());
        }
        Some(flow) => {
            if l2 {
                put(&eth.dst);
                put(&eth.src);
            }
            match flow.addrs {
                Addrs::V4 { src, dst } => {
                    put(&src);
                    put(&dst);
                }
                Addrs::V6 { src, dst } => {
                    put(&src);
                    put(&dst);
                }
            }
            if l4 {
                if flow.icmp[2..] != [0, 0] {
                    put(&flow.icmp);
                } else {
                    put(&flow.ports);
                }
            }
        }
    }
    fold64(XxHash3_64::oneshot(&buf[..n]))
}

#[inline]
fn fold64(h: u64) -> u32 {
    (h ^ (h >> 32)) as u32
}

/// Picks an index in `0..count` from a hash (`count` > 0), as the kernel does
/// (`hash % count`).
#[inline]
pub fn pick(hash: u32, count: usize) -> usize {
    let n = count.max(1);
    if n.is_power_of_two() {
        // Same result as `%`, without a division (2 and 4 slaves are common).
        hash as usize & (n - 1)
    } else {
        hash as usize % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

    fn udp4(sport: u16, dport: u16) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(sport, dport)
            .write(&mut f, &[0; 18])
            .unwrap();
        f
    }

    fn tcp6(sport: u16, dport: u16, vlan: Option<u16>) -> Vec<u8> {
        let mut f = Vec::new();
        let b = PacketBuilder::ethernet2(A, B);
        match vlan {
            Some(v) => b
                .single_vlan(v.try_into().unwrap())
                .ipv6([0xfd; 16], [0xfe; 16], 64)
                .tcp(sport, dport, 1, 100)
                .write(&mut f, &[])
                .unwrap(),
            None => b
                .ipv6([0xfd; 16], [0xfe; 16], 64)
                .tcp(sport, dport, 1, 100)
                .write(&mut f, &[])
                .unwrap(),
        }
        f
    }

    fn arp() -> Vec<u8> {
        crate::wire::gratuitous_arp(crate::options::MacAddr(A), [10, 0, 0, 1].into(), 0)
    }

    // Expected values worked by hand from bond_xmit_hash() of Linux 6.x.
    #[test]
    fn kernel_layer2_is_last_mac_bytes_xor_ethertype() {
        let h = frame_hash(&udp4(1, 2), HashPolicy::Layer2, HashFunction::Kernel);
        assert_eq!(h, (0x01 ^ 0x02) ^ 0x0800);
        assert_eq!(pick(h, 2), 1);
        let h = frame_hash(&arp(), HashPolicy::Layer2, HashFunction::Kernel);
        // GARP goes to broadcast: ff ^ 01 ^ 0x0806
        assert_eq!(h, (0xff ^ 0x01) ^ 0x0806);
    }

    #[test]
    fn kernel_layer23_folds_addresses() {
        let h = frame_hash(&udp4(1, 2), HashPolicy::Layer23, HashFunction::Kernel);
        // eth 0x0803; addrs 10.0.0.1 ^ 10.0.0.2 as LE u32 = 0x03000000
        let mut x: u32 = 0x0803 ^ 0x0300_0000;
        x ^= x >> 16;
        x ^= x >> 8;
        assert_eq!(h, x);
    }

    #[test]
    fn kernel_layer34_uses_ports_and_drops_low_bit() {
        let h = frame_hash(&udp4(1000, 2000), HashPolicy::Layer34, HashFunction::Kernel);
        let ports = u32::from_le_bytes([0x03, 0xe8, 0x07, 0xd0]);
        let mut x = ports ^ 0x0300_0000;
        x ^= x >> 16;
        x ^= x >> 8;
        assert_eq!(h, x >> 1);
    }

    #[test]
    fn ipv6_and_vlan_frames_hash_like_untagged() {
        for p in HashPolicy::ALL {
            for f in [HashFunction::Kernel, HashFunction::Xxh3] {
                let plain = frame_hash(&tcp6(5, 6, None), *p, f);
                let tagged = frame_hash(&tcp6(5, 6, Some(7)), *p, f);
                if *p == HashPolicy::VlanSrcMac {
                    assert_ne!(plain, tagged, "{p} {f}: vlan id must count");
                } else {
                    assert_eq!(plain, tagged, "{p} {f}: tag must be skipped");
                }
            }
        }
    }

    #[test]
    fn kernel_layer34_ipv6_picks_the_slave_the_kernel_picks() {
        // fd..fd and fe..fe fold to 0 (four equal words), so only the ports
        // count: [0,5,0,6] as LE u32 = 0x06000500 -> fold -> 0x06060303 >> 1.
        let h = frame_hash(&tcp6(5, 6, None), HashPolicy::Layer34, HashFunction::Kernel);
        assert_eq!(h, 0x0303_0181);
        assert_eq!(pick(h, 2), 1);
        assert_eq!(pick(h, 3), (0x0303_0181u32 % 3) as usize);
    }

    fn echo4(id: u16) -> Vec<u8> {
        let mut f = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(id, 9)
            .write(&mut f, &[0; 18])
            .unwrap();
        f
    }

    // Found by the VM hash oracle (tests/vm/hash-oracle.sh): the kernel keeps
    // the echo id in host order, so with 3 slaves a third of the echo flows
    // went elsewhere when it was taken in wire order.
    #[test]
    fn kernel_layer34_icmp_echo_takes_type_code_and_the_id_in_host_order() {
        let h = frame_hash(&echo4(0x0102), HashPolicy::Layer34, HashFunction::Kernel);
        let mut x = u32::from_le_bytes([8, 0, 0x02, 0x01]) ^ 0x0300_0000;
        x ^= x >> 16;
        x ^= x >> 8;
        assert_eq!(h, x >> 1);
        // An id of 0 counts as 1.
        assert_eq!(
            frame_hash(&echo4(0), HashPolicy::Layer34, HashFunction::Kernel),
            frame_hash(&echo4(1), HashPolicy::Layer34, HashFunction::Kernel)
        );
    }

    #[test]
    fn vlan_srcmac_is_vlan_xor_mac_halves() {
        let h = frame_hash(
            &tcp6(5, 6, Some(7)),
            HashPolicy::VlanSrcMac,
            HashFunction::Kernel,
        );
        assert_eq!(h, 7 ^ 0x0002_0000 ^ 0x0000_0001);
    }

    #[test]
    fn non_ip_frames_fall_back_to_layer2() {
        for f in [HashFunction::Kernel, HashFunction::Xxh3] {
            let l2 = frame_hash(&arp(), HashPolicy::Layer2, f);
            for p in [
                HashPolicy::Layer23,
                HashPolicy::Layer34,
                HashPolicy::Encap34,
            ] {
                assert_eq!(frame_hash(&arp(), p, f), l2, "{p} {f}");
            }
        }
    }

    #[test]
    fn encap_policies_see_the_inner_flow() {
        // IPv4-in-IPv4: outer 192.0.2.1 -> 192.0.2.2, inner UDP flow.
        let inner = udp4(4000, 53);
        let mut f = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .write(&mut f, 4.into(), &inner[14..])
            .unwrap();
        let other_inner = udp4(4001, 53);
        let mut g = Vec::new();
        PacketBuilder::ethernet2(A, B)
            .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
            .write(&mut g, 4.into(), &other_inner[14..])
            .unwrap();
        for func in [HashFunction::Kernel, HashFunction::Xxh3] {
            // layer3+4 sees only the outer header: both tunnels hash alike.
            assert_eq!(
                frame_hash(&f, HashPolicy::Layer34, func),
                frame_hash(&g, HashPolicy::Layer34, func)
            );
            // encap3+4 sees the inner ports.
            assert_ne!(
                frame_hash(&f, HashPolicy::Encap34, func),
                frame_hash(&g, HashPolicy::Encap34, func)
            );
            assert_eq!(
                frame_hash(&f, HashPolicy::Encap34, func),
                frame_hash(&inner, HashPolicy::Layer34, func),
                "{func}: decapsulated flow hashes like the bare inner flow"
            );
        }
    }

    #[test]
    fn a_flow_keeps_its_slave_and_flows_spread() {
        for func in [HashFunction::Kernel, HashFunction::Xxh3] {
            let mut per_slave = [0usize; 2];
            for port in 0..256u16 {
                let f = udp4(10_000 + port, 80);
                let h = frame_hash(&f, HashPolicy::Layer34, func);
                assert_eq!(h, frame_hash(&f, HashPolicy::Layer34, func));
                per_slave[pick(h, 2)] += 1;
            }
            assert!(
                per_slave.iter().all(|&n| (90..=166).contains(&n)),
                "{func}: {per_slave:?}"
            );
        }
    }

    #[test]
    fn short_frames_hash_to_zero() {
        for n in 0..14 {
            assert_eq!(
                frame_hash(&[0xab; 14][..n], HashPolicy::Layer34, HashFunction::Xxh3),
                0
            );
        }
    }
}
