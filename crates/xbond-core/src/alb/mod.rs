//! The pure logic of `balance-tlb` (mode 5) and `balance-alb` (mode 6), after
//! the kernel's `drivers/net/bonding/bond_alb.c`. The items live in three
//! submodules and are re-exported here, so that they are all spelled
//! `alb::…`:
//!
//! - `tlb`: [`Tlb`], transmit load balancing. IPv4/IPv6 unicast frames are
//!   put in one of [`TLB_BUCKETS`] buckets by destination address
//!   ([`tlb_bucket`]); each bucket is given to a slave, by load
//!   (`tlb_dynamic_lb 1`) or by a static spread (`tlb_dynamic_lb 0`). The
//!   workers read the [`Tlb::table`] snapshot; frames of an unassigned bucket,
//!   and frames with no bucket, go on the active slave.
//! - `rlb`: [`Rlb`], receive load balancing (ALB only). Each IPv4 peer is
//!   told, by the ARP replies the host sends and by ARP updates the bond sends
//!   itself, the MAC of the slave it should send to, so that peers spread
//!   their traffic over the slaves. ARP is read and written with the codec in
//!   [`crate::wire`].
//! - `learning`: [`learning_packet`] and [`LearningTimer`], the frames that
//!   keep switches' forwarding tables pointing at each slave (`lp_interval`),
//!   and [`swap_on_failover`], the MAC moves on failover
//!   (`alb_swap_mac_addr`).
//!
//! Nothing here reads a clock or touches a device: time is an argument, and
//! the frames to send are pulled with [`Rlb::poll_transmit`]. No input frame,
//! however short or malformed, can make these functions panic; the tests in
//! this file feed both balancers every truncation of a set of frames, and
//! random corruptions of them.

mod learning;
mod rlb;
mod tlb;

#[cfg(test)]
mod fixtures;

pub use learning::{learning_packet, swap_on_failover, LearningTimer, ETH_P_LOOPBACK};
pub use rlb::{Client, Rlb, RLB_ARP_BURST_SIZE, RLB_MAX_CLIENTS, RLB_UPDATE_DELAY};
pub use tlb::{
    tlb_bucket, Tlb, TLB_BUCKETS, TLB_DEFAULT_SPEED_MBPS, TLB_REBALANCE_INTERVAL, TLB_UNASSIGNED,
};

#[cfg(test)]
mod tests {
    //! Both balancers fed truncated and random frames.

    use std::time::{Duration, Instant};

    use super::fixtures::*;
    use super::rlb::parse_request_or_reply;
    use super::*;
    use crate::wire::{ArpInfo, EthInfo, ARPOP_REPLY, ARP_LEN};

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
            let min_arp = EthInfo::parse(&f).map(|e| e.l3_offset + ARP_LEN);
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
